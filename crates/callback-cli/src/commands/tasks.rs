//! One task at a time: submit, get, list, re-send, cancel, wait.

use super::{parse_headers, parse_json};
use crate::output::{self, or_dash, table, time};
use crate::{Context, Failure};
use callback_client::{NewTask, Task, TaskFilter};
use clap::{Args, Subcommand};
use futures_util::TryStreamExt;
use std::time::Duration;

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
    /// Tasks with the same key are delivered one at a time, in the order
    /// they were accepted.
    #[arg(long)]
    ordering_key: Option<String>,
    /// With --ordering-key: what a failure for good does to the tasks
    /// behind it.
    #[arg(long, value_parser = ["block", "skip"], requires = "ordering_key")]
    on_failure: Option<String>,
    /// Wait until the task succeeded or failed.
    #[arg(long)]
    wait: bool,
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// pending, waiting, delivering, retrying, succeeded, failed,
    /// cancelled or held.
    #[arg(long)]
    status: Option<String>,
    /// The source application.
    #[arg(long = "app")]
    source_app: Option<String>,
    #[arg(long)]
    target_app: Option<String>,
    /// The receiver's host, e.g. pay.example.com.
    #[arg(long = "host")]
    url_host: Option<String>,
    /// A part of the URL (no index serves it: combine with another filter).
    #[arg(long = "url-contains")]
    url_contains: Option<String>,
    #[arg(long = "idempotency-key")]
    idempotency_key: Option<String>,
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
    if let Some(key) = &task.ordering_key {
        println!(
            "ordering  {key} (on failure: {})",
            or_dash(task.on_failure.as_deref())
        );
    }
    if let Some(first) = &task.waiting_for {
        println!("waits for {first}");
    }
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

pub(super) async fn task(ctx: &Context, command: &TaskCommand) -> Result<(), Failure> {
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
                ordering_key: args.ordering_key.clone(),
                on_failure: args.on_failure.clone(),
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
                url_host: args.url_host.clone(),
                url_contains: args.url_contains.clone(),
                idempotency_key: args.idempotency_key.clone(),
                limit: Some(args.limit),
                ..TaskFilter::default()
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
