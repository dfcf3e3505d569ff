//! The watch cache: Kubernetes' `Cacher` + `CacheDelegator` as a decorator over any
//! `Arc<dyn Storage>` (it knows nothing of the backend underneath).
//!
//! ```text
//!   get RV≠"" / list RV "", "0", N / watch ──► Cacher ──► in-memory objects (by key) + history
//!   create / update / delete / get RV "" ─────────┐        ▲ reflector: list (consistent) then
//!                                                 ▼        │ watch from the list RV (progress_notify)
//!                                             inner Arc<dyn Storage> (e.g. Store over sled)
//! ```
//!
//! **What is served from the cache** (Kubernetes `CacheDelegator`, reference §4.2):
//! * `watch` in every mode of the start-point table, with periodic bookmarks when the client
//!   allows them, the initial-events-end bookmark, and 410 "too old resource version" below the
//!   history. A DELETED event carries the last state with the delete RV.
//! * `get` with RV ≠ "" (waits until the cache reached the RV), `get_list` with RV "0" (the
//!   limit is ignored, as in Kubernetes; never older than a consistent list the inner storage
//!   served — until the cache reaches that revision it waits briefly, else delegates) and with RV N / NotOlderThan N (waits for N).
//! * Consistent lists (RV "", Kubernetes `ConsistentListFromCache`) when the inner storage
//!   answers progress requests ([`Storage::request_watch_progress`]; sled does, etcd before
//!   3.4.31 does not): the cache asks for the inner storage's current revision, waits until it
//!   has seen it (requesting a progress notification every 100 ms), and lists at its own
//!   revision, which is at least that one; a limit pages like the inner storage would, the
//!   continuation is served by the inner storage. Not caught up within
//!   [`CacherConfig::fresh_timeout`] → served by the inner storage.
//!
//! * Exact lists (`resourceVersionMatch=Exact` with RV N, and the legacy RV N + limit list) of
//!   a directory at a revision the cache retains (at or above its history's floor), and
//!   continuation pages of such a revision: served from the snapshot of that revision (a
//!   persistent B-tree, KEP-4988, Kubernetes' `ListFromCacheSnapshot`), the list's RV and
//!   continue token exactly the inner storage's. A revision above the cache's waits as for
//!   NotOlderThan. The history's floor decides what is retained, as for a watch: a revision the
//!   backend compacted but the cache still holds is answered with its exact state.
//!
//! **What goes to the inner storage**: create; `guaranteed_update` and `delete` (with the
//! cache's current object as the suggestion, ignoring the caller's, as `CacheDelegator`);
//! `get` with RV ""; consistent lists when progress requests are not supported; Exact lists of
//! a single key, below the history's floor, or while the cache is not ready; continue tokens
//! of revisions no longer retained; stats, current/compact revision, watch progress.
//!
//! **What is held**: each object as its JSON bytes (shared [`bytes::Bytes`], handed out by
//! [`Storage::get_list_encoded`] / [`Storage::get_encoded`] and encoded watch streams) plus its
//! labels; an equality label index narrows selective lists. Over
//! [`CacherConfig::memory_budget`] the cache sheds everything and serves every request from the
//! inner storage until the resource fits again; [`CacheMetrics`] reports bytes and objects held,
//! the budget and the bypassed state per resource.
//!
//! **Freshness.** A wait for revision N first asks the inner storage for its current revision
//! C. If C ≥ N the data exists; the cache may just not know yet (a write to another resource
//! advanced the global revision, and not every backend sends progress notifications), so it
//! waits at most [`CacherConfig::consistent_wait`] and then serves the request from the inner
//! storage instead. If C < N the revision is in the future: it waits up to
//! [`CacherConfig::fresh_timeout`] (3 s) and answers 504 TooLargeResourceVersion (retry 1 s)
//! unless the revision was reached meanwhile. A consistent watch (RV "" with initial events)
//! that cannot be served from a fresh cache takes its initial state from a consistent list of
//! the inner storage at revision L and then continues with the cache's changes after L — no
//! gap, no duplicate, no revision going backwards.
//!
//! **History**: between [`CacherConfig::history_min`] (100) and [`CacherConfig::history_max`]
//! (102 400) events; a full history doubles while its oldest event is younger than
//! [`CacherConfig::history_window`] (75 s), otherwise evicts its oldest event (Kubernetes'
//! dynamic capacity, without shrinking until the next relist).
//!
//! **Slow watchers** that do not read are terminated (their stream ends; a client re-watches)
//! after a shared dispatch budget of ≤ 100 ms, rather than blocking every other watcher.
//!
//! **Readiness**: [`Storage::readiness_check`] and watches fail with [`Error::NotReady`] (429,
//! "storage is (re)initializing") until the first list completed, and again after a reflector
//! error (all watchers are terminated and the reflector relists after 1 s).
//!
//! **Use**: [`Cacher::new`] over any storage, or [`WatchCacheLayer`] in a
//! [`LayerChain`](crate::layer::LayerChain) (the layer takes the resource prefix, type and
//! runtime from the resource's [`ResourceContext`](crate::layer::ResourceContext)).
//!
//! Objects are cached under the key [`names::object_key`] computes from their metadata, like
//! Kubernetes' `KeyFunc`: an object stored at a key that does not match its namespace/name is
//! not supported.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};

