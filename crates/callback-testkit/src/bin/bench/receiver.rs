//! The counting receiver: answers 200 at once, counts each task id once
//! and notes how late a probe task arrived.

use crate::report::percentile;
use crate::DUE_HEADER;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use callback_core::lock;
use callback_testkit::start_tls_front;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The fast receiver: answers 200 at once and counts each task id; for a
/// task carrying its due time, notes how late it arrived.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) arrived: Mutex<Arrivals>,
    pub(crate) lateness_ms: Mutex<Vec<i64>>,
    /// Arrivals that were not their task's first attempt: an earlier one
    /// failed (a refused connection, a timeout), and a phase that has any
    /// measured retry delays as well as speed.
    pub(crate) retries: AtomicUsize,
}

/// What the receiver counts of every request, under one lock.
#[derive(Default)]
pub(crate) struct Arrivals {
    /// Requests per task id.
    pub(crate) by_task: HashMap<u128, u32>,
    pub(crate) last: Option<Instant>,
    /// When each task arrived, for the shape of a drain.
    pub(crate) at: Vec<Instant>,
}

/// A task id as the receiver counts it: the UUID's 128 bits, so that
/// counting a request allocates nothing.
pub(crate) fn id_key(id: &str) -> Option<u128> {
    uuid::Uuid::parse_str(id).ok().map(|u| u.as_u128())
}

pub(crate) struct Counter {
    pub(crate) port: u16,
    /// Where deliveries go when receivers speak https.
    pub(crate) tls_port: Option<u16>,
    pub(crate) receivers: u8,
    pub(crate) counts: Arc<Counts>,
}

pub(crate) async fn count(
    req: HttpRequest,
    _body: web::Bytes,
    counts: web::Data<Counts>,
) -> HttpResponse {
    let now = Instant::now();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(due_ms) = header(DUE_HEADER).and_then(|v| v.parse::<i64>().ok()) {
        let late = chrono::Utc::now().timestamp_millis() - due_ms;
        lock(&counts.lateness_ms).push(late);
    }
    if header("x-callback-attempt").is_some_and(|n| n != "1") {
        counts.retries.fetch_add(1, Ordering::Relaxed);
    }
    let id = header("x-callback-task-id").and_then(id_key);
    let mut arrived = lock(&counts.arrived);
    if let Some(id) = id {
        *arrived.by_task.entry(id).or_default() += 1;
    }
    arrived.last = Some(now);
    arrived.at.push(now);
    HttpResponse::Ok().body("ok")
}

impl Counter {
    pub(crate) async fn start(receivers: u8, tls: bool) -> anyhow::Result<Self> {
        let counts = Arc::new(Counts::default());
        let shared = web::Data::from(counts.clone());
        let first = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = first.local_addr()?.port();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(count))
        })
        .listen(first)?;
        for host in 2..=receivers {
            let address = format!("127.0.0.{host}:{port}");
            server = server.listen(std::net::TcpListener::bind(address)?)?;
        }
        // actix's own timers answer 408 or close a connection when a worker
        // is starved for seconds (actix-web#1269), as the test receiver
        // found: the attempt fails and the task arrives only on its retry.
        // A full run once took 134 s end to end for 50,000 tasks, none
        // missing, most likely so (that run kept no log to tell).
        let server = server
            .workers(2)
            .client_request_timeout(Duration::ZERO)
            .keep_alive(actix_web::http::KeepAlive::Os)
            .disable_signals()
            .run();
        tokio::spawn(server);
        let mut tls_port = None;
        if tls {
            // One port on every address, as the plain receivers have.
            let mut bind = "127.0.0.1:0".to_string();
            for host in 1..=receivers {
                let plain = format!("127.0.0.{host}:{port}").parse()?;
                let (listening, _) = start_tls_front(&bind, plain).await?;
                tls_port = Some(listening);
                bind = format!("127.0.0.{}:{listening}", host + 1);
            }
        }
        Ok(Self {
            port,
            tls_port,
            receivers,
            counts,
        })
    }

    /// The plain HTTP URL of `path` on the first receiver.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The URL of `path` on each receiver, as deliveries reach it.
    pub(crate) fn urls(&self, path: &str) -> Vec<String> {
        let (scheme, port) = match self.tls_port {
            Some(tls_port) => ("https", tls_port),
            None => ("http", self.port),
        };
        (1..=self.receivers)
            .map(|host| format!("{scheme}://127.0.0.{host}:{port}{path}"))
            .collect()
    }

    /// Seconds from `start` until the first, the middle, the 99th
    /// percentile and the last arrival since then.
    pub(crate) fn arrival_profile(&self, start: Instant) -> String {
        let mut since: Vec<Duration> = lock(&self.counts.arrived)
            .at
            .iter()
            .filter_map(|t| t.checked_duration_since(start))
            .collect();
        let mut at = |p: f64| percentile(&mut since, p).map_or(f64::NAN, |d| d.as_secs_f64());
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2}",
            at(0.0),
            at(0.5),
            at(0.99),
            at(1.0)
        )
    }

    /// Arrivals that were retries since the last call.
    pub(crate) fn take_retries(&self) -> usize {
        self.counts.retries.swap(0, Ordering::Relaxed)
    }

    /// Waits until every id in `ids` has arrived; returns when the last
    /// one did, and the missing and duplicated counts.
    pub(crate) async fn delivered(
        &self,
        ids: &[u128],
        timeout: Duration,
    ) -> (Instant, usize, usize) {
        let deadline = Instant::now() + timeout;
        loop {
            let (got, duplicates, last) = {
                let arrived = lock(&self.counts.arrived);
                let (got, dup) =
                    ids.iter()
                        .fold((0, 0), |(got, dup), id| match arrived.by_task.get(id) {
                            Some(&n) => (got + 1, dup + n.saturating_sub(1) as usize),
                            None => (got, dup),
                        });
                (got, dup, arrived.last)
            };
            if got == ids.len() || Instant::now() > deadline {
                let last = last.unwrap_or_else(Instant::now);
                return (last, ids.len() - got, duplicates);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
