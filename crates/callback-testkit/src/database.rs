//! One private database per test: a temporary SQLite file, or a MariaDB
//! database created for the test and dropped when it ends. A backend that
//! cannot be reached fails the test; nothing is skipped.

use callback_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mysql,
}

/// The MariaDB server the suites use: `CBC_TEST_MYSQL_URL`, default the
/// local server with root and no password.
pub fn mysql_server_url() -> String {
    std::env::var("CBC_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    MysqlDatabase { server: String, name: String },
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("cbc-test-{tag}"));
                std::fs::create_dir_all(&dir).expect("create temp dir");
                Self {
                    url: format!("sqlite://{}?mode=rwc", dir.join("tasks.db").display()),
                    cleanup: Cleanup::Dir(dir),
                }
            }
            Backend::Mysql => Self::create_on_mysql(&mysql_server_url()).await,
        }
    }

    /// A database of the test's own on the MariaDB server at `server`
    /// (a URL without a database name), dropped on drop.
    pub async fn create_on_mysql(server: &str) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("cbc_test_{}", &tag[..16]);
        let admin = Database::connect(server).await.unwrap_or_else(|e| {
            panic!("MariaDB at {server} is unreachable ({e}); start it with scripts/test")
        });
        admin
            .execute_unprepared(&format!("CREATE DATABASE `{name}`"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        Self {
            url: format!("{server}/{name}"),
            cleanup: Cleanup::MysqlDatabase {
                server: server.to_string(),
                name,
            },
        }
    }
}

impl TestDatabase {
    /// A connection of the test's own, behind the server's back.
    async fn connect(&self) -> sea_orm::DatabaseConnection {
        Database::connect(&self.url)
            .await
            .expect("connect to test database")
    }

    /// Runs SQL against the test database behind the server's back, e.g. to
    /// break the store on purpose.
    pub async fn execute(&self, sql: &str) {
        let db = self.connect().await;
        db.execute_unprepared(sql).await.expect("execute test SQL");
        db.close().await.ok();
    }

    /// Runs SQL that may fail; says whether it did not.
    pub async fn try_execute(&self, sql: &str) -> bool {
        let db = self.connect().await;
        let ran = db.execute_unprepared(sql).await.is_ok();
        db.close().await.ok();
        ran
    }

    /// The first column of the first row `sql` returns, as a number.
    pub async fn query_i64(&self, sql: &str) -> Option<i64> {
        let db = self.connect().await;
        let row = db
            .query_one(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .expect("run test query");
        db.close().await.ok();
        row.and_then(|r| r.try_get_by_index::<Option<i64>>(0).ok().flatten())
    }

    /// Applies the first `steps` migrations only: the schema as an older
    /// release left it, for tests of what an upgrade keeps.
    pub async fn migrate_first(&self, steps: u32) {
        let db = self.connect().await;
        Migrator::up(&db, Some(steps))
            .await
            .expect("apply the first migrations");
        db.close().await.ok();
    }

    /// Undoes the last `steps` migrations, as a downgrade would.
    pub async fn migrate_down(&self, steps: u32) {
        let db = self.connect().await;
        Migrator::down(&db, Some(steps))
            .await
            .expect("undo the last migrations");
        db.close().await.ok();
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::MysqlDatabase { server, name } => {
                // Drop runs inside the test's runtime, which cannot block on
                // itself: use a short-lived runtime on another thread.
                let (server, name) = (server.clone(), name.clone());
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    rt.block_on(async {
                        if let Ok(admin) = Database::connect(server).await {
                            let _ = admin
                                .execute_unprepared(&format!("DROP DATABASE IF EXISTS `{name}`"))
                                .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}
