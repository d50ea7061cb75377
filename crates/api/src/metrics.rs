//! Prometheus metrics (the guide's names) and the request statistics behind
//! `/health/performance`.
//!
//! Labels use the matched route template (`/api/scans/{id}`), never the raw path: raw paths
//! would create one time series per scan id (and per 404 probe).

use crate::router::Route;
use axum::http::Method;
use metrics::Counter;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket bounds (seconds) of the latency histograms.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once (later calls reuse it; tests start several
/// servers in one process).
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let latency = LATENCY_BUCKETS;
            let scan = [0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("db_query_duration_seconds".into()), &latency)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("scan_duration_seconds".into()), &scan)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("scan_group_commit_batch_size".into()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
                    )
                });
            match builder.and_then(PrometheusBuilder::install_recorder) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Drains the recorded histogram samples into their buckets. `install_recorder` leaves this
/// to the caller: without it every sample stays queued until the next scrape, so a server
/// nobody scrapes grows by 8 bytes per observation (tens of MB per minute at full load).
pub(crate) fn run_upkeep() {
    if let Some(h) = handle() {
        h.run_upkeep();
    }
}

/// Request counters for rates and averages.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: AtomicU64,
    errors: AtomicU64,
    duration_us: AtomicU64,
    // Last sampled window (f64 bits), updated by `sample`.
    rate: AtomicU64,
    error_rate: AtomicU64,
    avg_ms: AtomicU64,
    cpu_percent: AtomicU64,
    last_cpu_us: AtomicU64,
    /// Per-route handles, by [`Route::index`] (the last slot: requests no route matched),
    /// resolved on a route's first request: an array index, not a map lookup, per request.
    routes: [OnceLock<RouteMetrics>; Route::COUNT + 1],
    // Counter values at the previous sample.
    last_requests: AtomicU64,
    last_errors: AtomicU64,
    last_duration_us: AtomicU64,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let _ = handle();
        Self::default()
    }

    /// Records one answered request: counters for rates, and the Prometheus series
    /// `http_requests_total{method,route,status}` and `http_duration_seconds{route}` through
    /// handles resolved once per label set (the metrics macros would hash and look the labels
    /// up on every call).
    pub(crate) fn observe_request(
        &self,
        method: &Method,
        route: Option<Route>,
        status: u16,
        elapsed: Duration,
    ) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.duration_us.fetch_add(us, Ordering::Relaxed);
        let slot = route.map_or(Route::COUNT, Route::index);
        let per_route = self.routes[slot]
            .get_or_init(|| RouteMetrics::new(route.map_or(UNMATCHED, Route::template)));
        per_route.duration.record(elapsed);
        per_route.counter(method, status).increment(1);
    }

    /// Computes rates over the time since the previous call (called every few seconds).
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn sample(&self, window: Duration) {
        let req = self.requests.load(Ordering::Relaxed);
        let err = self.errors.load(Ordering::Relaxed);
        let dur = self.duration_us.load(Ordering::Relaxed);
        let d_req = req.saturating_sub(self.last_requests.swap(req, Ordering::Relaxed));
        let d_err = err.saturating_sub(self.last_errors.swap(err, Ordering::Relaxed));
        let d_dur = dur.saturating_sub(self.last_duration_us.swap(dur, Ordering::Relaxed));
        let secs = window.as_secs_f64().max(0.001);
        let rate = d_req as f64 / secs;
        let error_rate = if d_req == 0 {
            0.0
        } else {
            d_err as f64 / d_req as f64
        };
        let avg_ms = if d_req == 0 {
            0.0
        } else {
            d_dur as f64 / d_req as f64 / 1000.0
        };
        self.rate.store(rate.to_bits(), Ordering::Relaxed);
        self.error_rate
            .store(error_rate.to_bits(), Ordering::Relaxed);
        self.avg_ms.store(avg_ms.to_bits(), Ordering::Relaxed);
        let p = ProcessStats::read();
        let cpu = p.user_cpu_us + p.system_cpu_us;
        let d_cpu = cpu.saturating_sub(self.last_cpu_us.swap(cpu, Ordering::Relaxed));
        let percent = d_cpu as f64 / 1_000_000.0 / secs * 100.0;
        self.cpu_percent.store(percent.to_bits(), Ordering::Relaxed);
    }

    /// Process CPU use over the last window, percent of one core.
    pub(crate) fn cpu_percent(&self) -> f64 {
        f64::from_bits(self.cpu_percent.load(Ordering::Relaxed))
    }

    /// Requests per second over the last window.
    pub(crate) fn request_rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }

    /// Share of 5xx answers over the last window.
    pub(crate) fn error_rate(&self) -> f64 {
        f64::from_bits(self.error_rate.load(Ordering::Relaxed))
    }

    /// Mean response time in ms over the last window.
    pub(crate) fn avg_response_ms(&self) -> f64 {
        f64::from_bits(self.avg_ms.load(Ordering::Relaxed))
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = handle().map(PrometheusHandle::render).unwrap_or_default();
        let mut first = true;
        for per_route in self.routes.iter().filter_map(OnceLock::get) {
            if first {
                out.push_str("# TYPE http_duration_seconds histogram\n");
                first = false;
            }
            per_route.duration.render(&per_route.route, &mut out);
        }
        out
    }
}

