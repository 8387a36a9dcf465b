//! The binary under real faults: SIGKILL mid-run, SIGTERM with attempts in
//! flight, and two instances sharing one database.

use crate::helpers::{spawn_app_on, start_binary_with, submit_to as submit, temp_dir, TOKEN};
use callback_testkit::{Backend, Receiver, Reply, ServerProcess, TestDatabase};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Starts the real binary on the database and returns once it listens.
async fn start_binary(db: &TestDatabase, data_dir: &std::path::Path) -> ServerProcess {
    start_binary_with(db, data_dir, &[]).await
}

/// Submits `count` tasks from 8 concurrent clients; returns their ids.
async fn submit_many(
    client: &reqwest::Client,
    address: &str,
    count: usize,
    task: Value,
) -> Vec<String> {
    let mut submitters = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, address, task) = (client.clone(), address.to_string(), task.clone());
        submitters.spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..count / 8 {
                ids.push(submit(&client, &address, &task).await);
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(batch) = submitters.join_next().await {
        ids.extend(batch.unwrap());
    }
    ids
}

/// How many tasks are in `status`, counted through the paginated listing.
async fn count_in_status(client: &reqwest::Client, address: &str, status: &str) -> usize {
    let mut count = 0;
    let mut cursor = String::new();
    loop {
        let page: Value = client
            .get(format!(
                "{address}/api/v1/tasks?status={status}&limit=200{cursor}"
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        count += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return count,
        }
    }
}

async fn killed_server_delivers_everything_it_accepted_after_restart(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let data_dir = temp_dir();
    let receiver = Receiver::start().await;
    // Answers take a second, so attempts are in flight when the kill lands.
    receiver.set_default(Reply::status(200).delay(Duration::from_secs(1)));
    let client = reqwest::Client::new();

    let mut server = start_binary(&db, &data_dir).await;
    let task = json!({"url": receiver.url("/t"), "timeout_ms": 5000, "retry_delays_s": [1]});
    let accepted = submit_many(&client, &server.address, 304, task).await;
    server.kill().await; // SIGKILL
    let requests_at_kill = receiver.requests().len();

    let restarted = start_binary(&db, &data_dir).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while count_in_status(&client, &restarted.address, "succeeded").await < accepted.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every accepted task succeeded after the restart"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let counts = receiver.counts_by_task();
    let missing = accepted
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .count();
    let duplicates: usize = counts.values().map(|n| n.saturating_sub(1)).sum();
    eprintln!(
        "kill -9: accepted {}, requests before the kill {requests_at_kill}, missing {missing}, duplicates {duplicates}",
        accepted.len()
    );
    assert_eq!(missing, 0, "every accepted task reached the receiver");
    assert!(
        receiver.requests().len() > requests_at_kill,
        "the restarted server delivered what the killed one left"
    );
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
    let exit = server.terminate(Duration::from_secs(15)).await;
    assert!(exit.success(), "exit status {exit:?}");

    // The attempt in flight finished and was recorded before the exit.
    let restarted = start_binary(&db, &data_dir).await;
    let task = get_task(&client, &restarted.address, &id).await;
    assert_eq!(task["status"], "succeeded", "{task:#}");
    assert_eq!(receiver.requests().len(), 1);
    let _ = std::fs::remove_dir_all(&data_dir);
}

async fn get_task(client: &reqwest::Client, address: &str, id: &str) -> Value {
    client
        .get(format!("{address}/api/v1/tasks/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn sigterm_past_the_grace_releases_leases_for_the_next_start(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let data_dir = temp_dir();
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(200).delay(Duration::from_secs(30))]);
    let client = reqwest::Client::new();
    let grace = [("CBC__SERVER__SHUTDOWN_GRACE_MS", "500")];
    let mut server = start_binary_with(&db, &data_dir, &grace).await;
    // A 60 s timeout means a 61 s lease: only a released lease lets the
    // next start deliver the task soon.
    let id = submit(
        &client,
        &server.address,
        &json!({"url": receiver.url("/hang"), "timeout_ms": 60000}),
    )
    .await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let exit = server.terminate(Duration::from_secs(15)).await;
    assert!(exit.success(), "exit status {exit:?}");

    let restarted = start_binary_with(&db, &data_dir, &grace).await;
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        got.len(),
        2,
        "the released task is delivered by the next start"
    );
    assert_eq!(got[1].task_id(), id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let task = get_task(&client, &restarted.address, &id).await;
        if task["status"] == "succeeded" {
            let attempts = task["attempts"].as_array().unwrap();
            assert_eq!(attempts.len(), 2, "the interrupted attempt is recorded too");
            assert!(attempts[0]["error"]
                .as_str()
                .unwrap()
                .contains("interrupted by shutdown"));
            assert_eq!(attempts[1]["number"], 2);
            assert_eq!(attempts[1]["success"], true);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{task:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(&data_dir);
}

on_every_backend!(
    killed_server_delivers_everything_it_accepted_after_restart,
    sigterm_lets_attempts_in_flight_finish_and_exits_cleanly,
    sigterm_past_the_grace_releases_leases_for_the_next_start,
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
