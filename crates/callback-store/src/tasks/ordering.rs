//! Ordered delivery per key (ADR 5). A key's row in `ordering_keys` is
//! locked by every transaction that changes the key's tasks, before any
//! task row: acceptance order is the order in which intake took that lock,
//! whatever instance made the task's id, and no two transactions wait on
//! each other. `ordered_tasks` holds the tasks that have not yet ended for
//! their key, by place; the lowest place is the one delivered (or failed
//! and blocking), the others are `waiting`. A task leaves when it ends for
//! its key, and the lowest left, if waiting, becomes pending in the same
//! transaction.

use crate::connection::SqlTaskStore;
use crate::db_error::unavailable;
use crate::entities::{ordered_task, ordering_key, task};
use crate::mapping::{id_bytes, task_id};
use crate::sql::{
    by_primary_key, insert_rows, is_in_padded, select_by_primary_key, statement_chunks, status,
};
use callback_core::{
    ClaimedTask, LeaseToken, NewTask, OnFailure, StoreError, Task, TaskId, TaskSpec, TaskStatus,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, IsolationLevel, QueryFilter, QuerySelect, Statement, TransactionTrait, Value,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The sequence a keyed task is on: its key, apart for each endpoint (''
/// for plain tasks), so that a slow endpoint does not hold another's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct KeyQueue {
    endpoint: String,
    key: String,
}

impl KeyQueue {
    pub(crate) fn of(spec: &TaskSpec) -> Option<Self> {
        let ordering = spec.ordering.as_ref()?;
        Some(Self {
            endpoint: spec
                .endpoint
                .as_ref()
                .map(|e| e.as_str().to_string())
                .unwrap_or_default(),
            key: ordering.key.as_str().to_string(),
        })
    }

    /// The key of a task's row, from its `endpoint` and `ordering_key`.
    pub(crate) fn from_columns(endpoint: Option<String>, key: String) -> Self {
        Self {
            endpoint: endpoint.unwrap_or_default(),
            key,
        }
    }

    fn values(&self) -> [Value; 2] {
        [self.endpoint.clone().into(), self.key.clone().into()]
    }
}

/// Whether a task that moved to `status` has ended for its key: the next
/// may start. A failure ends it only when its key skips failures.
pub(crate) fn ends_for_key(status: TaskStatus, on_failure: OnFailure) -> bool {
    match status {
        TaskStatus::Succeeded | TaskStatus::Cancelled => true,
        TaskStatus::Failed => on_failure == OnFailure::Skip,
        _ => false,
    }
}

/// `queues` as a condition on the rows of `ordering_keys`: for each
/// endpoint, its keys as an `IN` list, which both backends read as ranges
/// of the primary key (a row-value `IN` may be read as a full scan, and an
/// UPDATE that scans locks every row it reads). The lists are padded
/// (`is_in_padded`), so that a statement is prepared once whatever the
/// number of keys, and MariaDB tests each row against a sorted list rather
/// than against every key in turn. With ORed equalities, one a key, and
/// unpadded id lists, preparing statements anew and comparing strings took
/// 8-10% of MariaDB's CPU in the ordered benchmark. Past a couple of
/// hundred keys MariaDB may still choose to scan: its statements go
/// through `by_primary_key`.
fn on_keys<'a>(queues: impl IntoIterator<Item = &'a KeyQueue>) -> Condition {
    let mut by_endpoint: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for queue in queues {
        by_endpoint
            .entry(queue.endpoint.as_str())
            .or_default()
            .push(queue.key.clone());
    }
    by_endpoint
        .into_iter()
        .fold(Condition::any(), |any, (endpoint, keys)| {
            any.add(
                Condition::all()
                    .add(ordering_key::Column::Endpoint.eq(endpoint))
                    .add(is_in_padded(ordering_key::Column::OrderingKey, &keys)),
            )
        })
}

