//! The cached state: objects by key as encoded bytes, the equality label index, the bounded
//! event history, snapshots of past revisions, readiness, memory accounting and the registered
//! watchers (Kubernetes `watchCache`, `watch_cache_history.go`, `ready.go`, KEP-4988 snapshots).
//!
//! Everything lives behind one `std::sync::Mutex` that is never held across an `.await`. The
//! objects are a persistent B-tree ([`imbl::OrdMap`]): a reader clones it in O(1) under the
//! lock and iterates outside it; the state at any revision between the history's floor and the
//! cache's revision is rebuilt from the current tree by undoing the newer events.

use std::collections::{HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::encoded::{DerivedMeter, EncodedObject};
use crate::error::{Error, Result};
use crate::kv::Revision;
use crate::object::Object;
use crate::storage::Predicate;

/// A store key (`/pods/ns/name`), shared by the tree, the index and the history.
pub(crate) type Key = Arc<str>;

/// The objects of one revision: a persistent B-tree by key.
pub(crate) type Objects = imbl::OrdMap<Key, CachedObject>;

/// Per-object bookkeeping counted besides the bytes (the tree entry, the `Arc`s, the key, the
/// derived values' meter handle).
pub(crate) const OBJECT_OVERHEAD: usize = 120;

/// How many rebuilt snapshots of past revisions are kept for paging and Exact lists.
const SNAPSHOTS: usize = 8;

/// One cached object: its encoded bytes and the fields the cache filters on (its labels, kept
/// by [`EncodedObject`]). Held in the tree as it is, no box of its own: a list reaches an
/// item's bytes through one pointer. Cloning shares it (one reference count).
#[derive(Clone, Debug)]
pub(crate) struct CachedObject {
    /// The object as JSON, its resourceVersion set.
    pub(crate) encoded: EncodedObject,
}

impl CachedObject {
    /// Encodes `object`. Errors: as [`EncodedObject::encode`].
    pub(crate) fn new(object: &Object) -> Result<Self> {
        Ok(CachedObject { encoded: EncodedObject::encode(object)? })
    }

    /// Like [`CachedObject::new`], the object encoded inside the JSON watch event line of
    /// `type_name` ([`EncodedObject::encode_in_watch_line`]): a change's object, framed once for
    /// every watcher that gets it as that type. Errors: as [`EncodedObject::encode`].
    pub(crate) fn in_watch_line(object: &Object, type_name: &'static str) -> Result<Self> {
        Ok(CachedObject { encoded: EncodedObject::encode_in_watch_line(object, type_name)? })
    }

    /// The value of label `key`.
    pub(crate) fn label(&self, key: &str) -> Option<&str> {
        self.encoded.label(key)
    }

    /// Bytes this object costs the cache (estimate: its buffer with the labels, key and bookkeeping).
    pub(crate) fn size(&self, key: &str) -> usize {
        self.encoded.encoded_len() + key.len() + OBJECT_OVERHEAD
    }
}

/// A predicate evaluated on cached objects: labels from the index fields, name and namespace
/// from the key, other fields by decoding the bytes (only when the selector has such fields).
#[derive(Clone, Debug)]
pub(crate) struct Matcher {
    predicate: Predicate,
    /// Length of the resource directory (`/pods/`) at the start of every key.
    dir_len: usize,
    /// The field selector names a field other than `metadata.name` / `metadata.namespace`.
    decode: bool,
}

impl Matcher {
    /// A matcher of `predicate` for keys under a resource directory of `dir_len` bytes.
    pub(crate) fn new(predicate: &Predicate, dir_len: usize) -> Self {
        let decode = predicate
            .field
            .requirements
            .iter()
            .any(|r| !matches!(r.field.as_str(), "metadata.name" | "metadata.namespace"));
        Matcher { predicate: predicate.clone(), dir_len, decode }
    }

    /// True when `object` at `key` satisfies both selectors.
    pub(crate) fn matches(&self, key: &str, object: &CachedObject) -> bool {
        if self.predicate.is_empty() {
            return true;
        }
        if !self.predicate.label.matches_with(|k| object.label(k)) {
            return false;
        }
        if self.predicate.field.is_empty() {
            return true;
        }
        if self.decode {
            return object.encoded.decode().is_ok_and(|decoded| self.predicate.field.matches(&decoded));
        }
        let relative = key.get(self.dir_len..).unwrap_or_default();
        let (namespace, name) = relative.split_once('/').unwrap_or(("", relative));
        self.predicate.field.requirements.iter().all(|r| {
            let actual = if r.field == "metadata.name" { name } else { namespace };
            (actual == r.value) != r.negate
        })
    }
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// Created or updated.
    Put,
    /// Deleted.
    Delete,
}

/// One change in the history (Kubernetes `watchCacheEvent`), encoded once for every watcher.
#[derive(Debug)]
pub(crate) struct CachedEvent {
    /// The revision of the change.
    pub(crate) revision: Revision,
    /// The store key (`/pods/ns/name`).
    pub(crate) key: Key,
    /// Put or delete.
    pub(crate) kind: EventKind,
    /// Put: the new object. Delete: the deleted object with the delete revision.
    pub(crate) object: CachedObject,
    /// The object before the change (its own RV), None for a create.
    pub(crate) prev: Option<CachedObject>,
    /// `prev` with this event's revision: the DELETED event of a watcher whose selector an
    /// update left, encoded at most once.
    prev_deleted: OnceLock<Option<EncodedObject>>,
    /// When the cache recorded it (for the dynamic history capacity).
    pub(crate) recorded: Instant,
}

impl CachedEvent {
    /// A change of `key` at `revision`.
    pub(crate) fn new(
        revision: Revision,
        key: Key,
        kind: EventKind,
        object: CachedObject,
        prev: Option<CachedObject>,
    ) -> Self {
        CachedEvent { revision, key, kind, object, prev, prev_deleted: OnceLock::new(), recorded: Instant::now() }
    }

    /// The previous object at this event's revision (None without a previous object or when
    /// it cannot be re-encoded).
    pub(crate) fn prev_deleted(&self) -> Option<&EncodedObject> {
        self.prev_deleted
            .get_or_init(|| {
                let mut old = self.prev.as_ref()?.encoded.decode().ok()?;
                old.metadata.resource_version = crate::version::format_resource_version(self.revision);
                EncodedObject::encode_in_watch_line(&old, "DELETED").ok()
            })
            .as_ref()
    }
}

/// What the dispatcher hands a watcher.
#[derive(Clone, Debug)]
pub(crate) enum Dispatch {
    /// A change.
    Event(Arc<CachedEvent>),
    /// A periodic bookmark at this revision.
    Bookmark(Revision),
}

/// The registry entry of one watcher: dropping it (and with it the queue's sender) terminates
/// the watcher once it has read what is queued.
#[derive(Debug)]
pub(crate) struct WatcherHandle {
    /// The prepared watch key.
    pub(crate) key: String,
    /// The key is a directory.
    pub(crate) recursive: bool,
    /// Periodic bookmarks wanted.
    pub(crate) bookmarks: bool,
    /// When the next periodic bookmark is due.
    pub(crate) next_bookmark: Instant,
    /// The watcher's input queue.
    pub(crate) input: mpsc::Sender<Dispatch>,
}

impl WatcherHandle {
    /// True when a change of `key` is in this watcher's scope.
    pub(crate) fn wants(&self, key: &str) -> bool {
        in_scope(key, &self.key, self.recursive)
    }
}

/// Bounds of the event history.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HistoryBounds {
    pub(crate) min: usize,
    pub(crate) max: usize,
    pub(crate) window: Duration,
}

