//! `/metrics` as Prometheus sees it: after a run of known tasks the counts
//! are exact, histograms add up, the backlog's lag rises while delivery is
//! behind and falls after, and the text parses with Prometheus' own client
//! library. Logs: JSON lines parse one by one; plain lines carry no colour
//! codes when written to a file. Traces: a submitter's `traceparent` reaches
//! the receiver as a span of the same trace.

use crate::helpers::{spawn_app_with, start_binary_logging_to, temp_dir, TestApp, TOKEN};
use callback_testkit::{Backend, Receiver, Reply, TestDatabase};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// One sample: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Scrapes `/metrics` and parses it with `prometheus_client` (Python), so a
/// text Prometheus could not read fails here.
async fn scrape(app: &TestApp) -> Vec<Sample> {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    parse(&response.text().await.unwrap())
}

fn parse(text: &str) -> Vec<Sample> {
    let output = crate::helpers::run_interop_script("parse_openmetrics.py", &[], text.as_bytes());
    assert!(
        output.status.success(),
        "the exposition does not parse: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Sample {
                name: v["name"].as_str().unwrap().to_string(),
                labels: serde_json::from_value(v["labels"].clone()).unwrap(),
                value: v["value"].as_f64().unwrap(),
            }
        })
        .collect()
}

/// The value of the sample named `name` whose labels include `labels`,
/// summed over the rest of its labels; 0 when there is none.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn wait_until_finished(app: &TestApp, ids: &[String]) {
    for id in ids {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let task = app.task(id).await;
            if ["succeeded", "failed"].contains(&task["status"].as_str().unwrap()) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{task:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn after_known_tasks_the_counts_are_exact_and_histograms_add_up(backend: Backend) {
    let ok = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.set_default(Reply::status(500));
    let hanging = Receiver::start().await;
    hanging.set_default(Reply::status(200).delay(Duration::from_secs(5)));
    let app = spawn_app_with(backend, |_| {}).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            app.submit(json!({"url": ok.url("/ok"), "source_app": "shop"}))
                .await,
        );
    }
    for _ in 0..2 {
        ids.push(
            app.submit(json!({
                "url": failing.url("/fail"), "source_app": "pay",
                "max_attempts": 2, "retry_delays_s": [1]
            }))
            .await,
        );
    }
    ids.push(
        app.submit(json!({
            "url": hanging.url("/slow"), "source_app": "slow",
            "max_attempts": 1, "timeout_ms": 300
        }))
        .await,
    );
    let (status, _) = app
        .send_json(
            "POST",
            "/api/v1/tasks/batch",
            &json!({"tasks": [{"url": ok.url("/b"), "source_app": "shop", "delay_s": 3600}]}),
        )
        .await;
    assert_eq!(status, 201);
    wait_until_finished(&app, &ids).await;

    let samples = scrape(&app).await;
    let accepted = "callback_tasks_accepted_total";
    assert_eq!(
        value(&samples, accepted, &[("app", "shop"), ("source", "api")]),
        3.0
    );
    assert_eq!(
        value(&samples, accepted, &[("app", "shop"), ("source", "batch")]),
        1.0
    );
    assert_eq!(value(&samples, accepted, &[("app", "pay")]), 2.0);
    assert_eq!(
        value(
            &samples,
            "callback_tasks_delivered_total",
            &[("app", "shop")]
        ),
        3.0
    );
    assert_eq!(
        value(&samples, "callback_tasks_failed_total", &[("app", "pay")]),
        2.0
    );
    assert_eq!(
        value(&samples, "callback_tasks_failed_total", &[("app", "slow")]),
        1.0
    );
    let attempts = "callback_delivery_attempts_total";
    assert_eq!(value(&samples, attempts, &[("outcome", "success")]), 3.0);
    assert_eq!(
        value(&samples, attempts, &[("outcome", "unexpected_answer")]),
        4.0
    );
    assert_eq!(value(&samples, attempts, &[("outcome", "timeout")]), 1.0);

    // Histograms: the +Inf bucket is the count, buckets never decrease.
    for (histogram, count) in [
        ("callback_delivery_attempt_duration_seconds", 8.0),
        ("callback_task_end_to_end_seconds", 3.0),
    ] {
        let total = value(&samples, &format!("{histogram}_count"), &[]);
        assert_eq!(total, count, "{histogram}");
        let inf = value(&samples, &format!("{histogram}_bucket"), &[("le", "+Inf")]);
        assert_eq!(inf, count, "{histogram}");
        let mut buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| s.name == format!("{histogram}_bucket"))
            .filter(|s| histogram.contains("end_to_end") || s.labels["outcome"] == "success")
            .map(|s| (s.labels["le"].parse::<f64>().unwrap(), s.value))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    }
    let timeouts = value(
        &samples,
        "callback_delivery_attempt_duration_seconds_sum",
        &[("outcome", "timeout")],
    );
    assert!(
        (0.3..5.0).contains(&timeouts),
        "the timed-out attempt took {timeouts} s"
    );
    assert_eq!(value(&samples, "callback_store_up", &[]), 1.0);
    assert_eq!(value(&samples, "callback_backlog_due_tasks", &[]), 0.0);
    assert_eq!(value(&samples, "callback_build_info", &[]), 1.0);
    app.stop().await;
}

