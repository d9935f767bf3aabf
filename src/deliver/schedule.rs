//! Where each issue stands: draft, scheduled, due, late, sending, stopped,
//! sent or failed; and which issues `send --due` should send now.

use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::compose::manifest;
use crate::config::Config;
use crate::deliver::ledger::{
    Counts, Deferral, Failure, Ledger, LedgerError, SendKind, SendRecord, SendState,
};
use crate::deliver::lock;
use crate::diagnostic::Diagnostics;
use crate::model::Issue;

/// The state of an issue, as `briefing status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueState {
    /// No `send_at` and never sent.
    Draft,
    /// `send_at` is in the future.
    Scheduled,
    /// `send_at` has passed, within the late window: `send --due` sends it.
    Due,
    /// `send_at` passed longer ago than the late window; not sent by `--due`.
    Late,
    /// A send is running now (its lock is held).
    Sending,
    /// A send started and stopped before the end (crash, Ctrl-C, --limit,
    /// a relay outage, recipients deferred to a later run).
    Stopped,
    /// Sent to everyone.
    Sent,
    /// Finished, but some recipients failed for good or are uncertain
    /// after a crash (the same cases in which `send` exits 1).
    Failed,
}

impl IssueState {
    /// The lowercase word used in text and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueState::Draft => "draft",
            IssueState::Scheduled => "scheduled",
            IssueState::Due => "due",
            IssueState::Late => "late",
            IssueState::Sending => "sending",
            IssueState::Stopped => "stopped",
            IssueState::Sent => "sent",
            IssueState::Failed => "failed",
        }
    }
}

/// Counts in the documented JSON shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CountsView {
    /// Delivered.
    pub sent: u64,
    /// Refused for good.
    pub failed: u64,
    /// Unknown after a crash.
    pub uncertain: u64,
    /// Skipped as suppressed.
    pub suppressed: u64,
    /// Waiting (including retries).
    pub pending: u64,
    /// In flight.
    pub sending: u64,
    /// Waiting for a later run after 4xx replies.
    pub deferred: u64,
    /// All recipients of the send.
    pub total: u64,
}

impl From<&Counts> for CountsView {
    fn from(c: &Counts) -> Self {
        Self {
            sent: c.sent,
            failed: c.failed,
            uncertain: c.uncertain,
            suppressed: c.suppressed,
            pending: c.pending,
            sending: c.sending,
            deferred: c.deferred,
            total: c.total(),
        }
    }
}

/// One failed recipient in the JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureView {
    /// The address.
    pub email: String,
    /// `failed` or `uncertain`.
    pub state: String,
    /// The server's last reply.
    pub last_reply: String,
    /// Tries made.
    pub attempts: u32,
}

impl From<Failure> for FailureView {
    fn from(f: Failure) -> Self {
        Self {
            email: f.email,
            state: f.state,
            last_reply: f.reply,
            attempts: f.attempts,
        }
    }
}

/// One deferred recipient in the JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeferralView {
    /// The address.
    pub email: String,
    /// The server's last (4xx) reply.
    pub last_reply: String,
    /// Tries made.
    pub attempts: u32,
    /// When a later run tries again.
    pub next_attempt_at: String,
}

impl From<Deferral> for DeferralView {
    fn from(d: Deferral) -> Self {
        Self {
            email: d.email,
            last_reply: d.reply,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
        }
    }
}

/// Everything `status` knows about one issue (the JSON shape documented in
/// the README).
#[derive(Debug, Clone, Serialize)]
pub struct IssueStatus {
    /// The issue slug.
    pub issue: String,
    /// The manifest path.
    pub manifest: String,
    /// The subject.
    pub subject: String,
    /// The state.
    pub state: IssueState,
    /// `send_at` in the issue's zone (RFC 3339 with offset), if scheduled.
    pub send_at: Option<String>,
    /// `send_at` in UTC, if scheduled.
    pub send_at_utc: Option<String>,
    /// Counts of the real send (all zero before it starts).
    pub counts: CountsView,
    /// When the real send first started.
    pub started_at: Option<String>,
    /// When it last finished.
    pub finished_at: Option<String>,
    /// Messages per second over the send, when known.
    pub rate_per_second: Option<f64>,
    /// Invalid rows skipped when the lists were read.
    pub invalid_rows: u64,
    /// Repeated addresses sent once.
    pub duplicates: u64,
    /// Failed and uncertain recipients with their last reply (first 100).
    pub failures: Vec<FailureView>,
    /// Why a stopped send stopped (an outage, deferrals, Ctrl-C, …).
    pub stop_reason: Option<String>,
    /// When the first deferred recipient is tried next.
    pub next_attempt_at: Option<String>,
    /// Deferred recipients, next attempt first (first 100).
    pub deferrals: Vec<DeferralView>,
}

