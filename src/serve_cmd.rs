//! `briefing serve` and `briefing suppress …`.

use std::path::{Path, PathBuf};

use briefing::clock::Clock;
use briefing::config::Config;
use briefing::ledger::Ledger;
use briefing::recipients;
use briefing::serve::{self, RequestLog, Service, Settings};
use briefing::suppress::{self as sup, MailtoRequest};
use briefing::token::Keyring;

use crate::{SharedClock, exit};

/// Arguments of `briefing serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default: serve.listen in the config).
    #[arg(long)]
    pub listen: Option<String>,
}

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

/// Runs `briefing serve`.
pub fn serve(args: ServeArgs, config: &Config, clock: SharedClock) -> u8 {
    // A development secret would accept tokens anyone can compute.
    let keyring = match Keyring::from_config(config, false) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}; `briefing serve` needs the same secret the sends used");
            return exit::BAD_INPUT;
        }
    };
    let ledger_path = config.resolve(&config.send.ledger);
    let existed = ledger_path.exists();
    // A 200 tells the reader they are off the list: that must survive a
    // power cut, not only a crash, so this connection syncs every commit.
    let ledger = match Ledger::open(&ledger_path).and_then(|l| l.sync_every_commit().map(|()| l)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    if !existed {
        elog(
            clock.as_ref(),
            "WARN",
            &format!(
                "the ledger {} did not exist: no link works until a send records tokens there",
                ledger_path.display()
            ),
        );
    }
    let listen = args.listen.unwrap_or_else(|| config.serve.listen.clone());
    let previous = keyring.previous.len();
    let log_clock = clock.clone();
    let service = Service::new(
        ledger,
        keyring,
        Settings::from_config(config),
        clock.clone(),
        move |r: &RequestLog| {
            elog(log_clock.as_ref(), r.level(), &r.to_string());
        },
    );
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {listen}: {e}");
                return exit::BAD_INPUT;
            }
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: cannot listen on {listen}: {e}");
                return exit::BAD_INPUT;
            }
        };
        // The first stdout line, so whoever started us (tests, scripts with
        // --listen 127.0.0.1:0) learns the port without polling.
        println!("listening on http://{addr}");
        elog(
            clock.as_ref(),
            "INFO",
            &format!(
                "serving unsubscribes for list {} from {} ({previous} previous secret(s) accepted)",
                config.sender.list_id,
                ledger_path.display()
            ),
        );
        match axum::serve(listener, serve::router(service))
            .with_graceful_shutdown(shutdown())
            .await
        {
            Ok(()) => {
                elog(clock.as_ref(), "INFO", "stopped");
                exit::OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                exit::SOME_FAILED
            }
        }
    })
}

/// A log line on stderr: RFC 3339 time, level, message.
fn elog(clock: &dyn Clock, level: &str, msg: &str) {
    eprintln!(
        "{} {level} {msg}",
        clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    );
}

/// Ctrl-C, or SIGTERM from systemd: finish requests in flight, then exit.
async fn shutdown() {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Runs `briefing suppress …`.
pub fn suppress(cmd: SuppressCommand, config: &Config, clock: &dyn Clock) -> u8 {
    match cmd {
        SuppressCommand::Add { email, reason } => add(&email, &reason, config, clock),
        SuppressCommand::Remove { email } => remove(&email, config),
        SuppressCommand::List { json } => list(json, config),
        SuppressCommand::Import { file } => import(&file, config, clock),
        SuppressCommand::ImportMbox { path } => import_mbox(&path, config, clock),
    }
}

fn open_ledger(config: &Config) -> Result<Ledger, u8> {
    Ledger::open(&config.resolve(&config.send.ledger)).map_err(|e| {
        eprintln!("error: {e}");
        exit::BAD_INPUT
    })
}

fn add(email: &str, reason: &str, config: &Config, clock: &dyn Clock) -> u8 {
    let email = email.trim();
    let reason = match sup::check_reason(reason) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: --reason: {e}");
            return exit::BAD_INPUT;
        }
    };
    if let Err(e) = recipients::check_address(email) {
        eprintln!("error: {e}");
        return exit::BAD_INPUT;
    }
    let ledger = match open_ledger(config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let result = ledger
        .suppress(email, reason, "cli", clock.now())
        .and_then(|added| Ok((added, ledger.suppression(email)?)));
    match result {
        Ok((true, _)) => {
            println!("suppressed {email} ({reason})");
            exit::OK
        }
        Ok((false, existing)) => {
            if let Some(s) = existing {
                println!(
                    "{email} is already suppressed ({}, from {}, since {}); unchanged",
                    s.reason, s.source, s.created_at
                );
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::BAD_INPUT
        }
    }
}

fn remove(email: &str, config: &Config) -> u8 {
    let email = email.trim();
    if let Err(e) = recipients::check_address(email) {
        eprintln!("error: {e}");
        return exit::BAD_INPUT;
    }
    let ledger = match open_ledger(config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let result = ledger
        .suppression(email)
        .and_then(|s| Ok((s, ledger.unsuppress(email)?)));
    match result {
        Ok((Some(s), true)) => {
            println!(
                "removed {email} from the suppression list (was {}, from {})",
                s.reason, s.source
            );
            // The next send loads `send.suppressed` into the ledger again.
            let file = config.resolve(&config.send.suppressed);
            if let Ok(Some(_)) = recipients::find(std::slice::from_ref(&file), email) {
                eprintln!(
                    "warning: {email} is still listed in {}; the next send will suppress it again unless you remove it there",
                    file.display()
                );
            }
            exit::OK
        }
        Ok(_) => {
            eprintln!("note: {email} is not on the suppression list");
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::BAD_INPUT
        }
    }
}

fn list(json: bool, config: &Config) -> u8 {
    let ledger = match open_ledger(config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let all = match ledger.suppressions() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
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
        match serde_json::to_string_pretty(&rows) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        }
        return exit::OK;
    }
    if all.is_empty() {
        eprintln!("the suppression list is empty");
        return exit::OK;
    }
    let width = |f: fn(&briefing::ledger::Suppression) -> &str, title: &str| {
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
    exit::OK
}

fn import(file: &Path, config: &Config, clock: &dyn Clock) -> u8 {
    let parsed = match sup::read_csv(file, "import", clock.now()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let mut ledger = match open_ledger(config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let added = match ledger.suppress_all(&parsed.rows) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
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
        exit::OK
    } else {
        eprintln!(
            "error: {} malformed row(s) were not applied; see the lines above",
            parsed.bad.len()
        );
        exit::SOME_FAILED
    }
}

fn import_mbox(path: &Path, config: &Config, clock: &dyn Clock) -> u8 {
    let keyring = match Keyring::from_config(config, false) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let mailbox = match sup::read_mailbox(path) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let ledger = match open_ledger(config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let report = match sup::apply_mailto(
        &ledger,
        &keyring,
        &config.sender.list_id,
        &mailbox.requests,
        clock.now(),
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
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
    exit::OK
}

fn describe(r: &MailtoRequest) -> String {
    match &r.message_id {
        Some(id) => format!("message {} <{id}>", r.index),
        None => format!("message {}", r.index),
    }
}
