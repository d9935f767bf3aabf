//! End-of-data marks, batched: a worker about to write a message's final
//! `.` asks for its mark and waits until it is on disk; one thread records
//! every mark that arrived meanwhile in one transaction and one `fdatasync`
//! (group commit), so the disk's flush time is paid once per batch, not
//! once per message, and no async worker thread ever blocks on the disk.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::clock::Clock;
use crate::deliver::ledger::{Ledger, LedgerError, WalSync};

/// One worker's request: mark row `id`, then answer on `done`.
struct Request {
    id: i64,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// The mark writer of one send (a thread; stopped by [`Marks::stop`] or on
/// drop).
pub struct Marks {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Marks {
    /// Starts the writer for `ledger`, whose commits it makes durable with
    /// `wal` (none for an in-memory ledger).
    pub fn start(ledger: Arc<Mutex<Ledger>>, wal: Option<WalSync>, clock: Arc<dyn Clock>) -> Self {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("briefing-marks".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    let ids: Vec<i64> = batch.iter().map(|r| r.id).collect();
                    let result = flush(&ledger, wal.as_ref(), &ids, clock.as_ref())
                        .map_err(|e| e.to_string());
                    for r in batch {
                        let _ = r.done.send(result.clone());
                    }
                }
            })
            .ok();
        Self {
            tx: thread.as_ref().map(|_| tx),
            thread,
        }
    }

    /// Records row `id`'s end-of-data mark and returns once it is durable.
    pub async fn mark(&self, id: i64) -> Result<(), LedgerError> {
        let Some(tx) = &self.tx else {
            return Err(LedgerError::Mark("the mark writer could not start".into()));
        };
        let (done, answer) = tokio::sync::oneshot::channel();
        tx.send(Request { id, done })
            .map_err(|_| LedgerError::Mark("the mark writer stopped".into()))?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(LedgerError::Mark(e)),
            Err(_) => Err(LedgerError::Mark("the mark writer stopped".into())),
        }
    }

    /// Stops the writer after the marks already asked for.
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

impl Drop for Marks {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// One batch: the marks in one commit (under the ledger's lock, which is
/// quick at `synchronous=NORMAL`), then the sync outside it.
fn flush(
    ledger: &Mutex<Ledger>,
    wal: Option<&WalSync>,
    ids: &[i64],
    clock: &dyn Clock,
) -> Result<(), LedgerError> {
    {
        let mut l = ledger
            .lock()
            .map_err(|_| LedgerError::Mark("the ledger lock was poisoned".into()))?;
        l.mark_data(ids, clock.now())?;
    }
    match wal {
        Some(w) => w.sync(),
        None => Ok(()),
    }
}
