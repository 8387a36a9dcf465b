//! Each command: its arguments, the calls it makes, what it prints.
//! `tasks`: one task at a time; `replay`: many at once; `tail`: attempts
//! as they happen; `resources`: everything else the API holds; `verify`:
//! a receiver's check of a saved request.

mod replay;
mod resources;
mod tail;
mod tasks;
mod verify;

pub use replay::ReplayArgs;
pub use resources::{
    AlertCommand, BucketCommand, EndpointCommand, EventCommand, KeyCommand, RouteCommand,
};
pub use tail::TailArgs;
pub use tasks::TaskCommand;
pub use verify::{verify, VerifyArgs};

use crate::{Command, Context, Failure};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

pub async fn run(ctx: &Context, command: &Command) -> Result<(), Failure> {
    match command {
        Command::Task(command) => tasks::task(ctx, command).await,
        Command::Replay(args) => replay::replay(ctx, args).await,
        Command::Tail(args) => tail::tail(ctx, args).await,
        Command::Buckets(command) => resources::buckets(ctx, command).await,
        Command::Endpoints(command) => resources::endpoints(ctx, command).await,
        Command::Events(command) => resources::events(ctx, command).await,
        Command::Routes(command) => resources::routes(ctx, command).await,
        Command::Keys(command) => resources::keys(ctx, command).await,
        Command::Alerts(command) => resources::alerts(ctx, command).await,
        Command::Verify(_) | Command::Completions(_) => Ok(()),
    }
}

pub(crate) fn parse_json(raw: &str, what: &str) -> Result<serde_json::Value, Failure> {
    serde_json::from_str(raw).map_err(|e| Failure::usage(format!("{what} is not JSON: {e}")))
}

pub(crate) fn parse_headers(raw: &[String]) -> Result<Option<BTreeMap<String, String>>, Failure> {
    if raw.is_empty() {
        return Ok(None);
    }
    raw.iter()
        .map(|h| {
            h.split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| Failure::usage(format!("--header {h:?} is not NAME:VALUE")))
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// `now - ago`, for `--since 2h`.
pub(crate) fn ago(duration: Option<Duration>) -> Option<DateTime<Utc>> {
    duration.and_then(|d| chrono::TimeDelta::from_std(d).ok().map(|d| Utc::now() - d))
}
