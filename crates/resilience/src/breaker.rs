//! A circuit breaker: closed → open → half-open → closed, with the guide's mistakes fixed.
//!
//! The guide's breaker (and the research notes, rows B1/B2 of `reliability.md`) gets five
//! things wrong; each has a rule here:
//!
//! * **It counts consecutive failures**, so a dependency that fails every other call never
//!   trips it. Here the breaker keeps the outcomes of the last `window` calls and opens when
//!   at least `minimum_calls` of them are recorded and the failure share reaches
//!   `failure_rate` (the resilience4j/Hystrix rule). A consecutive-failure rule can be added
//!   on top (`consecutive_failures`) for dependencies that see little traffic.
//! * **Half-open lets every concurrent call through.** Here half-open admits exactly
//!   `half_open_probes` trial calls; every other caller is rejected at once, without touching
//!   the dependency (no thundering herd when the reset timeout elapses).
//! * **A failure in half-open does not re-open it.** Here any failed (or slow) probe re-opens
//!   the breaker immediately; it closes only after all of its probes succeeded.
//! * **The `Promise.race` timeout does not cancel the call.** Here the protected future is
//!   dropped when the call timeout fires, which cancels it (and whatever it owns).
//! * **There is no slow-call detection.** Here calls slower than a threshold can open the
//!   breaker by their share of the window, even when none of them fail.
//!
//! The state lives behind one short `parking_lot` mutex that is taken twice per call (admit,
//! record) and never across an `.await`; nothing is allocated per call. Calls admitted in one
//! state and finishing after a transition are ignored (each transition starts a new
//! generation), so a slow call that was admitted while closed cannot close a breaker that has
//! opened since.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::time::Instant;

/// Where a breaker is in its cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through; outcomes are counted.
    Closed,
    /// Calls are rejected without reaching the dependency until the reset timeout elapses.
    Open,
    /// A bounded number of probe calls go through; the rest are rejected.
    HalfOpen,
}

impl BreakerState {
    /// The name used in logs, JSON and metric labels.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The value of the `circuit_breaker_state{name}` gauge: 0 closed, 1 open, 2 half-open.
    #[must_use]
    pub const fn gauge(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }

    const fn from_gauge(v: u8) -> Self {
        match v {
            1 => Self::Open,
            2 => Self::HalfOpen,
            _ => Self::Closed,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Calls slower than `threshold` count as slow; when their share of the window reaches
/// `rate` (with at least `minimum_calls` recorded) the breaker opens, even without errors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlowCallRule {
    /// A call that takes at least this long is slow.
    pub threshold: Duration,
    /// Share of slow calls in the window (0 < rate <= 1) that opens the breaker.
    pub rate: f64,
}

/// How a breaker decides. The defaults are the research notes' (B1) proposal.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    /// How many of the most recent outcomes the rate rules look at (count-based window).
    pub window: u32,
    /// No rate rule applies before this many outcomes are in the window.
    pub minimum_calls: u32,
    /// Share of failures in the window (0 < rate <= 1) that opens the breaker.
    pub failure_rate: f64,
    /// Optionally also open after this many failures in a row, whatever the window says.
    pub consecutive_failures: Option<u32>,
    /// Optional slow-call rule.
    pub slow_call: Option<SlowCallRule>,
    /// Calls still running after this long are cancelled (dropped) and count as failures.
    pub call_timeout: Option<Duration>,
    /// How long the breaker stays open before it lets probes through.
    pub reset_timeout: Duration,
    /// Probe calls admitted in half-open; all of them must succeed to close the breaker.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: 20,
            minimum_calls: 10,
            failure_rate: 0.5,
            consecutive_failures: None,
            slow_call: None,
            call_timeout: Some(Duration::from_secs(30)),
            reset_timeout: Duration::from_secs(30),
            half_open_probes: 3,
        }
    }
}

