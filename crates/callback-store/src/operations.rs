//! `OperatorStore` on sea-orm: bulk re-send and cancel in batches, failed
//! buckets computed from failure times, retention.

use crate::db_error::{is_unique_violation, unavailable};
use crate::entities::{attempt, failed_bucket, idempotency_key, ordered_task, ordering_key, task};
use crate::mapping::{corrupt, id_bytes, ms, task_id, time};
use crate::sql::cancellation;
use crate::tasks::ordering::KeyQueue;
use crate::tasks::{forget_failures, resending};
use crate::SqlTaskStore;
use async_trait::async_trait;
use callback_core::{
    Backlog, BucketClock, BulkFilter, CancelledMany, FailedBucket, OperatorStore, StoreError,
    TargetUrl, TaskId, TaskStatus, BUCKET,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement, TransactionTrait,
};
use std::collections::HashMap;

fn statuses(list: &[TaskStatus]) -> Vec<&'static str> {
    list.iter().map(|s| s.as_str()).collect()
}

fn bulk_condition(f: &BulkFilter) -> Condition {
    let mut c = Condition::all();
    if let Some(s) = f.status {
        c = c.add(task::Column::Status.eq(s.as_str()));
    }
    if let Some(app) = &f.source_app {
        c = c.add(task::Column::SourceApp.eq(app.as_str()));
    }
    if let Some(app) = &f.target_app {
        c = c.add(task::Column::TargetApp.eq(app.as_str()));
    }
    if let Some(host) = &f.url_host {
        c = c.add(task::Column::UrlHost.eq(host.to_ascii_lowercase()));
    }
    // Ids are UUID v7, made when the task is: a creation-time range is a
    // range of the primary key, where `created_at` has no index.
    if let Some(at) = f.created_from {
        c = c.add(task::Column::Id.gte(id_bytes(TaskId::first_made_at(at))));
    }
    if let Some(at) = f.created_to {
        c = c.add(task::Column::Id.lt(id_bytes(TaskId::first_made_at(at))));
    }
    if f.failed_from.is_some() || f.failed_to.is_some() {
        c = c.add(
            task::Column::Id.in_subquery(crate::sql::failed_between(f.failed_from, f.failed_to)),
        );
    }
    c
}

/// Failed tasks counted by the bucket their failure time falls in, newest
/// bucket first. The read starts from the failure times' window: the
/// status test is written `+status` so that SQLite, which keeps no
/// statistics, does not read every failed task through the status index
/// instead (a no-op on MySQL).
pub(crate) fn failed_bucket_sizes(
    backend: DbBackend,
    clock: BucketClock,
    since: DateTime<Utc>,
) -> Statement {
    let width = BUCKET.num_milliseconds();
    let off = clock.offset_ms();
    // `%` on integers means the same on MySQL and SQLite; failure times
    // are positive, so it floors.
    let sql = format!(
        "SELECT (f.failed_at + {off}) - ((f.failed_at + {off}) % {width}) - {off} AS bucket_start, \
         COUNT(*) AS size FROM task_failures f JOIN tasks t ON t.id = f.task_id \
         WHERE +t.status = ? AND f.failed_at >= ? \
         GROUP BY bucket_start ORDER BY bucket_start DESC"
    );
    Statement::from_sql_and_values(
        backend,
        sql,
        [TaskStatus::Failed.as_str().into(), ms(since).into()],
    )
}

/// Up to `limit` tasks in `status` that finished before `before`, with
/// their idempotency keys. Failed tasks are found through their failure
/// times. Others through their ids: a task finishes after it is made, and
/// its id says when it was made, so the id bound keeps the read to tasks
/// made before `before`. Without it, a pass that found nothing left to
/// delete read every task in `status` (every succeeded task of the
/// retention period) to check its time, once an hour on every instance.
pub(crate) fn purgeable(
    status: TaskStatus,
    before: DateTime<Utc>,
    limit: u32,
) -> sea_orm::Select<task::Entity> {
    let of_status = task::Entity::find()
        .select_only()
        .column(task::Column::Id)
        .column(task::Column::IdempotencyKey)
        .filter(task::Column::Status.eq(status.as_str()))
        .limit(u64::from(limit));
    match status {
        // A failed task that blocks its key stays until an operator acts.
        TaskStatus::Failed => of_status
            .filter(task::Column::Id.in_subquery(crate::sql::failed_between(None, Some(before))))
            .filter(
                task::Column::Id.not_in_subquery(
                    Query::select()
                        .column(ordered_task::Column::TaskId)
                        .from(ordered_task::Entity)
                        .to_owned(),
                ),
            ),
        _ => of_status
            .filter(task::Column::Id.lt(id_bytes(TaskId::first_made_at(before))))
            .filter(task::Column::UpdatedAt.lt(ms(before))),
    }
}

