//! The outbound policy as a user meets it: refused URLs are a 400 naming
//! the field and the rule, nothing is stored, and what slips past
//! submission (a host name, a redirect) is refused when it would connect.

use crate::helpers::{problem_fields, spawn_app, spawn_app_with};
use callback_testkit::{Backend, Receiver, Reply};
use serde_json::{json, Value};
use std::time::Duration;

const METADATA: [&str; 3] = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://[fe80::1]/",
];

async fn cloud_metadata_is_refused_everywhere_a_url_is_given(backend: Backend) {
    let app = spawn_app(backend).await;
    for url in METADATA {
        let (status, problem) = app
            .send_json("POST", "/api/v1/tasks", &json!({ "url": url }))
            .await;
        assert_eq!(status, 400, "{url}: {problem}");
        assert_eq!(problem["code"], "url_not_allowed", "{problem}");
        assert_eq!(problem_fields(&problem), ["url"]);
        let rule = problem["errors"][0]["message"].as_str().unwrap();
        assert!(rule.contains("link-local"), "{rule}");
    }
    let (status, problem) = app
        .send_json(
            "POST",
            "/api/v1/tasks/batch",
            &json!({"tasks": [{"url": "http://127.0.0.1:9/fine"}, {"url": METADATA[0]}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(problem_fields(&problem), ["tasks[1].url"]);
    let listed: Value = app.get("/api/v1/tasks").await.json().await.unwrap();
    assert_eq!(
        listed["items"],
        json!([]),
        "nothing of a refused batch is stored"
    );

    let refusals = [
        (
            "/api/v1/endpoints",
            json!({"name": "meta", "url": METADATA[0], "event_types": ["x"]}),
            "url",
        ),
        (
            "/api/v1/alert-hooks",
            json!({"kind": "webhook", "url": METADATA[1]}),
            "url",
        ),
        (
            "/api/v1/routes",
            json!({"namespace": "moderate", "key": "k1", "target_url": METADATA[2]}),
            "target_url",
        ),
        (
            "/api/v1/tasks/retry",
            json!({"status": "failed", "target_url": METADATA[0]}),
            "target_url",
        ),
    ];
    for (path, body, field) in refusals {
        let (status, problem) = app.send_json("POST", path, &body).await;
        assert_eq!(status, 400, "{path}: {problem}");
        assert_eq!(problem["code"], "url_not_allowed", "{path}: {problem}");
        assert_eq!(problem_fields(&problem), [field], "{path}");
    }
    app.stop().await;
}

async fn refused_loopback_is_refused_at_submission_and_at_connect_time(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(backend, |s| s.outbound.allow_loopback = false).await;
    let (status, problem) = app
        .send_json("POST", "/api/v1/tasks", &json!({"url": receiver.url("/x")}))
        .await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("loopback"),
        "{problem}"
    );

    // A name is judged on what it resolves to, when the server connects.
    let by_name = receiver.url("/x").replace("127.0.0.1", "localhost");
    let id = app.submit(json!({"url": by_name, "max_attempts": 1})).await;
    let task = app
        .wait_for_status(&id, "failed", Duration::from_secs(20))
        .await;
    let error = task["attempts"][0]["error"].as_str().unwrap();
    assert!(error.contains("url_not_allowed"), "{error}");
    assert!(
        receiver.requests().is_empty(),
        "nothing reached the receiver"
    );
    app.stop().await;
}

async fn a_redirect_is_an_answer_and_is_not_followed(backend: Backend) {
    let receiver = Receiver::start().await;
    let metadata = Receiver::start().await;
    receiver.set_default(Reply::status(302).header("Location", &metadata.url("/latest")));
    let app = spawn_app(backend).await;
    let id = app
        .submit(json!({"url": receiver.url("/moved"), "max_attempts": 1}))
        .await;
    let task = app
        .wait_for_status(&id, "failed", Duration::from_secs(20))
        .await;
    assert_eq!(task["attempts"][0]["status_code"], 302);
    assert_eq!(receiver.requests().len(), 1);
    assert!(
        metadata.requests().is_empty(),
        "the redirect was not followed"
    );
    app.stop().await;
}

async fn redirects_when_followed_pass_the_policy_at_every_hop(backend: Backend) {
    let first = Receiver::start().await;
    let second = Receiver::start().await;
    first.set_default(Reply::status(307).header("Location", &second.url("/moved-here")));
    let app = spawn_app_with(backend, |s| s.delivery.max_redirects = 3).await;
    let id = app
        .submit(json!({
            "url": first.url("/start"),
            "headers": {"Authorization": "Bearer for-the-first-origin-only"},
            "body": {"order": 1},
            "max_attempts": 1
        }))
        .await;
    app.wait_for_status(&id, "succeeded", Duration::from_secs(20))
        .await;
    let got = second.requests();
    assert_eq!(got.len(), 1, "the redirect was followed");
    assert_eq!(got[0].method, "POST", "a 307 keeps the method");
    assert_eq!(got[0].body, br#"{"order":1}"#);
    assert_eq!(
        got[0].header("authorization"),
        None,
        "credentials are not carried to another origin"
    );

    // A hop to cloud metadata is refused, not followed.
    let to_metadata = Receiver::start().await;
    to_metadata.set_default(Reply::status(302).header("Location", METADATA[0]));
    let id = app
        .submit(json!({"url": to_metadata.url("/x"), "max_attempts": 1}))
        .await;
    let task = app
        .wait_for_status(&id, "failed", Duration::from_secs(20))
        .await;
    let error = task["attempts"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("url_not_allowed") && error.contains("redirect 1"),
        "{error}"
    );

    // Past the limit, the last 3xx is the answer.
    let looping = Receiver::start().await;
    looping.set_default(Reply::status(302).header("Location", &looping.url("/again")));
    let id = app
        .submit(json!({"url": looping.url("/again"), "max_attempts": 1}))
        .await;
    let task = app
        .wait_for_status(&id, "failed", Duration::from_secs(20))
        .await;
    assert_eq!(task["attempts"][0]["status_code"], 302);
    assert_eq!(looping.requests().len(), 4, "the call and three redirects");
    app.stop().await;
}

on_every_backend!(
    redirects_when_followed_pass_the_policy_at_every_hop,
    cloud_metadata_is_refused_everywhere_a_url_is_given,
    refused_loopback_is_refused_at_submission_and_at_connect_time,
    a_redirect_is_an_answer_and_is_not_followed,
);
