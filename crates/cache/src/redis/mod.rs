//! Redis (one node or a Redis Cluster) behind every shared concern of distributed mode: the
//! L2 cache ([`RedisCache`]), the fleet-wide rate limiter ([`RedisRateLimiter`]), site cache
//! versions ([`RedisSiteVersions`]), invalidation messages ([`RedisBus`]) and lease locks
//! ([`RedisLocks`]).
//!
//! [`Redis`] hides the single-node/cluster difference behind one cloneable handle and runs
//! every command through a [`CircuitBreaker`] with a short call timeout: Redis is an
//! accelerator, never the source of truth, so when it is down or hangs every caller must get
//! a fast error and carry on without it (L1 and the store for reads, a per-process limiter,
//! unlocked scans) instead of queueing behind a dead socket. Connections are made lazily and
//! re-made by the client library (redis-rs `ConnectionManager` for one node, the async
//! cluster connection for a cluster, which also follows MOVED/ASK and refreshes its slot
//! map), so a process starts, and keeps serving, while Redis is away.
//!
//! Every key is prefixed `qa:`. Keys that must meet in one script or one slot carry the site
//! id as a hash tag (`scan:{site}:…`), which keeps them in one Cluster slot.

mod bus;
mod limiter;
mod lock;
mod remote;
mod scripts;
mod url;
mod versions;

pub use bus::RedisBus;
pub use limiter::RedisRateLimiter;
pub use lock::RedisLocks;
pub use remote::RedisCache;
pub use url::{RedisTopology, RedisUrlError, parse_redis_url};
pub use versions::{LOCAL_VERSION_TTL, RedisSiteVersions};

use crate::remote::RemoteError;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, IntoConnectionInfo, Pipeline, ProtocolVersion, RedisFuture, Value};
use sentinel_resilience::{BreakerConfig, BreakerError, CircuitBreaker};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The prefix of every key and channel.
pub const KEY_PREFIX: &str = "qa:";

/// Tuning of the Redis client.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// Longest wait for one command's answer. Loopback or same-rack Redis answers in well
    /// under a millisecond; a command that takes this long means Redis is stuck, and the
    /// request it serves is better off without it.
    pub command_timeout: Duration,
    /// Longest wait for a new connection.
    pub connect_timeout: Duration,
    /// The breaker around every command (its call timeout bounds retries and reconnect
    /// waits inside the client library too).
    pub breaker: BreakerConfig,
}

impl Default for RedisOptions {
    fn default() -> Self {
        let command_timeout = Duration::from_millis(250);
        Self {
            command_timeout,
            connect_timeout: Duration::from_secs(1),
            breaker: BreakerConfig {
                window: 20,
                minimum_calls: 10,
                failure_rate: 0.5,
                // An idle process sees few calls: five failures in a row are enough proof.
                consecutive_failures: Some(5),
                slow_call: None,
                call_timeout: Some(command_timeout),
                // Short: Redis restarts in about a second, and probing costs one command.
                reset_timeout: Duration::from_secs(2),
                half_open_probes: 3,
            },
        }
    }
}

/// Redis could not be set up (a bad URL or breaker configuration). Unreachability is not a
/// set-up error: connections are made lazily and the process runs degraded meanwhile.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// `REDIS_URL` cannot work.
    #[error(transparent)]
    Url(#[from] url::RedisUrlError),
    /// The client library refused the configuration.
    #[error("redis client: {0}")]
    Client(String),
    /// The breaker configuration is invalid.
    #[error("redis circuit breaker: {0}")]
    Breaker(#[from] sentinel_resilience::BreakerConfigError),
}

/// One connection handle for either topology. Both are multiplexed: one socket per node
/// carries every concurrent command (pipelined), so there is no pool to size or exhaust.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Connection gauges (see [`Redis::pool_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedisPoolStats {
    /// Seed nodes configured (one multiplexed connection per node in use).
    pub nodes: u32,
    /// Commands sent and not yet answered: what piles up when Redis is slow.
    pub in_flight: u64,
}

