//! The browser pool: instances behind a load balancer, each behind a circuit breaker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sentinel_resilience::{BackendStats, BreakerSnapshot, BreakerState, LoadBalancer, Strategy};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, SemaphorePermit, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::capture::{self, Capture};
use crate::config::{BrowserSource, CaptureRequest, PoolConfig};
use crate::error::{CaptureError, PoolError};
use crate::instance::{Instance, InstanceState, supervise};

/// A pool of headless Chromium instances that makes stabilised captures.
///
/// Each capture runs in a fresh browser context (no cookies, storage or cache shared with
/// any other capture) on the instance the load balancer picks among those that are ready,
/// have a free page slot and whose circuit breaker admits a call. Crashed and hung browsers
/// are detected, killed and replaced by a supervisor task per instance.
///
/// ```no_run
/// # async fn demo(guard: sentinel_netguard::Guard) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use sentinel_core::Viewport;
/// use sentinel_visual::{BrowserPool, CaptureRequest, PoolConfig};
///
/// let pool = BrowserPool::start(PoolConfig::new(Arc::new(guard))).await?;
/// let shot = pool
///     .capture(&CaptureRequest::new("http://127.0.0.1:8080/".parse()?, Viewport::Desktop))
///     .await?;
/// println!("{}x{} PNG, {} bytes", shot.width, shot.height, shot.png.len());
/// pool.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BrowserPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BrowserPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserPool")
            .field("instances", &self.inner.balancer.len())
            .field("strategy", &self.inner.balancer.strategy())
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: Arc<PoolConfig>,
    balancer: LoadBalancer<Arc<Instance>>,
    /// Every page slot of every instance: captures queue here, not on one instance.
    slots: Semaphore,
    shutdown: watch::Sender<bool>,
    closing: AtomicBool,
    supervisors: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    /// Signalled whenever a capture gives its page back.
    page_freed: Notify,
    succeeded: AtomicU64,
    failed: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropped without `shutdown`: the supervisors close their browsers (and a
        // `ChromiumProcess` dropped with its task kills its process group).
        self.shutdown.send_replace(true);
    }
}

/// Numbers of one instance, for `/metrics` and `/health/performance`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStats {
    /// `local-N` or `remote-N`.
    pub name: String,
    /// `local` or `remote`.
    pub source: &'static str,
    /// What the instance is doing.
    pub state: InstanceState,
    /// The browser process id (local instances).
    pub pid: Option<u32>,
    /// Pages in use now.
    pub pages_in_use: usize,
    /// Browsers replaced after a crash or hang.
    pub restarts: u64,
    /// Captures finished on this instance.
    pub captures: u64,
    /// Of which failed.
    pub failures: u64,
    /// DevTools messages that chromiumoxide's protocol types could not parse and that were
    /// skipped (Chromium is newer than the bindings; the browser keeps working).
    pub messages_not_understood: u64,
    /// Its circuit breaker (export `breaker.state.gauge()` as `circuit_breaker_state{name}`).
    pub breaker: BreakerSnapshot,
    /// What the load balancer learnt about it.
    pub balancer: BackendStats,
}

/// Numbers of the whole pool.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolStats {
    /// The balancing strategy.
    pub strategy: Strategy,
    /// Page slots in total.
    pub capacity: usize,
    /// Page slots in use.
    pub in_use: usize,
    /// Captures that succeeded since start.
    pub succeeded: u64,
    /// Captures that failed since start.
    pub failed: u64,
    /// Per instance.
    pub instances: Vec<InstanceStats>,
}

