//! `SqlTaskStore`: the `TaskStore` port on sea-orm.

use crate::db_error::{is_unique_violation, unavailable};
use crate::entities::{attempt, idempotency_key, task, task_failure};
use crate::group_commit::{Batcher, GroupCommitOptions};
use crate::mapping::{
    attempt_from_row, attempt_row, id_bytes, key_row, ms, new_task_row, task_from_row, task_id,
    time,
};
use async_trait::async_trait;
use callback_core::{
    Attempt, ClaimedTask, Disposition, Inserted, LeaseToken, NewTask, Page, PageRequest,
    StoreError, Task, TaskDetail, TaskFilter, TaskId, TaskStatus, TaskStore,
};
use callback_migrations::{Migrator, MigratorTrait};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, DbBackend, DbErr, EntityName, EntityTrait, ExecResult, IdenStatic,
    Iterable, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement, TransactionTrait,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
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
    db: DatabaseConnection,
    /// Where delivery's writes go. On SQLite, one connection of its own:
    /// SQLite has one writer at a time, and writers queued here wait their
    /// turn in order instead of sleeping in SQLite's busy handler. On
    /// MySQL, the same pool as `db`.
    writer: DatabaseConnection,
    groups: Option<Groups>,
}

/// A group writer's answer that lacks an item: a bug, reported as the
/// store being unavailable rather than as a task accepted.
fn nothing_answered() -> StoreError {
    StoreError::Unavailable(Box::new(std::io::Error::other(
        "the group writer answered nothing",
    )))
}

/// Groups of new tasks written at once (see `connect`).
const INSERT_GROUPS_IN_FLIGHT: usize = 2;

/// The writers that group the hot path's writes: intake, claims, results.
#[derive(Debug, Clone)]
struct Groups {
    /// A single task is a list of one; a batch stays whole, so that it is
    /// written, or not, with its group.
    inserts: Batcher<Vec<NewTask>, Vec<Inserted>>,
    claims: Batcher<ClaimRequest, Option<ClaimedTask>>,
    results: Batcher<Outcome, bool>,
    deferrals: Batcher<Deferral, ()>,
}

/// A claimed task given back untried, due again at `until`.
#[derive(Debug, Clone, Copy)]
struct Deferral {
    task_id: TaskId,
    lease: LeaseToken,
    back_to: TaskStatus,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
struct ClaimRequest {
    id: TaskId,
    now: DateTime<Utc>,
    lease_margin: Duration,
}

/// An attempt and the state it moves its task to, for the task held under
/// `lease`.
#[derive(Debug, Clone)]
struct Outcome {
    task_id: TaskId,
    lease: LeaseToken,
    attempt: Attempt,
    next: Disposition,
    now: DateTime<Utc>,
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
                results: Batcher::start(g, move |outcomes: Vec<Outcome>| {
                    let store = results.clone();
                    async move { store.complete_group(&outcomes).await }
                }),
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

    async fn find(&self, id: TaskId) -> Result<Option<Task>, StoreError> {
        task::Entity::find_by_id(id_bytes(id))
            .one(&self.db)
            .await
            .map_err(unavailable)?
            .map(task_from_row)
            .transpose()
    }

    /// Runs a guarded transition; when it matched no row, says why. A task
    /// that leaves `failed` loses its failure time in the same transaction.
    async fn transition(
        &self,
        id: TaskId,
        from: &[TaskStatus],
        sets: Vec<(task::Column, SimpleExpr)>,
    ) -> Result<Task, StoreError> {
        let mut update = task::Entity::update_many()
            .filter(task::Column::Id.eq(id_bytes(id)))
            .filter(task::Column::Status.is_in(from.iter().map(|s| s.as_str())));
        for (column, value) in sets {
            update = update.col_expr(column, value);
        }
        let txn = self.writer.begin().await.map_err(unavailable)?;
        let result = update.exec(&txn).await.map_err(unavailable)?;
        if result.rows_affected == 1 && from.contains(&TaskStatus::Failed) {
            forget_failures(&txn, vec![id_bytes(id)]).await?;
        }
        txn.commit().await.map_err(unavailable)?;
        let current = self.find(id).await?.ok_or(StoreError::NotFound)?;
        if result.rows_affected == 1 {
            Ok(current)
        } else {
            Err(StoreError::InvalidState {
                current: current.status,
            })
        }
    }
}

impl SqlTaskStore {
    /// Claims a group of tasks: one conditional UPDATE per id list gives
    /// every task still claimable the same fresh lease, then one read finds
    /// which ones took it. Answers in the order asked; an id asked twice is
    /// given to the first asker only.
    async fn claim_group(
        &self,
        requests: &[ClaimRequest],
    ) -> Result<Vec<Option<ClaimedTask>>, StoreError> {
        let Some(now) = requests.iter().map(|r| r.now).max() else {
            return Ok(Vec::new());
        };
        let now_ms = ms(now);
        let mut margins: Vec<Duration> = requests.iter().map(|r| r.lease_margin).collect();
        margins.sort_unstable();
        margins.dedup();
        let mut claimed = std::collections::HashMap::new();
        for margin in margins {
            let lease = LeaseToken::new();
            let ids: Vec<Vec<u8>> = requests
                .iter()
                .filter(|r| r.lease_margin == margin)
                .map(|r| id_bytes(r.id))
                .collect();
            let margin_ms = i64::try_from(margin.as_millis()).unwrap_or(i64::MAX / 2);
            // One transaction, so the group's leases cost one commit.
            let backend = self.writer.get_database_backend();
            let claims = padded_in_lists(&ids).into_iter().map(|list| {
                let claim = task::Entity::update_many()
                    .col_expr(task::Column::Status, status(TaskStatus::Delivering))
                    .col_expr(
                        task::Column::LeaseToken,
                        Expr::value(lease.0.as_bytes().to_vec()),
                    )
                    .col_expr(
                        task::Column::LeaseUntil,
                        Expr::col(task::Column::TimeoutMs).add(now_ms.saturating_add(margin_ms)),
                    )
                    .col_expr(task::Column::UpdatedAt, Expr::value(now_ms))
                    .filter(task::Column::Id.is_in(list))
                    .filter(claimable(now_ms));
                by_primary_key(backend, claim)
            });
            let taken: u64 = write_atomically(&self.writer, claims.collect())
                .await
                .map_err(unavailable)?
                .iter()
                .map(ExecResult::rows_affected)
                .sum();
            if taken == 0 {
                continue;
            }
            for list in padded_in_lists(&ids) {
                let rows = task::Entity::find()
                    .filter(task::Column::Id.is_in(list))
                    .filter(task::Column::LeaseToken.eq(lease.0.as_bytes().to_vec()))
                    .all(&self.db)
                    .await
                    .map_err(unavailable)?;
                for row in rows {
                    let task = task_from_row(row)?;
                    claimed.insert(task.id, (task, lease));
                }
            }
        }
        Ok(requests
            .iter()
            .map(|r| {
                claimed.remove(&r.id).map(|(task, lease)| ClaimedTask {
                    attempt_number: task.attempts_made + 1,
                    task,
                    lease,
                })
            })
            .collect())
    }

