//! A backend that breaks one property on purpose, to show the checkers catch it: wraps any
//! [`KvBackend`] (the memory backend in apistore's own tests).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use crate::error::Result;
use crate::kv::{
    Capabilities, GetResponse, KeyValue, KvBackend, RangeRequest, RangeResponse, Revision, TxnOutcome, WatchEvent,
    WatchRequest, WatchStream,
};

/// The property a [`FaultyBackend`] breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// None: a transparent wrapper.
    None,
    /// Some latest gets serve the key's previous state (a write that completed ≥ 2 ms ago
    /// is not seen).
    StaleRead,
    /// One watch event (the 5th of the first stream to deliver 5) is never delivered.
    DropWatchEvent,
    /// Two consecutive watch events (the 5th and 6th of one stream) are swapped.
    ReorderWatchEvents,
    /// After 30 writes the backend "restarts" 3 revisions behind: the next writes reuse
    /// revisions already handed out.
    ReuseRevisionAfterRestart,
    /// One write (the first after 29) is acknowledged with a fresh revision but never applied.
    LoseAcknowledgedWrite,
}

/// Revisions above `from` are reported shifted by `delta`.
#[derive(Clone, Copy, Debug)]
struct Shift {
    from: Revision,
    delta: i64,
}

/// Wraps a backend and breaks the property of its [`Fault`].
pub struct FaultyBackend {
    inner: Arc<dyn KvBackend>,
    fault: Fault,
    writes: AtomicU64,
    gets: AtomicU64,
    streams_tampered: Arc<AtomicBool>,
    shift: Arc<Mutex<Option<Shift>>>,
    written_at: Mutex<HashMap<String, Instant>>,
}

impl fmt::Debug for FaultyBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyBackend").field("fault", &self.fault).finish_non_exhaustive()
    }
}

impl FaultyBackend {
    /// `inner` with `fault`.
    pub fn new(inner: Arc<dyn KvBackend>, fault: Fault) -> Self {
        FaultyBackend {
            inner,
            fault,
            writes: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            streams_tampered: Arc::new(AtomicBool::new(false)),
            shift: Arc::new(Mutex::new(None)),
            written_at: Mutex::new(HashMap::new()),
        }
    }

    fn shift(&self) -> Option<Shift> {
        self.shift.lock().ok().and_then(|s| *s)
    }

    /// Inner revision → reported revision.
    fn out(&self, revision: Revision) -> Revision {
        out(self.shift(), revision)
    }

    /// Reported revision → inner revision (for reads at a revision).
    async fn inward(&self, revision: Revision) -> Revision {
        let Some(s) = self.shift() else { return revision };
        if revision == 0 {
            return 0;
        }
        let current = self.inner.current_revision().await.unwrap_or(0);
        let candidate = revision as i64 - s.delta;
        if s.delta > 0 {
            if revision as i64 > s.from as i64 + s.delta {
                candidate as u64
            } else if revision > s.from {
                s.from
            } else {
                revision
            }
        } else if candidate as u64 > s.from && candidate as u64 <= current {
            candidate as u64
        } else {
            revision
        }
    }

    /// The inner revision a conditional write on `key` expects.
    async fn expected(&self, key: &str, expected: Revision) -> Revision {
        if expected == 0 || self.shift().is_none() {
            return expected;
        }
        match self.inner.get(key, 0).await {
            Ok(GetResponse { kv: Some(kv), .. }) if self.out(kv.mod_revision) == expected => kv.mod_revision,
            // The key is not at the expected revision: make the comparison fail.
            _ => Revision::MAX,
        }
    }

    fn kv(&self, kv: KeyValue) -> KeyValue {
        map_kv(self.shift(), kv)
    }

    fn outcome(&self, outcome: TxnOutcome) -> TxnOutcome {
        match outcome {
            TxnOutcome::Succeeded { revision } => TxnOutcome::Succeeded { revision: self.out(revision) },
            TxnOutcome::Failed { current, revision } => {
                TxnOutcome::Failed { current: current.map(|kv| self.kv(kv)), revision: self.out(revision) }
            }
        }
    }

    /// Counts a successful write; the 30th one triggers the revision faults.
    async fn wrote(&self, key: &str) {
        if let Ok(mut at) = self.written_at.lock() {
            at.insert(key.to_owned(), Instant::now());
        }
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 30 && self.fault == Fault::ReuseRevisionAfterRestart {
            let current = self.inner.current_revision().await.unwrap_or(0);
            if let Ok(mut shift) = self.shift.lock() {
                *shift = Some(Shift { from: current, delta: -3 });
            }
        }
    }
}

#[async_trait]
impl KvBackend for FaultyBackend {
    fn backend_name(&self) -> &str {
        "faulty"
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn get(&self, key: &str, revision: Revision) -> Result<GetResponse> {
        let inner_revision = self.inward(revision).await;
        let mut response = self.inner.get(key, inner_revision).await?;
        if self.fault == Fault::StaleRead && revision == 0 && self.gets.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
            let settled = self
                .written_at
                .lock()
                .ok()
                .and_then(|at| at.get(key).copied())
                .is_some_and(|t| t.elapsed() > Duration::from_millis(2));
            if let Some(kv) = response.kv.as_ref().filter(|kv| settled && kv.mod_revision > 2) {
                let header = response.revision;
                response = self.inner.get(key, kv.mod_revision - 1).await?;
                response.revision = header;
            }
        }
        Ok(GetResponse { kv: response.kv.map(|kv| self.kv(kv)), revision: self.out(response.revision) })
    }

