//! Test fixtures: a site served on 127.0.0.1:0, pools, PNG decoding, process checks.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use sentinel_netguard::{EgressPolicy, Guard, StaticResolver};
use sentinel_visual::{BrowserPool, Capture, PoolConfig};
use tokio::net::TcpListener;
use url::Url;

/// One runtime for every test of the binary, so that a pool can be shared by several tests
/// (a pool's tasks live on the runtime that started it).
pub(crate) static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

/// A served file.
#[derive(Clone)]
pub(crate) struct Resource {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    pub(crate) delay: Duration,
}

pub(crate) fn html(body: impl Into<String>) -> Resource {
    Resource {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: body.into().into_bytes(),
        delay: Duration::ZERO,
    }
}

pub(crate) fn png(bytes: Vec<u8>) -> Resource {
    Resource {
        status: 200,
        content_type: "image/png",
        body: bytes,
        delay: Duration::ZERO,
    }
}

/// A test site: fixed resources by path, plus `/redirect?to=URL`.
pub(crate) struct Site {
    pub(crate) base: Url,
    pub(crate) hits: Arc<AtomicUsize>,
}

impl Site {
    pub(crate) fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap()
    }
}

#[derive(Clone)]
struct SiteState {
    files: Arc<HashMap<String, Resource>>,
    hits: Arc<AtomicUsize>,
}

async fn handle(State(state): State<SiteState>, uri: Uri) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    if std::env::var_os("TEST_LOG").is_some() {
        eprintln!("site hit: {uri}");
    }
    if uri.path() == "/redirect" {
        let to = uri
            .query()
            .and_then(|q| q.strip_prefix("to="))
            .unwrap_or("/");
        let mut r = StatusCode::FOUND.into_response();
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_str(to).unwrap());
        return r;
    }
    match state.files.get(uri.path()) {
        Some(res) => {
            if !res.delay.is_zero() {
                tokio::time::sleep(res.delay).await;
            }
            let status = StatusCode::from_u16(res.status).unwrap();
            (
                status,
                [(header::CONTENT_TYPE, res.content_type)],
                res.body.clone(),
            )
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Serves `files` on `ip`:0 (a loopback address).
pub(crate) async fn serve_on(ip: &str, files: Vec<(&str, Resource)>) -> Site {
    let files: HashMap<String, Resource> =
        files.into_iter().map(|(p, r)| (p.to_owned(), r)).collect();
    let hits = Arc::new(AtomicUsize::new(0));
    let state = SiteState {
        files: Arc::new(files),
        hits: Arc::clone(&hits),
    };
    let app = Router::new().fallback(handle).with_state(state);
    let addr: SocketAddr = format!("{ip}:0").parse().unwrap();
    let listener = TcpListener::bind(addr).await.unwrap();
    let local = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Site {
        base: format!("http://{local}/").parse().unwrap(),
        hits,
    }
}

/// A canary on `ip`:0 that counts TCP connections (not just HTTP requests: a TLS or
/// WebSocket attempt that never sends a valid request still counts), answers a minimal
/// HTTP 200 and closes.
pub(crate) async fn canary_on(ip: &str) -> (Url, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (format!("http://{addr}/").parse().unwrap(), count)
}

pub(crate) async fn serve(files: Vec<(&str, Resource)>) -> Site {
    serve_on("127.0.0.1", files).await
}

/// The test egress policy: only 127.0.0.1 (so 127.0.0.2 can play a forbidden internal host
/// without any traffic leaving loopback); `site.test` and `internal.test` resolve statically.
pub(crate) fn guard() -> Guard {
    let resolver = StaticResolver::new()
        .with("site.test", ["127.0.0.1".parse::<IpAddr>().unwrap()])
        .with("internal.test", ["127.0.0.2".parse::<IpAddr>().unwrap()]);
    let policy = EgressPolicy::new().allow("127.0.0.1/32".parse().unwrap());
    Guard::new(policy, Arc::new(resolver))
}

/// Chromium resolves the same names to the same addresses, and nothing else: no test can
/// make it send a DNS query.
pub(crate) const HOST_RULES: &str = "--host-resolver-rules=\
    MAP site.test 127.0.0.1, MAP internal.test 127.0.0.2, \
    MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE 127.0.0.2";

pub(crate) fn config() -> PoolConfig {
    let mut c = PoolConfig::new(Arc::new(guard())).with_local_instances(1);
    c.extra_args = vec![HOST_RULES.to_owned()];
    c.max_full_page_height = 8000;
    c
}

pub(crate) async fn pool(config: PoolConfig) -> BrowserPool {
    BrowserPool::start(config).await.unwrap()
}

/// Decoded RGBA8 pixels.
pub(crate) struct Image {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) rgba: Vec<u8>,
}

impl Image {
    pub(crate) fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * self.width + x) * 4) as usize;
        [
            self.rgba[i],
            self.rgba[i + 1],
            self.rgba[i + 2],
            self.rgba[i + 3],
        ]
    }

    /// Pixels that differ from `other` (images of different sizes differ everywhere).
    pub(crate) fn differing(&self, other: &Image) -> usize {
        if (self.width, self.height) != (other.width, other.height) {
            return (self.width * self.height).max(other.width * other.height) as usize;
        }
        self.rgba
            .chunks_exact(4)
            .zip(other.rgba.chunks_exact(4))
            .filter(|(a, b)| a != b)
            .count()
    }
}

pub(crate) fn decode(capture: &Capture) -> Image {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(&capture.png[..]));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("unexpected colour type {other:?}"),
    };
    Image {
        width: info.width,
        height: info.height,
        rgba,
    }
}

/// A PNG of `w`×`h` filled with `f(x, y)`.
pub(crate) fn make_png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&f(x, y));
            }
        }
        writer.write_image_data(&data).unwrap();
    }
    out
}

/// Every live process: its pid, `/proc` directory and the `stat` fields after the command
/// name (state, ppid, pgrp, …). Zombies are left out: they hold no resources and disappear
/// when reaped.
fn live_processes() -> impl Iterator<Item = (u32, std::path::PathBuf, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let fields = stat.rsplit_once(')')?.1.trim_start().to_owned();
            (!fields.starts_with('Z')).then(|| (pid, entry.path(), fields))
        })
}

/// Live processes whose command line mentions `needle`.
pub(crate) fn processes_with(needle: &str) -> Vec<u32> {
    live_processes()
        .filter(|(_, dir, _)| {
            std::fs::read(dir.join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .map(|(pid, _, _)| pid)
        .collect()
}

/// Live processes of the process group `pgid`. The pool starts every local browser as a
/// group leader, and its zygotes, renderers, GPU and utility processes stay in that group even
/// when the browser dies and they are re-parented; their command lines do not all carry the
/// profile directory (the headless shell's children do not).
pub(crate) fn processes_in_group(pgid: u32) -> Vec<u32> {
    live_processes()
        .filter(|(_, _, fields)| {
            fields
                .split_whitespace()
                .nth(2)
                .and_then(|g| g.parse::<u32>().ok())
                == Some(pgid)
        })
        .map(|(pid, _, _)| pid)
        .collect()
}

/// Polls `cond` every 50 ms for up to `limit` (conditions that the system reaches
/// asynchronously, e.g. a killed process disappearing); returns whether it became true.
pub(crate) async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let give_up = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() > give_up {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
