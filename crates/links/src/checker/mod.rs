//! The crawl-and-check engine.
//!
//! One coordinating task owns all the state (the URL table, per-host queues, counters) and
//! spawns one task per fetch; fetch tasks only do IO and parsing and hand back their
//! findings. No locks are needed, each unique URL is fetched once, and the coordinator
//! decides what runs next:
//!
//! * per-host queues with a concurrency cap and an optional minimum interval per host
//!   (requests per second, or robots.txt `Crawl-delay`), served round-robin so one slow host
//!   cannot starve the others, under a global concurrency cap;
//! * pages to crawl go before plain checks on the same host: they are what discovers
//!   more work;
//! * retries wait in a timer heap, not in a slot; a 429 or 503 pauses its whole host;
//! * what a URL needs grows as links to it are found (a plain check, then its anchors for
//!   a `#fragment`, then its links if it is a same-origin page within the limits); a URL
//!   already fetched with less is fetched again with more, at most twice.

mod job;
mod retry;

pub(crate) use job::CheckResult;
use job::{JobContext, Mode, Outcome, same_origin};

use crate::config::CheckerConfig;
use crate::extract::Element;
use crate::normalize::{Resolved, decode_fragment, normalize};
use crate::progress::{Progress, ProgressSnapshot};
use crate::report::{BrokenKind, BrokenLink, Report, Source, Stats, Summary};
use crate::robots::RobotsRules;
use crate::sitemap;
use sentinel_netguard::{
    BuildError, Client, ClientConfig, Guard, HickoryResolver, Limits, Request, ResolveError,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

/// Why a run could not produce a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The start URL is not an absolute http(s) URL.
    #[error("the start URL must be an absolute http or https URL: {0}")]
    InvalidStart(String),
    /// The system resolver could not be set up.
    #[error(transparent)]
    Resolver(#[from] ResolveError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] BuildError),
    /// The start page itself is broken, so there is nothing to crawl.
    #[error("the start page {url} is broken: {kind} ({message})")]
    StartPage {
        /// The start URL.
        url: String,
        /// Why.
        kind: BrokenKind,
        /// The status, when there was an answer.
        status: Option<u16>,
        /// Details.
        message: String,
    },
    /// The run was cancelled through its token.
    #[error("the run was cancelled")]
    Cancelled,
}

/// The broken-links engine: crawls a site from a start URL and checks every link and asset.
#[derive(Debug, Clone)]
pub struct LinkChecker {
    config: CheckerConfig,
}

/// Robots `Crawl-delay` is honoured up to this; a larger value would stall a scan for hours.
const MAX_CRAWL_DELAY: Duration = Duration::from_secs(5);
/// Most sitemap files read (a sitemap index can point at many).
const MAX_SITEMAPS: usize = 16;
/// Most bytes of robots.txt read (RFC 9309 asks for at least 500 KiB).
const MAX_ROBOTS_BYTES: usize = 512 * 1024;

impl LinkChecker {
    /// An engine with this configuration.
    #[must_use]
    pub fn new(config: CheckerConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &CheckerConfig {
        &self.config
    }

    /// Crawls from `start` and checks everything found. `progress` is told after every
    /// finished check; cancelling `cancel` stops the run (in-flight fetches are aborted).
    pub async fn run(
        &self,
        start: Url,
        progress: &dyn Progress,
        cancel: CancellationToken,
    ) -> Result<Report, RunError> {
        let started = Instant::now();
        if !matches!(start.scheme(), "http" | "https") || start.host().is_none() {
            return Err(RunError::InvalidStart(start.to_string()));
        }
        let start = normalize(&start);
        let cfg = &self.config;
        let resolver = match &cfg.resolver {
            Some(r) => Arc::clone(r),
            None => Arc::new(HickoryResolver::from_system_conf()?),
        };
        let guard = Guard::new(cfg.egress.clone(), resolver);
        let limits = Limits {
            max_redirects: cfg.max_redirects,
            max_body_bytes: cfg.max_page_bytes,
            timeout: cfg.timeout,
            connect_timeout: cfg.timeout.min(Duration::from_secs(10)),
        };
        let client = Client::new(
            guard,
            ClientConfig {
                limits,
                user_agent: cfg.user_agent.clone(),
                max_idle_per_host: cfg.per_host_concurrency as usize,
            },
        )?;
        let ctx = Arc::new(JobContext {
            client,
            site: start.clone(),
            site_headers: cfg.site_headers.clone(),
            timeout: cfg.timeout,
            max_retries: cfg.max_retries,
            retry_base: cfg.retry_base,
            max_retry_after: cfg.max_retry_after,
        });
        let mut engine = Engine::new(cfg, ctx, start.clone());
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(RunError::Cancelled),
            () = engine.prepare() => {}
        }
        engine.seed(start);
        engine.drive(progress, &cancel).await?;
        engine.report(started.elapsed())
    }
}

type UrlId = u32;
type HostId = u32;
/// A link occurrence: the page it is on, and the element.
type SourceRef = (UrlId, Element);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Queued,
    Running,
    Done,
}

