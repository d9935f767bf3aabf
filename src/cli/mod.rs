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
    /// The newsletter to act on, by id (default: the one whose issues
    /// folder holds the issue; without an issue, every newsletter).
    #[arg(long, global = true, env = "BRIEFING_NEWSLETTER")]
    newsletter: Option<String>,
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
    let chosen = Newsletters::new(&config, cli.newsletter.as_deref())?;
    match cli.command {
        Command::Check(args) => check::run(&args, chosen.for_issue(args.issue()), clock.as_ref()),
        Command::Preview(args) => preview::run(
            &args,
            cli.config.as_deref(),
            chosen.for_issue(args.issue()),
            clock,
        ),
        Command::Send(args) => send::run(&args, &chosen, clock),
        Command::Status(args) => status::run(&args, &chosen, clock.as_ref()),
        Command::Serve(args) => serve::run(args, &chosen, clock),
        Command::Suppress { command } => suppress::run(command, chosen.one()?, clock.as_ref()),
        Command::Archive(args) => archive::run(&args, &chosen),
        Command::Ledger { command } => ledger::run(command, chosen.one()?),
    }
}

/// The newsletters a command acts on: the one `--newsletter` names, else
/// every newsletter of the repository.
pub struct Newsletters<'a> {
    repository: &'a Config,
    chosen: Option<&'a Config>,
}

impl<'a> Newsletters<'a> {
    /// Resolves `--newsletter` against the repository's newsletters.
    fn new(repository: &'a Config, id: Option<&str>) -> Result<Self, CliError> {
        let chosen = match id {
            None => None,
            Some(id) => Some(repository.by_id(id).ok_or_else(|| {
                CliError::input(format!(
                    "--newsletter {id}: no such newsletter, expected one of {}",
                    repository.ids().join(", ")
                ))
            })?),
        };
        Ok(Self { repository, chosen })
    }

    /// The newsletter of an issue: `--newsletter`, else the one whose issues
    /// folder holds it.
    pub fn for_issue(&self, path: &std::path::Path) -> &'a Config {
        self.chosen
            .unwrap_or_else(|| self.repository.for_issue(path))
    }

    /// Every newsletter the command acts on when it names no issue.
    pub fn each(&self) -> Vec<&'a Config> {
        match self.chosen {
            Some(c) => vec![c],
            None => self.repository.all().collect(),
        }
    }

    /// The one newsletter a command about a single ledger acts on; with
    /// several and no `--newsletter`, the operator must say which.
    pub fn one(&self) -> Result<&'a Config, CliError> {
        match self.chosen {
            Some(c) => Ok(c),
            None if !self.repository.has_several() => Ok(self.repository),
            None => Err(CliError::input(format!(
                "this repository has several newsletters; which one? expected --newsletter {}",
                self.repository.ids().join("|")
            ))),
        }
    }
}

/// The async runtime for commands that do network work.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
