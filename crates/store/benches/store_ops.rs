//! Latency of the store's hot paths on both backends: a group commit of 1 and of 64 scans
//! (`create_scans`), leasing from a queue of 10,000 jobs (`lease_jobs`), completing a job with
//! 1,000 findings, and (timed once) the bulk import of the load harness's seed size.
//!
//! `cargo bench -p sentinel-store --bench store_ops`. PostgreSQL is measured when it answers
//! at `SENTINEL_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), in a
//! database created for the run and dropped after it.

#![allow(clippy::unwrap_used)] // a benchmark that cannot set up should stop loudly

#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{BenchmarkId, Criterion};
use sentinel_core::{ApiKey, CheckType, Role, Scan, ScanStatus, SiteRole, UserId};
use sentinel_store::{ImportBatch, NewUser, Store};
use std::time::{Duration, Instant};
use support::{Fixture, findings, new_scan, site, site_value, tick, user};
use tokio::runtime::Runtime;

const QUEUE: usize = 10_000;

fn main() {
    let rt = Runtime::new().unwrap();
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    let sqlite = rt.block_on(Fixture::sqlite());
    bench_backend(&mut c, &rt, "sqlite", &sqlite);
    drop(sqlite);

    let reachable = rt.block_on(async {
        <sqlx::PgConnection as sqlx::Connection>::connect(&support::pg_admin_url())
            .await
            .is_ok()
    });
    if reachable {
        let pg = rt.block_on(Fixture::postgres());
        bench_backend(&mut c, &rt, "postgres", &pg);
    } else {
        eprintln!(
            "PostgreSQL unreachable at {}: skipped",
            support::pg_admin_url()
        );
    }
    c.final_summary();
}

fn bench_backend(c: &mut Criterion, rt: &Runtime, backend: &str, fx: &Fixture) {
    let store = fx.store.as_ref();
    let site_id = rt.block_on(async {
        let (owner, _) = user(store, Role::Member).await;
        site(store, owner).await
    });

    let mut group = c.benchmark_group(format!("{backend}/create_scans"));
    for n in [1usize, 64] {
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let batch: Vec<_> = (0..n)
                            .map(|_| new_scan(site_id, CheckType::BrokenLinks, None))
                            .collect();
                        let t = Instant::now();
                        store.create_scans(&batch, 3).await.unwrap();
                        spent += t.elapsed();
                    }
                    spent
                })
            });
        });
    }
    group.finish();

    // Drain what the group commits queued, then fill the queue to exactly 10,000 jobs.
    rt.block_on(async {
        while !store
            .lease_jobs("drain", &CheckType::ALL, 1000, Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
        {}
        let scans: Vec<_> = (0..QUEUE)
            .map(|_| new_scan(site_id, CheckType::BrokenLinks, None))
            .collect();
        for chunk in scans.chunks(1000) {
            store.create_scans(chunk, 3).await.unwrap();
        }
        assert_eq!(store.queue_depth().await.unwrap().queued, QUEUE as u64);
    });

    let mut group = c.benchmark_group(format!("{backend}/lease_jobs_of_10k"));
    for max in [1u32, 10] {
        group.bench_with_input(BenchmarkId::from_parameter(max), &max, |b, &max| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let t = Instant::now();
                        let leases = store
                            .lease_jobs("bench", &CheckType::ALL, max, Duration::from_secs(60))
                            .await
                            .unwrap();
                        spent += t.elapsed();
                        assert_eq!(leases.len(), max as usize);
                        // Put them back (untimed) so the queue stays at 10,000.
                        for l in &leases {
                            store.release_job(l).await.unwrap();
                        }
                    }
                    spent
                })
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group(format!("{backend}/complete_job"));
    let written = findings(1000);
    group.bench_function("1000_findings", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let lease = store
                        .lease_jobs("bench", &CheckType::ALL, 1, Duration::from_secs(60))
                        .await
                        .unwrap()
                        .pop()
                        .unwrap();
                    let t = Instant::now();
                    let done = store
                        .complete_job(&lease, &serde_json::json!({"broken": 1000}), &written)
                        .await
                        .unwrap();
                    spent += t.elapsed();
                    assert!(done);
                }
                spent
            })
        });
    });
    group.finish();

    let took = rt.block_on(time_import(store));
    println!("{backend}/import 1000 users, 10000 sites, 10000 grants, 2000 scans: {took:?}");
}

/// One import of the load harness's seed size into the (non-empty) store.
async fn time_import(store: &dyn Store) -> Duration {
    let users: Vec<NewUser> = (0..1000)
        .map(|i| NewUser {
            id: UserId::new(),
            name: format!("import-user-{i}"),
            role: Role::Member,
            key_hash: ApiKey::generate().hash(),
            created_at: tick(),
        })
        .collect();
    let sites: Vec<_> = (0..10_000)
        .map(|i| site_value(&format!("import-site-{i}")))
        .collect();
    let grants = sites
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, users[i % users.len()].id, SiteRole::Viewer))
        .collect();
    let scans = (0..2000)
        .map(|i| {
            let n = new_scan(sites[i % 100].id, CheckType::BrokenLinks, None);
            Scan {
                id: n.id,
                site_id: n.site_id,
                url: n.url,
                options: n.options,
                status: ScanStatus::Completed,
                created_at: n.created_at,
                started_at: Some(n.created_at),
                finished_at: Some(n.created_at + 1000),
                summary: Some(serde_json::json!({"pages": 10, "links": 100, "broken": 0})),
                error: None,
                attempts: 1,
                created_by: None,
            }
        })
        .collect();
    let batch = ImportBatch {
        users,
        sites,
        grants,
        scans,
    };
    let t = Instant::now();
    store.import(&batch).await.unwrap();
    t.elapsed()
}
