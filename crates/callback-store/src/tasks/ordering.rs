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
use crate::entities::{ordered_task, task};
use crate::mapping::{id_bytes, task_id};
use crate::sql::{insert_rows, statement_chunks, status};
use callback_core::{NewTask, OnFailure, StoreError, Task, TaskId, TaskSpec, TaskStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement, Value,
};
use std::collections::{BTreeMap, BTreeSet, HashSet};

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

/// A locking read on MySQL: it reads the latest committed rows, not the
/// transaction's snapshot, which may be older than the key's lock. SQLite
/// has one writer, whose transaction sees everything committed.
fn locking(backend: DbBackend, sql: &str) -> String {
    match backend {
        DbBackend::MySql => format!("{sql} FOR UPDATE"),
        _ => sql.to_string(),
    }
}

/// Locks the rows of `queues`, always in the same order (the set's), so
/// that two transactions never wait on each other's keys. A key without a
/// row (its endpoint was deleted) locks nothing, and has nothing to guard.
pub(crate) async fn lock_keys(
    txn: &impl ConnectionTrait,
    queues: &BTreeSet<KeyQueue>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let backend = txn.get_database_backend();
    for queue in queues {
        let [endpoint, key] = queue.values();
        txn.execute(Statement::from_sql_and_values(
            backend,
            "UPDATE ordering_keys SET touched_at = ? WHERE endpoint = ? AND ordering_key = ?",
            [now_ms.into(), endpoint, key],
        ))
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}

/// Gives each keyed task of `tasks` the next place on its key, in the order
/// given, and answers the ids of those that wait behind another. Locks the
/// keys' rows (creating those missing) in the set's order, inside the
/// caller's transaction, before it writes any task.
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
    let mut waiting = HashSet::new();
    for (queue, ids) in by_queue {
        waiting.extend(place(txn, &queue, &ids, now_ms).await?);
    }
    Ok(waiting)
}

/// Puts a task that had ended for its key (an operator re-sends it) at the
/// key's end; answers whether it waits behind another.
pub(crate) async fn join_end(
    txn: &impl ConnectionTrait,
    queue: &KeyQueue,
    id: TaskId,
    now_ms: i64,
) -> Result<bool, StoreError> {
    Ok(!place(txn, queue, &[id], now_ms).await?.is_empty())
}

/// Puts `ids` at the end of `queue`, in order; answers those that wait.
async fn place(
    txn: &impl ConnectionTrait,
    queue: &KeyQueue,
    ids: &[TaskId],
    now_ms: i64,
) -> Result<Vec<TaskId>, StoreError> {
    let (first, ahead) = reserve_places(txn, queue, ids.len() as i64, now_ms).await?;
    let places: Vec<ordered_task::ActiveModel> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| ordered_task::ActiveModel {
            task_id: sea_orm::ActiveValue::Set(id_bytes(id)),
            endpoint: sea_orm::ActiveValue::Set(queue.endpoint.clone()),
            ordering_key: sea_orm::ActiveValue::Set(queue.key.clone()),
            seq: sea_orm::ActiveValue::Set(first + i as i64),
        })
        .collect();
    let backend = txn.get_database_backend();
    for chunk in statement_chunks(&places) {
        txn.execute(insert_rows(backend, chunk.to_vec()))
            .await
            .map_err(unavailable)?;
    }
    // The first of them runs when no task was on the key before.
    let skip = usize::from(ahead == 0);
    Ok(ids.iter().skip(skip).copied().collect())
}

/// Takes `n` places on `queue`: answers the first, and how many tasks were
/// on the key before them.
async fn reserve_places(
    txn: &impl ConnectionTrait,
    queue: &KeyQueue,
    n: i64,
    now_ms: i64,
) -> Result<(i64, i64), StoreError> {
    let backend = txn.get_database_backend();
    let upsert = match backend {
        DbBackend::MySql => {
            "INSERT INTO ordering_keys (endpoint, ordering_key, next_seq, backlog, touched_at) \
             VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE next_seq = next_seq + VALUES(next_seq), \
             backlog = backlog + VALUES(backlog), touched_at = VALUES(touched_at)"
        }
        _ => {
            "INSERT INTO ordering_keys (endpoint, ordering_key, next_seq, backlog, touched_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (endpoint, ordering_key) DO UPDATE SET \
             next_seq = next_seq + excluded.next_seq, backlog = backlog + excluded.backlog, \
             touched_at = excluded.touched_at"
        }
    };
    let [endpoint, key] = queue.values();
    txn.execute(Statement::from_sql_and_values(
        backend,
        upsert,
        [
            endpoint.clone(),
            key.clone(),
            n.into(),
            n.into(),
            now_ms.into(),
        ],
    ))
    .await
    .map_err(unavailable)?;
    let row = txn
        .query_one(Statement::from_sql_and_values(
            backend,
            locking(
                backend,
                "SELECT next_seq, backlog FROM ordering_keys WHERE endpoint = ? AND ordering_key = ?",
            ),
            [endpoint, key],
        ))
        .await
        .map_err(unavailable)?
        .ok_or_else(|| {
            StoreError::Corrupt("an ordering key's row vanished inside its own lock".into())
        })?;
    let next_seq: i64 = row.try_get_by_index(0).map_err(unavailable)?;
    let backlog: i64 = row.try_get_by_index(1).map_err(unavailable)?;
    Ok((next_seq - n, backlog - n))
}