/// A breaker configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BreakerConfigError {
    /// `window` is 0 or above 65 536.
    #[error("window must be between 1 and 65536 calls")]
    Window,
    /// `minimum_calls` is 0 or larger than the window.
    #[error("minimum_calls must be between 1 and the window size")]
    MinimumCalls,
    /// A rate is not in (0, 1].
    #[error("{0} must be a share in (0, 1]")]
    Rate(&'static str),
    /// `half_open_probes` is 0.
    #[error("half_open_probes must be at least 1")]
    Probes,
    /// `consecutive_failures` is `Some(0)`.
    #[error("consecutive_failures must be at least 1")]
    ConsecutiveFailures,
    /// A duration is zero.
    #[error("{0} must be longer than zero")]
    Duration(&'static str),
}

impl BreakerConfig {
    /// Checks that the configuration describes a breaker that can work.
    ///
    /// # Errors
    /// The first rule the configuration breaks.
    pub fn validate(&self) -> Result<(), BreakerConfigError> {
        let share = |r: f64| r > 0.0 && r <= 1.0;
        if self.window == 0 || self.window > 65_536 {
            return Err(BreakerConfigError::Window);
        }
        if self.minimum_calls == 0 || self.minimum_calls > self.window {
            return Err(BreakerConfigError::MinimumCalls);
        }
        if !share(self.failure_rate) {
            return Err(BreakerConfigError::Rate("failure_rate"));
        }
        if let Some(rule) = self.slow_call {
            if !share(rule.rate) {
                return Err(BreakerConfigError::Rate("slow_call.rate"));
            }
            if rule.threshold.is_zero() {
                return Err(BreakerConfigError::Duration("slow_call.threshold"));
            }
        }
        if self.half_open_probes == 0 {
            return Err(BreakerConfigError::Probes);
        }
        if self.consecutive_failures == Some(0) {
            return Err(BreakerConfigError::ConsecutiveFailures);
        }
        if self.call_timeout.is_some_and(|t| t.is_zero()) {
            return Err(BreakerConfigError::Duration("call_timeout"));
        }
        if self.reset_timeout.is_zero() {
            return Err(BreakerConfigError::Duration("reset_timeout"));
        }
        Ok(())
    }
}

/// Why a breaker changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionReason {
    /// The failure share of the window reached `failure_rate`.
    FailureRate,
    /// The slow-call share of the window reached the slow-call rate.
    SlowCallRate,
    /// `consecutive_failures` failures in a row.
    ConsecutiveFailures,
    /// The reset timeout elapsed; probes may go through.
    ResetTimeoutElapsed,
    /// A probe failed, timed out or was slow.
    ProbeFailed,
    /// Every probe succeeded.
    ProbesSucceeded,
    /// [`CircuitBreaker::trip`] was called (e.g. the dependency was seen to crash).
    Tripped,
    /// [`CircuitBreaker::reset`] was called.
    Reset,
}

impl TransitionReason {
    /// The name used in logs and JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FailureRate => "failure_rate",
            Self::SlowCallRate => "slow_call_rate",
            Self::ConsecutiveFailures => "consecutive_failures",
            Self::ResetTimeoutElapsed => "reset_timeout_elapsed",
            Self::ProbeFailed => "probe_failed",
            Self::ProbesSucceeded => "probes_succeeded",
            Self::Tripped => "tripped",
            Self::Reset => "reset",
        }
    }
}

/// A state change, as passed to the transition hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The breaker's name.
    pub name: Arc<str>,
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
    /// Why.
    pub reason: TransitionReason,
}

/// A call the breaker refused without running it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker `{name}` is {state}: call rejected{}", retry_hint(*retry_after))]
pub struct Rejected {
    /// The breaker's name.
    pub name: Arc<str>,
    /// [`BreakerState::Open`], or [`BreakerState::HalfOpen`] when all probes are taken.
    pub state: BreakerState,
    /// When the breaker will let probes through (open state only).
    pub retry_after: Option<Duration>,
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (probes allowed in {} ms)", d.as_millis()),
        None => String::new(),
    }
}

