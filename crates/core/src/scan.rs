//! Scans: what is checked (check type and options), their life cycle, and the validation of
//! `POST /api/scan` bodies.

use crate::EpochMillis;
use crate::ids::{ScanId, SiteId, UserId, parse_uuid};
use crate::site::parse_http_url;
use crate::validation::ValidationErrors;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use url::Url;

/// The kinds of check a scan can run. Each one has an executor in the worker runtime; a
/// check type that is not listed here is refused at the API with 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CheckType {
    /// Crawl the site and check every link and asset.
    #[serde(rename = "broken-links")]
    BrokenLinks,
    /// Capture the page and compare it with its approved baseline.
    #[serde(rename = "visual-regression")]
    VisualRegression,
}

impl CheckType {
    /// Every check type, in wire order.
    pub const ALL: [Self; 2] = [Self::BrokenLinks, Self::VisualRegression];

    /// The wire and storage name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BrokenLinks => "broken-links",
            Self::VisualRegression => "visual-regression",
        }
    }

    /// How long a result stays fresh in the scan-result cache, so that an identical request
    /// is answered with the existing scan (the guide's TTLs; 600 s for any later type).
    #[must_use]
    pub const fn result_ttl_secs(self) -> u64 {
        match self {
            Self::VisualRegression => 3600,
            Self::BrokenLinks => 1800,
        }
    }
}

impl FromStr for CheckType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "broken-links" => Ok(Self::BrokenLinks),
            "visual-regression" => Ok(Self::VisualRegression),
            _ => Err(()),
        }
    }
}

impl fmt::Display for CheckType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The screen a page is checked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Viewport {
    /// 1920×1080.
    Desktop,
    /// 768×1024.
    Tablet,
    /// 375×667.
    Mobile,
}

impl Viewport {
    /// Every viewport.
    pub const ALL: [Self; 3] = [Self::Desktop, Self::Tablet, Self::Mobile];

    /// Width and height in CSS pixels.
    #[must_use]
    pub const fn size(self) -> (u32, u32) {
        match self {
            Self::Desktop => (1920, 1080),
            Self::Tablet => (768, 1024),
            Self::Mobile => (375, 667),
        }
    }

    /// Whether the device is a touch phone/tablet (for `Emulation.setDeviceMetricsOverride`).
    #[must_use]
    pub const fn is_mobile(self) -> bool {
        matches!(self, Self::Mobile | Self::Tablet)
    }

    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Desktop => "desktop",
            Self::Tablet => "tablet",
            Self::Mobile => "mobile",
        }
    }
}

impl FromStr for Viewport {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "desktop" => Ok(Self::Desktop),
            "tablet" => Ok(Self::Tablet),
            "mobile" => Ok(Self::Mobile),
            _ => Err(()),
        }
    }
}

/// Where a scan is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanStatus {
    /// Accepted and durable, waiting for a worker.
    Queued,
    /// Leased by a worker.
    Running,
    /// Finished; its findings and summary are final.
    Completed,
    /// Gave up (after its retries, or on a permanent error); `error` says why.
    Failed,
}

impl ScanStatus {
    /// The wire and storage name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Whether the scan will not change any more.
    #[must_use]
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

impl FromStr for ScanStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            "completed" => Ok(Self::Completed),
            "failed" => Ok(Self::Failed),
            _ => Err(()),
        }
    }
}

/// Options of a `broken-links` scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkOptions {
    /// Most pages crawled (1..=100000, default 1000).
    pub max_pages: u32,
    /// Most link hops from the start URL (0..=100, default 16).
    pub max_depth: u32,
    /// Honour robots.txt (default true).
    pub respect_robots: bool,
    /// Use /sitemap.xml as an extra seed (default true).
    pub use_sitemap: bool,
    /// Check links to other origins too (default true).
    pub check_external: bool,
    /// Check `#fragment`s against the target page's anchors (default true).
    pub check_fragments: bool,
    /// Requests in flight at once (1..=256, default 32).
    pub concurrency: u32,
    /// Requests in flight at once per host (1..=64, default 8).
    pub per_host_concurrency: u32,
    /// Request rate per host, per second (0 = unlimited, default 0; at most 1000).
    pub requests_per_second: u32,
    /// Only URLs matching one of these regexes are checked (empty: all).
    pub include: Vec<String>,
    /// URLs matching one of these regexes are skipped.
    pub exclude: Vec<String>,
    /// Extra request headers sent to the site's own origin.
    pub headers: BTreeMap<String, String>,
    /// Cookies sent to the site's own origin.
    pub cookies: BTreeMap<String, String>,
}

