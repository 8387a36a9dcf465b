//! Request and response bodies of the endpoint and event API, and their
//! conversion to domain types.

use callback_core::{
    BreakerOverrides, Endpoint, EndpointName, EventType, HeaderList, MaxAttempts, ReceiverStatus,
    RetrySchedule, SignatureScheme, SigningSecret, TargetUrl, ValidationErrors,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The largest rate or in-flight cap an endpoint may set.
const MAX_RECEIVER_LIMIT: u32 = 1_000_000;

use crate::dto::MAX_TIMEOUT_MS;

const MAX_LABEL: usize = 128;
const MAX_EVENT_TYPES: usize = 100;

/// An endpoint to create.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointRequest {
    /// Unique: 1 to 32 letters, digits or underscores.
    #[schema(example = "im_audit")]
    pub name: String,
    pub url: String,
    /// Default true.
    pub enabled: Option<bool>,
    /// The tenant or application the endpoint belongs to.
    pub app: Option<String>,
    /// Event types it wants; empty or absent: every type.
    pub event_types: Option<Vec<String>>,
    /// `standard` (default) or `md5_legacy`.
    pub signature: Option<String>,
    /// Generated as `whsec_...` when absent.
    pub secret: Option<String>,
    pub timeout_ms: Option<u32>,
    pub max_attempts: Option<i64>,
    pub retry_delays_s: Option<Vec<u32>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub rate_limit_per_s: Option<u32>,
    pub max_in_flight: Option<u32>,
    /// Its own circuit-breaker settings over the server's `[breaker]`.
    pub breaker: Option<BreakerRequest>,
}

/// An endpoint's own circuit breaker: a field left out keeps the server's.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerRequest {
    /// Failed attempts within the window, at least, to open (1 to a million).
    pub failure_threshold: Option<u32>,
    /// Failures over attempts within the window, at least, to open (0 to 1).
    pub failure_ratio: Option<f64>,
}

impl BreakerRequest {
    fn check(self, errors: &mut ValidationErrors) -> Option<BreakerOverrides> {
        let mut ok = true;
        if self
            .failure_threshold
            .is_some_and(|n| !(1..=MAX_RECEIVER_LIMIT).contains(&n))
        {
            errors.push(
                "breaker.failure_threshold",
                format!("must be between 1 and {MAX_RECEIVER_LIMIT}"),
            );
            ok = false;
        }
        if self
            .failure_ratio
            .is_some_and(|r| !(0.0..=1.0).contains(&r) || r.is_nan())
        {
            errors.push("breaker.failure_ratio", "must be between 0 and 1");
            ok = false;
        }
        ok.then_some(BreakerOverrides {
            failure_threshold: self.failure_threshold,
            failure_ratio: self.failure_ratio,
        })
    }
}

/// Changes to an endpoint: a field left out stays as it is; `null` clears
/// an optional one. The secret changes only by rotation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpointRequest {
    pub url: Option<String>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "crate::json_body::present")]
    #[schema(value_type = Option<String>)]
    pub app: Option<Option<String>>,
    pub event_types: Option<Vec<String>>,
    pub signature: Option<String>,
    #[serde(default, deserialize_with = "crate::json_body::present")]
    #[schema(value_type = Option<u32>)]
    pub timeout_ms: Option<Option<u32>>,
    #[serde(default, deserialize_with = "crate::json_body::present")]
    #[schema(value_type = Option<i64>)]
    pub max_attempts: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::json_body::present")]
    #[schema(value_type = Option<Vec<u32>>)]
    pub retry_delays_s: Option<Option<Vec<u32>>>,
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "crate::json_body::present")]
    #[schema(value_type = Option<u32>)]
    pub rate_limit_per_s: Option<Option<u32>>,
    #[serde(default, deserialize_with = "crate::json_body::present")]
    #[schema(value_type = Option<u32>)]
    pub max_in_flight: Option<Option<u32>>,
    /// `null` goes back to the server's settings.
    #[serde(default, deserialize_with = "crate::json_body::present")]
    #[schema(value_type = Option<BreakerRequest>)]
    pub breaker: Option<Option<BreakerRequest>>,
}

