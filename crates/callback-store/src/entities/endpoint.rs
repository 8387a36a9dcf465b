use sea_orm::entity::prelude::*;

/// A row of `endpoints`. Times are epoch milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub url: String,
    pub enabled: bool,
    pub app: Option<String>,
    /// JSON list of event types; empty: every type.
    pub event_types: String,
    pub signature: String,
    pub secret: String,
    pub timeout_ms: Option<i32>,
    pub max_attempts: Option<i32>,
    /// JSON list of seconds.
    pub retry_delays_s: Option<String>,
    /// JSON list of `[name, value]` pairs.
    pub headers: String,
    pub rate_limit_per_s: Option<i32>,
    pub max_in_flight: Option<i32>,
    pub breaker_failure_threshold: Option<i32>,
    /// The failure ratio in thousandths.
    pub breaker_failure_permille: Option<i32>,
    /// Failing every attempt since (epoch ms); null: its last attempt
    /// succeeded, or it has had none.
    pub failing_since: Option<i64>,
    /// Disabled for failing (epoch ms): its new events are held.
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
