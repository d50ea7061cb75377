//! qa-sentinel configuration: one typed struct from defaults, a TOML file, SENTINEL_* environment variables and flags.
