use sea_orm::entity::prelude::*;

/// A row of `ops_alerts`: one operational condition. Times are epoch ms.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ops_alerts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub condition: String,
    pub firing: bool,
    pub last_sent_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
