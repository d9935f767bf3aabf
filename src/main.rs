//! The `briefing` command line: the one place that prints, reads the
//! terminal and chooses exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use briefing::clock::{self, Clock};
use briefing::config::Config;
use briefing::diagnostic::Diagnostics;
use briefing::manifest::{self, LoadedIssue};
use briefing::personalize::Recipient;
use briefing::{lint, preview, recipients, render, token};

mod archive_cmd;
mod send_cmd;
mod serve_cmd;

// glibc returns the ~100 KB message buffers to the kernel after each
// recipient and faults them back in for the next; mimalloc keeps them, which
// doubles the per-recipient build rate (see benches/compose.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes, documented in the README.
pub mod exit {
    /// Clean: nothing to report, or everything delivered.
    pub const OK: u8 = 0;
    /// Warnings only (check), or some recipients failed (send).
    pub const SOME_FAILED: u8 = 1;
    /// Bad input or config: nothing was sent.
    pub const BAD_INPUT: u8 = 2;
    /// Another run holds the issue, or it was already sent.
    pub const BUSY: u8 = 3;
    /// Interrupted by Ctrl-C after finishing in-flight messages.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, Parser)]
#[command(
    name = "briefing",
    version,
    about = "Compose, check and send an email newsletter"
)]
struct Cli {
    /// Configuration file (default ./config.toml, else the built-in one).
    #[arg(long, global = true, env = "BRIEFING_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check an issue: every problem with file, line and column.
    Check {
        /// The issue manifest, e.g. issues/2025-01-17/issue.toml.
        issue: PathBuf,
        /// Treat warnings as errors (exit 2).
        #[arg(long)]
        strict: bool,
    },
    /// Write the HTML, text and .eml of an issue to disk.
    Preview {
        /// The issue manifest.
        issue: PathBuf,
        /// Folder for the preview files.
        #[arg(long, default_value = "previews")]
        out: PathBuf,
        /// Preview as this recipient (from the configured lists).
        #[arg(long)]
        recipient: Option<String>,
        /// Serve a live preview that reloads when a file changes.
        #[arg(long)]
        watch: bool,
        /// Address for --watch.
        #[arg(long, default_value = "127.0.0.1:4000")]
        listen: String,
    },
    /// Send an issue to every subscriber (or test copies with --to).
    Send(send_cmd::SendArgs),
    /// Show how a send went, or the state of every issue in a folder.
    Status(send_cmd::StatusArgs),
    /// Serve one-click unsubscribe (RFC 8058) behind a reverse proxy.
    Serve(serve_cmd::ServeArgs),
    /// Manage the suppression list.
    Suppress {
        #[command(subcommand)]
        command: serve_cmd::SuppressCommand,
    },
    /// Build the static web archive of published issues.
    Archive(archive_cmd::ArchiveArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let clock = match clock::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(d) => return report_invalid(&d),
    };
    let code = match cli.command {
        Command::Check { issue, strict } => check(&issue, strict, &config, clock.as_ref()),
        Command::Preview {
            issue,
            watch: true,
            listen,
            ..
        } => archive_cmd::watch(&issue, &listen, cli.config.as_deref(), clock.as_ref()),
        Command::Preview {
            issue,
            out,
            recipient,
            ..
        } => preview_cmd(&issue, &out, recipient.as_deref(), &config, clock.as_ref()),
        Command::Send(args) => send_cmd::send(args, &config, clock),
        Command::Status(args) => send_cmd::status(args, &config, clock.as_ref()),
        Command::Serve(args) => serve_cmd::serve(args, &config, clock),
        Command::Suppress { command } => serve_cmd::suppress(command, &config, clock.as_ref()),
        Command::Archive(args) => archive_cmd::archive(args, &config, clock.as_ref()),
    };
    ExitCode::from(code)
}

/// Prints diagnostics that stop the command and returns exit code 2.
pub fn report_invalid(d: &Diagnostics) -> ExitCode {
    eprint!("{}", d.render());
    ExitCode::from(exit::BAD_INPUT)
}