impl IssueStatus {
    /// A stopped send that only waits for deferred recipients whose next
    /// attempt has not come: nothing for `send --due` to do yet.
    pub fn waiting_for_deferrals(&self, now: Timestamp) -> bool {
        let c = &self.counts;
        self.state == IssueState::Stopped
            && c.pending == 0
            && c.sending == 0
            && c.deferred > 0
            && self
                .next_attempt_at
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .is_some_and(|t| t > now)
    }
}

/// What the ledger says about a real send, for [`status`].
#[derive(Default)]
struct SendFacts {
    record: Option<SendRecord>,
    stop_reason: Option<String>,
    counts: Counts,
    failures: Vec<FailureView>,
    deferrals: Vec<DeferralView>,
    next_attempt_at: Option<String>,
    rate: Option<f64>,
}

fn send_facts(issue: &Issue, ledger: Option<&Ledger>) -> Result<SendFacts, LedgerError> {
    let Some(l) = ledger else {
        return Ok(SendFacts::default());
    };
    let slug = &issue.slug;
    let Some(record) = l.send_record(slug, SendKind::Real)? else {
        return Ok(SendFacts::default());
    };
    let counts = l.counts(slug, SendKind::Real)?;
    let rate = l.sent_span(slug, SendKind::Real)?.and_then(|(a, b)| {
        let (a, b) = (a.parse::<Timestamp>().ok()?, b.parse::<Timestamp>().ok()?);
        let secs = b.duration_since(a).as_secs_f64();
        (secs > 0.0).then(|| (counts.sent.saturating_sub(1)) as f64 / secs)
    });
    Ok(SendFacts {
        failures: l
            .failures(slug, SendKind::Real, 100)?
            .into_iter()
            .map(FailureView::from)
            .collect(),
        deferrals: l
            .deferrals(slug, SendKind::Real, 100)?
            .into_iter()
            .map(DeferralView::from)
            .collect(),
        next_attempt_at: l.next_attempt(slug, SendKind::Real)?,
        stop_reason: l.stop_reason(slug, SendKind::Real)?,
        record: Some(record),
        counts,
        rate,
    })
}