/// Equality label index: label key → value → the keys carrying it.
#[derive(Debug, Default)]
pub(crate) struct LabelIndex {
    entries: HashMap<Box<str>, HashMap<Box<str>, imbl::OrdSet<Key>>>,
}

impl LabelIndex {
    fn insert(&mut self, key: &Key, object: &CachedObject) {
        for (label, value) in object.encoded.labels() {
            if !self.entries.contains_key(label) {
                self.entries.insert(label.into(), HashMap::new());
            }
            let Some(values) = self.entries.get_mut(label) else { continue };
            if !values.contains_key(value) {
                values.insert(value.into(), imbl::OrdSet::new());
            }
            if let Some(keys) = values.get_mut(value) {
                keys.insert(key.clone());
            }
        }
    }

    fn remove(&mut self, key: &Key, object: &CachedObject) {
        for (label, value) in object.encoded.labels() {
            if let Some(values) = self.entries.get_mut(label) {
                if let Some(keys) = values.get_mut(value) {
                    keys.remove(key);
                    if keys.is_empty() {
                        values.remove(value);
                    }
                }
                if values.is_empty() {
                    self.entries.remove(label);
                }
            }
        }
    }

    /// The keys with `label=value` (an O(1) snapshot), empty when none.
    pub(crate) fn keys(&self, label: &str, value: &str) -> imbl::OrdSet<Key> {
        self.entries.get(label).and_then(|values| values.get(value)).cloned().unwrap_or_default()
    }
}