impl Default for LinkOptions {
    fn default() -> Self {
        Self {
            max_pages: 1000,
            max_depth: 16,
            respect_robots: true,
            use_sitemap: true,
            check_external: true,
            check_fragments: true,
            concurrency: 32,
            per_host_concurrency: 8,
            requests_per_second: 0,
            include: Vec::new(),
            exclude: Vec::new(),
            headers: BTreeMap::new(),
            cookies: BTreeMap::new(),
        }
    }
}

/// Options of a `visual-regression` scan.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VisualOptions {
    /// Capture the whole page, not only the viewport (default false).
    pub full_page: bool,
    /// Per-pixel colour-distance threshold (0..=1, default 0.1, as pixelmatch).
    pub threshold: f64,
    /// CSS selectors painted over before capture (dynamic content).
    pub mask: Vec<String>,
    /// CSS selectors hidden (`visibility: hidden`) before capture.
    pub hide: Vec<String>,
    /// A CSS selector to wait for before capture.
    pub wait_for: Option<String>,
    /// Extra settle time before capture, in ms (0..=10000, default 0).
    pub delay: u32,
}

impl Eq for VisualOptions {}

impl Default for VisualOptions {
    fn default() -> Self {
        Self {
            full_page: false,
            threshold: 0.1,
            mask: Vec::new(),
            hide: Vec::new(),
            wait_for: None,
            delay: 0,
        }
    }
}

/// Everything that decides what a scan does. Two requests with equal options (after
/// defaults are filled in) for the same URL are the same scan for deduplication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanOptions {
    /// Which check.
    pub check_type: CheckType,
    /// At which screen size.
    pub viewport: Viewport,
    /// Per-request / navigation timeout in ms, also how long `?wait=true` waits
    /// (1000..=60000, default 30000).
    pub timeout_ms: u32,
    /// Options of `broken-links` (present exactly when that is the check type).
    pub links: Option<LinkOptions>,
    /// Options of `visual-regression` (present exactly when that is the check type).
    pub visual: Option<VisualOptions>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            check_type: CheckType::BrokenLinks,
            viewport: Viewport::Desktop,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            links: Some(LinkOptions::default()),
            visual: None,
        }
    }
}

/// Default of `options.timeout`.
pub const DEFAULT_TIMEOUT_MS: u32 = 30_000;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OptionsWire<'a> {
    check_type: CheckType,
    viewport: Viewport,
    timeout: u32,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    links: Option<&'a LinkOptions>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    visual: Option<&'a VisualOptions>,
}

impl Serialize for ScanOptions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        OptionsWire {
            check_type: self.check_type,
            viewport: self.viewport,
            timeout: self.timeout_ms,
            links: self.links.as_ref(),
            visual: self.visual.as_ref(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ScanOptions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Self::from_value(&v, "options").map_err(serde::de::Error::custom)
    }
}

const COMMON_KEYS: [&str; 3] = ["checkType", "viewport", "timeout"];
const LINK_KEYS: [&str; 13] = [
    "maxPages",
    "maxDepth",
    "respectRobots",
    "useSitemap",
    "checkExternal",
    "checkFragments",
    "concurrency",
    "perHostConcurrency",
    "requestsPerSecond",
    "include",
    "exclude",
    "headers",
    "cookies",
];
const VISUAL_KEYS: [&str; 6] = ["fullPage", "threshold", "mask", "hide", "waitFor", "delay"];

/// Reads JSON fields into typed values, recording every violation under its path.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    prefix: &'a str,
    errors: &'a mut ValidationErrors,
}

