//! Fault scenarios against real binaries, MariaDB and Redis. Each counts,
//! at a recording receiver, every task id a 2xx answer reached, and reports
//! accepted, delivered, missing and duplicate deliveries. The suite runs
//! them small and asserts on the report; `scripts/chaos` runs them large and
//! prints the table.
//!
//! A scenario that stops or flushes a server starts a private one; the
//! shared MariaDB and Redis only ever get a database or key prefix of the
//! scenario's own.

use crate::process::{PrivateMariaDb, ServerProcess};
use crate::redis::{redis_command, PrivateRedis, TestRedis};
use crate::{Backend, Receiver, Reply, TestDatabase};
use callback_core::lock;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "chaos-admin-token";
/// Delivery concurrency of each instance, so that the duplicates a crash
/// may cause have a known bound.
pub const INSTANCE_CONCURRENCY: usize = 32;

/// What a scenario saw.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: &'static str,
    /// Tasks answered 201.
    pub accepted: usize,
    /// Submissions answered 503 or not answered at all (nothing promised).
    pub refused: usize,
    /// Accepted tasks that reached the receiver with a 2xx answer.
    pub delivered: usize,
    pub missing: usize,
    /// 2xx deliveries beyond the first, over all tasks.
    pub duplicates: usize,
    pub seconds: f64,
}

impl Report {
    pub const HEADER: &'static str = "scenario                         accepted  refused  delivered  missing  duplicates  seconds";
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<32} {:>8} {:>8} {:>10} {:>8} {:>11} {:>8.1}",
            self.scenario,
            self.accepted,
            self.refused,
            self.delivered,
            self.missing,
            self.duplicates,
            self.seconds
        )
    }
}

/// Instances of the binary sharing one store and one queue.
struct Fleet {
    binary: PathBuf,
    env: Vec<(String, String)>,
    servers: Vec<Option<ServerProcess>>,
    data_dir: PathBuf,
}

