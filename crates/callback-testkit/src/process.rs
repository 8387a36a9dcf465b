//! Real processes for fault tests: the `callback-center` binary, which a
//! test may kill with SIGKILL, and a MariaDB server of the test's own, which
//! it may stop and start again without touching the shared one.

use crate::redis::{free_port, wait_until_listening};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `callback-center` process. Killed on drop.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub address: String,
}

impl ServerProcess {
    /// Starts `binary` with these environment variables (on top of the
    /// caller's) and returns once it prints where it listens.
    pub async fn start(binary: &Path, env: &[(String, String)]) -> Self {
        Self::spawn(binary, env, Stdio::inherit()).await
    }

    /// As [`start`](Self::start), with the server's log (its stderr)
    /// written to `log_file`, for tests that read what it logged.
    pub async fn start_logging_to(
        binary: &Path,
        env: &[(String, String)],
        log_file: &Path,
    ) -> Self {
        let file = std::fs::File::create(log_file)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_file.display()));
        Self::spawn(binary, env, Stdio::from(file)).await
    }

    async fn spawn(binary: &Path, env: &[(String, String)], stderr: Stdio) -> Self {
        let mut child = Command::new(binary)
            .env("CBC__SERVER__BIND", "127.0.0.1:0")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let address = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("the server starts within 30 s")
                .expect("the server's stdout is readable")
                .expect("the server printed where it listens before exiting");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.trim().to_string();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, address }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL, and waits for the process to be gone.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM, then waits up to `timeout` for the exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let pid = self.pid().expect("the server is running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill is installed");
        assert!(sent.success(), "could not send SIGTERM to {pid}");
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the server did not exit within {timeout:?}"))
            .expect("the exit status is readable")
    }
}

/// A MariaDB server of the test's own: a fresh data directory and port,
/// root without a password. Killed and removed on drop.
pub struct PrivateMariaDb {
    pub port: u16,
    dir: PathBuf,
    process: Option<std::process::Child>,
}

impl PrivateMariaDb {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("cbc-mariadb-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create the MariaDB directory");
        let installed = std::process::Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mariadb-install-db is installed (scripts/test installs MariaDB)");
        assert!(installed.success(), "mariadb-install-db failed");
        let mut db = Self {
            port: free_port(),
            dir,
            process: None,
        };
        db.restart().await;
        db
    }

    /// The server URL without a database name.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port and data.
    pub async fn restart(&mut self) {
        assert!(self.process.is_none(), "already running");
        let child = std::process::Command::new(mariadbd())
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!(
                "--socket={}",
                self.dir.join("mysqld.sock").display()
            ))
            .arg(format!("--port={}", self.port))
            .args(["--bind-address=127.0.0.1", "--user=root", "--skip-log-bin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd is installed");
        self.process = Some(child);
        wait_until_listening(self.port, Duration::from_secs(30)).await;
    }

    /// Kills the server (as a crash would); committed data survives.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn mariadbd() -> &'static str {
    if Path::new("/usr/sbin/mariadbd").exists() {
        "/usr/sbin/mariadbd"
    } else {
        "mariadbd"
    }
}