/// The mutable state of a cacher.
#[derive(Debug)]
pub(crate) struct CacheState {
    /// The first list after the last (re)start completed and the watch runs.
    pub(crate) ready: bool,
    /// The cacher was stopped.
    pub(crate) stopped: bool,
    /// Over its memory budget: the cache holds nothing and every request goes to the inner
    /// storage until the resource fits again.
    pub(crate) bypassed: bool,
    /// Incremented on every (re)list.
    pub(crate) generation: u64,
    /// List attempts finished (successful or not): lets callers wait for the first one.
    pub(crate) attempts: u64,
    /// Why the cache is not ready (the last reflector error).
    pub(crate) last_error: Option<String>,
    /// Every change up to this revision is applied (events and progress notifications).
    pub(crate) revision: Revision,
    /// Objects by store key.
    pub(crate) objects: Objects,
    /// Equality label index over `objects`.
    pub(crate) labels: LabelIndex,
    /// Estimated bytes held by `objects` ([`CachedObject::size`]), without their derived
    /// values (those are counted in `meter`).
    pub(crate) bytes: usize,
    /// Where the derived values kept with `objects` are counted (every object in `objects` is
    /// attached to it, none other); its held bytes are `bytes`.
    pub(crate) meter: Arc<DerivedMeter>,
    /// Changes after `floor`, oldest first.
    pub(crate) history: VecDeque<Arc<CachedEvent>>,
    /// Current history capacity (between the bounds; grows while events are young).
    pub(crate) capacity: usize,
    /// A watch from a revision ≥ `floor` can be served from the history; below → 410.
    pub(crate) floor: Revision,
    /// Rebuilt snapshots of past revisions, most recently used last.
    snapshots: VecDeque<(Revision, Objects)>,
    /// Registered watchers by id.
    pub(crate) watchers: HashMap<u64, WatcherHandle>,
    /// Next watcher id.
    pub(crate) next_watcher: u64,
}

impl CacheState {
    pub(crate) fn new(bounds: HistoryBounds) -> Self {
        CacheState {
            ready: false,
            stopped: false,
            bypassed: false,
            generation: 0,
            attempts: 0,
            last_error: None,
            revision: 0,
            objects: Objects::new(),
            labels: LabelIndex::default(),
            bytes: 0,
            meter: DerivedMeter::new(None),
            history: VecDeque::new(),
            capacity: bounds.min,
            floor: 0,
            snapshots: VecDeque::new(),
            watchers: HashMap::new(),
            next_watcher: 0,
        }
    }

    /// The 429 a request gets while the cache is not ready.
    pub(crate) fn not_ready_error(&self) -> Error {
        let message = if self.stopped {
            "apiserver cacher is stopped".to_owned()
        } else {
            match &self.last_error {
                Some(error) => format!("storage is (re)initializing: {error}"),
                None => "storage is (re)initializing".to_owned(),
            }
        };
        Error::NotReady { message, retry_after_seconds: 1 }
    }

    /// Replaces the whole state after a list at `revision` (Kubernetes `Replace`): the history
    /// restarts empty, the cache becomes ready.
    pub(crate) fn replace(&mut self, objects: Objects, revision: Revision, bounds: HistoryBounds) {
        self.labels = LabelIndex::default();
        self.bytes = 0;
        self.release_objects();
        for (key, object) in objects.iter() {
            self.labels.insert(key, object);
            self.bytes += object.size(key);
            object.encoded.attach_meter(&self.meter);
        }
        self.meter.set_held(self.bytes);
        self.objects = objects;
        self.revision = revision;
        self.history.clear();
        self.snapshots.clear();
        self.capacity = bounds.min;
        self.floor = revision;
        self.generation += 1;
        self.attempts += 1;
        self.ready = true;
        self.bypassed = false;
        self.last_error = None;
    }

    /// Marks the cache not ready after a reflector error and terminates every watcher.
    pub(crate) fn fail(&mut self, error: &Error) {
        self.ready = false;
        self.attempts += 1;
        self.last_error = Some(error.to_string());
        self.watchers.clear();
    }

