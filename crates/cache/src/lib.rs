//! Caches and shared limits of qa-sentinel.
//!
//! - [`TtlCache`]: the in-process L1 (bounded, per-entry lifetime, age refreshed on read).
//! - [`Tiered`]: a typed multi-level cache: L1, then an optional shared L2 ([`RemoteCache`],
//!   Redis in distributed mode), then a load function, with per-process single-flight so that
//!   one key missing everywhere is computed once however many requests ask at once.
//! - [`RateLimiter`]: fixed-window request limits per client.
//! - [`SiteVersions`]: per-site version numbers that make "drop every cached result of this
//!   site" an O(1) operation (keys carry the version; old versions simply stop being read and
//!   expire), instead of the guide's `KEYS scan:{site}:*`, which blocks Redis.
//! - [`InvalidationBus`]: messages that make every process drop L1 entries another changed.
//! - [`Locks`]: lease locks with random-token ownership (one site+options scanned once at a
//!   time across all workers).
//!
//! Each has an in-process implementation (the embedded default) and a Redis one in
//! [`redis`] (single node or Redis Cluster), chosen by configuration.

mod bus;
mod l1;
mod lock;
mod ratelimit;
pub mod redis;
mod remote;
mod stats;
mod tiered;
mod versions;

pub use bus::{Invalidation, InvalidationBus, LocalBus};
pub use l1::{TtlCache, coarse_now_ms};
pub use lock::{HeldLock, LocalLocks, LockError, Locks, scan_lock_key};
pub use ratelimit::{LocalRateLimiter, RateDecision, RateLimiter};
pub use remote::{RemoteCache, RemoteError};
pub use stats::{CacheStats, CacheStatsSnapshot};
pub use tiered::{CacheKey, Tiered};
pub use versions::{LocalSiteVersions, SiteVersions};
