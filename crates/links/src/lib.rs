//! qa-sentinel's broken-links engine: one crawler and checker for the `qa-sentinel check`
//! command and for the `broken-links` scans of the worker runtime.
//!
//! * [`LinkChecker`] crawls a site from a start URL (same origin, `maxPages`/`maxDepth`,
//!   robots.txt, sitemap seeds) and checks every unique URL once, internal and external,
//!   through the SSRF-safe client of `sentinel-netguard`.
//! * [`extract`] is the streaming HTML link extractor, [`normalize`] the URL canonicaliser.
//! * [`Report`] holds the outcome: [`Report::summary`], [`Report::to_findings`] for the store,
//!   and [`Report::render`] in text, JSON, JUnit, SARIF or Markdown.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sentinel_links::{CheckerConfig, LinkChecker, NoProgress};
//! use sentinel_netguard::EgressPolicy;
//! use tokio_util::sync::CancellationToken;
//!
//! let options = sentinel_core::ScanOptions::default();
//! let config = CheckerConfig::from_scan_options(&options, EgressPolicy::new())?;
//! let start = "https://example.com/".parse()?;
//! let report = LinkChecker::new(config).run(start, &NoProgress, CancellationToken::new()).await?;
//! println!("{}", report.render(sentinel_links::Format::Text)?);
//! # Ok(()) }
//! ```

mod cache;
mod checker;
mod config;
pub mod extract;
pub mod normalize;
mod progress;
mod report;
pub mod robots;
pub mod sitemap;

pub use cache::ExternalCache;
pub use checker::{LinkChecker, RunError};
pub use config::{CheckerConfig, ConfigError, Filter};
pub use extract::Element;
pub use progress::{NoProgress, Progress, ProgressSnapshot};
pub use report::{
    BrokenKind, BrokenLink, Format, Redirect, RenderError, Report, Source, Stats, Summary,
};

/// The egress policy and CIDR type, so callers need not depend on `sentinel-netguard`
/// to configure a run.
pub use sentinel_netguard::{EgressPolicy, IpNet};
/// The token that stops a run.
pub use tokio_util::sync::CancellationToken;