impl Fields<'_> {
    fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    fn err(&mut self, key: &str, reason: impl Into<String>) {
        let p = self.path(key);
        self.errors.add(p, reason);
    }

    fn int(&mut self, key: &str, min: u32, max: u32, default: u32) -> u32 {
        match self.obj.get(key) {
            None => default,
            Some(v) => match v.as_u64() {
                Some(n) if n >= u64::from(min) && n <= u64::from(max) => {
                    u32::try_from(n).unwrap_or(default)
                }
                _ => {
                    self.err(key, format!("must be an integer between {min} and {max}"));
                    default
                }
            },
        }
    }

    fn bool(&mut self, key: &str, default: bool) -> bool {
        match self.obj.get(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.err(key, "must be true or false");
                default
            }
        }
    }

    fn strings(&mut self, key: &str, max_items: usize, max_len: usize) -> Vec<String> {
        match self.obj.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) if items.len() <= max_items => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) if !s.is_empty() && s.len() <= max_len => out.push(s.to_owned()),
                        _ => self.err(
                            &format!("{key}[{i}]"),
                            format!("must be a non-empty string of at most {max_len} characters"),
                        ),
                    }
                }
                out
            }
            Some(_) => {
                self.err(
                    key,
                    format!("must be an array of at most {max_items} strings"),
                );
                Vec::new()
            }
        }
    }

    fn string_map(&mut self, key: &str, valid_name: fn(&str) -> bool) -> BTreeMap<String, String> {
        match self.obj.get(key) {
            None => BTreeMap::new(),
            Some(Value::Object(m)) if m.len() <= 50 => {
                let mut out = BTreeMap::new();
                for (k, v) in m {
                    match v.as_str() {
                        Some(s)
                            if valid_name(k) && s.len() <= 4096 && !s.contains(['\r', '\n']) =>
                        {
                            out.insert(k.clone(), s.to_owned());
                        }
                        _ => self.err(
                            &format!("{key}.{k}"),
                            "must be a valid name with a single-line string value",
                        ),
                    }
                }
                out
            }
            Some(_) => {
                self.err(key, "must be an object of at most 50 string values");
                BTreeMap::new()
            }
        }
    }

    fn unknown_keys(&mut self, allowed: &[&[&str]]) {
        let unknown: Vec<String> = self
            .obj
            .keys()
            .filter(|k| !allowed.iter().any(|set| set.contains(&k.as_str())))
            .cloned()
            .collect();
        for k in unknown {
            self.err(&k, "is not a known option for this check type");
        }
    }
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_cookie_name(s: &str) -> bool {
    is_header_name(s)
}

