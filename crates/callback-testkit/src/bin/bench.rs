//! `bench`: measures a release `callback-center` on this machine and prints
//! one table per store. It starts the server itself (the SQLite default, or
//! MariaDB and Redis), a counting receiver, and a load generator, and
//! reports:
//!
//! - the loopback ceiling: the generator straight against the receiver;
//! - intake only: tasks/s and p50/p99 latency at 32 and 128 clients, with
//!   tasks due later so that delivery does not compete;
//! - intake through the batch API, 100 tasks a request;
//! - end to end: N tasks accepted, stored, delivered and recorded;
//! - drain: the 128-client intake's tasks come due together and are
//!   delivered by delivery alone;
//! - the CPU a task costs at a steady 200 tasks/s, where nothing groups;
//! - peak RSS after the end-to-end run;
//! - with a million tasks scheduled: peak RSS, and how late tasks that come
//!   due meanwhile arrive.
//!
//! Every delivered task id is counted: a run that lost a task, or delivered
//! one twice, says so and exits 1, whatever its speed.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use callback_testkit::{
    start_tls_front, Backend, ServerProcess, TestDatabase, TestRedis, TEST_CA_FILE,
};
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-admin-token";
const BEARER: &str = "Bearer bench-admin-token";
/// Tasks that must not come due while the bench runs wait this long.
const FAR_DELAY_S: u64 = 86_400;
/// The header a probe task carries its due time in (ms since the epoch).
const DUE_HEADER: &str = "x-bench-due-ms";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Store {
    /// The embedded default: SQLite, in-process delay queue.
    Sqlite,
    /// MariaDB on 127.0.0.1:3306 and Redis on 127.0.0.1:6379.
    Mariadb,
}

#[derive(Parser)]
#[command(about = "Benchmarks a callback-center binary and prints a table")]
struct Cli {
    #[arg(long, default_value = "target/release/callback-center")]
    binary: PathBuf,
    /// Backends to measure (repeatable); both by default.
    #[arg(long = "store", value_enum)]
    stores: Vec<Store>,
    /// Tasks for the end-to-end run.
    #[arg(long, default_value_t = 50_000)]
    tasks: usize,
    /// Tasks per intake measurement; the 128-client run's tasks are then
    /// the backlog that is drained.
    #[arg(long, default_value_t = 20_000)]
    intake_tasks: usize,
    /// Tasks submitted through the batch API, 100 a request.
    #[arg(long, default_value_t = 50_000)]
    batch_tasks: usize,
    /// Receivers the tasks are spread over. Each listens on its own
    /// loopback address (127.0.0.1, 127.0.0.2, ...), so it is its own
    /// receiver to the server, with its own in-flight cap.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=64))]
    receivers: u8,
    /// Tasks kept scheduled for later while probe tasks come due (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    scheduled: usize,
    /// Receivers speak https (TLS in front of each, with a test CA the
    /// server is told to trust); the loopback ceiling stays plain HTTP.
    #[arg(long)]
    tls: bool,
}

