//! Test helpers shared by the integration suites: start the real `qa-sentinel` binary on a
//! random port against a fresh SQLite directory or a fresh PostgreSQL database, create
//! users through its `admin` command, and serve small test sites on loopback.
//!
//! PostgreSQL is required, not optional: when it cannot be reached the helpers panic with
//! the reason, so a CI run without it fails instead of silently skipping half the suite.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub mod process;
pub mod redis;
pub mod site;

/// Which store a test server uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default (a file in the server's data directory).
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

/// The PostgreSQL server tests use (`SENTINEL_TEST_DATABASE_URL`, default the machine's).
#[must_use]
pub fn postgres_admin_url() -> String {
    std::env::var("SENTINEL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database created for one test and dropped when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its connection URL.
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// Creates a fresh, empty database. Panics (failing the test) when PostgreSQL is down.
    #[must_use]
    pub fn create() -> Self {
        let admin = postgres_admin_url();
        let name = format!("qa_t_{}", uuid::Uuid::new_v4().simple());
        run_sql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = postgres_admin_url();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // A thread of its own: drop may run inside an async test's runtime, which cannot
        // block on another runtime.
        let _ = std::thread::spawn(move || run_sql(&admin, &sql)).join();
    }
}

fn run_sql(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at {url} is required for this test but unreachable: {e}")
        });
        // Test-only DDL built from our own generated names: no user input reaches it.
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

/// The real binary serving on a random loopback port. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its data directory (SQLite file, artifacts).
    pub data_dir: PathBuf,
    /// The environment it was started with (reused by `admin` and restarts).
    pub env: HashMap<String, String>,
    bin: PathBuf,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
    db: Option<std::sync::Arc<TestDatabase>>,
    /// Lines the server wrote to standard error (its logs), collected in the background.
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Options of [`TestServer::start`].
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Extra arguments after `serve`.
    pub args: Vec<String>,
}

impl TestServer {
    /// Starts `bin serve --bind 127.0.0.1:0` on `backend` with quiet, JSON logs.
    #[must_use]
    pub fn start(bin: &Path, backend: Backend, opts: &ServerOptions) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().to_path_buf();
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(std::sync::Arc::new(TestDatabase::create())),
        };
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("SENTINEL_LOG_LEVEL".into(), "warn".into());
        env.insert("SENTINEL_DATA_DIR".into(), data_dir.display().to_string());
        if let Some(db) = &db {
            env.insert("DATABASE_URL".into(), db.url.clone());
        }
        for (k, v) in &opts.env {
            env.insert(k.clone(), v.clone());
        }
        let mut s = Self {
            base: String::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            env,
            bin: bin.to_path_buf(),
            child: None,
            _tmp: Some(tmp),
            db,
            logs: std::sync::Arc::default(),
        };
        s.spawn(&opts.args, "127.0.0.1:0");
        s
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env_remove("DATABASE_URL").env_remove("REDIS_URL");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn spawn(&mut self, args: &[String], bind: &str) {
        let mut cmd = self.command();
        cmd.arg("serve").arg("--bind").arg(bind).args(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawning qa-sentinel");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let logs = self.logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("[server] {line}");
                }
                logs.lock().map(|mut l| l.push(line)).ok();
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let url = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(url);
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("qa-sentinel did not start; logs:\n{}", self.logs());
            }
        };
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .parse()
            .expect("listening address");
        self.base = url;
        self.addr = addr;
        self.child = Some(child);
    }

    /// What the server logged so far.
    #[must_use]
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// `base` + `path`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs `qa-sentinel admin …` with the server's configuration; returns stdout.
    #[must_use]
    pub fn admin(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .arg("admin")
            .args(args)
            .output()
            .expect("running admin");
        assert!(
            out.status.success(),
            "admin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates a user through `admin create-user`; returns its API key.
    #[must_use]
    pub fn create_user(&self, name: &str, role: &str) -> String {
        let out = self.admin(&["create-user", "--name", name, "--role", role]);
        out.lines().last().expect("key line").trim().to_owned()
    }

    /// The server's process id.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL (no cleanup at all) and waits for it.
    pub fn kill9(&mut self) {
        process::kill9(&mut self.child);
    }

    /// Sends SIGTERM and waits (at most `timeout`) for the process to exit; returns its exit
    /// status code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        process::terminate(&mut self.child, timeout)
    }

    /// Starts the server again on the same data (same port if possible).
    pub fn restart(&mut self, args: &[String]) {
        self.kill9();
        let bind = self.addr.to_string();
        self.spawn(args, &bind);
    }

    /// The test database, for a second server on the same data.
    #[must_use]
    pub fn database(&self) -> Option<std::sync::Arc<TestDatabase>> {
        self.db.clone()
    }

    /// Runs SQL against the server's PostgreSQL database behind its back (tests that need
    /// the store to change under the caches). Panics on the SQLite backend.
    pub fn postgres_sql(&self, sql: &str) {
        let db = self.db.as_ref().expect("a PostgreSQL-backed server");
        let (url, sql) = (db.url.clone(), sql.to_owned());
        // A thread of its own: callers may be inside an async test's runtime.
        std::thread::spawn(move || run_sql(&url, &sql))
            .join()
            .expect("sql thread");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}
