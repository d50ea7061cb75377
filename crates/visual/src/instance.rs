//! One browser instance of the pool and the task that keeps it alive.
//!
//! An [`Instance`] is a slot: a circuit breaker, a bound on its pages, counters, and the
//! browser currently serving it ([`Live`]). A supervisor task per instance launches (or
//! connects to) the browser, watches it, and when it dies (process exit, closed DevTools
//! connection, no answer to a ping) opens the instance's breaker, removes every process of it
//! and starts a fresh one. Captures never restart browsers themselves; they only report what
//! they saw (a dead connection, a ping that got no answer) and kill a hung browser so that
//! nothing waits on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::browser::CloseParams;
use chromiumoxide::error::CdpError;
use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::{Browser, Handler};
use futures::StreamExt;
use parking_lot::Mutex;
use sentinel_resilience::{BreakerConfigError, CircuitBreaker};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::{BrowserSource, PoolConfig};
use crate::error::LaunchError;
use crate::launch::{ChromiumProcess, Killer};

/// What an instance is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Launching or connecting.
    Starting,
    /// Serving captures.
    Ready,
    /// The last start failed; retrying with backoff.
    Down,
    /// Shut down.
    Stopped,
}

impl InstanceState {
    const fn to_u8(self) -> u8 {
        match self {
            Self::Starting => 0,
            Self::Ready => 1,
            Self::Down => 2,
            Self::Stopped => 3,
        }
    }

    const fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Ready,
            2 => Self::Down,
            3 => Self::Stopped,
            _ => Self::Starting,
        }
    }
}

/// A browser serving an instance now.
pub(crate) struct Live {
    pub(crate) browser: Browser,
    pub(crate) pid: Option<u32>,
    /// Captures route the browser's connections through a local egress proxy (the browser
    /// runs on this machine, so it can reach one).
    pub(crate) proxied: bool,
    killer: Option<Killer>,
    dead: watch::Receiver<bool>,
    /// Set when the browser is killed for not answering, so that captures that see its
    /// connection drop report a hang rather than a crash.
    hung: AtomicBool,
    /// Set once the instance's breaker has been opened for this browser's loss, so that the
    /// capture that saw it die and the supervisor that replaces it open it once between them.
    lost: AtomicBool,
}

impl Live {
    /// Whether the DevTools connection is gone.
    pub(crate) fn is_dead(&self) -> bool {
        *self.dead.borrow()
    }

    /// Resolves when the DevTools connection is gone.
    pub(crate) async fn died(&self) {
        let mut dead = self.dead.clone();
        // An error means the handler task is gone, which is death too.
        let _ = dead.wait_for(|d| *d).await;
    }

    /// Whether the browser answers a trivial command within `timeout`.
    pub(crate) async fn ping(&self, timeout: Duration) -> bool {
        if self.is_dead() {
            return false;
        }
        matches!(
            tokio::time::timeout(timeout, self.browser.version()).await,
            Ok(Ok(_))
        )
    }

    /// Kills a local browser's whole process group at once (the supervisor reaps it).
    pub(crate) fn kill(&self) {
        if let Some(k) = self.killer {
            k.kill();
        }
    }

    /// Marks the browser as hung and kills it.
    pub(crate) fn kill_hung(&self) {
        self.hung.store(true, Ordering::Release);
        self.kill();
    }

    /// Whether the browser was killed for not answering.
    pub(crate) fn was_hung(&self) -> bool {
        self.hung.load(Ordering::Acquire)
    }
}

/// One slot of the pool.
pub(crate) struct Instance {
    pub(crate) name: Arc<str>,
    pub(crate) source: BrowserSource,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) pages: Semaphore,
    live: Mutex<Option<Arc<Live>>>,
    state: AtomicU8,
    state_changed: Notify,
    /// A capture saw something wrong: check the browser now, not at the next health tick.
    suspect: Notify,
    pub(crate) restarts: AtomicU64,
    pub(crate) captures: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// DevTools messages chromiumoxide could not parse (newer protocol than its bindings).
    pub(crate) not_understood: Arc<AtomicU64>,
}

