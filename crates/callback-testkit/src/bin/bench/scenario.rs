//! The scenarios, in the order the table lists them: intake, batch intake,
//! end to end, drain, paced CPU cost, and a million tasks scheduled.

use crate::load::{paced, Submitter};
use crate::receiver::Counter;
use crate::report::{ms, peak_rss_mib, percentile, CpuMeter, Row};
use crate::{Cli, Store, DUE_HEADER, FAR_DELAY_S, TOKEN};
use actix_web::web;
use callback_core::lock;
use callback_testkit::{Backend, ServerProcess, TestDatabase, TestRedis, TEST_CA_FILE};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub(crate) async fn measure(
    cli: &Cli,
    store: Store,
    receiver: &Counter,
) -> anyhow::Result<(Vec<Row>, bool)> {
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
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if cli.tls {
        env.push(("CBC__DELIVERY__EXTRA_CA_FILE".into(), TEST_CA_FILE.into()));
    }
    if let Some(redis) = &redis {
        env.push(("CBC__REDIS__URL".into(), redis.url.clone()));
        env.push(("CBC__REDIS__KEY_PREFIX".into(), redis.prefix.clone()));
    }
    let server = ServerProcess::start(&cli.binary, &env).await;
    let pid = server.pid().unwrap_or(0);
    let cpu = CpuMeter::new(
        pid,
        match store {
            Store::Sqlite => "",
            Store::Mariadb => "mariadbd",
        },
    );
    const CPU_ROW: &str = "CPU us per task: server / db / redis / bench";
    let task =
        json!({"url": receiver.urls("/bench")[0], "body": {"order": 42, "items": [1, 2, 3]}});
    let submitter = Submitter {
        address: server.address.clone(),
        targets: receiver.urls("/bench"),
        template: task.clone(),
        ordering_keys: 0,
    };
    let mut rows = Vec::new();
    let mut lost = false;

    // Intake only: tasks due later, so that no delivery competes.
    let mut run = submitter
        .submit(cli.intake_tasks, 32, Some(FAR_DELAY_S))
        .await;
    rows.push(Row {
        figure: "intake only, 32 clients (tasks/s, p50 / p99 ms)".into(),
        value: run.summary(),
    });
    // The 128-client run's tasks are the drain backlog. Each asks for the
    // delay that makes it due in the same second, whenever it is sent
    // (delays are whole seconds): it comes due between `due` and a second
    // later, not spread over the run.
    let delay_s = 5 + u64::try_from(cli.intake_tasks / 2000).unwrap_or(60);
    let due = Instant::now() + Duration::from_secs(delay_s);
    let due_wall = std::time::SystemTime::now() + Duration::from_secs(delay_s);
    let before = cpu.now();
    let mut backlog = submitter
        .submit_in_batches(cli.intake_tasks, 1, 128, move |_| {
            let left = due_wall
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            Some(left.as_secs_f64().ceil() as u64)
        })
        .await;
    rows.push(Row {
        figure: "intake only, 128 clients (tasks/s, p50 / p99 ms)".into(),
        value: backlog.summary(),
    });
    rows.push(Row {
        figure: format!("  {CPU_ROW}"),
        value: cpu.per_task(before, backlog.ids.len()),
    });
    let before = cpu.now();
    let (last, missing, duplicates) = receiver
        .delivered(&backlog.ids, Duration::from_secs(600))
        .await;
    let drain = last.saturating_duration_since(due);
    rows.push(Row {
        figure: format!(
            "drain, {} due within a second (deliveries/s)",
            backlog.ids.len()
        ),
        value: if backlog.elapsed >= Duration::from_secs(delay_s) || drain.is_zero() {
            "backlog not ready in time".into()
        } else {
            format!("{:.0}", backlog.ids.len() as f64 / drain.as_secs_f64())
        },
    });
    rows.push(Row {
        figure: "drain: first / 50% / 99% / last delivery after due (s)".into(),
        value: receiver.arrival_profile(due),
    });
    rows.push(Row {
        figure: format!("  {CPU_ROW}"),
        value: cpu.per_task(before, backlog.ids.len()),
    });
    rows.push(Row {
        figure: "drain: missing / duplicates / arrived on a retry".into(),
        value: format!("{missing} / {duplicates} / {}", receiver.take_retries()),
    });
    lost |= missing > 0 || duplicates > 0;

    let before = cpu.now();
    let mut batch = submitter
        .submit_in_batches(cli.batch_tasks, 100, 32, |_| Some(FAR_DELAY_S))
        .await;
    rows.push(Row {
        figure: "intake, batch API, 100 a request, 32 clients (tasks/s, p99 ms)".into(),
        value: format!(
            "{:.0}  {:.1}",
            batch.rate(),
            ms(percentile(&mut batch.latencies_us, 0.99))
        ),
    });
    rows.push(Row {
        figure: format!("  {CPU_ROW}"),
        value: cpu.per_task(before, batch.ids.len()),
    });

    let started = Instant::now();
    let before = cpu.now();
    let e2e = submitter.submit(cli.tasks, 128, None).await;
    let (last, missing, duplicates) = receiver.delivered(&e2e.ids, Duration::from_secs(600)).await;
    let elapsed = last.saturating_duration_since(started);
    rows.push(Row {
        figure: format!("end to end, {} tasks, 128 clients (tasks/s)", e2e.ids.len()),
        value: format!("{:.0}", e2e.ids.len() as f64 / elapsed.as_secs_f64()),
    });
    rows.push(Row {
        figure: format!("  {CPU_ROW}"),
        value: cpu.per_task(before, e2e.ids.len()),
    });
    rows.push(Row {
        figure: "end to end: missing / duplicates / arrived on a retry".into(),
        value: format!("{missing} / {duplicates} / {}", receiver.take_retries()),
    });
    lost |= missing > 0 || duplicates > 0 || e2e.ids.len() < cli.tasks;
    let unordered_rate = e2e.ids.len() as f64 / elapsed.as_secs_f64();
    if cli.ordered_keys > 0 {
        // The same run with every task on one of `ordered_keys` keys: each
        // key delivers one task at a time.
        let ordered = Submitter {
            address: submitter.address.clone(),
            targets: submitter.targets.clone(),
            template: task.clone(),
            ordering_keys: cli.ordered_keys,
        };
        let started = Instant::now();
        let before = cpu.now();
        let run = ordered.submit(cli.tasks, 128, None).await;
        let (last, missing, duplicates) =
            receiver.delivered(&run.ids, Duration::from_secs(600)).await;
        let took = last.saturating_duration_since(started);
        let rate = run.ids.len() as f64 / took.as_secs_f64();
        rows.push(Row {
            figure: format!(
                "end to end, ordered over {} keys, {} tasks (tasks/s, of unordered)",
                cli.ordered_keys,
                run.ids.len()
            ),
            value: format!("{rate:.0}  {:.0}%", 100.0 * rate / unordered_rate),
        });
        // Whether intake or delivery set the pace: delivery ending well
        // after the last acceptance means the keys' backlogs grew.
        rows.push(Row {
            figure: "end to end, ordered: last accepted / last delivered after (s)".into(),
            value: format!(
                "{:.2} / {:.2}",
                run.elapsed.as_secs_f64(),
                took.as_secs_f64()
            ),
        });
        rows.push(Row {
            figure: format!("  {CPU_ROW}"),
            value: cpu.per_task(before, run.ids.len()),
        });
        rows.push(Row {
            figure: "end to end, ordered: missing / duplicates / arrived on a retry".into(),
            value: format!("{missing} / {duplicates} / {}", receiver.take_retries()),
        });
        lost |= missing > 0 || duplicates > 0 || run.ids.len() < cli.tasks;
    }
    // A steady, modest rate, where groups hold one task each: what a task
    // costs when nothing shares its round trips and commits.
    const STEADY_TASKS: usize = 2_000;
    let before = cpu.now();
    let steady = paced(&submitter.address, STEADY_TASKS, || {
        // Due when sent: its lateness is its latency, submission to arrival.
        let mut timed = task.clone();
        let sent_ms = chrono::Utc::now().timestamp_millis();
        timed["headers"] = json!({ DUE_HEADER: sent_ms.to_string() });
        web::Bytes::from(timed.to_string())
    })
    .await;
    let (_, missing, duplicates) = receiver.delivered(&steady, Duration::from_secs(120)).await;
    let mut latency: Vec<i64> = std::mem::take(&mut *lock(&receiver.counts.lateness_ms));
    rows.push(Row {
        figure: format!(
            "end to end at 200 tasks/s, {} tasks: latency p50 / p99 (ms)",
            steady.len()
        ),
        value: format!(
            "{} / {}",
            percentile(&mut latency, 0.5).map_or("?".into(), |ms| ms.to_string()),
            percentile(&mut latency, 0.99).map_or("?".into(), |ms| ms.to_string())
        ),
    });
    rows.push(Row {
        figure: "end to end at 200 tasks/s: missing / duplicates / arrived on a retry".into(),
        value: format!("{missing} / {duplicates} / {}", receiver.take_retries()),
    });
    rows.push(Row {
        figure: format!("  {CPU_ROW}"),
        value: cpu.per_task(before, steady.len()),
    });
    lost |= missing > 0 || duplicates > 0 || steady.len() < STEADY_TASKS;
    rows.push(Row {
        figure: "peak RSS of the server so far (MiB)".into(),
        value: peak_rss_mib(pid).map_or("?".into(), |m| format!("{m:.0}")),
    });

    if cli.scheduled > 0 {
        rows.extend(scheduled(cli, &submitter, receiver, &task, pid, &mut lost).await);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok((rows, lost))
}

/// Keeps `cli.scheduled` tasks scheduled (those already far off count),
/// then sends probe tasks due a few seconds later and measures how late
/// they arrive, and the server's peak RSS.
pub(crate) async fn scheduled(
    cli: &Cli,
    submitter: &Submitter,
    receiver: &Counter,
    task: &Value,
    pid: u32,
    lost: &mut bool,
) -> Vec<Row> {
    let already = cli.intake_tasks + cli.batch_tasks;
    let more = cli.scheduled.saturating_sub(already);
    // Due over the next hours, spread out as retries would be.
    let filled = submitter
        .submit_in_batches(more, 100, 16, |i| Some(3_600 + (i % 7_200) as u64))
        .await;
    let total = already.min(cli.scheduled) + filled.ids.len();

    const PROBES: usize = 2_000;
    const PROBE_DELAY_S: i64 = 3;
    let probes = paced(&submitter.address, PROBES, || {
        let due_ms = chrono::Utc::now().timestamp_millis() + PROBE_DELAY_S * 1000;
        let mut probe = task.clone();
        probe["delay_s"] = json!(PROBE_DELAY_S);
        probe["headers"] = json!({ DUE_HEADER: due_ms.to_string() });
        web::Bytes::from(probe.to_string())
    })
    .await;
    let (_, missing, duplicates) = receiver.delivered(&probes, Duration::from_secs(120)).await;
    *lost |= missing > 0 || duplicates > 0 || probes.len() < PROBES;
    let mut late: Vec<i64> = std::mem::take(&mut *lock(&receiver.counts.lateness_ms));
    let show = |v: Option<i64>| v.map_or("?".to_string(), |ms| ms.to_string());
    vec![
        Row {
            figure: format!(
                "{total} scheduled: {} probes due meanwhile, missing / duplicates",
                probes.len()
            ),
            value: format!("{missing} / {duplicates}"),
        },
        Row {
            figure: format!("{total} scheduled: probe lateness p50 / p99 (ms)"),
            value: format!(
                "{} / {}",
                show(percentile(&mut late, 0.5)),
                show(percentile(&mut late, 0.99))
            ),
        },
        Row {
            figure: format!("{total} scheduled: peak RSS of the server (MiB)"),
            value: peak_rss_mib(pid).map_or("?".into(), |m| format!("{m:.0}")),
        },
    ]
}
