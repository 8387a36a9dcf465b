use sea_orm::entity::prelude::*;

/// A row of `api_keys`. Times are epoch milliseconds; lists are
/// space-separated.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub key_hash: String,
    pub name: String,
    pub app: Option<String>,
    pub scopes: String,
    pub allow_ips: String,
    pub expires_at: Option<i64>,
    pub rate_limit_per_s: Option<i32>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
