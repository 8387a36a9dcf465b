//! Tasks and their attempts.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    Status,
    Url,
    Method,
    Headers,
    Query,
    ContentType,
    Body,
    MaxAttempts,
    RetryDelaysS,
    TimeoutMs,
    Expect,
    SourceApp,
    TargetApp,
    IdempotencyKey,
    AttemptsMade,
    AttemptsBase,
    NextAttemptAt,
    LeaseToken,
    LeaseUntil,
    LastError,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Attempts {
    Table,
    Id,
    TaskId,
    Number,
    StartedAt,
    DurationMs,
    StatusCode,
    ResponseBody,
    Error,
    Success,
}

/// Up to 4 GiB in MySQL (plain BLOB stops at 64 KiB); SQLite takes any name.
fn long_blob() -> Alias {
    Alias::new("longblob")
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Tasks::Id)
                            .binary_len(16)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Tasks::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Tasks::Url).text().not_null())
                    .col(ColumnDef::new(Tasks::Method).string_len(8).not_null())
                    .col(ColumnDef::new(Tasks::Headers).text().not_null())
                    .col(ColumnDef::new(Tasks::Query).text().not_null())
                    .col(ColumnDef::new(Tasks::ContentType).string_len(255).null())
                    .col(ColumnDef::new(Tasks::Body).custom(long_blob()).null())
                    .col(ColumnDef::new(Tasks::MaxAttempts).integer().not_null())
                    .col(ColumnDef::new(Tasks::RetryDelaysS).text().null())
                    .col(ColumnDef::new(Tasks::TimeoutMs).integer().not_null())
                    .col(ColumnDef::new(Tasks::Expect).text().null())
                    .col(ColumnDef::new(Tasks::SourceApp).string_len(128).null())
                    .col(ColumnDef::new(Tasks::TargetApp).string_len(128).null())
                    .col(ColumnDef::new(Tasks::IdempotencyKey).string_len(255).null())
                    .col(ColumnDef::new(Tasks::AttemptsMade).integer().not_null())
                    .col(ColumnDef::new(Tasks::AttemptsBase).integer().not_null())
                    .col(ColumnDef::new(Tasks::NextAttemptAt).big_integer().null())
                    .col(ColumnDef::new(Tasks::LeaseToken).binary_len(16).null())
                    .col(ColumnDef::new(Tasks::LeaseUntil).big_integer().null())
                    .col(ColumnDef::new(Tasks::LastError).text().null())
                    .col(ColumnDef::new(Tasks::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Tasks::UpdatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        // Unique, but NULL for most tasks: both backends allow many NULLs.
        manager
            .create_index(
                Index::create()
                    .name("ux_tasks_idempotency_key")
                    .table(Tasks::Table)
                    .col(Tasks::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Finished tasks have no next attempt, so this index holds only the
        // live ones the reconciler scans.
        for (name, col) in [
            ("ix_tasks_next_attempt_at", Tasks::NextAttemptAt),
            ("ix_tasks_source_app", Tasks::SourceApp),
            ("ix_tasks_target_app", Tasks::TargetApp),
            ("ix_tasks_status", Tasks::Status),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Tasks::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Attempts::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Attempts::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Attempts::TaskId).binary_len(16).not_null())
                    .col(ColumnDef::new(Attempts::Number).integer().not_null())
                    .col(ColumnDef::new(Attempts::StartedAt).big_integer().not_null())
                    .col(
                        ColumnDef::new(Attempts::DurationMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Attempts::StatusCode).integer().null())
                    .col(ColumnDef::new(Attempts::ResponseBody).text().null())
                    .col(ColumnDef::new(Attempts::Error).text().null())
                    .col(ColumnDef::new(Attempts::Success).boolean().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_attempts_task_id")
                    .table(Attempts::Table)
                    .col(Attempts::TaskId)
                    .col(Attempts::Number)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Attempts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Tasks::Table).to_owned())
            .await
    }
}
