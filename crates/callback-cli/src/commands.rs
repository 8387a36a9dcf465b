//! Each command: its arguments, the calls it makes, what it prints.

use crate::output::{self, or_dash, table, time};
use crate::request::RawRequest;
use crate::{Command, Context, Failure};
use callback_client::verify::{verify_md5_legacy, verify_standard, StandardHeaders};
use callback_client::{
    Bulk, NewAlertHook, NewEndpoint, NewEvent, NewKey, NewRoute, NewTask, RetryBucket, Task,
    TaskFilter,
};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use futures_util::TryStreamExt;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

pub async fn run(ctx: &Context, command: &Command) -> Result<(), Failure> {
    match command {
        Command::Task(command) => task(ctx, command).await,
        Command::Replay(args) => replay(ctx, args).await,
        Command::Tail(args) => tail(ctx, args).await,
        Command::Buckets(command) => buckets(ctx, command).await,
        Command::Endpoints(command) => endpoints(ctx, command).await,
        Command::Events(command) => events(ctx, command).await,
        Command::Routes(command) => routes(ctx, command).await,
        Command::Keys(command) => keys(ctx, command).await,
        Command::Alerts(command) => alerts(ctx, command).await,
        Command::Verify(_) | Command::Completions(_) => Ok(()),
    }
}

fn parse_json(raw: &str, what: &str) -> Result<serde_json::Value, Failure> {
    serde_json::from_str(raw).map_err(|e| Failure::usage(format!("{what} is not JSON: {e}")))
}

fn parse_headers(raw: &[String]) -> Result<Option<BTreeMap<String, String>>, Failure> {
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
fn ago(duration: Option<Duration>) -> Option<DateTime<Utc>> {
    duration.and_then(|d| chrono::TimeDelta::from_std(d).ok().map(|d| Utc::now() - d))
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Submit a task: call URL until it answers success.
    Submit(SubmitArgs),
    /// Show a task with every attempt.
    Get { task_id: String },
    /// List tasks, newest first.
    List(ListArgs),
    /// Re-send a finished task with a fresh budget of attempts.
    Retry { task_id: String },
    /// Cancel a task that has not finished.
    Cancel { task_id: String },
    /// Wait until a task reaches a status; exit code 4 on timeout.
    Wait(WaitArgs),
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The URL to call.
    #[arg(value_name = "URL")]
    target: String,
    #[arg(long, short = 'X', default_value = "POST")]
    method: String,
    /// A JSON body.
    #[arg(long, short = 'd', conflicts_with = "text")]
    data: Option<String>,
    /// A raw body, sent as is.
    #[arg(long)]
    text: Option<String>,
    /// A header, NAME:VALUE; repeatable.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Seconds before each retry, e.g. 10,60,600.
    #[arg(long, value_delimiter = ',')]
    retry_delays: Vec<u32>,
    #[arg(long)]
    timeout_ms: Option<u32>,
    #[arg(long)]
    source_app: Option<String>,
    #[arg(long)]
    target_app: Option<String>,
    /// Submitting the same key again returns the first task; generated
    /// when not given.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Wait until the task succeeded or failed.
    #[arg(long)]
    wait: bool,
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// pending, delivering, retrying, succeeded, failed or cancelled.
    #[arg(long)]
    status: Option<String>,
    /// The source application.
    #[arg(long = "app")]
    source_app: Option<String>,
    #[arg(long)]
    target_app: Option<String>,
    /// Tasks a page (1 to 200).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// The next page, from a previous listing.
    #[arg(long, conflicts_with = "all")]
    cursor: Option<String>,
    /// Every page.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    task_id: String,
    /// The statuses to wait for.
    #[arg(
        long = "for",
        value_delimiter = ',',
        default_value = "succeeded,failed,cancelled"
    )]
    statuses: Vec<String>,
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

fn print_tasks(ctx: &Context, tasks: &[Task], next: Option<&str>) {
    if ctx.json {
        output::json(&serde_json::json!({"items": tasks, "next_cursor": next}));
        return;
    }
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            vec![
                t.task_id.clone(),
                t.status.clone(),
                format!("{}/{}", t.attempts_made, t.max_attempts),
                or_dash(t.source_app.as_deref()),
                format!("{} {}", t.method, t.url),
                time(&t.created_at),
            ]
        })
        .collect();
    table(
        &["TASK", "STATUS", "ATTEMPTS", "APP", "TARGET", "CREATED"],
        &rows,
    );
    if let Some(next) = next {
        eprintln!("more: --cursor {next}");
    }
}

