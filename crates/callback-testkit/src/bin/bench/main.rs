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

mod load;
mod receiver;
mod report;
mod scenario;

use crate::load::ceiling;
use crate::receiver::Counter;
use crate::report::print_table;
use crate::scenario::measure;
use clap::{Parser, ValueEnum};
use std::path::PathBuf;

pub(crate) const TOKEN: &str = "bench-admin-token";
pub(crate) const BEARER: &str = "Bearer bench-admin-token";
/// Tasks that must not come due while the bench runs wait this long.
pub(crate) const FAR_DELAY_S: u64 = 86_400;
/// The header a probe task carries its due time in (ms since the epoch).
pub(crate) const DUE_HEADER: &str = "x-bench-due-ms";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Store {
    /// The embedded default: SQLite, in-process delay queue.
    Sqlite,
    /// MariaDB on 127.0.0.1:3306 and Redis on 127.0.0.1:6379.
    Mariadb,
}

#[derive(Parser)]
#[command(about = "Benchmarks a callback-center binary and prints a table")]
pub(crate) struct Cli {
    #[arg(long, default_value = "target/release/callback-center")]
    pub(crate) binary: PathBuf,
    /// Backends to measure (repeatable); both by default.
    #[arg(long = "store", value_enum)]
    pub(crate) stores: Vec<Store>,
    /// Tasks for the end-to-end run.
    #[arg(long, default_value_t = 50_000)]
    pub(crate) tasks: usize,
    /// Tasks per intake measurement; the 128-client run's tasks are then
    /// the backlog that is drained.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) intake_tasks: usize,
    /// Tasks submitted through the batch API, 100 a request.
    #[arg(long, default_value_t = 50_000)]
    pub(crate) batch_tasks: usize,
    /// Receivers the tasks are spread over. Each listens on its own
    /// loopback address (127.0.0.1, 127.0.0.2, ...), so it is its own
    /// receiver to the server, with its own in-flight cap.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub(crate) receivers: u8,
    /// Tasks kept scheduled for later while probe tasks come due (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) scheduled: usize,
    /// Receivers speak https (TLS in front of each, with a test CA the
    /// server is told to trust); the loopback ceiling stays plain HTTP.
    #[arg(long)]
    pub(crate) tls: bool,
    /// Also runs end to end with each task on one of this many ordering
    /// keys, and reports its rate against the unordered run (0: skip).
    #[arg(long, default_value_t = 0)]
    pub(crate) ordered_keys: usize,
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
        print_table(&format!("{store:?}"), &rows);
    }
    anyhow::ensure!(!failed, "a run lost or duplicated tasks");
    Ok(())
}
