//! Every status code of the contract, with the error body shape.

use crate::both_backends;
use crate::helpers::Api;
use reqwest::{Method, StatusCode};
use sentinel_test_support::Backend;
use serde_json::{Value, json};

fn fields(v: &Value) -> Vec<String> {
    v["details"].as_array().map_or_else(Vec::new, |d| {
        d.iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    })
}

fn assert_error_shape(v: &Value, code: &str) {
    assert_eq!(v["code"], code, "{v}");
    assert!(v["error"].is_string(), "{v}");
    assert!(v["requestId"].is_string(), "{v}");
}

async fn bad_requests_and_auth(backend: Backend) {
    let api = Api::start_opts(backend, &[], &["--role", "api"]).await;
    let (_, key) = api.member("m").await;
    let site = api.site(&key, "https://a.example.test/").await;

    // 400 with every violated field
    let (s, v) = api
        .json(
            Method::POST,
            "/api/scan",
            Some(&key),
            Some(json!({
                "url": "ftp://a.example.test/", "siteId": "not-a-uuid",
                "options": {"viewport": "watch", "timeout": 5, "checkType": "seo"}
            })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error_shape(&v, "VALIDATION_ERROR");
    let f = fields(&v);
    for want in [
        "url",
        "siteId",
        "options.viewport",
        "options.timeout",
        "options.checkType",
    ] {
        assert!(f.contains(&want.to_owned()), "{want} not in {f:?}");
    }
    // The URL must lie within the site's origin.
    let (s, v) = api
        .scan(&key, &site, "https://a.example.test.evil.net/", json!({}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(fields(&v), vec!["url"]);
    // Bodies that are not JSON objects, and wrong content types.
    let res = api
        .client
        .post(api.url("/api/scan"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = api
        .client
        .post(api.url("/api/scan"))
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Bad ids in paths and bad paging.
    let (s, v) = api
        .json(Method::GET, "/api/scans/not-a-uuid", Some(&key), None)
        .await;
    assert_eq!(
        (s, fields(&v)),
        (StatusCode::BAD_REQUEST, vec!["id".to_owned()])
    );
    let (s, v) = api
        .json(
            Method::GET,
            &format!("/api/sites/{site}/scans?limit=0&cursor=zz"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (s, fields(&v)),
        (
            StatusCode::BAD_REQUEST,
            vec!["limit".to_owned(), "cursor".to_owned()]
        )
    );
    let (s, v) = api
        .json(
            Method::POST,
            "/api/users",
            Some(&api.admin),
            Some(json!({"name": "", "role": "god"})),
        )
        .await;
    assert_eq!(
        (s, fields(&v)),
        (
            StatusCode::BAD_REQUEST,
            vec!["name".to_owned(), "role".to_owned()]
        )
    );
    let (s, v) = api
        .json(
            Method::POST,
            "/api/sites",
            Some(&key),
            Some(json!({"name": "x", "baseUrl": "javascript:alert(1)"})),
        )
        .await;
    assert_eq!(
        (s, fields(&v)),
        (StatusCode::BAD_REQUEST, vec!["baseUrl".to_owned()])
    );

    // 401: missing, malformed and unknown keys
    let (s, v) = api.json(Method::GET, "/api/sites", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_error_shape(&v, "UNAUTHORIZED");
    let (s, _) = api
        .json(
            Method::GET,
            "/api/sites",
            Some("qas_000000000000000000000000000000000000000000000000"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let res = api
        .client
        .get(api.url("/api/sites"))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");

    // 404: unknown scan, unknown route, admin on an unknown site, grant for an unknown user
    let (s, v) = api
        .json(
            Method::GET,
            "/api/scans/0190a5d2-3b4c-7def-8123-456789abcdef",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error_shape(&v, "NOT_FOUND");
    let (s, v) = api
        .json(Method::GET, "/api/nothing-here", Some(&key), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error_shape(&v, "NOT_FOUND");
    let (s, _) = api
        .json(
            Method::GET,
            "/api/sites/0190a5d2-3b4c-7def-8123-456789abcdef",
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let res = api
        .call(
            Method::PUT,
            &format!("/api/sites/{site}/members/0190a5d2-3b4c-7def-8123-456789abcdef"),
            Some(&key),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // 405 as JSON
    let (s, v) = api
        .json(Method::DELETE, "/api/scan", Some(&key), None)
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_error_shape(&v, "METHOD_NOT_ALLOWED");
}
both_backends!(bad_requests_and_auth);

async fn tenants_are_isolated(backend: Backend) {
    let api = Api::start_opts(backend, &[], &["--role", "api"]).await;
    let (_, alice) = api.member("alice").await;
    let (mallory_id, mallory) = api.member("mallory").await;
    let site = api.site(&alice, "https://alice.example.test/").await;
    let (_, a) = api
        .scan(&alice, &site, "https://alice.example.test/", json!({}))
        .await;
    let scan = a["scanId"].as_str().unwrap().to_owned();
    let other = api.site(&mallory, "https://mallory.example.test/").await;

    // A member can never read or scan another tenant's site.
    for path in [
        format!("/api/sites/{site}"),
        format!("/api/sites/{site}/scans"),
        format!("/api/scans/{scan}"),
        format!("/api/scans/{scan}/findings"),
    ] {
        let (s, v) = api.json(Method::GET, &path, Some(&mallory), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
        assert_eq!(v["error"], "Access denied");
    }
    let (s, _) = api
        .scan(&mallory, &site, "https://alice.example.test/", json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let res = api
        .call(
            Method::DELETE,
            &format!("/api/sites/{site}/cache"),
            Some(&mallory),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = api
        .call(
            Method::PUT,
            &format!("/api/sites/{site}/members/{mallory_id}"),
            Some(&mallory),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "no self-granting");
    // A site that does not exist looks the same to a member as one it may not see.
    let (s, _) = api
        .json(
            Method::GET,
            "/api/sites/0190a5d2-3b4c-7def-8123-456789abcdef",
            Some(&mallory),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, list) = api
        .json(Method::GET, "/api/sites", Some(&mallory), None)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], other.as_str());

    // Viewers may read but not scan; editors may not manage members.
    let res = api
        .call(
            Method::PUT,
            &format!("/api/sites/{site}/members/{mallory_id}"),
            Some(&alice),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (s, _) = api
        .json(
            Method::GET,
            &format!("/api/scans/{scan}"),
            Some(&mallory),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .scan(&mallory, &site, "https://alice.example.test/", json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let res = api
        .call(
            Method::PUT,
            &format!("/api/sites/{site}/members/{mallory_id}"),
            Some(&alice),
            Some(json!({"role": "editor"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (s, _) = api
        .scan(&mallory, &site, "https://alice.example.test/", json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let res = api
        .call(
            Method::PUT,
            &format!("/api/sites/{site}/members/{mallory_id}"),
            Some(&mallory),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Only admins create users.
    let (s, _) = api
        .json(
            Method::POST,
            "/api/users",
            Some(&alice),
            Some(json!({"name": "x", "role": "admin"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
both_backends!(tenants_are_isolated);

async fn timeouts_limits_and_backpressure(backend: Backend) {
    let api = Api::start_opts(
        backend,
        &[
            ("SENTINEL_QUEUE_MAX_PENDING", "2"),
            ("SENTINEL_RATE_LIMIT_PER_MINUTE", "40"),
            ("SENTINEL_RATE_LIMIT_ALLOWLIST", ""),
        ],
        &["--role", "api"],
    )
    .await;
    let (_, key) = api.member("m").await;
    let site = api.site(&key, "https://a.example.test/").await;

    // 408: nothing runs scans here, so waiting times out after options.timeout.
    let res = api
        .client
        .post(api.url("/api/scan?wait=true"))
        .bearer_auth(&key)
        .json(&json!({"url": "https://a.example.test/slow", "siteId": site, "options": {"timeout": 1000}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "Scan timeout");

    // 503 with Retry-After once the queue holds queue_max_pending scans.
    let (s, _) = api
        .scan(&key, &site, "https://a.example.test/2", json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let res = api
        .call(
            Method::POST,
            "/api/scan",
            Some(&key),
            Some(json!({"url": "https://a.example.test/3", "siteId": site})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_some());
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "Service busy, try again later");
    assert_eq!(v["retryAfter"], 30);
    // A deduplicated request needs no queue slot.
    let (s, v) = api
        .scan(&key, &site, "https://a.example.test/2", json!({}))
        .await;
    assert_eq!(
        (s, v["deduplicated"].as_bool()),
        (StatusCode::ACCEPTED, Some(true))
    );

    // 413 for a body over 1 MiB, as JSON.
    let big = "x".repeat(1024 * 1024 + 1);
    let res = api
        .client
        .post(api.url("/api/scan"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["code"], "PAYLOAD_TOO_LARGE");

    // 429 with Retry-After past 40 requests a minute (allow-list emptied for the test).
    let mut limited = None;
    for i in 0..60 {
        let res = api.call(Method::GET, "/api/sites", Some(&key), None).await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, res));
            break;
        }
    }
    let (_, res) = limited.expect("rate limited");
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["code"], "RATE_LIMITED");
}
both_backends!(timeouts_limits_and_backpressure);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_503() {
    let api = Api::start_opts(
        Backend::Sqlite,
        &[("SENTINEL_HTTP__MAX_IN_FLIGHT", "1")],
        &["--role", "api"],
    )
    .await;
    let (_, key) = api.member("m").await;
    let site = api.site(&key, "https://a.example.test/").await;
    // One request holds the only slot (it waits for a scan that nothing runs)…
    let client = api.client.clone();
    let url = api.url("/api/scan?wait=true");
    let body =
        json!({"url": "https://a.example.test/", "siteId": site, "options": {"timeout": 3000}});
    let (k, b) = (key.clone(), body.clone());
    let holder = tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(k)
            .json(&b)
            .send()
            .await
            .unwrap()
            .status()
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // …so the next one is refused at once, not queued.
    let res = api.call(Method::GET, "/health/live", None, None).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_some());
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["code"], "OVERLOADED");
    assert_eq!(holder.await.unwrap(), StatusCode::REQUEST_TIMEOUT);
    let res = api.call(Method::GET, "/health/live", None, None).await;
    assert_eq!(res.status(), StatusCode::OK, "capacity is back");
}

async fn baseline_approval_is_checked(backend: Backend) {
    let api = Api::start_opts(backend, &[], &["--role", "api"]).await;
    let (_, key) = api.member("m").await;
    let (_, other) = api.member("o").await;
    let site = api.site(&key, "https://a.example.test/").await;
    let (_, links) = api
        .scan(&key, &site, "https://a.example.test/", json!({}))
        .await;
    let path = format!("/api/sites/{site}/baselines");
    let (s, v) = api
        .json(
            Method::POST,
            &path,
            Some(&key),
            Some(json!({"scanId": links["scanId"]})),
        )
        .await;
    assert_eq!(
        (s, fields(&v)),
        (StatusCode::BAD_REQUEST, vec!["scanId".to_owned()]),
        "{v}"
    );
    assert!(
        v["details"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("visual-regression"),
        "{v}"
    );
    let (_, visual) = api
        .scan(
            &key,
            &site,
            "https://a.example.test/",
            json!({"checkType": "visual-regression"}),
        )
        .await;
    let (s, v) = api
        .json(
            Method::POST,
            &path,
            Some(&key),
            Some(json!({"scanId": visual["scanId"]})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "a queued scan has nothing to approve: {v}"
    );
    let (s, _) = api
        .json(
            Method::POST,
            &path,
            Some(&key),
            Some(json!({"scanId": "0190a5d2-3b4c-7def-8123-456789abcdef"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = api
        .json(Method::POST, &path, Some(&key), Some(json!({})))
        .await;
    assert_eq!(
        (s, fields(&v)),
        (StatusCode::BAD_REQUEST, vec!["scanId".to_owned()])
    );
    let (s, _) = api
        .json(
            Method::POST,
            &path,
            Some(&other),
            Some(json!({"scanId": visual["scanId"]})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
both_backends!(baseline_approval_is_checked);
