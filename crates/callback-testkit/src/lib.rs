//! Test-only helpers shared by the suites: a private database per test on
//! every backend, Redis key prefixes and private Redis servers, the contract
//! every delay queue passes, and a recording HTTP receiver whose answers a
//! test scripts.

pub mod chaos;
mod database;
mod process;
mod queue_contract;
mod receiver;
mod redis;
mod wechat;

pub use database::{Backend, TestDatabase};
pub use process::{PrivateMariaDb, ServerProcess};
pub use queue_contract::check_delay_queue;
pub use receiver::{start_tls_front, Received, Receiver, Reply, TEST_CA_FILE};
pub use redis::{
    free_port, redis_command, redis_server_url, wait_until_listening, PrivateRedis,
    PrivateRedisCluster, TestRedis,
};
pub use wechat::wechat_encrypt;
