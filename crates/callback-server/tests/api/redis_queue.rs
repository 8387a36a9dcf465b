//! The server on the Redis delay queue, as configured by `[redis]`: delayed
//! tasks and retries wait in Redis and are delivered from it.

use crate::helpers::{batch_ids, spawn_app_with};
use callback_testkit::{Backend, PrivateRedisCluster, Receiver, Reply, TestRedis};
use secrecy::SecretString;
use serde_json::json;
use std::time::Duration;

/// The members of the due set once `count` are there, or after half a
/// second: new tasks go to Redis together with other writes, just after
/// their answer.
async fn due_soon(redis: &TestRedis, count: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    loop {
        let due = redis.members("due").await;
        if due.len() >= count || tokio::time::Instant::now() >= deadline {
            return due;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_tasks_and_retries_wait_in_redis_and_are_delivered_from_it() {
    let redis = TestRedis::create().await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(503)]);
    let app = spawn_app_with(Backend::Mysql, |s| {
        s.redis.url = Some(SecretString::from(redis.url.clone()));
        s.redis.key_prefix = redis.prefix.clone();
        // Only the queue may bring these tasks in on time.
        s.delivery.reconcile_interval_ms = 60_000;
    })
    .await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["queue"], json!({"backend": "redis", "status": "ok"}));

    let id = app
        .submit(json!({"url": receiver.url("/later"), "delay_s": 1, "retry_delays_s": [1]}))
        .await;
    assert_eq!(due_soon(&redis, 1).await, vec![id.clone()]);
    let task = app
        .wait_for_status(&id, "succeeded", Duration::from_secs(15))
        .await;
    assert_eq!(task["attempts"].as_array().unwrap().len(), 2, "{task:#}");
    assert!(redis.members("due").await.is_empty());
    assert!(redis.members("inflight").await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_batch_waits_in_redis_and_is_delivered_from_it() {
    let redis = TestRedis::create().await;
    let receiver = Receiver::start().await;
    let app = spawn_app_with(Backend::Mysql, |s| {
        s.redis.url = Some(SecretString::from(redis.url.clone()));
        s.redis.key_prefix = redis.prefix.clone();
        s.delivery.reconcile_interval_ms = 60_000;
    })
    .await;
    let tasks: Vec<serde_json::Value> = (0..5)
        .map(|i| json!({"url": receiver.url(&format!("/b{i}")), "delay_s": 1}))
        .collect();
    let (status, batch) = app
        .send_json("POST", "/api/v1/tasks/batch", &json!({"tasks": tasks}))
        .await;
    assert_eq!(status, 201, "{batch}");
    let mut ids = batch_ids(&batch);
    let mut due = due_soon(&redis, ids.len()).await;
    ids.sort();
    due.sort();
    assert_eq!(due, ids, "the whole batch is scheduled in Redis");
    for id in &ids {
        app.wait_for_status(id, "succeeded", Duration::from_secs(15))
            .await;
    }
    assert_eq!(receiver.requests().len(), 5);
    assert!(redis.members("due").await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_is_configured_by_its_seed_nodes() {
    let cluster = PrivateRedisCluster::start().await;
    let receiver = Receiver::start().await;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.redis.url = Some(SecretString::from(cluster.urls().join(",")));
        s.redis.cluster = true;
        s.delivery.reconcile_interval_ms = 60_000;
    })
    .await;
    let ids = [
        app.submit(json!({"url": receiver.url("/a"), "delay_s": 1}))
            .await,
        app.submit(json!({"url": receiver.url("/b"), "delay_s": 1}))
            .await,
    ];
    for id in &ids {
        app.wait_for_status(id, "succeeded", Duration::from_secs(15))
            .await;
    }
    assert_eq!(receiver.requests().len(), 2);
    app.stop().await;
}

/// A backlog larger than a receiver's cap and its waiting room: the tasks
/// that find no room are given back to the store together and put back in
/// Redis together, each due again at its own time. Only the queue brings
/// them back here (the reconciler is off), every task arrives once, and
/// none spends an attempt on waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_over_a_receivers_cap_is_put_off_in_groups_and_delivered_once() {
    let redis = TestRedis::create().await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200).delay(Duration::from_millis(100)));
    let app = spawn_app_with(Backend::Mysql, |s| {
        s.redis.url = Some(SecretString::from(redis.url.clone()));
        s.redis.key_prefix = redis.prefix.clone();
        s.delivery.reconcile_interval_ms = 60_000;
        // Two in flight, four waiting in memory: the rest is put off.
        s.delivery.concurrency = 8;
        s.delivery.max_in_flight_per_receiver = 2;
    })
    .await;
    // A short timeout puts a task off for 0.5 to 1 s when there is no room.
    let tasks: Vec<serde_json::Value> = (0..30)
        .map(|i| json!({"url": receiver.url(&format!("/t{i}")), "delay_s": 1, "timeout_ms": 500}))
        .collect();
    let (status, batch) = app
        .send_json("POST", "/api/v1/tasks/batch", &json!({"tasks": tasks}))
        .await;
    assert_eq!(status, 201, "{batch}");
    let ids = batch_ids(&batch);
    for id in &ids {
        let done = app
            .wait_for_status(id, "succeeded", Duration::from_secs(30))
            .await;
        assert_eq!(done["attempts_made"], 1, "{done:#}");
    }
    let counts = receiver.counts_by_task();
    assert_eq!(counts.len(), 30);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    let mut arrivals: Vec<_> = receiver.requests().iter().map(|r| r.at).collect();
    arrivals.sort();
    for three in arrivals.windows(3) {
        assert!(
            three[2] - three[0] >= Duration::from_millis(80),
            "three requests in flight at once: {arrivals:?}"
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !redis.members("inflight").await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "ids left in flight");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(redis.members("due").await.is_empty());
    app.stop().await;
}

