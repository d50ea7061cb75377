//! Configuration of the browser pool and of one capture.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sentinel_core::{ScanOptions, Viewport};
use sentinel_resilience::{BreakerConfig, Strategy};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::egress::EgressCheck;

/// Where one browser instance of the pool comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BrowserSource {
    /// A Chromium process that the pool launches, owns and replaces when it dies.
    Local,
    /// A browser already running elsewhere, reached at its DevTools WebSocket URL
    /// (`ws://host:port/devtools/browser/<id>`); the pool reconnects when the connection drops.
    Remote {
        /// The DevTools WebSocket URL.
        url: String,
    },
}

/// Where the installed Chromium builds live, best first: Debian's `chromium-headless-shell`
/// (the automation build, without the browser UI: creating and disposing a browser context,
/// which every capture does, costs its browser process about a third of what it costs the
/// full browser, measured 8.3 against 21 CPU seconds for 90 captures; docs/bench/capture.md),
/// then the full browser. The headless shell's binary itself: its `/usr/bin` wrapper runs it
/// as a child of `sh` (no `exec`), and the pool must supervise the browser's own pid.
pub const EXECUTABLE_CANDIDATES: &[&str] = &[
    "/usr/lib/chromium/chromium-headless-shell",
    "/usr/bin/chromium",
];

/// The first of [`EXECUTABLE_CANDIDATES`] that exists (the last one if none does, so that the
/// launch error names the usual path).
#[must_use]
pub fn default_executable() -> PathBuf {
    EXECUTABLE_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Configuration of a [`BrowserPool`](crate::BrowserPool).
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// The browser instances, chosen per capture by the load balancer.
    pub instances: Vec<BrowserSource>,
    /// The Chromium executable for local instances.
    pub executable: PathBuf,
    /// Extra command-line flags for local instances (after the fixed ones).
    pub extra_args: Vec<String>,
    /// Captures in flight at once in one browser.
    pub pages_per_browser: usize,
    /// How the instance of a capture is chosen.
    pub strategy: Strategy,
    /// The circuit breaker of every instance. Its `call_timeout` bounds a whole capture:
    /// a browser that has not finished by then is checked and, if it does not answer, killed.
    pub breaker: BreakerConfig,
    /// How long a local Chromium may take to print its DevTools URL.
    pub launch_timeout: Duration,
    /// How often an idle browser is pinged (a hung browser is found even without traffic).
    pub health_interval: Duration,
    /// How long a ping may take before the browser counts as hung.
    pub ping_timeout: Duration,
    /// Full-page captures are cut at this height in CSS pixels (an unbounded height is a
    /// memory and time bomb; Chromium also repeats content past its texture limit).
    pub max_full_page_height: u32,
    /// The network counts as idle after this long without a request in flight.
    pub network_quiet: Duration,
    /// Longest wait for network idle after the load event; pages that poll or stream never
    /// go idle, so the capture goes ahead after this (and says so in [`Capture`](crate::Capture)).
    pub max_network_wait: Duration,
    /// Accept invalid TLS certificates of the captured site (off: a page that a browser would
    /// refuse is not silently captured).
    pub ignore_https_errors: bool,
    /// The egress policy for every request Chromium makes.
    pub egress: Arc<dyn EgressCheck>,
    /// Route remote browsers' connections through the per-capture egress proxy too. The proxy
    /// listens on 127.0.0.1, so only a remote browser on this host (another process, a
    /// sidecar sharing the network namespace) can use it. Without it, remote browsers are
    /// guarded by request interception alone, which does not see WebSocket handshakes;
    /// give them network-level egress rules of their own.
    pub proxy_remote: bool,
    /// Test hook: make the request-interception setup fail, to prove that captures then fail
    /// closed instead of running unguarded.
    #[doc(hidden)]
    pub break_interception: bool,
}

impl PoolConfig {
    /// Two local Chromium instances of [`default_executable`], three pages at a time each,
    /// least-connections, and the given egress policy. (Two browsers rather than one with
    /// more pages: each browser process runs its DevTools and navigation work on one main
    /// thread, which becomes the limit first, and a crash then takes out half the capacity,
    /// not all of it; three pages each keep both cores busy while pages wait on the network.
    /// 2 × 3 was the fastest measured, see `docs/bench/capture.md`.)
    #[must_use]
    pub fn new(egress: Arc<dyn EgressCheck>) -> Self {
        Self {
            instances: vec![BrowserSource::Local, BrowserSource::Local],
            executable: default_executable(),
            extra_args: Vec::new(),
            pages_per_browser: 3,
            strategy: Strategy::LeastConnections,
            breaker: BreakerConfig {
                window: 10,
                minimum_calls: 5,
                failure_rate: 0.5,
                consecutive_failures: Some(3),
                slow_call: None,
                call_timeout: Some(Duration::from_secs(90)),
                reset_timeout: Duration::from_secs(10),
                half_open_probes: 3,
            },
            launch_timeout: Duration::from_secs(20),
            health_interval: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(3),
            max_full_page_height: 16_384,
            network_quiet: Duration::from_millis(100),
            max_network_wait: Duration::from_secs(5),
            ignore_https_errors: false,
            egress,
            proxy_remote: false,
            break_interception: false,
        }
    }

