//! Submitting tasks: acceptance, idempotency, authentication, and every way
//! a request can be refused.

use crate::helpers::{problem_fields, spawn_app, TOKEN};
use callback_testkit::{Backend, Receiver};
use serde_json::{json, Value};

async fn accepted_task_answers_201_with_location_and_pending_state(backend: Backend) {
    let app = spawn_app(backend).await;
    let receiver = Receiver::start().await;
    let response = app
        .post_task(&json!({"url": receiver.url("/hook"), "delay_s": 3600}))
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    let id = body["task_id"].as_str().unwrap();
    assert_eq!(location, format!("/api/v1/tasks/{id}"));
    assert_eq!(body["status"], "pending");
    assert_eq!(body["max_attempts"], 11);
    assert_eq!(body["method"], "POST");
    let stored = app.task(id).await;
    assert_eq!(stored["attempts"], json!([]));
    assert!(stored["next_attempt_at"].is_string());
}

async fn missing_or_wrong_token_is_refused_with_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let none = app
        .client
        .get(app.url("/api/v1/tasks"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["content-type"], "application/problem+json");
    let wrong = app
        .client
        .post(app.url("/api/v1/tasks"))
        .bearer_auth(format!("{TOKEN}x"))
        .json(&json!({"url": "http://127.0.0.1:1/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let problem: Value = wrong.json().await.unwrap();
    assert_eq!(problem["code"], "unauthorized");
    // Nothing was created by the refused submission.
    let list: Value = app.get("/api/v1/tasks").await.json().await.unwrap();
    assert_eq!(list["items"], json!([]));
}

async fn same_idempotency_key_returns_the_first_task_and_creates_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let task =
        json!({"url": "https://example.com/x", "idempotency_key": "order-42", "delay_s": 3600});
    let first = app.post_task(&task).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = app.post_task(&task).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["task_id"], again["task_id"]);
    let list: Value = app.get("/api/v1/tasks").await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

/// Posts `body` and returns the status and the problem's field names.
async fn refusal(app: &crate::helpers::TestApp, body: Value) -> (u16, Vec<String>) {
    let response = app.post_task(&body).await;
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], status);
    (status, problem_fields(&problem))
}

async fn invalid_fields_are_refused_with_400_naming_each_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (json!({"url": "https://e.com", "colour": "red"}), "colour"),
        (json!({"url": 42}), "url"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "ftp://e.com/x"}), "url"),
        (json!({"url": "https://e.com", "method": "TRACE"}), "method"),
        (
            json!({"url": "https://e.com", "body": {}, "body_text": "x"}),
            "body_text",
        ),
        (
            json!({"url": "https://e.com", "max_attempts": 0}),
            "max_attempts",
        ),
        (
            json!({"url": "https://e.com", "max_attempts": 101}),
            "max_attempts",
        ),
        (
            json!({"url": "https://e.com", "timeout_ms": 0}),
            "timeout_ms",
        ),
        (
            json!({"url": "https://e.com", "retry_delays_s": [-1]}),
            "retry_delays_s[0]",
        ),
        (
            json!({"url": "https://e.com", "headers": {"X-Callback-Attempt": "9"}}),
            "headers",
        ),
        (
            json!({"url": "https://e.com", "expect": {"json": {"pointer": "code", "equals": 0}}}),
            "expect.json.pointer",
        ),
        (
            json!({"url": "https://e.com", "expect": {"bogus": 1}}),
            "expect.bogus",
        ),
        (json!({"method": "GET"}), "url"),
    ];
    for (body, field) in cases {
        let (status, fields) = refusal(&app, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            fields.iter().any(|f| f == field),
            "{body}: expected {field} in {fields:?}"
        );
    }
    let list: Value = app.get("/api/v1/tasks").await.json().await.unwrap();
    assert_eq!(list["items"], json!([]), "nothing refused may be stored");
}

async fn oversized_and_non_json_bodies_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let huge = "x".repeat(1024 * 1024 + 1);
    let (status, _) = refusal(&app, json!({"url": "https://e.com", "body_text": huge})).await;
    assert_eq!(status, 413);
    let text = app
        .client
        .post(app.url("/api/v1/tasks"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .body("url=https://e.com")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    let broken = app
        .client
        .post(app.url("/api/v1/tasks"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"url\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let problem: Value = broken.json().await.unwrap();
    assert_eq!(problem["code"], "malformed_request");
}

async fn unknown_task_is_404_and_malformed_id_is_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = app
        .get("/api/v1/tasks/0190a5b4-0000-7000-8000-000000000000")
        .await;
    assert_eq!(missing.status(), 404);
    let problem: Value = missing.json().await.unwrap();
    assert_eq!(problem["code"], "not_found");
    assert_eq!(app.get("/api/v1/tasks/not-a-uuid").await.status(), 400);
}

async fn store_failure_answers_503_and_acknowledges_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.db
        .execute("ALTER TABLE tasks RENAME TO tasks_away")
        .await;
    let (status, _) = refusal(&app, json!({"url": "https://e.com/x"})).await;
    assert_eq!(status, 503);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "the store itself still answers");
    app.db
        .execute("ALTER TABLE tasks_away RENAME TO tasks")
        .await;
    let list: Value = app.get("/api/v1/tasks").await.json().await.unwrap();
    assert_eq!(list["items"], json!([]));
}

