//! Alert hooks (DingTalk robot, WeCom robot, generic webhook) and the
//! messages they get when tasks fail for good: pure rendering and signing,
//! tested without a network.

use crate::signing::hmac_sha256;
use crate::{Body, TargetUrl, TaskId};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// An alert hook's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlertHookId(Uuid);

impl AlertHookId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for AlertHookId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for AlertHookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for AlertHookId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Where an alert goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A DingTalk custom robot: markdown message, optional HMAC signing.
    Dingtalk,
    /// A WeCom (WeChat Work) group robot: markdown message.
    Wecom,
    /// Any URL: a JSON document, Standard Webhooks signed with a secret.
    Webhook,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dingtalk => "dingtalk",
            Self::Wecom => "wecom",
            Self::Webhook => "webhook",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "dingtalk" => Ok(Self::Dingtalk),
            "wecom" => Ok(Self::Wecom),
            "webhook" => Ok(Self::Webhook),
            _ => Err(format!("must be dingtalk, wecom or webhook, not {raw:?}")),
        }
    }

    /// Robots answer HTTP 200 with a JSON `errcode`; only 0 is success.
    pub fn answers_with_errcode(self) -> bool {
        matches!(self, Self::Dingtalk | Self::Wecom)
    }
}

/// A chat group or URL told when tasks fail for good.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertHook {
    pub id: AlertHookId,
    pub kind: AlertKind,
    pub url: TargetUrl,
    /// DingTalk signing secret, or the webhook's `whsec_` secret. Never
    /// shown after it is set.
    pub secret: Option<crate::SigningSecret>,
    pub remark: Option<String>,
    pub enabled: bool,
    /// Only failures of tasks with this `source_app` (when set).
    pub source_app: Option<String>,
    /// Only failures of tasks with this `target_app` (when set).
    pub target_app: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AlertHook {
    /// Whether operational alerts (lag, success rate, outages) go to it:
    /// enabled and without an application filter.
    pub fn hears_ops(&self) -> bool {
        self.enabled && self.source_app.is_none() && self.target_app.is_none()
    }

    /// A message to the hook sent at once rather than as a task (a test
    /// message, or news that the store is down), signed as its kind asks.
    pub fn direct_request(&self, body: Body, message_id: String) -> crate::InvokeRequest {
        let signing = match (self.kind, &self.secret) {
            (AlertKind::Dingtalk, Some(s)) => {
                Some(crate::Signing::Dingtalk(s.expose().to_string()))
            }
            (AlertKind::Webhook, Some(s)) => Some(crate::Signing::Standard(s.clone())),
            _ => None,
        };
        crate::InvokeRequest {
            url: self.url.clone(),
            headers: Default::default(),
            body,
            signing: signing.map(|s| (message_id, s)),
            timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// One task that failed for good, as an alert tells it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedTask {
    pub task_id: TaskId,
    pub url: String,
    pub source_app: Option<String>,
    pub target_app: Option<String>,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub accepted_at: DateTime<Utc>,
    pub failed_at: DateTime<Utc>,
}

/// What one alert message reports: every failure since the hook's last
/// message, a few in detail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertDigest {
    pub total: u64,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// The first failures, in detail.
    pub examples: Vec<FailedTask>,
    /// Failures per target host, most first.
    pub by_host: Vec<(String, u64)>,
    /// Receivers whose circuit breaker opened meanwhile, in words.
    pub breakers: Vec<String>,
}

/// Failures told in detail, at most.
pub const ALERT_EXAMPLES: usize = 5;

/// How an operator reaches a task, for links in messages.
#[derive(Debug, Clone)]
pub struct AlertLinks {
    /// e.g. `https://callbacks.example.com`; empty: API paths only.
    pub public_url: String,
}

impl AlertLinks {
    fn task(&self, id: TaskId) -> String {
        format!(
            "{}/api/v1/tasks/{id}",
            self.public_url.trim_end_matches('/')
        )
    }
}

/// The message text, in markdown, for a chat robot.
pub fn render_markdown(digest: &AlertDigest, links: &AlertLinks) -> (String, String) {
    let title = if digest.total == 0 {
        "callback-center: a receiver is paused".to_string()
    } else if digest.total == 1 {
        "callback-center: a task failed for good".to_string()
    } else {
        let minutes = ((digest.until - digest.since).num_seconds().max(60) + 59) / 60;
        format!(
            "callback-center: {} tasks failed for good in the last {minutes} min",
            digest.total
        )
    };
    let mut text = format!("### {title}\n\n");
    for breaker in &digest.breakers {
        text.push_str(&format!("- circuit breaker: {breaker}\n"));
    }
    if !digest.breakers.is_empty() {
        text.push('\n');
    }
    if digest.total > 1 {
        for (host, n) in digest.by_host.iter().take(5) {
            text.push_str(&format!("- {n} to **{host}**\n"));
        }
        text.push('\n');
    }
    for t in &digest.examples {
        text.push_str(&format!(
            "**Task** `{}`\n\n- target: {}\n- apps: {} → {}\n- attempts: {}\n- last status: {}\n- last error: {}\n- accepted: {}\n- failed: {}\n- re-send: `POST {}/retry`\n\n",
            t.task_id,
            t.url,
            t.source_app.as_deref().unwrap_or("-"),
            t.target_app.as_deref().unwrap_or("-"),
            t.attempts,
            t.last_status.map_or("none".to_string(), |s| s.to_string()),
            t.last_error.as_deref().unwrap_or("-"),
            t.accepted_at.format("%Y-%m-%d %H:%M:%S UTC"),
            t.failed_at.format("%Y-%m-%d %H:%M:%S UTC"),
            links.task(t.task_id),
        ));
    }
    let more = digest.total.saturating_sub(digest.examples.len() as u64);
    if more > 0 {
        text.push_str(&format!(
            "…and {more} more. Re-send them together: `POST /api/v1/tasks/retry` with `{{\"status\": \"failed\"}}`, or a failed bucket.\n"
        ));
    }
    (title, text)
}

/// The request body an alert hook gets.
pub fn alert_body(kind: AlertKind, digest: &AlertDigest, links: &AlertLinks) -> Body {
    let (title, text) = render_markdown(digest, links);
    robot_message(
        kind,
        &title,
        &text,
        serde_json::json!({
            "type": "tasks.failed",
            "title": title,
            "text": text,
            "total": digest.total,
            "since": digest.since,
            "until": digest.until,
            "by_host": digest.by_host.iter().map(|(h, n)| serde_json::json!({"host": h, "count": n})).collect::<Vec<_>>(),
            "tasks": digest.examples,
            "breakers": digest.breakers,
        }),
    )
}

/// A message in the hook's format: markdown for the DingTalk and WeCom
/// robots, `webhook` as it is for a plain webhook.
fn robot_message(kind: AlertKind, title: &str, text: &str, webhook: serde_json::Value) -> Body {
    let json = match kind {
        AlertKind::Dingtalk => serde_json::json!({
            "msgtype": "markdown",
            "markdown": {"title": title, "text": text},
        }),
        AlertKind::Wecom => serde_json::json!({
            "msgtype": "markdown",
            "markdown": {"content": text},
        }),
        AlertKind::Webhook => webhook,
    };
    Body::json(&json)
}

/// An operational condition the chat groups hear of, beside failed tasks:
/// it fires, is repeated while it lasts, and is told when it clears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsAlert {
    /// A stable name, e.g. `lag`.
    pub condition: &'static str,
    pub firing: bool,
    /// One line saying what was seen, e.g. "the oldest due task has waited 42 s".
    pub detail: String,
}

