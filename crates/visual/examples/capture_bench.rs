//! Capture throughput of the browser pool: every URL of a list at the three viewports.
//!
//! ```text
//! cargo run --release -p sentinel-visual --example capture_bench -- \
//!     --urls urls.txt [--instances 2] [--pages 3] [--strategy least-connections] \
//!     [--full-page] [--out DIR] [--executable PATH] [--chromium-arg FLAG]…
//! ```
//!
//! Prints one JSON line: shots, errors, capture seconds (pool start excluded, reported
//! separately), shots per second. Only loopback URLs are allowed by its egress policy.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark tool: fail loudly

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use sentinel_core::Viewport;
use sentinel_netguard::{EgressPolicy, Guard, StaticResolver};
use sentinel_resilience::Strategy;
use sentinel_visual::{BrowserPool, CaptureRequest, PoolConfig};

struct Args {
    urls: PathBuf,
    instances: usize,
    pages: usize,
    strategy: Strategy,
    full_page: bool,
    out: Option<PathBuf>,
    chromium_args: Vec<String>,
    executable: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        urls: PathBuf::new(),
        instances: 2,
        pages: 3,
        strategy: Strategy::LeastConnections,
        full_page: false,
        out: None,
        chromium_args: Vec::new(),
        executable: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--urls" => a.urls = it.next().unwrap().into(),
            "--instances" => a.instances = it.next().unwrap().parse().unwrap(),
            "--pages" => a.pages = it.next().unwrap().parse().unwrap(),
            "--strategy" => a.strategy = it.next().unwrap().parse().unwrap(),
            "--full-page" => a.full_page = true,
            "--out" => a.out = Some(it.next().unwrap().into()),
            "--chromium-arg" => a.chromium_args.push(it.next().unwrap()),
            "--executable" => a.executable = Some(it.next().unwrap().into()),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let a = args();
    let urls: Vec<url::Url> = std::fs::read_to_string(&a.urls)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().parse().unwrap())
        .collect();
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).unwrap();
    }
    let guard = Guard::new(
        EgressPolicy::new().allow("127.0.0.0/8".parse().unwrap()),
        Arc::new(StaticResolver::new()),
    );
    let mut config = PoolConfig::new(Arc::new(guard)).with_local_instances(a.instances);
    config.pages_per_browser = a.pages;
    config.strategy = a.strategy;
    config.extra_args = a.chromium_args.clone();
    if let Some(e) = &a.executable {
        config.executable.clone_from(e);
    }
    let executable = config.executable.display().to_string();
    let t0 = Instant::now();
    let pool = BrowserPool::start(config).await.unwrap();
    let launch_ms = t0.elapsed().as_millis();

    let jobs: Vec<(usize, url::Url, Viewport)> = urls
        .iter()
        .enumerate()
        .flat_map(|(i, u)| Viewport::ALL.map(|v| (i, u.clone(), v)))
        .collect();
    let shots = jobs.len();
    let t1 = Instant::now();
    let results: Vec<bool> = futures::stream::iter(jobs)
        .map(|(i, url, viewport)| {
            let pool = pool.clone();
            let out = a.out.clone();
            let full_page = a.full_page;
            async move {
                let mut req = CaptureRequest::new(url, viewport);
                req.full_page = full_page;
                match pool.capture(&req).await {
                    Ok(shot) => {
                        if let Some(out) = out {
                            let name = format!("{i:03}_{}.png", viewport.as_str());
                            tokio::fs::write(out.join(name), &shot.png).await.unwrap();
                        }
                        true
                    }
                    Err(e) => {
                        eprintln!("capture failed: {e}");
                        false
                    }
                }
            }
        })
        // Everything is submitted at once; the pool queues what exceeds its page slots.
        .buffer_unordered(a.instances * a.pages * 2)
        .collect()
        .await;
    let capture_s = t1.elapsed().as_secs_f64();
    let errors = results.iter().filter(|ok| !**ok).count();
    let pids: Vec<u32> = pool
        .stats()
        .instances
        .iter()
        .filter_map(|i| i.pid)
        .collect();
    let chromium_cpu_s: f64 = pids.iter().map(|&p| tree_cpu_seconds(p)).sum();
    let own_cpu_s = cpu_seconds("/proc/self/stat", false);
    if std::env::var_os("BENCH_BREAKDOWN").is_some() {
        for &p in &pids {
            eprintln!("cpu by process type (browser {p}): {:?}", breakdown(p));
        }
    }
    pool.shutdown().await;
    let report = serde_json::json!({
        "tool": "qa-sentinel-pool",
        "instances": a.instances,
        "pages_per_browser": a.pages,
        "executable": executable,
        "strategy": a.strategy.as_str(),
        "full_page": a.full_page,
        "shots": shots,
        "errors": errors,
        "launch_ms": launch_ms,
        "capture_s": round2(capture_s),
        "shots_per_s": round2((shots - errors) as f64 / capture_s),
        "chromium_cpu_s": round2(chromium_cpu_s),
        "own_cpu_s": round2(own_cpu_s),
    });
    println!("{report}");
}

/// CPU seconds (user + system) of a process from `/proc/<pid>/stat`, with its reaped
/// children's if `children`.
fn cpu_seconds(stat_path: &str, children: bool) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat_path) else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    // Fields after the command: state is field 3; utime 14, stime 15, cutime 16, cstime 17.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let ticks = num(14) + num(15) + if children { num(16) + num(17) } else { 0.0 };
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

/// CPU seconds of a browser's whole process tree: every live process, plus the children
/// each has already reaped (renderers of closed contexts).
fn tree_cpu_seconds(root: u32) -> f64 {
    breakdown(root).values().sum()
}

/// Every process id under `root` (found by parent id; `/proc/*/task/*/children` is not
/// available on every kernel).
fn tree(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u32>().ok())
        {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found
}

/// CPU seconds by Chromium process type (`--type=`), reaped children attributed to
/// "<type> children" (a zygote's reaped children are the renderers of closed contexts).
fn breakdown(root: u32) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for pid in tree(root) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        let kind = cmdline
            .split(['\0', ' '])
            .find_map(|a| a.strip_prefix("--type="))
            .unwrap_or("browser")
            .to_owned();
        let own = cpu_seconds(&format!("/proc/{pid}/stat"), false);
        let all = cpu_seconds(&format!("/proc/{pid}/stat"), true);
        *out.entry(kind.clone()).or_insert(0.0) += own;
        if all > own {
            *out.entry(format!("{kind} children")).or_insert(0.0) += all - own;
        }
    }
    out
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
