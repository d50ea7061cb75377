//! Every shared backend behaves the same on one node and on a cluster.

use sentinel_cache::redis::{
    Redis, RedisBus, RedisCache, RedisLocks, RedisOptions, RedisRateLimiter, RedisSiteVersions,
};
use sentinel_cache::{
    CacheKey, Invalidation, InvalidationBus, Locks, RateLimiter, RemoteCache, SiteVersions, Tiered,
};
use sentinel_core::{SiteId, UserId};
use sentinel_test_support::redis::{RedisCluster, RedisServer};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Two independent handles, as two processes would have.
fn pair(url: &str) -> (Redis, Redis) {
    (
        Redis::connect(url, RedisOptions::default()).unwrap(),
        Redis::connect(url, RedisOptions::default()).unwrap(),
    )
}

async fn remote_cache(url: &str) {
    let (a, b) = pair(url);
    let (a, b) = (RedisCache::new(a), RedisCache::new(b));
    let ttl = Duration::from_secs(60);
    a.set("t:one", b"1", ttl).await.unwrap();
    assert_eq!(b.get("t:one").await.unwrap().as_deref(), Some(&b"1"[..]));
    b.del("t:one").await.unwrap();
    assert_eq!(a.get("t:one").await.unwrap(), None);

    // Enough keys to land on every node of a cluster.
    let items: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("t:many:{i}"), i.to_string().into_bytes()))
        .collect();
    a.set_many(&items, ttl).await.unwrap();
    let mut keys: Vec<String> = items.iter().map(|(k, _)| k.clone()).collect();
    keys.push("t:absent".into());
    let got = b.get_many(&keys).await.unwrap();
    assert_eq!(got.len(), 201);
    for (i, v) in got.iter().take(200).enumerate() {
        assert_eq!(v.as_deref(), Some(i.to_string().as_bytes()), "key {i}");
    }
    assert_eq!(got[200], None);
    assert!(b.get_many(&[]).await.unwrap().is_empty());

    // A claim writes only a free key, and answers with what the key holds. (Fresh keys:
    // a test server may outlive one run.)
    let (claim, short) = (
        format!("t:claim:{}", SiteId::new()),
        format!("t:claim:{}", SiteId::new()),
    );
    assert_eq!(a.set_if_absent(&claim, b"1", ttl).await.unwrap(), None);
    assert_eq!(
        b.set_if_absent(&claim, b"2", ttl).await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(b.get(&claim).await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(
        a.set_if_absent(&short, b"x", Duration::from_millis(30))
            .await
            .unwrap(),
        None
    );

    // Expiry is the server's (PX).
    a.set("t:short", b"x", Duration::from_millis(30))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(b.get("t:short").await.unwrap(), None);
    assert_eq!(b.get(&short).await.unwrap(), None);
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct K(u32);
impl CacheKey for K {
    fn remote_key(&self) -> String {
        format!("tiered:{{{}}}", self.0)
    }
}

async fn tiered_l2(url: &str) {
    let (a, b) = pair(url);
    let l2a: Arc<dyn RemoteCache> = Arc::new(RedisCache::new(a));
    let l2b: Arc<dyn RemoteCache> = Arc::new(RedisCache::new(b));
    let ca: Tiered<K, String> = Tiered::new("t", 100, Duration::from_secs(60), Some(l2a));
    let cb: Tiered<K, String> = Tiered::new("t", 100, Duration::from_secs(60), Some(l2b));
    let loads = AtomicU32::new(0);
    let ttl = Duration::from_secs(60);
    let load = || async {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok::<_, ()>("v".to_owned())
    };
    assert_eq!(ca.get_or_load(&K(1), ttl, load).await.unwrap(), "v");
    assert_eq!(ca.get_or_load(&K(1), ttl, load).await.unwrap(), "v");
    assert_eq!(cb.get_or_load(&K(1), ttl, load).await.unwrap(), "v");
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "the second process reads L2"
    );
    let (sa, sb) = (ca.stats().snapshot(), cb.stats().snapshot());
    assert_eq!((sa.loads, sa.l1_hits, sa.l2_hits), (1, 1, 0));
    assert_eq!((sb.loads, sb.l1_hits, sb.l2_hits), (0, 0, 1));
    ca.invalidate(&K(1)).await;
    cb.invalidate_local(&K(1));
    assert_eq!(cb.get_or_load(&K(1), ttl, load).await.unwrap(), "v");
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "invalidated in both levels"
    );
}

async fn limiter(url: &str) {
    let (a, b) = pair(url);
    let (la, lb) = (
        RedisRateLimiter::start(a, 1000, Duration::from_secs(60)),
        RedisRateLimiter::start(b, 1000, Duration::from_secs(60)),
    );
    let client = format!("u:{}", UserId::new());
    let mut refused = 0;
    for i in 0..1100 {
        let l = if i % 2 == 0 { &la } else { &lb };
        let d = l.check(&client).await;
        if !d.allowed {
            refused += 1;
            assert!(d.reset_after > Duration::ZERO && d.reset_after <= Duration::from_secs(60));
            assert_eq!(d.remaining, 0);
        }
    }
    assert_eq!(refused, 100, "one budget across both limiters");
    assert!(
        la.check("someone-else").await.allowed,
        "clients are counted apart"
    );
    assert!(!la.degraded() && !lb.degraded());
}