/// What a call through a breaker can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BreakerError<E> {
    /// The breaker did not run the call.
    #[error(transparent)]
    Rejected(#[from] Rejected),
    /// The call ran longer than the call timeout and was cancelled.
    #[error("call through circuit breaker `{name}` timed out after {} ms", after.as_millis())]
    Timeout {
        /// The breaker's name.
        name: Arc<str>,
        /// The call timeout.
        after: Duration,
    },
    /// The call ran and failed.
    #[error(transparent)]
    Inner(E),
}

impl<E> BreakerError<E> {
    /// The call's own error, if the call ran and failed.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(e) => Some(e),
            _ => None,
        }
    }
}

/// Counters and state of a breaker at one moment (for `/health/performance` and metrics).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerSnapshot {
    /// The breaker's name.
    pub name: String,
    /// Current state.
    pub state: BreakerState,
    /// Outcomes currently in the window.
    pub window_calls: u32,
    /// Failures among them.
    pub window_failures: u32,
    /// Slow calls among them.
    pub window_slow: u32,
    /// Failures in a row (closed state).
    pub consecutive_failures: u32,
    /// Probes running now (half-open state).
    pub probes_in_flight: u32,
    /// Milliseconds until probes are allowed (open state).
    pub retry_after_ms: Option<u64>,
    /// Calls admitted since creation.
    pub admitted: u64,
    /// Calls rejected since creation.
    pub rejected: u64,
    /// Calls recorded as successes since creation.
    pub successes: u64,
    /// Calls recorded as failures since creation (timeouts included).
    pub failures: u64,
    /// Calls cancelled by the call timeout since creation.
    pub timeouts: u64,
    /// Times the breaker opened since creation.
    pub opened: u64,
}

type Hook = Arc<dyn Fn(&Transition) + Send + Sync>;

