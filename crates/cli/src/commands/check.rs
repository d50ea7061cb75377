//! `qa-sentinel check` (being written).

use std::process::ExitCode;

/// Arguments of `qa-sentinel check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {}

pub(crate) fn run(_args: CheckArgs) -> ExitCode {
    ExitCode::from(2)
}
