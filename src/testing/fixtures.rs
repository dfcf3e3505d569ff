//! Shared fixtures of the `Storage` suite: a [`Harness`] (a `Store` for `pods` over a fresh
//! backend, seen through `Arc<dyn Storage>`), pod builders, and watch helpers.
//!
//! Pods are `apiVersion: v1, kind: Pod` objects keyed `/pods/<namespace>/<name>`, like
//! Kubernetes' `storage/testing` (`computePodKey`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use crate::error::Error;
use crate::kv::{KvBackend, RangeRequest, Revision, TxnOutcome};
use crate::names;
use crate::object::Object;
use crate::storage::{
    allow_all_deletions, DeleteOptions, GetOptions, ListOptions, ObjectList, Predicate, ResourceVersion, Storage,
    WatchEvent, WatchStream,
};
use crate::store::{Store, StoreConfig};

use crate::cacher::CacherConfig;
use crate::group_resource::GroupResource;
use crate::layer::{Histories, History, Layer, ResourceContext};
use crate::layers::StorageMetrics;

use super::{BackendFixture, ChainUnderTest, StorageMode};

/// The resource every behaviour stores (`/registry/pods/...`).
pub const RESOURCE: &str = "pods";

/// How long a behaviour waits for an expected watch event before failing.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a behaviour listens to conclude that no (further) event arrives.
pub const QUIET_PERIOD: Duration = Duration::from_millis(300);

/// A pod `namespace/name` with no labels and no node.
pub fn pod(namespace: &str, name: &str) -> Object {
    Object::new("v1", "Pod", namespace, name).with_field("spec", json!({}))
}

/// A pod scheduled on `node` (`spec.nodeName`).
pub fn pod_on_node(namespace: &str, name: &str, node: &str) -> Object {
    Object::new("v1", "Pod", namespace, name).with_field("spec", json!({ "nodeName": node }))
}

/// The store key of a pod: `/pods/<namespace>/<name>` (via [`names::object_key`]).
pub fn key(namespace: &str, name: &str) -> String {
    match names::object_key(RESOURCE, namespace, name) {
        Ok(key) => key,
        Err(e) => panic!("fixture key {namespace}/{name} is invalid: {e}"),
    }
}

/// The store key of an object, from its metadata.
pub fn key_of(object: &Object) -> String {
    key(&object.metadata.namespace, &object.metadata.name)
}

/// The typed resourceVersion of `text` in its query-parameter form (`""`, `"0"`, `"N"`), as a
/// test writes it; panics on anything else (the parse errors are behaviours of
/// [`ResourceVersion::parse_read`] / [`ResourceVersion::parse_watch`]).
pub fn rv_of(text: &str) -> ResourceVersion {
    match ResourceVersion::parse_read(text) {
        Ok(rv) => rv,
        Err(e) => panic!("a test resourceVersion must be \"\", \"0\" or a revision: {e}"),
    }
}

/// A recursive list/watch of everything under `key` at `resource_version` (see [`rv_of`]).
pub fn recursive(resource_version: &str) -> ListOptions {
    ListOptions { resource_version: rv_of(resource_version), recursive: true, ..ListOptions::default() }
}

/// A list/watch of the single key at `resource_version` (see [`rv_of`]).
pub fn single(resource_version: &str) -> ListOptions {
    ListOptions { resource_version: rv_of(resource_version), recursive: false, ..ListOptions::default() }
}

/// The resourceVersion of `object` as a number (panics on a malformed one).
pub fn rv(object: &Object) -> u64 {
    match object.resource_version() {
        Ok(rv) => rv,
        Err(e) => panic!("object {} has a malformed resourceVersion: {e}", object.metadata.name),
    }
}

/// Names of `items`, in order.
pub fn names_of(items: &[Object]) -> Vec<String> {
    items.iter().map(|o| o.metadata.name.clone()).collect()
}

