//! `AuditStore` on sea-orm: the audit log, newest first by its v7 ids.

use crate::db_error::unavailable;
use crate::entities::audit_entry;
use crate::mapping::{corrupt, ms, time};
use crate::SqlTaskStore;
use async_trait::async_trait;
use callback_core::{AuditEntry, AuditFilter, AuditId, AuditStore, Page, PageRequest, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

fn entry_row(e: &AuditEntry) -> audit_entry::ActiveModel {
    use sea_orm::ActiveValue::Set;
    audit_entry::ActiveModel {
        id: Set(e.id.as_bytes().to_vec()),
        at: Set(ms(e.at)),
        actor: Set(e.actor.clone()),
        actor_name: Set(e.actor_name.clone()),
        ip: Set(e.ip.clone()),
        action: Set(e.action.clone()),
        method: Set(e.method.clone()),
        path: Set(e.path.clone()),
        target: Set(e.target.clone()),
        detail: Set(e.detail.as_ref().map(ToString::to_string)),
        status: Set(i32::from(e.status)),
    }
}

fn entry_from_row(row: audit_entry::Model) -> Result<AuditEntry, StoreError> {
    let id: [u8; 16] = row
        .id
        .as_slice()
        .try_into()
        .map_err(|_| corrupt("audit id", "not 16 bytes"))?;
    Ok(AuditEntry {
        id: AuditId::from_bytes(id),
        at: time(row.at)?,
        actor: row.actor,
        actor_name: row.actor_name,
        ip: row.ip,
        action: row.action,
        method: row.method,
        path: row.path,
        target: row.target,
        detail: row
            .detail
            .map(|d| serde_json::from_str(&d))
            .transpose()
            .map_err(|e| corrupt("audit detail", e))?,
        status: u16::try_from(row.status).map_err(|e| corrupt("audit status", e))?,
    })
}

#[async_trait]
impl AuditStore for SqlTaskStore {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        audit_entry::Entity::insert(entry_row(entry))
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest<AuditId>,
    ) -> Result<Page<AuditEntry, AuditId>, StoreError> {
        let limit = u64::from(page.limit.max(1));
        let mut query = audit_entry::Entity::find();
        if let Some(actor) = &filter.actor {
            query = query.filter(audit_entry::Column::Actor.eq(actor.as_str()));
        }
        if let Some(action) = &filter.action {
            query = query.filter(audit_entry::Column::Action.eq(action.as_str()));
        }
        if let Some(since) = filter.since {
            query = query.filter(audit_entry::Column::At.gte(ms(since)));
        }
        if let Some(until) = filter.until {
            query = query.filter(audit_entry::Column::At.lte(ms(until)));
        }
        if let Some(after) = page.after {
            query = query.filter(audit_entry::Column::Id.lt(after.as_bytes().to_vec()));
        }
        let rows = query
            .order_by_desc(audit_entry::Column::Id)
            .limit(limit + 1)
            .all(self.connection())
            .await
            .map_err(unavailable)?;
        let has_more = rows.len() as u64 > limit;
        let items: Vec<AuditEntry> = rows
            .into_iter()
            .take(limit as usize)
            .map(entry_from_row)
            .collect::<Result<_, _>>()?;
        let next_cursor = if has_more {
            items.last().map(|e| e.id)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn prune_audit(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let ids: Vec<Vec<u8>> = audit_entry::Entity::find()
            .select_only()
            .column(audit_entry::Column::Id)
            .filter(audit_entry::Column::At.lt(ms(before)))
            .limit(u64::from(limit.max(1)))
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(unavailable)?;
        if ids.is_empty() {
            return Ok(0);
        }
        let deleted = audit_entry::Entity::delete_many()
            .filter(audit_entry::Column::Id.is_in(ids))
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(deleted.rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::in_memory_store;

    fn entry(actor: &str, action: &str, at: DateTime<Utc>) -> AuditEntry {
        AuditEntry {
            id: AuditId::new(),
            at,
            actor: actor.into(),
            actor_name: "n".into(),
            ip: Some("127.0.0.1".into()),
            action: action.into(),
            method: "POST".into(),
            path: "/api/v1/x".into(),
            target: None,
            detail: Some(serde_json::json!({"count": 3})),
            status: 200,
        }
    }

    #[tokio::test]
    async fn entries_list_newest_first_filtered_and_paged_and_prune_by_age() {
        let store = in_memory_store().await;
        let old = Utc::now() - chrono::TimeDelta::days(400);
        store
            .append_audit(&entry("admin", "key.create", old))
            .await
            .unwrap();
        let now = Utc::now();
        for i in 0..5 {
            let actor = if i % 2 == 0 { "admin" } else { "key:x" };
            store
                .append_audit(&entry(actor, "task.retry", now))
                .await
                .unwrap();
        }
        let first = store
            .audit(
                &AuditFilter::default(),
                PageRequest {
                    limit: 4,
                    after: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(first.items.len(), 4);
        assert!(first.items.windows(2).all(|w| w[0].id > w[1].id));
        let rest = store
            .audit(
                &AuditFilter::default(),
                PageRequest {
                    limit: 4,
                    after: first.next_cursor,
                },
            )
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 2);
        assert!(rest.next_cursor.is_none());
        assert_eq!(rest.items[1].action, "key.create");
        assert_eq!(rest.items[1].detail, Some(serde_json::json!({"count": 3})));

        let filter = AuditFilter {
            actor: Some("admin".into()),
            action: Some("task.retry".into()),
            since: Some(now - chrono::TimeDelta::minutes(1)),
            until: None,
        };
        let page = PageRequest {
            limit: 50,
            after: None,
        };
        assert_eq!(store.audit(&filter, page).await.unwrap().items.len(), 3);

        let cutoff = now - chrono::TimeDelta::days(365);
        assert_eq!(store.prune_audit(cutoff, 100).await.unwrap(), 1);
        let all = store.audit(&AuditFilter::default(), page).await.unwrap();
        assert_eq!(all.items.len(), 5);
    }
}
