//! `briefing status`: how a send went, or where every issue in a folder
//! stands (text, or JSON in the shape the README documents).

use std::path::PathBuf;

use briefing::clock::Clock;
use briefing::compose::manifest;
use briefing::config::Config;
use briefing::deliver::ledger::Ledger;
use briefing::deliver::lock;
use briefing::deliver::schedule::{self, IssueStatus};

use super::{CliError, CliResult, Context, exit};

/// Arguments of `briefing status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// An issue manifest, or a folder of issues (default issues/).
    target: Option<PathBuf>,
    /// Machine-readable output (documented in the README).
    #[arg(long)]
    json: bool,
}

/// Runs `briefing status`.
pub fn run(args: &StatusArgs, config: &Config, clock: &dyn Clock) -> CliResult {
    let target = args
        .target
        .clone()
        .unwrap_or_else(|| PathBuf::from("issues"));
    let single = !target.is_dir();
    let manifests = if single {
        vec![target.clone()]
    } else {
        manifest::find_all(&target)
            .context(format_args!("cannot list issues in {}", target.display()))?
    };
    let ledger = Ledger::open_existing_config(config)?;
    let lock_dir = lock::lock_dir(config);
    let mut all: Vec<IssueStatus> = Vec::new();
    let mut code = exit::OK;
    for m in &manifests {
        let loaded = match manifest::load(m, config) {
            Ok(l) => l,
            Err(d) => {
                CliError::Diagnostics(d).print();
                code = exit::BAD_INPUT;
                continue;
            }
        };
        all.push(schedule::status(
            &loaded.issue,
            m,
            ledger.as_ref(),
            &lock_dir,
            config,
            clock.now(),
        )?);
    }
    if args.json {
        print_json(&all, single)?;
    } else {
        for s in &all {
            print_text(s, single);
        }
    }
    Ok(code)
}

fn print_json(all: &[IssueStatus], single: bool) -> Result<(), CliError> {
    #[derive(serde::Serialize)]
    struct Listing<'a> {
        issues: &'a [IssueStatus],
    }
    let out = match all {
        [one] if single => serde_json::to_string_pretty(one)?,
        _ => serde_json::to_string_pretty(&Listing { issues: all })?,
    };
    println!("{out}");
    Ok(())
}

fn print_text(s: &IssueStatus, single: bool) {
    let c = &s.counts;
    let when = match (&s.send_at, &s.send_at_utc) {
        (Some(l), Some(u)) => format!(" send_at {l} ({u})"),
        _ => String::new(),
    };
    println!(
        "{:<12} {:<10} “{}”{when}",
        s.issue,
        s.state.as_str(),
        s.subject
    );
    if c.total > 0 {
        println!(
            "  sent {}, failed {}, uncertain {}, deferred {}, suppressed {}, pending {} of {}; invalid rows {}, duplicates {}",
            c.sent,
            c.failed,
            c.uncertain,
            c.deferred,
            c.suppressed,
            c.pending + c.sending,
            c.total,
            s.invalid_rows,
            s.duplicates
        );
        if let Some(reason) = &s.stop_reason {
            println!("  stopped: {reason}");
        }
        if let Some(next) = &s.next_attempt_at {
            println!("  next attempt of a deferred recipient at {next}");
        }
        if let Some(start) = &s.started_at {
            println!(
                "  started {start}{}{}",
                s.finished_at
                    .as_ref()
                    .map(|f| format!(", finished {f}"))
                    .unwrap_or_default(),
                s.rate_per_second
                    .map(|r| format!(", {r:.0} messages/s"))
                    .unwrap_or_default()
            );
        }
    }
    if single {
        for f in &s.failures {
            println!(
                "  {} {} after {} tries: {}",
                f.state, f.email, f.attempts, f.last_reply
            );
        }
        for d in &s.deferrals {
            println!(
                "  deferred {} after {} tries, next attempt at {}: {}",
                d.email, d.attempts, d.next_attempt_at, d.last_reply
            );
        }
    }
}
