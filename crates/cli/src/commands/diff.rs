//! `qa-sentinel diff` (being written).

use std::process::ExitCode;

/// Arguments of `qa-sentinel diff`.
#[derive(Debug, clap::Args)]
pub(crate) struct DiffArgs {}

pub(crate) fn run(_args: DiffArgs) -> ExitCode {
    ExitCode::from(2)
}
