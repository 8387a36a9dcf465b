//! Sends one attempt over HTTP and describes what happened.

use crate::resolver::PolicyResolver;
use crate::{DeliveryError, DeliveryOutcome};
use callback_core::{
    dingtalk_signed_url, standard_signature, ClaimedTask, Invoke, InvokeOutcome, InvokeRequest,
    OutboundPolicy, Signing, TargetUrl, TaskSpec, TraceParent,
};
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::{pem::PemObject, CertificateDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub connect_timeout: Duration,
    /// Response bytes read to check an expectation.
    pub read_limit: usize,
    /// Response bytes kept in the attempt record.
    pub record_limit: usize,
    pub user_agent: String,
    /// What may be called: literal addresses are checked before each
    /// call, resolved ones as the direct client connects.
    pub outbound: Arc<OutboundPolicy>,
    /// PEM certificates trusted beside the built-in roots (Mozilla's, as
    /// webpki-roots carries them), for receivers behind a private CA.
    pub extra_ca_file: Option<PathBuf>,
    /// Redirects followed per call; 0 (the default) follows none, and a
    /// 3xx is the receiver's answer. Each hop passes the outbound policy.
    pub max_redirects: u8,
}

/// The HTTP client of deliveries and synchronous calls: keep-alive pools
/// per host, no redirects (a 3xx is an answer, not a success), rustls with
/// HTTP/2 where the receiver offers it.
///
/// A call that no proxy setting takes goes straight through hyper's pooled
/// client; a proxied one (`HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY`) goes
/// through reqwest. Both trust the same roots with the same TLS settings,
/// send the same request and report the same errors. The direct path
/// exists for speed: reqwest's layers above the same hyper client cost
/// about a fifth of the server's CPU per delivery (docs/performance.md).
#[derive(Clone)]
pub struct HttpSender {
    client: reqwest::Client,
    direct: DirectClient,
    /// The same proxy rules reqwest reads from the environment, so that
    /// the direct path never skips a proxy reqwest would use.
    proxies: std::sync::Arc<Matcher>,
    /// The direct path's `User-Agent`, checked once.
    user_agent: HeaderValue,
    config: SenderConfig,
}

type DirectClient =
    hyper_util::client::legacy::Client<HttpsConnector<HttpConnector<PolicyResolver>>, Full<Bytes>>;

/// One outgoing call, whichever client sends it.
#[derive(Clone)]
struct Outgoing {
    method: reqwest::Method,
    url: url::Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    timeout: Duration,
}

/// What came back: status, `Retry-After` on a 429 or 503, and at most
/// `read_limit` bytes of the body.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

