//! Endpoints, published events, and the link from a task to its endpoint.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Endpoints {
    Table,
    Name,
    Url,
    Enabled,
    App,
    EventTypes,
    Signature,
    Secret,
    TimeoutMs,
    MaxAttempts,
    RetryDelaysS,
    Headers,
    RateLimitPerS,
    MaxInFlight,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    CallId,
    EventType,
    App,
    TaskIds,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Endpoint,
    EventType,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Endpoints::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Endpoints::Name)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Endpoints::Url).text().not_null())
                    .col(ColumnDef::new(Endpoints::Enabled).boolean().not_null())
                    .col(ColumnDef::new(Endpoints::App).string_len(128).null())
                    // JSON list of event types; empty: every type.
                    .col(ColumnDef::new(Endpoints::EventTypes).text().not_null())
                    .col(
                        ColumnDef::new(Endpoints::Signature)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Endpoints::Secret).string_len(255).not_null())
                    .col(ColumnDef::new(Endpoints::TimeoutMs).integer().null())
                    .col(ColumnDef::new(Endpoints::MaxAttempts).integer().null())
                    .col(ColumnDef::new(Endpoints::RetryDelaysS).text().null())
                    .col(ColumnDef::new(Endpoints::Headers).text().not_null())
                    .col(ColumnDef::new(Endpoints::RateLimitPerS).integer().null())
                    .col(ColumnDef::new(Endpoints::MaxInFlight).integer().null())
                    .col(
                        ColumnDef::new(Endpoints::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Endpoints::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Events::CallId)
                            .string_len(128)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Events::EventType).string_len(128).not_null())
                    .col(ColumnDef::new(Events::App).string_len(128).null())
                    // JSON list of task ids, in endpoint-name order.
                    .col(ColumnDef::new(Events::TaskIds).text().not_null())
                    .col(ColumnDef::new(Events::CreatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        // One column per statement: SQLite adds columns one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Tasks::Table)
                    .add_column(ColumnDef::new(Tasks::Endpoint).string_len(32).null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Tasks::Table)
                    .add_column(ColumnDef::new(Tasks::EventType).string_len(128).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_tasks_endpoint")
                    .table(Tasks::Table)
                    .col(Tasks::Endpoint)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_tasks_endpoint")
                    .table(Tasks::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Tasks::EventType, Tasks::Endpoint] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tasks::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(Events::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Endpoints::Table).to_owned())
            .await
    }
}
