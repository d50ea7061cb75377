//! `qa-sentinel serve`: the composition root. Reads the configuration, opens the store (and
//! migrates it), builds the worker pool and the API for the chosen role, and runs until
//! SIGTERM/SIGINT, then shuts down gracefully: the API stops accepting and finishes its
//! requests, workers stop leasing and finish or return their scans.

mod allocator;
mod backends;
mod executors;
mod text;

use super::{ConfigArgs, RoleArg, install_crypto_provider, runtime};
use anyhow::Context;
use sentinel_api::server::{ServerConfig, serve};
use sentinel_api::{App, AppDeps, AppState};
use sentinel_config::{Overrides, Settings};
use sentinel_store::artifacts::{ArtifactStore, LocalDir, S3Config, S3Store};
use sentinel_store::instrumented::InstrumentedStore;
use sentinel_store::{PgOptions, SqliteOptions, Store};
use sentinel_worker::{WorkerConfig, WorkerPool};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Arguments of `qa-sentinel serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on (default 127.0.0.1:8080; `SENTINEL_BIND`).
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
    /// What this process runs (default all; `SENTINEL_ROLE`).
    #[arg(long, value_enum)]
    role: Option<RoleArg>,
}

pub(crate) fn run(args: ServeArgs) -> ExitCode {
    no_transparent_huge_pages();
    allocator::purge_promptly();
    let overrides = Overrides {
        bind: args.bind,
        role: args.role.map(Into::into),
        ..Overrides::default()
    };
    let settings = match args.config.load(overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("qa-sentinel: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(&settings);
    install_crypto_provider();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("qa-sentinel: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(serve_all(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = format!("{e:#}"), "qa-sentinel stopped");
            eprintln!("qa-sentinel: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Opens and migrates the store the settings name.
pub(crate) async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let sqlite = SqliteOptions {
        read_connections: settings.database.sqlite_readers,
        ..SqliteOptions::default()
    };
    let pg = PgOptions {
        max_connections: settings.database.max_connections,
        min_connections: settings.database.min_connections,
        connect_timeout: Duration::from_millis(settings.database.connect_timeout_ms),
        statement_timeout: Duration::from_millis(settings.database.statement_timeout_ms),
        ..PgOptions::default()
    };
    let store = sentinel_store::open_with(
        settings.database_url.as_deref(),
        &settings.data_dir,
        &sqlite,
        &pg,
    )
    .await
    .context("opening the database")?;
    store.migrate().await.context("migrating the database")?;
    if store.backend() == sentinel_store::Backend::Postgres {
        // A networked database can vanish or hang: a breaker turns that into fast 503s.
        // SQLite is a local file (its "busy" is contention, not an outage): left as is.
        use sentinel_store::guarded::{GuardOptions, GuardedStore};
        let guard = GuardOptions::from_timeouts(pg.connect_timeout, pg.statement_timeout);
        return Ok(Arc::new(GuardedStore::new(store, guard)?));
    }
    Ok(store)
}

/// The artifact store the settings name: S3-compatible storage when an endpoint is set, else
/// a local directory.
pub(crate) async fn open_artifacts(settings: &Settings) -> anyhow::Result<Arc<dyn ArtifactStore>> {
    let a = &settings.artifacts;
    Ok(match (&a.s3_endpoint, &a.s3_bucket) {
        (Some(endpoint), Some(bucket)) => Arc::new(
            S3Store::connect(&S3Config {
                endpoint: endpoint.clone(),
                bucket: bucket.clone(),
                region: a.s3_region.clone(),
                access_key: a.s3_access_key.clone().unwrap_or_default(),
                secret_key: a.s3_secret_key.clone().unwrap_or_default(),
            })
            .await
            .context("connecting to the artifact bucket")?,
        ),
        _ => Arc::new(
            LocalDir::new(settings.artifact_dir()).context("opening the artifact directory")?,
        ),
    })
}

fn worker_config(settings: &Settings) -> WorkerConfig {
    let w = &settings.worker;
    WorkerConfig {
        worker_id: WorkerConfig::default_worker_id(),
        slots: settings.worker_slots,
        lease: Duration::from_secs(w.lease_secs),
        heartbeat: Duration::from_secs(w.heartbeat_secs),
        poll_interval: Duration::from_millis(w.poll_interval_ms),
        reaper_interval: Duration::from_secs(w.reaper_interval_secs),
        max_scan: Duration::from_secs(w.max_scan_secs),
        retry_base: Duration::from_millis(w.retry_base_ms),
        retry_max: Duration::from_millis(w.retry_max_ms),
        shutdown_grace: Duration::from_secs(w.shutdown_grace_secs),
    }
}

async fn shutdown_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            error!("cannot install signal handlers; stop with SIGKILL");
            return;
        };
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received: shutting down"),
            _ = int.recv() => info!("SIGINT received: shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    token.cancel();
}

async fn serve_all(settings: Settings) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    // Every store call is timed into `db_query_duration_seconds`.
    let store: Arc<dyn Store> = Arc::new(InstrumentedStore::new(open_store(&settings).await?));
    let artifacts = open_artifacts(&settings).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_signal(shutdown.clone()));

    // Redis (when configured) before the workers: they take their scan locks there.
    let mut shared = backends::shared(&settings).await?;
    let mut visual = None;
    let worker = if settings.role.runs_workers() {
        let executors = executors::registry(&settings, &store, &artifacts).await?;
        visual = Some(executors.visual);
        let mut pool = WorkerPool::new(store.clone(), executors.registry, worker_config(&settings));
        if let Some(locks) = shared.locks.take() {
            pool = pool.with_locks(locks);
        }
        Some(Arc::new(pool))
    } else {
        None
    };
    let worker_task = worker
        .clone()
        .map(|pool| tokio::spawn(pool.run(shutdown.child_token())));

    if settings.role.runs_api() {
        let state = AppState::new(AppDeps {
            settings: settings.clone(),
            store: store.clone(),
            artifacts,
            remote_cache: shared.remote_cache,
            limiter: shared.limiter,
            versions: shared.versions,
            bus: shared.bus,
            worker,
            redis_health: shared.redis_health,
            browser_health: visual.clone().map(|v| {
                Arc::new(move || serde_json::to_value(v.stats()).unwrap_or_default())
                    as Arc<dyn Fn() -> serde_json::Value + Send + Sync>
            }),
        });
        let listener = TcpListener::bind(settings.bind)
            .await
            .with_context(|| format!("binding {}", settings.bind))?;
        let addr = listener.local_addr()?;
        let config = ServerConfig::from_settings(&settings)?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        // On stdout, for people and for scripts that started us with port 0.
        println!(
            "qa-sentinel listening on {scheme}://{addr} (role {:?}, store {})",
            settings.role,
            store.backend().as_str()
        );
        let released = text::release_startup_pages();
        info!(bytes = released, "start-up code pages given back");
        serve(listener, App::new(state), config, shutdown.clone()).await?;
        shutdown.cancel();
    } else {
        println!(
            "qa-sentinel worker running (store {})",
            store.backend().as_str()
        );
        shutdown.cancelled().await;
    }
    if let Some(task) = worker_task {
        let _ = task.await;
    }
    if let Some(visual) = visual {
        // No Chromium process outlives the service.
        visual.shutdown().await;
    }
    info!("stopped");
    Ok(())
}

/// Turns transparent huge pages off for this process (and the browsers it starts), before the
/// runtime's threads touch the heap. mimalloc commits its arena eagerly and advises huge pages
/// on it, so on a kernel in THP `madvise` mode every 2 MiB of heap that one small allocation
/// touched became resident: 14 of the idle API's 32 MiB RSS were `AnonHugePages`, and the
/// number grew with every thread that allocated. A service's heap is small and scattered;
/// 4 KiB pages keep its resident memory what it uses (idle API on SQLite: RSS 32 → 20 MiB,
/// measured with `/proc/PID/smaps`). The 4 MiB of huge pages that were left had been touched
/// before `main`, in the arena mimalloc reserves at the first allocation; mimalloc is built
/// not to advise huge pages at all (`MI_DEFAULT_ALLOW_THP=0`, `.cargo/config.toml`), which
/// took the idle RSS to 17 MiB. This call still matters for the browsers `serve` starts.
/// Failure (an old kernel) changes nothing else.
fn no_transparent_huge_pages() {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("qa-sentinel: cannot turn transparent huge pages off ({e}); going on");
    }
}