impl HttpSender {
    pub fn new(config: SenderConfig) -> Result<Self, DeliveryError> {
        let tls = tls_config(config.extra_ca_file.as_deref())?;
        // hyper-rustls sets the offered protocols itself and wants none set
        // (it panics otherwise); reqwest takes its configuration as it is.
        let mut reqwest_tls = tls.clone();
        reqwest_tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(reqwest_tls)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.user_agent.clone())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()
            .map_err(DeliveryError::Client)?;
        // As reqwest sets up its own hyper client.
        let mut tcp =
            HttpConnector::new_with_resolver(PolicyResolver::new(config.outbound.clone()));
        tcp.set_connect_timeout(Some(config.connect_timeout));
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let direct = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        let user_agent =
            HeaderValue::from_str(&config.user_agent).map_err(DeliveryError::UserAgent)?;
        Ok(Self {
            client,
            direct,
            proxies: std::sync::Arc::new(Matcher::from_system()),
            user_agent,
            config,
        })
    }

    /// Sends one attempt; with a secret, signed with the Standard Webhooks
    /// headers (the timestamp is the send time, so each attempt is fresh).
    pub async fn send(&self, claim: &ClaimedTask, signing: Option<&Signing>) -> DeliveryOutcome {
        let started_at = Utc::now();
        let clock = Instant::now();
        let spec = &claim.task.spec;
        // Each attempt is a span of the submitter's trace, unless the task
        // sets its own traceparent header.
        let span = spec
            .traceparent
            .filter(|_| spec.headers.get("traceparent").is_none())
            .map(|parent| parent.child(fastrand::u64(1..)));
        let result = match self.attempt_request(claim, spec, signing, span) {
            Ok(outgoing) => self.call(outgoing).await,
            Err(failure) => Err(failure),
        };
        let duration = clock.elapsed();
        match result {
            Ok(Answer {
                status,
                retry_after,
                body,
            }) => {
                let verdict = spec.expect.check(status, &body);
                let head = body[..body.len().min(self.config.record_limit)].to_vec();
                DeliveryOutcome {
                    started_at,
                    duration,
                    span,
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
                span,
                status_code: status,
                body_head: None,
                success: false,
                error: Some(error),
                retry_after: None,
            },
        }
    }

    fn attempt_request(
        &self,
        claim: &ClaimedTask,
        spec: &TaskSpec,
        signing: Option<&Signing>,
        span: Option<TraceParent>,
    ) -> Result<Outgoing, Failure> {
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
        let task_id = claim.task.id.to_string();
        let mut headers = HeaderMap::new();
        add_header(&mut headers, "X-Callback-Task-Id", &task_id)?;
        add_header(
            &mut headers,
            "X-Callback-Attempt",
            &claim.attempt_number.to_string(),
        )?;
        let standard = match signing {
            Some(Signing::Standard(secret)) => Some((task_id.as_str(), secret)),
            _ => None,
        };
        let body = add_content(&mut headers, &spec.headers, spec.body.as_ref(), standard)?;
        if let Some(span) = span {
            add_header(&mut headers, "traceparent", &span.to_string())?;
        }
        Ok(Outgoing {
            method,
            url,
            headers,
            body,
            timeout: Duration::from_millis(u64::from(spec.timeout_ms)),
        })
    }

    /// Sends a call through the direct client when it may, else reqwest,
    /// follows redirects when allowed to, and reads the answer. One
    /// deadline, the call's timeout, covers the whole exchange.
    async fn call(&self, mut outgoing: Outgoing) -> Result<Answer, Failure> {
        let timeout = outgoing.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut hops = 0u8;
        loop {
            if let Err(refused) = self.config.outbound.check_literal(&outgoing.url) {
                let hop = if hops > 0 {
                    format!("redirect {hops}: ")
                } else {
                    String::new()
                };
                return Err(Failure {
                    status: None,
                    error: format!("url_not_allowed: {hop}{refused}"),
                });
            }
            // A copy for the next hop, only when redirects may be followed:
            // the usual call pays nothing for them.
            let previous = (self.config.max_redirects > hops).then(|| outgoing.clone());
            match direct_uri(&outgoing.url, &self.proxies) {
                Some(uri) => {
                    let request = self.direct_request(uri, outgoing);
                    let sent =
                        tokio::time::timeout_at(deadline, self.direct.request(request)).await;
                    let response = answered(sent, timeout, |e| describe_cause(e, e.is_connect()))?;
                    match redirect(response.status().as_u16(), response.headers(), previous)? {
                        Some(next) => outgoing = next,
                        None => return self.read_answer(response, deadline, timeout).await,
                    }
                }
                None => {
                    let sent =
                        tokio::time::timeout_at(deadline, self.reqwest_request(outgoing).send())
                            .await;
                    let response = answered(sent, timeout, |e| describe_cause(e, e.is_connect()))?;
                    match redirect(response.status().as_u16(), response.headers(), previous)? {
                        Some(next) => outgoing = next,
                        None => {
                            let response = hyper::Response::from(response);
                            return self.read_answer(response, deadline, timeout).await;
                        }
                    }
                }
            }
            hops += 1;
        }
    }

    fn direct_request(&self, uri: hyper::Uri, outgoing: Outgoing) -> hyper::Request<Full<Bytes>> {
        let body = Bytes::from(outgoing.body.unwrap_or_default());
        let mut request = hyper::Request::new(Full::new(body));
        *request.method_mut() = outgoing.method;
        *request.uri_mut() = uri;
        *request.headers_mut() = outgoing.headers;
        // reqwest's defaults, so that a receiver sees the same request.
        let defaults = request.headers_mut();
        if !defaults.contains_key(reqwest::header::ACCEPT) {
            defaults.insert(reqwest::header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        if !defaults.contains_key(reqwest::header::USER_AGENT) {
            defaults.insert(reqwest::header::USER_AGENT, self.user_agent.clone());
        }
        request
    }

    fn reqwest_request(&self, outgoing: Outgoing) -> reqwest::RequestBuilder {
        let request = self
            .client
            .request(outgoing.method, outgoing.url)
            .headers(outgoing.headers);
        match outgoing.body {
            Some(body) => request.body(body),
            None => request,
        }
    }

    /// Status, `Retry-After` and at most `read_limit` bytes of the body,
    /// read before `deadline`.
    async fn read_answer<B>(
        &self,
        response: hyper::Response<B>,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<Answer, Failure>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + 'static,
    {
        let status = response.status().as_u16();
        let retry_after = retry_after(status, response.headers());
        let mut stream = std::pin::pin!(response.into_body());
        let mut body = Vec::new();
        while body.len() < self.config.read_limit {
            match tokio::time::timeout_at(deadline, stream.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        body.extend_from_slice(data);
                    }
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(unreadable(status, &describe_cause(&e, false))),
                Err(_) => return Err(unreadable(status, &timed_out(timeout))),
            }
        }
        body.truncate(self.config.read_limit);
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

/// The next hop of a redirect, when `previous` (the call just made) may be
/// followed: `None` when the answer is not a redirect or following is off
/// or used up, and then the 3xx is the answer. As browsers and reqwest do,
/// a 303 (and a 301 or 302 after a POST) becomes a GET without body, and
/// credentials are not carried to another origin.
fn redirect(
    status: u16,
    headers: &HeaderMap,
    previous: Option<Outgoing>,
) -> Result<Option<Outgoing>, Failure> {
    let (Some(mut next), true) = (previous, matches!(status, 301 | 302 | 303 | 307 | 308)) else {
        return Ok(None);
    };
    let Some(location) = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let refused = |why: String| Failure {
        status: Some(status),
        error: format!("url_not_allowed: redirect to {location}: {why}"),
    };
    let url = next
        .url
        .join(location)
        .map_err(|e| refused(format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refused("only http and https are called".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("URLs with user info are refused".into()));
    }
    if url.origin() != next.url.origin() {
        for name in [
            reqwest::header::AUTHORIZATION,
            reqwest::header::COOKIE,
            reqwest::header::PROXY_AUTHORIZATION,
        ] {
            next.headers.remove(name);
        }
    }
    if status == 303 || (matches!(status, 301 | 302) && next.method == reqwest::Method::POST) {
        next.method = reqwest::Method::GET;
        next.body = None;
        next.headers.remove(reqwest::header::CONTENT_TYPE);
    }
    next.url = url;
    Ok(Some(next))
}

/// The response of a call sent under a deadline, or why there is none.
fn answered<R, E>(
    sent: Result<Result<R, E>, tokio::time::error::Elapsed>,
    timeout: Duration,
    describe: impl Fn(&E) -> String,
) -> Result<R, Failure> {
    let error = match sent {
        Ok(Ok(response)) => return Ok(response),
        Ok(Err(e)) => describe(&e),
        Err(_) => timed_out(timeout),
    };
    Err(Failure {
        status: None,
        error,
    })
}

fn timed_out(timeout: Duration) -> String {
    format!("timeout after {} ms", timeout.as_millis())
}

/// Idle keep-alive connections are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The URL as hyper takes it, when a call to it may skip reqwest: one
/// that no proxy rule takes.
fn direct_uri(url: &url::Url, proxies: &Matcher) -> Option<hyper::Uri> {
    let uri: hyper::Uri = url.as_str().parse().ok()?;
    proxies.intercept(&uri).is_none().then_some(uri)
}

/// The TLS settings of both clients, as reqwest makes its own: ring,
/// TLS 1.2 and 1.3, the webpki roots, and the certificates of
/// `extra_ca_file`. No protocols offered yet: see `HttpSender::new`.
fn tls_config(extra_ca_file: Option<&Path>) -> Result<rustls::ClientConfig, DeliveryError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra_ca_file {
        let unusable = |why: String| DeliveryError::CaFile {
            path: path.to_path_buf(),
            why,
        };
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| unusable(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| unusable(e.to_string()))?;
        if certificates.is_empty() {
            return Err(unusable("no PEM certificate in it".into()));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|e| unusable(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(DeliveryError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn add_header(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), Failure> {
    let invalid = |e: &dyn std::fmt::Display| Failure {
        status: None,
        error: format!("request failed: header {name}: {e}"),
    };
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(&e))?;
    let value = HeaderValue::from_str(value).map_err(|e| invalid(&e))?;
    headers.append(name, value);
    Ok(())
}

/// Adds the caller's headers (its `Content-Type` gives way to the body's),
/// the Standard Webhooks signature when asked for, and the body's type;
/// returns the body.
fn add_content(
    headers: &mut HeaderMap,
    extra: &callback_core::HeaderList,
    body: Option<&callback_core::Body>,
    standard: Option<(&str, &callback_core::SigningSecret)>,
) -> Result<Option<Vec<u8>>, Failure> {
    for (name, value) in extra.iter() {
        if !name.eq_ignore_ascii_case("content-type") {
            add_header(headers, name, value)?;
        }
    }
    if let Some((id, secret)) = standard {
        let bytes = body.map_or(&[][..], |b| &b.bytes[..]);
        let timestamp = Utc::now().timestamp();
        add_header(headers, "webhook-id", id)?;
        add_header(headers, "webhook-timestamp", &timestamp.to_string())?;
        add_header(
            headers,
            "webhook-signature",
            &standard_signature(secret, id, timestamp, bytes),
        )?;
    }
    Ok(match body {
        Some(body) => {
            add_header(headers, "Content-Type", body.content_type.as_str())?;
            Some(body.bytes.clone())
        }
        None => None,
    })
}

fn retry_after(status: u16, headers: &HeaderMap) -> Option<Duration> {
    if status != 429 && status != 503 {
        return None;
    }
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, Utc::now()))
}

fn unreadable(status: u16, why: &str) -> Failure {
    Failure {
        status: Some(status),
        error: format!("reading the response failed: {why}"),
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

#[async_trait::async_trait]
impl Invoke for HttpSender {
    async fn invoke(&self, call: InvokeRequest) -> InvokeOutcome {
        let clock = Instant::now();
        let elapsed =
            |clock: Instant| u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut headers = HeaderMap::new();
        let standard = match &call.signing {
            Some((id, Signing::Standard(secret))) => Some((id.as_str(), secret)),
            _ => None,
        };
        let outgoing =
            add_content(&mut headers, &call.headers, Some(&call.body), standard).map(|body| {
                Outgoing {
                    method: reqwest::Method::POST,
                    url: signed_url(&call.url, call.signing.as_ref().map(|(_, s)| s)),
                    headers,
                    body,
                    timeout: call.timeout,
                }
            });
        let answer = match outgoing {
            Ok(outgoing) => self.call(outgoing).await,
            Err(failure) => Err(failure),
        };
        match answer {
            Err(Failure { status, error }) => InvokeOutcome::Failed {
                status,
                error,
                duration_ms: elapsed(clock),
            },
            Ok(Answer { status, .. }) if status >= 500 => InvokeOutcome::Failed {
                status: Some(status),
                error: format!("the endpoint answered {status}"),
                duration_ms: elapsed(clock),
            },
            Ok(Answer { status, body, .. }) => InvokeOutcome::Answered {
                status,
                body,
                duration_ms: elapsed(clock),
            },
        }
    }
}

struct Failure {
    status: Option<u16>,
    error: String,
}

/// The words for an error by its root cause, whichever client raised it.
fn describe_cause(err: &(dyn std::error::Error + 'static), is_connect: bool) -> String {
    let mut root: &dyn std::error::Error = err;
    while let Some(next) = root.source() {
        root = next;
    }
    let cause = root.to_string();
    if is_connect {
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
    fn only_calls_that_no_proxy_takes_go_direct() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        let no_proxies = Matcher::builder().build();
        let uri = direct_uri(&url("http://127.0.0.1:8080/a/b?c=1&d=%20"), &no_proxies);
        assert_eq!(
            uri.map(|u| u.to_string()),
            Some("http://127.0.0.1:8080/a/b?c=1&d=%20".to_string())
        );
        assert!(direct_uri(&url("https://example.com/"), &no_proxies).is_some());
        let proxies = Matcher::builder()
            .http("http://proxy.internal:3128")
            .https("http://proxy.internal:3128")
            .no("hooks.internal")
            .build();
        assert!(direct_uri(&url("http://example.com/"), &proxies).is_none());
        assert!(direct_uri(&url("https://example.com/"), &proxies).is_none());
        assert!(direct_uri(&url("http://hooks.internal/x"), &proxies).is_some());
        assert!(direct_uri(&url("https://hooks.internal/x"), &proxies).is_some());
    }

    #[test]
    fn extra_ca_files_that_hold_no_certificate_are_refused() {
        let dir = std::env::temp_dir().join(format!("cbc-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let missing = dir.join("missing.pem");
        for (path, words) in [(&empty, "no PEM certificate"), (&missing, "No such file")] {
            let err = tls_config(Some(path)).expect_err("refused").to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(words), "{err}");
        }
        assert!(tls_config(None).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
