//! The send ledger: one row per issue × recipient, in SQLite (a file,
//! the default) or PostgreSQL (`send.ledger = "postgres://…"`, for
//! several hosts).
//!
//! A row is marked `sending` (committed) before its SMTP transaction starts,
//! gets an end-of-data mark (`data_at`) just before the message's final `.`
//! is written, and is marked `sent` after the server's 250 (in the next
//! commit a worker makes anyway: see [`Accepted`]). A send killed at
//! any point can be resumed without mailing anyone twice: rows found
//! `sending` with the mark are `uncertain` (reported, resent only on
//! request); rows without it never reached the server's point of delivery
//! and go back to `pending`.
//!
//! The database runs in WAL mode with `synchronous=NORMAL`: every commit
//! survives the process being killed, since it is in the page cache, marks
//! included. A power cut (or an OS crash) keeps only what was synced, so
//! the claim of a row is made durable, by a batched `fdatasync` of the WAL
//! ([`WalSync`]), before its final `.` may be written; a send resumed after
//! a reboot (another boot id than the run that died) treats every row left
//! `sending` as `uncertain`. A delivered message thus never comes back
//! `pending`, and after a mere kill only rows past their mark are uncertain.
//!
//! On PostgreSQL ([`postgres`]) the same writes happen in the same order;
//! each commit is durable when it returns, claims use `FOR UPDATE SKIP
//! LOCKED`, and resumed rows are settled by their mark on any host.

pub mod postgres;
pub mod sqlite;

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::audience::recipient::{Recipient, address_key};
pub use crate::audience::suppression::NewSuppression;
use crate::config::Config;
use postgres::PgLedger;
use sqlite::SqliteLedger;
pub use sqlite::WalSync;

/// Why the ledger could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// SQLite refused an operation.
    #[error("ledger {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The ledger's folder could not be created.
    #[error("cannot create the ledger folder {}: {source}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The write-ahead log could not be made durable.
    #[error("cannot sync the ledger's write-ahead log {}: {source}", path.display())]
    Sync {
        /// The `-wal` file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// PostgreSQL refused an operation or could not be reached.
    #[error("ledger {target}: {}", pg_detail(.source))]
    Postgres {
        /// The database, without its password.
        target: String,
        /// What the client said.
        source: ::postgres::Error,
    },
    /// The connection to the database is gone.
    #[error("{0}")]
    Gone(String),
    /// `send.ledger` or its password settings are wrong.
    #[error("{0}")]
    Setting(String),
    /// Recording end-of-data marks failed (the batch's error, for each of
    /// its messages).
    #[error("cannot record the end-of-data mark: {0}")]
    Mark(String),
}

/// State of one recipient's copy of an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Not tried yet, or waiting for a retry.
    Pending,
    /// Handed to the server; no answer recorded yet.
    Sending,
    /// The server accepted it (250).
    Sent,
    /// Refused for good, or out of retries.
    Failed,
    /// Its end of data was written but no answer came (a run died, or the
    /// connection was lost): may or may not have been delivered.
    Uncertain,
    /// On the suppression list when its turn came.
    Suppressed,
    /// The recipient's server keeps answering 4xx: waiting for its next
    /// attempt (`next_attempt_at`) in a later run.
    Deferred,
}

impl DeliveryState {
    /// The word stored in the database and shown in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Uncertain => "uncertain",
            Self::Suppressed => "suppressed",
            Self::Deferred => "deferred",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "deferred" => Self::Deferred,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "failed" => Self::Failed,
            "uncertain" => Self::Uncertain,
            "suppressed" => Self::Suppressed,
            _ => Self::Pending,
        }
    }
}

/// Where one send (an issue to its list) stands in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    /// A run is sending it, or died while sending it.
    Running,
    /// A run ended before every recipient was done (Ctrl-C, `--limit`, an
    /// outage); the next run resumes it.
    Stopped,
    /// Every recipient is done: sent, failed, suppressed or uncertain.
    Done,
}

impl SendState {
    /// The word stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Done => "done",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "done" => Self::Done,
            "stopped" => Self::Stopped,
            _ => Self::Running,
        }
    }
}

/// A real send to the list, or test copies (`--to`), kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    /// The real send.
    Real,
    /// `[TEST]` copies.
    Test,
}

impl SendKind {
    /// The word stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Real => "real",
            Self::Test => "test",
        }
    }
}

/// A recipient row claimed for sending.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Row id.
    pub id: i64,
    /// The recipient with their fields.
    pub recipient: Recipient,
    /// Tries so far, including the current one.
    pub attempts: u32,
    /// The Message-ID used for this try.
    pub message_id: String,
    /// The unsubscribe token recorded for this recipient: the one the
    /// unsubscribe endpoint looks up, even if the secret rotated since.
    pub token: String,
    /// When its first temporary failure was recorded, if it had one: the
    /// start of its queue lifetime (`send.give_up_after_hours`).
    pub first_failed_at: Option<Timestamp>,
}

/// A server's 250 for one row, recorded as `sent` in the next commit
/// that goes to the ledger anyway (a claim or a mark), not in one of its
/// own: a kill before that commit leaves the row uncertain, never resent.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Row id.
    pub id: i64,
    /// The server's reply.
    pub reply: String,
    /// When the reply came.
    pub at: Timestamp,
}

/// One send's record (per issue and kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    /// Issue slug.
    pub issue: String,
    /// `real` or `test`.
    pub kind: String,
    /// Running, stopped or done.
    pub state: SendState,
    /// Subject at the time of the send.
    pub subject: String,
    /// When the send first started.
    pub started_at: String,
    /// When it last finished, if it did.
    pub finished_at: Option<String>,
    /// Rows skipped because their address was invalid.
    pub invalid: u64,
    /// Rows that repeated an address already on the list.
    pub duplicates: u64,
    /// True once every list has been read into the ledger.
    pub imported: bool,
    /// List rows (recipients and skipped rows, in list order) read into
    /// the ledger so far: a resumed import starts after them.
    pub import_rows: u64,
}

