//! The outcome of a run and its renderings (text, JSON, JUnit, SARIF, Markdown).

mod json;
mod junit;
mod markdown;
mod sarif;
mod text;

use crate::extract::Element;
use sentinel_core::{FindingKind, NewFinding, Severity};
use serde::Serialize;
use serde_json::json;
use std::fmt;
use std::str::FromStr;

/// Why a link is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum BrokenKind {
    /// The server answered with an error status (4xx, 5xx), possibly after redirects.
    Status,
    /// The page exists but has no element with the fragment's `id` (or `<a name>`).
    Fragment,
    /// The host name does not resolve.
    Dns,
    /// No connection (refused, reset, unreachable).
    Connect,
    /// TLS handshake or certificate failure.
    Tls,
    /// No complete answer within the timeout.
    Timeout,
    /// The redirects go round in a circle.
    RedirectLoop,
    /// More redirects than allowed.
    TooManyRedirects,
    /// A redirect without a usable `Location`.
    InvalidRedirect,
    /// The destination address is refused by the egress (SSRF) policy.
    Blocked,
    /// A redirect to a scheme other than http/https.
    UnsupportedScheme,
    /// The server broke the HTTP protocol.
    Protocol,
    /// The page is larger than the configured cap.
    BodyTooLarge,
}

impl BrokenKind {
    /// The kebab-case name used in every output format.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Fragment => "fragment",
            Self::Dns => "dns",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Timeout => "timeout",
            Self::RedirectLoop => "redirect-loop",
            Self::TooManyRedirects => "too-many-redirects",
            Self::InvalidRedirect => "invalid-redirect",
            Self::Blocked => "blocked",
            Self::UnsupportedScheme => "unsupported-scheme",
            Self::Protocol => "protocol",
            Self::BodyTooLarge => "body-too-large",
        }
    }
}

impl fmt::Display for BrokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<sentinel_netguard::ErrorKind> for BrokenKind {
    fn from(k: sentinel_netguard::ErrorKind) -> Self {
        use sentinel_netguard::ErrorKind as E;
        match k {
            E::Blocked => Self::Blocked,
            E::Dns => Self::Dns,
            E::Connect => Self::Connect,
            E::Tls => Self::Tls,
            E::Timeout => Self::Timeout,
            E::TooManyRedirects => Self::TooManyRedirects,
            E::RedirectLoop => Self::RedirectLoop,
            E::InvalidRedirect => Self::InvalidRedirect,
            E::UnsupportedScheme => Self::UnsupportedScheme,
            E::BodyTooLarge => Self::BodyTooLarge,
            _ => Self::Protocol,
        }
    }
}

/// A page that links to a broken URL, and the element that does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Source {
    /// The linking page.
    pub page: String,
    /// The element and attribute (`a[href]`, `img[srcset]`, …).
    pub element: Element,
}

/// One redirect on the way to the final answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Redirect {
    /// The URL that redirected.
    pub url: String,
    /// Its status.
    pub status: u16,
}

/// A broken link, with everything that links to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// The URL (with the `#fragment` for fragment findings).
    pub url: String,
    /// Why it is broken.
    pub kind: BrokenKind,
    /// The final HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// One line for people.
    pub message: String,
    /// Every (page, element) that links to it.
    pub sources: Vec<Source>,
    /// The redirects followed before the failure.
    pub redirects: Vec<Redirect>,
}

/// The headline numbers (the `summary` of a scan).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Pages crawled (fetched and parsed for links).
    pub pages: u64,
    /// Unique URLs checked.
    pub links: u64,
    /// Broken links found (URL-level; a broken fragment counts once per URL#fragment).
    pub broken: u64,
    /// Wall time of the run.
    pub duration_ms: u64,
}

/// Further counters, for people and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// HTTP fetches made (HEAD→GET fallbacks and retries included).
    pub requests: u64,
    /// Retries after 429/5xx/timeouts/dropped connections.
    pub retries: u64,
    /// External results taken from the cross-scan cache.
    pub from_cache: u64,
    /// URLs not fetched because robots.txt disallows them.
    pub robots_disallowed: u64,
    /// Link occurrences skipped by include/exclude patterns or non-checked origins.
    pub filtered: u64,
}

/// The result of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Where the crawl started.
    pub start_url: String,
    /// Headline numbers.
    pub summary: Summary,
    /// Broken links, sorted by URL.
    pub broken: Vec<BrokenLink>,
    /// Further counters.
    pub stats: Stats,
}

/// Most sources stored in one finding's detail; the count is kept in full.
const MAX_SOURCES_IN_FINDING: usize = 100;

impl Report {
    /// The headline numbers (serialisable: the scan's `summary`).
    #[must_use]
    pub fn summary(&self) -> Summary {
        self.summary
    }

