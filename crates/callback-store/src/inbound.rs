//! `InboundStore` on sea-orm: routes, and inbound callbacks recorded with
//! the task that forwards them in one transaction.

use crate::db_error::{deleted_one, is_unique_violation, unavailable};
use crate::entities::{inbound, route, task};
use crate::mapping::{corrupt, headers, json, ms, new_task_row, task_id, time};
use crate::SqlTaskStore;
use async_trait::async_trait;
use callback_core::{
    InboundFilter, InboundRecord, InboundStatus, InboundStore, Namespace, NewTask, Route, RouteKey,
    StoreError, TargetUrl,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

fn route_row(r: &Route) -> route::ActiveModel {
    use sea_orm::ActiveValue::Set;
    route::ActiveModel {
        namespace: Set(r.namespace.as_str().into()),
        route_key: Set(r.key.as_str().into()),
        target_url: Set(r.target_url.as_str().into()),
        expires_at: Set(r.expires_at.map(ms)),
        remark: Set(r.remark.clone()),
        headers: Set(json(&r.headers)),
        created_at: Set(ms(r.created_at)),
        updated_at: Set(ms(r.updated_at)),
    }
}

fn route_from_row(row: route::Model) -> Result<Route, StoreError> {
    Ok(Route {
        namespace: Namespace::parse(&row.namespace).map_err(|e| corrupt("namespace", e))?,
        key: RouteKey::parse(&row.route_key).map_err(|e| corrupt("route key", e))?,
        target_url: TargetUrl::parse(&row.target_url).map_err(|e| corrupt("target_url", e))?,
        expires_at: row.expires_at.map(time).transpose()?,
        remark: row.remark,
        headers: headers(&row.headers)?,
        created_at: time(row.created_at)?,
        updated_at: time(row.updated_at)?,
    })
}

fn record_row(r: &InboundRecord) -> inbound::ActiveModel {
    use sea_orm::ActiveValue::Set;
    inbound::ActiveModel {
        id: Set(r.id.as_bytes().to_vec()),
        source: Set(r.source.clone()),
        namespace: Set(r.namespace.as_ref().map(|n| n.as_str().to_string())),
        route_key: Set(r.key.as_ref().map(|k| k.as_str().to_string())),
        received_at: Set(ms(r.received_at)),
        content_type: Set(r.content_type.clone()),
        body: Set(r.body.clone()),
        status: Set(r.status.as_str().into()),
        task_id: Set(r.task_id.map(|t| t.as_uuid().as_bytes().to_vec())),
    }
}

fn record_from_row(row: inbound::Model) -> Result<InboundRecord, StoreError> {
    Ok(InboundRecord {
        id: Uuid::from_slice(&row.id).map_err(|e| corrupt("inbound id", e))?,
        source: row.source,
        namespace: row
            .namespace
            .map(|n| Namespace::parse(&n).map_err(|e| corrupt("namespace", e)))
            .transpose()?,
        key: row
            .route_key
            .map(|k| RouteKey::parse(&k).map_err(|e| corrupt("route key", e)))
            .transpose()?,
        received_at: time(row.received_at)?,
        content_type: row.content_type,
        body: row.body,
        status: InboundStatus::parse(&row.status).map_err(|e| corrupt("inbound status", e))?,
        task_id: row.task_id.map(|b| task_id(&b)).transpose()?,
    })
}

#[async_trait]
impl InboundStore for SqlTaskStore {
    async fn upsert_route(&self, r: &Route) -> Result<bool, StoreError> {
        match route::Entity::insert(route_row(r))
            .exec(self.writer())
            .await
        {
            Ok(_) => return Ok(true),
            Err(err) if is_unique_violation(&err) => {}
            Err(err) => return Err(unavailable(err)),
        }
        route::Entity::update_many()
            .col_expr(route::Column::TargetUrl, Expr::value(r.target_url.as_str()))
            .col_expr(route::Column::ExpiresAt, Expr::value(r.expires_at.map(ms)))
            .col_expr(route::Column::Remark, Expr::value(r.remark.clone()))
            .col_expr(route::Column::Headers, Expr::value(json(&r.headers)))
            .col_expr(route::Column::UpdatedAt, Expr::value(ms(r.updated_at)))
            .filter(route::Column::Namespace.eq(r.namespace.as_str()))
            .filter(route::Column::RouteKey.eq(r.key.as_str()))
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(false)
    }

    async fn route(&self, ns: &Namespace, key: &RouteKey) -> Result<Option<Route>, StoreError> {
        route::Entity::find_by_id((ns.as_str().to_string(), key.as_str().to_string()))
            .one(self.connection())
            .await
            .map_err(unavailable)?
            .map(route_from_row)
            .transpose()
    }

    async fn routes(
        &self,
        ns: Option<&Namespace>,
        after: Option<(Namespace, RouteKey)>,
        limit: u32,
    ) -> Result<Vec<Route>, StoreError> {
        let mut query = route::Entity::find();
        if let Some(ns) = ns {
            query = query.filter(route::Column::Namespace.eq(ns.as_str()));
        }
        if let Some((after_ns, after_key)) = after {
            query = query.filter(
                Condition::any()
                    .add(route::Column::Namespace.gt(after_ns.as_str()))
                    .add(
                        Condition::all()
                            .add(route::Column::Namespace.eq(after_ns.as_str()))
                            .add(route::Column::RouteKey.gt(after_key.as_str())),
                    ),
            );
        }
        query
            .order_by_asc(route::Column::Namespace)
            .order_by_asc(route::Column::RouteKey)
            .limit(u64::from(limit))
            .all(self.connection())
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(route_from_row)
            .collect()
    }

    async fn delete_route(&self, ns: &Namespace, key: &RouteKey) -> Result<(), StoreError> {
        deleted_one(
            route::Entity::delete_by_id((ns.as_str().to_string(), key.as_str().to_string()))
                .exec(self.writer())
                .await,
        )
    }

    async fn receive(
        &self,
        record: &InboundRecord,
        task: Option<&NewTask>,
    ) -> Result<(), StoreError> {
        let txn = self.writer().begin().await.map_err(unavailable)?;
        if let Some(task) = task {
            task::Entity::insert(new_task_row(task))
                .exec(&txn)
                .await
                .map_err(unavailable)?;
        }
        inbound::Entity::insert(record_row(record))
            .exec(&txn)
            .await
            .map_err(unavailable)?;
        txn.commit().await.map_err(unavailable)
    }

    async fn inbound_record(&self, id: Uuid) -> Result<Option<InboundRecord>, StoreError> {
        inbound::Entity::find_by_id(id.as_bytes().to_vec())
            .one(self.connection())
            .await
            .map_err(unavailable)?
            .map(record_from_row)
            .transpose()
    }

    async fn inbound(
        &self,
        filter: &InboundFilter,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<InboundRecord>, StoreError> {
        let mut query = inbound::Entity::find();
        if let Some(source) = &filter.source {
            query = query.filter(inbound::Column::Source.eq(source.as_str()));
        }
        if let Some(ns) = &filter.namespace {
            query = query.filter(inbound::Column::Namespace.eq(ns.as_str()));
        }
        if let Some(key) = &filter.key {
            query = query.filter(inbound::Column::RouteKey.eq(key.as_str()));
        }
        if let Some(status) = filter.status {
            query = query.filter(inbound::Column::Status.eq(status.as_str()));
        }
        if let Some(before) = before {
            query = query.filter(inbound::Column::Id.lt(before.as_bytes().to_vec()));
        }
        query
            .order_by_desc(inbound::Column::Id)
            .limit(u64::from(limit))
            .all(self.connection())
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(record_from_row)
            .collect()
    }

    async fn forward(
        &self,
        id: Uuid,
        task: &NewTask,
        any_status: bool,
    ) -> Result<bool, StoreError> {
        let txn = self.writer().begin().await.map_err(unavailable)?;
        let mut update = inbound::Entity::update_many()
            .col_expr(
                inbound::Column::Status,
                Expr::value(InboundStatus::Forwarded.as_str()),
            )
            .col_expr(
                inbound::Column::TaskId,
                Expr::value(task.id.as_uuid().as_bytes().to_vec()),
            )
            .filter(inbound::Column::Id.eq(id.as_bytes().to_vec()));
        if !any_status {
            update = update.filter(inbound::Column::Status.eq(InboundStatus::Unrouted.as_str()));
        }
        let changed = update.exec(&txn).await.map_err(unavailable)?;
        if changed.rows_affected != 1 {
            txn.rollback().await.map_err(unavailable)?;
            return Ok(false);
        }
        task::Entity::insert(new_task_row(task))
            .exec(&txn)
            .await
            .map_err(unavailable)?;
        txn.commit().await.map_err(unavailable)?;
        Ok(true)
    }
}
