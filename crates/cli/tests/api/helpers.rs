//! Shared test helpers.

use reqwest::{Client, Method, Response, StatusCode};
use sentinel_test_support::{Backend, ServerOptions, TestServer};
use serde_json::{Value, json};
use std::path::Path;

/// Runs a test body against both backends (two `#[tokio::test]`s).
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(sentinel_test_support::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(sentinel_test_support::Backend::Postgres).await;
            }
        }
    };
}

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_qa-sentinel"))
}

/// A running server, an admin key and a client.
pub struct Api {
    pub server: TestServer,
    pub admin: String,
    pub client: Client,
}

impl Api {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    pub async fn start_with(backend: Backend, env: &[(&str, &str)]) -> Self {
        Self::start_opts(backend, env, &[]).await
    }

    pub async fn start_opts(backend: Backend, env: &[(&str, &str)], args: &[&str]) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let opts = ServerOptions {
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
        };
        let server = tokio::task::spawn_blocking(move || TestServer::start(bin(), backend, &opts))
            .await
            .unwrap();
        let admin = server.create_user("root", "admin");
        let client = Client::builder().build().unwrap();
        Self {
            server,
            admin,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let res = self.call(method, path, key, body).await;
        let status = res.status();
        let text = res.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    /// Creates a member through the API; returns (id, key).
    pub async fn member(&self, name: &str) -> (String, String) {
        let (s, v) = self
            .json(
                Method::POST,
                "/api/users",
                Some(&self.admin),
                Some(json!({"name": name, "role": "member"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (
            v["id"].as_str().unwrap().to_owned(),
            v["apiKey"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a site owned by `key`'s user; returns its id.
    pub async fn site(&self, key: &str, base_url: &str) -> String {
        let (s, v) = self
            .json(
                Method::POST,
                "/api/sites",
                Some(key),
                Some(json!({"name": "site", "baseUrl": base_url})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    pub async fn scan(
        &self,
        key: &str,
        site: &str,
        url: &str,
        options: Value,
    ) -> (StatusCode, Value) {
        self.json(
            Method::POST,
            "/api/scan",
            Some(key),
            Some(json!({"url": url, "siteId": site, "options": options})),
        )
        .await
    }

    /// Polls a scan until it is finished (at most `secs`).
    pub async fn wait_finished(&self, key: &str, scan: &str, secs: u64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let (s, v) = self
                .json(Method::GET, &format!("/api/scans/{scan}"), Some(key), None)
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            if v["status"] == "completed" || v["status"] == "failed" {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "scan {scan} not finished: {v}\n{}",
                self.server.logs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}
