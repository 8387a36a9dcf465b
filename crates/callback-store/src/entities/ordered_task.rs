use sea_orm::entity::prelude::*;

/// A row of `ordered_tasks`: a task that has not yet ended for its key, at
/// its place. The lowest place of a key is the task delivered now (or
/// failed and blocking); the others wait.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ordered_tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub task_id: Vec<u8>,
    pub endpoint: String,
    pub ordering_key: String,
    pub seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
