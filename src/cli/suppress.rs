//! `briefing suppress …`: the suppression list by hand, and imports of
//! provider exports and mailto requests.

use std::path::{Path, PathBuf};

use briefing::audience::lists;
use briefing::audience::recipient::check_address;
use briefing::audience::suppression::{self as sup, MailtoRequest};
use briefing::audience::token::Keyring;
use briefing::clock::Clock;
use briefing::config::Config;
use briefing::deliver::ledger::{Ledger, Suppression};
use briefing::unsubscribe;

use super::{CliError, CliResult, Context, exit};

/// `briefing suppress` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SuppressCommand {
    /// Add an address to the suppression list.
    Add {
        /// The address.
        email: String,
        /// unsubscribed, hard-bounce, complaint or manual.
        #[arg(long, default_value = "manual")]
        reason: String,
    },
    /// Remove an address from the suppression list.
    Remove {
        /// The address.
        email: String,
    },
    /// List the suppression list.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Import a CSV export of bounces or complaints (email, reason, timestamp).
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// Apply mailto unsubscribe requests found in an mbox file or Maildir.
    ImportMbox {
        /// The mbox file or Maildir folder.
        path: PathBuf,
    },
}

/// Runs `briefing suppress …`.
pub fn run(cmd: SuppressCommand, config: &Config, clock: &dyn Clock) -> CliResult {
    match cmd {
        SuppressCommand::Add { email, reason } => add(&email, &reason, config, clock),
        SuppressCommand::Remove { email } => remove(&email, config),
        SuppressCommand::List { json } => list(json, config),
        SuppressCommand::Import { file } => import(&file, config, clock),
        SuppressCommand::ImportMbox { path } => import_mbox(&path, config, clock),
    }
}

fn open_ledger(config: &Config) -> Result<Ledger, CliError> {
    Ok(Ledger::open_config(config)?)
}

fn add(email: &str, reason: &str, config: &Config, clock: &dyn Clock) -> CliResult {
    let email = email.trim();
    let reason = sup::check_reason(reason).context("--reason")?;
    check_address(email)?;
    let ledger = open_ledger(config)?;
    if ledger.suppress(email, reason, "cli", clock.now())? {
        println!("suppressed {email} ({reason})");
    } else if let Some(s) = ledger.suppression(email)? {
        println!(
            "{email} is already suppressed ({}, from {}, since {}); unchanged",
            s.reason, s.source, s.created_at
        );
    }
    Ok(exit::OK)
}

fn remove(email: &str, config: &Config) -> CliResult {
    let email = email.trim();
    check_address(email)?;
    let ledger = open_ledger(config)?;
    let before = ledger.suppression(email)?;
    match (before, ledger.unsuppress(email)?) {
        (Some(s), true) => {
            println!(
                "removed {email} from the suppression list (was {}, from {})",
                s.reason, s.source
            );
            // The next send loads `send.suppressed` into the ledger again.
            let file = config.resolve(&config.send.suppressed);
            if let Ok(Some(_)) = lists::find(std::slice::from_ref(&file), email) {
                eprintln!(
                    "warning: {email} is still listed in {}; the next send will suppress it again unless you remove it there",
                    file.display()
                );
            }
        }
        _ => eprintln!("note: {email} is not on the suppression list"),
    }
    Ok(exit::OK)
}

fn list(json: bool, config: &Config) -> CliResult {
    let all = open_ledger(config)?.suppressions()?;
    if json {
        let rows: Vec<serde_json::Value> = all
            .iter()
            .map(|s| {
                serde_json::json!({
                    "email": s.email,
                    "reason": s.reason,
                    "source": s.source,
                    "created_at": s.created_at,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(exit::OK);
    }
    if all.is_empty() {
        eprintln!("the suppression list is empty");
        return Ok(exit::OK);
    }
    let width = |f: fn(&Suppression) -> &str, title: &str| {
        all.iter()
            .map(|s| f(s).chars().count())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let (we, wr, ws) = (
        width(|s| &s.email, "EMAIL"),
        width(|s| &s.reason, "REASON"),
        width(|s| &s.source, "SOURCE"),
    );
    println!("{:we$}  {:wr$}  {:ws$}  SINCE", "EMAIL", "REASON", "SOURCE");
    for s in &all {
        println!(
            "{:we$}  {:wr$}  {:ws$}  {}",
            s.email, s.reason, s.source, s.created_at
        );
    }
    Ok(exit::OK)
}

fn import(file: &Path, config: &Config, clock: &dyn Clock) -> CliResult {
    let parsed = sup::read_csv(file, "import", clock.now())?;
    let added = open_ledger(config)?.suppress_all(&parsed.rows)?;
    for b in &parsed.bad {
        eprintln!("{}:{}: {}", file.display(), b.line, b.message);
    }
    let applied = parsed.rows.len() as u64;
    println!(
        "{}: {applied} row(s) applied ({added} new, {} already suppressed), {} soft bounce(s) skipped, {} malformed",
        file.display(),
        applied - added,
        parsed.soft.len(),
        parsed.bad.len()
    );
    if parsed.bad.is_empty() {
        return Ok(exit::OK);
    }
    Err(CliError::Message {
        code: exit::SOME_FAILED,
        text: format!(
            "{} malformed row(s) were not applied; see the lines above",
            parsed.bad.len()
        ),
    })
}

fn import_mbox(path: &Path, config: &Config, clock: &dyn Clock) -> CliResult {
    let keyring = Keyring::from_config(config, false)?;
    let mailbox = sup::read_mailbox(path)?;
    let ledger = open_ledger(config)?;
    let report = unsubscribe::apply_mailto(
        &ledger,
        &keyring,
        &config.sender.list_id,
        &mailbox.requests,
        clock.now(),
    )?;
    for r in &report.invalid {
        eprintln!(
            "{}: {}: no valid unsubscribe token; not applied",
            path.display(),
            describe(r)
        );
    }
    println!(
        "{}: {} message(s), {} unsubscribe request(s): {} unsubscribed, {} already suppressed, {} invalid token(s)",
        path.display(),
        mailbox.messages,
        mailbox.requests.len(),
        report.unsubscribed,
        report.already,
        report.invalid.len()
    );
    Ok(exit::OK)
}

fn describe(r: &MailtoRequest) -> String {
    match &r.message_id {
        Some(id) => format!("message {} <{id}>", r.index),
        None => format!("message {}", r.index),
    }
}
