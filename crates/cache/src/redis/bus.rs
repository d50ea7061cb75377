//! Invalidation messages between API processes over Redis pub/sub.

use super::{Conn, Redis};
use crate::bus::{Invalidation, InvalidationBus};
use crate::lock::random_token;
use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// The channel (prefixed like every key).
const CHANNEL: &str = "qa:invalidate";
/// A subscription that stays silent is checked this often with a `PING`: a paused or
/// black-holed server never closes the socket, so silence alone proves nothing.
const PING_EVERY: Duration = Duration::from_secs(5);

#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The publishing process (it has already applied the message locally).
    origin: String,
    msg: Invalidation,
}

/// [`InvalidationBus`] on Redis pub/sub.
///
/// `publish` applies a message in this process at once and then `PUBLISH`es it; a
/// background task holds a subscription (its own connection, to one node: in a Redis
/// Cluster, classic pub/sub messages reach every node) and delivers other processes'
/// messages. Pub/sub is fire-and-forget: while the subscription is down, messages are
/// missed. The task reconnects with backoff (trying each configured node in turn) and says
/// so in the log; what it missed cannot be replayed, so staleness is then bounded by the
/// L1 lifetime of the entries concerned (and, for site versions, by
/// [`super::LOCAL_VERSION_TTL`]).
///
/// In a cluster, every process subscribes on the first configured node it can reach and
/// publishes to that same node: the message then reaches subscribers in the same event-loop
/// turn that acknowledges the `PUBLISH`, instead of after a hop over the cluster bus (which
/// is asynchronous). If that node is down, publishing falls back to any node, and the
/// cluster bus carries the message to the others.
pub struct RedisBus {
    redis: Redis,
    tx: broadcast::Sender<Invalidation>,
    origin: String,
    /// Host and port of the first configured node (cluster only).
    home: Option<(String, u16)>,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedisBus {
    /// Starts the subscription task (inside the current Tokio runtime).
    #[must_use]
    pub fn start(redis: Redis) -> Arc<Self> {
        let tx = broadcast::channel(1024).0;
        let origin = random_token();
        let task = tokio::spawn(subscribe_loop(
            redis.topology().nodes().to_vec(),
            redis.options().connect_timeout,
            tx.clone(),
            origin.clone(),
        ))
        .abort_handle();
        let home = redis
            .topology()
            .is_cluster()
            .then(|| redis.topology().nodes().first().and_then(|n| host_port(n)))
            .flatten();
        Arc::new(Self {
            redis,
            tx,
            origin,
            home,
            task,
        })
    }
}

#[async_trait]
impl InvalidationBus for RedisBus {
    async fn publish(&self, msg: Invalidation) {
        let _ = self.tx.send(msg);
        let payload = match serde_json::to_string(&Envelope {
            origin: self.origin.clone(),
            msg,
        }) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "invalidation not encodable");
                return;
            }
        };
        let home = self.home.clone();
        let sent = self
            .redis
            .call(|c| async move {
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(CHANNEL).arg(payload);
                match (c, home) {
                    (Conn::Cluster(mut c), Some((host, port))) => {
                        use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                        let to_home = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host,
                            port,
                        });
                        match c.route_command(cmd.clone(), to_home).await {
                            Ok(_) => Ok(()),
                            Err(_) => cmd.query_async::<i64>(&mut c).await.map(|_| ()),
                        }
                    }
                    (mut c, _) => cmd.query_async::<i64>(&mut c).await.map(|_| ()),
                }
            })
            .await;
        if let Err(e) = sent {
            metrics::counter!("invalidations_unpublished_total").increment(1);
            tracing::warn!(error = %e, ?msg,
                "invalidation applied here but not published (Redis unavailable); other processes drop it by TTL");
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Invalidation> {
        self.tx.subscribe()
    }
}

async fn subscribe_loop(
    nodes: Vec<String>,
    connect_timeout: Duration,
    tx: broadcast::Sender<Invalidation>,
    origin: String,
) {
    let mut attempt: usize = 0;
    let mut backoff = Duration::from_millis(100);
    let mut was_connected = false;
    loop {
        let node = &nodes[attempt % nodes.len().max(1)];
        attempt = attempt.wrapping_add(1);
        let pubsub = match connect(node, connect_timeout).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, retry_in = ?backoff, "invalidation subscription: connect failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        if was_connected {
            metrics::counter!("invalidation_resubscribes_total").increment(1);
            tracing::warn!(
                "invalidation subscription restored; messages published while it was down were missed (L1 entries expire by their TTL)"
            );
        }
        was_connected = true;
        let (mut sink, mut stream) = pubsub.split();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    match serde_json::from_slice::<Envelope>(msg.get_payload_bytes()) {
                        Ok(env) if env.origin != origin => { let _ = tx.send(env.msg); }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "undecodable invalidation ignored"),
                    }
                }
                _ = ping.tick() => {
                    let alive = tokio::time::timeout(
                        connect_timeout,
                        sink.ping::<redis::Value>(),
                    ).await;
                    if !matches!(alive, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        tracing::warn!("invalidation subscription lost; reconnecting");
    }
}

/// `host:port` of a node URL, as the cluster names its nodes.
fn host_port(node: &str) -> Option<(String, u16)> {
    use redis::IntoConnectionInfo;
    match node.into_connection_info().ok()?.addr() {
        redis::ConnectionAddr::Tcp(host, port)
        | redis::ConnectionAddr::TcpTls { host, port, .. } => Some((host.clone(), *port)),
        _ => None,
    }
}

async fn connect(node: &str, timeout: Duration) -> Result<redis::aio::PubSub, String> {
    let client = redis::Client::open(node).map_err(|e| e.to_string())?;
    let fut = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(CHANNEL).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}
