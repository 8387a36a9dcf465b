//! Tasks and their attempts: the `TaskStore` port. Reads, operator
//! transitions (cancel, re-send) and the reconciler's scans are here;
//! intake's writes are in `intake`, leases in `claims`, and each
//! attempt's result in `results`.

mod claims;
mod intake;
pub(crate) mod items;
pub(crate) mod ordering;
mod results;

pub(crate) use results::forget_failures;

use crate::connection::SqlTaskStore;
use crate::db_error::{retrying_deadlocks, unavailable};
use crate::entities::{attempt, idempotency_key, task};
use crate::mapping::{attempt_from_row, id_bytes, ms, task_from_row, task_id, time};
use crate::sql::{by_due_time, cancellation, claimable, status};
use async_trait::async_trait;
use callback_core::{
    Attempt, Cancelled, ClaimedTask, Disposition, Inserted, NewTask, Page, PageRequest, Recorded,
    StoreError, TargetUrl, Task, TaskDetail, TaskFilter, TaskId, TaskStatus, TaskStore,
};
use chrono::{DateTime, Utc};
use ordering::{holds_place, join_end, leave, lock_keys, KeyQueue};
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement, TransactionTrait,
};
use std::time::Duration;

/// What re-sending a task sets: a fresh budget of attempts, due now (or,
/// behind others of its key, waiting), to `target_url` when given.
pub(crate) fn resending(
    target_url: Option<&TargetUrl>,
    now_ms: i64,
    waits: bool,
) -> Vec<(task::Column, SimpleExpr)> {
    let (next_status, due) = if waits {
        (TaskStatus::Waiting, None)
    } else {
        (TaskStatus::Pending, Some(now_ms))
    };
    let mut sets = vec![
        (task::Column::Status, status(next_status)),
        (
            task::Column::AttemptsBase,
            Expr::col(task::Column::AttemptsMade).into(),
        ),
        (task::Column::NextAttemptAt, Expr::value(due)),
        (task::Column::UpdatedAt, Expr::value(now_ms)),
    ];
    if let Some(url) = target_url {
        sets.push((task::Column::Url, Expr::value(url.as_str())));
        sets.push((
            task::Column::UrlHost,
            Expr::value(url.as_url().host_str().map(str::to_string)),
        ));
    }
    sets
}

impl SqlTaskStore {
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
    /// The key a task is ordered on, if any. Its key never changes.
    async fn queue_of(&self, id: TaskId) -> Result<Option<KeyQueue>, StoreError> {
        Ok(self
            .find(id)
            .await?
            .and_then(|task| KeyQueue::of(&task.spec)))
    }

    /// Runs `change` on a task of `queue` in one transaction with the key
    /// locked first; `from` gives the states it applies in, given whether
    /// the task still holds a place on its key. Then says what it did, as
    /// `transition` does, with the task of the key it let start.
    async fn transition_in_order(
        &self,
        id: TaskId,
        queue: &KeyQueue,
        now: DateTime<Utc>,
        change: OrderedChange<'_>,
    ) -> Result<(Task, Option<TaskId>), StoreError> {
        let now_ms = ms(now);
        let applied = retrying_deadlocks(|| async {
            let txn = ordering::begin_ordered(&self.writer).await?;
            let applied = match change.apply(&txn, id, queue, now_ms).await {
                Ok(applied) => applied,
                Err(err) => {
                    let _ = txn.rollback().await;
                    return Err(err);
                }
            };
            if let Changed::Applied { .. } = applied {
                forget_failures(&txn, vec![id_bytes(id)]).await?;
                txn.commit().await.map_err(unavailable)?;
            } else {
                txn.rollback().await.map_err(unavailable)?;
            }
            Ok(applied)
        })
        .await?;
        let current = self.find(id).await?.ok_or(StoreError::NotFound)?;
        match applied {
            Changed::Applied { started } => Ok((current, started)),
            Changed::NotApplicable => Err(StoreError::InvalidState {
                current: current.status,
            }),
        }
    }

    pub(crate) async fn cancel_in_order(
        &self,
        id: TaskId,
        queue: &KeyQueue,
        now: DateTime<Utc>,
    ) -> Result<Cancelled, StoreError> {
        let (task, started) = self
            .transition_in_order(id, queue, now, OrderedChange::Cancel)
            .await?;
        Ok(Cancelled { task, started })
    }

    pub(crate) async fn resend_in_order(
        &self,
        id: TaskId,
        queue: &KeyQueue,
        target_url: Option<&TargetUrl>,
        now: DateTime<Utc>,
    ) -> Result<Task, StoreError> {
        // A re-send takes no task off its key: it starts nothing.
        let (task, _) = self
            .transition_in_order(id, queue, now, OrderedChange::Resend(target_url))
            .await?;
        Ok(task)
    }
}

/// An operator's change to a task with an ordering key.
enum OrderedChange<'a> {
    /// Cancelled from any unfinished state, or failed while it blocks its
    /// key; the next of the key starts when it held the key.
    Cancel,
    /// A failed task that blocks its key is pending again and keeps its
    /// place; any other finished task goes to the key's end.
    Resend(Option<&'a TargetUrl>),
}

/// What an operator's change to a task with an ordering key did.
enum Changed {
    /// The task was not in a state the change applies to.
    NotApplicable,
    /// Applied; `started` is the task of the key it let start, if any.
    Applied { started: Option<TaskId> },
}

