//! Chromium is not an SSRF hole: every request of the page goes through the egress policy.
//!
//! The "internal" host is a canary server on 127.0.0.2 — loopback, so even a broken guard
//! sends nothing off the machine — which the test policy (only 127.0.0.1) refuses.
//! `internal.test` resolves to it both for the guard and for Chromium (host-resolver rules);
//! no real DNS query is made.

use std::sync::atomic::Ordering;

use sentinel_core::Viewport;
use sentinel_visual::{CaptureErrorKind, CaptureRequest};

use crate::support::*;

fn hostile_page(canary: &str, canary_port: u16) -> String {
    format!(
        r#"<!doctype html><html><head>
<link rel="prefetch" href="{canary}/prefetch">
<link rel="stylesheet" href="{canary}/style.css">
<style>body{{background:url('{canary}/bg.png')}}</style>
</head><body>
<h1>hostile</h1>
<img src="{canary}/img.png">
<img src="http://internal.test:{canary_port}/by-name.png">
<iframe src="{canary}/frame.html"></iframe>
<iframe src="/redirect?to={canary}/redirected"></iframe>
<script src="{canary}/script.js"></script>
<script>
fetch('{canary}/fetch').catch(() => {{}});
const x = new XMLHttpRequest(); x.open('GET', '{canary}/xhr'); x.send();
try {{ new WebSocket('ws://127.0.0.2:{canary_port}/ws'); }} catch (e) {{}}
try {{ new WebSocket('wss://127.0.0.2:{canary_port}/wss'); }} catch (e) {{}}
new Worker(URL.createObjectURL(new Blob(["fetch('{canary}/worker').catch(() => {{}}); \
  try {{ new WebSocket('ws://127.0.0.2:{canary_port}/worker-ws'); }} catch (e) {{}}"])));
navigator.sendBeacon && navigator.sendBeacon('{canary}/beacon', 'x');
</script>
</body></html>"#
    )
}

#[test]
fn no_request_of_the_page_reaches_a_refused_address() {
    RT.block_on(async {
        let (canary, connections) = canary_on("127.0.0.2").await;
        let canary_base = canary.as_str().trim_end_matches('/').to_owned();
        let port = canary.port().unwrap();
        let site = serve(vec![(
            "/hostile.html",
            html(hostile_page(&canary_base, port)),
        )])
        .await;
        let pool = pool(config()).await;

        let shot = pool
            .capture(&CaptureRequest::new(
                site.url("/hostile.html"),
                Viewport::Desktop,
            ))
            .await
            .unwrap();
        assert_eq!(
            connections.load(Ordering::SeqCst),
            0,
            "the canary was reached"
        );
        let blocked: Vec<&str> = shot.blocked.iter().map(|b| b.url.as_str()).collect();
        for path in [
            "/img.png",
            "/style.css",
            "/frame.html",
            "/script.js",
            "/fetch",
            "/redirected",
        ] {
            let url = format!("{canary_base}{path}");
            assert!(blocked.contains(&url.as_str()), "{url} not in {blocked:?}");
        }
        assert!(
            blocked.iter().any(|u| u.contains("internal.test")),
            "by-name request not blocked: {blocked:?}"
        );
        assert!(shot.blocked.iter().all(|b| !b.reason.is_empty()));
        // WebSocket handshakes never reach request interception; the egress proxy refused
        // their connections.
        let socket = format!("127.0.0.2:{port}");
        assert!(
            blocked.contains(&socket.as_str()),
            "{socket} not in {blocked:?}"
        );
        pool.shutdown().await;
    });
}

#[test]
fn a_refused_page_or_redirect_is_an_error_naming_the_policy() {
    RT.block_on(async {
        let (canary, connections) = canary_on("127.0.0.2").await;
        let site = serve(vec![]).await;
        let pool = pool(config()).await;

        let e = pool
            .capture(&CaptureRequest::new(canary.clone(), Viewport::Desktop))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), CaptureErrorKind::BlockedByPolicy, "{e}");

        let via_redirect = site.url(&format!("/redirect?to={canary}"));
        let e = pool
            .capture(&CaptureRequest::new(via_redirect, Viewport::Desktop))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), CaptureErrorKind::BlockedByPolicy, "{e}");
        assert!(e.to_string().contains("127.0.0.2"), "{e}");
        assert_eq!(connections.load(Ordering::SeqCst), 0);
        pool.shutdown().await;
    });
}

#[test]
fn interception_that_cannot_be_set_up_fails_closed() {
    RT.block_on(async {
        let site = serve(vec![("/", html("<p>never loaded</p>"))]).await;
        let mut config = config();
        config.break_interception = true;
        let pool = pool(config).await;
        let e = pool
            .capture(&CaptureRequest::new(site.url("/"), Viewport::Desktop))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), CaptureErrorKind::Interception, "{e}");
        assert_eq!(
            site.hits.load(Ordering::SeqCst),
            0,
            "the page was loaded unguarded"
        );
        pool.shutdown().await;
    });
}
