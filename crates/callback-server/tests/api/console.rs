//! The operator console at the level its users see it: the real server on
//! MariaDB, a receiver and a DingTalk robot played by recording receivers,
//! and Debian's chromium driven by Playwright (`tests/browser/console.py`).
//! The script checks what a person sees; this test checks afterwards what
//! the receivers got and what the audit log recorded. Screenshots of each
//! page are left under `target/console-shots/`.

use crate::helpers::{spawn_app, TOKEN};
use callback_testkit::{Backend, Receiver, Reply};
use serde_json::{json, Value};
use std::time::Duration;

const ROBOT_OK: &str = r#"{"errcode":0,"errmsg":"ok"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_resends_and_watches_callbacks_in_a_real_browser() {
    let app = spawn_app(Backend::Mysql).await;
    let receiver = Receiver::start().await;
    // The first four tasks fail for good (one attempt each); every later
    // attempt, re-sends included, succeeds.
    receiver.script([500, 500, 500, 500].map(Reply::status));
    receiver.set_default(Reply::status(200));
    let robot = Receiver::start().await;
    robot.set_default(Reply::status(200).body(ROBOT_OK));

    let failed = app
        .submit(
            json!({"url": receiver.url("/orders/paid"), "max_attempts": 1, "source_app": "shop"}),
        )
        .await;
    app.wait_for_status(&failed, "failed", Duration::from_secs(10))
        .await;
    let mut billing = Vec::new();
    for n in 0..3 {
        let id = app
            .submit(json!({"url": receiver.url(&format!("/invoices/{n}")), "max_attempts": 1, "source_app": "billing"}))
            .await;
        app.wait_for_status(&id, "failed", Duration::from_secs(10))
            .await;
        billing.push(id);
    }

    let shots = format!("{}/../../target/console-shots", env!("CARGO_MANIFEST_DIR"));
    let _ = std::fs::remove_dir_all(&shots);
    let script = format!("{}/tests/browser/console.py", env!("CARGO_MANIFEST_DIR"));
    let run = tokio::process::Command::new("python3")
        .arg(&script)
        .env("BASE", &app.address)
        .env("TOKEN", TOKEN)
        .env("FAILED_TASK", &failed)
        .env("RECEIVER", receiver.url(""))
        .env("ROBOT", robot.url("/robot/send?access_token=console-robot"))
        .env("SHOTS", &shots)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the browser steps end within 5 minutes")
        .expect("python3 runs the browser steps (scripts/test installs Playwright and chromium)");
    assert!(
        output.status.success(),
        "the browser steps failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // The re-send from the task page reached the receiver again.
    let counts = receiver.counts_by_task();
    assert_eq!(counts.get(&failed), Some(&2), "{counts:?}");
    // The bulk re-send: each billing task attempted twice, now delivered.
    for id in &billing {
        assert_eq!(counts.get(id), Some(&2), "{id}: {counts:?}");
        assert_eq!(app.task(id).await["status"], "succeeded");
    }
    // The hook's test message reached the robot, signed with its secret.
    let told = robot.requests();
    assert_eq!(told.len(), 1, "one test message");
    assert!(
        told[0].query.contains("access_token=console-robot") && told[0].query.contains("sign="),
        "{}",
        told[0].query
    );

    // What the operator did is in the audit log under their name.
    let audit: Value = app
        .get("/api/v1/audit?actor=account:olga")
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"].as_u64() == Some(200) || e["status"].as_u64() == Some(303))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "console.sign_in",
        "task.retry",
        "tasks.retry",
        "alert_hook.create",
        "alert_hook.test",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    // The viewer's forged re-send was refused and recorded as refused.
    let viewer: Value = app
        .get("/api/v1/audit?actor=account:vic&action=task.retry")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(viewer["items"][0]["status"], 403, "{viewer:#}");

    let pages = std::fs::read_dir(&shots).unwrap().count();
    assert!(pages >= 12, "only {pages} screenshots in {shots}");
    app.stop().await;
}