/// A circuit breaker around one dependency (one browser, the database, Redis …).
///
/// ```
/// # use sentinel_resilience::{BreakerConfig, BreakerError, CircuitBreaker};
/// # async fn demo() {
/// let breaker = CircuitBreaker::new("redis", BreakerConfig::default()).unwrap();
/// let r: Result<u32, BreakerError<std::io::Error>> = breaker.call(|| async { Ok(7) }).await;
/// assert_eq!(r.unwrap(), 7);
/// # }
/// ```
pub struct CircuitBreaker {
    name: Arc<str>,
    config: BreakerConfig,
    core: Mutex<Core>,
    /// The last state written under the lock, readable without it (gauges, dashboards).
    state_hint: AtomicU8,
    hook: Option<Hook>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &self.state_hint())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    /// A closed breaker named `name` (the `name` label of its metrics).
    ///
    /// # Errors
    /// The configuration is invalid (see [`BreakerConfig::validate`]).
    pub fn new(
        name: impl Into<Arc<str>>,
        config: BreakerConfig,
    ) -> Result<Self, BreakerConfigError> {
        config.validate()?;
        let name = name.into();
        let breaker = Self {
            core: Mutex::new(Core::new(&config)),
            name,
            config,
            state_hint: AtomicU8::new(BreakerState::Closed.gauge()),
            hook: None,
        };
        breaker.export_state(BreakerState::Closed);
        Ok(breaker)
    }

    /// Calls `hook` after every state change (outside the breaker's lock, so the hook may call
    /// back into the breaker).
    #[must_use]
    pub fn with_transition_hook(
        mut self,
        hook: impl Fn(&Transition) + Send + Sync + 'static,
    ) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// The breaker's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration it was built with.
    #[must_use]
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state (an open breaker whose reset timeout elapsed reports half-open).
    #[must_use]
    pub fn state(&self) -> BreakerState {
        let now = Instant::now();
        let (state, transition) = {
            let mut core = self.core.lock();
            let t = core.refresh(now);
            (core.state, t)
        };
        self.publish(transition);
        state
    }

    /// The state as last written, without taking the lock or looking at the clock.
    #[must_use]
    pub fn state_hint(&self) -> BreakerState {
        BreakerState::from_gauge(self.state_hint.load(Ordering::Relaxed))
    }

    /// Whether a call made now would be admitted (a hint for load balancers choosing among
    /// several breakers; the call itself may still be rejected if others get there first).
    #[must_use]
    pub fn would_admit(&self) -> bool {
        let now = Instant::now();
        let core = self.core.lock();
        match core.state {
            BreakerState::Closed => true,
            BreakerState::Open => now >= core.open_until,
            BreakerState::HalfOpen => core.probes_admitted < self.config.half_open_probes,
        }
    }

    /// Runs `f` through the breaker: rejected at once when open (or when half-open with all
    /// probes taken), cancelled at the call timeout; every `Err` counts as a failure.
    ///
    /// # Errors
    /// [`BreakerError::Rejected`] without calling `f`, [`BreakerError::Timeout`] when `f` was
    /// cancelled, [`BreakerError::Inner`] with `f`'s own error.
    pub async fn call<F, Fut, T, E>(&self, f: F) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_classified(f, |_| true).await
    }

    /// Like [`call`](Self::call), but only errors for which `is_failure` says `true` count
    /// against the dependency; the others (a 404, a refused URL …) prove it answered and count
    /// as successes.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub async fn call_classified<F, Fut, T, E, C>(
        &self,
        f: F,
        is_failure: C,
    ) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: FnOnce(&E) -> bool,
    {
        let permit = self.try_acquire()?;
        let result = match self.config.call_timeout {
            Some(limit) => match tokio::time::timeout(limit, f()).await {
                Ok(r) => r,
                Err(_elapsed) => {
                    permit.timed_out();
                    return Err(BreakerError::Timeout {
                        name: Arc::clone(&self.name),
                        after: limit,
                    });
                }
            },
            None => f().await,
        };
        match result {
            Ok(v) => {
                permit.success();
                Ok(v)
            }
            Err(e) => {
                if is_failure(&e) {
                    permit.failure();
                } else {
                    permit.success();
                }
                Err(BreakerError::Inner(e))
            }
        }
    }

    /// Asks to make one call by hand: the caller runs it, enforces the call timeout itself
    /// ([`BreakerConfig::call_timeout`]), and reports with [`Permit::success`] or
    /// [`Permit::failure`]. A permit dropped without a report releases its slot and counts as
    /// neither (the caller gave up, the dependency did nothing wrong).
    ///
    /// # Errors
    /// [`Rejected`] when the breaker is open or all half-open probes are taken.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let now = Instant::now();
        let (admission, transition) = {
            let mut core = self.core.lock();
            core.admit(now, &self.config)
        };
        self.publish(transition);
        match admission {
            Ok(ticket) => Ok(Permit {
                breaker: self,
                ticket,
                started: now,
                done: false,
            }),
            Err(retry_after) => Err(Rejected {
                name: Arc::clone(&self.name),
                state: if retry_after.is_some() {
                    BreakerState::Open
                } else {
                    BreakerState::HalfOpen
                },
                retry_after,
            }),
        }
    }

    /// Opens the breaker now, whatever its counts say (the dependency was seen to crash or
    /// hang); probes are allowed after the reset timeout as usual.
    pub fn trip(&self) {
        let now = Instant::now();
        let t = self
            .core
            .lock()
            .open(now, &self.config, TransitionReason::Tripped);
        self.publish(t);
    }

    /// Closes the breaker now and forgets its window.
    pub fn reset(&self) {
        let t = self.core.lock().close(TransitionReason::Reset);
        self.publish(t);
    }

    /// State and counters now.
    #[must_use]
    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = Instant::now();
        let (snap, transition) = {
            let mut core = self.core.lock();
            let t = core.refresh(now);
            let retry_after_ms = (core.state == BreakerState::Open).then(|| {
                u64::try_from(core.open_until.saturating_duration_since(now).as_millis())
                    .unwrap_or(u64::MAX)
            });
            let snap = BreakerSnapshot {
                name: self.name.to_string(),
                state: core.state,
                window_calls: core.window.len,
                window_failures: core.window.failures,
                window_slow: core.window.slow,
                consecutive_failures: core.consecutive_failures,
                probes_in_flight: core.probes_in_flight,
                retry_after_ms,
                admitted: core.totals.admitted,
                rejected: core.totals.rejected,
                successes: core.totals.successes,
                failures: core.totals.failures,
                timeouts: core.totals.timeouts,
                opened: core.totals.opened,
            };
            (snap, t)
        };
        self.publish(transition);
        snap
    }

    fn finish(&self, ticket: Ticket, started: Instant, report: Report) {
        let now = Instant::now();
        let slow = self
            .config
            .slow_call
            .is_some_and(|rule| now.saturating_duration_since(started) >= rule.threshold);
        let t = self
            .core
            .lock()
            .record(ticket, report, slow, now, &self.config);
        self.publish(t);
    }

    fn publish(&self, transition: Option<Transition0>) {
        let Some(t) = transition else { return };
        self.state_hint.store(t.to.gauge(), Ordering::Relaxed);
        self.export_state(t.to);
        match t.to {
            BreakerState::Open => tracing::warn!(
                breaker = %self.name, from = %t.from, reason = t.reason.as_str(),
                "circuit breaker opened"
            ),
            _ => tracing::info!(
                breaker = %self.name, from = %t.from, to = %t.to, reason = t.reason.as_str(),
                "circuit breaker state changed"
            ),
        }
        if let Some(hook) = &self.hook {
            hook(&Transition {
                name: Arc::clone(&self.name),
                from: t.from,
                to: t.to,
                reason: t.reason,
            });
        }
    }

    fn export_state(&self, state: BreakerState) {
        metrics::gauge!("circuit_breaker_state", "name" => self.name.to_string())
            .set(f64::from(state.gauge()));
    }
}

