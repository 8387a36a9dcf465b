//! Ordered delivery per key (ADR 5): a task's ordering key and what its
//! failure does to the tasks behind it, each key's sequence, and the tasks
//! still on a key, in order. Tasks without a key have two NULL columns and
//! no index entry: unordered delivery pays nothing for ordering.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tasks {
    Table,
    OrderingKey,
    OrderingOnFailure,
}

#[derive(DeriveIden)]
enum OrderingKeys {
    Table,
    Endpoint,
    OrderingKey,
    NextSeq,
    Backlog,
    TouchedAt,
}

#[derive(DeriveIden)]
enum OrderedTasks {
    Table,
    TaskId,
    Endpoint,
    OrderingKey,
    Seq,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column a statement: SQLite adds one at a time.
        for (column, len) in [(Tasks::OrderingKey, 255), (Tasks::OrderingOnFailure, 8)] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tasks::Table)
                        .add_column(ColumnDef::new(column).string_len(len).null())
                        .to_owned(),
                )
                .await?;
        }
        // One row per key in use. `endpoint` is '' for plain tasks: an
        // event's key orders each endpoint's tasks apart. Every change to
        // a key's tasks locks this row first, so instances agree on order.
        manager
            .create_table(
                Table::create()
                    .table(OrderingKeys::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(OrderingKeys::Endpoint)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OrderingKeys::OrderingKey)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OrderingKeys::NextSeq)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OrderingKeys::Backlog)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OrderingKeys::TouchedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(OrderingKeys::Endpoint)
                            .col(OrderingKeys::OrderingKey),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_ordering_keys_touched_at")
                    .table(OrderingKeys::Table)
                    .col(OrderingKeys::TouchedAt)
                    .to_owned(),
            )
            .await?;
        // The tasks on a key that have not ended for it: the one delivered
        // now (or failed and blocking) first, then those waiting. A task
        // leaves when it ends, so this stays as small as the backlogs.
        manager
            .create_table(
                Table::create()
                    .table(OrderedTasks::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(OrderedTasks::TaskId)
                            .binary_len(16)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(OrderedTasks::Endpoint)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OrderedTasks::OrderingKey)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(ColumnDef::new(OrderedTasks::Seq).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_ordered_tasks_seq")
                    .table(OrderedTasks::Table)
                    .col(OrderedTasks::Endpoint)
                    .col(OrderedTasks::OrderingKey)
                    .col(OrderedTasks::Seq)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            OrderedTasks::Table.into_iden(),
            OrderingKeys::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for column in [Tasks::OrderingOnFailure, Tasks::OrderingKey] {
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
