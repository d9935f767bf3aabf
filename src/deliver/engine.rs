//! Sending an issue: recipients into the ledger, then a pool of workers that
//! each claim a row, build and sign its message, hand it to the transport
//! and record the answer.
//!
//! Exactly-once comes from the ledger's order of writes (see
//! [`crate::deliver::ledger`]); resumability from the ledger being the queue: a rerun
//! skips the import and continues with what is still pending. A relay that
//! cannot be reached trips the [`Breaker`]: the workers pause instead of
//! failing their recipients, and the run stops after
//! `transport.outage_wait_seconds` with the rest still pending. A recipient
//! whose server keeps answering 4xx is deferred to a later run, until
//! `send.give_up_after_hours`.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use lettre::address::Envelope;

use crate::audience::lists::{self, ListError, Row, SkippedRow};
use crate::audience::recipient::Recipient;
use crate::audience::recipient::{AddressError, check_address};
use crate::audience::token::{Secret, unsubscribe_url};
use crate::clock::{Clock, system_time};
use crate::config::Config;
use crate::deliver::breaker::{Admit, Breaker};
use crate::deliver::dkim::Signer;
use crate::deliver::durable::{Syncer, Ticket};
use crate::deliver::ledger::{
    Accepted, Counts, Delivery, DeliveryState, ImportProgress, ImportRows, Ledger, LedgerError,
    Resumed, SendKind, SendRecord, SendState,
};
use crate::deliver::message::{Personal, PreparedIssue, VariantMessages};
use crate::deliver::transport::{Connection, DeliveryError, Transport, outbox_name};

/// Why a send could not run (as opposed to some recipients failing).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A recipient list could not be read.
    #[error(transparent)]
    List(#[from] ListError),
    /// The issue was already sent completely.
    #[error(
        "issue `{issue}` was already sent ({sent} delivered, finished {finished}); nothing to do. `briefing status` shows the details"
    )]
    AlreadySent {
        /// The issue slug.
        issue: String,
        /// Messages delivered.
        sent: u64,
        /// When the send finished.
        finished: String,
    },
    /// An address given with `--to` is invalid.
    #[error("--to {0}")]
    BadAddress(#[from] AddressError),
    /// The envelope sender in the config is invalid.
    #[error("sender.envelope_from: {0}")]
    Sender(String),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The temporary folder for a dry run's ledger could not be made.
    #[error("cannot create a temporary folder for the dry run's ledger (TMPDIR): {0}")]
    Scratch(std::io::Error),
    /// A locked mutex was poisoned by a panicking worker.
    #[error("internal error: a send worker stopped unexpectedly")]
    Poisoned,
}

/// What to send and how.
pub struct SendJob {
    /// The issue, encoded once.
    pub prepared: Arc<PreparedIssue>,
    /// Per-variant issues when some blocks are for some readers only;
    /// `None` when every reader gets `prepared`.
    pub variants: Option<Arc<VariantMessages>>,
    /// Real send or test copies.
    pub kind: SendKind,
    /// Lists for a real send.
    pub lists: Vec<PathBuf>,
    /// Addresses for test copies.
    pub to: Vec<String>,
    /// The destination.
    pub transport: Transport,
    /// Build, sign and count, but send nothing and record nothing.
    pub dry_run: bool,
    /// At most this many new recipients in this run.
    pub limit: Option<u64>,
    /// Put uncertain rows back in the queue first.
    pub resend_uncertain: bool,
    /// Put failed rows whose failure was not a 5xx back in the queue first.
    pub retry_failed: bool,
    /// Unsubscribe token secret.
    pub secret: Secret,
    /// DKIM signer, if configured.
    pub signer: Option<Arc<Signer>>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Set by Ctrl-C: take no new recipients.
    pub stop: Arc<AtomicBool>,
}

/// Something worth telling the operator while a send runs.
#[derive(Debug, Clone)]
pub enum Event {
    /// A list row was skipped.
    Skipped(SkippedRow),
    /// Rows a dead run left after their end of data were marked uncertain.
    Uncertain(u64),
    /// Rows a dead run left before their end of data are back in the queue.
    Requeued(u64),
    /// `--retry-failed` put this many failed rows back in the queue.
    RetriedFailed(u64),
    /// The queue is ready: this many messages to go.
    Started {
        /// Rows waiting.
        pending: u64,
        /// Rows in the send overall.
        total: u64,
        /// The lists are still being read into the ledger while the send
        /// runs: `pending` and `total` count only what is there so far.
        importing: bool,
    },
    /// A chunk of the lists is in the ledger.
    Imported {
        /// Rows in the send overall now.
        total: u64,
        /// Every list has been read: `total` is final.
        done: bool,
    },
    /// A message was accepted.
    Delivered,
    /// A try failed and will be retried.
    Retry {
        /// The recipient.
        email: String,
        /// The try that failed.
        attempt: u32,
        /// The reply or error.
        error: String,
    },
    /// A recipient's server keeps answering 4xx: a later run tries again.
    Deferred {
        /// The recipient.
        email: String,
        /// The last reply.
        reply: String,
        /// When it is tried next.
        next_attempt: Timestamp,
    },
    /// A recipient failed for good.
    Failed {
        /// The recipient.
        email: String,
        /// The last reply.
        reply: String,
    },
    /// No reply came after the end of data: the recipient is uncertain.
    Lost {
        /// The recipient.
        email: String,
        /// What happened.
        reply: String,
    },
    /// The relay cannot be reached: the send pauses.
    Outage {
        /// The transport's error.
        reason: String,
        /// The pause before the next probe.
        retry_in: Duration,
        /// How long the outage has lasted.
        lasted: Duration,
        /// When the run gives up (`transport.outage_wait_seconds`).
        limit: Duration,
    },
    /// The relay answers again after an outage of this long.
    Recovered(Duration),
    /// A recipient was on the suppression list.
    Suppressed,
}