/// Where the storage under test legitimately differs from a plain [`Store`]: each flag names
/// the Kubernetes behaviour whose expectation it switches, so a behaviour adapts explicitly
/// instead of weakening a check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expectations {
    /// A list at RV "0" ignores the limit and returns everything (Kubernetes `RunTestList`:
    /// "RV 0 + limit" is checked against etcd only; the watch cache ignores the limit,
    /// cacher.go, kubernetes#108003).
    pub list_at_zero_ignores_limit: bool,
    /// RV "0" and NotOlderThan reads are served at the cache's revision, which may be below
    /// the global current revision after writes to other resources (Kubernetes
    /// `RunTestConsistentList`: the cache's RV "0" list returns its synced RV, not the
    /// storage's current one; reference §4.4 "Response RV: NotOlderThan/"0" → cache RV").
    pub reads_use_cache_revision: bool,
    /// `guaranteed_update` and `delete` replace the caller's suggestion with the cache's
    /// current object (Kubernetes `CacheDelegator.GuaranteedUpdate`/`Delete`), so a stale
    /// suggestion given by the caller may never be tried.
    pub writes_use_cached_suggestion: bool,
    /// Watches with `allowWatchBookmarks` get periodic BOOKMARK events
    /// (`RunTestWatchDispatchBookmarkEvents(expected=true)` for the cacher, false for etcd3).
    pub periodic_bookmarks: bool,
    /// Watches are served only once the cache could list the whole resource: unreadable
    /// stored data keeps it not ready (429) until the data is repaired or removed (Kubernetes
    /// runs `RunTestWatchError` and `RunTestWatchWithUnsafeDelete` against etcd3 only).
    pub watch_needs_readable_resource: bool,
    /// Lists the cache serves (RV "0", NotOlderThan, consistent lists when the backend answers
    /// progress requests, Exact lists at revisions it retains) find an object under the key
    /// computed from its namespace and name (Kubernetes' `KeyFunc`), not under the key it was
    /// stored at; objects stored elsewhere (nested directories) are listed by key only by the
    /// store (e.g. Exact lists at revisions the cache's history no longer retains).
    pub cached_lists_key_by_metadata: bool,
}

impl Expectations {
    /// The expectations for a storage mode.
    pub fn for_mode(mode: StorageMode) -> Self {
        match mode {
            StorageMode::Store => Expectations::default(),
            StorageMode::Cached => Expectations {
                list_at_zero_ignores_limit: true,
                reads_use_cache_revision: true,
                writes_use_cached_suggestion: true,
                periodic_bookmarks: true,
                watch_needs_readable_resource: true,
                cached_lists_key_by_metadata: true,
            },
        }
    }
}

/// The watch cache settings of the suite's cached mode: Kubernetes' defaults, except that
/// bookmarks are due every second (Kubernetes sends a watcher's first bookmark 2 s before the
/// watch's deadline, which its tests set to 3 s; apistore watches have no deadline).
pub fn suite_cacher_config() -> CacherConfig {
    CacherConfig {
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        bookmark_frequency: Duration::from_secs(1),
        ..CacherConfig::new(RESOURCE)
    }
}

/// Everything a behaviour needs: the backend, the `Store` over it, and the storage under test
/// as `Arc<dyn Storage>` (the store itself, or the chain under test over it).
pub struct Harness {
    /// The fresh backend from the fixture.
    pub backend: Arc<dyn KvBackend>,
    /// The concrete store (for `backend_key` and config).
    pub store: Store,
    /// The storage under test, as API servers see it.
    pub storage: Arc<dyn Storage>,
    /// The histories (watch caches) the chain's layers registered.
    pub histories: Vec<Arc<dyn History>>,
    /// How the storage under test differs from a plain store.
    pub expect: Expectations,
    /// Calls that reached the store under the storage under test (see [`Harness::store_lists`]).
    pub store_calls: StorageMetrics,
    chain: Option<ChainUnderTest>,
    unrelated_writes: std::sync::atomic::AtomicU64,
}

impl Harness {
    /// A harness over a fresh backend with `StoreConfig::new("pods")`.
    pub async fn new(fixture: &Arc<dyn BackendFixture>) -> Self {
        Self::with_config(fixture, StoreConfig::new(RESOURCE)).await
    }

    /// A harness over a fresh backend with a custom store config.
    pub async fn with_config(fixture: &Arc<dyn BackendFixture>, config: StoreConfig) -> Self {
        Self::over(fixture.new_backend().await, config, fixture.chain().cloned()).await
    }

    /// A second harness over this one's backend (e.g. the same data with another transformer),
    /// through the same chain.
    pub async fn sibling(&self, config: StoreConfig) -> Self {
        Self::over(self.backend.clone(), config, self.chain.clone()).await
    }

