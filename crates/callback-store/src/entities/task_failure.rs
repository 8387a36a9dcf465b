use sea_orm::entity::prelude::*;

/// A row of `task_failures`: when a failed task failed for good. Only
/// failed tasks have one, so new tasks pay nothing for the index on it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "task_failures")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub task_id: Vec<u8>,
    pub failed_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::task::Entity",
        from = "Column::TaskId",
        to = "super::task::Column::Id"
    )]
    Task,
}

impl Related<super::task::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Task.def()
    }
}

/// A task's failure time, if it failed: the other direction of `Task`,
/// declared here so that `task` needs nothing of this module.
impl Related<Entity> for super::task::Entity {
    fn to() -> RelationDef {
        Relation::Task.def().rev()
    }
}

impl ActiveModelBehavior for ActiveModel {}