/// Fields shared by create and update, checked one by one.
struct Checked<'a>(&'a mut ValidationErrors);

impl Checked<'_> {
    fn url(&mut self, raw: &str) -> Option<TargetUrl> {
        self.0.take("url", TargetUrl::parse(raw))
    }

    fn app(&mut self, app: Option<String>) -> Option<Option<String>> {
        match app {
            Some(a) if a.is_empty() || a.chars().count() > MAX_LABEL => {
                self.0
                    .push("app", format!("must be 1 to {MAX_LABEL} characters"));
                None
            }
            other => Some(other),
        }
    }

    fn event_types(&mut self, raw: Vec<String>) -> Option<Vec<EventType>> {
        if raw.len() > MAX_EVENT_TYPES {
            self.0
                .push("event_types", format!("at most {MAX_EVENT_TYPES}"));
            return None;
        }
        let mut types = Vec::new();
        for (i, t) in raw.iter().enumerate() {
            types.push(
                self.0
                    .take(&format!("event_types[{i}]"), EventType::parse(t))?,
            );
        }
        Some(types)
    }

    fn signature(&mut self, raw: Option<&str>) -> Option<SignatureScheme> {
        match raw {
            Some(raw) => self.0.take("signature", SignatureScheme::parse(raw)),
            None => Some(SignatureScheme::default()),
        }
    }

    fn timeout(&mut self, t: Option<u32>) -> Option<Option<u32>> {
        match t {
            Some(t) if !(1..=MAX_TIMEOUT_MS).contains(&t) => {
                self.0.push(
                    "timeout_ms",
                    format!("must be between 1 and {MAX_TIMEOUT_MS}"),
                );
                None
            }
            other => Some(other),
        }
    }

    fn max_attempts(&mut self, n: Option<i64>) -> Option<Option<MaxAttempts>> {
        match n {
            Some(n) => self.0.take("max_attempts", MaxAttempts::parse(n)).map(Some),
            None => Some(None),
        }
    }

    fn schedule(&mut self, delays: Option<Vec<u32>>) -> Option<Option<RetrySchedule>> {
        match delays {
            Some(d) => self
                .0
                .take("retry_delays_s", RetrySchedule::parse(d))
                .map(Some),
            None => Some(None),
        }
    }

    fn headers(&mut self, headers: BTreeMap<String, String>) -> Option<HeaderList> {
        self.0
            .take("headers", HeaderList::parse(headers.into_iter().collect()))
    }

    /// A per-receiver limit: 1 to a million (the store keeps 32-bit
    /// signed numbers; a larger one came back unreadable).
    fn positive(&mut self, field: &str, n: Option<u32>) -> Option<Option<u32>> {
        match n {
            Some(n) if !(1..=MAX_RECEIVER_LIMIT).contains(&n) => {
                self.0
                    .push(field, format!("must be between 1 and {MAX_RECEIVER_LIMIT}"));
                None
            }
            other => Some(other),
        }
    }
}