impl Fleet {
    async fn start(
        binary: &Path,
        size: usize,
        database_url: &str,
        redis_url: &str,
        prefix: &str,
    ) -> Self {
        let data_dir = std::env::temp_dir().join(format!("cbc-chaos-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&data_dir).expect("create the data directory");
        let env = [
            ("CBC__DATABASE__URL", database_url),
            ("CBC__DATABASE__CONNECT_TIMEOUT_MS", "1000"),
            ("CBC__REDIS__URL", redis_url),
            ("CBC__REDIS__KEY_PREFIX", prefix),
            ("CBC__REDIS__COMMAND_TIMEOUT_MS", "1000"),
            ("CBC__REDIS__INFLIGHT_LEASE_MS", "3000"),
            ("CBC__AUTH__ADMIN_TOKEN", TOKEN),
            ("CBC__DATA__DIR", &data_dir.display().to_string()),
            (
                "CBC__DELIVERY__CONCURRENCY",
                &INSTANCE_CONCURRENCY.to_string(),
            ),
            ("CBC__DELIVERY__LEASE_MARGIN_MS", "2000"),
            ("CBC__DELIVERY__RECONCILE_INTERVAL_MS", "500"),
            // Some scenarios fail every first attempt on purpose; a breaker
            // opening would only slow them down.
            ("CBC__BREAKER__FAILURE_THRESHOLD", "1000000"),
            ("CBC__LOG__LEVEL", "error"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec();
        let mut fleet = Self {
            binary: binary.to_path_buf(),
            env,
            servers: Vec::new(),
            data_dir,
        };
        for _ in 0..size {
            let server = ServerProcess::start(&fleet.binary, &fleet.env).await;
            fleet.servers.push(Some(server));
        }
        fleet
    }

    fn addresses(&self) -> Vec<String> {
        self.servers
            .iter()
            .flatten()
            .map(|s| s.address.clone())
            .collect()
    }

    async fn kill(&mut self, n: usize) {
        if let Some(mut server) = self.servers[n].take() {
            server.kill().await;
        }
    }

    async fn restart(&mut self, n: usize) {
        self.servers[n] = Some(ServerProcess::start(&self.binary, &self.env).await);
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Tasks submitted so far, shared with the scenario that injects faults.
#[derive(Default)]
struct Intake {
    accepted: std::sync::Mutex<Vec<String>>,
    accepted_count: AtomicUsize,
    refused: AtomicUsize,
}

impl Intake {
    /// Posts `task` to the server at `address`; answers whether it was
    /// accepted (a 201, counted with its id). A refusal (503) or no answer
    /// is counted too, after a pause before the caller tries elsewhere; any
    /// other answer fails the scenario.
    async fn offer(&self, client: &reqwest::Client, address: &str, task: &Value) -> bool {
        let answer = client
            .post(format!("{address}/api/v1/tasks"))
            .bearer_auth(TOKEN)
            .json(task)
            .send()
            .await;
        match answer {
            Ok(r) if r.status().as_u16() == 201 => {
                let v: Value = r.json().await.unwrap_or_default();
                if let Some(id) = v["task_id"].as_str() {
                    lock(&self.accepted).push(id.to_string());
                    self.accepted_count.fetch_add(1, Ordering::SeqCst);
                }
                return true;
            }
            Ok(r) => assert!(
                r.status().as_u16() == 503,
                "intake answered {} instead of 201 or 503",
                r.status()
            ),
            Err(_) => {}
        }
        self.refused.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        false
    }
}

/// Submits `count` tasks from 16 clients spread over `addresses`. A client
/// whose server refuses or does not answer moves on to the next one; only
/// a 201 counts as accepted.
async fn submit(intake: Arc<Intake>, addresses: Vec<String>, count: usize, task: Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let (client, addresses, task, next, intake) = (
            client.clone(),
            addresses.clone(),
            task.clone(),
            next.clone(),
            intake.clone(),
        );
        clients.spawn(async move {
            let mut target = worker;
            while next.fetch_add(1, Ordering::SeqCst) < count {
                let address = &addresses[target % addresses.len()];
                if !intake.offer(&client, address, &task).await {
                    target += 1;
                }
            }
        });
    }
    while clients.join_next().await.is_some() {}
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every accepted task was delivered (or `timeout` passed),
/// gives would-be duplicates a moment to arrive, and counts.
async fn tally(
    scenario: &'static str,
    intake: &Intake,
    receiver: &Receiver,
    started: Instant,
    timeout: Duration,
) -> Report {
    let accepted: HashSet<String> = lock(&intake.accepted).iter().cloned().collect();
    let deadline = Instant::now() + timeout;
    loop {
        let successes = receiver.successes_by_task();
        if accepted.iter().all(|id| successes.contains_key(id)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let successes = receiver.successes_by_task();
    let delivered = accepted
        .iter()
        .filter(|id| successes.contains_key(*id))
        .count();
    Report {
        scenario,
        accepted: accepted.len(),
        refused: intake.refused.load(Ordering::SeqCst),
        delivered,
        missing: accepted.len() - delivered,
        duplicates: successes.values().map(|n| n.saturating_sub(1)).sum(),
        seconds,
    }
}

fn deadline_for(tasks: usize) -> Duration {
    Duration::from_secs(60 + (tasks / 50) as u64)
}

/// 1. Three instances share MariaDB and Redis and deliver `tasks` tasks.
pub async fn three_instances(binary: &Path, tasks: usize) -> Report {
    let db = TestDatabase::create(Backend::Mysql).await;
    let redis = TestRedis::create().await;
    let receiver = Receiver::start().await;
    let fleet = Fleet::start(binary, 3, &db.url, &redis.url, &redis.prefix).await;
    let started = Instant::now();
    let intake = Arc::new(Intake::default());
    submit(
        intake.clone(),
        fleet.addresses(),
        tasks,
        json!({"url": receiver.url("/three")}),
    )
    .await;
    tally(
        "three instances",
        &intake,
        &receiver,
        started,
        deadline_for(tasks),
    )
    .await
}

/// 2. One of three instances is killed with SIGKILL mid-run, with attempts
///    in flight, and restarted a second later.
pub async fn sigkill_one_of_three(binary: &Path, tasks: usize) -> Report {
    let db = TestDatabase::create(Backend::Mysql).await;
    let redis = TestRedis::create().await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200).delay(Duration::from_millis(100)));
    let mut fleet = Fleet::start(binary, 3, &db.url, &redis.url, &redis.prefix).await;
    let started = Instant::now();
    let intake = Arc::new(Intake::default());
    let task = json!({"url": receiver.url("/kill"), "retry_delays_s": [1]});
    let submitting = tokio::spawn(submit(intake.clone(), fleet.addresses(), tasks, task));
    wait_until("a third of the tasks accepted", deadline_for(tasks), || {
        intake.accepted_count.load(Ordering::SeqCst) >= tasks / 3
    })
    .await;
    fleet.kill(0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    fleet.restart(0).await;
    submitting.await.expect("submitters finish");
    tally(
        "sigkill 1 of 3",
        &intake,
        &receiver,
        started,
        deadline_for(tasks),
    )
    .await
}

/// 3. `FLUSHALL` on Redis while every task has a retry pending in it.
pub async fn redis_flushall(binary: &Path, tasks: usize) -> Report {
    let db = TestDatabase::create(Backend::Mysql).await;
    let redis = PrivateRedis::start().await;
    let receiver = Receiver::start().await;
    receiver.script((0..tasks).map(|_| Reply::status(500)));
    let fleet = Fleet::start(binary, 2, &db.url, &redis.url(), "chaos").await;
    let started = Instant::now();
    let intake = Arc::new(Intake::default());
    // Every retry must still be pending when the last first attempt is
    // made, however long submitting takes at this size.
    let retry_delay_s = 5 + tasks / 500;
    let task = json!({"url": receiver.url("/flush"), "retry_delays_s": [retry_delay_s], "max_attempts": 5});
    submit(intake.clone(), fleet.addresses(), tasks, task).await;
    wait_until("every first attempt made", deadline_for(tasks), || {
        receiver.counts_by_task().len() >= tasks
    })
    .await;
    assert!(
        receiver.successes_by_task().is_empty(),
        "no retry ran before the flush (retry delay {retry_delay_s} s too short for {tasks} tasks)"
    );
    let pending: i64 = redis_command(&redis.url(), &["ZCARD", "{chaos}:due"]).await;
    assert!(pending > 0, "retries are pending in Redis before the flush");
    redis.flushall().await;
    tally(
        "redis flushall",
        &intake,
        &receiver,
        started,
        deadline_for(tasks),
    )
    .await
}

/// 4. Redis is down while tasks are accepted and delivered, then comes back
///    empty and is used again.
pub async fn redis_outage(binary: &Path, tasks: usize) -> Report {
    let db = TestDatabase::create(Backend::Mysql).await;
    let mut redis = PrivateRedis::start().await;
    let receiver = Receiver::start().await;
    let fleet = Fleet::start(binary, 2, &db.url, &redis.url(), "chaos").await;
    let started = Instant::now();
    redis.stop();
    let intake = Arc::new(Intake::default());
    // Delayed tasks go to the delay queue, which is down: only the store
    // knows them.
    let delayed = json!({"url": receiver.url("/outage"), "delay_s": 1});
    submit(intake.clone(), fleet.addresses(), tasks / 2, delayed).await;
    let ready = readiness(&fleet.addresses()[0]).await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["queue"]["status"], "unreachable", "{ready}");
    let first_half = intake.accepted_count.load(Ordering::SeqCst);
    wait_until(
        "the first half delivered by polling the store",
        deadline_for(tasks),
        || receiver.successes_by_task().len() >= first_half,
    )
    .await;

    redis.restart().await;
    let ready = readiness(&fleet.addresses()[0]).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let later = json!({"url": receiver.url("/outage"), "delay_s": 3});
    submit(intake.clone(), fleet.addresses(), tasks - tasks / 2, later).await;
    let queued: i64 = redis_command(&redis.url(), &["ZCARD", "{chaos}:due"]).await;
    assert!(
        queued > 0,
        "delayed tasks go to Redis again once it is back"
    );
    tally(
        "redis down, then back",
        &intake,
        &receiver,
        started,
        deadline_for(tasks),
    )
    .await
}

/// 5. MariaDB is killed mid-run and restarted a few seconds later, while
///    clients keep submitting: intake answers 503 meanwhile, and everything
///    it accepted is delivered.
pub async fn mariadb_outage(binary: &Path, tasks: usize) -> Report {
    let mut mariadb = PrivateMariaDb::start().await;
    let admin = sea_orm::Database::connect(mariadb.url())
        .await
        .expect("connect to the private MariaDB");
    sea_orm::ConnectionTrait::execute_unprepared(&admin, "CREATE DATABASE chaos")
        .await
        .expect("create the database");
    admin.close().await.ok();
    let redis = TestRedis::create().await;
    let receiver = Receiver::start().await;
    let database_url = format!("{}/chaos", mariadb.url());
    let fleet = Fleet::start(binary, 2, &database_url, &redis.url, &redis.prefix).await;
    let started = Instant::now();
    let intake = Arc::new(Intake::default());
    let task = json!({"url": receiver.url("/db"), "retry_delays_s": [1]});
    let submitting = tokio::spawn(submit(intake.clone(), fleet.addresses(), tasks, task));
    wait_until("a third of the tasks accepted", deadline_for(tasks), || {
        intake.accepted_count.load(Ordering::SeqCst) >= tasks / 3
    })
    .await;
    mariadb.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    mariadb.restart().await;
    submitting.await.expect("submitters finish");
    tally(
        "mariadb down, then back",
        &intake,
        &receiver,
        started,
        deadline_for(tasks),
    )
    .await
}

async fn readiness(address: &str) -> Value {
    reqwest::get(format!("{address}/readyz"))
        .await
        .expect("readyz answers")
        .json()
        .await
        .expect("readyz is JSON")
}

/// What the ordered scenario saw, beyond the usual counts.
#[derive(Debug, Clone)]
pub struct OrderReport {
    pub report: Report,
    /// Keys the tasks were spread over.
    pub keys: usize,
    /// 2xx deliveries that reached the receiver after a later task of the
    /// same key had (a re-delivery of the same task excepted).
    pub out_of_order: usize,
    /// Attempts answered 500 on purpose.
    pub failures_injected: usize,
}

/// 6. Ordered delivery: `tasks` tasks over `keys` ordering keys, each key
///    submitted in sequence by one client, a tenth of attempts answered 500
///    at random, three instances, one killed with SIGKILL once a third is
///    accepted and restarted a second later. Per key, the 2xx deliveries
///    must reach the receiver in acceptance order.
pub async fn ordered_sigkill_one_of_three(binary: &Path, tasks: usize, keys: usize) -> OrderReport {
    let db = TestDatabase::create(Backend::Mysql).await;
    let redis = TestRedis::create().await;
    let receiver = Receiver::start().await;
    // Seeded: a failing run can be replayed with the same failures.
    let mut random = fastrand::Rng::with_seed(26);
    let replies: Vec<Reply> = (0..tasks * 2)
        .map(|_| {
            if random.u8(0..10) == 0 {
                Reply::status(500)
            } else {
                Reply::status(200).delay(Duration::from_millis(10))
            }
        })
        .collect();
    let failures_injected = replies.iter().filter(|r| r.status == 500).count();
    receiver.script(replies);
    let mut fleet = Fleet::start(binary, 3, &db.url, &redis.url, &redis.prefix).await;
    let started = Instant::now();
    let intake = Arc::new(Intake::default());
    let url = receiver.url("/ordered");
    let submitting = tokio::spawn(submit_in_order(
        intake.clone(),
        fleet.addresses(),
        tasks,
        keys,
        url,
    ));
    wait_until("a third of the tasks accepted", deadline_for(tasks), || {
        intake.accepted_count.load(Ordering::SeqCst) >= tasks / 3
    })
    .await;
    fleet.kill(0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    fleet.restart(0).await;
    submitting.await.expect("submitters finish");
    let report = tally(
        "ordered, sigkill 1 of 3",
        &intake,
        &receiver,
        started,
        deadline_for(tasks),
    )
    .await;
    OrderReport {
        report,
        keys,
        out_of_order: out_of_order(&receiver.requests()),
        failures_injected,
    }
}

/// Counts 2xx deliveries that came after a later task of their key had
/// arrived: bodies are `{"key": .., "n": ..}`, `n` counting up per key in
/// acceptance order. The same `n` again is a re-delivery, allowed.
fn out_of_order(requests: &[crate::Received]) -> usize {
    let mut highest: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut late = 0;
    for request in requests.iter().filter(|r| (200..300).contains(&r.replied)) {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            late += 1;
            continue;
        };
        let (Some(key), Some(n)) = (body["key"].as_str(), body["n"].as_u64()) else {
            late += 1;
            continue;
        };
        let seen = highest.entry(key.to_string()).or_insert(n);
        if n < *seen {
            late += 1;
        } else {
            *seen = n;
        }
    }
    late
}

/// Submits `count` tasks over `keys` ordering keys from 16 clients; each
/// key belongs to one client, which submits its tasks one after the other
/// (so acceptance order is `n` order), moving to the next instance and
/// trying the same task again when one refuses or does not answer.
async fn submit_in_order(
    intake: Arc<Intake>,
    addresses: Vec<String>,
    count: usize,
    keys: usize,
    url: String,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let mut clients = tokio::task::JoinSet::new();
    let rounds = count.div_ceil(keys.max(1));
    for worker in 0..16 {
        let (client, addresses, intake, url) = (
            client.clone(),
            addresses.clone(),
            intake.clone(),
            url.clone(),
        );
        clients.spawn(async move {
            let mut target = worker;
            let mine: Vec<usize> = (worker..keys).step_by(16).collect();
            for n in 0..rounds {
                for &key in &mine {
                    if n * keys + key >= count {
                        continue;
                    }
                    let task = json!({
                        "url": url,
                        "ordering_key": format!("key-{key}"),
                        "body": {"key": format!("key-{key}"), "n": n},
                        "retry_delays_s": [1],
                        "timeout_ms": 2000,
                    });
                    let address = |target: usize| &addresses[target % addresses.len()];
                    while !intake.offer(&client, address(target), &task).await {
                        target += 1;
                    }
                }
            }
        });
    }
    while clients.join_next().await.is_some() {}
}
