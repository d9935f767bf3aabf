//! The binary's side: one module per command, the output they share, and
//! the exit codes. Only this folder prints, reads the terminal or chooses
//! an exit code; the library returns values and typed errors.

mod archive;
mod check;
mod error;
mod ledger;
mod output;
mod preview;
mod send;
mod serve;
mod status;
mod suppress;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use briefing::clock::{self, Clock};
use briefing::config::Config;

pub use error::{CliError, CliResult, Context, exit};

/// `briefing`'s arguments.
#[derive(Debug, Parser)]
#[command(
    name = "briefing",
    version,
    about = "Compose, check and send an email newsletter"
)]
pub struct Cli {
    /// Configuration file (default ./config.toml, else the built-in one).
    #[arg(long, global = true, env = "BRIEFING_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check an issue: every problem with file, line and column.
    Check(check::CheckArgs),
    /// Write the HTML, text and .eml of an issue to disk.
    Preview(preview::PreviewArgs),
    /// Send an issue to every subscriber (or test copies with --to).
    Send(send::SendArgs),
    /// Show how a send went, or the state of every issue in a folder.
    Status(status::StatusArgs),
    /// Serve one-click unsubscribe (RFC 8058) behind a reverse proxy.
    Serve(serve::ServeArgs),
    /// Manage the suppression list.
    Suppress {
        #[command(subcommand)]
        command: suppress::SuppressCommand,
    },
    /// Build the static web archive of published issues.
    Archive(archive::ArchiveArgs),
    /// Move the ledger: `ledger migrate --from SQLITE --to postgres://…`.
    Ledger {
        #[command(subcommand)]
        command: ledger::LedgerCommand,
    },
}

/// The clock every command reads (`BRIEFING_NOW` fixes it).
pub type SharedClock = Arc<dyn Clock>;

/// Runs the command the arguments name.
pub fn run(cli: Cli) -> CliResult {
    let clock = clock::from_env()?;
    let config = Config::load(cli.config.as_deref()).map_err(CliError::Diagnostics)?;
    match cli.command {
        Command::Check(args) => check::run(&args, &config, clock.as_ref()),
        Command::Preview(args) => preview::run(&args, cli.config.as_deref(), &config, clock),
        Command::Send(args) => send::run(&args, &config, clock),
        Command::Status(args) => status::run(&args, &config, clock.as_ref()),
        Command::Serve(args) => serve::run(args, &config, clock),
        Command::Suppress { command } => suppress::run(command, &config, clock.as_ref()),
        Command::Archive(args) => archive::run(&args, &config),
        Command::Ledger { command } => ledger::run(command, &config),
    }
}

/// The async runtime for commands that do network work.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
