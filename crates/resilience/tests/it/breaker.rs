//! Every transition of the breaker, driven with tokio's paused clock (`start_paused`): time only
//! moves when the test advances it or when every task is idle, so no assertion depends on how
//! fast the machine is.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use parking_lot::Mutex;
use sentinel_resilience::{
    BreakerConfig, BreakerError, BreakerState, CircuitBreaker, SlowCallRule, Transition,
    TransitionReason,
};
use tokio::sync::Notify;
use tokio::time::{advance, sleep};

/// The research notes' B1 configuration: window 20, minimum 10 calls, 50 % failures, slow
/// calls 80 % at 2 s, open 30 s, 3 probes.
fn b1() -> BreakerConfig {
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

#[derive(Debug)]
struct Boom;

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("boom")
    }
}

impl std::error::Error for Boom {}

async fn ok(b: &CircuitBreaker) -> Result<(), BreakerError<Boom>> {
    b.call(|| async { Ok(()) }).await
}

async fn fail(b: &CircuitBreaker) -> Result<(), BreakerError<Boom>> {
    b.call(|| async { Err(Boom) }).await
}

/// A breaker that records every transition.
fn recorded(config: BreakerConfig) -> (CircuitBreaker, Arc<Mutex<Vec<Transition>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let b = CircuitBreaker::new("dep", config)
        .unwrap()
        .with_transition_hook(move |t| sink.lock().push(t.clone()));
    (b, log)
}

async fn open_it(b: &CircuitBreaker) {
    for _ in 0..b.config().minimum_calls {
        let _ = fail(b).await;
    }
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn nine_failures_of_nine_calls_stay_closed_the_tenth_opens() {
    let (b, log) = recorded(b1());
    for _ in 0..9 {
        assert!(matches!(fail(&b).await, Err(BreakerError::Inner(Boom))));
    }
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "fewer calls than minimum_calls"
    );
    let _ = fail(&b).await;
    assert_eq!(b.state(), BreakerState::Open);
    let log = log.lock();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].from, log[0].to, log[0].reason),
        (
            BreakerState::Closed,
            BreakerState::Open,
            TransitionReason::FailureRate
        )
    );
}