/// Locks the rows of `queues`, in one statement that takes them in primary
/// key order (`add_to_backlogs`, adding nothing), so that two transactions
/// never wait on each other's keys. A key without a row (its endpoint was
/// deleted) locks nothing, and has nothing to guard.
pub(crate) async fn lock_keys(
    txn: &impl ConnectionTrait,
    queues: &BTreeSet<KeyQueue>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let unchanged = queues.iter().map(|queue| (queue.clone(), 0)).collect();
    add_to_backlogs(txn, &unchanged, now_ms).await
}

/// Gives each keyed task of `tasks` the next place on its key, in the order
/// given, and answers the ids of those that wait behind another. Locks the
/// keys' rows (creating those missing) in key order, inside the caller's
/// transaction, before it writes any task.
pub(crate) async fn take_places(
    txn: &impl ConnectionTrait,
    tasks: &[&NewTask],
    now_ms: i64,
) -> Result<HashSet<TaskId>, StoreError> {
    let mut by_queue: BTreeMap<KeyQueue, Vec<TaskId>> = BTreeMap::new();
    for task in tasks {
        if let Some(queue) = KeyQueue::of(&task.spec) {
            by_queue.entry(queue).or_default().push(task.id);
        }
    }
    place(txn, &by_queue, now_ms).await
}

/// Puts a task that had ended for its key (an operator re-sends it) at the
/// key's end; answers whether it waits behind another.
pub(crate) async fn join_end(
    txn: &impl ConnectionTrait,
    queue: &KeyQueue,
    id: TaskId,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let one = BTreeMap::from([(queue.clone(), vec![id])]);
    Ok(!place(txn, &one, now_ms).await?.is_empty())
}