struct Row {
    figure: String,
    value: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The fast receiver: answers 200 at once and counts each task id; for a
/// task carrying its due time, notes how late it arrived.
#[derive(Default)]
struct Counts {
    arrived: Mutex<Arrivals>,
    lateness_ms: Mutex<Vec<i64>>,
    /// Arrivals that were not their task's first attempt: an earlier one
    /// failed (a refused connection, a timeout), and a phase that has any
    /// measured retry delays as well as speed.
    retries: AtomicUsize,
}

/// What the receiver counts of every request, under one lock.
#[derive(Default)]
struct Arrivals {
    /// Requests per task id.
    by_task: HashMap<u128, u32>,
    last: Option<Instant>,
    /// When each task arrived, for the shape of a drain.
    at: Vec<Instant>,
}

/// A task id as the receiver counts it: the UUID's 128 bits, so that
/// counting a request allocates nothing.
fn id_key(id: &str) -> Option<u128> {
    uuid::Uuid::parse_str(id).ok().map(|u| u.as_u128())
}

struct Counter {
    port: u16,
    /// Where deliveries go when receivers speak https.
    tls_port: Option<u16>,
    receivers: u8,
    counts: Arc<Counts>,
}

async fn count(req: HttpRequest, _body: web::Bytes, counts: web::Data<Counts>) -> HttpResponse {
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
    async fn start(receivers: u8, tls: bool) -> anyhow::Result<Self> {
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
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The URL of `path` on each receiver, as deliveries reach it.
    fn urls(&self, path: &str) -> Vec<String> {
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
    fn arrival_profile(&self, start: Instant) -> String {
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
    fn take_retries(&self) -> usize {
        self.counts.retries.swap(0, Ordering::Relaxed)
    }

    /// Waits until every id in `ids` has arrived; returns when the last
    /// one did, and the missing and duplicated counts.
    async fn delivered(&self, ids: &[u128], timeout: Duration) -> (Instant, usize, usize) {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(
        cli.binary.exists(),
        "no binary at {} (cargo build --release)",
        cli.binary.display()
    );
    let stores = if cli.stores.is_empty() {
        vec![Store::Sqlite, Store::Mariadb]
    } else {
        cli.stores.clone()
    };
    let receiver = Counter::start(cli.receivers, cli.tls).await?;
    let ceiling = ceiling(&receiver, 20_000, 128).await;
    println!(
        "machine: {} cores; loopback ceiling (generator -> receiver, 128 clients): {:.0} requests/s",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        ceiling
    );
    println!(
        "tasks spread over {} receivers (127.0.0.1 to 127.0.0.{}), {}",
        cli.receivers,
        cli.receivers,
        if cli.tls { "https" } else { "http" }
    );
    let mut failed = false;
    for store in stores {
        let (rows, lost) = measure(&cli, store, &receiver).await?;
        failed |= lost;
        println!("\n{:?}", store);
        println!("{:<58} {:>20}", "figure", "value");
        for row in rows {
            println!("{:<58} {:>20}", row.figure, row.value);
        }
    }
    anyhow::ensure!(!failed, "a run lost or duplicated tasks");
    Ok(())
}

/// Requests per second straight from the generator to the receiver.
async fn ceiling(receiver: &Counter, requests: usize, clients: usize) -> f64 {
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
struct Target {
    address: std::net::SocketAddr,
    host: String,
    path: String,
}

impl Target {
    /// `http://host:port/path`, with an IP address for a host.
    fn of(url: &str) -> Option<Self> {
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
struct Client {
    target: Target,
    connection: Option<hyper::client::conn::http1::SendRequest<Full<web::Bytes>>>,
}

impl Client {
    fn new(target: Target) -> Self {
        Self {
            target,
            connection: None,
        }
    }

    /// POSTs `body` as JSON, with `authorization` when given; the answer's
    /// status and body, or `None` when the exchange failed.
    async fn post(
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
async fn drive<M, D>(
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
async fn connect(
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

/// The `p` quantile of `values`, sorted or not.
fn percentile<T: Copy + Ord>(values: &mut [T], p: f64) -> Option<T> {
    values.sort_unstable();
    let last = values.len().checked_sub(1)?;
    Some(values[((last as f64) * p).round() as usize])
}

fn ms(us: Option<u64>) -> f64 {
    us.map_or(0.0, |us| us as f64 / 1000.0)
}

/// Peak resident memory of a process, in MiB (Linux).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// CPU time used so far (user + system) by the server, the database,
/// Redis and the bench itself (generator and receiver). Throughput on a
/// shared 2-core machine swings with whatever else runs; CPU per task
/// does much less, so it shows what a change did.
#[derive(Clone, Copy)]
struct CpuTimes {
    seconds: [f64; 4],
}

/// The processes whose CPU `CpuTimes` counts.
struct CpuMeter {
    pids: [Vec<u32>; 4],
}

impl CpuMeter {
    /// The server, the first process called `database`, every process
    /// called `redis-server`, and this one.
    fn new(server: u32, database: &str) -> Self {
        Self {
            pids: [
                vec![server],
                pids_named(database).into_iter().take(1).collect(),
                pids_named("redis-server"),
                vec![std::process::id()],
            ],
        }
    }

    fn now(&self) -> CpuTimes {
        CpuTimes {
            seconds: self
                .pids
                .each_ref()
                .map(|pids| pids.iter().filter_map(|&pid| cpu_seconds(pid)).sum()),
        }
    }

    /// CPU microseconds per task since `before`: server / database / redis
    /// / bench.
    fn per_task(&self, before: CpuTimes, tasks: usize) -> String {
        let now = self.now();
        let us: Vec<String> = (0..4)
            .map(|i| {
                let spent = now.seconds[i] - before.seconds[i];
                format!("{:.0}", spent * 1e6 / tasks.max(1) as f64)
            })
            .collect();
        us.join(" / ")
    }
}

/// Ids of the processes whose command name is `name` (Linux).
fn pids_named(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .collect()
}

/// User plus system CPU seconds a process has used (Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces, closed by ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // The kernel counts in clock ticks, 100 a second on Linux.
    Some((utime + stime) / 100.0)
}

struct Submitter {
    address: String,
    /// Task `i` goes to `targets[i % targets.len()]`.
    targets: Vec<String>,
    /// Every task is this one, with its own `url` and `delay_s`.
    template: Value,
}

/// Tasks accepted by a submission run, its wall time and its latencies.
struct Submitted {
    ids: Vec<u128>,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Submitted {
    fn rate(&self) -> f64 {
        self.ids.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn summary(&mut self) -> String {
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
struct Accepted {
    task_id: uuid::Uuid,
}

#[derive(serde::Deserialize)]
struct AcceptedBatch {
    tasks: Vec<Accepted>,
}

/// Task bodies, serialized once per receiver and delay and then reused:
/// building and serializing a JSON value for every request, and parsing
/// every answer into one, made the generator cost about as much CPU per
/// task as the server's intake, on the same two cores.
struct Bodies {
    template: Value,
    targets: Vec<String>,
    made: Mutex<HashMap<(usize, Option<u64>), web::Bytes>>,
}

impl Bodies {
    fn get(&self, i: usize, delay_s: Option<u64>) -> web::Bytes {
        let target = i % self.targets.len().max(1);
        let key = (target, delay_s);
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
        let body = web::Bytes::from(task.to_string());
        lock(&self.made).insert(key, body.clone());
        body
    }

    /// `{"tasks": [...]}` of tasks `first..last`.
    fn batch(
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
    async fn submit(&self, count: usize, clients: usize, delay_s: Option<u64>) -> Submitted {
        self.submit_in_batches(count, 1, clients, move |_| delay_s)
            .await
    }

    /// Submits `count` tasks, task `i` with the delay `delay_s(i)`,
    /// `per_request` a request (1: the single-task API, else the batch
    /// API), from `clients` clients.
    async fn submit_in_batches(
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

async fn measure(cli: &Cli, store: Store, receiver: &Counter) -> anyhow::Result<(Vec<Row>, bool)> {
    let data_dir = std::env::temp_dir().join(format!("cbc-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&data_dir)?;
    let (db, redis) = match store {
        Store::Sqlite => (TestDatabase::create(Backend::Sqlite).await, None),
        Store::Mariadb => (
            TestDatabase::create(Backend::Mysql).await,
            Some(TestRedis::create().await),
        ),
    };
    let mut env: Vec<(String, String)> = [
        ("CBC__DATABASE__URL", db.url.as_str()),
        ("CBC__AUTH__ADMIN_TOKEN", TOKEN),
        ("CBC__DATA__DIR", &data_dir.display().to_string()),
        ("CBC__LOG__LEVEL", "warn"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if cli.tls {
        env.push(("CBC__DELIVERY__EXTRA_CA_FILE".into(), TEST_CA_FILE.into()));
    }
    if let Some(redis) = &redis {
        env.push(("CBC__REDIS__URL".into(), redis.url.clone()));
        env.push(("CBC__REDIS__KEY_PREFIX".into(), redis.prefix.clone()));
    }
    let server = ServerProcess::start(&cli.binary, &env).await;
    let pid = server.pid().unwrap_or(0);
    let cpu = CpuMeter::new(
        pid,
        match store {
            Store::Sqlite => "",
            Store::Mariadb => "mariadbd",
        },
    );
    const CPU_ROW: &str = "CPU us per task: server / db / redis / bench";
    let task =
        json!({"url": receiver.urls("/bench")[0], "body": {"order": 42, "items": [1, 2, 3]}});
    let submitter = Submitter {
        address: server.address.clone(),
        targets: receiver.urls("/bench"),
        template: task.clone(),
    };
    let mut rows = Vec::new();
    let mut lost = false;

    // Intake only: tasks due later, so that no delivery competes.
    let mut run = submitter
        .submit(cli.intake_tasks, 32, Some(FAR_DELAY_S))
        .await;
    rows.push(Row {
        figure: "intake only, 32 clients (tasks/s, p50 / p99 ms)".into(),
        value: run.summary(),
    });
    // The 128-client run's tasks are the drain backlog. Each asks for the
    // delay that makes it due in the same second, whenever it is sent
    // (delays are whole seconds): it comes due between `due` and a second
    // later, not spread over the run.
    let delay_s = 5 + u64::try_from(cli.intake_tasks / 2000).unwrap_or(60);
    let due = Instant::now() + Duration::from_secs(delay_s);
    let due_wall = std::time::SystemTime::now() + Duration::from_secs(delay_s);
    let before = cpu.now();
    let mut backlog = submitter
        .submit_in_batches(cli.intake_tasks, 1, 128, move |_| {
            let left = due_wall
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            Some(left.as_secs_f64().ceil() as u64)
        })
        .await;
    rows.push(Row {
        figure: "intake only, 128 clients (tasks/s, p50 / p99 ms)".into(),
        value: backlog.summary(),
    });
    rows.push(Row {
        figure: format!("  {CPU_ROW}"),
        value: cpu.per_task(before, backlog.ids.len()),
    });
    let before = cpu.now();
    let (last, missing, duplicates) = receiver
        .delivered(&backlog.ids, Duration::from_secs(600))
        .await;
    let drain = last.saturating_duration_since(due);
    rows.push(Row {
        figure: format!(
            "drain, {} due within a second (deliveries/s)",
            backlog.ids.len()
        ),
        value: if backlog.elapsed >= Duration::from_secs(delay_s) || drain.is_zero() {
            "backlog not ready in time".into()
        } else {
            format!("{:.0}", backlog.ids.len() as f64 / drain.as_secs_f64())
        },
    });
    rows.push(Row {
        figure: "drain: first / 50% / 99% / last delivery after due (s)".into(),
        value: receiver.arrival_profile(due),
    });
    rows.push(Row {
        figure: format!("  {CPU_ROW}"),
        value: cpu.per_task(before, backlog.ids.len()),
    });
    rows.push(Row {
        figure: "drain: missing / duplicates / arrived on a retry".into(),
        value: format!("{missing} / {duplicates} / {}", receiver.take_retries()),
    });
    lost |= missing > 0 || duplicates > 0;

    let before = cpu.now();
    let mut batch = submitter
        .submit_in_batches(cli.batch_tasks, 100, 32, |_| Some(FAR_DELAY_S))
        .await;
    rows.push(Row {
        figure: "intake, batch API, 100 a request, 32 clients (tasks/s, p99 ms)".into(),
        value: format!(
            "{:.0}  {:.1}",
            batch.rate(),
            ms(percentile(&mut batch.latencies_us, 0.99))
        ),
    });
    rows.push(Row {
        figure: format!("  {CPU_ROW}"),
        value: cpu.per_task(before, batch.ids.len()),
    });

    let started = Instant::now();
    let before = cpu.now();
    let e2e = submitter.submit(cli.tasks, 128, None).await;
    let (last, missing, duplicates) = receiver.delivered(&e2e.ids, Duration::from_secs(600)).await;
    let elapsed = last.saturating_duration_since(started);
    rows.push(Row {
        figure: format!("end to end, {} tasks, 128 clients (tasks/s)", e2e.ids.len()),
        value: format!("{:.0}", e2e.ids.len() as f64 / elapsed.as_secs_f64()),
    });
    rows.push(Row {
        figure: format!("  {CPU_ROW}"),
        value: cpu.per_task(before, e2e.ids.len()),
    });
    rows.push(Row {
        figure: "end to end: missing / duplicates / arrived on a retry".into(),
        value: format!("{missing} / {duplicates} / {}", receiver.take_retries()),
    });
    lost |= missing > 0 || duplicates > 0 || e2e.ids.len() < cli.tasks;
    // A steady, modest rate, where groups hold one task each: what a task
    // costs when nothing shares its round trips and commits.
    const STEADY_TASKS: usize = 2_000;
    let before = cpu.now();
    let steady = paced(&submitter.address, STEADY_TASKS, || {
        // Due when sent: its lateness is its latency, submission to arrival.
        let mut timed = task.clone();
        let sent_ms = chrono::Utc::now().timestamp_millis();
        timed["headers"] = json!({ DUE_HEADER: sent_ms.to_string() });
        web::Bytes::from(timed.to_string())
    })
    .await;
    let (_, missing, duplicates) = receiver.delivered(&steady, Duration::from_secs(120)).await;
    let mut latency: Vec<i64> = std::mem::take(&mut *lock(&receiver.counts.lateness_ms));
    rows.push(Row {
        figure: format!(
            "end to end at 200 tasks/s, {} tasks: latency p50 / p99 (ms)",
            steady.len()
        ),
        value: format!(
            "{} / {}",
            percentile(&mut latency, 0.5).map_or("?".into(), |ms| ms.to_string()),
            percentile(&mut latency, 0.99).map_or("?".into(), |ms| ms.to_string())
        ),
    });
    rows.push(Row {
        figure: "end to end at 200 tasks/s: missing / duplicates / arrived on a retry".into(),
        value: format!("{missing} / {duplicates} / {}", receiver.take_retries()),
    });
    rows.push(Row {
        figure: format!("  {CPU_ROW}"),
        value: cpu.per_task(before, steady.len()),
    });
    lost |= missing > 0 || duplicates > 0 || steady.len() < STEADY_TASKS;
    rows.push(Row {
        figure: "peak RSS of the server so far (MiB)".into(),
        value: peak_rss_mib(pid).map_or("?".into(), |m| format!("{m:.0}")),
    });

    if cli.scheduled > 0 {
        rows.extend(scheduled(cli, &submitter, receiver, &task, pid, &mut lost).await);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok((rows, lost))
}

/// Sends `count` tasks one at a time over one connection, one every
/// `PACE` (200 a second), each body made by `make` just before it is
/// sent; the ids of those accepted.
async fn paced(address: &str, count: usize, mut make: impl FnMut() -> web::Bytes) -> Vec<u128> {
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

/// Keeps `cli.scheduled` tasks scheduled (those already far off count),
/// then sends probe tasks due a few seconds later and measures how late
/// they arrive, and the server's peak RSS.
async fn scheduled(
    cli: &Cli,
    submitter: &Submitter,
    receiver: &Counter,
    task: &Value,
    pid: u32,
    lost: &mut bool,
) -> Vec<Row> {
    let already = cli.intake_tasks + cli.batch_tasks;
    let more = cli.scheduled.saturating_sub(already);
    // Due over the next hours, spread out as retries would be.
    let filled = submitter
        .submit_in_batches(more, 100, 16, |i| Some(3_600 + (i % 7_200) as u64))
        .await;
    let total = already.min(cli.scheduled) + filled.ids.len();

    const PROBES: usize = 2_000;
    const PROBE_DELAY_S: i64 = 3;
    let probes = paced(&submitter.address, PROBES, || {
        let due_ms = chrono::Utc::now().timestamp_millis() + PROBE_DELAY_S * 1000;
        let mut probe = task.clone();
        probe["delay_s"] = json!(PROBE_DELAY_S);
        probe["headers"] = json!({ DUE_HEADER: due_ms.to_string() });
        web::Bytes::from(probe.to_string())
    })
    .await;
    let (_, missing, duplicates) = receiver.delivered(&probes, Duration::from_secs(120)).await;
    *lost |= missing > 0 || duplicates > 0 || probes.len() < PROBES;
    let mut late: Vec<i64> = std::mem::take(&mut *lock(&receiver.counts.lateness_ms));
    let show = |v: Option<i64>| v.map_or("?".to_string(), |ms| ms.to_string());
    vec![
        Row {
            figure: format!(
                "{total} scheduled: {} probes due meanwhile, missing / duplicates",
                probes.len()
            ),
            value: format!("{missing} / {duplicates}"),
        },
        Row {
            figure: format!("{total} scheduled: probe lateness p50 / p99 (ms)"),
            value: format!(
                "{} / {}",
                show(percentile(&mut late, 0.5)),
                show(percentile(&mut late, 0.99))
            ),
        },
        Row {
            figure: format!("{total} scheduled: peak RSS of the server (MiB)"),
            value: peak_rss_mib(pid).map_or("?".into(), |m| format!("{m:.0}")),
        },
    ]
}
