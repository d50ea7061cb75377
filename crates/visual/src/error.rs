//! What can go wrong, in words an operator (and the scan's `error` field) can act on.

use std::time::Duration;

use serde::Serialize;

/// Why the pool could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The configuration cannot work.
    #[error("invalid browser pool configuration: {0}")]
    Config(String),
    /// No instance came up.
    #[error("no browser could be started: {0}")]
    NoBrowser(String),
}

/// Why a browser could not be launched or connected to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The executable could not be started.
    #[error("cannot start `{executable}`: {source}")]
    Spawn {
        /// The executable.
        executable: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Chromium exited or closed its output before printing its DevTools URL.
    #[error("Chromium exited before it was ready: {stderr_tail}")]
    Exited {
        /// The last lines it wrote to stderr.
        stderr_tail: String,
    },
    /// Chromium did not print its DevTools URL in time.
    #[error("Chromium did not start within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The DevTools connection failed.
    #[error("cannot connect to the DevTools endpoint: {0}")]
    Connect(String),
    /// A temporary profile directory could not be created.
    #[error("cannot create a browser profile directory: {0}")]
    Profile(#[source] std::io::Error),
}

/// The class of a [`CaptureError`], for metrics labels, retry decisions and API codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CaptureErrorKind {
    /// The request itself is wrong (bad URL scheme, invalid selector).
    InvalidRequest,
    /// The egress policy refused the page's URL.
    BlockedByPolicy,
    /// Chromium could not load the page (DNS, refused connection, TLS …).
    Navigation,
    /// The page did not load in time (the browser itself was responsive).
    NavigationTimeout,
    /// The `wait_for` selector never matched.
    WaitForTimeout,
    /// The page's renderer process crashed (the browser itself kept working).
    PageCrashed,
    /// The browser process died during the capture.
    BrowserCrashed,
    /// The browser stopped answering and was killed.
    BrowserHung,
    /// No browser can take the capture now (breakers open or browsers restarting).
    Unavailable,
    /// All page slots stayed busy for the whole timeout.
    Busy,
    /// Request interception could not be set up, so nothing was loaded (fail closed).
    Interception,
    /// Unexpected answer from the DevTools protocol.
    Protocol,
    /// The pool is shutting down.
    ShuttingDown,
}

impl CaptureErrorKind {
    /// The snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::BlockedByPolicy => "blocked_by_policy",
            Self::Navigation => "navigation",
            Self::NavigationTimeout => "navigation_timeout",
            Self::WaitForTimeout => "wait_for_timeout",
            Self::PageCrashed => "page_crashed",
            Self::BrowserCrashed => "browser_crashed",
            Self::BrowserHung => "browser_hung",
            Self::Unavailable => "unavailable",
            Self::Busy => "busy",
            Self::Interception => "interception",
            Self::Protocol => "protocol",
            Self::ShuttingDown => "shutting_down",
        }
    }

    /// Whether trying again later (on a fresh browser, after the breaker's reset timeout) may
    /// succeed: true for browser trouble and capacity, false for the page's or request's own
    /// faults.
    #[must_use]
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::BrowserCrashed
                | Self::BrowserHung
                | Self::PageCrashed
                | Self::Unavailable
                | Self::Busy
                | Self::Protocol
                | Self::Interception
        )
    }
}