use crate::encoded::{DerivedMeter, EncodedList, EncodedObject};
use crate::error::{Error, Result};
use crate::kv::Revision;
use crate::names;
use crate::object::Object;
use crate::storage::{
    DeleteOptions, GetOptions, ListOptions, ObjectList, Preconditions, Predicate, ResourceVersion,
    ResourceVersionMatch, Stats, Storage, UpdateFn, ValidateDeletion, WatchEvent, WatchStream,
};
use crate::store::prepare_key;

mod cache;
mod layer;
mod metrics;
mod reflector;
mod watcher;

pub use layer::WatchCacheLayer;
pub use metrics::{CacheMemory, CacheMetrics};

use cache::{scope, CacheState, CachedObject, HistoryBounds, Key, Matcher, Objects, WatcherHandle};
use watcher::{Opening, Watcher, WatcherSpec};

/// Configuration of a [`Cacher`].
#[derive(Clone, Debug)]
pub struct CacherConfig {
    /// The resource prefix of the inner storage's keys (`pods` → keys `/pods/...`).
    pub resource_prefix: String,
    /// The resource's name in metrics (`deployments.apps`); [`CacherConfig::new`] sets the
    /// resource prefix, [`WatchCacheLayer`] the context's GroupResource.
    pub resource: String,
    /// `apiVersion` of bookmark objects (the resource's type).
    pub api_version: String,
    /// `kind` of bookmark objects.
    pub kind: String,
    /// Smallest (initial) history capacity (Kubernetes: 100).
    pub history_min: usize,
    /// Largest history capacity (Kubernetes: 102 400).
    pub history_max: usize,
    /// A full history grows while its oldest event is younger than this (Kubernetes: 75 s).
    pub history_window: Duration,
    /// How long a read waits for a revision the inner storage has not reached (Kubernetes: 3 s).
    pub fresh_timeout: Duration,
    /// How long a read waits for a revision the inner storage has reached before it is served
    /// from the inner storage instead.
    pub consistent_wait: Duration,
    /// Periodic bookmarks per watcher (Kubernetes: 1 min).
    pub bookmark_frequency: Duration,
    /// Delay before relisting after a reflector error (Kubernetes: 1 s).
    pub relist_backoff: Duration,
    /// Capacity of each watcher's input queue (its only buffer: a watcher runs in its
    /// consumer's poll); a watcher whose queue stays full is terminated. Default 200.
    pub watcher_queue: usize,
    /// Most bytes the cache may hold (estimated: encoded objects, index fields, bookkeeping,
    /// and the values readers derive from the objects and keep with them,
    /// [`EncodedObject::keep_derived`](crate::encoded::EncodedObject::keep_derived)); None = no
    /// limit. A derived value is kept only while it fits (otherwise the reader computes it per
    /// request). When the objects and their kept values exceed it (the objects grew) the cache
    /// holds nothing and serves every request from the inner storage until the resource fits
    /// again (requests never fail for it).
    pub memory_budget: Option<usize>,
    /// Where the cache reports the bytes and objects it holds, its budget and whether it is
    /// bypassed (None = nowhere).
    pub metrics: Option<CacheMetrics>,
}

impl CacherConfig {
    /// Kubernetes' defaults for the resource prefix `resource_prefix` (e.g. `pods`).
    pub fn new(resource_prefix: &str) -> Self {
        CacherConfig {
            resource_prefix: resource_prefix.to_owned(),
            resource: resource_prefix.to_owned(),
            api_version: String::new(),
            kind: String::new(),
            history_min: 100,
            history_max: 102_400,
            history_window: Duration::from_secs(75),
            fresh_timeout: Duration::from_secs(3),
            consistent_wait: Duration::from_millis(100),
            bookmark_frequency: Duration::from_secs(60),
            relist_backoff: Duration::from_secs(1),
            watcher_queue: 200,
            memory_budget: None,
            metrics: None,
        }
    }
}

