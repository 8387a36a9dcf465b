//! The Rust client (`callback-client`) against the real server: every
//! operation the server documents is one the client knows, submits are
//! safe to retry, waiting and paging work, errors carry the API's codes,
//! and the receiver-side checks accept what the server signs.

use crate::helpers::{spawn_app, TestApp, TOKEN};
use callback_client::verify::{verify_md5_legacy, verify_standard, StandardHeaders};
use callback_client::{Client, Error, NewEndpoint, NewEvent, NewTask, RetryPolicy, TaskFilter};
use callback_testkit::{Backend, Receiver, Reply};
use futures_util::TryStreamExt;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn client(app: &TestApp) -> Client {
    Client::new(&app.address, TOKEN).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_knows_exactly_the_operations_the_server_documents() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let known: BTreeSet<(String, String)> = callback_client::ops::ALL
        .iter()
        .map(|op| (op.method.to_string(), op.path.to_string()))
        .collect();
    assert_eq!(
        documented.difference(&known).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "operations the client lacks"
    );
    assert_eq!(
        known.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "operations the server does not document"
    );
    app.stop().await;
}

async fn a_task_is_submitted_waited_for_and_paged_through(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = client(&app);
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200));
    let task = NewTask::post(receiver.url("/paid"))
        .json(&json!({"order": 42}))
        .source_app("shop-client-test");
    let submitted = client.submit(&task).await.unwrap();
    assert!(submitted.created);
    let key = submitted
        .task
        .idempotency_key
        .clone()
        .expect("a key was generated");
    assert!(key.starts_with("cbc-client-"), "{key}");
    let done = client
        .wait_for(
            &submitted.task.task_id,
            &["succeeded"],
            Duration::from_secs(15),
        )
        .await
        .unwrap();
    assert_eq!(done.attempts.as_ref().map(Vec::len), Some(1));
    assert_eq!(receiver.requests()[0].body, br#"{"order":42}"#);

    // The same key again: the same task, nothing new.
    let again = client
        .submit(&task.clone().idempotency_key(&key))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.task.task_id, submitted.task.task_id);

    for _ in 0..4 {
        client.submit(&task).await.unwrap();
    }
    let filter = TaskFilter {
        source_app: Some("shop-client-test".into()),
        limit: Some(2),
        ..TaskFilter::default()
    };
    let all: Vec<_> = client.tasks_stream(filter).try_collect().await.unwrap();
    assert_eq!(all.len(), 5, "three pages of two, read as one stream");
    let distinct: BTreeSet<_> = all.iter().map(|t| t.task_id.clone()).collect();
    assert_eq!(distinct.len(), 5);

    let timed_out = client
        .wait_for(&all[0].task_id, &["cancelled"], Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(timed_out, Error::WaitTimedOut { .. }),
        "{timed_out}"
    );
    app.stop().await;
}

async fn errors_carry_the_apis_status_and_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = client(&app)
        .task("01a24221-78fd-7418-829d-bca9228a6d2d")
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404));
    assert_eq!(missing.code(), Some("not_found"));
    let invalid = client(&app)
        .submit(&NewTask::post("not a url"))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Some("validation_failed"), "{invalid}");
    let Error::Api { problem } = &invalid else {
        panic!("{invalid:?}")
    };
    assert_eq!(problem.errors[0].field, "url");
    let stranger = Client::new(&app.address, "cbk_not-a-key").unwrap();
    assert_eq!(stranger.keys().await.unwrap_err().status(), Some(401));
    app.stop().await;
}

/// The client's ordering fields reach the server, and its task view shows
/// what a task waits for.
async fn tasks_of_an_ordering_key_arrive_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = client(&app);
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200));
    // The first answers late, so that the second surely still waits when
    // looked at.
    receiver.script([Reply::status(200).delay(Duration::from_secs(1))]);
    let mut ids = Vec::new();
    for n in 0..3 {
        let task = NewTask::post(receiver.url("/orders"))
            .json(&json!({"n": n}))
            .ordering_key("order-7")
            .on_failure("skip");
        ids.push(client.submit(&task).await.unwrap().task.task_id);
    }
    let second = client.task(&ids[1]).await.unwrap();
    assert_eq!(second.status, "waiting");
    assert_eq!(second.ordering_key.as_deref(), Some("order-7"));
    assert_eq!(second.on_failure.as_deref(), Some("skip"));
    assert_eq!(second.waiting_for.as_deref(), Some(ids[0].as_str()));
    client
        .wait_for(&ids[2], &["succeeded"], Duration::from_secs(15))
        .await
        .unwrap();
    let bodies: Vec<Vec<u8>> = receiver.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(
        bodies,
        vec![
            br#"{"n":0}"#.to_vec(),
            br#"{"n":1}"#.to_vec(),
            br#"{"n":2}"#.to_vec()
        ]
    );
    app.stop().await;
}

on_every_backend!(
    a_task_is_submitted_waited_for_and_paged_through,
    errors_carry_the_apis_status_and_code,
    tasks_of_an_ordering_key_arrive_in_order,
);

