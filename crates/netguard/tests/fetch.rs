//! The client against servers on loopback (127.0.0.1 allowed, everything else refused).

#![allow(clippy::unwrap_used)]

mod support;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use sentinel_netguard::{
    Client, ClientConfig, EgressPolicy, ErrorKind, Guard, Limits, Request, Resolve, StaticResolver,
};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Canary, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

fn client_with(resolver: impl Resolve + 'static, limits: Limits) -> Client {
    let policy = EgressPolicy::new().allow("127.0.0.1/32".parse().unwrap());
    let guard = Guard::new(policy, Arc::new(resolver));
    Client::new(
        guard,
        ClientConfig {
            limits,
            ..ClientConfig::default()
        },
    )
    .unwrap()
}

fn client() -> Client {
    client_with(StaticResolver::new(), Limits::default())
}

fn url(addr: SocketAddr, path: &str) -> Url {
    Url::parse(&format!("http://{addr}{path}")).unwrap()
}

fn redirect(to: String) -> impl IntoResponse {
    (StatusCode::FOUND, [(header::LOCATION, to)])
}

/// Routes that redirect to wherever `?to=` says, and a few fixed chains.
fn redirector() -> Router {
    Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/a",
            get(|| async { (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/b")]) }),
        )
        .route(
            "/b",
            get(|| async { (StatusCode::SEE_OTHER, [(header::LOCATION, "c")]) }),
        )
        .route("/c", get(|| async { "final" }))
        .route("/loop1", get(|| async { redirect("/loop2".into()) }))
        .route("/loop2", get(|| async { redirect("/loop1".into()) }))
        .route("/self", get(|| async { redirect("/self".into()) }))
        .route(
            "/chain/{n}",
            get(
                |axum::extract::Path(n): axum::extract::Path<u32>| async move {
                    redirect(format!("/chain/{}", n + 1))
                },
            ),
        )
        .route(
            "/to",
            get(
                |axum::extract::Query(q): axum::extract::Query<
                    std::collections::HashMap<String, String>,
                >| async move { redirect(q.get("u").cloned().unwrap_or_default()) },
            ),
        )
        .route("/no-location", get(|| async { StatusCode::FOUND }))
}

#[tokio::test]
async fn follows_redirects_and_reports_the_chain() {
    let addr = serve(redirector(), "127.0.0.1").await;
    let response = client()
        .fetch(Request::get(url(addr, "/a#frag")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.url().path(), "/c");
    let chain: Vec<(String, u16)> = response
        .redirects()
        .iter()
        .map(|h| (h.url.path().to_owned(), h.status.as_u16()))
        .collect();
    assert_eq!(chain, vec![("/a".into(), 301), ("/b".into(), 303)]);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"final");
}

#[tokio::test]
async fn redirect_loops_and_long_chains_are_stopped() {
    let addr = serve(redirector(), "127.0.0.1").await;
    let c = client_with(
        StaticResolver::new(),
        Limits {
            max_redirects: 3,
            ..Limits::default()
        },
    );
    let e = c
        .fetch(Request::get(url(addr, "/loop1")))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::RedirectLoop);
    assert_eq!(e.redirects.len(), 2);
    let e = c.fetch(Request::get(url(addr, "/self"))).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RedirectLoop);
    let e = c
        .fetch(Request::get(url(addr, "/chain/0")))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooManyRedirects);
    assert_eq!(e.redirects.len(), 4);
    let e = c.fetch(Request::get(url(addr, "/no-location"))).await;
    assert_eq!(
        e.unwrap().status(),
        StatusCode::FOUND,
        "a 302 without Location is final"
    );
}

#[tokio::test]
async fn redirects_to_other_schemes_are_refused() {
    let addr = serve(redirector(), "127.0.0.1").await;
    for target in [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "ftp://127.0.0.1/",
    ] {
        let u = Url::parse_with_params(url(addr, "/to").as_str(), [("u", target)]).unwrap();
        let e = client().fetch(Request::get(u)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnsupportedScheme, "{target}");
        assert_eq!(e.redirects.len(), 1);
    }
}

