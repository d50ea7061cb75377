//! Every row of the API contract (DESIGN.md), end to end.

use crate::both_backends;
use crate::helpers::Api;
use reqwest::{Method, StatusCode};
use sentinel_test_support::Backend;
use serde_json::json;

async fn users_sites_grants_scans(backend: Backend) {
    let api = Api::start_opts(backend, &[], &["--role", "api"]).await;

    // POST /api/users (admin) → 201 {id, name, role, apiKey}
    let (s, alice) = api
        .json(
            Method::POST,
            "/api/users",
            Some(&api.admin),
            Some(json!({"name": "alice", "role": "member"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{alice}");
    assert_eq!(alice["name"], "alice");
    assert_eq!(alice["role"], "member");
    let alice_key = alice["apiKey"].as_str().unwrap().to_owned();
    assert!(
        alice_key.starts_with("qas_") && alice_key.len() >= 4 + 32,
        "≥ 128 random bits"
    );
    let (bob_id, bob_key) = api.member("bob").await;

    // POST /api/sites (any user) → 201, creator becomes owner
    let (s, site) = api
        .json(
            Method::POST,
            "/api/sites",
            Some(&alice_key),
            Some(json!({"name": "Shop", "baseUrl": "https://shop.example.test/"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{site}");
    assert_eq!(site["name"], "Shop");
    assert_eq!(site["baseUrl"], "https://shop.example.test/");
    let site_id = site["id"].as_str().unwrap().to_owned();

    // GET /api/sites, GET /api/sites/{id} (grant)
    let (s, list) = api
        .json(Method::GET, "/api/sites", Some(&alice_key), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], site_id.as_str());
    let (s, one) = api
        .json(
            Method::GET,
            &format!("/api/sites/{site_id}"),
            Some(&alice_key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(one["id"], site_id.as_str());
    let (s, list) = api
        .json(Method::GET, "/api/sites", Some(&bob_key), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "bob holds no grant yet"
    );

    // PUT /api/sites/{id}/members/{userId} (owner) → 204
    let res = api
        .call(
            Method::PUT,
            &format!("/api/sites/{site_id}/members/{bob_id}"),
            Some(&alice_key),
            Some(json!({"role": "editor"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (s, _) = api
        .json(
            Method::GET,
            &format!("/api/sites/{site_id}"),
            Some(&bob_key),
            None,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the grant works at once (cache invalidated)"
    );

    // POST /api/scan (editor) → 202
    let (s, a) = api
        .scan(
            &bob_key,
            &site_id,
            "https://shop.example.test/cart",
            json!({"viewport": "mobile"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{a}");
    assert_eq!(a["success"], true);
    assert_eq!(a["status"], "queued");
    assert_eq!(a["deduplicated"], false);
    assert!(a["estimatedDuration"].as_u64().unwrap() > 0);
    let scan_id = a["scanId"].as_str().unwrap().to_owned();

    // Dedup: same site, url and options → same scan; the URL is part of the key.
    let (s, b) = api
        .scan(
            &alice_key,
            &site_id,
            "https://shop.example.test/cart",
            json!({"viewport": "mobile", "checkType": "broken-links"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(b["deduplicated"], true);
    assert_eq!(b["scanId"], scan_id.as_str());
    let (_, c) = api
        .scan(
            &alice_key,
            &site_id,
            "https://shop.example.test/other",
            json!({"viewport": "mobile"}),
        )
        .await;
    assert_eq!(c["deduplicated"], false);
    assert_ne!(c["scanId"], scan_id.as_str());
    let (_, d) = api
        .scan(
            &alice_key,
            &site_id,
            "https://shop.example.test/cart",
            json!({"viewport": "desktop"}),
        )
        .await;
    assert_eq!(d["deduplicated"], false, "other options, other scan");

    // GET /api/scans/{id}
    let (s, scan) = api
        .json(
            Method::GET,
            &format!("/api/scans/{scan_id}"),
            Some(&bob_key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{scan}");
    for field in [
        "id",
        "siteId",
        "url",
        "checkType",
        "options",
        "status",
        "createdAt",
        "startedAt",
        "finishedAt",
        "summary",
    ] {
        assert!(scan.get(field).is_some(), "missing {field} in {scan}");
    }
    assert_eq!(scan["checkType"], "broken-links");
    assert_eq!(scan["options"]["viewport"], "mobile");
    assert_eq!(scan["options"]["timeout"], 30000);
    assert_eq!(scan["status"], "queued");

    // GET /api/scans/{id}/findings
    let (s, f) = api
        .json(
            Method::GET,
            &format!("/api/scans/{scan_id}/findings?limit=10"),
            Some(&bob_key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(f["items"], json!([]));
    assert!(f["nextCursor"].is_null());

    // GET /api/sites/{id}/scans: newest first, cursor pages
    let (s, page1) = api
        .json(
            Method::GET,
            &format!("/api/sites/{site_id}/scans?limit=2"),
            Some(&bob_key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let items = page1["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], d["scanId"], "newest first");
    let cursor = page1["nextCursor"].as_str().unwrap();
    let (_, page2) = api
        .json(
            Method::GET,
            &format!("/api/sites/{site_id}/scans?limit=2&cursor={cursor}"),
            Some(&bob_key),
            None,
        )
        .await;
    let items2 = page2["items"].as_array().unwrap();
    assert_eq!(items2.len(), 1);
    assert_eq!(items2[0]["id"], scan_id.as_str());
    assert!(page2["nextCursor"].is_null());

    // DELETE /api/sites/{id}/cache → 204; the next identical request is a new scan.
    let res = api
        .call(
            Method::DELETE,
            &format!("/api/sites/{site_id}/cache"),
            Some(&bob_key),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (_, e) = api
        .scan(
            &bob_key,
            &site_id,
            "https://shop.example.test/cart",
            json!({"viewport": "mobile"}),
        )
        .await;
    assert_eq!(e["deduplicated"], false);
    assert_ne!(e["scanId"], scan_id.as_str());
}
both_backends!(users_sites_grants_scans);

async fn health_metrics_openapi(backend: Backend) {
    let api = Api::start(backend).await;
    let (s, v) = api.json(Method::GET, "/health/live", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, v) = api.json(Method::GET, "/health/ready", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["database"]["status"], "ok");
    let (s, v) = api
        .json(Method::GET, "/health/performance", None, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for f in [
        "timestamp",
        "uptime",
        "memory",
        "cpu",
        "database",
        "redis",
        "workerPool",
        "avgResponseTime",
        "requestRate",
        "errorRate",
        "status",
    ] {
        assert!(v.get(f).is_some(), "missing {f}: {v}");
    }
    assert_eq!(v["status"], "ok");
    assert_eq!(
        v["database"]["backend"],
        if backend == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    assert!(v["workerPool"]["size"].as_u64().unwrap() >= 1);

    // A request on a parameterised route, then /metrics labels it by its template.
    let _ = api
        .call(
            Method::GET,
            "/api/scans/0190a5d2-3b4c-7def-8123-456789abcdef",
            Some(&api.admin),
            None,
        )
        .await;
    let text = api
        .call(Method::GET, "/metrics", None, None)
        .await
        .text()
        .await
        .unwrap();
    for name in [
        "http_requests_total",
        "http_duration_seconds",
        "active_connections",
        "memory_usage_bytes",
        "cpu_usage_percent",
        "worker_pool_size",
        "db_pool_connections",
        "cache_hit_rate",
        "db_query_duration_seconds",
    ] {
        assert!(text.contains(name), "metric {name} missing");
    }
    assert!(
        text.contains("route=\"/api/scans/{id}\""),
        "labelled by route template"
    );
    assert!(
        !text.contains("0190a5d2-3b4c-7def-8123-456789abcdef"),
        "never by raw path"
    );

    let (s, doc) = api.json(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/users",
        "/api/sites",
        "/api/sites/{id}",
        "/api/sites/{id}/members/{userId}",
        "/api/scan",
        "/api/scans/{id}",
        "/api/scans/{id}/findings",
        "/api/sites/{id}/scans",
        "/api/sites/{id}/cache",
        "/api/sites/{id}/baselines",
        "/api/scans/{id}/artifacts/{name}",
        "/health/live",
        "/health/ready",
        "/health/performance",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "OpenAPI lacks {path}");
    }
}
both_backends!(health_metrics_openapi);

/// A dedup entry that outlived its scan (the database restored or recreated while Redis or
/// the process caches kept the entry) must not answer with a scan that does not exist: the
/// request starts a new scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedup_entry_whose_scan_is_gone_starts_a_new_scan() {
    let api = Api::start_opts(
        Backend::Postgres,
        &[("SENTINEL_CACHE__LIVE_SCAN_TTL_MS", "1")],
        &["--role", "api"],
    )
    .await;
    let (_, key) = api.member("ops").await;
    let site = api.site(&key, "https://lost.example.test/").await;
    let (s, a) = api
        .scan(&key, &site, "https://lost.example.test/", json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{a}");
    let lost = a["scanId"].as_str().unwrap().to_owned();
    let (_, again) = api
        .scan(&key, &site, "https://lost.example.test/", json!({}))
        .await;
    assert_eq!(
        again["scanId"],
        lost.as_str(),
        "a dedup hit while the scan exists"
    );

    api.server
        .postgres_sql(&format!("DELETE FROM scans WHERE id = '{lost}'"));
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (s, b) = api
        .scan(&key, &site, "https://lost.example.test/", json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["deduplicated"], false, "{b}");
    let fresh = b["scanId"].as_str().unwrap();
    assert_ne!(fresh, lost);
    let res = api
        .call(
            Method::GET,
            &format!("/api/scans/{fresh}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}
