//! Configuration errors that name the offending key and where its value came from.

use std::fmt;

/// A configuration problem, fatal at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    key: String,
    message: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The dotted key (`http.keep_alive_secs`, `cors_origins[1]`).
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn from_figment(err: figment::Error) -> Self {
        // figment reports the first error first; one clear message is better than a list
        // whose later entries are often consequences of the first.
        let key = if err.path.is_empty() {
            unknown_field(&err.kind)
        } else {
            err.path.join(".")
        };
        let origin = err
            .metadata
            .as_ref()
            .map(|m| {
                let source = m
                    .source
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let name = if m.name.contains("environment") {
                    format!("environment variable {}", env_var_name(&key))
                } else {
                    m.name.to_string()
                };
                if source.is_empty() {
                    name
                } else {
                    format!("{name} ({source})")
                }
            })
            .unwrap_or_default();
        let mut message = err.kind.to_string();
        if !origin.is_empty() {
            message = format!("{message} (from {origin})");
        }
        Self { key, message }
    }
}

fn unknown_field(kind: &figment::error::Kind) -> String {
    match kind {
        figment::error::Kind::UnknownField(field, _) => field.clone(),
        _ => String::from("<configuration>"),
    }
}

/// The environment variable that sets a key: `http.keep_alive_secs` →
/// `SENTINEL_HTTP__KEEP_ALIVE_SECS`, `database_url` → `DATABASE_URL`.
fn env_var_name(key: &str) -> String {
    match key {
        "database_url" => "DATABASE_URL".to_owned(),
        "redis_url" => "REDIS_URL".to_owned(),
        _ => format!("SENTINEL_{}", key.replace('.', "__").to_uppercase()),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: `{}`: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}
