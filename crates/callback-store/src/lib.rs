//! The task store: one sea-orm implementation of `TaskStore` for MySQL
//! (MariaDB) and SQLite, chosen by the database URL.
//!
//! Every state change is a conditional UPDATE whose WHERE clause states the
//! transition's precondition, so concurrent workers and instances never need
//! a lock, and no transaction is ever held across an outgoing HTTP call.

mod accounts;
mod alerts;
mod audit;
mod connection;
mod db_error;
mod endpoints;
mod entities;
mod group_commit;
mod inbound;
mod keys;
mod mapping;
mod operations;
#[cfg(test)]
mod query_plans;
mod sql;
mod tasks;

pub use connection::{connect, SqlTaskStore, StoreOptions};
pub use group_commit::GroupCommitOptions;
