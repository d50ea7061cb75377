//! The three strategies on fake endpoints. Picks are deterministic (rotation and smooth weighted
//! round-robin, no random numbers) and latencies are either given explicitly or measured on
//! tokio's paused clock, so the distributions below are exact on every run.

use std::time::Duration;

use sentinel_resilience::{LoadBalancer, Outcome, Strategy};
use tokio::time::sleep;

/// A fake endpoint: how long it takes and whether it fails.
#[derive(Clone, Copy, Debug)]
struct Endpoint {
    latency: Duration,
    fails: bool,
}

const fn ep(ms: u64) -> Endpoint {
    Endpoint {
        latency: Duration::from_millis(ms),
        fails: false,
    }
}

/// Serves `n` sequential requests through the balancer (each endpoint as configured in
/// `endpoints`, which the balancer indexes) and counts where they went.
fn serve(lb: &LoadBalancer<usize>, endpoints: &[Endpoint], n: usize) -> Vec<usize> {
    let mut counts = vec![0; lb.len()];
    for _ in 0..n {
        let lease = lb.pick().unwrap();
        let e = endpoints[*lease];
        counts[lease.index()] += 1;
        let outcome = if e.fails {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        lease.finish(outcome, e.latency);
    }
    counts
}

#[test]
fn round_robin_takes_each_backend_in_turn() {
    let lb = LoadBalancer::new(0..3, Strategy::RoundRobin);
    let order: Vec<usize> = (0..6).map(|_| *lb.pick().unwrap()).collect();
    assert_eq!(order, vec![0, 1, 2, 0, 1, 2]);
    // Latency does not matter to round-robin.
    let counts = serve(&lb, &[ep(1), ep(50), ep(500)], 300);
    assert_eq!(counts, vec![100, 100, 100]);
}

#[test]
fn round_robin_skips_ineligible_backends() {
    let lb = LoadBalancer::new(0..3, Strategy::RoundRobin);
    let picks: Vec<usize> = (0..6)
        .map(|_| *lb.pick_where(|&b| b != 1).unwrap())
        .collect();
    assert_eq!(picks.iter().filter(|&&b| b == 1).count(), 0);
    assert_eq!(picks.iter().filter(|&&b| b == 0).count(), 3);
    assert!(lb.pick_where(|_| false).is_none());
}

#[test]
fn least_connections_prefers_idle_backends() {
    let lb = LoadBalancer::new(0..3, Strategy::LeastConnections);
    let a = lb.pick().unwrap();
    let b = lb.pick().unwrap();
    let c = lb.pick().unwrap();
    // One lease each, on three different backends.
    let mut held = vec![*a, *b, *c];
    held.sort_unstable();
    assert_eq!(held, vec![0, 1, 2]);
    // Backend 1 finishes: the next lease must go there, whichever turn it is.
    let freed = if *a == 1 {
        a
    } else if *b == 1 {
        b
    } else {
        c
    };
    freed.success();
    for _ in 0..5 {
        let next = lb.pick().unwrap();
        assert_eq!(*next, 1, "the only idle backend");
        drop(next);
    }
    assert_eq!(lb.in_flight(1), 0);
    assert_eq!(lb.in_flight(0) + lb.in_flight(2), 2);
}

#[test]
fn least_connections_spreads_ties_evenly() {
    let lb = LoadBalancer::new(0..3, Strategy::LeastConnections);
    let counts = serve(&lb, &[ep(1), ep(1), ep(1)], 300);
    assert_eq!(counts, vec![100, 100, 100]);
}

#[tokio::test(start_paused = true)]
async fn least_connections_sends_more_to_a_faster_backend_under_load() {
    // Six concurrent clients, each in a loop; backend 0 answers in 10 ms, backend 1 in 100 ms.
    // Least-connections sends a new request where fewer are waiting, i.e. mostly to the fast one.
    let lb = LoadBalancer::new(0..2, Strategy::LeastConnections);
    let latencies = [Duration::from_millis(10), Duration::from_millis(100)];
    let counts = parking_lot::Mutex::new([0usize; 2]);
    let client = || async {
        for _ in 0..50 {
            let lease = lb.pick().unwrap();
            counts.lock()[lease.index()] += 1;
            sleep(latencies[lease.index()]).await;
            lease.success();
        }
    };
    futures::future::join_all((0..6).map(|_| client())).await;
    let [fast, slow] = *counts.lock();
    assert_eq!(fast + slow, 300);
    assert!(fast > 4 * slow, "fast {fast}, slow {slow}");
}

#[test]
fn weighted_response_time_uses_its_weights() {
    let lb = LoadBalancer::new(0..3, Strategy::WeightedResponseTime);
    let endpoints = [ep(10), ep(10), ep(100)];
    // Learn.
    serve(&lb, &endpoints, 300);
    let counts = serve(&lb, &endpoints, 2100);
    // Weights 1/10 : 1/10 : 1/100 → 1000 : 1000 : 100 of 2100.
    assert!((980..=1020).contains(&counts[0]), "{counts:?}");
    assert!((980..=1020).contains(&counts[1]), "{counts:?}");
    assert!((80..=120).contains(&counts[2]), "{counts:?}");
    let snap = lb.snapshot();
    assert!((snap[2].weight - 100.0 / 2100.0).abs() < 0.005, "{snap:?}");
    assert!((snap[2].latency_ms.unwrap() - 100.0).abs() < 1e-6);
}

#[test]
fn weights_shift_away_from_a_failing_backend_and_recover() {
    let lb = LoadBalancer::new(0..3, Strategy::WeightedResponseTime);
    let mut endpoints = [ep(20), ep(20), ep(20)];
    let counts = serve(&lb, &endpoints, 300);
    assert_eq!(counts, vec![100, 100, 100], "equal endpoints, equal shares");

    // Backend 1 starts failing fast (errors must not look like speed).
    endpoints[1] = Endpoint {
        latency: Duration::from_millis(1),
        fails: true,
    };
    serve(&lb, &endpoints, 300);
    let counts = serve(&lb, &endpoints, 1000);
    assert!(counts[1] <= 40, "failing backend still got {counts:?}");
    assert!(lb.snapshot()[1].error_rate > 0.9);

    // It is healthy again: its floor share keeps sampling it, and it wins its traffic back.
    endpoints[1] = ep(20);
    serve(&lb, &endpoints, 3000);
    let counts = serve(&lb, &endpoints, 900);
    for c in &counts {
        assert!((270..=330).contains(c), "not recovered: {counts:?}");
    }
}

#[test]
fn weights_shift_away_from_a_slow_backend_and_recover() {
    let lb = LoadBalancer::new(0..2, Strategy::WeightedResponseTime);
    let mut endpoints = [ep(10), ep(10)];
    serve(&lb, &endpoints, 100);
    endpoints[0] = ep(200);
    serve(&lb, &endpoints, 500);
    let counts = serve(&lb, &endpoints, 1000);
    assert!(counts[0] <= 60, "slow backend still got {counts:?}");
    endpoints[0] = ep(10);
    serve(&lb, &endpoints, 2000);
    let counts = serve(&lb, &endpoints, 1000);
    assert!(
        (450..=550).contains(&counts[0]),
        "not recovered: {counts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn lease_measures_latency_from_the_pick() {
    let lb = LoadBalancer::new(["a", "b"], Strategy::WeightedResponseTime);
    for _ in 0..20 {
        let lease = lb.pick().unwrap();
        let d = if *lease == "a" { 5 } else { 50 };
        sleep(Duration::from_millis(d)).await;
        lease.success();
    }
    let snap = lb.snapshot();
    assert!((snap[0].latency_ms.unwrap() - 5.0).abs() < 0.5, "{snap:?}");
    assert!((snap[1].latency_ms.unwrap() - 50.0).abs() < 0.5, "{snap:?}");
    assert!(snap[0].weight > 0.85);
}

#[test]
fn a_dropped_lease_is_not_counted_as_an_outcome() {
    let lb = LoadBalancer::new(0..1, Strategy::WeightedResponseTime);
    let lease = lb.pick().unwrap();
    assert_eq!(lb.in_flight(0), 1);
    drop(lease);
    assert_eq!(lb.in_flight(0), 0);
    let snap = lb.snapshot();
    assert_eq!(snap[0].latency_ms, None);
    assert!(snap[0].error_rate.abs() < f64::EPSILON);
    assert_eq!(snap[0].picks, 1);
}