/// State shared by the cacher, its reflector and its watchers.
pub(crate) struct Shared {
    inner: Arc<dyn Storage>,
    config: CacherConfig,
    /// `/pods/`.
    resource_dir: String,
    state: Mutex<CacheState>,
    /// Bumped on every state change; waiters for freshness or readiness watch it.
    changed: watch::Sender<u64>,
    /// Set to true to stop the reflector.
    stop: watch::Sender<bool>,
    /// The inner storage answered a progress request with "cannot": consistent reads go to it.
    progress_unsupported: AtomicBool,
    /// The highest revision a consistent list served by the inner storage returned: an RV "0"
    /// list is never answered at an older revision (see [`Cacher::get_list`]).
    consistent_floor: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the state and wakes every waiter.
    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut CacheState) -> T) -> T {
        let result = f(&mut self.lock());
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        result
    }

    pub(crate) fn bounds(&self) -> HistoryBounds {
        HistoryBounds {
            min: self.config.history_min.max(1),
            max: self.config.history_max.max(self.config.history_min.max(1)),
            window: self.config.history_window,
        }
    }

    /// True when `bytes` exceed the memory budget.
    pub(crate) fn over_budget(&self, bytes: usize) -> bool {
        self.config.memory_budget.is_some_and(|budget| bytes > budget)
    }

    /// Reports the bytes and objects held, the budget and the bypassed state to the metrics;
    /// returns the bytes.
    pub(crate) fn record_memory(&self) -> usize {
        let memory = {
            let state = self.lock();
            CacheMemory {
                bytes: state.total_bytes(),
                objects: state.objects.len(),
                budget: self.config.memory_budget,
                bypassed: state.bypassed,
            }
        };
        if let Some(metrics) = &self.config.metrics {
            metrics.set(&self.config.resource, memory);
        }
        memory.bytes
    }

    /// The cache key of an object (Kubernetes `KeyFunc`).
    pub(crate) fn key_of(&self, object: &Object) -> Result<String> {
        names::object_key(&self.config.resource_prefix, &object.metadata.namespace, &object.metadata.name)
    }
}

/// How often a consistent read asks for a progress notification while it waits
/// (Kubernetes' `ConditionalProgressRequester`: 100 ms).
const PROGRESS_REQUEST_PERIOD: Duration = Duration::from_millis(100);

/// Whether a wait for a revision ended with the cache at it, or the inner storage must serve.
enum Freshness {
    /// The cache has reached the revision.
    Fresh,
    /// The inner storage has the revision but the cache does not know it (yet).
    Lagging,
}

/// The watch cache over an inner storage. Dropping it (or [`Cacher::stop`]) stops the
/// reflector and ends every watch.
pub struct Cacher {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Cacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Cacher")
            .field("resource_prefix", &self.shared.config.resource_prefix)
            .field("ready", &state.ready)
            .field("revision", &state.revision)
            .field("objects", &state.objects.len())
            .field("watchers", &state.watchers.len())
            .finish()
    }
}

impl Drop for Cacher {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Cacher {
    /// A cache over `inner`, whose keys live under `/<config.resource_prefix>/`. Starts the
    /// reflector on the current tokio runtime; the cache is ready once its first list completed.
    ///
    /// Errors: [`Error::Invalid`] for an empty resource prefix, [`Error::Internal`] outside a
    /// tokio runtime.
    pub fn new(inner: Arc<dyn Storage>, config: CacherConfig) -> Result<Self> {
        let resource = config.resource_prefix.trim_matches('/');
        if resource.is_empty() {
            return Err(Error::invalid("resourcePrefix", &config.resource_prefix, "must not be empty"));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::internal(format!("the watch cache needs a tokio runtime: {e}")))?;
        let resource_dir = format!("/{resource}/");
        let bounds =
            HistoryBounds { min: config.history_min.max(1), max: config.history_max, window: config.history_window };
        let mut state = CacheState::new(bounds);
        state.meter = DerivedMeter::new(config.memory_budget);
        if let Some(metrics) = &config.metrics {
            // The gauge follows the derived values as readers keep them, between the
            // reflector's reports.
            let gauge = metrics.bytes_gauge(&config.resource);
            state.meter.on_change(move |total| {
                gauge.set(i64::try_from(total).unwrap_or(i64::MAX));
            });
        }
        let shared = Arc::new(Shared {
            inner,
            resource_dir,
            state: Mutex::new(state),
            changed: watch::channel(0).0,
            stop: watch::channel(false).0,
            progress_unsupported: AtomicBool::new(false),
            consistent_floor: AtomicU64::new(0),
            config,
        });
        runtime.spawn(reflector::run(shared.clone()));
        Ok(Cacher { shared })
    }

