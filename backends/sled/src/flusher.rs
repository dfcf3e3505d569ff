//! Group commit: one thread flushes sled for every writer waiting at the time.
//!
//! A durable writer applies its batch, then asks the flusher to make it durable and waits.
//! The flusher takes every request queued so far, runs one `flush()` (which covers every
//! batch applied before it started) and answers them all. While a flush runs, new requests
//! queue up and share the next one, so N concurrent writers cost about one fsync per round
//! instead of N.

use std::sync::mpsc;
use std::thread;

use apistore::{Error, Result};
use tokio::sync::oneshot;

type Waiter = oneshot::Sender<Result<()>>;

/// Handle of the flusher thread; the thread ends when the handle is dropped.
#[derive(Debug)]
pub(crate) struct Flusher {
    requests: Option<mpsc::Sender<Waiter>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Flusher {
    /// Starts the flusher thread of `db`.
    pub(crate) fn start(db: sled::Db) -> Result<Self> {
        let (requests, incoming) = mpsc::channel::<Waiter>();
        let thread = thread::Builder::new()
            .name("apistore-sled-flush".into())
            .spawn(move || run(db, incoming))
            .map_err(|e| Error::internal(format!("cannot start the sled flusher thread: {e}")))?;
        Ok(Flusher { requests: Some(requests), thread: Some(thread) })
    }

    /// Waits until everything applied before this call is durable.
    ///
    /// Errors: [`Error::Unavailable`] when the flush fails or the flusher is gone.
    pub(crate) async fn flush(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
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

fn run(db: sled::Db, incoming: mpsc::Receiver<Waiter>) {
    while let Ok(first) = incoming.recv() {
        let mut waiters = vec![first];
        waiters.extend(incoming.try_iter());
        let outcome = db.flush().map(|_| ()).map_err(|e| Error::unavailable(format!("sled flush failed: {e}")));
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
    }
}
