//! cbctl against a real server (started in this process, on MariaDB): what
//! a script sees on stdout and in the exit code.

use callback_server::settings::Settings;
use callback_server::startup::Application;
use callback_testkit::{Backend, Receiver, Reply, TestDatabase};
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

const TOKEN: &str = "cli-test-admin-token";

struct Server {
    address: String,
    _db: TestDatabase,
}

async fn start_server() -> Server {
    let db = TestDatabase::create(Backend::Mysql).await;
    let mut settings = Settings::defaults().expect("default settings");
    settings.server.bind = "127.0.0.1:0".into();
    settings.database.url = secrecy::SecretString::from(db.url.clone());
    settings.auth.admin_token = Some(secrecy::SecretString::from(TOKEN.to_string()));
    settings.data.dir = std::env::temp_dir().join(format!("cbctl-test-{}", uuid::Uuid::new_v4()));
    let app = Application::build(settings)
        .await
        .expect("the server starts");
    let address = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Server { address, _db: db }
}

/// Runs cbctl against `server`, with `stdin` as its input.
async fn cbctl(server: &Server, args: &[&str], stdin: &[u8]) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cbctl"))
        .args(args)
        .env("CBC_URL", &server.address)
        .env("CBC_TOKEN", TOKEN)
        .env_remove("CBCTL_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent-cbctl-config")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cbctl runs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).await.expect("write stdin");
    drop(input);
    child.wait_with_output().await.expect("cbctl ends")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_get_and_list_with_tables_and_json() {
    let server = start_server().await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200));
    let url = receiver.url("/paid");
    let submitted = cbctl(
        &server,
        &[
            "--json",
            "task",
            "submit",
            &url,
            "--data",
            r#"{"order":42}"#,
            "--source-app",
            "shop",
            "--wait",
        ],
        b"",
    )
    .await;
    assert_eq!(submitted.status.code(), Some(0), "{submitted:?}");
    let answer = json_of(&submitted);
    assert_eq!(answer["created"], true);
    assert_eq!(answer["task"]["status"], "succeeded");
    let id = answer["task"]["task_id"].as_str().unwrap().to_string();
    assert_eq!(receiver.requests()[0].body, br#"{"order":42}"#);

    let shown = cbctl(&server, &["task", "get", &id], b"").await;
    assert_eq!(shown.status.code(), Some(0));
    assert!(text(&shown).contains("succeeded"), "{}", text(&shown));
    assert!(
        text(&shown).contains("STARTED"),
        "the attempts' table: {}",
        text(&shown)
    );

    let listed = cbctl(&server, &["task", "list", "--app", "shop"], b"").await;
    let lines: Vec<String> = text(&listed).lines().map(str::to_string).collect();
    assert!(lines[0].starts_with("TASK"), "{lines:?}");
    assert_eq!(lines.len(), 2, "a header and one task: {lines:?}");
    assert!(lines[1].starts_with(&id));

    let missing = cbctl(
        &server,
        &["task", "get", "01a24221-78fd-7418-829d-bca9228a6d2d"],
        b"",
    )
    .await;
    assert_eq!(missing.status.code(), Some(1), "refused: exit 1");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_counts_first_asks_and_re_sends_exactly_that_count() {
    let server = start_server().await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(500));
    let url = receiver.url("/fails");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let out = cbctl(
            &server,
            &[
                "--json",
                "task",
                "submit",
                &url,
                "--max-attempts",
                "1",
                "--source-app",
                "replayed",
                "--wait",
            ],
            b"",
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "the task failed: exit 1");
        ids.push(
            json_of(&out)["task"]["task_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Another application's failure is not part of the replay.
    cbctl(
        &server,
        &[
            "task",
            "submit",
            &url,
            "--max-attempts",
            "1",
            "--source-app",
            "other",
            "--wait",
        ],
        b"",
    )
    .await;

    let dry = cbctl(
        &server,
        &[
            "--json",
            "replay",
            "--status",
            "failed",
            "--since",
            "1h",
            "--app",
            "replayed",
            "--dry-run",
        ],
        b"",
    )
    .await;
    assert_eq!(json_of(&dry)["matched"], 3);

    // No terminal to ask on and no --yes: nothing is done, exit 5.
    let refused = cbctl(
        &server,
        &["replay", "--since", "1h", "--app", "replayed"],
        b"y\n",
    )
    .await;
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    let still = cbctl(
        &server,
        &[
            "--json", "task", "list", "--app", "replayed", "--status", "failed",
        ],
        b"",
    )
    .await;
    assert_eq!(json_of(&still)["items"].as_array().unwrap().len(), 3);

    receiver.set_default(Reply::status(200));
    let done = cbctl(
        &server,
        &[
            "--json", "replay", "--since", "1h", "--app", "replayed", "--yes",
        ],
        b"",
    )
    .await;
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert_eq!(
        json_of(&done)["acted"],
        3,
        "the count shown is the count re-sent"
    );
    for id in &ids {
        let waited = cbctl(
            &server,
            &["task", "wait", id, "--for", "succeeded", "--timeout", "20s"],
            b"",
        )
        .await;
        assert_eq!(waited.status.code(), Some(0), "{waited:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_tell_timeouts_and_an_unreachable_server_apart() {
    let server = start_server().await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200).delay(Duration::from_secs(5)));
    let out = cbctl(
        &server,
        &["--json", "task", "submit", &receiver.url("/slow")],
        b"",
    )
    .await;
    let id = json_of(&out)["task"]["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let waited = cbctl(
        &server,
        &[
            "task",
            "wait",
            &id,
            "--for",
            "succeeded",
            "--timeout",
            "300ms",
        ],
        b"",
    )
    .await;
    assert_eq!(waited.status.code(), Some(4), "{waited:?}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = Server {
        address: format!("http://{}", closed.local_addr().unwrap()),
        _db: TestDatabase::create(Backend::Sqlite).await,
    };
    drop(closed);
    let unreachable = cbctl(&nowhere, &["--retry-for", "500ms", "task", "list"], b"").await;
    assert_eq!(unreachable.status.code(), Some(3), "{unreachable:?}");

    // The server and token from a config file instead of the environment.
    let dir = std::env::temp_dir().join(format!("cbctl-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cbctl.toml");
    std::fs::write(
        &file,
        format!("url = \"{}\"\ntoken = \"{TOKEN}\"\n", server.address),
    )
    .unwrap();
    let from_file = tokio::process::Command::new(env!("CARGO_BIN_EXE_cbctl"))
        .args([
            "--config",
            file.to_str().unwrap(),
            "--json",
            "task",
            "get",
            &id,
        ])
        .env_remove("CBC_URL")
        .env_remove("CBC_TOKEN")
        .output()
        .await
        .unwrap();
    assert_eq!(from_file.status.code(), Some(0), "{from_file:?}");
    assert_eq!(json_of(&from_file)["task_id"], id.as_str());
    let _ = std::fs::remove_dir_all(&dir);

    let usage = cbctl(&server, &["task", "submit"], b"").await;
    assert_eq!(usage.status.code(), Some(2));

    let completions = cbctl(&server, &["completions", "bash"], b"").await;
    assert!(
        text(&completions).contains("cbctl"),
        "a bash completion script"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_a_saved_request_from_a_signed_endpoint() {
    let server = start_server().await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200));
    let created = cbctl(
        &server,
        &[
            "--json",
            "endpoints",
            "create",
            "orders",
            &receiver.url("/orders"),
            "--event-type",
            "order.paid",
        ],
        b"",
    )
    .await;
    assert_eq!(created.status.code(), Some(0), "{created:?}");
    let secret = json_of(&created)["secret"].as_str().unwrap().to_string();
    let published = cbctl(
        &server,
        &[
            "--json",
            "events",
            "publish",
            "order.paid",
            "--data",
            r#"{"order":7}"#,
        ],
        b"",
    )
    .await;
    assert_eq!(json_of(&published)["task_ids"].as_array().unwrap().len(), 1);
    let got = receiver.wait_for(1, Duration::from_secs(15)).await;
    let request = &got[0];
    let mut saved = b"POST /orders HTTP/1.1\r\n".to_vec();
    for name in [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
    ] {
        saved
            .extend_from_slice(format!("{name}: {}\r\n", request.header(name).unwrap()).as_bytes());
    }
    saved.extend_from_slice(b"\r\n");
    saved.extend_from_slice(&request.body);

    let valid = cbctl(&server, &["verify", "--secret", &secret], &saved).await;
    assert_eq!(valid.status.code(), Some(0), "{valid:?}");
    assert!(text(&valid).contains("valid standard signature"));
    let mut tampered = saved.clone();
    tampered.extend_from_slice(b" ");
    let invalid = cbctl(&server, &["verify", "--secret", &secret], &tampered).await;
    assert_eq!(invalid.status.code(), Some(1), "{invalid:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_a_new_attempt_as_a_json_line() {
    use tokio::io::AsyncBufReadExt;
    let server = start_server().await;
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200));
    let mut tail = tokio::process::Command::new(env!("CARGO_BIN_EXE_cbctl"))
        .args(["--json", "tail", "--app", "tailed-cli"])
        .env("CBC_URL", &server.address)
        .env("CBC_TOKEN", TOKEN)
        .env("XDG_CONFIG_HOME", "/nonexistent-cbctl-config")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cbctl tail runs");
    let mut lines = tokio::io::BufReader::new(tail.stdout.take().unwrap()).lines();
    // The stream is open once the server has a subscriber; until then a
    // task's attempt could pass unseen, so submit until one is shown.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let line = loop {
        let out = cbctl(
            &server,
            &[
                "--json",
                "task",
                "submit",
                &receiver.url("/tailed"),
                "--source-app",
                "tailed-cli",
            ],
            b"",
        )
        .await;
        assert_eq!(out.status.code(), Some(0));
        if let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(2), lines.next_line()).await
        {
            break line;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt shown within 20 s"
        );
    };
    let attempt: Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(attempt["app"], "tailed-cli");
    assert_eq!(attempt["outcome"], "success");
    assert_eq!(attempt["status_code"], 200);
    tail.kill().await.expect("stop the tail");
}
