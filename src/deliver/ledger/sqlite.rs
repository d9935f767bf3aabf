//! The SQLite backend of the ledger (the default): one file in WAL mode,
//! made durable against power loss by [`WalSync`].

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Accepted, Counts, Deferral, Delivery, DeliveryRow, DeliveryState, Dump, Failure,
    ImportProgress, ImportRows, LedgerError, NewSuppression, Resumed, SendKind, SendRecord,
    SendRow, SendState, Suppression, boot_id, decode_fields, encode_fields,
};
use crate::audience::recipient::{Recipient, address_key};

/// A transaction on the send's hot path, begun and ended with cached
/// statements: rusqlite's own parses `BEGIN` and `COMMIT` anew each time,
/// which at one commit a message was a few percent of a send's CPU. Rolled
/// back when dropped uncommitted.
struct HotTx<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> HotTx<'c> {
    fn begin(conn: &'c Connection, begin: &'static str) -> rusqlite::Result<Self> {
        conn.prepare_cached(begin)?.execute([])?;
        Ok(Self { conn, open: true })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl Drop for HotTx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self
                .conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]));
        }
    }
}

/// Adds one recipient to a send as pending; an address already in the
/// send is left alone (a duplicate).
const INSERT_RECIPIENT: &str =
    "INSERT INTO deliveries (issue, kind, email_key, email, name, fields, state, token)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7)
     ON CONFLICT (issue, kind, email_key) DO NOTHING";

/// A fresh pending row as a claim reads it.
struct FreshRow {
    id: i64,
    email: String,
    name: String,
    fields: String,
    suppressed: bool,
}

/// An open SQLite ledger.
pub struct SqliteLedger {
    conn: Connection,
    path: String,
}

pub(super) const SCHEMA: &str = "
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
    // 2: a send reads its lists into the ledger in chunks while it sends;
    // how many list rows the committed chunks consumed, so a run killed
    // part-way resumes after them. Older ledgers imported in one
    // transaction: `imported = 0` there means no rows, so 0 is right.
    "ALTER TABLE sends ADD COLUMN import_rows INTEGER NOT NULL DEFAULT 0;",
];

impl SqliteLedger {
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
                "SELECT issue, kind, state, subject, started_at, finished_at, invalid, duplicates, imported,
                        import_rows
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
                        import_rows: r.get::<_, i64>(9)?.unsigned_abs(),
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Why a send's last run stopped before the end (an outage, deferred
    /// recipients, Ctrl-C, `--limit`), as [`super::Ledger::finish`] recorded it.
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
    /// a dead run left `sending` (see [`super::Ledger::begin_on_boot`]), on the
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

    /// [`super::Ledger::begin`] on the boot `boot` (`None`: unknown). Rows a dead
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
            let mut stmt = tx.prepare(INSERT_RECIPIENT).map_err(err)?;
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