#[tokio::test]
async fn a_redirect_to_a_refused_address_is_refused_without_connecting() {
    let addr = serve(redirector(), "127.0.0.1").await;
    // 127.0.0.2 is loopback too, but outside the allow-list (127.0.0.1/32).
    let canary = Canary::bind("127.0.0.2:0").await;
    let port = canary.addr.port();
    let resolver = StaticResolver::new().with("canary.test", ["127.0.0.2".parse().unwrap()]);
    let c = client_with(resolver.clone(), Limits::default());
    for target in [
        format!("http://127.0.0.2:{port}/"),
        format!("http://0x7f.0.0.2:{port}/"),
        format!("http://2130706434:{port}/"),
        format!("http://[::ffff:127.0.0.2]:{port}/"),
        format!("http://canary.test:{port}/"),
    ] {
        let u = Url::parse_with_params(url(addr, "/to").as_str(), [("u", &target)]).unwrap();
        let e = c.fetch(Request::get(u)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Blocked, "{target}: {e}");
        assert!(e.denied.is_some());
        assert_eq!(e.redirects.len(), 1);
    }
    assert_eq!(
        resolver.lookups("canary.test"),
        1,
        "the name was resolved and vetted"
    );
    assert_eq!(canary.hits(), 0, "nothing may connect to a refused address");
}

#[tokio::test]
async fn a_rebound_name_is_never_dialled_at_its_new_address() {
    let site = serve(redirector(), "127.0.0.1").await;
    let canary = Canary::bind(&format!("127.0.0.2:{}", site.port())).await;
    let resolver = StaticResolver::new().with_sequence(
        "rebind.test",
        [
            vec!["127.0.0.1".parse().unwrap()],
            vec!["127.0.0.2".parse().unwrap()],
        ],
    );
    let target = Url::parse(&format!("http://rebind.test:{}/ok", site.port())).unwrap();
    let first = client_with(resolver.clone(), Limits::default());
    assert_eq!(
        first
            .fetch(Request::get(target.clone()))
            .await
            .unwrap()
            .status(),
        200
    );
    // A fresh client has no pooled connection: it must resolve again, and refuse.
    let second = client_with(resolver.clone(), Limits::default());
    let e = second.fetch(Request::get(target)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Blocked);
    assert_eq!(resolver.lookups("rebind.test"), 2);
    assert_eq!(canary.hits(), 0);
}

type Seen = Arc<Mutex<Vec<HeaderMap>>>;

async fn record(State(seen): State<Seen>, headers: HeaderMap) -> &'static str {
    seen.lock().unwrap().push(headers);
    "seen"
}

