//! Group commit: one thread flushes sled for every writer waiting at the time.
//!
//! A durable writer registers as *committing*, applies its batch, then asks the flusher to
//! make it durable and waits. The flusher takes every request queued so far and, while other
//! writers are still committing (they will ask for a flush in a moment), keeps gathering for
//! at most [`MAX_GATHER`]; then it runs one `flush()` (which covers every batch applied before
//! it started) and answers them all. A lone writer is flushed at once (nobody else is
//! committing); N concurrent writers share about one fsync per round instead of N.
//!
//! A writer waits for exactly one flush: the first that starts after its request arrived (it
//! applied its write before sending the request, so that flush covers it). When a flush ends,
//! the next starts at once with every request that arrived meanwhile, unless writers are still
//! committing (then it gathers them for at most [`MAX_GATHER`]). The flush is durable: with a
//! write-ahead log ([`crate::wal`], Immediate mode on disk) one write of the buffered records
//! and one `fdatasync`; without one (a temporary database) sled's flush plus the fsyncs it
//! leaves out ([`crate::durable`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use apistore::{Error, Result};
use tokio::sync::oneshot;

use crate::generation::DbCell;
use crate::wal::Wal;

type Waiter = oneshot::Sender<Result<()>>;

/// Longest time the flusher waits for committing writers to join a flush.
pub(crate) const MAX_GATHER: Duration = Duration::from_micros(500);

/// How often the flusher re-checks the committing count while gathering.
const GATHER_POLL: Duration = Duration::from_micros(50);

/// Handle of the flusher thread; the thread ends when the handle is dropped.
#[derive(Debug)]
pub(crate) struct Flusher {
    requests: Option<mpsc::Sender<Waiter>>,
    committing: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

/// A writer between "about to write" and "asked for its flush" (see [`Flusher::committing`]).
#[derive(Debug)]
pub(crate) struct Committing(Arc<AtomicUsize>);

impl Drop for Committing {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Flusher {
    /// Starts the flusher thread of `db` (it flushes `wal`, or without one whichever database
    /// is live then).
    pub(crate) fn start(db: Arc<DbCell>, wal: Option<Arc<Wal>>) -> Result<Self> {
        let (requests, incoming) = mpsc::channel::<Waiter>();
        let committing = Arc::new(AtomicUsize::new(0));
        let gathering = committing.clone();
        let thread = thread::Builder::new()
            .name("apistore-sled-flush".into())
            .spawn(move || run(db, wal, incoming, gathering))
            .map_err(|e| Error::internal(format!("cannot start the sled flusher thread: {e}")))?;
        Ok(Flusher { requests: Some(requests), committing, thread: Some(thread) })
    }

    /// Marks a writer as committing until the guard is passed to [`Flusher::flush`] (or
    /// dropped), so that a flush in the making waits for it.
    pub(crate) fn committing(&self) -> Committing {
        self.committing.fetch_add(1, Ordering::SeqCst);
        Committing(self.committing.clone())
    }

    /// Waits until everything applied before this call is durable.
    ///
    /// Errors: [`Error::Unavailable`] when the flush fails or the flusher is gone.
    pub(crate) async fn flush(&self, committing: Option<Committing>) -> Result<()> {
        let (done, wait) = oneshot::channel();
        drop(committing);
        self.requests
            .as_ref()
            .ok_or_else(|| Error::unavailable("sled backend is closing"))?
            .send(done)
            .map_err(|_| Error::unavailable("sled flusher thread has stopped"))?;
        wait.await.map_err(|_| Error::unavailable("sled flusher thread has stopped"))?
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(db: Arc<DbCell>, wal: Option<Arc<Wal>>, incoming: mpsc::Receiver<Waiter>, committing: Arc<AtomicUsize>) {
    while let Ok(first) = incoming.recv() {
        let mut waiters = vec![first];
        let deadline = Instant::now() + MAX_GATHER;
        loop {
            waiters.extend(incoming.try_iter());
            let now = Instant::now();
            if committing.load(Ordering::SeqCst) == 0 || now >= deadline {
                break;
            }
            match incoming.recv_timeout((deadline - now).min(GATHER_POLL)) {
                Ok(waiter) => waiters.push(waiter),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        // A write in a generation just switched to is durable only once the switch is.
        let durable = match &wal {
            Some(wal) => wal.sync(),
            None => db.get().and_then(|live| live.flush_durably()),
        };
        let outcome = durable.and_then(|()| db.sync_pointer());
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
    }
}