/// A shared handle on Redis (cheap to clone).
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    topology: RedisTopology,
    breaker: CircuitBreaker,
    in_flight: AtomicU64,
    options: RedisOptions,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("topology", &self.inner.topology)
            .field("breaker", &self.inner.breaker.state_hint())
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// A handle on the Redis that `url` names (see [`parse_redis_url`]). Connects lazily:
    /// this succeeds while Redis is down, and commands fail fast until it is back. Must be
    /// called inside a Tokio runtime (the client library spawns its connection tasks).
    ///
    /// # Errors
    /// The URL or the options cannot work.
    pub fn connect(url: &str, options: RedisOptions) -> Result<Self, RedisSetupError> {
        let topology = parse_redis_url(url)?;
        let breaker = CircuitBreaker::new("redis", options.breaker.clone())?;
        let client_err = |e: redis::RedisError| RedisSetupError::Client(e.to_string());
        let conn = match &topology {
            RedisTopology::Single(node) => {
                let info = node.as_str().into_connection_info().map_err(client_err)?;
                // RESP3: a dropped connection is reported as a push, on which the manager
                // reconnects at once instead of on the next failed command (ecosystem §5).
                let redis_settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                let client = redis::Client::open(info.set_redis_settings(redis_settings))
                    .map_err(client_err)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(options.command_timeout))
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(1))
                    .set_number_of_retries(3);
                Conn::Single(
                    ConnectionManager::new_lazy_with_config(client, config).map_err(client_err)?,
                )
            }
            RedisTopology::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .use_protocol(ProtocolVersion::RESP3)
                    .connection_timeout(options.connect_timeout)
                    .response_timeout(options.command_timeout)
                    .retries(3)
                    .min_retry_wait(10)
                    .max_retry_wait(200)
                    .build()
                    .map_err(client_err)?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(options.connect_timeout)
                    .set_response_timeout(options.command_timeout);
                Conn::Cluster(client.get_pending_async_connection_with_config(config))
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                topology,
                breaker,
                in_flight: AtomicU64::new(0),
                options,
            }),
        })
    }

    /// The topology in use.
    #[must_use]
    pub fn topology(&self) -> &RedisTopology {
        &self.inner.topology
    }

    /// The breaker every command goes through (for health and metrics).
    #[must_use]
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.inner.breaker
    }

    /// The client options.
    #[must_use]
    pub fn options(&self) -> &RedisOptions {
        &self.inner.options
    }

    /// Connection gauges.
    #[must_use]
    pub fn pool_stats(&self) -> RedisPoolStats {
        RedisPoolStats {
            nodes: u32::try_from(self.inner.topology.nodes().len()).unwrap_or(u32::MAX),
            in_flight: self.inner.in_flight.load(Ordering::Relaxed),
        }
    }

    /// Exports the connection gauges every `period` (`redis_pool_connections{state}`:
    /// `total` nodes, `waiting` commands) and warns when commands pile up. Both topologies
    /// multiplex every command over one connection per node, so there is no idle/busy split
    /// to report: what matters is how many commands wait for an answer. The task ends when
    /// every handle is dropped.
    pub fn start_gauges(&self, period: Duration) {
        /// On a healthy connection commands are answered within a millisecond: a pile
        /// this high means Redis (or the network) is slow.
        const WAITING_WARNING: u64 = 64;
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let stats = Self { inner }.pool_stats();
                metrics::gauge!("redis_pool_connections", "state" => "total")
                    .set(f64::from(stats.nodes));
                #[allow(clippy::cast_precision_loss)]
                metrics::gauge!("redis_pool_connections", "state" => "waiting")
                    .set(stats.in_flight as f64);
                if stats.in_flight > WAITING_WARNING {
                    tracing::warn!(
                        waiting = stats.in_flight,
                        nodes = stats.nodes,
                        "Redis commands piling up"
                    );
                }
            }
        });
    }

    /// `qa:` + `key`.
    #[must_use]
    pub(crate) fn key(key: &str) -> String {
        let mut k = String::with_capacity(KEY_PREFIX.len() + key.len());
        k.push_str(KEY_PREFIX);
        k.push_str(key);
        k
    }

    /// Round trip of a `PING` through the breaker.
    ///
    /// # Errors
    /// Redis is unreachable, too slow, or the breaker is open.
    pub async fn ping(&self) -> Result<Duration, RemoteError> {
        let started = Instant::now();
        self.call(|mut c| async move {
            let _: String = redis::cmd("PING").query_async(&mut c).await?;
            Ok(())
        })
        .await?;
        Ok(started.elapsed())
    }

    /// Runs one operation (a command, a pipeline or a script) through the breaker. Outages
    /// (I/O errors, timeouts, a cluster without a master for the slot) count against Redis;
    /// errors that prove Redis answered (a wrong type, a script error) do not.
    pub(crate) async fn call<T, F, Fut>(&self, op: F) -> Result<T, RemoteError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let inner = &self.inner;
        inner.in_flight.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(&inner.in_flight);
        let conn = inner.conn.clone();
        match inner.breaker.call_classified(|| op(conn), is_outage).await {
            Ok(v) => Ok(v),
            Err(BreakerError::Rejected(r)) => {
                metrics::counter!("redis_errors_total", "kind" => "rejected").increment(1);
                Err(RemoteError::Unavailable(r.to_string()))
            }
            Err(BreakerError::Timeout { after, .. }) => {
                metrics::counter!("redis_errors_total", "kind" => "timeout").increment(1);
                Err(RemoteError::Unavailable(format!(
                    "no answer within {} ms",
                    after.as_millis()
                )))
            }
            Err(BreakerError::Inner(e)) if is_outage(&e) => {
                metrics::counter!("redis_errors_total", "kind" => "unavailable").increment(1);
                Err(RemoteError::Unavailable(e.to_string()))
            }
            Err(BreakerError::Inner(e)) => {
                metrics::counter!("redis_errors_total", "kind" => "backend").increment(1);
                Err(RemoteError::Backend(e.to_string()))
            }
        }
    }
}

struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether an error means "Redis is not there" (as opposed to "Redis refused this").
fn is_outage(e: &redis::RedisError) -> bool {
    use redis::ServerErrorKind as S;
    !matches!(
        e.kind(),
        ErrorKind::Server(
            S::ResponseError
                | S::ExecAbort
                | S::NoScript
                | S::CrossSlot
                | S::NotBusy
                | S::NoSub
                | S::NoPerm
        ) | ErrorKind::Parse
            | ErrorKind::UnexpectedReturnType
            | ErrorKind::AuthenticationFailed
            | ErrorKind::InvalidClientConfig
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed() {
        assert_eq!(Redis::key("perm:u:{s}"), "qa:perm:u:{s}");
    }

    #[test]
    fn outages_and_refusals_are_told_apart() {
        let io =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_outage(&io));
        let wrongtype = redis::RedisError::from((
            ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "WRONGTYPE",
        ));
        assert!(!is_outage(&wrongtype));
        let down = redis::RedisError::from((
            ErrorKind::Server(redis::ServerErrorKind::ClusterDown),
            "down",
        ));
        assert!(is_outage(&down));
    }

    #[tokio::test]
    async fn a_bad_url_is_a_setup_error_and_an_absent_server_is_not() {
        assert!(matches!(
            Redis::connect("http://x", RedisOptions::default()),
            Err(RedisSetupError::Url(_))
        ));
        // Port 1 on loopback: nothing listens there. The handle is made; commands fail
        // fast with `Unavailable`, and after a few the breaker answers without trying.
        let r = Redis::connect("redis://127.0.0.1:1", RedisOptions::default()).unwrap();
        for _ in 0..8 {
            assert!(matches!(r.ping().await, Err(RemoteError::Unavailable(_))));
        }
        assert_eq!(
            r.breaker().state_hint(),
            sentinel_resilience::BreakerState::Open
        );
    }
}