/// Puts each list of ids at the end of its key, in order; answers those
/// that wait. The keys' rows are created or moved on by as many places and
/// answered in the same statement, and the places written: two statements
/// however many keys (more past the largest statement size). MySQL 8,
/// which cannot answer rows from an INSERT, reads them back in a third.
async fn place(
    txn: &impl ConnectionTrait,
    by_queue: &BTreeMap<KeyQueue, Vec<TaskId>>,
    now_ms: i64,
) -> Result<HashSet<TaskId>, StoreError> {
    if by_queue.is_empty() {
        return Ok(HashSet::new());
    }
    let backend = txn.get_database_backend();
    // Rows are written in the map's (the primary key's) order, which is
    // the order their locks are taken in; in chunks of the usual sizes, so
    // that each statement's text is one of a few.
    let queues: Vec<(&KeyQueue, &Vec<TaskId>)> = by_queue.iter().collect();
    // MariaDB runs what the comment holds; MySQL skips it.
    let returning = match backend {
        DbBackend::MySql => " /*M!100500 RETURNING endpoint, ordering_key, next_seq, backlog */",
        _ => " RETURNING endpoint, ordering_key, next_seq, backlog",
    };
    let mut sequences: HashMap<KeyQueue, (i64, i64)> = HashMap::with_capacity(queues.len());
    for chunk in statement_chunks(&queues) {
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 5);
        for (queue, ids) in chunk {
            let n = ids.len() as i64;
            let [endpoint, key] = queue.values();
            values.extend([endpoint, key, n.into(), n.into(), now_ms.into()]);
        }
        let rows = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let upsert = match backend {
            DbBackend::MySql => format!(
                "INSERT INTO ordering_keys (endpoint, ordering_key, next_seq, backlog, touched_at) \
                 VALUES {rows} ON DUPLICATE KEY UPDATE next_seq = next_seq + VALUES(next_seq), \
                 backlog = backlog + VALUES(backlog), touched_at = VALUES(touched_at)"
            ),
            _ => format!(
                "INSERT INTO ordering_keys (endpoint, ordering_key, next_seq, backlog, touched_at) \
                 VALUES {rows} ON CONFLICT (endpoint, ordering_key) DO UPDATE SET \
                 next_seq = next_seq + excluded.next_seq, backlog = backlog + excluded.backlog, \
                 touched_at = excluded.touched_at"
            ),
        };
        let rows = txn
            .query_all(Statement::from_sql_and_values(
                backend,
                upsert + returning,
                values,
            ))
            .await
            .map_err(unavailable)?;
        for row in rows {
            let endpoint: String = row.try_get_by_index(0).map_err(unavailable)?;
            let key: String = row.try_get_by_index(1).map_err(unavailable)?;
            let next_seq: i64 = row.try_get_by_index(2).map_err(unavailable)?;
            let backlog: i64 = row.try_get_by_index(3).map_err(unavailable)?;
            sequences.insert(
                KeyQueue::from_columns(Some(endpoint), key),
                (next_seq, backlog),
            );
        }
    }
    if sequences.is_empty() {
        // A locking read: the latest rows, not a snapshot that may be
        // older than the lock.
        let mut read = ordering_key::Entity::find().filter(on_keys(by_queue.keys()));
        if backend == DbBackend::MySql {
            read = read.lock_exclusive();
        }
        sequences.extend(
            ordering_key::Entity::find()
                .from_raw_sql(select_by_primary_key(backend, read))
                .all(txn)
                .await
                .map_err(unavailable)?
                .into_iter()
                .map(|row| {
                    (
                        KeyQueue::from_columns(Some(row.endpoint), row.ordering_key),
                        (row.next_seq, row.backlog),
                    )
                }),
        );
    }
    let mut waiting = HashSet::new();
    let mut places = Vec::new();
    for (queue, ids) in by_queue {
        let n = ids.len() as i64;
        let (next_seq, backlog) = sequences.get(queue).copied().ok_or_else(|| {
            StoreError::Corrupt("an ordering key's row vanished inside its own lock".into())
        })?;
        let (first, ahead) = (next_seq - n, backlog - n);
        for (i, &id) in ids.iter().enumerate() {
            // The first of them runs when no task was on the key before.
            if ahead > 0 || i > 0 {
                waiting.insert(id);
            }
            places.push(ordered_task::ActiveModel {
                task_id: sea_orm::ActiveValue::Set(id_bytes(id)),
                endpoint: sea_orm::ActiveValue::Set(queue.endpoint.clone()),
                ordering_key: sea_orm::ActiveValue::Set(queue.key.clone()),
                seq: sea_orm::ActiveValue::Set(first + i as i64),
            });
        }
    }
    for chunk in statement_chunks(&places) {
        txn.execute(insert_rows(backend, chunk.to_vec()))
            .await
            .map_err(unavailable)?;
    }
    Ok(waiting)
}

/// Whether `id` has not yet ended for its key: it is on it, delivered now
/// or failed and blocking, or waiting. The key must be locked.
pub(crate) async fn holds_place(
    txn: &impl ConnectionTrait,
    id: TaskId,
) -> Result<bool, StoreError> {
    let mut read = ordered_task::Entity::find_by_id(id_bytes(id));
    if txn.get_database_backend() == DbBackend::MySql {
        read = read.lock_exclusive();
    }
    Ok(read.one(txn).await.map_err(unavailable)?.is_some())
}

/// Takes `id`, which holds a place (`holds_place`), off its key, which
/// must be locked. Where the task then first on the key is waiting,
/// nothing runs on the key any more: that task becomes pending, due now,
/// and is answered. Taking off a waiting task thus starts nothing, since
/// its key's first task is still there.
pub(crate) async fn leave(
    txn: &impl ConnectionTrait,
    queue: &KeyQueue,
    id: TaskId,
    now_ms: i64,
) -> Result<Option<TaskId>, StoreError> {
    drop_places(txn, &[id]).await?;
    add_to_backlogs(txn, &BTreeMap::from([(queue.clone(), -1)]), now_ms).await?;
    let first: Option<TaskId> = first_ids_on(txn, [queue])
        .await?
        .into_iter()
        .map(|(_, id)| id)
        .next();
    let ids: Vec<Vec<u8>> = first.iter().map(|id| id_bytes(*id)).collect();
    let started = start_waiting(txn, &ids, now_ms, |start| {
        start.col_expr(task::Column::Status, status(TaskStatus::Pending))
    })
    .await?;
    Ok(first.filter(|_| started == 1))
}

