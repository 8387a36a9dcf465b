//! The Redis delay queue against the contract every delay queue keeps, and
//! what only the shared Redis queue promises: atomic takes across instances, leases for ids in
//! flight, and quick failure when Redis is gone. Redis tests use a key
//! prefix of their own on the real server.
#![allow(clippy::unwrap_used)]

use callback_core::{DelayQueue, TaskId};
use callback_redis::{RedisDelayQueue, RedisQueueOptions, RedisTopology};
use callback_testkit::{check_delay_queue, free_port, TestRedis};
use chrono::{TimeDelta, Utc};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn options(url: &str, prefix: &str) -> RedisQueueOptions {
    RedisQueueOptions {
        topology: RedisTopology::Single(url.to_string()),
        key_prefix: prefix.to_string(),
        command_timeout: Duration::from_secs(2),
        poll_interval: Duration::from_millis(50),
        inflight_lease: Duration::from_secs(30),
    }
}

/// A queue whose in-flight leases end after `lease`.
fn queue_with_lease(redis: &TestRedis, lease: Duration) -> RedisDelayQueue {
    let mut short = options(&redis.url, &redis.prefix);
    short.inflight_lease = lease;
    RedisDelayQueue::new(short).unwrap()
}

/// Takes `limit` at a time until a take comes back empty; every id taken,
/// as often as it was.
async fn take_until_empty(q: &RedisDelayQueue, limit: usize) -> Vec<TaskId> {
    let mut taken = Vec::new();
    loop {
        let ids = q.take_due(Utc::now(), limit).await.unwrap();
        if ids.is_empty() {
            return taken;
        }
        taken.extend(ids);
    }
}

#[tokio::test]
async fn redis_queue_keeps_the_contract() {
    let redis = TestRedis::create().await;
    // Each check gets a fresh prefix under the test's own.
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let prefixes = std::sync::Mutex::new(Vec::new());
    check_delay_queue(|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let prefix = format!("{}-{n}", redis.prefix);
        prefixes.lock().unwrap().push(prefix.clone());
        let url = redis.url.clone();
        async move { RedisDelayQueue::new(options(&url, &prefix)).unwrap() }
    })
    .await;
    for prefix in prefixes.into_inner().unwrap() {
        let q = RedisDelayQueue::new(options(&redis.url, &prefix)).unwrap();
        let keys = q.keys().map(str::to_string);
        let _: i64 =
            callback_testkit::redis_command(&redis.url, &["DEL", &keys[0], &keys[1]]).await;
    }
}