#[derive(Debug)]
struct Entry {
    url: Url,
    host: HostId,
    internal: bool,
    depth: u32,
    sources: Vec<SourceRef>,
    fragments: Vec<(Box<str>, Option<SourceRef>)>,
    want_crawl: bool,
    want_anchors: bool,
    state: State,
    result: Option<Arc<CheckResult>>,
    attempt: u32,
    robots_disallowed: bool,
}

impl Entry {
    fn mode(&self) -> Mode {
        if self.want_crawl {
            Mode::Crawl
        } else if self.want_anchors {
            Mode::Anchors
        } else {
            Mode::Head
        }
    }
}

#[derive(Debug)]
struct Host {
    pages: VecDeque<UrlId>,
    checks: VecDeque<UrlId>,
    in_flight: u32,
    limit: u32,
    interval: Duration,
    next_at: Instant,
    ready: bool,
}

impl Host {
    fn queued(&self) -> bool {
        !self.pages.is_empty() || !self.checks.is_empty()
    }
}

struct Finished {
    id: UrlId,
    mode: Mode,
    outcome: Outcome,
    fetches: u64,
}

struct Engine<'a> {
    cfg: &'a CheckerConfig,
    ctx: Arc<JobContext>,
    site: Url,
    robots: RobotsRules,
    sitemap_seeds: Vec<(Url, String)>,
    entries: Vec<Entry>,
    index: HashMap<String, UrlId>,
    hosts: Vec<Host>,
    host_index: HashMap<String, HostId>,
    ready: VecDeque<HostId>,
    delayed: BinaryHeap<Reverse<(Instant, u64, UrlId)>>,
    seq: u64,
    tasks: JoinSet<Finished>,
    running: HashMap<tokio::task::Id, UrlId>,
    in_flight: u32,
    queued: u64,
    pages_planned: u32,
    pages_crawled: u64,
    checked: u64,
    broken: u64,
    stats: Stats,
}

impl<'a> Engine<'a> {
    fn new(cfg: &'a CheckerConfig, ctx: Arc<JobContext>, site: Url) -> Self {
        Self {
            cfg,
            ctx,
            site,
            robots: RobotsRules::allow_all(),
            sitemap_seeds: Vec::new(),
            entries: Vec::new(),
            index: HashMap::new(),
            hosts: Vec::new(),
            host_index: HashMap::new(),
            ready: VecDeque::new(),
            delayed: BinaryHeap::new(),
            seq: 0,
            tasks: JoinSet::new(),
            running: HashMap::new(),
            in_flight: 0,
            queued: 0,
            pages_planned: 0,
            pages_crawled: 0,
            checked: 0,
            broken: 0,
            stats: Stats::default(),
        }
    }

    /// Reads robots.txt and the sitemap(s) before the crawl starts.
    async fn prepare(&mut self) {
        let agent = self
            .cfg
            .user_agent
            .split(['/', ' '])
            .next()
            .unwrap_or("qa-sentinel")
            .to_owned();
        if self.cfg.respect_robots
            && let Ok(robots_url) = self.site.join("/robots.txt")
        {
            self.robots = self.fetch_robots(robots_url, &agent).await;
        }
        if self.cfg.use_sitemap {
            let mut pending: VecDeque<Url> = self
                .robots
                .sitemaps()
                .iter()
                .filter(|u| same_origin(u, &self.site))
                .cloned()
                .collect();
            if pending.is_empty() {
                pending.extend(self.site.join("/sitemap.xml").ok());
            }
            let budget = self.cfg.max_pages as usize;
            let mut read = 0;
            while let Some(map_url) = pending.pop_front() {
                if read == MAX_SITEMAPS || self.sitemap_seeds.len() >= budget {
                    break;
                }
                read += 1;
                let Some(body) = self.fetch_small(map_url.clone(), 50 * 1024 * 1024).await else {
                    continue;
                };
                let parsed = sitemap::parse(&body, budget);
                for loc in parsed.sitemaps {
                    if let Ok(u) = map_url.join(&loc)
                        && same_origin(&u, &self.site)
                    {
                        pending.push_back(u);
                    }
                }
                let source = map_url.to_string();
                self.sitemap_seeds.extend(
                    parsed
                        .pages
                        .into_iter()
                        .filter_map(|p| map_url.join(&p).ok().map(|u| (u, source.clone()))),
                );
            }
        }
    }

