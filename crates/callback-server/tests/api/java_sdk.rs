//! The Java SDK (`sdk/java`): its JUnit suite runs with Maven against this
//! server, on MariaDB. A failing Java test fails this one, with Maven's
//! report.

use crate::helpers::{spawn_app, TOKEN};
use callback_testkit::Backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_java_sdks_junit_suite_passes_against_the_real_server() {
    let app = spawn_app(Backend::Mysql).await;
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/java");
    let output = tokio::process::Command::new("mvn")
        .args(["-q", "-B", "-s", "settings.xml", "verify"])
        .current_dir(&sdk)
        .env("CBC_URL", &app.address)
        .env("CBC_TOKEN", TOKEN)
        .output()
        .await
        .unwrap_or_else(|e| panic!("mvn runs (scripts/test installs Java and Maven): {e}"));
    let reports = std::fs::read_dir(sdk.join("target/surefire-reports"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|f| f.path().extension().is_some_and(|e| e == "txt"))
                .filter_map(|f| std::fs::read_to_string(f.path()).ok())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    assert!(
        output.status.success(),
        "mvn verify failed\nstdout:\n{}\nstderr:\n{}\nreports:\n{reports}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The report's summary line: some tests ran, none failed or was skipped.
    let summary = reports
        .lines()
        .find(|l| l.starts_with("Tests run:"))
        .unwrap_or_else(|| panic!("no JUnit report: {reports}"));
    assert!(!summary.starts_with("Tests run: 0,"), "{summary}");
    assert!(
        summary.contains("Failures: 0, Errors: 0, Skipped: 0"),
        "{summary}"
    );
    app.stop().await;
}
