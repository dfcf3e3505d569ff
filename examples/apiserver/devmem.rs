//! A small in-process `KvBackend` ("memory"), registered only when no other crate linked
//! into the binary already provides a backend of that name.
//!
//! It keeps every version of every key (MVCC) plus the event log, so reads at an old
//! revision and watches from an old revision work until compaction. Nothing is persisted:
//! use it for demos and tests, and the sled backend for data that must survive a restart.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use apistore::kv::{
    Capabilities, GetResponse, KeyValue, RangeRequest, RangeResponse, Revision, TxnOutcome, WatchEvent, WatchRequest,
    WatchStream,
};
use apistore::registry::{BackendConfig, StorageBackendFactory};
use apistore::{Error, KvBackend, Result};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

/// Registers the dev backend as "memory" unless a linked crate registers that name.
pub fn register_if_missing() {
    if !apistore::registry::names().contains(&"memory") {
        apistore::registry::register(&DevMemoryFactory);
    }
}

struct DevMemoryFactory;

#[async_trait]
impl StorageBackendFactory for DevMemoryFactory {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn create(&self, _config: &BackendConfig) -> Result<Arc<dyn KvBackend>> {
        Ok(Arc::new(MemoryKv::default()))
    }
}

struct Watcher {
    start: String,
    end: String,
    sender: mpsc::UnboundedSender<Result<WatchEvent>>,
}

#[derive(Default)]
struct State {
    revision: Revision,
    compacted: Revision,
    /// Every version of every key; `None` is a deletion.
    versions: BTreeMap<String, Vec<(Revision, Option<KeyValue>)>>,
    /// Every change in revision order (since the compaction point).
    log: Vec<WatchEvent>,
    watchers: Vec<Watcher>,
}

/// The in-memory MVCC key space.
#[derive(Default)]
struct MemoryKv {
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryKv").finish_non_exhaustive()
    }
}

fn in_range(key: &str, start: &str, end: &str) -> bool {
    key >= start && (end.is_empty() || key < end)
}

fn event_key(event: &WatchEvent) -> &str {
    match event {
        WatchEvent::Put { kv, .. } => &kv.key,
        WatchEvent::Delete { key, .. } => key,
        WatchEvent::Progress { .. } => "",
    }
}

impl State {
    fn current(&self) -> Revision {
        self.revision.max(1)
    }

    fn read_revision(&self, revision: Revision) -> Result<Revision> {
        let current = self.current();
        if revision == 0 {
            return Ok(current);
        }
        if revision > current {
            return Err(Error::FutureRevision { requested: revision, current });
        }
        if revision < self.compacted {
            return Err(Error::Compacted { requested: revision, compacted: self.compacted });
        }
        Ok(revision)
    }

    fn value_at(&self, key: &str, revision: Revision) -> Option<KeyValue> {
        value_in(self.versions.get(key)?, revision)
    }

    fn latest(&self, key: &str) -> Option<KeyValue> {
        self.versions.get(key)?.last()?.1.clone()
    }

    fn append(&mut self, key: &str, revision: Revision, kv: Option<KeyValue>, event: WatchEvent) {
        self.versions.entry(key.to_owned()).or_default().push((revision, kv));
        self.watchers.retain(|w| {
            if !in_range(key, &w.start, &w.end) {
                return !w.sender.is_closed();
            }
            w.sender.send(Ok(event.clone())).is_ok()
        });
        self.log.push(event);
    }
}

fn value_in(versions: &[(Revision, Option<KeyValue>)], revision: Revision) -> Option<KeyValue> {
    versions.iter().rev().find(|(rev, _)| *rev <= revision).and_then(|(_, kv)| kv.clone())
}

impl MemoryKv {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl KvBackend for MemoryKv {
    fn backend_name(&self) -> &str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { progress_notify: false, ttl: false, max_value_size: None }
    }

    async fn get(&self, key: &str, revision: Revision) -> Result<GetResponse> {
        let state = self.lock();
        let at = state.read_revision(revision)?;
        Ok(GetResponse { kv: state.value_at(key, at), revision: state.current() })
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        apistore::kv::validate_range(&request.start, &request.end)?;
        let state = self.lock();
        let at = state.read_revision(request.revision)?;
        let upper = if request.end.is_empty() { Bound::Unbounded } else { Bound::Excluded(request.end.clone()) };
        let mut kvs = Vec::new();
        let mut count = 0u64;
        for (_, versions) in state.versions.range((Bound::Included(request.start.clone()), upper)) {
            if let Some(kv) = value_in(versions, at) {
                count += 1;
                if !request.count_only && (request.limit == 0 || (kvs.len() as u64) < request.limit) {
                    kvs.push(kv);
                }
            }
        }
        let more = !request.count_only && request.limit > 0 && count > request.limit;
        Ok(RangeResponse { kvs, count, more, revision: state.current() })
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
        _ttl: Option<Duration>,
    ) -> Result<TxnOutcome> {
        let mut state = self.lock();
        let current = state.latest(key);
        let current_mod = current.as_ref().map_or(0, |kv| kv.mod_revision);
        if current_mod != expected_mod_revision {
            return Ok(TxnOutcome::Failed { current, revision: state.current() });
        }
        let revision = state.current() + 1;
        state.revision = revision;
        let kv = KeyValue {
            key: key.to_owned(),
            value,
            create_revision: current.as_ref().map_or(revision, |kv| kv.create_revision),
            mod_revision: revision,
            version: current.as_ref().map_or(1, |kv| kv.version + 1),
        };
        let event = WatchEvent::Put { kv: kv.clone(), prev: current };
        state.append(key, revision, Some(kv), event);
        Ok(TxnOutcome::Succeeded { revision })
    }

    async fn delete(&self, key: &str, expected_mod_revision: Revision) -> Result<TxnOutcome> {
        let mut state = self.lock();
        let current = state.latest(key);
        match &current {
            Some(kv) if kv.mod_revision == expected_mod_revision && expected_mod_revision > 0 => {}
            _ => return Ok(TxnOutcome::Failed { current, revision: state.current() }),
        }
        let revision = state.current() + 1;
        state.revision = revision;
        let event = WatchEvent::Delete { key: key.to_owned(), revision, prev: current };
        state.append(key, revision, None, event);
        Ok(TxnOutcome::Succeeded { revision })
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        let mut state = self.lock();
        if request.start_revision != 0 && request.start_revision < state.compacted {
            return Err(Error::Compacted { requested: request.start_revision, compacted: state.compacted });
        }
        let start = if request.start_revision == 0 { state.current() + 1 } else { request.start_revision };
        let (sender, receiver) = mpsc::unbounded_channel();
        for event in state.log.iter().filter(|e| e.revision() >= start) {
            if in_range(event_key(event), &request.start, &request.end) {
                // The receiver is alive: it is still in this function.
                let _ = sender.send(Ok(event.clone()));
            }
        }
        state.watchers.push(Watcher { start: request.start, end: request.end, sender });
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        Ok(Box::pin(stream))
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.lock().current())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut state = self.lock();
        let current = state.current();
        if revision > current {
            return Err(Error::FutureRevision { requested: revision, current });
        }
        if revision <= state.compacted {
            return Ok(());
        }
        state.compacted = revision;
        for versions in state.versions.values_mut() {
            let keep_from = versions.iter().rposition(|(rev, _)| *rev <= revision).unwrap_or(0);
            versions.drain(..keep_from);
        }
        state.versions.retain(|_, versions| !(versions.len() == 1 && versions[0].1.is_none()));
        state.log.retain(|event| event.revision() >= revision);
        Ok(())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.lock().compacted)
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }
}
