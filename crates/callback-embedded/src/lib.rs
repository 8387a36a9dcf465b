//! The embedded default's in-process adapters: what runs inside the server
//! when no Redis is configured, beside the SQLite store (which
//! `callback-store` serves together with MySQL). Today that is the delay
//! queue; in-process stand-ins for other shared services belong here too,
//! and their Redis counterparts in `callback-redis`.
//!
//! Each implements a port of `callback-core` and holds nothing the store
//! does not: it is rebuilt from the store at start.

mod delay_queue;

pub use delay_queue::InProcessDelayQueue;
