//! The permission path's cost: a lookup answered by the in-process L1 against one answered
//! by Redis (an L1 miss and an L2 hit: one `GET` round trip and a JSON decode), through the
//! same `Tiered` cache the API uses for `perm:{user}:{site}`.
//!
//! `REDIS_URL=redis://127.0.0.1:PORT cargo bench -p sentinel-cache --bench perm_path`
//! (a standalone server; `bench/distributed/run.sh` starts one). Prints a markdown table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_precision_loss)]

use sentinel_cache::redis::{Redis, RedisCache, RedisOptions};
use sentinel_cache::{CacheKey, RemoteCache, Tiered};
use sentinel_core::{SiteId, SiteRole, UserId};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The API's permission key, rebuilt here (the API's type is private to it).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct PermKey(UserId, SiteId);
impl CacheKey for PermKey {
    fn remote_key(&self) -> String {
        format!("perm:{}:{{{}}}", self.0, self.1)
    }
}

type Perms = Tiered<PermKey, Option<SiteRole>>;

const TTL: Duration = Duration::from_secs(300);

async fn lookup(cache: &Perms, key: &PermKey) -> Option<SiteRole> {
    cache
        .get_or_load(key, TTL, || async {
            Err::<Option<SiteRole>, &str>("the store is never asked")
        })
        .await
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn row(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / u32::try_from(samples.len()).unwrap();
    println!(
        "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.0} |",
        samples.len(),
        mean.as_secs_f64() * 1e6,
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        1.0 / mean.as_secs_f64(),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let redis = Redis::connect(&url, RedisOptions::default()).unwrap();
    redis
        .ping()
        .await
        .expect("Redis must answer for this benchmark");
    let l2: Arc<dyn RemoteCache> = Arc::new(RedisCache::new(redis.clone()));
    let cache: Arc<Perms> = Arc::new(Tiered::new(
        "permission",
        10_000,
        Duration::from_secs(60),
        Some(l2.clone()),
    ));
    let keys: Vec<PermKey> = (0..1000)
        .map(|_| PermKey(UserId::new(), SiteId::new()))
        .collect();
    for k in &keys {
        cache.insert(k, Some(SiteRole::Editor), TTL).await;
    }

    println!("| lookup | samples | mean µs | p50 µs | p99 µs | lookups/s (one task) |");
    println!("|---|---:|---:|---:|---:|---:|");

    // Warm-up, then L1 hits.
    for k in keys.iter().cycle().take(100_000) {
        assert_eq!(lookup(&cache, k).await, Some(SiteRole::Editor));
    }
    let mut l1 = Vec::with_capacity(200_000);
    for k in keys.iter().cycle().take(200_000) {
        let t = Instant::now();
        let v = lookup(&cache, k).await;
        l1.push(t.elapsed());
        assert_eq!(v, Some(SiteRole::Editor));
    }
    row("L1 hit (in-process)", l1);

    // L2 hits: drop the key from L1 first, so the lookup goes to Redis.
    for k in keys.iter().take(500) {
        cache.invalidate_local(k);
        lookup(&cache, k).await;
    }
    let mut l2s = Vec::with_capacity(20_000);
    for k in keys.iter().cycle().take(20_000) {
        cache.invalidate_local(k);
        let t = Instant::now();
        let v = lookup(&cache, k).await;
        l2s.push(t.elapsed());
        assert_eq!(v, Some(SiteRole::Editor));
    }
    row("L2 hit (Redis GET + decode)", l2s);

    let mut pings = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        pings.push(redis.ping().await.unwrap());
    }
    row("Redis PING (reference)", pings);

    let stats = cache.stats().snapshot();
    assert_eq!(stats.loads, 0, "every lookup was answered by a cache level");

    // Throughput with 64 concurrent lookups (the multiplexed connection pipelines them).
    // Each task has keys of its own, so no task's lookup is answered by another's refill.
    println!();
    println!(
        "| lookup, 64 concurrent tasks | lookups | answered by L1 / L2 | seconds | lookups/s |"
    );
    println!("|---|---:|---:|---:|---:|");
    let per_key_set = keys.len() / 64;
    for (name, evict) in [("L1 hit", false), ("L2 hit", true)] {
        let per_task = if evict { 2_000 } else { 20_000 };
        let before = cache.stats().snapshot();
        let started = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let cache = cache.clone();
                let own: Vec<PermKey> = keys[t * per_key_set..(t + 1) * per_key_set].to_vec();
                tokio::spawn(async move {
                    for i in 0..per_task {
                        let k = &own[i % own.len()];
                        if evict {
                            cache.invalidate_local(k);
                        }
                        lookup(&cache, k).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let after = cache.stats().snapshot();
        let n = 64 * per_task;
        println!(
            "| {name} | {n} | {} / {} | {secs:.2} | {:.0} |",
            after.l1_hits - before.l1_hits,
            after.l2_hits - before.l2_hits,
            n as f64 / secs
        );
    }
}
