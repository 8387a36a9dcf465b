//! The outgoing HTTP request a task makes: target URL, method, headers,
//! query parameters and body. Each part is parsed once, at the edge, into a
//! type that can only hold a value the sender can actually send.

use serde::{Deserialize, Serialize};
use std::fmt;
use url::Url;

/// An absolute http or https URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl(Url);

impl TargetUrl {
    pub const MAX_LEN: usize = 4096;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        let url = Url::parse(raw).map_err(|e| format!("is not an absolute URL ({e})"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!(
                "scheme must be http or https, not {}",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must have a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials; send them in headers".into());
        }
        Ok(Self(url))
    }

    pub fn as_url(&self) -> &Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The URL with the values of query parameters that carry credentials
    /// (robot tokens and keys) shown as `***`, for display.
    pub fn redacted(&self) -> String {
        const SECRET_PARAMS: [&str; 5] = ["access_token", "key", "token", "secret", "sign"];
        let mut shown = self.0.clone();
        let pairs: Vec<(String, String)> = shown
            .query_pairs()
            .map(|(k, v)| {
                let hide = SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str());
                (
                    k.into_owned(),
                    if hide { "***".into() } else { v.into_owned() },
                )
            })
            .collect();
        if !pairs.is_empty() {
            shown.query_pairs_mut().clear().extend_pairs(pairs);
        }
        shown.to_string()
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// The HTTP methods a task may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    #[default]
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.to_ascii_uppercase().as_str() {
            "GET" => Ok(Self::Get),
            "POST" => Ok(Self::Post),
            "PUT" => Ok(Self::Put),
            "PATCH" => Ok(Self::Patch),
            "DELETE" => Ok(Self::Delete),
            _ => Err(format!(
                "must be one of GET, POST, PUT, PATCH, DELETE, not {raw:?}"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// Headers the center sets itself; a task may not override them, so that a
/// receiver can always trust them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "x-callback-task-id",
    "x-callback-attempt",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Extra request headers, in the order given, names validated as HTTP tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderList(Vec<(String, String)>);

impl HeaderList {
    pub const MAX_HEADERS: usize = 64;

    pub fn parse(pairs: Vec<(String, String)>) -> Result<Self, String> {
        if pairs.len() > Self::MAX_HEADERS {
            return Err(format!("at most {} headers", Self::MAX_HEADERS));
        }
        for (name, value) in &pairs {
            let is_token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !is_token {
                return Err(format!("{name:?} is not a valid header name"));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!("{name} is set by the callback center itself"));
            }
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(format!("the value of {name} has control characters"));
            }
        }
        Ok(Self(pairs))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The value of a header, matched case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// Query parameters appended to the target URL, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryList(pub Vec<(String, String)>);

impl QueryList {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The bytes a task sends and their media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Body {
    /// A JSON body, sent as `application/json`.
    pub fn json(value: &serde_json::Value) -> Self {
        Self {
            content_type: "application/json".into(),
            bytes: value.to_string().into_bytes(),
        }
    }

    /// A JSON body exactly as a client wrote it (its key order, its
    /// spacing), sent as `application/json`: kept as text, never built
    /// into a tree and printed again.
    pub fn raw_json(raw: &serde_json::value::RawValue) -> Self {
        Self {
            content_type: "application/json".into(),
            bytes: raw.get().as_bytes().to_vec(),
        }
    }

    /// A raw text body, with the `Content-Type` the task's headers name, or
    /// `text/plain` when they name none.
    pub fn text(text: String, headers: &HeaderList) -> Self {
        let content_type = headers
            .get("content-type")
            .unwrap_or("text/plain; charset=utf-8")
            .to_string();
        Self {
            content_type,
            bytes: text.into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_url_accepts_http_and_https_only() {
        assert!(TargetUrl::parse("https://example.com/hook?x=1").is_ok());
        assert!(TargetUrl::parse("http://127.0.0.1:9000/").is_ok());
        assert!(TargetUrl::parse("ftp://example.com/").is_err());
        assert!(TargetUrl::parse("/relative/path").is_err());
        assert!(TargetUrl::parse("https://user:pw@example.com/").is_err());
    }

    #[test]
    fn method_is_parsed_case_insensitively_and_limited() {
        assert_eq!(Method::parse("get"), Ok(Method::Get));
        assert_eq!(Method::parse("PATCH"), Ok(Method::Patch));
        assert!(Method::parse("TRACE").is_err());
    }

    #[test]
    fn reserved_and_malformed_headers_are_refused() {
        let one = |n: &str, v: &str| HeaderList::parse(vec![(n.into(), v.into())]);
        assert!(one("X-Trace", "abc").is_ok());
        assert!(one("X-Callback-Task-Id", "spoof").is_err());
        assert!(one("Content-Length", "1").is_err());
        assert!(one("bad header", "x").is_err());
        assert!(one("X-Ok", "line\nbreak").is_err());
    }

    #[test]
    fn text_body_takes_content_type_from_headers() {
        let headers =
            HeaderList::parse(vec![("Content-Type".into(), "application/xml".into())]).unwrap();
        assert_eq!(
            Body::text("<a/>".into(), &headers).content_type,
            "application/xml"
        );
        assert!(Body::text("x".into(), &HeaderList::default())
            .content_type
            .starts_with("text/plain"));
    }
}
