//! The console's human accounts (argon2id password hashes) and their
//! sessions (kept as the SHA-256 of the cookie's token, like API keys).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    Username,
    PasswordHash,
    Role,
    CreatedAt,
    DisabledAt,
    LastLoginAt,
}

#[derive(DeriveIden)]
enum ConsoleSessions {
    Table,
    TokenHash,
    AccountId,
    Username,
    Role,
    Csrf,
    CreatedAt,
    SeenAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Accounts::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Accounts::Username).string_len(64).not_null())
                    // PHC string: algorithm, parameters, salt and hash.
                    .col(
                        ColumnDef::new(Accounts::PasswordHash)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Accounts::Role).string_len(16).not_null())
                    .col(ColumnDef::new(Accounts::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Accounts::DisabledAt).big_integer().null())
                    .col(ColumnDef::new(Accounts::LastLoginAt).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_accounts_username")
                    .table(Accounts::Table)
                    .col(Accounts::Username)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConsoleSessions::Table)
                    .if_not_exists()
                    // Hex SHA-256 of the cookie's token.
                    .col(
                        ColumnDef::new(ConsoleSessions::TokenHash)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    // Null for a session opened with the admin token.
                    .col(
                        ColumnDef::new(ConsoleSessions::AccountId)
                            .string_len(36)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ConsoleSessions::Username)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConsoleSessions::Role)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConsoleSessions::Csrf)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConsoleSessions::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ConsoleSessions::SeenAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_console_sessions_seen_at")
                    .table(ConsoleSessions::Table)
                    .col(ConsoleSessions::SeenAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ConsoleSessions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Accounts::Table).to_owned())
            .await
    }
}