/// A proxy that lets the first request reach the server, waits for the
/// server's answer, and hangs up on the client without passing it on:
/// the task is stored, but the client cannot know. Later connections pass.
async fn dropping_proxy(upstream: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let mut server = TcpStream::connect(&upstream).await.unwrap();
            if std::mem::take(&mut first) {
                tokio::spawn(async move {
                    let mut request = vec![0u8; 64 * 1024];
                    let n = client.read(&mut request).await.unwrap();
                    server.write_all(&request[..n]).await.unwrap();
                    let mut answer = [0u8; 1];
                    // One byte of the answer: the server has committed.
                    let _ = server.read(&mut answer).await;
                    drop(client);
                });
            } else {
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        }
    });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_retried_after_the_connection_dropped_creates_one_task() {
    let app = spawn_app(Backend::Mysql).await;
    let proxy = dropping_proxy(app.address.trim_start_matches("http://").to_string()).await;
    let client = Client::new(&proxy, TOKEN).unwrap();
    let receiver = Receiver::start().await;
    let submitted = client
        .submit(&NewTask::post(receiver.url("/once")).source_app("dropped-connection"))
        .await
        .unwrap();
    assert!(
        !submitted.created,
        "the retry found the task the first try stored"
    );
    let (_, listed) = app
        .send_json(
            "GET",
            "/api/v1/tasks?source_app=dropped-connection",
            &json!(null),
        )
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed:#}");
    app.stop().await;
}

#[tokio::test]
async fn a_server_that_cannot_be_reached_is_retried_until_the_deadline() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let client = Client::builder(&address)
        .token(TOKEN)
        .retry(RetryPolicy {
            deadline: Duration::from_millis(800),
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
        })
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let error = client.health().await.unwrap_err();
    let Error::GaveUp { attempts, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(*attempts >= 3, "{error}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_verify_what_the_server_signs_with_the_clients_helpers() {
    let app = spawn_app(Backend::Sqlite).await;
    let client = client(&app);
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200));
    let standard = client
        .create_endpoint(&NewEndpoint {
            name: "signed_standard".into(),
            url: receiver.url("/standard"),
            event_types: Some(vec!["order.paid".into()]),
            ..NewEndpoint::default()
        })
        .await
        .unwrap();
    let legacy = client
        .create_endpoint(&NewEndpoint {
            name: "signed_legacy".into(),
            url: receiver.url("/legacy"),
            event_types: Some(vec!["order.paid".into()]),
            signature: Some("md5_legacy".into()),
            secret: Some("legacy-secret-42".into()),
            ..NewEndpoint::default()
        })
        .await
        .unwrap();
    let published = client
        .publish(&NewEvent {
            event_type: "order.paid".into(),
            payload: json!({"order": 7}),
            ..NewEvent::default()
        })
        .await
        .unwrap();
    assert_eq!(published.task_ids.len(), 2);
    let got = receiver.wait_for(2, Duration::from_secs(15)).await;
    let at = |path: &str| got.iter().find(|r| r.path == path).unwrap().clone();
    let signed = at("/standard");
    let headers = StandardHeaders {
        id: signed.header("webhook-id").unwrap(),
        timestamp: signed.header("webhook-timestamp").unwrap(),
        signature: signed.header("webhook-signature").unwrap(),
    };
    let secret = standard.secret.expect("shown on creation");
    assert_eq!(
        verify_standard(&secret, &headers, &signed.body, chrono::Utc::now()),
        Ok(())
    );
    let mut tampered = signed.body.clone();
    tampered.push(b' ');
    assert!(verify_standard(&secret, &headers, &tampered, chrono::Utc::now()).is_err());
    assert_eq!(legacy.signature, "md5_legacy");
    assert_eq!(
        verify_md5_legacy("legacy-secret-42", &at("/legacy").body),
        Ok(())
    );
    assert!(verify_md5_legacy("another-secret-1", &at("/legacy").body).is_err());
    app.stop().await;
}

/// A tail opened before a task shows its attempt, and only the attempts
/// its filter asks for; an application's key sees only its application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_shows_each_new_attempt_as_it_happens() {
    use callback_client::{TailEvent, TailFilter};
    use futures_util::StreamExt;
    let app = spawn_app(Backend::Mysql).await;
    let client = client(&app);
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(200));
    let filter = TailFilter {
        app: Some("tailed".into()),
        ..TailFilter::default()
    };
    let mut tail = std::pin::pin!(client.tail(&filter).await.unwrap());
    client
        .submit(&NewTask::post(receiver.url("/other")).source_app("not-tailed"))
        .await
        .unwrap();
    let shown = client
        .submit(&NewTask::post(receiver.url("/tailed")).source_app("tailed"))
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(15), tail.next())
        .await
        .expect("an attempt within 15 s")
        .expect("the stream stays open")
        .unwrap();
    let TailEvent::Attempt(attempt) = event else {
        panic!("{event:?}")
    };
    assert_eq!(
        attempt.task_id, shown.task.task_id,
        "the other app's attempt is filtered out"
    );
    assert_eq!(attempt.outcome, "success");
    assert_eq!(attempt.status_code, Some(200));
    assert_eq!(attempt.app.as_deref(), Some("tailed"));

    let (_, key) = app
        .create_key(json!({"name": "shop-tail", "scopes": ["tasks:read"], "app": "shop"}))
        .await;
    let shop = Client::new(&app.address, key).unwrap();
    let other = TailFilter {
        app: Some("tailed".into()),
        ..TailFilter::default()
    };
    let refused = shop
        .tail(&other)
        .await
        .err()
        .expect("another application's attempts");
    assert_eq!(refused.status(), Some(403));
    app.stop().await;
}
