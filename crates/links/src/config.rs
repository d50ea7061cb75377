//! The checker's configuration, built from the API's scan options.

use crate::cache::ExternalCache;
use http::header::{COOKIE, HeaderMap, HeaderName, HeaderValue};
use regex::{RegexSet, RegexSetBuilder};
use sentinel_core::{LinkOptions, ScanOptions};
use sentinel_netguard::{EgressPolicy, Resolve};
use std::sync::Arc;
use std::time::Duration;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An include or exclude pattern is not a valid regular expression.
    #[error("invalid {which} pattern: {message}")]
    Pattern {
        /// `include` or `exclude`.
        which: &'static str,
        /// The regex error.
        message: String,
    },
    /// A header name or value cannot be sent.
    #[error("invalid header `{name}`: {message}")]
    Header {
        /// The header (or cookie) name.
        name: String,
        /// Why.
        message: String,
    },
    /// The scan options are not `broken-links` options.
    #[error("the scan options have no broken-links options")]
    NotLinkOptions,
}

/// URL filters: a URL is checked when it matches an include pattern (or there are none)
/// and no exclude pattern.
#[derive(Clone, Debug)]
pub struct Filter {
    include: RegexSet,
    exclude: RegexSet,
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            include: RegexSet::empty(),
            exclude: RegexSet::empty(),
        }
    }
}

impl Filter {
    /// Compiles the patterns (size-limited: they come from API users).
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, ConfigError> {
        let build = |patterns: &[String], which: &'static str| {
            RegexSetBuilder::new(patterns)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| ConfigError::Pattern {
                    which,
                    message: e.to_string(),
                })
        };
        Ok(Self {
            include: build(include, "include")?,
            exclude: build(exclude, "exclude")?,
        })
    }

    /// Whether `url` is to be checked.
    #[must_use]
    pub fn allows(&self, url: &str) -> bool {
        (self.include.is_empty() || self.include.is_match(url)) && !self.exclude.is_match(url)
    }
}

/// Everything a [`LinkChecker`](crate::LinkChecker) run needs.
#[derive(Clone, Debug)]
pub struct CheckerConfig {
    /// Most pages crawled (parsed for links).
    pub max_pages: u32,
    /// Most link hops from the start page.
    pub max_depth: u32,
    /// Honour the site's robots.txt.
    pub respect_robots: bool,
    /// Seed the crawl from the site's sitemap(s).
    pub use_sitemap: bool,
    /// Check links to other origins.
    pub check_external: bool,
    /// Check `#fragment`s against the target's anchors.
    pub check_fragments: bool,
    /// Requests in flight at once.
    pub concurrency: u32,
    /// Requests in flight at once per host.
    pub per_host_concurrency: u32,
    /// Requests per second per host (0: unlimited).
    pub requests_per_second: u32,
    /// Which URLs are checked.
    pub filter: Filter,
    /// Headers (cookies included) sent to the site's own origin only.
    pub site_headers: HeaderMap,
    /// Deadline for one fetch (all its redirects and the body).
    pub timeout: Duration,
    /// Retries after a 429, a 5xx, a timeout or a dropped connection.
    pub max_retries: u32,
    /// First backoff step; it doubles per retry, with jitter.
    pub retry_base: Duration,
    /// The longest `Retry-After` honoured; a server asking for longer is reported.
    pub max_retry_after: Duration,
    /// Most redirects followed per fetch.
    pub max_redirects: usize,
    /// Most bytes read of one page, after decompression.
    pub max_page_bytes: u64,
    /// The `User-Agent` header, and the name matched in robots.txt (its first word).
    pub user_agent: String,
    /// Which addresses may be connected to.
    pub egress: EgressPolicy,
    /// The resolver (default: the system's, through hickory).
    pub resolver: Option<Arc<dyn Resolve>>,
    /// Results of external URLs shared across runs (a worker keeps one for its lifetime).
    pub cache: Option<ExternalCache>,
}