/// The message of an operational alert, in the hook's format.
pub fn ops_alert_body(kind: AlertKind, alert: &OpsAlert) -> Body {
    let title = if alert.firing {
        format!("callback-center: {} alert", alert.condition)
    } else {
        format!("callback-center: {} recovered", alert.condition)
    };
    let text = format!("### {title}\n\n{}", alert.detail);
    let webhook = serde_json::json!({
        "type": if alert.firing { "ops.firing" } else { "ops.recovered" },
        "condition": alert.condition,
        "title": title,
        "text": text,
        "detail": alert.detail,
    });
    robot_message(kind, &title, &text, webhook)
}

/// DingTalk's robot signature: base64 HMAC-SHA256 keyed with the secret
/// over `timestamp + "\n" + secret`. Sent URL-encoded as `sign`, beside
/// `timestamp` (milliseconds).
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let signed = format!("{timestamp_ms}\n{secret}");
    BASE64.encode(hmac_sha256(secret.as_bytes(), &[signed.as_bytes()]))
}

/// The URL a DingTalk robot is called at, signed now.
pub fn dingtalk_signed_url(url: &TargetUrl, secret: &str, timestamp_ms: i64) -> url::Url {
    let mut signed = url.as_url().clone();
    signed
        .query_pairs_mut()
        .append_pair("timestamp", &timestamp_ms.to_string())
        .append_pair("sign", &dingtalk_sign(secret, timestamp_ms));
    signed
}

/// Whether a robot's answer says it took the message: HTTP 200 and, for
/// DingTalk and WeCom, a JSON `errcode` of 0.
pub fn robot_accepted(kind: AlertKind, status: u16, body: &[u8]) -> Result<(), String> {
    if !(200..300).contains(&status) {
        return Err(format!("the hook answered HTTP {status}"));
    }
    if !kind.answers_with_errcode() {
        return Ok(());
    }
    let answer: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the robot's answer is not JSON".to_string())?;
    match answer.get("errcode").and_then(|c| c.as_i64()) {
        Some(0) => Ok(()),
        Some(code) => Err(format!(
            "the robot refused the message: errcode {code} ({})",
            answer
                .get("errmsg")
                .and_then(|m| m.as_str())
                .unwrap_or("no errmsg")
        )),
        None => Err("the robot's answer has no errcode".into()),
    }
}

