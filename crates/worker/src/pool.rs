//! The lease loop and the bounded pool of running scans.

use crate::backoff::retry_delay;
use crate::executor::{ExecError, ExecutorRegistry, JobContext, ScanOutcome};
use sentinel_cache::{HeldLock, LocalLocks, Locks, scan_lock_key};
use sentinel_core::{CheckType, now_millis};
use sentinel_store::{JobFate, Lease, Store, StoreError, StoreEvent};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, broadcast};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

/// Tuning of a worker pool.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// This worker's id in leases (host and pid make it findable in the queue table).
    pub worker_id: String,
    /// Scans run at once.
    pub slots: u32,
    /// Lease length without a heartbeat.
    pub lease: Duration,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Queue poll period when no wake-up arrives.
    pub poll_interval: Duration,
    /// Expired-lease reaper period.
    pub reaper_interval: Duration,
    /// Longest a single scan may run.
    pub max_scan: Duration,
    /// First retry delay.
    pub retry_base: Duration,
    /// Largest retry delay.
    pub retry_max: Duration,
    /// On shutdown, how long running scans may take to finish.
    pub shutdown_grace: Duration,
}

impl WorkerConfig {
    /// A worker id from the host name and process id.
    #[must_use]
    pub fn default_worker_id() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".to_owned());
        format!("{host}:{}", std::process::id())
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            worker_id: Self::default_worker_id(),
            slots: 4,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            reaper_interval: Duration::from_secs(5),
            max_scan: Duration::from_secs(900),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// Gauges of a pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerPoolStats {
    /// Slots in all.
    pub size: u32,
    /// Slots running a scan.
    pub busy: u32,
    /// Free slots.
    pub available: u32,
    /// Scans finished by this pool since start.
    pub completed: u64,
    /// Scans that failed for good in this pool since start.
    pub failed: u64,
}

/// The outcome of taking a scan's lock.
enum ScanLock {
    Held(HeldLock),
    /// Held elsewhere after a short wait.
    Busy,
    /// The lock backend cannot be reached.
    Unavailable,
}

/// How a job ended, from the runtime's point of view.
enum RunEnd {
    Done(Result<ScanOutcome, ExecError>),
    /// Shutdown asked the scan to stop: give it back to the queue.
    Released,
    /// Another worker owns the job now; write nothing.
    LeaseLost,
}

/// A pool of `slots` concurrent scans fed by the store's queue.
pub struct WorkerPool {
    store: Arc<dyn Store>,
    executors: ExecutorRegistry,
    config: WorkerConfig,
    /// Per site+URL+options: one scan of the same work at a time (see `scan_lock`).
    locks: Arc<dyn Locks>,
    busy: Arc<AtomicU32>,
    completed: AtomicU64,
    failed: AtomicU64,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("worker_id", &self.config.worker_id)
            .field("slots", &self.config.slots)
            .field("executors", &self.executors)
            .finish_non_exhaustive()
    }
}

