//! `briefing ledger migrate`: moving a SQLite ledger into PostgreSQL.

use std::path::PathBuf;

use clap::Subcommand;

use briefing::config::Config;
use briefing::deliver::ledger::{self, PgTarget};

use super::{CliError, CliResult, exit};

/// `briefing ledger …`.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Copy a SQLite ledger into an empty PostgreSQL one, checked by counts.
    Migrate {
        /// The SQLite ledger (e.g. state/briefing.sqlite).
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL ledger (postgres://user@host/db, no password: it
        /// comes from send.ledger_password_env/_file or PGPASSWORD).
        #[arg(long)]
        to: String,
        /// Schema for the tables (default: send.ledger_schema, else public).
        #[arg(long)]
        schema: Option<String>,
    },
}

/// Runs `briefing ledger …`.
pub fn run(command: LedgerCommand, config: &Config) -> CliResult {
    let LedgerCommand::Migrate { from, to, schema } = command;
    if !ledger::is_postgres_url(&to) {
        return Err(CliError::input(format!(
            "--to {}: expected a postgres:// URL",
            quote(&to)
        )));
    }
    // The password settings of the config apply, as for `send`.
    let mut with_url = config.clone();
    with_url.send.ledger = PathBuf::from(&to);
    if schema.is_some() {
        with_url.send.ledger_schema = schema;
    }
    let target: PgTarget = match ledger::Location::from_config(&with_url)? {
        ledger::Location::Postgres(t) => *t,
        ledger::Location::Sqlite(_) => {
            return Err(CliError::input("--to: expected a postgres:// URL"));
        }
    };
    let m = ledger::migrate(&from, &target)?;
    let (s, d, p) = m.target;
    println!(
        "migrated {} to {}: {s} send(s), {d} delivery row(s), {p} suppression(s); counts match",
        from.display(),
        target.redacted
    );
    Ok(exit::OK)
}

/// A URL for a message: never with a password, even a mistyped one.
fn quote(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
