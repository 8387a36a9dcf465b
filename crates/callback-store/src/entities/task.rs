use sea_orm::entity::prelude::*;

/// A row of `tasks`. Times are epoch milliseconds; ids 16-byte UUIDs.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Vec<u8>,
    pub status: String,
    pub url: String,
    pub method: String,
    /// JSON list of `[name, value]` pairs.
    pub headers: String,
    /// JSON list of `[name, value]` pairs.
    pub query: String,
    pub content_type: Option<String>,
    pub body: Option<Vec<u8>>,
    pub max_attempts: i32,
    /// JSON list of seconds.
    pub retry_delays_s: Option<String>,
    pub timeout_ms: i32,
    /// JSON `Expectation`.
    pub expect: Option<String>,
    pub source_app: Option<String>,
    pub target_app: Option<String>,
    /// Unique through `idempotency_keys`, which claims it.
    pub idempotency_key: Option<String>,
    pub attempts_made: i32,
    pub attempts_base: i32,
    pub next_attempt_at: Option<i64>,
    pub lease_token: Option<Vec<u8>>,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The endpoint of an event task.
    pub endpoint: Option<String>,
    pub event_type: Option<String>,
    /// The host of `url`, for filters.
    pub url_host: Option<String>,
    /// The alert hook an alert task goes to.
    pub alert_hook: Option<String>,
    /// The W3C `traceparent` it was submitted with.
    pub traceparent: Option<String>,
    /// Delivered in order with the other tasks of this key (ADR 5).
    pub ordering_key: Option<String>,
    /// `block` or `skip`, with `ordering_key`.
    pub ordering_on_failure: Option<String>,
}

/// No relation is declared from this side: `task_failure` declares the
/// one between them in both directions, so the two modules do not import
/// each other.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
