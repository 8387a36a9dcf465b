//! `AlertStore` on sea-orm: alert hooks, and the watermark of what each has
//! been told, moved in the same transaction that stores its alert task.

use crate::db_error::{deleted_one, is_unique_violation, unavailable};
use crate::entities::{alert_hook, attempt, delivery_tally, ops_alert, task, task_failure};
use crate::mapping::{corrupt, id_bytes, ms, new_task_row, task_from_row, time};
use crate::SqlTaskStore;
use async_trait::async_trait;
use callback_core::{
    AlertDigest, AlertHook, AlertHookId, AlertKind, AlertStore, AttemptTally, FailedTask, NewTask,
    SigningSecret, StoreError, TargetUrl, TaskStatus, ALERT_EXAMPLES,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

fn hook_row(h: &AlertHook) -> alert_hook::ActiveModel {
    use sea_orm::ActiveValue::{NotSet, Set};
    alert_hook::ActiveModel {
        id: Set(h.id.to_string()),
        kind: Set(h.kind.as_str().into()),
        url: Set(h.url.as_str().into()),
        secret: Set(h.secret.as_ref().map(|s| s.expose().to_string())),
        remark: Set(h.remark.clone()),
        enabled: Set(h.enabled),
        source_app: Set(h.source_app.clone()),
        target_app: Set(h.target_app.clone()),
        alerted_until: NotSet,
        last_alert_at: NotSet,
        created_at: Set(ms(h.created_at)),
        updated_at: Set(ms(h.updated_at)),
    }
}

fn hook_from_row(row: alert_hook::Model) -> Result<AlertHook, StoreError> {
    let kind = AlertKind::parse(&row.kind).map_err(|e| corrupt("alert kind", e))?;
    Ok(AlertHook {
        id: row.id.parse().map_err(|e| corrupt("alert hook id", e))?,
        kind,
        url: TargetUrl::parse(&row.url).map_err(|e| corrupt("alert url", e))?,
        secret: row.secret.map(SigningSecret::from_stored),
        remark: row.remark,
        enabled: row.enabled,
        source_app: row.source_app,
        target_app: row.target_app,
        created_at: time(row.created_at)?,
        updated_at: time(row.updated_at)?,
    })
}

/// Failed tasks a hook hears of: not alerts themselves, within its filters.
/// Their failure times are joined in.
///
/// The way in is the failure times' window. The tests on `tasks` are
/// written `+column`, SQLite's documented way to keep a term's index out of
/// a plan: SQLite keeps no statistics, took `status = 'failed'` (or a
/// hook's app) for the narrower test and read every failed task ever kept
/// at each check (200,000 failed tasks: 0.68 s a check, every 5 s while a
/// hook waits for failures). MariaDB chose the window already.
fn told(hook: &AlertHook, since: DateTime<Utc>, until: DateTime<Utc>) -> Condition {
    let unindexed = |column: task::Column| {
        Expr::expr(Expr::cust_with_exprs(
            "+?",
            [Expr::col((task::Entity, column)).into()],
        ))
    };
    let mut c = Condition::all()
        .add(unindexed(task::Column::Status).eq(TaskStatus::Failed.as_str()))
        .add(task_failure::Column::FailedAt.gt(ms(since)))
        .add(task_failure::Column::FailedAt.lte(ms(until)))
        .add(task::Column::AlertHook.is_null());
    if let Some(app) = &hook.source_app {
        c = c.add(unindexed(task::Column::SourceApp).eq(app.as_str()));
    }
    if let Some(app) = &hook.target_app {
        c = c.add(unindexed(task::Column::TargetApp).eq(app.as_str()));
    }
    c
}

/// How many failures a hook hears of, by receiver host.
pub(crate) fn failures_by_host(
    hook: &AlertHook,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> sea_orm::Select<task::Entity> {
    task::Entity::find()
        .select_only()
        .column(task::Column::UrlHost)
        .column_as(task::Column::Id.count(), "n")
        .inner_join(task_failure::Entity)
        .filter(told(hook, since, until))
        .group_by(task::Column::UrlHost)
}

/// The first failures a hook hears of, with their failure times.
pub(crate) fn failure_examples(
    hook: &AlertHook,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> sea_orm::SelectTwo<task::Entity, task_failure::Entity> {
    task::Entity::find()
        .find_also_related(task_failure::Entity)
        .filter(told(hook, since, until))
        .order_by_asc(task_failure::Column::FailedAt)
        .limit(ALERT_EXAMPLES as u64)
}

#[async_trait]
impl AlertStore for SqlTaskStore {
    async fn create_hook(&self, hook: &AlertHook) -> Result<(), StoreError> {
        let mut row = hook_row(hook);
        // Failures from before the hook existed are not its business.
        row.alerted_until = sea_orm::ActiveValue::Set(ms(hook.created_at));
        match alert_hook::Entity::insert(row).exec(self.writer()).await {
            Ok(_) => Ok(()),
            Err(err) if is_unique_violation(&err) => Err(StoreError::AlreadyExists),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn hook(&self, id: AlertHookId) -> Result<Option<AlertHook>, StoreError> {
        alert_hook::Entity::find_by_id(id.to_string())
            .one(self.connection())
            .await
            .map_err(unavailable)?
            .map(hook_from_row)
            .transpose()
    }

    async fn hooks(&self) -> Result<Vec<AlertHook>, StoreError> {
        alert_hook::Entity::find()
            .order_by_asc(alert_hook::Column::Id)
            .all(self.connection())
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(hook_from_row)
            .collect()
    }

    async fn update_hook(&self, hook: &AlertHook) -> Result<(), StoreError> {
        let mut row = hook_row(hook);
        row.created_at = sea_orm::ActiveValue::NotSet;
        match row.update(self.writer()).await {
            Ok(_) => Ok(()),
            Err(sea_orm::DbErr::RecordNotUpdated) => Err(StoreError::NotFound),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn delete_hook(&self, id: AlertHookId) -> Result<(), StoreError> {
        deleted_one(
            alert_hook::Entity::delete_by_id(id.to_string())
                .exec(self.writer())
                .await,
        )
    }

    async fn alert_state(
        &self,
        id: AlertHookId,
    ) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>), StoreError> {
        let state: Option<(i64, Option<i64>)> = alert_hook::Entity::find_by_id(id.to_string())
            .select_only()
            .column(alert_hook::Column::AlertedUntil)
            .column(alert_hook::Column::LastAlertAt)
            .into_tuple()
            .one(self.connection())
            .await
            .map_err(unavailable)?;
        let (until, last) = state.ok_or(StoreError::NotFound)?;
        Ok((time(until)?, last.map(time).transpose()?))
    }

    async fn failures(
        &self,
        hook: &AlertHook,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<AlertDigest>, StoreError> {
        let db = self.connection();
        let groups: Vec<(Option<String>, i64)> = failures_by_host(hook, since, until)
            .into_tuple()
            .all(db)
            .await
            .map_err(unavailable)?;
        let total: i64 = groups.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return Ok(None);
        }
        let mut by_host: Vec<(String, u64)> = groups
            .into_iter()
            .map(|(host, n)| {
                (
                    host.unwrap_or_else(|| "?".into()),
                    u64::try_from(n).unwrap_or(0),
                )
            })
            .collect();
        by_host.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let rows = failure_examples(hook, since, until)
            .all(db)
            .await
            .map_err(unavailable)?;
        let mut examples = Vec::with_capacity(rows.len());
        for (row, failure) in rows {
            let failed_at = time(failure.map_or(row.updated_at, |f| f.failed_at))?;
            let task = task_from_row(row)?;
            let last_status: Option<Option<i32>> = attempt::Entity::find()
                .select_only()
                .column(attempt::Column::StatusCode)
                .filter(attempt::Column::TaskId.eq(id_bytes(task.id)))
                .order_by_desc(attempt::Column::Number)
                .into_tuple()
                .one(db)
                .await
                .map_err(unavailable)?;
            examples.push(FailedTask {
                task_id: task.id,
                url: task.spec.url.to_string(),
                source_app: task.spec.source_app.clone(),
                target_app: task.spec.target_app.clone(),
                attempts: task.attempts_made,
                last_status: last_status.flatten().and_then(|s| u16::try_from(s).ok()),
                last_error: task.last_error.clone(),
                accepted_at: task.created_at,
                failed_at,
            });
        }
        Ok(Some(AlertDigest {
            total: u64::try_from(total).unwrap_or(0),
            since,
            until,
            examples,
            by_host,
            breakers: Vec::new(),
        }))
    }

    async fn claim_alert(
        &self,
        id: AlertHookId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        alert: &NewTask,
    ) -> Result<bool, StoreError> {
        let claim = alert_hook::Entity::update_many()
            .col_expr(alert_hook::Column::AlertedUntil, Expr::value(ms(until)))
            .col_expr(alert_hook::Column::LastAlertAt, Expr::value(ms(until)))
            .filter(alert_hook::Column::Id.eq(id.to_string()))
            .filter(alert_hook::Column::AlertedUntil.eq(ms(since)));
        self.store_if_claimed(claim, std::slice::from_ref(alert))
            .await
    }

    async fn share_tally(
        &self,
        instance: &str,
        tally: AttemptTally,
        now: DateTime<Utc>,
        fresh_since: DateTime<Utc>,
    ) -> Result<AttemptTally, StoreError> {
        use sea_orm::ActiveValue::Set;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let row = delivery_tally::ActiveModel {
            instance: Set(instance.to_string()),
            succeeded: Set(count(tally.succeeded)),
            failed: Set(count(tally.failed)),
            updated_at: Set(ms(now)),
        };
        delivery_tally::Entity::insert(row)
            .on_conflict(
                OnConflict::column(delivery_tally::Column::Instance)
                    .update_columns([
                        delivery_tally::Column::Succeeded,
                        delivery_tally::Column::Failed,
                        delivery_tally::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        // Instances that stopped long ago leave; the table stays as small
        // as the cluster.
        delivery_tally::Entity::delete_many()
            .filter(delivery_tally::Column::UpdatedAt.lt(ms(now - chrono::TimeDelta::days(1))))
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        let rows = delivery_tally::Entity::find()
            .filter(delivery_tally::Column::UpdatedAt.gte(ms(fresh_since)))
            .all(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(rows.into_iter().fold(AttemptTally::default(), |sum, row| {
            sum + AttemptTally {
                succeeded: u64::try_from(row.succeeded).unwrap_or(0),
                failed: u64::try_from(row.failed).unwrap_or(0),
            }
        }))
    }

    async fn ops_alert_firing(&self, condition: &str) -> Result<bool, StoreError> {
        Ok(ops_alert::Entity::find_by_id(condition.to_string())
            .one(self.connection())
            .await
            .map_err(unavailable)?
            .is_some_and(|row| row.firing))
    }

    async fn claim_ops_alert(
        &self,
        condition: &str,
        firing: bool,
        now: DateTime<Utc>,
        repeat: chrono::TimeDelta,
        messages: &[NewTask],
    ) -> Result<bool, StoreError> {
        use sea_orm::ActiveValue::Set;
        // The row exists from the first check on, quiet.
        let quiet = ops_alert::ActiveModel {
            condition: Set(condition.to_string()),
            firing: Set(false),
            last_sent_at: Set(None),
        };
        match ops_alert::Entity::insert(quiet).exec(self.writer()).await {
            Ok(_) => {}
            Err(err) if is_unique_violation(&err) => {}
            Err(err) => return Err(unavailable(err)),
        }
        // News: the condition changed, or it still fires and was told
        // longer than `repeat` ago.
        let mut news = Condition::any().add(ops_alert::Column::Firing.ne(firing));
        if firing {
            news = news.add(
                Condition::any()
                    .add(ops_alert::Column::LastSentAt.is_null())
                    .add(ops_alert::Column::LastSentAt.lt(ms(now - repeat))),
            );
        }
        let claim = ops_alert::Entity::update_many()
            .col_expr(ops_alert::Column::Firing, Expr::value(firing))
            .col_expr(ops_alert::Column::LastSentAt, Expr::value(ms(now)))
            .filter(ops_alert::Column::Condition.eq(condition))
            .filter(news);
        self.store_if_claimed(claim, messages).await
    }
}

impl SqlTaskStore {
    /// The claim every alert is sent by: a conditional update of one row
    /// and the alert's tasks, in one transaction. Of several instances the
    /// one whose update took the row stores the tasks; the others store
    /// nothing and get `false`.
    pub(crate) async fn store_if_claimed<E: EntityTrait>(
        &self,
        claim: sea_orm::UpdateMany<E>,
        tasks: &[NewTask],
    ) -> Result<bool, StoreError> {
        let txn = self.writer().begin().await.map_err(unavailable)?;
        let moved = claim.exec(&txn).await.map_err(unavailable)?;
        if moved.rows_affected != 1 {
            txn.rollback().await.map_err(unavailable)?;
            return Ok(false);
        }
        for task in tasks {
            task::Entity::insert(new_task_row(task))
                .exec(&txn)
                .await
                .map_err(unavailable)?;
        }
        txn.commit().await.map_err(unavailable)?;
        Ok(true)
    }
}
