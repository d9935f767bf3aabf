//! `briefing send`: one issue, or every due issue with `--due`; the
//! terminal and cron faces of [`briefing::deliver`].

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use briefing::audience::lists;
use briefing::clock::Clock;
use briefing::config::Config;
use briefing::deliver::engine::{self, Progress, SendError, Summary};
use briefing::deliver::ledger::SendKind;
use briefing::deliver::plan::{self, PlanError, SendOptions, SendPlan};
use briefing::deliver::schedule::{self, DueNote};

use super::output::{Reporter, elog, log};
use super::{CliError, CliResult, Newsletters, SharedClock, exit};

/// Arguments of `briefing send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The issue manifest (or, with --due, a folder of issues; default issues/).
    issue: Option<PathBuf>,
    /// Recipient lists (CSV); default: the configured lists.
    #[arg(long = "list")]
    lists: Vec<PathBuf>,
    /// Send a [TEST] copy to these addresses only.
    #[arg(long = "to")]
    to: Vec<String>,
    /// Transport URL for this run (outbox:DIR, smtp://, smtps://, sendmail:).
    #[arg(long, env = "BRIEFING_TRANSPORT")]
    transport: Option<String>,
    /// Render, sign and count, but send nothing and record nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// Send to at most N new recipients in this run.
    #[arg(long)]
    limit: Option<u64>,
    /// Also send to recipients whose earlier send is uncertain.
    #[arg(long)]
    resend_uncertain: bool,
    /// Put recipients whose failure was not a permanent (5xx) refusal back
    /// in the queue (connection errors, timeouts, 4xx give-ups).
    #[arg(long)]
    retry_failed: bool,
    /// Send every issue under the folder whose send_at has passed.
    #[arg(long)]
    due: bool,
    /// Say what --due decided even when nothing is due.
    #[arg(long)]
    verbose: bool,
}

impl SendArgs {
    fn options(&self) -> SendOptions {
        SendOptions {
            lists: self.lists.clone(),
            to: self.to.clone(),
            transport: self.transport.clone(),
            dry_run: self.dry_run,
            limit: self.limit,
            resend_uncertain: self.resend_uncertain,
            retry_failed: self.retry_failed,
        }
    }
}

/// Runs `briefing send`.
pub fn run(args: &SendArgs, newsletters: &Newsletters<'_>, clock: SharedClock) -> CliResult {
    if args.due {
        return send_due(args, newsletters, clock);
    }
    let Some(path) = &args.issue else {
        return Err(CliError::input(
            "which issue? expected `briefing send issues/<date>/issue.toml` or `briefing send --due`",
        ));
    };
    let mode = if args.yes { Mode::Yes } else { Mode::Ask };
    send_one(
        path,
        &args.options(),
        mode,
        newsletters.for_issue(path),
        clock,
    )
}

/// Who started the send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// An operator: the real send is put to them first.
    Ask,
    /// An operator who said --yes.
    Yes,
    /// `send --due`: an issue another run holds or finished is no error.
    Due,
}

/// Sends one issue.
fn send_one(
    path: &Path,
    opts: &SendOptions,
    mode: Mode,
    config: &Config,
    clock: SharedClock,
) -> CliResult {
    let plan = match plan::plan(path, opts, config, Arc::clone(&clock)) {
        Ok(p) => p,
        Err(PlanError::Busy { slug, source }) if mode == Mode::Due => {
            log(clock.as_ref(), &format!("{slug}: {source}"));
            return Ok(exit::OK);
        }
        Err(e) => return Err(plan_error(e)),
    };
    for note in &plan.notes {
        elog(clock.as_ref(), note);
    }
    let issue = &plan.checked.loaded.issue;
    if plan.job.kind == SendKind::Real && mode == Mode::Ask && !opts.dry_run && !confirm(&plan) {
        return Err(CliError::Reported(exit::BAD_INPUT));
    }
    let what = match plan.job.kind {
        SendKind::Real => "send",
        SendKind::Test => "test send",
    };
    log(
        clock.as_ref(),
        &format!(
            "{} {what} of “{}” via {}{}",
            issue.slug,
            issue.subject,
            plan.job.transport.describe(),
            if opts.dry_run {
                " (dry run: nothing is sent or recorded)"
            } else {
                ""
            }
        ),
    );
    match run_plan(plan, config, &clock) {
        Ok(summary) => report_summary(path, &summary, clock.as_ref(), opts.dry_run),
        Err(SendError::AlreadySent { .. }) if mode == Mode::Due => Ok(exit::OK),
        Err(e @ SendError::AlreadySent { .. }) => Err(CliError::busy(e)),
        Err(e) => Err(CliError::input(e)),
    }
}

