//! `qa-sentinel check`: crawl a site and report its broken links, without a server (for
//! terminals and CI pipelines). All the work is in `sentinel-links`; this module maps flags
//! onto its configuration, draws the progress bar and picks the exit code.

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sentinel_core::LinkOptions;
use sentinel_links::{
    CancellationToken, CheckerConfig, EgressPolicy, Format, LinkChecker, Progress,
    ProgressSnapshot, Report,
};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use url::Url;

/// Arguments of `qa-sentinel check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The page to start crawling from (http or https).
    #[arg(value_name = "URL")]
    url: String,
    /// The checks to run (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "broken-links"
    )]
    checks: Vec<CheckKind>,
    /// Report format.
    #[arg(long, short = 'f', value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,
    /// Write the report to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Most pages crawled (parsed for links); further pages are still checked.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_pages: u32,
    /// Most link hops from the start page that are crawled.
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_depth: u32,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Requests in flight at once to one host.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    per_host_concurrency: u32,
    /// Most requests per second to one host (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 0)]
    rate_limit: u32,
    /// Per-request timeout in seconds (redirects and body included).
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = parse_secs)]
    timeout: f64,
    /// Retries after 429, 5xx, timeouts and dropped connections (with backoff, honouring
    /// Retry-After).
    #[arg(long, value_name = "N", default_value_t = 2)]
    max_retries: u32,
    /// Only check URLs matching this regex (repeatable).
    #[arg(long, value_name = "REGEX")]
    include: Vec<String>,
    /// Skip URLs matching this regex (repeatable).
    #[arg(long, value_name = "REGEX")]
    exclude: Vec<String>,
    /// Ignore robots.txt.
    #[arg(long)]
    no_robots: bool,
    /// Do not seed the crawl from the sitemap.
    #[arg(long)]
    no_sitemap: bool,
    /// Only check links within the start URL's origin.
    #[arg(long)]
    no_external: bool,
    /// Do not check `#fragment`s against the target's anchors.
    #[arg(long)]
    no_fragments: bool,
    /// Extra request header for the site's own origin, `Name: value` (repeatable).
    #[arg(long, short = 'H', value_name = "NAME: VALUE")]
    header: Vec<String>,
    /// Cookie for the site's own origin, `name=value` (repeatable).
    #[arg(long, value_name = "NAME=VALUE")]
    cookie: Vec<String>,
    /// Let the SSRF guard through to private and loopback addresses (local development).
    #[arg(long)]
    allow_private: bool,
    /// Open specific address ranges to the SSRF guard (comma-separated CIDRs).
    #[arg(
        long,
        value_name = "CIDR",
        env = "SENTINEL_SCAN_ALLOW",
        value_delimiter = ','
    )]
    allow: Vec<String>,
    /// The User-Agent header.
    #[arg(long, value_name = "UA")]
    user_agent: Option<String>,
    /// Never draw the progress bar (it is drawn only when standard error is a terminal).
    #[arg(long)]
    no_progress: bool,
    /// More log output on standard error (-v info, -vv debug).
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    verbose: u8,
}

/// The checks `check` can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum CheckKind {
    /// Crawl the site and check every link and asset.
    BrokenLinks,
}

/// Report formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum FormatArg {
    /// For people.
    Text,
    /// `{"summary": {...}, "broken": [...]}`.
    Json,
    /// JUnit XML.
    Junit,
    /// SARIF 2.1.0.
    Sarif,
    /// A Markdown table.
    Markdown,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Text => Self::Text,
            FormatArg::Json => Self::Json,
            FormatArg::Junit => Self::Junit,
            FormatArg::Sarif => Self::Sarif,
            FormatArg::Markdown => Self::Markdown,
        }
    }
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(String::from(
            "must be a number of seconds between 0 and 3600",
        )),
    }
}

/// Exit codes: 0 no broken links, 1 broken links found, 2 usage or fatal error.
pub(crate) fn run(args: CheckArgs) -> ExitCode {
    init_logging(args.verbose);
    match execute(&args) {
        Ok(report) if report.is_clean() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(err) => {
            eprintln!("qa-sentinel check: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn config(args: &CheckArgs) -> anyhow::Result<CheckerConfig> {
    let mut headers = BTreeMap::new();
    for h in &args.header {
        let Some((name, value)) = h.split_once(':') else {
            bail!("--header {h:?}: expected `Name: value`");
        };
        headers.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    let mut cookies = BTreeMap::new();
    for c in &args.cookie {
        let Some((name, value)) = c.split_once('=') else {
            bail!("--cookie {c:?}: expected `name=value`");
        };
        cookies.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    let options = LinkOptions {
        max_pages: args.max_pages,
        max_depth: args.max_depth,
        respect_robots: !args.no_robots,
        use_sitemap: !args.no_sitemap,
        check_external: !args.no_external,
        check_fragments: !args.no_fragments,
        concurrency: args.concurrency,
        per_host_concurrency: args.per_host_concurrency,
        requests_per_second: args.rate_limit,
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        headers,
        cookies,
    };
    let mut policy = EgressPolicy::new();
    if args.allow_private {
        policy = policy.allow_private();
    }
    let cidrs = EgressPolicy::parse_cidrs(&args.allow.join(",")).context("--allow")?;
    policy = policy.allow_all(cidrs);
    let mut config = CheckerConfig::from_link_options(&options, policy)?;
    config.timeout = Duration::from_secs_f64(args.timeout);
    config.max_retries = args.max_retries;
    if let Some(ua) = &args.user_agent {
        config.user_agent.clone_from(ua);
    }
    Ok(config)
}

fn execute(args: &CheckArgs) -> anyhow::Result<Report> {
    if !args.checks.contains(&CheckKind::BrokenLinks) {
        bail!("no check selected (--checks broken-links)");
    }
    let start = Url::parse(&args.url).with_context(|| format!("invalid URL {:?}", args.url))?;
    let config = config(args)?;
    let runtime = super::runtime().context("cannot start the async runtime")?;
    let bar = progress_bar(args);
    let report = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_interrupt = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_interrupt.cancel();
            }
        });
        let progress = BarProgress(bar.clone());
        LinkChecker::new(config).run(start, &progress, cancel).await
    });
    bar.finish_and_clear();
    let report = report?;
    let rendered = report.render(args.format.into())?;
    match &args.output {
        Some(path) => std::fs::write(path, rendered)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(rendered.as_bytes())
                .and_then(|()| out.flush())
                .context("cannot write the report")?;
        }
    }
    Ok(report)
}

fn progress_bar(args: &CheckArgs) -> ProgressBar {
    if args.no_progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} links · {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Feeds the run's progress to the bar (indicatif redraws at its own rate).
struct BarProgress(ProgressBar);

impl Progress for BarProgress {
    fn update(&self, p: &ProgressSnapshot) {
        self.0.set_length(p.links_found);
        self.0.set_position(p.links_checked);
        self.0.set_message(format!(
            "{} pages crawled · {} in flight · {} broken",
            p.pages_crawled, p.in_flight, p.broken
        ));
    }
}
