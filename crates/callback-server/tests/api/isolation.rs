//! One receiver cannot harm the others: synchronous calls fail open, a
//! hanging receiver keeps only its own slots, a failing one is paused by
//! its circuit breaker and comes back, a rate limit spaces requests out.

use crate::helpers::{spawn_app, spawn_app_with};
use callback_testkit::{Backend, Receiver, Reply};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_returns_the_answer_or_fails_open_or_closed() {
    let app = spawn_app(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    app.create_endpoint(json!({"name": "guard", "url": receiver.url("/guard?v=1")}))
        .await;
    receiver.script([
        Reply::status(200).body(r#"{"allow": false, "reason": "spam"}"#),
        Reply::status(200).delay(Duration::from_secs(3)),
        Reply::status(503),
    ]);
    let call =
        json!({"event_type": "message.before_send", "payload": {"text": "buy now"}, "app": "im"});
    let (status, answer) = app
        .send_json("POST", "/api/v1/endpoints/guard/invoke", &call)
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["outcome"], "answered");
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["body"], json!({"allow": false, "reason": "spam"}));
    let request = receiver.requests().pop().unwrap();
    assert!(request.query.contains("v=1"), "{}", request.query);
    assert!(request.query.contains("event_type=message.before_send"));
    assert!(request.query.contains("app=im"));
    assert_eq!(request.body, br#"{"text":"buy now"}"#);
    assert!(request.header("webhook-signature").is_some());

    // A hanging endpoint: the default 2 s timeout, then the fallback.
    let started = Instant::now();
    let (status, fallback) = app
        .send_json("POST", "/api/v1/endpoints/guard/invoke", &call)
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered within the timeout"
    );
    assert_eq!(status, 200);
    assert_eq!(fallback["outcome"], "fallback");
    assert!(
        fallback["error"].as_str().unwrap().contains("timeout"),
        "{fallback:#}"
    );

    // A 5xx with fail_closed: 502.
    let mut closed = call.clone();
    closed["fail_closed"] = json!(true);
    let (status, problem) = app
        .send_json("POST", "/api/v1/endpoints/guard/invoke", &closed)
        .await;
    assert_eq!(status, 502);
    assert_eq!(problem["code"], "invoke_failed");

    let (status, _) = app
        .send_json("POST", "/api/v1/endpoints/nobody/invoke", &call)
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_take_the_workers_of_a_healthy_one() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.delivery.concurrency = 16;
        s.delivery.max_in_flight_per_receiver = 4;
    })
    .await;
    let hanging = Receiver::start().await;
    hanging.set_default(Reply::status(200).delay(Duration::from_secs(20)));
    let healthy = Receiver::start().await;
    for _ in 0..40 {
        app.submit(json!({"url": hanging.url("/hang"), "timeout_ms": 30000}))
            .await;
    }
    let mut healthy_ids = Vec::new();
    for _ in 0..40 {
        healthy_ids.push(app.submit(json!({"url": healthy.url("/ok")})).await);
    }
    let got = healthy.wait_for(40, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 40, "every healthy task was delivered meanwhile");
    assert_eq!(
        hanging.requests().len(),
        4,
        "the hanging receiver holds only its own 4 slots"
    );
    app.wait_for_status(&healthy_ids[39], "succeeded", Duration::from_secs(5))
        .await;
}

/// Tasks over a receiver's cap wait in memory for its next free slot and go
/// as soon as one frees, instead of being put off in the store for seconds;
/// the cap still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_over_the_cap_take_the_next_free_slot() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.delivery.concurrency = 16;
        s.delivery.max_in_flight_per_receiver = 2;
    })
    .await;
    let slow = Receiver::start().await;
    slow.set_default(Reply::status(200).delay(Duration::from_millis(400)));
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(app.submit(json!({"url": slow.url("/slow")})).await);
    }
    let got = slow.wait_for(6, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 6);
    let mut arrivals: Vec<Instant> = got.iter().map(|r| r.at).collect();
    arrivals.sort();
    // Two at a time, each pair as the last ends: about 0.8 s from first to
    // last. A task put off in the store would come back 2 to 4 s later.
    let span = arrivals[5] - arrivals[0];
    assert!(span < Duration::from_millis(1800), "spread over {span:?}");
    for pair in arrivals.windows(3) {
        assert!(
            pair[2] - pair[0] >= Duration::from_millis(300),
            "three requests in flight at once: {arrivals:?}"
        );
    }
    for id in &ids {
        let done = app
            .wait_for_status(id, "succeeded", Duration::from_secs(5))
            .await;
        assert_eq!(done["attempts_made"], 1);
    }
}

