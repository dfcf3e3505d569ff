//! Watches: a hub that fans committed events out to subscribers, and the stream that
//! replays history from the start revision before switching to live events.
//!
//! Gap-free hand-over: a watch subscribes first (reading the current revision under the hub
//! lock, the same lock writers publish under), then replays history from the start revision
//! up to that revision, then takes live events, dropping any it has already delivered
//! (dedupe by revision). Every event reaches a subscriber exactly once, in revision order.
//!
//! Slow consumers: each subscriber has a bounded buffer. A writer never waits for a
//! watcher; when a buffer is full the subscriber is cut off and its stream ends with
//! [`Error::Unavailable`] ("watch fell behind, relist") after the events it did receive, so
//! events are never lost silently.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apistore::kv::{Revision, WatchEvent, WatchRequest, WatchStream};
use apistore::{Error, Result};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::backend::Core;

/// Revisions of history replayed per blocking read.
const REPLAY_CHUNK: usize = 512;

struct Subscriber {
    start: String,
    end: String,
    events: mpsc::Sender<Arc<WatchEvent>>,
    fell_behind: Arc<AtomicBool>,
}

impl Subscriber {
    fn wants(&self, key: &str) -> bool {
        in_range(key, &self.start, &self.end)
    }
}

/// `key` in `[start, end)`; an empty `end` means unbounded.
pub(crate) fn in_range(key: &str, start: &str, end: &str) -> bool {
    key >= start && (end.is_empty() || key < end)
}

/// Fans events out to subscribers; owns the "current revision" publication point.
pub(crate) struct Hub {
    subscribers: Mutex<Vec<Subscriber>>,
    /// Counts progress requests; watches with progress notifications subscribe to it.
    progress_requests: watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub { subscribers: Mutex::default(), progress_requests: watch::channel(0).0 }
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.subscribers.lock().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("Hub").field("subscribers", &count).finish()
    }
}

