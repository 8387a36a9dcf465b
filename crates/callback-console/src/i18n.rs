//! The console's two languages. Every string a page shows comes from one
//! catalogue per language (`messages/en.txt`, `messages/zh.txt`); a test
//! checks that both have the same keys and that every key a template asks
//! for exists.

use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

/// The cookie that keeps a choice made with the language switch.
pub const LANG_COOKIE: &str = "cbc_lang";

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    pub fn other(self) -> Self {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }

    /// The language a switch cookie names, else the first of ours in the
    /// browser's `Accept-Language` by preference, else English.
    pub fn choose(cookie: Option<&str>, accept_language: Option<&str>) -> Self {
        if let Some(lang) = cookie.and_then(Self::parse) {
            return lang;
        }
        let mut offered: Vec<(f32, Lang)> = accept_language
            .unwrap_or("")
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.trim().split(';');
                let tag = pieces.next()?.trim().to_ascii_lowercase();
                let quality = pieces
                    .find_map(|p| p.trim().strip_prefix("q=").map(str::parse::<f32>))
                    .unwrap_or(Ok(1.0))
                    .unwrap_or(0.0);
                let lang = if tag == "zh" || tag.starts_with("zh-") {
                    Lang::Zh
                } else if tag == "en" || tag.starts_with("en-") {
                    Lang::En
                } else {
                    return None;
                };
                (quality > 0.0).then_some((quality, lang))
            })
            .collect();
        // Stable: equal qualities keep the browser's order.
        offered.sort_by(|a, b| b.0.total_cmp(&a.0));
        offered.first().map_or(Lang::En, |&(_, lang)| lang)
    }
}

type Catalogue = HashMap<&'static str, &'static str>;

fn parse(source: &'static str) -> Catalogue {
    source
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once(" = "))
        .map(|(key, text)| (key.trim(), text.trim()))
        .collect()
}

fn catalogue(lang: Lang) -> &'static Catalogue {
    static EN: OnceLock<Catalogue> = OnceLock::new();
    static ZH: OnceLock<Catalogue> = OnceLock::new();
    match lang {
        Lang::En => EN.get_or_init(|| parse(include_str!("../messages/en.txt"))),
        Lang::Zh => ZH.get_or_init(|| parse(include_str!("../messages/zh.txt"))),
    }
}

/// The strings of one language, as templates ask for them.
#[derive(Debug, Clone, Copy)]
pub struct Text {
    pub lang: Lang,
}

impl Text {
    /// The text of `key`; the key itself when missing, which the catalogue
    /// test keeps from happening.
    pub fn get<'a>(&self, key: &'a str) -> &'a str {
        catalogue(self.lang).get(key).copied().unwrap_or(key)
    }

    /// The text of `key` with each `{name}` replaced by its value.
    pub fn fill(&self, key: &str, values: &[(&str, String)]) -> String {
        let mut text = self.get(key).to_string();
        for (name, value) in values {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_language_follows_the_switch_then_the_browser_by_preference() {
        assert_eq!(
            Lang::choose(None, Some("zh-CN,zh;q=0.9,en;q=0.8")),
            Lang::Zh
        );
        assert_eq!(
            Lang::choose(None, Some("fr-FR, en-US;q=0.7, zh;q=0.5")),
            Lang::En
        );
        assert_eq!(Lang::choose(None, Some("en;q=0.3, zh-TW;q=0.8")), Lang::Zh);
        assert_eq!(Lang::choose(None, Some("de")), Lang::En);
        assert_eq!(Lang::choose(None, None), Lang::En);
        assert_eq!(Lang::choose(Some("en"), Some("zh-CN")), Lang::En);
        assert_eq!(Lang::choose(Some("xx"), Some("zh-CN")), Lang::Zh);
    }

    #[test]
    fn both_catalogues_have_the_same_keys_and_every_key_a_page_asks_for() {
        let en: BTreeSet<_> = catalogue(Lang::En).keys().collect();
        let zh: BTreeSet<_> = catalogue(Lang::Zh).keys().collect();
        assert_eq!(en, zh, "keys in one catalogue only");
        // Every `get("…")` and `fill("…"` in the templates and the code.
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/");
        let mut sources = Vec::new();
        for dir in ["templates", "src", "src/pages"] {
            for entry in std::fs::read_dir(format!("{root}{dir}")).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    sources.push(std::fs::read_to_string(path).unwrap());
                }
            }
        }
        let mut asked = BTreeSet::new();
        for source in &sources {
            for marker in ["get(\"", "fill(\""] {
                for piece in source.split(marker).skip(1) {
                    let key = piece.split('"').next().unwrap();
                    if key.contains('.') && !key.contains(' ') {
                        asked.insert(key.to_string());
                    }
                }
            }
        }
        assert!(asked.len() > 50, "found only {} keys", asked.len());
        let missing: Vec<_> = asked.iter().filter(|k| !en.contains(&k.as_str())).collect();
        assert!(
            missing.is_empty(),
            "keys missing from the catalogues: {missing:?}"
        );
        assert_eq!(Text { lang: Lang::Zh }.get("nav.hooks"), "失败通知管理");
    }
}