impl Default for CheckerConfig {
    fn default() -> Self {
        let o = LinkOptions::default();
        Self {
            max_pages: o.max_pages,
            max_depth: o.max_depth,
            respect_robots: o.respect_robots,
            use_sitemap: o.use_sitemap,
            check_external: o.check_external,
            check_fragments: o.check_fragments,
            concurrency: o.concurrency,
            per_host_concurrency: o.per_host_concurrency,
            requests_per_second: o.requests_per_second,
            filter: Filter::default(),
            site_headers: HeaderMap::new(),
            timeout: Duration::from_millis(u64::from(sentinel_core::scan::DEFAULT_TIMEOUT_MS)),
            max_retries: 2,
            retry_base: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(60),
            max_redirects: 10,
            max_page_bytes: 10 * 1024 * 1024,
            user_agent: format!("qa-sentinel/{} (link checker)", env!("CARGO_PKG_VERSION")),
            egress: EgressPolicy::new(),
            resolver: None,
            cache: None,
        }
    }
}

impl CheckerConfig {
    /// Builds a configuration from a `broken-links` scan's options (`options.links` and
    /// `options.timeout`) and the service's egress policy.
    pub fn from_scan_options(
        options: &ScanOptions,
        egress: EgressPolicy,
    ) -> Result<Self, ConfigError> {
        let links = options.links.as_ref().ok_or(ConfigError::NotLinkOptions)?;
        let mut config = Self::from_link_options(links, egress)?;
        config.timeout = Duration::from_millis(u64::from(options.timeout_ms));
        Ok(config)
    }

    /// Builds a configuration from link options (the timeout keeps its default).
    pub fn from_link_options(o: &LinkOptions, egress: EgressPolicy) -> Result<Self, ConfigError> {
        let mut site_headers = HeaderMap::new();
        for (name, value) in &o.headers {
            let header =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| ConfigError::Header {
                    name: name.clone(),
                    message: e.to_string(),
                })?;
            let value = HeaderValue::from_str(value).map_err(|e| ConfigError::Header {
                name: name.clone(),
                message: e.to_string(),
            })?;
            site_headers.append(header, value);
        }
        if !o.cookies.is_empty() {
            let cookie = o
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            let value = HeaderValue::from_str(&cookie).map_err(|e| ConfigError::Header {
                name: String::from("Cookie"),
                message: e.to_string(),
            })?;
            site_headers.append(COOKIE, value);
        }
        Ok(Self {
            max_pages: o.max_pages.max(1),
            max_depth: o.max_depth,
            respect_robots: o.respect_robots,
            use_sitemap: o.use_sitemap,
            check_external: o.check_external,
            check_fragments: o.check_fragments,
            concurrency: o.concurrency.max(1),
            per_host_concurrency: o.per_host_concurrency.max(1),
            requests_per_second: o.requests_per_second,
            filter: Filter::new(&o.include, &o.exclude)?,
            site_headers,
            egress,
            ..Self::default()
        })
    }

    /// Shares `cache` for external results.
    #[must_use]
    pub fn with_cache(mut self, cache: ExternalCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Resolves names with `resolver` instead of the system's.
    #[must_use]
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.resolver = Some(resolver);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn options_map_onto_the_config() {
        let o = LinkOptions {
            max_pages: 7,
            include: vec![String::from("^https://a\\.test/")],
            exclude: vec![String::from("/private/")],
            headers: BTreeMap::from([(String::from("X-Token"), String::from("t"))]),
            cookies: BTreeMap::from([
                (String::from("a"), String::from("1")),
                (String::from("b"), String::from("2")),
            ]),
            ..LinkOptions::default()
        };
        let scan = ScanOptions {
            timeout_ms: 4000,
            links: Some(o),
            ..ScanOptions::default()
        };
        let c = CheckerConfig::from_scan_options(&scan, EgressPolicy::new()).unwrap();
        assert_eq!(c.max_pages, 7);
        assert_eq!(c.timeout, Duration::from_secs(4));
        assert_eq!(c.site_headers["x-token"], "t");
        assert_eq!(c.site_headers["cookie"], "a=1; b=2");
        assert!(c.filter.allows("https://a.test/page"));
        assert!(!c.filter.allows("https://a.test/private/page"));
        assert!(!c.filter.allows("https://b.test/page"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        let o = LinkOptions {
            exclude: vec![String::from("(unclosed")],
            ..LinkOptions::default()
        };
        assert!(matches!(
            CheckerConfig::from_link_options(&o, EgressPolicy::new()),
            Err(ConfigError::Pattern {
                which: "exclude",
                ..
            })
        ));
        let visual = ScanOptions {
            links: None,
            ..ScanOptions::default()
        };
        assert!(CheckerConfig::from_scan_options(&visual, EgressPolicy::new()).is_err());
    }
}
