//! The deploy files, checked without a container engine: the Kubernetes
//! manifests validate against their schemas, the compose file and the
//! Prometheus and Grafana files parse (tests/interop/check_deploy.py), the
//! binary starts with the exact settings each of them gives it, and every
//! metric the dashboard and the alert rules query is one the server
//! exports.

use crate::helpers::{temp_dir, TOKEN};
use callback_testkit::{Backend, ServerProcess, TestDatabase, TestRedis};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

fn checked_deploy_files() -> Value {
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
    let output = crate::helpers::run_interop_script("check_deploy.py", &[deploy], b"");
    assert!(
        output.status.success(),
        "a deploy file is wrong: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_starts_with_the_settings_each_deploy_file_gives_it() {
    let checked = checked_deploy_files();
    let db = TestDatabase::create(Backend::Mysql).await;
    let redis = TestRedis::create().await;
    for source in ["k8s", "compose", "docker"] {
        let dir = temp_dir();
        // The settings as written, but for what names another machine or
        // a fixed port: the test's own database, Redis, directory and ports.
        let mut env: BTreeMap<String, String> =
            serde_json::from_value(checked[source].clone()).unwrap();
        for (key, value) in env.iter_mut() {
            match key.as_str() {
                "CBC__DATABASE__URL" if value.starts_with("mysql") => *value = db.url.clone(),
                "CBC__DATABASE__URL" => {
                    *value = format!("sqlite://{}/callback-center.db?mode=rwc", dir.display())
                }
                "CBC__REDIS__URL" => *value = redis.url.clone(),
                "CBC__SERVER__BIND" | "CBC__METRICS__BIND" => *value = "127.0.0.1:0".into(),
                "CBC__DATA__DIR" => *value = dir.display().to_string(),
                "CBC__AUTH__ADMIN_TOKEN" => *value = TOKEN.into(),
                _ => {}
            }
        }
        let mut env: Vec<(String, String)> = env.into_iter().collect();
        if source != "docker" {
            env.push(("CBC__REDIS__KEY_PREFIX".into(), redis.prefix.clone()));
        }
        let mut server = ServerProcess::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_callback-center")),
            &env,
        )
        .await;
        let client = reqwest::Client::new();
        for probe in ["/healthz", "/readyz"] {
            let response = client
                .get(format!("{}{probe}", server.address))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{source}: {probe}");
        }
        let ready: Value = client
            .get(format!("{}/readyz", server.address))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["status"], "ready", "{source}: {ready}");
        server.terminate(Duration::from_secs(15)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn every_metric_the_dashboard_and_alerts_use_is_exported() {
    use callback_core::{AttemptResult, Finish, Intake, Observe, ReceiverStatus};
    let checked = checked_deploy_files();
    // The server's own metrics with one series in every family (a family
    // without series is not written out).
    let metrics = callback_metrics::Metrics::new("test");
    metrics.accepted(Some("shop"), Intake::Api, 1);
    metrics.attempt(
        "endpoint:x",
        AttemptResult::Success,
        Duration::from_millis(5),
    );
    for finish in [Finish::Delivered, Finish::Failed, Finish::Cancelled] {
        metrics.finished(Some("shop"), finish, Duration::from_millis(5));
    }
    metrics.alert("dingtalk", true);
    metrics.inbound("wechat", true);
    metrics.set_receivers(&[ReceiverStatus {
        receiver: "endpoint:x".into(),
        breaker: "open",
        open_until: None,
        recent_failures: 90,
        recent_attempts: 100,
        failure_ratio: 0.9,
        openings_24h: 1,
        in_flight: 0,
    }]);
    let text = metrics.render();
    let families: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for metric in checked["metrics"].as_array().unwrap() {
        let metric = metric.as_str().unwrap();
        let family = ["_bucket", "_count", "_sum", "_total"]
            .iter()
            .find_map(|suffix| metric.strip_suffix(suffix))
            .unwrap_or(metric);
        assert!(
            families.contains(&family),
            "{metric} is queried but not exported; families: {families:?}"
        );
    }
}
