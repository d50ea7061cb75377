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
