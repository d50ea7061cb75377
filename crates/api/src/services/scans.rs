//! Scans: submission (validation against the site, permission, deduplication, the queue
//! bound, the durable insert), reads with a cache, listings, and waiting for a result.

use crate::dto::{FindingView, ScanView};
use crate::error::{ApiError, ApiResult};
use crate::extract::PageParams;
use crate::services::access::AccessService;
use crate::services::group_commit::GroupCommitter;
use axum::http::StatusCode;
use bytes::Bytes;
use dashmap::DashMap;
use sentinel_cache::{
    CacheKey, Invalidation, InvalidationBus, RemoteCache, SiteVersions, Tiered, TtlCache,
};
use sentinel_config::Settings;
use sentinel_core::auth::Access;
use sentinel_core::{
    NewScan, Page, Principal, Scan, ScanId, ScanRequest, ScanStatus, SiteId, now_millis,
};
use sentinel_store::{Store, StoreEvent};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// The scan-result cache key: site, the site's cache version, and a hash of URL and options.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct DedupKey {
    site: SiteId,
    version: u64,
    hash: String,
}

impl CacheKey for DedupKey {
    fn remote_key(&self) -> String {
        format!("scan:{{{}}}:v{}:{}", self.site, self.version, self.hash)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ScanKey(pub ScanId);

impl CacheKey for ScanKey {
    fn remote_key(&self) -> String {
        format!("scanrec:{}", self.0)
    }
}

/// A cached scan: what permission checks need, and its rendered JSON (sent as is: a
/// cached read is a reference-count increment, not a serialisation).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ScanEntry {
    pub site_id: SiteId,
    pub status: ScanStatus,
    #[serde(with = "json_bytes")]
    pub body: Bytes,
}

impl ScanEntry {
    fn of(scan: &Scan) -> Self {
        let body = serde_json::to_vec(&ScanView::from(scan)).unwrap_or_default();
        Self {
            site_id: scan.site_id,
            status: scan.status,
            // Shrunk to its length: the serialiser's buffer doubles as it grows, and a cached
            // body would otherwise keep up to twice its size for as long as it is cached
            // (heaptrack: these bodies were the largest live allocation site after W3).
            body: Bytes::from(body.into_boxed_slice()),
        }
    }
}

/// The rendered JSON as a string in the shared cache (not as an array of numbers).
mod json_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(b).map_err(serde::ser::Error::custom)?)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        Ok(Bytes::from(String::deserialize(d)?))
    }
}

/// A validated scan request with its dedup hash: what a repeated body costs to resolve.
#[derive(Debug)]
pub(crate) struct ParsedScan {
    pub req: ScanRequest,
    pub dedup_hash: String,
    /// Taken from the cache of repeated bodies (so not to be stored there again).
    pub remembered: bool,
}

/// What `submit` did.
pub(crate) struct Submitted {
    pub scan_id: ScanId,
    pub status: ScanStatus,
    pub deduplicated: bool,
    pub estimated_duration_ms: u64,
    /// With `?wait=true`: the finished scan (or `None` if the wait timed out).
    pub finished: Option<Option<Scan>>,
}

/// The queued-scan count, refreshed from the store in the background and bumped locally by
/// each insert in between, so that the bound check costs two atomic loads per request.
pub(crate) struct QueueGauge {
    base: AtomicU64,
    since: AtomicU64,
    max: u64,
}

impl QueueGauge {
    fn over_bound(&self) -> bool {
        self.base.load(Ordering::Relaxed) + self.since.load(Ordering::Relaxed) >= self.max
    }
    pub(crate) fn pending(&self) -> u64 {
        self.base.load(Ordering::Relaxed) + self.since.load(Ordering::Relaxed)
    }
}

/// How long to wait before counting the queue again, after a count that took `took`.
fn refresh_pause(took: Duration) -> Duration {
    (took * 100).clamp(Duration::from_millis(500), Duration::from_secs(10))
}

/// Scans.
pub(crate) struct ScanService {
    store: Arc<dyn Store>,
    access: Arc<AccessService>,
    versions: Arc<dyn SiteVersions>,
    dedup: Tiered<DedupKey, ScanId>,
    records: Tiered<ScanKey, ScanEntry>,
    committer: GroupCommitter,
    queue: Arc<QueueGauge>,
    waiters: DashMap<ScanId, Arc<Notify>>,
    bus: Arc<dyn InvalidationBus>,
    /// Bodies that were deduplicated before, by their exact bytes: a client that repeats a
    /// request skips JSON parsing, validation and hashing. Only repeats are remembered, so
    /// a stream of distinct new scans does not churn it.
    parsed: TtlCache<Bytes, Arc<ParsedScan>>,
    live_ttl: Duration,
    record_ttl: Duration,
}

