//! # apistore-memory: an in-memory backend, and how to write your own
//!
//! This crate is the worked example of a **third-party apistore backend**. It keeps
//! everything in memory (nothing survives the process), which makes it handy for tests and
//! demos, and small enough to read in one sitting.
//!
//! ```text
//!  your crate                         apistore
//!  ──────────                         ────────
//!  MemoryBackend ── impl KvBackend ─► Store (Storage = Kubernetes storage.Interface)
//!  MemoryFactory ── inventory::submit! ─► registry::open(&BackendConfig { type: "memory" })
//!  tests/conformance.rs ──────────────► apistore::testing::run(fixture)
//! ```
//!
//! ## Writing a backend in three steps
//!
//! 1. **Implement [`apistore::KvBackend`]** — etcd's data model, small (read its module docs,
//!    `apistore::kv`, they are the contract). The essentials, all shown in this crate:
//!    * one store-wide revision: a new backend is at revision 1, every write (put or delete,
//!      including a TTL expiry) takes the next one;
//!    * per key `create_revision`, `mod_revision`, `version`;
//!    * reads (`get`, `range`) *at a revision* until it is compacted — so keep history (MVCC);
//!    * conditional writes on `mod_revision` (0 = "must not exist") that return the current
//!      value when the condition fails;
//!    * `watch` from any revision, replaying history then following live writes, in revision
//!      order, each event with the previous value, never with a gap;
//!    * `compact(rev)`, after which older reads and watches fail with
//!      `Error::Compacted`.
//!
//!    That is all: [`apistore::Store`] builds the whole Kubernetes `storage.Interface`
//!    (resourceVersions, preconditions, paging, selectors, watch semantics) on top.
//! 2. **Register a factory** with `inventory` so configs can select the backend by name:
//!
//!    ```ignore
//!    apistore::inventory::submit! { apistore::registry::BackendRegistration::new(&MemoryFactory) }
//!    ```
//!
//!    A binary finds it with `apistore::registry::open(&BackendConfig::new("memory"))` as long
//!    as it links this crate (mention it: `use apistore_memory as _;`), or after the explicit
//!    fallback `apistore::registry::register(&MemoryFactory)`.
//! 3. **Run the conformance suite** from a test target with `harness = false` — see
//!    `tests/conformance.rs`: a `BackendFixture` (`apistore::testing`, feature `testing`) hands out
//!    fresh backends and `apistore::testing::run(fixture)` runs every behaviour as a named test.
//!
//! ## How this backend works
//!
//! One mutex guards the whole state: a per-key version history (a `BTreeMap`
//! ordered like etcd's keys), an event log for watches, TTL deadlines, and the revision
//! counters. No lock is held across an `.await`. Writers publish the new revision on a
//! `tokio::sync::watch` channel; watch streams wake up on it and copy what they have not
//! seen from the log. A small task (spawned on the first TTL write) deletes expired keys.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use apistore::error::{Error, Result};
use apistore::kv::{
    validate_range, Capabilities, Expiry, GetResponse, KeyValue, KvBackend, RangeRequest, RangeResponse, Revision,
    TxnOutcome, WatchEvent, WatchRequest, WatchStream,
};
use apistore::registry::{BackendConfig, BackendRegistration, StorageBackendFactory};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// The name configs use to select this backend (`type = "memory"`).
pub const BACKEND_NAME: &str = "memory";

/// An in-memory [`KvBackend`] with full MVCC history, watches, compaction and TTLs.
///
/// Cheap to clone: clones share the same key space. Nothing is persisted.
#[derive(Clone, Debug)]
pub struct MemoryBackend {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// The latest revision, published after every write (wakes watch streams).
    revision: watch::Sender<Revision>,
    /// Wakes the TTL sweeper when a new deadline appears.
    ttl_changed: Arc<Notify>,
}

/// Everything a [`MemoryBackend`] stores.
#[derive(Debug)]
struct State {
    /// The current revision: 1 when empty, +1 per write.
    revision: Revision,
    /// Reads and watches below this revision fail with `Compacted` (0 = never compacted).
    compacted: Revision,
    /// Every key's versions in revision order; a `None` value is a deletion (tombstone).
    history: BTreeMap<String, Vec<Version>>,
    /// The change log for watches: entry `i` has revision `log_start + i` (one write = one
    /// revision, so the log has no holes). Entries below the compaction revision are dropped.
    log: VecDeque<WatchEvent>,
    /// Revision of `log[0]`.
    log_start: Revision,
    /// Keys with a TTL: when they expire, and the `mod_revision` the TTL belongs to.
    deadlines: HashMap<String, (Instant, Revision)>,
    /// True once the TTL sweeper task runs.
    sweeper_started: bool,
}