    /// Sheds everything (over the memory budget): requests go to the inner storage, watchers
    /// are terminated (their clients re-watch there).
    pub(crate) fn bypass(&mut self) {
        self.bypassed = true;
        self.ready = false;
        self.release_objects();
        self.objects = Objects::new();
        self.labels = LabelIndex::default();
        self.bytes = 0;
        self.meter.set_held(0);
        self.history.clear();
        self.snapshots.clear();
        self.watchers.clear();
    }

    /// Stops counting the derived values of every object held (before they are let go).
    fn release_objects(&mut self) {
        for object in self.objects.values() {
            object.encoded.detach_meter();
        }
    }

    /// Estimated bytes held: the objects' and their derived values'.
    pub(crate) fn total_bytes(&self) -> usize {
        self.bytes.saturating_add(self.meter.derived_bytes())
    }

    /// Drops what can be rebuilt on demand (the snapshots of past revisions).
    pub(crate) fn shed_snapshots(&mut self) {
        self.snapshots.clear();
    }

    /// Applies one change and appends it to the history. Returns None (and changes nothing)
    /// for a revision not after the cache's (a duplicate).
    pub(crate) fn apply(
        &mut self,
        kind: EventKind,
        key: Key,
        object: CachedObject,
        revision: Revision,
        bounds: HistoryBounds,
    ) -> Option<Arc<CachedEvent>> {
        if revision <= self.revision {
            return None;
        }
        let prev = match kind {
            EventKind::Put => {
                self.labels.insert(&key, &object);
                self.bytes += object.size(&key);
                object.encoded.attach_meter(&self.meter);
                self.objects.insert(key.clone(), object.clone())
            }
            EventKind::Delete => self.objects.remove(&key),
        };
        if let Some(prev) = &prev {
            prev.encoded.detach_meter();
            self.bytes = self.bytes.saturating_sub(prev.size(&key));
            self.labels.remove(&key, prev);
            if kind == EventKind::Put {
                // Labels the new object shares with the old one were just removed: re-add.
                self.labels.insert(&key, &object);
            }
        }
        self.meter.set_held(self.bytes);
        let event = Arc::new(CachedEvent::new(revision, key, kind, object, prev));
        self.make_room(bounds);
        self.history.push_back(event.clone());
        self.revision = revision;
        Some(event)
    }

    /// Kubernetes' dynamic capacity: a full history doubles (up to `max`) while its oldest
    /// event is younger than the window; otherwise the oldest event is evicted.
    fn make_room(&mut self, bounds: HistoryBounds) {
        if self.history.len() < self.capacity {
            return;
        }
        let young = self.history.front().is_some_and(|oldest| oldest.recorded.elapsed() < bounds.window);
        if young && self.capacity < bounds.max {
            self.capacity = (self.capacity * 2).min(bounds.max);
            return;
        }
        while self.history.len() >= self.capacity {
            match self.history.pop_front() {
                Some(evicted) => self.floor = self.floor.max(evicted.revision),
                None => break,
            }
        }
        self.snapshots.retain(|(revision, _)| *revision >= self.floor);
    }

    /// Progress: every change up to `revision` has been seen.
    pub(crate) fn advance(&mut self, revision: Revision) -> bool {
        if revision > self.revision {
            self.revision = revision;
            true
        } else {
            false
        }
    }

    /// Drops history at or below `revision` (compaction of the cache's history).
    pub(crate) fn compact(&mut self, revision: Revision) {
        while self.history.front().is_some_and(|e| e.revision <= revision) {
            self.history.pop_front();
        }
        self.floor = self.floor.max(revision);
        self.snapshots.retain(|(snapshot, _)| *snapshot >= revision);
    }

    /// The changes after `after` within a watch scope, or 410 when `after` is older than the
    /// history (Kubernetes `GetIntervalLocked`, "too old resource version").
    pub(crate) fn events_after(&self, after: Revision, key: &str, recursive: bool) -> Result<Vec<Arc<CachedEvent>>> {
        if after < self.floor {
            return Err(Error::Expired {
                message: format!("too old resource version: {after} ({})", self.floor),
                continue_token: None,
            });
        }
        let start = self.history.partition_point(|e| e.revision <= after);
        Ok(self.history.range(start..).filter(|e| in_scope(&e.key, key, recursive)).cloned().collect())
    }