    /// Stops the reflector and terminates every watcher; afterwards the cache is not ready
    /// ("apiserver cacher is stopped"). Idempotent.
    pub fn stop(&self) {
        self.shared.stop.send_replace(true);
        self.shared.update(|state| {
            state.stopped = true;
            state.ready = false;
            state.watchers.clear();
        });
    }

    /// Waits until the cache is ready, or until its first list attempt failed, or `timeout`.
    ///
    /// Errors: [`Error::NotReady`] with the reflector's last error.
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<()> {
        let mut changed = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let state = self.shared.lock();
                if state.ready {
                    return Ok(());
                }
                if state.attempts > 0 || state.stopped {
                    return Err(state.not_ready_error());
                }
            }
            if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
                return Err(self.shared.lock().not_ready_error());
            }
        }
    }

    /// The revision up to which the cache has applied every change (0 before the first list).
    pub fn resource_version(&self) -> Revision {
        self.shared.lock().revision
    }

    /// Watchers registered now. A watcher is deregistered as soon as its consumer drops or
    /// stops its stream, or the cache terminates it.
    pub fn watcher_count(&self) -> usize {
        self.shared.lock().watchers.len()
    }

    /// Forgets history at or below `revision`: later watches from an older revision get 410.
    /// The counterpart of a backend compaction for the cache (Kubernetes' tests compact the
    /// watch cache's history the same way).
    pub fn compact_history(&self, revision: Revision) {
        self.shared.update(|state| state.compact(revision));
    }

    fn prepare(&self, key: &str, recursive: bool) -> Result<String> {
        prepare_key(&self.shared.resource_dir, key, recursive)
    }

    fn is_ready(&self) -> bool {
        self.shared.lock().ready
    }

    fn is_bypassed(&self) -> bool {
        self.shared.lock().bypassed
    }

    /// The cache's current object at `key`, when ready (the suggestion for writes).
    fn cached_object(&self, key: &str) -> Option<Object> {
        let encoded = {
            let state = self.shared.lock();
            if !state.ready {
                return None;
            }
            state.objects.get(key).map(|object| object.encoded.clone())
        };
        encoded.and_then(|encoded| encoded.decode().ok())
    }

    /// Bytes and objects the cache holds now (what [`CacheMetrics`] reports).
    pub fn memory(&self) -> (usize, usize) {
        let state = self.shared.lock();
        (state.total_bytes(), state.objects.len())
    }

    /// True while the cache is over its memory budget and serves from the inner storage.
    pub fn bypassed(&self) -> bool {
        self.is_bypassed()
    }

    /// Waits until the cache has reached `wanted` (see the module docs on freshness).
    async fn wait_fresh(&self, wanted: Revision) -> Result<Freshness> {
        if wanted == 0 || self.shared.lock().revision >= wanted {
            return Ok(Freshness::Fresh);
        }
        // Best effort: a backend that supports it sends a progress notification.
        let _ = self.shared.inner.request_watch_progress().await;
        let current = self.shared.inner.current_resource_version().await?;
        if current >= wanted {
            return Ok(self.wait_for(wanted, self.shared.config.consistent_wait).await);
        }
        if let Freshness::Fresh = self.wait_for(wanted, self.shared.config.fresh_timeout).await {
            return Ok(Freshness::Fresh);
        }
        let current = self.shared.inner.current_resource_version().await?;
        if current >= wanted {
            return Ok(Freshness::Lagging);
        }
        Err(Error::TooLargeResourceVersion {
            requested: wanted,
            current: self.shared.lock().revision,
            retry_after_seconds: 1,
        })
    }

    /// For a consistent read (RV ""): waits until the cache holds every change up to the
    /// inner storage's current revision, asking for a progress notification every
    /// [`PROGRESS_REQUEST_PERIOD`] meanwhile (Kubernetes' consistent reads from cache). Fresh
    /// at once when the cache already holds that revision, whatever the backend supports;
    /// lagging (serve from the inner storage) when the cache is behind and the inner storage
    /// cannot answer progress requests, the cache is not ready, or it did not catch up within
    /// [`CacherConfig::fresh_timeout`] (Kubernetes falls back to etcd likewise).
    async fn wait_consistent(&self) -> Result<Freshness> {
        if !self.is_ready() {
            return Ok(Freshness::Lagging);
        }
        let current = self.shared.inner.current_resource_version().await?;
        let deadline = tokio::time::Instant::now() + self.shared.config.fresh_timeout;
        loop {
            if self.shared.lock().revision >= current {
                return Ok(Freshness::Fresh);
            }
            if self.shared.progress_unsupported.load(Ordering::Relaxed) {
                return Ok(Freshness::Lagging);
            }
            if !self.shared.inner.request_watch_progress().await? {
                self.shared.progress_unsupported.store(true, Ordering::Relaxed);
                return Ok(Freshness::Lagging);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Freshness::Fresh = self.wait_for(current, left.min(PROGRESS_REQUEST_PERIOD)).await {
                return Ok(Freshness::Fresh);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Freshness::Lagging);
            }
        }
    }

    async fn wait_for(&self, wanted: Revision, timeout: Duration) -> Freshness {
        let mut changed = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let state = self.shared.lock();
                if !state.ready {
                    return Freshness::Lagging;
                }
                if state.revision >= wanted {
                    return Freshness::Fresh;
                }
            }
            if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
                return Freshness::Lagging;
            }
        }
    }

    /// A list served from the cache: at its current revision (`at` None), or from the
    /// snapshot of revision `at.0` continuing at key `at.1`. A selector with an equality label
    /// requirement walks only the index's keys (at the current revision). The lock is held only
    /// to take the O(1) snapshot; items are the cached bytes, shared.
    ///
    /// Ok(None) when the revision is not retained (the caller delegates to the inner storage).
    fn list_from_cache(
        &self,
        key: &str,
        options: &ListOptions,
        ignore_limit: bool,
        at: Option<(Revision, Option<String>)>,
    ) -> Result<Option<EncodedList>> {
        let predicate = &options.predicate;
        let matcher = Matcher::new(predicate, self.shared.resource_dir.len());
        let (revision, objects, candidates, start) = {
            let mut state = self.shared.lock();
            if !state.ready {
                return Err(state.not_ready_error());
            }
            match at {
                None => {
                    let candidates = if options.recursive {
                        predicate
                            .label
                            .equalities()
                            .map(|(label, value)| state.labels.keys(label, value))
                            .min_by_key(imbl::OrdSet::len)
                    } else {
                        None
                    };
                    (state.revision, state.objects.clone(), candidates, None)
                }
                Some((revision, start)) => match state.snapshot_at(revision) {
                    Some(objects) => (revision, objects, None, start),
                    None => return Ok(None),
                },
            }
        };
        let limit = if ignore_limit || !options.recursive { 0 } else { predicate.limit.max(0) as usize };
        let mut candidates_iter;
        let mut scope_iter;
        let in_scope: &mut dyn Iterator<Item = (&Key, &CachedObject)> = match &candidates {
            Some(keys) => {
                let from = start.as_deref().filter(|s| *s > key).unwrap_or(key);
                candidates_iter = keys
                    .range::<_, str>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded))
                    .take_while(|k| k.starts_with(key))
                    .filter_map(|k| objects.get_key_value(k.as_ref()));
                &mut candidates_iter
            }
            None => {
                scope_iter = scope(&objects, key, options.recursive, start.as_deref());
                &mut scope_iter
            }
        };
        let mut items = Vec::new();
        let mut last_key: Option<&str> = None;
        let mut full = false;
        for (object_key, object) in &mut *in_scope {
            if matcher.matches(object_key, object) {
                items.push(object.encoded.clone());
                last_key = Some(object_key.as_ref());
                if limit > 0 && items.len() >= limit {
                    full = true;
                    break;
                }
            }
        }
        let (continue_token, remaining_item_count) = match last_key {
            Some(last) if full => {
                let remaining = if predicate.is_empty() {
                    (&mut *in_scope).count()
                } else {
                    usize::from(in_scope.next().is_some())
                };
                if remaining > 0 {
                    let token = crate::continue_token::encode(&format!("{last}\0"), key, revision as i64)?;
                    (token, predicate.is_empty().then_some(remaining as i64))
                } else {
                    (String::new(), None)
                }
            }
            _ => (String::new(), None),
        };
        Ok(Some(EncodedList { resource_version: revision, continue_token, remaining_item_count, items }))
    }

    /// An exact list at revision `wanted` (`resourceVersionMatch=Exact`, or the legacy RV +
    /// limit list) from the snapshot of that revision (Kubernetes' `ListFromCacheSnapshot`,
    /// KEP-4988); the list's RV is `wanted`, its continue token pinned to it like the inner
    /// storage's. Ok(None) → the inner storage serves it: the cache is not ready, the list is of
    /// a single key (as Kubernetes), `wanted` is below the history's floor (not retained), or the
    /// inner storage has `wanted` and the cache did not learn it within
    /// [`CacherConfig::consistent_wait`].
    ///
    /// Errors: [`Error::TooLargeResourceVersion`] (504) for a revision the inner storage does not
    /// reach within [`CacherConfig::fresh_timeout`].
    async fn exact_list(&self, key: &str, options: &ListOptions, wanted: Revision) -> Result<Option<EncodedList>> {
        if !options.recursive || !self.is_ready() {
            return Ok(None);
        }
        if let Freshness::Lagging = self.wait_fresh(wanted).await? {
            return Ok(None);
        }
        self.list_from_cache(key, options, false, Some((wanted, None)))
    }

    /// A continuation page from the snapshot of the token's revision; Ok(None) → the inner
    /// storage serves it (and words its errors).
    fn continued_list(&self, key: &str, options: &ListOptions) -> Result<Option<EncodedList>> {
        let plain = options.resource_version.is_unset() && options.resource_version_match.is_none();
        if !plain || !options.recursive || !self.is_ready() {
            return Ok(None);
        }
        let Ok(token) = crate::continue_token::decode(&options.predicate.continue_token, key) else {
            return Ok(None);
        };
        let Ok(revision) = Revision::try_from(token.revision) else {
            return Ok(None);
        };
        self.list_from_cache(key, options, false, Some((revision, Some(token.start_key))))
    }

    /// Registers a watcher; it runs in the returned stream's poll (no task of its own). The
    /// opening (initial state, replayed history, start revision) is taken under the same lock
    /// that registers the watcher, so every later change is dispatched to it and none is missed. A start older than the history gives a
    /// stream with one 410 ERROR event.
    fn register(&self, key: String, options: &ListOptions, start: Start, end_bookmark: bool) -> Result<WatchStream> {
        let bookmarks = options.predicate.allow_watch_bookmarks || options.progress_notify;
        let (input_sender, input) = mpsc::channel(self.shared.config.watcher_queue.max(1));
        let (opening, id) = {
            let mut state = self.shared.lock();
            if !state.ready {
                return Err(state.not_ready_error());
            }
            let opening = match start {
                Start::CacheState => {
                    let revision = state.revision;
                    Opening {
                        initial: state.objects.clone(),
                        end_bookmark: end_bookmark.then_some(revision),
                        replay: Vec::new(),
                        start: revision,
                    }
                }
                Start::After { revision, initial } => {
                    let replay = match state.events_after(revision, &key, options.recursive) {
                        Ok(replay) => replay,
                        Err(error) => return Ok(error_stream(error)),
                    };
                    let initial_given = initial.is_some();
                    Opening {
                        initial: initial.unwrap_or_default(),
                        end_bookmark: (end_bookmark && initial_given).then_some(revision),
                        replay,
                        start: revision,
                    }
                }
            };
            let id = state.next_watcher;
            state.next_watcher += 1;
            state.watchers.insert(
                id,
                WatcherHandle {
                    key: key.clone(),
                    recursive: options.recursive,
                    bookmarks,
                    next_bookmark: std::time::Instant::now() + self.shared.config.bookmark_frequency,
                    input: input_sender,
                },
            );
            (opening, id)
        };
        let predicate = Predicate { limit: 0, continue_token: String::new(), ..options.predicate.clone() };
        let spec = WatcherSpec {
            key,
            recursive: options.recursive,
            matcher: Matcher::new(&predicate, self.shared.resource_dir.len()),
            bookmarks,
            api_version: self.shared.config.api_version.clone(),
            kind: self.shared.config.kind.clone(),
            input,
            registration: Some(watcher::Registration { shared: Arc::downgrade(&self.shared), id }),
        };
        Ok(WatchStream::polled(Box::new(Watcher::new(spec, opening))))
    }

    /// The initial state of a consistent watch from the inner storage: (objects, list RV).
    async fn consistent_initial_state(&self, key: &str, options: &ListOptions) -> Result<(Objects, Revision)> {
        let predicate = Predicate {
            label: options.predicate.label.clone(),
            field: options.predicate.field.clone(),
            ..Predicate::default()
        };
        let list = self
            .shared
            .inner
            .get_list(key, ListOptions { recursive: options.recursive, predicate, ..ListOptions::default() })
            .await?;
        let mut objects = Objects::new();
        for object in &list.items {
            let object_key: Key = self.shared.key_of(object)?.into();
            objects.insert(object_key, CachedObject::new(object)?);
        }
        Ok((objects, list.resource_version))
    }

    /// A consistent start at revision `wanted`: the cache's state when it is fresh, else a
    /// consistent list of the inner storage followed by the cache's changes after it.
    async fn consistent_start(&self, key: &str, options: &ListOptions, wanted: Revision) -> Result<Start> {
        match self.wait_fresh(wanted).await? {
            Freshness::Fresh => Ok(Start::CacheState),
            Freshness::Lagging => {
                let (objects, revision) = self.consistent_initial_state(key, options).await?;
                Ok(Start::After { revision, initial: Some(objects) })
            }
        }
    }
}

