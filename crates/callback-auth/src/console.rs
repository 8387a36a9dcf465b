//! People signing in to the console: accounts with argon2id passwords,
//! sessions kept in the store as the hash of a random cookie token (so
//! every instance knows them and logging out is immediate), idle expiry,
//! and a limit on sign-in attempts.

use crate::secret::hash_key;
use crate::{Authenticator, Presented};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use callback_core::{
    lock, Account, AccountId, AccountStore, Actor, ConsoleSession, KeyHash, Role, StoreError,
};
use chrono::{DateTime, TimeDelta, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A session's cookie token starts with this.
pub const SESSION_PREFIX: &str = "cbs_";

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Wrong name, wrong password, disabled account: one answer for all,
    /// so that a guesser learns nothing about which names exist.
    #[error("wrong username or password")]
    Refused,
    #[error("too many sign-in attempts; try again in {} s", .0.as_secs().max(1))]
    TooMany(Duration),
    #[error("the store is unavailable")]
    Unavailable(#[source] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("username: {0}")]
    InvalidName(String),
    #[error("an account with this username exists")]
    Taken,
    #[error("no account has this id")]
    NotFound,
    #[error("the store is unavailable")]
    Unavailable(#[source] StoreError),
    #[error("no randomness for a password: {0}")]
    Random(String),
}

impl From<StoreError> for AccountError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::AlreadyExists => AccountError::Taken,
            StoreError::NotFound => AccountError::NotFound,
            other => AccountError::Unavailable(other),
        }
    }
}

pub struct ConsoleAuthConfig {
    /// A session unused for this long is over.
    pub idle_timeout: Duration,
    /// Sign-in attempts allowed per minute for one username; one client
    /// address gets five times as many (colleagues behind one office
    /// address).
    pub sign_ins_per_minute: NonZeroU32,
}

/// A session that was just opened: the token goes into the cookie and is
/// never stored.
pub struct OpenedSession {
    pub token: String,
    pub session: ConsoleSession,
}

pub struct ConsoleAuth {
    accounts: Arc<dyn AccountStore>,
    authenticator: Arc<Authenticator>,
    config: ConsoleAuthConfig,
    by_name: DefaultKeyedRateLimiter<String>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    /// Hashes of dummy passwords, checked when the name is unknown so that
    /// an unknown name takes as long as a wrong password.
    dummy_hash: Mutex<Option<String>>,
}

/// `seen_at` is written at most this often per session.
const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);

impl ConsoleAuth {
    pub fn new(
        accounts: Arc<dyn AccountStore>,
        authenticator: Arc<Authenticator>,
        config: ConsoleAuthConfig,
    ) -> Self {
        let per_name = config.sign_ins_per_minute;
        let per_address = per_name.saturating_mul(NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN));
        Self {
            accounts,
            authenticator,
            by_name: RateLimiter::keyed(Quota::per_minute(per_name)),
            by_address: RateLimiter::keyed(Quota::per_minute(per_address)),
            config,
            dummy_hash: Mutex::new(None),
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        self.config.idle_timeout
    }

