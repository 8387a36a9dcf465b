//! Results: each attempt recorded with the state it moves its task to
//! (succeeded, retrying at a time, failed for good), in one transaction,
//! only while the task's lease is still held; and the failure times that
//! the failed buckets and alerts read.

use super::items::Outcome;
use super::ordering::{
    add_to_backlogs, begin_ordered, drop_places, ends_for_key, start_leased, KeyQueue,
};
use crate::connection::SqlTaskStore;
use crate::db_error::{retrying_deadlocks, unavailable};
use crate::entities::{attempt, task, task_failure};
use crate::mapping::{attempt_row, id_bytes, ms};
use crate::sql::{by_primary_key, insert_rows, padded_in_lists, statement_chunks, status};
use callback_core::{
    Attempt, ClaimedTask, Disposition, LeaseToken, Recorded, StoreError, TaskId, TaskStatus,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryTrait, Statement, TransactionTrait,
};
use std::collections::BTreeMap;
use std::time::Duration;

impl SqlTaskStore {
    pub(super) async fn complete_one(
        &self,
        claim: &ClaimedTask,
        attempt: &Attempt,
        next: Disposition,
        now: DateTime<Utc>,
        lease_margin: Duration,
    ) -> Result<Recorded, StoreError> {
        let outcome = Outcome {
            task_id: claim.task.id,
            lease: claim.lease,
            attempt: attempt.clone(),
            next,
            now,
            ordering: KeyQueue::of(&claim.task.spec)
                .zip(claim.task.spec.ordering.as_ref().map(|o| o.on_failure)),
            lease_margin,
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
            .unwrap_or_default())
    }

    /// Records a group of attempts and moves their tasks on, in one
    /// transaction. Answers, in order, whether each state change applied
    /// (it does only while the task's lease is still held), and which task
    /// of its key each one let start.
    pub(crate) async fn complete_group(
        &self,
        outcomes: &[Outcome],
    ) -> Result<Vec<Recorded>, StoreError> {
        // Results of keyed tasks lock their keys, in key order, but a group
        // that ends two tasks of one key (a rare duplicate) takes its keys
        // in two statements, and may lose a deadlock: written again.
        match retrying_deadlocks(|| self.write_outcomes(outcomes, true)).await? {
            Some(applied) => Ok(applied),
            // A lease was lost meanwhile (a rare cancel): row by row, which
            // tells exactly which change applied.
            None => Ok(self
                .write_outcomes(outcomes, false)
                .await?
                .unwrap_or_else(|| vec![Recorded::default(); outcomes.len()])),
        }
    }

    /// With `group_successes`, plain successes are moved on by one UPDATE
    /// per id list; should it match fewer rows than asked, nothing is
    /// committed and `None` says to write row by row instead.
    async fn write_outcomes(
        &self,
        outcomes: &[Outcome],
        group_successes: bool,
    ) -> Result<Option<Vec<Recorded>>, StoreError> {
        let txn = if outcomes.iter().any(|o| o.ending_key().is_some()) {
            begin_ordered(&self.writer).await?
        } else {
            self.writer.begin().await.map_err(unavailable)?
        };
        // Anything but a commit is rolled back now: a dropped transaction
        // only queues its rollback for the connection's next use, and until
        // then its locks (of rows, and of keys) stall the row-by-row retry,
        // intakes of those keys and other instances' claims.
        match Self::record_in(&txn, outcomes, group_successes).await {
            Ok(Some(applied)) => {
                txn.commit().await.map_err(unavailable)?;
                Ok(Some(applied))
            }
            Ok(None) => {
                txn.rollback().await.map_err(unavailable)?;
                Ok(None)
            }
            Err(err) => {
                let _ = txn.rollback().await;
                Err(err)
            }
        }
    }

