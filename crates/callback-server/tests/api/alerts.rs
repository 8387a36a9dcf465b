//! Alert hooks end to end, with receivers playing a DingTalk robot, a WeCom
//! robot and a generic webhook: signatures checked by the test's own
//! implementation, a burst summed into few messages, test messages.

use crate::helpers::{spawn_app_with, TestApp};
use base64::Engine;
use callback_testkit::{Backend, Received, Receiver, Reply};
use chrono::{DateTime, Utc};
use hmac::Mac;
use serde_json::{json, Value};
use std::time::Duration;

const ROBOT_OK: &str = r#"{"errcode":0,"errmsg":"ok"}"#;

async fn alerting_app(backend: Backend, min_gap_s: u64) -> TestApp {
    spawn_app_with(backend, |s| {
        s.alerts.check_interval_ms = 200;
        s.alerts.min_gap_s = min_gap_s;
        s.alerts.settle_ms = 1_000;
        s.alerts.public_url = "https://cbc.example.com".into();
        // Bursts of failures to one receiver must not pause it here.
        s.breaker.failure_threshold = 1_000_000;
    })
    .await
}

fn query_param(request: &Received, name: &str) -> Option<String> {
    url::form_urlencoded::parse(request.query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// DingTalk's documented algorithm, written here independently.
fn dingtalk_expected_sign(secret: &str, timestamp: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn a_task_that_fails_for_good_reaches_a_signed_dingtalk_message(backend: Backend) {
    let app = alerting_app(backend, 60).await;
    let robot = Receiver::start().await;
    robot.set_default(Reply::status(200).body(ROBOT_OK));
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(500));
    let hook = app
        .send_json(
            "POST",
            "/api/v1/alert-hooks",
            &json!({"kind": "dingtalk", "url": robot.url("/robot/send?access_token=tok-1"), "secret": "SEC-test-secret", "remark": "ops group"}),
        )
        .await;
    assert_eq!(hook.0, 201, "{:#}", hook.1);
    assert_eq!(hook.1["has_secret"], true);
    assert!(hook.1.get("secret").is_none(), "secrets are write-only");
    assert!(hook.1["url"].as_str().unwrap().contains("access_token=***"));

    let id = app
        .submit(json!({"url": failing.url("/pay/notify"), "max_attempts": 1, "source_app": "shop", "target_app": "pay"}))
        .await;
    app.wait_for_status(&id, "failed", Duration::from_secs(10))
        .await;
    let got = robot.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1, "one message");
    let message = &got[0];
    assert_eq!(
        query_param(message, "access_token").as_deref(),
        Some("tok-1")
    );
    let timestamp = query_param(message, "timestamp").unwrap();
    let age = chrono::Utc::now().timestamp_millis() - timestamp.parse::<i64>().unwrap();
    assert!((0..60_000).contains(&age), "a fresh timestamp");
    assert_eq!(
        query_param(message, "sign").unwrap(),
        dingtalk_expected_sign("SEC-test-secret", &timestamp)
    );
    let body: Value = serde_json::from_slice(&message.body).unwrap();
    assert_eq!(body["msgtype"], "markdown");
    let text = body["markdown"]["text"].as_str().unwrap();
    for needle in [
        id.as_str(),
        "/pay/notify",
        "shop → pay",
        "attempts: 1",
        "last status: 500",
        "https://cbc.example.com/api/v1/tasks/",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    // The alert itself is a task, and it succeeded (errcode 0).
    let (_, alerts) = app
        .send_json(
            "GET",
            "/api/v1/tasks?source_app=callback-center",
            &json!(null),
        )
        .await;
    let alert_id = alerts["items"][0]["task_id"].as_str().unwrap().to_string();
    let shown = alerts["items"][0]["url"].as_str().unwrap();
    assert!(
        shown.contains("access_token=***"),
        "the robot's token is not shown: {shown}"
    );
    app.wait_for_status(&alert_id, "succeeded", Duration::from_secs(10))
        .await;
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"callback_alerts_total{channel="dingtalk",outcome="queued"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}

async fn failed_buckets_list_and_resend_to_another_url(backend: Backend) {
    let app = alerting_app(backend, 60).await;
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(500));
    let rescue = Receiver::start().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            app.submit(json!({"url": failing.url("/down"), "max_attempts": 1}))
                .await,
        );
    }
    for id in &ids {
        app.wait_for_status(id, "failed", Duration::from_secs(10))
            .await;
    }
    let buckets = app.failed_buckets().await;
    let items = buckets["items"].as_array().unwrap().clone();
    let total: u64 = items.iter().map(|b| b["size"].as_u64().unwrap()).sum();
    assert_eq!(total, 3, "{buckets:#}");
    let now_key = {
        let now = chrono::Utc::now();
        let minute = now.format("%M").to_string().parse::<u32>().unwrap() / 10 * 10;
        format!("{}{minute:02}", now.format("%Y%m%d%H"))
    };
    assert!(items.iter().any(|b| b["date"] == now_key.as_str()) || items.len() > 1);

    let mut queued = 0;
    for bucket in &items {
        let (status, answer) = app
            .send_json(
                "POST",
                "/api/v1/failed-buckets/retry",
                &json!({"date": bucket["date"], "retry": 0, "target_url": rescue.url("/rescue")}),
            )
            .await;
        assert_eq!(status, 200, "{answer:#}");
        assert_eq!(answer["retry"], 1);
        queued += answer["queued"].as_u64().unwrap();
        // Someone else re-sent it meanwhile: refused.
        let (status, problem) = app
            .send_json(
                "POST",
                "/api/v1/failed-buckets/retry",
                &json!({"date": bucket["date"], "retry": 0}),
            )
            .await;
        assert_eq!((status, problem["code"].as_str()), (409, Some("conflict")));
    }
    assert_eq!(queued, 3);
    for id in &ids {
        let task = app
            .wait_for_status(id, "succeeded", Duration::from_secs(10))
            .await;
        assert!(task["url"].as_str().unwrap().ends_with("/rescue"));
    }
    assert_eq!(rescue.requests().len(), 3);
    assert_eq!(failing.requests().len(), 3, "the old URL got nothing more");

    let (status, problem) = app
        .send_json(
            "POST",
            "/api/v1/failed-buckets/retry",
            &json!({"date": "202109091445"}),
        )
        .await;
    assert_eq!(status, 400, "not a bucket start: {problem:#}");
    app.stop().await;
}

