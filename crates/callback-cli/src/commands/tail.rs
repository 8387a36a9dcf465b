//! Attempts as they happen.

use crate::output::or_dash;
use crate::{Context, Failure};
use clap::Args;
use std::io::Write;

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only tasks of this source application.
    #[arg(long)]
    app: Option<String>,
    /// Only receivers containing this text (a host, or endpoint:NAME).
    #[arg(long)]
    receiver: Option<String>,
    /// Only failed attempts.
    #[arg(long)]
    failed: bool,
}

pub(super) async fn tail(ctx: &Context, args: &TailArgs) -> Result<(), Failure> {
    let filter = callback_client::TailFilter {
        app: args.app.clone(),
        receiver: args.receiver.clone(),
        failed: args.failed.then_some(true),
    };
    let mut events = std::pin::pin!(ctx.client.tail(&filter).await?);
    if !ctx.json {
        eprintln!("attempts as they happen; Ctrl-C to stop");
    }
    while let Some(event) = futures_util::StreamExt::next(&mut events).await {
        match event? {
            callback_client::TailEvent::Attempt(attempt) if ctx.json => {
                println!("{}", serde_json::to_string(&attempt).unwrap_or_default());
            }
            callback_client::TailEvent::Attempt(a) => println!(
                "{}  {}  #{}  {}  {}  {} ms  {}",
                a.started_at.format("%H:%M:%S%.3f"),
                a.task_id,
                a.attempt,
                a.receiver,
                or_dash(a.status_code),
                a.duration_ms,
                a.error.as_deref().unwrap_or(&a.outcome)
            ),
            callback_client::TailEvent::Missed(n) => {
                eprintln!("... {n} attempt(s) missed: too slow a reader")
            }
        }
        let _ = std::io::stdout().flush();
    }
    Err(Failure {
        code: 3,
        message: "the server closed the stream".into(),
    })
}
