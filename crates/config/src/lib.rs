//! qa-sentinel's configuration: one typed struct, [`Settings`], read from (lowest to highest
//! precedence) built-in defaults, a TOML file (`--config FILE` or `SENTINEL_CONFIG`),
//! environment variables, and command-line flags.
//!
//! Environment variables: every top-level key has a `SENTINEL_` variable of the same name in
//! upper case (`SENTINEL_RATE_LIMIT_PER_MINUTE`), nested keys use `__`
//! (`SENTINEL_HTTP__KEEP_ALIVE_SECS`), and the two connection strings have their conventional
//! names, `DATABASE_URL` and `REDIS_URL`. List values in the environment are comma-separated
//! (`SENTINEL_CORS_ORIGINS=https://a.example,https://b.example`); an empty string is an empty
//! list.
//!
//! Bad configuration stops start-up with a message that names the key and where its value
//! came from: an unknown key in the file, a value of the wrong type, or a value that fails the
//! checks of [`Settings::validate`].

mod error;
mod lists;

pub use error::ConfigError;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Which parts of the service a process runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServeRole {
    /// API and workers in one process (the embedded default).
    #[default]
    All,
    /// Only the HTTP API.
    Api,
    /// Only the scan workers.
    Worker,
}

impl ServeRole {
    /// Whether this role serves HTTP.
    #[must_use]
    pub const fn runs_api(self) -> bool {
        matches!(self, Self::All | Self::Api)
    }

    /// Whether this role runs scan workers.
    #[must_use]
    pub const fn runs_workers(self) -> bool {
        matches!(self, Self::All | Self::Worker)
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (for log pipelines).
    #[default]
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Every setting of qa-sentinel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the HTTP API listens on (`SENTINEL_BIND`).
    pub bind: SocketAddr,
    /// Directory of the SQLite file and local artifacts (`SENTINEL_DATA_DIR`).
    pub data_dir: PathBuf,
    /// What this process runs (`SENTINEL_ROLE`).
    pub role: ServeRole,
    /// PostgreSQL URL; unset: SQLite under `data_dir` (`DATABASE_URL`).
    pub database_url: Option<String>,
    /// Redis URL, or several comma-separated cluster nodes; unset: in-process (`REDIS_URL`).
    pub redis_url: Option<String>,
    /// Production mode: warn-level logs by default, no request logs, `/metrics` restricted
    /// (`SENTINEL_PRODUCTION`).
    pub production: bool,
    /// Log filter (`info`, `warn`, `qa_sentinel=debug,…`); unset: `warn` in production, else
    /// `info` (`SENTINEL_LOG_LEVEL`).
    pub log_level: Option<String>,
    /// Log format (`SENTINEL_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// PEM certificate chain: with `tls_key`, the API speaks TLS (HTTP/2 by ALPN).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Requests per minute per client (API key, else IP); 0 disables the limit
    /// (`SENTINEL_RATE_LIMIT_PER_MINUTE`).
    pub rate_limit_per_minute: u32,
    /// Client networks exempt from rate limiting (`SENTINEL_RATE_LIMIT_ALLOWLIST`).
    #[serde(deserialize_with = "lists::cidrs")]
    pub rate_limit_allowlist: Vec<IpNet>,
    /// Exact origins (`scheme://host[:port]`) allowed by CORS (`SENTINEL_CORS_ORIGINS`).
    #[serde(deserialize_with = "lists::strings")]
    pub cors_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed (`SENTINEL_TRUSTED_PROXIES`).
    #[serde(deserialize_with = "lists::cidrs")]
    pub trusted_proxies: Vec<IpNet>,
    /// Networks the scanners' SSRF guard lets through although they are special-purpose
    /// (e.g. `127.0.0.0/8` for local development) (`SENTINEL_SCAN_ALLOW`).
    #[serde(deserialize_with = "lists::cidrs")]
    pub scan_allow: Vec<IpNet>,
    /// Scans run at once by one worker process (`SENTINEL_WORKER_SLOTS`).
    pub worker_slots: u32,
    /// Queued scans above which `POST /api/scan` answers 503 (`SENTINEL_QUEUE_MAX_PENDING`).
    pub queue_max_pending: u64,
    /// Networks that may read `/metrics` in production mode (`SENTINEL_METRICS_ALLOW`).
    #[serde(deserialize_with = "lists::cidrs")]
    pub metrics_allow: Vec<IpNet>,
    /// HTTP server tuning.
    pub http: HttpSettings,
    /// Worker runtime tuning.
    pub worker: WorkerSettings,
    /// Cache sizes and lifetimes.
    pub cache: CacheSettings,
    /// Database pool tuning.
    pub database: DatabaseSettings,
    /// Headless browser pool.
    pub browser: BrowserSettings,
    /// Where screenshots and diff images are kept.
    pub artifacts: ArtifactSettings,
    /// Link checker tuning.
    pub links: LinkSettings,
}

/// HTTP server tuning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// How long an idle keep-alive connection is kept open.
    pub keep_alive_secs: u64,
    /// How long a client may take to send a request's headers once it started.
    pub header_timeout_secs: u64,
    /// How long a client may take to send a request body.
    pub body_timeout_secs: u64,
    /// Largest accepted request body (413 above).
    pub body_limit_bytes: usize,
    /// Open connections above which new ones are not accepted until some close.
    pub max_connections: usize,
    /// Requests handled at once above which new ones are answered 503 at once: under
    /// overload, latency stays bounded and the excess is shed instead of queued.
    pub max_in_flight: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub http2_max_streams: u32,
    /// Smallest response body that is compressed.
    pub compression_min_bytes: u16,
    /// Seconds to let in-flight requests finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// Group commit: most scans inserted in one transaction.
    pub group_commit_max_batch: usize,
    /// Group commit: transactions in flight at once on PostgreSQL (SQLite has one writer:
    /// always 1). Fewer means larger batches and less database CPU per scan.
    pub group_commit_concurrency: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            keep_alive_secs: 65,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            body_limit_bytes: 1024 * 1024,
            max_connections: 10_000,
            max_in_flight: 1024,
            http2_max_streams: 256,
            compression_min_bytes: 1024,
            shutdown_grace_secs: 20,
            group_commit_max_batch: 512,
            group_commit_concurrency: 1,
        }
    }
}