fn id_list(ids: &[TaskId]) -> Vec<Vec<u8>> {
    ids.iter().map(|&id| id_bytes(id)).collect()
}

impl SqlTaskStore {
    /// The tasks matching `condition`: the ids of those without an ordering
    /// key, which one statement can change, and those with one, which are
    /// changed one by one with their key locked.
    async fn split_ordered(
        &self,
        condition: Condition,
    ) -> Result<(Vec<Vec<u8>>, Vec<(TaskId, KeyQueue)>), StoreError> {
        let rows: Vec<(Vec<u8>, Option<String>, Option<String>)> = task::Entity::find()
            .select_only()
            .column(task::Column::Id)
            .column(task::Column::Endpoint)
            .column(task::Column::OrderingKey)
            .filter(condition)
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(unavailable)?;
        let mut plain = Vec::new();
        let mut ordered = Vec::new();
        for (id, endpoint, key) in rows {
            match key {
                Some(key) => ordered.push((task_id(&id)?, KeyQueue::from_columns(endpoint, key))),
                None => plain.push(id),
            }
        }
        Ok((plain, ordered))
    }
}

#[async_trait]
impl OperatorStore for SqlTaskStore {
    async fn count_matching(&self, filter: &BulkFilter) -> Result<u64, StoreError> {
        let n: Option<i64> = task::Entity::find()
            .select_only()
            .column_as(task::Column::Id.count(), "n")
            .filter(bulk_condition(filter))
            .into_tuple()
            .one(self.connection())
            .await
            .map_err(unavailable)?;
        Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
    }

    async fn matching_ids(
        &self,
        filter: &BulkFilter,
        after: Option<TaskId>,
        limit: u32,
    ) -> Result<Vec<TaskId>, StoreError> {
        let mut query = task::Entity::find()
            .select_only()
            .column(task::Column::Id)
            .filter(bulk_condition(filter));
        if let Some(after) = after {
            query = query.filter(task::Column::Id.gt(id_bytes(after)));
        }
        let ids: Vec<Vec<u8>> = query
            .order_by_asc(task::Column::Id)
            .limit(u64::from(limit))
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(unavailable)?;
        ids.iter().map(|b| task_id(b)).collect()
    }

