//! Ordered delivery per key (ADR 5) at the user's level: tasks and events
//! with an `ordering_key` reach the receiver one at a time in acceptance
//! order, a failed task blocks its key or is skipped as asked, operators
//! see what a task waits for and move a blocked key on.

use crate::helpers::{problem_fields, refused_url, spawn_app, spawn_app_with, TestApp};
use callback_testkit::{Backend, Receiver, Reply};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// The `n` of each 2xx delivery's body, in arrival order, for `key`.
fn delivered_in_order(receiver: &Receiver, key: &str) -> Vec<u64> {
    receiver
        .requests()
        .iter()
        .filter(|r| (200..300).contains(&r.replied))
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|b| b["key"] == key)
        .filter_map(|b| b["n"].as_u64())
        .collect()
}

fn ordered_task(url: &str, key: &str, n: u64) -> Value {
    json!({
        "url": url,
        "ordering_key": key,
        "body": {"key": key, "n": n},
        "retry_delays_s": [1],
    })
}

async fn batch(app: &TestApp, tasks: Vec<Value>) -> Vec<String> {
    let (status, answer) = app
        .send_json("POST", "/api/v1/tasks/batch", &json!({ "tasks": tasks }))
        .await;
    assert_eq!(status, 201, "{answer:#}");
    crate::helpers::batch_ids(&answer)
}

async fn tasks_of_a_key_arrive_one_at_a_time_in_acceptance_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    // Slow answers: were two tasks of a key sent at once, the later one
    // (sent second) could arrive first.
    receiver.set_default(Reply::status(200).delay(Duration::from_millis(150)));
    // The first of each key answers late, so that the others are surely
    // still waiting when looked at.
    let late = Reply::status(200).delay(Duration::from_secs(1));
    receiver.script([late.clone(), late]);
    let url = receiver.url("/orders");
    // Two keys interleaved in one batch, then more of each one by one.
    let mut tasks = Vec::new();
    for n in 0..4 {
        tasks.push(ordered_task(&url, "order-a", n));
        tasks.push(ordered_task(&url, "order-b", n));
    }
    let ids = batch(&app, tasks).await;
    let first_a = &ids[0];
    let second_a = app.task(&ids[2]).await;
    assert_eq!(second_a["status"], "waiting", "{second_a:#}");
    assert_eq!(second_a["ordering_key"], "order-a");
    assert_eq!(second_a["on_failure"], "block");
    assert_eq!(second_a["next_attempt_at"], Value::Null);
    assert_eq!(second_a["waiting_for"], first_a.as_str(), "{second_a:#}");
    let listed: Value = app
        .get("/api/v1/tasks?status=waiting")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 6, "{listed:#}");
    let mut last = String::new();
    for n in 4..8 {
        for key in ["order-a", "order-b"] {
            last = app.submit(ordered_task(&url, key, n)).await;
        }
    }
    app.wait_for_status(&last, "succeeded", WAIT).await;
    let expected: Vec<u64> = (0..8).collect();
    assert_eq!(delivered_in_order(&receiver, "order-a"), expected);
    assert_eq!(delivered_in_order(&receiver, "order-b"), expected);
    // One at a time: each task of a key arrived after the answer to the
    // one before it (150 ms each).
    for key in ["order-a", "order-b"] {
        let arrivals: Vec<_> = receiver
            .requests()
            .into_iter()
            .filter(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["key"] == key)
            .map(|r| r.at)
            .collect();
        for pair in arrivals.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= Duration::from_millis(140), "{key}: {gap:?} apart");
        }
    }
    // The two keys ran side by side: one after the other, their answers
    // alone would take 2 x 1 s + 14 x 150 ms.
    let all = receiver.requests();
    let span = all.last().unwrap().at - all.first().unwrap().at;
    assert!(span < Duration::from_millis(3_000), "{span:?}");
}

async fn a_retried_task_keeps_the_tasks_behind_it_waiting(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    // One key: arrival order is deterministic, so the script's third
    // answer is the first attempt of task 2.
    receiver.script([Reply::status(200), Reply::status(200), Reply::status(500)]);
    let url = receiver.url("/retry");
    let ids = batch(
        &app,
        (0..6).map(|n| ordered_task(&url, "order-r", n)).collect(),
    )
    .await;
    app.wait_for_status(&ids[5], "succeeded", WAIT).await;
    let arrivals: Vec<u64> = receiver
        .requests()
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // Task 2 failed once and was retried a second later; nothing of the
    // key overtook it meanwhile.
    assert_eq!(arrivals, [0, 1, 2, 2, 3, 4, 5]);
    assert_eq!(app.task(&ids[2]).await["attempts_made"], 2);
}

