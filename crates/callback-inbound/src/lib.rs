//! Inbound vendor callbacks: finds the route of a callback's key (cache,
//! then the store, then a plain Redis key other services write), records the
//! callback and the task that forwards it in one transaction, keeps what has
//! no route yet, and forwards it when its route appears.
//!
//! Nothing inbound is lost: a callback is acknowledged to the vendor only
//! after it is stored, forwarded or not.

use callback_core::{
    Body, Dispatch, HeaderList, InboundFilter, InboundRecord, InboundStatus, InboundStore,
    KeyValue, MaxAttempts, Method, Namespace, NewTask, QueryList, RouteKey, StoreError, TargetUrl,
    TaskId, TaskSpec, TtlCache,
};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Routes remembered in process, at most.
const MAX_CACHED: usize = 10_000;
/// Unrouted callbacks forwarded per route creation, per batch.
const FORWARD_BATCH: u32 = 100;

/// A configured vendor: `POST /inbound/{name}`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub namespace: Namespace,
    /// Where the routing key is in the JSON body, e.g. `/trace_id`.
    pub key_pointer: String,
    /// Verify a hex HMAC-SHA256 of the body in this header...
    pub hmac_header: Option<String>,
    /// ...keyed with this secret.
    pub hmac_secret: Option<String>,
    /// Or require this header...
    pub token_header: Option<String>,
    /// ...to equal this token.
    pub token: Option<String>,
    /// Where callbacks without a route go; none: they wait, unrouted.
    pub default_target: Option<TargetUrl>,
}

/// WeChat message push: tokens to verify signatures with.
#[derive(Debug, Clone, Default)]
pub struct WechatConfig {
    pub token: Option<String>,
    /// Per mini-program: appid → token.
    pub apps: BTreeMap<String, String>,
    /// The namespace `wxa_media_check` results are routed in.
    pub namespace: Option<Namespace>,
    /// Safe mode's EncodingAESKeys: for any appid (`None`) or for one.
    pub aes_keys: Vec<(Option<String>, callback_core::EncodingAesKey)>,
}

