//! Logging: `tracing` to standard error, JSON or human-readable, filtered by the configured
//! level. Standard output stays free for command results (keys, reports).

use sentinel_config::{LogFormat, Settings};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (once; later calls are ignored).
pub(crate) fn init(settings: &Settings) {
    let filter = EnvFilter::try_new(settings.effective_log_level()).unwrap_or_else(|e| {
        eprintln!(
            "warning: invalid log filter {:?} ({e}); using info",
            settings.effective_log_level()
        );
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