/// Two instances on one Redis. Only the first would ever open its own
/// breaker (threshold 3); the second's never opens (threshold 10⁶). Once
/// the first has paused a failing receiver, the second pauses it too: the
/// tasks it takes are put off, not sent. `/readyz` says breakers are shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_one_instance_opens_pauses_the_receiver_on_the_other() {
    let redis = TestRedis::create().await;
    let (url, prefix) = (redis.url.clone(), redis.prefix.clone());
    let with_redis = move |s: &mut callback_server::Settings, threshold: u32| {
        s.redis.url = Some(secrecy::SecretString::from(url.clone()));
        s.redis.key_prefix = prefix.clone();
        s.breaker.failure_threshold = threshold;
        s.breaker.failure_ratio = 0.5;
    };
    let tight = with_redis.clone();
    let first = crate::helpers::spawn_app_with(Backend::Mysql, move |s| tight(s, 3)).await;
    let second =
        crate::helpers::spawn_app_on(first.db.clone(), move |s| with_redis(s, 1_000_000)).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(500));

    // Submitted to the first, due now: each is handed to its own workers.
    for _ in 0..6 {
        first
            .submit(json!({"url": receiver.url("/down"), "max_attempts": 1}))
            .await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, open) = first
            .send_json("GET", "/api/v1/breakers", &json!(null))
            .await;
        if !open["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first instance's breaker never opened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Within a second the second instance knows.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = receiver.requests().len();
    for _ in 0..3 {
        second
            .submit(json!({"url": receiver.url("/down"), "max_attempts": 1}))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.requests().len(),
        seen,
        "the second instance sent nothing to the paused receiver"
    );
    let metrics = second.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("callback_delivery_attempts_total")
                && l.contains("deferred_breaker")
                && !l.ends_with(" 0")),
        "the second instance put tasks off for the breaker:\n{metrics}"
    );
    let ready: serde_json::Value = second.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["breakers"], "shared", "{ready:#}");
    second.stop().await;
    first.stop().await;
}

/// Without an answer from Redis, breakers fall back to each instance's
/// own, and `/readyz` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_breakers_are_local_and_readyz_says_so() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.redis.url = Some(SecretString::from(url));
        s.redis.command_timeout_ms = 200;
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ready: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "degraded", "{ready:#}");
    assert_eq!(ready["breakers"], "local: Redis unreachable", "{ready:#}");
    app.stop().await;
}

/// Settings for instances that share `redis` (the queue and the limits).
fn sharing(redis: &TestRedis) -> impl Fn(&mut callback_server::Settings) + Clone {
    let (url, prefix) = (redis.url.clone(), redis.prefix.clone());
    move |s: &mut callback_server::Settings| {
        s.redis.url = Some(SecretString::from(url.clone()));
        s.redis.key_prefix = prefix.clone();
    }
}

