//! Upgrades: a database an older release wrote keeps what it held once the
//! new release has migrated it, and a downgrade's undoing loses nothing.

use crate::helpers::spawn_app_on;
use callback_testkit::{Backend, TestDatabase};
use serde_json::{json, Value};
use std::sync::Arc;

/// Migrations up to the one that moved failure times and idempotency keys
/// out of `tasks`.
const BEFORE_SPARSE_INDEXES: u32 = 4;

const FAILED_ID: &str = "0193a0a0a0a07000800000000000f001";
const KEYED_ID: &str = "0193a0a0a0a07000800000000000f002";

/// A task row written behind the server's back. `failed_at` is a column
/// of `tasks` only before the move, so it is named only when given.
fn task_row(id: &str, status: &str, key: Option<&str>, now: i64, failed_at: Option<i64>) -> String {
    let key = key.map_or("NULL".into(), |k| format!("'{k}'"));
    let (column, value) = failed_at.map_or((String::new(), String::new()), |t| {
        (", failed_at".into(), format!(", {t}"))
    });
    format!(
        "INSERT INTO tasks (id, status, url, method, headers, query, max_attempts, timeout_ms, \
         attempts_made, attempts_base, next_attempt_at, created_at, updated_at, url_host, \
         idempotency_key{column}) VALUES (X'{id}', '{status}', 'http://127.0.0.1:1/old', \
         'POST', '[]', '[]', 1, 5000, 1, 0, NULL, {now}, {now}, '127.0.0.1', {key}{value})"
    )
}

#[derive(PartialEq)]
enum Schema {
    BeforeTheMove,
    AfterTheMove,
}

/// Writes a task that failed at `failed_at` and a succeeded one that took
/// the key `order-42`, where `schema` keeps them.
async fn seed(db: &TestDatabase, now: i64, failed_at: i64, schema: Schema) {
    let before = schema == Schema::BeforeTheMove;
    db.execute(&task_row(
        FAILED_ID,
        "failed",
        None,
        now,
        before.then_some(failed_at),
    ))
    .await;
    db.execute(&task_row(
        KEYED_ID,
        "succeeded",
        Some("order-42"),
        now,
        None,
    ))
    .await;
    if !before {
        db.execute(&format!(
            "INSERT INTO task_failures (task_id, failed_at) VALUES (X'{FAILED_ID}', {failed_at})"
        ))
        .await;
        db.execute(&format!(
            "INSERT INTO idempotency_keys (idempotency_key, task_id) \
             VALUES ('order-42', X'{KEYED_ID}')"
        ))
        .await;
    }
}

