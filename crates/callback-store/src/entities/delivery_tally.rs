use sea_orm::entity::prelude::*;

/// A row of `delivery_tallies`: one instance's attempts within the success
/// rate window, as of `updated_at` (epoch ms).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "delivery_tallies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub instance: String,
    pub succeeded: i64,
    pub failed: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