    async fn resend_many(
        &self,
        ids: &[TaskId],
        target_url: Option<&TargetUrl>,
        now: DateTime<Utc>,
    ) -> Result<Vec<TaskId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let resendable = Condition::all()
            .add(task::Column::Id.is_in(id_list(ids)))
            .add(task::Column::Status.is_in(statuses(&TaskStatus::RESENDABLE)));
        // No transaction around read-then-write: SQLite in WAL mode fails
        // such a transaction at once when another connection wrote between
        // (SQLITE_BUSY_SNAPSHOT). The conditional update is guard enough; a
        // task that changed meanwhile is left alone.
        let (chosen, ordered) = self.split_ordered(resendable).await?;
        let mut resent: Vec<TaskId> = Vec::new();
        if !chosen.is_empty() {
            let mut update = task::Entity::update_many();
            for (column, value) in resending(target_url, ms(now), false) {
                update = update.col_expr(column, value);
            }
            let txn = self.writer().begin().await.map_err(unavailable)?;
            update
                .filter(task::Column::Id.is_in(chosen.clone()))
                .filter(task::Column::Status.is_in(statuses(&TaskStatus::RESENDABLE)))
                .filter(task::Column::OrderingKey.is_null())
                .exec(&txn)
                .await
                .map_err(unavailable)?;
            forget_failures(&txn, chosen.clone()).await?;
            txn.commit().await.map_err(unavailable)?;
            resent = chosen
                .iter()
                .map(|b| task_id(b))
                .collect::<Result<_, _>>()?;
        }
        // Tasks with an ordering key one by one, each with its key locked.
        for (id, queue) in ordered {
            match self.resend_in_order(id, &queue, target_url, now).await {
                Ok(_) => resent.push(id),
                Err(StoreError::InvalidState { .. } | StoreError::NotFound) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(resent)
    }

    async fn cancel_many(
        &self,
        ids: &[TaskId],
        now: DateTime<Utc>,
    ) -> Result<CancelledMany, StoreError> {
        if ids.is_empty() {
            return Ok(CancelledMany::default());
        }
        let (_, ordered) = self
            .split_ordered(
                Condition::all()
                    .add(task::Column::Id.is_in(id_list(ids)))
                    .add(task::Column::OrderingKey.is_not_null()),
            )
            .await?;
        let mut cancel = task::Entity::update_many();
        for (column, value) in cancellation(ms(now)) {
            cancel = cancel.col_expr(column, value);
        }
        let count = cancel
            .filter(task::Column::Id.is_in(id_list(ids)))
            .filter(task::Column::Status.is_in(statuses(&TaskStatus::CANCELLABLE)))
            .filter(task::Column::OrderingKey.is_null())
            .exec(self.writer())
            .await
            .map_err(unavailable)?
            .rows_affected;
        let mut cancelled = CancelledMany {
            count,
            started: Vec::new(),
        };
        for (id, queue) in ordered {
            match self.cancel_in_order(id, &queue, now).await {
                Ok(one) => {
                    cancelled.count += 1;
                    cancelled.started.extend(one.started);
                }
                Err(StoreError::InvalidState { .. } | StoreError::NotFound) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(cancelled)
    }

    async fn failed_buckets(
        &self,
        clock: BucketClock,
        since: DateTime<Utc>,
    ) -> Result<Vec<FailedBucket>, StoreError> {
        let db = self.connection();
        let width = BUCKET.num_milliseconds();
        let rows = db
            .query_all(failed_bucket_sizes(db.get_database_backend(), clock, since))
            .await
            .map_err(unavailable)?;
        let retries: HashMap<i64, i32> = failed_bucket::Entity::find()
            .filter(failed_bucket::Column::BucketStart.gte(ms(since) - width))
            .all(db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|r| (r.bucket_start, r.retries))
            .collect();
        rows.iter()
            .map(|row| {
                let start: i64 = row.try_get("", "bucket_start").map_err(unavailable)?;
                let size: i64 = row.try_get("", "size").map_err(unavailable)?;
                Ok(FailedBucket {
                    start: time(start)?,
                    size: u64::try_from(size).unwrap_or(0),
                    retries: u32::try_from(retries.get(&start).copied().unwrap_or(0)).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn count_bucket_retry(
        &self,
        start: DateTime<Utc>,
        expected: Option<u32>,
    ) -> Result<u32, StoreError> {
        let key = ms(start);
        // Read, then a conditional write (see resend_many on transactions).
        let db = self.connection();
        let current = failed_bucket::Entity::find_by_id(key)
            .one(db)
            .await
            .map_err(unavailable)?
            .map(|r| r.retries);
        let before = u32::try_from(current.unwrap_or(0)).unwrap_or(0);
        if expected.is_some_and(|e| e != before) {
            return Err(StoreError::Conflict(format!(
                "the bucket was re-sent {before} times, not {}",
                expected.unwrap_or(0)
            )));
        }
        let lost_race =
            || StoreError::Conflict("the bucket is being re-sent by someone else".into());
        match current {
            None => {
                let inserted = failed_bucket::Entity::insert(failed_bucket::ActiveModel {
                    bucket_start: sea_orm::ActiveValue::Set(key),
                    retries: sea_orm::ActiveValue::Set(1),
                })
                .exec(self.writer())
                .await;
                match inserted {
                    Ok(_) => {}
                    Err(err) if is_unique_violation(&err) => return Err(lost_race()),
                    Err(err) => return Err(unavailable(err)),
                }
            }
            Some(n) => {
                let updated = failed_bucket::Entity::update_many()
                    .col_expr(failed_bucket::Column::Retries, Expr::value(n + 1))
                    .filter(failed_bucket::Column::BucketStart.eq(key))
                    .filter(failed_bucket::Column::Retries.eq(n))
                    .exec(self.writer())
                    .await
                    .map_err(unavailable)?;
                if updated.rows_affected != 1 {
                    return Err(lost_race());
                }
            }
        }
        Ok(before + 1)
    }

    async fn backlog(&self, now: DateTime<Utc>) -> Result<Backlog, StoreError> {
        let waiting = [TaskStatus::Pending, TaskStatus::Retrying];
        let due: Option<(i64, Option<i64>)> = task::Entity::find()
            .select_only()
            .column_as(task::Column::Id.count(), "n")
            .column_as(task::Column::NextAttemptAt.min(), "oldest")
            .filter(task::Column::NextAttemptAt.lte(ms(now)))
            .filter(task::Column::Status.is_in(statuses(&waiting)))
            .into_tuple()
            .one(self.connection())
            .await
            .map_err(unavailable)?;
        let later: Option<i64> = task::Entity::find()
            .select_only()
            .column_as(task::Column::Id.count(), "n")
            .filter(task::Column::NextAttemptAt.gt(ms(now)))
            .filter(task::Column::Status.eq(TaskStatus::Retrying.as_str()))
            .into_tuple()
            .one(self.connection())
            .await
            .map_err(unavailable)?;
        let (due, oldest) = due.unwrap_or((0, None));
        Ok(Backlog {
            due: u64::try_from(due).unwrap_or(0),
            oldest_due_at: oldest.map(time).transpose()?,
            retrying_later: later.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
        })
    }

    async fn tally(
        &self,
        day_from: DateTime<Utc>,
        hour_from: DateTime<Utc>,
        source_app: Option<&str>,
    ) -> Result<Vec<(TaskStatus, u64, u64)>, StoreError> {
        // Ids are made when tasks are: "accepted since" is a range of the
        // primary key. One pass counts both windows, every status.
        let backend = self.connection().get_database_backend();
        let mut values: Vec<sea_orm::Value> = vec![
            id_bytes(TaskId::first_made_at(hour_from)).into(),
            id_bytes(TaskId::first_made_at(day_from)).into(),
        ];
        let mut sql = "SELECT status, COUNT(*) AS day, \
                       COUNT(CASE WHEN id >= ? THEN 1 END) AS hour \
                       FROM tasks WHERE id >= ?"
            .to_string();
        if let Some(app) = source_app {
            sql.push_str(" AND source_app = ?");
            values.push(app.into());
        }
        sql.push_str(" GROUP BY status");
        let rows = self
            .connection()
            .query_all(Statement::from_sql_and_values(backend, sql, values))
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("", "status").map_err(unavailable)?;
                let day: i64 = row.try_get("", "day").map_err(unavailable)?;
                let hour: i64 = row.try_get("", "hour").map_err(unavailable)?;
                let status = TaskStatus::parse(&status).map_err(|e| corrupt("task status", e))?;
                Ok((
                    status,
                    u64::try_from(day).unwrap_or(0),
                    u64::try_from(hour).unwrap_or(0),
                ))
            })
            .collect()
    }

    async fn expire_buckets(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let result = failed_bucket::Entity::delete_many()
            .filter(failed_bucket::Column::BucketStart.lt(ms(before)))
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(result.rows_affected)
    }

    async fn purge(
        &self,
        status: TaskStatus,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let rows: Vec<(Vec<u8>, Option<String>)> = purgeable(status, before, limit)
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(unavailable)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let (ids, keys): (Vec<Vec<u8>>, Vec<Option<String>>) = rows.into_iter().unzip();
        let keys: Vec<String> = keys.into_iter().flatten().collect();
        let txn = self.writer().begin().await.map_err(unavailable)?;
        attempt::Entity::delete_many()
            .filter(attempt::Column::TaskId.is_in(ids.clone()))
            .exec(&txn)
            .await
            .map_err(unavailable)?;
        let deleted = task::Entity::delete_many()
            .filter(task::Column::Id.is_in(ids.clone()))
            .filter(task::Column::Status.eq(status.as_str()))
            .exec(&txn)
            .await
            .map_err(unavailable)?;
        forget_failures(&txn, ids.clone()).await?;
        // Frees the keys for new tasks; a key is held by its task only.
        if !keys.is_empty() {
            let kept = Query::select()
                .column(task::Column::Id)
                .from(task::Entity)
                .and_where(task::Column::Id.is_in(ids.clone()))
                .to_owned();
            idempotency_key::Entity::delete_many()
                .filter(idempotency_key::Column::IdempotencyKey.is_in(keys))
                .filter(idempotency_key::Column::TaskId.is_in(ids))
                .filter(idempotency_key::Column::TaskId.not_in_subquery(kept))
                .exec(&txn)
                .await
                .map_err(unavailable)?;
        }
        txn.commit().await.map_err(unavailable)?;
        Ok(deleted.rows_affected)
    }

    async fn forget_idle_ordering_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        // One statement: it locks each row it deletes, so a key taken
        // meanwhile (backlog above 0 again) is left alone.
        let forgotten = ordering_key::Entity::delete_many()
            .filter(ordering_key::Column::Backlog.eq(0))
            .filter(ordering_key::Column::TouchedAt.lt(ms(before)))
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(forgotten.rows_affected)
    }
}
