//! Test-only helpers shared by the suites: a private database per test on
//! every backend, and a recording HTTP receiver whose answers a test scripts.

mod database;
mod receiver;

pub use database::{Backend, TestDatabase};
pub use receiver::{Received, Receiver, Reply};