impl CreateEndpointRequest {
    pub fn into_endpoint(self, now: DateTime<Utc>) -> Result<Endpoint, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let name = errors.take("name", EndpointName::parse(&self.name));
        let mut c = Checked(&mut errors);
        let url = c.url(&self.url);
        let app = c.app(self.app);
        let event_types = c.event_types(self.event_types.unwrap_or_default());
        let signature = c.signature(self.signature.as_deref());
        let timeout_ms = c.timeout(self.timeout_ms);
        let max_attempts = c.max_attempts(self.max_attempts);
        let retry_schedule = c.schedule(self.retry_delays_s);
        let headers = c.headers(self.headers.unwrap_or_default());
        let rate_limit_per_s = c.positive("rate_limit_per_s", self.rate_limit_per_s);
        let max_in_flight = c.positive("max_in_flight", self.max_in_flight);
        let breaker = self.breaker.unwrap_or_default().check(c.0);
        let secret = match (self.secret, signature) {
            (Some(raw), Some(scheme)) => errors.take("secret", SigningSecret::parse(&raw, scheme)),
            (None, _) => Some(SigningSecret::generate()),
            (Some(_), None) => None,
        };
        let (
            Some(name),
            Some(url),
            Some(app),
            Some(event_types),
            Some(signature),
            Some(secret),
            Some(timeout_ms),
            Some(max_attempts),
            Some(retry_schedule),
            Some(headers),
            Some(rate_limit_per_s),
            Some(max_in_flight),
            Some(breaker),
        ) = (
            name,
            url,
            app,
            event_types,
            signature,
            secret,
            timeout_ms,
            max_attempts,
            retry_schedule,
            headers,
            rate_limit_per_s,
            max_in_flight,
            breaker,
        )
        else {
            return Err(errors);
        };
        errors.into_result()?;
        Ok(Endpoint {
            name,
            url,
            enabled: self.enabled.unwrap_or(true),
            app,
            event_types,
            signature,
            secret,
            timeout_ms,
            max_attempts,
            retry_schedule,
            headers,
            rate_limit_per_s,
            max_in_flight,
            breaker,
            failing_since: None,
            disabled_at: None,
            created_at: now,
            updated_at: now,
        })
    }
}

impl UpdateEndpointRequest {
    /// Applies the changes to `endpoint`, or names every bad field.
    pub fn apply(
        self,
        endpoint: &mut Endpoint,
        now: DateTime<Utc>,
    ) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let mut c = Checked(&mut errors);
        if let Some(url) = self.url.and_then(|u| c.url(&u)) {
            endpoint.url = url;
        }
        if let Some(enabled) = self.enabled {
            endpoint.enabled = enabled;
            // Enabled (again), or disabled by an operator: no longer the
            // server's doing, and its failures count afresh.
            endpoint.disabled_at = None;
            if enabled {
                endpoint.failing_since = None;
            }
        }
        if let Some(app) = self.app.and_then(|a| c.app(a)) {
            endpoint.app = app;
        }
        if let Some(types) = self.event_types.and_then(|t| c.event_types(t)) {
            endpoint.event_types = types;
        }
        if let Some(raw) = self.signature {
            if let Some(scheme) = c.signature(Some(&raw)) {
                if scheme != endpoint.signature
                    && SigningSecret::parse(endpoint.secret.expose(), scheme).is_err()
                {
                    c.0.push(
                        "signature",
                        "the current secret does not suit this scheme; rotate the secret after the change",
                    );
                }
                endpoint.signature = scheme;
            }
        }
        if let Some(t) = self.timeout_ms.and_then(|t| c.timeout(t)) {
            endpoint.timeout_ms = t;
        }
        if let Some(m) = self.max_attempts.and_then(|m| c.max_attempts(m)) {
            endpoint.max_attempts = m;
        }
        if let Some(s) = self.retry_delays_s.and_then(|s| c.schedule(s)) {
            endpoint.retry_schedule = s;
        }
        if let Some(h) = self.headers.and_then(|h| c.headers(h)) {
            endpoint.headers = h;
        }
        if let Some(r) = self
            .rate_limit_per_s
            .and_then(|r| c.positive("rate_limit_per_s", r))
        {
            endpoint.rate_limit_per_s = r;
        }
        if let Some(m) = self
            .max_in_flight
            .and_then(|m| c.positive("max_in_flight", m))
        {
            endpoint.max_in_flight = m;
        }
        if let Some(breaker) = self.breaker {
            if let Some(b) = breaker.unwrap_or_default().check(c.0) {
                endpoint.breaker = b;
            }
        }
        endpoint.updated_at = now;
        errors.into_result()
    }
}

