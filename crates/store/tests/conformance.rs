//! One behavioural suite for every [`Store`] backend.
//!
//! Each case is written once against `&dyn Store` and instantiated twice by `conformance!`:
//! on SQLite (a temporary file) and on PostgreSQL (a database created for the test at
//! `SENTINEL_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`). The
//! PostgreSQL cases fail, they do not skip, when the server is unreachable.

#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

mod support;

use sentinel_core::page::MAX_LIMIT;
use sentinel_core::{
    ApiKey, CheckType, Cursor, Role, Scan, ScanId, ScanStatus, Severity, SiteRole, UserId,
    Viewport, now_millis,
};
use sentinel_store::{
    Baseline, ImportBatch, ImportCounts, JobFate, Lease, NewUser, QueueDepth, Store, StoreError,
    StoreEvent,
};
use std::collections::HashSet;
use std::slice::from_ref;
use std::sync::Arc;
use std::time::Duration;
use support::{Fixture, findings, new_scan, site, site_value, tick, user};

/// Instantiates each case for both backends: `mod case { sqlite(), postgres() }`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let fx = Fixture::sqlite().await;
                super::$case(&fx).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let fx = Fixture::postgres().await;
                super::$case(&fx).await;
            }
        }
    )*};
}

conformance!(
    migrate_ping_and_pool_stats,
    users_and_keys,
    sites_grants_and_listing,
    scans_create_get_list,
    create_scans_is_atomic,
    lease_takes_only_due_jobs_of_the_given_types,
    concurrent_leases_never_share_a_job,
    heartbeat_extends_the_lease,
    expired_lease_is_requeued_and_fenced_out,
    attempts_exhaustion_fails_the_scan,
    retry_in_the_future_waits_and_last_attempt_fails,
    release_does_not_count_the_attempt,
    complete_stores_findings_and_pages_them,
    fail_without_retry_fails_the_scan,
    baselines_put_get_replace,
    import_counts_and_is_idempotent,
    events_reach_a_peer,
    concurrent_writers_never_see_locked,
);

const HOUR: Duration = Duration::from_secs(3600);
const BOTH: [CheckType; 2] = CheckType::ALL;

/// A site owned by a fresh member, and that member.
async fn owned_site(store: &dyn Store) -> (UserId, sentinel_core::SiteId) {
    let (owner, _) = user(store, Role::Member).await;
    (owner, site(store, owner).await)
}

async fn scan(store: &dyn Store, id: ScanId) -> Scan {
    store.get_scan(id).await.unwrap().expect("scan exists")
}

/// Leases exactly one job (of any type) and returns it.
async fn lease_one(store: &dyn Store, lease_for: Duration) -> Lease {
    let mut leases = store.lease_jobs("w1", &BOTH, 1, lease_for).await.unwrap();
    assert_eq!(leases.len(), 1, "expected one lease");
    leases.pop().unwrap()
}

/// Lets the clock move past a lease that ended "now" (leases expire strictly after).
async fn let_lease_expire() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

async fn depth(store: &dyn Store) -> QueueDepth {
    store.queue_depth().await.unwrap()
}

// ---- cases ----------------------------------------------------------------------------------

async fn migrate_ping_and_pool_stats(fx: &Fixture) {
    let store = fx.store.as_ref();
    // Migrations are idempotent (the CLI runs them at every start).
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    let stats = store.pool_stats();
    assert!(stats.size >= 1 && stats.size <= stats.max, "{stats:?}");
    assert_eq!(stats.waiting, 0);
    assert_eq!(
        store.backend() == sentinel_store::Backend::Postgres,
        fx.is_postgres()
    );
}

