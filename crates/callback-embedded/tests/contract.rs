//! The in-process delay queue against the contract every delay queue keeps
//! (`callback_testkit::check_delay_queue`); the Redis queue runs the same
//! checks in `callback-redis`.

use callback_embedded::InProcessDelayQueue;
use callback_testkit::check_delay_queue;

#[tokio::test]
async fn in_process_queue_keeps_the_contract() {
    check_delay_queue(|| async { InProcessDelayQueue::new(1000) }).await;
}
