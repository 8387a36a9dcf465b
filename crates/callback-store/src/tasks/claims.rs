//! Claims: a due task taken under a lease before its attempt, given back
//! untried (deferred) when its receiver cannot take it now, or released
//! when shutdown cuts its attempt short. Concurrent claims and deferrals
//! are grouped (`Groups` in `connection`): one conditional UPDATE per id
//! list, one transaction per group, and never a transaction held across
//! the outgoing request.

use super::items::{ClaimRequest, Deferral};
use crate::connection::SqlTaskStore;
use crate::db_error::unavailable;
use crate::entities::{attempt, task};
use crate::mapping::{attempt_row, id_bytes, ms, task_from_row};
use crate::sql::{by_primary_key, claimable, padded_in_lists, status, write_atomically};
use callback_core::{Attempt, ClaimedTask, LeaseToken, StoreError, TaskId, TaskStatus};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, ExecResult, QueryFilter, QueryTrait,
    TransactionTrait,
};
use std::time::Duration;

impl SqlTaskStore {
    pub(super) async fn claim_one(
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

    pub(super) async fn release_claim(
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

    pub(super) async fn defer_claim(
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

    /// Claims a group of tasks: one conditional UPDATE per id list gives
    /// every task still claimable the same fresh lease, then one read finds
    /// which ones took it. Answers in the order asked; an id asked twice is
    /// given to the first asker only.
    pub(crate) async fn claim_group(
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

    /// Gives a group of claimed tasks back untried, each due again at its
    /// own time, in one transaction: a receiver at its cap puts off tasks
    /// by the hundred while a backlog drains, and each had been a commit of
    /// its own. A task whose lease was lost meanwhile is left alone.
    pub(crate) async fn defer_group(&self, deferrals: &[Deferral]) -> Result<Vec<()>, StoreError> {
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
