use sea_orm::entity::prelude::*;

/// A row of `inbound`: one callback as received.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "inbound")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Vec<u8>,
    pub source: String,
    pub namespace: Option<String>,
    pub route_key: Option<String>,
    pub received_at: i64,
    pub content_type: String,
    pub body: Vec<u8>,
    pub status: String,
    pub task_id: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
