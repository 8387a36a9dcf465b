//! Operator actions on single tasks: re-send and cancel.

use crate::helpers::spawn_app;
use callback_testkit::{Backend, Receiver, Reply};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

async fn failed_task_is_resent_with_fresh_attempts_and_its_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500), Reply::status(500)]);
    let id = app
        .submit(json!({"url": receiver.url("/x"), "retry_delays_s": [0], "max_attempts": 2}))
        .await;
    app.wait_for_status(&id, "failed", WAIT).await;
    let resent = app.post(&format!("/api/v1/tasks/{id}/retry")).await;
    assert_eq!(resent.status(), 200);
    let resent: Value = resent.json().await.unwrap();
    assert_eq!(resent["status"], "pending");
    let task = app.wait_for_status(&id, "succeeded", WAIT).await;
    assert_eq!(task["attempts_made"], 3);
    let attempts = task["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "history is kept");
    assert_eq!(attempts[2]["success"], true);
    assert_eq!(
        receiver.requests()[2].header("x-callback-attempt"),
        Some("3")
    );
}

async fn unfinished_task_cannot_be_resent(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app
        .submit(json!({"url": "https://example.com/x", "delay_s": 3600}))
        .await;
    let response = app.post(&format!("/api/v1/tasks/{id}/retry")).await;
    assert_eq!(response.status(), 409);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_state");
    let missing = app
        .post("/api/v1/tasks/0190a5b4-0000-7000-8000-000000000000/retry")
        .await;
    assert_eq!(missing.status(), 404);
}

async fn cancelled_task_is_not_attempted_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(500));
    let id = app
        .submit(json!({"url": receiver.url("/x"), "retry_delays_s": [2], "max_attempts": 5}))
        .await;
    app.wait_for_status(&id, "retrying", WAIT).await;
    let cancelled = app.post(&format!("/api/v1/tasks/{id}/cancel")).await;
    assert_eq!(cancelled.status(), 200);
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["next_attempt_at"].is_null());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.requests().len(), 1);
    let again = app.post(&format!("/api/v1/tasks/{id}/cancel")).await;
    assert_eq!(again.status(), 409);
    // A cancelled task may be re-sent.
    receiver.set_default(Reply::status(200));
    assert_eq!(
        app.post(&format!("/api/v1/tasks/{id}/retry"))
            .await
            .status(),
        200
    );
    app.wait_for_status(&id, "succeeded", WAIT).await;
}

/// Results finishing together are written as one group; a task cancelled
/// while its attempt was in flight keeps its cancel, its attempt is still
/// recorded, and the tasks around it move on.
async fn task_cancelled_during_its_attempt_stays_cancelled_among_grouped_results(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200).delay(Duration::from_millis(1500)));
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            app.submit(json!({"url": receiver.url(&format!("/t{i}"))}))
                .await,
        );
    }
    receiver.wait_for(12, WAIT).await;
    let cancelled = app.post(&format!("/api/v1/tasks/{}/cancel", ids[0])).await;
    assert_eq!(cancelled.status(), 200);
    for id in &ids[1..] {
        app.wait_for_status(id, "succeeded", WAIT).await;
    }
    let detail = app.task(&ids[0]).await;
    assert_eq!(detail["status"], "cancelled");
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "the attempt made is recorded: {detail}");
    assert_eq!(attempts[0]["status_code"], 200);
    for id in &ids[1..] {
        assert_eq!(app.task(id).await["attempts"].as_array().unwrap().len(), 1);
    }
}

on_every_backend!(
    task_cancelled_during_its_attempt_stays_cancelled_among_grouped_results,
    failed_task_is_resent_with_fresh_attempts_and_its_history,
    unfinished_task_cannot_be_resent,
    cancelled_task_is_not_attempted_again,
);