impl WechatConfig {
    /// Decrypts a safe-mode push with the first key that fits: a key given
    /// for an appid fits only a push naming that appid.
    pub fn decrypt(
        &self,
        encrypt: &str,
    ) -> Result<callback_core::wechat_safe_mode::Decrypted, String> {
        if self.aes_keys.is_empty() {
            return Err(
                "the push is encrypted (safe mode) and inbound.wechat.encoding_aes_key is not set"
                    .into(),
            );
        }
        let mut last = String::new();
        for (appid, key) in &self.aes_keys {
            match callback_core::wechat_safe_mode::decrypt(key, encrypt) {
                Ok(d) if appid.as_ref().is_none_or(|a| *a == d.appid) => return Ok(d),
                Ok(d) => last = format!("the push is for appid {}", d.appid),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub fn tokens(&self) -> Vec<&str> {
        self.token
            .iter()
            .map(String::as_str)
            .chain(self.apps.values().map(String::as_str))
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct InboundConfig {
    pub wechat: WechatConfig,
    pub sources: BTreeMap<String, SourceConfig>,
    /// Plain Redis keys `{prefix}:{namespace}:{key}` holding a URL are
    /// routes too (for services that wrote them before the store did).
    pub legacy_key_prefix: Option<String>,
    /// Prefix of the route cache's Redis keys.
    pub cache_key_prefix: String,
    pub cache_ttl: Duration,
    pub max_attempts: MaxAttempts,
    pub timeout_ms: u32,
}

/// Where a callback goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub url: TargetUrl,
    pub headers: HeaderList,
}

pub struct Inbound {
    store: Arc<dyn InboundStore>,
    kv: Option<Arc<dyn KeyValue>>,
    dispatch: Arc<dyn Dispatch>,
    config: InboundConfig,
    /// Routes (and their absence) looked up in process, when there is no Redis.
    cache: TtlCache<(Namespace, RouteKey), Target>,
}

impl Inbound {
    pub fn new(
        store: Arc<dyn InboundStore>,
        kv: Option<Arc<dyn KeyValue>>,
        dispatch: Arc<dyn Dispatch>,
        config: InboundConfig,
    ) -> Self {
        Self {
            store,
            kv,
            dispatch,
            cache: TtlCache::new(config.cache_ttl, MAX_CACHED),
            config,
        }
    }

    pub fn config(&self) -> &InboundConfig {
        &self.config
    }

    fn cache_key(&self, ns: &Namespace, key: &RouteKey) -> String {
        format!("{}:route:{ns}:{key}", self.config.cache_key_prefix)
    }

    /// The live route of (namespace, key), if any.
    pub async fn resolve(
        &self,
        ns: &Namespace,
        key: &RouteKey,
        now: DateTime<Utc>,
    ) -> Result<Option<Target>, StoreError> {
        let id = (ns.clone(), key.clone());
        if self.kv.is_none() {
            if let Some(target) = self.cache.get(&id) {
                return Ok(target);
            }
        } else if let Some(kv) = &self.kv {
            if let Ok(Some(raw)) = kv.get(&self.cache_key(ns, key)).await {
                if let Some(target) = decode_target(&raw) {
                    return Ok(Some(target));
                }
            }
        }
        let found = match self.store.route(ns, key).await? {
            Some(route) if route.is_live(now) => Some(Target {
                url: route.target_url,
                headers: route.headers,
            }),
            _ => None,
        };
        match (&self.kv, &found) {
            (Some(kv), Some(target)) => {
                let _ = kv
                    .set_ex(
                        &self.cache_key(ns, key),
                        &encode_target(target),
                        self.config.cache_ttl,
                    )
                    .await;
            }
            (None, _) => self.cache.put(id, found.clone()),
            (Some(_), None) => {}
        }
        if found.is_some() {
            return Ok(found);
        }
        Ok(self.legacy_route(ns, key).await)
    }

    /// A plain Redis key written by another service, when configured.
    async fn legacy_route(&self, ns: &Namespace, key: &RouteKey) -> Option<Target> {
        let (Some(kv), Some(prefix)) = (&self.kv, &self.config.legacy_key_prefix) else {
            return None;
        };
        let raw = kv.get(&format!("{prefix}:{ns}:{key}")).await.ok()??;
        match TargetUrl::parse(raw.trim()) {
            Ok(url) => Some(Target {
                url,
                headers: HeaderList::default(),
            }),
            Err(why) => {
                tracing::warn!(namespace = %ns, key = %key, why, "a legacy route key holds no usable URL");
                None
            }
        }
    }

    /// Records a callback and forwards it when its route is known (or the
    /// source has a default target). Returns only once it is stored.
    pub async fn receive(
        &self,
        source: &str,
        route: Option<(Namespace, RouteKey)>,
        default_target: Option<&TargetUrl>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<InboundRecord, StoreError> {
        let now = Utc::now();
        let target = match &route {
            Some((ns, key)) => self.resolve(ns, key, now).await?,
            None => None,
        };
        let target = target.or_else(|| {
            default_target.map(|url| Target {
                url: url.clone(),
                headers: HeaderList::default(),
            })
        });
        let (namespace, key) = match route {
            Some((ns, key)) => (Some(ns), Some(key)),
            None => (None, None),
        };
        let mut record = InboundRecord {
            id: Uuid::now_v7(),
            source: source.to_string(),
            status: match (&target, &namespace) {
                (Some(_), _) => InboundStatus::Forwarded,
                (None, Some(_)) => InboundStatus::Unrouted,
                (None, None) => InboundStatus::Ignored,
            },
            namespace,
            key,
            received_at: now,
            content_type: content_type.to_string(),
            body,
            task_id: None,
        };
        let task = target.map(|t| self.forward_task(&record, &t, now));
        record.task_id = task.as_ref().map(|t| t.id);
        self.store.receive(&record, task.as_ref()).await?;
        if let Some(task) = &task {
            self.dispatch.accepted(task.id, now).await;
        }
        Ok(record)
    }

    /// The route of (namespace, key) was created or changed: forget cached
    /// copies, and forward every callback that waited for it.
    pub async fn route_changed(&self, ns: &Namespace, key: &RouteKey) -> Result<u64, StoreError> {
        self.forget(ns, key).await;
        let now = Utc::now();
        let Some(target) = self.resolve(ns, key, now).await? else {
            return Ok(0);
        };
        let filter = InboundFilter {
            namespace: Some(ns.clone()),
            key: Some(key.clone()),
            status: Some(InboundStatus::Unrouted),
            ..InboundFilter::default()
        };
        let mut forwarded = 0;
        loop {
            let waiting = self.store.inbound(&filter, None, FORWARD_BATCH).await?;
            if waiting.is_empty() {
                return Ok(forwarded);
            }
            for record in waiting {
                let task = self.forward_task(&record, &target, now);
                if self.store.forward(record.id, &task, false).await? {
                    self.dispatch.accepted(task.id, now).await;
                    forwarded += 1;
                }
            }
        }
    }

    /// Forgets cached copies of a route (deleted or changed).
    pub async fn forget(&self, ns: &Namespace, key: &RouteKey) {
        self.cache.forget(&(ns.clone(), key.clone()));
        if let Some(kv) = &self.kv {
            if let Err(err) = kv.del(&self.cache_key(ns, key)).await {
                tracing::warn!(error = %err, "could not drop a cached route; it expires on its own");
            }
        }
    }

    /// An operator's forward of any recorded callback to a URL of their
    /// choice. Returns the task, or `None` when there is no such record.
    pub async fn forward_to(&self, id: Uuid, url: TargetUrl) -> Result<Option<TaskId>, StoreError> {
        let Some(record) = self.store.inbound_record(id).await? else {
            return Ok(None);
        };
        let now = Utc::now();
        let target = Target {
            url,
            headers: HeaderList::default(),
        };
        let task = self.forward_task(&record, &target, now);
        if !self.store.forward(id, &task, true).await? {
            return Ok(None);
        }
        self.dispatch.accepted(task.id, now).await;
        Ok(Some(task.id))
    }

    /// The task that forwards a callback: its body byte for byte, with its
    /// content type.
    fn forward_task(&self, record: &InboundRecord, target: &Target, now: DateTime<Utc>) -> NewTask {
        NewTask {
            id: TaskId::new(),
            spec: TaskSpec {
                url: target.url.clone(),
                method: Method::Post,
                headers: target.headers.clone(),
                query: QueryList::default(),
                body: Some(Body {
                    content_type: record.content_type.clone(),
                    bytes: record.body.clone(),
                }),
                max_attempts: self.config.max_attempts,
                retry_schedule: None,
                timeout_ms: self.config.timeout_ms,
                expect: Default::default(),
                source_app: Some(format!("inbound:{}", record.source)),
                target_app: record.namespace.as_ref().map(|n| n.to_string()),
                idempotency_key: None,
                endpoint: None,
                event_type: None,
                alert_hook: None,
                traceparent: None,
                ordering: None,
            },
            first_attempt_at: now,
            created_at: now,
            lease: None,
            held: false,
        }
    }
}

fn encode_target(t: &Target) -> String {
    let headers: Vec<(&str, &str)> = t.headers.iter().collect();
    serde_json::json!({"url": t.url.as_str(), "headers": headers}).to_string()
}

fn decode_target(raw: &str) -> Option<Target> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    let url = TargetUrl::parse(v.get("url")?.as_str()?).ok()?;
    let pairs: Vec<(String, String)> = serde_json::from_value(v.get("headers")?.clone()).ok()?;
    Some(Target {
        url,
        headers: HeaderList::parse(pairs).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_targets_round_trip() {
        let target = Target {
            url: TargetUrl::parse("https://svc.internal/moderation?x=1").unwrap(),
            headers: HeaderList::parse(vec![("X-Team".into(), "risk".into())]).unwrap(),
        };
        assert_eq!(decode_target(&encode_target(&target)), Some(target));
        assert_eq!(decode_target("not json"), None);
    }
}
