//! Routes and inbound callbacks.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Routes {
    Table,
    Namespace,
    RouteKey,
    TargetUrl,
    ExpiresAt,
    Remark,
    Headers,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Inbound {
    Table,
    Id,
    Source,
    Namespace,
    RouteKey,
    ReceivedAt,
    ContentType,
    Body,
    Status,
    TaskId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Routes::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Routes::Namespace).string_len(64).not_null())
                    .col(ColumnDef::new(Routes::RouteKey).string_len(255).not_null())
                    .col(ColumnDef::new(Routes::TargetUrl).text().not_null())
                    .col(ColumnDef::new(Routes::ExpiresAt).big_integer().null())
                    .col(ColumnDef::new(Routes::Remark).string_len(255).null())
                    .col(ColumnDef::new(Routes::Headers).text().not_null())
                    .col(ColumnDef::new(Routes::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Routes::UpdatedAt).big_integer().not_null())
                    .primary_key(Index::create().col(Routes::Namespace).col(Routes::RouteKey))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Inbound::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Inbound::Id)
                            .binary_len(16)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Inbound::Source).string_len(64).not_null())
                    .col(ColumnDef::new(Inbound::Namespace).string_len(64).null())
                    .col(ColumnDef::new(Inbound::RouteKey).string_len(255).null())
                    .col(ColumnDef::new(Inbound::ReceivedAt).big_integer().not_null())
                    .col(
                        ColumnDef::new(Inbound::ContentType)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Inbound::Body)
                            .custom(Alias::new("longblob"))
                            .not_null(),
                    )
                    .col(ColumnDef::new(Inbound::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Inbound::TaskId).binary_len(16).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_inbound_key")
                    .table(Inbound::Table)
                    .col(Inbound::Namespace)
                    .col(Inbound::RouteKey)
                    .col(Inbound::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_inbound_source")
                    .table(Inbound::Table)
                    .col(Inbound::Source)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Inbound::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Routes::Table).to_owned())
            .await
    }
}
