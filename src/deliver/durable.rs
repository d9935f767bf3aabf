//! Power-loss durability for the ledger, batched: a worker that claimed a
//! row asks for a sync at once and waits for it only just before the
//! message's final `.`, so the disk's flush overlaps the message's build
//! and its MAIL/RCPT/DATA round trips. One thread serves every request that
//! arrived meanwhile with one `fdatasync` of the write-ahead log (a group
//! commit), outside SQLite's lock, and no async worker thread ever blocks
//! on the disk.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::deliver::ledger::{LedgerError, WalSync};

/// How long a sync waits for more requests once one came (well under the
/// time one message takes, after which the first request is waited for).
const LINGER: Duration = Duration::from_millis(1);

/// A pending sync: resolves once every commit made before
/// [`Syncer::request`] is on disk.
pub struct Ticket(tokio::sync::oneshot::Receiver<Result<(), String>>);

impl Ticket {
    /// Waits for the sync.
    pub async fn wait(self) -> Result<(), LedgerError> {
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(LedgerError::Mark(e)),
            Err(_) => Err(LedgerError::Mark("the ledger sync thread stopped".into())),
        }
    }
}

/// The sync thread of one send (stopped by [`Syncer::stop`] or on drop).
pub struct Syncer {
    tx: Option<mpsc::Sender<tokio::sync::oneshot::Sender<Result<(), String>>>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread that syncs `wal` for `workers` workers.
    pub fn start(wal: WalSync, workers: usize) -> Self {
        let (tx, rx) = mpsc::channel::<tokio::sync::oneshot::Sender<Result<(), String>>>();
        let thread = std::thread::Builder::new()
            .name("briefing-sync".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // Everyone who asked before this sync starts is served by
                    // it. A ticket is waited for only a message later, so the
                    // thread lingers a little for the other workers' claims:
                    // fewer flushes, less CPU in the kernel.
                    let mut batch = vec![first];
                    let until = Instant::now() + LINGER;
                    while batch.len() < workers {
                        let left = until.saturating_duration_since(Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(more) => batch.push(more),
                            Err(_) => break,
                        }
                    }
                    batch.extend(rx.try_iter());
                    let result = wal.sync().map_err(|e| e.to_string());
                    for done in batch {
                        let _ = done.send(result.clone());
                    }
                }
            })
            .ok();
        Self {
            tx: thread.as_ref().map(|_| tx),
            thread,
        }
    }

    /// Asks for a sync of every commit made so far.
    pub fn request(&self) -> Ticket {
        let (done, answer) = tokio::sync::oneshot::channel();
        match &self.tx {
            Some(tx) => {
                // A stopped thread drops `done`: the ticket then says so.
                let _ = tx.send(done);
            }
            None => {
                let _ = done.send(Err("the ledger sync thread could not start".into()));
            }
        }
        Ticket(answer)
    }

    /// Stops the thread after the syncs already asked for.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shut_down();
    }
}