/// Worker runtime tuning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// How long a lease lasts without a heartbeat (a killed worker's scan returns to the
    /// queue after this).
    pub lease_secs: u64,
    /// How often a running scan's lease is extended.
    pub heartbeat_secs: u64,
    /// Attempts per scan before it fails.
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt, with jitter.
    pub retry_base_ms: u64,
    /// Largest retry delay.
    pub retry_max_ms: u64,
    /// How often the queue is polled when no wake-up arrives.
    pub poll_interval_ms: u64,
    /// How often expired leases are returned to the queue.
    pub reaper_interval_secs: u64,
    /// Longest a single scan may run.
    pub max_scan_secs: u64,
    /// On shutdown, how long running scans may take to finish before they are returned to the
    /// queue.
    pub shutdown_grace_secs: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            lease_secs: 30,
            heartbeat_secs: 10,
            max_attempts: 3,
            retry_base_ms: 2000,
            retry_max_ms: 300_000,
            poll_interval_ms: 1000,
            reaper_interval_secs: 5,
            max_scan_secs: 900,
            shutdown_grace_secs: 20,
        }
    }
}

/// Cache sizes and lifetimes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Entries in the in-process L1 cache.
    pub l1_capacity: u64,
    /// Lifetime of an L1 entry since its last read.
    pub l1_ttl_secs: u64,
    /// Lifetime of a cached permission (`perm:{user}:{site}`); grant changes invalidate it.
    pub permission_ttl_secs: u64,
    /// Lifetime of a cached API-key lookup.
    pub principal_ttl_secs: u64,
    /// Lifetime of a cached status of a scan that is still queued or running.
    pub live_scan_ttl_ms: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            l1_capacity: 10_000,
            l1_ttl_secs: 60,
            permission_ttl_secs: 300,
            principal_ttl_secs: 60,
            live_scan_ttl_ms: 1000,
        }
    }
}

/// One SQLite reader per available core, 2 to 4.
fn default_sqlite_readers() -> u32 {
    std::thread::available_parallelism()
        .map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .clamp(2, 4)
}

