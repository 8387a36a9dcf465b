//! cbctl: callback-center from the shell.
//!
//! Exit codes scripts can rely on:
//! 0 done; 1 the server refused (not found, invalid, forbidden...);
//! 2 bad usage; 3 the server could not be reached or stayed unavailable;
//! 4 `wait` timed out; 5 aborted at the confirmation.

mod commands;
mod output;
mod request;
mod settings;

use callback_client::{Client, Error, RetryPolicy};
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  export CBC_URL=http://127.0.0.1:8080 CBC_TOKEN=cbk_...
  cbctl task submit https://shop.example/paid --data '{\"order\":42}' --wait
  cbctl task list --status failed --app shop
  cbctl replay --status failed --since 2h --app shop --dry-run
  cbctl replay --status failed --since 2h --app shop --to https://shop-v2.example/paid --yes
  cbctl events publish order.paid --data '{\"order\":42}'
  cbctl tail --app shop --failed
  cbctl verify --secret whsec_... < saved-request.http";

/// callback-center from the shell: tasks, replays, endpoints, events,
/// routes, keys, alert hooks, and signature checks for receivers.
#[derive(Debug, Parser)]
#[command(name = "cbctl", version, after_help = EXAMPLES)]
pub struct Cli {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "CBC_URL", global = true)]
    url: Option<String>,
    /// An API key (cbk_...) or the admin token.
    #[arg(long, env = "CBC_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// A TOML file with `url` and `token` (default ~/.config/cbctl/config.toml).
    #[arg(long, env = "CBCTL_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print JSON instead of tables, for scripts.
    #[arg(long, global = true)]
    json: bool,
    /// Give up on an unavailable server after this long (e.g. 30s, 2m).
    #[arg(long, global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    retry_for: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Submit, read, list, re-send, cancel and wait for tasks.
    #[command(subcommand)]
    Task(commands::TaskCommand),
    /// Re-send the finished tasks a filter matches: shows the count and
    /// asks before acting (or --yes).
    Replay(commands::ReplayArgs),
    /// Attempts as they happen (of the instance reached), until Ctrl-C;
    /// with --json, one JSON object a line.
    Tail(commands::TailArgs),
    /// Ten-minute buckets of tasks that failed for good.
    #[command(subcommand)]
    Buckets(commands::BucketCommand),
    /// Endpoints that receive events.
    #[command(subcommand)]
    Endpoints(commands::EndpointCommand),
    /// Publish events.
    #[command(subcommand)]
    Events(commands::EventCommand),
    /// Routes of vendor callbacks.
    #[command(subcommand)]
    Routes(commands::RouteCommand),
    /// API keys.
    #[command(subcommand)]
    Keys(commands::KeyCommand),
    /// Alert hooks (DingTalk, WeCom, webhooks).
    #[command(subcommand)]
    Alerts(commands::AlertCommand),
    /// Check that a saved request came from callback-center.
    Verify(commands::VerifyArgs),
    /// Print a shell completion script, e.g. `cbctl completions bash`.
    Completions(CompletionArgs),
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    shell: clap_complete::Shell,
}

/// How a command failed, and the exit code that says so.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }

    pub fn aborted(message: impl Into<String>) -> Self {
        Self {
            code: 5,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::Transport(_) | Error::GaveUp { .. } => 3,
            Error::Api { problem } if problem.status >= 500 => 3,
            Error::WaitTimedOut { .. } => 4,
            Error::Config(_) => 2,
            _ => 1,
        };
        let mut message = error.to_string();
        if let Error::Api { problem } = &error {
            for field in problem
                .errors
                .iter()
                .filter(|f| !problem.detail.contains(&f.message))
            {
                message.push_str(&format!("\n  {}: {}", field.field, field.message));
            }
        }
        Self { code, message }
    }
}

/// What every command needs: the client and how to print.
pub struct Context {
    pub client: Client,
    pub json: bool,
}

fn connect(cli: &Cli) -> Result<Context, Failure> {
    let file = settings::read(cli.config.clone()).map_err(Failure::usage)?;
    let url = cli.url.clone().or(file.url).ok_or_else(|| {
        Failure::usage("no server: give --url, set CBC_URL, or put url = \"...\" in ~/.config/cbctl/config.toml")
    })?;
    let mut builder = Client::builder(&url).retry(RetryPolicy {
        deadline: cli.retry_for,
        ..RetryPolicy::default()
    });
    if let Some(token) = cli.token.clone().or(file.token) {
        builder = builder.token(token);
    }
    Ok(Context {
        client: builder.build()?,
        json: cli.json,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Completions(args) => {
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "cbctl",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Verify(args) => commands::verify(args, cli.json),
        command => match connect(&cli) {
            Ok(ctx) => commands::run(&ctx, command).await,
            Err(failure) => Err(failure),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("cbctl: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
