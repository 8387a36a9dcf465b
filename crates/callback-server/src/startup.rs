//! The composition root: settings in, a running server out. `main` and the
//! tests build the application through the same `Application::build`.

use crate::settings::Settings;
use actix_web::{dev::Server, web, App, HttpServer};
use anyhow::Context;
use callback_alert::{AlertConfig, Alerter, DirectSend, SuccessRateRule};
use callback_api::live::AttemptFeed;
use callback_api::{ApiState, BucketSettings, TaskDefaults};
use callback_auth::{AuthConfig, Authenticator, ConsoleAuth, ConsoleAuthConfig};
use callback_core::{
    AlertLinks, AlertStore, AuditStore, BothObservers, BucketClock, DelayQueue, Dispatch,
    EncodingAesKey, EndpointStore, InboundStore, KeyStore, KeyValue, MaxAttempts, Namespace,
    NoObserver, Observe, OperatorStore, RetrySchedule, SharedLimits, TargetUrl, TaskStore,
};
use callback_delivery::{
    run_retention, BreakerConfig, Delivery, DeliveryConfig, HttpSender, ReceiverLimits, Receivers,
    RetentionConfig, SenderConfig,
};
use callback_embedded::InProcessDelayQueue;
use callback_inbound::{Inbound, InboundConfig, SourceConfig, WechatConfig};
use callback_metrics::Metrics;
use callback_redis::{RedisDelayQueue, RedisQueueOptions, RedisTopology};
use callback_store::{GroupCommitOptions, StoreOptions};
use secrecy::{ExposeSecret, SecretString};
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where the admin token came from, so that the start banner can say so
/// without printing a token an operator configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Configured,
    Generated(/* first start */ bool),
}