async fn a_failed_task_blocks_its_key_until_an_operator_cancels_or_resends_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    let url = receiver.url("/block");
    let mut dead = ordered_task(&refused_url(), "order-x", 0);
    dead["max_attempts"] = json!(1);
    let head = app.submit(dead).await;
    let behind = app.submit(ordered_task(&url, "order-x", 1)).await;
    let last = app.submit(ordered_task(&url, "order-x", 2)).await;
    app.wait_for_status(&head, "failed", WAIT).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        receiver.requests().is_empty(),
        "nothing overtook the failed task"
    );
    let waiting = app.task(&behind).await;
    assert_eq!(waiting["status"], "waiting");
    assert_eq!(waiting["waiting_for"], head.as_str(), "{waiting:#}");
    // Cancelling the failed task that blocks its key lets the key go on.
    let cancel = app.post(&format!("/api/v1/tasks/{head}/cancel")).await;
    assert_eq!(cancel.status(), 200);
    app.wait_for_status(&last, "succeeded", WAIT).await;
    assert_eq!(delivered_in_order(&receiver, "order-x"), [1, 2]);
    // A task that ended for its key is no longer cancellable.
    let again = app.post(&format!("/api/v1/tasks/{head}/cancel")).await;
    assert_eq!(again.status(), 409);

    // Re-sending a blocking task keeps its place: it goes first.
    receiver.script([Reply::status(500)]);
    let mut fails_once = ordered_task(&url, "order-y", 0);
    fails_once["max_attempts"] = json!(1);
    let head = app.submit(fails_once).await;
    app.wait_for_status(&head, "failed", WAIT).await;
    let behind = app.submit(ordered_task(&url, "order-y", 1)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.task(&behind).await["status"], "waiting");
    let resend = app.post(&format!("/api/v1/tasks/{head}/retry")).await;
    assert_eq!(resend.status(), 200);
    app.wait_for_status(&behind, "succeeded", WAIT).await;
    assert_eq!(app.task(&head).await["status"], "succeeded");
    // The 500, then the re-sent task's success, then the one behind it.
    assert_eq!(delivered_in_order(&receiver, "order-y"), [0, 1]);
}

/// With the reconciler's next pass an hour away, only the cancel itself
/// can start the task behind the one cancelled: one by one and in bulk.
async fn cancelling_the_task_a_key_waits_on_starts_the_next_at_once(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.delivery.reconcile_interval_ms = 3_600_000).await;
    let receiver = Receiver::start().await;
    let url = receiver.url("/handover");
    for (key, in_bulk) in [("order-one", false), ("order-bulk", true)] {
        let mut dead = ordered_task(&refused_url(), key, 0);
        dead["max_attempts"] = json!(1);
        dead["target_app"] = json!(key);
        let head = app.submit(dead).await;
        let behind = app.submit(ordered_task(&url, key, 1)).await;
        app.wait_for_status(&head, "failed", WAIT).await;
        assert_eq!(app.task(&behind).await["status"], "waiting");
        if in_bulk {
            let (status, answer) = app
                .send_json(
                    "POST",
                    "/api/v1/tasks/cancel",
                    &json!({"status": "failed", "target_app": key}),
                )
                .await;
            assert_eq!(status, 200, "{answer:#}");
            assert_eq!(answer["acted"], 1, "{answer:#}");
        } else {
            let cancel = app.post(&format!("/api/v1/tasks/{head}/cancel")).await;
            assert_eq!(cancel.status(), 200);
        }
        app.wait_for_status(&behind, "succeeded", Duration::from_secs(5))
            .await;
        assert_eq!(delivered_in_order(&receiver, key), [1]);
    }
}

/// Single tasks with an idempotency key are written one transaction each,
/// and with an ordering key each locks its key: many at once, on keys
/// that sort next to each other, and each sent twice, are all answered
/// (a deadlock among them is written again, not refused), one task a
/// request key, every one delivered once.
async fn concurrent_tasks_with_both_keys_are_all_accepted_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    let mut calls = tokio::task::JoinSet::new();
    for copy in 0..2 {
        for n in 0..24u64 {
            let key = format!("order-{}", n % 6);
            let body = json!({
                "url": receiver.url("/both"),
                "ordering_key": key,
                "idempotency_key": format!("request-{n}"),
                "body": {"key": key, "n": n},
            });
            let request = app
                .client
                .post(app.url("/api/v1/tasks"))
                .bearer_auth(crate::helpers::TOKEN)
                .json(&body);
            calls.spawn(async move {
                let answer = request.send().await.unwrap();
                let status = answer.status().as_u16();
                let answer: Value = answer.json().await.unwrap();
                (n, copy, status, answer)
            });
        }
    }
    let mut ids = std::collections::HashMap::new();
    while let Some(call) = calls.join_next().await {
        let (n, copy, status, answer) = call.unwrap();
        assert!(
            status == 201 || status == 200,
            "{n}/{copy}: {status} {answer:#}"
        );
        let id = answer["task_id"].as_str().unwrap().to_string();
        let first = ids.entry(n).or_insert_with(|| id.clone());
        assert_eq!(*first, id, "both copies of request {n} answer one task");
    }
    assert_eq!(ids.len(), 24);
    for id in ids.values() {
        app.wait_for_status(id, "succeeded", WAIT).await;
    }
    let mut delivered: Vec<u64> = (0..6)
        .flat_map(|k| delivered_in_order(&receiver, &format!("order-{k}")))
        .collect();
    delivered.sort_unstable();
    assert_eq!(delivered, (0..24).collect::<Vec<u64>>());
}

