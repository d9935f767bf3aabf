//! Sending an issue: recipients into the ledger, then a pool of workers that
//! each claim a row, build and sign its message, hand it to the transport
//! and record the answer.
//!
//! Exactly-once comes from the ledger's order of writes (see
//! [`crate::deliver::ledger`]); resumability from the ledger being the queue: a rerun
//! skips the import and continues with what is still pending.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::address::Envelope;

use crate::audience::lists::{self, ListError, Row, SkippedRow};
use crate::audience::recipient::Recipient;
use crate::audience::recipient::{AddressError, check_address};
use crate::audience::token::{Secret, unsubscribe_url};
use crate::clock::{Clock, system_time};
use crate::config::Config;
use crate::deliver::dkim::Signer;
use crate::deliver::ledger::{
    Counts, Delivery, DeliveryState, Ledger, LedgerError, SendKind, SendState,
};
use crate::deliver::message::{Personal, PreparedIssue};
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
    /// A locked mutex was poisoned by a panicking worker.
    #[error("internal error: a send worker stopped unexpectedly")]
    Poisoned,
}

/// What to send and how.
pub struct SendJob {
    /// The issue, encoded once.
    pub prepared: Arc<PreparedIssue>,
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
    /// Rows left `sending` by a dead run were marked uncertain.
    Uncertain(u64),
    /// The queue is ready: this many messages to go.
    Started {
        /// Rows waiting.
        pending: u64,
        /// Rows in the send overall.
        total: u64,
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
    /// A recipient failed for good.
    Failed {
        /// The recipient.
        email: String,
        /// The last reply.
        reply: String,
    },
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
    /// Rows of earlier runs that became uncertain in this one.
    pub new_uncertain: u64,
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
    let slug = job.prepared.slug.clone();
    let kind = job.kind;
    let mut ledger = if job.dry_run {
        let l = Ledger::in_memory()?;
        copy_suppressions(config, &l, job.clock.now())?;
        l
    } else {
        Ledger::open(&config.resolve(&config.send.ledger))?
    };
    if kind == SendKind::Test {
        ledger.reset_test(&slug)?;
    }
    let record = ledger.send_record(&slug, kind)?;
    if kind == SendKind::Real
        && let Some(r) = &record
        && r.state == SendState::Done
    {
        let c = ledger.counts(&slug, kind)?;
        if c.pending == 0 && (c.uncertain == 0 || !job.resend_uncertain) {
            return Err(SendError::AlreadySent {
                issue: slug,
                sent: c.sent,
                finished: r.finished_at.clone().unwrap_or_default(),
            });
        }
    }
    let new_uncertain = ledger.begin(&slug, kind, &job.prepared.subject, job.clock.now())?;
    if new_uncertain > 0 {
        progress.event(&Event::Uncertain(new_uncertain));
    }
    // Suppressions from the file apply to every run, added since or not.
    import_suppression_file(config, &ledger, job.clock.now())?;
    if !record.as_ref().is_some_and(|r| r.imported) {
        import(&job, config, &mut ledger, progress.as_ref())?;
    }
    if job.resend_uncertain {
        ledger.requeue_uncertain(&slug, kind)?;
    }
    let record = ledger.send_record(&slug, kind)?;
    let counts = ledger.counts(&slug, kind)?;
    progress.event(&Event::Started {
        pending: counts.pending,
        total: counts.total(),
    });

    let envelope_from = config
        .sender
        .envelope_from
        .as_deref()
        .unwrap_or(&config.sender.from_address)
        .parse::<lettre::Address>()
        .map_err(|e| SendError::Sender(e.to_string()))?;
    let retries: VecDeque<(Instant, i64)> = ledger
        .retry_ids(&slug, kind)?
        .into_iter()
        .map(|id| (Instant::now(), id))
        .collect();
    let shared = Arc::new(Shared {
        ledger: Mutex::new(ledger),
        retries: Mutex::new(retries),
        in_flight: AtomicUsize::new(0),
        budget: AtomicU64::new(job.limit.unwrap_or(u64::MAX)),
        sent_now: AtomicU64::new(0),
        fatal: Mutex::new(None),
        wake: tokio::sync::Notify::new(),
        pacer: Pacer::new(
            config.transport.rate_per_second,
            config.transport.rate_per_hour,
        ),
        envelope_from,
        unsubscribe_base: config.clone(),
        max_attempts: config.transport.max_attempts.max(1),
        backoff: Duration::from_millis(config.transport.backoff_ms),
    });
    let job = Arc::new(job);
    let workers = match &job.transport {
        Transport::Smtp(_) => config.transport.pool_size.max(1),
        _ => 1,
    };
    let folder = match kind {
        SendKind::Real => slug.clone(),
        SendKind::Test => format!("{slug}-test"),
    };
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (job, shared, progress) =
            (Arc::clone(&job), Arc::clone(&shared), Arc::clone(&progress));
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
    if let Some(e) = first_error {
        return Err(e);
    }
    let shared = Arc::try_unwrap(shared).map_err(|_| SendError::Poisoned)?;
    let ledger = shared
        .ledger
        .into_inner()
        .map_err(|_| SendError::Poisoned)?;
    let counts = ledger.counts(&slug, kind)?;
    let interrupted = job.stop.load(Ordering::SeqCst);
    let state = if counts.pending == 0 && counts.sending == 0 {
        SendState::Done
    } else {
        SendState::Stopped
    };
    ledger.finish(&slug, kind, state, job.clock.now())?;
    Ok(Summary {
        counts,
        sent_now: shared.sent_now.load(Ordering::SeqCst),
        invalid: record.as_ref().map_or(0, |r| r.invalid),
        duplicates: record.as_ref().map_or(0, |r| r.duplicates),
        duration: started.elapsed(),
        interrupted,
        fatal: shared.fatal.into_inner().map_err(|_| SendError::Poisoned)?,
        new_uncertain,
    })
}

struct Shared {
    ledger: Mutex<Ledger>,
    retries: Mutex<VecDeque<(Instant, i64)>>,
    in_flight: AtomicUsize,
    budget: AtomicU64,
    sent_now: AtomicU64,
    fatal: Mutex<Option<String>>,
    wake: tokio::sync::Notify,
    pacer: Pacer,
    envelope_from: lettre::Address,
    unsubscribe_base: Config,
    max_attempts: u32,
    backoff: Duration,
}

impl Shared {
    fn ledger(&self) -> Result<std::sync::MutexGuard<'_, Ledger>, SendError> {
        self.ledger.lock().map_err(|_| SendError::Poisoned)
    }