#[tokio::test]
async fn keys_share_one_hash_tag_for_redis_cluster() {
    let q = RedisDelayQueue::new(options("redis://127.0.0.1:6379", "shop")).unwrap();
    assert_eq!(q.keys(), ["{shop}:due", "{shop}:inflight"]);
    assert!(RedisDelayQueue::new(options("redis://127.0.0.1:6379", "a{b}")).is_err());
    assert!(RedisDelayQueue::new(options("redis://127.0.0.1:6379", "")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_taking_at_once_never_get_the_same_id() {
    let redis = TestRedis::create().await;
    let first = Arc::new(RedisDelayQueue::new(options(&redis.url, &redis.prefix)).unwrap());
    let second = Arc::new(RedisDelayQueue::new(options(&redis.url, &redis.prefix)).unwrap());
    let now = Utc::now();
    let scheduled: HashSet<TaskId> = (0..2000).map(|_| TaskId::new()).collect();
    let entries: Vec<_> = scheduled.iter().map(|&id| (id, now)).collect();
    first.restore(&entries).await.unwrap();

    let mut takers = tokio::task::JoinSet::new();
    for n in 0..8 {
        let q = if n % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        takers.spawn(async move { take_until_empty(&q, 37).await });
    }
    let mut taken = Vec::new();
    while let Some(got) = takers.join_next().await {
        taken.extend(got.unwrap());
    }
    let distinct: HashSet<TaskId> = taken.iter().copied().collect();
    assert_eq!(taken.len(), distinct.len(), "an id was taken twice");
    assert_eq!(distinct, scheduled, "every id was taken");
    assert_eq!(redis.members("inflight").await.len(), 2000);
}

#[tokio::test]
async fn an_id_whose_taker_died_returns_when_its_lease_ends() {
    let redis = TestRedis::create().await;
    let q = queue_with_lease(&redis, Duration::from_millis(300));
    let (kept, acked, also_acked) = (TaskId::new(), TaskId::new(), TaskId::new());
    for id in [kept, acked, also_acked] {
        q.schedule(id, Utc::now()).await.unwrap();
    }
    assert_eq!(q.take_due(Utc::now(), 10).await.unwrap().len(), 3);
    q.ack(&[acked, also_acked]).await.unwrap();
    assert!(q.take_due(Utc::now(), 10).await.unwrap().is_empty());

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(q.take_due(Utc::now(), 10).await.unwrap(), vec![kept]);
}

#[tokio::test]
async fn a_large_take_moves_the_soonest_due_ids_a_chunk_at_a_time() {
    let redis = TestRedis::create().await;
    let q = queue_with_lease(&redis, Duration::from_secs(1));
    let now = Utc::now();
    let due: Vec<(TaskId, _)> = (0..2500)
        .map(|i| (TaskId::new(), now - TimeDelta::milliseconds(2500 - i)))
        .collect();
    let later: Vec<(TaskId, _)> = (0..10)
        .map(|_| (TaskId::new(), now + TimeDelta::hours(1)))
        .collect();
    q.add_new(&due).await.unwrap();
    q.add_new(&later).await.unwrap();
    let due_ids: HashSet<TaskId> = due.iter().map(|&(id, _)| id).collect();

    let first = q.take_due(now, 100_000).await.unwrap();
    let soonest: Vec<TaskId> = due[..1000].iter().map(|&(id, _)| id).collect();
    assert_eq!(first, soonest, "one chunk, soonest due first");
    let mut taken: HashSet<TaskId> = first.into_iter().collect();
    taken.extend(take_until_empty(&q, 100_000).await);
    assert_eq!(taken, due_ids, "every due id, and none due later");
    assert_eq!(redis.members("inflight").await.len(), 2500);
    assert_eq!(redis.members("due").await.len(), 10);

    // The takers died: once the leases end, all 2,500 come back, in
    // chunks, and are taken again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let back: HashSet<TaskId> = take_until_empty(&q, 100_000).await.into_iter().collect();
    assert_eq!(back, due_ids);
    assert_eq!(redis.members("due").await.len(), 10);
}

#[tokio::test]
async fn restore_leaves_held_ids_alone_and_scheduling_ends_the_hold() {
    let redis = TestRedis::create().await;
    let q = RedisDelayQueue::new(options(&redis.url, &redis.prefix)).unwrap();
    let id = TaskId::new();
    q.schedule(id, Utc::now()).await.unwrap();
    assert_eq!(q.take_due(Utc::now(), 10).await.unwrap(), vec![id]);

    // The store sees it due and unclaimed (not claimed yet): while the
    // taker's lease lasts, restoring it changes nothing.
    q.restore(&[(id, Utc::now())]).await.unwrap();
    assert!(q.take_due(Utc::now(), 10).await.unwrap().is_empty());
    assert_eq!(redis.members("inflight").await, vec![id.to_string()]);

    // The attempt failed; the retry is scheduled and the hold is over.
    let retry_at = Utc::now() + TimeDelta::milliseconds(100);
    q.schedule(id, retry_at).await.unwrap();
    assert!(redis.members("inflight").await.is_empty());
    assert_eq!(q.take_due(retry_at, 10).await.unwrap(), vec![id]);
}

#[tokio::test]
async fn an_unreachable_redis_fails_fast_instead_of_hanging() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let mut opts = options(&url, "gone");
    opts.command_timeout = Duration::from_millis(500);
    let q = RedisDelayQueue::new(opts).unwrap();
    let started = Instant::now();
    assert!(q.ping().await.is_err());
    assert!(q.schedule(TaskId::new(), Utc::now()).await.is_err());
    assert!(q.take_due(Utc::now(), 10).await.is_err());
    assert!(q.restore(&[(TaskId::new(), Utc::now())]).await.is_err());
    q.wait(Duration::from_millis(100)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_works_unchanged_on_a_redis_cluster() {
    let cluster = callback_testkit::PrivateRedisCluster::start().await;
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let cluster_options = |prefix: String| RedisQueueOptions {
        topology: RedisTopology::Cluster(cluster.urls()),
        ..options("unused", &prefix)
    };
    check_delay_queue(|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let opts = cluster_options(format!("contract-{n}"));
        async move { RedisDelayQueue::new(opts).unwrap() }
    })
    .await;

    // Prefixes land on different nodes; takes stay atomic on each.
    for prefix in ["alpha", "beta", "gamma"] {
        let q = RedisDelayQueue::new(cluster_options(prefix.into())).unwrap();
        let ids: HashSet<TaskId> = (0..50).map(|_| TaskId::new()).collect();
        let entries: Vec<_> = ids.iter().map(|&id| (id, Utc::now())).collect();
        q.restore(&entries).await.unwrap();
        let taken: HashSet<TaskId> = q
            .take_due(Utc::now(), 100)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(taken, ids, "prefix {prefix}");
    }
}

#[tokio::test]
async fn a_flag_is_claimed_by_one_caller_until_it_expires_or_is_dropped() {
    use callback_core::KeyValue;
    let redis = TestRedis::create().await;
    let first = RedisDelayQueue::new(options(&redis.url, &redis.prefix)).unwrap();
    let second = RedisDelayQueue::new(options(&redis.url, &redis.prefix)).unwrap();
    let (first, second) = (first.key_value(), second.key_value());
    let flag = format!("{}:flag", redis.prefix);
    let ttl = Duration::from_millis(300);
    assert!(first.set_nx(&flag, "a", ttl).await.unwrap());
    assert!(!second.set_nx(&flag, "b", ttl).await.unwrap());
    assert_eq!(second.get(&flag).await.unwrap().as_deref(), Some("a"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(second.set_nx(&flag, "b", ttl).await.unwrap());
    second.del(&flag).await.unwrap();
    assert!(first.set_nx(&flag, "c", ttl).await.unwrap());
    first.del(&flag).await.unwrap();
}

#[tokio::test]
async fn allowances_share_a_cap_shrink_when_set_and_end_with_their_lease() {
    use callback_core::SharedLimits;
    let redis = TestRedis::create().await;
    let first = RedisDelayQueue::new(options(&redis.url, &redis.prefix))
        .unwrap()
        .limits();
    let second = RedisDelayQueue::new(options(&redis.url, &redis.prefix))
        .unwrap()
        .limits();
    let long = Duration::from_secs(30);
    // A cap of 10: the first takes 6, the second gets the 4 left.
    assert_eq!(first.allow("r", 10, "a", 6, long, true).await.unwrap(), 6);
    assert_eq!(second.allow("r", 10, "b", 8, long, true).await.unwrap(), 4);
    // Growing never lowers an allowance, even asked for less.
    assert_eq!(first.allow("r", 10, "a", 2, long, true).await.unwrap(), 6);
    // Another receiver has its own cap.
    assert_eq!(
        first.allow("other", 10, "a", 10, long, true).await.unwrap(),
        10
    );
    // Set (not grow) gives room back, which the other can then take.
    assert_eq!(first.allow("r", 10, "a", 1, long, false).await.unwrap(), 1);
    assert_eq!(second.allow("r", 10, "b", 9, long, true).await.unwrap(), 9);
    assert_eq!(first.allow("r", 10, "a", 5, long, true).await.unwrap(), 1);
    // An allowance whose holder died ends with its lease.
    assert_eq!(
        second
            .allow("r", 10, "b", 9, Duration::from_millis(200), false)
            .await
            .unwrap(),
        9
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(first.allow("r", 10, "a", 10, long, true).await.unwrap(), 10);
    // Set to nothing: the holder is gone.
    assert_eq!(first.allow("r", 10, "a", 0, long, false).await.unwrap(), 0);
    assert_eq!(
        second.allow("r", 10, "b", 10, long, true).await.unwrap(),
        10
    );
}
