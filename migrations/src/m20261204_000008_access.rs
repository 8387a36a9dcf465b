//! API keys (stored as the SHA-256 of their secret) and the audit log.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    KeyHash,
    Name,
    App,
    Scopes,
    AllowIps,
    ExpiresAt,
    RateLimitPerS,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    ActorName,
    Ip,
    Action,
    Method,
    Path,
    Target,
    Detail,
    Status,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ApiKeys::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    // Hex SHA-256 of the secret; the secret itself is never stored.
                    .col(ColumnDef::new(ApiKeys::KeyHash).string_len(64).not_null())
                    .col(ColumnDef::new(ApiKeys::Name).string_len(128).not_null())
                    .col(ColumnDef::new(ApiKeys::App).string_len(128).null())
                    // Space-separated scope names.
                    .col(ColumnDef::new(ApiKeys::Scopes).string_len(255).not_null())
                    // Space-separated networks; empty: anywhere.
                    .col(ColumnDef::new(ApiKeys::AllowIps).text().not_null())
                    .col(ColumnDef::new(ApiKeys::ExpiresAt).big_integer().null())
                    .col(ColumnDef::new(ApiKeys::RateLimitPerS).integer().null())
                    .col(ColumnDef::new(ApiKeys::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(ApiKeys::LastUsedAt).big_integer().null())
                    .col(ColumnDef::new(ApiKeys::RevokedAt).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_api_keys_key_hash")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::KeyHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .if_not_exists()
                    // UUID v7: ids sort by time, and page the log.
                    .col(
                        ColumnDef::new(AuditLog::Id)
                            .binary_len(16)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AuditLog::At).big_integer().not_null())
                    .col(ColumnDef::new(AuditLog::Actor).string_len(64).not_null())
                    .col(
                        ColumnDef::new(AuditLog::ActorName)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuditLog::Ip).string_len(64).null())
                    .col(ColumnDef::new(AuditLog::Action).string_len(64).not_null())
                    .col(ColumnDef::new(AuditLog::Method).string_len(16).not_null())
                    .col(ColumnDef::new(AuditLog::Path).string_len(1024).not_null())
                    .col(ColumnDef::new(AuditLog::Target).string_len(512).null())
                    .col(ColumnDef::new(AuditLog::Detail).text().null())
                    .col(ColumnDef::new(AuditLog::Status).integer().not_null())
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_audit_log_at", AuditLog::At),
            ("ix_audit_log_actor", AuditLog::Actor),
            ("ix_audit_log_action", AuditLog::Action),
        ] {
            let mut index = Index::create();
            index.name(name).table(AuditLog::Table).col(column);
            if name != "ix_audit_log_at" {
                index.col(AuditLog::Id);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await
    }
}
