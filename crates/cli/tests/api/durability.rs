//! A scan accepted before `kill -9` of the server is still queued afterwards and runs after
//! the restart.

use crate::both_backends;
use crate::helpers::Api;
use axum::Router;
use axum::response::Html;
use axum::routing::get;
use reqwest::{Method, StatusCode};
use sentinel_test_support::Backend;
use sentinel_test_support::site::TestSite;
use serde_json::json;

async fn accepted_scans_survive_kill_9(backend: Backend) {
    let site = TestSite::serve(
        Router::new()
            .route("/", get(|| async { Html(r#"<html><body><a href="/ok">ok</a> <a href="/missing">gone</a></body></html>"#) }))
            .route("/ok", get(|| async { Html("<html><body>fine</body></html>") })),
    );
    let mut api = Api::start_opts(
        backend,
        &[("SENTINEL_SCAN_ALLOW", "127.0.0.0/8")],
        &["--role", "api"],
    )
    .await;
    let (_, key) = api.member("m").await;
    let site_id = api.site(&key, &site.url("/")).await;
    let mut ids = Vec::new();
    for path in ["/", "/?a=1", "/?a=2"] {
        let (s, v) = api
            .scan(&key, &site_id, &site.url(path), json!({"timeout": 5000}))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        ids.push(v["scanId"].as_str().unwrap().to_owned());
    }
    // No graceful anything: the process is gone the instant after the 202s.
    api.server.kill9();
    // Restart as API only: the scans are still there, queued.
    api.server.restart(&["--role".to_owned(), "api".to_owned()]);
    for id in &ids {
        let (s, v) = api
            .json(Method::GET, &format!("/api/scans/{id}"), Some(&key), None)
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["status"], "queued", "{v}");
    }
    // Restart with workers: they run.
    api.server.restart(&[]);
    for id in &ids {
        let done = api.wait_finished(&key, id, 60).await;
        assert_eq!(done["status"], "completed", "{done}");
        assert!(done["summary"]["pages"].as_u64().unwrap() >= 1, "{done}");
    }
    let (_, f) = api
        .json(
            Method::GET,
            &format!("/api/scans/{}/findings", ids[0]),
            Some(&key),
            None,
        )
        .await;
    let items = f["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{f}");
    assert!(items[0]["url"].as_str().unwrap().ends_with("/missing"));
}
both_backends!(accepted_scans_survive_kill_9);

/// Group commit answers 202 only after the scan's transaction committed: kill the server
/// with `kill -9` in the middle of a burst of new scans and every acknowledged one is there.
async fn acknowledged_scans_survive_kill_9_under_load(backend: Backend) {
    let mut api = Api::start_opts(
        backend,
        &[("SENTINEL_QUEUE_MAX_PENDING", "1000000")],
        &["--role", "api"],
    )
    .await;
    let (_, key) = api.member("m").await;
    let site_id = api.site(&key, "https://load.example.test/").await;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..32 {
        let (client, url, key, site_id) = (
            api.client.clone(),
            api.url("/api/scan"),
            key.clone(),
            site_id.clone(),
        );
        let (acked, stop) = (acked.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let body =
                    json!({"url": format!("https://load.example.test/{t}/{i}"), "siteId": site_id});
                match client.post(&url).bearer_auth(&key).json(&body).send().await {
                    Ok(res) if res.status() == StatusCode::ACCEPTED => {
                        if let Ok(v) = res.json::<serde_json::Value>().await {
                            acked
                                .lock()
                                .unwrap()
                                .push(v["scanId"].as_str().unwrap().to_owned());
                        }
                    }
                    // The connection dies with the server: those requests were never answered.
                    _ => {}
                }
            }
        }));
    }
    // Let the load run, then kill the server without warning while requests are in flight.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let before = acked.lock().unwrap().len();
    api.server.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        before > 50,
        "the load did not get going: {before} scans acknowledged"
    );
    api.server.restart(&["--role".to_owned(), "api".to_owned()]);
    let mut missing = Vec::new();
    for id in &acked {
        let (s, _) = api
            .json(Method::GET, &format!("/api/scans/{id}"), Some(&key), None)
            .await;
        if s != StatusCode::OK {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged scans lost: {missing:?}",
        missing.len(),
        acked.len()
    );
}
both_backends!(acknowledged_scans_survive_kill_9_under_load);
