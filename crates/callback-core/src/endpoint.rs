//! Endpoints (receivers subscribed to event types) and events, and the pure
//! rule that turns one event into one task per subscribed endpoint.

use crate::signing::{md5_legacy_signature, SignatureScheme, SigningSecret};
use crate::{
    Body, Expectation, HeaderList, MaxAttempts, Method, NewTask, QueryList, RetrySchedule,
    TargetUrl, TaskId, TaskSpec,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An endpoint's unique name: `^[A-Za-z0-9_]{1,32}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointName(String);

impl EndpointName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if (1..=32).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            Ok(Self(raw.to_string()))
        } else {
            Err("must be 1 to 32 letters, digits or underscores".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EndpointName {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<EndpointName> for String {
    fn from(name: EndpointName) -> String {
        name.0
    }
}

impl fmt::Display for EndpointName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event type, e.g. `message.sent`: 1 to 128 letters, digits and
/// `.`, `_`, `-`, `:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventType(String);

impl EventType {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if (1..=128).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b))
        {
            Ok(Self(raw.to_string()))
        } else {
            Err("must be 1 to 128 letters, digits, '.', '_', '-' or ':'".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventType {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<EventType> for String {
    fn from(t: EventType) -> String {
        t.0
    }
}

/// A receiver that subscribes to event types.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub name: EndpointName,
    pub url: TargetUrl,
    /// A disabled endpoint gets no new tasks; its queued ones wait.
    pub enabled: bool,
    /// The tenant or application the endpoint belongs to: it then receives
    /// only events of that app.
    pub app: Option<String>,
    /// Empty: every event type.
    pub event_types: Vec<EventType>,
    pub signature: SignatureScheme,
    pub secret: SigningSecret,
    /// Defaults for its tasks; `None`: the server's.
    pub timeout_ms: Option<u32>,
    pub max_attempts: Option<MaxAttempts>,
    pub retry_schedule: Option<RetrySchedule>,
    pub headers: HeaderList,
    pub rate_limit_per_s: Option<u32>,
    pub max_in_flight: Option<u32>,
    /// Its own breaker settings; `None` fields: the server's.
    pub breaker: BreakerOverrides,
    /// Every attempt has failed since then; `None`: the last one succeeded,
    /// or there was none.
    pub failing_since: Option<DateTime<Utc>>,
    /// When it was disabled for failing too long (`endpoints.disable_after`);
    /// while it stays disabled, its new events are kept as `held` tasks.
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An endpoint's own circuit-breaker settings, over the server's
/// `[breaker]`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BreakerOverrides {
    /// Failed attempts within the window, at least, to open.
    pub failure_threshold: Option<u32>,
    /// Failures over attempts within the window, at least, to open (0 to 1).
    pub failure_ratio: Option<f64>,
}

impl Endpoint {
    /// Disabled by the server for failing, not by an operator: its new
    /// events are held rather than given to no one.
    pub fn holds_events(&self) -> bool {
        !self.enabled && self.disabled_at.is_some()
    }

    /// Whether an event of this type and app is for this endpoint (enabled
    /// or not).
    pub fn wants(&self, event_type: &EventType, app: Option<&str>) -> bool {
        let type_ok = self.event_types.is_empty() || self.event_types.contains(event_type);
        let app_ok = match (&self.app, app) {
            (None, _) => true,
            (Some(mine), Some(theirs)) => mine == theirs,
            (Some(_), None) => false,
        };
        type_ok && app_ok
    }
}

/// An event to publish.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Unique: publishing the same call id again creates nothing.
    pub call_id: String,
    pub event_type: EventType,
    pub app: Option<String>,
    /// As the publisher wrote it: the standard scheme sends it byte for
    /// byte.
    pub payload: Box<serde_json::value::RawValue>,
    pub created_at: DateTime<Utc>,
    /// Its tasks are delivered in order with the event's earlier tasks of
    /// the same key, each endpoint's separately.
    pub ordering: Option<crate::Ordering>,
}

/// The outcome of publishing an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Published {
    Created(Vec<TaskId>),
    /// An event with this call id was published before; nothing was created.
    Existing(Vec<TaskId>),
}

/// Server-wide defaults for what an endpoint leaves unset.
#[derive(Debug, Clone, Copy)]
pub struct EndpointDefaults {
    pub max_attempts: MaxAttempts,
    pub timeout_ms: u32,
}

/// The body `endpoint` gets for `event`: the payload as is for the
/// standard scheme (signed at send time), or the signed legacy envelope.
pub fn event_body(endpoint: &Endpoint, event: &NewEvent) -> Body {
    match endpoint.signature {
        SignatureScheme::Standard => Body::raw_json(&event.payload),
        SignatureScheme::Md5Legacy => {
            let timestamp = event.created_at.timestamp_millis();
            Body::json(&serde_json::json!({
                "callId": event.call_id,
                "eventType": event.event_type.as_str(),
                "timestamp": timestamp,
                "app": event.app,
                "payload": event.payload,
                "securityVersion": "1.0.0",
                "security": md5_legacy_signature(&event.call_id, &endpoint.secret, timestamp),
            }))
        }
    }
}

/// The task that delivers `event` to `endpoint`.
pub fn task_for_event(
    endpoint: &Endpoint,
    event: &NewEvent,
    defaults: EndpointDefaults,
) -> NewTask {
    NewTask {
        id: TaskId::new(),
        spec: TaskSpec {
            url: endpoint.url.clone(),
            method: Method::Post,
            headers: endpoint.headers.clone(),
            query: QueryList::default(),
            body: Some(event_body(endpoint, event)),
            max_attempts: endpoint.max_attempts.unwrap_or(defaults.max_attempts),
            retry_schedule: endpoint.retry_schedule.clone(),
            timeout_ms: endpoint.timeout_ms.unwrap_or(defaults.timeout_ms),
            expect: Expectation::default(),
            source_app: event.app.clone(),
            target_app: endpoint.app.clone(),
            idempotency_key: None,
            endpoint: Some(endpoint.name.clone()),
            event_type: Some(event.event_type.clone()),
            alert_hook: None,
            traceparent: None,
            ordering: event.ordering.clone(),
        },
        first_attempt_at: event.created_at,
        created_at: event.created_at,
        lease: None,
        held: endpoint.holds_events(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SigningSecret;

    fn endpoint(name: &str, types: &[&str], scheme: SignatureScheme) -> Endpoint {
        let now = Utc::now();
        Endpoint {
            name: EndpointName::parse(name).unwrap(),
            url: TargetUrl::parse("https://example.com/hook").unwrap(),
            enabled: true,
            app: None,
            event_types: types.iter().map(|t| EventType::parse(t).unwrap()).collect(),
            signature: scheme,
            secret: SigningSecret::from_stored("legacy-secret".into()),
            timeout_ms: None,
            max_attempts: None,
            retry_schedule: None,
            headers: HeaderList::default(),
            rate_limit_per_s: None,
            max_in_flight: None,
            breaker: BreakerOverrides::default(),
            failing_since: None,
            disabled_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn names_are_short_words() {
        assert!(EndpointName::parse("im_audit_2").is_ok());
        assert!(EndpointName::parse(&"a".repeat(32)).is_ok());
        assert!(EndpointName::parse(&"a".repeat(33)).is_err());
        assert!(EndpointName::parse("").is_err());
        assert!(EndpointName::parse("bad-name").is_err());
        assert!(EventType::parse("message.sent").is_ok());
        assert!(EventType::parse("has space").is_err());
    }

    #[test]
    fn an_endpoint_wants_its_types_and_its_app() {
        let t = |s: &str| EventType::parse(s).unwrap();
        let mut e = endpoint("a", &["message.sent"], SignatureScheme::Standard);
        assert!(e.wants(&t("message.sent"), None));
        assert!(!e.wants(&t("user.joined"), None));
        e.event_types.clear();
        assert!(e.wants(&t("user.joined"), Some("x")));
        e.app = Some("tenant1".into());
        assert!(e.wants(&t("user.joined"), Some("tenant1")));
        assert!(!e.wants(&t("user.joined"), Some("tenant2")));
        assert!(!e.wants(&t("user.joined"), None));
    }

    #[test]
    fn a_legacy_task_carries_the_signed_envelope() {
        let e = endpoint("legacy", &[], SignatureScheme::Md5Legacy);
        let event = NewEvent {
            call_id: "c-1".into(),
            event_type: EventType::parse("message.sent").unwrap(),
            app: Some("im".into()),
            payload: serde_json::value::RawValue::from_string(r#"{"text": "hi"}"#.into()).unwrap(),
            created_at: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
            ordering: None,
        };
        let task = task_for_event(&e, &event, defaults());
        let body: serde_json::Value =
            serde_json::from_slice(&task.spec.body.unwrap().bytes).unwrap();
        assert_eq!(body["callId"], "c-1");
        assert_eq!(body["eventType"], "message.sent");
        assert_eq!(body["timestamp"], 1_700_000_000_000_i64);
        assert_eq!(body["app"], "im");
        assert_eq!(body["payload"]["text"], "hi");
        assert_eq!(body["securityVersion"], "1.0.0");
        assert_eq!(
            body["security"],
            md5_legacy_signature("c-1", &e.secret, 1_700_000_000_000)
        );
        assert_eq!(task.spec.endpoint, Some(e.name));
    }

    fn defaults() -> EndpointDefaults {
        EndpointDefaults {
            max_attempts: MaxAttempts::parse(11).unwrap(),
            timeout_ms: 10_000,
        }
    }
}
