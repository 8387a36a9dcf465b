//! Table rows as sea-orm sees them. Private to this crate: the rest of the
//! system sees only the domain types of `callback-core`.

pub mod account;
pub mod alert_hook;
pub mod api_key;
pub mod attempt;
pub mod audit_entry;
pub mod console_session;
pub mod delivery_tally;
pub mod endpoint;
pub mod event;
pub mod failed_bucket;
pub mod idempotency_key;
pub mod inbound;
pub mod ops_alert;
pub mod ordered_task;
pub mod ordering_key;
pub mod route;
pub mod task;
pub mod task_failure;