/// Adds each key's amount to its backlog (a negative one shortens it), and
/// so locks the keys' rows, in primary key order within each statement:
/// one statement per distinct amount, nearly always one, since a key runs
/// one task at a time.
pub(crate) async fn add_to_backlogs(
    txn: &impl ConnectionTrait,
    amounts: &BTreeMap<KeyQueue, i64>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let backend = txn.get_database_backend();
    let mut by_amount: BTreeMap<i64, Vec<&KeyQueue>> = BTreeMap::new();
    for (queue, n) in amounts {
        by_amount.entry(*n).or_default().push(queue);
    }
    for (n, queues) in by_amount {
        let add = ordering_key::Entity::update_many()
            .col_expr(
                ordering_key::Column::Backlog,
                Expr::col(ordering_key::Column::Backlog).add(n),
            )
            .col_expr(ordering_key::Column::TouchedAt, Expr::value(now_ms))
            .filter(on_keys(queues));
        txn.execute(by_primary_key(backend, add))
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

/// Deletes the places of tasks that ended for their keys.
pub(crate) async fn drop_places(
    txn: &impl ConnectionTrait,
    ids: &[TaskId],
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<Vec<u8>> = ids.iter().map(|id| id_bytes(*id)).collect();
    ordered_task::Entity::delete_many()
        .filter(is_in_padded(ordered_task::Column::TaskId, &ids))
        .exec(txn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// Claims the task first on each of `queues`, where it is waiting, under
/// `lease` held for its timeout and `margin_ms` more, for the caller to
/// attempt at once: the worker whose attempt ended the task before it goes
/// on with it, with no claim of its own. Should nobody attempt it, the
/// lease ends and it is due again. Answers the claimed tasks by key.
pub(crate) async fn start_leased<'a>(
    txn: &impl ConnectionTrait,
    queues: impl IntoIterator<Item = &'a KeyQueue>,
    now_ms: i64,
    lease: LeaseToken,
    margin_ms: i64,
) -> Result<HashMap<KeyQueue, ClaimedTask>, StoreError> {
    let firsts: HashMap<TaskId, KeyQueue> = first_ids_on(txn, queues)
        .await?
        .into_iter()
        .map(|(queue, id)| (id, queue))
        .collect();
    let ids: Vec<Vec<u8>> = firsts.keys().map(|id| id_bytes(*id)).collect();
    let token = lease.0.as_bytes().to_vec();
    let claimed = start_waiting(txn, &ids, now_ms, |start| {
        start
            .col_expr(task::Column::Status, status(TaskStatus::Delivering))
            .col_expr(task::Column::LeaseToken, Expr::value(token.clone()))
            .col_expr(
                task::Column::LeaseUntil,
                Expr::col(task::Column::TimeoutMs).add(now_ms.saturating_add(margin_ms)),
            )
    })
    .await?;
    if claimed == 0 {
        return Ok(HashMap::new());
    }
    // The ones that were waiting, now held under `lease`.
    let rows = task::Entity::find()
        .filter(is_in_padded(task::Column::Id, &ids))
        .filter(task::Column::LeaseToken.eq(token))
        .all(txn)
        .await
        .map_err(unavailable)?;
    let mut claimed = HashMap::new();
    for row in rows {
        let task = crate::mapping::task_from_row(row)?;
        if let Some(queue) = firsts.get(&task.id) {
            claimed.insert(queue.clone(), ClaimedTask::leased_at_intake(task, lease));
        }
    }
    Ok(claimed)
}

/// Starts those of `ids` (as stored) still waiting, due now, as `becomes`
/// says (the status, and a lease when claimed); answers how many started.
async fn start_waiting(
    txn: &impl ConnectionTrait,
    ids: &[Vec<u8>],
    now_ms: i64,
    becomes: impl FnOnce(sea_orm::UpdateMany<task::Entity>) -> sea_orm::UpdateMany<task::Entity>,
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let start = task::Entity::update_many()
        .col_expr(task::Column::NextAttemptAt, Expr::value(now_ms))
        .col_expr(task::Column::UpdatedAt, Expr::value(now_ms))
        .filter(is_in_padded(task::Column::Id, ids))
        .filter(task::Column::Status.eq(TaskStatus::Waiting.as_str()));
    let backend = txn.get_database_backend();
    Ok(txn
        .execute(by_primary_key(backend, becomes(start)))
        .await
        .map_err(unavailable)?
        .rows_affected())
}

/// The task first on each of `queues`: a lookup of one index entry per
/// key, however many wait on it. Inside a keyed write the transaction reads
/// committed rows (`begin_ordered`), so this sees every place taken before
/// the key's lock was.
async fn first_ids_on<'a>(
    conn: &impl ConnectionTrait,
    queues: impl IntoIterator<Item = &'a KeyQueue>,
) -> Result<Vec<(KeyQueue, TaskId)>, StoreError> {
    let backend = conn.get_database_backend();
    let queues: Vec<&KeyQueue> = queues.into_iter().collect();
    if queues.is_empty() {
        return Ok(Vec::new());
    }
    let first = Expr::cust(
        "(SELECT p.task_id FROM ordered_tasks p \
         WHERE p.endpoint = ordering_keys.endpoint AND p.ordering_key = ordering_keys.ordering_key \
         ORDER BY p.seq LIMIT 1)",
    );
    let firsts = ordering_key::Entity::find()
        .select_only()
        .column(ordering_key::Column::Endpoint)
        .column(ordering_key::Column::OrderingKey)
        .expr(first)
        .filter(on_keys(queues));
    let mut statement = select_by_primary_key(backend, firsts);
    if backend == DbBackend::MySql {
        // Each key is looked up once, so MariaDB's cache of the subquery's
        // answers by key would only be written, never read.
        statement.sql = format!(
            "/*M! SET STATEMENT optimizer_switch='subquery_cache=off' FOR */ {}",
            statement.sql
        );
    }
    let rows = conn.query_all(statement).await.map_err(unavailable)?;
    let mut firsts = Vec::new();
    for row in &rows {
        let endpoint: String = row.try_get_by_index(0).map_err(unavailable)?;
        let key: String = row.try_get_by_index(1).map_err(unavailable)?;
        let first: Option<Vec<u8>> = row.try_get_by_index(2).map_err(unavailable)?;
        if let Some(first) = first {
            firsts.push((
                KeyQueue::from_columns(Some(endpoint), key),
                task_id(&first)?,
            ));
        }
    }
    Ok(firsts)
}

/// Begins a transaction that changes keyed tasks. On MariaDB it reads
/// committed rows, not a snapshot taken at its first read: every read of a
/// key's places comes after the key's lock, and must see what the
/// transaction that held the lock before committed. Fewer gap locks follow
/// too, and so fewer deadlocks between intakes of neighbouring keys.
pub(crate) async fn begin_ordered(
    db: &DatabaseConnection,
) -> Result<DatabaseTransaction, StoreError> {
    let isolation =
        (db.get_database_backend() == DbBackend::MySql).then_some(IsolationLevel::ReadCommitted);
    db.begin_with_config(isolation, None)
        .await
        .map_err(unavailable)
}

impl SqlTaskStore {
    /// For a waiting task: the task first on its key, which it waits for.
    pub(super) async fn waiting_for(&self, task: &Task) -> Result<Option<TaskId>, StoreError> {
        if task.status != TaskStatus::Waiting {
            return Ok(None);
        }
        match KeyQueue::of(&task.spec) {
            Some(queue) => Ok(first_ids_on(&self.db, [&queue])
                .await?
                .into_iter()
                .next()
                .map(|(_, id)| id)),
            None => Ok(None),
        }
    }
}

/// Sets a task's row to wait: no due time, so the reconciler's scans of due
/// tasks never read it.
fn waiting_row(mut row: task::ActiveModel) -> task::ActiveModel {
    row.status = sea_orm::ActiveValue::Set(TaskStatus::Waiting.as_str().into());
    row.next_attempt_at = sea_orm::ActiveValue::Set(None);
    row.lease_token = sea_orm::ActiveValue::Set(None);
    row.lease_until = sea_orm::ActiveValue::Set(None);
    row
}

/// The row of a new task, waiting when others of its key are ahead of it.
pub(crate) fn row_of(new: &NewTask, waiting: &HashSet<TaskId>) -> task::ActiveModel {
    let row = crate::mapping::new_task_row(new);
    if waiting.contains(&new.id) {
        waiting_row(row)
    } else {
        row
    }
}

/// The task as stored when it waits.
pub(crate) fn waiting_task(mut task: Task) -> Task {
    task.status = TaskStatus::Waiting;
    task.next_attempt_at = None;
    task
}

/// Deletes the keys of endpoint `name` with their places: its tasks are
/// cancelled in the same transaction.
pub(crate) async fn forget_endpoint(
    txn: &impl ConnectionTrait,
    name: &str,
) -> Result<(), StoreError> {
    let backend = txn.get_database_backend();
    for table in ["ordered_tasks", "ordering_keys"] {
        txn.execute(Statement::from_sql_and_values(
            backend,
            format!("DELETE FROM {table} WHERE endpoint = ?"),
            [name.into()],
        ))
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(endpoint: &str, keys: std::ops::Range<usize>) -> Vec<KeyQueue> {
        keys.map(|k| KeyQueue {
            endpoint: endpoint.into(),
            key: format!("key-{k}"),
        })
        .collect()
    }

    fn backlog_update(queues: &[KeyQueue]) -> Statement {
        let update = ordering_key::Entity::update_many()
            .col_expr(
                ordering_key::Column::Backlog,
                Expr::col(ordering_key::Column::Backlog).add(-1),
            )
            .filter(on_keys(queues));
        by_primary_key(DbBackend::MySql, update)
    }

    #[test]
    fn a_statement_on_keys_has_one_text_for_any_number_of_keys_up_to_its_size() {
        let five = backlog_update(&queues("", 0..5));
        let seven = backlog_update(&queues("", 10..17));
        assert_eq!(five.sql, seven.sql);
        assert_eq!(five.sql.matches('?').count(), 1 + 1 + 8, "{}", five.sql);
        let nine = backlog_update(&queues("", 0..9));
        assert_ne!(five.sql, nine.sql);
    }

    #[test]
    fn keys_are_listed_apart_for_each_endpoint() {
        let mut both = queues("orders", 0..3);
        both.extend(queues("billing", 0..2));
        let sql = backlog_update(&both).sql;
        assert_eq!(sql.matches("`ordering_key` IN (").count(), 2, "{sql}");
        assert_eq!(sql.matches("`endpoint` = ?").count(), 2, "{sql}");
    }

    #[test]
    fn a_task_ends_for_its_key_on_success_cancel_or_a_skipped_failure() {
        for on_failure in [OnFailure::Block, OnFailure::Skip] {
            assert!(ends_for_key(TaskStatus::Succeeded, on_failure));
            assert!(ends_for_key(TaskStatus::Cancelled, on_failure));
            assert!(!ends_for_key(TaskStatus::Retrying, on_failure));
            assert!(!ends_for_key(TaskStatus::Pending, on_failure));
        }
        assert!(ends_for_key(TaskStatus::Failed, OnFailure::Skip));
        assert!(!ends_for_key(TaskStatus::Failed, OnFailure::Block));
    }
}
