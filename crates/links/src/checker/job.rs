//! One check: fetch a URL (HEAD, or GET when its content is needed), follow its redirects,
//! and for pages stream the body through the link extractor.

use super::retry::{backoff, is_retryable_error, is_retryable_status, retry_after};
use crate::extract::{Element, LinkExtractor};
use crate::normalize::Resolved;
use crate::report::{BrokenKind, Redirect};
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use sentinel_netguard::{Client, ErrorKind, FetchError, Request, Response};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use url::Url;

/// What a fetch has to deliver, in increasing order of cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mode {
    /// Only whether the URL works (HEAD, GET if HEAD is refused).
    Head,
    /// Also the document's anchors, to check fragments (GET, parsed).
    Anchors,
    /// Also its links, to crawl on (GET, parsed).
    Crawl,
}

/// Why a URL is broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) kind: BrokenKind,
    pub(crate) message: String,
}

/// What one URL's check found. Shared (`Arc`) between a run and the external cache.
#[derive(Clone, Debug)]
pub(crate) struct CheckResult {
    pub(crate) status: Option<u16>,
    pub(crate) problem: Option<Problem>,
    pub(crate) redirects: Vec<Redirect>,
    /// The document's anchors when it was parsed as HTML; `None` when it was not fetched
    /// with GET or is not HTML (its fragments cannot be checked).
    pub(crate) anchors: Option<Arc<HashSet<String>>>,
    pub(crate) fetched: Mode,
}

impl CheckResult {
    fn failed(e: &FetchError, mode: Mode) -> Self {
        Self {
            status: None,
            problem: Some(Problem {
                kind: e.kind.into(),
                message: e.detail().to_owned(),
            }),
            redirects: redirects(&e.redirects),
            anchors: None,
            fetched: mode,
        }
    }

    /// Whether this result answers everything `mode` asks.
    pub(crate) fn satisfies(&self, mode: Mode) -> bool {
        self.problem.is_some() || self.fetched >= mode
    }
}

fn redirects(hops: &[sentinel_netguard::Hop]) -> Vec<Redirect> {
    hops.iter()
        .map(|h| Redirect {
            url: h.url.to_string(),
            status: h.status.as_u16(),
        })
        .collect()
}

/// A crawled page's links, resolved and normalised.
#[derive(Debug, Default)]
pub(crate) struct Page {
    pub(crate) links: Vec<(Resolved, Element)>,
}

/// How a check ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Final (possibly broken).
    Done(CheckResult, Option<Page>),
    /// Try again after `wait`; `pause_host` asks to hold the whole host that long (429/503).
    Retry { wait: Duration, pause_host: bool },
}

/// What every check of a run shares.
#[derive(Debug)]
pub(crate) struct JobContext {
    pub(crate) client: Client,
    pub(crate) site: Url,
    pub(crate) site_headers: HeaderMap,
    pub(crate) timeout: Duration,
    pub(crate) max_retries: u32,
    pub(crate) retry_base: Duration,
    pub(crate) max_retry_after: Duration,
}

/// Body bytes read and dropped after an answer whose body is not needed, so that small
/// bodies (error pages) leave the connection reusable; bigger ones close it.
const DISCARD_BUDGET: u64 = 64 * 1024;

pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Checks `url`, returning the outcome and the number of HTTP fetches made.
pub(crate) async fn check(ctx: &JobContext, url: &Url, mode: Mode, attempt: u32) -> (Outcome, u64) {
    let mut head = mode == Mode::Head;
    let mut fetches = 0;
    let retries_left = attempt < ctx.max_retries;
    loop {
        fetches += 1;
        let mut request = if head {
            Request::head(url.clone())
        } else {
            Request::get(url.clone())
        }
        .timeout(ctx.timeout);
        if !ctx.site_headers.is_empty() && same_origin(url, &ctx.site) {
            request = request.headers(&ctx.site_headers);
        }
        let response = match ctx.client.fetch(request).await {
            Ok(r) => r,
            Err(e) if retries_left && is_retryable_error(e.kind) => {
                let wait = backoff(ctx.retry_base, attempt);
                return (
                    Outcome::Retry {
                        wait,
                        pause_host: false,
                    },
                    fetches,
                );
            }
            Err(e) => return (Outcome::Done(CheckResult::failed(&e, mode), None), fetches),
        };
        let status = response.status().as_u16();
        if head && status >= 400 && status != 429 {
            // Many servers refuse HEAD (405, 501) or answer it wrongly; ask again with GET
            // before calling the link broken.
            head = false;
            response.discard(DISCARD_BUDGET).await;
            continue;
        }
        if retries_left && is_retryable_status(status) {
            let pause_host = status == 429 || status == 503;
            let wait = match retry_after(response.headers(), SystemTime::now()) {
                Some(asked) if asked > ctx.max_retry_after => None,
                Some(asked) => Some(asked),
                None => Some(backoff(ctx.retry_base, attempt)),
            };
            if let Some(wait) = wait {
                response.discard(DISCARD_BUDGET).await;
                return (Outcome::Retry { wait, pause_host }, fetches);
            }
        }
        return (finish(response, mode, head, &ctx.site).await, fetches);
    }
}

async fn finish(mut response: Response, mode: Mode, head: bool, site: &Url) -> Outcome {
    let status = response.status();
    let code = status.as_u16();
    let hops = redirects(response.redirects());
    if code >= 400 {
        let message = status
            .canonical_reason()
            .map_or_else(|| format!("HTTP {code}"), |r| format!("{code} {r}"));
        response.discard(DISCARD_BUDGET).await;
        let result = CheckResult {
            status: Some(code),
            problem: Some(Problem {
                kind: BrokenKind::Status,
                message,
            }),
            redirects: hops,
            anchors: None,
            fetched: mode,
        };
        return Outcome::Done(result, None);
    }
    let ok = |anchors| CheckResult {
        status: Some(code),
        problem: None,
        redirects: hops.clone(),
        anchors,
        fetched: mode,
    };
    if mode == Mode::Head || head {
        response.discard(DISCARD_BUDGET).await;
        return Outcome::Done(ok(None), None);
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let declared_html = content_type.as_deref().map(|ct| {
        let mime = ct.split(';').next().unwrap_or("").trim();
        mime == "text/html" || mime == "application/xhtml+xml"
    });
    if declared_html == Some(false) {
        response.discard(DISCARD_BUDGET).await;
        return Outcome::Done(ok(None), None);
    }
    let charset = content_type.as_deref().and_then(|ct| {
        ct.split(';')
            .filter_map(|p| p.trim().strip_prefix("charset="))
            .next()
            .map(|c| c.trim_matches('"').to_owned())
    });
    let mut extractor = LinkExtractor::new(charset.as_deref());
    let mut first = true;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                // No Content-Type: parse only what looks like markup.
                if first && declared_html.is_none() {
                    let looks_html = chunk.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
                    if !looks_html {
                        response.discard(DISCARD_BUDGET).await;
                        return Outcome::Done(ok(None), None);
                    }
                }
                first = false;
                if extractor.write(&chunk).is_err() {
                    break;
                }
            }
            Ok(None) => break,
            // A page over the size cap is not broken: use what was read.
            Err(e) if e.kind == ErrorKind::BodyTooLarge => {
                tracing::debug!(url = %response.url(), "page truncated at the size cap");
                break;
            }
            Err(e) => return Outcome::Done(CheckResult::failed(&e, mode), None),
        }
    }
    let extracted = extractor.finish().unwrap_or_default();
    let final_url = response.url();
    let links = if mode == Mode::Crawl && same_origin(final_url, site) {
        extracted.resolve(final_url)
    } else {
        Vec::new()
    };
    let page = (mode == Mode::Crawl).then_some(Page { links });
    Outcome::Done(ok(Some(Arc::new(extracted.anchors))), page)
}