/// The rows of one import chunk, packed: each row's address key, address,
/// name, encoded fields and token end to end in one string. A chunk of
/// `Recipient`s cost about 480 bytes a row in small allocations; this is
/// a third of that, and its buffers are reused chunk after chunk.
#[derive(Debug, Default)]
pub struct ImportRows {
    text: String,
    ends: Vec<usize>,
}

impl ImportRows {
    /// Adds a recipient with its unsubscribe token.
    pub fn push(&mut self, r: &Recipient, token: &str) {
        for part in [
            address_key(&r.email).as_str(),
            &r.email,
            &r.name,
            &encode_fields(&r.fields),
            token,
        ] {
            self.text.push_str(part);
            self.ends.push(self.text.len());
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.ends.len() / 5
    }

    /// True when no row is held.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Forgets the rows, keeping the buffers.
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// Each row as `[key, email, name, fields, token]`.
    pub fn iter(&self) -> impl Iterator<Item = [&str; 5]> {
        self.ends.chunks_exact(5).enumerate().map(|(i, ends)| {
            let start = if i == 0 { 0 } else { self.ends[i * 5 - 1] };
            let mut from = start;
            std::array::from_fn(|k| {
                let part = &self.text[from..ends[k]];
                from = ends[k];
                part
            })
        })
    }
}

/// Where an import stands after one chunk, recorded in that chunk's
/// transaction so the rows and the count of them never disagree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportProgress {
    /// List rows consumed so far, this chunk included.
    pub rows: u64,
    /// Invalid rows in this chunk (added to the send's count).
    pub invalid: u64,
    /// This is the last chunk: every list has been read.
    pub done: bool,
}

/// Counts per state for one send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Waiting.
    pub pending: u64,
    /// In flight.
    pub sending: u64,
    /// Delivered.
    pub sent: u64,
    /// Refused.
    pub failed: u64,
    /// Unknown after a crash.
    pub uncertain: u64,
    /// Suppressed at send time.
    pub suppressed: u64,
    /// Waiting for a later attempt after 4xx replies.
    pub deferred: u64,
}

impl Counts {
    /// Adds `n` rows in `state`.
    pub(crate) fn add(&mut self, state: DeliveryState, n: u64) {
        match state {
            DeliveryState::Pending => self.pending += n,
            DeliveryState::Sending => self.sending += n,
            DeliveryState::Sent => self.sent += n,
            DeliveryState::Failed => self.failed += n,
            DeliveryState::Uncertain => self.uncertain += n,
            DeliveryState::Suppressed => self.suppressed += n,
            DeliveryState::Deferred => self.deferred += n,
        }
    }

    /// Rows in any state.
    pub fn total(&self) -> u64 {
        self.pending
            + self.sending
            + self.sent
            + self.failed
            + self.uncertain
            + self.suppressed
            + self.deferred
    }
}

/// What [`Ledger::begin`] found left in flight by a run that died.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resumed {
    /// Rows whose end of data had been written: now `uncertain`.
    pub uncertain: u64,
    /// Rows that never got that far: back to `pending`, the try not counted.
    pub requeued: u64,
}

/// A deferred recipient and when it is tried next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    /// The address.
    pub email: String,
    /// The last 4xx reply.
    pub reply: String,
    /// Tries made.
    pub attempts: u32,
    /// When a later run tries it again (RFC 3339).
    pub next_attempt_at: String,
}

/// A failed recipient and the server's last reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The address.
    pub email: String,
    /// State (`failed` or `uncertain`).
    pub state: String,
    /// The last reply or error.
    pub reply: String,
    /// Tries made.
    pub attempts: u32,
}

/// Why an address is suppressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// The address as recorded.
    pub email: String,
    /// `unsubscribed`, `hard-bounce`, `complaint`, `manual`.
    pub reason: String,
    /// Where it came from (`file`, `smtp`, `one-click`, ...).
    pub source: String,
    /// When it was recorded.
    pub created_at: String,
}

/// The database error's own message (`db error` alone says nothing).
fn pg_detail(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut s = e.to_string();
            if let Some(cause) = std::error::Error::source(e) {
                s.push_str(&format!(": {cause}"));
            }
            s
        }
    }
}

/// A PostgreSQL ledger: where, as whom, and in which schema.
#[derive(Clone)]
pub struct PgTarget {
    /// The client's settings, password included.
    pub config: ::postgres::Config,
    /// The URL without its password, for logs and errors.
    pub redacted: String,
    /// The schema holding the tables (`send.ledger_schema`), else the
    /// search path's first.
    pub schema: Option<String>,
}

impl PgTarget {
    /// Reads a `postgres://` URL; the password comes from `password`, never
    /// from the URL, so it is never in a log or the config file.
    pub fn parse(
        url: &str,
        password: Option<String>,
        schema: Option<String>,
    ) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a postgres:// URL: {e}"))?;
        if parsed.password().is_some() {
            return Err("the URL holds a password; put it in the variable `send.ledger_password_env` names (default BRIEFING_LEDGER_PASSWORD), or in `send.ledger_password_file`".into());
        }
        let mut config: ::postgres::Config = url
            .parse()
            .map_err(|e| format!("not a usable postgres:// URL: {e}"))?;
        if let Some(p) = password {
            config.password(p);
        }
        config.application_name("briefing");
        if let Some(s) = &schema
            && (s.is_empty() || s.len() > 63)
        {
            return Err("a schema name has 1 to 63 characters".into());
        }
        Ok(Self {
            config,
            redacted: url.to_string(),
            schema,
        })
    }

    /// The schema name used for advisory lock keys (`public` by default).
    pub fn schema_name(&self) -> &str {
        self.schema.as_deref().unwrap_or("public")
    }
}

/// Where the ledger lives, from `send.ledger`.
#[derive(Clone)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(Box<PgTarget>),
}

/// True when `send.ledger` names a PostgreSQL database.
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

