//! Inbound vendor callbacks: routes from a key in a payload to an internal
//! URL, what is recorded of each callback, and the pure checks of vendor
//! signatures and payloads (WeChat message push, shared-secret HMAC).

use crate::signing::hmac_sha256;
use crate::{HeaderList, TargetUrl, TaskId};
use chrono::{DateTime, Utc};
use constant_time_eq::constant_time_eq;
use sha1::{Digest, Sha1};
use std::fmt;
use uuid::Uuid;

/// A route's namespace, e.g. `moderate`: 1 to 64 of `a-z 0-9 _ . -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

impl Namespace {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
        {
            Ok(Self(raw.to_string()))
        } else {
            Err("must be 1 to 64 of a-z, 0-9, '_', '.', '-'".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A routing key, e.g. a WeChat `trace_id`: 1 to 255 printable characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey(String);

impl RouteKey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if (1..=255).contains(&raw.len()) && !raw.chars().any(char::is_control) {
            Ok(Self(raw.to_string()))
        } else {
            Err("must be 1 to 255 characters, none of them control characters".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where callbacks with this key go.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub namespace: Namespace,
    pub key: RouteKey,
    pub target_url: TargetUrl,
    /// After this the route is gone.
    pub expires_at: Option<DateTime<Utc>>,
    pub remark: Option<String>,
    /// Extra headers on forwarded requests.
    pub headers: HeaderList,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Route {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// What became of an inbound callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundStatus {
    /// Handed to a task for its route.
    Forwarded,
    /// No route yet: kept until one appears or an operator forwards it.
    Unrouted,
    /// Nothing to route (e.g. a WeChat event of another kind); recorded.
    Ignored,
}

impl InboundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::Unrouted => "unrouted",
            Self::Ignored => "ignored",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "forwarded" => Ok(Self::Forwarded),
            "unrouted" => Ok(Self::Unrouted),
            "ignored" => Ok(Self::Ignored),
            _ => Err(format!(
                "must be forwarded, unrouted or ignored, not {raw:?}"
            )),
        }
    }
}

/// One inbound callback as received, kept whatever became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundRecord {
    pub id: Uuid,
    /// `wechat`, or a configured source name.
    pub source: String,
    pub namespace: Option<Namespace>,
    pub key: Option<RouteKey>,
    pub received_at: DateTime<Utc>,
    pub content_type: String,
    pub body: Vec<u8>,
    pub status: InboundStatus,
    /// The task that forwarded it.
    pub task_id: Option<TaskId>,
}

/// WeChat's server signature: hex SHA-1 of the token, timestamp and nonce
/// sorted and joined.
pub fn wechat_signature(token: &str, timestamp: &str, nonce: &str) -> String {
    sorted_sha1_hex(&mut [token, timestamp, nonce])
}

/// WeChat's signature shape: the SHA-1 of the parts sorted and joined.
pub(crate) fn sorted_sha1_hex(parts: &mut [&str]) -> String {
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

/// Whether `signature` was made with one of `tokens`.
pub fn wechat_signature_ok(tokens: &[&str], signature: &str, timestamp: &str, nonce: &str) -> bool {
    tokens.iter().any(|token| {
        let expected = wechat_signature(token, timestamp, nonce);
        constant_time_eq(
            expected.as_bytes(),
            signature.to_ascii_lowercase().as_bytes(),
        )
    })
}

/// The fields of a WeChat message push that routing needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WechatPush {
    pub msg_type: Option<String>,
    pub event: Option<String>,
    pub appid: Option<String>,
    pub trace_id: Option<String>,
    /// In safe mode, the encrypted message (base64), and nothing else to read.
    pub encrypt: Option<String>,
}

impl WechatPush {
    /// An image or audio moderation result (`wxa_media_check`).
    pub fn is_media_check(&self) -> bool {
        self.event.as_deref() == Some("wxa_media_check")
    }
}

/// Reads a push in JSON, or in the XML form WeChat sends when configured so.
pub fn parse_wechat_push(body: &[u8]) -> Result<WechatPush, String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'{') => {
            let v: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| format!("the push is not valid JSON: {e}"))?;
            let text = |name: &str| v.get(name).and_then(|x| x.as_str()).map(str::to_string);
            Ok(WechatPush {
                msg_type: text("MsgType"),
                event: text("Event"),
                appid: text("appid"),
                trace_id: text("trace_id"),
                encrypt: text("Encrypt"),
            })
        }
        Some(b'<') => parse_wechat_xml(body),
        _ => Err("the push is neither JSON nor XML".into()),
    }
}

fn parse_wechat_xml(body: &[u8]) -> Result<WechatPush, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().trim_text(true);
    let mut push = WechatPush::default();
    let mut depth = 0usize;
    let mut current: Option<String> = None;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                depth += 1;
                // Only the children of the root element are fields.
                current =
                    (depth == 2).then(|| String::from_utf8_lossy(e.name().as_ref()).into_owned());
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                current = None;
            }
            Ok(Event::Text(t)) => {
                let value = t
                    .unescape()
                    .map_err(|e| format!("bad XML text: {e}"))?
                    .into_owned();
                set_field(&mut push, current.as_deref(), value);
            }
            Ok(Event::CData(c)) => {
                let value = String::from_utf8_lossy(&c.into_inner()).into_owned();
                set_field(&mut push, current.as_deref(), value);
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("the push is not valid XML: {e}")),
        }
        buf.clear();
    }
    Ok(push)
}

