//! Access control as a user meets it: API keys with scopes, bound to an
//! application, fenced by address and rate, revoked across instances; and
//! the audit log of what was changed.

use crate::helpers::{problem_fields, spawn_app, spawn_app_on, spawn_app_with, TestApp, TOKEN};
use callback_testkit::Backend;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A URL nobody listens on: tasks to it stay pending or retrying.
const NOWHERE: &str = "http://127.0.0.1:9/callback";

async fn app_key(app: &TestApp, name: &str, scopes: &[&str]) -> (String, String) {
    app.create_key(json!({"name": name, "app": name, "scopes": scopes}))
        .await
}

/// Submits a task with `key`; returns the status, body and headers.
async fn submit_as(
    app: &TestApp,
    key: &str,
    task: Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    app.send_as(key, "POST", "/api/v1/tasks", Some(&task)).await
}

async fn task_count(app: &TestApp) -> usize {
    let (status, list) = app
        .send_json("GET", "/api/v1/tasks?limit=200", &json!(null))
        .await;
    assert_eq!(status, 200);
    list["items"].as_array().unwrap().len()
}

async fn a_key_is_shown_once_listed_without_secret_and_revoked_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, created, headers) = app
        .send_as(
            TOKEN,
            "POST",
            "/api/v1/keys",
            Some(&json!({
                "name": "shop-backend",
                "app": "shop",
                "scopes": ["tasks:write", "tasks:read"],
                "allow_ips": ["127.0.0.0/8", "192.168.1.7"],
                "expires_at": null
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let secret = created["key"].as_str().unwrap();
    assert!(secret.starts_with("cbk_") && secret.len() > 40, "{secret}");
    assert_eq!(headers["location"], format!("/api/v1/keys/{id}").as_str());
    assert_eq!(
        created["allow_ips"],
        json!(["127.0.0.0/8", "192.168.1.7/32"])
    );
    assert_eq!(created["last_used_at"], Value::Null);

    let (status, _, _) = submit_as(&app, secret, json!({"url": NOWHERE})).await;
    assert_eq!(status, 201);

    // The use is recorded in the background; the list never shows a secret.
    let deadline = Instant::now() + Duration::from_secs(5);
    let listed = loop {
        let (status, listed) = app.send_json("GET", "/api/v1/keys", &json!(null)).await;
        assert_eq!(status, 200);
        if listed["items"][0]["last_used_at"].is_string() || Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listed["items"][0]["id"], id);
    assert!(listed["items"][0]["last_used_at"].is_string(), "{listed}");
    assert!(listed["items"][0].get("key").is_none(), "{listed}");
    assert!(!listed.to_string().contains(&secret[4..]), "{listed}");

    let (status, revoked) = app
        .send_json("DELETE", &format!("/api/v1/keys/{id}"), &json!(null))
        .await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_string());
    let (status, problem, headers) = app.send_as(secret, "GET", "/api/v1/tasks", None).await;
    assert_eq!(status, 401, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("revoked"));
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let (status, _) = app
        .send_json("DELETE", "/api/v1/keys/not-an-id", &json!(null))
        .await;
    assert_eq!(status, 404);
}

async fn keys_are_refused_when_their_scopes_do_not_fit_their_application(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (
            json!({"name": "k", "app": "shop", "scopes": ["tasks:delete"]}),
            "scopes",
        ),
        (json!({"name": "k", "app": "shop", "scopes": []}), "scopes"),
        (
            json!({"name": "k", "app": "shop", "scopes": ["operator"]}),
            "scopes",
        ),
        (json!({"name": "k", "scopes": ["tasks:read"]}), "scopes"),
        (
            json!({"name": "k", "app": "shop", "scopes": ["tasks:read"], "allow_ips": ["10.0.0.0/33"]}),
            "allow_ips",
        ),
        (
            json!({"name": "k", "app": "shop", "scopes": ["tasks:read"], "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "", "app": "shop", "scopes": ["tasks:read"]}),
            "name",
        ),
        (
            json!({"name": "k", "app": "shop", "scopes": ["tasks:read"], "rate_limit_per_s": 0}),
            "rate_limit_per_s",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = app.send_json("POST", "/api/v1/keys", &body).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(problem_fields(&problem), [field], "{body}: {problem}");
    }
    let (status, list) = app.send_json("GET", "/api/v1/keys", &json!(null)).await;
    assert_eq!((status, list["items"].clone()), (200, json!([])));

    // Only an admin manages keys.
    let (_, reader) = app_key(&app, "shop", &["tasks:read"]).await;
    let (status, problem, headers) = app
        .send_as(
            &reader,
            "POST",
            "/api/v1/keys",
            Some(&json!({"name": "x", "scopes": ["admin"]})),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(problem["code"], "insufficient_scope");
    assert!(problem["detail"].as_str().unwrap().contains("`admin`"));
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(r#"scope="admin""#));
}

async fn wrong_or_missing_credentials_and_missing_scopes_store_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .post(app.url("/api/v1/tasks"))
        .json(&json!({"url": NOWHERE}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    for wrong in ["cbk_not-a-key", "test-admin-tokenX", "test-admin-toke"] {
        let (status, problem, _) = submit_as(&app, wrong, json!({"url": NOWHERE})).await;
        assert_eq!(status, 401, "{wrong}");
        assert_eq!(problem["code"], "unauthorized");
    }
    let (_, reader) = app_key(&app, "shop", &["tasks:read"]).await;
    let (status, problem, _) = submit_as(&app, &reader, json!({"url": NOWHERE})).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["code"], "insufficient_scope");
    assert!(problem["detail"].as_str().unwrap().contains("tasks:write"));
    // Every operator and admin route is closed to an application's key.
    for (method, path) in [
        ("GET", "/api/v1/failed-buckets"),
        ("POST", "/api/v1/tasks/retry"),
        ("GET", "/api/v1/alert-hooks"),
        ("GET", "/api/v1/inbound"),
        ("GET", "/api/v1/breakers"),
        ("GET", "/api/v1/routes"),
        ("GET", "/api/v1/keys"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/endpoints"),
        ("POST", "/api/v1/events"),
    ] {
        let (status, problem, _) = app.send_as(&reader, method, path, Some(&json!({}))).await;
        assert_eq!(status, 403, "{method} {path}: {problem}");
        assert_eq!(problem["code"], "insufficient_scope", "{method} {path}");
    }
    assert_eq!(task_count(&app).await, 0);
}

async fn an_application_key_sees_and_acts_on_its_own_tasks_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let scopes = ["tasks:write", "tasks:read", "tasks:manage"];
    let (_, shop) = app_key(&app, "shop", &scopes).await;
    let (_, pay) = app_key(&app, "pay", &scopes).await;

    let (status, own, _) = submit_as(&app, &shop, json!({"url": NOWHERE})).await;
    assert_eq!(status, 201);
    assert_eq!(own["source_app"], "shop", "set from the key");
    let (status, problem, _) =
        submit_as(&app, &shop, json!({"url": NOWHERE, "source_app": "pay"})).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["code"], "forbidden");
    let (status, _, _) = app
        .send_as(
            &shop,
            "POST",
            "/api/v1/tasks/batch",
            Some(&json!({"tasks": [{"url": NOWHERE}, {"url": NOWHERE, "source_app": "pay"}]})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, theirs, _) = submit_as(&app, &pay, json!({"url": NOWHERE})).await;
    assert_eq!(status, 201);
    let theirs = theirs["task_id"].as_str().unwrap();

    // Another application's task is exactly like one that does not exist.
    let (_, missing, _) = app
        .send_as(
            &shop,
            "GET",
            &format!("/api/v1/tasks/{}", uuid::Uuid::now_v7()),
            None,
        )
        .await;
    for (method, path) in [
        ("GET", format!("/api/v1/tasks/{theirs}")),
        ("POST", format!("/api/v1/tasks/{theirs}/cancel")),
        ("POST", format!("/api/v1/tasks/{theirs}/retry")),
    ] {
        let (status, problem, _) = app.send_as(&shop, method, &path, None).await;
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(problem, missing, "{method} {path}");
    }
    let (_, listed, _) = app.send_as(&shop, "GET", "/api/v1/tasks", None).await;
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [own["task_id"].as_str().unwrap()]);
    let (_, listed, _) = app
        .send_as(&shop, "GET", "/api/v1/tasks?source_app=pay", None)
        .await;
    assert_eq!(listed["items"], json!([]));

    // Its own task it may cancel; the other application's is untouched.
    let own_id = own["task_id"].as_str().unwrap();
    let (status, _, _) = app
        .send_as(
            &shop,
            "POST",
            &format!("/api/v1/tasks/{own_id}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_ne!(app.task(theirs).await["status"], "cancelled");

    // A cross-application operator sees both.
    let (_, operator) = app
        .create_key(json!({"name": "oncall", "scopes": ["operator"]}))
        .await;
    let (_, listed, _) = app.send_as(&operator, "GET", "/api/v1/tasks", None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    let (status, _, _) = submit_as(&app, &operator, json!({"url": NOWHERE})).await;
    assert_eq!(status, 403, "operator does not imply tasks:write");
}

async fn an_application_key_publishes_and_manages_only_its_own_endpoints(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, shop) = app_key(&app, "shop", &["endpoints:manage", "events:publish"]).await;
    app.create_endpoint(json!({"name": "pay_hook", "url": NOWHERE, "app": "pay"}))
        .await;
    let (status, created, _) = app
        .send_as(
            &shop,
            "POST",
            "/api/v1/endpoints",
            Some(&json!({"name": "shop_hook", "url": NOWHERE})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["app"], "shop");
    let (_, listed, _) = app.send_as(&shop, "GET", "/api/v1/endpoints", None).await;
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop_hook"]);
    for (method, path) in [
        ("GET", "/api/v1/endpoints/pay_hook"),
        ("DELETE", "/api/v1/endpoints/pay_hook"),
        ("POST", "/api/v1/endpoints/pay_hook/rotate-secret"),
    ] {
        let (status, _, _) = app.send_as(&shop, method, path, None).await;
        assert_eq!(status, 404, "{method} {path}");
    }
    let (status, _, _) = app
        .send_as(
            &shop,
            "PATCH",
            "/api/v1/endpoints/shop_hook",
            Some(&json!({"app": "pay"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, published, _) = app
        .send_as(
            &shop,
            "POST",
            "/api/v1/events",
            Some(&json!({"event_type": "order.paid", "payload": {}, "app": "pay"})),
        )
        .await;
    assert_eq!(status, 403, "{published}");
    let (status, published, _) = app
        .send_as(
            &shop,
            "POST",
            "/api/v1/events",
            Some(&json!({"event_type": "order.paid", "payload": {}})),
        )
        .await;
    assert_eq!(status, 201, "{published}");
    assert_eq!(
        published["task_ids"].as_array().unwrap().len(),
        1,
        "{published}"
    );
}

async fn a_key_is_fenced_by_address_unless_a_trusted_proxy_vouches(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.auth.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let (_, fenced) = app
        .create_key(json!({"name": "k", "app": "shop", "scopes": ["tasks:read"], "allow_ips": ["10.0.0.0/8"]}))
        .await;
    let get = |xff: Option<&'static str>| {
        let mut request = app
            .client
            .get(app.url("/api/v1/tasks"))
            .bearer_auth(&fenced);
        if let Some(xff) = xff {
            request = request.header("x-forwarded-for", xff);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(None).await, 403, "127.0.0.1 is outside 10.0.0.0/8");
    assert_eq!(get(Some("10.1.2.3")).await, 200);
    assert_eq!(get(Some("10.1.2.3, 11.0.0.1")).await, 403);

    // Without trusted proxies the header is ignored.
    let direct = spawn_app(backend).await;
    let (_, fenced) = direct
        .create_key(json!({"name": "k", "app": "shop", "scopes": ["tasks:read"], "allow_ips": ["10.0.0.0/8"]}))
        .await;
    let response = direct
        .client
        .get(direct.url("/api/v1/tasks"))
        .bearer_auth(&fenced)
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("127.0.0.1"),
        "{problem}"
    );
}

async fn a_key_over_its_rate_gets_429_and_nothing_is_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, limited) = app
        .create_key(
            json!({"name": "k", "app": "shop", "scopes": ["tasks:write"], "rate_limit_per_s": 2}),
        )
        .await;
    let mut accepted = 0;
    let mut limited_answers = 0;
    for _ in 0..6 {
        let (status, problem, headers) = submit_as(&app, &limited, json!({"url": NOWHERE})).await;
        match status {
            201 => accepted += 1,
            429 => {
                limited_answers += 1;
                assert_eq!(problem["code"], "rate_limited");
                let after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=2).contains(&after), "{after}");
            }
            other => panic!("unexpected {other}: {problem}"),
        }
    }
    assert!(
        limited_answers >= 3,
        "{accepted} accepted, {limited_answers} limited"
    );
    assert_eq!(task_count(&app).await, accepted);
}

async fn a_revoked_key_stops_working_on_another_instance_within_two_seconds(backend: Backend) {
    let first = spawn_app(backend).await;
    let second = spawn_app_on(first.db.clone(), |_| {}).await;
    let (id, key) = app_key(&first, "shop", &["tasks:read"]).await;
    let (status, _, _) = second.send_as(&key, "GET", "/api/v1/tasks", None).await;
    assert_eq!(
        status, 200,
        "known to the second instance, and cached there"
    );
    let (status, _) = first
        .send_json("DELETE", &format!("/api/v1/keys/{id}"), &json!(null))
        .await;
    assert_eq!(status, 200);
    let revoked = Instant::now();
    loop {
        let (status, _, _) = second.send_as(&key, "GET", "/api/v1/tasks", None).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked.elapsed() < Duration::from_secs(2),
            "still accepted {:?} after revocation",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn the_audit_log_records_who_changed_what_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let (key_id, shop) = app_key(&app, "shop", &["tasks:write", "tasks:manage"]).await;
    let (_, task, _) = submit_as(&app, &shop, json!({"url": NOWHERE})).await;
    let task_id = task["task_id"].as_str().unwrap();
    let (status, _, _) = app
        .send_as(
            &shop,
            "POST",
            &format!("/api/v1/tasks/{task_id}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = app
        .send_as(
            &shop,
            "POST",
            "/api/v1/tasks/cancel",
            Some(&json!({"source_app": "shop"})),
        )
        .await;
    assert_eq!(status, 403, "a refused attempt is recorded too");
    let (status, bulk) = app
        .send_json(
            "POST",
            "/api/v1/tasks/retry",
            &json!({"source_app": "shop", "dry_run": true}),
        )
        .await;
    assert_eq!(status, 200, "{bulk}");

    let (status, log) = app.send_json("GET", "/api/v1/audit", &json!(null)).await;
    assert_eq!(status, 200, "{log}");
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // The submission is not an audit event.
    assert_eq!(
        actions,
        ["tasks.retry", "tasks.cancel", "task.cancel", "key.create"]
    );
    let items = &log["items"];
    assert_eq!(items[0]["actor"], "admin");
    assert_eq!(items[0]["detail"]["filter"]["source_app"], "shop");
    assert_eq!(items[0]["detail"]["matched"], 1);
    assert_eq!(items[1]["status"], 403);
    assert_eq!(items[1]["actor"], format!("key:{key_id}"));
    assert_eq!(items[1]["actor_name"], "shop");
    assert_eq!(items[2]["target"], task_id);
    assert_eq!(items[2]["ip"], "127.0.0.1");
    assert_eq!(items[2]["status"], 200);
    assert_eq!(items[3]["target"], key_id.as_str());

    let (_, filtered) = app
        .send_json(
            "GET",
            &format!("/api/v1/audit?actor=key:{key_id}"),
            &json!(null),
        )
        .await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 2);
    let (_, page) = app
        .send_json("GET", "/api/v1/audit?limit=3", &json!(null))
        .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .send_json(
            "GET",
            &format!("/api/v1/audit?limit=3&cursor={cursor}"),
            &json!(null),
        )
        .await;
    assert_eq!(rest["items"][0]["action"], "key.create");
    assert_eq!(rest["next_cursor"], Value::Null);
    let (_, later) = app
        .send_json(
            "GET",
            "/api/v1/audit?since=2999-01-01T00:00:00Z",
            &json!(null),
        )
        .await;
    assert_eq!(later["items"], json!([]));
    let (status, _, _) = app.send_as(&shop, "GET", "/api/v1/audit", None).await;
    assert_eq!(status, 403);
}

on_every_backend!(
    a_key_is_shown_once_listed_without_secret_and_revoked_at_once,
    keys_are_refused_when_their_scopes_do_not_fit_their_application,
    wrong_or_missing_credentials_and_missing_scopes_store_nothing,
    an_application_key_sees_and_acts_on_its_own_tasks_only,
    an_application_key_publishes_and_manages_only_its_own_endpoints,
    a_key_is_fenced_by_address_unless_a_trusted_proxy_vouches,
    a_key_over_its_rate_gets_429_and_nothing_is_stored,
    a_revoked_key_stops_working_on_another_instance_within_two_seconds,
    the_audit_log_records_who_changed_what_newest_first,
);
