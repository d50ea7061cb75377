//! The `qa-sentinel` binary: a thin command-line layer over the library crates.

mod commands;
mod telemetry;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc instead of glibc's allocator: the first profile of the API spent a quarter of its
/// instructions in malloc/free, and mimalloc's thread-local free lists cut that cost without
/// touching the code that allocates.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// qa-sentinel: website quality checks (broken links, visual regressions) as a service and a CLI.
#[derive(Debug, Parser)]
#[command(name = "qa-sentinel", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: HTTP API and scan workers (or one of them with --role).
    Serve(commands::serve::ServeArgs),
    /// Administration: users and API keys, migrations, benchmark data.
    Admin(commands::admin::AdminArgs),
    /// Check a site for broken links, without a server (for terminals and CI pipelines).
    Check(commands::check::CheckArgs),
    /// Compare two PNG screenshots (exit 0: match, 1: differ, 2: error).
    Diff(commands::diff::DiffArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => commands::serve::run(args),
        Command::Admin(args) => commands::admin::run(args),
        Command::Check(args) => commands::check::run(args),
        Command::Diff(args) => commands::diff::run(args),
    }
}