/// An endpoint capped at 3 attempts in flight, fed by three instances on
/// one Redis: the cap holds for the cluster (slots in Redis with leases).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_cap_holds_for_the_cluster_not_for_each_instance() {
    let redis = TestRedis::create().await;
    let with_redis = sharing(&redis);
    let first = spawn_app_with(Backend::Mysql, with_redis.clone()).await;
    let second = crate::helpers::spawn_app_on(first.db.clone(), with_redis.clone()).await;
    let third = crate::helpers::spawn_app_on(first.db.clone(), with_redis).await;
    let receiver = Receiver::start().await;
    let hold = Duration::from_millis(300);
    receiver.set_default(Reply::status(200).delay(hold));
    first
        .create_endpoint(json!({
            "name": "capped",
            "url": receiver.url("/capped"),
            "event_types": ["cap.test"],
            "max_in_flight": 3,
        }))
        .await;
    let instances = [&first, &second, &third];
    for i in 0..30 {
        let (status, _) = instances[i % 3]
            .publish(json!({"event_type": "cap.test", "payload": {"i": i}}))
            .await;
        assert_eq!(status, 201);
    }
    let got = receiver.wait_for(30, Duration::from_secs(60)).await;
    // Each request is answered `hold` after it arrives and its slot is given
    // back only then: at most 3 can arrive within any window shorter than
    // that. Each instance alone would let 3 through, 9 in all.
    let arrivals: Vec<_> = got.iter().map(|r| r.at).collect();
    let window = hold - Duration::from_millis(30);
    let most = arrivals
        .iter()
        .map(|start| {
            arrivals
                .iter()
                .filter(|at| **at >= *start && at.duration_since(*start) < window)
                .count()
        })
        .max()
        .unwrap();
    assert!(
        most <= 3,
        "{most} requests arrived within {window:?}; the cap is 3"
    );
    assert!(most >= 2, "attempts went one at a time: {most}");
    third.stop().await;
    second.stop().await;
    first.stop().await;
}

/// An endpoint limited to 4 requests a second, fed by two instances on
/// one Redis: the limit holds for the cluster, so 24 deliveries fill six
/// one-second windows and span at least four seconds (from the end of the
/// first window to the start of the sixth). Each instance alone would let
/// 8 a second through together: about two seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_for_the_cluster_not_for_each_instance() {
    let redis = TestRedis::create().await;
    let with_redis = sharing(&redis);
    let first = spawn_app_with(Backend::Mysql, with_redis.clone()).await;
    let second = crate::helpers::spawn_app_on(first.db.clone(), with_redis).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200));
    first
        .create_endpoint(json!({
            "name": "limited",
            "url": receiver.url("/limited"),
            "event_types": ["rate.test"],
            "rate_limit_per_s": 4,
        }))
        .await;
    for i in 0..24 {
        let app = if i % 2 == 0 { &first } else { &second };
        let (status, _) = app
            .publish(json!({"event_type": "rate.test", "payload": {"i": i}}))
            .await;
        assert_eq!(status, 201);
    }
    let got = receiver.wait_for(24, Duration::from_secs(60)).await;
    let span = got[23].at.duration_since(got[0].at);
    assert!(
        span >= Duration::from_millis(3_500),
        "24 requests at 4 a second span about 4 s or more, not {span:?}"
    );
    second.stop().await;
    first.stop().await;
}

/// A Redis that hangs (stopped with SIGSTOP: connections open, nothing
/// answered) while tasks are submitted, due now and later, one by one and
/// in batches: every answer comes within the command timeout and a margin,
/// every task is stored, and once Redis answers again every task arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_redis_never_holds_intake_past_its_timeout() {
    let redis = callback_testkit::PrivateRedis::start().await;
    let url = redis.url();
    let timeout = Duration::from_millis(500);
    let app = spawn_app_with(Backend::Mysql, move |s| {
        s.redis.url = Some(SecretString::from(url));
        s.redis.command_timeout_ms = 500;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200));
    // A first task proves the path works and opens the connection.
    app.submit(json!({"url": receiver.url("/warm")})).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;

    redis.pause();
    let mut slowest = Duration::ZERO;
    let mut submitted = 1;
    for i in 0..20 {
        let delay = if i % 2 == 0 { 0 } else { 1 };
        let began = std::time::Instant::now();
        app.submit(json!({"url": receiver.url(&format!("/t/{i}")), "delay_s": delay}))
            .await;
        slowest = slowest.max(began.elapsed());
        submitted += 1;
    }
    let batch: Vec<serde_json::Value> = (0..50)
        .map(|i| json!({"url": receiver.url(&format!("/b/{i}")), "delay_s": 1}))
        .collect();
    let began = std::time::Instant::now();
    let (status, _) = app
        .send_json("POST", "/api/v1/tasks/batch", &json!({"tasks": batch}))
        .await;
    assert_eq!(status, 201);
    slowest = slowest.max(began.elapsed());
    submitted += 50;
    // Redis did hang meanwhile: readiness says so, itself within the timeout.
    let began = std::time::Instant::now();
    let ready: serde_json::Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(ready["queue"]["status"], "ok", "{ready:#}");
    slowest = slowest.max(began.elapsed());
    let margin = Duration::from_millis(700);
    assert!(
        slowest <= timeout + margin,
        "an answer took {slowest:?} with Redis hanging; the command timeout is {timeout:?}"
    );
    redis.resume();
    let got = receiver.wait_for(submitted, Duration::from_secs(60)).await;
    let distinct: std::collections::HashSet<String> = got.iter().map(|r| r.task_id()).collect();
    assert_eq!(distinct.len(), submitted, "every accepted task arrives");
    app.stop().await;
}