/// Works out an issue's status from the ledger and the clock.
pub fn status(
    issue: &Issue,
    manifest: &Path,
    ledger: Option<&Ledger>,
    lock_dir: &Path,
    config: &Config,
    now: Timestamp,
) -> Result<IssueStatus, LedgerError> {
    let SendFacts {
        record,
        stop_reason,
        counts,
        failures,
        deferrals,
        next_attempt_at,
        rate,
    } = send_facts(issue, ledger)?;
    // A PostgreSQL ledger's lock is an advisory lock any host may hold.
    let locked = match ledger.map(|l| l.lock_held(&issue.slug)).transpose()? {
        Some(Some(held)) => held,
        _ => lock::is_held(lock_dir, &issue.slug),
    };
    let late_window = SignedDuration::from_mins(config.send.late_after_minutes as i64);
    let state = match &record {
        Some(_) if locked => IssueState::Sending,
        Some(r) if r.state == SendState::Done && (counts.failed > 0 || counts.uncertain > 0) => {
            IssueState::Failed
        }
        Some(r) if r.state == SendState::Done => IssueState::Sent,
        Some(_) => IssueState::Stopped,
        None => match &issue.send_at {
            None => IssueState::Draft,
            Some(at) if at.timestamp() > now => IssueState::Scheduled,
            Some(at) if now.duration_since(at.timestamp()) > late_window => IssueState::Late,
            Some(_) => IssueState::Due,
        },
    };
    Ok(IssueStatus {
        issue: issue.slug.clone(),
        manifest: manifest.display().to_string(),
        subject: issue.subject.clone(),
        state,
        send_at: issue.send_at.as_ref().map(crate::compose::timefmt::rfc3339),
        send_at_utc: issue
            .send_at
            .as_ref()
            .map(|z| z.timestamp().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        counts: CountsView::from(&counts),
        started_at: record.as_ref().map(|r| r.started_at.clone()),
        finished_at: record.as_ref().and_then(|r| r.finished_at.clone()),
        rate_per_second: rate,
        invalid_rows: record.as_ref().map_or(0, |r| r.invalid),
        duplicates: record.as_ref().map_or(0, |r| r.duplicates),
        failures,
        stop_reason: match (&state, &record) {
            (IssueState::Stopped, Some(r)) if r.state == SendState::Running => {
                Some("the last run ended without finishing (killed or crashed)".into())
            }
            (IssueState::Stopped, Some(_)) => stop_reason,
            _ => None,
        },
        next_attempt_at,
        deferrals,
    })
}

/// Why a folder of issues could not be looked at.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The folder cannot be listed.
    #[error("cannot list issues in {}: {source}", .dir.display())]
    List {
        /// The folder.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Something `send --due` reports about an issue it does not send now.
#[derive(Debug)]
pub enum DueNote {
    /// The manifest does not load; the other issues go on.
    Broken(Diagnostics),
    /// `send_at` passed longer ago than the late window.
    Late {
        /// The issue slug.
        slug: String,
        /// `send_at` as RFC 3339.
        send_at: String,
        /// The manifest, for the command that sends it anyway.
        manifest: PathBuf,
    },
    /// Another run is sending it.
    Sending(String),
}

/// What `send --due` found in a folder of issues.
#[derive(Debug, Default)]
pub struct DueScan {
    /// Manifests to send now, oldest `send_at` first.
    pub due: Vec<PathBuf>,
    /// Issues worth a line, in folder order.
    pub notes: Vec<DueNote>,
    /// How many of the other issues are in each state (draft, sent, …).
    pub others: std::collections::BTreeMap<&'static str, usize>,
}

/// Decides which issues under `dir` are due now: due ones, and stopped
/// sends, which resume even when late because they started on time.
pub fn scan_due(dir: &Path, config: &Config, now: Timestamp) -> Result<DueScan, ScheduleError> {
    let manifests = manifest::find_all(dir).map_err(|source| ScheduleError::List {
        dir: dir.to_path_buf(),
        source,
    })?;
    let ledger = Ledger::open_existing_config(config)?;
    let lock_dir = lock::lock_dir(config);
    let mut scan = DueScan::default();
    let mut due: Vec<(Timestamp, PathBuf)> = Vec::new();
    for m in manifests {
        let loaded = match manifest::load(&m, config) {
            Ok(l) => l,
            Err(d) => {
                scan.notes.push(DueNote::Broken(d));
                continue;
            }
        };
        let Some(send_at) = &loaded.issue.send_at else {
            *scan.others.entry("draft").or_default() += 1;
            continue;
        };
        let st = status(&loaded.issue, &m, ledger.as_ref(), &lock_dir, config, now)?;
        match st.state {
            IssueState::Stopped if st.waiting_for_deferrals(now) => {
                *scan.others.entry("deferred").or_default() += 1;
            }
            IssueState::Due | IssueState::Stopped => due.push((send_at.timestamp(), m)),
            IssueState::Late => scan.notes.push(DueNote::Late {
                slug: loaded.issue.slug,
                send_at: st.send_at.unwrap_or_default(),
                manifest: m,
            }),
            IssueState::Sending => scan.notes.push(DueNote::Sending(loaded.issue.slug)),
            other => *scan.others.entry(other.as_str()).or_default() += 1,
        }
    }
    due.sort();
    scan.due = due.into_iter().map(|(_, m)| m).collect();
    Ok(scan)
}