    /// A harness over an existing backend, through `chain` when given (resource `pods`, type
    /// `v1`/`Pod`, watch cache wanted). It waits (≤ 10 s) for the first load of every history
    /// the chain registered; a failed one (unreadable data) is left to the behaviour.
    pub async fn over(backend: Arc<dyn KvBackend>, config: StoreConfig, chain: Option<ChainUnderTest>) -> Self {
        let store = match Store::new(backend.clone(), config.clone()) {
            Ok(store) => store,
            Err(e) => panic!("Store::new failed: {e}"),
        };
        let mut context = match ResourceContext::for_store(GroupResource::core(RESOURCE), &config) {
            Ok(context) => context,
            Err(e) => panic!("no resource context: {e}"),
        };
        // Every call that reaches the store is counted (Kubernetes' `expectCacherRequestsToEtcd`).
        let store_calls = StorageMetrics::new();
        let metered = match store_calls.layer().layer(&context, Arc::new(store.clone())) {
            Ok(metered) => metered,
            Err(e) => panic!("the metrics layer failed to build: {e}"),
        };
        let (storage, histories, expect): (Arc<dyn Storage>, _, _) = match &chain {
            None => (metered, Vec::new(), Expectations::default()),
            Some(chain) => {
                "v1".clone_into(&mut context.api_version);
                "Pod".clone_into(&mut context.kind);
                let registered = Histories::default();
                context.histories = Some(registered.clone());
                let storage = match chain.layers.apply(&context, metered) {
                    Ok(storage) => storage,
                    Err(e) => panic!("the chain {:?} failed to build: {e}", chain.layers.names()),
                };
                let histories = registered.all();
                for history in &histories {
                    history.wait_loaded(Duration::from_secs(10)).await;
                }
                (storage, histories, chain.expect)
            }
        };
        Harness {
            backend,
            store,
            storage,
            histories,
            expect,
            store_calls,
            chain,
            unrelated_writes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Makes later "any state" reads (RV "0") see every write of the resource up to
    /// `revision` (which must be such a write), the way Kubernetes' tests do it: a
    /// NotOlderThan list at that revision (a no-op for a store; a cache waits until it has
    /// applied the revision). Under heavy load the cache may answer that list from the store
    /// after its short wait, so in cached mode this also waits (≤ [`EVENT_TIMEOUT`]) until the
    /// cache has applied `revision`.
    pub async fn sync_reads(&self, revision: Revision) {
        let options = ListOptions {
            resource_version_match: Some(crate::storage::ResourceVersionMatch::NotOlderThan),
            ..recursive(&revision.to_string())
        };
        self.list("/pods/", options).await;
        for history in &self.histories {
            let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
            while history.revision() < revision {
                assert!(tokio::time::Instant::now() < deadline, "the cache did not reach revision {revision}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Lists the store answered so far: every list of a plain store, and the lists the watch
    /// cache delegated (plus its reflector's own lists).
    pub fn store_lists(&self) -> u64 {
        self.store_calls.request_count(RESOURCE, "list")
    }

    /// Watches alive now in the storage under test: the cache's registered watchers, or the
    /// store's running watch producers.
    pub fn live_watches(&self) -> usize {
        match self.histories.first() {
            Some(cache) => cache.watcher_count(),
            None => self.store.live_watches(),
        }
    }

    /// Waits (≤ [`EVENT_TIMEOUT`]) until [`Harness::live_watches`] is `expected`.
    pub async fn expect_live_watches(&self, expected: usize) {
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        while self.live_watches() != expected {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} live watches, expected {expected}",
                self.live_watches()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Creates `object` at its pod key and returns the stored object.
    pub async fn create(&self, object: Object) -> Object {
        let key = key_of(&object);
        match self.storage.create(&key, object, 0).await {
            Ok(created) => created,
            Err(e) => panic!("create {key} failed: {e}"),
        }
    }

    /// Creates a plain pod `namespace/name`.
    pub async fn create_pod(&self, namespace: &str, name: &str) -> Object {
        self.create(pod(namespace, name)).await
    }

    /// Replaces the object at `object`'s key with `object` (creating it if missing) through
    /// `guaranteed_update`, like Kubernetes' `SimpleUpdate` helpers.
    pub async fn put(&self, object: Object) -> Object {
        let key = key_of(&object);
        let mut update = move |_: Object, _| Ok((object.clone(), None));
        match self.storage.guaranteed_update(&key, true, None, &mut update, None).await {
            Ok(updated) => updated,
            Err(e) => panic!("guaranteed_update {key} failed: {e}"),
        }
    }

    /// Sets annotation `k=v` on the existing object at `key`.
    pub async fn annotate(&self, key: &str, k: &str, v: &str) -> Object {
        let (k, v) = (k.to_owned(), v.to_owned());
        let mut update = move |mut current: Object, _| {
            current.metadata.annotations.insert(k.clone(), v.clone());
            Ok((current, None))
        };
        match self.storage.guaranteed_update(key, false, None, &mut update, None).await {
            Ok(updated) => updated,
            Err(e) => panic!("annotate {key} failed: {e}"),
        }
    }

    /// Deletes `key` unconditionally and returns the deleted object (delete RV).
    pub async fn delete(&self, key: &str) -> Object {
        match self.storage.delete(key, None, &allow_all_deletions, None, DeleteOptions::default()).await {
            Ok(deleted) => deleted,
            Err(e) => panic!("delete {key} failed: {e}"),
        }
    }

    /// Reads `key` at the latest revision.
    pub async fn get(&self, key: &str) -> crate::Result<Option<Object>> {
        self.storage.get(key, GetOptions::default()).await
    }

    /// Lists `key` with `options`, panicking on error.
    pub async fn list(&self, key: &str, options: ListOptions) -> ObjectList {
        match self.storage.get_list(key, options.clone()).await {
            Ok(list) => list,
            Err(e) => panic!("list {key} with {options:?} failed: {e}"),
        }
    }

    /// A consistent list of every pod: the stored state a bad-input behaviour must not change.
    pub async fn snapshot(&self) -> ObjectList {
        self.list("/pods/", recursive("")).await
    }

    /// Bumps the global revision with a write outside the store's prefix (Kubernetes'
    /// `IncreaseRVFunc`) and returns the new revision.
    pub async fn bump_revision(&self) -> Revision {
        let n = self.unrelated_writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let key = format!("/unrelated/key-{n}");
        match self.backend.put(&key, Bytes::from_static(b"unrelated"), 0, None).await {
            Ok(TxnOutcome::Succeeded { revision }) => revision,
            other => panic!("unrelated write {key} failed: {other:?}"),
        }
    }

    /// Compacts the backend at `revision` (Kubernetes' `Compaction`), and the watch cache's
    /// history with it (Kubernetes' cacher tests compact the cache the same way).
    pub async fn compact(&self, revision: Revision) {
        if let Err(e) = self.backend.compact(revision).await {
            panic!("compact({revision}) failed: {e}");
        }
        for history in &self.histories {
            // Like Kubernetes' `compactStorage`: let the cache catch up first (bounded: a
            // revision written outside the resource reaches it only by progress notification).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while history.revision() < revision && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            history.compact(revision);
        }
    }

    /// The backend's current revision.
    pub async fn current_revision(&self) -> Revision {
        match self.storage.current_resource_version().await {
            Ok(rv) => rv,
            Err(e) => panic!("current_resource_version failed: {e}"),
        }
    }

    /// The raw stored bytes of a store key (None if absent).
    pub async fn raw(&self, key: &str) -> Option<Bytes> {
        match self.backend.get(&self.store.backend_key(key), 0).await {
            Ok(response) => response.kv.map(|kv| kv.value),
            Err(e) => panic!("raw get {key} failed: {e}"),
        }
    }

    /// Writes raw bytes at a store key directly in the backend (e.g. undecodable data).
    pub async fn write_raw(&self, key: &str, value: &'static [u8]) -> Revision {
        let backend_key = self.store.backend_key(key);
        let current = match self.backend.get(&backend_key, 0).await {
            Ok(response) => response.kv.map_or(0, |kv| kv.mod_revision),
            Err(e) => panic!("raw get {key} failed: {e}"),
        };
        match self.backend.put(&backend_key, Bytes::from_static(value), current, None).await {
            Ok(TxnOutcome::Succeeded { revision }) => revision,
            other => panic!("raw write {key} failed: {other:?}"),
        }
    }

    /// Number of keys under the store's prefix, read from the backend directly.
    pub async fn raw_count(&self) -> u64 {
        let mut request = RangeRequest::prefix(&self.store.backend_key("/pods/"));
        request.count_only = true;
        match self.backend.range(request).await {
            Ok(response) => response.count,
            Err(e) => panic!("raw count failed: {e}"),
        }
    }

    /// Starts a watch, panicking on error.
    pub async fn watch(&self, key: &str, options: ListOptions) -> WatchStream {
        match self.storage.watch(key, options.clone()).await {
            Ok(stream) => stream,
            Err(e) => panic!("watch {key} with {options:?} failed: {e}"),
        }
    }
}

/// Runs an async storage call from inside a synchronous callback (`UpdateFn`,
/// `ValidateDeletion`), as Kubernetes' tests do to inject a racing write. Needs the
/// multi-threaded runtime the suite runs on.
pub fn run_blocking<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

/// A predicate with a label selector.
pub fn label_predicate(selector: &str) -> Predicate {
    match crate::selector::LabelSelector::parse(selector) {
        Ok(label) => Predicate { label, ..Predicate::default() },
        Err(e) => panic!("bad fixture label selector {selector:?}: {e}"),
    }
}

/// A predicate with a field selector.
pub fn field_predicate(selector: &str) -> Predicate {
    match crate::selector::FieldSelector::parse(selector) {
        Ok(field) => Predicate { field, ..Predicate::default() },
        Err(e) => panic!("bad fixture field selector {selector:?}: {e}"),
    }
}

/// Creates `objects` one after another in a background task (pausing `pause` between
/// creates), as a concurrent writer for watch behaviours; the task panics if a create fails.
pub fn spawn_creates(storage: Arc<dyn Storage>, objects: Vec<Object>, pause: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for object in objects {
            storage.create(&key_of(&object), object, 0).await.expect("create");
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    })
}

/// The next watch event; fails the behaviour after [`EVENT_TIMEOUT`] or when the stream ended.
pub async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("the watch ended while an event was expected"),
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
    }
}

/// The next event that is not a BOOKMARK.
pub async fn next_non_bookmark(stream: &mut WatchStream) -> WatchEvent {
    loop {
        let event = next_event(stream).await;
        if !matches!(event, WatchEvent::Bookmark(_)) {
            return event;
        }
    }
}

/// Asserts that no event (other than bookmarks, when `ignore_bookmarks`) arrives within
/// [`QUIET_PERIOD`].
pub async fn expect_no_event(stream: &mut WatchStream, ignore_bookmarks: bool) {
    let deadline = tokio::time::Instant::now() + QUIET_PERIOD;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return,
            Ok(None) => panic!("the watch ended unexpectedly"),
            Ok(Some(WatchEvent::Bookmark(_))) if ignore_bookmarks => {}
            Ok(Some(event)) => panic!("unexpected watch event {}: {event:?}", event.type_name()),
        }
    }
}

/// Asserts the event is `expected_type` carrying exactly `expected` (compared as stored
/// objects: same content and resourceVersion).
pub fn assert_event(event: &WatchEvent, expected_type: &str, expected: &Object) {
    assert_eq!(event.type_name(), expected_type, "event {event:?}");
    assert_eq!(event.object(), Some(expected), "object of the {expected_type} event");
}

/// Asserts the stream has ended (after `stop()` or an error), draining buffered events.
pub async fn expect_closed(stream: &mut WatchStream) {
    loop {
        match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
            Ok(None) => return,
            Ok(Some(WatchEvent::Error(e))) => panic!("unexpected error event before close: {e}"),
            Ok(Some(_)) => {}
            Err(_) => panic!("the watch did not close within {EVENT_TIMEOUT:?}"),
        }
    }
}

/// Unwraps an expected error, failing the behaviour when the call succeeded.
pub fn expect_err<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) -> Error {
    match result {
        Ok(value) => panic!("{what}: expected an error, got {value:?}"),
        Err(e) => e,
    }
}