    /// Records a group of attempts and moves their tasks on, in one
    /// transaction. Answers, in order, whether each state change applied
    /// (it does only while the task's lease is still held).
    async fn complete_group(&self, outcomes: &[Outcome]) -> Result<Vec<bool>, StoreError> {
        match self.write_outcomes(outcomes, true).await? {
            Some(applied) => Ok(applied),
            // A lease was lost meanwhile (a rare cancel): row by row, which
            // tells exactly which change applied.
            None => Ok(self
                .write_outcomes(outcomes, false)
                .await?
                .unwrap_or_else(|| vec![false; outcomes.len()])),
        }
    }

    /// With `group_successes`, plain successes are moved on by one UPDATE
    /// per id list; should it match fewer rows than asked, nothing is
    /// committed and `None` says to write row by row instead.
    async fn write_outcomes(
        &self,
        outcomes: &[Outcome],
        group_successes: bool,
    ) -> Result<Option<Vec<bool>>, StoreError> {
        let backend = self.writer.get_database_backend();
        let txn = self.writer.begin().await.map_err(unavailable)?;
        // Taken once the transaction is ours: see `Outcome::state`.
        let written_at = ms(Utc::now());
        let attempts: Vec<&Outcome> = outcomes.iter().collect();
        for chunk in statement_chunks(&attempts) {
            let rows: Vec<attempt::ActiveModel> = chunk
                .iter()
                .map(|o| attempt_row(o.task_id, &o.attempt))
                .collect();
            txn.execute(insert_rows(backend, rows))
                .await
                .map_err(unavailable)?;
        }
        let mut applied = vec![false; outcomes.len()];
        let grouped: Vec<usize> = if group_successes {
            (0..outcomes.len())
                .filter(|&i| outcomes[i].is_plain_success())
                .collect()
        } else {
            Vec::new()
        };
        if let Some(now) = grouped.iter().map(|&i| outcomes[i].now).max() {
            let ids: Vec<Vec<u8>> = grouped
                .iter()
                .map(|&i| id_bytes(outcomes[i].task_id))
                .collect();
            let leases: Vec<Vec<u8>> = grouped
                .iter()
                .map(|&i| outcomes[i].lease.0.as_bytes().to_vec())
                .collect();
            let mut matched = 0;
            // A lease token names one claim, and a claim holds each of its
            // tasks once: an id whose token is among the group's is held
            // under that claim.
            for (ids, leases) in padded_in_lists(&ids)
                .into_iter()
                .zip(padded_in_lists(&leases))
            {
                let success = after_attempt(&Outcome::plain_success_state(now))
                    .filter(task::Column::Id.is_in(ids))
                    .filter(task::Column::LeaseToken.is_in(leases))
                    .filter(task::Column::Status.eq(TaskStatus::Delivering.as_str()));
                matched += txn
                    .execute(by_primary_key(backend, success))
                    .await
                    .map_err(unavailable)?
                    .rows_affected();
            }
            if matched != grouped.len() as u64 {
                // Roll back now: a dropped transaction only queues its
                // rollback for the connection's next use, and until then
                // its row locks stall the row-by-row retry and other
                // instances' claims.
                txn.rollback().await.map_err(unavailable)?;
                return Ok(None);
            }
            for &i in &grouped {
                applied[i] = true;
            }
        }
        for (i, outcome) in outcomes.iter().enumerate() {
            if group_successes && outcome.is_plain_success() {
                continue;
            }
            let state = outcome.state(written_at);
            let result = after_attempt(&state)
                .filter(task::Column::Id.eq(id_bytes(outcome.task_id)))
                .filter(task::Column::LeaseToken.eq(outcome.lease.0.as_bytes().to_vec()))
                .filter(task::Column::Status.eq(TaskStatus::Delivering.as_str()))
                .exec(&txn)
                .await
                .map_err(unavailable)?;
            applied[i] = result.rows_affected == 1;
            if let (true, Some(failed_at)) = (applied[i], state.failed_at) {
                txn.execute(record_failure(backend, outcome.task_id, failed_at))
                    .await
                    .map_err(unavailable)?;
            }
        }
        txn.commit().await.map_err(unavailable)?;
        Ok(Some(applied))
    }

    /// Gives a group of claimed tasks back untried, each due again at its
    /// own time, in one transaction: a receiver at its cap puts off tasks
    /// by the hundred while a backlog drains, and each had been a commit of
    /// its own. A task whose lease was lost meanwhile is left alone.
    async fn defer_group(&self, deferrals: &[Deferral]) -> Result<Vec<()>, StoreError> {
        let backend = self.writer.get_database_backend();
        let statements = deferrals
            .iter()
            .map(|d| {
                task::Entity::update_many()
                    .col_expr(task::Column::Status, status(d.back_to))
                    .col_expr(
                        task::Column::LeaseToken,
                        Expr::value(Option::<Vec<u8>>::None),
                    )
                    .col_expr(task::Column::LeaseUntil, Expr::value(Option::<i64>::None))
                    .col_expr(task::Column::NextAttemptAt, Expr::value(ms(d.until)))
                    .col_expr(task::Column::UpdatedAt, Expr::value(ms(d.now)))
                    .filter(task::Column::Id.eq(id_bytes(d.task_id)))
                    .filter(task::Column::LeaseToken.eq(d.lease.0.as_bytes().to_vec()))
                    .build(backend)
            })
            .collect();
        write_atomically(&self.writer, statements)
            .await
            .map_err(unavailable)?;
        Ok(vec![(); deferrals.len()])
    }
}

/// Runs `statements` all or none and gives their results. A single
/// statement is atomic by itself and goes alone: the transaction around it
/// would cost two more round trips (`BEGIN`, `COMMIT`). At low rates, where
/// a group holds one task, those were 4 of the 10 round trips a delivered
/// task cost MariaDB. A statement that fails rolls its transaction back at
/// once: a dropped transaction only queues its rollback for the
/// connection's next use, and until then its row locks stall others.
async fn write_atomically(
    db: &DatabaseConnection,
    statements: Vec<Statement>,
) -> Result<Vec<ExecResult>, DbErr> {
    if statements.len() < 2 {
        let mut results = Vec::with_capacity(1);
        for statement in statements {
            results.push(db.execute(statement).await?);
        }
        return Ok(results);
    }
    let txn = db.begin().await?;
    let mut results = Vec::with_capacity(statements.len());
    for statement in statements {
        match txn.execute(statement).await {
            Ok(result) => results.push(result),
            Err(err) => {
                // The statement's error says what went wrong; a rollback
                // that fails too leaves a broken connection, which the
                // pool drops.
                let _ = txn.rollback().await;
                return Err(err);
            }
        }
    }
    txn.commit().await?;
    Ok(results)
}

/// The state a task moves to after an attempt.
struct AfterAttempt {
    status: TaskStatus,
    next_at: Option<i64>,
    failed_at: Option<i64>,
    last_error: Option<String>,
    now: i64,
}

impl Outcome {
    /// A plain success: its state change is the same for every task, so a
    /// group of them is one statement.
    fn is_plain_success(&self) -> bool {
        self.next == Disposition::Succeeded && self.attempt.error.is_none()
    }

