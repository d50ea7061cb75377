//! Hostile destinations fed to the real client. These tests re-run themselves inside a
//! private network namespace (only a fresh loopback exists there), so even a broken guard
//! could not send a packet anywhere.

#![allow(clippy::unwrap_used)]

mod support;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use sentinel_netguard::{
    Client, ClientConfig, EgressPolicy, ErrorKind, Guard, Limits, Request, StaticResolver,
};
use std::sync::Arc;
use std::time::Duration;
use support::{Canary, in_private_netns, serve};
use url::Url;

fn client(policy: EgressPolicy, resolver: StaticResolver) -> Client {
    let limits = Limits {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let config = ClientConfig {
        limits,
        ..ClientConfig::default()
    };
    Client::new(Guard::new(policy, Arc::new(resolver)), config).unwrap()
}

fn hostile_names() -> StaticResolver {
    let ips = |list: &[&str]| list.iter().map(|s| s.parse().unwrap()).collect::<Vec<_>>();
    StaticResolver::new()
        .with("metadata.test", ips(&["169.254.169.254"]))
        .with("metadata6.test", ips(&["fd00:ec2::254"]))
        .with("private.test", ips(&["10.0.0.1"]))
        .with("mixed.test", ips(&["8.8.8.8", "192.168.0.1"]))
        .with("mapped.test", ips(&["::ffff:10.0.0.1"]))
        .with("nat64.test", ips(&["64:ff9b::a9fe:a9fe"]))
        .with("sixtofour.test", ips(&["2002:7f00:1::"]))
        .with("loopback.test", ips(&["127.0.0.1"]))
        .with("loopback2.test", ips(&["127.0.0.2"]))
        .with("cgnat.test", ips(&["100.64.0.1"]))
        .with_sequence(
            "rebind.test",
            [ips(&["8.8.8.8"]), ips(&["127.0.0.1"]), ips(&["127.0.0.1"])],
        )
}

const HOSTILE_URLS: &[&str] = &[
    "http://127.0.0.1/",
    "http://0.0.0.0/",
    "http://0/",
    "http://127.1/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[2001:0:7f00:1::1]/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fc00::1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v2/credentials",
    "http://100.100.100.200/latest/meta-data/",
    "http://192.0.0.192/opc/v1/instance/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://192.0.2.1/",
    "http://198.18.0.1/",
    "http://240.0.0.1/",
    "http://user:pass@10.0.0.1/",
    "http://metadata.test/",
    "http://metadata6.test/",
    "http://private.test/",
    "http://mixed.test/",
    "http://mapped.test/",
    "http://nat64.test/",
    "http://sixtofour.test/",
    "http://loopback.test/",
    "http://cgnat.test/",
    "https://169.254.169.254/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "ftp://10.0.0.1/",
];

#[tokio::test]
async fn hostile_destinations_are_refused_before_any_connection() {
    if !in_private_netns("hostile_destinations_are_refused_before_any_connection") {
        return;
    }
    let c = client(EgressPolicy::new(), hostile_names());
    for raw in HOSTILE_URLS {
        let Ok(u) = Url::parse(raw) else {
            continue; // not even a URL: nothing to fetch
        };
        let e = c.fetch(Request::get(u)).await.unwrap_err();
        assert!(
            matches!(
                e.kind,
                ErrorKind::Blocked | ErrorKind::UnsupportedScheme | ErrorKind::Dns
            ),
            "{raw}: {e}"
        );
        if raw.contains(".test/") {
            assert_eq!(e.kind, ErrorKind::Blocked, "{raw}: {e}");
        }
    }
    // Rebinding: the first (public) answer is vetted and would be dialled; the later
    // loopback answers are refused.
    let rebind = Url::parse("http://rebind.test:9/").unwrap();
    let first = c.fetch(Request::get(rebind.clone())).await.unwrap_err();
    assert_ne!(
        first.kind,
        ErrorKind::Blocked,
        "8.8.8.8 is allowed (unreachable here)"
    );
    let c2 = client(EgressPolicy::new(), hostile_names());
    let _ = c2.fetch(Request::get(rebind.clone())).await;
    let second = c2.fetch(Request::get(rebind)).await.unwrap_err();
    assert_eq!(second.kind, ErrorKind::Blocked);
}

#[tokio::test]
async fn redirects_into_hostile_space_are_refused_without_connecting() {
    if !in_private_netns("redirects_into_hostile_space_are_refused_without_connecting") {
        return;
    }
    // Inside the namespace: canaries on other loopback addresses stand in for internal
    // services; the site on 127.0.0.1 (the only allowed address) redirects to them.
    let canary2 = Canary::bind("127.0.0.2:0").await;
    let canary6 = Canary::bind("[::1]:0").await;
    let targets = [
        format!("http://127.0.0.2:{}/", canary2.addr.port()),
        format!("http://[::1]:{}/", canary6.addr.port()),
        format!("http://[::ffff:127.0.0.2]:{}/", canary2.addr.port()),
        format!("http://loopback2.test:{}/", canary2.addr.port()),
        String::from("http://169.254.169.254/latest/meta-data/"),
        String::from("http://[fd00:ec2::254]/"),
        String::from("http://10.0.0.1/"),
        String::from("http://metadata.test/"),
        String::from("file:///etc/passwd"),
    ];
    let app = Router::new().route(
        "/to/{n}",
        get(move |axum::extract::Path(n): axum::extract::Path<usize>| {
            let to = targets[n].clone();
            async move { (StatusCode::FOUND, [(header::LOCATION, to)]) }
        }),
    );
    let site = serve(app, "127.0.0.1").await;
    let policy = EgressPolicy::new().allow("127.0.0.1/32".parse().unwrap());
    let c = client(policy, hostile_names());
    for n in 0..9 {
        let u = Url::parse(&format!("http://{site}/to/{n}")).unwrap();
        let e = c.fetch(Request::get(u)).await.unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::Blocked | ErrorKind::UnsupportedScheme),
            "target {n}: {e}"
        );
        assert_eq!(e.redirects.len(), 1);
    }
    assert_eq!(canary2.hits() + canary6.hits(), 0);
}