    /// `n` local instances.
    #[must_use]
    pub fn with_local_instances(mut self, n: usize) -> Self {
        self.instances = vec![BrowserSource::Local; n];
        self
    }
}

/// Screen of a capture: the product viewports, at a fixed device scale factor of 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Screen {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) mobile: bool,
}

impl From<Viewport> for Screen {
    fn from(v: Viewport) -> Self {
        let (width, height) = v.size();
        Self {
            width,
            height,
            mobile: v.is_mobile(),
        }
    }
}

/// What to capture and how to stabilise it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureRequest {
    /// The page.
    pub url: Url,
    /// The screen size.
    pub viewport: Viewport,
    /// Capture the whole page (height from the layout, capped), not only the viewport.
    pub full_page: bool,
    /// CSS selectors of elements painted over with a solid box (dynamic content).
    pub mask: Vec<String>,
    /// CSS selectors of elements hidden with `visibility: hidden`.
    pub hide: Vec<String>,
    /// A CSS selector that must match before the capture.
    pub wait_for: Option<String>,
    /// Extra settle time before the capture.
    pub delay: Duration,
    /// Budget for navigation and settling (the page's load, network idle, `wait_for`).
    pub timeout: Duration,
}

impl CaptureRequest {
    /// A viewport capture of `url` with the default 30 s timeout.
    #[must_use]
    pub fn new(url: Url, viewport: Viewport) -> Self {
        Self {
            url,
            viewport,
            full_page: false,
            mask: Vec::new(),
            hide: Vec::new(),
            wait_for: None,
            delay: Duration::ZERO,
            timeout: Duration::from_secs(30),
        }
    }

    /// The capture a `visual-regression` scan of `url` asks for.
    #[must_use]
    pub fn from_scan(url: Url, options: &ScanOptions) -> Self {
        let visual = options.visual.clone().unwrap_or_default();
        Self {
            url,
            viewport: options.viewport,
            full_page: visual.full_page,
            mask: visual.mask,
            hide: visual.hide,
            wait_for: visual.wait_for,
            delay: Duration::from_millis(u64::from(visual.delay)),
            timeout: Duration::from_millis(u64::from(options.timeout_ms)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentinel_core::{CheckType, VisualOptions};

    #[test]
    fn a_scan_becomes_a_capture_request() {
        let options = ScanOptions {
            check_type: CheckType::VisualRegression,
            viewport: Viewport::Mobile,
            timeout_ms: 12_000,
            links: None,
            visual: Some(VisualOptions {
                full_page: true,
                mask: vec![".clock".into()],
                hide: vec!["#ad".into()],
                wait_for: Some("main".into()),
                delay: 250,
                ..VisualOptions::default()
            }),
        };
        let r = CaptureRequest::from_scan("http://127.0.0.1/".parse().unwrap(), &options);
        assert_eq!(r.viewport, Viewport::Mobile);
        assert!(r.full_page);
        assert_eq!(r.mask, vec![".clock"]);
        assert_eq!(r.hide, vec!["#ad"]);
        assert_eq!(r.wait_for.as_deref(), Some("main"));
        assert_eq!(r.delay, Duration::from_millis(250));
        assert_eq!(r.timeout, Duration::from_secs(12));
        assert_eq!(
            Screen::from(r.viewport),
            Screen {
                width: 375,
                height: 667,
                mobile: true
            }
        );
    }

    #[test]
    fn browser_sources_deserialise() {
        let v: Vec<BrowserSource> = serde_json::from_str(
            r#"[{"kind":"local"},
                {"kind":"remote","url":"ws://127.0.0.1:9222/devtools/browser/x"}]"#,
        )
        .unwrap();
        assert_eq!(v[0], BrowserSource::Local);
        assert!(matches!(&v[1], BrowserSource::Remote { url } if url.starts_with("ws://")));
    }
}
