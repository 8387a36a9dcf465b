//! Bulk operations and retention: 5,000 failed tasks re-sent by filter,
//! cancel with a dry run first, filters that must say something, and old
//! finished tasks purged from a real store.

use crate::helpers::{refused_url, spawn_app_with};
use callback_core::{StoreError, TaskStatus};
use callback_delivery::{purge_once, RetentionConfig};
use callback_testkit::{Backend, Receiver, Reply};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_failed_tasks_are_resent_by_filter() {
    let app = Arc::new(
        spawn_app_with(Backend::Sqlite, |s| {
            s.breaker.failure_threshold = 1_000_000;
        })
        .await,
    );
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(500));
    let mut submitters = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (app, url) = (app.clone(), receiver.url("/bulk"));
        submitters.spawn(async move {
            for _ in 0..625 {
                app.submit(json!({"url": url, "max_attempts": 1, "target_app": "bulk"}))
                    .await;
            }
        });
    }
    while submitters.join_next().await.is_some() {}
    let filter = json!({"status": "failed", "target_app": "bulk", "dry_run": true});
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (status, counted) = app.send_json("POST", "/api/v1/tasks/retry", &filter).await;
        assert_eq!(status, 200);
        assert_eq!(counted["acted"], 0, "a dry run acts on nothing");
        if counted["matched"] == 5000 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{counted}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    receiver.set_default(Reply::status(200));
    let (status, resent) = app
        .send_json(
            "POST",
            "/api/v1/tasks/retry",
            &json!({"status": "failed", "target_app": "bulk"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(resent["matched"], 5000);
    assert_eq!(resent["acted"], 5000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while receiver.successes_by_task().len() < 5000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every task was re-sent"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, left) = app
        .send_json(
            "POST",
            "/api/v1/tasks/retry",
            &json!({"status": "failed", "target_app": "bulk", "dry_run": true}),
        )
        .await;
    assert_eq!(left["matched"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_cancel_counts_first_and_filters_must_say_something() {
    let app = spawn_app_with(Backend::Mysql, |_| {}).await;
    let receiver = Receiver::start().await;
    let mut later = Vec::new();
    for _ in 0..5 {
        later.push(
            app.submit(
                json!({"url": receiver.url("/later"), "delay_s": 3600, "source_app": "cron"}),
            )
            .await,
        );
    }
    let other = app
        .submit(json!({"url": receiver.url("/other"), "delay_s": 3600, "source_app": "web"}))
        .await;
    let (status, dry) = app
        .send_json(
            "POST",
            "/api/v1/tasks/cancel",
            &json!({"source_app": "cron", "url_host": "127.0.0.1", "dry_run": true}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (dry["matched"].as_u64(), dry["acted"].as_u64()),
        (Some(5), Some(0))
    );
    assert_eq!(app.task(&later[0]).await["status"], "pending");

    let (_, done) = app
        .send_json(
            "POST",
            "/api/v1/tasks/cancel",
            &json!({"source_app": "cron"}),
        )
        .await;
    assert_eq!(done["acted"], 5);
    for id in &later {
        assert_eq!(app.task(id).await["status"], "cancelled");
    }
    assert_eq!(app.task(&other).await["status"], "pending");

    let (status, problem) = app
        .send_json("POST", "/api/v1/tasks/cancel", &json!({"dry_run": true}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["field"], "filter");
    let (status, problem) = app
        .send_json("POST", "/api/v1/tasks/retry", &json!({"status": "done"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["field"], "status");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_old_finished_tasks_with_their_attempts_on_sqlite() {
    retention_purges_old_finished_tasks_with_their_attempts(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_old_finished_tasks_with_their_attempts_on_mysql() {
    retention_purges_old_finished_tasks_with_their_attempts(Backend::Mysql).await;
}

async fn retention_purges_old_finished_tasks_with_their_attempts(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let receiver = Receiver::start().await;
    let done = app
        .submit(json!({"url": receiver.url("/ok"), "idempotency_key": "order-8"}))
        .await;
    let failed = app
        .submit(json!({"url": refused_url(), "max_attempts": 1, "idempotency_key": "order-9"}))
        .await;
    let pending = app
        .submit(json!({"url": receiver.url("/later"), "delay_s": 3600}))
        .await;
    let cancelled = app
        .submit(
            json!({"url": receiver.url("/never"), "delay_s": 3600, "idempotency_key": "order-10"}),
        )
        .await;
    let cancel = app.post(&format!("/api/v1/tasks/{cancelled}/cancel")).await;
    assert_eq!(cancel.status(), 200);
    app.wait_for_status(&done, "succeeded", Duration::from_secs(10))
        .await;
    app.wait_for_status(&failed, "failed", Duration::from_secs(10))
        .await;
    let buckets = app.failed_buckets().await;
    assert_eq!(buckets["items"][0]["size"], 1, "{buckets}");
    // Made before the cutoff, finished after it: kept until its own time.
    let late = app
        .submit(json!({"url": receiver.url("/late"), "delay_s": 1}))
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = chrono::Utc::now();
    app.wait_for_status(&late, "succeeded", Duration::from_secs(10))
        .await;

    let store = callback_store::connect(&callback_store::StoreOptions {
        url: app.db.url.clone(),
        max_connections: 2,
        connect_timeout: Duration::from_secs(5),
        group_commit: None,
    })
    .await
    .unwrap();
    let keep_everything = RetentionConfig {
        succeeded: None,
        failed: None,
        cancelled: None,
        buckets: chrono::TimeDelta::days(3),
        interval: Duration::from_secs(3600),
    };
    let stop = CancellationToken::new();
    assert_eq!(
        purge_once(&store, &keep_everything, &stop).await.unwrap(),
        0
    );
    let finished_before_cutoff =
        callback_core::OperatorStore::purge(&store, TaskStatus::Succeeded, cutoff, 1000).await;
    assert_eq!(
        finished_before_cutoff.unwrap(),
        1,
        "only {done} is old enough"
    );
    assert_eq!(app.task(&late).await["status"], "succeeded");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let purge_now = RetentionConfig {
        succeeded: Some(chrono::TimeDelta::zero()),
        failed: Some(chrono::TimeDelta::zero()),
        cancelled: Some(chrono::TimeDelta::zero()),
        ..keep_everything
    };
    assert_eq!(purge_once(&store, &purge_now, &stop).await.unwrap(), 3);
    for id in [&done, &failed, &late, &cancelled] {
        let gone = app.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(gone.status(), 404);
    }
    let buckets = app.failed_buckets().await;
    assert_eq!(
        buckets["items"],
        json!([]),
        "purged failures leave no bucket"
    );
    for key in ["order-8", "order-9", "order-10"] {
        let again = app
            .post_task(
                &json!({"url": receiver.url("/again"), "delay_s": 3600, "idempotency_key": key}),
            )
            .await;
        assert_eq!(again.status(), 201, "a purged task frees its key {key}");
    }
    assert_eq!(
        app.task(&pending).await["status"],
        "pending",
        "unfinished tasks stay"
    );
    let leftover: Result<u64, StoreError> =
        callback_core::OperatorStore::purge(&store, TaskStatus::Succeeded, chrono::Utc::now(), 10)
            .await;
    assert_eq!(leftover.unwrap(), 0);
    app.stop().await;
}
