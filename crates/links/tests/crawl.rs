//! The engine against sites served by the test itself on loopback.
//!
//! The main site listens on 127.0.0.1, an "external" site on 127.0.0.2; the egress policy
//! allows exactly those two addresses, so anything else (127.0.0.3, ::1) stands in for a
//! refused internal address that must never be connected to.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sentinel_links::{
    BrokenKind, CheckerConfig, Element, ExternalCache, LinkChecker, NoProgress, ProgressSnapshot,
    Report, RunError,
};
use sentinel_netguard::{EgressPolicy, StaticResolver};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use url::Url;

type Hits = Arc<Mutex<HashMap<String, usize>>>;

async fn count(State(hits): State<Hits>, req: Request, next: Next) -> Response {
    let key = format!("{} {}", req.method(), req.uri());
    *hits.lock().unwrap().entry(key).or_default() += 1;
    next.run(req).await
}

fn hits_for(hits: &Hits, path: &str) -> usize {
    hits.lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.split(' ').nth(1) == Some(path))
        .map(|(_, n)| n)
        .sum()
}

async fn serve(app: Router, ip: &str) -> (SocketAddr, Hits) {
    let hits: Hits = Arc::default();
    let app = app.layer(middleware::from_fn_with_state(hits.clone(), count));
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn page(body: &str) -> Response {
    html(format!(
        "<!doctype html><html><head><title>t</title></head><body>{body}</body></html>"
    ))
}

fn redirect(code: StatusCode, to: &str) -> Response {
    (code, [(header::LOCATION, to.to_owned())]).into_response()
}

/// The "external" site on 127.0.0.2.
fn external_site(seen: Arc<Mutex<Vec<HeaderMap>>>) -> Router {
    Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/gone", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/page.html",
            get(|| async { page(r#"<h1 id="ext-anchor">external</h1>"#) }),
        )
        .route(
            "/echo",
            get(move |headers: HeaderMap| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(headers);
                    "seen"
                }
            }),
        )
}

struct Fixture {
    site: SocketAddr,
    site_hits: Hits,
    ext: SocketAddr,
    ext_hits: Hits,
    ext_seen: Arc<Mutex<Vec<HeaderMap>>>,
    canary: SocketAddr,
    canary_hits: Arc<AtomicUsize>,
    closed: SocketAddr,
}

/// The main site: every kind of broken link once, and every kind of working link that a
/// sloppy checker would report.
fn main_site(ext: SocketAddr, canary: SocketAddr, closed: SocketAddr) -> Router<String> {
    let slow_limited = Arc::new(AtomicUsize::new(0));
    let index = format!(
        r##"
        <a href="/a.html">ok page</a> <a href="rel.html">relative</a>
        <a href="/missing.html">404</a>
        <a href="/a.html#sec">fragment ok</a> <a href="/a.html#nope">fragment broken</a>
        <a href="#local">same-page ok</a> <a href="#gone">same-page broken</a> <a href="#top">top</a>
        <p id="local">x</p>
        <a href="/redir">redirect to ok</a> <a href="/redir-404">redirect to 404</a>
        <a href="/loop1">loop</a> <a href="/server-error">500</a> <a href="/slow">slow</a>
        <a href="/limited">429 then ok</a> <link rel="icon" href="/head-refused">
        <img src="/img/ok.png" srcset="/img/ok-2x.png 2x, /img/missing-3x.png 3x">
        <script src="/js/missing.js"></script>
        <link rel="stylesheet" href="/style.css">
        <a href="/caf%C3%A9.html">encoded</a> <a href="/café.html">unicode</a>
        <a href="/%7Etilde.html">escaped tilde</a> <a href="/~tilde.html">tilde</a>
        <a href="/base.html">base</a> <a href="/refresh.html">refresh</a>
        <a href="/private/secret.html">robots</a>
        <a href="/needs-cookie">cookie</a>
        <a href="http://{ext}/ok">external ok</a> <a href="http://{ext}/gone">external 404</a>
        <a href="http://{ext}/page.html#ext-anchor">ext fragment</a>
        <a href="http://{ext}/page.html#missing-ext">ext fragment broken</a>
        <a href="http://{ext}/echo">ext echo</a>
        <a href="http://nowhere.test/">dns</a>
        <a href="http://{closed}/">refused</a>
        <a href="https://{site}/a.html">tls</a>
        <a href="http://{canary}/">blocked</a> <a href="/to-blocked">redirect to blocked</a>
        <a href="mailto:someone@example.test">mail</a> <a href="javascript:void(0)">js</a>
        "##,
        site = "SITE",
    );
    let to_blocked = format!("http://{canary}/internal");
    Router::new()
        .route("/", get(move |State(site): State<String>| {
            let body = index.replace("SITE", &site);
            async move { page(&body) }
        }))
        .route("/a.html", get(|| async { page(r#"<h2 id="sec">s</h2><a href="/rel.html">back</a>"#) }))
        .route("/rel.html", get(|| async { page("relative ok") }))
        .route("/redir", get(|| async { redirect(StatusCode::MOVED_PERMANENTLY, "/a.html") }))
        .route("/redir-404", get(|| async { redirect(StatusCode::FOUND, "/nowhere") }))
        .route("/loop1", get(|| async { redirect(StatusCode::FOUND, "/loop2") }))
        .route("/loop2", get(|| async { redirect(StatusCode::FOUND, "/loop1") }))
        .route("/server-error", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(20)).await;
                "late"
            }),
        )
        .route(
            "/limited",
            get(move || {
                let n = slow_limited.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")]).into_response()
                    } else {
                        "fine".into_response()
                    }
                }
            }),
        )
        .route(
            "/head-refused",
            get(|| async { "get works" }).head(|| async { StatusCode::METHOD_NOT_ALLOWED }),
        )
        .route("/img/ok.png", get(|| async { ([(header::CONTENT_TYPE, "image/png")], "png") }))
        .route("/img/ok-2x.png", get(|| async { ([(header::CONTENT_TYPE, "image/png")], "png") }))
        .route("/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css")], "p{}") }))
        .route("/caf%C3%A9.html", get(|| async { page("café") }))
        .route("/~tilde.html", get(|| async { page("tilde") }))
        .route(
            "/base.html",
            get(|| async {
                page(r#"<a href="child.html">child</a><base href="/sub/"><a href="gone.html">gone</a>"#)
            }),
        )
        .route("/sub/child.html", get(|| async { page("child") }))
        .route(
            "/refresh.html",
            get(|| async {
                html(String::from(r#"<meta http-equiv="refresh" content="0; url=/refresh-target-missing.html">"#))
            }),
        )
        .route(
            "/private/secret.html",
            get(|| async { page(r#"<a href="/private-broken.html">never seen</a>"#) }),
        )
        .route(
            "/robots.txt",
            get(|| async { "User-agent: *\nDisallow: /private/\n" }),
        )
        .route(
            "/sitemap.xml",
            get(|| async {
                ([(header::CONTENT_TYPE, "application/xml")],
                 r#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>/orphan.html</loc></url></urlset>"#)
            }),
        )
        .route("/orphan.html", get(|| async { page(r#"<a href="/orphan-missing.html">x</a>"#) }))
        .route(
            "/needs-cookie",
            get(|headers: HeaderMap| async move {
                let ok = headers.get(header::COOKIE).is_some_and(|c| c == "session=s3cret")
                    && headers.get("x-site-token").is_some_and(|t| t == "t0k");
                if ok { StatusCode::OK } else { StatusCode::FORBIDDEN }
            }),
        )
        .route(
            "/to-blocked",
            get(move || {
                let to = to_blocked.clone();
                async move { redirect(StatusCode::FOUND, &to) }
            }),
        )
}

async fn fixture() -> Fixture {
    let ext_seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let (ext, ext_hits) = serve(external_site(ext_seen.clone()), "127.0.0.2").await;
    let canary_listener = TcpListener::bind("127.0.0.3:0").await.unwrap();
    let canary = canary_listener.local_addr().unwrap();
    let canary_hits = Arc::new(AtomicUsize::new(0));
    let counter = canary_hits.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = canary_listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // The index needs its own address (for the https link), which is known only once
    // bound: bind first, then build the router with it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = listener.local_addr().unwrap();
    let hits: Hits = Arc::default();
    let app = main_site(ext, canary, closed)
        .with_state(site.to_string())
        .layer(middleware::from_fn_with_state(hits.clone(), count));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fixture {
        site,
        site_hits: hits,
        ext,
        ext_hits,
        ext_seen,
        canary,
        canary_hits,
        closed,
    }
}

fn config() -> CheckerConfig {
    let policy = EgressPolicy::new()
        .allow("127.0.0.1/32".parse().unwrap())
        .allow("127.0.0.2/32".parse().unwrap());
    let mut c = CheckerConfig {
        timeout: Duration::from_millis(700),
        max_retries: 1,
        retry_base: Duration::from_millis(20),
        egress: policy,
        ..CheckerConfig::default()
    };
    c.site_headers
        .insert(header::COOKIE, "session=s3cret".parse().unwrap());
    c.site_headers
        .insert("x-site-token", "t0k".parse().unwrap());
    c.with_resolver(Arc::new(StaticResolver::new()))
}

async fn run(config: CheckerConfig, start: &str) -> Result<Report, RunError> {
    LinkChecker::new(config)
        .run(
            Url::parse(start).unwrap(),
            &NoProgress,
            CancellationToken::new(),
        )
        .await
}

fn kinds(report: &Report) -> HashMap<String, (BrokenKind, Option<u16>)> {
    report
        .broken
        .iter()
        .map(|b| (b.url.clone(), (b.kind, b.status)))
        .collect()
}

#[tokio::test]
async fn finds_every_broken_kind_and_nothing_else() {
    let f = fixture().await;
    let site = format!("http://{}", f.site);
    let ext = format!("http://{}", f.ext);
    let report = run(config(), &format!("{site}/")).await.unwrap();
    let found = kinds(&report);
    let expected: HashMap<String, (BrokenKind, Option<u16>)> = [
        (
            format!("{site}/missing.html"),
            (BrokenKind::Status, Some(404)),
        ),
        (
            format!("{site}/a.html#nope"),
            (BrokenKind::Fragment, Some(200)),
        ),
        (format!("{site}/#gone"), (BrokenKind::Fragment, Some(200))),
        (format!("{site}/redir-404"), (BrokenKind::Status, Some(404))),
        (format!("{site}/loop1"), (BrokenKind::RedirectLoop, None)),
        (
            format!("{site}/server-error"),
            (BrokenKind::Status, Some(500)),
        ),
        (format!("{site}/slow"), (BrokenKind::Timeout, None)),
        (
            format!("{site}/img/missing-3x.png"),
            (BrokenKind::Status, Some(404)),
        ),
        (
            format!("{site}/js/missing.js"),
            (BrokenKind::Status, Some(404)),
        ),
        (
            format!("{site}/sub/gone.html"),
            (BrokenKind::Status, Some(404)),
        ),
        (
            format!("{site}/refresh-target-missing.html"),
            (BrokenKind::Status, Some(404)),
        ),
        (
            format!("{site}/orphan-missing.html"),
            (BrokenKind::Status, Some(404)),
        ),
        (format!("{ext}/gone"), (BrokenKind::Status, Some(404))),
        (
            format!("{ext}/page.html#missing-ext"),
            (BrokenKind::Fragment, Some(200)),
        ),
        (
            String::from("http://nowhere.test/"),
            (BrokenKind::Dns, None),
        ),
        (format!("http://{}/", f.closed), (BrokenKind::Connect, None)),
        (
            format!("https://{}/a.html", f.site),
            (BrokenKind::Tls, None),
        ),
        (format!("http://{}/", f.canary), (BrokenKind::Blocked, None)),
        (format!("{site}/to-blocked"), (BrokenKind::Blocked, None)),
    ]
    .into_iter()
    .collect();
    let missing: BTreeSet<_> = expected
        .keys()
        .filter(|k| !found.contains_key(*k))
        .collect();
    let extra: BTreeSet<_> = found
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}\n{report:#?}"
    );
    for (url, want) in &expected {
        assert_eq!(&found[url], want, "{url}");
    }

    // Sources: every page and element that links to a broken URL.
    let by_url = |u: &str| report.broken.iter().find(|b| b.url == u).unwrap();
    let img = by_url(&format!("{site}/img/missing-3x.png"));
    assert_eq!(img.sources.len(), 1);
    assert_eq!(img.sources[0].page, format!("{site}/"));
    assert_eq!(img.sources[0].element, Element::ImgSrcset);
    assert_eq!(
        by_url(&format!("{site}/js/missing.js")).sources[0].element,
        Element::Script
    );
    assert_eq!(
        by_url(&format!("{site}/sub/gone.html")).sources[0].page,
        format!("{site}/base.html")
    );
    let orphan = by_url(&format!("{site}/orphan-missing.html"));
    assert_eq!(
        orphan.sources[0].page,
        format!("{site}/orphan.html"),
        "reached through the sitemap"
    );
    assert_eq!(
        by_url(&format!("{site}/refresh-target-missing.html")).sources[0].element,
        Element::MetaRefresh
    );
    // Redirect chains are reported.
    let r404 = by_url(&format!("{site}/redir-404"));
    assert_eq!(r404.redirects.len(), 1);
    assert_eq!(r404.redirects[0].status, 302);

    // The 429 was retried after its Retry-After and then worked; the 405 fell back to GET.
    assert!(hits_for(&f.site_hits, "/limited") >= 2);
    assert_eq!(hits_for(&f.site_hits, "/head-refused"), 2, "HEAD then GET");
    // Percent-encoding variants were one URL each, fetched once.
    assert_eq!(hits_for(&f.site_hits, "/caf%C3%A9.html"), 1);
    assert_eq!(hits_for(&f.site_hits, "/~tilde.html"), 1);
    // robots.txt: the disallowed page was never requested, so its broken link is unknown.
    assert_eq!(hits_for(&f.site_hits, "/private/secret.html"), 0);
    assert_eq!(report.stats.robots_disallowed, 1);
    // Each unique URL once (plus HEAD→GET for errors and retries).
    assert_eq!(hits_for(&f.site_hits, "/rel.html"), 1);
    assert_eq!(hits_for(&f.ext_hits, "/ok"), 1);
    // The refused address was never connected to.
    assert_eq!(f.canary_hits.load(Ordering::SeqCst), 0);
    // Site headers and cookies went to the site only.
    let seen = f.ext_seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|h| !h.contains_key("cookie") && !h.contains_key("x-site-token"))
    );
    assert!(report.summary.pages >= 8, "{:?}", report.summary);
    assert_eq!(report.summary.broken, expected.len() as u64);
}

#[tokio::test]
async fn robots_and_fragments_can_be_switched_off() {
    let f = fixture().await;
    let site = format!("http://{}", f.site);
    let mut c = config();
    c.respect_robots = false;
    c.check_fragments = false;
    c.check_external = false;
    let report = run(c, &format!("{site}/")).await.unwrap();
    let found = kinds(&report);
    assert!(
        found.contains_key(&format!("{site}/private-broken.html")),
        "robots ignored"
    );
    assert!(
        found.keys().all(|u| !u.contains('#')),
        "no fragment findings"
    );
    assert!(
        found
            .keys()
            .all(|u| u.starts_with(&site) || u.starts_with("https://"))
    );
    assert_eq!(hits_for(&f.ext_hits, "/ok"), 0);
}

#[tokio::test]
async fn limits_patterns_and_depth_bound_the_crawl() {
    let f = fixture().await;
    let site = format!("http://{}", f.site);
    let mut c = config();
    c.max_depth = 0;
    c.use_sitemap = false;
    c.filter = sentinel_links::Filter::new(&[], &[String::from("/slow$"), String::from("nowhere")])
        .unwrap();
    let report = run(c, &format!("{site}/")).await.unwrap();
    assert_eq!(
        report.summary.pages, 1,
        "only the start page is crawled at depth 0"
    );
    let found = kinds(&report);
    assert!(!found.contains_key(&format!("{site}/slow")));
    assert!(!found.contains_key("http://nowhere.test/"));
    assert!(
        !found.contains_key(&format!("{site}/sub/gone.html")),
        "base.html not crawled"
    );
    assert!(
        found.contains_key(&format!("{site}/a.html#nope")),
        "anchors fetched without crawling"
    );
    assert_eq!(hits_for(&f.site_hits, "/slow"), 0);

    let mut c = config();
    c.max_pages = 2;
    let report = run(c, &format!("{site}/")).await.unwrap();
    assert_eq!(report.summary.pages, 2);
}

#[tokio::test]
async fn the_external_cache_spans_runs() {
    let f = fixture().await;
    let cache = ExternalCache::new(1000, Duration::from_secs(60));
    let start = format!("http://{}/", f.site);
    let first = run(config().with_cache(cache.clone()), &start)
        .await
        .unwrap();
    let ok_hits = hits_for(&f.ext_hits, "/ok");
    let page_hits = hits_for(&f.ext_hits, "/page.html");
    assert!(!cache.is_empty());
    let second = run(config().with_cache(cache.clone()), &start)
        .await
        .unwrap();
    assert_eq!(hits_for(&f.ext_hits, "/ok"), ok_hits, "cached");
    assert_eq!(
        hits_for(&f.ext_hits, "/page.html"),
        page_hits,
        "cached with its anchors"
    );
    assert!(second.stats.from_cache >= 4);
    assert_eq!(kinds(&first), kinds(&second));
}

#[tokio::test]
async fn a_broken_start_page_is_an_error_and_cancellation_stops_the_run() {
    let f = fixture().await;
    let e = run(config(), &format!("http://{}/missing.html", f.site))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            RunError::StartPage {
                status: Some(404),
                ..
            }
        ),
        "{e}"
    );
    let e = run(config(), "ftp://127.0.0.1/").await.unwrap_err();
    assert!(matches!(e, RunError::InvalidStart(_)));

    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let progress = move |p: &ProgressSnapshot| {
        if p.links_checked >= 3 {
            trigger.cancel();
        }
    };
    let e = LinkChecker::new(config())
        .run(
            Url::parse(&format!("http://{}/", f.site)).unwrap(),
            &progress,
            cancel,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, RunError::Cancelled));
}

#[tokio::test]
async fn the_default_policy_refuses_loopback_sites() {
    let f = fixture().await;
    let mut c = config();
    c.egress = EgressPolicy::new();
    let e = run(c, &format!("http://{}/", f.site)).await.unwrap_err();
    assert!(
        matches!(
            e,
            RunError::StartPage {
                kind: BrokenKind::Blocked,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(hits_for(&f.site_hits, "/"), 0);
}

#[tokio::test]
async fn head_is_used_for_assets_and_get_for_pages() {
    let f = fixture().await;
    run(config(), &format!("http://{}/", f.site)).await.unwrap();
    let hits = f.site_hits.lock().unwrap();
    assert_eq!(hits.get("HEAD /img/ok.png"), Some(&1), "{hits:#?}");
    assert_eq!(hits.get("GET /img/ok.png"), None);
    assert_eq!(hits.get("GET /rel.html"), Some(&1), "{hits:#?}");
    assert!(hits.keys().all(|k| !k.starts_with(Method::POST.as_str())));
}

#[tokio::test]
async fn per_host_concurrency_and_rate_limits_hold() {
    #[derive(Default)]
    struct Load {
        now: AtomicUsize,
        max: AtomicUsize,
    }
    let load = Arc::new(Load::default());
    let links: String = (0..12)
        .map(|i| format!(r#"<img src="/asset/{i}.png">"#))
        .collect();
    let tracked = load.clone();
    let app = Router::new()
        .route(
            "/",
            get(move || {
                let body = links.clone();
                async move { page(&body) }
            }),
        )
        .route(
            "/asset/{n}",
            get(move || {
                let load = tracked.clone();
                async move {
                    let now = load.now.fetch_add(1, Ordering::SeqCst) + 1;
                    load.max.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    load.now.fetch_sub(1, Ordering::SeqCst);
                    "png"
                }
            }),
        );
    let (site, _) = serve(app, "127.0.0.1").await;
    let start = format!("http://{site}/");

    let mut c = config();
    c.per_host_concurrency = 2;
    c.use_sitemap = false;
    c.respect_robots = false;
    let report = run(c, &start).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let max = load.max.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&max),
        "at most 2 in flight on the host, saw {max}"
    );

    let mut c = config();
    c.requests_per_second = 20;
    c.use_sitemap = false;
    c.respect_robots = false;
    let began = tokio::time::Instant::now();
    run(c, &start).await.unwrap();
    // 20/s spaces the 13 requests (page and 12 assets) at least 50 ms apart when they are
    // sent, so the run cannot end sooner than 12 intervals: a lower bound that no machine
    // load can break (arrival times at the server can bunch up under load, send times not).
    assert!(
        began.elapsed() >= Duration::from_millis(600),
        "{:?}",
        began.elapsed()
    );
}
