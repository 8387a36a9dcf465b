//! Everything that touches Redis: the delay queue shared by every
//! instance (sorted sets and Lua scripts), plain keys (`KeyValue`) on the
//! same connection, and the connection itself, to one server or a
//! cluster. Each implements a port of `callback-core`; the store stays the
//! truth behind them, so anything here can be lost and rebuilt.

mod connection;
mod delay_queue;
mod key_value;
mod limits;

pub use connection::{RedisQueueError, RedisTopology};
pub use delay_queue::{RedisDelayQueue, RedisQueueOptions};
pub use key_value::RedisKeyValue;
pub use limits::RedisLimits;
