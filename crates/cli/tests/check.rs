//! `qa-sentinel check` end to end: the real binary against sites served by the test on
//! loopback.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Output;
use tokio::net::TcpListener;

fn page(body: &str) -> impl IntoResponse + use<> {
    (
        [(header::CONTENT_TYPE, "text/html")],
        format!("<!doctype html><html><body>{body}</body></html>"),
    )
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn clean_site() -> SocketAddr {
    serve(
        Router::new()
            .route(
                "/",
                get(|| async { page(r##"<a href="/a.html#x">a</a><img src="/i.png">"##) }),
            )
            .route(
                "/a.html",
                get(|| async { page(r#"<p id="x">x</p><a href="/">home</a>"#) }),
            )
            .route("/i.png", get(|| async { "png" })),
    )
    .await
}

async fn broken_site() -> SocketAddr {
    serve(
        Router::new()
            .route("/", get(|| async { page(r##"<a href="/a.html#nope">a</a><a href="/gone">gone</a><img src="/missing.png">"##) }))
            .route("/a.html", get(|| async { page(r#"<p id="x">x</p>"#) }))
            .route("/gone", get(|| async { StatusCode::GONE })),
    )
    .await
}

async fn check(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_qa-sentinel"))
        .arg("check")
        .args(args)
        .env_remove("SENTINEL_SCAN_ALLOW")
        .output()
        .await
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_site_exits_zero() {
    let site = clean_site().await;
    let o = check(&[
        &format!("http://{site}/"),
        "--allow-private",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["broken"], 0);
    assert_eq!(v["summary"]["pages"], 2);
    assert_eq!(v["summary"]["links"], 3);
    assert!(v["summary"]["durationMs"].is_u64());
    assert_eq!(v["broken"], Value::Array(vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_links_exit_one_with_the_contract_json() {
    let site = broken_site().await;
    let o = check(&[
        &format!("http://{site}/"),
        "--allow-private",
        "--format",
        "json",
        "--checks",
        "broken-links",
    ])
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["broken"], 3);
    let broken = v["broken"].as_array().unwrap();
    let urls: Vec<&str> = broken.iter().map(|b| b["url"].as_str().unwrap()).collect();
    assert_eq!(
        urls,
        vec![
            format!("http://{site}/a.html#nope"),
            format!("http://{site}/gone"),
            format!("http://{site}/missing.png"),
        ]
    );
    assert_eq!(broken[0]["kind"], "fragment");
    assert_eq!(broken[1]["kind"], "status");
    assert_eq!(broken[1]["status"], 410);
    assert_eq!(broken[2]["sources"][0]["page"], format!("http://{site}/"));
    assert_eq!(broken[2]["sources"][0]["element"], "img[src]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_renders_and_output_goes_to_a_file() {
    let site = broken_site().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{site}/");
    for (format, needle) in [
        ("text", "BROKEN "),
        ("markdown", "| Broken URL | Problem | Linked from |"),
        ("junit", "<testsuite name=\"broken-links\""),
        ("sarif", "\"ruleId\": \"broken-link/status\""),
    ] {
        let o = check(&[&url, "--allow-private", "--format", format]).await;
        assert_eq!(o.status.code(), Some(1), "{format}: {}", stderr(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(needle),
            "{format}"
        );
    }
    let file = dir.path().join("report.json");
    let o = check(&[
        &url,
        "--allow-private",
        "-f",
        "json",
        "-o",
        file.to_str().unwrap(),
    ])
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(v["summary"]["broken"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_fatal_errors_exit_two() {
    let site = clean_site().await;
    let url = format!("http://{site}/");
    // The SSRF guard refuses loopback unless told otherwise.
    let o = check(&[&url]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("egress policy"), "{}", stderr(&o));
    // ...and --allow opens exactly the named range.
    let o = check(&[&url, "--allow", "127.0.0.1/32"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for args in [
        vec![url.as_str(), "--allow-private", "--exclude", "(unclosed"],
        vec![url.as_str(), "--allow-private", "--checks", "seo"],
        vec![url.as_str(), "--allow-private", "--format", "xml"],
        vec![url.as_str(), "--allow-private", "--timeout", "0"],
        vec![url.as_str(), "--allow", "not-a-cidr"],
        vec![url.as_str(), "--allow-private", "--header", "no colon"],
        vec!["not a url"],
        vec!["ftp://127.0.0.1/"],
        vec![],
    ] {
        let o = check(&args).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty());
    }
}
