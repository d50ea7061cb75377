//! Visual regression end to end: the real binary, the installed Chromium, pages served by the
//! test. The first scan of a page creates its baseline; later scans find a one-word change, a
//! colour change and a 1 px shift at the right place, pass an unchanged page (animations,
//! a blinking caret and a masked random element included); approving a scan's capture as the
//! baseline makes the next scan pass.

use crate::helpers::Api;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use reqwest::{Method, StatusCode};
use sentinel_test_support::Backend;
use sentinel_test_support::site::TestSite;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Page variants: 0 the original, 1 one word changed, 2 the button recoloured, 3 the box
/// moved down by one pixel.
fn page(variant: u8, random: u64) -> String {
    let word = if variant == 1 { "there" } else { "world" };
    let button = if variant == 2 { "#dc2626" } else { "#2563eb" };
    let box_top = if variant == 3 { 401 } else { 400 };
    format!(
        r#"<!doctype html><html><head><style>
  body {{ margin: 0; background: #f9fafb; font: 20px/1.2 sans-serif; }}
  .word {{ position: absolute; left: 100px; top: 200px; }}
  .button {{ position: absolute; left: 400px; top: 300px; width: 120px; height: 40px; background: {button}; }}
  .box {{ position: absolute; left: 700px; top: {box_top}px; width: 200px; height: 100px; background: #111827; }}
  .spin {{ position: absolute; left: 1000px; top: 100px; width: 40px; height: 40px; background: #888;
           animation: spin 1s linear infinite; }}
  .fade {{ position: absolute; left: 1100px; top: 100px; transition: opacity 3s; }}
  @keyframes spin {{ to {{ transform: rotate(360deg); }} }}
  .random {{ position: absolute; left: 100px; top: 600px; width: 300px; }}
</style></head><body>
  <div class="word">Hello {word}</div>
  <div class="button"></div>
  <div class="box"></div>
  <div class="spin"></div>
  <div class="fade" id="fade">fading</div>
  <input id="field" style="position:absolute;left:100px;top:800px" autofocus>
  <div class="random" id="random">{random}</div>
  <script>document.getElementById('fade').style.opacity = 0.2; document.getElementById('field').focus();</script>
</body></html>"#
    )
}

#[derive(Clone)]
struct Site {
    variant: Arc<AtomicU8>,
    counter: Arc<std::sync::atomic::AtomicU64>,
}

async fn serve_page(State(s): State<Site>) -> Html<String> {
    let n = s.counter.fetch_add(1, Ordering::Relaxed);
    // Different "random" content on every load: it is masked in every scan.
    Html(page(
        s.variant.load(Ordering::Relaxed),
        n.wrapping_mul(2_654_435_761) % 1_000_000,
    ))
}

async fn scan(api: &Api, key: &str, site: &str, url: &str) -> Value {
    let res = api
        .client
        .post(api.url("/api/scan?wait=true"))
        .bearer_auth(key)
        .json(&json!({"url": url, "siteId": site, "options": {
            "checkType": "visual-regression", "timeout": 60000, "mask": ["#random"]
        }}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let v: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{v}\n{}", api.server.logs());
    assert_eq!(v["status"], "completed", "{v}\n{}", api.server.logs());
    // The next request for the same page must be a new scan, not this one again.
    let res = api
        .call(
            Method::DELETE,
            &format!("/api/sites/{site}/cache"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    v
}

async fn findings(api: &Api, key: &str, scan: &Value) -> Vec<Value> {
    let (_, f) = api
        .json(
            Method::GET,
            &format!("/api/scans/{}/findings", scan["id"].as_str().unwrap()),
            Some(key),
            None,
        )
        .await;
    f["items"].as_array().unwrap().clone()
}

/// The changed regions of a finding, as (x, y, width, height).
fn regions(finding: &Value) -> Vec<(i64, i64, i64, i64)> {
    finding["detail"]["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["x"].as_i64().unwrap(),
                r["y"].as_i64().unwrap(),
                r["width"].as_i64().unwrap(),
                r["height"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Whether every region lies inside `outer` and one of them overlaps `inner`.
fn regions_at(
    rs: &[(i64, i64, i64, i64)],
    inner: (i64, i64, i64, i64),
    outer: (i64, i64, i64, i64),
) -> bool {
    let inside = |r: &(i64, i64, i64, i64)| {
        r.0 >= outer.0
            && r.1 >= outer.1
            && r.0 + r.2 <= outer.0 + outer.2
            && r.1 + r.3 <= outer.1 + outer.3
    };
    let overlaps = |r: &(i64, i64, i64, i64)| {
        r.0 < inner.0 + inner.2
            && inner.0 < r.0 + r.2
            && r.1 < inner.1 + inner.3
            && inner.1 < r.1 + r.3
    };
    !rs.is_empty() && rs.iter().all(inside) && rs.iter().any(overlaps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visual_regression_end_to_end() {
    let state = Site {
        variant: Arc::new(AtomicU8::new(0)),
        counter: Arc::default(),
    };
    let site = TestSite::serve(
        Router::new()
            .route("/", get(serve_page))
            .with_state(state.clone()),
    );
    let api = Api::start_with(
        Backend::Sqlite,
        &[
            ("SENTINEL_SCAN_ALLOW", "127.0.0.0/8"),
            ("SENTINEL_BROWSER__INSTANCES", "1"),
        ],
    )
    .await;
    let (_, key) = api.member("designer").await;
    let site_id = api.site(&key, &site.url("/")).await;
    let url = site.url("/");

    // First run: the capture becomes the baseline.
    let first = scan(&api, &key, &site_id, &url).await;
    assert_eq!(first["summary"]["verdict"], "baseline-created", "{first}");
    assert_eq!(
        (
            first["summary"]["width"].as_u64(),
            first["summary"]["height"].as_u64()
        ),
        (Some(1920), Some(1080))
    );
    let current = api
        .call(
            Method::GET,
            &format!(
                "/api/scans/{}/artifacts/current.png",
                first["id"].as_str().unwrap()
            ),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(current.status(), StatusCode::OK);
    assert_eq!(current.headers()["content-type"], "image/png");
    assert!(current.bytes().await.unwrap().starts_with(b"\x89PNG"));

    // The same page again (animation, transition, caret, masked random text): no change.
    for _ in 0..2 {
        let same = scan(&api, &key, &site_id, &url).await;
        assert_eq!(same["summary"]["verdict"], "match", "{same}");
        assert_eq!(same["summary"]["differentPixels"], 0, "{same}");
        assert!(findings(&api, &key, &same).await.is_empty());
    }

    // One word changed: found, where the word is.
    state.variant.store(1, Ordering::Relaxed);
    let word = scan(&api, &key, &site_id, &url).await;
    assert_eq!(word["summary"]["verdict"], "differ", "{word}");
    let f = findings(&api, &key, &word).await;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["kind"], "visual-change");
    assert!(
        regions_at(&regions(&f[0]), (150, 200, 60, 24), (95, 195, 200, 40)),
        "{}",
        f[0]
    );
    for name in ["baseline.png", "current.png", "diff.png"] {
        let res = api
            .call(
                Method::GET,
                &format!(
                    "/api/scans/{}/artifacts/{name}",
                    word["id"].as_str().unwrap()
                ),
                Some(&key),
                None,
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
    }

    // The button's colour: found, exactly the button.
    state.variant.store(2, Ordering::Relaxed);
    let colour = scan(&api, &key, &site_id, &url).await;
    let f = findings(&api, &key, &colour).await;
    assert_eq!(f.len(), 1, "{colour}");
    let rs = regions(&f[0]);
    assert!(
        regions_at(&rs, (400, 300, 120, 40), (398, 298, 124, 44)),
        "{rs:?}"
    );

    // The box moved down by one pixel: found at the box's edges.
    state.variant.store(3, Ordering::Relaxed);
    let shifted = scan(&api, &key, &site_id, &url).await;
    let f = findings(&api, &key, &shifted).await;
    assert_eq!(f.len(), 1, "{shifted}");
    assert!(
        regions_at(&regions(&f[0]), (700, 400, 200, 101), (698, 398, 204, 105)),
        "{}",
        f[0]
    );

    // Approving the shifted capture as the baseline makes the next scan of that page pass.
    let res = api
        .call(
            Method::POST,
            &format!("/api/sites/{site_id}/baselines"),
            Some(&key),
            Some(json!({"scanId": shifted["id"]})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let after = scan(&api, &key, &site_id, &url).await;
    assert_eq!(after["summary"]["verdict"], "match", "{after}");
    assert_eq!(after["summary"]["baselineScanId"], shifted["id"]);
    assert!(findings(&api, &key, &after).await.is_empty());
}