    /// The objects as they were at `revision` (KEP-4988): the current tree for the cache's
    /// revision, else rebuilt by undoing the newer history events and kept among the last
    /// [`SNAPSHOTS`] rebuilt ones. None below the floor or above the cache's revision.
    pub(crate) fn snapshot_at(&mut self, revision: Revision) -> Option<Objects> {
        if revision < self.floor || revision > self.revision {
            return None;
        }
        let newest = self.history.back().map_or(0, |e| e.revision);
        if revision >= newest {
            return Some(self.objects.clone());
        }
        if let Some(position) = self.snapshots.iter().position(|(r, _)| *r == revision) {
            let entry = self.snapshots.remove(position)?;
            let objects = entry.1.clone();
            self.snapshots.push_back(entry);
            return Some(objects);
        }
        let mut objects = self.objects.clone();
        for event in self.history.iter().rev().take_while(|e| e.revision > revision) {
            match &event.prev {
                Some(prev) => objects.insert(event.key.clone(), prev.clone()),
                None => objects.remove(&event.key),
            };
        }
        if self.snapshots.len() >= SNAPSHOTS {
            self.snapshots.pop_front();
        }
        self.snapshots.push_back((revision, objects.clone()));
        Some(objects)
    }
}

/// The objects of `objects` in scope (a directory when `recursive`), from `start` on, in key
/// order.
pub(crate) fn scope<'a>(
    objects: &'a Objects,
    key: &'a str,
    recursive: bool,
    start: Option<&'a str>,
) -> Box<dyn Iterator<Item = (&'a Key, &'a CachedObject)> + 'a> {
    if !recursive {
        return Box::new(objects.get_key_value(key).into_iter());
    }
    let from = start.filter(|s| *s > key).unwrap_or(key);
    match prefix_end(key) {
        // Bounded at both ends: the tree's cursors find the ends, no key is compared (or
        // touched in memory) per item.
        Some(end) => Box::new(objects.range::<_, str>((Bound::Included(from), Bound::Excluded(end.as_str())))),
        None => Box::new(
            objects
                .range::<_, str>((Bound::Included(from), Bound::Unbounded))
                .take_while(move |(k, _)| k.starts_with(key)),
        ),
    }
}

/// The smallest key above every key that starts with `prefix` (etcd's prefix range end), when
/// its last character is ASCII below DEL (a directory's `/` always is); None otherwise.
fn prefix_end(prefix: &str) -> Option<String> {
    let last = *prefix.as_bytes().last()?;
    if last >= 0x7f {
        return None;
    }
    let mut end = prefix[..prefix.len() - 1].to_owned();
    end.push(char::from(last + 1));
    Some(end)
}