/// Process memory and CPU, read from `/proc/self`.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProcessStats {
    /// Resident set size.
    pub rss_bytes: u64,
    /// Peak resident set size.
    pub peak_rss_bytes: u64,
    /// Virtual memory size.
    pub virtual_bytes: u64,
    /// User CPU time, microseconds.
    pub user_cpu_us: u64,
    /// System CPU time, microseconds.
    pub system_cpu_us: u64,
}

impl ProcessStats {
    pub(crate) fn read() -> Self {
        let mut s = Self::default();
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            for line in status.lines() {
                let kb = |l: &str| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                        * 1024
                };
                if line.starts_with("VmRSS:") {
                    s.rss_bytes = kb(line);
                } else if line.starts_with("VmHWM:") {
                    s.peak_rss_bytes = kb(line);
                } else if line.starts_with("VmSize:") {
                    s.virtual_bytes = kb(line);
                }
            }
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name (which may contain spaces) start after ") ".
            if let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let ticks = 100u64; // USER_HZ is 100 on Linux for every architecture we ship.
                let to_us = |i: usize| {
                    f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1_000_000 / ticks
                };
                s.user_cpu_us = to_us(11);
                s.system_cpu_us = to_us(12);
            }
        }
        s
    }
}

/// The route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "OTHER"];
const STATUSES: [u16; 20] = [
    200, 201, 202, 204, 304, 400, 401, 403, 404, 405, 408, 409, 413, 415, 429, 500, 502, 503, 504,
    0,
];

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::OPTIONS => 4,
        _ => 5,
    }
}

/// The slot of a status: its own when common, else its class's (`4xx`), so that odd
/// statuses cannot multiply the series.
fn status_index(status: u16) -> usize {
    match STATUSES.iter().position(|s| *s == status) {
        Some(i) if status != 0 => i,
        _ => STATUSES.len() - 1 + usize::from(status / 100).min(5),
    }
}

fn status_name(status: u16) -> String {
    if STATUSES.contains(&status) && status != 0 {
        status.to_string()
    } else {
        format!("{}xx", status / 100)
    }
}

/// Metric handles of one route, resolved lazily per (method, status).
#[derive(Debug)]
struct RouteMetrics {
    route: String,
    duration: LatencyHistogram,
    counters: Vec<OnceLock<Counter>>,
}