/// A DingTalk robot that takes every message, registered as a hook
/// without application filter: it hears the operational alerts.
async fn ops_robot(app: &TestApp) -> Receiver {
    let robot = Receiver::start().await;
    robot.set_default(Reply::status(200).body(ROBOT_OK));
    let (status, _) = app
        .send_json(
            "POST",
            "/api/v1/alert-hooks",
            &json!({"kind": "dingtalk", "url": robot.url("/robot/send?access_token=ops")}),
        )
        .await;
    assert_eq!(status, 201);
    robot
}

/// The markdown text of a robot message.
fn markdown_text(message: &Received) -> String {
    let body: Value = serde_json::from_slice(&message.body).unwrap();
    body["markdown"]["text"].as_str().unwrap().to_string()
}

/// Two instances, each with one worker, behind a receiver that takes 3 s
/// an answer: the third task waits 3 s, past the 1 s threshold. The robot
/// hears it once (not once per instance), and once more when delivery has
/// caught up.
async fn the_lag_is_told_once_by_one_of_two_instances_and_so_is_its_recovery(backend: Backend) {
    let lagging = |s: &mut callback_server::Settings| {
        s.alerts.check_interval_ms = 200;
        s.alerts.lag_threshold_s = 1;
        s.alerts.ops_repeat_s = 600;
        s.delivery.concurrency = 1;
        s.delivery.max_in_flight_per_receiver = 1;
    };
    let first = spawn_app_with(backend, lagging).await;
    let second = crate::helpers::spawn_app_on(first.db.clone(), lagging).await;
    let robot = ops_robot(&first).await;
    let slow = Receiver::start().await;
    slow.set_default(Reply::status(200).delay(Duration::from_secs(3)));
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            first
                .submit(json!({"url": slow.url("/slow"), "timeout_ms": 5000}))
                .await,
        );
    }
    let firing = robot.wait_for(1, Duration::from_secs(15)).await;
    let text = markdown_text;
    assert!(
        text(&firing[0]).contains("lag alert"),
        "{}",
        text(&firing[0])
    );
    assert!(
        text(&firing[0]).contains("has waited"),
        "{}",
        text(&firing[0])
    );
    for id in &ids {
        first
            .wait_for_status(id, "succeeded", Duration::from_secs(20))
            .await;
    }
    let both = robot.wait_for(2, Duration::from_secs(15)).await;
    assert!(
        text(&both[1]).contains("lag recovered"),
        "{}",
        text(&both[1])
    );
    // Both instances kept checking meanwhile: nothing more was told.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let told: Vec<String> = robot.requests().iter().map(text).collect();
    assert_eq!(
        told.len(),
        2,
        "one firing and one recovery, from one instance: {told:#?}"
    );
    second.stop().await;
    first.stop().await;
}