    /// Whether nothing is broken.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.broken.is_empty()
    }

    /// One finding per broken link, for the store. The detail carries kind, status,
    /// sources (the first 100, with the full count) and redirects.
    #[must_use]
    pub fn to_findings(&self) -> Vec<NewFinding> {
        self.broken
            .iter()
            .map(|b| {
                let severity = if b.kind == BrokenKind::Fragment {
                    Severity::Warning
                } else {
                    Severity::Error
                };
                let sources: Vec<_> = b.sources.iter().take(MAX_SOURCES_IN_FINDING).collect();
                NewFinding {
                    kind: FindingKind::BrokenLink,
                    severity,
                    url: b.url.clone(),
                    message: b.message.clone(),
                    detail: json!({
                        "kind": b.kind,
                        "status": b.status,
                        "sources": sources,
                        "sourceCount": b.sources.len(),
                        "redirects": b.redirects,
                    }),
                }
            })
            .collect()
    }

    /// Renders the report in `format`.
    pub fn render(&self, format: Format) -> Result<String, RenderError> {
        match format {
            Format::Text => Ok(text::render(self)),
            Format::Json => json::render(self),
            Format::Junit => junit::render(self),
            Format::Sarif => sarif::render(self),
            Format::Markdown => Ok(markdown::render(self)),
        }
    }
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// For people in a terminal.
    Text,
    /// The binding JSON shape: `{"summary": {…}, "broken": [{"url", "kind", "status", "sources"}]}`.
    Json,
    /// JUnit XML, for CI test reports.
    Junit,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
    /// A Markdown table, for pull-request comments.
    Markdown,
}

impl Format {
    /// Every format, by name.
    pub const ALL: [(&'static str, Self); 5] = [
        ("text", Self::Text),
        ("json", Self::Json),
        ("junit", Self::Junit),
        ("sarif", Self::Sarif),
        ("markdown", Self::Markdown),
    ];
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|(_, f)| *f)
            .ok_or_else(|| format!("unknown format `{s}` (text, json, junit, sarif, markdown)"))
    }
}

/// A report that could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("cannot render the report as {format}: {message}")]
pub struct RenderError {
    format: &'static str,
    message: String,
}

impl RenderError {
    fn new(format: &'static str, e: impl fmt::Display) -> Self {
        Self {
            format,
            message: e.to_string(),
        }
    }
}

/// "404", "timeout", "404 after 2 redirects": the problem in a few words.
fn problem(b: &BrokenLink) -> String {
    let head = match (b.kind, b.status) {
        (BrokenKind::Status, Some(s)) => format!("HTTP {s}"),
        (BrokenKind::Fragment, _) => String::from("missing fragment"),
        (kind, _) => kind.as_str().to_owned(),
    };
    if b.redirects.is_empty() {
        head
    } else {
        let n = b.redirects.len();
        format!("{head} after {n} redirect{}", if n == 1 { "" } else { "s" })
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub(crate) fn report() -> Report {
        Report {
            start_url: String::from("http://127.0.0.1:8080/"),
            summary: Summary {
                pages: 3,
                links: 10,
                broken: 2,
                duration_ms: 1234,
            },
            broken: vec![
                BrokenLink {
                    url: String::from("http://127.0.0.1:8080/gone|<&>.html"),
                    kind: BrokenKind::Status,
                    status: Some(404),
                    message: String::from("404 Not Found"),
                    sources: vec![
                        Source {
                            page: String::from("http://127.0.0.1:8080/"),
                            element: Element::A,
                        },
                        Source {
                            page: String::from("http://127.0.0.1:8080/b.html"),
                            element: Element::ImgSrcset,
                        },
                    ],
                    redirects: vec![Redirect {
                        url: String::from("http://127.0.0.1:8080/old"),
                        status: 301,
                    }],
                },
                BrokenLink {
                    url: String::from("http://127.0.0.1:8080/b.html#nope"),
                    kind: BrokenKind::Fragment,
                    status: Some(200),
                    message: String::from("no element with id or name `nope`"),
                    sources: vec![Source {
                        page: String::from("http://127.0.0.1:8080/"),
                        element: Element::A,
                    }],
                    redirects: vec![],
                },
            ],
            stats: Stats::default(),
        }
    }

    pub(crate) fn clean() -> Report {
        Report {
            broken: vec![],
            summary: Summary {
                broken: 0,
                ..report().summary
            },
            ..report()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_carry_kind_status_sources_and_redirects() {
        let findings = fixtures::report().to_findings();
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[0].kind, FindingKind::BrokenLink);
        assert_eq!(findings[0].severity, Severity::Error);
        assert_eq!(findings[0].detail["kind"], "status");
        assert_eq!(findings[0].detail["status"], 404);
        assert_eq!(findings[0].detail["sourceCount"], 2);
        assert_eq!(findings[0].detail["sources"][1]["element"], "img[srcset]");
        assert_eq!(findings[0].detail["redirects"][0]["status"], 301);
        assert_eq!(findings[1].severity, Severity::Warning);
        assert_eq!(findings[1].detail["kind"], "fragment");
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("SARIF".parse::<Format>(), Ok(Format::Sarif));
        assert!("xml".parse::<Format>().is_err());
        assert_eq!(
            problem(&fixtures::report().broken[0]),
            "HTTP 404 after 1 redirect"
        );
    }
}