impl Hub {
    /// Makes revision `revision` current and delivers its event on `key` (built only when
    /// someone watches the key). Called by the single writer, in revision order, after the
    /// write is applied.
    pub(crate) fn publish(
        &self,
        current: &AtomicU64,
        revision: Revision,
        key: &str,
        event: impl FnOnce() -> Result<WatchEvent>,
    ) -> Result<()> {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        current.store(revision, Ordering::SeqCst);
        if !subscribers.iter().any(|subscriber| subscriber.wants(key)) {
            subscribers.retain(|subscriber| !subscriber.events.is_closed());
            return Ok(());
        }
        let event = Arc::new(event()?);
        subscribers.retain(|subscriber| {
            if !subscriber.wants(key) {
                return !subscriber.events.is_closed();
            }
            match subscriber.events.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    subscriber.fell_behind.store(true, Ordering::SeqCst);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        Ok(())
    }

    /// Asks every watch with progress notifications for one now (`KvBackend::request_progress`):
    /// each sends [`WatchEvent::Progress`] as soon as it has delivered every event up to the
    /// current revision.
    pub(crate) fn request_progress(&self) {
        self.progress_requests.send_modify(|requests| *requests = requests.wrapping_add(1));
    }

    /// Registers a subscriber and returns the revision up to which it must replay history
    /// itself (every later event is delivered to it live).
    fn subscribe(&self, current: &AtomicU64, subscriber: Subscriber) -> Revision {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        let revision = current.load(Ordering::SeqCst);
        subscribers.push(subscriber);
        revision
    }

    /// The current revision, read under the publication lock, plus one pending live event
    /// if there is one: when `None` comes back, every event up to the revision has been
    /// received.
    fn quiescent_revision(
        &self,
        current: &AtomicU64,
        live: &mut mpsc::Receiver<Arc<WatchEvent>>,
    ) -> (Revision, Option<Arc<WatchEvent>>) {
        let _subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        (current.load(Ordering::SeqCst), live.try_recv().ok())
    }
}

struct WatchState {
    core: Arc<Core>,
    start: String,
    end: String,
    /// The next revision this watch may deliver.
    next: Revision,
    /// Replay history from the store up to this revision (inclusive).
    replay_until: Revision,
    buffer: VecDeque<WatchEvent>,
    live: mpsc::Receiver<Arc<WatchEvent>>,
    fell_behind: Arc<AtomicBool>,
    progress_every: Option<Duration>,
    /// Progress requests (only for watches with progress notifications).
    progress_requests: Option<watch::Receiver<u64>>,
    /// A progress notification is due as soon as no live event is pending.
    progress_due: bool,
    done: bool,
}

/// Starts a watch: checks the start revision, subscribes, returns the stream.
pub(crate) fn start(core: Arc<Core>, request: WatchRequest) -> Result<WatchStream> {
    apistore::kv::validate_range(&request.start, &request.end)?;
    let compacted = core.compacted();
    if request.start_revision != 0 && request.start_revision < compacted {
        return Err(Error::Compacted { requested: request.start_revision, compacted });
    }
    let (sender, live) = mpsc::channel(core.options().watch_buffer);
    let fell_behind = Arc::new(AtomicBool::new(false));
    let subscriber = Subscriber {
        start: request.start.clone(),
        end: request.end.clone(),
        events: sender,
        fell_behind: fell_behind.clone(),
    };
    let subscribed_at = core.hub().subscribe(core.current_atomic(), subscriber);
    let next = if request.start_revision == 0 { subscribed_at + 1 } else { request.start_revision };
    let progress_every =
        request.progress_notify.then(|| Duration::from_millis(core.options().progress_notify_interval_ms));
    let progress_requests = progress_every.is_some().then(|| core.hub().progress_requests.subscribe());
    let state = WatchState {
        core,
        start: request.start,
        end: request.end,
        next,
        replay_until: subscribed_at,
        buffer: VecDeque::new(),
        live,
        fell_behind,
        progress_requests,
        progress_every,
        progress_due: false,
        done: false,
    };
    Ok(futures::stream::unfold(state, |mut state| async move {
        let item = state.next_item().await?;
        Some((item, state))
    })
    .boxed())
}

impl WatchState {
    async fn next_item(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.buffer.pop_front() {
                return Some(Ok(event));
            }
            if self.next <= self.replay_until {
                if let Err(e) = self.replay_chunk().await {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            }
            let received = if self.progress_due {
                let (revision, pending) =
                    self.core.hub().quiescent_revision(self.core.current_atomic(), &mut self.live);
                match pending {
                    Some(event) => Some(event),
                    // Cut off for falling behind: events were dropped, so no progress can be
                    // claimed; `None` ends the watch with the relist error.
                    None if self.fell_behind.load(Ordering::SeqCst) => None,
                    None => {
                        self.progress_due = false;
                        return Some(Ok(WatchEvent::Progress { revision }));
                    }
                }
            } else {
                match self.progress_every {
                    None => self.live.recv().await,
                    Some(every) => {
                        let requested = async {
                            match self.progress_requests.as_mut() {
                                Some(requests) => requests.changed().await.is_ok(),
                                None => std::future::pending().await,
                            }
                        };
                        tokio::select! {
                            received = self.live.recv() => received,
                            // Idle for `every`, or asked: progress once nothing is pending.
                            () = tokio::time::sleep(every) => {
                                self.progress_due = true;
                                continue;
                            }
                            requested = requested => {
                                if requested {
                                    self.progress_due = true;
                                } else {
                                    self.progress_requests = None;
                                }
                                continue;
                            }
                        }
                    }
                }
            };
            match received {
                Some(event) => {
                    let revision = event.revision();
                    if revision < self.next {
                        continue; // already replayed
                    }
                    self.next = revision + 1;
                    return Some(Ok(Arc::unwrap_or_clone(event)));
                }
                None => {
                    self.done = true;
                    let error = if self.fell_behind.load(Ordering::SeqCst) {
                        Error::unavailable(format!(
                            "watch fell behind (more than {} undelivered events), relist",
                            self.core.options().watch_buffer
                        ))
                    } else {
                        Error::unavailable("sled backend closed the watch")
                    };
                    return Some(Err(error));
                }
            }
        }
    }

    async fn replay_chunk(&mut self) -> Result<()> {
        let core = self.core.clone();
        let (from, until) = (self.next, self.replay_until);
        let (start, end) = (self.start.clone(), self.end.clone());
        let (events, through) =
            tokio::task::spawn_blocking(move || core.replay(&start, &end, from, until, REPLAY_CHUNK))
                .await
                .map_err(|e| Error::internal(format!("watch replay task failed: {e}")))??;
        self.buffer.extend(events);
        self.next = through + 1;
        Ok(())
    }
}