/// Why a capture failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The request is wrong.
    #[error("invalid capture request: {0}")]
    InvalidRequest(String),
    /// The page's URL is refused by the egress policy.
    #[error("`{url}` is blocked by the egress policy: {reason}")]
    BlockedByPolicy {
        /// The URL.
        url: String,
        /// Which rule.
        reason: String,
    },
    /// Chromium could not load the page.
    #[error("could not load `{url}`: {}{error}", http_status(*status))]
    Navigation {
        /// The URL.
        url: String,
        /// The HTTP status, when the server answered (an error status with an empty body).
        status: Option<u16>,
        /// Chromium's error text (`net::ERR_CONNECTION_REFUSED` …).
        error: String,
    },
    /// The page did not finish loading within the timeout.
    #[error("`{url}` did not load within {} ms", after.as_millis())]
    NavigationTimeout {
        /// The URL.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// The `wait_for` selector did not match within the timeout.
    #[error("selector `{selector}` did not appear within {} ms", after.as_millis())]
    WaitForTimeout {
        /// The selector.
        selector: String,
        /// The timeout.
        after: Duration,
    },
    /// The page's renderer crashed (out of memory, a Chromium bug the page triggers …).
    #[error("the page `{url}` crashed its renderer")]
    PageCrashed {
        /// The URL.
        url: String,
    },
    /// The browser died during the capture.
    #[error("browser `{browser}` crashed during the capture")]
    BrowserCrashed {
        /// The instance.
        browser: String,
    },
    /// The browser stopped answering; it was killed and is being replaced.
    #[error("browser `{browser}` stopped responding and was killed")]
    BrowserHung {
        /// The instance.
        browser: String,
    },
    /// No instance can take a capture now.
    #[error("no browser available: {reason}")]
    Unavailable {
        /// Why (breakers open, browsers restarting), with the shortest wait if known.
        reason: String,
        /// When a breaker will next let a probe through.
        retry_after: Option<Duration>,
    },
    /// Every page slot stayed taken for the whole timeout.
    #[error("all browser pages stayed busy for {} ms", waited.as_millis())]
    Busy {
        /// How long the capture waited.
        waited: Duration,
    },
    /// Request interception could not be set up; the page was not loaded.
    #[error("request interception could not be set up, page not loaded: {0}")]
    Interception(String),
    /// An unexpected DevTools protocol error.
    #[error("DevTools protocol error: {0}")]
    Protocol(String),
    /// The pool is shutting down.
    #[error("the browser pool is shutting down")]
    ShuttingDown,
}

fn http_status(status: Option<u16>) -> String {
    status.map(|s| format!("HTTP {s}, ")).unwrap_or_default()
}

impl CaptureError {
    /// The class of the error.
    #[must_use]
    pub fn kind(&self) -> CaptureErrorKind {
        match self {
            Self::InvalidRequest(_) => CaptureErrorKind::InvalidRequest,
            Self::BlockedByPolicy { .. } => CaptureErrorKind::BlockedByPolicy,
            Self::Navigation { .. } => CaptureErrorKind::Navigation,
            Self::NavigationTimeout { .. } => CaptureErrorKind::NavigationTimeout,
            Self::WaitForTimeout { .. } => CaptureErrorKind::WaitForTimeout,
            Self::PageCrashed { .. } => CaptureErrorKind::PageCrashed,
            Self::BrowserCrashed { .. } => CaptureErrorKind::BrowserCrashed,
            Self::BrowserHung { .. } => CaptureErrorKind::BrowserHung,
            Self::Unavailable { .. } => CaptureErrorKind::Unavailable,
            Self::Busy { .. } => CaptureErrorKind::Busy,
            Self::Interception(_) => CaptureErrorKind::Interception,
            Self::Protocol(_) => CaptureErrorKind::Protocol,
            Self::ShuttingDown => CaptureErrorKind::ShuttingDown,
        }
    }

    /// Whether the browser (not the page or the request) is at fault, i.e. whether the failure
    /// counts against the instance's circuit breaker.
    pub(crate) fn blames_browser(&self) -> bool {
        matches!(
            self.kind(),
            CaptureErrorKind::BrowserCrashed
                | CaptureErrorKind::BrowserHung
                | CaptureErrorKind::Protocol
                | CaptureErrorKind::Interception
        )
    }

    /// Whether the browser itself is gone (crashed, or killed for hanging), so that its
    /// instance's breaker opens at once rather than after enough failures.
    pub(crate) fn lost_browser(&self) -> bool {
        matches!(
            self.kind(),
            CaptureErrorKind::BrowserCrashed | CaptureErrorKind::BrowserHung
        )
    }
}
