//! `bench`: measures a release `callback-center` on this machine and prints
//! one table. It starts the server itself (SQLite default, or MariaDB and
//! Redis), a counting receiver, and a load generator, and reports:
//!
//! - the loopback ceiling: the generator straight against the receiver;
//! - intake: tasks/s and p50/p99 latency at 32 and 128 clients;
//! - end to end: N tasks accepted, stored, delivered and recorded;
//! - drain: a backlog made due at once, delivered by delivery alone;
//! - the server's peak RSS.
//!
//! Every delivered task id is counted: a run that lost a task, or delivered
//! one twice, says so and exits 1, whatever its speed.

use callback_testkit::{Backend, Receiver, ServerProcess, TestDatabase, TestRedis};
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-admin-token";

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
    /// Tasks per intake measurement.
    #[arg(long, default_value_t = 20_000)]
    intake_tasks: usize,
    /// Tasks in the backlog drained by delivery alone.
    #[arg(long, default_value_t = 20_000)]
    backlog: usize,
}

struct Row {
    figure: String,
    value: String,
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
    let receiver = Arc::new(Receiver::start().await);
    let ceiling = ceiling(&receiver, 20_000, 128).await;
    println!(
        "machine: {} cores; loopback ceiling (generator -> receiver, 128 clients): {:.0} requests/s",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        ceiling
    );
    let mut failed = false;
    for store in stores {
        let (rows, lost) = measure(&cli, store, &receiver).await?;
        failed |= lost;
        println!("\n{:?}", store);
        println!("{:<52} {:>20}", "figure", "value");
        for row in rows {
            println!("{:<52} {:>20}", row.figure, row.value);
        }
    }
    anyhow::ensure!(!failed, "a run lost or duplicated tasks");
    Ok(())
}

/// Requests per second straight from the generator to the receiver.
async fn ceiling(receiver: &Receiver, requests: usize, clients: usize) -> f64 {
    let url = receiver.url("/ceiling");
    let (elapsed, _) = drive(requests, clients, move |client| {
        let url = url.clone();
        async move {
            client
                .post(&url)
                .header("X-Callback-Task-Id", "ceiling")
                .json(&json!({"n": 1}))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }
    })
    .await;
    requests as f64 / elapsed.as_secs_f64()
}

/// Runs `requests` calls of `call` from `clients` concurrent clients;
/// returns the wall time and every latency in microseconds.
async fn drive<F, Fut>(requests: usize, clients: usize, call: F) -> (Duration, Vec<u64>)
where
    F: Fn(reqwest::Client) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("HTTP client");
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(requests)));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, call, next, latencies) = (
            client.clone(),
            call.clone(),
            next.clone(),
            latencies.clone(),
        );
        workers.spawn(async move {
            let mut mine = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let t = Instant::now();
                let ok = call(client.clone()).await;
                if ok {
                    mine.push(t.elapsed().as_micros() as u64);
                }
            }
            latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(mine);
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let latencies = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
    (elapsed, latencies)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Peak resident memory of a process, in MiB (Linux).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

struct Submitter {
    address: String,
}

impl Submitter {
    /// Submits `count` tasks from `clients` clients; returns the accepted
    /// ids, the wall time and the latencies.
    async fn submit(
        &self,
        count: usize,
        clients: usize,
        task: Value,
    ) -> (Vec<String>, Duration, Vec<u64>) {
        let ids = Arc::new(Mutex::new(Vec::with_capacity(count)));
        let (url, task, sink) = (
            format!("{}/api/v1/tasks", self.address),
            Arc::new(task),
            ids.clone(),
        );
        let (elapsed, latencies) = drive(count, clients, move |client| {
            let (url, task, sink) = (url.clone(), task.clone(), sink.clone());
            async move {
                let Ok(response) = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&*task)
                    .send()
                    .await
                else {
                    return false;
                };
                if response.status().as_u16() != 201 {
                    return false;
                }
                let Ok(v) = response.json::<Value>().await else {
                    return false;
                };
                if let Some(id) = v["task_id"].as_str() {
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(id.to_string());
                }
                true
            }
        })
        .await;
        let ids = std::mem::take(&mut *ids.lock().unwrap_or_else(|p| p.into_inner()));
        (ids, elapsed, latencies)
    }
}

