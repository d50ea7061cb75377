//! Redis going away (killed, or frozen with SIGSTOP) and coming back: callers get
//! `Unavailable` instead of waiting, the breaker opens, the limiter counts per process
//! (bounded by its share of the fleet), and everything recovers by itself.

use sentinel_cache::redis::{Redis, RedisBus, RedisCache, RedisOptions, RedisRateLimiter};
use sentinel_cache::{Invalidation, InvalidationBus, RateLimiter, RemoteCache, RemoteError};
use sentinel_core::{SiteId, UserId};
use sentinel_resilience::BreakerState;
use sentinel_test_support::redis::{RedisCluster, RedisServer};
use std::time::Duration;

/// Retries `op` until it succeeds (Redis just came back; the breaker probes after its
/// reset timeout). Fails the test after 30 s.
async fn until_ok<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, RemoteError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{what} never recovered: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_fails_fast_falls_back_and_recovers() {
    let mut server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let a = Redis::connect(&server.url(), RedisOptions::default()).unwrap();
    let b = Redis::connect(&server.url(), RedisOptions::default()).unwrap();
    let cache = RedisCache::new(a.clone());
    let la = RedisRateLimiter::start(a.clone(), 1000, Duration::from_secs(60));
    let lb = RedisRateLimiter::start(b, 1000, Duration::from_secs(60));
    la.heartbeat().await;
    lb.heartbeat().await;
    la.heartbeat().await;
    assert_eq!(la.fleet_size(), 2);
    cache.set("k", b"v", Duration::from_secs(60)).await.unwrap();

    server.stop();
    for _ in 0..10 {
        assert!(matches!(
            cache.get("k").await,
            Err(RemoteError::Unavailable(_))
        ));
    }
    assert_eq!(a.breaker().state_hint(), BreakerState::Open);
    // The limiter keeps answering, counting this process's share (1000 / 2) per client.
    let client = format!("u:{}", UserId::new());
    let mut allowed = 0;
    for _ in 0..600 {
        if la.check(&client).await.allowed {
            allowed += 1;
        }
    }
    assert_eq!(
        allowed, 500,
        "per-process share of the budget, never unlimited"
    );
    assert!(la.degraded());

    let _server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    // Data is gone (a crash without persistence), but the cache and limiter work again.
    let got = until_ok("the cache", || cache.get("k")).await;
    assert_eq!(got, None);
    let client2 = format!("u:{}", UserId::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while la.check(&client2).await.remaining == 0 || la.degraded() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "limiter never left its fallback"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!la.degraded());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_server_trips_the_breaker_and_recovers() {
    let server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let redis = Redis::connect(&server.url(), RedisOptions::default()).unwrap();
    let cache = RedisCache::new(redis.clone());
    cache.set("k", b"v", Duration::from_secs(60)).await.unwrap();
    server.pause();
    // Each call gives up at the call timeout; after five in a row the breaker opens and
    // answers without touching the frozen socket.
    for _ in 0..5 {
        assert!(matches!(
            cache.get("k").await,
            Err(RemoteError::Unavailable(_))
        ));
    }
    assert_eq!(redis.breaker().state_hint(), BreakerState::Open);
    let before = redis.breaker().snapshot().rejected;
    assert!(matches!(
        cache.get("k").await,
        Err(RemoteError::Unavailable(_))
    ));
    assert_eq!(
        redis.breaker().snapshot().rejected,
        before + 1,
        "rejected, not attempted"
    );
    server.resume();
    let got = until_ok("the cache", || cache.get("k")).await;
    assert_eq!(got.as_deref(), Some(&b"v"[..]), "a pause loses nothing");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while redis.breaker().snapshot().state != BreakerState::Closed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "breaker never closed"
        );
        let _ = cache.get("k").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_is_survived() {
    let mut cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    let url = cluster.url();
    let a = Redis::connect(&url, RedisOptions::default()).unwrap();
    let b = Redis::connect(&url, RedisOptions::default()).unwrap();
    let cache = RedisCache::new(a.clone());
    let (ba, bb) = (RedisBus::start(a), RedisBus::start(b));
    let mut rb = bb.subscribe();
    cache.set("k", b"v", Duration::from_secs(60)).await.unwrap();

    cluster.stop();
    assert!(matches!(
        cache.get("k").await,
        Err(RemoteError::Unavailable(_))
    ));
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.restart();
        cluster
    })
    .await
    .unwrap();
    until_ok("the cluster cache", || {
        cache.set("k2", b"w", Duration::from_secs(60))
    })
    .await;
    assert_eq!(
        until_ok("the cluster cache", || cache.get("k2"))
            .await
            .as_deref(),
        Some(&b"w"[..])
    );
    // The other process's subscription comes back too (it reconnects with backoff).
    let msg = Invalidation::SiteResults {
        site: SiteId::new(),
    };
    let heard = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            ba.publish(msg).await;
            if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(300), rb.recv()).await
                && m == msg
            {
                return;
            }
        }
    })
    .await;
    assert!(heard.is_ok(), "the subscription did not come back");
    drop(cluster);
}
