//! Settings: the embedded, documented defaults (`config/default.toml`), then
//! an optional TOML file, then `CBC__SECTION__KEY` environment variables.

use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub audit: AuditSettings,
    pub data: DataSettings,
    pub delivery: DeliverySettings,
    pub breaker: BreakerSettings,
    pub alerts: AlertSettings,
    pub failed_buckets: FailedBucketSettings,
    pub retention: RetentionSettings,
    pub outbound: OutboundSettings,
    pub inbound: InboundSettings,
    pub redis: RedisSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub otlp: OtlpSettings,
    pub endpoints: EndpointSettings,
    pub console: ConsoleSettings,
}

/// The operator console under `/console`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Serve the console; false: `/console` answers 404.
    pub enabled: bool,
    /// A session unused this long is over (seconds).
    pub idle_timeout_s: u64,
    /// Sign-in attempts allowed a minute per username and per address.
    pub sign_ins_per_minute: u32,
}

/// Endpoints that switch themselves off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSettings {
    /// An endpoint failing every attempt this long is disabled (its new
    /// events held); 0: never.
    pub disable_after_s: u64,
}

/// Export of attempt spans to an OpenTelemetry collector (binaries built
/// with the `otlp` feature).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpSettings {
    /// The collector's OTLP/HTTP address, e.g. `http://collector:4318`;
    /// empty: no export.
    pub endpoint: String,
    pub service_name: String,
    /// Sent with each export, e.g. `authorization`.
    #[serde(default)]
    pub headers: std::collections::HashMap<String, String>,
    pub timeout_ms: u64,
    /// How often the spans queued are sent.
    pub interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` and count.
    pub enabled: bool,
    /// Serve it on this address instead of the API's; empty: the API's.
    pub bind: String,
    /// A bearer token scrapes must present; unset: none.
    pub token: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    pub max_body_bytes: usize,
    pub workers: usize,
    pub shutdown_grace_ms: u64,
    /// Time allowed for a request's line and headers.
    pub request_head_timeout_ms: u64,
    /// Time allowed for a request's body.
    pub body_read_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    pub connect_timeout_ms: u64,
    pub group_commit_max_wait_us: u64,
    pub group_commit_max_batch: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub admin_token: Option<SecretString>,
    /// Peers (networks or addresses) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// How long a key read from the store is used before it is read again.
    pub key_cache_ms: u64,
}

impl AuthSettings {
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, String> {
        callback_core::IpAllowlist::parse(&self.trusted_proxies)
            .map(|list| list.entries().to_vec())
            .map_err(|e| format!("auth.trusted_proxies: {e}"))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Entries older than this many days are deleted; 0 keeps them.
    pub retention_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    pub concurrency: usize,
    pub channel_capacity: usize,
    pub max_attempts: u32,
    pub timeout_ms: u32,
    pub connect_timeout_ms: u64,
    pub retry_schedule_s: Vec<u32>,
    pub jitter: f64,
    pub lease_margin_ms: u64,
    pub reconcile_interval_ms: u64,
    pub reconcile_batch: u32,
    pub delay_queue_capacity: usize,
    pub response_record_bytes: usize,
    pub response_read_bytes: usize,
    /// Redirects followed per call; 0 follows none.
    pub max_redirects: u8,
    pub max_in_flight_per_receiver: u32,
    #[serde(default)]
    pub extra_ca_file: Option<PathBuf>,
}

/// The circuit breaker every receiver has.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSettings {
    pub failure_threshold: u32,
    /// Failures over attempts within the window, at least, to open.
    pub failure_ratio: f64,
    pub window_s: u64,
    pub base_pause_s: u64,
    pub max_pause_s: u64,
}

/// Messages to alert hooks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    pub check_interval_ms: u64,
    pub min_gap_s: u64,
    pub settle_ms: u64,
    pub public_url: String,
    /// Tell the hooks when the oldest due task waited longer; 0: never.
    pub lag_threshold_s: u64,
    /// Tell the hooks when fewer attempts than this share succeeded over
    /// the window; 0: never.
    pub success_rate_below: f64,
    pub success_rate_window_s: u64,
    /// Fewer attempts in the window are too few to judge.
    pub success_rate_min_attempts: u64,
    /// Tell the hooks when Redis or the store has not answered this long;
    /// 0: never.
    pub outage_after_s: u64,
    /// An operational alert is repeated this often while it lasts.
    pub ops_repeat_s: u64,
}

/// Ten-minute buckets of failed tasks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedBucketSettings {
    pub utc_offset: String,
    pub retention_days: u32,
}

/// Deleting old finished tasks; 0 keeps them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    pub succeeded_days: u32,
    pub failed_days: u32,
    pub cancelled_days: u32,
    pub interval_s: u64,
}

/// Which addresses deliveries, invocations and alerts may call
/// (docs/security.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundSettings {
    pub allow_private: bool,
    pub allow_loopback: bool,
    /// CIDRs or single addresses allowed whatever else says.
    pub allow_cidrs: Vec<String>,
    /// CIDRs or single addresses refused unless in `allow_cidrs`.
    pub deny_cidrs: Vec<String>,
}

impl OutboundSettings {
    /// The policy these settings describe; a range that does not parse is
    /// an error naming the setting.
    pub fn policy(&self) -> Result<callback_core::OutboundPolicy, String> {
        let parse = |setting: &str, raw: &[String]| {
            callback_core::IpAllowlist::parse(raw)
                .map(|list| list.entries().to_vec())
                .map_err(|e| format!("outbound.{setting}: {e}"))
        };
        Ok(callback_core::OutboundPolicy {
            allow_private: self.allow_private,
            allow_loopback: self.allow_loopback,
            allow_cidrs: parse("allow_cidrs", &self.allow_cidrs)?,
            deny_cidrs: parse("deny_cidrs", &self.deny_cidrs)?,
        })
    }
}

/// Vendor callbacks and routes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundSettings {
    pub legacy_key_prefix: String,
    pub cache_ttl_s: u64,
    pub wechat: WechatSettings,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatSettings {
    pub token: Option<SecretString>,
    pub namespace: String,
    #[serde(default)]
    pub apps: BTreeMap<String, SecretString>,
    /// Safe mode: the EncodingAESKey pushes are encrypted with.
    pub encoding_aes_key: Option<SecretString>,
    /// Safe mode per mini-program, when keys differ: appid → key.
    #[serde(default)]
    pub aes_keys: BTreeMap<String, SecretString>,
}

/// One vendor posting to `/inbound/{name}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    pub namespace: String,
    pub key_pointer: String,
    pub hmac_header: Option<String>,
    pub hmac_secret: Option<SecretString>,
    pub token_header: Option<String>,
    pub token: Option<SecretString>,
    pub default_target: Option<String>,
}