    /// Adds one chunk of a list as pending rows and records the import's
    /// progress with them, in one transaction (see
    /// [`super::Ledger::import_chunk`]); returns how many rows were new.
    pub fn import_chunk(
        &mut self,
        issue: &str,
        kind: SendKind,
        rows: &ImportRows,
        progress: &ImportProgress,
    ) -> Result<u64, LedgerError> {
        let path = self.path.clone();
        let err = |source| LedgerError::Sqlite {
            path: path.clone(),
            source,
        };
        // IMMEDIATE: the write lock up front, so a worker's claim cannot
        // turn this transaction's upgrade into SQLITE_BUSY half-way.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut added = 0u64;
        {
            let mut stmt = tx.prepare_cached(INSERT_RECIPIENT).map_err(err)?;
            for [key, email, name, fields, token] in rows.iter() {
                added += stmt
                    .execute(params![
                        issue,
                        kind.as_str(),
                        key,
                        email,
                        name,
                        fields,
                        token
                    ])
                    .map_err(err)? as u64;
            }
        }
        let duplicates = rows.len() as u64 - added;
        tx.execute(
            "UPDATE sends SET import_rows = ?3, invalid = invalid + ?4, duplicates = duplicates + ?5,
               imported = ?6 WHERE issue = ?1 AND kind = ?2",
            params![
                issue,
                kind.as_str(),
                progress.rows as i64,
                progress.invalid as i64,
                duplicates as i64,
                progress.done
            ],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(added)
    }

    /// Another connection to the same file (`None` for one in memory),
    /// for a thread of its own.
    pub fn reopen(&self) -> Result<Option<Self>, LedgerError> {
        if self.path == ":memory:" {
            return Ok(None);
        }
        Self::open(Path::new(&self.path)).map(Some)
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
        Ok(self
            .claim_batch(issue, kind, 1, message_id, now, &[])?
            .pop())
    }

    /// Claims up to `n` fresh pending rows in one commit that also records
    /// `accepted` as sent; suppressed addresses are marked on the way.
    pub fn claim_batch(
        &self,
        issue: &str,
        kind: SendKind,
        n: usize,
        message_id: impl Fn() -> String,
        now: Timestamp,
        accepted: &[Accepted],
    ) -> Result<Vec<Delivery>, LedgerError> {
        // IMMEDIATE: the commit writes anyway, and taking the write lock
        // first means no other process can slip a write in between the
        // select and the update (which would fail the upgrade at once).
        let tx = HotTx::begin(&self.conn, "BEGIN IMMEDIATE").map_err(|e| self.err(e))?;
        self.record_accepted_in(accepted)?;
        let mut claimed = Vec::with_capacity(n);
        while claimed.len() < n {
            let rows = self.fresh_rows(issue, kind, n - claimed.len())?;
            if rows.is_empty() {
                break;
            }
            for FreshRow {
                id,
                email,
                name,
                fields,
                suppressed,
            } in rows
            {
                if suppressed && kind == SendKind::Real {
                    self.skip_suppressed(id, now)?;
                    continue;
                }
                claimed.push(self.claim(id, email, name, fields, 0, message_id(), now)?);
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(claimed)
    }

    /// Marks a row met by a claim as `suppressed`: its address is on the
    /// suppression list.
    fn skip_suppressed(&self, id: i64, now: Timestamp) -> Result<(), LedgerError> {
        self.set_state(
            id,
            DeliveryState::Suppressed,
            Some("on the suppression list"),
            now,
        )
    }

    /// The first `n` fresh pending rows, each with whether its address is
    /// suppressed.
    fn fresh_rows(
        &self,
        issue: &str,
        kind: SendKind,
        n: usize,
    ) -> Result<Vec<FreshRow>, LedgerError> {
        // The limit is written into the statement, not bound: SQLite reads
        // a bound LIMIT while planning and so prepares the statement again
        // on every run (a twentieth of a send's CPU). `n` is at most
        // `CLAIM_BATCH`, so the cache holds a handful of these.
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT d.id, d.email, d.name, d.fields,
                        EXISTS (SELECT 1 FROM suppressions s WHERE s.email_key = d.email_key)
                 FROM deliveries d
                 WHERE d.issue = ?1 AND d.kind = ?2 AND d.state = 'pending' AND d.attempts = 0
                 ORDER BY d.id LIMIT {n}"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![issue, kind.as_str()], |r| {
                Ok(FreshRow {
                    id: r.get(0)?,
                    email: r.get(1)?,
                    name: r.get(2)?,
                    fields: r.get(3)?,
                    suppressed: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
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
                self.skip_suppressed(id, now)?;
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

    /// Records a claimed row's end-of-data mark (its final `.` is about to
    /// be written) and `accepted` as sent, in one commit at
    /// `synchronous=NORMAL`: quick, and durable against a kill, which is
    /// all a mark needs. After a reboot the claim decides (see
    /// [`super::Ledger::begin_on_boot`]).
    pub fn mark_data_recording(
        &self,
        id: i64,
        now: Timestamp,
        accepted: &[Accepted],
    ) -> Result<(), LedgerError> {
        let tx = (!accepted.is_empty())
            .then(|| HotTx::begin(&self.conn, "BEGIN"))
            .transpose()
            .map_err(|e| self.err(e))?;
        self.record_accepted_in(accepted)?;
        self.conn
            .prepare_cached(
                "UPDATE deliveries SET data_at = ?2 WHERE id = ?1 AND state = 'sending'",
            )
            .and_then(|mut stmt| stmt.execute(params![id, now.to_string()]))
            .map_err(|e| self.err(e))?;
        if let Some(tx) = tx {
            tx.commit().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Records `accepted` as sent, in one commit.
    pub fn record_accepted(&self, accepted: &[Accepted]) -> Result<(), LedgerError> {
        let tx = HotTx::begin(&self.conn, "BEGIN").map_err(|e| self.err(e))?;
        self.record_accepted_in(accepted)?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Records `accepted` as sent inside the caller's transaction.
    fn record_accepted_in(&self, accepted: &[Accepted]) -> Result<(), LedgerError> {
        for a in accepted {
            self.set_state(a.id, DeliveryState::Sent, Some(&a.reply), a.at)?;
        }
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

/// A `suppressions` row selected as `email, reason, source, created_at`.
fn suppression_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Suppression> {
    Ok(Suppression {
        email: r.get(0)?,
        reason: r.get(1)?,
        source: r.get(2)?,
        created_at: r.get(3)?,
    })
}

impl SqliteLedger {
    /// Rows per table (sends, deliveries, suppressions).
    pub fn table_counts(&self) -> Result<(u64, u64, u64), LedgerError> {
        self.conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM sends), (SELECT COUNT(*) FROM deliveries), (SELECT COUNT(*) FROM suppressions)",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?.unsigned_abs(),
                        r.get::<_, i64>(1)?.unsigned_abs(),
                        r.get::<_, i64>(2)?.unsigned_abs(),
                    ))
                },
            )
            .map_err(|e| self.err(e))
    }

    /// Every row as stored, for a migration (read in one transaction, so
    /// the three tables agree).
    pub fn dump(&self) -> Result<Dump, LedgerError> {
        let run = || -> rusqlite::Result<Dump> {
            let tx = self.conn.unchecked_transaction()?;
            let mut out = Dump::default();
            let mut s = tx.prepare(
                "SELECT issue, kind, state, subject, started_at, finished_at, invalid, duplicates, imported,
                        stop_reason, boot_id, import_rows FROM sends ORDER BY started_at",
            )?;
            out.sends = s
                .query_map([], |r| {
                    Ok(SendRow {
                        issue: r.get(0)?,
                        kind: r.get(1)?,
                        state: r.get(2)?,
                        subject: r.get(3)?,
                        started_at: r.get(4)?,
                        finished_at: r.get(5)?,
                        invalid: r.get(6)?,
                        duplicates: r.get(7)?,
                        imported: r.get::<_, i64>(8)? != 0,
                        stop_reason: r.get(9)?,
                        boot_id: r.get(10)?,
                        import_rows: r.get(11)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut d = tx.prepare(
                "SELECT id, issue, kind, email_key, email, name, fields, state, attempts, last_reply, message_id,
                        token, updated_at, sent_at, data_at, next_attempt_at, first_failed_at
                 FROM deliveries ORDER BY id",
            )?;
            out.deliveries = d.query_map([], delivery_row)?.collect::<Result<_, _>>()?;
            let mut p = tx.prepare(
                "SELECT email, reason, source, created_at FROM suppressions ORDER BY created_at, email_key",
            )?;
            out.suppressions = p
                .query_map([], suppression_row)?
                .collect::<Result<_, _>>()?;
            drop((s, d, p));
            tx.commit()?;
            Ok(out)
        };
        run().map_err(|e| self.err(e))
    }
}

fn delivery_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.get(0)?,
        issue: r.get(1)?,
        kind: r.get(2)?,
        email_key: r.get(3)?,
        email: r.get(4)?,
        name: r.get(5)?,
        fields: r.get(6)?,
        state: r.get(7)?,
        attempts: r.get(8)?,
        last_reply: r.get(9)?,
        message_id: r.get(10)?,
        token: r.get(11)?,
        updated_at: r.get(12)?,
        sent_at: r.get(13)?,
        data_at: r.get(14)?,
        next_attempt_at: r.get(15)?,
        first_failed_at: r.get(16)?,
    })
}