async fn listing_filters_and_pages_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let app_name = if i % 2 == 0 { "billing" } else { "chat" };
        ids.push(
            app.submit(json!({"url": "https://e.com/x", "delay_s": 3600, "source_app": app_name, "target_app": "shop"}))
                .await,
        );
    }
    let page: Value = app.get("/api/v1/tasks?limit=2").await.json().await.unwrap();
    let first: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(first, [ids[4].as_str(), ids[3].as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let page2: Value = app
        .get(&format!("/api/v1/tasks?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page2["items"][0]["task_id"], ids[2].as_str());
    let billing: Value = app
        .get("/api/v1/tasks?source_app=billing&status=pending")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(billing["items"].as_array().unwrap().len(), 3);
    assert!(billing["next_cursor"].is_null());
    assert_eq!(app.get("/api/v1/tasks?status=done").await.status(), 400);
    assert_eq!(app.get("/api/v1/tasks?limit=0").await.status(), 400);
    assert_eq!(
        app.get("/api/v1/tasks?created_from=yesterday")
            .await
            .status(),
        400
    );
}

/// The list's finer filters: the receiver's host, a part of the URL, the
/// idempotency key, and a creation-time range (read as a range of ids).
async fn listing_filters_by_host_url_key_and_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = chrono::Utc::now();
    let pay = app
        .submit(json!({"url": "https://Pay.example.com/notify/order-7", "delay_s": 3600, "idempotency_key": "order-7"}))
        .await;
    let ship = app
        .submit(json!({"url": "https://ship.example.com/notify/order-7", "delay_s": 3600}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let later = app
        .submit(json!({"url": "https://pay.example.com/refund/order-8", "delay_s": 3600}))
        .await;
    let ids = |query: &str| {
        let path = format!("/api/v1/tasks?{query}");
        let app = &app;
        async move {
            let page: Value = app.get(&path).await.json().await.unwrap();
            page["items"]
                .as_array()
                .unwrap_or_else(|| panic!("{path}: {page:#}"))
                .iter()
                .map(|t| t["task_id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids("url_host=pay.example.com").await,
        [later.clone(), pay.clone()]
    );
    assert_eq!(
        ids("url_contains=notify/order-7").await,
        [ship.clone(), pay.clone()]
    );
    assert_eq!(ids("idempotency_key=order-7").await, [pay.as_str()]);
    let stamp =
        |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(
        ids(&format!("created_from={}", stamp(between))).await,
        [later.as_str()]
    );
    assert_eq!(
        ids(&format!(
            "created_from={}&created_to={}",
            stamp(before),
            stamp(between)
        ))
        .await,
        [ship, pay]
    );
}

async fn health_readiness_and_openapi_are_served(backend: Backend) {
    let app = spawn_app(backend).await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    for path in [
        "/api/v1/tasks",
        "/api/v1/tasks/{task_id}",
        "/api/v1/tasks/{task_id}/retry",
        "/api/v1/tasks/{task_id}/cancel",
    ] {
        assert!(doc["paths"][path].is_object(), "OpenAPI lacks {path}");
    }
    assert!(doc["components"]["schemas"]["CreateTaskRequest"].is_object());
}

on_every_backend!(
    accepted_task_answers_201_with_location_and_pending_state,
    missing_or_wrong_token_is_refused_with_401,
    same_idempotency_key_returns_the_first_task_and_creates_nothing,
    invalid_fields_are_refused_with_400_naming_each_field,
    oversized_and_non_json_bodies_are_refused,
    unknown_task_is_404_and_malformed_id_is_400,
    store_failure_answers_503_and_acknowledges_nothing,
    listing_filters_and_pages_newest_first,
    listing_filters_by_host_url_key_and_time,
    health_readiness_and_openapi_are_served,
);

mod batch {
    //! `POST /api/v1/tasks/batch`: all or nothing, ids in order.
    use crate::helpers::{batch_ids, problem_fields, spawn_app, TOKEN};
    use callback_testkit::{Backend, Receiver};
    use serde_json::{json, Value};
    use std::time::Duration;

    async fn a_batch_is_stored_whole_in_order_or_not_at_all(backend: Backend) {
        let app = spawn_app(backend).await;
        let receiver = Receiver::start().await;
        let existing = app
            .submit(json!({"url": receiver.url("/once"), "idempotency_key": "order-1"}))
            .await;
        let mut tasks: Vec<Value> = (0..999)
            .map(|n| {
                // A first attempt lost to a starved machine is retried
                // within the wait; this test is about intake.
                json!({"url": receiver.url(&format!("/b/{n}")), "source_app": "batch",
                       "retry_delays_s": [1]})
            })
            .collect();
        tasks.push(json!({"url": receiver.url("/once"), "idempotency_key": "order-1"}));
        let (status, answer) = app
            .send_json("POST", "/api/v1/tasks/batch", &json!({"tasks": tasks}))
            .await;
        assert_eq!(status, 201, "{answer:#}");
        let items = answer["tasks"].as_array().unwrap();
        assert_eq!(items.len(), 1000);
        assert_eq!(items[999]["task_id"], existing.as_str());
        assert_eq!(items[999]["created"], false);
        assert_eq!(items[0]["created"], true);
        let got = receiver.wait_for(1000, Duration::from_secs(60)).await;
        assert_eq!(got.len(), 1000, "999 new tasks and the first one delivered");
        let first = app.task(items[0]["task_id"].as_str().unwrap()).await;
        assert_eq!(first["url"], receiver.url("/b/0"));

        // One bad task: 400 naming its index, and nothing stored.
        let before = receiver.requests().len();
        let bad = json!({"tasks": [
            {"url": receiver.url("/fine")},
            {"url": "ftp://nope"},
            {"url": receiver.url("/k"), "idempotency_key": "k"},
            {"url": receiver.url("/k"), "idempotency_key": "k"}
        ]});
        let (status, problem) = app.send_json("POST", "/api/v1/tasks/batch", &bad).await;
        assert_eq!(status, 400);
        assert_eq!(
            problem_fields(&problem),
            ["tasks[1].url", "tasks[3].idempotency_key"]
        );
        let (status, _) = app
            .send_json("POST", "/api/v1/tasks/batch", &json!({"tasks": []}))
            .await;
        assert_eq!(status, 400);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            receiver.requests().len(),
            before,
            "nothing of a refused batch is sent"
        );
        app.stop().await;
    }

    /// The answer to a POST from a spawned task, which cannot borrow the app.
    async fn post_json(client: &reqwest::Client, url: String, body: &Value) -> Value {
        let response = client.post(url).bearer_auth(TOKEN).json(body).send().await;
        response.unwrap().json().await.unwrap()
    }

    /// Batches without idempotency keys are written in groups with the
    /// single submissions of the same moment: each batch still gets its
    /// own ids, in its order, and every task is stored once.
    async fn concurrent_batches_and_single_tasks_keep_their_own_ids(backend: Backend) {
        let app = spawn_app(backend).await;
        let receiver = Receiver::start().await;
        let mut calls = tokio::task::JoinSet::new();
        for b in 0..6 {
            let (client, url) = (app.client.clone(), app.url("/api/v1/tasks/batch"));
            let tasks: Vec<Value> = (0..50)
                .map(|n| json!({"url": receiver.url(&format!("/b{b}/{n}"))}))
                .collect();
            calls.spawn(async move {
                let answer = post_json(&client, url, &json!({"tasks": tasks})).await;
                let ids = batch_ids(&answer);
                (format!("/b{b}/"), ids)
            });
        }
        for s in 0..30 {
            let (client, url) = (app.client.clone(), app.url("/api/v1/tasks"));
            let task = json!({"url": receiver.url(&format!("/s{s}/0"))});
            calls.spawn(async move {
                let answer = post_json(&client, url, &task).await;
                (
                    format!("/s{s}/"),
                    vec![answer["task_id"].as_str().unwrap().to_string()],
                )
            });
        }
        let mut expected = std::collections::HashMap::new();
        while let Some(call) = calls.join_next().await {
            let (prefix, ids) = call.unwrap();
            for (n, id) in ids.into_iter().enumerate() {
                expected.insert(id, format!("{prefix}{n}"));
            }
        }
        assert_eq!(
            expected.len(),
            6 * 50 + 30,
            "every task has an id of its own"
        );
        let got = receiver
            .wait_for(expected.len(), Duration::from_secs(60))
            .await;
        assert_eq!(got.len(), expected.len());
        for request in got {
            let id = &request.headers["x-callback-task-id"];
            assert_eq!(
                expected.get(id),
                Some(&request.path),
                "task {id} is the one its answer named"
            );
        }
        app.stop().await;
    }

    on_every_backend!(
        a_batch_is_stored_whole_in_order_or_not_at_all,
        concurrent_batches_and_single_tasks_keep_their_own_ids
    );
}