/// Receives [`Event`]s; the binary draws progress bars or log lines.
pub trait Progress: Send + Sync {
    /// Called for each event, from any worker.
    fn event(&self, e: &Event);
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Counts over the whole send (all runs).
    pub counts: Counts,
    /// Messages accepted in this run.
    pub sent_now: u64,
    /// Invalid list rows.
    pub invalid: u64,
    /// Repeated addresses.
    pub duplicates: u64,
    /// Wall time of this run.
    pub duration: Duration,
    /// Ctrl-C stopped the run.
    pub interrupted: bool,
    /// The transport failed in a way retrying cannot fix.
    pub fatal: Option<String>,
    /// The relay stayed unreachable for `transport.outage_wait_seconds`:
    /// the last error. Everything unsent is still pending.
    pub outage: Option<String>,
    /// Rows of earlier runs that became uncertain in this one.
    pub new_uncertain: u64,
    /// Rows of a dead run that never reached their end of data, requeued.
    pub requeued: u64,
    /// When the first deferred recipient is tried next (RFC 3339).
    pub next_attempt: Option<String>,
    /// Why the send is not finished, as recorded for `status`.
    pub stop_reason: Option<String>,
    /// Distinct variants of the issue this run sent (blocks for some readers).
    pub variants: usize,
}

impl Summary {
    /// Messages per second in this run.
    pub fn rate(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 {
            self.sent_now as f64 / secs
        } else {
            0.0
        }
    }
}

/// Runs a send to completion (or until stopped).
pub async fn run(
    job: SendJob,
    config: &Config,
    progress: Arc<dyn Progress>,
) -> Result<Summary, SendError> {
    let started = Instant::now();
    // Held to the end of the run: dropping it deletes a dry run's ledger.
    let (mut ledger, _scratch) = open_ledger(&job, config)?;
    let (resumed, import_from) = prepare(&job, config, &mut ledger, progress.as_ref())?;
    let counts = ledger.counts(&job.prepared.slug, job.kind)?;
    // The import's own connection, opened before anything is sent, so a
    // ledger that refuses a second one stops the run while it is whole.
    let importer = match import_from {
        Some(skip) => Some((second_connection(&ledger)?, skip)),
        None => None,
    };
    progress.event(&Event::Started {
        pending: counts.pending,
        total: counts.total(),
        importing: importer.is_some(),
    });
    let shared = Arc::new(Shared::new(&job, config, ledger, importer.is_some())?);
    let job = Arc::new(job);
    let import = importer.map(|(l, skip)| {
        let from = ImportFrom {
            skip,
            total: counts.total(),
            list_id: config.sender.list_id.clone(),
        };
        spawn_import(&job, &shared, &progress, l, from)
    });
    let ran = run_workers(&job, &shared, &progress, config).await;
    if let Err(e) = &ran {
        // The import stops at its next chunk instead of reading on.
        shared.stop_with(&shared.fatal, e.to_string())?;
    }
    join_import(import).await?;
    ran?;
    let shared = Arc::try_unwrap(shared).map_err(|_| SendError::Poisoned)?;
    let mut summary = conclude(&job, shared)?;
    summary.duration = started.elapsed();
    summary.new_uncertain = resumed.uncertain;
    summary.requeued = resumed.requeued;
    Ok(summary)
}

/// The ledger of the send, or a throwaway one for a dry run, with the
/// folder that holds the throwaway one.
///
/// The throwaway ledger is a file in a temporary folder, not SQLite's
/// in-memory database: every row of the list lives in the ledger, so in
/// memory a dry run grew with the list (570 MB for a million rows), while
/// a file keeps only SQLite's page cache resident.
fn open_ledger(
    job: &SendJob,
    config: &Config,
) -> Result<(Ledger, Option<tempfile::TempDir>), SendError> {
    if job.dry_run {
        let dir = tempfile::Builder::new()
            .prefix("briefing-dry-run-")
            .tempdir()
            .map_err(SendError::Scratch)?;
        let l = Ledger::open(&dir.path().join("ledger.sqlite"))?;
        copy_suppressions(config, &l, job.clock.now())?;
        Ok((l, Some(dir)))
    } else {
        Ok((Ledger::open_config(config)?, None))
    }
}

/// Readies the queue: refuses a finished send, settles what a dead run
/// left, and puts back what the flags and the clock say is due again.
/// Test copies are imported here; for a real send whose lists are not all
/// in the ledger yet, the lists are checked whole and the list row to
/// import from is returned: the import runs beside the workers.
fn prepare(
    job: &SendJob,
    config: &Config,
    ledger: &mut Ledger,
    progress: &dyn Progress,
) -> Result<(Resumed, Option<u64>), SendError> {
    let (slug, kind, now) = (&job.prepared.slug, job.kind, job.clock.now());
    if kind == SendKind::Test {
        ledger.reset_test(slug)?;
    }
    if job.retry_failed {
        let n = ledger.requeue_failed(slug, kind)?;
        progress.event(&Event::RetriedFailed(n));
    }
    let record = ledger.send_record(slug, kind)?;
    refuse_if_sent(job, ledger, record.as_ref())?;
    let import_from = match &record {
        Some(r) if r.imported => None,
        r => Some(r.as_ref().map_or(0, |r| r.import_rows)),
    };
    if kind == SendKind::Real && import_from.is_some() {
        // Bad input loses nothing: a list that would stop the import
        // part-way stops the send now, before anything leaves.
        for list in &job.lists {
            lists::check(list)?;
        }
    }
    let resumed = ledger.begin(slug, kind, &job.prepared.subject, now)?;
    if resumed.uncertain > 0 {
        progress.event(&Event::Uncertain(resumed.uncertain));
    }
    if resumed.requeued > 0 {
        progress.event(&Event::Requeued(resumed.requeued));
    }
    // Suppressions from the file apply to every run, added since or not.
    import_suppression_file(config, ledger, now)?;
    let import_from = match kind {
        SendKind::Real => import_from,
        SendKind::Test => {
            if import_from.is_some() {
                import_test(job, config, ledger)?;
            }
            None
        }
    };
    if job.resend_uncertain {
        ledger.requeue_uncertain(slug, kind)?;
    }
    ledger.wake_deferred(slug, kind, now)?;
    Ok((resumed, import_from))
}

