//! Limits on what a client may send, each answered with a clear error and
//! nothing stored: slow bodies, deep JSON, too many headers, long URLs;
//! and idle connections that do not keep others from being answered.

use crate::helpers::{problem_fields, spawn_app, spawn_app_with, TOKEN};
use callback_testkit::Backend;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn host_port(address: &str) -> &str {
    address.trim_start_matches("http://")
}

async fn a_body_sent_too_slowly_is_refused_with_408_and_nothing_stored(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.server.body_read_timeout_ms = 500).await;
    let mut stream = TcpStream::connect(host_port(&app.address)).await.unwrap();
    let body = json!({"url": "http://127.0.0.1:9/slow"}).to_string();
    let head = format!(
        "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Half the body, then nothing.
    stream
        .write_all(&body.as_bytes()[..body.len() / 2])
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("answered before the test's own timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let listed: Value = app.get("/api/v1/tasks").await.json().await.unwrap();
    assert_eq!(listed["items"], json!([]));
    app.stop().await;
}

async fn a_thousand_idle_connections_do_not_keep_a_request_from_an_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(TcpStream::connect(host_port(&app.address)).await.unwrap());
    }
    let started = Instant::now();
    let response = app.get("/api/v1/tasks").await;
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        started.elapsed()
    );
    drop(idle);
    app.stop().await;
}

async fn oversized_and_overdeep_requests_name_what_is_wrong(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = format!("http://127.0.0.1:9/{}", "a".repeat(5000));
    let (status, problem) = app
        .send_json("POST", "/api/v1/tasks", &json!({ "url": url }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(problem_fields(&problem), ["url"]);

    let headers: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    let (status, problem) = app
        .send_json(
            "POST",
            "/api/v1/tasks",
            &json!({"url": "http://127.0.0.1:9/h", "headers": headers}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(problem_fields(&problem), ["headers"]);

    let (status, problem) = app
        .send_json(
            "POST",
            "/api/v1/tasks",
            &json!({"url": "http://127.0.0.1:9/r", "retry_delays_s": vec![1; 101]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(problem_fields(&problem), ["retry_delays_s"]);

    // Nesting beyond serde_json's limit (128) is malformed, not a crash.
    let deep = format!(
        "{{\"url\": \"http://127.0.0.1:9/d\", \"body\": {}{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let (status, problem) = app.post_raw_json("/api/v1/tasks", deep).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["code"], "malformed_request");
    let listed: Value = app.get("/api/v1/tasks").await.json().await.unwrap();
    assert_eq!(listed["items"], json!([]));
    app.stop().await;
}

on_every_backend!(
    a_body_sent_too_slowly_is_refused_with_408_and_nothing_stored,
    a_thousand_idle_connections_do_not_keep_a_request_from_an_answer,
    oversized_and_overdeep_requests_name_what_is_wrong,
);
