//! Intake's writes: where a new task's row is written, alone or with its
//! batch, grouped with concurrent submissions, and where an idempotency
//! key is claimed in the same transaction as the task it guards.

use super::ordering::{begin_ordered, row_of, take_places, waiting_task};
use crate::connection::{nothing_answered, SqlTaskStore};
use crate::db_error::{is_unique_violation, retrying_deadlocks, unavailable};
use crate::entities::{idempotency_key, task};
use crate::mapping::{key_row, ms, new_task_row, task_from_row};
use crate::sql::{insert_rows, statement_chunks, write_atomically};
use callback_core::{Inserted, NewTask, StoreError, Task, TaskId};
use chrono::Utc;
use sea_orm::sea_query::Query;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement, TransactionTrait,
};
use std::collections::{HashMap, HashSet};

/// The answer when an idempotency key of a batch was taken by another
/// request between the batch's read of its keys and its write.
fn key_taken_meanwhile() -> StoreError {
    StoreError::Conflict(
        "an idempotency key of the batch was taken meanwhile; nothing was stored, send the batch again".into(),
    )
}

/// The task as stored: waiting when others of its key are ahead of it.
fn stored(new: NewTask, waiting: &HashSet<TaskId>) -> Task {
    let waits = waiting.contains(&new.id);
    let task = Task::from_new(new);
    if waits {
        waiting_task(task)
    } else {
        task
    }
}

impl SqlTaskStore {
    pub(super) async fn insert_one(&self, new: NewTask) -> Result<Inserted, StoreError> {
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
        if new.spec.ordering.is_some() {
            return self
                .write_tasks(vec![new])
                .await?
                .pop()
                .ok_or_else(nothing_answered);
        }
        task::Entity::insert(new_task_row(&new))
            .exec(&self.writer)
            .await
            .map_err(unavailable)?;
        Ok(Inserted::Created(Task::from_new(new)))
    }

    pub(super) async fn insert_many(
        &self,
        tasks: Vec<NewTask>,
    ) -> Result<Vec<Inserted>, StoreError> {
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

    /// Writes the lists of a group in one transaction, and answers each
    /// list with its own tasks.
    pub(crate) async fn write_lists(
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
        let mut waiting = HashSet::new();
        if !fresh.is_empty() {
            let claims: Vec<idempotency_key::ActiveModel> = fresh
                .iter()
                .filter_map(|t| Some(key_row(t.id, t.spec.idempotency_key.as_deref()?)))
                .collect();
            if fresh.iter().any(|t| t.spec.ordering.is_some()) {
                waiting = self.write_in_order(&fresh, claims).await?;
            } else {
                let backend = self.writer.get_database_backend();
                let statements = statement_chunks(&fresh)
                    .into_iter()
                    .map(|chunk| {
                        insert_rows(backend, chunk.iter().map(|t| new_task_row(t)).collect())
                    })
                    .chain(
                        statement_chunks(&claims)
                            .into_iter()
                            .map(|chunk| insert_rows(backend, chunk.to_vec())),
                    );
                match write_atomically(&self.writer, statements.collect()).await {
                    Ok(_) => {}
                    Err(err) if is_unique_violation(&err) => return Err(key_taken_meanwhile()),
                    Err(err) => return Err(unavailable(err)),
                }
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
                    None => Inserted::Created(stored(t, &waiting)),
                }
            })
            .collect())
    }

    /// Writes tasks of which some have an ordering key, in one transaction
    /// that first takes their places on their keys; answers the ids of
    /// those that wait behind another.
    async fn write_in_order(
        &self,
        fresh: &[&NewTask],
        claims: Vec<idempotency_key::ActiveModel>,
    ) -> Result<HashSet<TaskId>, StoreError> {
        retrying_deadlocks(|| self.write_with_places(fresh, claims.clone()))
            .await?
            .map_err(|_| key_taken_meanwhile())
    }

    /// Writes one task with an idempotency key; a task that took the key
    /// first, even meanwhile, is the answer instead. With an ordering key
    /// it locks its key first, as every keyed intake does, and may lose a
    /// deadlock: written again.
    async fn write_keyed(&self, new: NewTask, key: &str) -> Result<Inserted, StoreError> {
        let (one, claim) = ([&new], key_row(new.id, key));
        match retrying_deadlocks(|| self.write_with_places(&one, vec![claim.clone()])).await? {
            Ok(waiting) => Ok(Inserted::Created(stored(new, &waiting))),
            Err(taken) => match self.tasks_by_key(&[key]).await?.remove(key) {
                Some(found) => Ok(Inserted::Existing(found)),
                None => Err(unavailable(taken)),
            },
        }
    }

    /// One transaction that takes the places of those of `fresh` with an
    /// ordering key, then writes them all and the idempotency keys they
    /// claim. Answers the ids that wait behind another, or the unique
    /// violation when another task took one of the keys meanwhile (nothing
    /// is written then); any failure rolls back at once, since the key
    /// locks would stall others.
    async fn write_with_places(
        &self,
        fresh: &[&NewTask],
        claims: Vec<idempotency_key::ActiveModel>,
    ) -> Result<Result<HashSet<TaskId>, sea_orm::DbErr>, StoreError> {
        let backend = self.writer.get_database_backend();
        let txn = if fresh.iter().any(|t| t.spec.ordering.is_some()) {
            begin_ordered(&self.writer).await?
        } else {
            self.writer.begin().await.map_err(unavailable)?
        };
        let waiting = match take_places(&txn, fresh, ms(Utc::now())).await {
            Ok(waiting) => waiting,
            Err(err) => {
                let _ = txn.rollback().await;
                return Err(err);
            }
        };
        let statements: Vec<Statement> = statement_chunks(fresh)
            .into_iter()
            .map(|chunk| insert_rows(backend, chunk.iter().map(|t| row_of(t, &waiting)).collect()))
            .chain(
                statement_chunks(&claims)
                    .into_iter()
                    .map(|chunk| insert_rows(backend, chunk.to_vec())),
            )
            .collect();
        for statement in statements {
            if let Err(err) = txn.execute(statement).await {
                let _ = txn.rollback().await;
                return if is_unique_violation(&err) {
                    Ok(Err(err))
                } else {
                    Err(unavailable(err))
                };
            }
        }
        txn.commit().await.map_err(unavailable)?;
        Ok(Ok(waiting))
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