/// A real send that finished is not repeated (unless `--resend-uncertain`
/// or `--retry-failed` gave it something to do).
fn refuse_if_sent(
    job: &SendJob,
    ledger: &Ledger,
    record: Option<&SendRecord>,
) -> Result<(), SendError> {
    let Some(r) = record else {
        return Ok(());
    };
    if job.kind != SendKind::Real || r.state != SendState::Done {
        return Ok(());
    }
    let c = ledger.counts(&job.prepared.slug, job.kind)?;
    if c.pending == 0 && (c.uncertain == 0 || !job.resend_uncertain) {
        return Err(SendError::AlreadySent {
            issue: job.prepared.slug.clone(),
            sent: c.sent,
            finished: r.finished_at.clone().unwrap_or_default(),
        });
    }
    Ok(())
}

/// Starts the pool (one worker per SMTP connection, one otherwise) and
/// waits for it; the first worker error is the run's.
async fn run_workers(
    job: &Arc<SendJob>,
    shared: &Arc<Shared>,
    progress: &Arc<dyn Progress>,
    config: &Config,
) -> Result<(), SendError> {
    let workers = workers(job, config);
    let folder = match job.kind {
        SendKind::Real => job.prepared.slug.clone(),
        SendKind::Test => format!("{}-test", job.prepared.slug),
    };
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (job, shared, progress) = (Arc::clone(job), Arc::clone(shared), Arc::clone(progress));
        let conn = job.transport.connection(&folder);
        handles.push(tokio::spawn(async move {
            worker(job, shared, progress, conn).await
        }));
    }
    let mut first_error = None;
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(_) => first_error = first_error.or(Some(SendError::Poisoned)),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One worker per SMTP connection, one for the other transports.
fn workers(job: &SendJob, config: &Config) -> usize {
    match &job.transport {
        Transport::Smtp(_) => config.transport.pool_size.max(1),
        _ => 1,
    }
}

/// Closes the run: stops the sync thread, records the send as done or
/// stopped (with why), and sums it up.
fn conclude(job: &SendJob, shared: Shared) -> Result<Summary, SendError> {
    let (slug, kind) = (&job.prepared.slug, job.kind);
    if let Some(s) = shared.syncer {
        s.stop();
    }
    let ledger = shared
        .ledger
        .into_inner()
        .map_err(|_| SendError::Poisoned)?;
    // Workers record their 250s as they stop; this catches any left over.
    let accepted = shared
        .accepted
        .into_inner()
        .map_err(|_| SendError::Poisoned)?;
    ledger.record_accepted(&accepted)?;
    let counts = ledger.counts(slug, kind)?;
    let next_attempt = ledger.next_attempt(slug, kind)?;
    let fatal = shared.fatal.into_inner().map_err(|_| SendError::Poisoned)?;
    let outage = shared
        .outage
        .into_inner()
        .map_err(|_| SendError::Poisoned)?;
    let interrupted = job.stop.load(Ordering::SeqCst);
    let record = ledger.send_record(slug, kind)?;
    // A send whose lists are not all read is never done, even with every
    // row read so far sent: the next run reads on.
    let imported = record.as_ref().is_none_or(|r| r.imported);
    let stop_reason = if imported && counts.pending + counts.sending + counts.deferred == 0 {
        None
    } else if let Some(o) = &outage {
        Some(format!(
            "the relay was unreachable for {} s: {o}",
            shared.breaker_limit.as_secs()
        ))
    } else if let Some(f) = &fatal {
        Some(f.clone())
    } else if interrupted {
        Some("interrupted".to_string())
    } else if !imported {
        Some("stopped while reading the lists into the ledger".to_string())
    } else if counts.pending == 0 && counts.sending == 0 {
        Some(format!(
            "{} recipient(s) deferred after temporary failures; next attempt at {}",
            counts.deferred,
            next_attempt.as_deref().unwrap_or("?")
        ))
    } else {
        Some("--limit reached".to_string())
    };
    let state = match stop_reason {
        None => SendState::Done,
        Some(_) => SendState::Stopped,
    };
    ledger.finish(slug, kind, state, stop_reason.as_deref(), job.clock.now())?;
    Ok(Summary {
        counts,
        sent_now: shared.sent_now.load(Ordering::SeqCst),
        interrupted,
        fatal,
        outage,
        next_attempt,
        stop_reason,
        variants: job.variants.as_ref().map_or(1, |v| v.count().max(1)),
        invalid: record.as_ref().map_or(0, |r| r.invalid),
        duplicates: record.as_ref().map_or(0, |r| r.duplicates),
        ..Summary::default()
    })
}

/// How many fresh rows a worker claims in one commit (one sync of the
/// log, too). After a power cut (not a kill) a claimed row that was not
/// sent yet counts as uncertain, so this bounds that count at this many
/// per connection.
pub const CLAIM_BATCH: usize = 8;

/// What the workers share.
struct Shared {
    ledger: Mutex<Ledger>,
    /// Servers' 250s not yet recorded: they go into the next commit that
    /// is made anyway (any worker's claim or mark), so a message costs one
    /// commit, not two. A kill before it leaves those rows uncertain.
    accepted: Mutex<Vec<Accepted>>,
    /// Makes claims durable before their final `.` (none for a dry run or a
    /// ledger without a write-ahead log).
    syncer: Option<Syncer>,
    retries: Mutex<VecDeque<(Instant, i64)>>,
    in_flight: AtomicUsize,
    budget: AtomicU64,
    sent_now: AtomicU64,
    fatal: Mutex<Option<String>>,
    outage: Mutex<Option<String>>,
    /// The import thread is still reading the lists: no fresh row yet
    /// means wait, not done.
    importing: AtomicBool,
    breaker: Breaker,
    breaker_limit: Duration,
    wake: tokio::sync::Notify,
    pacer: Pacer,
    envelope_from: lettre::Address,
    unsubscribe_base: Config,
    max_attempts: u32,
    backoff: Duration,
    give_up: SignedDuration,
}