async fn versions(url: &str) {
    let (a, b) = pair(url);
    let (va, vb) = (RedisSiteVersions::new(a), RedisSiteVersions::new(b));
    let site = SiteId::new();
    assert_eq!(va.current(site).await, 0);
    let v = va.bump(site).await;
    assert_eq!(v, 1);
    assert_eq!(
        vb.current(site).await,
        1,
        "another process reads it from Redis"
    );
    assert_eq!(vb.bump(site).await, 2);
    assert_eq!(
        vb.current(site).await,
        2,
        "the bumping process sees its bump at once"
    );
    // Another process reuses the version it read for a few seconds, until the invalidation
    // message makes it forget it.
    assert_eq!(va.current(site).await, 1);
    va.forget(site);
    assert_eq!(va.current(site).await, 2);
    assert_eq!(
        va.current(SiteId::new()).await,
        0,
        "sites are versioned apart"
    );
}

async fn bus(url: &str) {
    let (a, b) = pair(url);
    let (ba, bb) = (RedisBus::start(a), RedisBus::start(b));
    let (mut ra, mut rb) = (ba.subscribe(), bb.subscribe());
    // The subscription is made in the background: publish until the other side hears.
    let msg = Invalidation::SiteResults {
        site: SiteId::new(),
    };
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            ba.publish(msg).await;
            assert_eq!(ra.recv().await.unwrap(), msg, "applied locally at once");
            if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(200), rb.recv()).await {
                return m;
            }
        }
    })
    .await
    .expect("the other process never heard the message");
    assert_eq!(heard, msg);
    let grant = Invalidation::Grant {
        user: UserId::new(),
        site: SiteId::new(),
    };
    bb.publish(grant).await;
    assert_eq!(rb.recv().await.unwrap(), grant, "applied locally at once");
    let seen_by_a = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if ra.recv().await.unwrap() == grant {
                return;
            }
        }
    })
    .await;
    assert!(
        seen_by_a.is_ok(),
        "the grant never reached the other process"
    );
    // A marker from the other side: until it arrives, b must not hear its own grant again
    // (its subscription drops messages it published itself).
    let marker = Invalidation::SiteResults {
        site: SiteId::new(),
    };
    ba.publish(marker).await;
    let echo = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let m = rb.recv().await.unwrap();
            if m == marker {
                return false;
            }
            if m == grant {
                return true;
            }
        }
    })
    .await
    .expect("the marker never arrived");
    assert!(!echo, "a process heard its own message twice");
}

async fn locks(url: &str) {
    let (a, b) = pair(url);
    let (la, lb) = (RedisLocks::new(a), RedisLocks::new(b));
    let key = format!("lock:test:{{{}}}", SiteId::new());
    let ttl = Duration::from_secs(30);
    let held = la.try_acquire(&key, ttl).await.unwrap().expect("free lock");
    assert!(
        lb.try_acquire(&key, ttl).await.unwrap().is_none(),
        "held elsewhere"
    );
    // Another process cannot release or renew it, even knowing the key.
    let theirs = lb
        .try_acquire(&format!("{key}:x"), ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(lb.release(&theirs).await.unwrap());
    assert!(la.renew(&held, ttl).await.unwrap());
    assert!(
        lb.release(&held).await.unwrap(),
        "the token, not the handle, proves ownership"
    );
    assert!(!la.release(&held).await.unwrap(), "already released");
    // Expiry frees it, and the old holder can then neither renew nor release the new one.
    let short = la
        .try_acquire(&key, Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let newer = lb
        .try_acquire(&key, ttl)
        .await
        .unwrap()
        .expect("expired lock is free");
    assert!(!la.renew(&short, ttl).await.unwrap());
    assert!(!la.release(&short).await.unwrap());
    assert!(la.try_acquire(&key, ttl).await.unwrap().is_none());
    assert!(lb.release(&newer).await.unwrap());
    assert!(la.distributed());
}

async fn all(url: &str) {
    remote_cache(url).await;
    tiered_l2(url).await;
    limiter(url).await;
    versions(url).await;
    bus(url).await;
    locks(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone() {
    let server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    all(&server.url()).await;
    assert!(
        server.cli(&["KEYS", "*"]).contains("unknown command"),
        "KEYS is disabled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    all(&cluster.url()).await;
    // The cluster scheme with a single seed finds the other nodes.
    let one = format!("redis+cluster://127.0.0.1:{}", cluster.nodes[0].port);
    remote_cache(&one).await;
}