/// Runs the engine with Ctrl-C wired to its stop flag.
fn run_plan(
    plan: SendPlan,
    config: &Config,
    clock: &SharedClock,
) -> Result<(String, Summary), SendError> {
    let slug = plan.checked.loaded.issue.slug.clone();
    let reporter = Arc::new(Reporter::new(Arc::clone(clock)));
    let progress: Arc<dyn Progress> = Arc::clone(&reporter) as Arc<dyn Progress>;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(SendError::Runtime)?;
    let stop = plan.stop_flag();
    // The lock lives until the run is over.
    let SendPlan { job, lock, .. } = plan;
    let result = runtime.block_on(async {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
                eprintln!("interrupted: finishing messages in flight, taking no new ones (Ctrl-C again to kill)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(i32::from(exit::INTERRUPTED));
                }
            }
        });
        engine::run(job, config, progress).await
    });
    reporter.finish();
    drop(lock);
    result.map(|summary| (slug, summary))
}

/// Plan errors as the operator sees them: the check's problems in full,
/// a busy lock as exit 3.
fn plan_error(e: PlanError) -> CliError {
    match e {
        PlanError::Invalid(d) | PlanError::Config(d) => CliError::Diagnostics(d),
        PlanError::Check { ref problems, .. } => {
            eprint!("{}", problems.render());
            CliError::input(e)
        }
        PlanError::Busy { .. } => CliError::busy(e),
        e => CliError::input(e),
    }
}

fn report_summary(
    manifest: &Path,
    (slug, s): &(String, Summary),
    clock: &dyn Clock,
    dry_run: bool,
) -> CliResult {
    let c = &s.counts;
    log(
        clock,
        &format!(
            "{slug} summary: sent {} (this run {}), failed {}, uncertain {}, deferred {}, suppressed {}, pending {}, skipped invalid {}, duplicates {}, {:.1} s, {:.0} messages/s{}",
            c.sent,
            s.sent_now,
            c.failed,
            c.uncertain,
            c.deferred,
            c.suppressed,
            c.pending,
            s.invalid,
            s.duplicates,
            s.duration.as_secs_f64(),
            s.rate(),
            if dry_run { " (dry run)" } else { "" }
        ),
    );
    if s.variants > 1 {
        log(
            clock,
            &format!(
                "{slug} variants: {} versions of the issue went out (one per edition and set of reader-specific blocks)",
                s.variants
            ),
        );
    }
    report_leftovers(manifest, s, clock);
    if let Some(o) = &s.outage {
        elog(
            clock,
            &format!(
                "error: {}; everything not sent stays pending: rerun the same command, or let the next `send --due` tick resume it",
                s.stop_reason.as_deref().unwrap_or(o)
            ),
        );
        return Ok(exit::BAD_INPUT);
    }
    if let Some(f) = &s.fatal {
        elog(
            clock,
            &format!(
                "error: the transport failed: {f}; the rest stays pending, rerun the same command to resume"
            ),
        );
        return Ok(exit::BAD_INPUT);
    }
    if s.interrupted {
        elog(clock, "interrupted; rerun the same command to resume");
        return Ok(exit::INTERRUPTED);
    }
    // Uncertain or deferred recipients are not known to be delivered: not
    // a clean run.
    if c.failed > 0 || c.uncertain > 0 || c.deferred > 0 {
        return Ok(exit::SOME_FAILED);
    }
    Ok(exit::OK)
}

