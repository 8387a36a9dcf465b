//! Many finished tasks re-sent at once: counted, confirmed, re-sent.

use super::ago;
use crate::output;
use crate::{Context, Failure};
use callback_client::Bulk;
use chrono::{DateTime, Utc};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Which finished tasks: failed, cancelled or succeeded.
    #[arg(long, default_value = "failed")]
    status: String,
    /// Created within this long before now, e.g. 2h, 30m, 7d.
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// Created no later than this long before now.
    #[arg(long, value_parser = humantime::parse_duration)]
    until: Option<Duration>,
    /// The source application.
    #[arg(long)]
    app: Option<String>,
    #[arg(long)]
    target_app: Option<String>,
    /// The host of the task URL, e.g. pay.example.com.
    #[arg(long)]
    host: Option<String>,
    /// Send the tasks here instead of their own URL.
    #[arg(long)]
    to: Option<String>,
    /// Only count the tasks that would be re-sent.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask before re-sending.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// Tasks re-sent per call when a long replay is cut into slices of time,
/// so that it shows progress.
const SLICE_TASKS: u64 = 5_000;

pub(super) async fn replay(ctx: &Context, args: &ReplayArgs) -> Result<(), Failure> {
    let from = ago(args.since);
    let to = ago(args.until).unwrap_or_else(Utc::now);
    let filter = Bulk {
        status: Some(args.status.clone()),
        source_app: args.app.clone(),
        target_app: args.target_app.clone(),
        url_host: args.host.clone(),
        created_from: from,
        created_to: Some(to),
        target_url: args.to.clone(),
        ..Bulk::default()
    };
    let counted = ctx
        .client
        .retry_tasks(&Bulk {
            dry_run: Some(true),
            ..filter.clone()
        })
        .await?;
    let matched = counted.matched;
    if args.dry_run || matched == 0 {
        if ctx.json {
            output::json(&serde_json::json!({"matched": matched, "acted": 0, "dry_run": true}));
        } else {
            println!("{matched} task(s) would be re-sent");
        }
        return Ok(());
    }
    if !args.yes {
        confirm(&format!(
            "Re-send {matched} {} task(s){}? [y/N] ",
            args.status,
            args.to
                .as_deref()
                .map(|to| format!(" to {to}"))
                .unwrap_or_default()
        ))?;
    }
    let acted = match from {
        Some(from) if matched > SLICE_TASKS => {
            replay_in_slices(ctx, &filter, from, to, matched).await?
        }
        _ => {
            let ticker = progress_ticker(matched);
            let result = ctx.client.retry_tasks(&filter).await;
            ticker.abort();
            result?.acted
        }
    };
    if ctx.json {
        output::json(&serde_json::json!({"matched": matched, "acted": acted, "dry_run": false}));
    } else {
        println!("re-sent {acted} of {matched} task(s)");
    }
    Ok(())
}

/// Re-sends slice after slice of the creation window, printing how far it
/// got after each.
async fn replay_in_slices(
    ctx: &Context,
    filter: &Bulk,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    matched: u64,
) -> Result<u64, Failure> {
    let mut acted = 0;
    for (start, end) in slices(from, to, matched) {
        let slice = Bulk {
            created_from: Some(start),
            created_to: Some(end),
            ..filter.clone()
        };
        acted += ctx.client.retry_tasks(&slice).await?.acted;
        eprintln!(
            "re-sent {acted} of {matched} ({}%)",
            acted * 100 / matched.max(1)
        );
    }
    Ok(acted)
}

/// `[from, to)` cut into one slice per `SLICE_TASKS` matched tasks, end to
/// end (the server's window is half-open, so no task is in two).
fn slices(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    matched: u64,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let count = i32::try_from(matched.div_ceil(SLICE_TASKS).max(1)).unwrap_or(i32::MAX);
    let step = (to - from) / count;
    (0..count)
        .map(|i| {
            let start = from + step * i;
            let end = if i + 1 == count { to } else { start + step };
            (start, end)
        })
        .collect()
}

/// Says every second that the one long call is still at work.
fn progress_ticker(matched: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            eprintln!(
                "re-sending {matched} task(s)... {} s",
                started.elapsed().as_secs()
            );
        }
    })
}

/// Asks on the terminal; without one, refuses (use --yes).
fn confirm(question: &str) -> Result<(), Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::aborted(format!(
            "{} not confirmed: no terminal to ask on; run again with --yes",
            question.trim_end_matches(" [y/N] ")
        )));
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Failure::aborted(e.to_string()))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::aborted("nothing done"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_window_end_to_end_one_per_five_thousand_tasks() {
        let from = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let to = from + chrono::TimeDelta::hours(2);
        let cut = slices(from, to, 12_001);
        assert_eq!(cut.len(), 3);
        assert_eq!(cut[0].0, from);
        assert_eq!(cut[2].1, to);
        for pair in cut.windows(2) {
            assert_eq!(pair[0].1, pair[1].0, "no gap, no overlap");
        }
        assert_eq!(slices(from, to, 10).len(), 1);
    }
}