/// An endpoint as the API shows it. The secret appears only in the answers
/// to create and rotate-secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    pub name: String,
    pub url: String,
    pub enabled: bool,
    pub app: Option<String>,
    pub event_types: Vec<String>,
    pub signature: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub timeout_ms: Option<u32>,
    pub max_attempts: Option<u32>,
    pub retry_delays_s: Option<Vec<u32>>,
    pub headers: BTreeMap<String, String>,
    pub rate_limit_per_s: Option<u32>,
    pub max_in_flight: Option<u32>,
    /// Its own breaker settings; absent fields: the server's.
    pub breaker: BreakerRequest,
    /// Every attempt has failed since then; null: the last one succeeded.
    pub failing_since: Option<DateTime<Utc>>,
    /// When the server disabled it for failing longer than
    /// `endpoints.disable_after_s`; its new events are held until it is
    /// enabled again.
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// This instance's view of the receiver: breaker and attempts in flight.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub receiver: Option<ReceiverStatus>,
}

impl EndpointView {
    pub fn new(e: &Endpoint) -> Self {
        Self {
            name: e.name.to_string(),
            url: e.url.to_string(),
            enabled: e.enabled,
            app: e.app.clone(),
            event_types: e
                .event_types
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
            signature: e.signature.as_str().to_string(),
            secret: None,
            timeout_ms: e.timeout_ms,
            max_attempts: e.max_attempts.map(MaxAttempts::get),
            retry_delays_s: e.retry_schedule.as_ref().map(|s| s.as_slice().to_vec()),
            headers: e
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            rate_limit_per_s: e.rate_limit_per_s,
            max_in_flight: e.max_in_flight,
            breaker: BreakerRequest {
                failure_threshold: e.breaker.failure_threshold,
                failure_ratio: e.breaker.failure_ratio,
            },
            failing_since: e.failing_since,
            disabled_at: e.disabled_at,
            created_at: e.created_at,
            updated_at: e.updated_at,
            receiver: None,
        }
    }

    pub fn with_secret(mut self, e: &Endpoint) -> Self {
        self.secret = Some(e.secret.expose().to_string());
        self
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub items: Vec<EndpointView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    /// Shown once: keep it now.
    pub secret: String,
}

/// An event to publish to every enabled endpoint that wants it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEventRequest {
    #[schema(example = "message.sent")]
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: Box<serde_json::value::RawValue>,
    pub app: Option<String>,
    /// Unique id of the event; generated when absent. The same call id
    /// again creates nothing.
    pub call_id: Option<String>,
    /// Each endpoint gets the events of one key one at a time, in the
    /// order they were published; endpoints apart from each other.
    #[schema(example = "order-1042")]
    pub ordering_key: Option<String>,
    /// With `ordering_key`: `block` (default) holds the key's later events
    /// when one fails for good, until an operator re-sends or cancels it;
    /// `skip` goes on with the next.
    pub on_failure: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedView {
    pub call_id: String,
    /// One task per endpoint, in endpoint-name order.
    pub task_ids: Vec<String>,
    /// Whether this call created the tasks (false: the call id was seen before).
    pub created: bool,
    /// Set when no enabled endpoint wants this event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A synchronous call to one endpoint, before an event happens.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeEndpointRequest {
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: Box<serde_json::value::RawValue>,
    pub app: Option<String>,
    /// Default 2000.
    pub timeout_ms: Option<u32>,
    /// On failure answer 502 instead of the fail-open fallback.
    pub fail_closed: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvokeView {
    /// `answered` (status below 500) or `fallback` (timeout, connection
    /// error or 5xx: proceed as if allowed).
    pub outcome: &'static str,
    pub status: Option<u16>,
    /// The endpoint's answer: JSON when it parses, else a string; `null`
    /// with a fallback.
    pub body: serde_json::Value,
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BreakerList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<ReceiverStatus>,
}