impl WorkerPool {
    /// A pool over `store` running the given executors.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, executors: ExecutorRegistry, config: WorkerConfig) -> Self {
        Self {
            store,
            executors,
            config,
            locks: Arc::new(LocalLocks::new()),
            busy: Arc::new(AtomicU32::new(0)),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// Uses `locks` (shared by every worker process, e.g. Redis) instead of the default
    /// in-process locks, so that one site+URL+options is never scanned twice at once across
    /// the whole fleet.
    #[must_use]
    pub fn with_locks(mut self, locks: Arc<dyn Locks>) -> Self {
        self.locks = locks;
        self
    }

    /// Current gauges.
    #[must_use]
    pub fn stats(&self) -> WorkerPoolStats {
        let busy = self.busy.load(Ordering::Relaxed);
        WorkerPoolStats {
            size: self.config.slots,
            busy,
            available: self.config.slots.saturating_sub(busy),
            completed: self.completed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// The check types this pool runs.
    #[must_use]
    pub fn check_types(&self) -> Vec<CheckType> {
        self.executors.check_types()
    }

    /// Runs until `shutdown` is cancelled, then drains: no new leases, running scans get
    /// `shutdown_grace` to finish, the rest are returned to the queue.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let types = self.executors.check_types();
        if types.is_empty() {
            warn!("worker pool has no executors; not leasing");
            shutdown.cancelled().await;
            return;
        }
        info!(worker = %self.config.worker_id, slots = self.config.slots, ?types, "worker pool started");
        let slots = Arc::new(Semaphore::new(self.config.slots as usize));
        let jobs_cancel = CancellationToken::new();
        let mut events = self.store.subscribe();
        let mut tasks = JoinSet::new();
        let mut reaper = tokio::time::interval(self.config.reaper_interval);
        reaper.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut store_backoff = Duration::from_millis(100);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let free = slots.available_permits();
            let mut leased_all = false;
            if free > 0 {
                let free_u32 = u32::try_from(free).unwrap_or(u32::MAX);
                match self
                    .store
                    .lease_jobs(&self.config.worker_id, &types, free_u32, self.config.lease)
                    .await
                {
                    Ok(leases) => {
                        store_backoff = Duration::from_millis(100);
                        leased_all = !leases.is_empty() && leases.len() == free;
                        for lease in leases {
                            let Ok(permit) = slots.clone().try_acquire_owned() else {
                                // Cannot happen (we leased at most `free`); return the job.
                                let _ = self.store.release_job(&lease).await;
                                continue;
                            };
                            let pool = self.clone();
                            let cancel = jobs_cancel.child_token();
                            tasks.spawn(async move {
                                pool.run_job(lease, cancel).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, retry_in = ?store_backoff, "leasing jobs failed");
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(store_backoff) => {}
                        }
                        store_backoff = (store_backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            if leased_all {
                // There may be more due jobs: come back as soon as a slot frees.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    Some(_) = tasks.join_next() => {}
                }
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                ev = events.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = ev {
                        // The store's event source went away; polling alone still works.
                        events = broadcast::channel(1).1;
                        tokio::time::sleep(self.config.poll_interval).await;
                    }
                    // Any event (or a lag) is a hint to look at the queue again.
                    if let Ok(StoreEvent::ScanFinished(_)) = ev {
                        continue;
                    }
                }
                () = tokio::time::sleep(self.config.poll_interval) => {}
                _ = reaper.tick() => self.reap().await,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        self.drain(tasks, jobs_cancel).await;
        info!(worker = %self.config.worker_id, "worker pool stopped");
    }

    async fn reap(&self) {
        match self.store.requeue_expired().await {
            Ok(0) => {}
            Ok(n) => info!(jobs = n, "returned jobs with expired leases to the queue"),
            Err(e) => debug!(error = %e, "reaping expired leases failed"),
        }
    }

    async fn drain(&self, mut tasks: JoinSet<()>, jobs_cancel: CancellationToken) {
        if tasks.is_empty() {
            return;
        }
        info!(running = tasks.len(), grace = ?self.config.shutdown_grace, "waiting for running scans");
        let deadline = tokio::time::sleep(self.config.shutdown_grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { return },
                () = &mut deadline => break,
            }
        }
        warn!(
            running = tasks.len(),
            "grace period over; returning running scans to the queue"
        );
        jobs_cancel.cancel();
        while tasks.join_next().await.is_some() {}
    }

    /// Leases and runs due jobs until the queue has none (tests and one-shot use). Returns
    /// how many jobs it ran.
    pub async fn run_until_idle(self: &Arc<Self>) -> Result<usize, StoreError> {
        let types = self.executors.check_types();
        let mut ran = 0;
        loop {
            let leases = self
                .store
                .lease_jobs(
                    &self.config.worker_id,
                    &types,
                    self.config.slots,
                    self.config.lease,
                )
                .await?;
            if leases.is_empty() {
                return Ok(ran);
            }
            let mut set = JoinSet::new();
            for lease in leases {
                ran += 1;
                let pool = self.clone();
                set.spawn(async move { pool.run_job(lease, CancellationToken::new()).await });
            }
            while set.join_next().await.is_some() {}
        }
    }

    async fn run_job(self: Arc<Self>, lease: Lease, shutdown: CancellationToken) {
        let scan_id = lease.scan.id;
        let check_type = lease.scan.check_type();
        let span = info_span!("scan", scan_id = %scan_id, check_type = %check_type, attempt = lease.attempt);
        async move {
            self.busy.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let end = self.execute_with_heartbeat(&lease, shutdown).await;
            let secs = started.elapsed().as_secs_f64();
            metrics::histogram!("scan_duration_seconds", "type" => check_type.as_str())
                .record(secs);
            self.finish(&lease, end).await;
            self.busy.fetch_sub(1, Ordering::Relaxed);
        }
        .instrument(span)
        .await;
    }

    async fn execute_with_heartbeat(&self, lease: &Lease, shutdown: CancellationToken) -> RunEnd {
        let site = match self.store.get_site(lease.scan.site_id).await {
            Ok(Some(site)) => site,
            Ok(None) => {
                return RunEnd::Done(Err(ExecError::Permanent(
                    "the scan's site no longer exists".into(),
                )));
            }
            Err(e) => {
                return RunEnd::Done(Err(ExecError::Retryable(format!(
                    "loading the site failed: {e}"
                ))));
            }
        };
        let Some(executor) = self.executors.get(lease.scan.check_type()).cloned() else {
            return RunEnd::Done(Err(ExecError::Permanent(format!(
                "no executor for check type {}",
                lease.scan.check_type()
            ))));
        };
        let lock = match self.scan_lock(lease, &shutdown).await {
            ScanLock::Held(lock) => Some(lock),
            ScanLock::Unavailable => None,
            ScanLock::Busy => return RunEnd::Released,
        };
        let run_cancel = CancellationToken::new();
        let ctx = JobContext {
            scan: lease.scan.clone(),
            site,
            attempt: lease.attempt,
            max_attempts: lease.max_attempts,
            cancel: run_cancel.clone(),
        };
        // The executor runs in its own task so that a panic in a check fails the attempt
        // instead of taking the worker down with the job stuck until its lease expires.
        let mut run = tokio::spawn(async move { executor.execute(&ctx).await });
        let mut heartbeat = tokio::time::interval(self.config.heartbeat);
        heartbeat.tick().await;
        let deadline = tokio::time::sleep(self.config.max_scan);
        tokio::pin!(deadline);
        let end = loop {
            tokio::select! {
                joined = &mut run => {
                    break match joined {
                        Ok(result) => RunEnd::Done(result),
                        Err(e) if e.is_panic() => RunEnd::Done(Err(ExecError::Retryable("the check panicked".into()))),
                        Err(_) => RunEnd::Released,
                    };
                }
                _ = heartbeat.tick() => {
                    match self.store.heartbeat(lease, self.config.lease).await {
                        Ok(true) => self.renew_scan_lock(lock.as_ref()).await,
                        Ok(false) => {
                            warn!("lease lost (taken over after expiry); stopping this run");
                            run_cancel.cancel();
                            run.abort();
                            break RunEnd::LeaseLost;
                        }
                        // The store may be briefly down; the lease is long enough to ride it out.
                        Err(e) => warn!(error = %e, "heartbeat failed"),
                    }
                }
                () = &mut deadline => {
                    run_cancel.cancel();
                    run.abort();
                    break RunEnd::Done(Err(ExecError::Permanent(format!(
                        "scan exceeded the maximum duration of {} s", self.config.max_scan.as_secs()
                    ))));
                }
                () = shutdown.cancelled() => {
                    run_cancel.cancel();
                    run.abort();
                    break RunEnd::Released;
                }
            }
        };
        if let Some(lock) = lock {
            // Compare-and-delete: a no-op if the lock expired and someone else holds it.
            if let Err(e) = self.locks.release(&lock).await {
                debug!(error = %e, "releasing the scan lock failed; it expires by itself");
            }
        }
        end
    }

    /// Takes the lock on a scan's work (site, URL and options), so that two jobs for the
    /// same work (say, one submitted again after its site's cache was invalidated) never
    /// run side by side on different workers. The job lease alone cannot see that: it
    /// fences each job, not the work. The lock is a lease too (TTL = the job lease, renewed
    /// with each heartbeat), so a killed holder frees it by itself.
    ///
    /// When another worker holds it, this waits a little (that scan is often about to
    /// finish) and then gives up: the job goes back to the queue, its attempt not counted.
    /// When the lock backend is down, the scan runs without the lock: duplicate work is a
    /// smaller harm than no scans, and results stay correct through the job lease.
    async fn scan_lock(&self, lease: &Lease, shutdown: &CancellationToken) -> ScanLock {
        let scan = &lease.scan;
        let key = scan_lock_key(scan.site_id, &scan.url, &scan.options);
        let deadline = Instant::now() + (self.config.lease / 2).min(Duration::from_secs(5));
        let mut pause = Duration::from_millis(100);
        loop {
            match self.locks.try_acquire(&key, self.config.lease).await {
                Ok(Some(lock)) => return ScanLock::Held(lock),
                Ok(None) if Instant::now() + pause < deadline => {
                    tokio::select! {
                        () = shutdown.cancelled() => return ScanLock::Busy,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Ok(None) => {
                    metrics::counter!("scan_lock_busy_total").increment(1);
                    info!(
                        "another worker is scanning the same site, URL and options; returning the job"
                    );
                    return ScanLock::Busy;
                }
                Err(e) => {
                    metrics::counter!("scan_lock_unavailable_total").increment(1);
                    warn!(error = %e, "scan lock unavailable; scanning without it");
                    return ScanLock::Unavailable;
                }
            }
        }
    }

    async fn renew_scan_lock(&self, lock: Option<&HeldLock>) {
        let Some(lock) = lock else { return };
        match self.locks.renew(lock, self.config.lease).await {
            Ok(true) => {}
            // Expired (a long stall, or Redis lost it): the job lease still fences our
            // writes, so finish the scan rather than waste it.
            Ok(false) => warn!("scan lock lost; finishing the scan under its job lease"),
            Err(e) => debug!(error = %e, "renewing the scan lock failed"),
        }
    }

    async fn finish(&self, lease: &Lease, end: RunEnd) {
        let check_type = lease.scan.check_type().as_str();
        match end {
            RunEnd::LeaseLost => {}
            RunEnd::Released => match self.store.release_job(lease).await {
                Ok(_) => info!("scan returned to the queue"),
                Err(e) => warn!(error = %e, "returning the scan failed; its lease will expire"),
            },
            RunEnd::Done(Ok(outcome)) => {
                let findings = outcome.findings.len();
                match retry_store(|| {
                    self.store
                        .complete_job(lease, &outcome.summary, &outcome.findings)
                })
                .await
                {
                    Ok(true) => {
                        self.completed.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("scans_completed_total", "status" => "completed", "type" => check_type)
                            .increment(1);
                        info!(findings, "scan completed");
                    }
                    Ok(false) => warn!("lease lost before completion; result discarded"),
                    Err(e) => {
                        error!(error = %e, "storing the result failed; the scan will be retried")
                    }
                }
            }
            RunEnd::Done(Err(err)) => {
                let (retry_at, reason) = match &err {
                    ExecError::Retryable(msg) if lease.attempt < lease.max_attempts => {
                        let delay = retry_delay(
                            lease.attempt,
                            self.config.retry_base,
                            self.config.retry_max,
                        );
                        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                        (Some(now_millis().saturating_add(delay_ms)), msg.clone())
                    }
                    ExecError::Retryable(msg) => (
                        None,
                        format!("{msg} (gave up after {} attempts)", lease.attempt),
                    ),
                    ExecError::Permanent(msg) => (None, msg.clone()),
                };
                match retry_store(|| self.store.fail_job(lease, &reason, retry_at)).await {
                    Ok(JobFate::Retrying) => {
                        warn!(error = %reason, "scan attempt failed; will retry");
                    }
                    Ok(JobFate::Failed) => {
                        self.failed.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("scans_completed_total", "status" => "failed", "type" => check_type)
                            .increment(1);
                        warn!(error = %reason, "scan failed");
                    }
                    Ok(JobFate::LeaseLost) => warn!("lease lost before recording the failure"),
                    Err(e) => {
                        error!(error = %e, "recording the failure failed; the lease will expire")
                    }
                }
            }
        }
    }
}

/// Retries a store write a few times while the database is unavailable: a finished scan's
/// result is worth a short wait, and the lease protects against double writes.
async fn retry_store<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(200);
    for _ in 0..5 {
        match op().await {
            Err(StoreError::Unavailable(msg)) => {
                debug!(error = %msg, "store unavailable; retrying write");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    op().await
}

#[cfg(test)]
mod scan_lock_tests {
    //! Two pools (two worker processes) sharing one lock backend and one store.

    use super::*;
    use crate::executor::ScanExecutor;
    use async_trait::async_trait;
    use sentinel_core::{ApiKeyHash, NewScan, Role, ScanId, ScanOptions, ScanStatus, Site};
    use sentinel_core::{SiteId, SiteUrl, UserId};
    use sentinel_store::{NewUser, SqliteOptions, SqliteStore};

    /// Counts how many runs overlap.
    #[derive(Default)]
    struct Slow {
        running: AtomicU32,
        most: AtomicU32,
    }

    #[async_trait]
    impl ScanExecutor for Slow {
        fn check_type(&self) -> CheckType {
            CheckType::BrokenLinks
        }
        async fn execute(&self, _ctx: &JobContext) -> Result<ScanOutcome, ExecError> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            Ok(ScanOutcome::default())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_same_work_never_runs_twice_at_once_across_pools() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(dir.path().join("db"), &SqliteOptions::default())
                .await
                .unwrap(),
        );
        store.migrate().await.unwrap();
        let user = store
            .create_user(&NewUser {
                id: UserId::new(),
                name: "u".into(),
                role: Role::Admin,
                key_hash: ApiKeyHash::of(b"k"),
                created_at: now_millis(),
            })
            .await
            .unwrap();
        let site = Site {
            id: SiteId::new(),
            name: "s".into(),
            base_url: SiteUrl::parse("http://127.0.0.1:9/").unwrap(),
            created_at: now_millis(),
        };
        store.create_site(&site, user.id).await.unwrap();
        // Three jobs for the same work (same site, URL and options).
        let scan = |url: &str| NewScan {
            id: ScanId::new(),
            site_id: site.id,
            url: url.into(),
            options: ScanOptions::default(),
            created_by: Some(user.id),
            created_at: now_millis(),
        };
        let scans = [
            scan("http://127.0.0.1:9/"),
            scan("http://127.0.0.1:9/"),
            scan("http://127.0.0.1:9/"),
        ];
        store.create_scans(&scans, 3).await.unwrap();

        let slow = Arc::new(Slow::default());
        let locks: Arc<dyn Locks> = Arc::new(LocalLocks::new());
        let pool = |id: &str| {
            let config = WorkerConfig {
                worker_id: id.into(),
                slots: 1,
                ..WorkerConfig::default()
            };
            Arc::new(
                WorkerPool::new(
                    store.clone(),
                    ExecutorRegistry::new().with(slow.clone()),
                    config,
                )
                .with_locks(locks.clone()),
            )
        };
        let (a, b) = (pool("a"), pool("b"));
        let (ra, rb) = tokio::join!(a.run_until_idle(), b.run_until_idle());
        assert!(ra.unwrap() + rb.unwrap() >= 3);
        for s in &scans {
            let got = store.get_scan(s.id).await.unwrap().unwrap();
            assert_eq!(got.status, ScanStatus::Completed, "{got:?}");
            assert_eq!(got.attempts, 1, "waiting for the lock costs no attempt");
        }
        assert_eq!(
            slow.most.load(Ordering::SeqCst),
            1,
            "two runs of the same work overlapped"
        );
    }
}
