//! The contract every `DelayQueue` backend passes: one suite, run by the
//! queue crate's tests against the in-process queue and against Redis.
//! Like the dispatcher, it acknowledges what it took: a queue may keep
//! unacknowledged ids in flight and hand them out again once their lease
//! ends.

// A failed step must fail the test that runs this contract.
#![allow(clippy::unwrap_used)]

use callback_core::{DelayQueue, TaskId};
use chrono::{DateTime, TimeDelta, Utc};
use std::future::Future;
use std::time::Duration;

fn at(base: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    base + TimeDelta::seconds(seconds)
}

/// Runs every check, each on a fresh queue from `make`.
pub async fn check_delay_queue<Q, F, Fut>(make: F)
where
    Q: DelayQueue,
    F: Fn() -> Fut,
    Fut: Future<Output = Q>,
{
    due_ids_come_out_in_due_order_and_only_once(&make().await).await;
    rescheduling_an_id_replaces_its_entry(&make().await).await;
    scheduling_many_takes_them_out_of_flight(&make().await).await;
    take_due_respects_the_limit(&make().await).await;
    restore_puts_back_entries_the_queue_lost(&make().await).await;
    new_ids_come_out_when_due(&make().await).await;
    acknowledging_an_unknown_id_is_harmless(&make().await).await;
    wait_returns_soon_once_an_id_is_due(&make().await).await;
    ping_answers(&make().await).await;
}

async fn due_ids_come_out_in_due_order_and_only_once(q: &dyn DelayQueue) {
    let now = Utc::now();
    let (a, b, c) = (TaskId::new(), TaskId::new(), TaskId::new());
    q.schedule(a, at(now, -1)).await.unwrap();
    q.schedule(b, at(now, -5)).await.unwrap();
    q.schedule(c, at(now, 60)).await.unwrap();
    assert_eq!(
        q.take_due(now, 10).await.unwrap(),
        vec![b, a],
        "{}",
        q.backend()
    );
    assert!(q.take_due(now, 10).await.unwrap().is_empty());
    q.ack(&[a, b]).await.unwrap();
    assert_eq!(q.take_due(at(now, 61), 10).await.unwrap(), vec![c]);
}

async fn rescheduling_an_id_replaces_its_entry(q: &dyn DelayQueue) {
    let now = Utc::now();
    let a = TaskId::new();
    q.schedule(a, at(now, -1)).await.unwrap();
    q.schedule(a, at(now, 30)).await.unwrap();
    assert!(q.take_due(now, 10).await.unwrap().is_empty());
    assert_eq!(q.take_due(at(now, 31), 10).await.unwrap(), vec![a]);
}

async fn scheduling_many_takes_them_out_of_flight(q: &dyn DelayQueue) {
    let now = Utc::now();
    let (a, b, c) = (TaskId::new(), TaskId::new(), TaskId::new());
    q.add_new(&[(a, at(now, -3)), (b, at(now, -2)), (c, at(now, -1))])
        .await
        .unwrap();
    assert_eq!(q.take_due(now, 10).await.unwrap(), vec![a, b, c]);
    // Put off while in flight, as a deferral or a retry is: each due at its
    // own time, and no longer in flight, so no lease end brings it back.
    q.schedule_many(&[(c, at(now, 20)), (a, at(now, 10))])
        .await
        .unwrap();
    q.schedule_many(&[]).await.unwrap();
    assert!(q.take_due(at(now, 5), 10).await.unwrap().is_empty());
    assert_eq!(q.take_due(at(now, 10), 10).await.unwrap(), vec![a]);
    assert_eq!(q.take_due(at(now, 20), 10).await.unwrap(), vec![c]);
    q.ack(&[a, b, c]).await.unwrap();
    assert!(q.take_due(at(now, 3600), 10).await.unwrap().is_empty());
}

async fn take_due_respects_the_limit(q: &dyn DelayQueue) {
    let now = Utc::now();
    for _ in 0..5 {
        q.schedule(TaskId::new(), at(now, -1)).await.unwrap();
    }
    assert_eq!(q.take_due(now, 2).await.unwrap().len(), 2);
    assert_eq!(q.take_due(now, 0).await.unwrap().len(), 0);
    assert_eq!(q.take_due(now, 10).await.unwrap().len(), 3);
}

async fn restore_puts_back_entries_the_queue_lost(q: &dyn DelayQueue) {
    let now = Utc::now();
    let (a, b) = (TaskId::new(), TaskId::new());
    q.restore(&[(a, at(now, -2)), (b, at(now, 20))])
        .await
        .unwrap();
    assert_eq!(q.take_due(now, 10).await.unwrap(), vec![a]);
    q.ack(&[a]).await.unwrap();
    assert_eq!(q.take_due(at(now, 21), 10).await.unwrap(), vec![b]);
}

async fn new_ids_come_out_when_due(q: &dyn DelayQueue) {
    let now = Utc::now();
    let (a, b, c) = (TaskId::new(), TaskId::new(), TaskId::new());
    q.add_new(&[(a, at(now, 30)), (b, at(now, -3)), (c, at(now, -1))])
        .await
        .unwrap();
    q.add_new(&[]).await.unwrap();
    assert_eq!(
        q.take_due(now, 10).await.unwrap(),
        vec![b, c],
        "{}",
        q.backend()
    );
    q.ack(&[b, c]).await.unwrap();
    assert_eq!(q.take_due(at(now, 31), 10).await.unwrap(), vec![a]);
}

async fn acknowledging_an_unknown_id_is_harmless(q: &dyn DelayQueue) {
    q.ack(&[TaskId::new()]).await.unwrap();
    q.ack(&[]).await.unwrap();
    let a = TaskId::new();
    q.schedule(a, Utc::now()).await.unwrap();
    q.ack(&[TaskId::new()]).await.unwrap();
    assert_eq!(q.take_due(Utc::now(), 10).await.unwrap(), vec![a]);
}

async fn wait_returns_soon_once_an_id_is_due(q: &dyn DelayQueue) {
    q.schedule(TaskId::new(), Utc::now() + TimeDelta::milliseconds(300))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut waited_out = false;
    while started.elapsed() < Duration::from_secs(5) {
        q.wait(Duration::from_secs(5)).await;
        if !q.take_due(Utc::now(), 10).await.unwrap().is_empty() {
            waited_out = true;
            break;
        }
    }
    assert!(waited_out, "{}: the due id never came out", q.backend());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{}: woke {:?} after scheduling a 300 ms entry",
        q.backend(),
        started.elapsed()
    );
}

async fn ping_answers(q: &dyn DelayQueue) {
    q.ping().await.unwrap();
    assert!(!q.backend().is_empty());
}
