use sea_orm::entity::prelude::*;

/// A row of `ordering_keys`: one key's sequence. `endpoint` is '' for plain
/// tasks. Locked by every change to the key's tasks (see `tasks::ordering`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ordering_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub endpoint: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub ordering_key: String,
    /// The place the next task accepted on the key takes.
    pub next_seq: i64,
    /// Tasks on the key that have not ended for it.
    pub backlog: i64,
    /// Epoch ms of the last change: idle keys are forgotten after a day.
    pub touched_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