    /// The statements of `write_outcomes`, inside its transaction.
    async fn record_in(
        txn: &DatabaseTransaction,
        outcomes: &[Outcome],
        group_successes: bool,
    ) -> Result<Option<Vec<Recorded>>, StoreError> {
        let backend = txn.get_database_backend();
        // Taken once the transaction is ours: see `Outcome::state`.
        let written_at = ms(Utc::now());
        // The keys of tasks that end here are locked before any task row,
        // as every change to a key's tasks does (see `ordering`), by the
        // statement that shortens their backlogs: on the bet that each
        // result applies, taken back below for one that does not.
        let mut ending: BTreeMap<KeyQueue, i64> = BTreeMap::new();
        for queue in outcomes.iter().filter_map(Outcome::ending_key) {
            *ending.entry(queue.clone()).or_default() -= 1;
        }
        add_to_backlogs(txn, &ending, written_at).await?;
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
        let mut applied = vec![Recorded::default(); outcomes.len()];
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
                return Ok(None);
            }
            for &i in &grouped {
                applied[i].applied = true;
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
                .exec(txn)
                .await
                .map_err(unavailable)?;
            applied[i].applied = result.rows_affected == 1;
            if !applied[i].applied {
                continue;
            }
            if let Some(failed_at) = state.failed_at {
                txn.execute(record_failure(backend, outcome.task_id, failed_at))
                    .await
                    .map_err(unavailable)?;
            }
        }
        // Tasks that ended leave their keys together, and the next of each
        // key starts in this same commit, claimed for the worker whose
        // attempt let it start. A task still delivering holds its place: a
        // result that applied ends a place that is there.
        let mut leaving = Vec::new();
        let mut not_applied: BTreeMap<KeyQueue, i64> = BTreeMap::new();
        for (outcome, recorded) in outcomes.iter().zip(&applied) {
            if let Some(queue) = outcome.ending_key() {
                if recorded.applied {
                    leaving.push((queue, outcome.task_id));
                } else {
                    *not_applied.entry(queue.clone()).or_default() += 1;
                }
            }
        }
        add_to_backlogs(txn, &not_applied, written_at).await?;
        let ids: Vec<TaskId> = leaving.iter().map(|(_, id)| *id).collect();
        drop_places(txn, &ids).await?;
        let margin = outcomes
            .iter()
            .map(|o| o.lease_margin)
            .max()
            .unwrap_or_default();
        let mut promoted = start_leased(
            txn,
            leaving.iter().map(|(queue, _)| *queue),
            written_at,
            LeaseToken::new(),
            i64::try_from(margin.as_millis()).unwrap_or(i64::MAX / 2),
        )
        .await?;
        for (outcome, recorded) in outcomes.iter().zip(applied.iter_mut()) {
            if let (Some(queue), true) = (outcome.ending_key(), recorded.applied) {
                recorded.promoted = promoted.remove(queue);
            }
        }
        Ok(Some(applied))
    }
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

    /// The ordering key this outcome ends its task for, if it does.
    fn ending_key(&self) -> Option<&KeyQueue> {
        let (queue, on_failure) = self.ordering.as_ref()?;
        let status = match self.next {
            Disposition::Succeeded => TaskStatus::Succeeded,
            Disposition::Failed => TaskStatus::Failed,
            Disposition::RetryAt(_) => TaskStatus::Retrying,
        };
        ends_for_key(status, *on_failure).then_some(queue)
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

#[cfg(test)]
mod tests {
    use super::*;
    use callback_core::LeaseToken;

    #[test]
    fn a_failure_is_dated_when_it_is_written_not_when_its_attempt_ended() {
        let ended = Utc::now() - chrono::TimeDelta::minutes(10);
        let outcome = |next| Outcome {
            task_id: TaskId::new(),
            lease: LeaseToken::new(),
            attempt: Attempt::without_response(1, ended, "refused".into()),
            next,
            now: ended,
            ordering: None,
            lease_margin: Duration::from_secs(30),
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
}