impl ScanOptions {
    /// Validates and normalises `options` (fills in defaults). `path` is the JSON path used in
    /// error messages (`options` in a request body).
    pub fn from_value(v: &Value, path: &str) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let opts = Self::collect(v, path, &mut errors);
        errors.into_result(|| opts)
    }

    fn collect(v: &Value, path: &str, errors: &mut ValidationErrors) -> Self {
        let empty = Map::new();
        let obj = match v {
            Value::Object(m) => m,
            Value::Null => &empty,
            _ => {
                errors.add(path, "must be an object");
                &empty
            }
        };
        let mut f = Fields {
            obj,
            prefix: path,
            errors,
        };
        let check_type = match obj.get("checkType") {
            None => CheckType::BrokenLinks,
            Some(Value::String(s)) => match s.parse() {
                Ok(t) => t,
                Err(()) => {
                    f.err(
                        "checkType",
                        "must be one of: broken-links, visual-regression",
                    );
                    CheckType::BrokenLinks
                }
            },
            Some(_) => {
                f.err(
                    "checkType",
                    "must be one of: broken-links, visual-regression",
                );
                CheckType::BrokenLinks
            }
        };
        let viewport = match obj.get("viewport") {
            None => Viewport::Desktop,
            Some(Value::String(s)) => s.parse().unwrap_or_else(|()| {
                f.err("viewport", "must be one of: desktop, mobile, tablet");
                Viewport::Desktop
            }),
            Some(_) => {
                f.err("viewport", "must be one of: desktop, mobile, tablet");
                Viewport::Desktop
            }
        };
        let timeout_ms = f.int("timeout", 1000, 60_000, DEFAULT_TIMEOUT_MS);
        let (links, visual) = match check_type {
            CheckType::BrokenLinks => {
                f.unknown_keys(&[&COMMON_KEYS, &LINK_KEYS]);
                (Some(Self::link_options(&mut f)), None)
            }
            CheckType::VisualRegression => {
                f.unknown_keys(&[&COMMON_KEYS, &VISUAL_KEYS]);
                (None, Some(Self::visual_options(&mut f)))
            }
        };
        Self {
            check_type,
            viewport,
            timeout_ms,
            links,
            visual,
        }
    }

    fn link_options(f: &mut Fields<'_>) -> LinkOptions {
        let d = LinkOptions::default();
        let include = f.strings("include", 50, 500);
        let exclude = f.strings("exclude", 50, 500);
        for (key, list) in [("include", &include), ("exclude", &exclude)] {
            for (i, re) in list.iter().enumerate() {
                if let Err(e) = regex::RegexBuilder::new(re).size_limit(1 << 20).build() {
                    let reason = format!("is not a valid regular expression: {}", first_line(&e));
                    f.err(&format!("{key}[{i}]"), reason);
                }
            }
        }
        LinkOptions {
            max_pages: f.int("maxPages", 1, 100_000, d.max_pages),
            max_depth: f.int("maxDepth", 0, 100, d.max_depth),
            respect_robots: f.bool("respectRobots", d.respect_robots),
            use_sitemap: f.bool("useSitemap", d.use_sitemap),
            check_external: f.bool("checkExternal", d.check_external),
            check_fragments: f.bool("checkFragments", d.check_fragments),
            concurrency: f.int("concurrency", 1, 256, d.concurrency),
            per_host_concurrency: f.int("perHostConcurrency", 1, 64, d.per_host_concurrency),
            requests_per_second: f.int("requestsPerSecond", 0, 1000, d.requests_per_second),
            include,
            exclude,
            headers: f.string_map("headers", is_header_name),
            cookies: f.string_map("cookies", is_cookie_name),
        }
    }

    fn visual_options(f: &mut Fields<'_>) -> VisualOptions {
        let d = VisualOptions::default();
        let threshold = match f.obj.get("threshold") {
            None => d.threshold,
            Some(v) => match v.as_f64() {
                Some(t) if (0.0..=1.0).contains(&t) => t,
                _ => {
                    f.err("threshold", "must be a number between 0 and 1");
                    d.threshold
                }
            },
        };
        let wait_for = match f.obj.get("waitFor") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 500 => Some(s.clone()),
            Some(_) => {
                f.err(
                    "waitFor",
                    "must be a CSS selector of at most 500 characters",
                );
                None
            }
        };
        VisualOptions {
            full_page: f.bool("fullPage", d.full_page),
            threshold,
            mask: f.strings("mask", 50, 500),
            hide: f.strings("hide", 50, 500),
            wait_for,
            delay: f.int("delay", 0, 10_000, d.delay),
        }
    }

    /// The canonical JSON of the options (defaults filled in, keys in a fixed order): what is
    /// stored, echoed by the API, and hashed for deduplication.
    #[must_use]
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A rough duration estimate in ms for the `estimatedDuration` answer field.
    #[must_use]
    pub fn estimated_duration_ms(&self) -> u64 {
        match (self.check_type, &self.links, &self.visual) {
            (CheckType::BrokenLinks, Some(l), _) => {
                // About 20 pages a second on a typical site, at least 2 s.
                (u64::from(l.max_pages.min(5000)) * 50).max(2000)
            }
            (CheckType::VisualRegression, _, Some(v)) => {
                if v.full_page {
                    8000
                } else {
                    4000
                }
            }
            _ => 5000,
        }
    }
}

fn first_line(e: &impl fmt::Display) -> String {
    e.to_string().lines().last().unwrap_or("").trim().to_owned()
}

/// A validated `POST /api/scan` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanRequest {
    /// The page to scan (within the site's origin; the API checks that against the site).
    pub url: Url,
    /// The site.
    pub site_id: SiteId,
    /// Normalised options.
    pub options: ScanOptions,
}

