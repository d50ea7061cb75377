//! The pool's plumbing: balancing over several instances, remote DevTools endpoints, and a
//! DevTools connection that speaks a newer protocol than chromiumoxide's bindings.

use std::process::Stdio;
use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use futures::StreamExt;
use sentinel_core::Viewport;
use sentinel_resilience::Strategy;
use sentinel_visual::{BrowserSource, CHROMIUM_FLAGS, CaptureRequest, InstanceState};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::*;

#[test]
fn round_robin_alternates_between_instances() {
    RT.block_on(async {
        let site = serve(vec![("/", html("<p>rr</p>"))]).await;
        let mut config = config().with_local_instances(2);
        config.strategy = Strategy::RoundRobin;
        let pool = pool(config).await;
        let mut order = Vec::new();
        for _ in 0..4 {
            let shot = pool
                .capture(&CaptureRequest::new(site.url("/"), Viewport::Mobile))
                .await
                .unwrap();
            order.push(shot.browser);
        }
        assert_eq!(order, vec!["local-0", "local-1", "local-0", "local-1"]);
        let stats = pool.stats();
        assert_eq!(stats.succeeded, 4);
        assert!(stats.instances.iter().all(|i| i.captures == 2));
        pool.shutdown().await;
    });
}

#[test]
fn least_connections_spreads_concurrent_captures_over_idle_instances() {
    RT.block_on(async {
        let mut slow = html("<p>slow</p>");
        slow.delay = Duration::from_millis(400);
        let site = serve(vec![("/", slow)]).await;
        let mut config = config().with_local_instances(2);
        config.strategy = Strategy::LeastConnections;
        config.pages_per_browser = 2;
        let pool = pool(config).await;
        let req = CaptureRequest::new(site.url("/"), Viewport::Mobile);
        let shots = futures::future::join_all((0..2).map(|_| pool.capture(&req))).await;
        let mut browsers: Vec<String> = shots.into_iter().map(|s| s.unwrap().browser).collect();
        browsers.sort();
        // Two captures at once land on two different (idle) browsers, not both on the first.
        assert_eq!(browsers, vec!["local-0", "local-1"]);
        pool.shutdown().await;
    });
}

/// Starts a Chromium by hand, as a remote DevTools endpoint would be, and returns it with its
/// WebSocket URL and profile.
async fn remote_chromium() -> (tokio::process::Child, String, tempfile::TempDir) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new("/usr/bin/chromium")
        .args(CHROMIUM_FLAGS)
        .arg(HOST_RULES)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next_line().await.unwrap().unwrap();
        if let Some(u) = line.trim().strip_prefix("DevTools listening on ") {
            break u.to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url, profile)
}

#[test]
fn a_remote_devtools_endpoint_serves_captures() {
    RT.block_on(async {
        let site = serve(vec![("/", html("<p>remote</p>"))]).await;
        let (mut child, url, profile) = remote_chromium().await;
        let mut config = config();
        config.instances = vec![BrowserSource::Remote { url }];
        let pool = pool(config).await;
        let shot = pool
            .capture(&CaptureRequest::new(site.url("/"), Viewport::Tablet))
            .await
            .unwrap();
        assert_eq!((shot.width, shot.height), (768, 1024));
        assert_eq!(shot.browser, "remote-0");
        let stats = pool.stats();
        assert_eq!(stats.instances[0].source, "remote");
        assert_eq!(stats.instances[0].pid, None);
        pool.shutdown().await;
        // The pool dropped its connection but left the remote browser running.
        assert!(
            child.try_wait().unwrap().is_none(),
            "the remote browser was closed"
        );
        let pgid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        let _ = child.wait().await;
        let profile = profile.path().display().to_string();
        assert!(
            eventually(Duration::from_secs(10), || processes_with(&profile)
                .is_empty())
            .await
        );
    });
}

#[test]
fn the_installed_chromium_sends_messages_the_bindings_cannot_parse_and_the_pool_goes_on() {
    RT.block_on(async {
        let site = serve(vec![
            (
                "/",
                html("<img src='/a.png'><img src='/b.png'><p>drift</p>"),
            ),
            ("/a.png", png(make_png(10, 10, |_, _| [1, 2, 3]))),
            ("/b.png", png(make_png(10, 10, |_, _| [4, 5, 6]))),
        ])
        .await;
        let pool = pool(config()).await;
        for _ in 0..3 {
            pool.capture(&CaptureRequest::new(site.url("/"), Viewport::Desktop))
                .await
                .unwrap();
        }
        let i = pool.stats().instances.remove(0);
        // Chromium 156 sends `Network.requestWillBeSentExtraInfo` in a shape chromiumoxide
        // 0.9 rejects, for every sub-resource; each was skipped and the browser kept serving.
        assert!(i.messages_not_understood > 0, "{i:?}");
        assert_eq!(i.restarts, 0);
        assert_eq!(i.state, InstanceState::Ready);
        pool.shutdown().await;
    });
}

/// A fake DevTools endpoint: answers `Browser.getVersion` and every other command with an
/// empty result, and before each answer sends what a newer Chromium might: unknown events,
/// known events with new enum values (chromiumoxide#266), non-JSON text and a response to a
/// command nobody sent.
async fn drifting_devtools() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = async_tungstenite::tokio::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let call: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let junk = [
                        serde_json::json!({"method": "Network.requestWillBeSentExtraInfo",
                            "params": {"requestId": "1", "headers": {},
                                "associatedCookies": [{"blockedReasons": ["SomethingNew"]}]}})
                        .to_string(),
                        serde_json::json!({"method": "Page.frameRequestedNavigation",
                            "params": {"frameId": "F", "reason": "aBrandNewReason",
                                "url": "http://x/", "disposition": "somewhereElse"}})
                        .to_string(),
                        serde_json::json!({"method": "Future.domainEvent", "params": {"x": 1}})
                            .to_string(),
                        "this is not JSON".to_owned(),
                        serde_json::json!({"id": 987_654, "result": {}}).to_string(),
                    ];
                    for j in junk {
                        if ws.send(Message::Text(j.into())).await.is_err() {
                            return;
                        }
                    }
                    let result = if call["method"] == "Browser.getVersion" {
                        serde_json::json!({"protocolVersion":"1.3","product":"Chrome/999.0.0.0",
                            "revision":"@x","userAgent":"fake","jsVersion":"1.0"})
                    } else {
                        serde_json::json!({})
                    };
                    let answer = serde_json::json!({"id": call["id"], "result": result});
                    if ws
                        .send(Message::Text(answer.to_string().into()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    format!("ws://{addr}/devtools/browser/fake")
}

#[test]
fn messages_the_bindings_cannot_parse_are_skipped_not_fatal() {
    RT.block_on(async {
        let url = drifting_devtools().await;
        let mut config = config();
        config.instances = vec![BrowserSource::Remote { url }];
        config.health_interval = Duration::from_millis(100);
        config.ping_timeout = Duration::from_secs(2);
        let pool = pool(config).await;
        // Twenty health pings, each answered after a burst of junk.
        assert!(
            eventually(Duration::from_secs(20), || {
                pool.stats().instances[0].messages_not_understood >= 20 * 4
            })
            .await,
            "{:?}",
            pool.stats().instances[0]
        );
        let i = pool.stats().instances.remove(0);
        assert_eq!(i.state, InstanceState::Ready);
        assert_eq!(i.restarts, 0, "the connection was never given up");
        pool.shutdown().await;
    });
}