/// Database pool tuning (PostgreSQL; SQLite uses one writer and `sqlite_readers` readers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Most pooled connections.
    pub max_connections: u32,
    /// Connections kept open.
    pub min_connections: u32,
    /// Connect / acquire timeout.
    pub connect_timeout_ms: u64,
    /// Server-side statement timeout.
    pub statement_timeout_ms: u64,
    /// SQLite read connections. Default: one per core the process may run on, at least 2 and
    /// at most 4. Each reader is a thread with its own page cache and allocator arena (about
    /// 0.7 MiB resident under load), and readers beyond the cores read no faster: with 2
    /// instead of 4 on a 2-core machine the API's peak RSS under the load harness's W5 fell
    /// by 1–3 MiB at the same requests/s, pinned and unpinned.
    pub sqlite_readers: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            max_connections: 20,
            min_connections: 5,
            connect_timeout_ms: 2000,
            statement_timeout_ms: 30_000,
            sqlite_readers: default_sqlite_readers(),
        }
    }
}

/// How the browser pool picks an instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BalanceStrategy {
    /// In turn.
    RoundRobin,
    /// The one with the fewest captures in flight.
    #[default]
    LeastConnections,
    /// By weights adapted from latency and error rate.
    WeightedResponseTime,
}

/// Headless browser pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrowserSettings {
    /// The Chromium executable for local instances. Unset: the first installed of
    /// `chromium-headless-shell` (Chromium's automation build: a browser context costs a
    /// third of the CPU it costs the full browser, see docs/bench/capture.md) and `chromium`.
    pub executable: Option<PathBuf>,
    /// Local Chromium processes to launch.
    pub instances: u32,
    /// Remote DevTools endpoints (`ws://…` or `http://host:port`) used as well.
    #[serde(deserialize_with = "lists::strings")]
    pub remote_endpoints: Vec<String>,
    /// Captures in flight per instance.
    pub pages_per_instance: u32,
    /// Instance selection strategy.
    pub strategy: BalanceStrategy,
    /// Longest one capture may take (the breaker's call timeout).
    pub capture_timeout_secs: u64,
    /// Consecutive failures that open an instance's breaker.
    pub breaker_failures: u32,
    /// How long an open breaker waits before probing.
    pub breaker_reset_secs: u64,
    /// Tallest full-page capture, in CSS pixels.
    pub max_full_page_height: u32,
}

impl Default for BrowserSettings {
    fn default() -> Self {
        Self {
            executable: None,
            // Two browsers with three pages each were the fastest measured
            // (docs/bench/capture.md): each browser does its DevTools work on one main
            // thread, and a crash takes half the capacity, not all of it.
            instances: 2,
            remote_endpoints: Vec::new(),
            pages_per_instance: 3,
            strategy: BalanceStrategy::LeastConnections,
            capture_timeout_secs: 60,
            breaker_failures: 3,
            breaker_reset_secs: 30,
            max_full_page_height: 16_384,
        }
    }
}

/// Where artifacts are stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArtifactSettings {
    /// Local directory; unset: `data_dir/artifacts`.
    pub dir: Option<PathBuf>,
    /// S3-compatible endpoint (e.g. `http://127.0.0.1:9000`); set: artifacts go there.
    pub s3_endpoint: Option<String>,
    /// Bucket name.
    pub s3_bucket: Option<String>,
    /// Region for request signing.
    pub s3_region: String,
    /// Access key id.
    pub s3_access_key: Option<String>,
    /// Secret access key.
    pub s3_secret_key: Option<String>,
}

impl Default for ArtifactSettings {
    fn default() -> Self {
        Self {
            dir: None,
            s3_endpoint: None,
            s3_bucket: None,
            s3_region: "us-east-1".to_owned(),
            s3_access_key: None,
            s3_secret_key: None,
        }
    }
}

/// Link checker tuning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkSettings {
    /// How long results for URLs outside a site's origin are reused across scans.
    pub external_cache_ttl_secs: u64,
    /// Entries of that cache.
    pub external_cache_capacity: u64,
    /// User-Agent of the checker.
    pub user_agent: String,
}

