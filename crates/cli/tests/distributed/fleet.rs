//! The fleet under test: its own PostgreSQL server and three-master Redis Cluster on free
//! loopback ports, and the real `qa-sentinel` binary as separate `--role api` and
//! `--role worker` processes.

use reqwest::{Client, Method, StatusCode};
use sentinel_test_support::process;
use sentinel_test_support::redis::{PgServer, RedisCluster};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_qa-sentinel"))
}

/// Settings every process shares.
fn common_env(database_url: &str, redis_url: &str) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", database_url),
        ("REDIS_URL", redis_url),
        ("SENTINEL_LOG_LEVEL", "info"),
        // Every request is rate limited, loopback included.
        ("SENTINEL_RATE_LIMIT_ALLOWLIST", ""),
        ("SENTINEL_RATE_LIMIT_PER_MINUTE", "1000"),
        ("SENTINEL_SCAN_ALLOW", "127.0.0.0/8"),
        ("SENTINEL_WORKER_SLOTS", "2"),
        // Short leases so that a killed worker's scan is taken over within seconds.
        ("SENTINEL_WORKER__LEASE_SECS", "4"),
        ("SENTINEL_WORKER__HEARTBEAT_SECS", "1"),
        ("SENTINEL_WORKER__REAPER_INTERVAL_SECS", "1"),
        ("SENTINEL_WORKER__POLL_INTERVAL_MS", "250"),
        ("SENTINEL_WORKER__SHUTDOWN_GRACE_SECS", "15"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// One `qa-sentinel serve --role …` process. Killed when dropped.
pub struct Node {
    pub name: String,
    role: &'static str,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` for an API process.
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
    _data: tempfile::TempDir,
}

impl Node {
    pub fn start(name: &str, role: &'static str, env: Vec<(String, String)>) -> Self {
        let mut n = Self {
            name: name.to_owned(),
            role,
            env,
            child: None,
            base: String::new(),
            logs: Arc::default(),
            _data: tempfile::tempdir().unwrap(),
        };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(bin());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SENTINEL_DATA_DIR", self._data.path())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["serve", "--role", self.role, "--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawning qa-sentinel");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = self.logs.clone();
        let name = self.name.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("[{name}] {line}");
                }
                logs.lock().unwrap().push(line);
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening on") || line.contains("worker running") {
                    let _ = tx.send(line);
                }
            }
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("{} did not start; logs:\n{}", self.name, self.logs());
        };
        if let Some(rest) = line.split("listening on ").nth(1) {
            self.base = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn kill9(&mut self) {
        process::kill9(&mut self.child);
    }

    /// SIGTERM, then waits at most `timeout` for the exit; its exit code (`None`: it had to
    /// be killed, or died of a signal).
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        process::terminate(&mut self.child, timeout)
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The servers the fleet depends on (kept apart from [`Fleet`] so that a scenario can stop
/// them while requests are in flight).
pub struct Infra {
    pub pg: PgServer,
    pub redis: RedisCluster,
}

/// The processes and what a client needs to talk to them.
pub struct Fleet {
    pub pg_url: String,
    pub apis: Vec<Node>,
    pub workers: Vec<Node>,
    /// An admin's API key.
    pub admin: String,
    pub http: Client,
}

impl Fleet {
    pub async fn start() -> (Self, Infra) {
        let (pg, redis) = tokio::join!(
            tokio::task::spawn_blocking(PgServer::start),
            tokio::task::spawn_blocking(RedisCluster::start),
        );
        let (pg, redis) = (pg.unwrap(), redis.unwrap());
        let env = common_env(&pg.url(), &redis.url());
        // The first process migrates the fresh database; the others start against it.
        let first = {
            let env = env.clone();
            tokio::task::spawn_blocking(move || Node::start("api-1", "api", env))
                .await
                .unwrap()
        };
        let mut rest = Vec::new();
        for (name, role) in [
            ("api-2", "api"),
            ("worker-1", "worker"),
            ("worker-2", "worker"),
        ] {
            let env = env.clone();
            rest.push(tokio::task::spawn_blocking(move || {
                Node::start(name, role, env)
            }));
        }
        let mut apis = vec![first];
        let mut workers = Vec::new();
        for h in rest {
            let node = h.await.unwrap();
            if node.role == "api" {
                apis.push(node);
            } else {
                workers.push(node);
            }
        }
        let out = Command::new(bin())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["admin", "create-user", "--name", "root", "--role", "admin"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let admin = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_owned();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let fleet = Self {
            pg_url: pg.url(),
            apis,
            workers,
            admin,
            http,
        };
        (fleet, Infra { pg, redis })
    }

    /// Every process's logs (for failure messages).
    pub fn logs(&self) -> String {
        self.apis
            .iter()
            .chain(&self.workers)
            .map(|n| format!("----- {} -----\n{}", n.name, n.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A request to API `i`; returns status, headers and JSON body.
    pub async fn call(
        &self,
        i: usize,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.apis[i].base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path} on api {i}: {e}"));
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, v)
    }

    pub async fn json(
        &self,
        i: usize,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, _, v) = self.call(i, method, path, key, body).await;
        (s, v)
    }

    /// Creates a member through API `i`; returns (id, key).
    pub async fn member(&self, i: usize, name: &str) -> (String, String) {
        let body = json!({"name": name, "role": "member"});
        let (s, v) = self
            .json(i, Method::POST, "/api/users", Some(&self.admin), Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (
            v["id"].as_str().unwrap().to_owned(),
            v["apiKey"].as_str().unwrap().to_owned(),
        )
    }

    /// Gives `user` a role on `site` (as the admin).
    pub async fn grant(&self, i: usize, site: &str, user: &str, role: &str) {
        let path = format!("/api/sites/{site}/members/{user}");
        let (s, v) = self
            .json(
                i,
                Method::PUT,
                &path,
                Some(&self.admin),
                Some(json!({"role": role})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }

    /// Creates a site owned by `key`'s user; returns its id.
    pub async fn site(&self, i: usize, key: &str, base_url: &str) -> String {
        let body = json!({"name": "site", "baseUrl": base_url});
        let (s, v) = self
            .json(i, Method::POST, "/api/sites", Some(key), Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// `POST /api/scan` through API `i`.
    pub async fn scan(&self, i: usize, key: &str, site: &str, url: &str) -> (StatusCode, Value) {
        let body = json!({"url": url, "siteId": site, "options": {"timeout": 20000}});
        self.json(i, Method::POST, "/api/scan", Some(key), Some(body))
            .await
    }

    /// Polls a scan through API `i` until it is finished (at most `secs`).
    pub async fn wait_finished(&self, i: usize, key: &str, scan: &str, secs: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let (s, v) = self
                .json(
                    i,
                    Method::GET,
                    &format!("/api/scans/{scan}"),
                    Some(key),
                    None,
                )
                .await;
            if s == StatusCode::OK && (v["status"] == "completed" || v["status"] == "failed") {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "scan {scan} not finished after {secs} s: {s} {v}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The worker process that holds a scan's lease now, from the queue table.
    pub fn holder_of(&self, scan: &str) -> Option<usize> {
        let out = Command::new("psql")
            .arg(&self.pg_url)
            .args([
                "-tAc",
                &format!("SELECT leased_by FROM jobs WHERE scan_id = '{scan}'"),
            ])
            .output()
            .expect("psql is required for this test");
        let worker_id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let pid: u32 = worker_id.rsplit(':').next()?.parse().ok()?;
        self.workers.iter().position(|w| w.pid() == Some(pid))
    }

    /// One Prometheus sample of API `i` (summed over label sets), 0 when absent.
    pub async fn metric(&self, i: usize, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.apis[i].base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}
