//! The website the scans crawl, served by the test on loopback, counting every request by
//! path.
//!
//! - `/p/{name}`: a page linking to `/p/{name}/ok` (a page) and `/p/{name}/missing` (404);
//! - `/slow/{name}`: a page linking to `/slow/{name}/wait`, which answers after 3 s, so a
//!   scan of it is still running when the test interferes.

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{Html, Response};
use axum::routing::get;
use sentinel_test_support::site::TestSite;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type Hits = Arc<Mutex<HashMap<String, u32>>>;

async fn count(State(hits): State<Hits>, req: Request, next: Next) -> Response {
    *hits
        .lock()
        .unwrap()
        .entry(req.uri().path().to_owned())
        .or_default() += 1;
    next.run(req).await
}

pub fn serve() -> (TestSite, Hits) {
    let hits: Hits = Arc::default();
    let app = Router::new()
        .route(
            "/p/{name}",
            get(|Path(name): Path<String>| async move {
                Html(format!(
                    r#"<html><body><a href="/p/{name}/ok">ok</a> <a href="/p/{name}/missing">gone</a></body></html>"#
                ))
            }),
        )
        .route("/p/{name}/ok", get(|| async { Html("<html><body>fine</body></html>") }))
        .route(
            "/slow/{name}",
            get(|Path(name): Path<String>| async move {
                Html(format!(r#"<html><body><a href="/slow/{name}/wait">slow</a></body></html>"#))
            }),
        )
        .route(
            "/slow/{name}/wait",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Html("<html><body>done</body></html>")
            }),
        )
        .layer(from_fn_with_state(hits.clone(), count));
    (TestSite::serve(app), hits)
}

pub fn hits(hits: &Hits, path: &str) -> u32 {
    hits.lock().unwrap().get(path).copied().unwrap_or(0)
}
