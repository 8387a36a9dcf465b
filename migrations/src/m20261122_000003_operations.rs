//! Failure times, target hosts and alert links on tasks; alert hooks; and
//! the re-send counts of failed buckets.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tasks {
    Table,
    FailedAt,
    UrlHost,
    AlertHook,
}

#[derive(DeriveIden)]
enum AlertHooks {
    Table,
    Id,
    Kind,
    Url,
    Secret,
    Remark,
    Enabled,
    SourceApp,
    TargetApp,
    AlertedUntil,
    LastAlertAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum FailedBuckets {
    Table,
    BucketStart,
    Retries,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds columns one at a time.
        for column in [
            ColumnDef::new(Tasks::FailedAt)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(Tasks::UrlHost)
                .string_len(255)
                .null()
                .to_owned(),
            ColumnDef::new(Tasks::AlertHook)
                .string_len(36)
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tasks::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for (name, col) in [
            ("ix_tasks_failed_at", Tasks::FailedAt),
            ("ix_tasks_url_host", Tasks::UrlHost),
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
                    .table(AlertHooks::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AlertHooks::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AlertHooks::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(AlertHooks::Url).text().not_null())
                    .col(ColumnDef::new(AlertHooks::Secret).string_len(255).null())
                    .col(ColumnDef::new(AlertHooks::Remark).string_len(255).null())
                    .col(ColumnDef::new(AlertHooks::Enabled).boolean().not_null())
                    .col(ColumnDef::new(AlertHooks::SourceApp).string_len(128).null())
                    .col(ColumnDef::new(AlertHooks::TargetApp).string_len(128).null())
                    // Failures up to this time (epoch ms) have been told.
                    .col(
                        ColumnDef::new(AlertHooks::AlertedUntil)
                            .big_integer()
                            .not_null(),
                    )
                    // When the last message was queued; none yet: null.
                    .col(ColumnDef::new(AlertHooks::LastAlertAt).big_integer().null())
                    .col(
                        ColumnDef::new(AlertHooks::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AlertHooks::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FailedBuckets::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(FailedBuckets::BucketStart)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(FailedBuckets::Retries).integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FailedBuckets::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AlertHooks::Table).to_owned())
            .await?;
        for name in ["ix_tasks_url_host", "ix_tasks_failed_at"] {
            manager
                .drop_index(Index::drop().name(name).table(Tasks::Table).to_owned())
                .await?;
        }
        for column in [Tasks::AlertHook, Tasks::UrlHost, Tasks::FailedAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tasks::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
