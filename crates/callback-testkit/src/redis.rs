//! Redis for tests: a private key prefix on the shared server (deleted when
//! the test ends), or a private `redis-server` process on its own port that
//! a test may flush, stop and start again without touching anyone else's.

use deadpool_redis::redis;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared Redis server the suites use: `CBC_TEST_REDIS_URL`, default the
/// local server.
pub fn redis_server_url() -> String {
    std::env::var("CBC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Sends one command; panics with the server's answer if it fails.
pub async fn redis_command<T: redis::FromRedisValue>(url: &str, args: &[&str]) -> T {
    let client = redis::Client::open(url).unwrap_or_else(|e| panic!("bad Redis URL {url}: {e}"));
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| {
            panic!("Redis at {url} is unreachable ({e}); start it with scripts/test")
        });
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("Redis {args:?} failed: {e}"))
}

/// A key prefix of its own on the shared server; its keys are deleted on
/// drop. Creating one fails the test when the server is unreachable.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    pub async fn create() -> Self {
        let url = redis_server_url();
        let pong: String = redis_command(&url, &["PING"]).await;
        assert_eq!(pong, "PONG");
        let prefix = format!(
            "cbc-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..16]
        );
        Self { url, prefix }
    }

    /// Members of `{prefix}:due`, or of `{prefix}:inflight`.
    pub async fn members(&self, set: &str) -> Vec<String> {
        let key = format!("{{{}}}:{set}", self.prefix);
        redis_command(&self.url, &["ZRANGE", &key, "0", "-1"]).await
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        // Drop runs inside the test's runtime, which cannot block on itself.
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(url) else {
                return;
            };
            if let Ok(mut conn) = client.get_connection() {
                let keys = [
                    format!("{{{prefix}}}:due"),
                    format!("{{{prefix}}}:inflight"),
                    format!("{{{prefix}}}:breakers"),
                ];
                let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&keys).query(&mut conn);
            }
        })
        .join();
    }
}

/// A `redis-server` of the test's own on a free port, keeping nothing on
/// disk. Killed on drop.
pub struct PrivateRedis {
    pub port: u16,
    process: Option<Child>,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        let port = free_port();
        let mut redis = Self {
            port,
            process: None,
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port (it comes back empty).
    pub async fn restart(&mut self) {
        assert!(self.process.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        self.process = Some(child);
        wait_until_listening(self.port, Duration::from_secs(10)).await;
    }

    /// Kills the server; its port refuses connections until `restart`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing is
    /// answered, as with a hung server, until `resume`.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.process.as_ref().expect("running").id();
        let sent = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {signal} {pid}");
    }

    pub async fn flushall(&self) {
        let ok: String = redis_command(&self.url(), &["FLUSHALL"]).await;
        assert_eq!(ok, "OK");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// Waits until something accepts connections on the port; panics after
/// `timeout`.
pub async fn wait_until_listening(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "nothing listens on port {port} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Redis Cluster of three primaries of the test's own, on free ports,
/// keeping nothing on disk but their cluster state. Killed on drop.
pub struct PrivateRedisCluster {
    pub ports: Vec<u16>,
    dir: std::path::PathBuf,
    processes: Vec<Child>,
}

impl PrivateRedisCluster {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("cbc-cluster-{}", uuid::Uuid::new_v4()));
        let mut cluster = Self {
            ports: Vec::new(),
            dir,
            processes: Vec::new(),
        };
        for _ in 0..3 {
            let (port, child) = start_cluster_node(&cluster.dir).await;
            cluster.processes.push(child);
            cluster.ports.push(port);
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .expect("redis-cli is installed");
        assert!(created.success(), "redis-cli --cluster create failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        for url in cluster.urls() {
            loop {
                let info: String = redis_command(&url, &["CLUSTER", "INFO"]).await;
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster never became ok: {info}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        cluster
    }

    /// One URL per node, to seed a cluster client.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }
}

/// Starts one cluster node on a free port. A port found free can be taken
/// (by another test's connection) before redis-server binds it; the server
/// then exits at once, and another port is tried.
async fn start_cluster_node(dir: &std::path::Path) -> (u16, Child) {
    for _ in 0..5 {
        let port = free_port();
        let node_dir = dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).expect("create the node directory");
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        if listening_unless_exited(&mut child, port, Duration::from_secs(10)).await {
            return (port, child);
        }
    }
    panic!("redis-server exited on each of 5 free ports");
}

/// Waits until something accepts connections on the port and `child` is
/// still running (`true`), or `child` has exited (`false`); panics after
/// `timeout`.
async fn listening_unless_exited(child: &mut Child, port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let listening = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok();
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if listening {
            return true;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on port {port} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for PrivateRedisCluster {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
