//! Operational alerts (lag): whether each condition fires and when it was
//! last told, shared by every instance so that one of them tells.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OpsAlerts {
    Table,
    Condition,
    Firing,
    LastSentAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OpsAlerts::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(OpsAlerts::Condition)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(OpsAlerts::Firing).boolean().not_null())
                    // Epoch ms of the last message; null: never told.
                    .col(ColumnDef::new(OpsAlerts::LastSentAt).big_integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OpsAlerts::Table).to_owned())
            .await
    }
}