impl Location {
    /// The configured ledger: a `postgres://` URL (its password from
    /// `send.ledger_password_file`, the variable `send.ledger_password_env`
    /// names, or `PGPASSWORD`), else a path relative to the config.
    pub fn from_config(config: &Config) -> Result<Self, LedgerError> {
        let raw = config.send.ledger.to_string_lossy();
        if !is_postgres_url(&raw) {
            return Ok(Self::Sqlite(config.ledger_path()));
        }
        let problem = |key: &str, msg: String| {
            LedgerError::Setting(
                config
                    .problem(key, crate::diagnostic::Diagnostic::error(msg))
                    .render(),
            )
        };
        let password = ledger_password(config).map_err(|(k, m)| problem(k, m))?;
        PgTarget::parse(&raw, password, config.send.ledger_schema.clone())
            .map(|t| Self::Postgres(Box::new(t)))
            .map_err(|m| problem("send.ledger", m))
    }

    /// The ledger's name for messages (a PostgreSQL URL without password).
    pub fn display(&self) -> String {
        match self {
            Self::Sqlite(p) => p.display().to_string(),
            Self::Postgres(t) => t.redacted.clone(),
        }
    }
}

/// The database password from the config's file or variable, else
/// `PGPASSWORD`; the error names the key at fault.
fn ledger_password(config: &Config) -> Result<Option<String>, (&'static str, String)> {
    if let Some(file) = &config.send.ledger_password_file {
        let path = config.resolve(file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            (
                "send.ledger_password_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let first = text.lines().next().unwrap_or("").to_string();
        return Ok(Some(first));
    }
    let var = config
        .send
        .ledger_password_env
        .as_deref()
        .unwrap_or("BRIEFING_LEDGER_PASSWORD");
    match std::env::var(var) {
        Ok(p) => Ok(Some(p)),
        Err(_) if config.send.ledger_password_env.is_some() => Err((
            "send.ledger_password_env",
            format!("the variable {var} is not set; expected the ledger database's password"),
        )),
        Err(_) => Ok(std::env::var("PGPASSWORD").ok()),
    }
}

/// An open ledger: SQLite or PostgreSQL, with the same methods.
pub struct Ledger(Backend);

enum Backend {
    Sqlite(SqliteLedger),
    Postgres(PgLedger),
}

/// Calls the same method on whichever backend this ledger has.
macro_rules! each {
    ($self:ident, $l:ident => $e:expr) => {
        match &$self.0 {
            Backend::Sqlite($l) => $e,
            Backend::Postgres($l) => $e,
        }
    };
    (mut $self:ident, $l:ident => $e:expr) => {
        match &mut $self.0 {
            Backend::Sqlite($l) => $e,
            Backend::Postgres($l) => $e,
        }
    };
}

impl Ledger {
    /// Opens (and creates if needed) the SQLite ledger at `path`.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        SqliteLedger::open(path).map(|l| Self(Backend::Sqlite(l)))
    }

    /// The SQLite ledger at `path` if it exists: commands that only read
    /// must not create one (no ledger means nothing was ever sent).
    pub fn open_existing(path: &Path) -> Result<Option<Self>, LedgerError> {
        Ok(SqliteLedger::open_existing(path)?.map(|l| Self(Backend::Sqlite(l))))
    }

    /// Opens the ledger at `at`, creating its tables if needed.
    pub fn open_at(at: &Location) -> Result<Self, LedgerError> {
        match at {
            Location::Sqlite(p) => Self::open(p),
            Location::Postgres(t) => PgLedger::open(t).map(|l| Self(Backend::Postgres(l))),
        }
    }

    /// Opens the configured ledger (`send.ledger`).
    pub fn open_config(config: &Config) -> Result<Self, LedgerError> {
        Self::open_at(&Location::from_config(config)?)
    }

    /// The configured ledger if it exists: a SQLite file that is there, or
    /// any PostgreSQL database (whose tables are created on first use).
    pub fn open_existing_config(config: &Config) -> Result<Option<Self>, LedgerError> {
        match Location::from_config(config)? {
            Location::Sqlite(p) => Self::open_existing(&p),
            at => Self::open_at(&at).map(Some),
        }
    }

    /// A throwaway ledger in memory (for dry runs).
    pub fn in_memory() -> Result<Self, LedgerError> {
        SqliteLedger::in_memory().map(|l| Self(Backend::Sqlite(l)))
    }

    /// True for a PostgreSQL ledger.
    pub fn is_postgres(&self) -> bool {
        matches!(self.0, Backend::Postgres(_))
    }

    /// The record of a send, if it ever started.
    pub fn send_record(
        &self,
        issue: &str,
        kind: SendKind,
    ) -> Result<Option<SendRecord>, LedgerError> {
        each!(self, l => l.send_record(issue, kind))
    }

    /// Why a send's last run stopped before the end (an outage, deferred
    /// recipients, Ctrl-C, `--limit`), as [`Ledger::finish`] recorded it.
    pub fn stop_reason(&self, issue: &str, kind: SendKind) -> Result<Option<String>, LedgerError> {
        each!(self, l => l.stop_reason(issue, kind))
    }

    /// Starts (or resumes) a send on the machine's current boot (see
    /// [`Ledger::begin_on_boot`]).
    pub fn begin(
        &self,
        issue: &str,
        kind: SendKind,
        subject: &str,
        now: Timestamp,
    ) -> Result<Resumed, LedgerError> {
        self.begin_on_boot(issue, kind, subject, boot_id().as_deref(), now)
    }

    /// Starts (or resumes) a send and settles the rows a dead run left
    /// `sending`: with their mark `uncertain`, without it `pending`. On
    /// SQLite only if that run died on this boot (else all `uncertain`);
    /// on PostgreSQL always, as its commits were durable when they returned.
    pub fn begin_on_boot(
        &self,
        issue: &str,
        kind: SendKind,
        subject: &str,
        boot: Option<&str>,
        now: Timestamp,
    ) -> Result<Resumed, LedgerError> {
        each!(self, l => l.begin_on_boot(issue, kind, subject, boot, now))
    }

    /// Forgets an earlier test send of the issue, so `--to` can repeat.
    pub fn reset_test(&self, issue: &str) -> Result<(), LedgerError> {
        each!(self, l => l.reset_test(issue))
    }

    /// Adds recipients as pending rows in one transaction. Calls `rows` with
    /// an adder that returns false for an address already in the send.
    pub fn import(
        &mut self,
        issue: &str,
        kind: SendKind,
        rows: impl FnOnce(
            &mut dyn FnMut(&Recipient, &str) -> Result<bool, LedgerError>,
        ) -> Result<(u64, u64), LedgerError>,
    ) -> Result<(), LedgerError> {
        each!(mut self, l => l.import(issue, kind, rows))
    }

    /// Adds one chunk of the lists as pending rows (an address already in
    /// the send is a duplicate) and records `progress` with them, in one
    /// transaction: a run killed between chunks resumes after the last one
    /// committed. Returns how many rows were new.
    pub fn import_chunk(
        &mut self,
        issue: &str,
        kind: SendKind,
        rows: &ImportRows,
        progress: &ImportProgress,
    ) -> Result<u64, LedgerError> {
        each!(mut self, l => l.import_chunk(issue, kind, rows, progress))
    }

    /// A second connection to the same ledger, for the import thread
    /// (`None` for an in-memory ledger, which has no second connection).
    pub fn reopen(&self) -> Result<Option<Self>, LedgerError> {
        Ok(match &self.0 {
            Backend::Sqlite(l) => l.reopen()?.map(|l| Self(Backend::Sqlite(l))),
            Backend::Postgres(l) => Some(Self(Backend::Postgres(l.reopen()?))),
        })
    }

    /// Claims the next fresh pending row (never tried), marking it
    /// `sending`; suppressed addresses are marked `suppressed` on the way.
    pub fn claim_next(
        &self,
        issue: &str,
        kind: SendKind,
        message_id: impl Fn() -> String,
        now: Timestamp,
    ) -> Result<Option<Delivery>, LedgerError> {
        each!(self, l => l.claim_next(issue, kind, message_id, now))
    }

    /// Claims up to `n` fresh pending rows in one commit, which also
    /// records `accepted` as sent; suppressed addresses are marked on the
    /// way. Fewer than `n` means the queue has no more fresh rows now.
    pub fn claim_batch(
        &self,
        issue: &str,
        kind: SendKind,
        n: usize,
        message_id: impl Fn() -> String,
        now: Timestamp,
        accepted: &[Accepted],
    ) -> Result<Vec<Delivery>, LedgerError> {
        each!(self, l => l.claim_batch(issue, kind, n, message_id, now, accepted))
    }

    /// Claims a pending row for a retry by id, keeping the first try's
    /// Message-ID; an address suppressed since is marked `suppressed`.
    pub fn claim_retry(
        &self,
        id: i64,
        message_id: String,
        now: Timestamp,
    ) -> Result<Option<Delivery>, LedgerError> {
        each!(self, l => l.claim_retry(id, message_id, now))
    }

    /// Puts a claimed row back untouched: the try does not count.
    pub fn release(&self, id: i64, reply: &str, now: Timestamp) -> Result<(), LedgerError> {
        each!(self, l => l.release(id, reply, now))
    }

    /// Rows waiting for a retry (pending after at least one try).
    pub fn retry_ids(&self, issue: &str, kind: SendKind) -> Result<Vec<i64>, LedgerError> {
        each!(self, l => l.retry_ids(issue, kind))
    }

    /// Puts uncertain rows back in the queue (`--resend-uncertain`).
    pub fn requeue_uncertain(&self, issue: &str, kind: SendKind) -> Result<u64, LedgerError> {
        each!(self, l => l.requeue_uncertain(issue, kind))
    }

    /// Puts failed rows whose last reply was not a 5xx back in the queue.
    pub fn requeue_failed(&self, issue: &str, kind: SendKind) -> Result<u64, LedgerError> {
        each!(self, l => l.requeue_failed(issue, kind))
    }

    /// Records a claimed row's end-of-data mark: its final `.` is next.
    pub fn mark_data(&self, id: i64, now: Timestamp) -> Result<(), LedgerError> {
        self.mark_data_recording(id, now, &[])
    }

    /// [`Self::mark_data`], with `accepted` recorded as sent in the same
    /// commit.
    pub fn mark_data_recording(
        &self,
        id: i64,
        now: Timestamp,
        accepted: &[Accepted],
    ) -> Result<(), LedgerError> {
        each!(self, l => l.mark_data_recording(id, now, accepted))
    }

    /// Records `accepted` as sent, in one commit.
    pub fn record_accepted(&self, accepted: &[Accepted]) -> Result<(), LedgerError> {
        if accepted.is_empty() {
            return Ok(());
        }
        each!(self, l => l.record_accepted(accepted))
    }

    /// A handle that makes this ledger's commits durable against power
    /// loss; `None` where commits are durable already (PostgreSQL) or do
    /// not matter (in memory).
    pub fn wal_sync(&self) -> Result<Option<WalSync>, LedgerError> {
        match &self.0 {
            Backend::Sqlite(l) => l.wal_sync(),
            Backend::Postgres(_) => Ok(None),
        }
    }

    /// Records a temporary failure to be retried in this run.
    pub fn retry_later(&self, id: i64, reply: &str, now: Timestamp) -> Result<(), LedgerError> {
        each!(self, l => l.retry_later(id, reply, now))
    }

    /// Defers a row after repeated 4xx replies until `next`.
    pub fn defer(
        &self,
        id: i64,
        reply: &str,
        next: Timestamp,
        now: Timestamp,
    ) -> Result<(), LedgerError> {
        each!(self, l => l.defer(id, reply, next, now))
    }

    /// Puts deferred rows whose next attempt has come back in the queue.
    pub fn wake_deferred(
        &self,
        issue: &str,
        kind: SendKind,
        now: Timestamp,
    ) -> Result<u64, LedgerError> {
        each!(self, l => l.wake_deferred(issue, kind, now))
    }

    /// The earliest next attempt of a deferred row, if any.
    pub fn next_attempt(&self, issue: &str, kind: SendKind) -> Result<Option<String>, LedgerError> {
        each!(self, l => l.next_attempt(issue, kind))
    }

    /// Deferred recipients, next attempt first.
    pub fn deferrals(
        &self,
        issue: &str,
        kind: SendKind,
        limit: usize,
    ) -> Result<Vec<Deferral>, LedgerError> {
        each!(self, l => l.deferrals(issue, kind, limit))
    }

    /// Records a row's new state and the server's reply.
    pub fn set_state(
        &self,
        id: i64,
        state: DeliveryState,
        reply: Option<&str>,
        now: Timestamp,
    ) -> Result<(), LedgerError> {
        each!(self, l => l.set_state(id, state, reply, now))
    }

    /// Closes a send's record as done or stopped, with why it stopped.
    pub fn finish(
        &self,
        issue: &str,
        kind: SendKind,
        state: SendState,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<(), LedgerError> {
        each!(self, l => l.finish(issue, kind, state, reason, now))
    }

    /// Counts per state.
    pub fn counts(&self, issue: &str, kind: SendKind) -> Result<Counts, LedgerError> {
        each!(self, l => l.counts(issue, kind))
    }

    /// Failed and uncertain recipients with their last reply.
    pub fn failures(
        &self,
        issue: &str,
        kind: SendKind,
        limit: usize,
    ) -> Result<Vec<Failure>, LedgerError> {
        each!(self, l => l.failures(issue, kind, limit))
    }

    /// First and last delivery time of a send, for its rate.
    pub fn sent_span(
        &self,
        issue: &str,
        kind: SendKind,
    ) -> Result<Option<(String, String)>, LedgerError> {
        each!(self, l => l.sent_span(issue, kind))
    }

    /// Adds an address to the suppression list (keeps the first reason).
    pub fn suppress(
        &self,
        email: &str,
        reason: &str,
        source: &str,
        now: Timestamp,
    ) -> Result<bool, LedgerError> {
        each!(self, l => l.suppress(email, reason, source, now))
    }

    /// Removes an address from the suppression list.
    pub fn unsuppress(&self, email: &str) -> Result<bool, LedgerError> {
        each!(self, l => l.unsuppress(email))
    }

    /// Whether an address is suppressed, and why.
    pub fn suppression(&self, email: &str) -> Result<Option<Suppression>, LedgerError> {
        each!(self, l => l.suppression(email))
    }

    /// The whole suppression list, oldest first.
    pub fn suppressions(&self) -> Result<Vec<Suppression>, LedgerError> {
        each!(self, l => l.suppressions())
    }

    /// Makes every commit durable against power loss too, for callers whose
    /// answer promises the write is done (a 200 to an unsubscribe); on
    /// PostgreSQL every commit already is.
    pub fn sync_every_commit(&self) -> Result<(), LedgerError> {
        match &self.0 {
            Backend::Sqlite(l) => l.sync_every_commit(),
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// The address an unsubscribe token was issued to, in any send.
    pub fn email_for_token(&self, token: &str) -> Result<Option<String>, LedgerError> {
        each!(self, l => l.email_for_token(token))
    }

    /// Removes an address from the suppression list only if it is there for
    /// `reason`, so a reader resubscribing cannot undo a bounce or complaint.
    pub fn unsuppress_if(&self, email: &str, reason: &str) -> Result<bool, LedgerError> {
        each!(self, l => l.unsuppress_if(email, reason))
    }

    /// Adds many addresses in one transaction; returns how many were new.
    pub fn suppress_all(&mut self, items: &[NewSuppression]) -> Result<u64, LedgerError> {
        each!(mut self, l => l.suppress_all(items))
    }

    /// Every issue with a send record, oldest first.
    pub fn issues(&self) -> Result<Vec<SendRecord>, LedgerError> {
        each!(self, l => l.issues())
    }

    /// Whether a run holds the issue's PostgreSQL advisory lock; `None`
    /// for SQLite, whose lock is a file (see [`crate::deliver::lock`]).
    pub fn lock_held(&self, issue: &str) -> Result<Option<bool>, LedgerError> {
        match &self.0 {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(l) => l.lock_held(issue).map(Some),
        }
    }

    /// Rows per table (sends, deliveries, suppressions), to check a
    /// migration.
    pub fn table_counts(&self) -> Result<(u64, u64, u64), LedgerError> {
        each!(self, l => l.table_counts())
    }
}

/// Every row of a ledger as stored, for `briefing ledger migrate`.
#[derive(Debug, Clone, Default)]
pub struct Dump {
    /// `sends` rows.
    pub sends: Vec<SendRow>,
    /// `deliveries` rows.
    pub deliveries: Vec<DeliveryRow>,
    /// `suppressions` rows.
    pub suppressions: Vec<Suppression>,
}

/// One `sends` row as stored.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct SendRow {
    pub issue: String,
    pub kind: String,
    pub state: String,
    pub subject: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub invalid: i64,
    pub duplicates: i64,
    pub imported: bool,
    pub stop_reason: Option<String>,
    pub boot_id: Option<String>,
    pub import_rows: i64,
}

/// One `deliveries` row as stored.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct DeliveryRow {
    pub id: i64,
    pub issue: String,
    pub kind: String,
    pub email_key: String,
    pub email: String,
    pub name: String,
    pub fields: String,
    pub state: String,
    pub attempts: i32,
    pub last_reply: Option<String>,
    pub message_id: Option<String>,
    pub token: Option<String>,
    pub updated_at: Option<String>,
    pub sent_at: Option<String>,
    pub data_at: Option<String>,
    pub next_attempt_at: Option<String>,
    pub first_failed_at: Option<String>,
}

/// What a migration copied, counted in the source and then in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Rows per table (sends, deliveries, suppressions) in the SQLite file.
    pub source: (u64, u64, u64),
    /// The same, counted in PostgreSQL after the copy.
    pub target: (u64, u64, u64),
}

/// Why a migration cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Either ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The target already holds a ledger.
    #[error("{0} already holds {1} send(s); migrate only into an empty ledger")]
    NotEmpty(String, u64),
    /// The counts after the copy differ from the source's.
    #[error(
        "the copy does not match: source has {from:?} (sends, deliveries, suppressions), target {target:?}"
    )]
    Mismatch {
        /// Source counts.
        from: (u64, u64, u64),
        /// Target counts.
        target: (u64, u64, u64),
    },
}