async fn failure_times_and_idempotency_keys_survive_the_upgrade(backend: Backend) {
    let db = Arc::new(TestDatabase::create(backend).await);
    db.migrate_first(BEFORE_SPARSE_INDEXES).await;
    let now = chrono::Utc::now().timestamp_millis();
    let failed_at = now - 60_000;
    seed(&db, now, failed_at, Schema::BeforeTheMove).await;

    let app = spawn_app_on(db, |_| {}).await;
    let buckets = app.failed_buckets().await;
    assert_eq!(
        buckets["items"].as_array().map(Vec::len),
        Some(1),
        "{buckets}"
    );
    assert_eq!(buckets["items"][0]["size"], 1, "{buckets}");

    let from = chrono::DateTime::from_timestamp_millis(failed_at).unwrap();
    let (status, counted) = app
        .send_json(
            "POST",
            "/api/v1/tasks/retry",
            &json!({"failed_from": from.to_rfc3339(), "dry_run": true}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(counted["matched"], 1, "{counted}");

    let again = app
        .post_task(&json!({"url": "https://example.com/x", "idempotency_key": "order-42"}))
        .await;
    assert_eq!(again.status(), 200, "the key still names the old task");
    let body: Value = again.json().await.unwrap();
    let old_id = uuid::Uuid::parse_str(KEYED_ID).unwrap();
    assert_eq!(body["task_id"], old_id.to_string());
    app.stop().await;
}

async fn the_move_can_be_undone_with_nothing_lost(backend: Backend) {
    let db = Arc::new(TestDatabase::create(backend).await);
    db.migrate_first(BEFORE_SPARSE_INDEXES + 1).await;
    let now = chrono::Utc::now().timestamp_millis();
    let failed_at = now - 60_000;
    seed(&db, now, failed_at, Schema::AfterTheMove).await;

    db.migrate_down(1).await;
    let restored = db
        .query_i64(&format!(
            "SELECT failed_at FROM tasks WHERE id = X'{FAILED_ID}'"
        ))
        .await;
    assert_eq!(restored, Some(failed_at));
    let duplicate = task_row(
        "0193a0a0a0a07000800000000000f003",
        "pending",
        Some("order-42"),
        now,
        None,
    );
    assert!(
        !db.try_execute(&duplicate).await,
        "the unique index on tasks guards the key again"
    );
}

/// Columns of the index `name` on `tasks`.
async fn index_columns(db: &TestDatabase, backend: Backend, name: &str) -> Option<i64> {
    let sql = match backend {
        Backend::Sqlite => format!("SELECT COUNT(*) FROM pragma_index_info('{name}')"),
        Backend::Mysql => format!(
            "SELECT COUNT(*) FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND table_name = 'tasks' AND index_name = '{name}'"
        ),
    };
    db.query_i64(&sql).await
}

/// On SQLite the filter indexes gain the id, and lose it again when the
/// migration is undone; MariaDB's stay as they were (InnoDB appends the
/// key to them already).
/// Columns of a filter's index alone, and of its index with the id.
async fn filter_indexes(
    db: &TestDatabase,
    backend: Backend,
    column: &str,
) -> (Option<i64>, Option<i64>) {
    let alone = index_columns(db, backend, &format!("ix_tasks_{column}")).await;
    let with_id = index_columns(db, backend, &format!("ix_tasks_{column}_id")).await;
    (alone, with_id)
}

/// Columns of the endpoint index on every task, and of the one on event
/// tasks only.
async fn endpoint_indexes(db: &TestDatabase, backend: Backend) -> (Option<i64>, Option<i64>) {
    (
        index_columns(db, backend, "ix_tasks_endpoint").await,
        index_columns(db, backend, "ix_tasks_endpoint_set").await,
    )
}

async fn the_filter_indexes_order_by_id_and_can_be_put_back(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    db.migrate_first(BEFORE_SPARSE_INDEXES + 2).await;
    for column in ["status", "source_app", "target_app"] {
        let expected = match backend {
            Backend::Sqlite => (Some(0), Some(2)),
            Backend::Mysql => (Some(1), Some(0)),
        };
        assert_eq!(
            filter_indexes(&db, backend, column).await,
            expected,
            "{column}"
        );
    }
    let every_task = (Some(1), Some(0));
    assert_eq!(endpoint_indexes(&db, backend).await, every_task);
    // The next migration: on SQLite, the endpoint index keeps its one
    // column and holds only the tasks that have an endpoint.
    db.migrate_first(1).await;
    let expected = match backend {
        Backend::Sqlite => (Some(0), Some(1)),
        Backend::Mysql => every_task,
    };
    assert_eq!(endpoint_indexes(&db, backend).await, expected);
    db.migrate_down(1).await;
    assert_eq!(endpoint_indexes(&db, backend).await, every_task);
    db.migrate_down(1).await;
    for column in ["status", "source_app", "target_app"] {
        assert_eq!(
            filter_indexes(&db, backend, column).await,
            (Some(1), Some(0)),
            "{column}"
        );
    }
}

/// For a while the partial endpoint index was made by the filter indexes'
/// migration: a SQLite database migrated then has it already, and the
/// migration that makes it now leaves it as it is, and can be undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_the_partial_endpoint_index_already_migrates() {
    let backend = Backend::Sqlite;
    let db = TestDatabase::create(backend).await;
    db.migrate_first(BEFORE_SPARSE_INDEXES + 2).await;
    db.execute("CREATE INDEX ix_tasks_endpoint_set ON tasks (endpoint) WHERE endpoint IS NOT NULL")
        .await;
    db.execute("DROP INDEX ix_tasks_endpoint").await;
    db.migrate_first(1).await;
    assert_eq!(endpoint_indexes(&db, backend).await, (Some(0), Some(1)));
    db.migrate_down(1).await;
    assert_eq!(endpoint_indexes(&db, backend).await, (Some(1), Some(0)));
}

on_every_backend!(
    failure_times_and_idempotency_keys_survive_the_upgrade,
    the_move_can_be_undone_with_nothing_lost,
    the_filter_indexes_order_by_id_and_can_be_put_back
);