fn set_field(push: &mut WechatPush, name: Option<&str>, value: String) {
    match name {
        Some("MsgType") => push.msg_type = Some(value),
        Some("Event") => push.event = Some(value),
        Some("appid") => push.appid = Some(value),
        Some("trace_id") => push.trace_id = Some(value),
        Some("Encrypt") => push.encrypt = Some(value),
        _ => {}
    }
}

/// The routing key at a JSON pointer: a string, or a number as written.
pub fn key_at_pointer(body: &[u8], pointer: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    match v.pointer(pointer) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(format!("{pointer} is not a string or a number")),
        None => Err(format!("the body has nothing at {pointer}")),
    }
}

/// Checks a shared-secret signature header: hex HMAC-SHA256 of the body,
/// optionally prefixed `sha256=` (as GitHub and many vendors send it).
pub fn hmac_sha256_hex_ok(secret: &str, body: &[u8], header: &str) -> bool {
    let given = header.trim();
    let given = given.strip_prefix("sha256=").unwrap_or(given);
    let Ok(given) = hex::decode(given) else {
        return false;
    };
    constant_time_eq(&hmac_sha256(secret.as_bytes(), &[body]), &given)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example push of WeChat's documentation for `wxa_media_check`.
    const WECHAT_EXAMPLE: &str = r#"{"ToUserName":"gh_9df7d78a1234","FromUserName":"o4_t144jTUSEoxydysUA2E234_tc","CreateTime":1626959646,"MsgType":"event","Event":"wxa_media_check","appid":"wx8f16a5e5f7ad1234","trace_id":"60f96f1d-3845297a-1976a3ae","version":2,"detail":[{"strategy":"content_model","errcode":0,"suggest":"pass","label":100,"prob":90}],"errcode":0,"errmsg":"ok","result":{"suggest":"pass","label":100}}"#;

    #[test]
    fn wechat_signature_is_sha1_of_the_sorted_parts() {
        // Sorted bytewise: "123token" < "1409304348" < "xxxnonce".
        let expected = hex::encode(Sha1::digest(b"123token1409304348xxxnonce"));
        assert_eq!(
            wechat_signature("123token", "1409304348", "xxxnonce"),
            expected
        );
        assert!(wechat_signature_ok(
            &["other", "123token"],
            &expected,
            "1409304348",
            "xxxnonce"
        ));
        assert!(!wechat_signature_ok(
            &["other"],
            &expected,
            "1409304348",
            "xxxnonce"
        ));
    }

    #[test]
    fn the_documented_json_push_is_read() {
        let push = parse_wechat_push(WECHAT_EXAMPLE.as_bytes()).unwrap();
        assert!(push.is_media_check());
        assert_eq!(push.trace_id.as_deref(), Some("60f96f1d-3845297a-1976a3ae"));
        assert_eq!(push.appid.as_deref(), Some("wx8f16a5e5f7ad1234"));
    }

    #[test]
    fn the_xml_push_is_read() {
        let xml = "<xml><ToUserName><![CDATA[gh_9df7d78a1234]]></ToUserName><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_media_check]]></Event><appid><![CDATA[wx8f16a5e5f7ad1234]]></appid><trace_id><![CDATA[60f96f1d-3845297a-1976a3ae]]></trace_id><result><suggest><![CDATA[risky]]></suggest><label>20001</label></result></xml>";
        let push = parse_wechat_push(xml.as_bytes()).unwrap();
        assert!(push.is_media_check());
        assert_eq!(push.trace_id.as_deref(), Some("60f96f1d-3845297a-1976a3ae"));
        assert!(parse_wechat_push(b"plain text").is_err());
        assert!(parse_wechat_push(b"<xml><a></b></xml>").is_err());
    }

    #[test]
    fn keys_are_read_at_a_json_pointer() {
        assert_eq!(
            key_at_pointer(br#"{"data":{"id":42}}"#, "/data/id"),
            Ok("42".into())
        );
        assert_eq!(
            key_at_pointer(br#"{"trace_id":"t-1"}"#, "/trace_id"),
            Ok("t-1".into())
        );
        assert!(key_at_pointer(br#"{"trace_id":null}"#, "/trace_id").is_err());
        assert!(key_at_pointer(b"nope", "/x").is_err());
    }

    #[test]
    fn hmac_headers_are_checked_with_or_without_prefix() {
        // Computed independently: `printf '{}' | openssl dgst -sha256 -hmac shh`.
        let hex_sig = "9b7038c05edccf643d722b52dbaf2cea2b159caf339a5e12c0356e0b8b7b0794";
        assert!(hmac_sha256_hex_ok("shh", b"{}", hex_sig));
        assert!(hmac_sha256_hex_ok(
            "shh",
            b"{}",
            &format!("sha256={hex_sig}")
        ));
        assert!(!hmac_sha256_hex_ok("other", b"{}", hex_sig));
        assert!(!hmac_sha256_hex_ok("shh", b"{ }", hex_sig));
        assert!(!hmac_sha256_hex_ok("shh", b"{}", "zz"));
    }

    #[test]
    fn names_are_checked() {
        assert!(Namespace::parse("moderate").is_ok());
        assert!(Namespace::parse("Moderate").is_err());
        assert!(RouteKey::parse("60f96f1d-3845297a-1976a3ae").is_ok());
        assert!(RouteKey::parse("").is_err());
        assert!(RouteKey::parse("a\nb").is_err());
    }
}
