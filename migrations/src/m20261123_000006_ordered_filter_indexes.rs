//! On SQLite, the indexes that operators filter tasks by also order them by
//! id, and the app indexes hold only the tasks that have an app:
//! `ix_tasks_status_id` on `(status, id)`, `ix_tasks_source_app_id` on
//! `(source_app, id)` where it is set, the same for `target_app`; they
//! replace the indexes on the column alone.
//!
//! Task lists are pages in id order (newest first, keyset by id). InnoDB
//! appends the primary key to every secondary index, so on MariaDB
//! `ix_tasks_status` already reads a status's tasks in id order and a page
//! costs its own rows. SQLite appends the rowid instead, so a page of
//! failed tasks read every failed task and sorted them: 0.44 s a page with
//! 200,000 kept (and failed tasks are kept for ever by default). The wider
//! entries cost every task's writes; most tasks have no app, and a partial
//! index (which MariaDB lacks) spares them those two. MariaDB's indexes
//! are left as they are.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The index on the column alone, and its replacement.
const INDEXES: [(&str, &str); 3] = [
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
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::sqlite_indexes::swap(manager, &INDEXES, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::sqlite_indexes::swap(manager, &INDEXES, false).await
    }
}
