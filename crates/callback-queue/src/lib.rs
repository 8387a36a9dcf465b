//! Delay queues: indexes of task ids by due time that wake the dispatcher
//! when a retry or a delayed task comes due. Both implement
//! `callback_core::DelayQueue`; the store stays the truth behind them.
//!
//! - `InProcessDelayQueue`: a bounded timer index in this process, rebuilt
//!   from the store at start. For a single instance.
//! - `RedisDelayQueue`: sorted sets in Redis shared by every instance, with
//!   atomic claims by Lua script and leases for ids in flight.

mod in_process;
mod redis_queue;

pub use in_process::InProcessDelayQueue;
pub use redis_queue::{RedisDelayQueue, RedisKeyValue, RedisQueueOptions, RedisTopology};