async fn the_lag_rises_while_delivery_is_behind_and_falls_after(backend: Backend) {
    let slow = Receiver::start().await;
    slow.set_default(Reply::status(200).delay(Duration::from_millis(1500)));
    let app = spawn_app_with(backend, |s| {
        s.delivery.concurrency = 1;
        s.delivery.max_in_flight_per_receiver = 1;
    })
    .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            app.submit(json!({"url": slow.url("/slow"), "timeout_ms": 5000}))
                .await,
        );
    }
    let mut worst: f64 = 0.0;
    let mut in_flight: f64 = 0.0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        let samples = scrape(&app).await;
        worst = worst.max(value(
            &samples,
            "callback_backlog_oldest_due_age_seconds",
            &[],
        ));
        in_flight = in_flight.max(value(&samples, "callback_receiver_in_flight", &[]));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        in_flight, 1.0,
        "the slow receiver had its one attempt in flight"
    );
    assert!(
        worst >= 1.0,
        "the lag rose to {worst} s while one worker was busy"
    );
    wait_until_finished(&app, &ids).await;
    let samples = scrape(&app).await;
    assert_eq!(
        value(&samples, "callback_backlog_oldest_due_age_seconds", &[]),
        0.0
    );
    assert_eq!(value(&samples, "callback_backlog_due_tasks", &[]), 0.0);
    assert_eq!(
        value(&samples, "callback_receiver_in_flight", &[]),
        0.0,
        "idle again"
    );
    app.stop().await;
}

