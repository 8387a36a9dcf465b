//! The plans SQLite chooses for the reads that must stay fast at millions
//! of rows, checked on the migrated schema: each test names the index a
//! read must use and the sort it must not need. They span every aggregate,
//! so they live together here rather than beside one of them.

use crate::connection::{in_memory_store, SqlTaskStore};
use crate::entities::task;
use crate::tasks::{due_scan, scheduled_scan, task_page};
use callback_core::{PageRequest, TaskFilter, TaskId, TaskStatus};
use chrono::Utc;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
    Statement,
};

/// SQLite's plan for `statement`, its steps joined by "; ".
async fn sqlite_plan(store: &SqlTaskStore, statement: Statement) -> String {
    let explain = Statement {
        sql: format!("EXPLAIN QUERY PLAN {}", statement.sql),
        ..statement
    };
    let steps: Vec<String> = store
        .db
        .query_all(explain)
        .await
        .expect("explained")
        .iter()
        .map(|row| row.try_get::<String>("", "detail").expect("detail"))
        .collect();
    steps.join("; ")
}

/// SQLite's own plan, on the migrated schema: without the hint it read
/// every live task through the status index and sorted them.
#[tokio::test]
async fn sqlite_reads_due_tasks_through_the_due_time_index_without_sorting() {
    let store = in_memory_store().await;
    let now = Utc::now();
    for scan in [
        due_scan(DbBackend::Sqlite, now, 10),
        scheduled_scan(DbBackend::Sqlite, now, 10),
    ] {
        let plan = sqlite_plan(&store, scan).await;
        assert!(
            plan.contains("USING INDEX ix_tasks_next_attempt_at"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}

/// A page of tasks filtered by status or app reads that filter's
/// index in id order: before, SQLite read every match and sorted them.
#[tokio::test]
async fn sqlite_reads_a_filtered_page_in_id_order_without_sorting() {
    let store = in_memory_store().await;
    let filters = [
        TaskFilter {
            status: Some(TaskStatus::Failed),
            ..TaskFilter::default()
        },
        TaskFilter {
            source_app: Some("shop".into()),
            ..TaskFilter::default()
        },
        TaskFilter {
            target_app: Some("billing".into()),
            ..TaskFilter::default()
        },
    ];
    for filter in filters {
        for after in [None, Some(TaskId::new())] {
            let page = PageRequest { after, limit: 50 };
            let plan = sqlite_plan(&store, task_page(&filter, page).build(DbBackend::Sqlite)).await;
            assert!(plan.contains("USING INDEX ix_tasks_"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}

/// The endpoint index holds only event tasks on SQLite, and still
/// serves the queries that pick an endpoint's tasks.
#[tokio::test]
async fn sqlite_finds_an_endpoints_tasks_through_its_partial_index() {
    let store = in_memory_store().await;
    let waiting = task::Entity::find()
        .select_only()
        .column(task::Column::Id)
        .filter(task::Column::Endpoint.eq("orders"))
        .filter(task::Column::Status.is_in(["pending", "retrying"]))
        .filter(task::Column::NextAttemptAt.gt(0))
        .build(DbBackend::Sqlite);
    let plan = sqlite_plan(&store, waiting).await;
    assert!(plan.contains("USING INDEX ix_tasks_endpoint_set"), "{plan}");
}

/// An alert check starts from the failure times' window: it read every
/// failed task through the status index before.
#[tokio::test]
async fn sqlite_finds_a_hooks_failures_through_their_time_window() {
    use callback_core::{AlertHook, AlertHookId, AlertKind, TargetUrl};
    let store = in_memory_store().await;
    let now = Utc::now();
    let hook = AlertHook {
        id: AlertHookId::new(),
        kind: AlertKind::Webhook,
        url: TargetUrl::parse("http://127.0.0.1:9/alerts").expect("url"),
        secret: None,
        remark: None,
        enabled: true,
        source_app: Some("shop".into()),
        target_app: None,
        created_at: now,
        updated_at: now,
    };
    let since = now - chrono::TimeDelta::minutes(5);
    for statement in [
        crate::alerts::failures_by_host(&hook, since, now).build(DbBackend::Sqlite),
        crate::alerts::failure_examples(&hook, since, now).build(DbBackend::Sqlite),
    ] {
        // The unary plus applies to the column itself.
        for column in ["status", "source_app"] {
            let unindexed = format!("(+\"tasks\".\"{column}\") = ?");
            assert!(statement.sql.contains(&unindexed), "{}", statement.sql);
        }
        let plan = sqlite_plan(&store, statement).await;
        assert!(
            plan.starts_with("SEARCH task_failures USING INDEX ix_task_failures_failed_at"),
            "{plan}"
        );
        assert!(!plan.contains("ix_tasks_status"), "{plan}");
        assert!(!plan.contains("ix_tasks_source_app"), "{plan}");
    }
}

/// Retention's read of succeeded tasks is a range of the status
/// index up to the first id of the cutoff: before, a pass with nothing
/// left to delete read every succeeded task. Failed tasks are found
/// through their failure times.
#[tokio::test]
async fn sqlite_finds_purgeable_tasks_without_reading_newer_ones() {
    let store = in_memory_store().await;
    let before = Utc::now() - chrono::TimeDelta::days(7);
    let succeeded =
        crate::operations::purgeable(TaskStatus::Succeeded, before, 1000).build(DbBackend::Sqlite);
    let plan = sqlite_plan(&store, succeeded).await;
    assert_eq!(
        plan, "SEARCH tasks USING INDEX ix_tasks_status_id (status=? AND id<?)",
        "{plan}"
    );
    let failed =
        crate::operations::purgeable(TaskStatus::Failed, before, 1000).build(DbBackend::Sqlite);
    let plan = sqlite_plan(&store, failed).await;
    assert!(plan.contains("(status=? AND id=?)"), "{plan}");
    assert!(
        plan.contains("SEARCH task_failures USING INDEX ix_task_failures_failed_at"),
        "{plan}"
    );
}

/// The failed buckets are counted from the failure times' window: before,
/// every failed task was read through the status index.
#[tokio::test]
async fn sqlite_counts_failed_buckets_from_their_time_window() {
    let store = in_memory_store().await;
    let since = Utc::now() - chrono::TimeDelta::days(3);
    let sizes = crate::operations::failed_bucket_sizes(
        DbBackend::Sqlite,
        callback_core::BucketClock::utc(),
        since,
    );
    let plan = sqlite_plan(&store, sizes).await;
    assert!(
        plan.starts_with("SEARCH f USING INDEX ix_task_failures_failed_at (failed_at>?)"),
        "{plan}"
    );
    assert!(!plan.contains("ix_tasks_status"), "{plan}");
}
