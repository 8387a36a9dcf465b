//! The binary under real faults: SIGKILL mid-run, SIGTERM with attempts in
//! flight, and two instances sharing one database.

use crate::helpers::{spawn_app_on, TOKEN};
use callback_testkit::{Backend, Receiver, Reply, TestDatabase};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Server {
    child: Child,
    address: String,
}

/// Starts the real binary on the database and returns once it listens.
async fn start_binary(db: &TestDatabase, data_dir: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_callback-center"))
        .env("CBC__SERVER__BIND", "127.0.0.1:0")
        .env("CBC__DATABASE__URL", &db.url)
        .env("CBC__AUTH__ADMIN_TOKEN", TOKEN)
        .env("CBC__DATA__DIR", data_dir)
        .env("CBC__DELIVERY__LEASE_MARGIN_MS", "1000")
        .env("CBC__DELIVERY__RECONCILE_INTERVAL_MS", "200")
        .env("CBC__SERVER__SHUTDOWN_GRACE_MS", "5000")
        .env("CBC__LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("server starts within 30 s")
            .unwrap()
            .expect("server printed its address");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_string();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server { child, address }
}

async fn submit(client: &reqwest::Client, address: &str, body: &Value) -> String {
    let response = client
        .post(format!("{address}/api/v1/tasks"))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let v: Value = response.json().await.unwrap();
    v["task_id"].as_str().unwrap().to_string()
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cbc-crash-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn killed_server_delivers_everything_it_accepted_after_restart(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let data_dir = temp_dir();
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200).delay(Duration::from_millis(100)));
    let client = reqwest::Client::new();

    let mut server = start_binary(&db, &data_dir).await;
    let mut accepted = Vec::new();
    for i in 0..300 {
        let task = json!({"url": receiver.url(&format!("/t/{i}")), "timeout_ms": 2000, "retry_delays_s": [1]});
        accepted.push(submit(&client, &server.address, &task).await);
    }
    receiver.wait_for(50, Duration::from_secs(30)).await;
    server.child.kill().await.unwrap(); // SIGKILL
    let before_restart = receiver.requests().len();
    assert!(
        before_restart < accepted.len(),
        "the kill must interrupt the run"
    );

    let _restarted = start_binary(&db, &data_dir).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let expected: HashSet<String> = accepted.iter().cloned().collect();
    loop {
        let got: HashSet<String> = receiver.counts_by_task().into_keys().collect();
        if expected.is_subset(&got) || tokio::time::Instant::now() > deadline {
            let missing = expected.difference(&got).count();
            let duplicates: usize = receiver
                .counts_by_task()
                .values()
                .map(|n| n.saturating_sub(1))
                .sum();
            eprintln!(
                "kill -9: accepted {}, delivered before kill {before_restart}, missing {missing}, duplicates {duplicates}",
                accepted.len()
            );
            assert_eq!(missing, 0, "every accepted task is delivered after a crash");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_dir_all(&data_dir);
}

async fn sigterm_lets_attempts_in_flight_finish_and_exits_cleanly(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let data_dir = temp_dir();
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200).delay(Duration::from_millis(1500)));
    let client = reqwest::Client::new();
    let mut server = start_binary(&db, &data_dir).await;
    let id = submit(
        &client,
        &server.address,
        &json!({"url": receiver.url("/slow")}),
    )
    .await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let pid = server.child.id().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(15), server.child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");

    // The attempt in flight finished and was recorded before the exit.
    let restarted = start_binary(&db, &data_dir).await;
    let task: Value = client
        .get(format!("{}/api/v1/tasks/{id}", restarted.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["status"], "succeeded", "{task:#}");
    assert_eq!(receiver.requests().len(), 1);
    let _ = std::fs::remove_dir_all(&data_dir);
}

on_every_backend!(
    killed_server_delivers_everything_it_accepted_after_restart,
    sigterm_lets_attempts_in_flight_finish_and_exits_cleanly,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_mariadb_deliver_2000_tasks_without_duplicates() {
    let db = Arc::new(TestDatabase::create(Backend::Mysql).await);
    let first = spawn_app_on(db.clone(), |_| {}).await;
    let second = spawn_app_on(db.clone(), |_| {}).await;
    let receiver = Arc::new(Receiver::start().await);
    let addresses = [first.address.clone(), second.address.clone()];
    let client = reqwest::Client::new();
    let mut submitters = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let client = client.clone();
        let address = addresses[worker % 2].clone();
        let url = receiver.url("/fanout");
        submitters.spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..125 {
                ids.push(submit(&client, &address, &json!({"url": url})).await);
            }
            ids
        });
    }
    let mut accepted = HashSet::new();
    while let Some(ids) = submitters.join_next().await {
        accepted.extend(ids.unwrap());
    }
    assert_eq!(accepted.len(), 2000);
    receiver.wait_for(2000, Duration::from_secs(120)).await;
    // Give a would-be duplicate time to arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counts = receiver.counts_by_task();
    let delivered: HashSet<String> = counts.keys().cloned().collect();
    assert_eq!(delivered, accepted, "every task delivered");
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "duplicates: {duplicates:?}");
    first.stop().await;
    second.stop().await;
}