/// Where a watcher starts.
enum Start {
    /// The cache's current state as initial events, then changes after it.
    CacheState,
    /// Changes after `revision`, preceded by `initial` objects when given.
    After { revision: Revision, initial: Option<Objects> },
}

/// A stream that delivers one ERROR event and ends.
fn error_stream(error: Error) -> WatchStream {
    let (sender, stream) = WatchStream::channel(1);
    // A fresh channel of capacity 1 always has room.
    let _ = sender.try_send(WatchEvent::Error(error));
    stream
}

#[async_trait]
impl Storage for Cacher {
    async fn create(&self, key: &str, object: Object, ttl: u64) -> Result<Object> {
        self.shared.inner.create(key, object, ttl).await
    }

    async fn delete(
        &self,
        key: &str,
        preconditions: Option<&Preconditions>,
        validate_deletion: ValidateDeletion<'_>,
        _cached_existing: Option<Object>,
        options: DeleteOptions,
    ) -> Result<Object> {
        let suggestion = self.cached_object(key);
        self.shared.inner.delete(key, preconditions, validate_deletion, suggestion, options).await
    }

    async fn watch(&self, key: &str, options: ListOptions) -> Result<WatchStream> {
        if self.is_bypassed() {
            return self.shared.inner.watch(key, options).await;
        }
        let key = self.prepare(key, options.recursive)?;
        let requested = options.resource_version;
        if !self.is_ready() {
            return Err(self.shared.lock().not_ready_error());
        }
        let initial_events = options.send_initial_events.unwrap_or(!matches!(requested, ResourceVersion::At(_)));
        let end_bookmark = options.send_initial_events == Some(true) && options.predicate.allow_watch_bookmarks;
        let start = match (initial_events, requested) {
            (true, ResourceVersion::Unset) => {
                // Consistent: at least the inner storage's current revision.
                let current = self.shared.inner.current_resource_version().await?;
                match self.consistent_start(&key, &options, current).await {
                    Ok(start) => start,
                    Err(error) => return Ok(error_stream(error)),
                }
            }
            (true, ResourceVersion::Any) => Start::CacheState,
            (true, ResourceVersion::At(wanted)) => match self.consistent_start(&key, &options, wanted).await {
                Ok(start) => start,
                Err(error) => return Ok(error_stream(error)),
            },
            (false, ResourceVersion::At(revision)) => Start::After { revision, initial: None },
            // "Start at the most recent": changes after the inner storage's current revision.
            (false, ResourceVersion::Unset) => {
                Start::After { revision: self.shared.inner.current_resource_version().await?, initial: None }
            }
            (false, ResourceVersion::Any) => Start::After { revision: self.shared.lock().revision, initial: None },
        };
        self.register(key, &options, start, end_bookmark)
    }