    async fn fetch_robots(&self, url: Url, agent: &str) -> RobotsRules {
        match self
            .ctx
            .client
            .fetch(Request::get(url.clone()).timeout(self.cfg.timeout))
            .await
        {
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(body) => {
                    let body = &body[..body.len().min(MAX_ROBOTS_BYTES)];
                    RobotsRules::parse(body, agent)
                }
                Err(_) => RobotsRules::allow_all(),
            },
            // 4xx: no rules. 5xx or unreachable: RFC 9309 says to assume "disallow all",
            // which would make the checker useless on exactly the sites that need it; the
            // site owner asked for this scan, so it goes ahead, with a warning.
            Ok(r) if r.status().is_client_error() => RobotsRules::allow_all(),
            Ok(r) => {
                tracing::warn!(%url, status = %r.status(), "robots.txt unavailable; crawling without it");
                RobotsRules::allow_all()
            }
            Err(e) => {
                tracing::warn!(%url, error = %e, "robots.txt unreachable; crawling without it");
                RobotsRules::allow_all()
            }
        }
    }

    async fn fetch_small(&self, url: Url, cap: usize) -> Option<bytes::Bytes> {
        let mut request = Request::get(url).timeout(self.cfg.timeout);
        if !self.cfg.site_headers.is_empty() {
            request = request.headers(&self.cfg.site_headers);
        }
        let response = self.ctx.client.fetch(request).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.bytes().await.ok()?;
        (body.len() <= cap).then_some(body)
    }

    fn seed(&mut self, start: Url) {
        let resolved = Resolved {
            url: start,
            fragment: None,
        };
        self.discover(resolved, Element::A, None, 0);
        let seeds = std::mem::take(&mut self.sitemap_seeds);
        let mut sitemap_ids: HashMap<String, UrlId> = HashMap::new();
        for (url, map) in seeds {
            let source = match sitemap_ids.get(&map) {
                Some(&id) => id,
                None => {
                    let Ok(map_url) = Url::parse(&map) else {
                        continue;
                    };
                    let id = self.sitemap_entry(map_url);
                    sitemap_ids.insert(map, id);
                    id
                }
            };
            if let Some(r) = crate::normalize::resolve(&self.site, url.as_str()) {
                self.discover(r, Element::Sitemap, Some((source, Element::Sitemap)), 1);
            }
        }
    }

    /// The sitemap file as a page of the URL table (it is where its URLs are "linked").
    fn sitemap_entry(&mut self, url: Url) -> UrlId {
        let url = normalize(&url);
        if let Some(&id) = self.index.get(url.as_str()) {
            return id;
        }
        let id = self.add_entry(url, true, 0);
        let e = &mut self.entries[id as usize];
        e.state = State::Done;
        e.result = Some(Arc::new(CheckResult {
            status: Some(200),
            problem: None,
            redirects: Vec::new(),
            anchors: None,
            fetched: Mode::Crawl,
        }));
        id
    }

    fn host_of(&mut self, url: &Url) -> HostId {
        let key = format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        );
        if let Some(&h) = self.host_index.get(&key) {
            return h;
        }
        let site = same_origin(url, &self.site);
        let mut interval = match self.cfg.requests_per_second {
            0 => Duration::ZERO,
            rps => Duration::from_secs(1) / rps,
        };
        let mut limit = self.cfg.per_host_concurrency.max(1);
        if site
            && self.cfg.respect_robots
            && let Some(delay) = self.robots.crawl_delay()
        {
            interval = interval.max(delay.min(MAX_CRAWL_DELAY));
            limit = 1;
        }
        let id = u32::try_from(self.hosts.len()).unwrap_or(u32::MAX);
        self.hosts.push(Host {
            pages: VecDeque::new(),
            checks: VecDeque::new(),
            in_flight: 0,
            limit,
            interval,
            next_at: Instant::now(),
            ready: false,
        });
        self.host_index.insert(key, id);
        id
    }

    fn add_entry(&mut self, url: Url, internal: bool, depth: u32) -> UrlId {
        let host = self.host_of(&url);
        let id = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        self.index.insert(url.as_str().to_owned(), id);
        self.entries.push(Entry {
            url,
            host,
            internal,
            depth,
            sources: Vec::new(),
            fragments: Vec::new(),
            want_crawl: false,
            want_anchors: false,
            state: State::Queued,
            result: None,
            attempt: 0,
            robots_disallowed: false,
        });
        id
    }

    /// Records one link occurrence and schedules whatever its target now needs.
    fn discover(
        &mut self,
        link: Resolved,
        element: Element,
        source: Option<SourceRef>,
        depth: u32,
    ) {
        if !self.cfg.filter.allows(link.url.as_str()) {
            self.stats.filtered += 1;
            return;
        }
        let internal = same_origin(&link.url, &self.site);
        if !internal && !self.cfg.check_external {
            self.stats.filtered += 1;
            return;
        }
        let (id, new) = match self.index.get(link.url.as_str()) {
            Some(&id) => (id, false),
            None => (self.add_entry(link.url, internal, depth), true),
        };
        let max_depth = self.cfg.max_depth;
        let crawl_budget = self.pages_planned < self.cfg.max_pages;
        let check_fragments = self.cfg.check_fragments;
        let e = &mut self.entries[id as usize];
        if let Some(src) = source {
            e.sources.push(src);
        }
        let mut upgraded = new;
        if let Some(fragment) = link.fragment.filter(|_| check_fragments) {
            e.fragments.push((fragment.into_boxed_str(), source));
            upgraded |= !e.want_anchors;
            e.want_anchors = true;
        }
        e.depth = e.depth.min(depth);
        if internal
            && element.is_navigation()
            && !e.want_crawl
            && depth <= max_depth
            && crawl_budget
        {
            e.want_crawl = true;
            self.pages_planned += 1;
            upgraded = true;
        }
        if new {
            self.enqueue_new(id);
        } else if upgraded {
            self.requeue_if_unsatisfied(id);
        }
    }

    fn enqueue_new(&mut self, id: UrlId) {
        let e = &mut self.entries[id as usize];
        if e.internal && self.cfg.respect_robots && id != 0 && !self.robots.allows(&e.url) {
            e.state = State::Done;
            e.robots_disallowed = true;
            self.stats.robots_disallowed += 1;
            return;
        }
        if !e.internal
            && let Some(hit) = self.cfg.cache.as_ref().and_then(|c| c.get(e.url.as_str()))
            && hit.satisfies(e.mode())
        {
            e.state = State::Done;
            self.stats.from_cache += 1;
            self.record_result(id, hit);
            return;
        }
        self.push_queue(id, false);
    }

    fn requeue_if_unsatisfied(&mut self, id: UrlId) {
        let e = &self.entries[id as usize];
        if e.state != State::Done || e.robots_disallowed {
            return; // a queued or running check reads the wants when it starts or ends
        }
        if e.result.as_ref().is_some_and(|r| !r.satisfies(e.mode())) {
            self.push_queue(id, false);
        }
    }

    fn push_queue(&mut self, id: UrlId, front: bool) {
        let e = &mut self.entries[id as usize];
        e.state = State::Queued;
        let is_page = e.mode() != Mode::Head;
        let host = &mut self.hosts[e.host as usize];
        let queue = if is_page {
            &mut host.pages
        } else {
            &mut host.checks
        };
        if front {
            queue.push_front(id);
        } else {
            queue.push_back(id);
        }
        self.queued += 1;
        if !host.ready {
            host.ready = true;
            self.ready.push_back(e.host);
        }
    }

    /// Starts as many checks as the limits allow; returns when a host blocked only by its
    /// rate interval becomes available.
    fn pump(&mut self, now: Instant) -> Option<Instant> {
        while let Some(Reverse((due, _, id))) = self.delayed.peek().copied() {
            if due > now {
                break;
            }
            self.delayed.pop();
            self.push_queue(id, true);
        }
        let mut wake: Option<Instant> = self.delayed.peek().map(|Reverse((due, _, _))| *due);
        let mut idle_rounds = self.ready.len();
        while self.in_flight < self.cfg.concurrency && idle_rounds > 0 {
            let Some(h) = self.ready.pop_front() else {
                break;
            };
            let host = &mut self.hosts[h as usize];
            if !host.queued() {
                host.ready = false;
                idle_rounds = idle_rounds.saturating_sub(1);
                continue;
            }
            if host.in_flight >= host.limit || host.next_at > now {
                if host.in_flight < host.limit {
                    wake = Some(wake.map_or(host.next_at, |w| w.min(host.next_at)));
                }
                self.ready.push_back(h);
                idle_rounds = idle_rounds.saturating_sub(1);
                continue;
            }
            let Some(id) = host.pages.pop_front().or_else(|| host.checks.pop_front()) else {
                continue;
            };
            host.in_flight += 1;
            if !host.interval.is_zero() {
                host.next_at = now + host.interval;
            }
            if host.queued() {
                self.ready.push_back(h);
            } else {
                host.ready = false;
            }
            self.queued = self.queued.saturating_sub(1);
            self.start(id);
            idle_rounds = self.ready.len();
        }
        wake
    }

    fn start(&mut self, id: UrlId) {
        let e = &mut self.entries[id as usize];
        e.state = State::Running;
        let mode = e.mode();
        let url = e.url.clone();
        let attempt = e.attempt;
        let ctx = Arc::clone(&self.ctx);
        let handle = self.tasks.spawn(async move {
            let (outcome, fetches) = job::check(&ctx, &url, mode, attempt).await;
            Finished {
                id,
                mode,
                outcome,
                fetches,
            }
        });
        self.running.insert(handle.id(), id);
        self.in_flight += 1;
    }

    fn finish(&mut self, done: Finished) {
        let Finished {
            id,
            mode,
            outcome,
            fetches,
        } = done;
        self.stats.requests += fetches;
        let host = self.entries[id as usize].host;
        self.release(host);
        match outcome {
            Outcome::Retry { wait, pause_host } => {
                self.stats.retries += 1;
                let due = Instant::now() + wait;
                if pause_host {
                    let h = &mut self.hosts[host as usize];
                    h.next_at = h.next_at.max(due);
                }
                let e = &mut self.entries[id as usize];
                e.attempt += 1;
                e.state = State::Queued;
                self.seq += 1;
                self.delayed.push(Reverse((due, self.seq, id)));
            }
            Outcome::Done(result, page) => {
                let e = &mut self.entries[id as usize];
                e.state = State::Done;
                e.attempt = 0;
                let depth = e.depth;
                let result = Arc::new(result);
                if !e.internal
                    && let Some(cache) = &self.cfg.cache
                {
                    cache.insert(e.url.as_str().to_owned(), Arc::clone(&result));
                }
                self.record_result(id, result);
                if let Some(page) = page {
                    debug_assert_eq!(mode, Mode::Crawl);
                    self.pages_crawled += 1;
                    for (link, element) in page.links {
                        self.discover(link, element, Some((id, element)), depth + 1);
                    }
                }
                self.requeue_if_unsatisfied(id);
            }
        }
    }

    fn record_result(&mut self, id: UrlId, result: Arc<CheckResult>) {
        let e = &mut self.entries[id as usize];
        if e.result.is_none() {
            self.checked += 1;
            if result.problem.is_some() {
                self.broken += 1;
            }
        }
        e.result = Some(result);
    }

    fn release(&mut self, host: HostId) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let h = &mut self.hosts[host as usize];
        h.in_flight = h.in_flight.saturating_sub(1);
        if h.queued() && !h.ready {
            h.ready = true;
            self.ready.push_back(host);
        }
    }

    fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            pages_crawled: self.pages_crawled,
            links_found: self.entries.len() as u64,
            links_checked: self.checked,
            queued: self.queued + self.delayed.len() as u64,
            in_flight: u64::from(self.in_flight),
            broken: self.broken,
        }
    }

    async fn drive(
        &mut self,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<(), RunError> {
        loop {
            let wake = self.pump(Instant::now());
            progress.update(&self.snapshot());
            if self.in_flight == 0 && self.queued == 0 && self.delayed.is_empty() {
                return Ok(());
            }
            let sleep_until = wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    self.tasks.abort_all();
                    return Err(RunError::Cancelled);
                }
                Some(joined) = self.tasks.join_next_with_id(), if self.in_flight > 0 => {
                    match joined {
                        Ok((task, done)) => {
                            self.running.remove(&task);
                            self.finish(done);
                        }
                        Err(e) => self.task_failed(&e),
                    }
                }
                () = tokio::time::sleep_until(sleep_until), if wake.is_some() => {}
            }
        }
    }

    /// A fetch task panicked (a bug): its URL is reported instead of losing the run.
    fn task_failed(&mut self, e: &tokio::task::JoinError) {
        let Some(id) = self.running.remove(&e.id()) else {
            return;
        };
        tracing::error!(url = %self.entries[id as usize].url, error = %e, "a check task failed");
        let host = self.entries[id as usize].host;
        self.release(host);
        let mode = self.entries[id as usize].mode();
        self.entries[id as usize].state = State::Done;
        self.record_result(
            id,
            Arc::new(CheckResult {
                status: None,
                problem: Some(job::Problem {
                    kind: BrokenKind::Protocol,
                    message: format!("internal error while checking: {e}"),
                }),
                redirects: Vec::new(),
                anchors: None,
                fetched: mode,
            }),
        );
    }

    fn sources(&self, refs: impl IntoIterator<Item = SourceRef>) -> Vec<Source> {
        let mut refs: Vec<SourceRef> = refs.into_iter().collect();
        refs.sort_unstable();
        refs.dedup();
        let mut out: Vec<Source> = refs
            .into_iter()
            .map(|(page, element)| Source {
                page: self.entries[page as usize].url.to_string(),
                element,
            })
            .collect();
        out.sort();
        out
    }

    fn report(&self, elapsed: Duration) -> Result<Report, RunError> {
        if let Some(start) = self.entries.first()
            && let Some(p) = start
                .result
                .as_ref()
                .and_then(|r| r.problem.as_ref().map(|p| (r, p)))
        {
            return Err(RunError::StartPage {
                url: start.url.to_string(),
                kind: p.1.kind,
                status: p.0.status,
                message: p.1.message.clone(),
            });
        }
        let mut broken = Vec::new();
        for e in &self.entries {
            let Some(result) = &e.result else { continue };
            if let Some(problem) = &result.problem {
                broken.push(BrokenLink {
                    url: e.url.to_string(),
                    kind: problem.kind,
                    status: result.status,
                    message: problem.message.clone(),
                    sources: self.sources(e.sources.iter().copied()),
                    redirects: result.redirects.clone(),
                });
                continue;
            }
            let Some(anchors) = &result.anchors else {
                continue;
            };
            let mut by_fragment: BTreeMap<&str, Vec<SourceRef>> = BTreeMap::new();
            for (fragment, source) in &e.fragments {
                let list = by_fragment.entry(fragment).or_default();
                list.extend(source.iter().copied());
            }
            for (fragment, refs) in by_fragment {
                if fragment_exists(anchors, fragment) {
                    continue;
                }
                broken.push(BrokenLink {
                    url: format!("{}#{fragment}", e.url),
                    kind: BrokenKind::Fragment,
                    status: result.status,
                    message: format!(
                        "the page has no element with id or name `{}`",
                        decode_fragment(fragment)
                    ),
                    sources: self.sources(refs),
                    redirects: result.redirects.clone(),
                });
            }
        }
        broken.sort_by(|a, b| a.url.cmp(&b.url));
        let summary = Summary {
            pages: self.pages_crawled,
            links: self.checked,
            broken: broken.len() as u64,
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        };
        Ok(Report {
            start_url: self.site.to_string(),
            summary,
            broken,
            stats: self.stats,
        })
    }
}

/// Whether a document with these anchors has the fragment's target. `#top` always exists
/// (HTML scrolls to the top), as do text fragments (`#:~:text=…`).
fn fragment_exists(anchors: &std::collections::HashSet<String>, fragment: &str) -> bool {
    if fragment.starts_with(":~:") || anchors.contains(fragment) {
        return true;
    }
    let decoded = decode_fragment(fragment);
    decoded.eq_ignore_ascii_case("top") || anchors.contains(&decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn fragments_match_ids_decoded_and_the_implicit_top() {
        let anchors: HashSet<String> = ["intro", "café", "a b"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert!(fragment_exists(&anchors, "intro"));
        assert!(fragment_exists(&anchors, "caf%C3%A9"));
        assert!(fragment_exists(&anchors, "a%20b"));
        assert!(fragment_exists(&anchors, "top"));
        assert!(fragment_exists(&anchors, "TOP"));
        assert!(fragment_exists(&anchors, ":~:text=hello"));
        assert!(
            !fragment_exists(&anchors, "Intro"),
            "ids are case-sensitive"
        );
        assert!(!fragment_exists(&anchors, "missing"));
    }
}