impl Default for LinkSettings {
    fn default() -> Self {
        Self {
            external_cache_ttl_secs: 3600,
            external_cache_capacity: 100_000,
            user_agent: concat!("qa-sentinel/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            role: ServeRole::All,
            database_url: None,
            redis_url: None,
            production: false,
            log_level: None,
            log_format: LogFormat::Json,
            tls_cert: None,
            tls_key: None,
            rate_limit_per_minute: 1000,
            rate_limit_allowlist: ["127.0.0.1/32", "::1/128", "10.0.0.0/8"]
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            scan_allow: Vec::new(),
            worker_slots: 4,
            queue_max_pending: 10_000,
            metrics_allow: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            http: HttpSettings::default(),
            worker: WorkerSettings::default(),
            cache: CacheSettings::default(),
            database: DatabaseSettings::default(),
            browser: BrowserSettings::default(),
            artifacts: ArtifactSettings::default(),
            links: LinkSettings::default(),
        }
    }
}

/// Values given as command-line flags; `None` leaves the value from the layers below.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    /// `--bind`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<SocketAddr>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--role`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<ServeRole>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--redis-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// `--log-level`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
}

/// Top-level keys that an environment variable may set (anything else with the `SENTINEL_`
/// prefix, such as `SENTINEL_CONFIG` or a test's own variable, is not configuration).
const ENV_KEYS: [&str; 25] = [
    "bind",
    "data_dir",
    "role",
    "production",
    "log_level",
    "log_format",
    "tls_cert",
    "tls_key",
    "rate_limit_per_minute",
    "rate_limit_allowlist",
    "cors_origins",
    "trusted_proxies",
    "scan_allow",
    "worker_slots",
    "queue_max_pending",
    "metrics_allow",
    "http",
    "worker",
    "cache",
    "database",
    "browser",
    "artifacts",
    "links",
    "redis_url",
    "database_url",
];

impl Settings {
    /// Loads settings: defaults, then the TOML file (`file`, else `SENTINEL_CONFIG` if set),
    /// then the environment, then `flags`; and validates them.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> Result<Self, ConfigError> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("SENTINEL_CONFIG").map(PathBuf::from));
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        if let Some(path) = &file {
            if !path.is_file() {
                return Err(ConfigError::new(
                    "config",
                    format!("configuration file {} does not exist", path.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(Env::prefixed("SENTINEL_").split("__").filter(|k| {
                let top = k.as_str().split('.').next().unwrap_or_default();
                ENV_KEYS.iter().any(|known| top.eq_ignore_ascii_case(known))
            }))
            .merge(Env::raw().only(&["DATABASE_URL", "REDIS_URL"]))
            .merge(Serialized::defaults(flags));
        let settings: Self = figment.extract().map_err(ConfigError::from_figment)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The effective log filter.
    #[must_use]
    pub fn effective_log_level(&self) -> &str {
        match &self.log_level {
            Some(l) => l,
            None if self.production => "warn",
            None => "info",
        }
    }

    /// Whether per-request access logs are written (not in production).
    #[must_use]
    pub const fn request_logs(&self) -> bool {
        !self.production
    }

    /// The local artifact directory.
    #[must_use]
    pub fn artifact_dir(&self) -> PathBuf {
        self.artifacts
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("artifacts"))
    }

    /// Checks the values that types alone cannot: ranges, URL schemes, exact CORS origins,
    /// TLS files. Every error names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=1024).contains(&self.worker_slots) {
            return Err(ConfigError::new(
                "worker_slots",
                "must be between 1 and 1024",
            ));
        }
        if self.queue_max_pending == 0 {
            return Err(ConfigError::new("queue_max_pending", "must be at least 1"));
        }
        if let Some(url) = &self.database_url {
            let ok = ["postgres://", "postgresql://", "sqlite:"]
                .iter()
                .any(|p| url.starts_with(p));
            if !ok {
                return Err(ConfigError::new(
                    "database_url",
                    "must start with postgres://, postgresql:// or sqlite:",
                ));
            }
        }
        if let Some(url) = &self.redis_url {
            for node in url.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let ok = [
                    "redis://",
                    "rediss://",
                    "redis+cluster://",
                    "rediss+cluster://",
                ]
                .iter()
                .any(|p| node.starts_with(p));
                if !ok {
                    return Err(ConfigError::new(
                        "redis_url",
                        format!("`{node}` must start with redis://, rediss:// or redis+cluster://"),
                    ));
                }
            }
        }
        for (i, origin) in self.cors_origins.iter().enumerate() {
            validate_origin(origin)
                .map_err(|m| ConfigError::new(format!("cors_origins[{i}]"), m))?;
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => {
                for (key, path) in [("tls_cert", c), ("tls_key", k)] {
                    if !path.is_file() {
                        return Err(ConfigError::new(
                            key,
                            format!("file {} does not exist", path.display()),
                        ));
                    }
                }
            }
            (Some(_), None) => {
                return Err(ConfigError::new("tls_key", "is required with tls_cert"));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new("tls_cert", "is required with tls_key"));
            }
            (None, None) => {}
        }
        if self.http.body_limit_bytes < 1024 {
            return Err(ConfigError::new(
                "http.body_limit_bytes",
                "must be at least 1024",
            ));
        }
        if self.http.max_in_flight == 0 {
            return Err(ConfigError::new("http.max_in_flight", "must be at least 1"));
        }
        if self.http.max_connections == 0 {
            return Err(ConfigError::new(
                "http.max_connections",
                "must be at least 1",
            ));
        }
        if self.http.group_commit_max_batch == 0 {
            return Err(ConfigError::new(
                "http.group_commit_max_batch",
                "must be at least 1",
            ));
        }
        if self.http.group_commit_concurrency == 0 {
            return Err(ConfigError::new(
                "http.group_commit_concurrency",
                "must be at least 1",
            ));
        }
        if self.worker.heartbeat_secs == 0
            || self.worker.heartbeat_secs * 2 > self.worker.lease_secs
        {
            return Err(ConfigError::new(
                "worker.heartbeat_secs",
                "must be at least 1 and at most half of worker.lease_secs",
            ));
        }
        if self.worker.max_attempts == 0 {
            return Err(ConfigError::new(
                "worker.max_attempts",
                "must be at least 1",
            ));
        }
        if self.cache.l1_capacity == 0 {
            return Err(ConfigError::new("cache.l1_capacity", "must be at least 1"));
        }
        if self.database.min_connections > self.database.max_connections
            || self.database.max_connections == 0
        {
            return Err(ConfigError::new(
                "database.max_connections",
                "must be at least 1 and not below database.min_connections",
            ));
        }
        if self.browser.pages_per_instance == 0 {
            return Err(ConfigError::new(
                "browser.pages_per_instance",
                "must be at least 1",
            ));
        }
        if self.artifacts.s3_endpoint.is_some() && self.artifacts.s3_bucket.is_none() {
            return Err(ConfigError::new(
                "artifacts.s3_bucket",
                "is required with s3_endpoint",
            ));
        }
        Ok(())
    }
}

