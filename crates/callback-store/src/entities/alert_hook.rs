use sea_orm::entity::prelude::*;

/// A row of `alert_hooks`. Times are epoch milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alert_hooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub kind: String,
    pub url: String,
    pub secret: Option<String>,
    pub remark: Option<String>,
    pub enabled: bool,
    pub source_app: Option<String>,
    pub target_app: Option<String>,
    /// Failures up to this time have been told.
    pub alerted_until: i64,
    /// When the last message was queued.
    pub last_alert_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