/// The body of a test message, to check a hook is set up right.
pub fn alert_test_body(kind: AlertKind, links: &AlertLinks) -> Body {
    let digest = AlertDigest {
        total: 0,
        since: Utc::now(),
        until: Utc::now(),
        examples: Vec::new(),
        by_host: Vec::new(),
        breakers: Vec::new(),
    };
    let title = "callback-center: test message";
    let text = "### callback-center: test message\n\nThis alert hook is set up correctly: failed tasks will be reported here.";
    let mut webhook: serde_json::Value =
        serde_json::from_slice(&alert_body(AlertKind::Webhook, &digest, links).bytes)
            .unwrap_or_default();
    webhook["type"] = "test".into();
    webhook["title"] = title.into();
    webhook["text"] = text.into();
    robot_message(kind, title, text, webhook)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(n: u128) -> FailedTask {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        FailedTask {
            task_id: TaskId::from_uuid(Uuid::from_u128(n)),
            url: "https://pay.example.com/notify".into(),
            source_app: Some("shop".into()),
            target_app: Some("pay".into()),
            attempts: 11,
            last_status: Some(503),
            last_error: Some("the endpoint answered 503".into()),
            accepted_at: at,
            failed_at: at,
        }
    }

    #[test]
    fn dingtalk_sign_matches_the_documented_algorithm() {
        // Computed independently with Python's hmac, hashlib and base64.
        assert_eq!(
            dingtalk_sign("SEC1234567890abcdef", 1_700_000_000_000),
            "RqBq3E1RTBDv3n2QBCh4adZ2WHk9mVklyUoDBLxarjI="
        );
        let url =
            TargetUrl::parse("https://oapi.dingtalk.com/robot/send?access_token=abc").unwrap();
        let signed = dingtalk_signed_url(&url, "SEC1234567890abcdef", 1_700_000_000_000);
        assert_eq!(
            signed.query(),
            Some("access_token=abc&timestamp=1700000000000&sign=RqBq3E1RTBDv3n2QBCh4adZ2WHk9mVklyUoDBLxarjI%3D")
        );
    }

    #[test]
    fn robots_must_answer_errcode_zero() {
        assert_eq!(
            robot_accepted(AlertKind::Dingtalk, 200, br#"{"errcode":0,"errmsg":"ok"}"#),
            Ok(())
        );
        let refused = robot_accepted(
            AlertKind::Dingtalk,
            200,
            br#"{"errcode":310000,"errmsg":"sign not match"}"#,
        );
        assert_eq!(
            refused,
            Err("the robot refused the message: errcode 310000 (sign not match)".into())
        );
        assert!(robot_accepted(AlertKind::Wecom, 200, b"ok").is_err());
        assert!(robot_accepted(AlertKind::Wecom, 500, br#"{"errcode":0}"#).is_err());
        assert_eq!(robot_accepted(AlertKind::Webhook, 204, b""), Ok(()));
    }

    #[test]
    fn one_failure_is_told_in_detail() {
        let digest = AlertDigest {
            total: 1,
            since: failed(1).failed_at,
            until: failed(1).failed_at,
            examples: vec![failed(1)],
            by_host: vec![("pay.example.com".into(), 1)],
            breakers: vec![],
        };
        let links = AlertLinks {
            public_url: "https://cbc.example.com".into(),
        };
        let (title, text) = render_markdown(&digest, &links);
        assert_eq!(title, "callback-center: a task failed for good");
        for needle in [
            "https://pay.example.com/notify",
            "shop → pay",
            "attempts: 11",
            "last status: 503",
            "the endpoint answered 503",
            "2023-11-14 22:13:20 UTC",
            "POST https://cbc.example.com/api/v1/tasks/00000000-0000-0000-0000-000000000001/retry",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
    }

    #[test]
    fn a_burst_is_summed_by_host() {
        let since = failed(1).failed_at;
        let digest = AlertDigest {
            total: 37,
            since,
            until: since + chrono::TimeDelta::seconds(60),
            examples: (1..=5).map(failed).collect(),
            by_host: vec![
                ("pay.example.com".into(), 30),
                ("sms.example.com".into(), 7),
            ],
            breakers: vec!["endpoint:pay paused for 5 min".into()],
        };
        let (title, text) = render_markdown(
            &digest,
            &AlertLinks {
                public_url: String::new(),
            },
        );
        assert_eq!(
            title,
            "callback-center: 37 tasks failed for good in the last 1 min"
        );
        assert!(text.contains("- 30 to **pay.example.com**"));
        assert!(text.contains("- 7 to **sms.example.com**"));
        assert!(text.contains("…and 32 more"));
        assert!(text.contains("- circuit breaker: endpoint:pay paused for 5 min"));
        let wecom: serde_json::Value = serde_json::from_slice(
            &alert_body(
                AlertKind::Wecom,
                &digest,
                &AlertLinks {
                    public_url: String::new(),
                },
            )
            .bytes,
        )
        .unwrap();
        assert_eq!(wecom["msgtype"], "markdown");
        assert!(wecom["markdown"]["content"]
            .as_str()
            .unwrap()
            .contains("37 tasks"));
    }
}