/// True when `event_key` is within the scope of a list or watch of `key`.
pub(crate) fn in_scope(event_key: &str, key: &str, recursive: bool) -> bool {
    if recursive {
        event_key.starts_with(key)
    } else {
        event_key == key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(min: usize, max: usize) -> HistoryBounds {
        HistoryBounds { min, max, window: Duration::from_secs(3600) }
    }

    fn pod(name: &str, rv: Revision) -> CachedObject {
        let mut object = Object::new("v1", "Pod", "ns", name);
        object.metadata.resource_version = rv.to_string();
        CachedObject::new(&object).expect("encode")
    }

    fn key(name: &str) -> Key {
        format!("/pods/ns/{name}").into()
    }

    #[test]
    fn history_grows_while_young_then_evicts_and_reports_too_old() {
        let bounds = bounds(2, 4);
        let mut state = CacheState::new(bounds);
        state.replace(Objects::new(), 10, bounds);
        for rv in 11..=16 {
            assert!(state.apply(EventKind::Put, key(&format!("p{rv}")), pod("p", rv), rv, bounds).is_some());
        }
        assert_eq!(state.capacity, 4, "capacity doubles up to the maximum");
        assert_eq!(state.history.len(), 4);
        assert_eq!(state.floor, 12, "the last evicted revision is the floor");
        assert!(state.events_after(11, "/pods/", true).is_err_and(|e| e.code() == 410));
        let replay = state.events_after(12, "/pods/", true).expect("replay");
        assert_eq!(replay.iter().map(|e| e.revision).collect::<Vec<_>>(), vec![13, 14, 15, 16]);
        assert!(state.apply(EventKind::Put, key("x"), pod("x", 16), 16, bounds).is_none(), "duplicate");
    }

    #[test]
    fn puts_remember_the_previous_object_deletes_remove_and_bytes_are_counted() {
        let bounds = bounds(100, 100);
        let mut state = CacheState::new(bounds);
        state.replace(Objects::new(), 1, bounds);
        state.apply(EventKind::Put, key("a"), pod("a", 2), 2, bounds);
        let one = state.bytes;
        assert!(one > 0);
        let update = state.apply(EventKind::Put, key("a"), pod("a", 3), 3, bounds);
        assert!(update.expect("applied").prev.is_some());
        assert_eq!(state.bytes, one, "an update replaces the object's bytes");
        state.apply(EventKind::Delete, key("a"), pod("a", 4), 4, bounds);
        assert!(state.objects.is_empty());
        assert_eq!(state.bytes, 0);
        assert_eq!(scope(&state.objects, "/pods/", true, None).count(), 0);
        assert_eq!(state.revision, 4);
    }

    #[test]
    fn a_scope_holds_exactly_the_keys_under_its_prefix() {
        let mut objects = Objects::new();
        let object = pod("x", 2);
        for k in
            ["/pods", "/pods.", "/pods/", "/pods/a", "/pods/a/x", "/pods/a0", "/pods/b/y", "/pods0", "/pods~", "/q"]
        {
            objects.insert(Key::from(k), object.clone());
        }
        let keys = |key: &str, start: Option<&str>| {
            scope(&objects, key, true, start).map(|(k, _)| k.to_string()).collect::<Vec<_>>()
        };
        assert_eq!(keys("/pods/", None), ["/pods/", "/pods/a", "/pods/a/x", "/pods/a0", "/pods/b/y"]);
        assert_eq!(keys("/pods/a/", None), ["/pods/a/x"]);
        assert_eq!(keys("/pods/", Some("/pods/a0")), ["/pods/a0", "/pods/b/y"], "from a continue key");
        assert_eq!(
            keys("/pods", None),
            ["/pods", "/pods.", "/pods/", "/pods/a", "/pods/a/x", "/pods/a0", "/pods/b/y", "/pods0", "/pods~"]
        );
        assert_eq!(keys("/pods~", None), ["/pods~"], "`~` + 1 is DEL, still ASCII");
        assert_eq!(prefix_end("/pods/").as_deref(), Some("/pods0"));
        assert_eq!(prefix_end("/a\u{7f}"), None, "no ASCII above DEL: the scope compares keys");
        assert_eq!(prefix_end("/é"), None);
        assert_eq!(prefix_end(""), None);
        assert_eq!(scope(&objects, "/pods/a/x", false, None).count(), 1, "a single key");
    }

    #[test]
    fn snapshots_rebuild_past_revisions_and_the_label_index_follows_updates() {
        let bounds = bounds(100, 100);
        let mut state = CacheState::new(bounds);
        state.replace(Objects::new(), 1, bounds);
        let labelled = |name: &str, rv: Revision, app: &str| {
            let mut object = Object::new("v1", "Pod", "ns", name).with_label("app", app);
            object.metadata.resource_version = rv.to_string();
            CachedObject::new(&object).expect("encode")
        };
        state.apply(EventKind::Put, key("a"), labelled("a", 2, "x"), 2, bounds);
        state.apply(EventKind::Put, key("b"), labelled("b", 3, "x"), 3, bounds);
        state.apply(EventKind::Put, key("a"), labelled("a", 4, "y"), 4, bounds);
        state.apply(EventKind::Delete, key("b"), labelled("b", 5, "x"), 5, bounds);
        assert!(state.labels.keys("app", "x").is_empty(), "b deleted, a relabelled");
        assert_eq!(state.labels.keys("app", "y").len(), 1);
        let revisions = |objects: &Objects| objects.values().map(|o| o.encoded.revision()).collect::<Vec<_>>();
        assert_eq!(revisions(&state.snapshot_at(5).expect("current")), vec![4]);
        assert_eq!(revisions(&state.snapshot_at(3).expect("at 3")), vec![2, 3]);
        assert_eq!(revisions(&state.snapshot_at(2).expect("at 2")), vec![2]);
        assert_eq!(revisions(&state.snapshot_at(1).expect("at 1")), Vec::<Revision>::new());
        assert!(state.snapshot_at(6).is_none(), "the future");
        state.compact(3);
        assert!(state.snapshot_at(2).is_none(), "below the floor");
        assert_eq!(revisions(&state.snapshot_at(3).expect("at the floor")), vec![2, 3]);
    }
}
