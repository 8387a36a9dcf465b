//! Delivery as a receiver sees it: the request, retries after each kind of
//! failure, success conditions, and giving up.

use crate::helpers::{
    fast_task, refused_url, spawn_app, spawn_app_with, start_binary_with, submit_to, temp_dir,
};
use callback_testkit::{Backend, Received, Receiver, Reply, TestDatabase, TEST_CA_FILE};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

async fn receiver_gets_method_query_headers_and_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    let id = app
        .submit(json!({
            "url": receiver.url("/orders?existing=1"),
            "method": "PUT",
            "query": {"page": 2, "q": "a b"},
            "headers": {"X-Trace": "t-1"},
            "body": {"order": 7, "items": ["a"]},
        }))
        .await;
    let task = app.wait_for_status(&id, "succeeded", WAIT).await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.path, "/orders");
    assert_eq!(r.query, "existing=1&page=2&q=a+b");
    assert_eq!(r.header("x-trace"), Some("t-1"));
    assert_eq!(r.header("x-callback-task-id"), Some(id.as_str()));
    assert_eq!(r.header("x-callback-attempt"), Some("1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("accept"), Some("*/*"));
    assert!(r
        .header("user-agent")
        .unwrap()
        .starts_with("callback-center/"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body, json!({"order": 7, "items": ["a"]}));
    assert_eq!(task["attempts_made"], 1);
    let attempt = &task["attempts"][0];
    assert_eq!(attempt["number"], 1);
    assert_eq!(attempt["status_code"], 200);
    assert_eq!(attempt["response_body"], "ok");
    assert_eq!(attempt["success"], true);
    assert!(attempt["error"].is_null());
    assert!(task["next_attempt_at"].is_null());
}

async fn raw_text_body_keeps_its_content_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    let id = app
        .submit(json!({
            "url": receiver.url("/xml"),
            "headers": {"Content-Type": "application/xml"},
            "body_text": "<a>1</a>",
        }))
        .await;
    app.wait_for_status(&id, "succeeded", WAIT).await;
    let r = &receiver.wait_for(1, WAIT).await[0];
    assert_eq!(r.header("content-type"), Some("application/xml"));
    assert_eq!(r.body, b"<a>1</a>");
}

async fn json_body_reaches_the_receiver_byte_for_byte(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    // Key order, spacing and number forms as the client wrote them: a
    // receiver that checks a signature of its own over the body needs them.
    let body = r#"{"zeta": 1.50,  "alpha": [1, 2], "nested": {"b": null, "a": "\u00e9"}}"#;
    let request = format!(
        r#"{{"url": "{}", "body": {body} }}"#,
        receiver.url("/exact")
    );
    let (status, _) = app.post_raw_json("/api/v1/tasks", request).await;
    assert_eq!(status, 201);
    let r = &receiver.wait_for(1, WAIT).await[0];
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(String::from_utf8_lossy(&r.body), body);
}

/// Scripts `failure`, then success, and checks the second attempt delivered.
async fn retried_after(backend: Backend, failure: Reply, task: Value, expected_error: &str) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    receiver.script([failure]);
    let mut task = task;
    task["url"] = json!(receiver.url("/hook"));
    let id = app.submit(task).await;
    let done = app.wait_for_status(&id, "succeeded", WAIT).await;
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].header("x-callback-attempt"), Some("2"));
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(900),
        "retry came too soon"
    );
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["success"], false);
    let error = attempts[0]["error"].as_str().unwrap();
    assert!(error.contains(expected_error), "{error}");
    assert_eq!(attempts[1]["success"], true);
}

async fn task_is_retried_after_a_500(backend: Backend) {
    retried_after(
        backend,
        Reply::status(500).body("boom"),
        fast_task(""),
        "status 500",
    )
    .await;
}

async fn task_is_retried_after_a_timeout(backend: Backend) {
    let mut task = fast_task("");
    task["timeout_ms"] = json!(300);
    retried_after(
        backend,
        Reply::status(200).delay(Duration::from_millis(1500)),
        task,
        "timeout after 300 ms",
    )
    .await;
}

async fn task_is_retried_when_the_expectation_is_not_met(backend: Backend) {
    let mut task = fast_task("");
    task["expect"] = json!({"body_contains": "ok"});
    retried_after(
        backend,
        Reply::status(200).body("nope"),
        task,
        "expectation not met",
    )
    .await;
}

async fn task_is_retried_after_connection_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app
        .submit(json!({"url": refused_url(), "retry_delays_s": [1], "max_attempts": 2}))
        .await;
    let task = app.wait_for_status(&id, "failed", WAIT).await;
    let attempts = task["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    for a in attempts {
        assert!(a["status_code"].is_null());
        assert_eq!(a["error"], "connection refused");
    }
    assert_eq!(task["last_error"], "connection refused");
}

async fn task_fails_for_good_after_max_attempts(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(503).body("down"));
    let id = app
        .submit(json!({"url": receiver.url("/x"), "retry_delays_s": [0, 1], "max_attempts": 3}))
        .await;
    let task = app.wait_for_status(&id, "failed", WAIT).await;
    assert_eq!(task["attempts_made"], 3);
    assert!(task["next_attempt_at"].is_null());
    let numbers: Vec<u64> = task["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.requests().len(),
        3,
        "no attempt after failing for good"
    );
}

async fn retry_after_from_the_receiver_is_honoured(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(429).header("Retry-After", "2")]);
    let id = app
        .submit(json!({"url": receiver.url("/x"), "retry_delays_s": [0], "max_attempts": 3}))
        .await;
    app.wait_for_status(&id, "succeeded", WAIT).await;
    let got = receiver.requests();
    assert_eq!(got.len(), 2);
    assert!(got[1].at - got[0].at >= Duration::from_millis(1900));
}

async fn each_expect_form_decides_success(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(202).body(r#" {"code": 0, "msg": "success"} "#));
    let cases = [
        (json!({"status": [202]}), "succeeded"),
        (json!({"status": [200]}), "failed"),
        (json!({"body_contains": "success"}), "succeeded"),
        (json!({"body_contains": "SUCCESS"}), "failed"),
        (
            json!({"body_equals": r#"{"code": 0, "msg": "success"}"#}),
            "succeeded",
        ),
        (json!({"body_equals": "success"}), "failed"),
        (
            json!({"json": {"pointer": "/code", "equals": 0}}),
            "succeeded",
        ),
        (json!({"json": {"pointer": "/code", "equals": 1}}), "failed"),
        (
            json!({"status": [202], "json": {"pointer": "/msg", "equals": "success"}}),
            "succeeded",
        ),
    ];
    let mut ids = Vec::new();
    for (expect, outcome) in &cases {
        let id = app
            .submit(json!({"url": receiver.url("/x"), "max_attempts": 1, "expect": expect}))
            .await;
        ids.push((id, expect, *outcome));
    }
    for (id, expect, outcome) in ids {
        let task = app.wait_for_status(&id, outcome, WAIT).await;
        assert_eq!(task["attempts_made"], 1, "{expect}");
    }
}

async fn delayed_task_waits_before_its_first_attempt(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    let submitted = std::time::Instant::now();
    let id = app
        .submit(json!({"url": receiver.url("/later"), "delay_s": 2}))
        .await;
    app.wait_for_status(&id, "succeeded", WAIT).await;
    let got = receiver.requests();
    assert_eq!(got.len(), 1);
    assert!(got[0].at - submitted >= Duration::from_millis(1900));
}

/// A task due now is stored already held by a free worker, which delivers
/// it without claiming it; with every worker busy, the rest are stored
/// pending and wait their turn. Each is delivered once.
async fn tasks_due_now_go_straight_to_free_workers(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.delivery.concurrency = 2).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200).delay(Duration::from_millis(800)));
    let tasks: Vec<Value> = (0..4)
        .map(|i| json!({"url": receiver.url(&format!("/now{i}"))}))
        .collect();
    let (status, batch) = app
        .send_json("POST", "/api/v1/tasks/batch", &json!({"tasks": tasks}))
        .await;
    assert_eq!(status, 201, "{batch}");
    let statuses: Vec<&str> = batch["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["delivering", "delivering", "pending", "pending"]);
    for task in batch["tasks"].as_array().unwrap() {
        let id = task["task_id"].as_str().unwrap();
        let done = app.wait_for_status(id, "succeeded", WAIT).await;
        assert_eq!(done["attempts_made"], 1);
    }
    let counts = receiver.counts_by_task();
    assert_eq!(counts.len(), 4);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert!(receiver
        .requests()
        .iter()
        .all(|r| r.header("x-callback-attempt") == Some("1")));
}

/// A delivery takes the proxy `HTTP_PROXY` names, and goes straight to a
/// host `NO_PROXY` lists: plain `http` calls have a fast path of their
/// own, which must never skip a proxy. The settings reach only the
/// server's process, so it runs as the real binary.
#[tokio::test]
async fn deliveries_follow_the_proxy_settings_of_the_environment() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let data_dir = temp_dir();
    let proxy = Receiver::start().await;
    let direct = Receiver::start().await;
    let proxy_url = proxy.url("");
    let server = start_binary_with(
        &db,
        &data_dir,
        &[("HTTP_PROXY", &proxy_url), ("NO_PROXY", "127.0.0.1")],
    )
    .await;
    let client = reqwest::Client::new();
    let proxied = submit_to(
        &client,
        &server.address,
        &json!({"url": "http://hooks.invalid/orders?n=1", "body": {"n": 1}}),
    )
    .await;
    let straight = submit_to(
        &client,
        &server.address,
        &json!({"url": direct.url("/direct")}),
    )
    .await;

    let through_proxy = proxy.wait_for(1, WAIT).await;
    assert_eq!(through_proxy.len(), 1);
    let r = &through_proxy[0];
    assert_eq!(r.header("host"), Some("hooks.invalid"));
    assert_eq!((r.path.as_str(), r.query.as_str()), ("/orders", "n=1"));
    assert_eq!(r.header("x-callback-task-id"), Some(proxied.as_str()));
    assert_eq!(r.body, br#"{"n":1}"#);
    let got = direct.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("x-callback-task-id"), Some(straight.as_str()));
    assert_eq!(proxy.requests().len(), 1, "NO_PROXY hosts skip the proxy");
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// Delivers one task to `receiver` from a server that trusts the test CA,
/// checks it arrived whole, and returns what the receiver got.
async fn one_delivery_trusting_the_test_ca(receiver: &Receiver) -> Received {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.delivery.extra_ca_file = Some(TEST_CA_FILE.into());
    })
    .await;
    let url = receiver.url("/orders?n=1");
    assert!(url.starts_with("https://"));
    let id = app
        .submit(json!({"url": url, "body": {"order": 42}, "headers": {"X-Shop": "north"}}))
        .await;
    let task = app.wait_for_status(&id, "succeeded", WAIT).await;
    assert_eq!(task["attempts"][0]["status_code"], 200);
    let got = receiver.requests();
    assert_eq!(got.len(), 1);
    let r = got[0].clone();
    assert_eq!((r.path.as_str(), r.query.as_str()), ("/orders", "n=1"));
    assert_eq!(r.header("x-callback-task-id"), Some(id.as_str()));
    assert_eq!(r.header("x-shop"), Some("north"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, br#"{"order":42}"#);
    r
}

#[tokio::test]
async fn receivers_behind_a_private_ca_are_reached_over_tls() {
    let receiver = Receiver::start_tls().await;
    let got = one_delivery_trusting_the_test_ca(&receiver).await;
    assert_eq!(got.header("x-received-over"), None, "bytes passed through");
}

#[tokio::test]
async fn receivers_that_offer_only_http2_get_it() {
    let receiver = Receiver::start_tls_h2().await;
    let got = one_delivery_trusting_the_test_ca(&receiver).await;
    assert_eq!(got.header("x-received-over"), Some("HTTP/2.0"));
}

#[tokio::test]
async fn a_certificate_no_trusted_ca_signed_fails_the_attempt() {
    let app = spawn_app(Backend::Sqlite).await;
    let receiver = Receiver::start_tls().await;
    let id = app
        .submit(json!({"url": receiver.url("/x"), "max_attempts": 1}))
        .await;
    let task = app.wait_for_status(&id, "failed", WAIT).await;
    let error = task["attempts"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("certificate"), "{error}");
    assert!(task["attempts"][0]["status_code"].is_null());
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn an_unreadable_extra_ca_file_stops_the_start() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let data_dir = temp_dir();
    let mut settings = crate::helpers::test_settings(&db.url, &data_dir);
    settings.delivery.extra_ca_file = Some(data_dir.join("missing-ca.pem"));
    let err = match callback_server::Application::build(settings).await {
        Ok(_) => panic!("started without its CA file"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("extra_ca_file"), "{err}");
    assert!(err.contains("missing-ca.pem"), "{err}");
    let _ = std::fs::remove_dir_all(&data_dir);
}

on_every_backend!(
    tasks_due_now_go_straight_to_free_workers,
    receiver_gets_method_query_headers_and_body,
    raw_text_body_keeps_its_content_type,
    json_body_reaches_the_receiver_byte_for_byte,
    task_is_retried_after_a_500,
    task_is_retried_after_a_timeout,
    task_is_retried_when_the_expectation_is_not_met,
    task_is_retried_after_connection_refused,
    task_fails_for_good_after_max_attempts,
    retry_after_from_the_receiver_is_honoured,
    each_expect_form_decides_success,
    delayed_task_waits_before_its_first_attempt,
);
