//! The load generator: keep-alive HTTP/1.1 clients driving requests at the
//! server (or straight at the receiver for the loopback ceiling), and the
//! task bodies they send.

use crate::receiver::Counter;
use crate::report::{ms, percentile};
use crate::BEARER;
use actix_web::web;
use callback_core::lock;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests per second straight from the generator to the receiver.
pub(crate) async fn ceiling(receiver: &Counter, requests: usize, clients: usize) -> f64 {
    let Some(target) = Target::of(&receiver.url("/ceiling")) else {
        return 0.0;
    };
    let body = web::Bytes::from_static(b"{\"n\":1}");
    let (elapsed, _) = drive(
        requests,
        clients,
        target,
        move |_| (None, body.clone()),
        |_, status, _| status.is_success(),
    )
    .await;
    requests as f64 / elapsed.as_secs_f64()
}

/// Where the generator sends its requests: one address, one path.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) address: std::net::SocketAddr,
    pub(crate) host: String,
    pub(crate) path: String,
}

impl Target {
    /// `http://host:port/path`, with an IP address for a host.
    pub(crate) fn of(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("http://")?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        Some(Self {
            address: host.parse().ok()?,
            host: host.to_string(),
            path: format!("/{path}"),
        })
    }
}

/// One keep-alive HTTP/1.1 connection to a target (hyper's, with no pool
/// around it), opened again after an exchange fails.
pub(crate) struct Client {
    pub(crate) target: Target,
    pub(crate) connection: Option<hyper::client::conn::http1::SendRequest<Full<web::Bytes>>>,
}

impl Client {
    pub(crate) fn new(target: Target) -> Self {
        Self {
            target,
            connection: None,
        }
    }