/// With one slot and one request a second, a task taken from the waiting
/// room is often turned away by the rate limit and deferred in the store;
/// the tasks behind it keep waiting until a later attempt ends (or the
/// reconciler's sweep gives them back). Every task still arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_tasks_behind_a_rate_limit_are_each_delivered_once() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.delivery.lease_margin_ms = 2_000;
        s.delivery.reconcile_interval_ms = 200;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200).delay(Duration::from_millis(300)));
    app.create_endpoint(json!({
        "name": "narrow", "url": receiver.url("/n"), "max_in_flight": 1, "rate_limit_per_s": 1
    }))
    .await;
    for n in 0..5 {
        app.publish(json!({"event_type": "e", "payload": {"n": n}}))
            .await;
    }
    let got = receiver.wait_for(5, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 5, "every task was delivered");
    let counts = receiver.counts_by_task();
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

async fn breaker_state(app: &crate::helpers::TestApp) -> Value {
    let (status, view) = app
        .send_json("GET", "/api/v1/endpoints/fragile", &json!(null))
        .await;
    assert_eq!(status, 200);
    view["receiver"].clone()
}

/// Attempts made by each task; none of them has failed for good.
async fn attempts_made(app: &crate::helpers::TestApp, ids: &[String]) -> Vec<u64> {
    let mut made = Vec::new();
    for id in ids {
        let task = app.task(id).await;
        assert_ne!(task["status"], "failed");
        made.push(task["attempts_made"].as_u64().unwrap());
    }
    made
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ninety_failures_open_the_breaker_which_defers_tasks_then_recovers() {
    // The default threshold (90 failures in 30 s); a short pause.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.breaker.base_pause_s = 8;
        s.alerts.check_interval_ms = 200;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(500));
    let ops = Receiver::start().await;
    let (status, _) = app
        .send_json(
            "POST",
            "/api/v1/alert-hooks",
            &json!({"kind": "webhook", "url": ops.url("/ops")}),
        )
        .await;
    assert_eq!(status, 201);
    app.create_endpoint(json!({"name": "fragile", "url": receiver.url("/f"), "retry_delays_s": [1], "max_attempts": 50}))
        .await;
    let mut ids = Vec::new();
    for n in 0..150 {
        let (_, p) = app
            .publish(json!({"event_type": "e", "payload": {"n": n}}))
            .await;
        ids.push(p["task_ids"][0].as_str().unwrap().to_string());
    }
    receiver.wait_for(90, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let state = breaker_state(&app).await;
    assert_eq!(state["breaker"], "open", "{state:#}");
    assert_eq!(
        state["failure_ratio"], 1.0,
        "every attempt failed: {state:#}"
    );
    assert_eq!(state["openings_24h"], 1);
    let (_, open) = app.send_json("GET", "/api/v1/breakers", &json!(null)).await;
    assert_eq!(open["items"][0]["receiver"], "endpoint:fragile");
    // The opening reaches the alert hooks.
    let told = ops.wait_for(1, Duration::from_secs(10)).await;
    let message: Value = serde_json::from_slice(&told[0].body).unwrap();
    assert!(
        message["breakers"][0]
            .as_str()
            .unwrap()
            .contains("endpoint:fragile"),
        "{message:#}"
    );

    // While open nothing is attempted: the 1 s retries wait, using no
    // attempt, and tasks not tried yet stay untried.
    let before = attempts_made(&app, &ids).await;
    let sent = receiver.requests().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.requests().len(), sent, "paused");
    assert_eq!(
        attempts_made(&app, &ids).await,
        before,
        "no attempt while open"
    );
    let untried = before.iter().filter(|n| **n == 0).count();
    assert_eq!(untried + receiver.counts_by_task().len(), 150);

    // The receiver heals; after the pause one trial closes the breaker and
    // every task is delivered.
    receiver.set_default(Reply::status(200));
    for id in &ids {
        app.wait_for_status(id, "succeeded", Duration::from_secs(30))
            .await;
    }
    assert_eq!(breaker_state(&app).await["breaker"], "closed");
    let (_, open) = app.send_json("GET", "/api/v1/breakers", &json!(null)).await;
    assert_eq!(open["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_rate_limit_spaces_its_requests_out() {
    let app = spawn_app(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    app.create_endpoint(
        json!({"name": "slowpoke", "url": receiver.url("/r"), "rate_limit_per_s": 5}),
    )
    .await;
    for n in 0..15 {
        app.publish(json!({"event_type": "e", "payload": {"n": n}}))
            .await;
    }
    let got = receiver.wait_for(15, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 15);
    let spread = got[14].at.duration_since(got[0].at);
    // 15 requests at 5 a second (bursts of up to 5) take at least 2 s.
    assert!(
        spread >= Duration::from_millis(1800),
        "15 requests in {spread:?}"
    );
}

/// The breaker tells failing from busy: 5,000 tasks to one receiver that
/// fails one request in twenty make 250 failures, far past the threshold
/// of 90, at a 5 % ratio. Nothing is paused, every task is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_receiver_failing_five_percent_is_never_paused() {
    let app = spawn_app(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    receiver.script((0..5_000).map(|i| Reply::status(if i % 20 == 0 { 500 } else { 200 })));
    receiver.set_default(Reply::status(200));
    let mut ids = Vec::new();
    for _ in 0..5 {
        let tasks: Vec<Value> = (0..1_000)
            .map(|_| json!({"url": receiver.url("/busy"), "retry_delays_s": [1]}))
            .collect();
        let (status, batch) = app
            .send_json("POST", "/api/v1/tasks/batch", &json!({ "tasks": tasks }))
            .await;
        assert_eq!(status, 201);
        ids.extend(crate::helpers::batch_ids(&batch));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, open) = app.send_json("GET", "/api/v1/breakers", &json!(null)).await;
        assert_eq!(open["items"], json!([]), "no breaker opened");
        let (_, succeeded) = app
            .send_json(
                "GET",
                "/api/v1/tasks?status=succeeded&limit=1",
                &json!(null),
            )
            .await;
        let (_, pending) = app
            .send_json("GET", "/api/v1/tasks?status=retrying&limit=1", &json!(null))
            .await;
        if succeeded["items"].as_array().is_some_and(|a| !a.is_empty())
            && pending["items"] == json!([])
            && receiver.requests().len() >= 5_250
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all delivered within a minute"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in ids.iter().step_by(97) {
        assert_eq!(app.task(id).await["status"], "succeeded", "{id}");
    }
    let metrics = app.metrics_text().await;
    assert!(
        !metrics.contains("deferred_breaker"),
        "nothing was put off by the breaker"
    );
    app.stop().await;

    // With failure_ratio = 0 (the threshold alone, the old rule) the same
    // traffic pauses the receiver.
    let strict = spawn_app_with(Backend::Sqlite, |s| s.breaker.failure_ratio = 0.0).await;
    let receiver = Receiver::start().await;
    receiver.script((0..3_000).map(|i| Reply::status(if i % 20 == 0 { 500 } else { 200 })));
    receiver.set_default(Reply::status(200));
    for _ in 0..3 {
        let tasks: Vec<Value> = (0..1_000)
            .map(|_| json!({"url": receiver.url("/busy"), "retry_delays_s": [1]}))
            .collect();
        let (status, _) = strict
            .send_json("POST", "/api/v1/tasks/batch", &json!({ "tasks": tasks }))
            .await;
        assert_eq!(status, 201);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, open) = strict
            .send_json("GET", "/api/v1/breakers", &json!(null))
            .await;
        if open["items"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the old rule did not open it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    strict.stop().await;
}

/// An endpoint's own breaker settings win over the server's: five failures
/// open it, not ninety. Bad values name their field; `null` goes back to
/// the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_can_have_a_breaker_of_its_own() {
    let app = spawn_app(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(500));
    let (status, problem) = app
        .send_json(
            "POST",
            "/api/v1/endpoints",
            &json!({"name": "bad", "url": receiver.url("/f"), "breaker": {"failure_ratio": 1.5, "failure_threshold": 0}}),
        )
        .await;
    assert_eq!(status, 400);
    let mut fields = crate::helpers::problem_fields(&problem);
    fields.sort();
    assert_eq!(
        fields,
        ["breaker.failure_ratio", "breaker.failure_threshold"]
    );
    let created = app
        .create_endpoint(json!({
            "name": "fragile", "url": receiver.url("/f"), "retry_delays_s": [60],
            "max_in_flight": 1, "breaker": {"failure_threshold": 5}
        }))
        .await;
    assert_eq!(
        created["breaker"],
        json!({"failure_threshold": 5, "failure_ratio": null})
    );
    for n in 0..20 {
        app.publish(json!({"event_type": "e", "payload": {"n": n}}))
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let state = loop {
        let state = breaker_state(&app).await;
        if state["breaker"] == "open" {
            break state;
        }
        assert!(Instant::now() < deadline, "{state:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(state["recent_failures"], 5, "{state:#}");
    assert!(receiver.requests().len() <= 6, "paused after five failures");
    let (status, view) = app
        .send_json(
            "PATCH",
            "/api/v1/endpoints/fragile",
            &json!({"breaker": null}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        view["breaker"],
        json!({"failure_threshold": null, "failure_ratio": null})
    );
    app.stop().await;
}