    async fn get(&self, key: &str, options: GetOptions) -> Result<Option<Object>> {
        match self.get_encoded(key, options).await? {
            Some(encoded) => Ok(Some(encoded.decode()?)),
            None => Ok(None),
        }
    }

    async fn get_encoded(&self, key: &str, options: GetOptions) -> Result<Option<EncodedObject>> {
        if options.resource_version.is_unset() || self.is_bypassed() {
            return self.shared.inner.get_encoded(key, options).await;
        }
        let key = self.prepare(key, false)?;
        let wanted = options.resource_version.revision();
        if !self.is_ready() {
            return self.shared.inner.get_encoded(&key, options).await;
        }
        if let Freshness::Lagging = self.wait_fresh(wanted).await? {
            return self.shared.inner.get_encoded(&key, options).await;
        }
        let cached = {
            let state = self.shared.lock();
            state.ready.then(|| state.objects.get(key.as_str()).map(|object| object.encoded.clone()))
        };
        match cached {
            Some(Some(object)) => Ok(Some(object)),
            Some(None) if options.ignore_not_found => Ok(None),
            Some(None) => Err(Error::NotFound { key }),
            // Turned not ready meanwhile: the inner storage answers.
            None => self.shared.inner.get_encoded(&key, options).await,
        }
    }

