use sea_orm::entity::prelude::*;

/// A row of `audit_log`. `at` is epoch milliseconds; `detail` is JSON.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Vec<u8>,
    pub at: i64,
    pub actor: String,
    pub actor_name: String,
    pub ip: Option<String>,
    pub action: String,
    pub method: String,
    pub path: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub status: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
