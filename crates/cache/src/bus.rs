//! Cache invalidation messages between processes.
//!
//! Each API process keeps an in-process L1 in front of the shared cache. When one process
//! changes something that others may hold in their L1 (a grant, a site's cached results),
//! it publishes an [`Invalidation`]; every process (itself included) drops the affected L1
//! entries on receipt. In-process, the bus is a broadcast channel; in distributed mode it is
//! Redis pub/sub, so the other processes see the change within milliseconds instead of
//! after their L1 lifetime.

use async_trait::async_trait;
use sentinel_core::{SiteId, UserId};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Invalidation {
    /// A user's grant on a site changed.
    Grant {
        /// The user.
        user: UserId,
        /// The site.
        site: SiteId,
    },
    /// A site's cached scan results were dropped (its cache version moved).
    SiteResults {
        /// The site.
        site: SiteId,
    },
}

/// Publishes and delivers invalidations.
#[async_trait]
pub trait InvalidationBus: Send + Sync + 'static {
    /// Sends a message to every process (this one included).
    async fn publish(&self, msg: Invalidation);
    /// Receives every message published from now on.
    fn subscribe(&self) -> broadcast::Receiver<Invalidation>;
}

/// The in-process bus (one process: the embedded default).
#[derive(Debug)]
pub struct LocalBus {
    tx: broadcast::Sender<Invalidation>,
}

impl Default for LocalBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
        }
    }
}

#[async_trait]
impl InvalidationBus for LocalBus {
    async fn publish(&self, msg: Invalidation) {
        let _ = self.tx.send(msg);
    }

    fn subscribe(&self) -> broadcast::Receiver<Invalidation> {
        self.tx.subscribe()
    }
}
