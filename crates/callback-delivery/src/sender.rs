//! Sends one attempt over HTTP and describes what happened.

use crate::{DeliveryError, DeliveryOutcome};
use callback_core::{
    dingtalk_signed_url, standard_signature, ClaimedTask, Invoke, InvokeOutcome, InvokeRequest,
    Signing, TargetUrl, TaskSpec,
};
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub connect_timeout: Duration,
    /// Response bytes read to check an expectation.
    pub read_limit: usize,
    /// Response bytes kept in the attempt record.
    pub record_limit: usize,
    pub user_agent: String,
}

/// One shared HTTP client: keep-alive pools per host, no redirects (a 3xx
/// is an answer, not a success), rustls.
#[derive(Clone)]
pub struct HttpSender {
    client: reqwest::Client,
    config: SenderConfig,
}

impl HttpSender {
    pub fn new(config: SenderConfig) -> Result<Self, DeliveryError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.user_agent.clone())
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(DeliveryError::Client)?;
        Ok(Self { client, config })
    }

    /// Sends one attempt; with a secret, signed with the Standard Webhooks
    /// headers (the timestamp is the send time, so each attempt is fresh).
    pub async fn send(&self, claim: &ClaimedTask, signing: Option<&Signing>) -> DeliveryOutcome {
        let started_at = Utc::now();
        let clock = Instant::now();
        let spec = &claim.task.spec;
        let result = self.exchange(claim, spec, signing).await;
        let duration = clock.elapsed();
        match result {
            Ok((status, retry_after, body)) => {
                let verdict = spec.expect.check(status, &body);
                let head = body[..body.len().min(self.config.record_limit)].to_vec();
                DeliveryOutcome {
                    started_at,
                    duration,
                    status_code: Some(status),
                    body_head: Some(head),
                    success: verdict.is_ok(),
                    error: verdict.err(),
                    retry_after,
                }
            }
            Err(Failure { status, error }) => DeliveryOutcome {
                started_at,
                duration,
                status_code: status,
                body_head: None,
                success: false,
                error: Some(error),
                retry_after: None,
            },
        }
    }

    async fn exchange(
        &self,
        claim: &ClaimedTask,
        spec: &TaskSpec,
        signing: Option<&Signing>,
    ) -> Result<(u16, Option<Duration>, Vec<u8>), Failure> {
        let mut url = signed_url(&spec.url, signing);
        if !spec.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &spec.query.0 {
                pairs.append_pair(name, value);
            }
        }
        let method = match spec.method {
            callback_core::Method::Get => reqwest::Method::GET,
            callback_core::Method::Post => reqwest::Method::POST,
            callback_core::Method::Put => reqwest::Method::PUT,
            callback_core::Method::Patch => reqwest::Method::PATCH,
            callback_core::Method::Delete => reqwest::Method::DELETE,
        };
        let timeout = Duration::from_millis(u64::from(spec.timeout_ms));
        let mut request = self
            .client
            .request(method, url)
            .timeout(timeout)
            .header("X-Callback-Task-Id", claim.task.id.to_string())
            .header("X-Callback-Attempt", claim.attempt_number.to_string());
        for (name, value) in spec.headers.iter() {
            if !name.eq_ignore_ascii_case("content-type") {
                request = request.header(name, value);
            }
        }
        if let Some(Signing::Standard(secret)) = signing {
            let body = spec.body.as_ref().map_or(&[][..], |b| &b.bytes[..]);
            request = sign(request, secret, &claim.task.id.to_string(), body);
        }
        if let Some(body) = &spec.body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, body.content_type.as_str())
                .body(body.bytes.clone());
        }
        let mut response = request.send().await.map_err(|e| Failure {
            status: None,
            error: describe(&e, timeout),
        })?;
        let status = response.status().as_u16();
        let retry_after = if status == 429 || status == 503 {
            response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, Utc::now()))
        } else {
            None
        };
        let body = read_limited(&mut response, self.config.read_limit, timeout)
            .await
            .map_err(|error| Failure {
                status: Some(status),
                error,
            })?;
        Ok((status, retry_after, body))
    }
}

/// The URL to call: a DingTalk robot's carries its signature.
fn signed_url(url: &TargetUrl, signing: Option<&Signing>) -> url::Url {
    match signing {
        Some(Signing::Dingtalk(secret)) => {
            dingtalk_signed_url(url, secret, Utc::now().timestamp_millis())
        }
        _ => url.as_url().clone(),
    }
}

/// Adds the Standard Webhooks headers.
fn sign(
    request: reqwest::RequestBuilder,
    secret: &callback_core::SigningSecret,
    id: &str,
    body: &[u8],
) -> reqwest::RequestBuilder {
    let timestamp = Utc::now().timestamp();
    request
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            standard_signature(secret, id, timestamp, body),
        )
}

#[async_trait::async_trait]
impl Invoke for HttpSender {
    async fn invoke(&self, call: InvokeRequest) -> InvokeOutcome {
        let clock = Instant::now();
        let mut request = self
            .client
            .post(signed_url(&call.url, call.signing.as_ref().map(|(_, s)| s)))
            .timeout(call.timeout);
        for (name, value) in call.headers.iter() {
            if !name.eq_ignore_ascii_case("content-type") {
                request = request.header(name, value);
            }
        }
        if let Some((id, Signing::Standard(secret))) = &call.signing {
            request = sign(request, secret, id, &call.body.bytes);
        }
        request = request
            .header(
                reqwest::header::CONTENT_TYPE,
                call.body.content_type.as_str(),
            )
            .body(call.body.bytes);
        let elapsed =
            |clock: Instant| u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return InvokeOutcome::Failed {
                    status: None,
                    error: describe(&e, call.timeout),
                    duration_ms: elapsed(clock),
                }
            }
        };
        let mut response = response;
        let status = response.status().as_u16();
        let body = match read_limited(&mut response, self.config.read_limit, call.timeout).await {
            Ok(body) => body,
            Err(error) => {
                return InvokeOutcome::Failed {
                    status: Some(status),
                    error,
                    duration_ms: elapsed(clock),
                }
            }
        };
        if status >= 500 {
            return InvokeOutcome::Failed {
                status: Some(status),
                error: format!("the endpoint answered {status}"),
                duration_ms: elapsed(clock),
            };
        }
        InvokeOutcome::Answered {
            status,
            body,
            duration_ms: elapsed(clock),
        }
    }
}

/// Reads at most `limit` bytes of the body: enough to judge and record it,
/// never an unbounded amount.
async fn read_limited(
    response: &mut reqwest::Response,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                return Err(format!(
                    "reading the response failed: {}",
                    describe(&e, timeout)
                ))
            }
        }
    }
    body.truncate(limit);
    Ok(body)
}

struct Failure {
    status: Option<u16>,
    error: String,
}

/// Says in words why a request failed, naming the root cause the OS gave
/// (e.g. "connection refused") rather than reqwest's outer wrapper.
fn describe(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!("timeout after {} ms", timeout.as_millis());
    }
    let mut root: &dyn std::error::Error = err;
    while let Some(next) = root.source() {
        root = next;
    }
    let cause = root.to_string();
    if err.is_connect() {
        if cause.to_ascii_lowercase().contains("connection refused") {
            "connection refused".into()
        } else {
            format!("connection failed: {cause}")
        }
    } else {
        format!("request failed: {cause}")
    }
}

/// `Retry-After` is either delay seconds or an HTTP date.
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:05:00 GMT", now),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now),
            None
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
