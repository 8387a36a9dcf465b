//! `EndpointStore` on sea-orm: endpoints, and events published with their
//! tasks in one transaction.

use crate::db_error::{deleted_one, is_unique_violation, retrying_deadlocks, unavailable};
use crate::entities::{endpoint, event, task};
use crate::mapping::{corrupt, endpoint_from_row, endpoint_row, json, ms, task_id};
use crate::SqlTaskStore;
use async_trait::async_trait;
use callback_core::{
    Endpoint, EndpointName, EndpointStore, EventType, NewEvent, NewTask, Published, StoreError,
    TaskId, TaskStatus,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

fn task_ids(raw: &str) -> Result<Vec<TaskId>, StoreError> {
    let ids: Vec<String> = serde_json::from_str(raw).map_err(|e| corrupt("task_ids", e))?;
    ids.iter()
        .map(|id| id.parse().map_err(|e| corrupt("task_ids", e)))
        .collect()
}

#[async_trait]
impl EndpointStore for SqlTaskStore {
    async fn create_endpoint(&self, e: &Endpoint) -> Result<(), StoreError> {
        match endpoint::Entity::insert(endpoint_row(e))
            .exec(self.writer())
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_unique_violation(&err) => Err(StoreError::AlreadyExists),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn endpoint(&self, name: &EndpointName) -> Result<Option<Endpoint>, StoreError> {
        endpoint::Entity::find_by_id(name.as_str())
            .one(self.connection())
            .await
            .map_err(unavailable)?
            .map(endpoint_from_row)
            .transpose()
    }

    async fn endpoints(
        &self,
        after: Option<&EndpointName>,
        limit: u32,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let mut query = endpoint::Entity::find();
        if let Some(after) = after {
            query = query.filter(endpoint::Column::Name.gt(after.as_str()));
        }
        query
            .order_by_asc(endpoint::Column::Name)
            .limit(u64::from(limit))
            .all(self.connection())
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(endpoint_from_row)
            .collect()
    }

    async fn update_endpoint(&self, e: &Endpoint) -> Result<(), StoreError> {
        let mut row = endpoint_row(e);
        row.created_at = sea_orm::ActiveValue::NotSet;
        match row.update(self.writer()).await {
            Ok(_) => Ok(()),
            Err(sea_orm::DbErr::RecordNotUpdated) => Err(StoreError::NotFound),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn delete_endpoint(
        &self,
        name: &EndpointName,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let txn = self.writer().begin().await.map_err(unavailable)?;
        deleted_one(
            endpoint::Entity::delete_by_id(name.as_str())
                .exec(&txn)
                .await,
        )?;
        // An attempt in flight finishes and is recorded; nothing follows it.
        task::Entity::update_many()
            .col_expr(
                task::Column::Status,
                Expr::value(TaskStatus::Cancelled.as_str()),
            )
            .col_expr(
                task::Column::NextAttemptAt,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                task::Column::LastError,
                Expr::value("its endpoint was deleted"),
            )
            .col_expr(task::Column::UpdatedAt, Expr::value(ms(now)))
            .filter(task::Column::Endpoint.eq(name.as_str()))
            .filter(
                task::Column::Status.is_in(
                    [
                        TaskStatus::Pending,
                        TaskStatus::Retrying,
                        TaskStatus::Held,
                        TaskStatus::Waiting,
                    ]
                    .map(|s| s.as_str()),
                ),
            )
            .exec(&txn)
            .await
            .map_err(unavailable)?;
        // Its ordering keys go with it: none of their tasks runs again.
        crate::tasks::ordering::forget_endpoint(&txn, name.as_str()).await?;
        txn.commit().await.map_err(unavailable)
    }

    async fn subscribers(
        &self,
        event_type: &EventType,
        app: Option<&str>,
    ) -> Result<Vec<Endpoint>, StoreError> {
        // Few endpoints, many events: filter the enabled ones here rather
        // than teach SQL to search a JSON list portably.
        let rows = endpoint::Entity::find()
            .filter(
                Condition::any()
                    .add(endpoint::Column::Enabled.eq(true))
                    .add(endpoint::Column::DisabledAt.is_not_null()),
            )
            .order_by_asc(endpoint::Column::Name)
            .all(self.connection())
            .await
            .map_err(unavailable)?;
        let mut wanted = Vec::new();
        for row in rows {
            let e = endpoint_from_row(row)?;
            if e.wants(event_type, app) {
                wanted.push(e);
            }
        }
        Ok(wanted)
    }

    async fn publish(&self, e: &NewEvent, tasks: &[NewTask]) -> Result<Published, StoreError> {
        // Ordered events lock their keys, and may lose a deadlock to another
        // intake of neighbouring keys: nothing was written then.
        retrying_deadlocks(|| self.publish_once(e, tasks)).await
    }

    async fn wake_endpoint(
        &self,
        name: &EndpointName,
        now: DateTime<Utc>,
    ) -> Result<Vec<TaskId>, StoreError> {
        let waiting: Vec<Vec<u8>> = task::Entity::find()
            .select_only()
            .column(task::Column::Id)
            .filter(task::Column::Endpoint.eq(name.as_str()))
            .filter(
                Condition::any()
                    .add(
                        Condition::all()
                            .add(task::Column::Status.is_in(
                                [TaskStatus::Pending, TaskStatus::Retrying].map(|s| s.as_str()),
                            ))
                            .add(task::Column::NextAttemptAt.gt(ms(now))),
                    )
                    .add(task::Column::Status.eq(TaskStatus::Held.as_str())),
            )
            // Ids are time-ordered: this is acceptance order.
            .order_by_asc(task::Column::Id)
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(unavailable)?;
        if waiting.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self.writer().begin().await.map_err(unavailable)?;
        for chunk in waiting.chunks(500) {
            task::Entity::update_many()
                .col_expr(task::Column::NextAttemptAt, Expr::value(ms(now)))
                .col_expr(task::Column::UpdatedAt, Expr::value(ms(now)))
                .filter(task::Column::Id.is_in(chunk.to_vec()))
                .filter(
                    task::Column::Status
                        .is_in([TaskStatus::Pending, TaskStatus::Retrying].map(|s| s.as_str())),
                )
                .exec(&txn)
                .await
                .map_err(unavailable)?;
            // Held tasks become pending, due now: delivered like any new task.
            task::Entity::update_many()
                .col_expr(
                    task::Column::Status,
                    Expr::value(TaskStatus::Pending.as_str()),
                )
                .col_expr(task::Column::NextAttemptAt, Expr::value(ms(now)))
                .col_expr(task::Column::UpdatedAt, Expr::value(ms(now)))
                .filter(task::Column::Id.is_in(chunk.to_vec()))
                .filter(task::Column::Status.eq(TaskStatus::Held.as_str()))
                .exec(&txn)
                .await
                .map_err(unavailable)?;
        }
        txn.commit().await.map_err(unavailable)?;
        waiting.iter().map(|b| task_id(b)).collect()
    }

    async fn mark_failing(&self, name: &EndpointName, at: DateTime<Utc>) -> Result<(), StoreError> {
        endpoint::Entity::update_many()
            .col_expr(endpoint::Column::FailingSince, Expr::value(ms(at)))
            .filter(endpoint::Column::Name.eq(name.as_str()))
            .filter(endpoint::Column::FailingSince.is_null())
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn clear_failing(&self, name: &EndpointName) -> Result<(), StoreError> {
        endpoint::Entity::update_many()
            .col_expr(
                endpoint::Column::FailingSince,
                Expr::value(Option::<i64>::None),
            )
            .filter(endpoint::Column::Name.eq(name.as_str()))
            .filter(endpoint::Column::FailingSince.is_not_null())
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn failing_since_before(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<Endpoint>, StoreError> {
        endpoint::Entity::find()
            .filter(endpoint::Column::Enabled.eq(true))
            .filter(endpoint::Column::FailingSince.lt(ms(cutoff)))
            .order_by_asc(endpoint::Column::Name)
            .all(self.connection())
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(endpoint_from_row)
            .collect()
    }

    async fn disable_failing(
        &self,
        name: &EndpointName,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        messages: &[NewTask],
    ) -> Result<bool, StoreError> {
        let claim = endpoint::Entity::update_many()
            .col_expr(endpoint::Column::Enabled, Expr::value(false))
            .col_expr(endpoint::Column::DisabledAt, Expr::value(ms(now)))
            .col_expr(endpoint::Column::UpdatedAt, Expr::value(ms(now)))
            .filter(endpoint::Column::Name.eq(name.as_str()))
            .filter(endpoint::Column::Enabled.eq(true))
            .filter(endpoint::Column::FailingSince.lt(ms(cutoff)));
        self.store_if_claimed(claim, messages).await
    }
}

impl SqlTaskStore {
    async fn publish_once(&self, e: &NewEvent, tasks: &[NewTask]) -> Result<Published, StoreError> {
        let ids: Vec<String> = tasks.iter().map(|t| t.id.to_string()).collect();
        let txn = crate::tasks::ordering::begin_ordered(self.writer()).await?;
        let stored = event::Entity::insert(event::ActiveModel {
            call_id: sea_orm::ActiveValue::Set(e.call_id.clone()),
            event_type: sea_orm::ActiveValue::Set(e.event_type.as_str().into()),
            app: sea_orm::ActiveValue::Set(e.app.clone()),
            task_ids: sea_orm::ActiveValue::Set(json(&ids)),
            created_at: sea_orm::ActiveValue::Set(ms(e.created_at)),
        })
        .exec(&txn)
        .await;
        match stored {
            Ok(_) => {}
            Err(err) if is_unique_violation(&err) => {
                txn.rollback().await.map_err(unavailable)?;
                let first = event::Entity::find_by_id(e.call_id.as_str())
                    .one(self.connection())
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| unavailable(err))?;
                return Ok(Published::Existing(task_ids(&first.task_ids)?));
            }
            Err(err) => return Err(unavailable(err)),
        }
        if !tasks.is_empty() {
            let new: Vec<&NewTask> = tasks.iter().collect();
            let waiting = crate::tasks::ordering::take_places(&txn, &new, ms(Utc::now())).await?;
            task::Entity::insert_many(
                tasks
                    .iter()
                    .map(|t| crate::tasks::ordering::row_of(t, &waiting)),
            )
            .exec(&txn)
            .await
            .map_err(unavailable)?;
        }
        txn.commit().await.map_err(unavailable)?;
        Ok(Published::Created(tasks.iter().map(|t| t.id).collect()))
    }
}