fn print_task(ctx: &Context, task: &Task) {
    if ctx.json {
        output::json(task);
        return;
    }
    println!("task      {}", task.task_id);
    println!("status    {}", task.status);
    println!("target    {} {}", task.method, task.url);
    println!("attempts  {} of {}", task.attempts_made, task.max_attempts);
    println!(
        "app       {} -> {}",
        or_dash(task.source_app.as_deref()),
        or_dash(task.target_app.as_deref())
    );
    println!("created   {}", time(&task.created_at));
    if let Some(next) = &task.next_attempt_at {
        println!("next      {}", time(next));
    }
    if let Some(error) = &task.last_error {
        println!("error     {error}");
    }
    if let Some(attempts) = &task.attempts {
        let rows: Vec<Vec<String>> = attempts
            .iter()
            .map(|a| {
                vec![
                    a.number.to_string(),
                    time(&a.started_at),
                    or_dash(a.status_code),
                    format!("{} ms", a.duration_ms),
                    if a.success {
                        "ok".into()
                    } else {
                        or_dash(a.error.as_deref())
                    },
                ]
            })
            .collect();
        if !rows.is_empty() {
            println!();
            table(&["#", "STARTED", "STATUS", "TOOK", "RESULT"], &rows);
        }
    }
}

async fn task(ctx: &Context, command: &TaskCommand) -> Result<(), Failure> {
    let client = &ctx.client;
    match command {
        TaskCommand::Submit(args) => {
            let task = NewTask {
                url: args.target.clone(),
                method: Some(args.method.clone()),
                headers: parse_headers(&args.headers)?,
                body: args
                    .data
                    .as_deref()
                    .map(|d| parse_json(d, "--data"))
                    .transpose()?,
                body_text: args.text.clone(),
                max_attempts: args.max_attempts,
                retry_delays_s: (!args.retry_delays.is_empty()).then(|| args.retry_delays.clone()),
                timeout_ms: args.timeout_ms,
                source_app: args.source_app.clone(),
                target_app: args.target_app.clone(),
                idempotency_key: args.idempotency_key.clone(),
                ..NewTask::default()
            };
            let submitted = client.submit(&task).await?;
            let task = if args.wait {
                client
                    .wait_for(
                        &submitted.task.task_id,
                        &["succeeded", "failed", "cancelled"],
                        args.timeout,
                    )
                    .await?
            } else {
                submitted.task
            };
            if ctx.json {
                output::json(&serde_json::json!({"created": submitted.created, "task": task}));
            } else {
                if !submitted.created {
                    eprintln!("already submitted with this idempotency key: nothing new created");
                }
                println!("{} {}", task.task_id, task.status);
            }
            if args.wait && task.status != "succeeded" {
                return Err(Failure {
                    code: 1,
                    message: format!("task {} ended {}", task.task_id, task.status),
                });
            }
            Ok(())
        }
        TaskCommand::Get { task_id } => {
            print_task(ctx, &client.task(task_id).await?);
            Ok(())
        }
        TaskCommand::List(args) => {
            let filter = TaskFilter {
                status: args.status.clone(),
                source_app: args.source_app.clone(),
                target_app: args.target_app.clone(),
                limit: Some(args.limit),
            };
            if args.all {
                let tasks: Vec<Task> = client.tasks_stream(filter).try_collect().await?;
                print_tasks(ctx, &tasks, None);
            } else {
                let page = client.tasks(&filter, args.cursor.as_deref()).await?;
                print_tasks(ctx, &page.items, page.next_cursor.as_deref());
            }
            Ok(())
        }
        TaskCommand::Retry { task_id } => {
            print_task(ctx, &client.retry_task(task_id).await?);
            Ok(())
        }
        TaskCommand::Cancel { task_id } => {
            print_task(ctx, &client.cancel_task(task_id).await?);
            Ok(())
        }
        TaskCommand::Wait(args) => {
            let statuses: Vec<&str> = args.statuses.iter().map(String::as_str).collect();
            let task = client
                .wait_for(&args.task_id, &statuses, args.timeout)
                .await?;
            print_task(ctx, &task);
            Ok(())
        }
    }
}

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