/// The shared delay queue. Without a URL the queue is in-process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: Option<SecretString>,
    pub cluster: bool,
    pub key_prefix: String,
    pub command_timeout_ms: u64,
    pub poll_interval_ms: u64,
    pub inflight_lease_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Plain lines; coloured only when stderr is a terminal.
    Text,
    /// One JSON object a line.
    Json,
}

impl Settings {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, config::ConfigError> {
        Self::load_from(file, Environment::with_prefix("CBC"))
    }

    /// The defaults alone, for tests that set fields directly.
    pub fn defaults() -> Result<Self, config::ConfigError> {
        Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()?
            .try_deserialize()
    }

    fn load_from(file: Option<&Path>, env: Environment) -> Result<Self, config::ConfigError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
        }
        builder
            .add_source(
                env.prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("delivery.retry_schedule_s")
                    .with_list_parse_key("auth.trusted_proxies")
                    .with_list_parse_key("outbound.allow_cidrs")
                    .with_list_parse_key("outbound.deny_cidrs"),
            )
            .build()?
            .try_deserialize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Environment {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Environment::with_prefix("CBC").source(Some(map))
    }

    #[test]
    fn embedded_defaults_parse() {
        let s = Settings::defaults().unwrap();
        assert_eq!(s.server.bind, "127.0.0.1:8080");
        assert!(s.database.url.expose_secret().starts_with("sqlite://"));
        assert_eq!(s.delivery.retry_schedule_s.len(), 10);
        assert!(s.auth.admin_token.is_none());
        assert!(s.redis.url.is_none(), "the default needs no Redis");
        assert_eq!(s.redis.key_prefix, "cbc");
    }

    #[test]
    fn environment_overrides_defaults_with_double_underscores() {
        let s = Settings::load_from(
            None,
            env(&[
                ("CBC__SERVER__BIND", "0.0.0.0:9000"),
                ("CBC__DATABASE__URL", "mysql://root@127.0.0.1:3306/x"),
                ("CBC__AUTH__ADMIN_TOKEN", "secret"),
                ("CBC__DELIVERY__CONCURRENCY", "8"),
                ("CBC__DELIVERY__RETRY_SCHEDULE_S", "1,2,3"),
                ("CBC__REDIS__URL", "redis://127.0.0.1:6379"),
                ("CBC__AUTH__TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.7"),
                ("CBC__OUTBOUND__DENY_CIDRS", "203.0.113.0/24"),
                ("CBC__LOG__FORMAT", "json"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.bind, "0.0.0.0:9000");
        assert_eq!(
            s.database.url.expose_secret(),
            "mysql://root@127.0.0.1:3306/x"
        );
        assert_eq!(
            s.auth
                .admin_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            Some("secret".into())
        );
        assert_eq!(s.delivery.concurrency, 8);
        assert_eq!(s.delivery.retry_schedule_s, [1, 2, 3]);
        assert_eq!(s.auth.trusted_proxies, ["10.0.0.0/8", "192.168.1.7"]);
        assert_eq!(s.outbound.deny_cidrs, ["203.0.113.0/24"]);
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(
            s.redis.url.as_ref().map(|u| u.expose_secret().to_string()),
            Some("redis://127.0.0.1:6379".into())
        );
    }

    #[test]
    fn a_config_file_overrides_defaults_and_unknown_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("cbc-settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "[delivery]\nconcurrency = 3\n").unwrap();
        let s = Settings::load_from(Some(&good), env(&[])).unwrap();
        assert_eq!(s.delivery.concurrency, 3);
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[delivery]\nconcurency = 3\n").unwrap();
        assert!(Settings::load_from(Some(&bad), env(&[])).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
