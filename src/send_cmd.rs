//! `briefing send` and `briefing status`: terminal and cron faces of the
//! send engine in [`briefing::send`].

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use briefing::clock::Clock;
use briefing::config::Config;
use briefing::dkim::Signer;
use briefing::ledger::{Ledger, SendKind};
use briefing::manifest::LoadedIssue;
use briefing::message::{PreparedIssue, Sender};
use briefing::schedule::{self, IssueState, IssueStatus};
use briefing::send::{self, Event, Progress, SendError, SendJob, Summary};
use briefing::token::Secret;
use briefing::transport::Transport;
use briefing::{lint, lock, recipients, render};

use crate::{SharedClock, exit, load_issue};

/// Arguments of `briefing send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The issue manifest (or, with --due, a folder of issues; default issues/).
    pub issue: Option<PathBuf>,
    /// Recipient lists (CSV); default: the configured lists.
    #[arg(long = "list")]
    pub lists: Vec<PathBuf>,
    /// Send a [TEST] copy to these addresses only.
    #[arg(long = "to")]
    pub to: Vec<String>,
    /// Transport URL for this run (outbox:DIR, smtp://, smtps://, sendmail:).
    #[arg(long, env = "BRIEFING_TRANSPORT")]
    pub transport: Option<String>,
    /// Render, sign and count, but send nothing and record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Send to at most N new recipients in this run.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Also send to recipients whose earlier send is uncertain.
    #[arg(long)]
    pub resend_uncertain: bool,
    /// Send every issue under the folder whose send_at has passed.
    #[arg(long)]
    pub due: bool,
    /// Say what --due decided even when nothing is due.
    #[arg(long)]
    pub verbose: bool,
}

/// Arguments of `briefing status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// An issue manifest, or a folder of issues (default issues/).
    pub target: Option<PathBuf>,
    /// Machine-readable output (documented in the README).
    #[arg(long)]
    pub json: bool,
}