async fn replay(ctx: &Context, args: &ReplayArgs) -> Result<(), Failure> {
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
    let slices = i32::try_from(matched.div_ceil(SLICE_TASKS)).unwrap_or(i32::MAX);
    let step = (to - from) / slices;
    let mut acted = 0;
    for i in 0..slices {
        let start = from + step * i;
        let end = if i + 1 == slices { to } else { start + step };
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

async fn tail(ctx: &Context, args: &TailArgs) -> Result<(), Failure> {
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

#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// The buckets, newest first.
    List,
    /// Re-send a bucket's tasks.
    Retry {
        /// The bucket, YYYYMMDDHHmm.
        date: String,
        /// Send them here instead of their own URL.
        #[arg(long)]
        to: Option<String>,
    },
}

async fn buckets(ctx: &Context, command: &BucketCommand) -> Result<(), Failure> {
    match command {
        BucketCommand::List => {
            let buckets = ctx.client.buckets().await?;
            if ctx.json {
                output::json(&buckets);
            } else {
                let rows: Vec<Vec<String>> = buckets
                    .iter()
                    .map(|b| vec![b.date.clone(), b.size.to_string(), b.retry.to_string()])
                    .collect();
                table(&["BUCKET", "TASKS", "RE-SENT"], &rows);
            }
        }
        BucketCommand::Retry { date, to } => {
            let retried = ctx
                .client
                .retry_bucket(&RetryBucket {
                    date: date.clone(),
                    target_url: to.clone(),
                    retry: None,
                })
                .await?;
            if ctx.json {
                output::json(&retried);
            } else {
                println!(
                    "re-sent {} task(s) of bucket {}",
                    retried.queued, retried.date
                );
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    List,
    Get {
        name: String,
    },
    /// Create an endpoint; its secret is shown once.
    Create {
        name: String,
        #[arg(value_name = "URL")]
        target: String,
        /// An event type it takes; repeatable. None: every type.
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        #[arg(long)]
        app: Option<String>,
        /// standard or md5_legacy.
        #[arg(long)]
        signature: Option<String>,
    },
    Delete {
        name: String,
    },
    /// A new signing secret, shown once.
    RotateSecret {
        name: String,
    },
    Enable {
        name: String,
    },
    Disable {
        name: String,
    },
}

async fn endpoints(ctx: &Context, command: &EndpointCommand) -> Result<(), Failure> {
    let client = &ctx.client;
    let show = |endpoint: &callback_client::Endpoint| {
        if ctx.json {
            output::json(endpoint);
        } else {
            println!(
                "{} {} ({})",
                endpoint.name,
                endpoint.url,
                if endpoint.enabled {
                    "enabled"
                } else {
                    "disabled"
                }
            );
            if let Some(secret) = &endpoint.secret {
                println!("secret: {secret}  (shown once: keep it now)");
            }
        }
    };
    match command {
        EndpointCommand::List => {
            let all: Vec<callback_client::Endpoint> =
                client.endpoints_stream().try_collect().await?;
            if ctx.json {
                output::json(&all);
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|e| {
                        vec![
                            e.name.clone(),
                            e.url.clone(),
                            if e.enabled { "yes".into() } else { "no".into() },
                            if e.event_types.is_empty() {
                                "*".into()
                            } else {
                                e.event_types.join(",")
                            },
                            or_dash(e.app.as_deref()),
                        ]
                    })
                    .collect();
                table(&["NAME", "URL", "ENABLED", "EVENTS", "APP"], &rows);
            }
        }
        EndpointCommand::Get { name } => show(&client.endpoint(name).await?),
        EndpointCommand::Create {
            name,
            target,
            event_types,
            app,
            signature,
        } => {
            let endpoint = NewEndpoint {
                name: name.clone(),
                url: target.clone(),
                event_types: (!event_types.is_empty()).then(|| event_types.clone()),
                app: app.clone(),
                signature: signature.clone(),
                ..NewEndpoint::default()
            };
            show(&client.create_endpoint(&endpoint).await?);
        }
        EndpointCommand::Delete { name } => {
            client.delete_endpoint(name).await?;
            if !ctx.json {
                println!("deleted {name}");
            }
        }
        EndpointCommand::RotateSecret { name } => {
            let secret = client.rotate_secret(name).await?;
            if ctx.json {
                output::json(&secret);
            } else {
                println!("secret: {}  (shown once: keep it now)", secret.secret);
            }
        }
        EndpointCommand::Enable { name } | EndpointCommand::Disable { name } => {
            let enabled = matches!(command, EndpointCommand::Enable { .. });
            let changes = callback_client::EndpointChanges {
                enabled: Some(enabled),
                ..Default::default()
            };
            show(&client.update_endpoint(name, &changes).await?);
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Publish an event to every endpoint subscribed to its type.
    Publish {
        event_type: String,
        /// The payload, JSON.
        #[arg(long, short = 'd')]
        data: String,
        #[arg(long)]
        app: Option<String>,
        /// Publishing the same id again creates nothing; generated when
        /// not given.
        #[arg(long)]
        call_id: Option<String>,
    },
}

async fn events(ctx: &Context, command: &EventCommand) -> Result<(), Failure> {
    let EventCommand::Publish {
        event_type,
        data,
        app,
        call_id,
    } = command;
    let published = ctx
        .client
        .publish(&NewEvent {
            event_type: event_type.clone(),
            payload: parse_json(data, "--data")?,
            app: app.clone(),
            call_id: call_id.clone(),
        })
        .await?;
    if ctx.json {
        output::json(&published);
    } else {
        println!(
            "{} -> {} task(s)",
            published.call_id,
            published.task_ids.len()
        );
        for id in &published.task_ids {
            println!("  {id}");
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    List {
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Route vendor callbacks of NAMESPACE/KEY to URL (creates or replaces).
    Set {
        namespace: String,
        key: String,
        #[arg(value_name = "URL")]
        target: String,
        /// Forget the route after this long, e.g. 24h.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        #[arg(long)]
        remark: Option<String>,
    },
    Delete {
        namespace: String,
        key: String,
    },
}

async fn routes(ctx: &Context, command: &RouteCommand) -> Result<(), Failure> {
    match command {
        RouteCommand::List { namespace } => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = ctx
                    .client
                    .routes(namespace.as_deref(), cursor.as_deref())
                    .await?;
                all.extend(page.items);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            if ctx.json {
                output::json(&all);
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|r| {
                        vec![
                            r.namespace.clone(),
                            r.key.clone(),
                            r.target_url.clone(),
                            r.expires_at.as_ref().map_or_else(|| "-".into(), time),
                        ]
                    })
                    .collect();
                table(&["NAMESPACE", "KEY", "TARGET", "EXPIRES"], &rows);
            }
        }
        RouteCommand::Set {
            namespace,
            key,
            target,
            ttl,
            remark,
        } => {
            let route = ctx
                .client
                .upsert_route(&NewRoute {
                    namespace: namespace.clone(),
                    key: key.clone(),
                    target_url: target.clone(),
                    ttl_s: ttl.map(|t| u32::try_from(t.as_secs()).unwrap_or(u32::MAX)),
                    remark: remark.clone(),
                    ..NewRoute::default()
                })
                .await?;
            if ctx.json {
                output::json(&route);
            } else {
                println!("{}/{} -> {}", route.namespace, route.key, route.target_url);
            }
        }
        RouteCommand::Delete { namespace, key } => {
            ctx.client.delete_route(namespace, key).await?;
            if !ctx.json {
                println!("deleted {namespace}/{key}");
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    List,
    /// Create a key; its secret is shown once.
    Create {
        name: String,
        /// A scope, e.g. tasks:write; repeatable.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Confine the key to one application.
        #[arg(long)]
        app: Option<String>,
        /// An address or network it may be used from; repeatable.
        #[arg(long = "allow-ip")]
        allow_ips: Vec<String>,
    },
    Revoke {
        id: String,
    },
}

async fn keys(ctx: &Context, command: &KeyCommand) -> Result<(), Failure> {
    match command {
        KeyCommand::List => {
            let keys = ctx.client.keys().await?;
            if ctx.json {
                output::json(&keys);
            } else {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.id.clone(),
                            k.name.clone(),
                            k.scopes.join(","),
                            or_dash(k.app.as_deref()),
                            k.last_used_at.as_ref().map_or_else(|| "-".into(), time),
                            if k.revoked_at.is_some() {
                                "revoked".into()
                            } else {
                                "active".into()
                            },
                        ]
                    })
                    .collect();
                table(
                    &["ID", "NAME", "SCOPES", "APP", "LAST USED", "STATE"],
                    &rows,
                );
            }
        }
        KeyCommand::Create {
            name,
            scopes,
            app,
            allow_ips,
        } => {
            let created = ctx
                .client
                .create_key(&NewKey {
                    name: name.clone(),
                    scopes: scopes.clone(),
                    app: app.clone(),
                    allow_ips: allow_ips.clone(),
                    ..NewKey::default()
                })
                .await?;
            if ctx.json {
                output::json(&created);
            } else {
                println!("{} {}", created.key.id, created.key.name);
                println!("key: {}  (shown once: keep it now)", created.secret);
            }
        }
        KeyCommand::Revoke { id } => {
            let key = ctx.client.revoke_key(id).await?;
            if ctx.json {
                output::json(&key);
            } else {
                println!("revoked {} ({})", key.id, key.name);
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    List,
    /// Add a hook: dingtalk, wecom or webhook.
    Add {
        kind: String,
        #[arg(value_name = "URL")]
        target: String,
        #[arg(long)]
        secret: Option<String>,
        #[arg(long)]
        remark: Option<String>,
    },
    /// Send a test message to a hook and show what it answered.
    Test {
        hook: String,
    },
}

async fn alerts(ctx: &Context, command: &AlertCommand) -> Result<(), Failure> {
    match command {
        AlertCommand::List => {
            let hooks = ctx.client.alert_hooks().await?;
            if ctx.json {
                output::json(&hooks);
            } else {
                let rows: Vec<Vec<String>> = hooks
                    .iter()
                    .map(|h| {
                        vec![
                            h.id.clone(),
                            h.kind.clone(),
                            h.url.clone(),
                            if h.enabled { "yes".into() } else { "no".into() },
                            or_dash(h.remark.as_deref()),
                        ]
                    })
                    .collect();
                table(&["ID", "KIND", "URL", "ENABLED", "REMARK"], &rows);
            }
        }
        AlertCommand::Add {
            kind,
            target,
            secret,
            remark,
        } => {
            let hook = ctx
                .client
                .create_alert_hook(&NewAlertHook {
                    kind: kind.clone(),
                    url: target.clone(),
                    secret: secret.clone(),
                    remark: remark.clone(),
                    ..NewAlertHook::default()
                })
                .await?;
            if ctx.json {
                output::json(&hook);
            } else {
                println!("{} {} {}", hook.id, hook.kind, hook.url);
            }
        }
        AlertCommand::Test { hook } => {
            let answer = ctx.client.test_alert_hook(hook).await?;
            if ctx.json {
                output::json(&answer);
            } else {
                println!(
                    "{} (HTTP {}): {}",
                    if answer.ok { "delivered" } else { "refused" },
                    or_dash(answer.status),
                    answer
                        .error
                        .clone()
                        .unwrap_or_else(|| answer.answer.to_string())
                );
            }
            if !answer.ok {
                return Err(Failure {
                    code: 1,
                    message: "the hook did not take the test message".into(),
                });
            }
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The endpoint's secret: whsec_... (Standard Webhooks), or the legacy
    /// secret of an md5_legacy endpoint.
    #[arg(long, env = "CBC_WEBHOOK_SECRET", hide_env_values = true)]
    secret: String,
}

/// Reads a whole request on stdin and checks its signature.
pub fn verify(args: &VerifyArgs, json: bool) -> Result<(), Failure> {
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .map_err(|e| Failure::usage(format!("cannot read the request on stdin: {e}")))?;
    let request = RawRequest::parse(&raw).map_err(Failure::usage)?;
    let (scheme, verdict) = match request.header("webhook-signature") {
        Some(signature) => {
            let headers = StandardHeaders {
                id: request.header("webhook-id").unwrap_or_default(),
                timestamp: request.header("webhook-timestamp").unwrap_or_default(),
                signature,
            };
            (
                "standard",
                verify_standard(&args.secret, &headers, &request.body, Utc::now()),
            )
        }
        None => ("md5_legacy", verify_md5_legacy(&args.secret, &request.body)),
    };
    if json {
        output::json(&serde_json::json!({
            "scheme": scheme,
            "valid": verdict.is_ok(),
            "error": verdict.as_ref().err().map(ToString::to_string),
        }));
    }
    match verdict {
        Ok(()) => {
            if !json {
                println!("valid {scheme} signature");
            }
            Ok(())
        }
        Err(err) => Err(Failure {
            code: 1,
            message: format!("invalid {scheme} signature: {err}"),
        }),
    }
}
