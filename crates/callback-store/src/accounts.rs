//! `AccountStore` on sea-orm: console accounts and their sessions.

use crate::db_error::{is_unique_violation, unavailable};
use crate::entities::{account, console_session};
use crate::mapping::{corrupt, ms, time};
use crate::SqlTaskStore;
use async_trait::async_trait;
use callback_core::{Account, AccountId, AccountStore, ConsoleSession, KeyHash, Role, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

fn account_from_row(row: account::Model) -> Result<(Account, String), StoreError> {
    let account = Account {
        id: row.id.parse().map_err(|e| corrupt("account id", e))?,
        username: row.username,
        role: Role::parse(&row.role).map_err(|e| corrupt("account role", e))?,
        created_at: time(row.created_at)?,
        disabled_at: row.disabled_at.map(time).transpose()?,
        last_login_at: row.last_login_at.map(time).transpose()?,
    };
    Ok((account, row.password_hash))
}

fn session_from_row(
    hash: KeyHash,
    row: console_session::Model,
) -> Result<ConsoleSession, StoreError> {
    Ok(ConsoleSession {
        token_hash: hash,
        account: row
            .account_id
            .map(|id| id.parse().map_err(|e| corrupt("session account", e)))
            .transpose()?,
        username: row.username,
        role: Role::parse(&row.role).map_err(|e| corrupt("session role", e))?,
        csrf: row.csrf,
        created_at: time(row.created_at)?,
        seen_at: time(row.seen_at)?,
    })
}

#[async_trait]
impl AccountStore for SqlTaskStore {
    async fn create_account(
        &self,
        account: &Account,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let row = account::ActiveModel {
            id: Set(account.id.to_string()),
            username: Set(account.username.clone()),
            password_hash: Set(password_hash.to_string()),
            role: Set(account.role.as_str().to_string()),
            created_at: Set(ms(account.created_at)),
            disabled_at: Set(account.disabled_at.map(ms)),
            last_login_at: Set(account.last_login_at.map(ms)),
        };
        match account::Entity::insert(row).exec(self.writer()).await {
            Ok(_) => Ok(()),
            Err(err) if is_unique_violation(&err) => Err(StoreError::AlreadyExists),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        account::Entity::find()
            .order_by_asc(account::Column::CreatedAt)
            .order_by_asc(account::Column::Id)
            .all(self.connection())
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|row| account_from_row(row).map(|(account, _)| account))
            .collect()
    }

    async fn account_by_name(
        &self,
        username: &str,
    ) -> Result<Option<(Account, String)>, StoreError> {
        account::Entity::find()
            .filter(account::Column::Username.eq(username))
            .one(self.writer())
            .await
            .map_err(unavailable)?
            .map(account_from_row)
            .transpose()
    }

    async fn set_account_disabled(
        &self,
        id: AccountId,
        at: Option<DateTime<Utc>>,
    ) -> Result<Account, StoreError> {
        account::Entity::update_many()
            .col_expr(account::Column::DisabledAt, Expr::value(at.map(ms)))
            .filter(account::Column::Id.eq(id.to_string()))
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        if at.is_some() {
            console_session::Entity::delete_many()
                .filter(console_session::Column::AccountId.eq(id.to_string()))
                .exec(self.writer())
                .await
                .map_err(unavailable)?;
        }
        account::Entity::find_by_id(id.to_string())
            .one(self.writer())
            .await
            .map_err(unavailable)?
            .ok_or(StoreError::NotFound)
            .and_then(account_from_row)
            .map(|(account, _)| account)
    }

    async fn set_account_password(
        &self,
        id: AccountId,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let result = account::Entity::update_many()
            .col_expr(account::Column::PasswordHash, Expr::value(password_hash))
            .filter(account::Column::Id.eq(id.to_string()))
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        if result.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn note_login(&self, id: AccountId, at: DateTime<Utc>) -> Result<(), StoreError> {
        account::Entity::update_many()
            .col_expr(account::Column::LastLoginAt, Expr::value(ms(at)))
            .filter(account::Column::Id.eq(id.to_string()))
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn create_session(&self, session: &ConsoleSession) -> Result<(), StoreError> {
        let row = console_session::ActiveModel {
            token_hash: Set(session.token_hash.to_hex()),
            account_id: Set(session.account.map(|id| id.to_string())),
            username: Set(session.username.clone()),
            role: Set(session.role.as_str().to_string()),
            csrf: Set(session.csrf.clone()),
            created_at: Set(ms(session.created_at)),
            seen_at: Set(ms(session.seen_at)),
        };
        console_session::Entity::insert(row)
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn session(&self, token_hash: &KeyHash) -> Result<Option<ConsoleSession>, StoreError> {
        console_session::Entity::find_by_id(token_hash.to_hex())
            .one(self.writer())
            .await
            .map_err(unavailable)?
            .map(|row| session_from_row(*token_hash, row))
            .transpose()
    }

    async fn touch_session(
        &self,
        token_hash: &KeyHash,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        console_session::Entity::update_many()
            .col_expr(console_session::Column::SeenAt, Expr::value(ms(at)))
            .filter(console_session::Column::TokenHash.eq(token_hash.to_hex()))
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &KeyHash) -> Result<(), StoreError> {
        console_session::Entity::delete_by_id(token_hash.to_hex())
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn prune_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        console_session::Entity::delete_many()
            .filter(console_session::Column::SeenAt.lt(ms(before)))
            .exec(self.writer())
            .await
            .map(|r| r.rows_affected)
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::in_memory_store;

    fn account(name: &str, role: Role) -> Account {
        Account {
            id: AccountId::new(),
            username: name.into(),
            role,
            created_at: Utc::now(),
            disabled_at: None,
            last_login_at: None,
        }
    }

    #[tokio::test]
    async fn an_account_is_found_by_name_a_taken_name_is_refused_and_disabling_ends_its_sessions() {
        let store = in_memory_store().await;
        let alice = account("alice", Role::Operator);
        store.create_account(&alice, "$argon2id$x").await.unwrap();
        let taken = store
            .create_account(&account("alice", Role::Viewer), "h")
            .await;
        assert!(matches!(taken, Err(StoreError::AlreadyExists)), "{taken:?}");
        let (found, hash) = store.account_by_name("alice").await.unwrap().unwrap();
        assert_eq!((found.role, hash.as_str()), (Role::Operator, "$argon2id$x"));
        assert!(store.account_by_name("bob").await.unwrap().is_none());

        let now = Utc::now();
        let session = ConsoleSession {
            token_hash: KeyHash([7; 32]),
            account: Some(alice.id),
            username: "alice".into(),
            role: Role::Operator,
            csrf: "c".into(),
            created_at: now,
            seen_at: now,
        };
        store.create_session(&session).await.unwrap();
        let read = store.session(&KeyHash([7; 32])).await.unwrap().unwrap();
        assert_eq!(read.account, Some(alice.id));
        assert_eq!(read.principal().actor.label(), "account:alice");

        let disabled = store
            .set_account_disabled(alice.id, Some(now))
            .await
            .unwrap();
        assert!(disabled.disabled_at.is_some());
        assert!(store.session(&KeyHash([7; 32])).await.unwrap().is_none());
    }
}