/// Whether `id` has not yet ended for its key: it is on it, delivered now
/// or failed and blocking, or waiting. The key must be locked.
pub(crate) async fn holds_place(
    txn: &impl ConnectionTrait,
    id: TaskId,
) -> Result<bool, StoreError> {
    let backend = txn.get_database_backend();
    Ok(txn
        .query_one(Statement::from_sql_and_values(
            backend,
            locking(backend, "SELECT seq FROM ordered_tasks WHERE task_id = ?"),
            [id_bytes(id).into()],
        ))
        .await
        .map_err(unavailable)?
        .is_some())
}

/// Takes `id` off its key, which must be locked. When the task now first on
/// the key is waiting, nothing runs on the key any more: that task becomes
/// pending, due now, and its id is the answer. Taking off a waiting task
/// thus promotes nothing, since the key's first task is still there.
pub(crate) async fn leave(
    txn: &impl ConnectionTrait,
    queue: &KeyQueue,
    id: TaskId,
    now_ms: i64,
) -> Result<Option<TaskId>, StoreError> {
    let backend = txn.get_database_backend();
    let left = ordered_task::Entity::delete_by_id(id_bytes(id))
        .exec(txn)
        .await
        .map_err(unavailable)?;
    if left.rows_affected == 0 {
        return Ok(None);
    }
    let [endpoint, key] = queue.values();
    txn.execute(Statement::from_sql_and_values(
        backend,
        "UPDATE ordering_keys SET backlog = backlog - 1, touched_at = ? \
         WHERE endpoint = ? AND ordering_key = ?",
        [now_ms.into(), endpoint.clone(), key.clone()],
    ))
    .await
    .map_err(unavailable)?;
    let Some(first) = first_on(txn, queue, true).await? else {
        return Ok(None);
    };
    let promoted = task::Entity::update_many()
        .col_expr(task::Column::Status, status(TaskStatus::Pending))
        .col_expr(task::Column::NextAttemptAt, Expr::value(now_ms))
        .col_expr(task::Column::UpdatedAt, Expr::value(now_ms))
        .filter(task::Column::Id.eq(id_bytes(first)))
        .filter(task::Column::Status.eq(TaskStatus::Waiting.as_str()))
        .exec(txn)
        .await
        .map_err(unavailable)?;
    Ok((promoted.rows_affected == 1).then_some(first))
}

/// The task first on `queue`: the one delivered now, or failed and
/// blocking, or (when nothing runs) the next to run.
async fn first_on(
    conn: &impl ConnectionTrait,
    queue: &KeyQueue,
    lock: bool,
) -> Result<Option<TaskId>, StoreError> {
    let backend = conn.get_database_backend();
    let mut select = ordered_task::Entity::find()
        .select_only()
        .column(ordered_task::Column::TaskId)
        .filter(ordered_task::Column::Endpoint.eq(queue.endpoint.as_str()))
        .filter(ordered_task::Column::OrderingKey.eq(queue.key.as_str()))
        .order_by_asc(ordered_task::Column::Seq)
        .limit(1);
    if lock && backend == DbBackend::MySql {
        select = select.lock_exclusive();
    }
    let first: Option<Vec<u8>> = select.into_tuple().one(conn).await.map_err(unavailable)?;
    first.as_deref().map(task_id).transpose()
}

impl SqlTaskStore {
    /// For a waiting task: the task first on its key, which it waits for.
    pub(super) async fn waiting_for(&self, task: &Task) -> Result<Option<TaskId>, StoreError> {
        if task.status != TaskStatus::Waiting {
            return Ok(None);
        }
        match KeyQueue::of(&task.spec) {
            Some(queue) => first_on(&self.db, &queue, false).await,
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
