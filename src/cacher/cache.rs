//! The cached state: objects by key, the bounded event history, readiness, and the
//! registered watchers (Kubernetes `watchCache`, `watch_cache_history.go`, `ready.go`).
//!
//! Everything lives behind one `std::sync::Mutex` that is never held across an `.await`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::kv::Revision;
use crate::object::Object;

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// Created or updated.
    Put,
    /// Deleted.
    Delete,
}

/// One change in the history (Kubernetes `watchCacheEvent`).
#[derive(Debug)]
pub(crate) struct CachedEvent {
    /// The revision of the change.
    pub(crate) revision: Revision,
    /// The store key (`/pods/ns/name`).
    pub(crate) key: String,
    /// Put or delete.
    pub(crate) kind: EventKind,
    /// Put: the new object. Delete: the deleted object with the delete revision.
    pub(crate) object: Arc<Object>,
    /// Put: the object before the change (its own RV), None for a create.
    pub(crate) prev: Option<Arc<Object>>,
    /// When the cache recorded it (for the dynamic history capacity).
    pub(crate) recorded: Instant,
}

/// What the dispatcher hands a watcher.
#[derive(Clone, Debug)]
pub(crate) enum Dispatch {
    /// A change.
    Event(Arc<CachedEvent>),
    /// A periodic bookmark at this revision.
    Bookmark(Revision),
}

/// The registry entry of one watcher: dropping it terminates the watcher.
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
    /// Dropped to terminate the watcher.
    pub(crate) _terminate: oneshot::Sender<()>,
}

impl WatcherHandle {
    /// True when a change of `key` is in this watcher's scope.
    pub(crate) fn wants(&self, key: &str) -> bool {
        if self.recursive {
            key.starts_with(&self.key)
        } else {
            key == self.key
        }
    }
}

/// Bounds of the event history.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HistoryBounds {
    pub(crate) min: usize,
    pub(crate) max: usize,
    pub(crate) window: Duration,
}

/// The mutable state of a cacher.
#[derive(Debug)]
pub(crate) struct CacheState {
    /// The first list after the last (re)start completed and the watch runs.
    pub(crate) ready: bool,
    /// The cacher was stopped.
    pub(crate) stopped: bool,
    /// Incremented on every (re)list.
    pub(crate) generation: u64,
    /// List attempts finished (successful or not): lets callers wait for the first one.
    pub(crate) attempts: u64,
    /// Why the cache is not ready (the last reflector error).
    pub(crate) last_error: Option<String>,
    /// Every change up to this revision is applied (events and progress notifications).
    pub(crate) revision: Revision,
    /// Objects by store key.
    pub(crate) objects: BTreeMap<String, Arc<Object>>,
    /// Changes after `floor`, oldest first.
    pub(crate) history: VecDeque<Arc<CachedEvent>>,
    /// Current history capacity (between the bounds; grows while events are young).
    pub(crate) capacity: usize,
    /// A watch from a revision ≥ `floor` can be served from the history; below → 410.
    pub(crate) floor: Revision,
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
            generation: 0,
            attempts: 0,
            last_error: None,
            revision: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            capacity: bounds.min,
            floor: 0,
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
    pub(crate) fn replace(
        &mut self,
        objects: BTreeMap<String, Arc<Object>>,
        revision: Revision,
        bounds: HistoryBounds,
    ) {
        self.objects = objects;
        self.revision = revision;
        self.history.clear();
        self.capacity = bounds.min;
        self.floor = revision;
        self.generation += 1;
        self.attempts += 1;
        self.ready = true;
        self.last_error = None;
    }

    /// Marks the cache not ready after a reflector error and terminates every watcher.
    pub(crate) fn fail(&mut self, error: &Error) {
        self.ready = false;
        self.attempts += 1;
        self.last_error = Some(error.to_string());
        self.watchers.clear();
    }

    /// Applies one change and appends it to the history. Returns None (and changes nothing)
    /// for a revision not after the cache's (a duplicate).
    pub(crate) fn apply(
        &mut self,
        kind: EventKind,
        key: String,
        object: Object,
        revision: Revision,
        bounds: HistoryBounds,
    ) -> Option<Arc<CachedEvent>> {
        if revision <= self.revision {
            return None;
        }
        let object = Arc::new(object);
        let prev = match kind {
            EventKind::Put => self.objects.insert(key.clone(), object.clone()),
            EventKind::Delete => self.objects.remove(&key),
        };
        let event = Arc::new(CachedEvent {
            revision,
            key,
            kind,
            object,
            prev: if kind == EventKind::Put { prev } else { None },
            recorded: Instant::now(),
        });
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

    /// The cached objects in scope, in key order.
    pub(crate) fn objects_in_scope(&self, key: &str, recursive: bool) -> Vec<(String, Arc<Object>)> {
        if !recursive {
            return self.objects.get(key).map(|o| vec![(key.to_owned(), o.clone())]).unwrap_or_default();
        }
        self.objects
            .range::<str, _>((Bound::Included(key), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(key))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect()
    }
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

    fn pod(name: &str) -> Object {
        Object::new("v1", "Pod", "ns", name)
    }

    #[test]
    fn history_grows_while_young_then_evicts_and_reports_too_old() {
        let bounds = bounds(2, 4);
        let mut state = CacheState::new(bounds);
        state.replace(BTreeMap::new(), 10, bounds);
        for rv in 11..=16 {
            assert!(state.apply(EventKind::Put, format!("/pods/ns/p{rv}"), pod("p"), rv, bounds).is_some());
        }
        assert_eq!(state.capacity, 4, "capacity doubles up to the maximum");
        assert_eq!(state.history.len(), 4);
        assert_eq!(state.floor, 12, "the last evicted revision is the floor");
        assert!(state.events_after(11, "/pods/", true).is_err_and(|e| e.code() == 410));
        let replay = state.events_after(12, "/pods/", true).expect("replay");
        assert_eq!(replay.iter().map(|e| e.revision).collect::<Vec<_>>(), vec![13, 14, 15, 16]);
        assert!(state.apply(EventKind::Put, "/pods/ns/x".into(), pod("x"), 16, bounds).is_none(), "duplicate");
    }

    #[test]
    fn puts_remember_the_previous_object_and_deletes_remove() {
        let bounds = bounds(100, 100);
        let mut state = CacheState::new(bounds);
        state.replace(BTreeMap::new(), 1, bounds);
        state.apply(EventKind::Put, "/pods/ns/a".into(), pod("a"), 2, bounds);
        let update = state.apply(EventKind::Put, "/pods/ns/a".into(), pod("a").with_label("x", "y"), 3, bounds);
        assert!(update.expect("applied").prev.is_some());
        state.apply(EventKind::Delete, "/pods/ns/a".into(), pod("a"), 4, bounds);
        assert!(state.objects.is_empty());
        assert_eq!(state.objects_in_scope("/pods/", true).len(), 0);
        assert_eq!(state.revision, 4);
    }
}
