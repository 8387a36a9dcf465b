//! From a presented credential to the principal a request acts as.

use crate::secret::{hash_key, KEY_PREFIX};
use callback_core::{lock, ApiKey, ApiKeyId, KeyHash, KeyStore, Principal, StoreError, TtlCache};
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct AuthConfig {
    /// The bootstrap token; it acts as `admin`.
    pub admin_token: SecretString,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// How long a key read from the store is used before it is read again:
    /// a revocation reaches every instance within this.
    pub key_cache_ttl: Duration,
    /// A key's `last_used_at` is written at most this often per instance.
    pub touch_interval: Duration,
}

/// What a request presents.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The `Authorization: Bearer` value.
    pub bearer: Option<&'a str>,
    /// Where it came from ([`client_ip`](crate::client_ip)).
    pub client: Option<IpAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// No credential, an unknown one, or a key no longer live.
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("this key may not be used from {0}")]
    AddressNotAllowed(String),
    #[error("this key's rate limit of {limit} requests a second is used up")]
    RateLimited { limit: u32, retry_after: Duration },
    #[error("keys cannot be checked: the store is unavailable")]
    Unavailable(#[source] StoreError),
}

/// Keys known to this instance, each read from the store at most once per
/// `key_cache_ttl`. Memory is bounded by the cache's capacity and by the
/// number of keys (limiters and use times are kept per key).
pub struct Authenticator {
    config: AuthConfig,
    keys: Arc<dyn KeyStore>,
    cache: TtlCache<KeyHash, Arc<KnownKey>>,
    /// Made once: every request with the admin token shares it.
    admin: Arc<Principal>,
    limiters: Mutex<HashMap<ApiKeyId, (NonZeroU32, Arc<DefaultDirectRateLimiter>)>>,
    touched: Mutex<HashMap<ApiKeyId, Instant>>,
}

/// A key as read from the store, with the principal it makes: built once
/// per read, shared by the requests until the next one.
struct KnownKey {
    key: ApiKey,
    principal: Arc<Principal>,
}

/// Most keys (and unknown credentials) kept in the cache at once.
const CACHE_CAPACITY: usize = 10_000;