async fn users_and_keys(fx: &Fixture) {
    let store = fx.store.as_ref();
    let key = ApiKey::generate();
    let id = UserId::new();
    let created = store
        .create_user(&NewUser {
            id,
            name: "alice".into(),
            role: Role::Admin,
            key_hash: key.hash(),
            created_at: tick(),
        })
        .await
        .unwrap();
    assert_eq!(created.id, id);
    assert_eq!(store.get_user(id).await.unwrap(), Some(created.clone()));
    assert_eq!(store.get_user(UserId::new()).await.unwrap(), None);

    let p = store.principal_by_key(&key.hash()).await.unwrap().unwrap();
    assert_eq!(
        (p.user_id, p.name.as_str(), p.role),
        (id, "alice", Role::Admin)
    );
    let unknown = ApiKey::generate().hash();
    assert_eq!(store.principal_by_key(&unknown).await.unwrap(), None);

    // The digest is unique across users.
    let dup = store
        .create_user(&NewUser {
            id: UserId::new(),
            name: "mallory".into(),
            role: Role::Member,
            key_hash: key.hash(),
            created_at: tick(),
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    // A second key works as well as the first; keys of unknown users are refused.
    let second = ApiKey::generate().hash();
    store.add_api_key(id, &second).await.unwrap();
    assert_eq!(
        store
            .principal_by_key(&second)
            .await
            .unwrap()
            .map(|p| p.user_id),
        Some(id)
    );
    assert!(matches!(
        store.add_api_key(id, &second).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.add_api_key(UserId::new(), &unknown).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.principal_by_key(&unknown).await.unwrap(), None);
}

async fn sites_grants_and_listing(fx: &Fixture) {
    let store = fx.store.as_ref();
    let (m1, _) = user(store, Role::Member).await;
    let (m2, _) = user(store, Role::Member).await;
    let mut of_m1 = Vec::new();
    for _ in 0..5 {
        of_m1.push(site(store, m1).await);
    }
    let mut of_m2 = Vec::new();
    for _ in 0..3 {
        of_m2.push(site(store, m2).await);
    }

    let stored = store.get_site(of_m1[0]).await.unwrap().unwrap();
    assert_eq!(stored.id, of_m1[0]);
    assert_eq!(stored.base_url.as_str(), "https://site.test/");
    assert_eq!(
        store.get_site(sentinel_core::SiteId::new()).await.unwrap(),
        None
    );

    // A member sees exactly its sites, in id order, page by page.
    let all_pages = |member: Option<UserId>, limit: u32| async move {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = store.list_sites(member, after, limit).await.unwrap();
            assert!(page.items.len() <= limit as usize);
            ids.extend(page.items.iter().map(|s| s.id));
            match page.next_cursor {
                Some(c) => after = Some(Cursor::decode(&c).unwrap()),
                None => break,
            }
        }
        ids
    };
    let mut expected = of_m1.clone();
    expected.sort();
    assert_eq!(all_pages(Some(m1), 2).await, expected);
    assert_eq!(all_pages(Some(m1), MAX_LIMIT).await, expected);
    let mut everything: Vec<_> = of_m1.iter().chain(&of_m2).copied().collect();
    everything.sort();
    assert_eq!(all_pages(None, 3).await, everything);
    let first = store.list_sites(None, None, 8).await.unwrap();
    assert_eq!(first.items.len(), 8);
    assert_eq!(first.next_cursor, None, "no cursor when nothing follows");

    // Grants: owner on creation, upsert, lookups, unknown references.
    assert_eq!(
        store.grant(m1, of_m1[0]).await.unwrap(),
        Some(SiteRole::Owner)
    );
    assert_eq!(store.grant(m2, of_m1[0]).await.unwrap(), None);
    store
        .set_grant(of_m1[0], m2, SiteRole::Viewer)
        .await
        .unwrap();
    assert_eq!(
        store.grant(m2, of_m1[0]).await.unwrap(),
        Some(SiteRole::Viewer)
    );
    store
        .set_grant(of_m1[0], m2, SiteRole::Editor)
        .await
        .unwrap();
    assert_eq!(
        store.grant(m2, of_m1[0]).await.unwrap(),
        Some(SiteRole::Editor)
    );
    assert_eq!(all_pages(Some(m2), 10).await.len(), 4);
    assert!(matches!(
        store
            .set_grant(of_m1[0], UserId::new(), SiteRole::Viewer)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .set_grant(sentinel_core::SiteId::new(), m1, SiteRole::Viewer)
            .await,
        Err(StoreError::NotFound(_))
    ));

    // A site is created with its owner grant or not at all.
    let orphan = site_value("orphan");
    assert!(matches!(
        store.create_site(&orphan, UserId::new()).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.get_site(orphan.id).await.unwrap(), None);
    let again = store.create_site(&stored, m1).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

async fn scans_create_get_list(fx: &Fixture) {
    let store = fx.store.as_ref();
    let (owner, site_id) = owned_site(store).await;
    let (_, other_site) = owned_site(store).await;
    let batch: Vec<_> = (0..7)
        .map(|i| {
            let t = if i % 2 == 0 {
                CheckType::BrokenLinks
            } else {
                CheckType::VisualRegression
            };
            new_scan(site_id, t, Some(owner))
        })
        .collect();
    store.create_scans(&batch, 3).await.unwrap();
    store
        .create_scans(&[new_scan(other_site, CheckType::BrokenLinks, None)], 3)
        .await
        .unwrap();
    store.create_scans(&[], 3).await.unwrap();

    for new in &batch {
        let s = scan(store, new.id).await;
        assert_eq!(s.site_id, new.site_id);
        assert_eq!(s.url, new.url);
        assert_eq!(s.options, new.options);
        assert_eq!(s.status, ScanStatus::Queued);
        assert_eq!(s.created_at, new.created_at);
        assert_eq!(s.created_by, Some(owner));
        assert_eq!((s.started_at, s.finished_at, s.attempts), (None, None, 0));
        assert_eq!((s.summary, s.error), (None, None));
    }
    assert_eq!(store.get_scan(ScanId::new()).await.unwrap(), None);

    // Newest first, in cursor pages of 3, only this site's scans.
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_scans(site_id, after, 3).await.unwrap();
        listed.extend(page.items.iter().map(|s| s.id));
        match page.next_cursor {
            Some(c) => after = Some(Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    let expected: Vec<_> = batch.iter().rev().map(|s| s.id).collect();
    assert_eq!(listed, expected);

    assert_eq!(
        depth(store).await,
        QueueDepth {
            queued: 8,
            running: 0
        }
    );

    let dup = store.create_scans(&batch[..1], 3).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
}

async fn create_scans_is_atomic(fx: &Fixture) {
    let store = fx.store.as_ref();
    let (_, site_id) = owned_site(store).await;
    let good = new_scan(site_id, CheckType::BrokenLinks, None);
    let bad = new_scan(sentinel_core::SiteId::new(), CheckType::BrokenLinks, None);
    let res = store.create_scans(&[good.clone(), bad], 3).await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "{res:?}");
    assert_eq!(store.get_scan(good.id).await.unwrap(), None);
    assert_eq!(depth(store).await, QueueDepth::default());
    // The failed batch left nothing open behind it: the next one commits.
    store.create_scans(from_ref(&good), 3).await.unwrap();
    assert!(store.get_scan(good.id).await.unwrap().is_some());
    assert_eq!(depth(store).await.queued, 1);
}

async fn lease_takes_only_due_jobs_of_the_given_types(fx: &Fixture) {
    let store = fx.store.as_ref();
    let (_, site_id) = owned_site(store).await;
    let links_a = new_scan(site_id, CheckType::BrokenLinks, None);
    let visual = new_scan(site_id, CheckType::VisualRegression, None);
    let links_b = new_scan(site_id, CheckType::BrokenLinks, None);
    store
        .create_scans(&[links_a.clone(), visual.clone(), links_b.clone()], 3)
        .await
        .unwrap();

    assert!(
        store
            .lease_jobs("w", &[], 10, HOUR)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .lease_jobs("w", &BOTH, 0, HOUR)
            .await
            .unwrap()
            .is_empty()
    );

    let v = store
        .lease_jobs("w-visual", &[CheckType::VisualRegression], 10, HOUR)
        .await
        .unwrap();
    assert_eq!(v.iter().map(|l| l.scan.id).collect::<Vec<_>>(), [visual.id]);
    let l = &v[0];
    assert_eq!(
        (l.attempt, l.max_attempts, l.worker.as_str()),
        (1, 3, "w-visual")
    );
    assert_eq!(l.scan.status, ScanStatus::Running);
    assert_eq!(l.scan.attempts, 1);
    assert!(l.scan.started_at.is_some());
    assert!(l.leased_until >= now_millis() + 3_500_000);
    let stored = scan(store, visual.id).await;
    assert_eq!((stored.status, stored.attempts), (ScanStatus::Running, 1));

    // Oldest first, at most `max`.
    let first = store
        .lease_jobs("w-links", &[CheckType::BrokenLinks], 1, HOUR)
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|l| l.scan.id).collect::<Vec<_>>(),
        [links_a.id]
    );
    let rest = store
        .lease_jobs("w-links", &[CheckType::BrokenLinks], 10, HOUR)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|l| l.scan.id).collect::<Vec<_>>(),
        [links_b.id]
    );
    assert!(
        store
            .lease_jobs("w", &BOTH, 10, HOUR)
            .await
            .unwrap()
            .is_empty()
    );
    assert_ne!(first[0].token, rest[0].token);
    assert_eq!(
        depth(store).await,
        QueueDepth {
            queued: 0,
            running: 3
        }
    );
}

async fn concurrent_leases_never_share_a_job(fx: &Fixture) {
    let store = &fx.store;
    let (_, site_id) = owned_site(store.as_ref()).await;
    let scans: Vec<_> = (0..500)
        .map(|i| {
            let t = if i % 3 == 0 {
                CheckType::VisualRegression
            } else {
                CheckType::BrokenLinks
            };
            new_scan(site_id, t, None)
        })
        .collect();
    store.create_scans(&scans, 3).await.unwrap();

    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let leases = store
                    .lease_jobs(&format!("w{w}"), &BOTH, 7, HOUR)
                    .await
                    .unwrap();
                if leases.is_empty() {
                    return got;
                }
                got.extend(leases.into_iter().map(|l| l.scan.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), 500, "every job leased exactly once");
    assert_eq!(unique.len(), 500);
    assert_eq!(
        depth(store.as_ref()).await,
        QueueDepth {
            queued: 0,
            running: 500
        }
    );
}

async fn heartbeat_extends_the_lease(fx: &Fixture) {
    let store = fx.store.as_ref();
    let (_, site_id) = owned_site(store).await;
    store
        .create_scans(&[new_scan(site_id, CheckType::BrokenLinks, None)], 3)
        .await
        .unwrap();
    let lease = lease_one(store, Duration::ZERO).await;
    assert!(store.heartbeat(&lease, HOUR).await.unwrap());
    let_lease_expire().await;
    // Without the heartbeat this lease would have expired by now.
    assert_eq!(store.requeue_expired().await.unwrap(), 0);
    assert_eq!(scan(store, lease.scan.id).await.status, ScanStatus::Running);
    assert!(
        store
            .complete_job(&lease, &serde_json::json!({}), &[])
            .await
            .unwrap()
    );
}

async fn expired_lease_is_requeued_and_fenced_out(fx: &Fixture) {
    let store = fx.store.as_ref();
    let (_, site_id) = owned_site(store).await;
    let new = new_scan(site_id, CheckType::BrokenLinks, None);
    store.create_scans(from_ref(&new), 3).await.unwrap();
    let old = lease_one(store, Duration::ZERO).await;
    let_lease_expire().await;
    assert_eq!(store.requeue_expired().await.unwrap(), 1);
    assert_eq!(store.requeue_expired().await.unwrap(), 0);
    let s = scan(store, new.id).await;
    assert_eq!((s.status, s.attempts), (ScanStatus::Queued, 1));

    // The zombie's token no longer fences anything: every write is refused and changes nothing.
    assert!(!store.heartbeat(&old, HOUR).await.unwrap());
    assert!(
        !store
            .complete_job(&old, &serde_json::json!({}), &findings(3))
            .await
            .unwrap()
    );
    assert_eq!(
        store.fail_job(&old, "late", None).await.unwrap(),
        JobFate::LeaseLost
    );
    assert!(!store.release_job(&old).await.unwrap());
    assert_eq!(scan(store, new.id).await.status, ScanStatus::Queued);

    let fresh = lease_one(store, HOUR).await;
    assert_eq!(fresh.attempt, 2);
    assert_ne!(fresh.token, old.token);
    // The old token stays fenced out while the new lease runs.
    assert!(!store.heartbeat(&old, HOUR).await.unwrap());
    assert!(
        !store
            .complete_job(&old, &serde_json::json!({}), &[])
            .await
            .unwrap()
    );
    assert!(store.heartbeat(&fresh, HOUR).await.unwrap());
    assert!(
        store
            .complete_job(&fresh, &serde_json::json!({"pages": 1}), &findings(2))
            .await
            .unwrap()
    );
    let done = scan(store, new.id).await;
    assert_eq!((done.status, done.attempts), (ScanStatus::Completed, 2));
    let page = store.list_findings(new.id, None, 10).await.unwrap();
    assert_eq!(
        page.items.len(),
        2,
        "only the live lease's findings are stored"
    );
}

async fn attempts_exhaustion_fails_the_scan(fx: &Fixture) {
    let store = fx.store.as_ref();
    let (_, site_id) = owned_site(store).await;
    let new = new_scan(site_id, CheckType::BrokenLinks, None);
    store.create_scans(from_ref(&new), 2).await.unwrap();
    let mut events = store.subscribe();
    for attempt in 1..=2 {
        let lease = lease_one(store, Duration::ZERO).await;
        assert_eq!(lease.attempt, attempt);
        let_lease_expire().await;
        assert_eq!(store.requeue_expired().await.unwrap(), 1);
    }
    let s = scan(store, new.id).await;
    assert_eq!(s.status, ScanStatus::Failed);
    assert_eq!(s.attempts, 2);
    assert!(s.finished_at.is_some());
    let error = s.error.unwrap_or_default();
    assert!(
        error.contains("worker lost") && error.contains("after 2 attempts"),
        "{error}"
    );
    assert_eq!(depth(store).await, QueueDepth::default());
    assert!(
        store
            .lease_jobs("w", &BOTH, 10, HOUR)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        next_finished(&mut events).await,
        new.id,
        "a scan failed by the reaper is announced"
    );
}

async fn retry_in_the_future_waits_and_last_attempt_fails(fx: &Fixture) {
    let store = fx.store.as_ref();
    let (_, site_id) = owned_site(store).await;
    let later = new_scan(site_id, CheckType::BrokenLinks, None);
    let now_ = new_scan(site_id, CheckType::BrokenLinks, None);
    store.create_scans(from_ref(&later), 3).await.unwrap();
    store.create_scans(from_ref(&now_), 2).await.unwrap();

    let lease = lease_one(store, HOUR).await;
    assert_eq!(lease.scan.id, later.id);
    let fate = store
        .fail_job(&lease, "HTTP 503", Some(now_millis() + 3_600_000))
        .await
        .unwrap();
    assert_eq!(fate, JobFate::Retrying);
    let s = scan(store, later.id).await;
    assert_eq!((s.status, s.error), (ScanStatus::Queued, None));

    // Not due for an hour: only the other job is leased.
    let other = lease_one(store, HOUR).await;
    assert_eq!(other.scan.id, now_.id);
    assert!(
        store
            .lease_jobs("w", &BOTH, 10, HOUR)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        depth(store).await,
        QueueDepth {
            queued: 1,
            running: 1
        }
    );

    // A retry due now is leased again, as the next attempt.
    assert_eq!(
        store
            .fail_job(&other, "timeout", Some(now_millis()))
            .await
            .unwrap(),
        JobFate::Retrying
    );
    let second = lease_one(store, HOUR).await;
    assert_eq!((second.scan.id, second.attempt), (now_.id, 2));
    // On the last attempt a retry is refused: the scan fails with the error.
    assert_eq!(
        store
            .fail_job(&second, "timeout again", Some(now_millis()))
            .await
            .unwrap(),
        JobFate::Failed
    );
    let s = scan(store, now_.id).await;
    assert_eq!(s.status, ScanStatus::Failed);
    assert_eq!(s.error.as_deref(), Some("timeout again"));
}

async fn release_does_not_count_the_attempt(fx: &Fixture) {
    let store = fx.store.as_ref();
    let (_, site_id) = owned_site(store).await;
    let new = new_scan(site_id, CheckType::VisualRegression, None);
    store.create_scans(from_ref(&new), 3).await.unwrap();
    let lease = lease_one(store, HOUR).await;
    assert_eq!(lease.attempt, 1);
    assert!(store.release_job(&lease).await.unwrap());
    assert!(!store.release_job(&lease).await.unwrap(), "released twice");
    let s = scan(store, new.id).await;
    assert_eq!((s.status, s.attempts), (ScanStatus::Queued, 0));
    assert_eq!(
        depth(store).await,
        QueueDepth {
            queued: 1,
            running: 0
        }
    );
    let again = lease_one(store, HOUR).await;
    assert_eq!(again.attempt, 1);
    assert!(!store.heartbeat(&lease, HOUR).await.unwrap());
}

async fn complete_stores_findings_and_pages_them(fx: &Fixture) {
    let store = fx.store.as_ref();
    let (_, site_id) = owned_site(store).await;
    let new = new_scan(site_id, CheckType::BrokenLinks, None);
    store.create_scans(from_ref(&new), 3).await.unwrap();
    let lease = lease_one(store, HOUR).await;
    let written = findings(2500);
    let summary = serde_json::json!({"pages": 120, "links": 4000, "broken": 2500});
    assert!(
        store
            .complete_job(&lease, &summary, &written)
            .await
            .unwrap()
    );
    assert!(
        !store
            .complete_job(&lease, &summary, &written)
            .await
            .unwrap(),
        "a completed job cannot complete again"
    );

    let s = scan(store, new.id).await;
    assert_eq!(s.status, ScanStatus::Completed);
    assert_eq!(s.summary, Some(summary));
    assert_eq!(s.error, None);
    assert!(s.finished_at.is_some());
    assert_eq!(depth(store).await, QueueDepth::default());

    let mut read = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.list_findings(new.id, after, 500).await.unwrap();
        pages += 1;
        read.extend(page.items);
        match page.next_cursor {
            Some(c) => after = Some(Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(read.len(), 2500);
    let unique: HashSet<_> = read.iter().map(|f| f.id).collect();
    assert_eq!(unique.len(), 2500);
    for (f, w) in read.iter().zip(&written) {
        assert_eq!(f.scan_id, new.id);
        assert_eq!((f.kind, f.severity), (w.kind, w.severity));
        assert_eq!(
            (&f.url, &f.message, &f.detail),
            (&w.url, &w.message, &w.detail)
        );
    }
    assert_eq!(read[0].severity, Severity::Error);
    assert!(
        store
            .list_findings(ScanId::new(), None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn fail_without_retry_fails_the_scan(fx: &Fixture) {
    let store = fx.store.as_ref();
    let (_, site_id) = owned_site(store).await;
    let new = new_scan(site_id, CheckType::BrokenLinks, None);
    store.create_scans(from_ref(&new), 5).await.unwrap();
    let lease = lease_one(store, HOUR).await;
    assert_eq!(
        store
            .fail_job(&lease, "robots.txt disallows /", None)
            .await
            .unwrap(),
        JobFate::Failed
    );
    assert_eq!(
        store.fail_job(&lease, "again", None).await.unwrap(),
        JobFate::LeaseLost
    );
    let s = scan(store, new.id).await;
    assert_eq!(s.status, ScanStatus::Failed);
    assert_eq!(s.error.as_deref(), Some("robots.txt disallows /"));
    assert!(s.finished_at.is_some());
    assert_eq!(depth(store).await, QueueDepth::default());
}

async fn baselines_put_get_replace(fx: &Fixture) {
    let store = fx.store.as_ref();
    let (owner, site_id) = owned_site(store).await;
    let first = new_scan(site_id, CheckType::VisualRegression, None);
    let second = new_scan(site_id, CheckType::VisualRegression, None);
    store
        .create_scans(&[first.clone(), second.clone()], 3)
        .await
        .unwrap();
    let page = "https://site.test/pricing";
    let b = Baseline {
        site_id,
        page_url: page.into(),
        viewport: Viewport::Mobile,
        full_page: true,
        artifact_key: format!("scans/{}/current.png", first.id),
        width: 375,
        height: 4000,
        scan_id: first.id,
        approved_by: None,
        updated_at: tick(),
    };
    store.put_baseline(&b).await.unwrap();
    assert_eq!(
        store
            .get_baseline(site_id, page, Viewport::Mobile, true)
            .await
            .unwrap(),
        Some(b.clone())
    );
    assert_eq!(
        store
            .get_baseline(site_id, page, Viewport::Mobile, false)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_baseline(site_id, page, Viewport::Desktop, true)
            .await
            .unwrap(),
        None
    );
    let replaced = Baseline {
        artifact_key: format!("baselines/{site_id}/pricing-mobile-full.png"),
        height: 4100,
        scan_id: second.id,
        approved_by: Some(owner),
        updated_at: tick(),
        ..b.clone()
    };
    store.put_baseline(&replaced).await.unwrap();
    assert_eq!(
        store
            .get_baseline(site_id, page, Viewport::Mobile, true)
            .await
            .unwrap(),
        Some(replaced)
    );
    let unknown_scan = Baseline {
        scan_id: ScanId::new(),
        ..b
    };
    assert!(matches!(
        store.put_baseline(&unknown_scan).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn import_counts_and_is_idempotent(fx: &Fixture) {
    let store = fx.store.as_ref();
    let keys: Vec<ApiKey> = (0..1000).map(|_| ApiKey::generate()).collect();
    let users: Vec<NewUser> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| NewUser {
            id: UserId::new(),
            name: format!("bench-user-{i}"),
            role: if i == 0 { Role::Admin } else { Role::Member },
            key_hash: k.hash(),
            created_at: tick(),
        })
        .collect();
    let sites: Vec<_> = (0..10_000)
        .map(|i| site_value(&format!("bench-site-{i}")))
        .collect();
    let grants: Vec<_> = sites
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, users[i % users.len()].id, SiteRole::Editor))
        .collect();
    let scans: Vec<Scan> = (0..2000)
        .map(|i| {
            let n = new_scan(sites[i % 50].id, CheckType::BrokenLinks, None);
            Scan {
                id: n.id,
                site_id: n.site_id,
                url: n.url,
                options: n.options,
                status: ScanStatus::Completed,
                created_at: n.created_at,
                started_at: Some(n.created_at + 1),
                finished_at: Some(n.created_at + 2),
                summary: Some(serde_json::json!({"pages": i})),
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
    let counts = store.import(&batch).await.unwrap();
    assert_eq!(
        counts,
        ImportCounts {
            users: 1000,
            sites: 10_000,
            grants: 10_000,
            scans: 2000
        }
    );
    assert_eq!(store.import(&batch).await.unwrap(), ImportCounts::default());

    let p = store
        .principal_by_key(&keys[7].hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((p.user_id, p.role), (batch.users[7].id, Role::Member));
    let member_sites = store
        .list_sites(Some(batch.users[7].id), None, 100)
        .await
        .unwrap();
    assert_eq!(member_sites.items.len(), 10);
    assert_eq!(scan(store, batch.scans[42].id).await, batch.scans[42]);
    assert_eq!(
        depth(store).await,
        QueueDepth::default(),
        "imported scans are not queued"
    );

    // A scan of a site that is neither in the batch nor in the store is refused, and the
    // batch with it leaves nothing behind.
    let mut orphan = batch.scans[0].clone();
    orphan.id = ScanId::new();
    orphan.site_id = sentinel_core::SiteId::new();
    let newcomer = site_value("bench-site-late");
    let bad = ImportBatch {
        users: Vec::new(),
        sites: vec![newcomer.clone()],
        grants: Vec::new(),
        scans: vec![orphan.clone()],
    };
    let res = store.import(&bad).await;
    assert!(matches!(res, Err(StoreError::NotFound(_))), "{res:?}");
    assert_eq!(store.get_scan(orphan.id).await.unwrap(), None);
    assert_eq!(store.get_site(newcomer.id).await.unwrap(), None);
}

async fn events_reach_a_peer(fx: &Fixture) {
    let store = fx.store.as_ref();
    let peer = fx.peer().await;
    let mut events = peer.subscribe();
    let (_, site_id) = owned_site(store).await;
    let new = new_scan(site_id, CheckType::BrokenLinks, None);
    store.create_scans(from_ref(&new), 3).await.unwrap();
    wait_for(&mut events, |e| *e == StoreEvent::JobsAvailable).await;
    let lease = lease_one(store, HOUR).await;
    assert!(
        store
            .complete_job(&lease, &serde_json::json!({}), &[])
            .await
            .unwrap()
    );
    assert_eq!(next_finished(&mut events).await, new.id);
}

async fn concurrent_writers_never_see_locked(fx: &Fixture) {
    let store = &fx.store;
    let (owner, site_id) = owned_site(store.as_ref()).await;
    let mut tasks = Vec::new();
    for w in 0..16 {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let batch: Vec<_> = (0..4)
                    .map(|_| new_scan(site_id, CheckType::BrokenLinks, Some(owner)))
                    .collect();
                store.create_scans(&batch, 3).await?;
                // Mix in the other writers: leases, completions, grants.
                for lease in store.lease_jobs(&format!("w{w}"), &BOTH, 2, HOUR).await? {
                    store
                        .complete_job(&lease, &serde_json::json!({}), &findings(5))
                        .await?;
                }
                store.set_grant(site_id, owner, SiteRole::Owner).await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(depth(store.as_ref()).await.running, 0);
    let mut listed = 0;
    let mut after = None;
    loop {
        let page = store.list_scans(site_id, after, MAX_LIMIT).await.unwrap();
        listed += page.items.len();
        match page.next_cursor {
            Some(c) => after = Some(Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(listed, 16 * 20 * 4);
}

// ---- backend-specific -----------------------------------------------------------------------

/// The listener survives losing its connection: after the server kills it, notifications
/// from another instance arrive again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listener_reconnects() {
    let fx = Fixture::postgres().await;
    let store = fx.store.as_ref();
    let peer = fx.peer().await;
    let mut events = peer.subscribe();
    let (_, site_id) = owned_site(store).await;

    let killed = terminate_backends(&fx, "qa-sentinel-listener").await;
    assert_eq!(killed, [true, true], "both instances' listeners were found");

    // The notification of a scan finished before the peer has reconnected is lost (hence
    // the polling everywhere); keep finishing scans until one is heard.
    for round in 0.. {
        assert!(round < 50, "the listener never came back");
        let new = new_scan(site_id, CheckType::BrokenLinks, None);
        store.create_scans(from_ref(&new), 3).await.unwrap();
        let lease = lease_one(store, HOUR).await;
        assert!(
            store
                .complete_job(&lease, &serde_json::json!({}), &[])
                .await
                .unwrap()
        );
        let heard = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                match events.recv().await {
                    Ok(StoreEvent::ScanFinished(id)) if id == new.id => return true,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return false,
                }
            }
        })
        .await;
        if heard == Ok(true) {
            break;
        }
    }
}

/// Pooled connections the server cut off while they sat idle (a restarted server, an idle
/// timeout on the way) are tested and replaced at the next acquire, so no caller sees them
/// fail: connections idle for a second or longer are pinged first (`PING_AFTER_IDLE`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_idle_connections_cut_off_by_the_server_are_replaced() {
    let fx = Fixture::postgres().await;
    let store = fx.store.as_ref();
    let (_, site_id) = owned_site(store).await;
    let killed = terminate_backends(&fx, "qa-sentinel").await;
    assert!(
        !killed.is_empty() && killed.iter().all(|k| *k),
        "{killed:?}"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for _ in 0..20 {
        store.get_site(site_id).await.unwrap().unwrap();
    }
}

/// An unreachable server is `Unavailable` (503 at the API), not a generic error.
#[tokio::test]
async fn postgres_unreachable_is_unavailable() {
    // Port 9 (discard) on loopback: nothing listens there in the test environment.
    let opts = sentinel_store::PgOptions {
        connect_timeout: Duration::from_millis(500),
        ..support::pg_options()
    };
    let res = sentinel_store::PgStore::connect("postgres://postgres@127.0.0.1:9/test", &opts).await;
    assert!(matches!(res, Err(StoreError::Unavailable(_))), "{res:?}");
}

// ---- helpers --------------------------------------------------------------------------------

/// Has the server end the fixture database's connections named `application_name`, as a
/// restart or an idle timeout on the way would; one `true` per connection it ended.
async fn terminate_backends(fx: &Fixture, application_name: &str) -> Vec<bool> {
    let url = fx.pg_url().unwrap();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(application_name)
    .fetch_all(&mut admin)
    .await
    .unwrap()
}

/// Waits (bounded, so a lost event fails the test instead of hanging it) for an event.
async fn wait_for(
    events: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
    want: impl Fn(&StoreEvent) -> bool,
) -> StoreEvent {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(e) if want(&e) => return e,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await
    .expect("event within 10 s")
}

async fn next_finished(events: &mut tokio::sync::broadcast::Receiver<StoreEvent>) -> ScanId {
    match wait_for(events, |e| matches!(e, StoreEvent::ScanFinished(_))).await {
        StoreEvent::ScanFinished(id) => id,
        StoreEvent::JobsAvailable => unreachable!(),
    }
}

/// With a realistic backlog the lease query walks the partial index of due jobs (no sort,
/// no scan of the whole queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lease_uses_the_partial_index() {
    let fx = Fixture::postgres().await;
    let store = fx.store.as_ref();
    let (_, site_id) = owned_site(store).await;
    let scans: Vec<_> = (0..3000)
        .map(|_| new_scan(site_id, CheckType::BrokenLinks, None))
        .collect();
    store.create_scans(&scans, 3).await.unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(fx.pg_url().unwrap())
        .await
        .unwrap();
    sqlx::query("ANALYZE jobs")
        .execute(&mut conn)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT scan_id FROM jobs \
         WHERE state = 'queued' AND run_at <= 9000000000000 \
         AND check_type = ANY('{broken-links,visual-regression}'::text[]) \
         ORDER BY run_at, scan_id LIMIT 10 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(plan.iter().any(|l| l.contains("jobs_due")), "{plan:#?}");
    assert!(!plan.iter().any(|l| l.contains("Sort")), "{plan:#?}");
}