/// A line for logs: RFC 3339 timestamp first, as cron logs need.
fn log(clock: &dyn Clock, msg: &str) {
    println!("{} {msg}", clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"));
}

fn elog(clock: &dyn Clock, msg: &str) {
    eprintln!("{} {msg}", clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"));
}

/// Runs `briefing send`.
pub fn send(args: SendArgs, config: &Config, clock: SharedClock) -> u8 {
    if args.due {
        return send_due(&args, config, clock);
    }
    let Some(path) = args.issue.clone() else {
        eprintln!(
            "error: which issue? expected `briefing send issues/<date>/issue.toml` or `briefing send --due`"
        );
        return exit::BAD_INPUT;
    };
    send_one(&path, &args, config, clock, false)
}

fn send_one(
    path: &Path,
    args: &SendArgs,
    config: &Config,
    clock: SharedClock,
    from_due: bool,
) -> u8 {
    let Some(loaded) = load_issue(path, config) else {
        return exit::BAD_INPUT;
    };
    let lists: Vec<PathBuf> = if args.lists.is_empty() {
        crate::configured_lists(config)
    } else {
        args.lists.clone()
    };
    let rendered = render::render(&loaded.issue);
    // The same checks as `briefing check`, against the lists of this send:
    // a merge tag none of them can fill would go out blank.
    let lint = lint::lint(&lint::LintInput {
        loaded: &loaded,
        rendered: &rendered,
        config,
        now: clock.now(),
        recipient_fields: crate::recipient_columns(&lists),
    });
    if lint.has_errors() {
        eprint!("{}", lint.render());
        eprintln!(
            "error: `briefing check {}` finds errors; nothing was sent",
            path.display()
        );
        return exit::BAD_INPUT;
    }
    let kind = if args.to.is_empty() {
        SendKind::Real
    } else {
        SendKind::Test
    };
    let transport_url = args
        .transport
        .clone()
        .unwrap_or_else(|| config.transport.url.clone());
    let transport = if args.dry_run {
        Transport::Null
    } else {
        match Transport::from_url(&transport_url, config) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        }
    };
    let local = matches!(transport, Transport::Null | Transport::Outbox(_));
    let secret = match Secret::from_config(config, local) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    if secret.development && !args.dry_run {
        elog(
            clock.as_ref(),
            &format!(
                "note: no unsubscribe secret set ({}); using a development secret, fine for the outbox only",
                config.unsubscribe.secret_env
            ),
        );
    }
    let signer = match Signer::from_config(config) {
        Ok(s) => s.map(Arc::new),
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    if signer.is_none() && !local {
        elog(
            clock.as_ref(),
            "warning: no [dkim] key configured; Gmail and Yahoo junk or refuse unsigned bulk mail",
        );
    }
    let sender = match Sender::from_config(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: config: {e}");
            return exit::BAD_INPUT;
        }
    };
    let _lock = if args.dry_run {
        None
    } else {
        let holder = format!(
            "pid {} on {} since {}",
            std::process::id(),
            std::fs::read_to_string("/etc/hostname")
                .unwrap_or_default()
                .trim(),
            clock.now()
        );
        // Test copies lock apart, so a rehearsal never holds up the real send.
        let lock_name = match kind {
            SendKind::Real => loaded.issue.slug.clone(),
            SendKind::Test => format!("{}.test", loaded.issue.slug),
        };
        match lock::try_lock(&schedule::lock_dir(config), &lock_name, &holder) {
            Ok(l) => Some(l),
            Err(e @ lock::LockError::Busy { .. }) => {
                if from_due {
                    log(clock.as_ref(), &format!("{}: {e}", loaded.issue.slug));
                    return exit::OK;
                }
                eprintln!("error: {e}");
                return exit::BUSY;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        }
    };
    if kind == SendKind::Real && !args.yes && !args.dry_run && !confirm(&loaded, &lists, &transport)
    {
        return exit::BAD_INPUT;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let job = SendJob {
        prepared: Arc::new(PreparedIssue::new(&loaded.issue, &rendered, sender)),
        kind,
        lists,
        to: args.to.clone(),
        transport: transport.clone(),
        dry_run: args.dry_run,
        limit: args.limit,
        resend_uncertain: args.resend_uncertain,
        secret,
        signer,
        clock: Arc::clone(&clock),
        stop: Arc::clone(&stop),
    };
    let reporter = Arc::new(Reporter::new(Arc::clone(&clock)));
    let progress: Arc<dyn Progress> = Arc::clone(&reporter) as Arc<dyn Progress>;
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let what = match kind {
        SendKind::Real => "send",
        SendKind::Test => "test send",
    };
    log(
        clock.as_ref(),
        &format!(
            "{} {what} of “{}” via {}{}",
            loaded.issue.slug,
            loaded.issue.subject,
            transport.describe(),
            if args.dry_run {
                " (dry run: nothing is sent or recorded)"
            } else {
                ""
            }
        ),
    );
    let result = runtime.block_on(async {
        let stop_flag = Arc::clone(&stop);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop_flag.store(true, Ordering::SeqCst);
                eprintln!("interrupted: finishing messages in flight, taking no new ones (Ctrl-C again to kill)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(i32::from(exit::INTERRUPTED));
                }
            }
        });
        send::run(job, config, Arc::clone(&progress)).await
    });
    reporter.finish();
    match result {
        Ok(summary) => report_summary(&loaded, &summary, clock.as_ref(), args.dry_run),
        Err(SendError::AlreadySent { .. }) if from_due => exit::OK,
        Err(e @ SendError::AlreadySent { .. }) => {
            eprintln!("error: {e}");
            exit::BUSY
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::BAD_INPUT
        }
    }
}

fn report_summary(loaded: &LoadedIssue, s: &Summary, clock: &dyn Clock, dry_run: bool) -> u8 {
    let c = &s.counts;
    log(
        clock,
        &format!(
            "{} summary: sent {} (this run {}), failed {}, uncertain {}, suppressed {}, pending {}, skipped invalid {}, duplicates {}, {:.1} s, {:.0} messages/s{}",
            loaded.issue.slug,
            c.sent,
            s.sent_now,
            c.failed,
            c.uncertain,
            c.suppressed,
            c.pending,
            s.invalid,
            s.duplicates,
            s.duration.as_secs_f64(),
            s.rate(),
            if dry_run { " (dry run)" } else { "" }
        ),
    );
    if c.uncertain > 0 {
        elog(
            clock,
            &format!(
                "{} recipient(s) are uncertain: a run stopped while their message was with the server. \
                 `briefing status {}` lists them; `briefing send {} --resend-uncertain` sends them again",
                c.uncertain,
                loaded.manifest.display(),
                loaded.manifest.display()
            ),
        );
    }
    if let Some(f) = &s.fatal {
        elog(
            clock,
            &format!(
                "error: the transport failed: {f}; the rest stays pending, rerun the same command to resume"
            ),
        );
        return exit::BAD_INPUT;
    }
    if s.interrupted {
        elog(clock, "interrupted; rerun the same command to resume");
        return exit::INTERRUPTED;
    }
    // Uncertain recipients are not known to be delivered: not a clean run.
    if c.failed > 0 || c.uncertain > 0 {
        return exit::SOME_FAILED;
    }
    exit::OK
}

