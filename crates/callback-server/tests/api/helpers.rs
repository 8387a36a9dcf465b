//! `spawn_app`: the application built exactly as `main` builds it, on port
//! 0, with its own database, plus one helper per endpoint.

use callback_server::{Application, Settings};
use callback_testkit::{Backend, ServerProcess, TestDatabase};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;

pub const TOKEN: &str = "test-admin-token";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub db: std::sync::Arc<TestDatabase>,
    data_dir: PathBuf,
}

/// Settings for a test server: fast reconciler, short leases.
pub fn test_settings(database_url: &str, data_dir: &std::path::Path) -> Settings {
    let mut s = Settings::defaults().unwrap();
    s.server.bind = "127.0.0.1:0".into();
    s.server.workers = 2;
    s.server.shutdown_grace_ms = 2_000;
    s.database.url = SecretString::from(database_url.to_string());
    s.database.max_connections = 8;
    s.auth.admin_token = Some(SecretString::from(TOKEN.to_string()));
    s.data.dir = data_dir.to_path_buf();
    s.delivery.reconcile_interval_ms = 200;
    s.delivery.lease_margin_ms = 2_000;
    s
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let db = std::sync::Arc::new(TestDatabase::create(backend).await);
    spawn_app_on(db, tweak).await
}

/// Another instance on the same database.
pub async fn spawn_app_on(
    db: std::sync::Arc<TestDatabase>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let data_dir = std::env::temp_dir().join(format!("cbc-data-{}", uuid::Uuid::new_v4()));
    let mut settings = test_settings(&db.url, &data_dir);
    tweak(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("application builds");
    let address = format!("http://{}", app.address());
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::new(),
        stop: Some(stop),
        running: Some(running),
        db,
        data_dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_task(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/tasks"))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Submits a task that must be accepted; returns its id.
    pub async fn submit(&self, body: Value) -> String {
        submit_to(&self.client, &self.address, &body).await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    pub async fn send_json(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let (status, body, _) = self.send_as(TOKEN, method, path, Some(body)).await;
        (status, body)
    }

    /// Sends a request with `token` as the bearer (a key, or the admin
    /// token); returns the status, the JSON body (Null if none) and the
    /// headers.
    pub async fn send_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        )
    }

    /// `/metrics` as scraped now, as text.
    pub async fn metrics_text(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// Creates an API key that must be accepted; returns its id and secret.
    pub async fn create_key(&self, body: Value) -> (String, String) {
        let (status, view) = self.send_json("POST", "/api/v1/keys", &body).await;
        assert_eq!(status, 201, "create key: {view:#}");
        (
            view["id"].as_str().unwrap().to_string(),
            view["key"].as_str().unwrap().to_string(),
        )
    }

    /// Creates an endpoint that must be accepted; returns its view (with
    /// the secret).
    pub async fn create_endpoint(&self, body: Value) -> Value {
        let (status, view) = self.send_json("POST", "/api/v1/endpoints", &body).await;
        assert_eq!(status, 201, "create endpoint: {view:#}");
        view
    }

    /// POSTs `json` as written, byte for byte (not re-serialized as
    /// `send_json` does); returns the answer's status and body.
    pub async fn post_raw_json(&self, path: &str, json: String) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(json)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Publishes an event; returns the answer's status and body.
    pub async fn publish(&self, body: Value) -> (u16, Value) {
        self.send_json("POST", "/api/v1/events", &body).await
    }

    /// The failed buckets listed now, as the API answers them.
    pub async fn failed_buckets(&self) -> Value {
        let response = self.get("/api/v1/failed-buckets").await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn task(&self, id: &str) -> Value {
        let response = self.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Polls the task until it reaches `status`; panics with its last state
    /// otherwise.
    pub async fn wait_for_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let task = self.task(id).await;
            if task["status"] == status {
                return task;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("task {id} did not become {status} within {timeout:?}: {task:#}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A URL on which nothing listens.
pub fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/gone")
}

pub fn fast_task(url: &str) -> Value {
    json!({"url": url, "retry_delays_s": [1], "max_attempts": 3})
}

/// Starts the real binary on the database with these extra environment
/// variables, and returns once it listens.
pub async fn start_binary_with(
    db: &TestDatabase,
    data_dir: &std::path::Path,
    extra_env: &[(&str, &str)],
) -> ServerProcess {
    ServerProcess::start(&binary(), &binary_env(db, data_dir, extra_env)).await
}

/// As `start_binary_with`, with the server's log written to `log_file`.
pub async fn start_binary_logging_to(
    db: &TestDatabase,
    data_dir: &std::path::Path,
    extra_env: &[(&str, &str)],
    log_file: &std::path::Path,
) -> ServerProcess {
    let env = binary_env(db, data_dir, extra_env);
    ServerProcess::start_logging_to(&binary(), &env, log_file).await
}

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_callback-center"))
}

fn binary_env(
    db: &TestDatabase,
    data_dir: &std::path::Path,
    extra_env: &[(&str, &str)],
) -> Vec<(String, String)> {
    let data_dir = data_dir.display().to_string();
    [
        ("CBC__DATABASE__URL", db.url.as_str()),
        ("CBC__AUTH__ADMIN_TOKEN", TOKEN),
        ("CBC__DATA__DIR", &data_dir),
        ("CBC__DELIVERY__LEASE_MARGIN_MS", "1000"),
        ("CBC__DELIVERY__RECONCILE_INTERVAL_MS", "200"),
        ("CBC__SERVER__SHUTDOWN_GRACE_MS", "5000"),
        ("CBC__LOG__LEVEL", "warn"),
    ]
    .iter()
    .chain(extra_env)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Submits a task that must be accepted; returns its id.
pub async fn submit_to(client: &reqwest::Client, address: &str, body: &Value) -> String {
    let response = client
        .post(format!("{address}/api/v1/tasks"))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 201, "submit failed: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["task_id"].as_str().unwrap().to_string()
}

/// The task ids of a batch answer (`POST /api/v1/tasks/batch`), in order.
pub fn batch_ids(answer: &Value) -> Vec<String> {
    answer["tasks"]
        .as_array()
        .expect("a batch answer lists its tasks")
        .iter()
        .map(|t| t["task_id"].as_str().unwrap().to_string())
        .collect()
}

/// The fields a validation problem names, in order; none for another problem.
pub fn problem_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().expect("a field name").to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cbc-binary-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `tests/interop/{script}` with python3, `input` on its stdin, and
/// returns what it did. The scripts use reference libraries from PyPI,
/// which `scripts/test` installs.
pub fn run_interop_script(script: &str, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let path = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new("python3")
        .arg(&path)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("python3 runs {path} (scripts/test installs its libraries): {e}")
        });
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input)
        .expect("the script reads its input");
    child.wait_with_output().expect("the script ends")
}