async fn skip_lets_the_next_start_and_a_resent_task_joins_the_end(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    let url = receiver.url("/skip");
    receiver.script([Reply::status(500)]);
    let mut skipped = ordered_task(&url, "order-s", 0);
    skipped["max_attempts"] = json!(1);
    skipped["on_failure"] = json!("skip");
    let first = app.submit(skipped).await;
    let mut next = ordered_task(&url, "order-s", 1);
    next["on_failure"] = json!("skip");
    let second = app.submit(next).await;
    app.wait_for_status(&second, "succeeded", WAIT).await;
    assert_eq!(app.task(&first).await["status"], "failed");
    // Re-sent, it goes to the key's end: behind a slow task now running.
    receiver.set_default(Reply::status(200).delay(Duration::from_millis(600)));
    let running = app.submit(ordered_task(&url, "order-s", 2)).await;
    app.wait_for_status(&running, "delivering", WAIT).await;
    let resent: Value = app
        .post(&format!("/api/v1/tasks/{first}/retry"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resent["status"], "waiting", "{resent:#}");
    app.wait_for_status(&first, "succeeded", WAIT).await;
    assert_eq!(delivered_in_order(&receiver, "order-s"), [1, 2, 0]);
}

async fn an_events_key_orders_each_endpoint_apart(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    app.create_endpoint(
        json!({"name": "fast", "url": receiver.url("/fast"), "event_types": ["order.changed"]}),
    )
    .await;
    app.create_endpoint(json!({"name": "broken", "url": refused_url(), "event_types": ["order.changed"], "max_attempts": 1}))
        .await;
    let mut published = Vec::new();
    for n in 0..5 {
        let (status, view) = app
            .publish(json!({
                "event_type": "order.changed",
                "payload": {"key": "order-e", "n": n},
                "ordering_key": "order-e",
            }))
            .await;
        assert_eq!(status, 201, "{view:#}");
        published.push(view);
    }
    // Endpoint-name order: broken, then fast.
    let last_fast = published[4]["task_ids"][1].as_str().unwrap().to_string();
    app.wait_for_status(&last_fast, "succeeded", WAIT).await;
    assert_eq!(delivered_in_order(&receiver, "order-e"), [0, 1, 2, 3, 4]);
    // The broken endpoint's first task failed and blocks only its own.
    let broken_first = published[0]["task_ids"][0].as_str().unwrap();
    app.wait_for_status(broken_first, "failed", WAIT).await;
    let broken_second = app
        .task(published[1]["task_ids"][0].as_str().unwrap())
        .await;
    assert_eq!(broken_second["status"], "waiting", "{broken_second:#}");
    assert_eq!(broken_second["waiting_for"], broken_first);
}

async fn ordering_fields_are_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = "http://127.0.0.1:9/x";
    for (body, field) in [
        (
            json!({"url": url, "ordering_key": "k", "delay_s": 5}),
            "delay_s",
        ),
        (json!({"url": url, "on_failure": "skip"}), "on_failure"),
        (
            json!({"url": url, "ordering_key": "k", "on_failure": "retry"}),
            "on_failure",
        ),
        (json!({"url": url, "ordering_key": ""}), "ordering_key"),
        (
            json!({"url": url, "ordering_key": "k".repeat(256)}),
            "ordering_key",
        ),
        (
            json!({"url": url, "ordering_key": "a\u{7}b"}),
            "ordering_key",
        ),
    ] {
        let response = app.post_task(&body).await;
        assert_eq!(response.status(), 400, "{body}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem_fields(&problem), [field], "{problem:#}");
    }
    let (status, problem) = app
        .publish(json!({"event_type": "a.b", "payload": {}, "on_failure": "skip"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(problem_fields(&problem), ["on_failure"]);
    // Nothing was stored by any of them.
    assert_eq!(
        app.db.query_i64("SELECT COUNT(*) FROM tasks").await,
        Some(0)
    );
}

on_every_backend!(
    tasks_of_a_key_arrive_one_at_a_time_in_acceptance_order,
    a_retried_task_keeps_the_tasks_behind_it_waiting,
    a_failed_task_blocks_its_key_until_an_operator_cancels_or_resends_it,
    cancelling_the_task_a_key_waits_on_starts_the_next_at_once,
    concurrent_tasks_with_both_keys_are_all_accepted_once,
    skip_lets_the_next_start_and_a_resent_task_joins_the_end,
    an_events_key_orders_each_endpoint_apart,
    ordering_fields_are_checked,
);