/// Rows a dead SQLite run left `sending` are settled as SQLite would: by
/// their mark only if that run died on this boot, else `uncertain`, since
/// a power cut may have lost the mark. PostgreSQL then settles by mark.
fn settle_for_another_host(dump: &mut Dump, boot: Option<&str>) {
    let trusted: std::collections::HashSet<(String, String)> = dump
        .sends
        .iter()
        .filter(|s| boot.is_some() && s.boot_id.as_deref() == boot)
        .map(|s| (s.issue.clone(), s.kind.clone()))
        .collect();
    for d in &mut dump.deliveries {
        if d.state == "sending" && !trusted.contains(&(d.issue.clone(), d.kind.clone())) {
            d.state = "uncertain".into();
            d.last_reply = Some(
                "the machine restarted while this message was being sent: it may have been delivered"
                    .into(),
            );
        }
    }
}

/// Copies the SQLite ledger at `from` into the empty PostgreSQL ledger
/// `to` in one transaction, then checks the tables' counts.
pub fn migrate(from: &Path, to: &PgTarget) -> Result<Migrated, MigrateError> {
    let source = SqliteLedger::open_existing(from)?
        .ok_or_else(|| LedgerError::Setting(format!("{}: no such ledger", from.display())))?;
    let mut target = PgLedger::open(to)?;
    let before = target.table_counts()?;
    if before.0 > 0 || before.1 > 0 {
        return Err(MigrateError::NotEmpty(to.redacted.clone(), before.0));
    }
    let mut dump = source.dump()?;
    settle_for_another_host(&mut dump, boot_id().as_deref());
    let counts = source.table_counts()?;
    target.copy_in(&dump)?;
    let after = target.table_counts()?;
    // Suppressions already in the target are kept, so it may hold more.
    if after.0 != counts.0 || after.1 != counts.1 || after.2 < counts.2 {
        return Err(MigrateError::Mismatch {
            from: counts,
            target: after,
        });
    }
    Ok(Migrated {
        source: counts,
        target: after,
    })
}
/// This boot of the machine (Linux: `/proc/sys/kernel/random/boot_id`),
/// `None` where it cannot be told, which resumes as after a reboot.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