impl BrowserPool {
    /// Starts every instance and waits until each has either come up or failed its first
    /// attempt (failed ones keep retrying in the background).
    ///
    /// # Errors
    /// [`PoolError::Config`] for an unusable configuration, [`PoolError::NoBrowser`] when no
    /// instance came up.
    pub async fn start(config: PoolConfig) -> Result<Self, PoolError> {
        if config.instances.is_empty() {
            return Err(PoolError::Config(
                "at least one browser instance is needed".into(),
            ));
        }
        if config.pages_per_browser == 0 {
            return Err(PoolError::Config(
                "pages_per_browser must be at least 1".into(),
            ));
        }
        config
            .breaker
            .validate()
            .map_err(|e| PoolError::Config(e.to_string()))?;
        for source in &config.instances {
            if let BrowserSource::Remote { url } = source
                && !(url.starts_with("ws://") || url.starts_with("wss://"))
            {
                return Err(PoolError::Config(format!(
                    "remote browser `{url}`: give its DevTools WebSocket URL \
                     (ws://host:port/devtools/browser/<id>)"
                )));
            }
        }
        if config.instances.contains(&BrowserSource::Local) {
            let _ = tokio::task::spawn_blocking(|| {
                crate::launch::remove_stale_profiles(Duration::from_secs(600));
            })
            .await;
        }
        let config = Arc::new(config);
        let instances = config
            .instances
            .iter()
            .enumerate()
            .map(|(i, source)| Instance::new(i, source.clone(), &config).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PoolError::Config(e.to_string()))?;
        let capacity = instances.len() * config.pages_per_browser;
        let (shutdown, _) = watch::channel(false);
        let supervisors = instances
            .iter()
            .map(|i| {
                tokio::spawn(supervise(
                    Arc::clone(i),
                    Arc::clone(&config),
                    shutdown.subscribe(),
                ))
            })
            .collect();
        let pool = Self {
            inner: Arc::new(Inner {
                balancer: LoadBalancer::new(instances.iter().cloned(), config.strategy),
                config,
                slots: Semaphore::new(capacity),
                shutdown,
                closing: AtomicBool::new(false),
                supervisors: parking_lot::Mutex::new(supervisors),
                page_freed: Notify::new(),
                succeeded: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
        };
        let states = futures::future::join_all(instances.iter().map(|i| i.started())).await;
        if !states.contains(&InstanceState::Ready) {
            pool.shutdown().await;
            return Err(PoolError::NoBrowser(format!(
                "{} instance(s) failed to start; see the log",
                states.len()
            )));
        }
        Ok(pool)
    }

    /// Captures a page.
    ///
    /// # Errors
    /// A [`CaptureError`] whose [`kind`](CaptureError::kind) says whose fault it was and
    /// whether a retry can help.
    pub async fn capture(&self, request: &CaptureRequest) -> Result<Capture, CaptureError> {
        let result = self.capture_inner(request).await;
        let counter = if result.is_ok() {
            &self.inner.succeeded
        } else {
            &self.inner.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    async fn capture_inner(&self, request: &CaptureRequest) -> Result<Capture, CaptureError> {
        let inner = &*self.inner;
        if inner.closing.load(Ordering::Acquire) {
            return Err(CaptureError::ShuttingDown);
        }
        validate(request)?;
        // Refuse early and clearly; the interceptor enforces the same rule on every request
        // the page makes, redirects included.
        if let Err(denied) = inner.config.egress.check(&request.url).await {
            return Err(CaptureError::BlockedByPolicy {
                url: request.url.to_string(),
                reason: denied.reason,
            });
        }
        let queued = Instant::now();
        let slot = match tokio::time::timeout(request.timeout, inner.slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_closed)) => return Err(CaptureError::ShuttingDown),
            Err(_) => {
                return Err(CaptureError::Busy {
                    waited: queued.elapsed(),
                });
            }
        };

        let give_up = queued + request.timeout;
        loop {
            // Registered before looking, so that a page freed in between is not missed.
            let freed = inner.page_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            // Pick an instance; one whose breaker or page slots were taken in the meantime is
            // skipped (the filter excludes it on the next pick).
            for _ in 0..inner.balancer.len() {
                let Some(lease) = inner.balancer.pick_where(|i| i.is_available()) else {
                    break;
                };
                let instance = Arc::clone(&lease);
                let Ok(page) = instance.pages.try_acquire() else {
                    continue;
                };
                let page = PageSlot {
                    permit: Some(page),
                    freed: &inner.page_freed,
                };
                let Some(live) = instance.live() else {
                    continue;
                };
                let Ok(permit) = instance.breaker.try_acquire() else {
                    continue;
                };
                let call_timeout = inner
                    .config
                    .breaker
                    .call_timeout
                    .unwrap_or(Duration::from_secs(90));
                let run = capture::capture(&live, &instance.name, request, &inner.config);
                let result = match tokio::time::timeout(call_timeout, run).await {
                    Ok(r) => r,
                    Err(_) => {
                        // The whole capture overran: the page's own timers would have fired
                        // first on a responsive browser.
                        live.kill_hung();
                        permit.timed_out();
                        instance.browser_lost(&live);
                        lease.failure();
                        instance.report_suspect();
                        instance.failures.fetch_add(1, Ordering::Relaxed);
                        instance.captures.fetch_add(1, Ordering::Relaxed);
                        return Err(CaptureError::BrowserHung {
                            browser: instance.name.to_string(),
                        });
                    }
                };
                drop(page);
                drop(slot);
                instance.captures.fetch_add(1, Ordering::Relaxed);
                match &result {
                    Ok(_) => {
                        permit.success();
                        lease.success();
                    }
                    Err(e) if e.blames_browser() => {
                        permit.failure();
                        if e.lost_browser() {
                            instance.browser_lost(&live);
                        }
                        lease.failure();
                        instance.failures.fetch_add(1, Ordering::Relaxed);
                        instance.report_suspect();
                    }
                    Err(_) => {
                        // The page's fault (or the request's): the browser did its job, but
                        // the time it took says nothing about its speed.
                        permit.success();
                        drop(lease);
                        instance.failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                return result;
            }
            // Nothing can take the capture now. If a healthy browser is only busy (the pool
            // slot was free because another instance is down), wait for one of its pages.
            let busy = inner.balancer.iter().any(|i| {
                i.state() == InstanceState::Ready
                    && i.breaker.would_admit()
                    && i.pages.available_permits() == 0
            });
            if !busy {
                return Err(self.unavailable());
            }
            if tokio::time::timeout_at(give_up, freed).await.is_err() {
                return Err(CaptureError::Busy {
                    waited: queued.elapsed(),
                });
            }
        }
    }

    fn unavailable(&self) -> CaptureError {
        let mut why = Vec::new();
        let mut retry_after: Option<Duration> = None;
        for i in self.inner.balancer.iter() {
            let snap = i.breaker.snapshot();
            let state = i.state();
            let text = if snap.state == BreakerState::Open {
                let wait = snap.retry_after_ms.map(Duration::from_millis);
                if let Some(d) = wait {
                    retry_after = Some(retry_after.map_or(d, |r| r.min(d)));
                }
                let restarting = if state == InstanceState::Ready {
                    ""
                } else {
                    ", restarting"
                };
                match wait {
                    Some(d) => format!(
                        "{}: circuit breaker open (probes in {} ms{restarting})",
                        i.name,
                        d.as_millis()
                    ),
                    None => format!("{}: circuit breaker open{restarting}", i.name),
                }
            } else if snap.state == BreakerState::HalfOpen && !i.breaker.would_admit() {
                format!(
                    "{}: circuit breaker half-open, all probes in flight",
                    i.name
                )
            } else if state != InstanceState::Ready {
                format!(
                    "{}: browser {}",
                    i.name,
                    match state {
                        InstanceState::Starting => "starting",
                        InstanceState::Down => "down, retrying",
                        _ => "stopped",
                    }
                )
            } else {
                format!("{}: all pages busy", i.name)
            };
            why.push(text);
        }
        CaptureError::Unavailable {
            reason: why.join("; "),
            retry_after,
        }
    }

    /// State and counters of the pool and of each instance.
    #[must_use]
    pub fn stats(&self) -> PoolStats {
        let inner = &*self.inner;
        let balancer = inner.balancer.snapshot();
        let capacity = inner.balancer.len() * inner.config.pages_per_browser;
        let instances: Vec<InstanceStats> = inner
            .balancer
            .iter()
            .zip(balancer)
            .map(|(i, b)| InstanceStats {
                name: i.name.to_string(),
                source: match i.source {
                    BrowserSource::Local => "local",
                    BrowserSource::Remote { .. } => "remote",
                },
                state: i.state(),
                pid: i.live().and_then(|l| l.pid),
                pages_in_use: inner.config.pages_per_browser - i.pages.available_permits(),
                restarts: i.restarts.load(Ordering::Relaxed),
                captures: i.captures.load(Ordering::Relaxed),
                failures: i.failures.load(Ordering::Relaxed),
                messages_not_understood: i.not_understood.load(Ordering::Relaxed),
                breaker: i.breaker.snapshot(),
                balancer: b,
            })
            .collect();
        PoolStats {
            strategy: inner.balancer.strategy(),
            capacity,
            in_use: capacity - inner.slots.available_permits(),
            succeeded: inner.succeeded.load(Ordering::Relaxed),
            failed: inner.failed.load(Ordering::Relaxed),
            instances,
        }
    }

    /// Whether any instance can take a capture now (for readiness checks).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.inner.balancer.iter().any(|i| {
            i.state() == InstanceState::Ready && i.breaker.state_hint() != BreakerState::Open
        })
    }

    /// Stops taking captures, waits up to 10 s for those in flight, closes every browser and
    /// waits until every local Chromium process is gone.
    pub async fn shutdown(&self) {
        let inner = &*self.inner;
        inner.closing.store(true, Ordering::Release);
        let capacity = u32::try_from(inner.balancer.len() * inner.config.pages_per_browser)
            .unwrap_or(u32::MAX);
        // Holding every slot means no capture is running.
        if let Ok(all) =
            tokio::time::timeout(Duration::from_secs(10), inner.slots.acquire_many(capacity)).await
        {
            drop(all);
        }
        inner.slots.close();
        inner.shutdown.send_replace(true);
        let supervisors = std::mem::take(&mut *inner.supervisors.lock());
        for s in supervisors {
            if let Err(e) = s.await {
                tracing::warn!(error = %e, "a browser supervisor failed");
            }
        }
    }
}

/// A page slot of an instance; giving it back wakes captures waiting for one.
struct PageSlot<'a> {
    permit: Option<SemaphorePermit<'a>>,
    freed: &'a Notify,
}

impl Drop for PageSlot<'_> {
    fn drop(&mut self) {
        // Release first, then wake: a waiter that looks before the release would find the
        // page still taken and go back to sleep for good.
        drop(self.permit.take());
        self.freed.notify_waiters();
    }
}

fn validate(request: &CaptureRequest) -> Result<(), CaptureError> {
    if !matches!(request.url.scheme(), "http" | "https") {
        return Err(CaptureError::InvalidRequest(format!(
            "only http and https pages can be captured, not `{}`",
            request.url.scheme()
        )));
    }
    if request.timeout.is_zero() {
        return Err(CaptureError::InvalidRequest(
            "the timeout must be positive".into(),
        ));
    }
    if let Some(empty) = request
        .mask
        .iter()
        .chain(&request.hide)
        .chain(&request.wait_for)
        .find(|s| s.trim().is_empty())
    {
        return Err(CaptureError::InvalidRequest(format!(
            "empty CSS selector `{empty}`"
        )));
    }
    Ok(())
}