/// Permission to make one call through a breaker; see [`CircuitBreaker::try_acquire`].
#[must_use = "a permit reports nothing unless `success` or `failure` is called"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    ticket: Ticket,
    started: Instant,
    done: bool,
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.breaker.name)
            .field("probe", &self.ticket.probe)
            .finish_non_exhaustive()
    }
}

impl Permit<'_> {
    /// Whether this call is a half-open probe.
    #[must_use]
    pub fn is_probe(&self) -> bool {
        self.ticket.probe
    }

    /// The call succeeded (it may still count as slow).
    pub fn success(mut self) {
        self.report(Report::Success);
    }

    /// The call failed.
    pub fn failure(mut self) {
        self.report(Report::Failure);
    }

    /// The call was cancelled by its timeout (a failure).
    pub fn timed_out(mut self) {
        self.report(Report::Timeout);
    }

    fn report(&mut self, report: Report) {
        self.done = true;
        self.breaker.finish(self.ticket, self.started, report);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.core.lock().release(self.ticket);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The state machine, free of clocks and locks so that it can be driven step by step in tests.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Report {
    Success,
    Failure,
    Timeout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ticket {
    generation: u64,
    probe: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Transition0 {
    from: BreakerState,
    to: BreakerState,
    reason: TransitionReason,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Totals {
    admitted: u64,
    rejected: u64,
    successes: u64,
    failures: u64,
    timeouts: u64,
    opened: u64,
}

const FAILED: u8 = 1;
const SLOW: u8 = 2;

/// The last `cap` outcomes, with running counts so that no rule ever scans the ring.
#[derive(Debug)]
struct Window {
    ring: Box<[u8]>,
    head: usize,
    len: u32,
    failures: u32,
    slow: u32,
}

impl Window {
    fn new(cap: u32) -> Self {
        Self {
            ring: vec![0; cap as usize].into_boxed_slice(),
            head: 0,
            len: 0,
            failures: 0,
            slow: 0,
        }
    }

    fn push(&mut self, code: u8) {
        if self.len as usize == self.ring.len() {
            let old = self.ring[self.head];
            self.failures -= u32::from(old & FAILED != 0);
            self.slow -= u32::from(old & SLOW != 0);
        } else {
            self.len += 1;
        }
        self.ring[self.head] = code;
        self.failures += u32::from(code & FAILED != 0);
        self.slow += u32::from(code & SLOW != 0);
        self.head = (self.head + 1) % self.ring.len();
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
        self.failures = 0;
        self.slow = 0;
    }
}

#[derive(Debug)]
struct Core {
    state: BreakerState,
    generation: u64,
    window: Window,
    consecutive_failures: u32,
    open_until: Instant,
    probes_admitted: u32,
    probes_in_flight: u32,
    probe_successes: u32,
    totals: Totals,
}

impl Core {
    fn new(config: &BreakerConfig) -> Self {
        Self {
            state: BreakerState::Closed,
            generation: 0,
            window: Window::new(config.window),
            consecutive_failures: 0,
            open_until: Instant::now(),
            probes_admitted: 0,
            probes_in_flight: 0,
            probe_successes: 0,
            totals: Totals::default(),
        }
    }

    fn set_state(&mut self, to: BreakerState, reason: TransitionReason) -> Option<Transition0> {
        let from = self.state;
        self.state = to;
        self.generation += 1;
        self.probes_admitted = 0;
        self.probes_in_flight = 0;
        self.probe_successes = 0;
        Some(Transition0 { from, to, reason })
    }

    fn open(
        &mut self,
        now: Instant,
        config: &BreakerConfig,
        reason: TransitionReason,
    ) -> Option<Transition0> {
        self.open_until = now + config.reset_timeout;
        self.totals.opened += 1;
        self.window.clear();
        self.consecutive_failures = 0;
        self.set_state(BreakerState::Open, reason)
    }

    fn close(&mut self, reason: TransitionReason) -> Option<Transition0> {
        self.window.clear();
        self.consecutive_failures = 0;
        if self.state == BreakerState::Closed {
            return None;
        }
        self.set_state(BreakerState::Closed, reason)
    }

    /// Open → half-open once the reset timeout has elapsed.
    fn refresh(&mut self, now: Instant) -> Option<Transition0> {
        if self.state == BreakerState::Open && now >= self.open_until {
            self.set_state(
                BreakerState::HalfOpen,
                TransitionReason::ResetTimeoutElapsed,
            )
        } else {
            None
        }
    }

    /// `Err(Some(retry_after))` when open, `Err(None)` when half-open and full.
    fn admit(
        &mut self,
        now: Instant,
        config: &BreakerConfig,
    ) -> (Result<Ticket, Option<Duration>>, Option<Transition0>) {
        let transition = self.refresh(now);
        let admission = match self.state {
            BreakerState::Closed => Ok(Ticket {
                generation: self.generation,
                probe: false,
            }),
            BreakerState::Open => Err(Some(self.open_until.saturating_duration_since(now))),
            BreakerState::HalfOpen if self.probes_admitted < config.half_open_probes => {
                self.probes_admitted += 1;
                self.probes_in_flight += 1;
                Ok(Ticket {
                    generation: self.generation,
                    probe: true,
                })
            }
            BreakerState::HalfOpen => Err(None),
        };
        match admission {
            Ok(_) => self.totals.admitted += 1,
            Err(_) => self.totals.rejected += 1,
        }
        (admission, transition)
    }

    /// A permit was dropped without a report: give its probe slot back.
    fn release(&mut self, ticket: Ticket) {
        if ticket.probe && ticket.generation == self.generation {
            self.probes_admitted -= 1;
            self.probes_in_flight -= 1;
        }
    }

    fn record(
        &mut self,
        ticket: Ticket,
        report: Report,
        slow: bool,
        now: Instant,
        config: &BreakerConfig,
    ) -> Option<Transition0> {
        let failed = report != Report::Success;
        match report {
            Report::Success => self.totals.successes += 1,
            Report::Failure => self.totals.failures += 1,
            Report::Timeout => {
                self.totals.failures += 1;
                self.totals.timeouts += 1;
            }
        }
        if ticket.generation != self.generation {
            // Admitted before the last transition: its outcome says nothing about the
            // state the breaker is in now.
            return None;
        }
        if ticket.probe {
            self.probes_in_flight -= 1;
            if failed || slow {
                return self.open(now, config, TransitionReason::ProbeFailed);
            }
            self.probe_successes += 1;
            if self.probe_successes >= config.half_open_probes {
                return self.close(TransitionReason::ProbesSucceeded);
            }
            return None;
        }
        // Closed.
        self.window
            .push(if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 });
        self.consecutive_failures = if failed {
            self.consecutive_failures + 1
        } else {
            0
        };
        let reason = self.rule_broken(config)?;
        self.open(now, config, reason)
    }

    fn rule_broken(&self, config: &BreakerConfig) -> Option<TransitionReason> {
        if config
            .consecutive_failures
            .is_some_and(|n| self.consecutive_failures >= n)
        {
            return Some(TransitionReason::ConsecutiveFailures);
        }
        if self.window.len < config.minimum_calls {
            return None;
        }
        let calls = f64::from(self.window.len);
        if f64::from(self.window.failures) >= config.failure_rate * calls {
            return Some(TransitionReason::FailureRate);
        }
        if config
            .slow_call
            .is_some_and(|rule| f64::from(self.window.slow) >= rule.rate * calls)
        {
            return Some(TransitionReason::SlowCallRate);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    fn b1() -> BreakerConfig {
        // The research notes' B1 configuration.
        BreakerConfig {
            window: 20,
            minimum_calls: 10,
            failure_rate: 0.5,
            consecutive_failures: None,
            slow_call: Some(SlowCallRule {
                threshold: Duration::from_secs(2),
                rate: 0.8,
            }),
            call_timeout: Some(Duration::from_secs(5)),
            reset_timeout: Duration::from_secs(30),
            half_open_probes: 3,
        }
    }

    #[test]
    fn invalid_configs_are_refused() {
        let bad = [
            BreakerConfig { window: 0, ..b1() },
            BreakerConfig {
                minimum_calls: 21,
                ..b1()
            },
            BreakerConfig {
                failure_rate: 0.0,
                ..b1()
            },
            BreakerConfig {
                failure_rate: 1.5,
                ..b1()
            },
            BreakerConfig {
                half_open_probes: 0,
                ..b1()
            },
            BreakerConfig {
                consecutive_failures: Some(0),
                ..b1()
            },
            BreakerConfig {
                reset_timeout: Duration::ZERO,
                ..b1()
            },
            BreakerConfig {
                call_timeout: Some(Duration::ZERO),
                ..b1()
            },
        ];
        for c in bad {
            assert!(CircuitBreaker::new("x", c.clone()).is_err(), "{c:?}");
        }
        assert!(CircuitBreaker::new("x", b1()).is_ok());
    }

    #[test]
    fn window_evicts_the_oldest_outcome() {
        let mut w = Window::new(3);
        for code in [FAILED, FAILED | SLOW, 0, 0] {
            w.push(code);
        }
        assert_eq!((w.len, w.failures, w.slow), (3, 1, 1));
        w.push(0);
        assert_eq!((w.len, w.failures, w.slow), (3, 0, 0));
    }

    #[derive(Clone, Copy, Debug)]
    enum Op {
        /// Admit a call and report it at once.
        Call {
            fail: bool,
            slow: bool,
        },
        /// Admit a call and keep it running.
        Start,
        /// Report the oldest running call.
        Finish {
            fail: bool,
        },
        /// Drop the oldest running call without a report.
        Cancel,
        /// Let time pass.
        Advance(u64),
        Trip,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<bool>(), any::<bool>()).prop_map(|(fail, slow)| Op::Call { fail, slow }),
            2 => Just(Op::Start),
            2 => any::<bool>().prop_map(|fail| Op::Finish { fail }),
            1 => Just(Op::Cancel),
            2 => (0u64..40_000).prop_map(Op::Advance),
            1 => Just(Op::Trip),
        ]
    }

    proptest! {
        /// Drives the state machine with an explicit clock through arbitrary sequences and
        /// checks the invariants after every step.
        #[test]
        fn state_machine_invariants(ops in proptest::collection::vec(op(), 1..300)) {
            run_ops(&ops)?;
        }
    }

    fn run_ops(ops: &[Op]) -> Result<(), TestCaseError> {
        let config = b1();
        let mut core = Core::new(&config);
        let mut now = Instant::now();
        let mut running: std::collections::VecDeque<Ticket> = std::collections::VecDeque::new();
        for &op in ops {
            let before = core.state;
            let probe_successes_before = core.probe_successes;
            let mut transition = None;
            match op {
                Op::Call { fail, slow } => match core.admit(now, &config).0 {
                    Ok(t) => {
                        let report = if fail {
                            Report::Failure
                        } else {
                            Report::Success
                        };
                        transition = core.record(t, report, slow, now, &config);
                        if t.probe && (fail || slow) {
                            prop_assert_eq!(core.state, BreakerState::Open, "failed probe");
                        }
                    }
                    Err(retry) => {
                        // Rejections only happen when open, or half-open with every probe out.
                        prop_assert!(core.state != BreakerState::Closed);
                        if core.state == BreakerState::Open {
                            prop_assert!(retry.is_some());
                            prop_assert!(now < core.open_until);
                        } else {
                            prop_assert_eq!(core.probes_admitted, config.half_open_probes);
                        }
                    }
                },
                Op::Start => {
                    if let Ok(t) = core.admit(now, &config).0 {
                        running.push_back(t);
                    }
                }
                Op::Finish { fail } => {
                    if let Some(t) = running.pop_front() {
                        let report = if fail {
                            Report::Failure
                        } else {
                            Report::Success
                        };
                        transition = core.record(t, report, false, now, &config);
                    }
                }
                Op::Cancel => {
                    if let Some(t) = running.pop_front() {
                        core.release(t);
                    }
                }
                Op::Advance(ms) => now += Duration::from_millis(ms),
                Op::Trip => {
                    core.open(now, &config, TransitionReason::Tripped);
                }
            }
            prop_assert!(core.probes_in_flight <= core.probes_admitted);
            prop_assert!(core.probes_admitted <= config.half_open_probes);
            prop_assert!(core.window.len <= config.window);
            prop_assert!(core.window.failures <= core.window.len);
            prop_assert!(core.window.slow <= core.window.len);
            if core.state != BreakerState::HalfOpen {
                prop_assert_eq!(core.probes_admitted, 0);
            }
            if core.state == BreakerState::Closed && core.window.len >= config.minimum_calls {
                let calls = f64::from(core.window.len);
                prop_assert!(
                    f64::from(core.window.failures) < config.failure_rate * calls,
                    "closed with a failure rate at or above the threshold"
                );
            }
            if let Some(t) = transition
                && t.to == BreakerState::Closed
            {
                prop_assert_eq!(before, BreakerState::HalfOpen);
                prop_assert_eq!(
                    probe_successes_before + 1,
                    config.half_open_probes,
                    "closes only when the last of its probes succeeds"
                );
            }
            // Until the ring is full its outcomes sit at 0..len (a clear rewinds the head).
            let counted: u32 = core
                .window
                .ring
                .iter()
                .take(core.window.len as usize)
                .map(|c| u32::from(c & FAILED != 0))
                .sum();
            prop_assert_eq!(counted, core.window.failures);
        }
        Ok(())
    }
}
