//! `KeyStore` on sea-orm: API keys, found by the hash of their secret.

use crate::db_error::{is_unique_violation, unavailable};
use crate::entities::api_key;
use crate::mapping::{corrupt, ms, time};
use crate::SqlTaskStore;
use async_trait::async_trait;
use callback_core::{ApiKey, ApiKeyId, IpAllowlist, KeyHash, KeyStore, Scope, Scopes, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use std::num::NonZeroU32;

fn key_row(key: &ApiKey, hash: &KeyHash) -> api_key::ActiveModel {
    use sea_orm::ActiveValue::Set;
    let scopes: Vec<&str> = key.scopes.iter().map(Scope::as_str).collect();
    let networks: Vec<String> = key
        .allow_ips
        .entries()
        .iter()
        .map(ToString::to_string)
        .collect();
    api_key::ActiveModel {
        id: Set(key.id.to_string()),
        key_hash: Set(hash.to_hex()),
        name: Set(key.name.clone()),
        app: Set(key.app.clone()),
        scopes: Set(scopes.join(" ")),
        allow_ips: Set(networks.join(" ")),
        expires_at: Set(key.expires_at.map(ms)),
        rate_limit_per_s: Set(key
            .rate_limit_per_s
            .map(|n| i32::try_from(n.get()).unwrap_or(i32::MAX))),
        created_at: Set(ms(key.created_at)),
        last_used_at: Set(key.last_used_at.map(ms)),
        revoked_at: Set(key.revoked_at.map(ms)),
    }
}

fn key_from_row(row: api_key::Model) -> Result<ApiKey, StoreError> {
    let scopes = row
        .scopes
        .split_whitespace()
        .map(Scope::parse)
        .collect::<Result<Vec<_>, _>>()
        .and_then(Scopes::new)
        .map_err(|e| corrupt("key scopes", e))?;
    let networks: Vec<&str> = row.allow_ips.split_whitespace().collect();
    Ok(ApiKey {
        id: row.id.parse().map_err(|e| corrupt("key id", e))?,
        name: row.name,
        app: row.app,
        scopes,
        allow_ips: IpAllowlist::parse(&networks).map_err(|e| corrupt("key allow_ips", e))?,
        expires_at: row.expires_at.map(time).transpose()?,
        rate_limit_per_s: row
            .rate_limit_per_s
            .and_then(|n| u32::try_from(n).ok())
            .and_then(NonZeroU32::new),
        created_at: time(row.created_at)?,
        last_used_at: row.last_used_at.map(time).transpose()?,
        revoked_at: row.revoked_at.map(time).transpose()?,
    })
}

#[async_trait]
impl KeyStore for SqlTaskStore {
    async fn create_key(&self, key: &ApiKey, hash: &KeyHash) -> Result<(), StoreError> {
        match api_key::Entity::insert(key_row(key, hash))
            .exec(self.writer())
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if is_unique_violation(&err) => Err(StoreError::AlreadyExists),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        api_key::Entity::find()
            .order_by_desc(api_key::Column::CreatedAt)
            .order_by_desc(api_key::Column::Id)
            .all(self.connection())
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(key_from_row)
            .collect()
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKey>, StoreError> {
        api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(hash.to_hex()))
            .one(self.connection())
            .await
            .map_err(unavailable)?
            .map(key_from_row)
            .transpose()
    }

    async fn revoke_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<ApiKey, StoreError> {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(ms(at)))
            .filter(api_key::Column::Id.eq(id.to_string()))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        api_key::Entity::find_by_id(id.to_string())
            .one(self.writer())
            .await
            .map_err(unavailable)?
            .ok_or(StoreError::NotFound)
            .and_then(key_from_row)
    }

    async fn touch_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<(), StoreError> {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(ms(at)))
            .filter(api_key::Column::Id.eq(id.to_string()))
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::in_memory_store;

    fn key(app: Option<&str>, scopes: &[Scope]) -> ApiKey {
        ApiKey {
            id: ApiKeyId::new(),
            name: "shop-backend".into(),
            app: app.map(Into::into),
            scopes: Scopes::new(scopes.iter().copied()).unwrap(),
            allow_ips: IpAllowlist::parse(&["10.0.0.0/8", "192.168.1.7"]).unwrap(),
            expires_at: None,
            rate_limit_per_s: NonZeroU32::new(5),
            created_at: Utc::now(),
            last_used_at: None,
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn a_key_is_found_by_its_hash_and_revoked_once() {
        let store = in_memory_store().await;
        let key = key(Some("shop"), &[Scope::TasksWrite, Scope::TasksRead]);
        let hash = KeyHash([7; 32]);
        store.create_key(&key, &hash).await.unwrap();
        let mut found = store.key_by_hash(&hash).await.unwrap().unwrap();
        found.created_at = key.created_at;
        assert_eq!(found.scopes, key.scopes);
        assert_eq!(found.allow_ips, key.allow_ips);
        assert_eq!(found.rate_limit_per_s, key.rate_limit_per_s);
        assert!(store
            .key_by_hash(&KeyHash([8; 32]))
            .await
            .unwrap()
            .is_none());
        assert!(matches!(
            store.create_key(&key, &hash).await,
            Err(StoreError::AlreadyExists)
        ));

        let first = Utc::now();
        let revoked = store.revoke_key(key.id, first).await.unwrap();
        assert_eq!(revoked.revoked_at.map(ms), Some(ms(first)));
        let again = store
            .revoke_key(key.id, first + chrono::TimeDelta::seconds(5))
            .await
            .unwrap();
        assert_eq!(again.revoked_at.map(ms), Some(ms(first)), "first time kept");
        assert!(matches!(
            store.revoke_key(ApiKeyId::new(), first).await,
            Err(StoreError::NotFound)
        ));

        store.touch_key(key.id, first).await.unwrap();
        let listed = store.keys().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].last_used_at.map(ms), Some(ms(first)));
    }
}