    async fn range(&self, mut request: RangeRequest) -> Result<RangeResponse> {
        request.revision = self.inward(request.revision).await;
        let response = self.inner.range(request).await?;
        Ok(RangeResponse {
            kvs: response.kvs.into_iter().map(|kv| self.kv(kv)).collect(),
            revision: self.out(response.revision),
            ..response
        })
    }

    async fn put(&self, key: &str, value: Bytes, expected: Revision, ttl: Option<Duration>) -> Result<TxnOutcome> {
        let expected = self.expected(key, expected).await;
        if self.fault == Fault::LoseAcknowledgedWrite
            && self.writes.load(Ordering::SeqCst) >= 29
            && !self.streams_tampered.load(Ordering::SeqCst)
        {
            let current = self.inner.get(key, 0).await?;
            let applies = current.kv.as_ref().map_or(0, |kv| kv.mod_revision) == expected;
            if applies && !self.streams_tampered.swap(true, Ordering::SeqCst) {
                // Acknowledge with the next revision and never apply the write; later
                // revisions skip the lost one.
                self.writes.fetch_add(1, Ordering::SeqCst);
                let lost = current.revision + 1;
                if let Ok(mut shift) = self.shift.lock() {
                    *shift = Some(Shift { from: current.revision, delta: 1 });
                }
                return Ok(TxnOutcome::Succeeded { revision: lost });
            }
        }
        let outcome = self.inner.put(key, value, expected, ttl).await?;
        if matches!(outcome, TxnOutcome::Succeeded { .. }) {
            let outcome = self.outcome(outcome);
            self.wrote(key).await;
            return Ok(outcome);
        }
        Ok(self.outcome(outcome))
    }

    async fn delete(&self, key: &str, expected: Revision) -> Result<TxnOutcome> {
        let expected = self.expected(key, expected).await;
        let outcome = self.inner.delete(key, expected).await?;
        let outcome = self.outcome(outcome);
        if matches!(outcome, TxnOutcome::Succeeded { .. }) {
            self.wrote(key).await;
        }
        Ok(outcome)
    }

    async fn watch(&self, mut request: WatchRequest) -> Result<WatchStream> {
        request.start_revision = self.inward(request.start_revision).await;
        let inner = self.inner.watch(request).await?;
        let fault = self.fault;
        let shift = self.shift.clone();
        let tampered = self.streams_tampered.clone();
        let tamper = matches!(fault, Fault::DropWatchEvent | Fault::ReorderWatchEvents);
        let mut puts = 0usize;
        let mut claimed = false;
        let mut held: Option<Result<WatchEvent>> = None;
        let stream = inner.flat_map(move |item| {
            let current = shift.lock().ok().and_then(|s| *s);
            let item = item.map(|event| map_event(current, event));
            let mut out: Vec<Result<WatchEvent>> = Vec::new();
            if tamper && matches!(item, Ok(WatchEvent::Put { .. })) {
                puts += 1;
                if puts == 5 && !tampered.swap(true, Ordering::SeqCst) {
                    claimed = true;
                    if fault == Fault::ReorderWatchEvents {
                        held = Some(item);
                    }
                    return futures::stream::iter(out);
                }
                if puts == 6 && claimed {
                    out.push(item);
                    out.extend(held.take());
                    return futures::stream::iter(out);
                }
            }
            out.push(item);
            futures::stream::iter(out)
        });
        Ok(Box::pin(stream))
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.out(self.inner.current_revision().await?))
    }

    async fn request_progress(&self) -> Result<bool> {
        self.inner.request_progress().await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let revision = self.inward(revision).await;
        self.inner.compact(revision).await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.out(self.inner.compacted_revision().await?))
    }

    async fn health(&self) -> Result<()> {
        self.inner.health().await
    }
}

fn out(shift: Option<Shift>, revision: Revision) -> Revision {
    match shift {
        Some(s) if revision > s.from => (revision as i64 + s.delta).max(1) as u64,
        _ => revision,
    }
}

fn map_kv(shift: Option<Shift>, mut kv: KeyValue) -> KeyValue {
    kv.create_revision = out(shift, kv.create_revision);
    kv.mod_revision = out(shift, kv.mod_revision);
    kv
}

fn map_event(shift: Option<Shift>, event: WatchEvent) -> WatchEvent {
    match event {
        WatchEvent::Put { kv, prev } => WatchEvent::Put { kv: map_kv(shift, kv), prev: prev.map(|p| map_kv(shift, p)) },
        WatchEvent::Delete { key, revision, prev } => {
            WatchEvent::Delete { key, revision: out(shift, revision), prev: prev.map(|p| map_kv(shift, p)) }
        }
        WatchEvent::Progress { revision } => WatchEvent::Progress { revision: out(shift, revision) },
    }
}