impl RouteMetrics {
    fn new(route: &str) -> Self {
        Self {
            route: route.to_owned(),
            duration: LatencyHistogram::default(),
            counters: (0..METHODS.len() * (STATUSES.len() + 6))
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    fn counter(&self, method: &Method, status: u16) -> &Counter {
        let m = method_index(method);
        let slot = m * (STATUSES.len() + 6) + status_index(status);
        self.counters[slot.min(self.counters.len() - 1)].get_or_init(|| {
            metrics::counter!(
                "http_requests_total",
                "method" => METHODS[m],
                "route" => self.route.clone(),
                "status" => status_name(status)
            )
        })
    }
}

/// `http_duration_seconds` of one route: a count per bucket, a count and a sum, all atomic.
///
/// By hand, not through the `metrics` recorder: the exporter's histogram queues every sample
/// (with a timestamp) in a lock-free list that the upkeep later sorts into buckets, and that
/// queueing — an epoch pin, a clock read and a push on every request — was ~1.2 % of the
/// server's samples (perf, `GET /health/live`). Counting straight into the bucket costs three
/// atomic adds; the exposition is the same histogram.
#[derive(Debug, Default)]
struct LatencyHistogram {
    /// Observations per bucket (not cumulative): `buckets[i]` counts values in
    /// `(LATENCY_BUCKETS[i - 1], LATENCY_BUCKETS[i]]`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl LatencyHistogram {
    fn record(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let i = LATENCY_BUCKETS.partition_point(|bound| *bound < secs);
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Appends the series of `route` in the Prometheus text format.
    #[allow(clippy::cast_precision_loss)]
    fn render(&self, route: &str, out: &mut String) {
        // `route` is a template or "unmatched": nothing in it needs escaping.
        let mut cumulative = 0u64;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "http_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        // Read after the buckets: concurrent requests may have been counted in between.
        let count = self.count.load(Ordering::Relaxed).max(cumulative);
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "http_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "http_duration_seconds_sum{{route=\"{route}\"}} {sum}");
        let _ = writeln!(
            out,
            "http_duration_seconds_count{{route=\"{route}\"}} {count}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_histogram_counts_into_cumulative_buckets() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_micros(200)); // le 0.0005
        h.record(Duration::from_micros(500)); // le 0.0005 (bounds are inclusive)
        h.record(Duration::from_millis(3)); // le 0.005
        h.record(Duration::from_secs(30)); // +Inf only
        let mut out = String::new();
        h.render("/api/scans/{id}", &mut out);
        let value = |le: &str| -> u64 {
            let prefix =
                format!("http_duration_seconds_bucket{{route=\"/api/scans/{{id}}\",le=\"{le}\"}} ");
            let line = out
                .lines()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("no le={le} in {out}"));
            line[prefix.len()..].parse().unwrap()
        };
        assert_eq!(value("0.0005"), 2);
        assert_eq!(value("0.001"), 2);
        assert_eq!(value("0.0025"), 2);
        assert_eq!(value("0.005"), 3);
        assert_eq!(value("10"), 3);
        assert_eq!(value("+Inf"), 4);
        assert!(out.contains("http_duration_seconds_count{route=\"/api/scans/{id}\"} 4\n"));
        let sum_line = out
            .lines()
            .find(|l| l.starts_with("http_duration_seconds_sum"))
            .unwrap();
        let sum: f64 = sum_line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((sum - 30.0037).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn render_lists_each_route_seen_once_under_one_type_line() {
        let m = Metrics::new();
        m.observe_request(
            &Method::GET,
            Some(Route::HealthLive),
            200,
            Duration::from_micros(20),
        );
        m.observe_request(&Method::GET, None, 404, Duration::from_micros(20));
        let text = m.render();
        assert_eq!(
            text.matches("# TYPE http_duration_seconds histogram")
                .count(),
            1
        );
        assert!(text.contains("http_duration_seconds_count{route=\"/health/live\"} 1"));
        assert!(text.contains("http_duration_seconds_count{route=\"unmatched\"} 1"));
        assert!(!text.contains("route=\"/api/scans/{id}\""));
    }
}
