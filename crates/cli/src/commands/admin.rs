//! `qa-sentinel admin …`: bootstrap users and keys, apply migrations, load benchmark data.

use super::{ConfigArgs, install_crypto_provider, runtime};
use anyhow::{Context, bail};
use sentinel_config::Overrides;
use sentinel_core::{
    ApiKey, ApiKeyHash, CheckType, Role, Scan, ScanId, ScanOptions, ScanStatus, Site, SiteId,
    SiteRole, SiteUrl, UserId, now_millis,
};
use sentinel_store::{ImportBatch, NewUser};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `qa-sentinel admin`.
#[derive(Debug, clap::Args)]
pub(crate) struct AdminArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AdminCommand {
    /// Creates a user and prints its new API key (alone, on the last line).
    CreateUser {
        /// The user's name.
        #[arg(long)]
        name: String,
        /// Its role.
        #[arg(long, value_enum, default_value = "member")]
        role: RoleArg,
    },
    /// Applies the database migrations (`serve` also does this at start).
    Migrate,
    /// Loads the load harness's seed files (users with their keys, sites, grants, scans).
    ImportBench {
        /// Directory with permitted.tsv and scans.tsv.
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Admin,
    Member,
}

pub(crate) fn run(args: AdminArgs) -> ExitCode {
    let settings = match args.config.load(Overrides::default()) {
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
            eprintln!("qa-sentinel: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        let store = super::serve::open_store(&settings).await?;
        match args.command {
            AdminCommand::Migrate => {
                println!("migrations applied ({})", store.backend().as_str());
                Ok(())
            }
            AdminCommand::CreateUser { name, role } => {
                let name = name.trim().to_owned();
                if name.is_empty() || name.chars().count() > 200 {
                    bail!("--name must be 1 to 200 characters");
                }
                let role = match role {
                    RoleArg::Admin => Role::Admin,
                    RoleArg::Member => Role::Member,
                };
                let key = ApiKey::generate();
                let user = store
                    .create_user(&NewUser { id: UserId::new(), name, role, key_hash: key.hash(), created_at: now_millis() })
                    .await
                    .context("creating the user")?;
                println!("created user {} ({}, {})", user.id, user.name, user.role);
                println!("{}", key.expose());
                Ok(())
            }
            AdminCommand::ImportBench { dir } => {
                let batch = read_bench_seed(&dir)?;
                let counts = store.import(&batch).await.context("importing")?;
                println!(
                    "imported {} users, {} sites, {} grants, {} scans ({} given; existing rows kept)",
                    counts.users,
                    counts.sites,
                    counts.grants,
                    counts.scans,
                    batch.scans.len()
                );
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qa-sentinel: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn read_tsv(path: &Path, columns: usize) -> anyhow::Result<Vec<Vec<String>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let cols: Vec<String> = line.split('\t').map(str::to_owned).collect();
        if cols.len() != columns {
            bail!(
                "{}:{}: expected {columns} tab-separated columns, found {}",
                path.display(),
                i + 1,
                cols.len()
            );
        }
        rows.push(cols);
    }
    Ok(rows)
}

/// Reads `permitted.tsv` (api_key, user_id, site_id, site_url) and `scans.tsv` (api_key,
/// scan_id, site_id, site_url) of `bench/api/PROTOCOL.md`: every permitted pair becomes an
/// `editor` grant (it may scan), every listed scan a completed scan with the harness's options.
fn read_bench_seed(dir: &Path) -> anyhow::Result<ImportBatch> {
    let permitted = read_tsv(&dir.join("permitted.tsv"), 4)?;
    let scans = read_tsv(&dir.join("scans.tsv"), 4)?;
    let now = now_millis();
    let mut batch = ImportBatch::default();
    let mut users = HashSet::new();
    let mut sites = HashSet::new();
    let mut site_of = |batch: &mut ImportBatch, id: SiteId, url: &str| -> anyhow::Result<()> {
        if sites.insert(id) {
            let base_url =
                SiteUrl::parse(url).map_err(|e| anyhow::anyhow!("site url {url}: {e}"))?;
            let name = base_url.as_url().host_str().unwrap_or("site").to_owned();
            batch.sites.push(Site {
                id,
                name,
                base_url,
                created_at: now,
            });
        }
        Ok(())
    };
    let mut user_by_key = std::collections::HashMap::new();
    for row in &permitted {
        let (key, user, site, url) = (&row[0], &row[1], &row[2], &row[3]);
        let user: UserId = user.parse().with_context(|| format!("user id {user}"))?;
        let site: SiteId = site.parse().with_context(|| format!("site id {site}"))?;
        if users.insert(user) {
            batch.users.push(NewUser {
                id: user,
                name: format!("bench-{}", &user.to_string()[..8]),
                role: Role::Member,
                key_hash: ApiKeyHash::of(key.as_bytes()),
                created_at: now,
            });
        }
        user_by_key.insert(key.clone(), user);
        site_of(&mut batch, site, url)?;
        batch.grants.push((site, user, SiteRole::Editor));
    }
    let options = ScanOptions::from_value(
        &serde_json::json!({"viewport": "desktop", "timeout": 30000}),
        "options",
    )
    .map_err(|e| anyhow::anyhow!("bench scan options: {e}"))?;
    for row in &scans {
        let (key, scan, site, url) = (&row[0], &row[1], &row[2], &row[3]);
        let id: ScanId = scan.parse().with_context(|| format!("scan id {scan}"))?;
        let site: SiteId = site.parse().with_context(|| format!("site id {site}"))?;
        site_of(&mut batch, site, url)?;
        batch.scans.push(Scan {
            id,
            site_id: site,
            url: url.clone(),
            options: options.clone(),
            status: ScanStatus::Completed,
            created_at: now,
            started_at: Some(now),
            finished_at: Some(now),
            summary: Some(serde_json::json!({"imported": true})),
            error: None,
            attempts: 1,
            created_by: user_by_key.get(key).copied(),
        });
    }
    debug_assert!(
        batch
            .scans
            .iter()
            .all(|s| s.options.check_type == CheckType::BrokenLinks)
    );
    Ok(batch)
}