impl Shared {
    fn new(
        job: &SendJob,
        config: &Config,
        ledger: Ledger,
        importing: bool,
    ) -> Result<Self, SendError> {
        let envelope_from = config
            .sender
            .envelope_from
            .as_deref()
            .unwrap_or(&config.sender.from_address)
            .parse::<lettre::Address>()
            .map_err(|e| SendError::Sender(e.to_string()))?;
        let retries: VecDeque<(Instant, i64)> = ledger
            .retry_ids(&job.prepared.slug, job.kind)?
            .into_iter()
            .map(|id| (Instant::now(), id))
            .collect();
        // Only a transport that can deliver needs claims on disk first: an
        // outbox file is rewritten under the same name on a retry.
        let delivers = matches!(job.transport, Transport::Smtp(_) | Transport::Sendmail(_));
        let wal = if delivers { ledger.wal_sync()? } else { None };
        let t = &config.transport;
        let backoff = Duration::from_millis(t.backoff_ms);
        let breaker_limit = Duration::from_secs(t.outage_wait_seconds);
        Ok(Shared {
            ledger: Mutex::new(ledger),
            accepted: Mutex::new(Vec::new()),
            syncer: wal.map(|w| Syncer::start(w, workers(job, config))),
            retries: Mutex::new(retries),
            in_flight: AtomicUsize::new(0),
            budget: AtomicU64::new(job.limit.unwrap_or(u64::MAX)),
            sent_now: AtomicU64::new(0),
            fatal: Mutex::new(None),
            outage: Mutex::new(None),
            importing: AtomicBool::new(importing),
            breaker: Breaker::new(backoff, breaker_limit),
            breaker_limit,
            wake: tokio::sync::Notify::new(),
            pacer: Pacer::new(t.rate_per_second, t.rate_per_hour),
            envelope_from,
            unsubscribe_base: config.clone(),
            max_attempts: t.max_attempts.max(1),
            backoff,
            give_up: SignedDuration::from_hours(
                i64::try_from(config.send.give_up_after_hours).unwrap_or(i64::MAX / 3600),
            ),
        })
    }

    fn ledger(&self) -> Result<std::sync::MutexGuard<'_, Ledger>, SendError> {
        self.ledger.lock().map_err(|_| SendError::Poisoned)
    }

    /// The 250s waiting to be recorded, taken out to go into a commit.
    fn take_accepted(&self) -> Result<Vec<Accepted>, SendError> {
        Ok(std::mem::take(
            &mut *self.accepted.lock().map_err(|_| SendError::Poisoned)?,
        ))
    }

    /// Records the waiting 250s now, before this worker waits or stops.
    fn flush_accepted(&self) -> Result<(), SendError> {
        let ledger = self.ledger()?;
        let accepted = self.take_accepted()?;
        ledger.record_accepted(&accepted)?;
        Ok(())
    }

    /// How many fresh rows one claim takes: one at a time when the send is
    /// paced, where holding rows ahead gains nothing.
    fn claim_batch(&self) -> usize {
        if self.pacer.interval.is_some() {
            1
        } else {
            CLAIM_BATCH
        }
    }

    fn stopped(&self, job: &SendJob) -> bool {
        let set = |m: &Mutex<Option<String>>| m.lock().map(|f| f.is_some()).unwrap_or(true);
        job.stop.load(Ordering::SeqCst) || set(&self.fatal) || set(&self.outage)
    }

    /// Stops the run for good with this reason (the first one wins).
    fn stop_with(&self, slot: &Mutex<Option<String>>, reason: String) -> Result<(), SendError> {
        slot.lock()
            .map_err(|_| SendError::Poisoned)?
            .get_or_insert(reason);
        self.wake.notify_waiters();
        Ok(())
    }

    /// Queues a row for another try in this run after `delay`.
    fn retry_in(&self, id: i64, delay: Duration) -> Result<(), SendError> {
        self.retries
            .lock()
            .map_err(|_| SendError::Poisoned)?
            .push_back((Instant::now() + delay, id));
        Ok(())
    }
}

enum Next {
    Rows(Vec<Delivery>),
    Wait(Option<Instant>),
    Done,
}

/// Picks the next row: a due retry first, then a fresh recipient.
fn next(job: &SendJob, shared: &Shared) -> Result<Next, SendError> {
    let slug = &job.prepared.slug;
    let now = job.clock.now();
    let due = {
        let mut q = shared.retries.lock().map_err(|_| SendError::Poisoned)?;
        let at = q
            .iter()
            .enumerate()
            .filter(|(_, (at, _))| *at <= Instant::now())
            .map(|(i, _)| i)
            .next();
        at.and_then(|i| q.remove(i)).map(|(_, id)| id)
    };
    if let Some(id) = due {
        let mid = job.prepared.new_message_id();
        if let Some(d) = shared.ledger()?.claim_retry(id, mid, now)? {
            return Ok(Next::Rows(vec![d]));
        }
    }
    // Take units of --limit before claiming, and give back what was not
    // claimed, so concurrent workers never overshoot it.
    let want = shared.claim_batch() as u64;
    let took = shared
        .budget
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
            (b > 0).then(|| b - b.min(want))
        })
        .map_or(0, |b| b.min(want));
    if took > 0 {
        let claimed = {
            let ledger = shared.ledger()?;
            let accepted = shared.take_accepted()?;
            ledger.claim_batch(
                slug,
                job.kind,
                took as usize,
                || job.prepared.new_message_id(),
                now,
                &accepted,
            )?
        };
        shared
            .budget
            .fetch_add(took - claimed.len() as u64, Ordering::SeqCst);
        if !claimed.is_empty() {
            return Ok(Next::Rows(claimed));
        }
    }
    let q = shared.retries.lock().map_err(|_| SendError::Poisoned)?;
    let retry_at = q.iter().map(|(at, _)| *at).min();
    // The import wakes us after each chunk; the short timeout covers a
    // chunk committed between our claim and our wait.
    if shared.importing.load(Ordering::SeqCst) && shared.budget.load(Ordering::SeqCst) > 0 {
        let poll = Instant::now() + IMPORT_POLL;
        return Ok(Next::Wait(Some(retry_at.map_or(poll, |at| at.min(poll)))));
    }
    if let Some(at) = retry_at {
        return Ok(Next::Wait(Some(at)));
    }
    // We count ourselves; anyone else in flight may still queue a retry.
    if shared.in_flight.load(Ordering::SeqCst) > 1 {
        return Ok(Next::Wait(None));
    }
    Ok(Next::Done)
}