    /// POSTs `body` as JSON, with `authorization` when given; the answer's
    /// status and body, or `None` when the exchange failed.
    pub(crate) async fn post(
        &mut self,
        authorization: Option<&'static str>,
        body: web::Bytes,
    ) -> Option<(hyper::StatusCode, web::Bytes)> {
        let mut request = hyper::Request::post(self.target.path.as_str())
            .header(hyper::header::HOST, self.target.host.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(value) = authorization {
            request = request.header(hyper::header::AUTHORIZATION, value);
        }
        let request = request.body(Full::new(body)).ok()?;
        if self.connection.is_none() {
            self.connection = connect(self.target.address).await;
        }
        let sender = self.connection.as_mut()?;
        let answer = async {
            sender.ready().await.ok()?;
            let (parts, body) = sender.send_request(request).await.ok()?.into_parts();
            Some((parts.status, body.collect().await.ok()?.to_bytes()))
        }
        .await;
        if answer.is_none() {
            self.connection = None;
        }
        answer
    }
}

/// Runs `calls` requests to `target` from `clients` concurrent clients,
/// each with a keep-alive connection of its own: request `i` is made of
/// `make(i)` (an authorization value and a body), and counts as done when
/// `done(i, status, answer)` says so. Returns the wall time and every
/// done request's latency in microseconds.
///
/// Each client drives its own HTTP/1.1 connection (hyper's), with no pool
/// between: reqwest's shared pool cost about 47 us of CPU a request, as
/// much as the server's own intake, on the same two cores.
pub(crate) async fn drive<M, D>(
    calls: usize,
    clients: usize,
    target: Target,
    make: M,
    done: D,
) -> (Duration, Vec<u64>)
where
    M: Fn(usize) -> (Option<&'static str>, web::Bytes) + Send + Sync + 'static,
    D: Fn(usize, hyper::StatusCode, &[u8]) -> bool + Send + Sync + 'static,
{
    let (make, done) = (Arc::new(make), Arc::new(done));
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(calls)));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (target, make, done, next, latencies) = (
            target.clone(),
            make.clone(),
            done.clone(),
            next.clone(),
            latencies.clone(),
        );
        workers.spawn(async move {
            let mut mine = Vec::new();
            let mut client = Client::new(target);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= calls {
                    break;
                }
                let t = Instant::now();
                let (authorization, body) = make(i);
                if let Some((status, answer)) = client.post(authorization, body).await {
                    if done(i, status, &answer) {
                        mine.push(t.elapsed().as_micros() as u64);
                    }
                }
            }
            lock(&latencies).extend(mine);
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let latencies = std::mem::take(&mut *lock(&latencies));
    (elapsed, latencies)
}

/// An HTTP/1.1 connection to `address`, ready for requests.
pub(crate) async fn connect(
    address: std::net::SocketAddr,
) -> Option<hyper::client::conn::http1::SendRequest<Full<web::Bytes>>> {
    let stream = tokio::net::TcpStream::connect(address).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

pub(crate) struct Submitter {
    pub(crate) address: String,
    /// Task `i` goes to `targets[i % targets.len()]`.
    pub(crate) targets: Vec<String>,
    /// Every task is this one, with its own `url` and `delay_s`.
    pub(crate) template: Value,
    /// Task `i` carries the ordering key `key-{i % ordering_keys}`; none
    /// when 0.
    pub(crate) ordering_keys: usize,
}

/// Tasks accepted by a submission run, its wall time and its latencies.
pub(crate) struct Submitted {
    pub(crate) ids: Vec<u128>,
    pub(crate) elapsed: Duration,
    pub(crate) latencies_us: Vec<u64>,
}

impl Submitted {
    pub(crate) fn rate(&self) -> f64 {
        self.ids.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn summary(&mut self) -> String {
        format!(
            "{:.0}  {:.1} / {:.1}",
            self.rate(),
            ms(percentile(&mut self.latencies_us, 0.5)),
            ms(percentile(&mut self.latencies_us, 0.99))
        )
    }
}

/// The answer to a submission, as far as the bench reads it.
#[derive(serde::Deserialize)]
pub(crate) struct Accepted {
    pub(crate) task_id: uuid::Uuid,
}

#[derive(serde::Deserialize)]
pub(crate) struct AcceptedBatch {
    pub(crate) tasks: Vec<Accepted>,
}

/// Task bodies, serialized once per receiver and delay and then reused:
/// building and serializing a JSON value for every request, and parsing
/// every answer into one, made the generator cost about as much CPU per
/// task as the server's intake, on the same two cores.
/// A body's receiver, delay and ordering key.
type BodyKey = (usize, Option<u64>, usize);

pub(crate) struct Bodies {
    pub(crate) template: Value,
    pub(crate) targets: Vec<String>,
    pub(crate) ordering_keys: usize,
    pub(crate) made: Mutex<HashMap<BodyKey, web::Bytes>>,
}

impl Bodies {
    pub(crate) fn get(&self, i: usize, delay_s: Option<u64>) -> web::Bytes {
        let target = i % self.targets.len().max(1);
        let ordering_key = i % self.ordering_keys.max(1);
        let key = (target, delay_s, ordering_key);
        if let Some(body) = lock(&self.made).get(&key) {
            return body.clone();
        }
        let mut task = self.template.clone();
        if let Some(url) = self.targets.get(target) {
            task["url"] = json!(url);
        }
        if let Some(delay_s) = delay_s {
            task["delay_s"] = json!(delay_s);
        }
        if self.ordering_keys > 0 {
            task["ordering_key"] = json!(format!("key-{ordering_key}"));
        }
        let body = web::Bytes::from(task.to_string());
        lock(&self.made).insert(key, body.clone());
        body
    }

    /// `{"tasks": [...]}` of tasks `first..last`.
    pub(crate) fn batch(
        &self,
        first: usize,
        last: usize,
        delay_s: &dyn Fn(usize) -> Option<u64>,
    ) -> web::Bytes {
        let mut body = b"{\"tasks\":[".to_vec();
        for i in first..last {
            if i > first {
                body.push(b',');
            }
            body.extend_from_slice(&self.get(i, delay_s(i)));
        }
        body.extend_from_slice(b"]}");
        body.into()
    }
}

impl Submitter {
    /// Submits `count` tasks, one a request, from `clients` clients.
    pub(crate) async fn submit(
        &self,
        count: usize,
        clients: usize,
        delay_s: Option<u64>,
    ) -> Submitted {
        self.submit_in_batches(count, 1, clients, move |_| delay_s)
            .await
    }

    /// Submits `count` tasks, task `i` with the delay `delay_s(i)`,
    /// `per_request` a request (1: the single-task API, else the batch
    /// API), from `clients` clients.
    pub(crate) async fn submit_in_batches(
        &self,
        count: usize,
        per_request: usize,
        clients: usize,
        delay_s: impl Fn(usize) -> Option<u64> + Send + Sync + 'static,
    ) -> Submitted {
        let ids = Arc::new(Mutex::new(Vec::with_capacity(count)));
        let per_request = per_request.max(1);
        let path = if per_request == 1 {
            "/api/v1/tasks"
        } else {
            "/api/v1/tasks/batch"
        };
        let Some(target) = Target::of(&format!("{}{path}", self.address)) else {
            return Submitted {
                ids: Vec::new(),
                elapsed: Duration::ZERO,
                latencies_us: Vec::new(),
            };
        };
        let bodies = Bodies {
            template: self.template.clone(),
            targets: self.targets.clone(),
            ordering_keys: self.ordering_keys,
            made: Mutex::default(),
        };
        let make = move |r: usize| {
            let first = r * per_request;
            let last = (first + per_request).min(count);
            let body = if per_request == 1 {
                bodies.get(first, delay_s(first))
            } else {
                bodies.batch(first, last, &delay_s)
            };
            (Some(BEARER), body)
        };
        let sink = ids.clone();
        let done = move |_: usize, status: hyper::StatusCode, answer: &[u8]| {
            if status != hyper::StatusCode::CREATED {
                return false;
            }
            let accepted: Vec<Accepted> = if per_request == 1 {
                serde_json::from_slice::<Accepted>(answer)
                    .into_iter()
                    .collect()
            } else {
                serde_json::from_slice::<AcceptedBatch>(answer)
                    .map(|b| b.tasks)
                    .unwrap_or_default()
            };
            lock(&sink).extend(accepted.iter().map(|a| a.task_id.as_u128()));
            true
        };
        let requests = count.div_ceil(per_request);
        let (elapsed, latencies_us) = drive(requests, clients, target, make, done).await;
        let ids = std::mem::take(&mut *lock(&ids));
        Submitted {
            ids,
            elapsed,
            latencies_us,
        }
    }
}

/// Sends `count` tasks one at a time over one connection, one every
/// `PACE` (200 a second), each body made by `make` just before it is
/// sent; the ids of those accepted.
pub(crate) async fn paced(
    address: &str,
    count: usize,
    mut make: impl FnMut() -> web::Bytes,
) -> Vec<u128> {
    const PACE: Duration = Duration::from_millis(5);
    let mut ids = Vec::with_capacity(count);
    let Some(mut client) = Target::of(&format!("{address}/api/v1/tasks")).map(Client::new) else {
        return ids;
    };
    let pace = tokio::time::interval(PACE);
    tokio::pin!(pace);
    for _ in 0..count {
        pace.as_mut().tick().await;
        if let Some((_, body)) = client.post(Some(BEARER), make()).await {
            if let Ok(accepted) = serde_json::from_slice::<Accepted>(&body) {
                ids.push(accepted.task_id.as_u128());
            }
        }
    }
    ids
}