on_every_backend!(
    after_known_tasks_the_counts_are_exact_and_histograms_add_up,
    the_lag_rises_while_delivery_is_behind_and_falls_after,
    a_traceparent_reaches_the_receiver_as_a_new_span_of_the_same_trace,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_ask_for_a_token_and_have_an_address_of_their_own() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.metrics.token = Some(secrecy::SecretString::from("scrape-token".to_string()));
    })
    .await;
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("scrape-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;

    let db = TestDatabase::create(Backend::Sqlite).await;
    let dir = temp_dir();
    let mut settings = crate::helpers::test_settings(&db.url, &dir);
    settings.metrics.bind = "127.0.0.1:0".into();
    let application = callback_server::Application::build(settings).await.unwrap();
    let metrics = application.metrics_address().expect("a separate address");
    let api = application.address();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(application.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let there = client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(there.status(), 200);
    assert!(there.text().await.unwrap().contains("callback_build_info"));
    let not_here = client
        .get(format!("http://{api}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_here.status(), 404);
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_line_by_line_and_plain_logs_carry_no_colour_codes() {
    let receiver = Receiver::start().await;
    for format in ["json", "text"] {
        let db = TestDatabase::create(Backend::Sqlite).await;
        let dir = temp_dir();
        let log = dir.join("server.log");
        let mut server = start_binary_logging_to(
            &db,
            &dir,
            &[("CBC__LOG__FORMAT", format), ("CBC__LOG__LEVEL", "debug")],
            &log,
        )
        .await;
        let client = reqwest::Client::new();
        let id = crate::helpers::submit_to(
            &client,
            &server.address,
            &json!({"url": receiver.url("/logged")}),
        )
        .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let task: Value = client
                .get(format!("{}/api/v1/tasks/{id}", server.address))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if task["status"] == "succeeded" {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{task}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.terminate(Duration::from_secs(10)).await;
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(
            !logged.contains('\u{1b}'),
            "{format}: colour codes in a file:\n{logged}"
        );
        assert!(
            logged.contains(&id),
            "{format}: the attempt is logged at debug"
        );
        if format == "json" {
            let mut about_the_task = 0;
            for line in logged.lines() {
                let entry: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                assert!(
                    entry["timestamp"].is_string() && entry["level"].is_string(),
                    "{line}"
                );
                if entry["task_id"] == id.as_str() {
                    about_the_task += 1;
                }
            }
            assert!(
                about_the_task >= 1,
                "task_id is a field of its own:\n{logged}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

async fn a_traceparent_reaches_the_receiver_as_a_new_span_of_the_same_trace(backend: Backend) {
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500)]);
    receiver.set_default(Reply::status(200));
    let app = spawn_app_with(backend, |_| {}).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = app
        .client
        .post(app.url("/api/v1/tasks"))
        .bearer_auth(TOKEN)
        .header("traceparent", parent)
        .json(&json!({"url": receiver.url("/traced"), "retry_delays_s": [1]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let task: Value = response.json().await.unwrap();
    assert_eq!(task["traceparent"], parent, "kept with the task");
    let id = task["task_id"].as_str().unwrap();
    app.wait_for_status(id, "succeeded", Duration::from_secs(15))
        .await;
    let got = receiver.requests();
    assert_eq!(got.len(), 2);
    let spans: Vec<&str> = got
        .iter()
        .map(|r| r.header("traceparent").expect("a traceparent"))
        .collect();
    for span in &spans {
        let parts: Vec<&str> = span.split('-').collect();
        assert_eq!(parts.len(), 4, "{span}");
        assert_eq!(
            parts[1], "4bf92f3577b34da6a3ce929d0e0e4736",
            "the same trace"
        );
        assert_ne!(parts[2], "00f067aa0ba902b7", "a span of its own");
        assert_eq!(parts[3], "01");
    }
    assert_ne!(spans[0], spans[1], "one span per attempt");

    // A malformed traceparent is ignored, as the W3C text asks.
    let response = app
        .client
        .post(app.url("/api/v1/tasks"))
        .bearer_auth(TOKEN)
        .header("traceparent", "not-a-trace")
        .json(&json!({"url": receiver.url("/untraced")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let task: Value = response.json().await.unwrap();
    assert_eq!(task["traceparent"], Value::Null);
    app.stop().await;
}

/// The spans a fake collector got over OTLP/HTTP JSON, from every export.
#[cfg(feature = "otlp")]
fn exported_spans(collector: &Receiver) -> Vec<Value> {
    collector
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/traces")
        .flat_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).expect("OTLP JSON");
            let mut spans = Vec::new();
            for resource in body["resourceSpans"].as_array().into_iter().flatten() {
                let service = resource["resource"]["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["key"] == "service.name")
                    .map(|a| a["value"]["stringValue"].clone());
                assert_eq!(service, Some(json!("callback-center")));
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    spans.extend(scope["spans"].as_array().into_iter().flatten().cloned());
                }
            }
            spans
        })
        .collect()
}

#[cfg(feature = "otlp")]
fn span_attribute(span: &Value, key: &str) -> Value {
    let attribute = span["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {span:#}"));
    let value = &attribute["value"];
    value
        .get("stringValue")
        .or_else(|| value.get("intValue"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// With export on, a collector gets one span per attempt of a traced
/// task: the trace the submitter gave, the submitter's span as parent, the
/// very span id the receiver saw in its traceparent, and how the attempt
/// went. A task without a traceparent exports nothing.
#[cfg(feature = "otlp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_of_a_traced_task_reaches_the_collector_as_the_span_the_receiver_saw() {
    let collector = Receiver::start().await;
    collector.set_default(Reply::status(200).body("{}"));
    let endpoint = collector.url("");
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500)]);
    receiver.set_default(Reply::status(200));
    let app = spawn_app_with(Backend::Mysql, move |s| {
        s.otlp.endpoint = endpoint;
        s.otlp.interval_ms = 100;
    })
    .await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = app
        .client
        .post(app.url("/api/v1/tasks"))
        .bearer_auth(TOKEN)
        .header("traceparent", parent)
        .json(&json!({"url": receiver.url("/traced?access_token=robot-secret"), "retry_delays_s": [1]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.wait_for_status(&id, "succeeded", Duration::from_secs(15))
        .await;
    let untraced = app.submit(json!({"url": receiver.url("/untraced")})).await;
    app.wait_for_status(&untraced, "succeeded", Duration::from_secs(15))
        .await;
    let seen: Vec<String> = receiver
        .requests()
        .iter()
        .filter(|r| r.path == "/traced")
        .map(|r| {
            r.header("traceparent")
                .unwrap()
                .split('-')
                .nth(2)
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(seen.len(), 2);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut spans = exported_spans(&collector);
    while spans.len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        spans = exported_spans(&collector);
    }
    assert_eq!(
        spans.len(),
        2,
        "one span per traced attempt, none for the untraced task: {spans:#?}"
    );
    spans.sort_by_key(|s| {
        span_attribute(s, "callback.attempt")
            .as_str()
            .map(str::to_string)
    });
    for (span, sent) in spans.iter().zip(&seen) {
        assert_eq!(
            span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736",
            "{span:#}"
        );
        assert_eq!(span["parentSpanId"], "00f067aa0ba902b7", "{span:#}");
        assert_eq!(span["spanId"].as_str(), Some(sent.as_str()), "{span:#}");
        assert_eq!(span["name"], "POST");
        assert_eq!(span["kind"], 3, "a client span");
        assert_eq!(span_attribute(span, "callback.task_id"), json!(id));
        let url = span_attribute(span, "url.full");
        assert!(!url.to_string().contains("robot-secret"), "{url}");
    }
    assert_eq!(
        span_attribute(&spans[0], "http.response.status_code"),
        json!("500")
    );
    assert_eq!(spans[0]["status"]["code"], 2, "an error: {:#}", spans[0]);
    assert_eq!(
        span_attribute(&spans[1], "http.response.status_code"),
        json!("200")
    );
    assert_eq!(
        span_attribute(&spans[1], "callback.outcome"),
        json!("success")
    );
    app.stop().await;
}