#[tokio::test]
async fn origin_bound_headers_are_dropped_once_a_redirect_leaves_the_origin() {
    let seen: Seen = Arc::default();
    let other = serve(
        Router::new()
            .route("/echo", get(record))
            .with_state(seen.clone()),
        "127.0.0.1",
    )
    .await;
    let mine = serve(
        Router::new()
            .route("/echo", get(record))
            .route("/same", get(|| async { redirect("/echo".into()) }))
            .route(
                "/away",
                get(move || async move { redirect(format!("http://{other}/echo")) }),
            )
            .with_state(seen.clone()),
        "127.0.0.1",
    )
    .await;
    let request = |path: &str| {
        Request::get(url(mine, path))
            .header(header::AUTHORIZATION, "Bearer secret".parse().unwrap())
            .header(header::COOKIE, "session=1".parse().unwrap())
            .header("x-site-token".parse().unwrap(), "t".parse().unwrap())
    };
    client().fetch(request("/same")).await.unwrap();
    client().fetch(request("/away")).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["authorization"], "Bearer secret");
    assert_eq!(seen[0]["cookie"], "session=1");
    assert_eq!(seen[0]["x-site-token"], "t");
    for name in ["authorization", "cookie", "x-site-token"] {
        assert!(
            !seen[1].contains_key(name),
            "{name} leaked to another origin"
        );
    }
    assert!(
        seen[1]["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("qa-sentinel/")
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[tokio::test]
async fn bodies_are_capped_after_decompression() {
    let bomb = gzip(&vec![0u8; 32 * 1024 * 1024]);
    assert!(bomb.len() < 100 * 1024, "the bomb is small on the wire");
    let app = Router::new()
        .route(
            "/bomb",
            get(move || {
                let bomb = bomb.clone();
                async move { ([(header::CONTENT_ENCODING, "gzip")], bomb) }
            }),
        )
        .route("/huge", get(|| async { vec![b'x'; 3 * 1024 * 1024] }))
        .route("/small", get(|| async { "small" }));
    let addr = serve(app, "127.0.0.1").await;
    let c = client_with(
        StaticResolver::new(),
        Limits {
            max_body_bytes: 1024 * 1024,
            ..Limits::default()
        },
    );
    for path in ["/bomb", "/huge"] {
        let response = c.fetch(Request::get(url(addr, path))).await.unwrap();
        let e = response.bytes().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::BodyTooLarge, "{path}");
    }
    let small = c.fetch(Request::get(url(addr, "/small"))).await.unwrap();
    assert_eq!(small.bytes().await.unwrap().as_ref(), b"small");
}

/// A server that answers with headers and two bytes of a 100-byte body, then stalls.
async fn stalling_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nab")
                    .await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn one_deadline_covers_the_response_and_the_body() {
    let app = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    let slow = serve(app, "127.0.0.1").await;
    let e = client()
        .fetch(Request::get(url(slow, "/slow")).timeout(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout);
    let stall = stalling_server().await;
    let response = client()
        .fetch(Request::get(url(stall, "/")).timeout(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap_err().kind, ErrorKind::Timeout);
}

#[tokio::test]
async fn transport_failures_are_classified() {
    // DNS: a name the (fake) resolver does not know; no real DNS query is made.
    let e = client()
        .fetch(Request::get(Url::parse("http://nowhere.test/").unwrap()))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Dns, "{e}");
    // Connect: a port where nothing listens any more.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = client()
        .fetch(Request::get(url(closed, "/")))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Connect, "{e}");
    // TLS: https to a plain-HTTP server.
    let plain = serve(redirector(), "127.0.0.1").await;
    let e = client()
        .fetch(Request::get(
            Url::parse(&format!("https://{plain}/ok")).unwrap(),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Tls, "{e}");
    // Blocked before anything: a literal loopback address outside the allow-list.
    let e = client()
        .fetch(Request::get(Url::parse("http://[::1]:9/").unwrap()))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Blocked);
}

/// Proxy variables in the environment must not be used: a proxy resolves names itself and
/// would bypass the policy. The test re-runs itself with the variables pointing at a canary.
#[test]
fn proxy_environment_variables_are_ignored() {
    const CHILD: &str = "SENTINEL_TEST_PROXY_CHILD";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if std::env::var_os(CHILD).is_some() {
        runtime.block_on(async {
            let addr = serve(redirector(), "127.0.0.1").await;
            let response = client()
                .fetch(Request::get(url(addr, "/ok")))
                .await
                .unwrap();
            assert_eq!(response.bytes().await.unwrap().as_ref(), b"ok");
        });
        return;
    }
    let canary = runtime.block_on(Canary::bind("127.0.0.1:0"));
    let proxy = format!("http://{}", canary.addr);
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "proxy_environment_variables_are_ignored",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("HTTP_PROXY", &proxy)
        .env("http_proxy", &proxy)
        .env("ALL_PROXY", &proxy)
        .env("all_proxy", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{stdout}"
    );
    assert_eq!(canary.hits(), 0, "the proxy was contacted");
}