/// How long a worker with nothing to send waits for the import's next
/// chunk at most, should it have missed that chunk's wake-up.
const IMPORT_POLL: Duration = Duration::from_millis(20);

/// Sleeps until `until` (200 ms when unknown) or until another worker
/// changes something.
async fn pause(shared: &Shared, until: Option<Instant>) -> Result<(), SendError> {
    // Nothing else may commit for a while: record the 250s first.
    shared.flush_accepted()?;
    let wait = until.map_or(Duration::from_millis(200), |t| {
        t.saturating_duration_since(Instant::now())
    });
    let _ = tokio::time::timeout(wait, shared.wake.notified()).await;
    Ok(())
}

/// What a worker does next.
enum Step {
    Send(Vec<Delivery>),
    Again,
    Stop,
}

/// Asks the breaker, then the queue, for this worker's next step.
async fn step(job: &SendJob, shared: &Shared) -> Result<Step, SendError> {
    if shared.stopped(job) {
        return Ok(Step::Stop);
    }
    let probe = match shared.breaker.admit(Instant::now()) {
        Admit::Go { probe } => probe,
        Admit::Wait(until) => {
            pause(shared, until).await?;
            return Ok(Step::Again);
        }
        Admit::GiveUp(reason) => {
            shared.stop_with(&shared.outage, reason)?;
            return Ok(Step::Stop);
        }
    };
    // Count ourselves in flight before looking, so an idle worker never
    // sees "nothing in flight" while we are between claim and send.
    shared.in_flight.fetch_add(1, Ordering::SeqCst);
    let next = next(job, shared);
    if !matches!(next, Ok(Next::Rows(_))) {
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if probe {
            shared.breaker.cancel_probe();
        }
    }
    match next? {
        Next::Rows(rows) => {
            shared
                .in_flight
                .fetch_add(rows.len().saturating_sub(1), Ordering::SeqCst);
            Ok(Step::Send(rows))
        }
        Next::Wait(until) => {
            pause(shared, until).await?;
            Ok(Step::Again)
        }
        Next::Done => Ok(Step::Stop),
    }
}

/// Whether a row claimed earlier may go now.
enum Held {
    Go,
    Wait(Option<Instant>),
    Stop,
}

/// Asks the stop flag and the breaker about a row this worker holds from
/// an earlier claim, as [`step`] does for a fresh one.
fn admit_held(job: &SendJob, shared: &Shared) -> Result<Held, SendError> {
    if shared.stopped(job) {
        return Ok(Held::Stop);
    }
    match shared.breaker.admit(Instant::now()) {
        Admit::Go { .. } => Ok(Held::Go),
        Admit::Wait(until) => Ok(Held::Wait(until)),
        Admit::GiveUp(reason) => {
            shared.stop_with(&shared.outage, reason)?;
            Ok(Held::Stop)
        }
    }
}

/// A claimed row and the sync of its claim, asked for when it was claimed.
struct Claimed {
    d: Delivery,
    ticket: Option<Ticket>,
}

/// The rows of one claim, the first carrying the sync of that claim's
/// commit (which covers the others, sent after it).
fn claimed(shared: &Shared, rows: Vec<Delivery>) -> Vec<Claimed> {
    let mut ticket = shared.syncer.as_ref().map(Syncer::request);
    rows.into_iter()
        .map(|d| Claimed {
            d,
            ticket: ticket.take(),
        })
        .collect()
}

async fn worker(
    job: Arc<SendJob>,
    shared: Arc<Shared>,
    progress: Arc<dyn Progress>,
    mut conn: Connection,
) -> Result<(), SendError> {
    let mut held: VecDeque<Claimed> = VecDeque::new();
    let result = loop {
        if held.is_empty() {
            match step(&job, &shared).await {
                Ok(Step::Send(rows)) => held.extend(claimed(&shared, rows)),
                Ok(Step::Again) => continue,
                Ok(Step::Stop) => break Ok(()),
                Err(e) => break Err(e),
            }
        } else {
            match admit_held(&job, &shared) {
                Ok(Held::Go) => {}
                Ok(Held::Wait(until)) => {
                    // An outage may last long: the rows go back to the queue
                    // rather than wait claimed.
                    let back = give_back_all(&job, &shared, &mut held);
                    match back.and(pause(&shared, until).await) {
                        Ok(()) => continue,
                        Err(e) => break Err(e),
                    }
                }
                Ok(Held::Stop) => break Ok(()),
                Err(e) => break Err(e),
            }
        }
        let Some(c) = held.pop_front() else {
            continue;
        };
        // The next rows are claimed now, so the sync of their claim has a
        // whole message's time to finish before the first one's final `.`.
        if held.is_empty() {
            match prefetch(&job, &shared) {
                Ok(rows) => held.extend(rows),
                Err(e) => break Err(e),
            }
        }
        let result = deliver(&job, &shared, progress.as_ref(), &mut conn, c).await;
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        shared.wake.notify_waiters();
        if let Err(e) = result {
            break Err(e);
        }
    };
    let given_back = give_back_all(&job, &shared, &mut held);
    let flushed = shared.flush_accepted();
    conn.close().await;
    shared.wake.notify_waiters();
    result.and(given_back).and(flushed)
}