impl Instance {
    pub(crate) fn new(
        index: usize,
        source: BrowserSource,
        config: &PoolConfig,
    ) -> Result<Self, BreakerConfigError> {
        let name: Arc<str> = match &source {
            BrowserSource::Local => format!("local-{index}"),
            BrowserSource::Remote { .. } => format!("remote-{index}"),
        }
        .into();
        let breaker = CircuitBreaker::new(format!("browser:{name}"), config.breaker.clone())?;
        Ok(Self {
            name,
            source,
            breaker,
            pages: Semaphore::new(config.pages_per_browser),
            live: Mutex::new(None),
            state: AtomicU8::new(InstanceState::Starting.to_u8()),
            state_changed: Notify::new(),
            suspect: Notify::new(),
            restarts: AtomicU64::new(0),
            captures: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            not_understood: Arc::new(AtomicU64::new(0)),
        })
    }

    pub(crate) fn state(&self) -> InstanceState {
        InstanceState::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set_state(&self, s: InstanceState) {
        self.state.store(s.to_u8(), Ordering::Release);
        self.state_changed.notify_waiters();
    }

    /// Waits until the instance leaves `Starting`.
    pub(crate) async fn started(&self) -> InstanceState {
        loop {
            let notified = self.state_changed.notified();
            let s = self.state();
            if s != InstanceState::Starting {
                return s;
            }
            notified.await;
        }
    }

    /// The browser serving now, if ready.
    pub(crate) fn live(&self) -> Option<Arc<Live>> {
        self.live.lock().clone().filter(|l| !l.is_dead())
    }

    /// Whether the load balancer may choose this instance now.
    pub(crate) fn is_available(&self) -> bool {
        self.state() == InstanceState::Ready
            && self.pages.available_permits() > 0
            && self.breaker.would_admit()
    }

    /// Asks the supervisor to check the browser now.
    pub(crate) fn report_suspect(&self) {
        self.suspect.notify_one();
    }

    /// The browser `live` is gone (crashed, or killed for hanging): opens the breaker, once
    /// per browser. The capture that sees the loss calls this before it answers, so a caller
    /// that retries at once is not sent back to the dead browser; the supervisor calls it too,
    /// for a loss no capture saw.
    pub(crate) fn browser_lost(&self, live: &Live) {
        if !live.lost.swap(true, Ordering::AcqRel) {
            self.breaker.trip();
        }
    }
}

/// Resolves when the pool shuts down. (The `watch::Ref` that `wait_for` returns is not `Send`,
/// so it must not outlive the wait.)
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Why a supervised browser ended.
enum End {
    Shutdown,
    Died(String),
}

/// Keeps `instance` served by a live browser until `shutdown` turns true.
pub(crate) async fn supervise(
    instance: Arc<Instance>,
    config: Arc<PoolConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(250);
    loop {
        if *shutdown.borrow() {
            break;
        }
        instance.set_state(InstanceState::Starting);
        let started = tokio::select! {
            r = start(&instance, &config) => r,
            () = stopping(&mut shutdown) => break,
        };
        let (live, mut process, handler) = match started {
            Ok(parts) => parts,
            Err(e) => {
                tracing::warn!(
                    browser = %instance.name,
                    error = %e,
                    retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                    "browser did not start"
                );
                instance.set_state(InstanceState::Down);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stopping(&mut shutdown) => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(250);
        tracing::info!(browser = %instance.name, pid = live.pid, "browser ready");
        *instance.live.lock() = Some(Arc::clone(&live));
        instance.set_state(InstanceState::Ready);

        let end = watch_browser(&instance, &config, &live, process.as_mut(), &mut shutdown).await;
        *instance.live.lock() = None;
        match end {
            End::Shutdown => {
                instance.set_state(InstanceState::Stopped);
                if let Some(p) = process {
                    // Ask nicely, then make sure.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        live.browser.execute(CloseParams::default()),
                    )
                    .await;
                    p.shutdown(Duration::from_secs(3)).await;
                }
                // A remote browser is not ours to close: dropping the connection is enough
                // (its capture contexts were created with `disposeOnDetach`).
                handler.abort();
                return;
            }
            End::Died(why) => {
                tracing::warn!(
                    browser = %instance.name,
                    pid = live.pid,
                    reason = %why,
                    "browser lost; replacing it"
                );
                instance.browser_lost(&live);
                instance.restarts.fetch_add(1, Ordering::Relaxed);
                live.kill();
                if let Some(mut p) = process {
                    p.terminate().await;
                }
                handler.abort();
            }
        }
    }
    instance.set_state(InstanceState::Stopped);
}

async fn watch_browser(
    instance: &Instance,
    config: &PoolConfig,
    live: &Live,
    mut process: Option<&mut ChromiumProcess>,
    shutdown: &mut watch::Receiver<bool>,
) -> End {
    let mut tick = tokio::time::interval(config.health_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    loop {
        let exited = async {
            match process.as_deref_mut() {
                Some(p) => p.wait().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stopping(shutdown) => return End::Shutdown,
            () = live.died() => return End::Died("DevTools connection closed".to_owned()),
            status = exited => {
                let how = status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
                return End::Died(format!("browser process exited ({how})"));
            }
            () = instance.suspect.notified() => {
                if !live.ping(config.ping_timeout).await {
                    live.kill_hung();
                    return End::Died("no answer to a ping after a failed capture".to_owned());
                }
            }
            _ = tick.tick() => {
                if !live.ping(config.ping_timeout).await {
                    live.kill_hung();
                    return End::Died("no answer to a health ping".to_owned());
                }
            }
        }
    }
}

type Started = (Arc<Live>, Option<ChromiumProcess>, JoinHandle<()>);

async fn start(instance: &Instance, config: &PoolConfig) -> Result<Started, LaunchError> {
    let (process, ws_url) = match &instance.source {
        BrowserSource::Local => {
            let p = ChromiumProcess::launch(
                &config.executable,
                &config.extra_args,
                config.launch_timeout,
            )
            .await?;
            let url = p.ws_url().to_owned();
            (Some(p), url)
        }
        BrowserSource::Remote { url } => (None, url.clone()),
    };
    let handler_config = HandlerConfig {
        ignore_https_errors: config.ignore_https_errors,
        // Unparsable messages come back to `drive`, which counts them and goes on.
        ignore_invalid_messages: false,
        viewport: None,
        request_timeout: config
            .breaker
            .call_timeout
            .unwrap_or(Duration::from_secs(90)),
        ..HandlerConfig::default()
    };
    let connected = tokio::time::timeout(
        config.launch_timeout,
        Browser::connect_with_config(ws_url, handler_config),
    )
    .await;
    let (browser, handler) = match connected {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            if let Some(mut p) = process {
                p.terminate().await;
            }
            return Err(LaunchError::Connect(e.to_string()));
        }
        Err(_) => {
            if let Some(mut p) = process {
                p.terminate().await;
            }
            return Err(LaunchError::Timeout(config.launch_timeout));
        }
    };
    let (dead_tx, dead) = watch::channel(false);
    let task = tokio::spawn(drive(
        handler,
        Arc::clone(&instance.name),
        dead_tx,
        Arc::clone(&instance.not_understood),
    ));
    let live = Arc::new(Live {
        browser,
        pid: process.as_ref().and_then(ChromiumProcess::pid),
        proxied: process.is_some() || config.proxy_remote,
        killer: process.as_ref().map(ChromiumProcess::killer),
        dead,
        hung: AtomicBool::new(false),
        lost: AtomicBool::new(false),
    });
    Ok((live, process, task))
}

/// Polls chromiumoxide's handler for the browser's whole life.
///
/// The handler yields an error for every message it could not handle. chromiumoxide's CDP
/// types are generated from a fixed protocol revision and Chromium keeps adding events and
/// enum values (mattsse/chromiumoxide#229, #243, #266), so an unparsable message is routine:
/// it is logged and the loop goes on. Only a broken WebSocket ends the loop; then the
/// connection is marked dead *before* the handler (and with it every pending command's
/// sender) is dropped, so a capture whose command fails can tell a crash from other errors.
pub(crate) async fn drive(
    mut handler: Handler,
    browser: Arc<str>,
    dead: watch::Sender<bool>,
    not_understood: Arc<AtomicU64>,
) {
    while let Some(event) = handler.next().await {
        match event {
            Ok(()) => {}
            Err(CdpError::Ws(e)) => {
                tracing::info!(browser = %browser, error = %e, "DevTools connection closed");
                break;
            }
            Err(CdpError::InvalidMessage(raw, e)) => {
                // Chromium 156 sends e.g. `Network.requestWillBeSentExtraInfo` for every
                // request in a shape the bindings reject: routine, so counted, not warned.
                not_understood.fetch_add(1, Ordering::Relaxed);
                let method = serde_json::from_str::<serde_json::Value>(&raw)
                    .ok()
                    .and_then(|v| v.get("method").and_then(|m| m.as_str().map(str::to_owned)));
                tracing::debug!(
                    browser = %browser,
                    method,
                    error = %e,
                    "DevTools message not understood; ignored"
                );
            }
            Err(e) => {
                not_understood.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    browser = %browser,
                    error = %e,
                    "DevTools message could not be handled; ignored"
                );
            }
        }
    }
    dead.send_replace(true);
    drop(handler);
}
