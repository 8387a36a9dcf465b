//! Property-based fuzzing of the whole API: schemathesis (installed by
//! `scripts/test`) generates requests for every operation of
//! `/api/v1/openapi.json`, valid and invalid, and sends them to the real
//! server. The suite fails on any 5xx, on a status the document does not
//! list, and on an answer whose body, content type or headers do not match
//! it. The server may call nothing but loopback: whatever URLs the
//! generator invents, nothing leaves the machine.

use crate::helpers::{spawn_app_with, TOKEN};
use callback_testkit::Backend;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_survives_generated_requests_and_answers_as_documented() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.outbound.allow_private = false;
        s.outbound.allow_cidrs = vec!["127.0.0.0/8".into(), "::1/128".into()];
        s.outbound.deny_cidrs = vec!["0.0.0.0/0".into(), "::/0".into()];
    })
    .await;
    // schemathesis keeps a cache where it runs: a directory of the test's.
    let workdir = crate::helpers::temp_dir();
    let run = tokio::process::Command::new("schemathesis")
        .current_dir(&workdir)
        .args([
            "run",
            &app.url("/api/v1/openapi.json"),
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,response_headers_conformance",
            "--max-examples",
            "30",
            "--workers",
            "2",
            "--request-timeout",
            "10",
            "--no-color",
            // A stream of attempts never ends on its own: every request
            // would wait for the timeout.
            "--exclude-path",
            "/api/v1/attempts/stream",
        ])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("schemathesis finishes within 10 minutes")
        .expect("schemathesis runs (scripts/test installs it from PyPI)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated: u64 = report
        .lines()
        .filter_map(|line| line.trim().split_once(" generated,"))
        .find_map(|(count, _)| count.parse().ok())
        .unwrap_or(0);
    assert!(
        generated >= 1_000,
        "schemathesis sent only {generated} requests:\n{report}"
    );
    let _ = std::fs::remove_dir_all(&workdir);
    app.stop().await;
}
