//! The connection to one server: base URL, token, and how calls are
//! retried.

use crate::error::Error;
use crate::ops::Op;
use crate::types::Problem;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How calls that found the server unavailable are tried again.
///
/// A call is tried again when nothing can have happened on the server: no
/// connection, `503` (the store is down, nothing was stored) or `429` (a
/// rate limit, nothing was stored). A call that is safe to repeat (reads,
/// deletes, and submits, which carry an idempotency key) is also tried
/// again when the exchange broke off after the request went out.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// No try starts later than this after the first.
    pub deadline: Duration,
    /// The first pause; each next one doubles, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(30),
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// One try, no retries.
    pub fn none() -> Self {
        Self {
            deadline: Duration::ZERO,
            ..Self::default()
        }
    }
}

/// A client of one callback-center server.
///
/// ```no_run
/// # async fn run() -> Result<(), callback_client::Error> {
/// use callback_client::{Client, NewTask};
/// let client = Client::new("http://127.0.0.1:8080", "cbk_...")?;
/// let submitted = client
///     .submit(&NewTask::post("https://shop.example/paid").json(&serde_json::json!({"order": 42})))
///     .await?;
/// let task = client
///     .wait_for(&submitted.task.task_id, &["succeeded", "failed"], std::time::Duration::from_secs(60))
///     .await?;
/// println!("{} after {} attempt(s)", task.status, task.attempts_made);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// For streams, which last as long as they are read: no overall timeout.
    streams: reqwest::Client,
    base: String,
    token: Option<String>,
    retry: RetryPolicy,
}

/// Builds a [`Client`] with other than the defaults.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base: String,
    token: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
}

impl ClientBuilder {
    /// The API key (`cbk_...`) or the admin token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// For one try of one call (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let base = self.base.trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&base)
            .map_err(|e| Error::Config(format!("the server URL {base:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "the server URL must be http:// or https://, not {base:?}"
            )));
        }
        let http = |timeout: Option<Duration>| {
            let mut builder = reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .user_agent(concat!("callback-client/", env!("CARGO_PKG_VERSION")));
            if let Some(timeout) = timeout {
                builder = builder.timeout(timeout);
            }
            builder
                .build()
                .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))
        };
        Ok(Client {
            http: http(Some(self.timeout))?,
            streams: http(None)?,
            base,
            token: self.token,
            retry: self.retry,
        })
    }
}

/// Whether a call may be sent again after its request went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Reads, deletes, and writes that carry an idempotency key.
    Safe,
    /// Only when nothing can have reached the server.
    Unsafe,
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8080`)
    /// with an API key or the admin token, and the default retries.
    pub fn new(base_url: &str, token: impl Into<String>) -> Result<Self, Error> {
        Self::builder(base_url).token(token).build()
    }

    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder {
            base: base_url.to_string(),
            token: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Opens a stream (`GET` of `op`), failing like any call when the
    /// server refuses it.
    pub(crate) async fn open_stream(
        &self,
        op: Op,
        query: &(dyn ErasedQuery + Sync),
    ) -> Result<reqwest::Response, Error> {
        let mut request = query.add_to(self.streams.get(format!("{}{}", self.base, op.path)));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(Error::Transport)?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(Error::Api {
                problem: Box::new(read_problem(response).await),
            })
        }
    }

    /// Calls `op` and reads its JSON answer; `()` for answers without a
    /// body. Errors come back as [`Error::Api`] with the server's problem.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        op: Op,
        params: &[&str],
        query: Option<&(dyn ErasedQuery + Sync)>,
        body: Option<&(dyn ErasedBody + Sync)>,
        repeat: Repeat,
    ) -> Result<(u16, T), Error> {
        let body = match body {
            Some(body) => Some(body.to_json().map_err(|e| Error::Decode {
                status: 0,
                detail: format!("cannot write the request: {e}"),
            })?),
            None => None,
        };
        let url = format!("{}{}", self.base, op.path_with(params));
        let response = self.send(op, &url, query, body, repeat).await?;
        read_answer(response).await
    }

    async fn send(
        &self,
        op: Op,
        url: &str,
        query: Option<&(dyn ErasedQuery + Sync)>,
        body: Option<Vec<u8>>,
        repeat: Repeat,
    ) -> Result<reqwest::Response, Error> {
        let method = reqwest::Method::from_bytes(op.method.as_bytes())
            .map_err(|e| Error::Config(e.to_string()))?;
        let started = Instant::now();
        let mut pause = self.retry.first_delay;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let mut request = self.http.request(method.clone(), url);
            if let Some(query) = query {
                request = query.add_to(request);
            }
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .body(body.clone());
            }
            let (failure, wait) = match request.send().await {
                Ok(response) if matches!(response.status().as_u16(), 429 | 503) => {
                    let wait = retry_after(&response).unwrap_or(pause);
                    (
                        Error::Api {
                            problem: Box::new(read_problem(response).await),
                        },
                        wait,
                    )
                }
                Ok(response) => return Ok(response),
                Err(err) if err.is_connect() || (repeat == Repeat::Safe && !err.is_builder()) => {
                    (Error::Transport(err), pause)
                }
                Err(err) => return Err(Error::Transport(err)),
            };
            let elapsed = started.elapsed();
            if elapsed + wait > self.retry.deadline {
                return Err(if attempts == 1 {
                    failure
                } else {
                    Error::GaveUp {
                        attempts,
                        elapsed,
                        last: Box::new(failure),
                    }
                });
            }
            // A little jitter, so that many clients do not come back at once.
            let jitter = wait.mul_f64(fastrand::f64() * 0.2);
            tokio::time::sleep(wait + jitter).await;
            pause = (pause * 2).min(self.retry.max_delay);
        }
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

async fn read_problem(response: reqwest::Response) -> Problem {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_default();
    serde_json::from_slice::<Problem>(&bytes).unwrap_or_else(|_| Problem {
        kind: "about:blank".into(),
        title: "Error".into(),
        status,
        detail: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
        code: format!("http_{status}"),
        errors: Vec::new(),
    })
}

async fn read_answer<T: DeserializeOwned>(response: reqwest::Response) -> Result<(u16, T), Error> {
    let status = response.status().as_u16();
    if !response.status().is_success() {
        return Err(Error::Api {
            problem: Box::new(read_problem(response).await),
        });
    }
    let bytes = response.bytes().await.map_err(Error::Transport)?;
    // An answer without a body reads as JSON null, which `()` accepts.
    let bytes = if bytes.is_empty() {
        &b"null"[..]
    } else {
        &bytes[..]
    };
    serde_json::from_slice(bytes)
        .map(|answer| (status, answer))
        .map_err(|e| Error::Decode {
            status,
            detail: e.to_string(),
        })
}

/// A query string, whatever its type: the operations take filters of
/// several types through one path.
pub(crate) trait ErasedQuery {
    fn add_to(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder;
}

impl<T: Serialize> ErasedQuery for T {
    fn add_to(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.query(self)
    }
}

/// A JSON body, whatever its type.
pub(crate) trait ErasedBody {
    fn to_json(&self) -> Result<Vec<u8>, serde_json::Error>;
}

impl<T: Serialize> ErasedBody for T {
    fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}
