//! One module per subcommand.

pub(crate) mod admin;
pub(crate) mod check;
pub(crate) mod diff;
pub(crate) mod serve;

use sentinel_config::{Overrides, ServeRole, Settings};
use std::path::PathBuf;

/// Configuration flags shared by `serve` and `admin` (the same configuration contract).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConfigArgs {
    /// TOML configuration file (also `SENTINEL_CONFIG`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the SQLite file and local artifacts (default ./data; `SENTINEL_DATA_DIR`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `warn,sentinel_api=debug` (`SENTINEL_LOG_LEVEL`).
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
}

impl ConfigArgs {
    /// Loads the settings with these flags (and `extra`) on top.
    pub(crate) fn load(
        &self,
        mut extra: Overrides,
    ) -> Result<Settings, sentinel_config::ConfigError> {
        extra.data_dir = self.data_dir.clone().or(extra.data_dir);
        extra.log_level = self.log_level.clone().or(extra.log_level);
        Settings::load(self.config.as_deref(), &extra)
    }
}

/// `--role` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum RoleArg {
    /// API and workers in one process.
    All,
    /// Only the HTTP API.
    Api,
    /// Only the scan workers.
    Worker,
}

impl From<RoleArg> for ServeRole {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::All => Self::All,
            RoleArg::Api => Self::Api,
            RoleArg::Worker => Self::Worker,
        }
    }
}

/// A multi-threaded Tokio runtime for the service commands.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("qa-sentinel")
        .build()
}

/// rustls needs one process-wide crypto provider (ring: no C toolchain beyond cc needed).
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
