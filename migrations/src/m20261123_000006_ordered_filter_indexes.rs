//! On SQLite, the indexes that operators filter tasks by also order them by
//! id, and the app indexes hold only the tasks that have an app:
//! `ix_tasks_status_id` on `(status, id)`, `ix_tasks_source_app_id` on
//! `(source_app, id)` where it is set, the same for `target_app`; they
//! replace the indexes on the column alone. The endpoint index, which only
//! event tasks fill, holds only them too (`ix_tasks_endpoint_set`).
//!
//! Task lists are pages in id order (newest first, keyset by id). InnoDB
//! appends the primary key to every secondary index, so on MariaDB
//! `ix_tasks_status` already reads a status's tasks in id order and a page
//! costs its own rows. SQLite appends the rowid instead, so a page of
//! failed tasks read every failed task and sorted them: 0.44 s a page with
//! 200,000 kept (and failed tasks are kept for ever by default). The wider
//! entries cost every task's writes; most tasks have no app and no
//! endpoint, and a partial index (which MariaDB lacks) spares them those
//! three entries. MariaDB's indexes are left as they are.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The index on the column alone, and its replacement.
const INDEXES: [(&str, &str); 4] = [
    (
        "CREATE INDEX ix_tasks_status ON tasks (status)",
        "CREATE INDEX ix_tasks_status_id ON tasks (status, id)",
    ),
    (
        "CREATE INDEX ix_tasks_source_app ON tasks (source_app)",
        "CREATE INDEX ix_tasks_source_app_id ON tasks (source_app, id) \
         WHERE source_app IS NOT NULL",
    ),
    (
        "CREATE INDEX ix_tasks_target_app ON tasks (target_app)",
        "CREATE INDEX ix_tasks_target_app_id ON tasks (target_app, id) \
         WHERE target_app IS NOT NULL",
    ),
    (
        "CREATE INDEX ix_tasks_endpoint ON tasks (endpoint)",
        "CREATE INDEX ix_tasks_endpoint_set ON tasks (endpoint) \
         WHERE endpoint IS NOT NULL",
    ),
];

/// The name a `CREATE INDEX` statement gives.
fn name(create: &str) -> &str {
    create.split_whitespace().nth(2).unwrap_or_default()
}

/// Makes each index of `to` (`INDEXES`' second column going up, its first
/// going down), then drops the one it replaces. The new index is made
/// first, under a name of its own: dropping an index and creating one of
/// the same name failed with "already exists" when the server migrated a
/// database from before the sparse indexes (the migrator's statements may
/// each take another connection of the pool).
async fn replace(manager: &SchemaManager<'_>, up: bool) -> Result<(), DbErr> {
    if manager.get_database_backend() != DatabaseBackend::Sqlite {
        return Ok(());
    }
    let db = manager.get_connection();
    for (alone, with_id) in INDEXES {
        let (make, drop) = if up {
            (with_id, alone)
        } else {
            (alone, with_id)
        };
        db.execute_unprepared(make).await?;
        db.execute_unprepared(&format!("DROP INDEX {}", name(drop)))
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(manager, false).await
    }
}
