//! The API suite: the real server on a random port against a real database,
//! driven over HTTP, with a recording receiver. Every test runs on SQLite
//! and on MariaDB.
#![allow(clippy::unwrap_used)]

/// Runs each named `async fn(Backend)` as one test per backend.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(callback_testkit::Backend::Sqlite).await
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(callback_testkit::Backend::Mysql).await
                }
            )*
        }
    };
}

mod access;
mod alerts;
mod bulk;
mod clients;
mod console;
mod crash;
mod delivery;
mod deploy;
mod events;
mod faults;
mod fuzz;
mod helpers;
mod inbound;
mod intake;
mod isolation;
mod java_sdk;
mod limits;
mod metrics;
mod operators;
mod ordering;
mod outbound;
mod redis_queue;
mod secrets;
mod upgrade;