/// Claims this worker's next rows ahead, when there are some at once and
/// nothing holds the send back; only where claims need a sync.
fn prefetch(job: &SendJob, shared: &Shared) -> Result<Vec<Claimed>, SendError> {
    if shared.syncer.is_none() || shared.stopped(job) || !shared.breaker.is_closed() {
        return Ok(Vec::new());
    }
    shared.in_flight.fetch_add(1, Ordering::SeqCst);
    match next(job, shared) {
        Ok(Next::Rows(rows)) => {
            shared
                .in_flight
                .fetch_add(rows.len().saturating_sub(1), Ordering::SeqCst);
            Ok(claimed(shared, rows))
        }
        other => {
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            other.map(|_| Vec::new())
        }
    }
}

/// Rows claimed ahead that the run does not send now go back untried,
/// with their units of `--limit`.
fn give_back_all(
    job: &SendJob,
    shared: &Shared,
    held: &mut VecDeque<Claimed>,
) -> Result<(), SendError> {
    let mut first_error = Ok(());
    for c in held.drain(..) {
        first_error = first_error.and(give_back(job, shared, c));
    }
    first_error
}

/// A row claimed ahead goes back untried, with its unit of `--limit`.
fn give_back(job: &SendJob, shared: &Shared, c: Claimed) -> Result<(), SendError> {
    shared.ledger()?.release(
        c.d.id,
        "claimed, but the run stopped before sending it",
        job.clock.now(),
    )?;
    if c.d.attempts == 1 {
        shared.budget.fetch_add(1, Ordering::SeqCst);
    }
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

/// Builds, signs and sends one recipient's message and records the answer.
async fn deliver(
    job: &SendJob,
    shared: &Shared,
    progress: &dyn Progress,
    conn: &mut Connection,
    c: Claimed,
) -> Result<(), SendError> {
    let Claimed { d, ticket } = c;
    let (envelope, signature, bytes) = match build(job, shared, &d) {
        Ok(m) => m,
        Err(reason) => return fail(job, shared, progress, &d, reason),
    };
    shared.pacer.wait().await;
    let (id, now) = (d.id, job.clock.now());
    // First the claim on disk (after a reboot it alone makes the row
    // uncertain), then the mark, which needs no sync: a kill leaves it in
    // the page cache. So a kill finds a mark only where the `.` follows.
    // The 250s other messages got since the last commit go into this one.
    let mark = move || async move {
        if let Some(t) = ticket {
            t.wait().await?;
        }
        let poisoned = || LedgerError::Mark("the ledger lock was poisoned".into());
        let ledger = shared.ledger.lock().map_err(|_| poisoned())?;
        let mut waiting = shared.accepted.lock().map_err(|_| poisoned())?;
        let accepted = std::mem::take(&mut *waiting);
        let marked = ledger.mark_data_recording(id, now, &accepted);
        if marked.is_err() {
            // Not recorded: they stay waiting for the next commit.
            waiting.extend(accepted);
        }
        marked
    };
    let result = conn
        .send(
            &envelope,
            &[&signature, &bytes],
            &outbox_name(&d.recipient.email),
            mark,
        )
        .await;
    settle(job, shared, progress, d, result)
}

/// The recipient's envelope, DKIM-Signature fields (empty when unsigned)
/// and message, or why there is none.
fn build(
    job: &SendJob,
    shared: &Shared,
    d: &Delivery,
) -> Result<(Envelope, Vec<u8>, Vec<u8>), String> {
    let cfg = &shared.unsubscribe_base;
    // The token recorded at import, not a fresh one: after a secret rotation
    // a resumed send must still hand out the token the ledger can look up.
    let token = if d.token.is_empty() {
        job.secret.token(&cfg.sender.list_id, &d.recipient.email)
    } else {
        d.token.clone()
    };
    let url = unsubscribe_url(cfg, &token);
    // Date is set now, when the message goes to the transport, not at import.
    let now = job.clock.now();
    let prepared = match &job.variants {
        Some(v) => v.for_reader(&d.recipient),
        None => Arc::clone(&job.prepared),
    };
    let bytes = prepared
        .message(&Personal {
            recipient: &d.recipient,
            unsubscribe_url: &url,
            unsubscribe_token: &token,
            message_id: d.message_id.clone(),
            date: system_time(now),
            test: job.kind == SendKind::Test,
        })
        .map_err(|e| e.to_string())?;
    let signature = match &job.signer {
        Some(s) => s
            .signature(&bytes, now)
            .map_err(|e| format!("DKIM signing failed: {e}"))?,
        None => Vec::new(),
    };
    let to =
        crate::deliver::message::wire_address(&d.recipient.email).map_err(|e| e.to_string())?;
    let envelope = Envelope::new(Some(shared.envelope_from.clone()), vec![to])
        .map_err(|e| format!("invalid envelope: {e}"))?;
    Ok((envelope, signature, bytes))
}

/// Records the transport's answer for one row.
fn settle(
    job: &SendJob,
    shared: &Shared,
    progress: &dyn Progress,
    d: Delivery,
    result: Result<String, DeliveryError>,
) -> Result<(), SendError> {
    let now = job.clock.now();
    if !matches!(result, Err(DeliveryError::Outage(_)))
        && let Some(lasted) = shared.breaker.success(Instant::now())
    {
        progress.event(&Event::Recovered(lasted));
    }
    match result {
        Ok(reply) => {
            shared
                .accepted
                .lock()
                .map_err(|_| SendError::Poisoned)?
                .push(Accepted {
                    id: d.id,
                    reply,
                    at: now,
                });
            shared.sent_now.fetch_add(1, Ordering::SeqCst);
            progress.event(&Event::Delivered);
        }
        Err(DeliveryError::Permanent {
            reply,
            unknown_user,
        }) => {
            if unknown_user && job.kind == SendKind::Real && !job.dry_run {
                shared
                    .ledger()?
                    .suppress(&d.recipient.email, "hard-bounce", "smtp", now)?;
            }
            fail(job, shared, progress, &d, reply)?;
        }
        Err(DeliveryError::Transient(reply)) => temporary(job, shared, progress, &d, reply)?,
        Err(DeliveryError::Lost(reply)) => {
            shared
                .ledger()?
                .set_state(d.id, DeliveryState::Uncertain, Some(&reply), now)?;
            progress.event(&Event::Lost {
                email: d.recipient.email.clone(),
                reply,
            });
        }
        Err(DeliveryError::Outage(reply)) => outage(shared, progress, &d, reply, now)?,
        Err(DeliveryError::Fatal(reply) | DeliveryError::Unmarked(reply)) => {
            // Nothing reached the server: the row goes back to the queue as
            // if it had not been tried.
            shared.ledger()?.release(d.id, &reply, now)?;
            shared.stop_with(&shared.fatal, reply)?;
        }
    }
    Ok(())
}

/// A recipient failed for good.
fn fail(
    job: &SendJob,
    shared: &Shared,
    progress: &dyn Progress,
    d: &Delivery,
    reply: String,
) -> Result<(), SendError> {
    shared
        .ledger()?
        .set_state(d.id, DeliveryState::Failed, Some(&reply), job.clock.now())?;
    progress.event(&Event::Failed {
        email: d.recipient.email.clone(),
        reply,
    });
    Ok(())
}

/// A temporary failure: retried in this run while tries are left, then
/// deferred to later runs, then failed once its queue lifetime is over.
fn temporary(
    job: &SendJob,
    shared: &Shared,
    progress: &dyn Progress,
    d: &Delivery,
    reply: String,
) -> Result<(), SendError> {
    let now = job.clock.now();
    let first = d.first_failed_at.unwrap_or(now);
    let age = now.duration_since(first);
    if age >= shared.give_up {
        let hours = shared.give_up.as_hours();
        return fail(
            job,
            shared,
            progress,
            d,
            format!("gave up after {hours} h of temporary failures: {reply}"),
        );
    }
    if d.attempts < shared.max_attempts {
        shared.ledger()?.retry_later(d.id, &reply, now)?;
        shared.retry_in(d.id, backoff(shared.backoff, d.attempts))?;
        progress.event(&Event::Retry {
            email: d.recipient.email.clone(),
            attempt: d.attempts,
            error: reply,
        });
        return Ok(());
    }
    let next = next_attempt(now, first, shared.give_up);
    shared.ledger()?.defer(d.id, &reply, next, now)?;
    progress.event(&Event::Deferred {
        email: d.recipient.email.clone(),
        reply,
        next_attempt: next,
    });
    Ok(())
}

/// When a deferred row is tried again: after as long as it has been
/// failing, at least 5 minutes and at most an hour (so 5, 10, 20, 40, 60,
/// 60… minutes), and once more at the end of its queue lifetime.
fn next_attempt(now: Timestamp, first: Timestamp, lifetime: SignedDuration) -> Timestamp {
    let wait = now
        .duration_since(first)
        .clamp(SignedDuration::from_mins(5), SignedDuration::from_hours(1));
    let end = first.checked_add(lifetime).unwrap_or(Timestamp::MAX);
    now.checked_add(wait)
        .unwrap_or(Timestamp::MAX)
        .min(end.max(now))
}

/// The relay is unreachable: the row goes back untried and the breaker
/// pauses every worker.
fn outage(
    shared: &Shared,
    progress: &dyn Progress,
    d: &Delivery,
    reply: String,
    now: Timestamp,
) -> Result<(), SendError> {
    shared.ledger()?.release(d.id, &reply, now)?;
    // A retry row was taken off the in-run queue: put it back, due at once
    // (the breaker decides when anyone sends again).
    if d.attempts > 1 {
        shared.retry_in(d.id, Duration::ZERO)?;
    }
    let (retry_in, lasted) = shared.breaker.trip(&reply, Instant::now());
    progress.event(&Event::Outage {
        reason: reply,
        retry_in,
        lasted,
        limit: shared.breaker_limit,
    });
    Ok(())
}

/// Exponential backoff with ±50 % jitter, capped at a minute.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
    let capped = exp.min(Duration::from_secs(60));
    let jitter: f64 = rand::random_range(0.5..1.5);
    capped.mul_f64(jitter)
}