    async fn get_list(&self, key: &str, options: ListOptions) -> Result<ObjectList> {
        self.get_list_encoded(key, options).await?.decode()
    }

    fn holds_encoded(&self) -> bool {
        // Over budget (bypassed) the cache delegates every read to the inner storage.
        !self.is_bypassed() || self.shared.inner.holds_encoded()
    }

    async fn get_list_encoded(&self, key: &str, options: ListOptions) -> Result<EncodedList> {
        if self.is_bypassed() {
            return self.shared.inner.get_list_encoded(key, options).await;
        }
        let prepared = self.prepare(key, options.recursive)?;
        if !options.predicate.continue_token.is_empty() {
            if let Some(list) = self.continued_list(&prepared, &options)? {
                return Ok(list);
            }
            return self.shared.inner.get_list_encoded(key, options).await;
        }
        let requested = options.resource_version;
        let exact = match (options.resource_version_match, requested) {
            (Some(ResourceVersionMatch::Exact), ResourceVersion::At(wanted)) => Some(wanted),
            // Legacy: RV N with a limit means exactly N.
            (None, ResourceVersion::At(wanted)) if options.recursive && options.predicate.limit > 0 => Some(wanted),
            _ => None,
        };
        if let Some(wanted) = exact {
            return match self.exact_list(&prepared, &options, wanted).await? {
                Some(list) => Ok(list),
                None => self.shared.inner.get_list_encoded(key, options).await,
            };
        }
        if options.resource_version_match == Some(ResourceVersionMatch::Exact) {
            // Exact with RV "" or "0" (an API server refuses both): the inner storage's reading.
            return self.shared.inner.get_list_encoded(key, options).await;
        }
        let served = match requested {
            ResourceVersion::Unset => match self.wait_consistent().await? {
                Freshness::Fresh => self.list_from_cache(&prepared, &options, false, None)?,
                Freshness::Lagging => {
                    let list = self.shared.inner.get_list_encoded(key, options).await?;
                    self.shared.consistent_floor.fetch_max(list.resource_version, Ordering::SeqCst);
                    return Ok(list);
                }
            },
            _ if !self.is_ready() => {
                // Kubernetes delegates only lists that are cheap for the backend: paged, unfiltered.
                if options.predicate.is_empty() && options.predicate.limit > 0 {
                    None
                } else {
                    return Err(self.shared.lock().not_ready_error());
                }
            }
            // RV "0": any state; Kubernetes' cache ignores the limit (kubernetes#108003). Not
            // older than a consistent list the inner storage served: a client that saw
            // revision R must not list R' < R next (the cache waits briefly for R, else the
            // inner storage answers).
            ResourceVersion::Any => {
                let floor = self.shared.consistent_floor.load(Ordering::SeqCst);
                match self.wait_fresh(floor).await? {
                    Freshness::Fresh => self.list_from_cache(&prepared, &options, true, None)?,
                    Freshness::Lagging => None,
                }
            }
            ResourceVersion::At(wanted) => match self.wait_fresh(wanted).await? {
                Freshness::Fresh => self.list_from_cache(&prepared, &options, false, None)?,
                Freshness::Lagging => None,
            },
        };
        match served {
            Some(list) => Ok(list),
            None => self.shared.inner.get_list_encoded(key, options).await,
        }
    }

    async fn guaranteed_update(
        &self,
        key: &str,
        ignore_not_found: bool,
        preconditions: Option<&Preconditions>,
        try_update: UpdateFn<'_>,
        _cached_existing: Option<Object>,
    ) -> Result<Object> {
        let suggestion = self.cached_object(key);
        self.shared.inner.guaranteed_update(key, ignore_not_found, preconditions, try_update, suggestion).await
    }

    async fn stats(&self) -> Result<Stats> {
        self.shared.inner.stats().await
    }

    async fn readiness_check(&self) -> Result<()> {
        let not_ready = {
            let state = self.shared.lock();
            if state.bypassed {
                None
            } else if state.ready {
                return Ok(());
            } else {
                Some(state.not_ready_error())
            }
        };
        match not_ready {
            Some(error) => Err(error),
            None => self.shared.inner.readiness_check().await,
        }
    }

    async fn current_resource_version(&self) -> Result<u64> {
        self.shared.inner.current_resource_version().await
    }

    async fn compact_revision(&self) -> Result<u64> {
        self.shared.inner.compact_revision().await
    }

    async fn request_watch_progress(&self) -> Result<bool> {
        self.shared.inner.request_watch_progress().await
    }
}
