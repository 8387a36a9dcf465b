//! Secrets stay secret: the real binary logs at `trace` while it is given
//! an API key, an endpoint secret, a DingTalk secret, a WeChat key and a
//! receiver's `Authorization` header, delivers with them and fails with
//! them; none of them appears in its log, and none in an API answer but
//! the one-time reveal.

use crate::helpers::{start_binary_logging_to, temp_dir, TOKEN};
use callback_testkit::{Backend, Receiver, Reply, TestDatabase};
use serde_json::{json, Value};
use std::time::Duration;

const RECEIVER_AUTH: &str = "Bearer receiver-secret-7f3a91c2";
const ENDPOINT_SECRET: &str = "whsec_c2VjcmV0LW9mLXRoZS1lbmRwb2ludC0xMjM0NTY3OA==";
const DINGTALK_SECRET: &str = "SECdingtalk-secret-5b8e02d4";
const WRONG_KEY: &str = "cbk_wrong-key-that-was-never-issued-9a1c";

async fn call(
    client: &reqwest::Client,
    address: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = client
        .request(method, format!("{address}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_at_any_level_or_a_later_answer() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let dir = temp_dir();
    let log = dir.join("server.log");
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(500));
    let receiver = Receiver::start().await;
    let mut server = start_binary_logging_to(
        &db,
        &dir,
        &[
            ("CBC__LOG__LEVEL", "trace"),
            ("RUST_LOG", "trace"),
            (
                "CBC__INBOUND__WECHAT__ENCODING_AES_KEY",
                "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            ),
        ],
        &log,
    )
    .await;
    let (client, address) = (reqwest::Client::new(), server.address.clone());
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    let (status, created) = call(
        &client,
        &address,
        TOKEN,
        post.clone(),
        "/api/v1/keys",
        Some(json!({"name": "shop", "app": "shop", "scopes": ["tasks:write", "tasks:read"]})),
    )
    .await;
    assert_eq!(status, 201);
    let created: Value = serde_json::from_str(&created).unwrap();
    let key = created["key"].as_str().unwrap().to_string();

    let mut task_ids = Vec::new();
    for (url, attempts) in [(failing.url("/fail"), 2), (receiver.url("/ok"), 1)] {
        let (status, task) = call(
            &client,
            &address,
            &key,
            post.clone(),
            "/api/v1/tasks",
            Some(json!({
                "url": url,
                "headers": {"Authorization": RECEIVER_AUTH},
                "max_attempts": attempts,
                "retry_delays_s": [1]
            })),
        )
        .await;
        assert_eq!(status, 201, "{task}");
        let task: Value = serde_json::from_str(&task).unwrap();
        task_ids.push(task["task_id"].as_str().unwrap().to_string());
    }
    let (status, _) = call(
        &client,
        &address,
        WRONG_KEY,
        get.clone(),
        "/api/v1/tasks",
        None,
    )
    .await;
    assert_eq!(status, 401);

    let (status, _) = call(
        &client,
        &address,
        TOKEN,
        post.clone(),
        "/api/v1/endpoints",
        Some(json!({"name": "orders", "url": receiver.url("/events"), "secret": ENDPOINT_SECRET})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &client,
        &address,
        TOKEN,
        post.clone(),
        "/api/v1/events",
        Some(json!({"event_type": "order.paid", "payload": {"id": 1}})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, hook) = call(
        &client,
        &address,
        TOKEN,
        post.clone(),
        "/api/v1/alert-hooks",
        Some(json!({"kind": "dingtalk", "url": receiver.url("/robot/send?access_token=robot-token-1"), "secret": DINGTALK_SECRET})),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let hook: Value = serde_json::from_str(&hook).unwrap();
    let hook_id = hook["id"].as_str().unwrap();
    call(
        &client,
        &address,
        TOKEN,
        post.clone(),
        &format!("/api/v1/alert-hooks/{hook_id}/test"),
        None,
    )
    .await;

    // Delivered with the secrets: the receiver got the header, the failing
    // one failed for good.
    let got = receiver.wait_for(3, Duration::from_secs(20)).await;
    assert!(got
        .iter()
        .any(|r| r.header("authorization") == Some(RECEIVER_AUTH)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, task) = call(
            &client,
            &address,
            TOKEN,
            get.clone(),
            &format!("/api/v1/tasks/{}", task_ids[0]),
            None,
        )
        .await;
        if task.contains(r#""status":"failed""#) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{task}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // What the API shows later: no secret but the one-time reveals.
    let mut answers = String::new();
    for path in [
        format!("/api/v1/tasks/{}", task_ids[0]),
        format!("/api/v1/tasks/{}", task_ids[1]),
        "/api/v1/tasks".to_string(),
        "/api/v1/keys".to_string(),
        "/api/v1/endpoints/orders".to_string(),
        format!("/api/v1/alert-hooks/{hook_id}"),
        "/api/v1/audit".to_string(),
    ] {
        let (status, body) = call(&client, &address, TOKEN, get.clone(), &path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        answers.push_str(&body);
    }
    server.terminate(Duration::from_secs(10)).await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("TRACE") && logged.contains(&task_ids[0]),
        "the server logged at trace, about the tasks:\n{}",
        &logged[..logged.len().min(2000)]
    );
    let secrets = [
        ("the API key", key.as_str()),
        ("the API key's random part", &key[4..]),
        ("a wrong key presented", WRONG_KEY),
        ("the admin token", TOKEN),
        (
            "the receiver's Authorization header",
            "receiver-secret-7f3a91c2",
        ),
        ("the endpoint secret", ENDPOINT_SECRET),
        ("the endpoint secret's key", &ENDPOINT_SECRET[6..]),
        ("the DingTalk secret", DINGTALK_SECRET),
        ("the robot token", "robot-token-1"),
        (
            "the WeChat key",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        ),
    ];
    for (what, secret) in secrets {
        assert!(!logged.contains(secret), "{what} is in the log");
    }
    for (what, secret) in &secrets[..8] {
        assert!(!answers.contains(secret), "{what} is in an API answer");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