/// The operational messages about `condition` the robot has heard.
fn ops_messages(robot: &Receiver, condition: &str) -> Vec<String> {
    robot
        .requests()
        .iter()
        .map(markdown_text)
        .filter(|text| text.contains(&format!("callback-center: {condition} ")))
        .collect()
}

/// Polls until the robot has heard `n` operational messages about
/// `condition` (it hears failure digests too).
async fn wait_for_ops(robot: &Receiver, condition: &str, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let told = ops_messages(robot, condition);
        if told.len() >= n || tokio::time::Instant::now() > deadline {
            return told;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two instances share one receiver that fails 12 attempts, then passes
/// 50: the cluster's rate (not each instance's half) falls below 50% and
/// is told once, then climbs past 75% and its recovery is told once.
async fn a_low_success_rate_across_two_instances_is_told_once_and_so_is_its_recovery(
    backend: Backend,
) {
    let watching = |s: &mut callback_server::Settings| {
        s.alerts.check_interval_ms = 200;
        s.alerts.success_rate_below = 0.5;
        s.alerts.success_rate_min_attempts = 10;
        s.alerts.ops_repeat_s = 600;
        s.breaker.failure_threshold = 1_000_000;
    };
    let first = spawn_app_with(backend, watching).await;
    let second = crate::helpers::spawn_app_on(first.db.clone(), watching).await;
    let robot = ops_robot(&first).await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(500));
    let mut failing = Vec::new();
    for i in 0..12 {
        let app = if i % 2 == 0 { &first } else { &second };
        failing.push(
            app.submit(json!({"url": receiver.url("/fails"), "max_attempts": 1}))
                .await,
        );
    }
    for id in &failing {
        first
            .wait_for_status(id, "failed", Duration::from_secs(20))
            .await;
    }
    let firing = wait_for_ops(&robot, "success_rate", 1).await;
    assert_eq!(firing.len(), 1, "{firing:#?}");
    assert!(firing[0].contains("success_rate alert"), "{}", firing[0]);
    assert!(firing[0].contains("**0.0%**"), "{}", firing[0]);

    receiver.set_default(Reply::status(200));
    let mut passing = Vec::new();
    for i in 0..50 {
        let app = if i % 2 == 0 { &first } else { &second };
        passing.push(app.submit(json!({"url": receiver.url("/passes")})).await);
    }
    for id in &passing {
        first
            .wait_for_status(id, "succeeded", Duration::from_secs(20))
            .await;
    }
    let both = wait_for_ops(&robot, "success_rate", 2).await;
    assert_eq!(both.len(), 2, "{both:#?}");
    assert!(both[1].contains("success_rate recovered"), "{}", both[1]);
    // Told as soon as the rate passed 75%, wherever the count then was.
    assert!(
        both[1].contains("succeeded over the last 5 min"),
        "{}",
        both[1]
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let told = ops_messages(&robot, "success_rate");
    assert_eq!(told.len(), 2, "one instance told each change: {told:#?}");
    second.stop().await;
    first.stop().await;
}

on_every_backend!(
    a_low_success_rate_across_two_instances_is_told_once_and_so_is_its_recovery,
    a_task_that_fails_for_good_reaches_a_signed_dingtalk_message,
    failed_buckets_list_and_resend_to_another_url,
    the_lag_is_told_once_by_one_of_two_instances_and_so_is_its_recovery,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_200_failures_is_summed_into_few_signed_messages() {
    const MIN_GAP_S: u64 = 3;
    let app = alerting_app(Backend::Sqlite, MIN_GAP_S).await;
    let collector = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(503));
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (status, _) = app
        .send_json(
            "POST",
            "/api/v1/alert-hooks",
            &json!({"kind": "webhook", "url": collector.url("/alerts"), "secret": secret}),
        )
        .await;
    assert_eq!(status, 201);
    let mut submitters = tokio::task::JoinSet::new();
    let app = std::sync::Arc::new(app);
    for _ in 0..4 {
        let (app, url) = (app.clone(), failing.url("/dead"));
        submitters.spawn(async move {
            for _ in 0..50 {
                app.submit(json!({"url": url, "max_attempts": 1})).await;
            }
        });
    }
    while submitters.join_next().await.is_some() {}

    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let total = |messages: &[Received]| -> u64 {
        messages
            .iter()
            .map(|m| {
                serde_json::from_slice::<Value>(&m.body).unwrap()["total"]
                    .as_u64()
                    .unwrap()
            })
            .sum()
    };
    loop {
        let told = total(&collector.requests());
        if told >= 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{told} of 200 failures reported in 40 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let messages = collector.requests();
    assert_eq!(total(&messages), 200, "each failure reported exactly once");
    assert!(
        messages.len() <= 10,
        "{} messages for one burst",
        messages.len()
    );
    // Each message covers the failures from the previous one's end to its
    // own, and is made at least min_gap after the previous one. Arrival
    // times would add each message's own delivery time to that, which a
    // loaded machine stretches for one message and not the next.
    let mut windows: Vec<(DateTime<Utc>, DateTime<Utc>)> = messages
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_slice(&m.body).unwrap();
            let at = |field: &str| body[field].as_str().unwrap().parse().unwrap();
            (at("since"), at("until"))
        })
        .collect();
    windows.sort();
    for pair in windows.windows(2) {
        assert_eq!(pair[1].0, pair[0].1, "windows meet: {windows:?}");
        assert!(
            (pair[1].1 - pair[0].1).num_seconds() >= MIN_GAP_S as i64,
            "at most one message per min_gap: {windows:?}"
        );
    }
    let first: Value = serde_json::from_slice(&messages[0].body).unwrap();
    assert_eq!(first["type"], "tasks.failed");
    assert!(first["by_host"][0]["host"]
        .as_str()
        .unwrap()
        .contains("127.0.0.1"));
    // The standard signature verifies with the hook's secret.
    let m = &messages[0];
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.",
            m.header("webhook-id").unwrap(),
            m.header("webhook-timestamp").unwrap()
        )
        .as_bytes(),
    );
    mac.update(&m.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(m.header("webhook-signature").unwrap(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_message_shows_what_the_robot_answered() {
    let app = alerting_app(Backend::Sqlite, 60).await;
    let robot = Receiver::start().await;
    robot.script([
        Reply::status(200).body(r#"{"errcode":310000,"errmsg":"sign not match"}"#),
        Reply::status(200).body(ROBOT_OK),
    ]);
    let (_, hook) = app
        .send_json(
            "POST",
            "/api/v1/alert-hooks",
            &json!({"kind": "wecom", "url": robot.url("/cgi-bin/webhook/send?key=k-1")}),
        )
        .await;
    let path = format!("/api/v1/alert-hooks/{}/test", hook["id"].as_str().unwrap());
    let (status, refused) = app.send_json("POST", &path, &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(refused["ok"], false);
    assert!(refused["error"]
        .as_str()
        .unwrap()
        .contains("errcode 310000"));
    assert_eq!(refused["answer"]["errmsg"], "sign not match");
    let (_, accepted) = app.send_json("POST", &path, &json!({})).await;
    assert_eq!(accepted["ok"], true, "{accepted:#}");
    let sent: Value = serde_json::from_slice(&robot.requests()[0].body).unwrap();
    assert_eq!(sent["msgtype"], "markdown");
    assert!(sent["markdown"]["content"]
        .as_str()
        .unwrap()
        .contains("test message"));

    // WeCom robots are not signed; a secret is refused.
    let (status, problem) = app
        .send_json(
            "POST",
            "/api/v1/alert-hooks",
            &json!({"kind": "wecom", "url": robot.url("/x"), "secret": "s"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["field"], "secret");
    let (status, _) = app
        .send_json(
            "DELETE",
            &format!("/api/v1/alert-hooks/{}", hook["id"].as_str().unwrap()),
            &json!(null),
        )
        .await;
    assert_eq!(status, 204);
}

/// Two instances on one Redis that stops: the robot hears once that Redis
/// does not answer, and once that it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_told_once_and_so_is_its_end() {
    let mut redis = callback_testkit::PrivateRedis::start().await;
    let url = redis.url();
    let watching = move |s: &mut callback_server::Settings| {
        s.redis.url = Some(secrecy::SecretString::from(url));
        s.alerts.check_interval_ms = 200;
        s.alerts.outage_after_s = 1;
    };
    let first = spawn_app_with(Backend::Mysql, watching.clone()).await;
    let second = crate::helpers::spawn_app_on(first.db.clone(), watching).await;
    let robot = ops_robot(&first).await;
    let text = markdown_text;
    redis.stop();
    let down = robot.wait_for(1, Duration::from_secs(20)).await;
    assert!(text(&down[0]).contains("redis alert"), "{}", text(&down[0]));
    redis.restart().await;
    let both = robot.wait_for(2, Duration::from_secs(20)).await;
    assert!(
        text(&both[1]).contains("redis recovered"),
        "{}",
        text(&both[1])
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let told: Vec<String> = robot.requests().iter().map(text).collect();
    assert_eq!(told.len(), 2, "one instance told each change: {told:#?}");
    second.stop().await;
    first.stop().await;
}

/// Two instances on a MariaDB of the test's own, sharing Redis, while that
/// MariaDB is killed: no alert task can be stored, yet the robot hears
/// once, straight from one instance, that the store is down; and once,
/// from the store, that it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_is_told_directly_once_and_its_end_once() {
    let mut mariadb = callback_testkit::PrivateMariaDb::start().await;
    let db =
        std::sync::Arc::new(callback_testkit::TestDatabase::create_on_mysql(&mariadb.url()).await);
    let redis = callback_testkit::TestRedis::create().await;
    let (url, prefix) = (redis.url.clone(), redis.prefix.clone());
    let watching = move |s: &mut callback_server::Settings| {
        s.redis.url = Some(secrecy::SecretString::from(url));
        s.redis.key_prefix = prefix;
        s.alerts.check_interval_ms = 200;
        s.alerts.outage_after_s = 1;
    };
    let first = crate::helpers::spawn_app_on(db.clone(), watching.clone()).await;
    let second = crate::helpers::spawn_app_on(db.clone(), watching).await;
    let robot = ops_robot(&first).await;
    // Both instances have read the hooks since the robot was added.
    tokio::time::sleep(Duration::from_millis(600)).await;

    mariadb.stop();
    let down = wait_for_ops(&robot, "store", 1).await;
    assert_eq!(down.len(), 1, "{down:#?}");
    assert!(down[0].contains("store alert"), "{}", down[0]);
    assert!(down[0].contains("has not answered"), "{}", down[0]);
    let (status, _) = first
        .send_json("POST", "/api/v1/tasks", &json!({"url": robot.url("/x")}))
        .await;
    assert_eq!(status, 503, "intake refuses while the store is down");

    mariadb.restart().await;
    let both = wait_for_ops(&robot, "store", 2).await;
    assert_eq!(both.len(), 2, "{both:#?}");
    assert!(both[1].contains("store recovered"), "{}", both[1]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let told = ops_messages(&robot, "store");
    assert_eq!(told.len(), 2, "one instance told each change: {told:#?}");
    second.stop().await;
    first.stop().await;
}