    /// Signs a person in with their username and password.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<OpenedSession, SignInError> {
        self.spend(Some(username), client)?;
        let found = self
            .accounts
            .account_by_name(username)
            .await
            .map_err(SignInError::Unavailable)?;
        let Some((account, hash)) = found else {
            let dummy = self.dummy_hash();
            let _ = verify_password(&dummy, password);
            return Err(SignInError::Refused);
        };
        if !verify_password(&hash, password) || account.disabled_at.is_some() {
            return Err(SignInError::Refused);
        }
        if let Err(err) = self.accounts.note_login(account.id, now).await {
            tracing::warn!(error = %err, "could not record a sign-in time");
        }
        self.open(Some(account.id), account.username, account.role, now)
            .await
    }

    /// Signs in with the bootstrap admin token, which acts as `admin`.
    pub async fn sign_in_with_token(
        &self,
        token: &str,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<OpenedSession, SignInError> {
        self.spend(None, client)?;
        let principal = self
            .authenticator
            .authenticate(
                Presented {
                    bearer: Some(token),
                    client,
                },
                now,
            )
            .await
            .map_err(|_| SignInError::Refused)?;
        if principal.actor != Actor::Admin {
            return Err(SignInError::Refused);
        }
        self.open(None, "admin".into(), Role::Admin, now).await
    }

    async fn open(
        &self,
        account: Option<AccountId>,
        username: String,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<OpenedSession, SignInError> {
        let token = random_token(SESSION_PREFIX).map_err(|_| SignInError::Refused)?;
        let csrf = random_token("").map_err(|_| SignInError::Refused)?;
        let session = ConsoleSession {
            token_hash: hash_key(&token),
            account,
            username,
            role,
            csrf,
            created_at: now,
            seen_at: now,
        };
        self.accounts
            .create_session(&session)
            .await
            .map_err(SignInError::Unavailable)?;
        // Sign-ins are rare: a good moment to forget idle sessions.
        let idle = TimeDelta::from_std(self.config.idle_timeout).unwrap_or(TimeDelta::MAX);
        if let Err(err) = self.accounts.prune_sessions(now - idle).await {
            tracing::warn!(error = %err, "could not prune idle console sessions");
        }
        Ok(OpenedSession { token, session })
    }

    /// The live session a cookie's token names; `None` for an unknown,
    /// ended or idle one.
    pub async fn session(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        if !token.starts_with(SESSION_PREFIX) {
            return Ok(None);
        }
        let hash = hash_key(token);
        let Some(session) = self.accounts.session(&hash).await? else {
            return Ok(None);
        };
        let idle = TimeDelta::from_std(self.config.idle_timeout).unwrap_or(TimeDelta::MAX);
        if now - session.seen_at > idle {
            self.accounts.delete_session(&hash).await?;
            return Ok(None);
        }
        if now - session.seen_at > TOUCH_EVERY {
            self.accounts.touch_session(&hash, now).await?;
        }
        Ok(Some(session))
    }

    pub async fn sign_out(&self, token_hash: &KeyHash) -> Result<(), StoreError> {
        self.accounts.delete_session(token_hash).await
    }

    /// Creates an account with a generated password, returned this once.
    pub async fn create_account(
        &self,
        username: &str,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<(Account, String), AccountError> {
        create_account(self.accounts.as_ref(), username, role, now).await
    }

    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.accounts.accounts().await
    }

    pub async fn set_disabled(
        &self,
        id: AccountId,
        at: Option<DateTime<Utc>>,
    ) -> Result<Account, AccountError> {
        Ok(self.accounts.set_account_disabled(id, at).await?)
    }

    /// Gives the account a new generated password, returned this once.
    pub async fn reset_password(&self, id: AccountId) -> Result<String, AccountError> {
        let password = random_token("").map_err(|e| AccountError::Random(e.to_string()))?;
        let hash = hash_password(&password).map_err(AccountError::Random)?;
        self.accounts.set_account_password(id, &hash).await?;
        Ok(password)
    }

    fn spend(&self, username: Option<&str>, client: Option<IpAddr>) -> Result<(), SignInError> {
        let clock = governor::clock::DefaultClock::default();
        let too_many = |not_until: governor::NotUntil<_>| {
            SignInError::TooMany(not_until.wait_time_from(governor::clock::Clock::now(&clock)))
        };
        if let Some(ip) = client {
            self.by_address.check_key(&ip).map_err(too_many)?;
        }
        if let Some(name) = username {
            self.by_name
                .check_key(&name.to_string())
                .map_err(too_many)?;
        }
        // Bounded memory: keys whose limit has fully refilled are forgotten.
        self.by_name.retain_recent();
        self.by_address.retain_recent();
        Ok(())
    }

    fn dummy_hash(&self) -> String {
        let mut dummy = lock(&self.dummy_hash);
        dummy
            .get_or_insert_with(|| hash_password("not a password").unwrap_or_default())
            .clone()
    }
}

/// Creates an account with a generated password: the console's admin page
/// and `callback-center user add` both come here.
pub async fn create_account(
    accounts: &dyn AccountStore,
    username: &str,
    role: Role,
    now: DateTime<Utc>,
) -> Result<(Account, String), AccountError> {
    Account::check_username(username).map_err(AccountError::InvalidName)?;
    let password = random_token("").map_err(|e| AccountError::Random(e.to_string()))?;
    let hash = hash_password(&password).map_err(AccountError::Random)?;
    let account = Account {
        id: AccountId::new(),
        username: username.to_string(),
        role,
        created_at: now,
        disabled_at: None,
        last_login_at: None,
    };
    accounts.create_account(&account, &hash).await?;
    Ok((account, password))
}

/// An argon2id PHC string with the crate's default cost (19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches a PHC string; a malformed one matches nothing.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// `prefix` and 192 random bits, URL-safe.
fn random_token(prefix: &str) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_argon2id_hash_and_nothing_else_does() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horsE"));
        assert!(!verify_password("not a phc string", "correct horse"));
        assert_ne!(hash, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn tokens_are_random_and_prefixed() {
        let a = random_token(SESSION_PREFIX).unwrap();
        assert!(a.starts_with(SESSION_PREFIX));
        assert_eq!(a.len(), SESSION_PREFIX.len() + 32);
        assert_ne!(a, random_token(SESSION_PREFIX).unwrap());
    }
}