/// One version of a key.
#[derive(Clone, Debug)]
struct Version {
    /// The value and its metadata; None when this version is a deletion.
    kv: Option<KeyValue>,
    /// The revision of this write.
    revision: Revision,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// An empty backend at revision 1.
    pub fn new() -> Self {
        let state = State {
            revision: 1,
            compacted: 0,
            history: BTreeMap::new(),
            log: VecDeque::new(),
            log_start: 2,
            deadlines: HashMap::new(),
            sweeper_started: false,
        };
        let (revision, _) = watch::channel(1);
        MemoryBackend {
            shared: Arc::new(Shared { state: Mutex::new(state), revision, ttl_changed: Arc::new(Notify::new()) }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Starts the TTL sweeper once (needs a tokio runtime, which every async method has).
    fn ensure_sweeper(&self, state: &mut State) {
        if state.sweeper_started {
            return;
        }
        state.sweeper_started = true;
        tokio::spawn(sweep_expired(Arc::downgrade(&self.shared)));
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written: every write
        // below mutates only after all checks passed. So a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Checks that `revision` (0 = latest) is readable and returns the revision to read at.
    fn read_revision(&self, revision: Revision) -> Result<Revision> {
        if revision == 0 {
            return Ok(self.revision);
        }
        if revision < self.compacted {
            return Err(Error::Compacted { requested: revision, compacted: self.compacted });
        }
        if revision > self.revision {
            return Err(Error::FutureRevision { requested: revision, current: self.revision });
        }
        Ok(revision)
    }

    /// The live value of `key` at `revision`.
    fn value_at(&self, key: &str, revision: Revision) -> Option<&KeyValue> {
        self.history.get(key).and_then(|versions| version_at(versions, revision))
    }

    /// The current live value of `key`.
    fn current(&self, key: &str) -> Option<&KeyValue> {
        self.history.get(key).and_then(|versions| versions.last()).and_then(|v| v.kv.as_ref())
    }

    /// Applies a write at the next revision: records the version, logs the event, and returns
    /// the new revision. `value` None deletes.
    fn write(&mut self, key: &str, value: Option<Bytes>) -> Revision {
        let revision = self.revision + 1;
        let prev = self.current(key).cloned();
        let kv = value.map(|value| KeyValue {
            key: key.to_owned(),
            value,
            create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
        });
        let event = match &kv {
            Some(kv) => WatchEvent::Put { kv: kv.clone(), prev },
            None => WatchEvent::Delete { key: key.to_owned(), revision, prev },
        };
        self.history.entry(key.to_owned()).or_default().push(Version { kv, revision });
        if self.log.is_empty() {
            self.log_start = revision;
        }
        self.log.push_back(event);
        self.revision = revision;
        revision
    }

    /// Drops history that no read at or above `revision` can see.
    fn compact(&mut self, revision: Revision) {
        self.compacted = revision;
        self.history.retain(|_, versions| {
            // Keep the newest version at or below `revision` (reads at `revision` need it)
            // and everything after it.
            let visible = versions.partition_point(|v| v.revision <= revision);
            if visible > 1 {
                versions.drain(..visible - 1);
            }
            // A tombstone nobody can read past any more is just absence.
            if versions.first().is_some_and(|v| v.kv.is_none() && v.revision <= revision) {
                versions.remove(0);
            }
            !versions.is_empty()
        });
        while self.log_start < revision && self.log.pop_front().is_some() {
            self.log_start += 1;
        }
        if self.log.is_empty() {
            self.log_start = self.revision + 1;
        }
    }

    /// Log events with revision ≥ `from` whose key lies in `[start, end)`.
    fn events_since(&self, from: Revision, start: &str, end: &str) -> Vec<WatchEvent> {
        let skip = usize::try_from(from.saturating_sub(self.log_start)).unwrap_or(usize::MAX);
        self.log
            .iter()
            .skip(skip)
            .filter(|event| match event {
                WatchEvent::Put { kv, .. } => in_range(&kv.key, start, end),
                WatchEvent::Delete { key, .. } => in_range(key, start, end),
                WatchEvent::Progress { .. } => false,
            })
            .cloned()
            .collect()
    }
}

/// The version of a key visible at `revision`, if it was live then.
fn version_at(versions: &[Version], revision: Revision) -> Option<&KeyValue> {
    let visible = versions.partition_point(|v| v.revision <= revision);
    visible.checked_sub(1).and_then(|i| versions[i].kv.as_ref())
}

fn in_range(key: &str, start: &str, end: &str) -> bool {
    key >= start && (end.is_empty() || key < end)
}

#[async_trait]
impl KvBackend for MemoryBackend {
    fn backend_name(&self) -> &str {
        BACKEND_NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { progress_notify: false, progress_requests: false, ttl: true, max_value_size: None }
    }

    async fn get(&self, key: &str, revision: Revision) -> Result<GetResponse> {
        let state = self.lock();
        let at = state.read_revision(revision)?;
        Ok(GetResponse { kv: state.value_at(key, at).cloned(), revision: state.revision })
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        validate_range(&request.start, &request.end)?;
        let state = self.lock();
        let at = state.read_revision(request.revision)?;
        let upper = if request.end.is_empty() { Bound::Unbounded } else { Bound::Excluded(request.end.as_str()) };
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let mut kvs = Vec::new();
        let mut count = 0u64;
        let keys = state.history.range::<str, _>((Bound::Included(request.start.as_str()), upper));
        for kv in keys.filter_map(|(_, versions)| version_at(versions, at)) {
            count += 1;
            if !request.count_only && (limit == 0 || kvs.len() < limit) {
                kvs.push(kv.clone());
            }
        }
        let more = !request.count_only && (kvs.len() as u64) < count;
        Ok(RangeResponse { kvs, count, more, revision: state.revision })
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
        ttl: Option<Duration>,
    ) -> Result<TxnOutcome> {
        let revision = {
            let mut state = self.lock();
            let current = state.current(key);
            if current.map_or(0, |kv| kv.mod_revision) != expected_mod_revision {
                return Ok(TxnOutcome::Failed { current: current.cloned(), revision: state.revision });
            }
            let revision = state.write(key, Some(value));
            match ttl {
                Some(ttl) => {
                    state.deadlines.insert(key.to_owned(), (Instant::now() + ttl, revision));
                    self.ensure_sweeper(&mut state);
                }
                None => {
                    state.deadlines.remove(key);
                }
            }
            revision
        };
        if ttl.is_some() {
            self.shared.ttl_changed.notify_one();
        }
        self.shared.revision.send_replace(revision);
        Ok(TxnOutcome::Succeeded { revision })
    }

    async fn delete(&self, key: &str, expected_mod_revision: Revision) -> Result<TxnOutcome> {
        let revision = {
            let mut state = self.lock();
            let current = state.current(key);
            if expected_mod_revision == 0 || current.map(|kv| kv.mod_revision) != Some(expected_mod_revision) {
                return Ok(TxnOutcome::Failed { current: current.cloned(), revision: state.revision });
            }
            state.deadlines.remove(key);
            state.write(key, None)
        };
        self.shared.revision.send_replace(revision);
        Ok(TxnOutcome::Succeeded { revision })
    }

    async fn expiries(&self, start: &str, end: &str) -> Result<Vec<Expiry>> {
        validate_range(start, end)?;
        let state = self.lock();
        let now = Instant::now();
        let mut expiries: Vec<Expiry> = state
            .deadlines
            .iter()
            .filter(|(key, _)| in_range(key, start, end))
            .filter(|(key, (_, revision))| state.current(key).is_some_and(|kv| kv.mod_revision == *revision))
            .map(|(key, (deadline, revision))| Expiry {
                key: key.clone(),
                mod_revision: *revision,
                remaining: deadline.saturating_duration_since(now),
            })
            .collect();
        expiries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(expiries)
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        validate_range(&request.start, &request.end)?;
        let next = {
            let state = self.lock();
            if request.start_revision == 0 {
                state.revision + 1
            } else if request.start_revision < state.compacted {
                return Err(Error::Compacted { requested: request.start_revision, compacted: state.compacted });
            } else {
                request.start_revision
            }
        };
        let cursor = WatchCursor {
            shared: self.shared.clone(),
            wakeups: self.shared.revision.subscribe(),
            start: request.start,
            end: request.end,
            next,
            pending: VecDeque::new(),
            failed: false,
        };
        Ok(Box::pin(futures::stream::unfold(cursor, WatchCursor::next_item)))
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.lock().revision)
    }

    async fn request_progress(&self) -> Result<bool> {
        // This backend sends no progress notifications (`Capabilities::progress_notify`).
        Ok(false)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut state = self.lock();
        if revision > state.revision {
            return Err(Error::FutureRevision { requested: revision, current: state.revision });
        }
        if revision > state.compacted {
            state.compact(revision);
        }
        Ok(())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.lock().compacted)
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }
}

/// The state of one watch stream: replays the log from `next`, then waits for new writes.
struct WatchCursor {
    shared: Arc<Shared>,
    wakeups: watch::Receiver<Revision>,
    start: String,
    end: String,
    /// The next revision this watch has not looked at yet.
    next: Revision,
    /// Events read from the log but not yet handed out.
    pending: VecDeque<WatchEvent>,
    /// The stream delivered its final error.
    failed: bool,
}

impl WatchCursor {
    /// `unfold` step: the next event (or the final error), waiting for writes when idle.
    async fn next_item(mut self) -> Option<(Result<WatchEvent>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            if self.failed {
                return None;
            }
            // Mark the current revision seen *before* reading the log: a write after this
            // point makes `changed()` return, so none is missed.
            self.wakeups.borrow_and_update();
            let compacted = {
                let state = self.shared.lock();
                if self.next < state.compacted {
                    Some(state.compacted)
                } else {
                    if self.next <= state.revision {
                        self.pending.extend(state.events_since(self.next, &self.start, &self.end));
                        self.next = state.revision + 1;
                    }
                    None
                }
            };
            if let Some(compacted) = compacted {
                // Compaction overtook a slow reader: the history it needs is gone.
                self.failed = true;
                return Some((Err(Error::Compacted { requested: self.next, compacted }), self));
            }
            if self.pending.is_empty() && self.wakeups.changed().await.is_err() {
                // Cannot happen while `shared` (which owns the sender) is alive; end quietly.
                return None;
            }
        }
    }
}

/// Deletes keys whose TTL expired, as ordinary deletes (new revision, watch event). Runs
/// until the backend is dropped.
async fn sweep_expired(shared: Weak<Shared>) {
    loop {
        let Some(strong) = shared.upgrade() else { return };
        let now = Instant::now();
        let (revision, next_deadline) = {
            let mut state = strong.lock();
            let expired: Vec<(String, Revision)> = state
                .deadlines
                .iter()
                .filter(|(_, (at, _))| *at <= now)
                .map(|(key, (_, revision))| (key.clone(), *revision))
                .collect();
            let mut last = None;
            for (key, lease_revision) in expired {
                state.deadlines.remove(&key);
                // The TTL belongs to the write that set it; a later write replaced it.
                if state.current(&key).map(|kv| kv.mod_revision) == Some(lease_revision) {
                    last = Some(state.write(&key, None));
                }
            }
            (last, state.deadlines.values().map(|(at, _)| *at).min())
        };
        if let Some(revision) = revision {
            strong.revision.send_replace(revision);
        }
        // Sleep until the next deadline (or a while), or until a new TTL arrives. Hold only a
        // weak reference while sleeping so that dropping the backend ends this task.
        let wait = next_deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        let ttl_changed = strong.ttl_changed.clone();
        drop(strong);
        tokio::select! {
            _ = tokio::time::sleep_until(wait) => {}
            _ = ttl_changed.notified() => {}
        }
    }
}

/// The [`StorageBackendFactory`] registered as `"memory"`. Options: none. Every `create`
/// returns a new, empty backend; `apistore::registry::open` shares it between users of the
/// same config while any of them holds it.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryFactory;

#[async_trait]
impl StorageBackendFactory for MemoryFactory {
    fn name(&self) -> &'static str {
        BACKEND_NAME
    }