fn confirm(loaded: &LoadedIssue, lists: &[PathBuf], transport: &Transport) -> bool {
    let mut count = 0u64;
    for l in lists {
        let _ = recipients::for_each(l, |row| {
            if matches!(row, recipients::Row::Recipient(_)) {
                count += 1;
            }
        });
    }
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "error: not on a terminal, so nobody can confirm sending “{}” to {count} recipients; add --yes (as cron jobs do)",
            loaded.issue.subject
        );
        return false;
    }
    eprint!(
        "Send “{}” (issue {}) to {count} recipients via {}? [y/N] ",
        loaded.issue.subject,
        loaded.issue.number,
        transport.describe()
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

/// Progress on a terminal (a bar) or in a log (a line per 1,000 messages
/// and per failure class).
struct Reporter {
    clock: SharedClock,
    bar: Option<indicatif::ProgressBar>,
    delivered: AtomicU64,
    failed: AtomicU64,
    seen_classes: Mutex<Vec<String>>,
}

impl Reporter {
    fn new(clock: SharedClock) -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} sent, {msg} {per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        Self {
            clock,
            bar,
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            seen_classes: Mutex::new(Vec::new()),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn line(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => log(self.clock.as_ref(), msg),
        }
    }
}

impl Progress for Reporter {
    fn event(&self, e: &Event) {
        match e {
            Event::Skipped(row) => {
                let msg = format!("skipped {row}");
                match &self.bar {
                    Some(b) => b.println(msg),
                    None => elog(self.clock.as_ref(), &msg),
                }
            }
            Event::Uncertain(n) => self.line(&format!(
                "{n} message(s) were with the server when an earlier run stopped: marked uncertain, not resent"
            )),
            Event::Started { pending, total } => {
                if let Some(b) = &self.bar {
                    b.set_length(*total);
                    b.set_position(total - pending);
                }
                self.line(&format!("{pending} of {total} recipients to go"));
            }
            Event::Delivered => {
                let n = self.delivered.fetch_add(1, Ordering::Relaxed) + 1;
                match &self.bar {
                    Some(b) => b.inc(1),
                    None if n.is_multiple_of(1000) => log(self.clock.as_ref(), &format!("{n} sent")),
                    None => {}
                }
            }
            Event::Suppressed => {}
            Event::Retry { email: _, attempt, error } => {
                let class = failure_class(error);
                if self.first_of_class(&format!("retry {class}")) {
                    self.line(&format!("retrying after try {attempt}: {error} (further {class} retries not logged)"));
                }
            }
            Event::Failed { email, reply } => {
                let n = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(b) = &self.bar {
                    b.set_message(format!("{n} failed,"));
                }
                let class = failure_class(reply);
                if self.first_of_class(&format!("fail {class}")) {
                    let msg = format!("failed {email}: {reply} (further {class} failures counted in the summary)");
                    match &self.bar {
                        Some(b) => b.println(msg),
                        None => elog(self.clock.as_ref(), &msg),
                    }
                }
            }
        }
    }
}

impl Reporter {
    fn first_of_class(&self, class: &str) -> bool {
        let Ok(mut seen) = self.seen_classes.lock() else {
            return false;
        };
        if seen.iter().any(|c| c == class) {
            return false;
        }
        seen.push(class.to_string());
        true
    }
}

/// The reply code (`451`, `550 5.1.1`) or the error's first words.
fn failure_class(reply: &str) -> String {
    let words: Vec<&str> = reply.split_whitespace().take(2).collect();
    match words.as_slice() {
        [code, ext, ..]
            if code.len() == 3 && code.chars().all(|c| c.is_ascii_digit()) && ext.contains('.') =>
        {
            format!("{code} {ext}")
        }
        [code, ..] if code.len() == 3 && code.chars().all(|c| c.is_ascii_digit()) => {
            code.to_string()
        }
        _ => words.join(" "),
    }
}

fn send_due(args: &SendArgs, config: &Config, clock: SharedClock) -> u8 {
    let dir = args
        .issue
        .clone()
        .unwrap_or_else(|| PathBuf::from("issues"));
    let manifests = match schedule::find_manifests(&dir) {
        Ok(m) => m,
        Err(e) => {
            elog(
                clock.as_ref(),
                &format!("error: cannot list issues in {}: {e}", dir.display()),
            );
            return exit::BAD_INPUT;
        }
    };
    let ledger_path = config.resolve(&config.send.ledger);
    let ledger = if ledger_path.exists() {
        Ledger::open(&ledger_path).ok()
    } else {
        None
    };
    let lock_dir = schedule::lock_dir(config);
    let now = clock.now();
    let mut due: Vec<(jiff::Timestamp, PathBuf)> = Vec::new();
    let mut code = exit::OK;
    // States of issues not sent now, for the one --verbose line.
    let mut seen: std::collections::BTreeMap<&'static str, usize> = Default::default();
    for m in manifests {
        let loaded = match briefing::manifest::load(&m, config) {
            Ok(l) => l,
            Err(d) => {
                // A broken draft must not stop the issues that are fine.
                for line in d.render().lines() {
                    elog(clock.as_ref(), line);
                }
                code = code.max(exit::BAD_INPUT);
                continue;
            }
        };
        let Some(send_at) = &loaded.issue.send_at else {
            *seen.entry("draft").or_default() += 1;
            continue;
        };
        let st = match schedule::status(&loaded.issue, &m, ledger.as_ref(), &lock_dir, config, now)
        {
            Ok(s) => s,
            Err(e) => {
                elog(clock.as_ref(), &format!("error: {e}"));
                return exit::BAD_INPUT;
            }
        };
        match st.state {
            IssueState::Due | IssueState::Stopped => due.push((send_at.timestamp(), m)),
            IssueState::Late => log(
                clock.as_ref(),
                &format!(
                    "{} late: send_at {} passed more than {} minutes ago, not sent automatically; to send it anyway: briefing send {}",
                    loaded.issue.slug,
                    st.send_at.unwrap_or_default(),
                    config.send.late_after_minutes,
                    m.display()
                ),
            ),
            IssueState::Sending => log(
                clock.as_ref(),
                &format!(
                    "{} is being sent by another run; leaving it alone",
                    loaded.issue.slug
                ),
            ),
            other => *seen.entry(other.as_str()).or_default() += 1,
        }
    }
    drop(ledger);
    if due.is_empty() {
        if args.verbose {
            let states: Vec<String> = seen.iter().map(|(k, n)| format!("{n} {k}")).collect();
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
        return code;
    }
    due.sort();
    for (_, m) in due {
        let one = SendArgs {
            issue: Some(m.clone()),
            lists: args.lists.clone(),
            to: Vec::new(),
            transport: args.transport.clone(),
            dry_run: args.dry_run,
            yes: true,
            limit: args.limit,
            resend_uncertain: false,
            due: false,
            verbose: args.verbose,
        };
        let c = send_one(&m, &one, config, Arc::clone(&clock), true);
        code = code.max(c);
    }
    code
}

/// Runs `briefing status`.
pub fn status(args: StatusArgs, config: &Config, clock: &dyn Clock) -> u8 {
    let target = args
        .target
        .clone()
        .unwrap_or_else(|| PathBuf::from("issues"));
    let manifests = if target.is_dir() {
        match schedule::find_manifests(&target) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("error: cannot list issues in {}: {e}", target.display());
                return exit::BAD_INPUT;
            }
        }
    } else {
        vec![target.clone()]
    };
    let ledger = match crate::existing_ledger(config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let lock_dir = schedule::lock_dir(config);
    let mut all: Vec<IssueStatus> = Vec::new();
    let mut code = exit::OK;
    for m in &manifests {
        let Some(loaded) = load_issue(m, config) else {
            code = exit::BAD_INPUT;
            continue;
        };
        match schedule::status(
            &loaded.issue,
            m,
            ledger.as_ref(),
            &lock_dir,
            config,
            clock.now(),
        ) {
            Ok(s) => all.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        }
    }
    let single = !target.is_dir();
    if args.json {
        #[derive(serde::Serialize)]
        struct Listing<'a> {
            issues: &'a [IssueStatus],
        }
        let out = if single && all.len() == 1 {
            serde_json::to_string_pretty(&all[0])
        } else {
            serde_json::to_string_pretty(&Listing { issues: &all })
        };
        match out {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        }
        return code;
    }
    for s in &all {
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
                "  sent {}, failed {}, uncertain {}, suppressed {}, pending {} of {}; invalid rows {}, duplicates {}",
                c.sent,
                c.failed,
                c.uncertain,
                c.suppressed,
                c.pending + c.sending,
                c.total,
                s.invalid_rows,
                s.duplicates
            );
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
        }
    }
    code
}