#[tokio::test(start_paused = true)]
async fn alternating_success_and_failure_opens_it() {
    // The guide's consecutive-failure counter never trips on this sequence.
    let b = CircuitBreaker::new("dep", b1()).unwrap();
    for i in 0..9 {
        if i % 2 == 0 {
            let _ = fail(&b).await;
        } else {
            ok(&b).await.unwrap();
        }
    }
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "5 failures of 9 calls: below minimum_calls"
    );
    ok(&b).await.unwrap();
    assert_eq!(
        b.state(),
        BreakerState::Open,
        "5 failures of 10 calls = 50 %"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rate_below_the_threshold_keeps_it_closed() {
    let b = CircuitBreaker::new("dep", b1()).unwrap();
    // 2 failures in every 5 calls, spread out (S F S F S), for 200 calls: 40 % in every
    // window.
    for i in 0..200 {
        if i % 5 == 1 || i % 5 == 3 {
            let _ = fail(&b).await;
        } else {
            ok(&b).await.unwrap();
        }
    }
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.snapshot().failures, 80);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_it_without_any_error() {
    let (b, log) = recorded(b1());
    for _ in 0..10 {
        let r: Result<(), BreakerError<Boom>> = b
            .call(|| async {
                sleep(Duration::from_millis(2500)).await;
                Ok(())
            })
            .await;
        r.unwrap();
    }
    assert_eq!(b.state(), BreakerState::Open);
    let s = b.snapshot();
    assert_eq!((s.failures, s.successes), (0, 10));
    assert_eq!(log.lock()[0].reason, TransitionReason::SlowCallRate);
}

#[tokio::test(start_paused = true)]
async fn open_rejects_without_calling_and_says_when_to_retry() {
    let b = CircuitBreaker::new("dep", b1()).unwrap();
    open_it(&b).await;
    let calls = AtomicUsize::new(0);
    for _ in 0..50 {
        let r: Result<(), BreakerError<Boom>> = b
            .call(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .await;
        match r {
            Err(BreakerError::Rejected(rej)) => {
                assert_eq!(rej.state, BreakerState::Open);
                assert_eq!(rej.retry_after, Some(Duration::from_secs(30)));
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(b.snapshot().rejected, 50);
    advance(Duration::from_secs(29)).await;
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.snapshot().retry_after_ms, Some(1000));
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_three_probes_and_rejects_the_fourth() {
    let b = CircuitBreaker::new("dep", b1()).unwrap();
    open_it(&b).await;
    advance(Duration::from_secs(30)).await;
    assert_eq!(b.state(), BreakerState::HalfOpen);
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    let p3 = b.try_acquire().unwrap();
    assert!(p1.is_probe() && p2.is_probe() && p3.is_probe());
    let fourth = b.try_acquire().unwrap_err();
    assert_eq!(fourth.state, BreakerState::HalfOpen);
    assert_eq!(fourth.retry_after, None);
    assert_eq!(b.snapshot().probes_in_flight, 3);
    // Two successes are not enough to close it, and do not free a slot.
    p1.success();
    p2.success();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert!(b.try_acquire().is_err());
    p3.success();
    assert_eq!(b.state(), BreakerState::Closed);
    ok(&b).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn one_failed_probe_reopens_immediately() {
    let (b, log) = recorded(b1());
    open_it(&b).await;
    advance(Duration::from_secs(30)).await;
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    p1.success();
    p2.failure();
    assert_eq!(b.state(), BreakerState::Open);
    // A fresh reset timeout.
    assert_eq!(b.snapshot().retry_after_ms, Some(30_000));
    let reasons: Vec<_> = log.lock().iter().map(|t| (t.to, t.reason)).collect();
    assert_eq!(
        reasons,
        vec![
            (BreakerState::Open, TransitionReason::FailureRate),
            (
                BreakerState::HalfOpen,
                TransitionReason::ResetTimeoutElapsed
            ),
            (BreakerState::Open, TransitionReason::ProbeFailed),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_probe_reopens_it() {
    let b = CircuitBreaker::new("dep", b1()).unwrap();
    open_it(&b).await;
    advance(Duration::from_secs(30)).await;
    let r: Result<(), BreakerError<Boom>> = b
        .call(|| async {
            sleep(Duration::from_secs(3)).await;
            Ok(())
        })
        .await;
    r.unwrap();
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn full_cycle_closed_open_half_open_closed() {
    let (b, log) = recorded(b1());
    open_it(&b).await;
    advance(Duration::from_secs(30)).await;
    for _ in 0..3 {
        ok(&b).await.unwrap();
    }
    assert_eq!(b.state(), BreakerState::Closed);
    let states: Vec<_> = log.lock().iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        states,
        vec![
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed),
        ]
    );
    // The window starts empty again: nine failures do not reopen it.
    for _ in 0..9 {
        let _ = fail(&b).await;
    }
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.snapshot().opened, 1);
}

#[tokio::test(start_paused = true)]
async fn the_call_timeout_cancels_the_call() {
    struct DropFlag(Arc<AtomicUsize>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let b = CircuitBreaker::new("dep", b1()).unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let r: Result<(), BreakerError<Boom>> = b
        .call(|| {
            let flag = DropFlag(Arc::clone(&dropped));
            let finished = Arc::clone(&finished);
            async move {
                let _flag = flag;
                sleep(Duration::from_secs(60)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .await;
    assert!(
        matches!(r, Err(BreakerError::Timeout { after, .. }) if after == Duration::from_secs(5))
    );
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the future was dropped");
    advance(Duration::from_secs(120)).await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "and never ran to completion"
    );
    let s = b.snapshot();
    assert_eq!((s.failures, s.timeouts), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn two_hundred_callers_at_half_open_reach_the_dependency_three_times() {
    let b = CircuitBreaker::new("dep", b1()).unwrap();
    open_it(&b).await;
    advance(Duration::from_secs(30)).await;

    let reached = AtomicUsize::new(0);
    let release = Notify::new();
    let calls = (0..200).map(|_| {
        b.call(|| async {
            reached.fetch_add(1, Ordering::SeqCst);
            // Probes stay in flight until every caller has arrived.
            release.notified().await;
            Ok::<_, Boom>(())
        })
    });
    let all = join_all(calls);
    tokio::pin!(all);
    // Poll every caller once: probes park on `release`, the others are rejected at once.
    assert!(futures::poll!(&mut all).is_pending());
    assert_eq!(reached.load(Ordering::SeqCst), 3);
    assert_eq!(b.snapshot().rejected, 197);
    release.notify_waiters();
    let results = all.await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    let rejected = results
        .iter()
        .filter(|r| {
            matches!(r, Err(BreakerError::Rejected(rej)) if rej.state == BreakerState::HalfOpen)
        })
        .count();
    assert_eq!((admitted, rejected), (3, 197));
    assert_eq!(reached.load(Ordering::SeqCst), 3);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_gives_its_slot_back() {
    let b = CircuitBreaker::new("dep", b1()).unwrap();
    open_it(&b).await;
    advance(Duration::from_secs(30)).await;
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    let p3 = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    drop(p2);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    let p4 = b.try_acquire().unwrap();
    for p in [p1, p3, p4] {
        p.success();
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_outcome_from_before_a_transition_is_ignored() {
    let b = CircuitBreaker::new("dep", b1()).unwrap();
    let old = b.try_acquire().unwrap();
    b.trip();
    advance(Duration::from_secs(30)).await;
    assert_eq!(b.state(), BreakerState::HalfOpen);
    // A success of a call admitted while closed proves nothing about the half-open state.
    old.success();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.snapshot().probes_in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_rule_trips_before_the_minimum() {
    let config = BreakerConfig {
        consecutive_failures: Some(3),
        ..b1()
    };
    let (b, log) = recorded(config);
    let _ = fail(&b).await;
    let _ = fail(&b).await;
    ok(&b).await.unwrap();
    let _ = fail(&b).await;
    let _ = fail(&b).await;
    assert_eq!(b.state(), BreakerState::Closed);
    let _ = fail(&b).await;
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(log.lock()[0].reason, TransitionReason::ConsecutiveFailures);
}

#[tokio::test(start_paused = true)]
async fn errors_that_are_not_failures_count_as_successes() {
    let b = CircuitBreaker::new("dep", b1()).unwrap();
    for _ in 0..20 {
        let r: Result<(), BreakerError<u16>> = b
            .call_classified(|| async { Err(404) }, |status| *status >= 500)
            .await;
        assert!(matches!(r, Err(BreakerError::Inner(404))));
    }
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.snapshot().successes, 20);
}

#[tokio::test(start_paused = true)]
async fn trip_and_reset_are_manual_transitions() {
    let (b, log) = recorded(b1());
    b.trip();
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.state_hint(), BreakerState::Open);
    assert!(!b.would_admit());
    b.reset();
    assert_eq!(b.state(), BreakerState::Closed);
    assert!(b.would_admit());
    let reasons: Vec<_> = log.lock().iter().map(|t| t.reason).collect();
    assert_eq!(
        reasons,
        vec![TransitionReason::Tripped, TransitionReason::Reset]
    );
}

#[test]
fn snapshot_serialises_for_the_health_endpoint() {
    let b = CircuitBreaker::new("browser-0", b1()).unwrap();
    b.trip();
    let json = serde_json::to_value(b.snapshot()).unwrap();
    assert_eq!(json["name"], "browser-0");
    assert_eq!(json["state"], "open");
    assert_eq!(json["opened"], 1);
    assert!(json["retryAfterMs"].is_u64());
}
