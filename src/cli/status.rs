//! `briefing status`: how a send went, or where every issue in a folder
//! stands (text, or JSON in the shape the README documents).

use std::path::{Path, PathBuf};

use briefing::clock::Clock;
use briefing::compose::manifest;
use briefing::config::Config;
use briefing::deliver::ledger::Ledger;
use briefing::deliver::lock;
use briefing::deliver::schedule::{self, IssueStatus};

use super::{CliError, CliResult, Context, Newsletters, exit};

/// Arguments of `briefing status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// An issue manifest, or a folder of issues (default issues/).
    target: Option<PathBuf>,
    /// Machine-readable output (documented in the README).
    #[arg(long)]
    json: bool,
}

/// Runs `briefing status`: the named issue or folder, else every
/// newsletter's issues folder.
pub fn run(args: &StatusArgs, newsletters: &Newsletters<'_>, clock: &dyn Clock) -> CliResult {
    if let Some(target) = &args.target {
        let config = newsletters.for_issue(target);
        let single = !target.is_dir();
        let (all, code) = statuses(target, single, config, clock)?;
        print(&all, single, args.json)?;
        return Ok(code);
    }
    let mut code = exit::OK;
    let mut listed = Vec::new();
    for config in newsletters.each() {
        let (all, c) = statuses(&config.issues_dir(), false, config, clock)?;
        code = code.max(c);
        listed.push((config, all));
    }
    match listed.as_slice() {
        [(_, all)] => print(all, false, args.json)?,
        _ if args.json => print_newsletters_json(&listed)?,
        _ => {
            for (config, all) in &listed {
                println!("newsletter {} ({}):", config.id(), config.newsletter.name);
                print(all, false, false)?;
            }
        }
    }
    Ok(code)
}

/// Where each issue under `target` (or the one manifest) stands.
fn statuses(
    target: &Path,
    single: bool,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(Vec<IssueStatus>, u8), CliError> {
    let manifests = if single {
        vec![target.to_path_buf()]
    } else if !target.exists() && config.id() != briefing::config::MAIN_ID {
        // A newsletter without issues yet is no error.
        Vec::new()
    } else {
        manifest::find_all(target)
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
    Ok((all, code))
}

fn print(all: &[IssueStatus], single: bool, json: bool) -> Result<(), CliError> {
    if json {
        print_json(all, single)?;
    } else {
        for s in all {
            print_text(s, single);
        }
    }
    Ok(())
}

/// With several newsletters: `{"newsletters": [{"id", "name", "issues"}]}`.
fn print_newsletters_json(listed: &[(&Config, Vec<IssueStatus>)]) -> Result<(), CliError> {
    #[derive(serde::Serialize)]
    struct One<'a> {
        id: &'a str,
        name: &'a str,
        list_id: &'a str,
        issues: &'a [IssueStatus],
    }
    #[derive(serde::Serialize)]
    struct All<'a> {
        newsletters: Vec<One<'a>>,
    }
    let all = All {
        newsletters: listed
            .iter()
            .map(|(c, issues)| One {
                id: c.id(),
                name: &c.newsletter.name,
                list_id: &c.sender.list_id,
                issues,
            })
            .collect(),
    };
    println!("{}", serde_json::to_string_pretty(&all)?);
    Ok(())
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
