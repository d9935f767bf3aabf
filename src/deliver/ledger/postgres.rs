//! The PostgreSQL backend of the ledger, for senders and unsubscribe
//! endpoints on several hosts.
//!
//! The `postgres` client runs a runtime of its own and must not be called
//! on a tokio thread, while the engine calls the ledger from its workers:
//! so one plain thread owns the connection ([`PgConn`]) and every call is
//! a closure sent to it, answered over a channel. A commit is durable when
//! it returns (`synchronous_commit = on` is set for the session), so no
//! sync of our own is needed, and the marks stay trustworthy after any
//! host's reboot: unlike SQLite, a resumed send settles rows by their mark
//! whatever machine ran before.
//!
//! Every claim records this connection's run id, and a mark only lands on
//! a row the same run still holds: a run that lost its session (and with
//! it the issue's advisory lock) to a network split cannot write its `.`
//! after another host took the row over.

use std::sync::mpsc;
use std::thread::JoinHandle;

use jiff::Timestamp;
use postgres::{Client, NoTls};

use super::{
    Accepted, Counts, Deferral, Delivery, DeliveryState, Failure, ImportProgress, ImportRows,
    LedgerError, NewSuppression, PgTarget, Resumed, SendKind, SendRecord, SendState, Suppression,
    decode_fields, encode_fields,
};
use crate::audience::recipient::{Recipient, address_key};

type Job = Box<dyn FnOnce(&mut Client) + Send>;

/// One PostgreSQL session, owned by a thread of its own; closed (and its
/// session-level advisory locks released) when dropped.
pub struct PgConn {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    label: String,
}

impl PgConn {
    /// Connects to `target` and sets the session up (search path, durable
    /// commits).
    pub fn connect(target: &PgTarget) -> Result<Self, LedgerError> {
        let label = target.redacted.clone();
        let config = target.config.clone();
        let schema = target.schema.clone();
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), postgres::Error>>();
        let thread = std::thread::Builder::new()
            .name("briefing-ledger".into())
            .spawn(move || {
                let setup = |c: &mut Client| -> Result<(), postgres::Error> {
                    c.batch_execute("SET synchronous_commit = on")?;
                    if let Some(s) = &schema {
                        let ident = quote_ident(s);
                        c.batch_execute(&format!(
                            "CREATE SCHEMA IF NOT EXISTS {ident}; SET search_path TO {ident}"
                        ))?;
                    }
                    Ok(())
                };
                let mut client = match config.connect(NoTls) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                if let Err(e) = setup(&mut client) {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                while let Ok(job) = rx.recv() {
                    job(&mut client);
                }
            })
            .map_err(|e| LedgerError::Gone(format!("cannot start the ledger thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                tx: Some(tx),
                thread: Some(thread),
                label,
            }),
            Ok(Err(source)) => Err(LedgerError::Postgres {
                target: label,
                source,
            }),
            Err(_) => Err(LedgerError::Gone(format!(
                "ledger {label}: the connection thread stopped"
            ))),
        }
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, postgres::Error> + Send + 'static,
    ) -> Result<R, LedgerError> {
        let gone = || LedgerError::Gone(format!("ledger {}: the connection is closed", self.label));
        let (rtx, rrx) = mpsc::sync_channel(1);
        let tx = self.tx.as_ref().ok_or_else(gone)?;
        tx.send(Box::new(move |c: &mut Client| {
            let _ = rtx.send(f(c));
        }))
        .map_err(|_| gone())?;
        rrx.recv()
            .map_err(|_| gone())?
            .map_err(|source| LedgerError::Postgres {
                target: self.label.clone(),
                source,
            })
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The schema; `imported` is a boolean here, and every column SQLite got
/// by its first migration is there from the start. Columns added later
/// come as `ADD COLUMN IF NOT EXISTS` at the end, so a database an older
/// briefing created gains them on open, as SQLite's migrations do.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sends (
    issue TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    subject TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    invalid BIGINT NOT NULL DEFAULT 0,
    duplicates BIGINT NOT NULL DEFAULT 0,
    imported BOOLEAN NOT NULL DEFAULT false,
    stop_reason TEXT,
    boot_id TEXT,
    PRIMARY KEY (issue, kind)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id BIGSERIAL PRIMARY KEY,
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
    data_at TEXT,
    next_attempt_at TEXT,
    first_failed_at TEXT,
    run_id TEXT,
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
ALTER TABLE sends ADD COLUMN IF NOT EXISTS import_rows BIGINT NOT NULL DEFAULT 0;
";

/// An open PostgreSQL ledger.
pub struct PgLedger {
    conn: PgConn,
    /// Where it is, for a second session ([`Self::reopen`]).
    target: Box<PgTarget>,
    run_id: String,
    schema: String,
}

/// The name whose hash keys an issue's advisory lock: the schema is part
/// of it, so newsletters sharing a database never block each other.
pub fn lock_name(schema: &str, issue: &str) -> String {
    format!("briefing:{schema}:{issue}")
}

/// True when some session holds the advisory lock named `name` (a
/// bigint key shows in `pg_locks` as its two 32-bit halves).
pub const LOCK_HELD: &str =
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
   AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0))";