impl ScanRequest {
    /// Parses and validates a request body, listing every violated field.
    pub fn parse(body: &[u8]) -> Result<Self, ValidationErrors> {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => Self::from_value(&v),
            Err(e) => {
                let mut errors = ValidationErrors::new();
                errors.add("body", format!("is not valid JSON: {e}"));
                Err(errors)
            }
        }
    }

    /// Validates a parsed body.
    pub fn from_value(v: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let Value::Object(obj) = v else {
            errors.add("body", "must be a JSON object");
            return Err(errors);
        };
        let url = match obj.get("url") {
            None => {
                errors.add("url", "is required");
                None
            }
            Some(Value::String(s)) => match parse_http_url(s) {
                Ok(u) => Some(u),
                Err(e) => {
                    errors.add("url", e.to_string());
                    None
                }
            },
            Some(_) => {
                errors.add("url", "must be a string (an absolute http or https URL)");
                None
            }
        };
        let site_id = match obj.get("siteId") {
            None => {
                errors.add("siteId", "is required");
                None
            }
            Some(Value::String(s)) => match parse_uuid(s) {
                Ok(u) => Some(SiteId(u)),
                Err(_) => {
                    errors.add("siteId", "must be a UUID");
                    None
                }
            },
            Some(_) => {
                errors.add("siteId", "must be a UUID string");
                None
            }
        };
        let options = ScanOptions::collect(
            obj.get("options").unwrap_or(&Value::Null),
            "options",
            &mut errors,
        );
        for k in obj.keys() {
            if !matches!(k.as_str(), "url" | "siteId" | "options") {
                errors.add(k.as_str(), "is not a known field");
            }
        }
        match (url, site_id) {
            (Some(url), Some(site_id)) if errors.is_empty() => Ok(Self {
                url,
                site_id,
                options,
            }),
            _ => Err(errors),
        }
    }

    /// The deduplication key's options part: a stable hash of URL and normalised options, so
    /// that two different pages of one site never share a scan (the guide's key left the URL
    /// out) while equal requests do.
    #[must_use]
    pub fn dedup_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.url.as_str().as_bytes());
        h.update([0u8]);
        h.update(self.options.canonical_json().as_bytes());
        let digest = h.finalize();
        hex::encode(&digest[..12])
    }
}

/// A scan as stored and returned by the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Its id.
    pub id: ScanId,
    /// Its site.
    pub site_id: SiteId,
    /// The scanned URL.
    pub url: String,
    /// Normalised options (the check type is `options.check_type`).
    pub options: ScanOptions,
    /// Where it is in its life.
    pub status: ScanStatus,
    /// When it was accepted.
    pub created_at: EpochMillis,
    /// When a worker last started it.
    pub started_at: Option<EpochMillis>,
    /// When it completed or failed.
    pub finished_at: Option<EpochMillis>,
    /// The check's summary (pages crawled, links checked, mismatch ratio, …).
    pub summary: Option<Value>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// How many times a worker has started it.
    pub attempts: u32,
    /// Who asked for it (absent for imported scans).
    pub created_by: Option<UserId>,
}

impl Scan {
    /// The check type.
    #[must_use]
    pub fn check_type(&self) -> CheckType {
        self.options.check_type
    }
}