    /// A failure is dated `written_at`, just before its commit, not when
    /// its attempt ended: alerts report failures once they are `settle`
    /// old, and one that waited in the result writer's queue longer than
    /// that would be visible only after the alert watermark had passed it,
    /// and never be reported.
    fn state(&self, written_at: i64) -> AfterAttempt {
        let now = ms(self.now);
        let (status, next_at) = match self.next {
            Disposition::Succeeded => (TaskStatus::Succeeded, None),
            Disposition::Failed => (TaskStatus::Failed, None),
            Disposition::RetryAt(at) => (TaskStatus::Retrying, Some(ms(at))),
        };
        AfterAttempt {
            status,
            next_at,
            failed_at: (status == TaskStatus::Failed).then_some(written_at),
            last_error: self.attempt.error.clone(),
            now,
        }
    }

    /// What every plain success moves its task to.
    fn plain_success_state(now: DateTime<Utc>) -> AfterAttempt {
        AfterAttempt {
            status: TaskStatus::Succeeded,
            next_at: None,
            failed_at: None,
            last_error: None,
            now: ms(now),
        }
    }
}

/// Moves tasks to `state`, counts the attempt and lets go of the lease;
/// the caller says which tasks.
fn after_attempt(state: &AfterAttempt) -> sea_orm::UpdateMany<task::Entity> {
    task::Entity::update_many()
        .col_expr(task::Column::Status, status(state.status))
        .col_expr(
            task::Column::AttemptsMade,
            Expr::col(task::Column::AttemptsMade).add(1),
        )
        .col_expr(task::Column::NextAttemptAt, Expr::value(state.next_at))
        .col_expr(
            task::Column::LeaseToken,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .col_expr(task::Column::LeaseUntil, Expr::value(Option::<i64>::None))
        .col_expr(
            task::Column::LastError,
            Expr::value(state.last_error.clone()),
        )
        .col_expr(task::Column::UpdatedAt, Expr::value(state.now))
}

/// Dates a task's failure. Every way out of `failed` deletes the row in
/// its own transaction, so none should be left; one that were would be
/// overwritten here rather than fail the whole group of results.
fn record_failure(backend: DbBackend, id: TaskId, failed_at: i64) -> Statement {
    task_failure::Entity::insert(task_failure::ActiveModel {
        task_id: sea_orm::ActiveValue::Set(id_bytes(id)),
        failed_at: sea_orm::ActiveValue::Set(failed_at),
    })
    .on_conflict(
        OnConflict::column(task_failure::Column::TaskId)
            .update_column(task_failure::Column::FailedAt)
            .to_owned(),
    )
    .build(backend)
}

/// Deletes the failure times among `ids` of tasks that are no longer
/// failed (re-sent) or no longer there (purged). One that failed again
/// meanwhile keeps its new time.
pub(crate) async fn forget_failures(
    txn: &impl ConnectionTrait,
    ids: Vec<Vec<u8>>,
) -> Result<(), StoreError> {
    let still_failed = Query::select()
        .column(task::Column::Id)
        .from(task::Entity)
        .and_where(task::Column::Id.is_in(ids.clone()))
        .and_where(task::Column::Status.eq(TaskStatus::Failed.as_str()))
        .to_owned();
    task_failure::Entity::delete_many()
        .filter(task_failure::Column::TaskId.is_in(ids))
        .filter(task_failure::Column::TaskId.not_in_subquery(still_failed))
        .exec(txn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// An UPDATE of tasks picked by an `id IN (...)` list, told on MySQL to
/// find them by the primary key. Left to itself, MariaDB reaches them
/// through `ix_tasks_status` (the status test narrows the range on paper),
/// and an UPDATE that changes the status of rows found through the status
/// index must first buffer them all: on 100,000 tasks, a success UPDATE of
/// 112 ids cost 37-42 us of MariaDB CPU a row that way, 24-32 by the key.
fn by_primary_key(backend: DbBackend, update: sea_orm::UpdateMany<task::Entity>) -> Statement {
    let mut statement = update.build(backend);
    if backend == DbBackend::MySql {
        statement.sql = statement.sql.replacen(
            "UPDATE `tasks` ",
            "UPDATE `tasks` FORCE INDEX (PRIMARY) ",
            1,
        );
    }
    statement
}

/// A page of tasks, newest first, and one more to tell whether another
/// page follows. Each filter's index orders its tasks by id (see migration
/// `m20261123_000006`), so a page reads its own rows, not every match.
fn task_page(filter: &TaskFilter, page: PageRequest) -> sea_orm::Select<task::Entity> {
    let mut query = task::Entity::find();
    if let Some(s) = filter.status {
        query = query.filter(task::Column::Status.eq(s.as_str()));
    }
    if let Some(app) = &filter.source_app {
        query = query.filter(task::Column::SourceApp.eq(app.as_str()));
    }
    if let Some(app) = &filter.target_app {
        query = query.filter(task::Column::TargetApp.eq(app.as_str()));
    }
    if let Some(after) = page.after {
        query = query.filter(task::Column::Id.lt(id_bytes(after)));
    }
    query
        .order_by_desc(task::Column::Id)
        .limit(u64::from(page.limit.max(1)) + 1)
}

/// The reconciler's pass: due tasks nobody holds, soonest first.
fn due_scan(backend: DbBackend, now: DateTime<Utc>, limit: u32) -> Statement {
    let scan = task::Entity::find()
        .select_only()
        .column(task::Column::Id)
        .filter(claimable(ms(now)))
        .order_by_asc(task::Column::NextAttemptAt)
        .limit(u64::from(limit));
    by_due_time(backend, scan)
}

/// What the delay queue is rebuilt from: tasks waiting for a later time,
/// soonest first.
fn scheduled_scan(backend: DbBackend, now: DateTime<Utc>, limit: u32) -> Statement {
    let scan = task::Entity::find()
        .select_only()
        .column(task::Column::Id)
        .column(task::Column::NextAttemptAt)
        .filter(
            task::Column::Status
                .is_in([TaskStatus::Pending, TaskStatus::Retrying].map(|s| s.as_str())),
        )
        .filter(task::Column::NextAttemptAt.gt(ms(now)))
        .order_by_asc(task::Column::NextAttemptAt)
        .limit(u64::from(limit));
    by_due_time(backend, scan)
}

/// A read of tasks in due-time order, told to walk `ix_tasks_next_attempt_at`
/// on both backends. SQLite, which keeps no statistics unless asked, takes
/// `status IN (...)` for the narrower test, reads every live task through
/// `ix_tasks_status` and sorts them all: with a million tasks scheduled for
/// later, each reconciler pass (one a second) cost 0.3 s of CPU and the
/// server burnt half a core while idle. Through the due-time index a pass
/// reads only the due tasks. MariaDB chose that index already; the hint
/// keeps it from choosing otherwise on a table whose statistics mislead.
fn by_due_time(backend: DbBackend, select: sea_orm::Select<task::Entity>) -> Statement {
    let mut statement = select.build(backend);
    let (from, through) = match backend {
        DbBackend::MySql => (
            "FROM `tasks` ",
            "FROM `tasks` FORCE INDEX (`ix_tasks_next_attempt_at`) ",
        ),
        DbBackend::Sqlite => (
            "FROM \"tasks\" ",
            "FROM \"tasks\" INDEXED BY \"ix_tasks_next_attempt_at\" ",
        ),
        DbBackend::Postgres => return statement,
    };
    statement.sql = statement.sql.replacen(from, through, 1);
    statement
}

/// A multi-row `INSERT` of `rows` (one of `STATEMENT_ROWS` in number), of
/// the columns they set. Its text depends only on the table, the backend
/// and the row count, so it is written once and kept: building it with the
/// query builder for every group cost a quarter of the server's CPU on
/// batch intake. The values come from the row mappings (`new_task_row`,
/// `attempt_row`), which set the same columns for every row; they are
/// moved out of the rows, not copied.
fn insert_rows<A>(backend: DbBackend, rows: Vec<A>) -> Statement
where
    A: ActiveModelTrait + 'static,
{
    static TEXTS: OnceLock<Mutex<InsertTexts>> = OnceLock::new();
    let columns: Vec<<A::Entity as EntityTrait>::Column> =
        <A::Entity as EntityTrait>::Column::iter()
            .filter(|&c| rows.first().is_some_and(|row| !row.is_not_set(c)))
            .collect();
    let key = (
        std::any::TypeId::of::<A>(),
        backend == DbBackend::MySql,
        rows.len(),
    );
    let text = {
        let mut texts = TEXTS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        texts
            .entry(key)
            .or_insert_with(|| {
                let names: Vec<&str> = columns.iter().map(|c| c.as_str()).collect();
                let table = A::Entity::default();
                insert_text(backend, table.table_name(), &names, rows.len()).into()
            })
            .clone()
    };
    let mut values = Vec::with_capacity(rows.len() * columns.len());
    for mut row in rows {
        values.extend(columns.iter().map(|&column| {
            row.take(column)
                .into_value()
                .unwrap_or(sea_orm::Value::Bytes(None))
        }));
    }
    Statement::from_sql_and_values(backend, text.as_ref(), values)
}

/// Statement texts by (row type, is MySQL, rows): the two backends we run
/// on differ only in quoting.
type InsertTexts = HashMap<(std::any::TypeId, bool, usize), Arc<str>>;

fn insert_text(backend: DbBackend, table: &str, columns: &[&str], rows: usize) -> String {
    let quote = |name: &str| match backend {
        DbBackend::MySql => format!("`{name}`"),
        _ => format!("\"{name}\""),
    };
    let names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let row = format!("({})", vec!["?"; names.len()].join(", "));
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        quote(table),
        names.join(", "),
        vec![row; rows].join(", ")
    )
}

/// Row counts a multi-row INSERT is cut into. Each count is one statement
/// shape, and the driver caches a prepared statement per shape on every
/// connection: a few fixed sizes keep that cache (and memory) small, where
/// every batch size from 1 to 256 would fill it with large statements.
/// Powers of two cut a group into as many statements as its size has bits
/// set (107 rows: 5, where sizes 256, 64, 16, 4, 1 took 8), and each
/// statement is a round trip while the group's callers wait. The largest
/// also keeps a statement under SQLite's bound-variable limit.
const STATEMENT_ROWS: [usize; 9] = [256, 128, 64, 32, 16, 8, 4, 2, 1];

/// Cuts `rows` greedily into chunks of the sizes in `STATEMENT_ROWS`.
fn statement_chunks<T>(rows: &[T]) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut rest = rows;
    for size in STATEMENT_ROWS {
        while rest.len() >= size {
            let (chunk, tail) = rest.split_at(size);
            chunks.push(chunk);
            rest = tail;
        }
    }
    chunks
}

/// Cuts a list of values for `IN (...)` into lists of the sizes in
/// `STATEMENT_ROWS`, each padded up to its size with `NULL`, which matches
/// nothing: one shape per size. MariaDB's range optimizer drops `NULL`s at
/// no cost, where padding with a repeated value doubled its work for a
/// list padded from 70 to 256.
fn padded_in_lists<T: Clone>(values: &[T]) -> Vec<Vec<Option<T>>> {
    let largest = STATEMENT_ROWS[0];
    values
        .chunks(largest)
        .map(|chunk| {
            let size = STATEMENT_ROWS
                .iter()
                .rev()
                .copied()
                .find(|&s| s >= chunk.len())
                .unwrap_or(largest);
            let mut list: Vec<Option<T>> = chunk.iter().cloned().map(Some).collect();
            list.resize(size, None);
            list
        })
        .collect()
}

fn status(s: TaskStatus) -> SimpleExpr {
    Expr::value(s.as_str())
}

/// Live tasks whose due time has come and that nobody holds a valid lease on.
fn claimable(now_ms: i64) -> Condition {
    Condition::all()
        .add(
            task::Column::Status.is_in(
                [
                    TaskStatus::Pending,
                    TaskStatus::Retrying,
                    TaskStatus::Delivering,
                ]
                .map(|s| s.as_str()),
            ),
        )
        .add(task::Column::NextAttemptAt.lte(now_ms))
        .add(
            Condition::any()
                .add(task::Column::LeaseUntil.is_null())
                .add(task::Column::LeaseUntil.lt(now_ms)),
        )
}

impl SqlTaskStore {
    /// Writes the lists of a group in one transaction, and answers each
    /// list with its own tasks.
    async fn write_lists(
        &self,
        lists: Vec<Vec<NewTask>>,
    ) -> Result<Vec<Vec<Inserted>>, StoreError> {
        let sizes: Vec<usize> = lists.iter().map(Vec::len).collect();
        let tasks: Vec<NewTask> = lists.into_iter().flatten().collect();
        let mut written = self.write_tasks(tasks).await?.into_iter();
        Ok(sizes
            .into_iter()
            .map(|size| written.by_ref().take(size).collect())
            .collect())
    }

    /// Writes `tasks` in one transaction, all or none: the ones whose
    /// idempotency key is taken already are answered with the existing
    /// task.
    async fn write_tasks(&self, tasks: Vec<NewTask>) -> Result<Vec<Inserted>, StoreError> {
        // Read the taken keys first, outside the transaction: SQLite in WAL
        // mode refuses a transaction that reads, then writes after another
        // connection wrote. A key taken in between fails the whole batch
        // on the key's primary key, and nothing is stored.
        let keys: Vec<&str> = tasks
            .iter()
            .filter_map(|t| t.spec.idempotency_key.as_deref())
            .collect();
        let existing = self.tasks_by_key(&keys).await?;
        let fresh: Vec<&NewTask> = tasks
            .iter()
            .filter(|t| {
                t.spec
                    .idempotency_key
                    .as_ref()
                    .is_none_or(|k| !existing.contains_key(k))
            })
            .collect();
        if !fresh.is_empty() {
            let backend = self.writer.get_database_backend();
            let claims: Vec<idempotency_key::ActiveModel> = fresh
                .iter()
                .filter_map(|t| Some(key_row(t.id, t.spec.idempotency_key.as_deref()?)))
                .collect();
            let statements = statement_chunks(&fresh)
                .into_iter()
                .map(|chunk| insert_rows(backend, chunk.iter().map(|t| new_task_row(t)).collect()))
                .chain(
                    statement_chunks(&claims)
                        .into_iter()
                        .map(|chunk| insert_rows(backend, chunk.to_vec())),
                );
            match write_atomically(&self.writer, statements.collect()).await {
                Ok(_) => {}
                Err(err) if is_unique_violation(&err) => {
                    return Err(StoreError::Conflict(
                        "an idempotency key of the batch was taken meanwhile; nothing was stored, send the batch again".into(),
                    ));
                }
                Err(err) => return Err(unavailable(err)),
            }
        }
        Ok(tasks
            .into_iter()
            .map(|t| {
                match t
                    .spec
                    .idempotency_key
                    .as_ref()
                    .and_then(|k| existing.get(k))
                {
                    Some(found) => Inserted::Existing(found.clone()),
                    None => Inserted::Created(Task::from_new(t)),
                }
            })
            .collect())
    }

    /// Writes one task with an idempotency key; a task that took the key
    /// first, even meanwhile, is the answer instead.
    async fn write_keyed(&self, new: NewTask, key: &str) -> Result<Inserted, StoreError> {
        let backend = self.writer.get_database_backend();
        let txn = self.writer.begin().await.map_err(unavailable)?;
        let mut written = txn
            .execute(insert_rows(backend, vec![new_task_row(&new)]))
            .await;
        if written.is_ok() {
            written = txn
                .execute(insert_rows(backend, vec![key_row(new.id, key)]))
                .await;
        }
        match written {
            Ok(_) => {
                txn.commit().await.map_err(unavailable)?;
                Ok(Inserted::Created(Task::from_new(new)))
            }
            Err(err) if is_unique_violation(&err) => {
                txn.rollback().await.map_err(unavailable)?;
                match self.tasks_by_key(&[key]).await?.remove(key) {
                    Some(found) => Ok(Inserted::Existing(found)),
                    None => Err(unavailable(err)),
                }
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    /// The tasks that took any of `keys`, by key.
    async fn tasks_by_key(&self, keys: &[&str]) -> Result<HashMap<String, Task>, StoreError> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(500) {
            let holders = Query::select()
                .column(idempotency_key::Column::TaskId)
                .from(idempotency_key::Entity)
                .and_where(idempotency_key::Column::IdempotencyKey.is_in(chunk.iter().copied()))
                .to_owned();
            let rows = task::Entity::find()
                .filter(task::Column::Id.in_subquery(holders))
                .all(&self.db)
                .await
                .map_err(unavailable)?;
            for row in rows {
                let task = task_from_row(row)?;
                if let Some(key) = task.spec.idempotency_key.clone() {
                    found.insert(key, task);
                }
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl TaskStore for SqlTaskStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(unavailable)
    }

    async fn insert(&self, new: NewTask) -> Result<Inserted, StoreError> {
        let new = match &self.groups {
            Some(groups) if new.spec.idempotency_key.is_none() => {
                match groups.inserts.submit(vec![new]).await {
                    Ok(result) => return result?.pop().ok_or_else(nothing_answered),
                    // The writer is gone (shutting down): written alone.
                    Err(back) => back.into_iter().next().ok_or_else(nothing_answered)?,
                }
            }
            _ => new,
        };
        if let Some(key) = new.spec.idempotency_key.clone() {
            return self.write_keyed(new, &key).await;
        }
        task::Entity::insert(new_task_row(&new))
            .exec(&self.writer)
            .await
            .map_err(unavailable)?;
        Ok(Inserted::Created(Task::from_new(new)))
    }

    async fn insert_batch(&self, tasks: Vec<NewTask>) -> Result<Vec<Inserted>, StoreError> {
        // Without idempotency keys nothing can conflict: the batch joins
        // the group of concurrent submissions, and a few writers on the
        // tasks table instead of one per request spare MariaDB the latch
        // contention on the same index pages.
        let keyless = tasks.iter().all(|t| t.spec.idempotency_key.is_none());
        let tasks = match &self.groups {
            Some(groups) if keyless => match groups.inserts.submit(tasks).await {
                Ok(result) => return result,
                // The writer is gone (shutting down): written alone.
                Err(back) => back,
            },
            _ => tasks,
        };
        self.write_tasks(tasks).await
    }

    async fn get(&self, id: TaskId) -> Result<Option<TaskDetail>, StoreError> {
        let Some(task) = self.find(id).await? else {
            return Ok(None);
        };
        let attempts = attempt::Entity::find()
            .filter(attempt::Column::TaskId.eq(id_bytes(id)))
            .order_by_asc(attempt::Column::Number)
            .order_by_asc(attempt::Column::Id)
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(attempt_from_row)
            .collect::<Result<_, _>>()?;
        Ok(Some(TaskDetail { task, attempts }))
    }

    async fn list(&self, filter: &TaskFilter, page: PageRequest) -> Result<Page<Task>, StoreError> {
        let limit = u64::from(page.limit.max(1));
        let rows = task_page(filter, page)
            .all(&self.db)
            .await
            .map_err(unavailable)?;
        let has_more = rows.len() as u64 > limit;
        let items: Vec<Task> = rows
            .into_iter()
            .take(limit as usize)
            .map(task_from_row)
            .collect::<Result<_, _>>()?;
        let next_cursor = if has_more {
            items.last().map(|t| t.id)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn claim(
        &self,
        id: TaskId,
        now: DateTime<Utc>,
        lease_margin: Duration,
    ) -> Result<Option<ClaimedTask>, StoreError> {
        let request = ClaimRequest {
            id,
            now,
            lease_margin,
        };
        if let Some(groups) = &self.groups {
            if let Ok(result) = groups.claims.submit(request).await {
                return result;
            }
        }
        Ok(self.claim_group(&[request]).await?.pop().flatten())
    }

    async fn complete(
        &self,
        claim: &ClaimedTask,
        attempt: &Attempt,
        next: Disposition,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let outcome = Outcome {
            task_id: claim.task.id,
            lease: claim.lease,
            attempt: attempt.clone(),
            next,
            now,
        };
        let outcome = match &self.groups {
            Some(groups) => match groups.results.submit(outcome).await {
                Ok(result) => return result,
                Err(outcome) => outcome,
            },
            None => outcome,
        };
        Ok(self
            .complete_group(&[outcome])
            .await?
            .pop()
            .unwrap_or(false))
    }

    async fn release(
        &self,
        claim: &ClaimedTask,
        interrupted: &Attempt,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let txn = self.writer.begin().await.map_err(unavailable)?;
        let result = task::Entity::update_many()
            .col_expr(task::Column::Status, status(TaskStatus::Retrying))
            .col_expr(
                task::Column::AttemptsMade,
                Expr::col(task::Column::AttemptsMade).add(1),
            )
            .col_expr(
                task::Column::AttemptsBase,
                Expr::col(task::Column::AttemptsBase).add(1),
            )
            .col_expr(
                task::Column::LeaseToken,
                Expr::value(Option::<Vec<u8>>::None),
            )
            .col_expr(task::Column::LeaseUntil, Expr::value(Option::<i64>::None))
            .col_expr(task::Column::NextAttemptAt, Expr::value(ms(now)))
            .col_expr(task::Column::UpdatedAt, Expr::value(ms(now)))
            .filter(task::Column::Id.eq(id_bytes(claim.task.id)))
            .filter(task::Column::LeaseToken.eq(claim.lease.0.as_bytes().to_vec()))
            .exec(&txn)
            .await
            .map_err(unavailable)?;
        // Without the lease (cancelled meanwhile), the task is no longer ours
        // to number attempts for; the receiver's log has the request.
        if result.rows_affected == 1 {
            attempt::Entity::insert(attempt_row(claim.task.id, interrupted))
                .exec(&txn)
                .await
                .map_err(unavailable)?;
        }
        txn.commit().await.map_err(unavailable)
    }

    async fn defer(
        &self,
        claim: &ClaimedTask,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let deferral = Deferral {
            task_id: claim.task.id,
            lease: claim.lease,
            back_to: if claim.task.attempts_used() == 0 {
                TaskStatus::Pending
            } else {
                TaskStatus::Retrying
            },
            until,
            now,
        };
        if let Some(groups) = &self.groups {
            if let Ok(result) = groups.deferrals.submit(deferral).await {
                return result;
            }
        }
        self.defer_group(&[deferral]).await.map(|_| ())
    }

    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<TaskId>, StoreError> {
        let rows = self
            .db
            .query_all(due_scan(self.db.get_database_backend(), now, limit))
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| task_id(&row.try_get_by_index::<Vec<u8>>(0).map_err(unavailable)?))
            .collect()
    }

    async fn scheduled(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(TaskId, DateTime<Utc>)>, StoreError> {
        let rows = self
            .db
            .query_all(scheduled_scan(self.db.get_database_backend(), now, limit))
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let id: Vec<u8> = row.try_get_by_index(0).map_err(unavailable)?;
                let at: i64 = row.try_get_by_index(1).map_err(unavailable)?;
                Ok((task_id(&id)?, time(at)?))
            })
            .collect()
    }

    async fn cancel(&self, id: TaskId, now: DateTime<Utc>) -> Result<Task, StoreError> {
        self.transition(
            id,
            &TaskStatus::CANCELLABLE,
            vec![
                (task::Column::Status, status(TaskStatus::Cancelled)),
                (
                    task::Column::NextAttemptAt,
                    Expr::value(Option::<i64>::None),
                ),
                (
                    task::Column::LeaseToken,
                    Expr::value(Option::<Vec<u8>>::None),
                ),
                (task::Column::LeaseUntil, Expr::value(Option::<i64>::None)),
                (task::Column::UpdatedAt, Expr::value(ms(now))),
            ],
        )
        .await
    }

    async fn resend(&self, id: TaskId, now: DateTime<Utc>) -> Result<Task, StoreError> {
        self.transition(
            id,
            &TaskStatus::RESENDABLE,
            vec![
                (task::Column::Status, status(TaskStatus::Pending)),
                (
                    task::Column::AttemptsBase,
                    Expr::col(task::Column::AttemptsMade).into(),
                ),
                (task::Column::NextAttemptAt, Expr::value(ms(now))),
                (task::Column::UpdatedAt, Expr::value(ms(now))),
            ],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_a_few_statement_shapes() {
        let rows: Vec<u32> = (0..600).collect();
        let sizes: Vec<usize> = statement_chunks(&rows).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [256, 256, 64, 16, 8]);
        assert_eq!(sizes.iter().sum::<usize>(), 600);
        let rows: Vec<u32> = (0..3).collect();
        assert_eq!(statement_chunks(&rows).len(), 2);
        assert!(statement_chunks::<u32>(&[]).is_empty());
    }

    #[test]
    fn a_failure_is_dated_when_it_is_written_not_when_its_attempt_ended() {
        let ended = Utc::now() - chrono::TimeDelta::minutes(10);
        let outcome = |next| Outcome {
            task_id: TaskId::new(),
            lease: LeaseToken::new(),
            attempt: Attempt::without_response(1, ended, "refused".into()),
            next,
            now: ended,
        };
        let written_at = ms(Utc::now());
        let failed = outcome(Disposition::Failed).state(written_at);
        assert_eq!(failed.status, TaskStatus::Failed);
        assert_eq!(failed.failed_at, Some(written_at));
        assert_eq!(failed.now, ms(ended));
        let retrying = outcome(Disposition::RetryAt(Utc::now())).state(written_at);
        assert_eq!(retrying.failed_at, None);
    }

    #[test]
    fn inserts_name_each_column_a_row_sets_once_per_row() {
        assert_eq!(
            insert_text(DbBackend::MySql, "tasks", &["id", "status"], 2),
            "INSERT INTO `tasks` (`id`, `status`) VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            insert_text(DbBackend::Sqlite, "tasks", &["id"], 1),
            "INSERT INTO \"tasks\" (\"id\") VALUES (?)"
        );

        let attempt = Attempt::without_response(1, Utc::now(), "refused".into());
        let rows = vec![attempt_row(TaskId::new(), &attempt); 4];
        // The id is the database's to give: every other column, each row.
        let set = attempt::Column::iter().count() - 1;
        for backend in [DbBackend::MySql, DbBackend::Sqlite] {
            let statement = insert_rows(backend, rows.clone());
            assert!(statement.sql.contains("task_id"), "{}", statement.sql);
            assert!(!statement.sql.contains("(`id`"), "{}", statement.sql);
            assert!(!statement.sql.contains("(\"id\""), "{}", statement.sql);
            assert_eq!(statement.sql.matches('?').count(), 4 * set);
            assert_eq!(statement.values.map_or(0, |v| v.0.len()), 4 * set);
        }
    }

    #[test]
    fn grouped_updates_find_tasks_by_the_primary_key_on_mysql() {
        let update = || {
            after_attempt(&Outcome::plain_success_state(Utc::now()))
                .filter(task::Column::Id.is_in([id_bytes(TaskId::new())]))
                .filter(task::Column::Status.eq(TaskStatus::Delivering.as_str()))
        };
        let mysql = by_primary_key(DbBackend::MySql, update());
        assert!(
            mysql
                .sql
                .starts_with("UPDATE `tasks` FORCE INDEX (PRIMARY) SET "),
            "{}",
            mysql.sql
        );
        let sqlite = by_primary_key(DbBackend::Sqlite, update());
        assert!(
            sqlite.sql.starts_with("UPDATE \"tasks\" SET "),
            "{}",
            sqlite.sql
        );
    }

    #[test]
    fn due_time_scans_name_their_index_on_both_backends() {
        let now = Utc::now();
        for scan in [due_scan, scheduled_scan] {
            let mysql = scan(DbBackend::MySql, now, 10).sql;
            assert!(
                mysql.contains("FROM `tasks` FORCE INDEX (`ix_tasks_next_attempt_at`) WHERE"),
                "{mysql}"
            );
            let sqlite = scan(DbBackend::Sqlite, now, 10).sql;
            assert!(
                sqlite.contains("FROM \"tasks\" INDEXED BY \"ix_tasks_next_attempt_at\" WHERE"),
                "{sqlite}"
            );
        }
    }

    async fn in_memory_store() -> SqlTaskStore {
        connect(&StoreOptions {
            url: "sqlite::memory:".into(),
            max_connections: 1,
            connect_timeout: Duration::from_secs(5),
            group_commit: None,
        })
        .await
        .expect("in-memory SQLite")
    }

    #[tokio::test]
    async fn statements_written_atomically_leave_nothing_when_one_fails() {
        let store = in_memory_store().await;
        let insert = |id: u8| {
            Statement::from_string(
                DbBackend::Sqlite,
                format!("INSERT INTO task_failures (task_id, failed_at) VALUES (x'{id:02x}', 1)"),
            )
        };
        let rows = || async {
            store
                .db
                .query_all(Statement::from_string(
                    DbBackend::Sqlite,
                    "SELECT task_id FROM task_failures",
                ))
                .await
                .expect("read")
                .len()
        };
        let refused = write_atomically(&store.writer, vec![insert(1), insert(2), insert(1)]).await;
        assert!(refused.is_err(), "a repeated key must fail the group");
        assert_eq!(rows().await, 0, "nothing of a failed group stays");

        let written = write_atomically(&store.writer, vec![insert(1)]).await;
        assert_eq!(written.expect("written").len(), 1);
        let written = write_atomically(&store.writer, vec![insert(2), insert(3)]).await;
        assert_eq!(written.expect("written").len(), 2);
        assert_eq!(rows().await, 3);
        assert!(write_atomically(&store.writer, vec![insert(3)])
            .await
            .is_err());
        assert!(write_atomically(&store.writer, Vec::new())
            .await
            .expect("nothing")
            .is_empty());
        assert_eq!(rows().await, 3);
    }

    /// SQLite's plan for `statement`, its steps joined by "; ".
    async fn sqlite_plan(store: &SqlTaskStore, statement: Statement) -> String {
        let explain = Statement {
            sql: format!("EXPLAIN QUERY PLAN {}", statement.sql),
            ..statement
        };
        let steps: Vec<String> = store
            .db
            .query_all(explain)
            .await
            .expect("explained")
            .iter()
            .map(|row| row.try_get::<String>("", "detail").expect("detail"))
            .collect();
        steps.join("; ")
    }

    /// SQLite's own plan, on the migrated schema: without the hint it read
    /// every live task through the status index and sorted them.
    #[tokio::test]
    async fn sqlite_reads_due_tasks_through_the_due_time_index_without_sorting() {
        let store = in_memory_store().await;
        let now = Utc::now();
        for scan in [
            due_scan(DbBackend::Sqlite, now, 10),
            scheduled_scan(DbBackend::Sqlite, now, 10),
        ] {
            let plan = sqlite_plan(&store, scan).await;
            assert!(
                plan.contains("USING INDEX ix_tasks_next_attempt_at"),
                "{plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    /// A page of tasks filtered by status or app reads that filter's
    /// index in id order: before, SQLite read every match and sorted them.
    #[tokio::test]
    async fn sqlite_reads_a_filtered_page_in_id_order_without_sorting() {
        let store = in_memory_store().await;
        let filters = [
            TaskFilter {
                status: Some(TaskStatus::Failed),
                ..TaskFilter::default()
            },
            TaskFilter {
                source_app: Some("shop".into()),
                ..TaskFilter::default()
            },
            TaskFilter {
                target_app: Some("billing".into()),
                ..TaskFilter::default()
            },
        ];
        for filter in filters {
            for after in [None, Some(TaskId::new())] {
                let page = PageRequest { after, limit: 50 };
                let plan =
                    sqlite_plan(&store, task_page(&filter, page).build(DbBackend::Sqlite)).await;
                assert!(plan.contains("USING INDEX ix_tasks_"), "{plan}");
                assert!(!plan.contains("TEMP B-TREE"), "{plan}");
            }
        }
    }

    /// The endpoint index holds only event tasks on SQLite, and still
    /// serves the queries that pick an endpoint's tasks.
    #[tokio::test]
    async fn sqlite_finds_an_endpoints_tasks_through_its_partial_index() {
        let store = in_memory_store().await;
        let waiting = task::Entity::find()
            .select_only()
            .column(task::Column::Id)
            .filter(task::Column::Endpoint.eq("orders"))
            .filter(task::Column::Status.is_in(["pending", "retrying"]))
            .filter(task::Column::NextAttemptAt.gt(0))
            .build(DbBackend::Sqlite);
        let plan = sqlite_plan(&store, waiting).await;
        assert!(plan.contains("USING INDEX ix_tasks_endpoint_set"), "{plan}");
    }

    /// An alert check starts from the failure times' window: it read every
    /// failed task through the status index before.
    #[tokio::test]
    async fn sqlite_finds_a_hooks_failures_through_their_time_window() {
        use callback_core::{AlertHook, AlertHookId, AlertKind, TargetUrl};
        let store = in_memory_store().await;
        let now = Utc::now();
        let hook = AlertHook {
            id: AlertHookId::new(),
            kind: AlertKind::Webhook,
            url: TargetUrl::parse("http://127.0.0.1:9/alerts").expect("url"),
            secret: None,
            remark: None,
            enabled: true,
            source_app: Some("shop".into()),
            target_app: None,
            created_at: now,
            updated_at: now,
        };
        let since = now - chrono::TimeDelta::minutes(5);
        for statement in [
            crate::alerts::failures_by_host(&hook, since, now).build(DbBackend::Sqlite),
            crate::alerts::failure_examples(&hook, since, now).build(DbBackend::Sqlite),
        ] {
            // The unary plus applies to the column itself.
            for column in ["status", "source_app"] {
                let unindexed = format!("(+\"tasks\".\"{column}\") = ?");
                assert!(statement.sql.contains(&unindexed), "{}", statement.sql);
            }
            let plan = sqlite_plan(&store, statement).await;
            assert!(
                plan.starts_with("SEARCH task_failures USING INDEX ix_task_failures_failed_at"),
                "{plan}"
            );
            assert!(!plan.contains("ix_tasks_status"), "{plan}");
            assert!(!plan.contains("ix_tasks_source_app"), "{plan}");
        }
    }

    /// Retention's read of succeeded tasks is a range of the status
    /// index up to the first id of the cutoff: before, a pass with nothing
    /// left to delete read every succeeded task. Failed tasks are found
    /// through their failure times.
    #[tokio::test]
    async fn sqlite_finds_purgeable_tasks_without_reading_newer_ones() {
        let store = in_memory_store().await;
        let before = Utc::now() - chrono::TimeDelta::days(7);
        let succeeded = crate::operations::purgeable(TaskStatus::Succeeded, before, 1000)
            .build(DbBackend::Sqlite);
        let plan = sqlite_plan(&store, succeeded).await;
        assert_eq!(
            plan, "SEARCH tasks USING INDEX ix_tasks_status_id (status=? AND id<?)",
            "{plan}"
        );
        let failed =
            crate::operations::purgeable(TaskStatus::Failed, before, 1000).build(DbBackend::Sqlite);
        let plan = sqlite_plan(&store, failed).await;
        assert!(plan.contains("(status=? AND id=?)"), "{plan}");
        assert!(
            plan.contains("SEARCH task_failures USING INDEX ix_task_failures_failed_at"),
            "{plan}"
        );
    }

    /// The failed buckets are counted from the failure times' window: before,
    /// every failed task was read through the status index.
    #[tokio::test]
    async fn sqlite_counts_failed_buckets_from_their_time_window() {
        let store = in_memory_store().await;
        let since = Utc::now() - chrono::TimeDelta::days(3);
        let sizes = crate::operations::failed_bucket_sizes(
            DbBackend::Sqlite,
            callback_core::BucketClock::utc(),
            since,
        );
        let plan = sqlite_plan(&store, sizes).await;
        assert!(
            plan.starts_with("SEARCH f USING INDEX ix_task_failures_failed_at (failed_at>?)"),
            "{plan}"
        );
        assert!(!plan.contains("ix_tasks_status"), "{plan}");
    }

    #[test]
    fn in_lists_are_padded_to_a_few_shapes_with_nulls() {
        let values: Vec<u32> = (0..300).collect();
        let lists = padded_in_lists(&values);
        let sizes: Vec<usize> = lists.iter().map(Vec::len).collect();
        assert_eq!(sizes, [256, 64]);
        let tail: Vec<Option<u32>> = values[256..].iter().copied().map(Some).collect();
        assert_eq!(lists[1][..44], tail[..]);
        assert!(lists[1][44..].iter().all(Option::is_none));
        assert_eq!(
            padded_in_lists(&[7u32, 8, 9]),
            [vec![Some(7), Some(8), Some(9), None]]
        );
        assert_eq!(padded_in_lists(&[7u32]), [vec![Some(7)]]);
        assert!(padded_in_lists::<u32>(&[]).is_empty());
    }
}
