//! The Rust client of callback-center.
//!
//! - Typed requests and answers for every operation of the API
//!   ([`ops::ALL`] lists them).
//! - Submits carry an idempotency key, generated when the caller gives
//!   none, so that a submit retried after a broken connection creates one
//!   task; calls are retried with backoff while the server answers `503`
//!   or cannot be reached, up to a deadline ([`RetryPolicy`]).
//! - [`Client::wait_for`] polls a task until it reaches a status;
//!   listings come as pages or as streams.
//! - [`verify`] checks, on the receiver's side, that a request came from
//!   callback-center (Standard Webhooks, or the legacy MD5 envelope).
//!
//! It depends on no part of the server but `callback-core`'s signature
//! functions.
//!
//! ```no_run
//! # async fn run() -> Result<(), callback_client::Error> {
//! use callback_client::{Client, NewTask};
//! let client = Client::new("http://127.0.0.1:8080", std::env::var("CBC_TOKEN").unwrap_or_default())?;
//! let submitted = client.submit(&NewTask::post("https://shop.example/paid")).await?;
//! println!("task {} created: {}", submitted.task.task_id, submitted.created);
//! # Ok(()) }
//! ```

mod client;
mod error;
pub mod ops;
mod resources;
mod tail;
mod tasks;
pub mod types;
pub mod verify;

pub use client::{Client, ClientBuilder, RetryPolicy};
pub use error::Error;
pub use tasks::Submitted;
pub use types::*;
