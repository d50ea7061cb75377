//! A crawled page full of links to hostile addresses. The test re-runs itself inside a
//! private network namespace (only a fresh loopback exists there), so even a broken guard
//! could not reach anything.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use sentinel_links::{BrokenKind, CheckerConfig, LinkChecker, NoProgress};
use sentinel_netguard::{EgressPolicy, StaticResolver};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use url::Url;

/// Re-runs `test_name` under `unshare -rn`; `true` when already inside.
fn in_private_netns(test_name: &str) -> bool {
    const MARKER: &str = "SENTINEL_TEST_IN_NETNS";
    if std::env::var_os(MARKER).is_some() {
        return true;
    }
    let output = std::process::Command::new("unshare")
        .args(["-rn", "sh", "-c", r#"ip link set lo up && exec "$0" "$@""#])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(MARKER, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "isolated run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    false
}

#[tokio::test]
async fn hostile_links_are_reported_as_blocked_and_never_connected() {
    if !in_private_netns("hostile_links_are_reported_as_blocked_and_never_connected") {
        return;
    }
    // Stand-ins for internal services: listeners on other loopback addresses.
    let canary = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = canary.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = canary.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    let hostile = [
        String::from("http://169.254.169.254/latest/meta-data/"),
        String::from("http://[fd00:ec2::254]/"),
        String::from("http://10.0.0.1/admin"),
        String::from("http://192.168.1.1/"),
        String::from("http://100.64.0.1/"),
        String::from("http://0x7f.0.0.2:PORT/"),
        String::from("http://2130706434:PORT/"),
        String::from("http://[::ffff:127.0.0.2]:PORT/"),
        String::from("http://[::1]:PORT/"),
        String::from("http://metadata.test/"),
        String::from("http://internal.test:PORT/"),
        String::from("/to-metadata"),
        String::from("/to-internal"),
    ];
    let links: String = hostile
        .iter()
        .map(|h| {
            format!(
                r#"<a href="{}">x</a>"#,
                h.replace("PORT", &port.to_string())
            )
        })
        .collect();
    let to_internal = format!("http://127.0.0.2:{port}/");
    let app = Router::new()
        .route(
            "/",
            get(move || {
                let body = links.clone();
                async move { ([(header::CONTENT_TYPE, "text/html")], body) }
            }),
        )
        .route(
            "/to-metadata",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "http://169.254.169.254/")],
                )
            }),
        )
        .route(
            "/to-internal",
            get(move || {
                let to = to_internal.clone();
                async move { (StatusCode::FOUND, [(header::LOCATION, to)]) }
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let resolver = StaticResolver::new()
        .with("metadata.test", ["169.254.169.254".parse().unwrap()])
        .with("internal.test", ["127.0.0.2".parse().unwrap()]);
    let config = CheckerConfig {
        egress: EgressPolicy::new().allow("127.0.0.1/32".parse().unwrap()),
        timeout: Duration::from_secs(3),
        max_retries: 0,
        ..CheckerConfig::default()
    }
    .with_resolver(Arc::new(resolver));
    let report = LinkChecker::new(config)
        .run(
            Url::parse(&format!("http://{site}/")).unwrap(),
            &NoProgress,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    // Spellings of one address are one URL (0x7f.0.0.2 and 2130706434 are 127.0.0.2).
    let base = Url::parse(&format!("http://{site}/")).unwrap();
    let unique: std::collections::BTreeSet<String> = hostile
        .iter()
        .map(|h| {
            let raw = h.replace("PORT", &port.to_string());
            sentinel_links::normalize::resolve(&base, &raw)
                .unwrap()
                .url
                .to_string()
        })
        .collect();
    assert_eq!(unique.len(), hostile.len() - 1);
    let reported: std::collections::BTreeSet<String> =
        report.broken.iter().map(|b| b.url.clone()).collect();
    assert_eq!(reported, unique, "{report:#?}");
    for b in &report.broken {
        assert_eq!(b.kind, BrokenKind::Blocked, "{}: {}", b.url, b.message);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