impl Authenticator {
    pub fn new(keys: Arc<dyn KeyStore>, config: AuthConfig) -> Self {
        Self {
            cache: TtlCache::new(config.key_cache_ttl, CACHE_CAPACITY),
            admin: Arc::new(Principal::admin()),
            config,
            keys,
            limiters: Mutex::default(),
            touched: Mutex::default(),
        }
    }

    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.config.trusted_proxies
    }

    /// The principal behind `presented`, or why there is none.
    pub async fn authenticate(
        &self,
        presented: Presented<'_>,
        now: DateTime<Utc>,
    ) -> Result<Arc<Principal>, Denied> {
        let bearer = presented
            .bearer
            .ok_or(Denied::Unauthenticated("missing bearer token"))?;
        if constant_time_eq::constant_time_eq(
            bearer.as_bytes(),
            self.config.admin_token.expose_secret().as_bytes(),
        ) {
            return Ok(self.admin.clone());
        }
        if !bearer.starts_with(KEY_PREFIX) {
            return Err(Denied::Unauthenticated("invalid bearer token"));
        }
        // Looked up by the hash of what was presented: no comparison
        // against any stored secret happens, so timing tells nothing.
        let known = self
            .key(hash_key(bearer))
            .await?
            .ok_or(Denied::Unauthenticated("invalid bearer token"))?;
        let key = &known.key;
        if key.revoked_at.is_some() {
            return Err(Denied::Unauthenticated("this key has been revoked"));
        }
        if !key.is_live(now) {
            return Err(Denied::Unauthenticated("this key has expired"));
        }
        match presented.client {
            Some(ip) if key.allow_ips.permits(ip) => {}
            Some(ip) => return Err(Denied::AddressNotAllowed(ip.to_string())),
            None if key.allow_ips.entries().is_empty() => {}
            None => return Err(Denied::AddressNotAllowed("an unknown address".into())),
        }
        if let Some(limit) = key.rate_limit_per_s {
            self.spend(key.id, limit)?;
        }
        self.touch(key.id, now);
        Ok(known.principal.clone())
    }

    /// Forgets every key read, so that this instance sees a revocation at
    /// once (the others within `key_cache_ttl`).
    pub fn forget_keys(&self) {
        self.cache.clear();
    }

    async fn key(&self, hash: KeyHash) -> Result<Option<Arc<KnownKey>>, Denied> {
        if let Some(cached) = self.cache.get(&hash) {
            return Ok(cached);
        }
        let key = self
            .keys
            .key_by_hash(&hash)
            .await
            .map_err(Denied::Unavailable)?
            .map(|key| {
                let principal = Arc::new(Principal::of_key(&key));
                Arc::new(KnownKey { key, principal })
            });
        self.cache.put(hash, key.clone());
        Ok(key)
    }

    fn spend(&self, id: ApiKeyId, limit: NonZeroU32) -> Result<(), Denied> {
        let limiter = {
            let mut limiters = lock(&self.limiters);
            let entry = limiters.entry(id).or_insert_with(|| {
                (
                    limit,
                    Arc::new(RateLimiter::direct(Quota::per_second(limit))),
                )
            });
            if entry.0 != limit {
                *entry = (
                    limit,
                    Arc::new(RateLimiter::direct(Quota::per_second(limit))),
                );
            }
            entry.1.clone()
        };
        limiter.check().map_err(|not_until| Denied::RateLimited {
            limit: limit.get(),
            retry_after: not_until.wait_time_from(governor::clock::Clock::now(limiter.clock())),
        })
    }

    /// Records a use in the background, at most once per `touch_interval`:
    /// a request never waits for it, and a busy key costs no write per
    /// request.
    fn touch(&self, id: ApiKeyId, now: DateTime<Utc>) {
        {
            let mut touched = lock(&self.touched);
            if touched
                .get(&id)
                .is_some_and(|at| at.elapsed() < self.config.touch_interval)
            {
                return;
            }
            touched.insert(id, Instant::now());
        }
        let keys = self.keys.clone();
        tokio::spawn(async move {
            if let Err(err) = keys.touch_key(id, now).await {
                tracing::warn!(key = %id, error = %err, "could not record a key's use");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::generate_key;
    use async_trait::async_trait;
    use callback_core::{IpAllowlist, Scope, Scopes};

    /// Keys in a map: a fake is fine here, the rules are what is tested;
    /// the real store is exercised by the server's tests.
    #[derive(Default)]
    struct Keys(Mutex<Vec<(KeyHash, ApiKey)>>, Mutex<u32>);

    #[async_trait]
    impl KeyStore for Keys {
        async fn create_key(&self, key: &ApiKey, hash: &KeyHash) -> Result<(), StoreError> {
            lock(&self.0).push((*hash, key.clone()));
            Ok(())
        }
        async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
            Ok(lock(&self.0).iter().map(|(_, k)| k.clone()).collect())
        }
        async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKey>, StoreError> {
            *lock(&self.1) += 1;
            Ok(lock(&self.0)
                .iter()
                .find(|(h, _)| h == hash)
                .map(|(_, k)| k.clone()))
        }
        async fn revoke_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<ApiKey, StoreError> {
            let mut keys = lock(&self.0);
            let key = keys
                .iter_mut()
                .find(|(_, k)| k.id == id)
                .ok_or(StoreError::NotFound)?;
            key.1.revoked_at = Some(at);
            Ok(key.1.clone())
        }
        async fn touch_key(&self, _: ApiKeyId, _: DateTime<Utc>) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn key(allow_ips: &[&str], rate: Option<u32>) -> ApiKey {
        ApiKey {
            id: ApiKeyId::new(),
            name: "shop-backend".into(),
            app: Some("shop".into()),
            scopes: Scopes::new([Scope::TasksWrite]).unwrap(),
            allow_ips: IpAllowlist::parse(allow_ips).unwrap(),
            expires_at: None,
            rate_limit_per_s: rate.and_then(NonZeroU32::new),
            created_at: Utc::now(),
            last_used_at: None,
            revoked_at: None,
        }
    }

    async fn setup(key: &ApiKey, ttl: Duration) -> (Arc<Keys>, Authenticator, String) {
        let keys = Arc::new(Keys::default());
        let (secret, hash) = generate_key().unwrap();
        keys.create_key(key, &hash).await.unwrap();
        let auth = Authenticator::new(
            keys.clone(),
            AuthConfig {
                admin_token: SecretString::from("admin-secret"),
                trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
                key_cache_ttl: ttl,
                touch_interval: Duration::from_secs(60),
            },
        );
        (keys, auth, secret.expose_secret().to_string())
    }

    fn from<'a>(bearer: &'a str, client: &str) -> Presented<'a> {
        Presented {
            bearer: Some(bearer),
            client: Some(client.parse().unwrap()),
        }
    }

    #[tokio::test]
    async fn the_admin_token_and_a_live_key_authenticate_and_nothing_else_does() {
        let key = key(&[], None);
        let (_, auth, secret) = setup(&key, Duration::from_secs(1)).await;
        let now = Utc::now();
        let admin = auth.authenticate(from("admin-secret", "1.2.3.4"), now);
        assert_eq!(*admin.await.unwrap(), Principal::admin());
        let principal = auth.authenticate(from(&secret, "1.2.3.4"), now).await;
        assert_eq!(principal.unwrap().app.as_deref(), Some("shop"));
        for wrong in ["admin-secre", "cbk_wrong", "", "Bearer x"] {
            let denied = auth.authenticate(from(wrong, "1.2.3.4"), now).await;
            assert!(matches!(denied, Err(Denied::Unauthenticated(_))), "{wrong}");
        }
        let none = auth.authenticate(Presented::default(), now).await;
        assert!(matches!(none, Err(Denied::Unauthenticated(_))));
    }

    #[tokio::test]
    async fn a_revocation_is_seen_once_the_cache_expires_and_at_once_when_forgotten() {
        let key = key(&[], None);
        let (keys, auth, secret) = setup(&key, Duration::from_millis(200)).await;
        let now = Utc::now();
        auth.authenticate(from(&secret, "1.2.3.4"), now)
            .await
            .unwrap();
        keys.revoke_key(key.id, now).await.unwrap();
        // Still cached: one store read so far.
        assert!(auth
            .authenticate(from(&secret, "1.2.3.4"), now)
            .await
            .is_ok());
        assert_eq!(*lock(&keys.1), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let denied = auth.authenticate(from(&secret, "1.2.3.4"), now).await;
        assert!(matches!(denied, Err(Denied::Unauthenticated(m)) if m.contains("revoked")));

        let other = self::key(&[], None);
        let (keys, auth, secret) = setup(&other, Duration::from_secs(60)).await;
        auth.authenticate(from(&secret, "1.2.3.4"), now)
            .await
            .unwrap();
        keys.revoke_key(other.id, now).await.unwrap();
        auth.forget_keys();
        assert!(auth
            .authenticate(from(&secret, "1.2.3.4"), now)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn expired_keys_and_addresses_outside_the_allowlist_are_refused() {
        let mut expired = key(&[], None);
        expired.expires_at = Some(Utc::now() - chrono::TimeDelta::seconds(1));
        let (_, auth, secret) = setup(&expired, Duration::from_secs(1)).await;
        let denied = auth
            .authenticate(from(&secret, "1.2.3.4"), Utc::now())
            .await;
        assert!(matches!(denied, Err(Denied::Unauthenticated(m)) if m.contains("expired")));

        let fenced = key(&["10.0.0.0/8"], None);
        let (_, auth, secret) = setup(&fenced, Duration::from_secs(1)).await;
        let now = Utc::now();
        assert!(auth
            .authenticate(from(&secret, "10.9.9.9"), now)
            .await
            .is_ok());
        let outside = auth.authenticate(from(&secret, "11.0.0.1"), now).await;
        assert!(matches!(outside, Err(Denied::AddressNotAllowed(ip)) if ip == "11.0.0.1"));
        let unknown = auth
            .authenticate(
                Presented {
                    bearer: Some(&secret),
                    client: None,
                },
                now,
            )
            .await;
        assert!(matches!(unknown, Err(Denied::AddressNotAllowed(_))));
    }

    #[tokio::test]
    async fn a_key_over_its_rate_is_told_when_to_come_back() {
        let limited = key(&[], Some(3));
        let (_, auth, secret) = setup(&limited, Duration::from_secs(1)).await;
        let now = Utc::now();
        for _ in 0..3 {
            auth.authenticate(from(&secret, "1.2.3.4"), now)
                .await
                .unwrap();
        }
        match auth.authenticate(from(&secret, "1.2.3.4"), now).await {
            Err(Denied::RateLimited { limit, retry_after }) => {
                assert_eq!(limit, 3);
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }
}
