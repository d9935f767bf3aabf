//! The send ledger: one row per issue × recipient, in SQLite.
//!
//! A row is marked `sending` (committed) before its SMTP transaction starts,
//! gets an end-of-data mark (`data_at`) just before the message's final `.`
//! is written, and is marked `sent` after the server's 250. A send killed at
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

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use crate::audience::recipient::{Recipient, address_key};
pub use crate::audience::suppression::NewSuppression;

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

    fn parse(s: &str) -> Self {
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

    fn parse(s: &str) -> Self {
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

/// An open ledger database.
pub struct Ledger {
    conn: Connection,
    path: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sends (
    issue TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    subject TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    invalid INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    imported INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (issue, kind)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    issue TEXT NOT NULL,
    kind TEXT NOT NULL,
    email_key TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    fields TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_reply TEXT,
    message_id TEXT,
    token TEXT,
    updated_at TEXT,
    sent_at TEXT,
    UNIQUE (issue, kind, email_key)
);
CREATE INDEX IF NOT EXISTS deliveries_queue ON deliveries (issue, kind, state, attempts, id);
CREATE INDEX IF NOT EXISTS deliveries_token ON deliveries (token);
CREATE TABLE IF NOT EXISTS suppressions (
    email_key TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL
);
";

/// Schema changes after [`SCHEMA`], in order; `PRAGMA user_version` counts
/// how many a ledger has had. Old ledgers stay readable: columns are only
/// added.
const MIGRATIONS: &[&str] = &[
    // 1: end-of-data marks, deferrals with their queue lifetime, why a send
    // stopped and on which boot it ran. A row an older briefing left
    // `sending` may have had its end of data written: it keeps counting as
    // such (uncertain on resume, as it is under no recorded boot anyway).
    "ALTER TABLE deliveries ADD COLUMN data_at TEXT;
     ALTER TABLE deliveries ADD COLUMN next_attempt_at TEXT;
     ALTER TABLE deliveries ADD COLUMN first_failed_at TEXT;
     ALTER TABLE sends ADD COLUMN stop_reason TEXT;
     ALTER TABLE sends ADD COLUMN boot_id TEXT;
     UPDATE deliveries SET data_at = COALESCE(updated_at, 'before the upgrade') WHERE state = 'sending';",
];

impl Ledger {
    /// Opens (and creates if needed) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|source| LedgerError::Folder {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let name = path.display().to_string();
        let conn = Connection::open(path).map_err(|source| LedgerError::Sqlite {
            path: name.clone(),
            source,
        })?;
        Self::init(conn, name)
    }

    /// The ledger at `path` if it exists: commands that only read must not
    /// create one (no ledger means nothing was ever sent). A ledger that
    /// exists but cannot be opened is an error, never "absent".
    pub fn open_existing(path: &Path) -> Result<Option<Self>, LedgerError> {
        if !path.exists() {
            return Ok(None);
        }
        Self::open(path).map(Some)
    }

    /// A throwaway ledger in memory (for dry runs).
    pub fn in_memory() -> Result<Self, LedgerError> {
        let conn = Connection::open_in_memory().map_err(|source| LedgerError::Sqlite {
            path: ":memory:".into(),
            source,
        })?;
        Self::init(conn, ":memory:".into())
    }

    fn init(conn: Connection, path: String) -> Result<Self, LedgerError> {
        let l = Self { conn, path };
        l.conn
            .busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| l.err(e))?;
        l.conn
            .execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .map_err(|e| l.err(e))?;
        l.conn.execute_batch(SCHEMA).map_err(|e| l.err(e))?;
        l.migrate()?;
        Ok(l)
    }

    /// Applies the [`MIGRATIONS`] this ledger has not had, in one
    /// transaction that holds the write lock, so two processes opening an
    /// old ledger at once migrate it once.
    fn migrate(&self) -> Result<(), LedgerError> {
        let version = |c: &Connection| -> rusqlite::Result<usize> {
            c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                .map(|v| usize::try_from(v).unwrap_or(0))
        };
        if version(&self.conn).map_err(|e| self.err(e))? >= MIGRATIONS.len() {
            return Ok(());
        }
        let run = || -> rusqlite::Result<()> {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            let from = version(&self.conn)?;
            for m in MIGRATIONS.iter().skip(from) {
                self.conn.execute_batch(m)?;
            }
            self.conn
                .execute_batch(&format!("PRAGMA user_version = {}", MIGRATIONS.len()))?;
            self.conn.execute_batch("COMMIT")
        };
        run().map_err(|e| {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.err(e)
        })
    }

    fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The record of a send, if it ever started.
    pub fn send_record(
        &self,
        issue: &str,
        kind: SendKind,
    ) -> Result<Option<SendRecord>, LedgerError> {
        self.conn
            .query_row(
                "SELECT issue, kind, state, subject, started_at, finished_at, invalid, duplicates, imported
                 FROM sends WHERE issue = ?1 AND kind = ?2",
                params![issue, kind.as_str()],
                |r| {
                    Ok(SendRecord {
                        issue: r.get(0)?,
                        kind: r.get(1)?,
                        state: SendState::parse(&r.get::<_, String>(2)?),
                        subject: r.get(3)?,
                        started_at: r.get(4)?,
                        finished_at: r.get(5)?,
                        invalid: r.get::<_, i64>(6)?.unsigned_abs(),
                        duplicates: r.get::<_, i64>(7)?.unsigned_abs(),
                        imported: r.get::<_, i64>(8)? != 0,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Why a send's last run stopped before the end (an outage, deferred
    /// recipients, Ctrl-C, `--limit`), as [`Ledger::finish`] recorded it.
    pub fn stop_reason(&self, issue: &str, kind: SendKind) -> Result<Option<String>, LedgerError> {
        self.conn
            .query_row(
                "SELECT stop_reason FROM sends WHERE issue = ?1 AND kind = ?2",
                params![issue, kind.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }

    /// Starts (or resumes) a send: creates its record and settles the rows
    /// a dead run left `sending` (see [`Ledger::begin_on_boot`]), on the
    /// machine's current boot.
    pub fn begin(
        &self,
        issue: &str,
        kind: SendKind,
        subject: &str,
        now: Timestamp,
    ) -> Result<Resumed, LedgerError> {
        self.begin_on_boot(issue, kind, subject, boot_id().as_deref(), now)
    }

    /// [`Ledger::begin`] on the boot `boot` (`None`: unknown). Rows a dead
    /// run left `sending` become `uncertain` when their end-of-data mark is
    /// set, and go back to `pending` (the try not counted) when it is not,
    /// provided that run died on this same boot: then everything it wrote
    /// is still in the page cache. After a reboot (a power cut, an OS crash)
    /// only what was synced is known, so every such row is `uncertain`.
    pub fn begin_on_boot(
        &self,
        issue: &str,
        kind: SendKind,
        subject: &str,
        boot: Option<&str>,
        now: Timestamp,
    ) -> Result<Resumed, LedgerError> {
        let now = now.to_string();
        let before: Option<String> = self
            .conn
            .query_row(
                "SELECT boot_id FROM sends WHERE issue = ?1 AND kind = ?2",
                params![issue, kind.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .flatten();
        self.conn
            .execute(
                "INSERT INTO sends (issue, kind, state, subject, started_at, boot_id) VALUES (?1, ?2, 'running', ?3, ?4, ?5)
                 ON CONFLICT (issue, kind) DO UPDATE SET state = 'running', finished_at = NULL, stop_reason = NULL,
                   boot_id = ?5",
                params![issue, kind.as_str(), subject, now, boot],
            )
            .map_err(|e| self.err(e))?;
        let same_boot = boot.is_some() && before.as_deref() == boot;
        let settle = |sql: &str| {
            self.conn
                .execute(sql, params![issue, kind.as_str(), now])
                .map(|n| n as u64)
                .map_err(|e| self.err(e))
        };
        if !same_boot {
            let uncertain = settle(
                "UPDATE deliveries SET state = 'uncertain', updated_at = ?3,
                   last_reply = 'the machine restarted while this message was being sent: it may have been delivered'
                 WHERE issue = ?1 AND kind = ?2 AND state = 'sending'",
            )?;
            return Ok(Resumed {
                uncertain,
                requeued: 0,
            });
        }
        let uncertain = settle(
            "UPDATE deliveries SET state = 'uncertain', updated_at = ?3,
               last_reply = 'the run sending this message stopped after its end of data was written, before the server answered'
             WHERE issue = ?1 AND kind = ?2 AND state = 'sending' AND data_at IS NOT NULL",
        )?;
        let requeued = settle(
            "UPDATE deliveries SET state = 'pending', attempts = MAX(attempts - 1, 0), updated_at = ?3,
               last_reply = 'the run sending this message stopped before its end of data was written'
             WHERE issue = ?1 AND kind = ?2 AND state = 'sending' AND data_at IS NULL",
        )?;
        Ok(Resumed {
            uncertain,
            requeued,
        })
    }

    /// Forgets an earlier test send of the issue, so `--to` can repeat.
    pub fn reset_test(&self, issue: &str) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "DELETE FROM deliveries WHERE issue = ?1 AND kind = 'test'",
                params![issue],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "DELETE FROM sends WHERE issue = ?1 AND kind = 'test'",
                params![issue],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
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
        let path = self.path.clone();
        let err = |source| LedgerError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let (invalid, duplicates) = {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO deliveries (issue, kind, email_key, email, name, fields, state, token)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7)
                     ON CONFLICT (issue, kind, email_key) DO NOTHING",
                )
                .map_err(err)?;
            let mut add = |r: &Recipient, token: &str| -> Result<bool, LedgerError> {
                let fields = encode_fields(&r.fields);
                let n = stmt
                    .execute(params![
                        issue,
                        kind.as_str(),
                        address_key(&r.email),
                        r.email,
                        r.name,
                        fields,
                        token
                    ])
                    .map_err(err)?;
                Ok(n == 1)
            };
            rows(&mut add)?
        };
        tx.execute(
            "UPDATE sends SET imported = 1, invalid = ?3, duplicates = ?4 WHERE issue = ?1 AND kind = ?2",
            params![issue, kind.as_str(), invalid as i64, duplicates as i64],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(())
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
        loop {
            let next: Option<(i64, String, String, String, String, bool)> = self
                .conn
                .prepare_cached(
                    "SELECT d.id, d.email, d.name, d.fields, d.email_key,
                            EXISTS (SELECT 1 FROM suppressions s WHERE s.email_key = d.email_key)
                     FROM deliveries d
                     WHERE d.issue = ?1 AND d.kind = ?2 AND d.state = 'pending' AND d.attempts = 0
                     ORDER BY d.id LIMIT 1",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![issue, kind.as_str()], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    })
                    .optional()
                })
                .map_err(|e| self.err(e))?;
            let Some((id, email, name, fields, _key, suppressed)) = next else {
                return Ok(None);
            };
            if suppressed && kind == SendKind::Real {
                self.set_state(
                    id,
                    DeliveryState::Suppressed,
                    Some("on the suppression list"),
                    now,
                )?;
                continue;
            }
            return self
                .claim(id, email, name, fields, 0, message_id(), now)
                .map(Some);
        }
    }

    /// Claims a row for a retry by id (it must be pending). The retry keeps
    /// the first try's Message-ID, so a receiver that did get the first try
    /// after all can tell the two copies are one message. An address
    /// suppressed since the first try is marked `suppressed` instead.
    pub fn claim_retry(
        &self,
        id: i64,
        message_id: String,
        now: Timestamp,
    ) -> Result<Option<Delivery>, LedgerError> {
        let row: Option<(String, String, String, u32, Option<String>, bool)> = self
            .conn
            .query_row(
                "SELECT d.email, d.name, d.fields, d.attempts, d.message_id,
                        d.kind = 'real' AND EXISTS (SELECT 1 FROM suppressions s WHERE s.email_key = d.email_key)
                 FROM deliveries d WHERE d.id = ?1 AND d.state = 'pending'",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match row {
            Some((_, _, _, _, _, true)) => {
                self.set_state(
                    id,
                    DeliveryState::Suppressed,
                    Some("on the suppression list"),
                    now,
                )?;
                Ok(None)
            }
            Some((email, name, fields, attempts, earlier_id, false)) => {
                let message_id = earlier_id.unwrap_or(message_id);
                self.claim(id, email, name, fields, attempts, message_id, now)
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    /// Puts a claimed row back untouched: the transport failed before the
    /// message reached a server, so the try does not count.
    pub fn release(&self, id: i64, reply: &str, now: Timestamp) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "UPDATE deliveries SET state = 'pending', attempts = MAX(attempts - 1, 0), last_reply = ?2, updated_at = ?3,
                   data_at = NULL
                 WHERE id = ?1",
                params![id, reply, now.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn claim(
        &self,
        id: i64,
        email: String,
        name: String,
        fields: String,
        attempts: u32,
        message_id: String,
        now: Timestamp,
    ) -> Result<Delivery, LedgerError> {
        let (token, first_failed_at): (String, Option<String>) = self
            .conn
            .prepare_cached(
                "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, message_id = ?2, updated_at = ?3,
                   data_at = NULL, next_attempt_at = NULL
                 WHERE id = ?1 RETURNING COALESCE(token, ''), first_failed_at",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![id, message_id, now.to_string()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
            })
            .map_err(|e| self.err(e))?;
        Ok(Delivery {
            id,
            recipient: Recipient {
                email,
                name,
                fields: decode_fields(&fields),
            },
            attempts: attempts + 1,
            message_id,
            token,
            first_failed_at: first_failed_at.and_then(|t| t.parse().ok()),
        })
    }

    /// Rows waiting for a retry (pending after at least one try), e.g. left
    /// by an earlier run.
    pub fn retry_ids(&self, issue: &str, kind: SendKind) -> Result<Vec<i64>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM deliveries WHERE issue = ?1 AND kind = ?2 AND state = 'pending' AND attempts > 0 ORDER BY id")
            .map_err(|e| self.err(e))?;
        let ids = stmt
            .query_map(params![issue, kind.as_str()], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<i64>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(ids)
    }

    /// Puts uncertain rows back in the queue (`--resend-uncertain`).
    pub fn requeue_uncertain(&self, issue: &str, kind: SendKind) -> Result<u64, LedgerError> {
        let n = self
            .conn
            .execute(
                "UPDATE deliveries SET state = 'pending', attempts = 0, data_at = NULL
                 WHERE issue = ?1 AND kind = ?2 AND state = 'uncertain'",
                params![issue, kind.as_str()],
            )
            .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    /// Puts failed rows whose last reply was not a permanent (5xx) refusal
    /// back in the queue as fresh rows (`--retry-failed`): connection
    /// errors, timeouts and 4xx give-ups recorded by earlier runs.
    pub fn requeue_failed(&self, issue: &str, kind: SendKind) -> Result<u64, LedgerError> {
        let n = self
            .conn
            .execute(
                "UPDATE deliveries SET state = 'pending', attempts = 0, data_at = NULL,
                   next_attempt_at = NULL, first_failed_at = NULL
                 WHERE issue = ?1 AND kind = ?2 AND state = 'failed'
                   AND NOT (COALESCE(last_reply, '') GLOB '5[0-9][0-9]*')",
                params![issue, kind.as_str()],
            )
            .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    /// Records a claimed row's end-of-data mark: its final `.` is about to
    /// be written. A commit at `synchronous=NORMAL`, so quick, and durable
    /// against a kill, which is all a mark needs: after a reboot the claim
    /// decides (see [`Ledger::begin_on_boot`]).
    pub fn mark_data(&self, id: i64, now: Timestamp) -> Result<(), LedgerError> {
        // Cached, like the claim and the answer: three commits a message.
        self.conn
            .prepare_cached(
                "UPDATE deliveries SET data_at = ?2 WHERE id = ?1 AND state = 'sending'",
            )
            .and_then(|mut stmt| stmt.execute(params![id, now.to_string()]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A handle that makes this ledger's commits so far durable against
    /// power loss (`None` for an in-memory ledger).
    pub fn wal_sync(&self) -> Result<Option<WalSync>, LedgerError> {
        if self.path == ":memory:" {
            return Ok(None);
        }
        // Where WAL is unavailable (a file system without shared memory),
        // SQLite keeps a rollback journal, and its commits sync the
        // database file themselves.
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Ok(None);
        }
        WalSync::open(Path::new(&self.path)).map(Some)
    }

    /// Records a temporary failure to be retried in this run; the first one
    /// starts the row's queue lifetime.
    pub fn retry_later(&self, id: i64, reply: &str, now: Timestamp) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "UPDATE deliveries SET state = 'pending', last_reply = ?2, updated_at = ?3,
                   first_failed_at = COALESCE(first_failed_at, ?3) WHERE id = ?1",
                params![id, reply, now.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Defers a row after repeated 4xx replies: a later run tries it again
    /// from `next` on.
    pub fn defer(
        &self,
        id: i64,
        reply: &str,
        next: Timestamp,
        now: Timestamp,
    ) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "UPDATE deliveries SET state = 'deferred', last_reply = ?2, next_attempt_at = ?3,
                   updated_at = ?4, first_failed_at = COALESCE(first_failed_at, ?4) WHERE id = ?1",
                params![id, reply, next.to_string(), now.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Puts deferred rows whose next attempt has come back in the queue
    /// (as retries: their tries so far still count). Returns how many.
    pub fn wake_deferred(
        &self,
        issue: &str,
        kind: SendKind,
        now: Timestamp,
    ) -> Result<u64, LedgerError> {
        let n = self
            .conn
            .execute(
                "UPDATE deliveries SET state = 'pending' WHERE issue = ?1 AND kind = ?2
                   AND state = 'deferred' AND next_attempt_at <= ?3",
                params![issue, kind.as_str(), now.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    /// The earliest next attempt of a deferred row, if any.
    pub fn next_attempt(&self, issue: &str, kind: SendKind) -> Result<Option<String>, LedgerError> {
        self.conn
            .query_row(
                "SELECT MIN(next_attempt_at) FROM deliveries WHERE issue = ?1 AND kind = ?2 AND state = 'deferred'",
                params![issue, kind.as_str()],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Deferred recipients, next attempt first.
    pub fn deferrals(
        &self,
        issue: &str,
        kind: SendKind,
        limit: usize,
    ) -> Result<Vec<Deferral>, LedgerError> {
        self.first_rows(
            "SELECT email, COALESCE(last_reply, ''), attempts, COALESCE(next_attempt_at, '') FROM deliveries
             WHERE issue = ?1 AND kind = ?2 AND state = 'deferred' ORDER BY next_attempt_at, id LIMIT ?3",
            issue,
            kind,
            limit,
            |r| {
                Ok(Deferral {
                    email: r.get(0)?,
                    reply: r.get(1)?,
                    attempts: r.get(2)?,
                    next_attempt_at: r.get(3)?,
                })
            },
        )
    }

    /// The first `limit` rows of a query over one send's deliveries.
    fn first_rows<T>(
        &self,
        sql: &str,
        issue: &str,
        kind: SendKind,
        limit: usize,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, LedgerError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![issue, kind.as_str(), limit as i64], map)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Records a row's new state and the server's reply.
    pub fn set_state(
        &self,
        id: i64,
        state: DeliveryState,
        reply: Option<&str>,
        now: Timestamp,
    ) -> Result<(), LedgerError> {
        let now = now.to_string();
        let sent_at = (state == DeliveryState::Sent).then(|| now.clone());
        self.conn
            .prepare_cached(
                "UPDATE deliveries SET state = ?2, last_reply = COALESCE(?3, last_reply), updated_at = ?4,
                   sent_at = COALESCE(?5, sent_at) WHERE id = ?1",
            )
            .and_then(|mut stmt| stmt.execute(params![id, state.as_str(), reply, now, sent_at]))
            .map_err(|e| self.err(e))?;
        Ok(())
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
        self.conn
            .execute(
                "UPDATE sends SET state = ?3, finished_at = ?4, stop_reason = ?5 WHERE issue = ?1 AND kind = ?2",
                params![issue, kind.as_str(), state.as_str(), now.to_string(), reason],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Counts per state.
    pub fn counts(&self, issue: &str, kind: SendKind) -> Result<Counts, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT state, COUNT(*) FROM deliveries WHERE issue = ?1 AND kind = ?2 GROUP BY state")
            .map_err(|e| self.err(e))?;
        let mut c = Counts::default();
        let rows = stmt
            .query_map(params![issue, kind.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (state, n) = row.map_err(|e| self.err(e))?;
            let n = n.unsigned_abs();
            match DeliveryState::parse(&state) {
                DeliveryState::Pending => c.pending += n,
                DeliveryState::Sending => c.sending += n,
                DeliveryState::Sent => c.sent += n,
                DeliveryState::Failed => c.failed += n,
                DeliveryState::Uncertain => c.uncertain += n,
                DeliveryState::Suppressed => c.suppressed += n,
                DeliveryState::Deferred => c.deferred += n,
            }
        }
        Ok(c)
    }

    /// Failed and uncertain recipients with their last reply.
    pub fn failures(
        &self,
        issue: &str,
        kind: SendKind,
        limit: usize,
    ) -> Result<Vec<Failure>, LedgerError> {
        self.first_rows(
            "SELECT email, state, COALESCE(last_reply, ''), attempts FROM deliveries
             WHERE issue = ?1 AND kind = ?2 AND state IN ('failed', 'uncertain') ORDER BY id LIMIT ?3",
            issue,
            kind,
            limit,
            |r| {
                Ok(Failure {
                    email: r.get(0)?,
                    state: r.get(1)?,
                    reply: r.get(2)?,
                    attempts: r.get(3)?,
                })
            },
        )
    }

    /// First and last delivery time of a send, for its rate.
    pub fn sent_span(
        &self,
        issue: &str,
        kind: SendKind,
    ) -> Result<Option<(String, String)>, LedgerError> {
        self.conn
            .query_row(
                "SELECT MIN(sent_at), MAX(sent_at) FROM deliveries WHERE issue = ?1 AND kind = ?2 AND sent_at IS NOT NULL",
                params![issue, kind.as_str()],
                |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, Option<String>>(1)?)),
            )
            .map(|(a, b)| a.zip(b))
            .map_err(|e| self.err(e))
    }

    /// Adds an address to the suppression list (keeps the first reason).
    pub fn suppress(
        &self,
        email: &str,
        reason: &str,
        source: &str,
        now: Timestamp,
    ) -> Result<bool, LedgerError> {
        let n = self
            .conn
            .execute(
                "INSERT INTO suppressions (email_key, email, reason, source, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (email_key) DO NOTHING",
                params![address_key(email), email.trim(), reason, source, now.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Removes an address from the suppression list.
    pub fn unsuppress(&self, email: &str) -> Result<bool, LedgerError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM suppressions WHERE email_key = ?1",
                params![address_key(email)],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Whether an address is suppressed, and why.
    pub fn suppression(&self, email: &str) -> Result<Option<Suppression>, LedgerError> {
        self.conn
            .query_row(
                "SELECT email, reason, source, created_at FROM suppressions WHERE email_key = ?1",
                params![address_key(email)],
                suppression_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The whole suppression list, oldest first.
    pub fn suppressions(&self) -> Result<Vec<Suppression>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT email, reason, source, created_at FROM suppressions ORDER BY created_at, email_key")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], suppression_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Makes every commit on this connection durable against power loss
    /// too (`synchronous=FULL`), for callers whose answer promises the
    /// write is done, such as a 200 to an unsubscribe.
    pub fn sync_every_commit(&self) -> Result<(), LedgerError> {
        self.conn
            .execute_batch("PRAGMA synchronous=FULL;")
            .map_err(|e| self.err(e))
    }

    /// The address an unsubscribe token was issued to, in any send.
    pub fn email_for_token(&self, token: &str) -> Result<Option<String>, LedgerError> {
        // Cached: `briefing serve` runs this on every request.
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT email FROM deliveries WHERE token = ?1 ORDER BY id DESC LIMIT 1",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_row(params![token], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Removes an address from the suppression list only if it is there for
    /// `reason`, so a reader resubscribing cannot undo a bounce or complaint.
    pub fn unsuppress_if(&self, email: &str, reason: &str) -> Result<bool, LedgerError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM suppressions WHERE email_key = ?1 AND reason = ?2",
                params![address_key(email), reason],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Adds many addresses in one transaction (keeping the first reason of
    /// each); returns how many were new.
    pub fn suppress_all(&mut self, items: &[NewSuppression]) -> Result<u64, LedgerError> {
        let path = self.path.clone();
        let err = |source| LedgerError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let mut added = 0;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO suppressions (email_key, email, reason, source, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (email_key) DO NOTHING",
                )
                .map_err(err)?;
            for s in items {
                added += stmt
                    .execute(params![
                        address_key(&s.email),
                        s.email.trim(),
                        s.reason,
                        s.source,
                        s.created_at.to_string()
                    ])
                    .map_err(err)? as u64;
            }
        }
        tx.commit().map_err(err)?;
        Ok(added)
    }

    /// Every issue with a send record, oldest first.
    pub fn issues(&self) -> Result<Vec<SendRecord>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT issue, kind FROM sends WHERE kind = 'real' ORDER BY started_at")
            .map_err(|e| self.err(e))?;
        let keys = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for k in keys {
            if let Some(r) = self.send_record(&k, SendKind::Real)? {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// Makes the ledger's commits durable against power loss with an explicit
/// `fdatasync` of its write-ahead log, outside SQLite's locks, so other
/// writers never wait for the disk.
///
/// Sound because in WAL mode a commit is complete once its frames are in
/// the `-wal` file: syncing that file keeps every commit written before the
/// call. A checkpoint that copies those frames into the database syncs the
/// database first, so a WAL that is reset afterwards loses nothing.
pub struct WalSync {
    file: std::fs::File,
    path: PathBuf,
}

impl WalSync {
    /// Opens the `-wal` file of the database at `db` and syncs its folder
    /// once, so a log created by this run survives a power cut too.
    fn open(db: &Path) -> Result<Self, LedgerError> {
        let mut name = db.as_os_str().to_owned();
        name.push("-wal");
        let path = PathBuf::from(name);
        let err = |source| LedgerError::Sync {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(err)?;
        let dir = match db.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(Self { file, path })
    }

    /// Waits until every commit made so far is on disk.
    pub fn sync(&self) -> Result<(), LedgerError> {
        self.file.sync_data().map_err(|source| LedgerError::Sync {
            path: self.path.clone(),
            source,
        })
    }
}

/// This boot of the machine (Linux: `/proc/sys/kernel/random/boot_id`),
/// `None` where it cannot be told, which resumes as after a reboot.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A `suppressions` row selected as `email, reason, source, created_at`.
fn suppression_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Suppression> {
    Ok(Suppression {
        email: r.get(0)?,
        reason: r.get(1)?,
        source: r.get(2)?,
        created_at: r.get(3)?,
    })
}

// Extra CSV columns are stored as `key=value` lines with `\` escapes, so a
// resumed send personalises exactly as the first run did.
fn encode_fields(fields: &[(String, String)]) -> String {
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

fn decode_fields(s: &str) -> Vec<(String, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2025-01-17T05:00:00Z".parse().unwrap()
    }

    /// An in-memory ledger with a started real send of issue `i` to these
    /// (address, token) pairs.
    fn ledger_with(people: &[(&str, &str)]) -> Ledger {
        let mut l = Ledger::in_memory().unwrap();
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
    fn a_crash_before_the_end_of_data_requeues_the_row() {
        let mut l = Ledger::in_memory().unwrap();
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

    #[test]
    fn a_crash_after_the_end_of_data_mark_leaves_the_row_uncertain() {
        let l = ledger_with(&[("a@example.org", "t"), ("b@example.org", "t")]);
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

    #[test]
    fn after_a_reboot_every_row_left_sending_is_uncertain() {
        let l = ledger_with(&[("a@example.org", "t"), ("b@example.org", "t")]);
        for mid in ["<m1@x>", "<m2@x>"] {
            l.claim_next("i", SendKind::Real, || mid.into(), now())
                .unwrap()
                .unwrap();
        }
        // A power cut may have lost marks that a kill would have kept.
        let r = l
            .begin_on_boot("i", SendKind::Real, "S", Some("boot-2"), now())
            .unwrap();
        assert_eq!(
            r,
            Resumed {
                uncertain: 2,
                requeued: 0
            }
        );
    }

    #[test]
    fn an_old_ledger_is_migrated_and_its_in_flight_rows_stay_uncertain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(SCHEMA).unwrap();
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
    fn retry_failed_requeues_everything_but_5xx_refusals() {
        let l = ledger_with(&[("a@x.org", "t"), ("b@x.org", "t"), ("c@x.org", "t")]);
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

    #[test]
    fn deferred_rows_wake_when_their_next_attempt_comes() {
        let l = ledger_with(&[("a@x.org", "t")]);
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

    #[test]
    fn suppressed_addresses_are_skipped_at_claim_time() {
        let l = ledger_with(&[("a@example.org", "t"), ("b@example.org", "t")]);
        l.suppress("A@example.org", "unsubscribed", "test", now())
            .unwrap();
        let d = l
            .claim_next("i", SendKind::Real, || "<m@x>".into(), now())
            .unwrap()
            .unwrap();
        assert_eq!(d.recipient.email, "b@example.org");
        assert_eq!(l.counts("i", SendKind::Real).unwrap().suppressed, 1);
    }

    #[test]
    fn tokens_find_their_address_and_resubscribing_keeps_bounces() {
        let l = ledger_with(&[("a@example.org", "tok-a"), ("b@example.org", "tok-b")]);
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

    #[test]
    fn suppress_all_keeps_first_reasons_and_counts_new_rows() {
        let mut l = Ledger::in_memory().unwrap();
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