/// A scan to insert (and enqueue, in the same transaction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewScan {
    /// Its id (chosen by the caller, so the answer can be built before the commit returns).
    pub id: ScanId,
    /// Its site.
    pub site_id: SiteId,
    /// The URL.
    pub url: String,
    /// Normalised options.
    pub options: ScanOptions,
    /// Who asked.
    pub created_by: Option<UserId>,
    /// When (epoch ms).
    pub created_at: EpochMillis,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ScanRequest, ValidationErrors> {
        ScanRequest::from_value(&v)
    }

    const SITE: &str = "0190a5d2-3b4c-7def-8123-456789abcdef";

    #[test]
    fn minimal_request_gets_defaults() {
        let r = parse(json!({"url": "https://a.test/x", "siteId": SITE})).unwrap();
        assert_eq!(r.options.check_type, CheckType::BrokenLinks);
        assert_eq!(r.options.viewport, Viewport::Desktop);
        assert_eq!(r.options.timeout_ms, 30_000);
        assert_eq!(r.options.links, Some(LinkOptions::default()));
    }

    #[test]
    fn every_violated_field_is_listed() {
        let e = parse(json!({
            "url": "ftp://a.test/", "siteId": "nope",
            "options": {"viewport": "watch", "timeout": 5, "checkType": "seo", "extra": 1}
        }))
        .unwrap_err();
        let fields = e.fields();
        for f in [
            "url",
            "siteId",
            "options.viewport",
            "options.timeout",
            "options.checkType",
        ] {
            assert!(fields.contains(&f), "{f} missing in {fields:?}");
        }
        assert!(fields.contains(&"options.extra"));
    }

    #[test]
    fn missing_fields_and_non_objects() {
        assert_eq!(
            parse(json!({})).unwrap_err().fields(),
            vec!["url", "siteId"]
        );
        assert_eq!(parse(json!([1])).unwrap_err().fields(), vec!["body"]);
        assert_eq!(ScanRequest::parse(b"{").unwrap_err().fields(), vec!["body"]);
        let e = parse(json!({"url": "https://a.test/", "siteId": SITE, "options": 3})).unwrap_err();
        assert_eq!(e.fields(), vec!["options"]);
    }

    #[test]
    fn timeout_bounds_are_inclusive() {
        for (t, ok) in [(999, false), (1000, true), (60_000, true), (60_001, false)] {
            let r =
                parse(json!({"url": "https://a.test/", "siteId": SITE, "options": {"timeout": t}}));
            assert_eq!(r.is_ok(), ok, "timeout {t}");
        }
        let r = parse(
            json!({"url": "https://a.test/", "siteId": SITE, "options": {"timeout": 1500.5}}),
        );
        assert!(r.is_err());
    }

    #[test]
    fn options_are_per_check_type() {
        let r = parse(json!({"url": "https://a.test/", "siteId": SITE,
            "options": {"checkType": "visual-regression", "fullPage": true, "mask": [".ad"]}}))
        .unwrap();
        let v = r.options.visual.unwrap();
        assert!(v.full_page);
        assert_eq!(v.mask, vec![".ad"]);
        let e = parse(json!({"url": "https://a.test/", "siteId": SITE,
            "options": {"checkType": "visual-regression", "maxPages": 3}}))
        .unwrap_err();
        assert_eq!(e.fields(), vec!["options.maxPages"]);
        let e = parse(json!({"url": "https://a.test/", "siteId": SITE,
            "options": {"exclude": ["(unclosed"], "headers": {"Bad Header": "x"}}}))
        .unwrap_err();
        assert_eq!(
            e.fields(),
            vec!["options.exclude[0]", "options.headers.Bad Header"]
        );
    }

    #[test]
    fn canonical_json_round_trips_and_dedups_defaults() {
        let a = parse(json!({"url": "https://a.test/", "siteId": SITE})).unwrap();
        let b = parse(json!({"url": "https://a.test/", "siteId": SITE,
            "options": {"viewport": "desktop", "checkType": "broken-links", "timeout": 30000}}))
        .unwrap();
        assert_eq!(a.dedup_hash(), b.dedup_hash());
        let c = parse(json!({"url": "https://a.test/other", "siteId": SITE})).unwrap();
        assert_ne!(a.dedup_hash(), c.dedup_hash(), "the URL is part of the key");
        let back: ScanOptions = serde_json::from_str(&a.options.canonical_json()).unwrap();
        assert_eq!(back, a.options);
        let v: Value = serde_json::from_str(&a.options.canonical_json()).unwrap();
        assert_eq!(v["checkType"], "broken-links");
        assert_eq!(v["timeout"], 30000);
        assert_eq!(v["maxPages"], 1000);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,20}".prop_map(Value::String),
            prop_oneof![
                Just("desktop"),
                Just("visual-regression"),
                Just("https://a.test/"),
                Just("0190a5d2-3b4c-7def-8123-456789abcdef")
            ]
            .prop_map(|s| Value::String(s.into())),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            let keys = prop_oneof![
                Just("url".to_owned()),
                Just("siteId".to_owned()),
                Just("options".to_owned()),
                Just("checkType".to_owned()),
                Just("viewport".to_owned()),
                Just("timeout".to_owned()),
                Just("mask".to_owned()),
                Just("headers".to_owned()),
                "[a-z]{1,6}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys, inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Validation never panics, and whatever it accepts re-validates from its own
        /// canonical form to the same options (normalisation is idempotent).
        #[test]
        fn validation_is_total_and_idempotent(v in arb_json()) {
            if let Ok(req) = ScanRequest::from_value(&v) {
                let canon: Value = serde_json::from_str(&req.options.canonical_json()).unwrap();
                let again = ScanOptions::from_value(&canon, "options").unwrap();
                prop_assert_eq!(again, req.options);
            }
        }
    }
}
