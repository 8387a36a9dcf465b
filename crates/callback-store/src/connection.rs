//! The store's connection: how it is reached (`StoreOptions`), the pools it
//! opens, the schema brought up to date at start, and the group writers
//! that batch the hot path's writes. Every aggregate's file (`tasks`,
//! `endpoints`, `operations`, `inbound`, `alerts`) implements its port of
//! `callback-core` on the `SqlTaskStore` defined here.

use crate::db_error::unavailable;
use crate::group_commit::{Batcher, GroupCommitOptions};
use crate::tasks::items::{ClaimRequest, Deferral, Outcome};
use callback_core::{ClaimedTask, Inserted, NewTask, Recorded, StoreError};
use callback_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use std::time::Duration;

/// How to reach the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path?mode=rwc` or `mysql://user:pass@host:port/db`.
    pub url: String,
    pub max_connections: u32,
    pub connect_timeout: Duration,
    /// Group the commits of concurrent submissions; `None`: one each.
    pub group_commit: Option<GroupCommitOptions>,
}

/// The task store over a sea-orm connection pool.
#[derive(Debug, Clone)]
pub struct SqlTaskStore {
    pub(crate) db: DatabaseConnection,
    /// Where delivery's writes go. On SQLite, one connection of its own:
    /// SQLite has one writer at a time, and writers queued here wait their
    /// turn in order instead of sleeping in SQLite's busy handler. On
    /// MySQL, the same pool as `db`.
    pub(crate) writer: DatabaseConnection,
    pub(crate) groups: Option<Groups>,
}

/// A group writer's answer that lacks an item: a bug, reported as the
/// store being unavailable rather than as a task accepted.
pub(crate) fn nothing_answered() -> StoreError {
    StoreError::Unavailable(Box::new(std::io::Error::other(
        "the group writer answered nothing",
    )))
}

/// Groups of new tasks written at once (see `connect`).
const INSERT_GROUPS_IN_FLIGHT: usize = 2;

/// Groups of results written at once. Two: a group that ends keyed tasks
/// also moves their keys on (a dozen statements, against three for plain
/// tasks), and with one writer the next group waited on each commit; keys
/// run one task at a time, so two groups never end tasks of the same key
/// (ordered, 1,000 keys: 4,442-5,770 -> 5,921-6,770 tasks/s; unordered
/// unchanged). A deadlock with an intake is written again.
const RESULT_GROUPS_IN_FLIGHT: usize = 2;

/// The writers that group the hot path's writes: intake, claims, results.
#[derive(Debug, Clone)]
pub(crate) struct Groups {
    /// A single task is a list of one; a batch stays whole, so that it is
    /// written, or not, with its group.
    pub(crate) inserts: Batcher<Vec<NewTask>, Vec<Inserted>>,
    pub(crate) claims: Batcher<ClaimRequest, Option<ClaimedTask>>,
    pub(crate) results: Batcher<Outcome, Recorded>,
    pub(crate) deferrals: Batcher<Deferral, ()>,
}

/// Connects, and brings the schema up to date before anything else runs.
pub async fn connect(options: &StoreOptions) -> Result<SqlTaskStore, StoreError> {
    let db = open_pool(options, options.max_connections)
        .await
        .map_err(unavailable)?;
    Migrator::up(&db, None).await.map_err(unavailable)?;
    // An in-memory SQLite database is private to its connection pool: a
    // second pool would open another, empty one.
    let in_memory = options.url.contains(":memory:") || options.url.contains("mode=memory");
    let writer = if db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite && !in_memory {
        open_pool(options, 1).await.map_err(unavailable)?
    } else {
        db.clone()
    };
    let plain = SqlTaskStore {
        db,
        writer,
        groups: None,
    };
    let groups = options
        .group_commit
        .filter(|g| !g.max_wait.is_zero() && g.max_batch > 1)
        .map(|g| {
            let (inserts, claims, results, deferrals) =
                (plain.clone(), plain.clone(), plain.clone(), plain.clone());
            Groups {
                // Two groups of new tasks in flight: with batches of
                // hundreds of rows, one writer waited on each commit with
                // the next group ready (batch API 25,759-30,539 ->
                // 35,046-37,034 tasks/s), and two writers still spare
                // MariaDB the latch contention of one per request.
                inserts: Batcher::start_weighed(
                    g,
                    Vec::len,
                    INSERT_GROUPS_IN_FLIGHT,
                    move |lists: Vec<Vec<NewTask>>| {
                        let store = inserts.clone();
                        async move { store.write_lists(lists).await }
                    },
                ),
                claims: Batcher::start(g, move |requests: Vec<ClaimRequest>| {
                    let store = claims.clone();
                    async move { store.claim_group(&requests).await }
                }),
                results: Batcher::start_weighed(
                    g,
                    |_| 1,
                    RESULT_GROUPS_IN_FLIGHT,
                    move |outcomes: Vec<Outcome>| {
                        let store = results.clone();
                        async move { store.complete_group(&outcomes).await }
                    },
                ),
                deferrals: Batcher::start(g, move |group: Vec<Deferral>| {
                    let store = deferrals.clone();
                    async move { store.defer_group(&group).await }
                }),
            }
        });
    Ok(SqlTaskStore { groups, ..plain })
}

/// A MySQL connection that has waited in the pool at least this long is
/// pinged before it is handed out; one used more recently is not.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Opens a pool of `max_connections`. The driver's default pings every
/// connection before handing it out: a round trip before every group's
/// transaction and every read, while the callers of the group wait. Under
/// load a connection comes back to the pool within milliseconds and is
/// known to be alive, so on MySQL only one idle for `PING_IF_IDLE_FOR` is
/// pinged (a dead one is dropped and another taken, as before). An SQLite
/// connection is a file, which no server can hang up: never pinged.
async fn open_pool(
    options: &StoreOptions,
    max_connections: u32,
) -> Result<DatabaseConnection, DbErr> {
    use sea_orm::sqlx::mysql::{MySql, MySqlConnectOptions};
    use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
    let refused = |e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e));
    let mut connect = connect_options(options, max_connections);
    if !options.url.starts_with("mysql:") {
        connect.test_before_acquire(false);
        return Database::connect(connect).await;
    }
    let server = options
        .url
        .parse::<MySqlConnectOptions>()
        .map_err(refused)?
        .disable_statement_logging();
    let pool = connect
        .sqlx_pool_options::<MySql>()
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(server)
        .await
        .map_err(refused)?;
    Ok(sea_orm::SqlxMySqlConnector::from_sqlx_mysql_pool(pool))
}

fn connect_options(options: &StoreOptions, max_connections: u32) -> ConnectOptions {
    let mut connect = ConnectOptions::new(options.url.clone());
    connect
        .max_connections(max_connections)
        .connect_timeout(options.connect_timeout)
        .acquire_timeout(options.connect_timeout)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            // WAL lets readers run beside the one writer; FULL makes every
            // acknowledged commit survive a power cut, not just a crash.
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .create_if_missing(true)
        });
    connect
}

impl SqlTaskStore {
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The connection every write goes through (see `writer`).
    pub(crate) fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }
}

/// A migrated store in an SQLite database of its own, for unit tests.
#[cfg(test)]
pub(crate) async fn in_memory_store() -> SqlTaskStore {
    connect(&StoreOptions {
        url: "sqlite::memory:".into(),
        max_connections: 1,
        connect_timeout: Duration::from_secs(5),
        group_commit: None,
    })
    .await
    .expect("in-memory SQLite")
}