impl OrderedChange<'_> {
    /// Applies the change inside `txn`.
    async fn apply(
        &self,
        txn: &impl ConnectionTrait,
        id: TaskId,
        queue: &KeyQueue,
        now_ms: i64,
    ) -> Result<Changed, StoreError> {
        lock_keys(txn, &[queue.clone()].into(), now_ms).await?;
        let holds = holds_place(txn, id).await?;
        let (from, sets): (Vec<TaskStatus>, _) = match self {
            Self::Cancel => {
                let mut from = TaskStatus::CANCELLABLE.to_vec();
                if holds {
                    from.push(TaskStatus::Failed);
                }
                (from, cancellation(now_ms))
            }
            Self::Resend(url) => {
                let waits = !holds && join_end(txn, queue, id, now_ms).await?;
                let from = if holds {
                    vec![TaskStatus::Failed]
                } else {
                    TaskStatus::RESENDABLE.to_vec()
                };
                (from, resending(*url, now_ms, waits))
            }
        };
        let mut update = task::Entity::update_many()
            .filter(task::Column::Id.eq(id_bytes(id)))
            .filter(task::Column::Status.is_in(from.iter().map(|s| s.as_str())));
        for (column, value) in sets {
            update = update.col_expr(column, value);
        }
        if update.exec(txn).await.map_err(unavailable)?.rows_affected != 1 {
            return Ok(Changed::NotApplicable);
        }
        let started = if holds && matches!(self, Self::Cancel) {
            leave(txn, queue, id, now_ms).await?
        } else {
            None
        };
        Ok(Changed::Applied { started })
    }
}

/// A page of tasks, newest first, and one more to tell whether another
/// page follows. Each filter's index orders its tasks by id (see migration
/// `m20261123_000006`), so a page reads its own rows, not every match.
pub(crate) fn task_page(filter: &TaskFilter, page: PageRequest) -> sea_orm::Select<task::Entity> {
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
    if let Some(host) = &filter.url_host {
        query = query.filter(task::Column::UrlHost.eq(host.to_ascii_lowercase()));
    }
    if let Some(part) = &filter.url_contains {
        query = query.filter(task::Column::Url.contains(part.as_str()));
    }
    if let Some(key) = &filter.idempotency_key {
        // Through the keys' own table (its primary key): `tasks` has no
        // index on the column.
        let owner = sea_orm::sea_query::Query::select()
            .column(idempotency_key::Column::TaskId)
            .from(idempotency_key::Entity)
            .and_where(idempotency_key::Column::IdempotencyKey.eq(key.as_str()))
            .to_owned();
        query = query.filter(task::Column::Id.in_subquery(owner));
    }
    // Ids are UUID v7, ordered by creation time: a time range is a range
    // of ids, read through the primary key like any page.
    if let Some(at) = filter.created_from {
        query = query.filter(task::Column::Id.gte(id_bytes(TaskId::first_made_at(at))));
    }
    if let Some(at) = filter.created_to {
        query = query.filter(task::Column::Id.lt(id_bytes(TaskId::first_made_at(at))));
    }
    if filter.failed_from.is_some() || filter.failed_to.is_some() {
        query = query.filter(task::Column::Id.in_subquery(crate::sql::failed_between(
            filter.failed_from,
            filter.failed_to,
        )));
    }
    if let Some(after) = page.after {
        query = query.filter(task::Column::Id.lt(id_bytes(after)));
    }
    query
        .order_by_desc(task::Column::Id)
        .limit(u64::from(page.limit.max(1)) + 1)
}

/// The reconciler's pass: due tasks nobody holds, soonest first.
pub(crate) fn due_scan(backend: DbBackend, now: DateTime<Utc>, limit: u32) -> Statement {
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
pub(crate) fn scheduled_scan(backend: DbBackend, now: DateTime<Utc>, limit: u32) -> Statement {
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

#[async_trait]
impl TaskStore for SqlTaskStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(unavailable)
    }

    async fn insert(&self, new: NewTask) -> Result<Inserted, StoreError> {
        self.insert_one(new).await
    }

    async fn insert_batch(&self, tasks: Vec<NewTask>) -> Result<Vec<Inserted>, StoreError> {
        self.insert_many(tasks).await
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
        let waiting_for = self.waiting_for(&task).await?;
        Ok(Some(TaskDetail {
            task,
            attempts,
            waiting_for,
        }))
    }

    async fn list(&self, filter: &TaskFilter, page: PageRequest) -> Result<Page<Task>, StoreError> {
        let limit = u64::from(page.limit.max(1));
        let backend = self.db.get_database_backend();
        let rows = task::Entity::find()
            .from_raw_sql(crate::sql::without_index_merge(
                backend,
                task_page(filter, page),
            ))
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
        self.claim_one(id, now, lease_margin).await
    }

    async fn complete(
        &self,
        claim: &ClaimedTask,
        attempt: &Attempt,
        next: Disposition,
        now: DateTime<Utc>,
        lease_margin: Duration,
    ) -> Result<Recorded, StoreError> {
        self.complete_one(claim, attempt, next, now, lease_margin)
            .await
    }

    async fn release(
        &self,
        claim: &ClaimedTask,
        interrupted: &Attempt,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.release_claim(claim, interrupted, now).await
    }

    async fn defer(
        &self,
        claim: &ClaimedTask,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.defer_claim(claim, until, now).await
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

    async fn cancel(&self, id: TaskId, now: DateTime<Utc>) -> Result<Cancelled, StoreError> {
        if let Some(queue) = self.queue_of(id).await? {
            return self.cancel_in_order(id, &queue, now).await;
        }
        let task = self
            .transition(id, &TaskStatus::CANCELLABLE, cancellation(ms(now)))
            .await?;
        Ok(Cancelled {
            task,
            started: None,
        })
    }

    async fn resend(&self, id: TaskId, now: DateTime<Utc>) -> Result<Task, StoreError> {
        if let Some(queue) = self.queue_of(id).await? {
            return self.resend_in_order(id, &queue, None, now).await;
        }
        self.transition(id, &TaskStatus::RESENDABLE, resending(None, ms(now), false))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
