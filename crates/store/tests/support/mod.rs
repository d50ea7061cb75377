//! Fixtures for the conformance suite: a fresh store per test, on SQLite (a file in a
//! temporary directory) or on PostgreSQL (a database created for the test and dropped after
//! it, even when the test panics), and builders for the rows the tests need.

use sentinel_core::{
    ApiKey, ApiKeyHash, CheckType, NewFinding, NewScan, Role, ScanId, ScanOptions, Site, SiteId,
    SiteUrl, UserId, VisualOptions, now_millis,
};
use sentinel_store::{NewUser, PgOptions, PgStore, SqliteOptions, SqliteStore, Store};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Where the PostgreSQL tests connect to create their databases.
pub(crate) const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The administrative URL: `SENTINEL_TEST_DATABASE_URL` or [`DEFAULT_PG_URL`].
pub(crate) fn pg_admin_url() -> String {
    std::env::var("SENTINEL_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

/// Pool settings for tests: small, because several tests (and other people's tests) share
/// one server.
pub(crate) fn pg_options() -> PgOptions {
    PgOptions {
        max_connections: 10,
        min_connections: 1,
        ..PgOptions::default()
    }
}

/// A store under test and what it lives in.
pub(crate) struct Fixture {
    /// The store.
    pub(crate) store: Arc<dyn Store>,
    /// Kept for its `Drop`, which deletes the directory.
    _sqlite_dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
}

impl Fixture {
    /// A migrated SQLite store in a fresh temporary directory.
    pub(crate) async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(dir.path().join("test.db"), &SqliteOptions::default())
            .await
            .expect("open SQLite store");
        store.migrate().await.expect("migrate SQLite store");
        Self {
            store: Arc::new(store),
            _sqlite_dir: Some(dir),
            pg: None,
        }
    }

    /// A migrated PostgreSQL store on a database created for this test. Panics (the test
    /// fails, it is not skipped) when PostgreSQL cannot be reached.
    pub(crate) async fn postgres() -> Self {
        let db = PgDatabase::create().await;
        let store = PgStore::connect(&db.url, &pg_options())
            .await
            .unwrap_or_else(|e| panic!("connect to the test database {}: {e}", db.name));
        store.migrate().await.expect("migrate PostgreSQL store");
        Self {
            store: Arc::new(store),
            _sqlite_dir: None,
            pg: Some(db),
        }
    }

    /// Whether this is the PostgreSQL fixture.
    pub(crate) fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// The URL of this fixture's PostgreSQL database.
    pub(crate) fn pg_url(&self) -> Option<&str> {
        self.pg.as_ref().map(|d| d.url.as_str())
    }

    /// Another store on the same data, as another process would have: on PostgreSQL a
    /// second instance (its events come through LISTEN/NOTIFY); SQLite is single-process by
    /// design, so there it is the same instance.
    pub(crate) async fn peer(&self) -> Arc<dyn Store> {
        match &self.pg {
            Some(db) => Arc::new(
                PgStore::connect(&db.url, &pg_options())
                    .await
                    .expect("connect a second PostgreSQL store"),
            ),
            None => Arc::clone(&self.store),
        }
    }
}

/// A database that exists for one test.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create() -> Self {
        let admin_url = pg_admin_url();
        let name = format!("sentinel_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for these tests and is unreachable at {admin_url} \
                 (set SENTINEL_TEST_DATABASE_URL): {e}"
            )
        });
        // template0 accepts no connections, so concurrent CREATE DATABASEs never find their
        // template "being accessed by other users".
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE \"{name}\" TEMPLATE template0"
        )))
        .execute(&mut admin)
        .await
        .expect("create test database");
        let _ = admin.close().await;
        let mut url = url::Url::from_str(&admin_url).expect("SENTINEL_TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        Self {
            admin_url,
            name,
            url: url.into(),
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime (or while it unwinds), where blocking on
        // async work is not allowed: use a thread with its own runtime.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url).await?;
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

// ---- builders -------------------------------------------------------------------------------

static CLOCK: AtomicI64 = AtomicI64::new(0);

/// A strictly increasing timestamp near now, so rows created one after another sort by
/// creation even within one millisecond.
pub(crate) fn tick() -> i64 {
    let now = now_millis();
    let mut prev = CLOCK.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match CLOCK.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(actual) => prev = actual,
        }
    }
}

/// A user with a fresh key; returns the user and the key's digest.
pub(crate) async fn user(store: &dyn Store, role: Role) -> (UserId, ApiKeyHash) {
    let key = ApiKey::generate().hash();
    let id = UserId::new();
    store
        .create_user(&NewUser {
            id,
            name: format!("user-{id}"),
            role,
            key_hash: key,
            created_at: tick(),
        })
        .await
        .expect("create user");
    (id, key)
}

/// A site value (not stored).
pub(crate) fn site_value(name: &str) -> Site {
    Site {
        id: SiteId::new(),
        name: name.to_owned(),
        base_url: SiteUrl::parse("https://site.test/").expect("valid URL"),
        created_at: tick(),
    }
}

/// A stored site owned by `owner`.
pub(crate) async fn site(store: &dyn Store, owner: UserId) -> SiteId {
    let site = site_value("a site");
    store.create_site(&site, owner).await.expect("create site");
    site.id
}

/// Options of a scan of the given type.
pub(crate) fn options(check_type: CheckType) -> ScanOptions {
    match check_type {
        CheckType::BrokenLinks => ScanOptions::default(),
        CheckType::VisualRegression => ScanOptions {
            check_type,
            links: None,
            visual: Some(VisualOptions::default()),
            ..ScanOptions::default()
        },
    }
}

/// A scan to create.
pub(crate) fn new_scan(site: SiteId, check_type: CheckType, by: Option<UserId>) -> NewScan {
    let id = ScanId::new();
    NewScan {
        id,
        site_id: site,
        url: format!("https://site.test/page/{id}"),
        options: options(check_type),
        created_by: by,
        created_at: tick(),
    }
}

/// `n` broken-links findings with distinct, ordered messages.
pub(crate) fn findings(n: usize) -> Vec<NewFinding> {
    use sentinel_core::{FindingKind, Severity};
    (0..n)
        .map(|i| NewFinding {
            kind: FindingKind::BrokenLink,
            severity: [Severity::Error, Severity::Warning, Severity::Info][i % 3],
            url: format!("https://site.test/missing/{i}"),
            message: format!("finding {i:05}"),
            detail: serde_json::json!({"status": 404, "index": i, "sources": [{"page": "/"}]}),
        })
        .collect()
}