impl ScanService {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        access: Arc<AccessService>,
        versions: Arc<dyn SiteVersions>,
        remote: Option<Arc<dyn RemoteCache>>,
        bus: Arc<dyn InvalidationBus>,
        settings: &Settings,
    ) -> Arc<Self> {
        let idle = Duration::from_secs(settings.cache.l1_ttl_secs);
        let concurrency = match store.backend() {
            sentinel_store::Backend::Sqlite => 1,
            sentinel_store::Backend::Postgres => settings.http.group_commit_concurrency,
        };
        let committer = GroupCommitter::start(
            store.clone(),
            settings.http.group_commit_max_batch,
            concurrency,
            settings.worker.max_attempts,
        );
        let svc = Arc::new(Self {
            store,
            access,
            versions,
            // Without a shared L2, the dedup entries must live in L1 for their whole TTL
            // (up to an hour); with one, L1 may drop them after its idle time.
            dedup: Tiered::new(
                "scan_result",
                settings.cache.l1_capacity,
                if remote.is_some() {
                    idle
                } else {
                    Duration::from_secs(3600)
                },
                remote.clone(),
            ),
            records: Tiered::new("scan_record", settings.cache.l1_capacity, idle, remote),
            committer,
            queue: Arc::new(QueueGauge {
                base: AtomicU64::new(0),
                since: AtomicU64::new(0),
                max: settings.queue_max_pending,
            }),
            waiters: DashMap::new(),
            bus,
            parsed: TtlCache::new(settings.cache.l1_capacity, Some(idle)),
            live_ttl: Duration::from_millis(settings.cache.live_scan_ttl_ms),
            record_ttl: Duration::from_secs(3600),
        });
        svc.clone().spawn_background();
        svc
    }

    fn spawn_background(self: Arc<Self>) {
        // Queue depth refresh. Counting is linear in the backlog (17.6 ms on average on
        // PostgreSQL over a run that queued about 125,000 jobs), so the pause after a count is
        // 100 times what it took, at least 0.5 s and at most 10 s: about 1 % of a connection's
        // time (less for quick counts; more only for counts over 100 ms). Between counts,
        // local inserts are added to the last count, so the estimate only errs high (it
        // misses what workers drained), never lets the bound be overrun.
        let weak = Arc::downgrade(&self);
        tokio::spawn(async move {
            loop {
                let Some(svc) = weak.upgrade() else { return };
                let started = tokio::time::Instant::now();
                if let Ok(depth) = svc.store.queue_depth().await {
                    svc.queue.since.store(0, Ordering::Relaxed);
                    svc.queue.base.store(depth.queued, Ordering::Relaxed);
                }
                drop(svc);
                tokio::time::sleep(refresh_pause(started.elapsed())).await;
            }
        });
        // Finished scans: drop their cached record, wake waiters.
        let weak = Arc::downgrade(&self);
        let mut events = self.store.subscribe();
        tokio::spawn(async move {
            loop {
                let ev = events.recv().await;
                let Some(svc) = weak.upgrade() else { return };
                match ev {
                    Ok(StoreEvent::ScanFinished(id)) => {
                        svc.records.invalidate_local(&ScanKey(id));
                        if let Some(n) = svc.waiters.get(&id) {
                            n.notify_waiters();
                        }
                    }
                    Ok(StoreEvent::JobsAvailable) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Missed events: waiters poll anyway; cached live records expire fast.
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    pub(crate) fn queue(&self) -> &QueueGauge {
        &self.queue
    }

    /// Parses and validates a `POST /api/scan` body (from the cache when it was seen before).
    pub(crate) fn parse(
        &self,
        body: &Bytes,
    ) -> Result<Arc<ParsedScan>, sentinel_core::ValidationErrors> {
        if let Some(p) = self.parsed.get(body) {
            return Ok(p);
        }
        let req = ScanRequest::parse(body)?;
        let dedup_hash = req.dedup_hash();
        Ok(Arc::new(ParsedScan {
            req,
            dedup_hash,
            remembered: false,
        }))
    }

    /// Accepts a scan request (see the module docs).
    pub(crate) async fn submit(
        &self,
        p: &Principal,
        body: &Bytes,
        parsed: Arc<ParsedScan>,
        wait: bool,
    ) -> ApiResult<Submitted> {
        let req = &parsed.req;
        let site = self.access.authorize(p, req.site_id, Access::Write).await?;
        if !site.base_url.same_origin(&req.url) {
            return Err(ApiError::field(
                "url",
                format!(
                    "must lie within the site's origin {}",
                    site.base_url.as_url().origin().ascii_serialization()
                ),
            ));
        }
        let version = self.versions.current(site.id).await;
        let key = DedupKey {
            site: site.id,
            version,
            hash: parsed.dedup_hash.clone(),
        };
        let ttl = Duration::from_secs(req.options.check_type.result_ttl_secs());
        let estimated_duration_ms = req.options.estimated_duration_ms();

        let mut created = false;
        let scan_id = {
            let created = &mut created;
            let user = p.user_id;
            // A miss makes a new scan id and claims the key in L2 with it; if another process
            // holds the key, its scan is the answer, else the row is committed before the
            // answer (see `Tiered::get_or_create`).
            self.dedup
                .get_or_create(
                    &key,
                    ttl,
                    || self.admit().map(|()| ScanId::new()),
                    |id| async move {
                        self.create(id, req, user).await?;
                        *created = true;
                        Ok::<_, ApiError>(())
                    },
                )
                .await?
        };
        let status = if created {
            ScanStatus::Queued
        } else {
            match self.entry(scan_id).await? {
                // A failed scan is not a result worth reusing, and a scan the store does not
                // have is none at all (a database restored or recreated under a live Redis,
                // or another process's new scan whose row is still committing, as if both
                // had missed at once): forget the entry and start a new scan.
                Some(e) if e.status != ScanStatus::Failed => e.status,
                _ => {
                    self.dedup.invalidate(&key).await;
                    return Box::pin(self.submit(p, body, parsed, wait)).await;
                }
            }
        };
        // A repeated body is remembered once (for a minute): inserting it again on every hit
        // cost a copy of the body and a write lock per deduplicated request.
        if !created && !parsed.remembered {
            self.parsed.insert(
                Bytes::copy_from_slice(body),
                Arc::new(ParsedScan {
                    req: parsed.req.clone(),
                    dedup_hash: parsed.dedup_hash.clone(),
                    remembered: true,
                }),
                Duration::from_secs(60),
            );
        }
        let finished = if wait {
            let timeout = Duration::from_millis(u64::from(req.options.timeout_ms));
            Some(self.wait_for(scan_id, timeout).await?)
        } else {
            None
        };
        Ok(Submitted {
            scan_id,
            status,
            deduplicated: !created,
            estimated_duration_ms,
            finished,
        })
    }

    /// Refuses a new scan while the queue is over its bound.
    fn admit(&self) -> ApiResult<()> {
        if self.queue.over_bound() {
            metrics::counter!("scan_rejected_busy_total").increment(1);
            return Err(ApiError::unavailable(
                "QUEUE_FULL",
                "Service busy, try again later",
                30,
            ));
        }
        Ok(())
    }

    /// Inserts scan `id` (and its job); returns once its row is committed.
    async fn create(
        &self,
        id: ScanId,
        req: &ScanRequest,
        user: sentinel_core::UserId,
    ) -> ApiResult<()> {
        let scan = NewScan {
            id,
            site_id: req.site_id,
            url: req.url.to_string(),
            options: req.options.clone(),
            created_by: Some(user),
            created_at: now_millis(),
        };
        self.committer.insert(scan).await?;
        self.queue.since.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A scan's cached entry (no permission check).
    async fn entry(&self, id: ScanId) -> ApiResult<Option<ScanEntry>> {
        let key = ScanKey(id);
        if let Some(e) = self.records.get_local(&key) {
            return Ok(Some(e));
        }
        // Single-flight: when a live record expires under load, one query per process reloads
        // it; without that, every request in that instant went to the database at once.
        let store = &self.store;
        let loaded = self
            .records
            .get_or_load(&key, self.live_ttl, || async move {
                match store.get_scan(id).await? {
                    Some(scan) => Ok(ScanEntry::of(&scan)),
                    None => Err(ApiError::not_found("Scan")),
                }
            })
            .await;
        match loaded {
            Ok(entry) => {
                // Finished scans never change: keep them (ScanFinished events drop live ones).
                if entry.status.is_terminal() {
                    self.records
                        .insert_local(key, entry.clone(), self.record_ttl);
                }
                Ok(Some(entry))
            }
            Err(e) if e.status == StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A scan the caller may read: its JSON.
    pub(crate) async fn get(&self, p: &Principal, id: ScanId) -> ApiResult<Bytes> {
        let entry = self
            .entry(id)
            .await?
            .ok_or_else(|| ApiError::not_found("Scan"))?;
        self.access.check(p, entry.site_id, Access::Read).await?;
        Ok(entry.body)
    }

    /// A site's scans, newest first.
    pub(crate) async fn list(
        &self,
        p: &Principal,
        site: SiteId,
        page: PageParams,
    ) -> ApiResult<Page<ScanView>> {
        self.access.check(p, site, Access::Read).await?;
        let scans = self.store.list_scans(site, page.cursor, page.limit).await?;
        Ok(Page {
            items: scans.items.iter().map(ScanView::from).collect(),
            next_cursor: scans.next_cursor,
        })
    }

    /// A scan's findings.
    pub(crate) async fn findings(
        &self,
        p: &Principal,
        id: ScanId,
        page: PageParams,
    ) -> ApiResult<Page<FindingView>> {
        let entry = self
            .entry(id)
            .await?
            .ok_or_else(|| ApiError::not_found("Scan"))?;
        self.access.check(p, entry.site_id, Access::Read).await?;
        let found = self
            .store
            .list_findings(id, page.cursor, page.limit)
            .await?;
        Ok(Page {
            items: found.items.into_iter().map(FindingView::from).collect(),
            next_cursor: found.next_cursor,
        })
    }

    /// Checks that the caller may do `access` on a scan's site; returns the site id.
    pub(crate) async fn authorize_scan(
        &self,
        p: &Principal,
        id: ScanId,
        access: Access,
    ) -> ApiResult<SiteId> {
        let entry = self
            .entry(id)
            .await?
            .ok_or_else(|| ApiError::not_found("Scan"))?;
        self.access.check(p, entry.site_id, access).await?;
        Ok(entry.site_id)
    }

    /// Waits until a scan is finished, at most `timeout`. `None`: still running.
    pub(crate) async fn wait_for(&self, id: ScanId, timeout: Duration) -> ApiResult<Option<Scan>> {
        let notify = self.waiters.entry(id).or_default().clone();
        let deadline = tokio::time::Instant::now() + timeout;
        let result = loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.store.get_scan(id).await? {
                Some(scan) if scan.status.is_terminal() => break Some(scan),
                Some(_) => {}
                None => break None,
            }
            // Notifications are hints (they can be lost); poll at least every second.
            let poll = tokio::time::sleep(Duration::from_secs(1));
            tokio::select! {
                () = notified => {}
                () = poll => {}
                () = tokio::time::sleep_until(deadline) => break None,
            }
        };
        drop(notify);
        self.waiters
            .remove_if(&id, |_, n| Arc::strong_count(n) == 1);
        Ok(result)
    }

    /// Drops a site's cached scan results: new requests start new scans, in every process.
    pub(crate) async fn invalidate_site(&self, site: SiteId) {
        self.versions.bump(site).await;
        self.dedup.retain_local(|k, _| k.site != site);
        self.bus.publish(Invalidation::SiteResults { site }).await;
    }

    /// Applies another process's site invalidation to this process.
    pub(crate) fn forget_site(&self, site: SiteId) {
        self.versions.forget(site);
        self.dedup.retain_local(|k, _| k.site != site);
    }

    pub(crate) fn cache_stats(&self) -> [(&'static str, sentinel_cache::CacheStatsSnapshot); 2] {
        [
            (self.dedup.name(), self.dedup.stats().snapshot()),
            (self.records.name(), self.records.stats().snapshot()),
        ]
    }
}

impl From<&Submitted> for StatusCode {
    fn from(s: &Submitted) -> Self {
        match &s.finished {
            Some(Some(_)) => Self::OK,
            Some(None) => Self::REQUEST_TIMEOUT,
            None => Self::ACCEPTED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_counted_again_after_a_pause_that_follows_the_cost_of_counting() {
        let ms = Duration::from_millis;
        assert_eq!(refresh_pause(ms(1)), ms(500));
        assert_eq!(refresh_pause(ms(17)), ms(1700));
        assert_eq!(refresh_pause(ms(250)), Duration::from_secs(10));
    }
}
