//! The HTTP layer: headers, compression, CORS, HTTP/2 (h2c and TLS with ALPN), deadlines.

use crate::both_backends;
use crate::helpers::Api;
use reqwest::{Client, Method, StatusCode, Version};
use sentinel_test_support::Backend;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

async fn headers_and_compression(backend: Backend) {
    let api = Api::start(backend).await;
    // X-Request-ID: kept from the client, else generated; X-Response-Time on every answer.
    let res = api
        .client
        .get(api.url("/health/live"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc-123");
    let rt = res.headers()["x-response-time"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        rt.ends_with("ms") && rt.trim_end_matches("ms").parse::<f64>().is_ok(),
        "{rt}"
    );
    let a = api.call(Method::GET, "/nope", None, None).await;
    let b = api.call(Method::GET, "/nope", None, None).await;
    let (ia, ib) = (
        a.headers()["x-request-id"].clone(),
        b.headers()["x-request-id"].clone(),
    );
    assert_ne!(ia, ib);
    let body: serde_json::Value = a.json().await.unwrap();
    assert_eq!(
        body["requestId"],
        ia.to_str().unwrap(),
        "error bodies carry the id"
    );
    let res = api
        .client
        .get(api.url("/health/live"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "bad id with spaces");

    // Compression: gzip, deflate and br for bodies ≥ 1 KiB; small bodies go as they are.
    let raw = Client::builder()
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .build()
        .unwrap();
    for enc in ["gzip", "br", "deflate"] {
        let res = raw
            .get(api.url("/openapi.json"))
            .header("accept-encoding", enc)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap()),
            Some(enc)
        );
    }
    let res = raw
        .get(api.url("/health/live"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(
        res.headers().get("content-encoding").is_none(),
        "15 bytes are not worth compressing"
    );
    let res = raw.get(api.url("/openapi.json")).send().await.unwrap();
    assert!(res.headers().get("content-encoding").is_none());
    // And the compressed document decodes to the same JSON.
    let doc: serde_json::Value = api
        .client
        .get(api.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"].is_object());
}
both_backends!(headers_and_compression);

async fn cors_matches_origins_exactly(backend: Backend) {
    let api = Api::start_with(
        backend,
        &[(
            "SENTINEL_CORS_ORIGINS",
            "https://app.example.test,http://localhost:3000",
        )],
    )
    .await;
    let origin_of = |res: &reqwest::Response| {
        res.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let res = api
        .client
        .get(api.url("/health/live"))
        .header("origin", "https://app.example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(origin_of(&res).as_deref(), Some("https://app.example.test"));
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    assert!(res.headers()["vary"].to_str().unwrap().contains("origin"));
    for bad in [
        "https://app.example.test.evil.net",
        "https://evil-app.example.test",
        "https://notapp.example.test",
        "http://app.example.test",
        "https://app.example.test:444",
        "null",
        "http://localhost:3001",
        "http://localhost.evil:3000",
    ] {
        let res = api
            .client
            .get(api.url("/health/live"))
            .header("origin", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(origin_of(&res), None, "{bad} must not be allowed");
    }
    // Preflight
    let res = api
        .client
        .request(Method::OPTIONS, api.url("/api/scan"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization,x-request-id",
        )
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    assert_eq!(origin_of(&res).as_deref(), Some("http://localhost:3000"));
    let methods = res.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    for m in ["GET", "POST", "PUT", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let allowed = res.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for h in ["content-type", "authorization", "x-request-id"] {
        assert!(allowed.contains(h), "{allowed}");
    }
    // A 401 for a browser still carries CORS headers (it can read the error).
    let res = api
        .client
        .get(api.url("/api/sites"))
        .header("origin", "https://app.example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(origin_of(&res).as_deref(), Some("https://app.example.test"));
}
both_backends!(cors_matches_origins_exactly);

async fn http2_cleartext_prior_knowledge(backend: Backend) {
    let api = Api::start(backend).await;
    let h2 = Client::builder().http2_prior_knowledge().build().unwrap();
    let res = h2
        .get(api.url("/api/sites"))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), Version::HTTP_2);
    assert_eq!(res.status(), StatusCode::OK);
    // Many concurrent streams on one connection.
    let futs = (0..50).map(|_| h2.get(api.url("/health/live")).send());
    for r in futures::future::join_all(futs).await {
        let r = r.unwrap();
        assert_eq!((r.version(), r.status()), (Version::HTTP_2, StatusCode::OK));
        assert!(r.headers().get("x-request-id").is_some());
    }
    let h1 = api
        .client
        .get(api.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(h1.version(), Version::HTTP_11);
}
both_backends!(http2_cleartext_prior_knowledge);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_negotiates_http2_by_alpn() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let cert_path = dir.path().join("cert.pem").display().to_string();
    let key_path = dir.path().join("key.pem").display().to_string();
    let api = Api::start_with(
        Backend::Sqlite,
        &[
            ("SENTINEL_TLS_CERT", &cert_path),
            ("SENTINEL_TLS_KEY", &key_path),
        ],
    )
    .await;
    assert!(api.server.base.starts_with("https://"));
    let root = reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
    let url = api.url("/health/live");
    let h2 = Client::builder()
        .add_root_certificate(root.clone())
        .build()
        .unwrap();
    let res = h2.get(&url).send().await.unwrap();
    assert_eq!(
        (res.status(), res.version()),
        (StatusCode::OK, Version::HTTP_2)
    );
    let h1 = Client::builder()
        .add_root_certificate(root)
        .http1_only()
        .build()
        .unwrap();
    let res = h1.get(&url).send().await.unwrap();
    assert_eq!(
        (res.status(), res.version()),
        (StatusCode::OK, Version::HTTP_11)
    );
}

fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed());
            }
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_connections() {
    let api = Api::start_with(
        Backend::Sqlite,
        &[
            ("SENTINEL_HTTP__HEADER_TIMEOUT_SECS", "1"),
            ("SENTINEL_HTTP__KEEP_ALIVE_SECS", "3"),
        ],
    )
    .await;
    let addr = api.server.addr;
    tokio::task::spawn_blocking(move || {
        // Slow loris: half a request, then silence. The server closes the connection.
        let mut loris = TcpStream::connect(addr).unwrap();
        loris
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        assert!(
            read_until_closed(&mut loris, Duration::from_secs(15)).is_some(),
            "slow client was not cut off"
        );
        // A client that connects and sends nothing, or only the start of the HTTP/2 preface
        // (which leaves the protocol undecided), is cut off by the same deadline.
        for opening in [&b""[..], b"PR"] {
            let mut silent = TcpStream::connect(addr).unwrap();
            silent.write_all(opening).unwrap();
            assert!(
                read_until_closed(&mut silent, Duration::from_secs(15)).is_some(),
                "a client that sent {opening:?} was not cut off"
            );
        }

        // A keep-alive connection may idle longer than the header deadline between requests…
        let mut ka = TcpStream::connect(addr).unwrap();
        let req = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n";
        ka.write_all(req).unwrap();
        let mut buf = [0u8; 1024];
        ka.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(ka.read(&mut buf).unwrap() > 0);
        std::thread::sleep(Duration::from_millis(1800));
        ka.write_all(req).unwrap();
        let n = ka.read(&mut buf).unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "idle keep-alive connection survived"
        );
        // …but not forever.
        assert!(
            read_until_closed(&mut ka, Duration::from_secs(15)).is_some(),
            "idle connection never closed"
        );
    })
    .await
    .unwrap();
    // Meanwhile the server kept serving.
    let res = api
        .client
        .get(api.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_off() {
    let api = Api::start_with(
        Backend::Sqlite,
        &[("SENTINEL_HTTP__BODY_TIMEOUT_SECS", "1")],
    )
    .await;
    let (addr, key) = (api.server.addr, api.admin.clone());
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /api/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\""
        );
        s.write_all(head.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("BODY_TIMEOUT"), "{answer}");
}

/// SIGTERM: the server stops accepting, closes idle keep-alive connections at once, lets the
/// request in flight finish (its client still sending the body when the signal came) and
/// then exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_in_flight_and_closes_idle_connections() {
    let mut api = Api::start(Backend::Sqlite).await;
    let (addr, key) = (api.server.addr, api.admin.clone());
    let idle = std::thread::spawn(move || {
        let mut ka = TcpStream::connect(addr).unwrap();
        ka.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        ka.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(ka.read(&mut buf).unwrap() > 0);
        read_until_closed(&mut ka, Duration::from_secs(10)).map(|_| Instant::now())
    });
    // A connection that has sent nothing yet is closed at shutdown too (not at its header
    // deadline, 10 s away).
    let silent = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        read_until_closed(&mut s, Duration::from_secs(15)).map(|_| Instant::now())
    });
    let in_flight = std::thread::spawn(move || {
        let body = r#"{"name":"Shop","baseUrl":"https://shop.example.test/"}"#;
        let (first, rest) = body.split_at(10);
        let mut s = TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /api/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        // The signal arrives while the handler waits for the rest of the body.
        std::thread::sleep(Duration::from_millis(1500));
        let rest_sent = Instant::now();
        s.write_all(rest.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        (String::from_utf8_lossy(&buf[..n]).into_owned(), rest_sent)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let code = tokio::task::block_in_place(|| api.server.terminate(Duration::from_secs(20)));
    let (answer, rest_sent) = in_flight.join().unwrap();
    let idle_closed = idle
        .join()
        .unwrap()
        .expect("the idle connection was closed");
    let silent_closed = silent
        .join()
        .unwrap()
        .expect("the silent connection was closed");
    // Answered, not cut off: the server waited for it.
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(code, Some(0), "exit status after SIGTERM");
    // The idle connection was closed by the shutdown itself, not by the process exiting
    // (which could only happen after the request in flight got the rest of its body).
    assert!(
        idle_closed < rest_sent,
        "the idle connection stayed open {:?} past the signal's in-flight wait",
        idle_closed - rest_sent
    );
    assert!(
        silent_closed < rest_sent,
        "the silent connection stayed open {:?} past the signal's in-flight wait",
        silent_closed - rest_sent
    );
}