/// Explains uncertain and deferred recipients, with what to do about them.
fn report_leftovers(manifest: &Path, s: &Summary, clock: &dyn Clock) {
    let c = &s.counts;
    if c.uncertain > 0 {
        elog(
            clock,
            &format!(
                "{} recipient(s) are uncertain: their end of data was written but no answer came (a run stopped, or the connection was lost). \
                 `briefing status {}` lists them; `briefing send {} --resend-uncertain` sends them again",
                c.uncertain,
                manifest.display(),
                manifest.display()
            ),
        );
    }
    if c.deferred > 0 {
        elog(
            clock,
            &format!(
                "{} recipient(s) deferred after temporary failures (4xx replies, connections lost before the end of data). The next attempt is at {}: a later `briefing send {}` or `send --due` tick retries them until send.give_up_after_hours",
                c.deferred,
                s.next_attempt.as_deref().unwrap_or("?"),
                manifest.display()
            ),
        );
    }
}

/// Asks on the terminal; refuses when there is none (cron must say --yes).
fn confirm(plan: &SendPlan) -> bool {
    let issue = &plan.checked.loaded.issue;
    let count = lists::count(&plan.job.lists);
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "error: not on a terminal, so nobody can confirm sending “{}” to {count} recipients; add --yes (as cron jobs do)",
            issue.subject
        );
        return false;
    }
    eprint!(
        "Send “{}” (issue {}) to {count} recipients via {}? [y/N] ",
        issue.subject,
        issue.number,
        plan.job.transport.describe()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    let yes = matches!(answer.trim().to_lowercase().as_str(), "y" | "yes");
    if !yes {
        eprintln!("nothing sent");
    }
    yes
}

/// `send --due`: the due issues of the folder named, else of every
/// newsletter's issues folder, each with its own config and ledger.
fn send_due(args: &SendArgs, newsletters: &Newsletters<'_>, clock: SharedClock) -> CliResult {
    if let Some(dir) = &args.issue {
        return send_due_in(dir, args, newsletters.for_issue(dir), clock);
    }
    let mut code = exit::OK;
    for config in newsletters.each() {
        let dir = config.issues_dir();
        // A newsletter that has no issues yet is no error.
        if !dir.exists() && config.id() != briefing::config::MAIN_ID {
            continue;
        }
        code = code.max(send_due_in(&dir, args, config, Arc::clone(&clock))?);
    }
    Ok(code)
}

/// Every due issue under `dir`, oldest first. A broken or busy issue is
/// reported and the others still go out; the exit code is the worst one.
fn send_due_in(dir: &Path, args: &SendArgs, config: &Config, clock: SharedClock) -> CliResult {
    let scan = schedule::scan_due(dir, config, clock.now()).map_err(|e| {
        elog(clock.as_ref(), &format!("error: {e}"));
        CliError::Reported(exit::BAD_INPUT)
    })?;
    let mut code = exit::OK;
    for note in &scan.notes {
        match note {
            DueNote::Broken(d) => {
                for line in d.render().lines() {
                    elog(clock.as_ref(), line);
                }
                code = code.max(exit::BAD_INPUT);
            }
            DueNote::Late {
                slug,
                send_at,
                manifest,
            } => log(
                clock.as_ref(),
                &format!(
                    "{slug} late: send_at {send_at} passed more than {} minutes ago, not sent automatically; to send it anyway: briefing send {}",
                    config.send.late_after_minutes,
                    manifest.display()
                ),
            ),
            DueNote::Sending(slug) => log(
                clock.as_ref(),
                &format!("{slug} is being sent by another run; leaving it alone"),
            ),
        }
    }
    if scan.due.is_empty() {
        if args.verbose {
            let states: Vec<String> = scan
                .others
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            let detail = if states.is_empty() {
                String::new()
            } else {
                format!(" ({})", states.join(", "))
            };
            log(
                clock.as_ref(),
                &format!("nothing due in {}{detail}", dir.display()),
            );
        }
        return Ok(code);
    }
    let opts = SendOptions {
        to: Vec::new(),
        resend_uncertain: false,
        retry_failed: false,
        ..args.options()
    };
    if config.has_several() || config.own_id.is_some() {
        log(
            clock.as_ref(),
            &format!(
                "newsletter {}: {} issue(s) due in {}",
                config.id(),
                scan.due.len(),
                dir.display()
            ),
        );
    }
    for m in &scan.due {
        let c = match send_one(m, &opts, Mode::Due, config, Arc::clone(&clock)) {
            Ok(c) => c,
            Err(e) => {
                e.print();
                e.code()
            }
        };
        code = code.max(c);
    }
    Ok(code)
}
