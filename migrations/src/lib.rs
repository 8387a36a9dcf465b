//! Schema migrations, portable across MySQL/MariaDB and SQLite.
//!
//! Times are stored as BIGINT milliseconds since the Unix epoch: the same
//! precision and ordering on both backends, with no time-zone conversion by
//! the server. Ids are 16-byte binary UUIDs.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_tasks;
mod m20261122_000002_endpoints;
mod m20261122_000003_operations;
mod m20261122_000004_inbound;
mod m20261123_000005_sparse_indexes;
mod m20261123_000006_ordered_filter_indexes;
mod m20261124_000007_partial_endpoint_index;
mod m20261204_000008_access;
mod m20261204_000009_traceparent;
mod m20261204_000010_ops_alerts;
mod m20261204_000011_endpoint_breaker;
mod m20261204_000012_delivery_tallies;
mod m20261204_000013_endpoint_disable;
mod m20261205_000014_console_accounts;
mod m20261205_000015_ordering_keys;
mod sqlite_indexes;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_tasks::Migration),
            Box::new(m20261122_000002_endpoints::Migration),
            Box::new(m20261122_000003_operations::Migration),
            Box::new(m20261122_000004_inbound::Migration),
            Box::new(m20261123_000005_sparse_indexes::Migration),
            Box::new(m20261123_000006_ordered_filter_indexes::Migration),
            Box::new(m20261124_000007_partial_endpoint_index::Migration),
            Box::new(m20261204_000008_access::Migration),
            Box::new(m20261204_000009_traceparent::Migration),
            Box::new(m20261204_000010_ops_alerts::Migration),
            Box::new(m20261204_000011_endpoint_breaker::Migration),
            Box::new(m20261204_000012_delivery_tallies::Migration),
            Box::new(m20261204_000013_endpoint_disable::Migration),
            Box::new(m20261205_000014_console_accounts::Migration),
            Box::new(m20261205_000015_ordering_keys::Migration),
        ]
    }
}