pub struct Application {
    address: SocketAddr,
    server: Server,
    /// `/metrics` on an address of its own, when `metrics.bind` asks.
    metrics_server: Option<(SocketAddr, Server)>,
    delivery: Delivery,
    alerter: Arc<Alerter>,
    operators: Arc<dyn OperatorStore>,
    retention: RetentionConfig,
    audit: Arc<dyn AuditStore>,
    audit_retention: Option<chrono::TimeDelta>,
    admin_token: SecretString,
    token_source: TokenSource,
    token_file: PathBuf,
    /// Attempt spans for a collector, flushed on the way out.
    spans: Option<Arc<crate::spans::Export>>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.data.dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                settings.data.dir.display()
            )
        })?;
        let database_url = settings.database.url.expose_secret().to_string();
        if let Some(parent) = sqlite_parent_dir(&database_url) {
            std::fs::create_dir_all(&parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let token_file = settings.data.dir.join("admin-token");
        let (admin_token, token_source) = match &settings.auth.admin_token {
            Some(token) => (token.clone(), TokenSource::Configured),
            None => load_or_generate_token(&token_file)?,
        };

        let sql = Arc::new(
            callback_store::connect(&StoreOptions {
                url: database_url,
                max_connections: settings.database.max_connections,
                connect_timeout: Duration::from_millis(settings.database.connect_timeout_ms),
                group_commit: Some(GroupCommitOptions {
                    max_batch: settings.database.group_commit_max_batch,
                    max_wait: Duration::from_micros(settings.database.group_commit_max_wait_us),
                }),
            })
            .await
            .context("cannot open the task store")?,
        );
        let store: Arc<dyn TaskStore> = sql.clone();
        let endpoints: Arc<dyn EndpointStore> = sql.clone();
        let alerts: Arc<dyn AlertStore> = sql.clone();
        let inbound_store: Arc<dyn InboundStore> = sql.clone();
        let keys: Arc<dyn KeyStore> = sql.clone();
        let audit: Arc<dyn AuditStore> = sql.clone();
        let accounts: Arc<dyn callback_core::AccountStore> = sql.clone();
        let operators: Arc<dyn OperatorStore> = sql;
        let authenticator = Arc::new(Authenticator::new(
            keys.clone(),
            AuthConfig {
                admin_token: admin_token.clone(),
                trusted_proxies: settings
                    .auth
                    .trusted_proxies()
                    .map_err(|e| anyhow::anyhow!(e))?,
                key_cache_ttl: Duration::from_millis(settings.auth.key_cache_ms),
                touch_interval: Duration::from_secs(30),
            },
        ));
        let (queue, key_value, shared_limits) = build_queue(&settings).await?;
        let metrics = settings
            .metrics
            .enabled
            .then(|| Arc::new(Metrics::new(env!("CARGO_PKG_VERSION"))));
        let observer: Arc<dyn Observe> = match &metrics {
            Some(metrics) => metrics.clone(),
            None => Arc::new(NoObserver),
        };
        let spans = crate::spans::start(&settings.otlp)?;
        let observer: Arc<dyn Observe> = match &spans {
            Some(spans) => Arc::new(BothObservers(observer, spans.clone())),
            None => observer,
        };
        // Attempts as they happen, for the streams open on this instance.
        let attempts = Arc::new(AttemptFeed::default());
        let observer: Arc<dyn Observe> = Arc::new(BothObservers(observer, attempts.clone()));

        let outbound = Arc::new(settings.outbound.policy().map_err(|e| anyhow::anyhow!(e))?);
        let d = &settings.delivery;
        let sender = HttpSender::new(SenderConfig {
            connect_timeout: Duration::from_millis(d.connect_timeout_ms),
            read_limit: d.response_read_bytes,
            record_limit: d.response_record_bytes,
            user_agent: format!("callback-center/{}", env!("CARGO_PKG_VERSION")),
            extra_ca_file: d.extra_ca_file.clone(),
            outbound: outbound.clone(),
            max_redirects: d.max_redirects,
        })?;
        let default_schedule = RetrySchedule::parse(d.retry_schedule_s.clone())
            .map_err(|e| anyhow::anyhow!("delivery.retry_schedule_s {e}"))?;
        // The alerter and delivery need each other: delivery tells it of
        // breaker openings, it hands alert tasks to delivery. A relay
        // breaks the cycle: it is filled once delivery exists.
        let relay = Arc::new(DispatchRelay::default());
        let alert_links = AlertLinks {
            public_url: settings.alerts.public_url.clone(),
        };
        let alerter = Arc::new(
            Alerter::new(
                alerts.clone(),
                operators.clone(),
                queue.clone(),
                relay.clone(),
                observer.clone(),
                AlertConfig {
                    check_interval: Duration::from_millis(
                        settings.alerts.check_interval_ms.max(100),
                    ),
                    min_gap: Duration::from_secs(settings.alerts.min_gap_s),
                    settle: Duration::from_millis(settings.alerts.settle_ms),
                    links: alert_links.clone(),
                    lag_threshold: (settings.alerts.lag_threshold_s > 0)
                        .then(|| Duration::from_secs(settings.alerts.lag_threshold_s)),
                    outage_after: (settings.alerts.outage_after_s > 0)
                        .then(|| Duration::from_secs(settings.alerts.outage_after_s)),
                    success_rate: (settings.alerts.success_rate_below > 0.0).then(|| {
                        SuccessRateRule {
                            below: settings.alerts.success_rate_below.min(1.0),
                            window: Duration::from_secs(
                                settings.alerts.success_rate_window_s.max(1),
                            ),
                            min_attempts: settings.alerts.success_rate_min_attempts.max(1),
                        }
                    }),
                    ops_repeat: Duration::from_secs(settings.alerts.ops_repeat_s.max(1)),
                },
            )
            .with_endpoint_watch(
                endpoints.clone(),
                (settings.endpoints.disable_after_s > 0)
                    .then(|| Duration::from_secs(settings.endpoints.disable_after_s)),
            )
            .with_direct_send(DirectSend {
                invoker: Arc::new(sender.clone()),
                flags: key_value.clone(),
                flag_prefix: settings.redis.key_prefix.clone(),
            }),
        );
        let b = &settings.breaker;
        let receivers = Receivers::new(
            endpoints.clone(),
            alerts.clone(),
            alerter.clone(),
            ReceiverLimits {
                max_in_flight: d.max_in_flight_per_receiver.max(1),
                // As many tasks may wait in memory for a slot as there are
                // workers: memory stays bounded by the worker count.
                max_waiting: d.concurrency.max(1),
                breaker: BreakerConfig {
                    failure_threshold: b.failure_threshold.max(1),
                    failure_ratio: b.failure_ratio.clamp(0.0, 1.0),
                    window: Duration::from_secs(b.window_s),
                    base_pause: Duration::from_secs(b.base_pause_s),
                    max_pause: Duration::from_secs(b.max_pause_s),
                },
            },
        );
        // With Redis, a receiver one instance paused is paused on all.
        let receivers = Arc::new(match &shared_limits {
            Some(shared) => receivers.with_shared_limits(shared.clone()),
            None => receivers,
        });
        // The success rate alert counts attempts too, when it is on.
        let delivery_observer: Arc<dyn Observe> = if settings.alerts.success_rate_below > 0.0 {
            Arc::new(BothObservers(observer.clone(), alerter.attempts()))
        } else {
            observer.clone()
        };
        let delivery = Delivery::new(
            store.clone(),
            queue.clone(),
            sender.clone(),
            receivers.clone(),
            delivery_observer,
            DeliveryConfig {
                concurrency: d.concurrency,
                channel_capacity: d.channel_capacity,
                default_schedule,
                jitter: d.jitter,
                lease_margin: Duration::from_millis(d.lease_margin_ms),
                reconcile_interval: Duration::from_millis(d.reconcile_interval_ms),
                reconcile_batch: d.reconcile_batch,
                rebuild_limit: u32::try_from(d.delay_queue_capacity).unwrap_or(u32::MAX),
                shutdown_grace: Duration::from_millis(settings.server.shutdown_grace_ms),
            },
        );

        let dispatch: Arc<dyn Dispatch> = Arc::new(delivery.handle());
        relay.fill(dispatch.clone());
        let fb = &settings.failed_buckets;
        let buckets = BucketSettings {
            clock: BucketClock::parse_offset(&fb.utc_offset)
                .map_err(|e| anyhow::anyhow!("failed_buckets.utc_offset {e}"))?,
            retention: chrono::TimeDelta::days(i64::from(fb.retention_days.max(1))),
        };
        let r = &settings.retention;
        let days = |n: u32| (n > 0).then(|| chrono::TimeDelta::days(i64::from(n)));
        let retention = RetentionConfig {
            succeeded: days(r.succeeded_days),
            failed: days(r.failed_days),
            cancelled: days(r.cancelled_days),
            buckets: buckets.retention,
            interval: Duration::from_secs(r.interval_s.max(1)),
        };
        let inbound = Arc::new(Inbound::new(
            inbound_store.clone(),
            key_value,
            dispatch.clone(),
            inbound_config(&settings)?,
        ));
        let defaults = TaskDefaults {
            max_attempts: MaxAttempts::parse(i64::from(d.max_attempts))
                .map_err(|e| anyhow::anyhow!("delivery.max_attempts {e}"))?,
            timeout_ms: d.timeout_ms,
        };
        let state = web::Data::new(ApiState {
            store,
            queue,
            dispatch,
            endpoints,
            alerts,
            operators: operators.clone(),
            inbound_store,
            inbound,
            receivers,
            invoker: Arc::new(sender),
            defaults,
            max_body_bytes: settings.server.max_body_bytes,
            body_read_timeout: Duration::from_millis(settings.server.body_read_timeout_ms),
            invoke_failures: Default::default(),
            buckets,
            alert_links,
            outbound,
            authenticator: authenticator.clone(),
            keys,
            audit: audit.clone(),
            observer,
            attempts,
        });
        let scrape = metrics.map(|metrics| {
            web::Data::new(crate::metrics::Scrape {
                metrics,
                operators: operators.clone(),
                queue: state.queue.clone(),
                receivers: state.receivers.clone(),
                token: settings.metrics.token.clone(),
            })
        });
        let separate = !settings.metrics.bind.is_empty();
        let metrics_server = match (&scrape, separate) {
            (Some(scrape), true) => Some(metrics_server(&settings.metrics.bind, scrape.clone())?),
            _ => None,
        };
        let shared_scrape = scrape.filter(|_| !separate);

        let listener = TcpListener::bind(&settings.server.bind)
            .with_context(|| format!("cannot listen on {}", settings.server.bind))?;
        let address = listener.local_addr()?;
        let console = settings.console.enabled.then(|| {
            web::Data::new(callback_console::ConsoleState {
                auth: Arc::new(ConsoleAuth::new(
                    accounts.clone(),
                    authenticator.clone(),
                    ConsoleAuthConfig {
                        idle_timeout: Duration::from_secs(settings.console.idle_timeout_s.max(60)),
                        sign_ins_per_minute: NonZeroU32::new(settings.console.sign_ins_per_minute)
                            .unwrap_or(NonZeroU32::MIN),
                    },
                )),
            })
        });
        let mut server = HttpServer::new(move || {
            let mut app = App::new().configure(callback_api::configure(state.clone()));
            if let Some(console) = &console {
                app = app.configure(callback_console::configure(console.clone()));
            }
            match &shared_scrape {
                Some(scrape) => app.configure(crate::metrics::configure(scrape.clone())),
                None => app,
            }
        })
        .client_request_timeout(Duration::from_millis(
            settings.server.request_head_timeout_ms,
        ))
        .listen(listener)?
        .disable_signals()
        .shutdown_timeout(settings.server.shutdown_grace_ms.div_ceil(1000));
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        Ok(Self {
            address,
            server: server.run(),
            metrics_server,
            delivery,
            alerter,
            operators,
            retention,
            audit,
            audit_retention: days(settings.audit.retention_days),
            admin_token,
            token_source,
            token_file,
            spans,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where `/metrics` is served when `metrics.bind` gives it an address
    /// of its own.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().map(|(address, _)| *address)
    }

    pub fn admin_token(&self) -> &SecretString {
        &self.admin_token
    }

    /// Lines for the operator: where to reach the server and how to log in.
    pub fn banner(&self) -> String {
        let login = match self.token_source {
            TokenSource::Configured => "admin token: as configured (auth.admin_token)".to_string(),
            TokenSource::Generated(first) => format!(
                "admin token: {} ({} {})",
                self.admin_token.expose_secret(),
                if first {
                    "generated and kept in"
                } else {
                    "kept in"
                },
                self.token_file.display()
            ),
        };
        format!(
            "callback-center {} listening on http://{}\n{login}\nexample: curl -H 'Authorization: Bearer <token>' http://{}/api/v1/tasks",
            env!("CARGO_PKG_VERSION"),
            self.address,
            self.address
        )
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets requests
    /// and attempts in flight finish within the grace period, and releases
    /// the leases of what did not finish.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let stop_delivery = CancellationToken::new();
        let delivery = tokio::spawn(self.delivery.run(stop_delivery.clone()));
        // Housekeeping ends with delivery; neither holds anything to lose.
        tokio::spawn(self.alerter.run(stop_delivery.clone()));
        tokio::spawn(callback_auth::run_audit_retention(
            self.audit,
            self.audit_retention,
            self.retention.interval,
            stop_delivery.clone(),
        ));
        tokio::spawn(run_retention(
            self.operators,
            self.retention,
            stop_delivery.clone(),
        ));
        if let Some((_, metrics_server)) = self.metrics_server {
            // Scrapes hold nothing to finish: it stops with the process.
            tokio::spawn(metrics_server);
        }
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        tokio::select! {
            _ = shutdown => {
                tracing::info!("shutting down: no new requests; finishing what is in flight");
                handle.stop(true).await;
            }
            result = &mut server => {
                stop_delivery.cancel();
                let _ = delivery.await;
                crate::spans::flush(self.spans).await;
                return result.context("HTTP server task failed")?.context("HTTP server failed");
            }
        }
        server.await.context("HTTP server task failed")??;
        stop_delivery.cancel();
        delivery.await.context("delivery task failed")?;
        crate::spans::flush(self.spans).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// `/metrics` alone on its own address, with one worker: scrapes are rare.
fn metrics_server(
    bind: &str,
    scrape: web::Data<crate::metrics::Scrape>,
) -> anyhow::Result<(SocketAddr, Server)> {
    let listener = TcpListener::bind(bind)
        .with_context(|| format!("metrics.bind: cannot listen on {bind}"))?;
    let address = listener.local_addr()?;
    let server =
        HttpServer::new(move || App::new().configure(crate::metrics::configure(scrape.clone())))
            .workers(1)
            .listen(listener)?
            .disable_signals()
            .shutdown_timeout(1)
            .run();
    Ok((address, server))
}

/// The one place that picks the delay queue: Redis when `redis.url` is set,
/// in-process otherwise. A Redis that is down at start is no reason not to
/// start: delivery polls the store until it answers.
async fn build_queue(
    settings: &Settings,
) -> anyhow::Result<(
    Arc<dyn DelayQueue>,
    Option<Arc<dyn KeyValue>>,
    Option<Arc<dyn SharedLimits>>,
)> {
    let Some(url) = &settings.redis.url else {
        let queue = InProcessDelayQueue::new(settings.delivery.delay_queue_capacity);
        return Ok((Arc::new(queue), None, None));
    };
    let r = &settings.redis;
    let url = url.expose_secret();
    let topology = if r.cluster {
        RedisTopology::Cluster(
            url.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(String::from)
                .collect(),
        )
    } else {
        RedisTopology::Single(url.to_string())
    };
    let queue = RedisDelayQueue::new(RedisQueueOptions {
        topology,
        key_prefix: r.key_prefix.clone(),
        command_timeout: Duration::from_millis(r.command_timeout_ms),
        poll_interval: Duration::from_millis(r.poll_interval_ms),
        inflight_lease: Duration::from_millis(r.inflight_lease_ms),
    })
    .context("invalid [redis] settings")?;
    if let Err(err) = queue.ping().await {
        tracing::warn!(error = %err, "Redis is unreachable; delivering by polling the store until it answers");
    }
    let key_value: Arc<dyn KeyValue> = Arc::new(queue.key_value());
    let breakers: Arc<dyn SharedLimits> = Arc::new(queue.limits());
    Ok((Arc::new(queue), Some(key_value), Some(breakers)))
}

/// The inbound settings, parsed once: a bad source fails the start.
fn inbound_config(settings: &Settings) -> anyhow::Result<InboundConfig> {
    let i = &settings.inbound;
    let namespace = |what: &str, raw: &str| {
        Namespace::parse(raw).map_err(|e| anyhow::anyhow!("{what}: namespace {e}"))
    };
    let mut sources = std::collections::BTreeMap::new();
    for (name, s) in &i.sources {
        let what = format!("inbound.sources.{name}");
        if !s.key_pointer.starts_with('/') {
            anyhow::bail!("{what}.key_pointer must be a JSON pointer such as /trace_id");
        }
        if s.hmac_header.is_some() != s.hmac_secret.is_some()
            || s.token_header.is_some() != s.token.is_some()
        {
            anyhow::bail!("{what}: give hmac_header with hmac_secret, and token_header with token");
        }
        let default_target = s
            .default_target
            .as_deref()
            .map(|u| TargetUrl::parse(u).map_err(|e| anyhow::anyhow!("{what}.default_target {e}")))
            .transpose()?;
        sources.insert(
            name.clone(),
            SourceConfig {
                namespace: namespace(&what, &s.namespace)?,
                key_pointer: s.key_pointer.clone(),
                hmac_header: s.hmac_header.clone(),
                hmac_secret: s
                    .hmac_secret
                    .as_ref()
                    .map(|x| x.expose_secret().to_string()),
                token_header: s.token_header.clone(),
                token: s.token.as_ref().map(|x| x.expose_secret().to_string()),
                default_target,
            },
        );
    }
    let d = &settings.delivery;
    Ok(InboundConfig {
        wechat: WechatConfig {
            token: i
                .wechat
                .token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            apps: i
                .wechat
                .apps
                .iter()
                .map(|(app, t)| (app.clone(), t.expose_secret().to_string()))
                .collect(),
            namespace: Some(namespace("inbound.wechat", &i.wechat.namespace)?),
            aes_keys: wechat_aes_keys(&i.wechat)?,
        },
        sources,
        legacy_key_prefix: (!i.legacy_key_prefix.is_empty()).then(|| i.legacy_key_prefix.clone()),
        cache_key_prefix: settings.redis.key_prefix.clone(),
        cache_ttl: Duration::from_secs(i.cache_ttl_s.max(1)),
        max_attempts: MaxAttempts::parse(i64::from(d.max_attempts))
            .map_err(|e| anyhow::anyhow!("delivery.max_attempts {e}"))?,
        timeout_ms: d.timeout_ms,
    })
}

/// Hands alert tasks to delivery once it exists. Before then (never, in
/// practice: it is filled during build) a task waits in the store and the
/// reconciler finds it.
#[derive(Default)]
struct DispatchRelay(std::sync::OnceLock<Arc<dyn Dispatch>>);

impl DispatchRelay {
    fn fill(&self, dispatch: Arc<dyn Dispatch>) {
        let _ = self.0.set(dispatch);
    }
}

#[async_trait::async_trait]
impl Dispatch for DispatchRelay {
    async fn accepted(&self, id: callback_core::TaskId, due: chrono::DateTime<chrono::Utc>) {
        if let Some(dispatch) = self.0.get() {
            dispatch.accepted(id, due).await;
        }
    }
}

/// The directory of a `sqlite://` file URL, to create before connecting.
/// The safe-mode keys: the global one (any appid), then one per appid.
fn wechat_aes_keys(
    wechat: &crate::settings::WechatSettings,
) -> anyhow::Result<Vec<(Option<String>, EncodingAesKey)>> {
    let parse = |setting: String, key: &SecretString| {
        EncodingAesKey::parse(key.expose_secret()).map_err(|e| anyhow::anyhow!("{setting}: {e}"))
    };
    let mut keys = Vec::new();
    if let Some(key) = &wechat.encoding_aes_key {
        keys.push((None, parse("inbound.wechat.encoding_aes_key".into(), key)?));
    }
    for (appid, key) in &wechat.aes_keys {
        let setting = format!("inbound.wechat.aes_keys.{appid}");
        keys.push((Some(appid.clone()), parse(setting, key)?));
    }
    Ok(keys)
}

fn sqlite_parent_dir(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("sqlite://")?.split('?').next()?;
    if path.is_empty() || path.starts_with(":memory:") {
        return None;
    }
    Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
}

fn load_or_generate_token(file: &Path) -> anyhow::Result<(SecretString, TokenSource)> {
    if let Ok(existing) = std::fs::read_to_string(file) {
        let token = existing.trim();
        if !token.is_empty() {
            return Ok((
                SecretString::from(token.to_string()),
                TokenSource::Generated(false),
            ));
        }
    }
    let token = format!(
        "cbc_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(file, &token).with_context(|| format!("cannot write {}", file.display()))?;
    Ok((SecretString::from(token), TokenSource::Generated(true)))
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    file.write_all(b"\n")
}

/// `callback-center user add`: creates a console account in the configured
/// store (migrating it first, as a start does) and returns the generated
/// password, shown this once.
pub async fn add_console_user(
    settings: &Settings,
    username: &str,
    role: callback_core::Role,
) -> anyhow::Result<String> {
    let database_url = settings.database.url.expose_secret().to_string();
    if let Some(parent) = sqlite_parent_dir(&database_url) {
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let store = callback_store::connect(&StoreOptions {
        url: database_url,
        max_connections: 1,
        connect_timeout: Duration::from_millis(settings.database.connect_timeout_ms),
        group_commit: None,
    })
    .await
    .context("cannot open the task store")?;
    let (_, password) =
        callback_auth::create_account(&store, username, role, chrono::Utc::now()).await?;
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_the_directory_to_create() {
        assert_eq!(
            sqlite_parent_dir("sqlite://./data/cbc.db?mode=rwc"),
            Some(PathBuf::from("./data"))
        );
        assert_eq!(sqlite_parent_dir("sqlite://cbc.db"), None);
        assert_eq!(sqlite_parent_dir("sqlite::memory:"), None);
        assert_eq!(sqlite_parent_dir("mysql://root@localhost/x"), None);
    }

    #[test]
    fn a_generated_token_is_kept_and_reused() {
        let dir = std::env::temp_dir().join(format!("cbc-token-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("admin-token");
        let (first, source) = load_or_generate_token(&file).unwrap();
        assert_eq!(source, TokenSource::Generated(true));
        let (again, source) = load_or_generate_token(&file).unwrap();
        assert_eq!(source, TokenSource::Generated(false));
        assert_eq!(first.expose_secret(), again.expose_secret());
        assert!(first.expose_secret().len() > 40);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