// Extra CSV columns are stored as `key=value` lines with `\` escapes, so a
// resumed send personalises exactly as the first run did.
pub(crate) fn encode_fields(fields: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in fields {
        for (s, sep) in [(k, '='), (v, '\n')] {
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '=' => out.push_str("\\e"),
                    c => out.push(c),
                }
            }
            out.push(sep);
        }
    }
    out
}

pub(crate) fn decode_fields(s: &str) -> Vec<(String, String)> {
    fn unescape(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('e') => out.push('='),
                    Some(other) => out.push(other),
                    None => {}
                }
            } else {
                out.push(c);
            }
        }
        out
    }
    s.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect()
}

// The integration tests' throwaway cluster, shared so both start it alike.
#[cfg(test)]
#[path = "../../../tests/support/pg.rs"]
#[allow(dead_code)]
mod test_pg;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audience::recipient::Recipient;
    use rusqlite::Connection;

    use super::test_pg as pg;

    /// The backend a test body runs on.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Db {
        Sqlite,
        Postgres,
    }

    /// An empty ledger: in memory, or a schema of its own in the test
    /// cluster, so tests running at once never see each other's rows.
    fn fresh(db: Db) -> Ledger {
        match db {
            Db::Sqlite => Ledger::in_memory().unwrap(),
            Db::Postgres => {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let schema = format!(
                    "t{}_{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                );
                let target = PgTarget::parse(
                    &pg::cluster().url(),
                    Some(pg::PASSWORD.into()),
                    Some(schema),
                )
                .unwrap();
                Ledger::open_at(&Location::Postgres(Box::new(target))).unwrap()
            }
        }
    }

    /// Each body becomes one test per backend (`sqlite::name`,
    /// `postgres::name`).
    macro_rules! on_both {
        ($(fn $name:ident($db:ident) $body:block)*) => {
            mod sqlite {
                use super::*;
                $( #[test] fn $name() { let $db = Db::Sqlite; $body } )*
            }
            mod postgres {
                use super::*;
                $( #[test] fn $name() { let $db = Db::Postgres; $body } )*
            }
        };
    }

    fn now() -> Timestamp {
        "2025-01-17T05:00:00Z".parse().unwrap()
    }

    /// An in-memory ledger with a started real send of issue `i` to these
    /// (address, token) pairs.
    fn ledger_with(db: Db, people: &[(&str, &str)]) -> Ledger {
        let mut l = fresh(db);
        l.begin_on_boot("i", SendKind::Real, "S", Some("boot-1"), now())
            .unwrap();
        l.import("i", SendKind::Real, |add| {
            for (email, token) in people {
                add(&Recipient::new(*email, ""), token)?;
            }
            Ok((0, 0))
        })
        .unwrap();
        l
    }

    #[test]
    fn fields_survive_the_round_trip() {
        let f = vec![
            ("company".to_string(), "A=B\\C\nD".to_string()),
            ("x".into(), String::new()),
        ];
        assert_eq!(decode_fields(&encode_fields(&f)), f);
    }

    #[test]
    fn an_old_ledger_is_migrated_and_its_in_flight_rows_stay_uncertain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(super::sqlite::SCHEMA).unwrap();
            c.execute_batch(
                "INSERT INTO sends (issue, kind, state, subject, started_at) VALUES ('i', 'real', 'running', 'S', 'x');
                 INSERT INTO deliveries (issue, kind, email_key, email, name, fields, state, attempts, updated_at)
                 VALUES ('i', 'real', 'a@example.org', 'a@example.org', '', '', 'sending', 1, '2025-01-01T00:00:00Z'),
                        ('i', 'real', 'b@example.org', 'b@example.org', '', '', 'failed', 5,  NULL);
                 UPDATE deliveries SET last_reply = 'gave up after 5 tries: cannot connect to 127.0.0.1:25: Connection refused (os error 111)'
                 WHERE email = 'b@example.org';",
            )
            .unwrap();
        }
        let l = Ledger::open(&path).unwrap();
        assert!(l.send_record("i", SendKind::Real).unwrap().is_some());
        let r = l
            .begin_on_boot("i", SendKind::Real, "S", Some("boot-1"), now())
            .unwrap();
        assert_eq!(
            r.uncertain, 1,
            "an old in-flight row may have been delivered"
        );
        assert_eq!(l.requeue_failed("i", SendKind::Real).unwrap(), 1);
        drop(l);
        // Opening again does not migrate twice.
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.counts("i", SendKind::Real).unwrap().pending, 1);
    }

    #[test]
    fn a_password_never_comes_from_the_url_nor_shows_in_errors() {
        let url = pg::cluster().url();
        let with_password = url.replace("briefing@", "briefing:hunter2@");
        let e = PgTarget::parse(&with_password, None, None).err().unwrap();
        assert!(
            e.contains("ledger_password_env") && !e.contains("hunter2"),
            "{e}"
        );
        let wrong = PgTarget::parse(&url, Some("not-the-password".into()), None).unwrap();
        let e = Ledger::open_at(&Location::Postgres(Box::new(wrong)))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(&url), "the error names the database: {e}");
        assert!(!e.contains("not-the-password"), "{e}");
        assert!(e.contains("password authentication failed"), "{e}");
    }

    on_both! {
    fn a_crash_before_the_end_of_data_requeues_the_row(db) {
        let mut l = fresh(db);
        l.begin_on_boot("i", SendKind::Real, "S", Some("boot-1"), now())
            .unwrap();
        l.import("i", SendKind::Real, |add| {
            assert!(add(&Recipient::new("a@example.org", "A"), "t1")?);
            assert!(!add(&Recipient::new("A@Example.org", "A"), "t1")?);
            assert!(add(&Recipient::new("b@example.org", "B"), "t2")?);
            Ok((0, 1))
        })
        .unwrap();
        let d = l
            .claim_next("i", SendKind::Real, || "<m1@x>".into(), now())
            .unwrap()
            .unwrap();
        assert_eq!(d.recipient.email, "a@example.org");
        // The process dies here; the next run begins again.
        assert_eq!(
            l.begin_on_boot("i", SendKind::Real, "S", Some("boot-1"), now())
                .unwrap(),
            Resumed {
                uncertain: 0,
                requeued: 1
            }
        );
        let c = l.counts("i", SendKind::Real).unwrap();
        assert_eq!((c.uncertain, c.pending), (0, 2));
        let again = l
            .claim_next("i", SendKind::Real, || "<m2@x>".into(), now())
            .unwrap()
            .unwrap();
        assert_eq!(
            (again.recipient.email.as_str(), again.attempts),
            ("a@example.org", 1)
        );
        let d2 = l
            .claim_next("i", SendKind::Real, || "<m2@x>".into(), now())
            .unwrap()
            .unwrap();
        assert_eq!(d2.recipient.email, "b@example.org");
        assert!(
            l.claim_next("i", SendKind::Real, || "<m3@x>".into(), now())
                .unwrap()
                .is_none()
        );
    }

    fn a_crash_after_the_end_of_data_mark_leaves_the_row_uncertain(db) {
        let l = ledger_with(db, &[("a@example.org", "t"), ("b@example.org", "t")]);
        let a = l
            .claim_next("i", SendKind::Real, || "<m1@x>".into(), now())
            .unwrap()
            .unwrap();
        l.claim_next("i", SendKind::Real, || "<m2@x>".into(), now())
            .unwrap()
            .unwrap();
        l.mark_data(a.id, now()).unwrap();
        let r = l
            .begin_on_boot("i", SendKind::Real, "S", Some("boot-1"), now())
            .unwrap();
        assert_eq!(
            r,
            Resumed {
                uncertain: 1,
                requeued: 1
            }
        );
        let f = l.failures("i", SendKind::Real, 10).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].email.as_str(), f[0].state.as_str()),
            ("a@example.org", "uncertain")
        );
        // The requeued row is fresh again: its try did not count.
        let b = l
            .claim_next("i", SendKind::Real, || "<m3@x>".into(), now())
            .unwrap()
            .unwrap();
        assert_eq!(
            (b.recipient.email.as_str(), b.attempts),
            ("b@example.org", 1)
        );
    }

    fn after_a_reboot_every_row_left_sending_is_uncertain(db) {
        let l = ledger_with(db, &[("a@example.org", "t"), ("b@example.org", "t")]);
        for mid in ["<m1@x>", "<m2@x>"] {
            l.claim_next("i", SendKind::Real, || mid.into(), now())
                .unwrap()
                .unwrap();
        }
        // A power cut may have lost SQLite marks that a kill would have
        // kept; PostgreSQL's were durable when they returned, so another
        // host (another boot) can trust their absence.
        let r = l
            .begin_on_boot("i", SendKind::Real, "S", Some("boot-2"), now())
            .unwrap();
        let expected = match db {
            Db::Sqlite => Resumed {
                uncertain: 2,
                requeued: 0,
            },
            Db::Postgres => Resumed {
                uncertain: 0,
                requeued: 2,
            },
        };
        assert_eq!(r, expected);
    }

    fn a_mark_lands_only_on_a_row_this_run_still_holds(db) {
        let l = ledger_with(db, &[("a@example.org", "t")]);
        let a = l
            .claim_next("i", SendKind::Real, || "<m1@x>".into(), now())
            .unwrap()
            .unwrap();
        // Another run resumes the send and takes the row over.
        l.begin_on_boot("i", SendKind::Real, "S", Some("boot-1"), now())
            .unwrap();
        let mark = l.mark_data(a.id, now());
        match db {
            // One SQLite file is one host: the lock file keeps a second
            // run out, and the mark is a no-op on a row no longer sending.
            Db::Sqlite => assert!(mark.is_ok()),
            Db::Postgres => assert!(matches!(mark, Err(LedgerError::Mark(_)))),
        }
        assert_eq!(l.counts("i", SendKind::Real).unwrap().pending, 1);
    }

    fn retry_failed_requeues_everything_but_5xx_refusals(db) {
        let l = ledger_with(db, &[("a@x.org", "t"), ("b@x.org", "t"), ("c@x.org", "t")]);
        let replies = [
            "550 5.1.1 <a@x.org>: Recipient address rejected: User unknown",
            "gave up after 72 h of temporary failures: 451 4.3.0 Try again later",
            "cannot connect to 127.0.0.1:2525: Connection refused (os error 111)",
        ];
        for r in replies {
            let d = l
                .claim_next("i", SendKind::Real, || "<m@x>".into(), now())
                .unwrap()
                .unwrap();
            l.set_state(d.id, DeliveryState::Failed, Some(r), now())
                .unwrap();
        }
        assert_eq!(l.requeue_failed("i", SendKind::Real).unwrap(), 2);
        let c = l.counts("i", SendKind::Real).unwrap();
        assert_eq!((c.failed, c.pending), (1, 2));
    }

    fn deferred_rows_wake_when_their_next_attempt_comes(db) {
        let l = ledger_with(db, &[("a@x.org", "t")]);
        let d = l
            .claim_next("i", SendKind::Real, || "<m@x>".into(), now())
            .unwrap()
            .unwrap();
        let later: Timestamp = "2025-01-17T05:05:00Z".parse().unwrap();
        l.defer(d.id, "451 4.3.0 Try again later", later, now())
            .unwrap();
        assert_eq!(l.counts("i", SendKind::Real).unwrap().deferred, 1);
        assert_eq!(
            l.next_attempt("i", SendKind::Real).unwrap().as_deref(),
            Some("2025-01-17T05:05:00Z")
        );
        assert_eq!(l.wake_deferred("i", SendKind::Real, now()).unwrap(), 0);
        assert_eq!(l.wake_deferred("i", SendKind::Real, later).unwrap(), 1);
        assert_eq!(l.retry_ids("i", SendKind::Real).unwrap(), vec![d.id]);
        let again = l.claim_retry(d.id, "<n@x>".into(), later).unwrap().unwrap();
        assert_eq!(again.first_failed_at, Some(now()));
        assert_eq!(again.message_id, "<m@x>");
    }

    fn an_import_in_chunks_records_how_far_it_read_with_each_chunk(db) {
        let mut l = fresh(db);
        l.begin_on_boot("i", SendKind::Real, "S", Some("boot-1"), now())
            .unwrap();
        let rows = |emails: &[&str]| {
            let mut rows = ImportRows::default();
            for e in emails {
                rows.push(&Recipient::new(*e, ""), &format!("tok-{e}"));
            }
            rows
        };
        let first = rows(&["a@x.org", "b@x.org"]);
        let p1 = ImportProgress { rows: 3, invalid: 1, done: false };
        assert_eq!(l.import_chunk("i", SendKind::Real, &first, &p1).unwrap(), 2);
        let r = l.send_record("i", SendKind::Real).unwrap().unwrap();
        assert_eq!((r.imported, r.import_rows, r.invalid, r.duplicates), (false, 3, 1, 0));
        // A duplicate of a row in an earlier chunk counts as one.
        let second = rows(&["A@x.org", "c@x.org"]);
        let p2 = ImportProgress { rows: 6, invalid: 1, done: true };
        assert_eq!(l.import_chunk("i", SendKind::Real, &second, &p2).unwrap(), 1);
        let r = l.send_record("i", SendKind::Real).unwrap().unwrap();
        assert_eq!((r.imported, r.import_rows, r.invalid, r.duplicates), (true, 6, 2, 1));
        assert_eq!(l.counts("i", SendKind::Real).unwrap().pending, 3);
        assert_eq!(l.email_for_token("tok-c@x.org").unwrap().as_deref(), Some("c@x.org"));
        if db == Db::Sqlite {
            assert!(l.reopen().unwrap().is_none(), "in memory: no second connection");
        } else {
            let other = l.reopen().unwrap().unwrap();
            assert_eq!(other.counts("i", SendKind::Real).unwrap().pending, 3);
        }
    }

    fn suppressed_addresses_are_skipped_at_claim_time(db) {
        let l = ledger_with(db, &[("a@example.org", "t"), ("b@example.org", "t")]);
        l.suppress("A@example.org", "unsubscribed", "test", now())
            .unwrap();
        let d = l
            .claim_next("i", SendKind::Real, || "<m@x>".into(), now())
            .unwrap()
            .unwrap();
        assert_eq!(d.recipient.email, "b@example.org");
        assert_eq!(l.counts("i", SendKind::Real).unwrap().suppressed, 1);
    }

    fn tokens_find_their_address_and_resubscribing_keeps_bounces(db) {
        let l = ledger_with(db, &[("a@example.org", "tok-a"), ("b@example.org", "tok-b")]);
        assert_eq!(
            l.email_for_token("tok-b").unwrap().as_deref(),
            Some("b@example.org")
        );
        assert_eq!(l.email_for_token("tok-c").unwrap(), None);

        l.suppress("a@example.org", "unsubscribed", "one-click", now())
            .unwrap();
        l.suppress("b@example.org", "hard-bounce", "smtp", now())
            .unwrap();
        assert!(!l.unsuppress_if("b@example.org", "unsubscribed").unwrap());
        assert!(l.suppression("b@example.org").unwrap().is_some());
        assert!(l.unsuppress_if("A@Example.org", "unsubscribed").unwrap());
        assert!(l.suppression("a@example.org").unwrap().is_none());
    }

    fn suppress_all_keeps_first_reasons_and_counts_new_rows(db) {
        let mut l = fresh(db);
        l.suppress("a@example.org", "complaint", "smtp", now())
            .unwrap();
        let when: Timestamp = "2024-12-01T00:00:00Z".parse().unwrap();
        let item = |email: &str| NewSuppression {
            email: email.into(),
            reason: "hard-bounce".into(),
            source: "import".into(),
            created_at: when,
        };
        let n = l
            .suppress_all(&[
                item("A@example.org"),
                item("c@example.org"),
                item("c@example.org"),
            ])
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            l.suppression("a@example.org").unwrap().unwrap().reason,
            "complaint"
        );
        let c = l.suppression("c@example.org").unwrap().unwrap();
        assert_eq!(
            (c.reason.as_str(), c.created_at.as_str()),
            ("hard-bounce", "2024-12-01T00:00:00Z")
        );
    }
    }
}