/// Loads an issue, printing its problems; `None` means exit 2.
pub fn load_issue(path: &Path, config: &Config) -> Option<LoadedIssue> {
    match manifest::load(path, config) {
        Ok(l) => Some(l),
        Err(d) => {
            eprint!("{}", d.render());
            None
        }
    }
}

/// Column names across recipient lists, if they can all be read.
pub fn recipient_columns(lists: &[PathBuf]) -> Option<Vec<String>> {
    let mut cols = vec!["email".to_string(), "name".to_string()];
    for list in lists {
        let headers = recipients::headers(list).ok()?;
        for h in headers {
            if !cols.contains(&h) {
                cols.push(h);
            }
        }
    }
    Some(cols)
}

/// The configured recipient lists, resolved against the config's folder.
pub fn configured_lists(config: &Config) -> Vec<PathBuf> {
    config
        .send
        .lists
        .iter()
        .map(|l| config.resolve(l))
        .collect()
}

fn check(path: &Path, strict: bool, config: &Config, clock: &dyn Clock) -> u8 {
    let Some(loaded) = load_issue(path, config) else {
        return exit::BAD_INPUT;
    };
    let rendered = render::render(&loaded.issue);
    let mut all = loaded.warnings.clone();
    all.extend(lint::lint(&lint::LintInput {
        loaded: &loaded,
        rendered: &rendered,
        config,
        now: clock.now(),
        recipient_fields: recipient_columns(&configured_lists(config)),
    }));
    if all.is_empty() {
        println!(
            "{}: issue {} “{}” is ready: {} sections, no problems",
            path.display(),
            loaded.issue.number,
            loaded.issue.subject,
            loaded.issue.sections.len()
        );
        return exit::OK;
    }
    eprint!("{}", all.render());
    if all.has_errors() || strict {
        exit::BAD_INPUT
    } else {
        exit::SOME_FAILED
    }
}

fn preview_cmd(
    path: &Path,
    out: &Path,
    recipient: Option<&str>,
    config: &Config,
    clock: &dyn Clock,
) -> u8 {
    let Some(loaded) = load_issue(path, config) else {
        return exit::BAD_INPUT;
    };
    if !loaded.warnings.is_empty() {
        eprint!("{}", loaded.warnings.render());
    }
    let lists: Vec<PathBuf> = config
        .send
        .lists
        .iter()
        .map(|l| config.resolve(l))
        .collect();
    let who = match recipient {
        Some(email) => match recipients::find(&lists, email) {
            Ok(Some(r)) => r,
            Ok(None) => {
                if let Err(e) = recipients::check_address(email) {
                    eprintln!("error: --recipient: {e}");
                    return exit::BAD_INPUT;
                }
                eprintln!(
                    "note: {email} is in no configured list; previewing without their other fields"
                );
                Recipient::new(email, "")
            }
            Err(e) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        },
        None => recipients::first(&lists)
            .ok()
            .flatten()
            .unwrap_or_else(|| Recipient::new("reader@example.org", "")),
    };
    let secret = match token::Secret::from_config(config, true) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let rendered = render::render(&loaded.issue);
    let built = match preview::build(&loaded.issue, &rendered, config, &who, &secret, clock.now()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    match preview::write(&built, out) {
        Ok(w) => {
            println!("{}", w.html.display());
            println!("{}", w.text.display());
            println!("{}", w.eml.display());
            exit::OK
        }
        Err(e) => {
            eprintln!("error: cannot write previews to {}: {e}", out.display());
            exit::BAD_INPUT
        }
    }
}

/// Shared by subcommands that need the clock behind an `Arc`.
pub type SharedClock = Arc<dyn Clock>;

/// The async runtime for commands that do network work; on failure the
/// error is printed and the exit code returned.
pub fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            exit::BAD_INPUT
        })
}

/// The ledger if it exists: reading commands must not create one (no
/// ledger means nothing was ever sent).
pub fn existing_ledger(config: &Config) -> Result<Option<briefing::ledger::Ledger>, u8> {
    let path = config.resolve(&config.send.ledger);
    if !path.exists() {
        return Ok(None);
    }
    briefing::ledger::Ledger::open(&path)
        .map(Some)
        .map_err(|e| {
            eprintln!("error: {e}");
            exit::BAD_INPUT
        })
}