/// Waits until the receiver has every id in `ids`; returns when the last
/// arrived, and the missing and duplicated counts.
async fn delivered(
    receiver: &Receiver,
    ids: &[String],
    timeout: Duration,
) -> (Instant, usize, usize) {
    let wanted: HashSet<&String> = ids.iter().collect();
    let deadline = Instant::now() + timeout;
    loop {
        let counts = receiver.counts_by_task();
        let got = wanted.iter().filter(|id| counts.contains_key(**id)).count();
        if got == wanted.len() || Instant::now() > deadline {
            let last = receiver
                .requests()
                .iter()
                .map(|r| r.at)
                .max()
                .unwrap_or_else(Instant::now);
            let duplicates = wanted
                .iter()
                .map(|id| counts.get(*id).copied().unwrap_or(0).saturating_sub(1))
                .sum();
            return (last, wanted.len() - got, duplicates);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn measure(cli: &Cli, store: Store, receiver: &Receiver) -> anyhow::Result<(Vec<Row>, bool)> {
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
        ("CBC__DATABASE__MAX_CONNECTIONS", "32"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(redis) = &redis {
        env.push(("CBC__REDIS__URL".into(), redis.url.clone()));
        env.push(("CBC__REDIS__KEY_PREFIX".into(), redis.prefix.clone()));
    }
    let server = ServerProcess::start(&cli.binary, &env).await;
    let pid = server.pid().unwrap_or(0);
    let submitter = Submitter {
        address: server.address.clone(),
    };
    let task = json!({"url": receiver.url("/bench"), "body": {"order": 42, "items": [1, 2, 3]}});
    let mut rows = Vec::new();
    let mut lost = false;

    for clients in [32, 128] {
        let (ids, elapsed, mut latencies) = submitter
            .submit(cli.intake_tasks, clients, task.clone())
            .await;
        latencies.sort_unstable();
        rows.push(Row {
            figure: format!("intake, {clients} clients (tasks/s, p50 / p99 ms)"),
            value: format!(
                "{:.0}  {:.1} / {:.1}",
                ids.len() as f64 / elapsed.as_secs_f64(),
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99)
            ),
        });
        let (_, missing, duplicates) = delivered(receiver, &ids, Duration::from_secs(300)).await;
        lost |= missing > 0 || duplicates > 0;
    }

    let started = Instant::now();
    let (ids, _, _) = submitter.submit(cli.tasks, 128, task.clone()).await;
    let (last, missing, duplicates) = delivered(receiver, &ids, Duration::from_secs(600)).await;
    let elapsed = last.saturating_duration_since(started);
    rows.push(Row {
        figure: format!("end to end, {} tasks, 128 clients (tasks/s)", ids.len()),
        value: format!("{:.0}", ids.len() as f64 / elapsed.as_secs_f64()),
    });
    rows.push(Row {
        figure: "end to end: missing / duplicates".into(),
        value: format!("{missing} / {duplicates}"),
    });
    lost |= missing > 0 || duplicates > 0 || ids.len() < cli.tasks;

    // A backlog due at once: submitted with a delay, drained by delivery.
    let delay_s = 5 + (cli.backlog / 1000) as u64;
    let mut delayed = task.clone();
    delayed["delay_s"] = json!(delay_s);
    let submitted_at = Instant::now();
    let (ids, _, _) = submitter.submit(cli.backlog, 128, delayed).await;
    let due = submitted_at + Duration::from_secs(delay_s);
    let (last, missing, duplicates) = delivered(receiver, &ids, Duration::from_secs(600)).await;
    let submit_took = due.saturating_duration_since(submitted_at);
    let drain = last.saturating_duration_since(due);
    rows.push(Row {
        figure: format!("drain, {} due at once (deliveries/s)", ids.len()),
        value: if drain.is_zero() || submit_took.is_zero() {
            "backlog not ready in time".into()
        } else {
            format!("{:.0}", ids.len() as f64 / drain.as_secs_f64())
        },
    });
    lost |= missing > 0 || duplicates > 0;
    rows.push(Row {
        figure: "peak RSS of the server (MiB)".into(),
        value: peak_rss_mib(pid).map_or("?".into(), |m| format!("{m:.0}")),
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok((rows, lost))
}