/// An allowed CORS origin must be exactly `scheme://host[:port]`: browsers send exactly that
/// in `Origin`, and it is compared byte for byte (no substring or suffix matching).
fn validate_origin(origin: &str) -> Result<(), String> {
    let url = url::Url::parse(origin).map_err(|_| format!("`{origin}` is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{origin}` must be an http or https origin"));
    }
    if url.ascii_serialization_origin() != origin {
        return Err(format!(
            "`{origin}` must be an exact origin like `{}` (no path, no trailing slash)",
            url.ascii_serialization_origin()
        ));
    }
    Ok(())
}

trait OriginExt {
    fn ascii_serialization_origin(&self) -> String;
}

impl OriginExt for url::Url {
    fn ascii_serialization_origin(&self) -> String {
        self.origin().ascii_serialization()
    }
}

#[cfg(test)]
// figment's `Jail` fixes the closures' error type (figment::Error, which is large).
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in_jail(
        jail: &mut Jail,
        file: Option<&str>,
        flags: &Overrides,
    ) -> Result<Settings, ConfigError> {
        let path = file.map(|content| {
            jail.create_file("qa.toml", content).unwrap();
            PathBuf::from("qa.toml")
        });
        Settings::load(path.as_deref(), flags)
    }

    #[test]
    fn defaults_match_the_contract() {
        Jail::expect_with(|jail| {
            let s = load_in_jail(jail, None, &Overrides::default()).unwrap();
            assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
            assert_eq!(s.data_dir, PathBuf::from("./data"));
            assert_eq!(s.rate_limit_per_minute, 1000);
            assert_eq!(s.queue_max_pending, 10_000);
            assert_eq!(s.rate_limit_allowlist.len(), 3);
            assert_eq!(s.effective_log_level(), "info");
            assert!(s.database_url.is_none());
            Ok(())
        });
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        Jail::expect_with(|jail| {
            jail.set_env("SENTINEL_BIND", "127.0.0.1:9000");
            jail.set_env(
                "SENTINEL_RATE_LIMIT_ALLOWLIST",
                "192.168.0.0/16, 10.1.0.0/16",
            );
            jail.set_env("SENTINEL_CORS_ORIGINS", "https://app.example.test");
            jail.set_env("SENTINEL_HTTP__KEEP_ALIVE_SECS", "30");
            jail.set_env("SENTINEL_PRODUCTION", "true");
            jail.set_env("SENTINEL_TEST_SOMETHING", "ignored");
            jail.set_env("DATABASE_URL", "postgres://u@127.0.0.1/db");
            let file = "bind = \"127.0.0.1:7000\"\nworker_slots = 8\n[worker]\nmax_attempts = 5\n";
            let flags = Overrides {
                data_dir: Some("/tmp/x".into()),
                ..Overrides::default()
            };
            let s = load_in_jail(jail, Some(file), &flags).unwrap();
            assert_eq!(s.bind.to_string(), "127.0.0.1:9000");
            assert_eq!(s.worker_slots, 8);
            assert_eq!(s.worker.max_attempts, 5);
            assert_eq!(s.http.keep_alive_secs, 30);
            assert_eq!(s.rate_limit_allowlist.len(), 2);
            assert_eq!(s.cors_origins, vec!["https://app.example.test"]);
            assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
            assert_eq!(s.database_url.as_deref(), Some("postgres://u@127.0.0.1/db"));
            assert_eq!(s.effective_log_level(), "warn");
            let flags = Overrides {
                bind: Some("127.0.0.1:1".parse().unwrap()),
                ..flags
            };
            assert_eq!(
                load_in_jail(jail, Some(file), &flags).unwrap().bind.port(),
                1
            );
            Ok(())
        });
    }

    #[test]
    fn empty_allowlist_string_means_none() {
        Jail::expect_with(|jail| {
            jail.set_env("SENTINEL_RATE_LIMIT_ALLOWLIST", "");
            let s = load_in_jail(jail, None, &Overrides::default()).unwrap();
            assert!(s.rate_limit_allowlist.is_empty());
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_key() {
        Jail::expect_with(|jail| {
            let e = load_in_jail(
                jail,
                Some("worker_slots = \"many\"\n"),
                &Overrides::default(),
            )
            .unwrap_err();
            assert_eq!(e.key(), "worker_slots", "{e}");
            let e =
                load_in_jail(jail, Some("wrker_slots = 3\n"), &Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("wrker_slots"), "{e}");
            let e = load_in_jail(
                jail,
                Some("[http]\nkeep_alive = 3\n"),
                &Overrides::default(),
            )
            .unwrap_err();
            assert!(e.to_string().contains("keep_alive"), "{e}");
            jail.set_env("SENTINEL_RATE_LIMIT_ALLOWLIST", "10.0.0.0/33");
            let e = load_in_jail(jail, None, &Overrides::default()).unwrap_err();
            assert_eq!(e.key(), "rate_limit_allowlist", "{e}");
            assert!(
                e.to_string().contains("SENTINEL_RATE_LIMIT_ALLOWLIST"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn validation_names_the_key() {
        Jail::expect_with(|jail| {
            for (file, key) in [
                ("worker_slots = 0\n", "worker_slots"),
                ("cors_origins = [\"https://a.test/\"]\n", "cors_origins[0]"),
                ("cors_origins = [\"a.test\"]\n", "cors_origins[0]"),
                ("database_url = \"mysql://x\"\n", "database_url"),
                ("tls_cert = \"/nonexistent.pem\"\n", "tls_key"),
                ("[worker]\nheartbeat_secs = 100\n", "worker.heartbeat_secs"),
            ] {
                let e = load_in_jail(jail, Some(file), &Overrides::default()).unwrap_err();
                assert_eq!(e.key(), key, "{file}: {e}");
            }
            Ok(())
        });
    }

    #[test]
    fn example_file_documents_the_defaults() {
        Jail::expect_with(|jail| {
            let example = include_str!("../../../config/qa-sentinel.example.toml");
            let s = load_in_jail(jail, Some(example), &Overrides::default()).unwrap();
            assert_eq!(
                s,
                Settings::default(),
                "config/qa-sentinel.example.toml drifted from the defaults"
            );
            Ok(())
        });
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let e = Settings::load(
            Some(Path::new("/nonexistent/qa.toml")),
            &Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(e.key(), "config");
    }
}