fn count(n: i64) -> u64 {
    n.unsigned_abs()
}

fn attempts(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

impl PgLedger {
    /// Connects and creates the tables if needed. Two hosts starting at
    /// once would race on `CREATE TABLE IF NOT EXISTS`, so the creation
    /// holds a transaction-level advisory lock.
    pub fn open(target: &PgTarget) -> Result<Self, LedgerError> {
        let conn = PgConn::connect(target)?;
        conn.call(|c| {
            let mut tx = c.transaction()?;
            tx.batch_execute("SELECT pg_advisory_xact_lock(hashtext('briefing ledger schema'))")?;
            tx.batch_execute(SCHEMA)?;
            tx.commit()
        })?;
        let run_id = format!("{:016x}", rand::random::<u64>());
        Ok(Self {
            conn,
            run_id,
            schema: target.schema_name().to_string(),
            target: Box::new(target.clone()),
        })
    }

    /// Another session on the same database, for another thread.
    pub fn reopen(&self) -> Result<Self, LedgerError> {
        Self::open(&self.target)
    }

    /// Runs one statement with text parameters; returns the rows changed.
    fn exec(&self, sql: &'static str, args: Vec<Option<String>>) -> Result<u64, LedgerError> {
        self.conn.call(move |c| {
            let params: Vec<&(dyn postgres::types::ToSql + Sync)> = args
                .iter()
                .map(|a| a as &(dyn postgres::types::ToSql + Sync))
                .collect();
            c.execute(sql, &params)
        })
    }

    /// The record of a send, if it ever started.
    pub fn send_record(
        &self,
        issue: &str,
        kind: SendKind,
    ) -> Result<Option<SendRecord>, LedgerError> {
        let (issue, kind) = (issue.to_string(), kind.as_str());
        self.conn.call(move |c| {
            let row = c.query_opt(
                "SELECT issue, kind, state, subject, started_at, finished_at, invalid, duplicates, imported,
                        import_rows
                 FROM sends WHERE issue = $1 AND kind = $2",
                &[&issue, &kind],
            )?;
            Ok(row.map(|r| SendRecord {
                issue: r.get(0),
                kind: r.get(1),
                state: SendState::parse(r.get(2)),
                subject: r.get(3),
                started_at: r.get(4),
                finished_at: r.get(5),
                invalid: count(r.get(6)),
                duplicates: count(r.get(7)),
                imported: r.get(8),
                import_rows: count(r.get(9)),
            }))
        })
    }

    /// Why a send's last run stopped before the end.
    pub fn stop_reason(&self, issue: &str, kind: SendKind) -> Result<Option<String>, LedgerError> {
        let (issue, kind) = (issue.to_string(), kind.as_str());
        self.conn.call(move |c| {
            let row = c.query_opt(
                "SELECT stop_reason FROM sends WHERE issue = $1 AND kind = $2",
                &[&issue, &kind],
            )?;
            Ok(row.and_then(|r| r.get(0)))
        })
    }

    /// Starts (or resumes) a send. The boot is recorded but does not
    /// decide: every commit here was durable when it returned, so a row
    /// without its mark never had its `.` written, on whatever host.
    pub fn begin_on_boot(
        &self,
        issue: &str,
        kind: SendKind,
        subject: &str,
        boot: Option<&str>,
        now: Timestamp,
    ) -> Result<Resumed, LedgerError> {
        let (issue, kind, subject) = (issue.to_string(), kind.as_str(), subject.to_string());
        let (boot, now) = (boot.map(str::to_string), now.to_string());
        self.conn.call(move |c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "INSERT INTO sends (issue, kind, state, subject, started_at, boot_id) VALUES ($1, $2, 'running', $3, $4, $5)
                 ON CONFLICT (issue, kind) DO UPDATE SET state = 'running', finished_at = NULL, stop_reason = NULL,
                   boot_id = $5",
                &[&issue, &kind, &subject, &now, &boot],
            )?;
            let uncertain = tx.execute(
                "UPDATE deliveries SET state = 'uncertain', updated_at = $3,
                   last_reply = 'the run sending this message stopped after its end of data was written, before the server answered'
                 WHERE issue = $1 AND kind = $2 AND state = 'sending' AND data_at IS NOT NULL",
                &[&issue, &kind, &now],
            )?;
            let requeued = tx.execute(
                "UPDATE deliveries SET state = 'pending', attempts = GREATEST(attempts - 1, 0), updated_at = $3,
                   last_reply = 'the run sending this message stopped before its end of data was written'
                 WHERE issue = $1 AND kind = $2 AND state = 'sending' AND data_at IS NULL",
                &[&issue, &kind, &now],
            )?;
            tx.commit()?;
            Ok(Resumed {
                uncertain,
                requeued,
            })
        })
    }

    /// Forgets an earlier test send of the issue.
    pub fn reset_test(&self, issue: &str) -> Result<(), LedgerError> {
        let issue = issue.to_string();
        self.conn.call(move |c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "DELETE FROM deliveries WHERE issue = $1 AND kind = 'test'",
                &[&issue],
            )?;
            tx.execute(
                "DELETE FROM sends WHERE issue = $1 AND kind = 'test'",
                &[&issue],
            )?;
            tx.commit()
        })
    }

    /// Adds recipients as pending rows in one transaction; one round trip
    /// per row, as the adder must say at once whether the row was new.
    pub fn import(
        &mut self,
        issue: &str,
        kind: SendKind,
        rows: impl FnOnce(
            &mut dyn FnMut(&Recipient, &str) -> Result<bool, LedgerError>,
        ) -> Result<(u64, u64), LedgerError>,
    ) -> Result<(), LedgerError> {
        self.conn.call(|c| c.batch_execute("BEGIN"))?;
        let result = (|| {
            let mut add = |r: &Recipient, token: &str| -> Result<bool, LedgerError> {
                let args = vec![
                    Some(issue.to_string()),
                    Some(kind.as_str().to_string()),
                    Some(address_key(&r.email)),
                    Some(r.email.clone()),
                    Some(r.name.clone()),
                    Some(encode_fields(&r.fields)),
                    Some(token.to_string()),
                ];
                let n = self.exec(
                    "INSERT INTO deliveries (issue, kind, email_key, email, name, fields, state, token)
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)
                     ON CONFLICT (issue, kind, email_key) DO NOTHING",
                    args,
                )?;
                Ok(n == 1)
            };
            let (invalid, duplicates) = rows(&mut add)?;
            let (issue, kind) = (issue.to_string(), kind.as_str());
            self.conn.call(move |c| {
                c.execute(
                    "UPDATE sends SET imported = true, invalid = $3, duplicates = $4 WHERE issue = $1 AND kind = $2",
                    &[&issue, &kind, &(invalid as i64), &(duplicates as i64)],
                )?;
                c.batch_execute("COMMIT")
            })
        })();
        if result.is_err() {
            let _ = self.conn.call(|c| c.batch_execute("ROLLBACK"));
        }
        result
    }

    /// Adds one chunk of a list as pending rows and records the import's
    /// progress, in one transaction and one trip to the connection's
    /// thread; returns how many rows were new.
    pub fn import_chunk(
        &mut self,
        issue: &str,
        kind: SendKind,
        rows: &ImportRows,
        progress: &ImportProgress,
    ) -> Result<u64, LedgerError> {
        let (issue, kind) = (issue.to_string(), kind.as_str());
        // Owned: the rows go to the connection's thread.
        let rows: Vec<[String; 5]> = rows.iter().map(|row| row.map(str::to_string)).collect();
        let p = *progress;
        self.conn.call(move |c| {
            let mut tx = c.transaction()?;
            let stmt = tx.prepare(
                "INSERT INTO deliveries (issue, kind, email_key, email, name, fields, state, token)
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)
                 ON CONFLICT (issue, kind, email_key) DO NOTHING",
            )?;
            let mut added = 0;
            for [key, email, name, fields, token] in &rows {
                added += tx.execute(&stmt, &[&issue, &kind, key, email, name, fields, token])?;
            }
            let duplicates = rows.len() as u64 - added;
            tx.execute(
                "UPDATE sends SET import_rows = $3, invalid = invalid + $4, duplicates = duplicates + $5,
                   imported = $6 WHERE issue = $1 AND kind = $2",
                &[&issue, &kind, &(p.rows as i64), &(p.invalid as i64), &(duplicates as i64), &p.done],
            )?;
            tx.commit()?;
            Ok(added)
        })
    }

    /// Claims the next fresh pending row (never tried); rows other hosts
    /// hold are skipped, suppressed addresses marked on the way.
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

    /// Claims up to `n` fresh pending rows with `FOR UPDATE SKIP LOCKED`,
    /// so claims from several processes never wait for or take the same
    /// row, in one transaction that also records `accepted` as sent.
    pub fn claim_batch(
        &self,
        issue: &str,
        kind: SendKind,
        n: usize,
        message_id: impl Fn() -> String,
        now: Timestamp,
        accepted: &[Accepted],
    ) -> Result<Vec<Delivery>, LedgerError> {
        let (issue, kind_s, now_s) = (issue.to_string(), kind.as_str(), now.to_string());
        // Message-IDs come from the caller's generator, which stays on this
        // thread; the database thread gets them made.
        let ids: Vec<String> = (0..n).map(|_| message_id()).collect();
        let (run, accepted) = (self.run_id.clone(), accepted.to_vec());
        let real = kind == SendKind::Real;
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        self.conn.call(move |c| {
            let mut tx = c.transaction()?;
            record_accepted_on(&mut tx, &accepted)?;
            let mut ids = ids.into_iter();
            let mut claimed = Vec::with_capacity(n);
            while claimed.len() < n {
                let left = limit - claimed.len() as i64;
                let rows = tx.query(
                    "SELECT d.id, EXISTS (SELECT 1 FROM suppressions s WHERE s.email_key = d.email_key)
                     FROM deliveries d
                     WHERE d.issue = $1 AND d.kind = $2 AND d.state = 'pending' AND d.attempts = 0
                     ORDER BY d.id LIMIT $3 FOR UPDATE SKIP LOCKED",
                    &[&issue, &kind_s, &left],
                )?;
                if rows.is_empty() {
                    break;
                }
                for row in rows {
                    let (id, suppressed): (i64, bool) = (row.get(0), row.get(1));
                    if suppressed && real {
                        set_state_on(&mut tx, id, DeliveryState::Suppressed, Some("on the suppression list"), &now_s)?;
                        continue;
                    }
                    let mid = ids.next().unwrap_or_default();
                    claimed.extend(claim_on(&mut tx, id, &mid, &now_s, &run)?);
                }
            }
            tx.commit()?;
            Ok(claimed)
        })
    }

    /// Claims a row for a retry by id (it must be pending), keeping the
    /// first try's Message-ID.
    pub fn claim_retry(
        &self,
        id: i64,
        message_id: String,
        now: Timestamp,
    ) -> Result<Option<Delivery>, LedgerError> {
        let (now_s, run) = (now.to_string(), self.run_id.clone());
        self.conn.call(move |c| {
            let mut tx = c.transaction()?;
            let Some(row) = tx.query_opt(
                "SELECT d.message_id,
                        d.kind = 'real' AND EXISTS (SELECT 1 FROM suppressions s WHERE s.email_key = d.email_key)
                 FROM deliveries d WHERE d.id = $1 AND d.state = 'pending' FOR UPDATE SKIP LOCKED",
                &[&id],
            )?
            else {
                return Ok(None);
            };
            let (earlier, suppressed): (Option<String>, bool) = (row.get(0), row.get(1));
            if suppressed {
                set_state_on(&mut tx, id, DeliveryState::Suppressed, Some("on the suppression list"), &now_s)?;
                tx.commit()?;
                return Ok(None);
            }
            let mid = earlier.unwrap_or(message_id);
            let d = claim_on(&mut tx, id, &mid, &now_s, &run)?;
            tx.commit()?;
            Ok(d)
        })
    }

    /// Puts a claimed row back untouched.
    pub fn release(&self, id: i64, reply: &str, now: Timestamp) -> Result<(), LedgerError> {
        let (reply, now) = (reply.to_string(), now.to_string());
        self.conn.call(move |c| {
            c.execute(
                "UPDATE deliveries SET state = 'pending', attempts = GREATEST(attempts - 1, 0), last_reply = $2,
                   updated_at = $3, data_at = NULL
                 WHERE id = $1",
                &[&id, &reply, &now],
            )
            .map(drop)
        })
    }

    /// Rows waiting for a retry (pending after at least one try).
    pub fn retry_ids(&self, issue: &str, kind: SendKind) -> Result<Vec<i64>, LedgerError> {
        let (issue, kind) = (issue.to_string(), kind.as_str());
        self.conn.call(move |c| {
            let rows = c.query(
                "SELECT id FROM deliveries WHERE issue = $1 AND kind = $2 AND state = 'pending' AND attempts > 0 ORDER BY id",
                &[&issue, &kind],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// Puts uncertain rows back in the queue.
    pub fn requeue_uncertain(&self, issue: &str, kind: SendKind) -> Result<u64, LedgerError> {
        self.exec(
            "UPDATE deliveries SET state = 'pending', attempts = 0, data_at = NULL
             WHERE issue = $1 AND kind = $2 AND state = 'uncertain'",
            vec![Some(issue.to_string()), Some(kind.as_str().to_string())],
        )
    }

    /// Puts failed rows whose last reply was not a 5xx back in the queue.
    pub fn requeue_failed(&self, issue: &str, kind: SendKind) -> Result<u64, LedgerError> {
        self.exec(
            "UPDATE deliveries SET state = 'pending', attempts = 0, data_at = NULL,
               next_attempt_at = NULL, first_failed_at = NULL
             WHERE issue = $1 AND kind = $2 AND state = 'failed'
               AND NOT (COALESCE(last_reply, '') ~ '^5[0-9][0-9]')",
            vec![Some(issue.to_string()), Some(kind.as_str().to_string())],
        )
    }

    /// Records a claimed row's end-of-data mark, only while this run still
    /// holds the row, with `accepted` recorded as sent in the same commit.
    pub fn mark_data_recording(
        &self,
        id: i64,
        now: Timestamp,
        accepted: &[Accepted],
    ) -> Result<(), LedgerError> {
        let (now, run, accepted) = (now.to_string(), self.run_id.clone(), accepted.to_vec());
        let n = self.conn.call(move |c| {
            let mut tx = c.transaction()?;
            record_accepted_on(&mut tx, &accepted)?;
            let n = tx.execute(
                "UPDATE deliveries SET data_at = $2 WHERE id = $1 AND state = 'sending' AND run_id = $3",
                &[&id, &now, &run],
            )?;
            tx.commit()?;
            Ok(n)
        })?;
        if n == 0 {
            return Err(LedgerError::Mark(
                "another run took this recipient over (did this host lose its database session?)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Records `accepted` as sent, in one transaction.
    pub fn record_accepted(&self, accepted: &[Accepted]) -> Result<(), LedgerError> {
        let accepted = accepted.to_vec();
        self.conn.call(move |c| {
            let mut tx = c.transaction()?;
            record_accepted_on(&mut tx, &accepted)?;
            tx.commit()
        })
    }

    /// Records a temporary failure to be retried in this run.
    pub fn retry_later(&self, id: i64, reply: &str, now: Timestamp) -> Result<(), LedgerError> {
        let (reply, now) = (reply.to_string(), now.to_string());
        self.conn.call(move |c| {
            c.execute(
                "UPDATE deliveries SET state = 'pending', last_reply = $2, updated_at = $3,
                   first_failed_at = COALESCE(first_failed_at, $3) WHERE id = $1",
                &[&id, &reply, &now],
            )
            .map(drop)
        })
    }

    /// Defers a row after repeated 4xx replies.
    pub fn defer(
        &self,
        id: i64,
        reply: &str,
        next: Timestamp,
        now: Timestamp,
    ) -> Result<(), LedgerError> {
        let (reply, next, now) = (reply.to_string(), next.to_string(), now.to_string());
        self.conn.call(move |c| {
            c.execute(
                "UPDATE deliveries SET state = 'deferred', last_reply = $2, next_attempt_at = $3,
                   updated_at = $4, first_failed_at = COALESCE(first_failed_at, $4) WHERE id = $1",
                &[&id, &reply, &next, &now],
            )
            .map(drop)
        })
    }

    /// Puts deferred rows whose next attempt has come back in the queue.
    pub fn wake_deferred(
        &self,
        issue: &str,
        kind: SendKind,
        now: Timestamp,
    ) -> Result<u64, LedgerError> {
        self.exec(
            "UPDATE deliveries SET state = 'pending' WHERE issue = $1 AND kind = $2
               AND state = 'deferred' AND next_attempt_at <= $3",
            vec![
                Some(issue.to_string()),
                Some(kind.as_str().to_string()),
                Some(now.to_string()),
            ],
        )
    }

    /// The earliest next attempt of a deferred row, if any.
    pub fn next_attempt(&self, issue: &str, kind: SendKind) -> Result<Option<String>, LedgerError> {
        let (issue, kind) = (issue.to_string(), kind.as_str());
        self.conn.call(move |c| {
            c.query_one(
                "SELECT MIN(next_attempt_at) FROM deliveries WHERE issue = $1 AND kind = $2 AND state = 'deferred'",
                &[&issue, &kind],
            )
            .map(|r| r.get(0))
        })
    }

    /// Deferred recipients, next attempt first.
    pub fn deferrals(
        &self,
        issue: &str,
        kind: SendKind,
        limit: usize,
    ) -> Result<Vec<Deferral>, LedgerError> {
        let (issue, kind, limit) = (issue.to_string(), kind.as_str(), limit as i64);
        self.conn.call(move |c| {
            let rows = c.query(
                "SELECT email, COALESCE(last_reply, ''), attempts, COALESCE(next_attempt_at, '') FROM deliveries
                 WHERE issue = $1 AND kind = $2 AND state = 'deferred' ORDER BY next_attempt_at, id LIMIT $3",
                &[&issue, &kind, &limit],
            )?;
            Ok(rows
                .iter()
                .map(|r| Deferral {
                    email: r.get(0),
                    reply: r.get(1),
                    attempts: attempts(r.get(2)),
                    next_attempt_at: r.get(3),
                })
                .collect())
        })
    }

    /// Records a row's new state and the server's reply.
    pub fn set_state(
        &self,
        id: i64,
        state: DeliveryState,
        reply: Option<&str>,
        now: Timestamp,
    ) -> Result<(), LedgerError> {
        let (reply, now) = (reply.map(str::to_string), now.to_string());
        self.conn.call(move |c| {
            let mut tx = c.transaction()?;
            set_state_on(&mut tx, id, state, reply.as_deref(), &now)?;
            tx.commit()
        })
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
        self.exec(
            "UPDATE sends SET state = $3, finished_at = $4, stop_reason = $5 WHERE issue = $1 AND kind = $2",
            vec![
                Some(issue.to_string()),
                Some(kind.as_str().to_string()),
                Some(state.as_str().to_string()),
                Some(now.to_string()),
                reason.map(str::to_string),
            ],
        )
        .map(drop)
    }

    /// Counts per state.
    pub fn counts(&self, issue: &str, kind: SendKind) -> Result<Counts, LedgerError> {
        let (issue, kind) = (issue.to_string(), kind.as_str());
        let rows: Vec<(String, i64)> = self.conn.call(move |c| {
            let rows = c.query(
                "SELECT state, COUNT(*) FROM deliveries WHERE issue = $1 AND kind = $2 GROUP BY state",
                &[&issue, &kind],
            )?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })?;
        let mut c = Counts::default();
        for (state, n) in rows {
            c.add(DeliveryState::parse(&state), count(n));
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
        let (issue, kind, limit) = (issue.to_string(), kind.as_str(), limit as i64);
        self.conn.call(move |c| {
            let rows = c.query(
                "SELECT email, state, COALESCE(last_reply, ''), attempts FROM deliveries
                 WHERE issue = $1 AND kind = $2 AND state IN ('failed', 'uncertain') ORDER BY id LIMIT $3",
                &[&issue, &kind, &limit],
            )?;
            Ok(rows
                .iter()
                .map(|r| Failure {
                    email: r.get(0),
                    state: r.get(1),
                    reply: r.get(2),
                    attempts: attempts(r.get(3)),
                })
                .collect())
        })
    }

    /// First and last delivery time of a send.
    pub fn sent_span(
        &self,
        issue: &str,
        kind: SendKind,
    ) -> Result<Option<(String, String)>, LedgerError> {
        let (issue, kind) = (issue.to_string(), kind.as_str());
        self.conn.call(move |c| {
            let r = c.query_one(
                "SELECT MIN(sent_at), MAX(sent_at) FROM deliveries WHERE issue = $1 AND kind = $2 AND sent_at IS NOT NULL",
                &[&issue, &kind],
            )?;
            Ok(r.get::<_, Option<String>>(0).zip(r.get::<_, Option<String>>(1)))
        })
    }

    /// Adds an address to the suppression list (keeps the first reason).
    pub fn suppress(
        &self,
        email: &str,
        reason: &str,
        source: &str,
        now: Timestamp,
    ) -> Result<bool, LedgerError> {
        let n = self.exec(
            "INSERT INTO suppressions (email_key, email, reason, source, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (email_key) DO NOTHING",
            vec![
                Some(address_key(email)),
                Some(email.trim().to_string()),
                Some(reason.to_string()),
                Some(source.to_string()),
                Some(now.to_string()),
            ],
        )?;
        Ok(n == 1)
    }

    /// Removes an address from the suppression list.
    pub fn unsuppress(&self, email: &str) -> Result<bool, LedgerError> {
        let n = self.exec(
            "DELETE FROM suppressions WHERE email_key = $1",
            vec![Some(address_key(email))],
        )?;
        Ok(n == 1)
    }

    /// Whether an address is suppressed, and why.
    pub fn suppression(&self, email: &str) -> Result<Option<Suppression>, LedgerError> {
        let key = address_key(email);
        self.conn.call(move |c| {
            let row = c.query_opt(
                "SELECT email, reason, source, created_at FROM suppressions WHERE email_key = $1",
                &[&key],
            )?;
            Ok(row.map(|r| suppression_row(&r)))
        })
    }

    /// The whole suppression list, oldest first.
    pub fn suppressions(&self) -> Result<Vec<Suppression>, LedgerError> {
        self.conn.call(|c| {
            let rows = c.query(
                "SELECT email, reason, source, created_at FROM suppressions ORDER BY created_at, email_key",
                &[],
            )?;
            Ok(rows.iter().map(suppression_row).collect())
        })
    }

    /// The address an unsubscribe token was issued to, in any send.
    pub fn email_for_token(&self, token: &str) -> Result<Option<String>, LedgerError> {
        let token = token.to_string();
        self.conn.call(move |c| {
            let row = c.query_opt(
                "SELECT email FROM deliveries WHERE token = $1 ORDER BY id DESC LIMIT 1",
                &[&token],
            )?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// Removes an address from the suppression list only if it is there
    /// for `reason`.
    pub fn unsuppress_if(&self, email: &str, reason: &str) -> Result<bool, LedgerError> {
        let n = self.exec(
            "DELETE FROM suppressions WHERE email_key = $1 AND reason = $2",
            vec![Some(address_key(email)), Some(reason.to_string())],
        )?;
        Ok(n == 1)
    }

    /// Adds many addresses in one transaction; returns how many were new.
    pub fn suppress_all(&mut self, items: &[NewSuppression]) -> Result<u64, LedgerError> {
        let rows: Vec<[String; 5]> = items
            .iter()
            .map(|s| {
                [
                    address_key(&s.email),
                    s.email.trim().to_string(),
                    s.reason.clone(),
                    s.source.clone(),
                    s.created_at.to_string(),
                ]
            })
            .collect();
        self.conn.call(move |c| {
            let mut tx = c.transaction()?;
            let stmt = tx.prepare(
                "INSERT INTO suppressions (email_key, email, reason, source, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (email_key) DO NOTHING",
            )?;
            let mut added = 0;
            for [k, e, r, s, t] in &rows {
                added += tx.execute(&stmt, &[k, e, r, s, t])?;
            }
            tx.commit()?;
            Ok(added)
        })
    }

    /// Every issue with a send record, oldest first.
    pub fn issues(&self) -> Result<Vec<SendRecord>, LedgerError> {
        let keys: Vec<String> = self.conn.call(|c| {
            let rows = c.query(
                "SELECT issue FROM sends WHERE kind = 'real' ORDER BY started_at",
                &[],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })?;
        let mut out = Vec::new();
        for k in keys {
            if let Some(r) = self.send_record(&k, SendKind::Real)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Whether a run on any host holds the issue's lock (`name`: the
    /// issue's lock name without the schema).
    pub fn lock_held(&self, name: &str) -> Result<bool, LedgerError> {
        let key = lock_name(&self.schema, name);
        self.conn
            .call(move |c| c.query_one(LOCK_HELD, &[&key]).map(|r| r.get(0)))
    }

    /// Copies deliveries and sends as they are, for `ledger migrate`: ids
    /// are kept so the order of the queue stays.
    pub fn copy_in(&mut self, dump: &super::Dump) -> Result<(), LedgerError> {
        let dump = dump.clone();
        self.conn.call(move |c| {
            let mut tx = c.transaction()?;
            for s in &dump.sends {
                tx.execute(
                    "INSERT INTO sends (issue, kind, state, subject, started_at, finished_at, invalid, duplicates,
                       imported, stop_reason, boot_id, import_rows)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    &[&s.issue, &s.kind, &s.state, &s.subject, &s.started_at, &s.finished_at, &s.invalid,
                      &s.duplicates, &s.imported, &s.stop_reason, &s.boot_id, &s.import_rows],
                )?;
            }
            let stmt = tx.prepare(
                "INSERT INTO deliveries (id, issue, kind, email_key, email, name, fields, state, attempts, last_reply,
                   message_id, token, updated_at, sent_at, data_at, next_attempt_at, first_failed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            )?;
            for d in &dump.deliveries {
                tx.execute(
                    &stmt,
                    &[&d.id, &d.issue, &d.kind, &d.email_key, &d.email, &d.name, &d.fields, &d.state, &d.attempts,
                      &d.last_reply, &d.message_id, &d.token, &d.updated_at, &d.sent_at, &d.data_at,
                      &d.next_attempt_at, &d.first_failed_at],
                )?;
            }
            for s in &dump.suppressions {
                tx.execute(
                    "INSERT INTO suppressions (email_key, email, reason, source, created_at) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (email_key) DO NOTHING",
                    &[&address_key(&s.email), &s.email, &s.reason, &s.source, &s.created_at],
                )?;
            }
            // Ids go on after the copied ones.
            tx.batch_execute(
                "SELECT setval(pg_get_serial_sequence('deliveries', 'id'), GREATEST((SELECT MAX(id) FROM deliveries), 1))",
            )?;
            tx.commit()
        })
    }

    /// Rows per table (sends, deliveries, suppressions).
    pub fn table_counts(&self) -> Result<(u64, u64, u64), LedgerError> {
        self.conn.call(|c| {
            let r = c.query_one(
                "SELECT (SELECT COUNT(*) FROM sends), (SELECT COUNT(*) FROM deliveries), (SELECT COUNT(*) FROM suppressions)",
                &[],
            )?;
            Ok((count(r.get(0)), count(r.get(1)), count(r.get(2))))
        })
    }
}

fn suppression_row(r: &postgres::Row) -> Suppression {
    Suppression {
        email: r.get(0),
        reason: r.get(1),
        source: r.get(2),
        created_at: r.get(3),
    }
}

fn set_state_on(
    tx: &mut postgres::Transaction<'_>,
    id: i64,
    state: DeliveryState,
    reply: Option<&str>,
    now: &str,
) -> Result<(), postgres::Error> {
    let sent_at = (state == DeliveryState::Sent).then_some(now);
    tx.execute(
        "UPDATE deliveries SET state = $2, last_reply = COALESCE($3, last_reply), updated_at = $4,
           sent_at = COALESCE($5, sent_at) WHERE id = $1",
        &[&id, &state.as_str(), &reply, &now, &sent_at],
    )
    .map(drop)
}

fn claim_on(
    tx: &mut postgres::Transaction<'_>,
    id: i64,
    message_id: &str,
    now: &str,
    run: &str,
) -> Result<Option<Delivery>, postgres::Error> {
    let r = tx.query_one(
        "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, message_id = $2, updated_at = $3,
           data_at = NULL, next_attempt_at = NULL, run_id = $4
         WHERE id = $1
         RETURNING email, name, fields, attempts, COALESCE(token, ''), first_failed_at",
        &[&id, &message_id, &now, &run],
    )?;
    let fields: String = r.get(2);
    let first_failed: Option<String> = r.get(5);
    Ok(Some(Delivery {
        id,
        recipient: Recipient {
            email: r.get(0),
            name: r.get(1),
            fields: decode_fields(&fields),
        },
        attempts: attempts(r.get(3)),
        message_id: message_id.to_string(),
        token: r.get(4),
        first_failed_at: first_failed.and_then(|t| t.parse().ok()),
    }))
}

/// Records each accepted row as sent inside `tx`.
fn record_accepted_on(
    tx: &mut postgres::Transaction<'_>,
    accepted: &[Accepted],
) -> Result<(), postgres::Error> {
    for a in accepted {
        set_state_on(
            tx,
            a.id,
            DeliveryState::Sent,
            Some(&a.reply),
            &a.at.to_string(),
        )?;
    }
    Ok(())
}