    async fn create(&self, config: &BackendConfig) -> Result<Arc<dyn KvBackend>> {
        if let Some(option) = config.options.keys().next() {
            return Err(Error::invalid(
                format!("backend.{BACKEND_NAME}.{option}"),
                option.clone(),
                "the memory backend takes no options",
            ));
        }
        Ok(Arc::new(MemoryBackend::new()))
    }
}

apistore::inventory::submit! { BackendRegistration::new(&MemoryFactory) }

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn revisions_history_and_compaction() {
        let backend = MemoryBackend::new();
        assert_eq!(backend.current_revision().await.expect("rev"), 1);
        let put = backend.put("/a", Bytes::from_static(b"1"), 0, None).await.expect("put");
        assert_eq!(put, TxnOutcome::Succeeded { revision: 2 });
        backend.put("/a", Bytes::from_static(b"2"), 2, None).await.expect("update");
        let old = backend.get("/a", 2).await.expect("get at 2");
        assert_eq!(old.kv.map(|kv| kv.value), Some(Bytes::from_static(b"1")));
        backend.compact(3).await.expect("compact");
        assert!(matches!(backend.get("/a", 2).await, Err(Error::Compacted { .. })));
        let now = backend.get("/a", 3).await.expect("get at 3").kv.expect("value");
        assert_eq!((now.version, now.create_revision, now.mod_revision), (2, 2, 3));
    }

    #[tokio::test]
    async fn watch_replays_then_follows() {
        let backend = MemoryBackend::new();
        backend.put("/a", Bytes::from_static(b"1"), 0, None).await.expect("put");
        let request = WatchRequest { start: "/".into(), end: String::new(), start_revision: 2, progress_notify: false };
        let mut events = backend.watch(request).await.expect("watch");
        backend.delete("/a", 2).await.expect("delete");
        let first = events.next().await.expect("event").expect("ok");
        assert_eq!(first.revision(), 2);
        let second = events.next().await.expect("event").expect("ok");
        assert!(matches!(second, WatchEvent::Delete { revision: 3, prev: Some(_), .. }));
    }

    #[tokio::test]
    async fn factory_is_registered_and_refuses_options() {
        assert!(apistore::registry::names().contains(&BACKEND_NAME));
        let backend = apistore::registry::open(&BackendConfig::new(BACKEND_NAME)).await.expect("open");
        assert_eq!(backend.backend_name(), BACKEND_NAME);
        let bad = BackendConfig::new(BACKEND_NAME).with_option("path", "/tmp");
        assert_eq!(apistore::registry::open(&bad).await.map(|_| ()).map_err(|e| e.code()), Err(422));
    }

    fn watch_all(start_revision: Revision) -> WatchRequest {
        WatchRequest { start: "/".into(), end: String::new(), start_revision, progress_notify: false }
    }

    #[tokio::test]
    async fn failed_conditions_return_the_current_value() {
        let backend = MemoryBackend::new();
        backend.put("/a", Bytes::from_static(b"1"), 0, None).await.expect("put");
        let again = backend.put("/a", Bytes::from_static(b"2"), 0, None).await.expect("create again");
        let TxnOutcome::Failed { current: Some(kv), revision: 2 } = again else { panic!("{again:?}") };
        assert_eq!((kv.value, kv.mod_revision), (Bytes::from_static(b"1"), 2));
        let stale = backend.delete("/a", 1).await.expect("stale delete");
        assert!(matches!(stale, TxnOutcome::Failed { current: Some(_), .. }));
        let missing = backend.delete("/missing", 2).await.expect("delete missing");
        assert_eq!(missing, TxnOutcome::Failed { current: None, revision: 2 });
        assert_eq!(backend.current_revision().await.expect("rev"), 2, "failed writes take no revision");
    }

    #[tokio::test]
    async fn ttl_expiry_is_an_ordinary_delete() {
        let backend = MemoryBackend::new();
        let mut events = backend.watch(watch_all(0)).await.expect("watch");
        backend.put("/a", Bytes::from_static(b"1"), 0, Some(Duration::from_millis(20))).await.expect("put");
        assert!(matches!(events.next().await, Some(Ok(WatchEvent::Put { .. }))));
        let expired = events.next().await.expect("event").expect("ok");
        let WatchEvent::Delete { key, revision: 3, prev: Some(prev) } = expired else { panic!("{expired:?}") };
        assert_eq!((key.as_str(), prev.mod_revision), ("/a", 2));
        assert_eq!(backend.get("/a", 0).await.expect("get").kv, None);
    }

    #[tokio::test]
    async fn watch_from_a_future_revision_waits_for_it() {
        let backend = MemoryBackend::new();
        let mut events = backend.watch(watch_all(3)).await.expect("watch");
        backend.put("/a", Bytes::from_static(b"1"), 0, None).await.expect("rev 2");
        backend.put("/b", Bytes::from_static(b"1"), 0, None).await.expect("rev 3");
        let first = events.next().await.expect("event").expect("ok");
        assert_eq!(first.revision(), 3, "revision 2 is before the start");
    }

    #[tokio::test]
    async fn compaction_overtaking_a_watch_ends_it_with_an_error() {
        let backend = MemoryBackend::new();
        for key in ["/a", "/b", "/c"] {
            backend.put(key, Bytes::from_static(b"1"), 0, None).await.expect("put");
        }
        let mut events = backend.watch(watch_all(2)).await.expect("watch");
        backend.compact(4).await.expect("compact");
        let error = events.next().await.expect("item");
        assert!(matches!(error, Err(Error::Compacted { requested: 2, compacted: 4 })), "{error:?}");
        assert!(events.next().await.is_none(), "the error is the last item");
        assert!(matches!(backend.watch(watch_all(3)).await, Err(Error::Compacted { .. })));
        assert!(backend.watch(watch_all(4)).await.is_ok(), "watching from the compaction revision is fine");
        assert!(matches!(backend.compact(9).await, Err(Error::FutureRevision { .. })));
    }
}
