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
#[derive(Debug)]
pub struct IssueLock {
    _file: File,
    /// The lock file's path.
    pub path: PathBuf,
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
    Ok(IssueLock { _file: file, path })
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
