//! `chaos`: runs the fault scenarios at a size of your choosing against a
//! `callback-center` binary and prints one row per scenario. Exits 1 if any
//! accepted task went missing. `scripts/chaos` builds and runs it.

use callback_testkit::chaos::{self, Report};
use clap::{Parser, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    ThreeInstances,
    Sigkill,
    RedisFlushall,
    RedisOutage,
    MariadbOutage,
}

/// Fault scenarios against real MariaDB and Redis.
#[derive(Parser)]
#[command(about)]
struct Cli {
    /// The callback-center binary to run.
    #[arg(long, default_value = "target/release/callback-center")]
    binary: PathBuf,
    /// Tasks submitted per scenario.
    #[arg(long, default_value_t = 20_000)]
    tasks: usize,
    /// Run only these scenarios (repeatable); all by default.
    #[arg(long = "only", value_enum)]
    only: Vec<Scenario>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(
        cli.binary.exists(),
        "no binary at {} (build it with cargo build --release)",
        cli.binary.display()
    );
    let wanted = |s: Scenario| cli.only.is_empty() || cli.only.contains(&s);
    println!("{}", Report::HEADER);
    let mut lost = false;
    for scenario in [
        Scenario::ThreeInstances,
        Scenario::Sigkill,
        Scenario::RedisFlushall,
        Scenario::RedisOutage,
        Scenario::MariadbOutage,
    ] {
        if !wanted(scenario) {
            continue;
        }
        let (binary, tasks) = (cli.binary.as_path(), cli.tasks);
        let report = match scenario {
            Scenario::ThreeInstances => chaos::three_instances(binary, tasks).await,
            Scenario::Sigkill => chaos::sigkill_one_of_three(binary, tasks).await,
            Scenario::RedisFlushall => chaos::redis_flushall(binary, tasks).await,
            Scenario::RedisOutage => chaos::redis_outage(binary, tasks).await,
            Scenario::MariadbOutage => chaos::mariadb_outage(binary, tasks).await,
        };
        println!("{report}");
        lost |= report.missing > 0;
    }
    if lost {
        anyhow::bail!("accepted tasks went missing");
    }
    Ok(())
}
