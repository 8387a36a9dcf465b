//! On SQLite, the endpoint index holds only the tasks that have an
//! endpoint (event tasks), as the app indexes hold only tasks with an app
//! (`m20261123_000006`): most tasks have none, and each paid an entry in
//! it. MariaDB lacks partial indexes; its index is left as it is.
//!
//! For a while this change was part of `m20261123_000006` itself, so a
//! database migrated then has the partial index already; the swap leaves
//! it as it is.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const ENDPOINT: [(&str, &str); 1] = [(
    "CREATE INDEX ix_tasks_endpoint ON tasks (endpoint)",
    "CREATE INDEX ix_tasks_endpoint_set ON tasks (endpoint) WHERE endpoint IS NOT NULL",
)];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::sqlite_indexes::swap(manager, &ENDPOINT, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::sqlite_indexes::swap(manager, &ENDPOINT, false).await
    }
}
