//! Each instance's count of recent delivery attempts, so that the success
//! rate alert judges the whole cluster's traffic, not one instance's share.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeliveryTallies {
    Table,
    Instance,
    Succeeded,
    Failed,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeliveryTallies::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(DeliveryTallies::Instance)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(DeliveryTallies::Succeeded)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DeliveryTallies::Failed)
                            .big_integer()
                            .not_null(),
                    )
                    // Epoch ms of the count; an instance that stopped
                    // counting drops out once its row is stale.
                    .col(
                        ColumnDef::new(DeliveryTallies::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeliveryTallies::Table).to_owned())
            .await
    }
}