/// A test [`Transformer`](crate::transformer::Transformer) like Kubernetes' `PrefixTransformer`:
/// writes `write` + data; reads data carrying any of `read` (stale unless it is `write`); fails
/// on anything else. Records the authenticated data it was given.
#[derive(Debug)]
pub struct PrefixTransformer {
    /// Prefix of every value written.
    pub write: Vec<u8>,
    /// Prefixes accepted on read (the first match wins).
    pub read: Vec<Vec<u8>>,
    /// Authenticated data of every call, in order.
    pub seen_authenticated_data: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl PrefixTransformer {
    /// Writes `write`, reads `write` and every prefix of `also_read`.
    pub fn new(write: &str, also_read: &[&str]) -> Arc<Self> {
        let mut read = vec![write.as_bytes().to_vec()];
        read.extend(also_read.iter().map(|p| p.as_bytes().to_vec()));
        Arc::new(PrefixTransformer {
            write: write.as_bytes().to_vec(),
            read,
            seen_authenticated_data: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn record(&self, authenticated_data: &[u8]) {
        self.seen_authenticated_data.lock().unwrap_or_else(|e| e.into_inner()).push(authenticated_data.to_vec());
    }
}

impl crate::transformer::Transformer for PrefixTransformer {
    fn transform_from_storage<'a>(
        &self,
        data: &'a [u8],
        authenticated_data: &[u8],
    ) -> crate::Result<(std::borrow::Cow<'a, [u8]>, bool)> {
        self.record(authenticated_data);
        for prefix in &self.read {
            if let Some(rest) = data.strip_prefix(prefix.as_slice()) {
                return Ok((std::borrow::Cow::Borrowed(rest), *prefix != self.write));
            }
        }
        Err(Error::internal("the value carries no known prefix"))
    }

    fn transform_to_storage(&self, data: Bytes, authenticated_data: &[u8]) -> crate::Result<Bytes> {
        self.record(authenticated_data);
        let mut out = self.write.clone();
        out.extend_from_slice(&data);
        Ok(Bytes::from(out))
    }
}