/// Spaces messages to respect the provider's per-second and per-hour quota.
struct Pacer {
    interval: Option<Duration>,
    next: tokio::sync::Mutex<Instant>,
}

impl Pacer {
    fn new(per_second: f64, per_hour: u64) -> Self {
        let mut interval: Option<Duration> = None;
        if per_second > 0.0 {
            interval = Some(Duration::from_secs_f64(1.0 / per_second));
        }
        if per_hour > 0 {
            let h = Duration::from_secs_f64(3600.0 / per_hour as f64);
            interval = Some(interval.map_or(h, |i| i.max(h)));
        }
        Self {
            interval,
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// Test copies (`--to`) in one transaction: a handful of rows, each with
/// the list's fields when the address is on a list.
fn import_test(job: &SendJob, config: &Config, ledger: &mut Ledger) -> Result<(), SendError> {
    let slug = job.prepared.slug.clone();
    let list_id = config.sender.list_id.clone();
    let secret = job.secret.clone();
    let mut people = Vec::new();
    for email in &job.to {
        check_address(email)?;
        let found = lists::find(&job.lists, email).ok().flatten();
        people.push(found.unwrap_or_else(|| Recipient::new(email.clone(), "")));
    }
    ledger.import(&slug, SendKind::Test, |add| {
        let mut dups = 0;
        for r in &people {
            if !add(r, &secret.token(&list_id, &r.email))? {
                dups += 1;
            }
        }
        Ok((0, dups))
    })?;
    Ok(())
}

/// Rows in the first chunk an import commits: few, so the first message
/// leaves soon after the start.
const FIRST_CHUNK: usize = 1_000;

/// Rows in every later chunk. Each commit rewrites the index pages its
/// rows touched, so larger chunks import faster, while the ledger's memory
/// grows with them: a million rows took 18.8 s and 54 MB peak in chunks of
/// 20,000, 14.7 s and 58 MB in 30,000, 10 s and 72 MB in 50,000.
const CHUNK: usize = 30_000;

/// Where a streamed import starts.
struct ImportFrom {
    /// List rows (in list order) an earlier run already read in.
    skip: u64,
    /// Rows in the send when it starts.
    total: u64,
    /// `sender.list_id`, for the unsubscribe tokens.
    list_id: String,
}

/// The import's own connection to the ledger: a worker's commit never
/// waits behind a whole chunk on the workers' mutex, only on SQLite's
/// write lock, and PostgreSQL gets a session per thread.
fn second_connection(ledger: &Ledger) -> Result<Ledger, SendError> {
    ledger.reopen()?.ok_or_else(|| {
        SendError::Ledger(LedgerError::Setting(
            "an in-memory ledger has no second connection for the import".into(),
        ))
    })
}

/// Starts the import thread: it reads the lists into the ledger chunk by
/// chunk while the workers send, and stops the run if it fails.
fn spawn_import(
    job: &Arc<SendJob>,
    shared: &Arc<Shared>,
    progress: &Arc<dyn Progress>,
    mut ledger: Ledger,
    from: ImportFrom,
) -> std::thread::JoinHandle<()> {
    let (job, shared, progress) = (Arc::clone(job), Arc::clone(shared), Arc::clone(progress));
    // A plain thread: the import blocks on files and the database, and
    // the `postgres` client must not run on a tokio thread.
    std::thread::spawn(move || {
        let result = import_lists(&job, &shared, progress.as_ref(), &mut ledger, from);
        if let Err(e) = result {
            let reason = format!("reading the lists into the ledger failed: {e}");
            let _ = shared.stop_with(&shared.fatal, reason);
        }
        shared.importing.store(false, Ordering::SeqCst);
        shared.wake.notify_waiters();
    })
}

/// Waits for the import thread to end.
async fn join_import(import: Option<std::thread::JoinHandle<()>>) -> Result<(), SendError> {
    let Some(handle) = import else {
        return Ok(());
    };
    match tokio::task::spawn_blocking(move || handle.join()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(SendError::Poisoned),
    }
}

/// One chunk of an import being gathered.
struct Chunk<'a> {
    job: &'a SendJob,
    shared: &'a Shared,
    progress: &'a dyn Progress,
    ledger: &'a mut Ledger,
    rows: ImportRows,
    /// List rows consumed, chunks committed and this one.
    consumed: u64,
    /// Invalid rows in this chunk.
    invalid: u64,
    /// Rows in the send, as committed.
    total: u64,
    first: bool,
}

impl Chunk<'_> {
    /// Takes one list row; commits the chunk when it is full. Breaks when
    /// the run stops or the commit fails (kept in `failed`).
    fn take(&mut self, row: Row, list_id: &str, failed: &mut Option<SendError>) -> ControlFlow<()> {
        match row {
            Row::Recipient(r) => {
                let token = self.job.secret.token(list_id, &r.email);
                self.rows.push(&r, &token);
            }
            Row::Skipped(s) => {
                self.invalid += 1;
                self.progress.event(&Event::Skipped(s));
            }
        }
        self.consumed += 1;
        let size = if self.first { FIRST_CHUNK } else { CHUNK };
        if self.rows.len() < size {
            return ControlFlow::Continue(());
        }
        if let Err(e) = self.commit(false) {
            *failed = Some(e);
            return ControlFlow::Break(());
        }
        if self.shared.stopped(self.job) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    /// Commits the rows gathered with the import's progress, and wakes
    /// the workers waiting for them.
    fn commit(&mut self, done: bool) -> Result<(), SendError> {
        let progress = ImportProgress {
            rows: self.consumed,
            invalid: self.invalid,
            done,
        };
        let (slug, kind) = (&self.job.prepared.slug, self.job.kind);
        self.total += self
            .ledger
            .import_chunk(slug, kind, &self.rows, &progress)?;
        self.rows.clear();
        self.invalid = 0;
        self.first = false;
        self.progress.event(&Event::Imported {
            total: self.total,
            done,
        });
        self.shared.wake.notify_waiters();
        Ok(())
    }
}

/// Reads every list after the first `from.skip` rows into the ledger, in
/// chunks of one transaction each; the last one records the import done.
/// A stopped run leaves the rest for the next run.
fn import_lists(
    job: &SendJob,
    shared: &Shared,
    progress: &dyn Progress,
    ledger: &mut Ledger,
    from: ImportFrom,
) -> Result<(), SendError> {
    let mut chunk = Chunk {
        job,
        shared,
        progress,
        ledger,
        rows: ImportRows::default(),
        consumed: from.skip,
        invalid: 0,
        total: from.total,
        first: true,
    };
    let mut skip = from.skip;
    for list in &job.lists {
        let mut failed = None;
        let mut broke = false;
        let seen = lists::for_each_from(list, skip, |row| {
            let flow = chunk.take(row, &from.list_id, &mut failed);
            broke |= flow.is_break();
            flow
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if broke {
            return Ok(());
        }
        skip = skip.saturating_sub(seen);
    }
    chunk.commit(true)
}

/// Loads `send.suppressed` (CSV: email, optional reason) into the ledger.
fn import_suppression_file(
    config: &Config,
    ledger: &Ledger,
    now: jiff::Timestamp,
) -> Result<(), SendError> {
    let path = config.resolve(&config.send.suppressed);
    if !path.exists() {
        return Ok(());
    }
    let mut rows = Vec::new();
    lists::for_each(&path, |row| {
        if let Row::Recipient(r) = row {
            let reason = r
                .fields
                .iter()
                .find(|(k, _)| k == "reason")
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "manual".into());
            rows.push((r.email, reason));
        }
    })?;
    for (email, reason) in rows {
        ledger.suppress(&email, &reason, "file", now)?;
    }
    Ok(())
}

/// Dry runs count suppressions recorded by earlier real sends too.
fn copy_suppressions(
    config: &Config,
    into: &Ledger,
    now: jiff::Timestamp,
) -> Result<(), SendError> {
    let Some(real) = Ledger::open_existing_config(config)? else {
        return Ok(());
    };
    for s in real.suppressions()? {
        into.suppress(&s.email, &s.reason, &s.source, now)?;
    }
    Ok(())
}
