//! One send per issue at a time, across processes and machines sharing the
//! state folder.
//!
//! An OS file lock is used rather than a row in the ledger: the kernel drops
//! it when the holder dies, even by SIGKILL, so a crashed send never leaves a
//! stale lock behind for the next cron tick.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::deliver::ledger::postgres::{PgConn, lock_name};
use crate::deliver::ledger::{LedgerError, PgTarget};

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "issue `{issue}` is being sent by another briefing process ({holder}); wait for it to finish, or check `briefing status`"
    )]
    Busy {
        /// The issue slug.
        issue: String,
        /// What the holder wrote into the lock file.
        holder: String,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A held lock; released on drop (or when the process dies).
pub struct IssueLock {
    _held: Held,
    /// The lock file's path (for PostgreSQL, the lock's name).
    pub path: PathBuf,
}

/// What keeps the lock: an open locked file, or the database session that
/// holds the advisory lock (the server drops it when the session ends,
/// also when the host dies and its TCP connection times out).
enum Held {
    File(#[allow(dead_code)] File),
    Session(#[allow(dead_code)] PgConn),
}

impl std::fmt::Debug for IssueLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssueLock({})", self.path.display())
    }
}

/// Takes the session-level advisory lock for `issue` in PostgreSQL,
/// without waiting, on a session of its own held until the lock is
/// dropped. The key is a hash of the schema and the issue, so
/// newsletters sharing a database never block each other.
pub fn try_pg_lock(target: &PgTarget, issue: &str, holder: &str) -> Result<IssueLock, LockError> {
    let name = lock_name(target.schema_name(), issue);
    let path = PathBuf::from(format!("{} (advisory lock {name})", target.redacted));
    let io = |e: LedgerError| LockError::Io {
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    };
    let conn = PgConn::connect(target).map_err(io)?;
    let (key, who) = (name.clone(), holder.to_string());
    let got = conn
        .call(move |c| {
            let got: bool = c
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                    &[&key],
                )?
                .get(0);
            if got {
                // Who holds it, for the next run's message.
                c.execute(
                    "SELECT set_config('application_name', $1, false)",
                    &[&truncate(&who)],
                )?;
            }
            Ok(got)
        })
        .map_err(io)?;
    if !got {
        let key = name.clone();
        let holder = conn
            .call(move |c| {
                let row = c.query_opt(
                    "SELECT a.application_name || ' (' || COALESCE(host(a.client_addr), 'local') || ')'
                     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                       AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0)",
                    &[&key],
                )?;
                Ok(row.map(|r| r.get::<_, String>(0)).unwrap_or_default())
            })
            .unwrap_or_default();
        return Err(LockError::Busy {
            issue: issue.to_string(),
            holder,
        });
    }
    Ok(IssueLock {
        _held: Held::Session(conn),
        path,
    })
}

/// `application_name` keeps 63 bytes.
fn truncate(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() + c.len_utf8() > 63 {
            break;
        }
        out.push(c);
    }
    out
}

/// Takes the lock for `issue` in `dir`, without waiting.
pub fn try_lock(dir: &Path, issue: &str, holder: &str) -> Result<IssueLock, LockError> {
    let path = dir.join(format!("{issue}.lock"));
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    // A `status` probe holds the lock for microseconds; do not report that
    // as a concurrent send.
    let mut tries = 0;
    let locked = loop {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) if tries < 5 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other,
        }
    };
    match locked {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::Busy {
                issue: issue.to_string(),
                holder: text.trim().to_string(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    writeln!(file, "{holder}").map_err(io)?;
    Ok(IssueLock {
        _held: Held::File(file),
        path,
    })
}

/// True when some process holds the issue's lock (a send is running).
pub fn is_held(dir: &Path, issue: &str) -> bool {
    let path = dir.join(format!("{issue}.lock"));
    let Ok(file) = File::open(&path) else {
        return false;
    };
    matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
}

/// The folder that holds per-issue lock files, next to the ledger; a
/// newsletter under `[newsletters]` has its own, as its issues' slugs may
/// be another's.
pub fn lock_dir(config: &Config) -> PathBuf {
    let ledger = config.resolve(&config.send.ledger);
    let dir = ledger
        .parent()
        .map(|p| p.join("locks"))
        .unwrap_or_else(|| PathBuf::from("locks"));
    match &config.own_id {
        Some(id) => dir.join(id),
        None => dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_issue_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = try_lock(dir.path(), "2025-01-17", "pid 1").unwrap();
        match try_lock(dir.path(), "2025-01-17", "pid 2") {
            Err(LockError::Busy { holder, .. }) => assert_eq!(holder, "pid 1"),
            other => panic!("expected Busy, got {other:?}"),
        }
        assert!(try_lock(dir.path(), "2025-01-18", "pid 2").is_ok());
        assert!(is_held(dir.path(), "2025-01-17"));
        drop(first);
        assert!(!is_held(dir.path(), "2025-01-17"));
        assert!(try_lock(dir.path(), "2025-01-17", "pid 3").is_ok());
    }
}
