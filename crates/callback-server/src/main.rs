//! `callback-center`: parse the command line, load settings, run.

use callback_core::Role;
use callback_server::startup::add_console_user;
use callback_server::{telemetry, Application, Settings};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// glibc's allocator spent about a fifth of the server's CPU under load
/// (`malloc_consolidate` on every large buffer among many small frees);
/// mimalloc keeps per-thread free lists and does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A guaranteed-delivery callback center. Without a command, it serves.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML file overriding the built-in defaults (see docs/configuration.md).
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Console accounts (docs/console.md).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Creates an account and prints its one-time password.
    Add {
        /// The username: letters, digits, `.`, `_`, `-`, `@`.
        name: String,
        /// viewer, operator or admin.
        #[arg(long, default_value = "viewer", value_parser = parse_role)]
        role: Role,
    },
}

fn parse_role(raw: &str) -> Result<Role, String> {
    Role::parse(raw)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    if let Some(Command::User {
        action: UserAction::Add { name, role },
    }) = cli.command
    {
        let password = add_console_user(&settings, &name, role).await?;
        println!("account {name} ({role}) created; its password, shown this once:\n{password}");
        return Ok(());
    }
    telemetry::init(&settings.log.level, settings.log.format);
    let app = Application::build(settings).await?;
    println!("{}", app.banner());
    app.run_until_stopped(shutdown_signal()).await
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
