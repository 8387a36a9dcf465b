//! The operator console at the level its users see it: the real server on
//! MariaDB, a receiver and a DingTalk robot played by recording receivers,
//! and Debian's chromium driven by Playwright (`tests/browser/console.py`).
//! The script checks what a person sees; this test checks afterwards what
//! the receivers got and what the audit log recorded. Screenshots of each
//! page are left under `target/console-shots/`.

use crate::helpers::{spawn_app_with, TOKEN};
use callback_server::settings::SourceSettings;
use callback_testkit::{Backend, Receiver, Reply};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::time::Duration;

const ROBOT_OK: &str = r#"{"errcode":0,"errmsg":"ok"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_resends_and_watches_callbacks_in_a_real_browser() {
    let app = spawn_app_with(Backend::Mysql, |s| {
        s.inbound.sources.insert(
            "acme".into(),
            SourceSettings {
                namespace: "acme".into(),
                key_pointer: "/order_id".into(),
                hmac_header: None,
                hmac_secret: None,
                token_header: Some("X-Acme-Token".into()),
                token: Some(SecretString::from("acme-token".to_string())),
                default_target: None,
            },
        );
    })
    .await;
    let receiver = Receiver::start().await;
    // The first four tasks fail for good (one attempt each); every later
    // attempt, re-sends included, succeeds.
    receiver.script([500, 500, 500, 500].map(Reply::status));
    receiver.set_default(Reply::status(200));
    let robot = Receiver::start().await;
    robot.set_default(Reply::status(200).body(ROBOT_OK));

    let began = chrono::Utc::now();
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

    // A failed bucket opens as the list of tasks that failed in it.
    let stamp =
        |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let now = chrono::Utc::now();
    let failed_between = |from, to| {
        format!(
            "/api/v1/tasks?failed_from={}&failed_to={}",
            stamp(from),
            stamp(to)
        )
    };
    let listed: Value = app
        .get(&failed_between(began, now))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 4, "{listed:#}");
    let before: Value = app
        .get(&failed_between(began - chrono::TimeDelta::hours(1), began))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["items"].as_array().unwrap().len(), 0, "{before:#}");

    // A vendor callback no route claims: the operator forwards it by hand.
    let unrouted = app
        .client
        .post(app.url("/inbound/acme"))
        .header("X-Acme-Token", "acme-token")
        .json(&json!({"order_id": "A-1", "state": "paid"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unrouted.status(), 200);

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
    // The forwarded vendor callback and the endpoint's test event arrived.
    let paths: Vec<String> = receiver.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.contains(&"/forwarded-by-hand".to_string()),
        "{paths:?}"
    );
    assert!(paths.contains(&"/events".to_string()), "{paths:?}");
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
    assert!(pages >= 16, "only {pages} screenshots in {shots}");
    app.stop().await;
}

/// Signs in over plain HTTP; the status and the session cookie, if any.
async fn sign_in(app: &crate::helpers::TestApp, form: &[(&str, &str)]) -> (u16, Option<String>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = client
        .post(app.url("/console/login"))
        .form(form)
        .send()
        .await
        .unwrap();
    let cookie = answer
        .headers()
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().to_string());
    (answer.status().as_u16(), cookie)
}

/// The page at `path` with the session cookie; its status and where it
/// sends the browser.
async fn visit(app: &crate::helpers::TestApp, cookie: &str, path: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let session = cookie.split(';').next().unwrap();
    let answer = client
        .get(app.url(path))
        .header("Cookie", session)
        .send()
        .await
        .unwrap();
    let location = answer
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (answer.status().as_u16(), location)
}

/// Accounts made with `callback-center user add`, the session cookie's
/// flags, idle expiry, disabled accounts and the limit on sign-ins, over
/// plain HTTP.
async fn accounts_sessions_and_sign_in_limits(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.console.sign_ins_per_minute = 3).await;
    // The command line makes the account in the same store.
    let data_dir = crate::helpers::temp_dir();
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_callback-center"))
        .args(["user", "add", "ops.lead", "--role", "operator"])
        .env("CBC__DATABASE__URL", &app.db.url)
        .env("CBC__DATA__DIR", &data_dir)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let printed = String::from_utf8_lossy(&made.stdout);
    let password = printed.lines().last().unwrap().trim().to_string();
    assert!(printed.contains("ops.lead (operator)"), "{printed}");
    assert!(password.len() >= 24, "{printed}");

    let (status, cookie) =
        sign_in(&app, &[("username", "ops.lead"), ("password", &password)]).await;
    assert_eq!(status, 303);
    let cookie = cookie.expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert_eq!(visit(&app, &cookie, "/console/tasks").await.0, 200);
    // An operator is not an admin: the accounts page is refused.
    assert_eq!(visit(&app, &cookie, "/console/accounts").await.0, 403);

    // Idle past the timeout: the session is over.
    let store = callback_store::connect(&callback_store::StoreOptions {
        url: app.db.url.clone(),
        max_connections: 1,
        connect_timeout: Duration::from_secs(5),
        group_commit: None,
    })
    .await
    .unwrap();
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("cbc_session=");
    let idle = chrono::Utc::now() - chrono::TimeDelta::hours(2);
    callback_core::AccountStore::touch_session(&store, &callback_auth::hash_key(token), idle)
        .await
        .unwrap();
    let (status, location) = visit(&app, &cookie, "/console/tasks").await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/console/login?next=%2Fconsole%2Ftasks")
    );

    // A disabled account cannot sign in, and looks like a wrong password.
    let (_, admin_cookie) = sign_in(&app, &[("token", TOKEN)]).await;
    let admin_cookie = admin_cookie.unwrap();
    let (account, _) = callback_core::AccountStore::account_by_name(&store, "ops.lead")
        .await
        .unwrap()
        .unwrap();
    callback_core::AccountStore::set_account_disabled(&store, account.id, Some(chrono::Utc::now()))
        .await
        .unwrap();
    let refused = sign_in(&app, &[("username", "ops.lead"), ("password", &password)]).await;
    assert_eq!(refused, (401, None));
    assert_eq!(visit(&app, &admin_cookie, "/console/accounts").await.0, 200);

    // Three tries a minute per name (this is the third): the fourth is
    // refused before the password is even checked.
    let wrong = sign_in(&app, &[("username", "ops.lead"), ("password", "guess")]).await;
    assert_eq!(wrong.0, 401);
    let limited = sign_in(&app, &[("username", "ops.lead"), ("password", &password)]).await;
    assert_eq!(limited.0, 429);
    app.stop().await;
}

on_every_backend!(accounts_sessions_and_sign_in_limits);