    fn stopped(&self, job: &SendJob) -> bool {
        job.stop.load(Ordering::SeqCst) || self.fatal.lock().map(|f| f.is_some()).unwrap_or(true)
    }
}

enum Next {
    Row(Delivery),
    Wait(Option<Instant>),
    Done,
}

/// Picks the next row: a due retry first, then a fresh recipient.
fn next(job: &SendJob, shared: &Shared) -> Result<Next, SendError> {
    let slug = &job.prepared.slug;
    let now = job.clock.now();
    let due = {
        let mut q = shared.retries.lock().map_err(|_| SendError::Poisoned)?;
        match q.front() {
            Some((at, _)) if *at <= Instant::now() => q.pop_front().map(|(_, id)| id),
            _ => None,
        }
    };
    if let Some(id) = due {
        let mid = job.prepared.new_message_id();
        if let Some(d) = shared.ledger()?.claim_retry(id, mid, now)? {
            return Ok(Next::Row(d));
        }
    }
    // Take one unit of --limit before claiming, and give it back if there
    // was nothing to claim, so concurrent workers never overshoot it.
    let took = shared
        .budget
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
        .is_ok();
    if took {
        let claimed =
            shared
                .ledger()?
                .claim_next(slug, job.kind, || job.prepared.new_message_id(), now)?;
        match claimed {
            Some(d) => return Ok(Next::Row(d)),
            None => {
                shared.budget.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let q = shared.retries.lock().map_err(|_| SendError::Poisoned)?;
    if let Some((at, _)) = q.iter().min_by_key(|(at, _)| *at) {
        return Ok(Next::Wait(Some(*at)));
    }
    // We count ourselves; anyone else in flight may still queue a retry.
    if shared.in_flight.load(Ordering::SeqCst) > 1 {
        return Ok(Next::Wait(None));
    }
    Ok(Next::Done)
}

async fn worker(
    job: Arc<SendJob>,
    shared: Arc<Shared>,
    progress: Arc<dyn Progress>,
    mut conn: Connection,
) -> Result<(), SendError> {
    loop {
        if shared.stopped(&job) {
            break;
        }
        // Count ourselves in flight before looking, so an idle worker never
        // sees "nothing in flight" while we are between claim and send.
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let next = next(&job, &shared);
        let d = match next {
            Ok(Next::Row(d)) => d,
            Ok(Next::Wait(until)) => {
                shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                let wait = until.map_or(Duration::from_millis(200), |t| {
                    t.saturating_duration_since(Instant::now())
                });
                let _ = tokio::time::timeout(wait, shared.wake.notified()).await;
                continue;
            }
            Ok(Next::Done) => {
                shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                break;
            }
            Err(e) => {
                shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                shared.wake.notify_waiters();
                return Err(e);
            }
        };
        let result = deliver(&job, &shared, progress.as_ref(), &mut conn, d).await;
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        shared.wake.notify_waiters();
        result?;
    }
    conn.close().await;
    shared.wake.notify_waiters();
    Ok(())
}

async fn deliver(
    job: &SendJob,
    shared: &Shared,
    progress: &dyn Progress,
    conn: &mut Connection,
    d: Delivery,
) -> Result<(), SendError> {
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
    let built = job.prepared.message(&Personal {
        recipient: &d.recipient,
        unsubscribe_url: &url,
        unsubscribe_token: &token,
        message_id: d.message_id.clone(),
        date: system_time(now),
        test: job.kind == SendKind::Test,
    });
    let fail = |reply: String| -> Result<(), SendError> {
        shared
            .ledger()?
            .set_state(d.id, DeliveryState::Failed, Some(&reply), job.clock.now())?;
        progress.event(&Event::Failed {
            email: d.recipient.email.clone(),
            reply,
        });
        Ok(())
    };
    let bytes = match built {
        Ok(b) => b,
        Err(e) => return fail(e.to_string()),
    };
    let bytes = match &job.signer {
        Some(s) => match s.sign(&bytes, now) {
            Ok(b) => b,
            Err(e) => return fail(format!("DKIM signing failed: {e}")),
        },
        None => bytes,
    };
    let to = match crate::deliver::message::wire_address(&d.recipient.email) {
        Ok(a) => a,
        Err(e) => return fail(e.to_string()),
    };
    let envelope = match Envelope::new(Some(shared.envelope_from.clone()), vec![to]) {
        Ok(e) => e,
        Err(e) => return fail(format!("invalid envelope: {e}")),
    };
    shared.pacer.wait().await;
    let result = conn
        .send(&envelope, &bytes, &outbox_name(&d.recipient.email))
        .await;
    let now = job.clock.now();
    match result {
        Ok(reply) => {
            shared
                .ledger()?
                .set_state(d.id, DeliveryState::Sent, Some(&reply), now)?;
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
            fail(reply)?;
        }
        Err(DeliveryError::Transient(reply)) => {
            if d.attempts >= shared.max_attempts {
                fail(format!("gave up after {} tries: {reply}", d.attempts))?;
            } else {
                shared
                    .ledger()?
                    .set_state(d.id, DeliveryState::Pending, Some(&reply), now)?;
                let delay = backoff(shared.backoff, d.attempts);
                shared
                    .retries
                    .lock()
                    .map_err(|_| SendError::Poisoned)?
                    .push_back((Instant::now() + delay, d.id));
                progress.event(&Event::Retry {
                    email: d.recipient.email.clone(),
                    attempt: d.attempts,
                    error: reply,
                });
            }
        }
        Err(DeliveryError::Fatal(reply)) => {
            // Nothing reached the server: the row goes back to the queue as
            // if it had not been tried.
            shared.ledger()?.release(d.id, &reply, now)?;
            let mut fatal = shared.fatal.lock().map_err(|_| SendError::Poisoned)?;
            fatal.get_or_insert(reply);
        }
    }
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

fn import(
    job: &SendJob,
    config: &Config,
    ledger: &mut Ledger,
    progress: &dyn Progress,
) -> Result<(), SendError> {
    let slug = job.prepared.slug.clone();
    let list_id = config.sender.list_id.clone();
    let secret = job.secret.clone();
    let mut list_error = None;
    match job.kind {
        SendKind::Real => {
            let lists = job.lists.clone();
            ledger.import(&slug, SendKind::Real, |add| {
                let (mut invalid, mut dups) = (0u64, 0u64);
                for list in &lists {
                    let mut ledger_error = None;
                    let res = lists::for_each(list, |row| {
                        if ledger_error.is_some() {
                            return;
                        }
                        match row {
                            Row::Recipient(r) => {
                                let token = secret.token(&list_id, &r.email);
                                match add(&r, &token) {
                                    Ok(true) => {}
                                    Ok(false) => dups += 1,
                                    Err(e) => ledger_error = Some(e),
                                }
                            }
                            Row::Skipped(s) => {
                                invalid += 1;
                                progress.event(&Event::Skipped(s));
                            }
                        }
                    });
                    if let Some(e) = ledger_error {
                        return Err(e);
                    }
                    if let Err(e) = res {
                        list_error = Some(e);
                        break;
                    }
                }
                Ok((invalid, dups))
            })?;
        }
        SendKind::Test => {
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
        }
    }
    match list_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
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
    let path = config.resolve(&config.send.ledger);
    if !path.exists() {
        return Ok(());
    }
    let real = Ledger::open(&path)?;
    for s in real.suppressions()? {
        into.suppress(&s.email, &s.reason, &s.source, now)?;
    }
    Ok(())
}
