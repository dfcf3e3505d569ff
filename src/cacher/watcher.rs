//! One cache watcher (Kubernetes `cacheWatcher`): sends its initial events, the
//! initial-events-end bookmark, the replayed history, then live changes, filtered for its
//! predicate. Events carry the cache's encoded objects: every watcher shares the bytes of a
//! change (Kubernetes `CachingObject`), nothing is encoded per watcher but bookmarks.
//!
//! A watcher has no task of its own: it is the consumer's [`WatchStream`](crate::WatchStream)
//! ([`PolledWatch`]), and filters and converts each dispatched change when the consumer polls
//! it. The dispatcher's queue (`CacherConfig::watcher_queue`) is its only buffer; when the
//! dispatcher drops the queue's sender (the watcher was terminated: too slow, a relist, the
//! cacher stopped), the consumer reads what was queued, a gap-free prefix, and then the end.
//!
//! Ordering invariant: every change carries a revision greater than the last one this watcher
//! handled (`last`); anything at or below it is a duplicate (a change both in the replay and
//! dispatched live) and is dropped. Bookmarks are sent only when their revision is after the
//! watch's start and not below `last`, so bookmark revisions never go backwards and are ≥ every
//! event already sent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::encoded::{EncodedObject, EncodedWatchEvent};
use crate::kv::Revision;
use crate::object::Object;
use crate::storage::{PolledWatch, INITIAL_EVENTS_END_ANNOTATION};
use crate::version::format_resource_version;

use super::cache::{scope, CachedEvent, Dispatch, EventKind, Matcher, Objects};

/// What a watcher sends before its live changes.
pub(crate) struct Opening {
    /// The state whose objects in the watch scope are sent as ADDED events (filtered here).
    pub(crate) initial: Objects,
    /// Send the initial-events-end bookmark at this revision after `initial`.
    pub(crate) end_bookmark: Option<Revision>,
    /// History changes to replay (in scope, ascending).
    pub(crate) replay: Vec<Arc<CachedEvent>>,
    /// Changes at or below this revision are not sent.
    pub(crate) start: Revision,
}

/// The bookmark object: `apiVersion`/`kind` of the resource and only a resourceVersion.
pub(crate) fn bookmark_object(api_version: &str, kind: &str, revision: Revision) -> Object {
    let mut object = Object { api_version: api_version.to_owned(), kind: kind.to_owned(), ..Object::default() };
    object.metadata.resource_version = format_resource_version(revision);
    object
}

/// What a watcher is made of (see [`Watcher::new`]).
pub(crate) struct WatcherSpec {
    /// The prepared watch key and whether it is a directory.
    pub(crate) key: String,
    pub(crate) recursive: bool,
    pub(crate) matcher: Matcher,
    pub(crate) bookmarks: bool,
    pub(crate) api_version: String,
    pub(crate) kind: String,
    /// The dispatcher's queue of changes and bookmarks for this watcher.
    pub(crate) input: mpsc::Receiver<Dispatch>,
    /// Deregisters the watcher from the cache when it ends (None in unit tests).
    pub(crate) registration: Option<Registration>,
}

/// A running watcher, polled by its consumer.
pub(crate) struct Watcher {
    spec: WatcherSpec,
    /// Not yet turned into events (done at the first poll, in the consumer's task).
    opening: Option<Opening>,
    /// Events of the opening not yet read.
    ready: VecDeque<EncodedWatchEvent>,
    /// The revision of the last change or bookmark handled.
    last: Revision,
    /// Changes at or below it are not sent; bookmarks must be after it.
    start: Revision,
}

/// A watcher's entry in the cache's watcher table, removed as soon as the watcher ends
/// (its consumer dropped or stopped the stream, or it was terminated and read to its end),
/// so the table holds exactly the live watchers
/// ([`Cacher::watcher_count`](super::Cacher::watcher_count)).
pub(crate) struct Registration {
    pub(crate) shared: std::sync::Weak<super::Shared>,
    pub(crate) id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.update(|state| state.watchers.remove(&self.id));
        }
    }
}

impl Watcher {
    /// A watcher that sends `opening`, then what the dispatcher queues.
    pub(crate) fn new(spec: WatcherSpec, opening: Opening) -> Self {
        let start = opening.start;
        Watcher { spec, opening: Some(opening), ready: VecDeque::new(), last: start, start }
    }

    /// Turns the opening into events (initial objects, end bookmark, replay).
    fn open(&mut self, opening: Opening) {
        let spec = &self.spec;
        self.ready.extend(
            scope(&opening.initial, &spec.key, spec.recursive, None)
                .filter(|(key, object)| spec.matcher.matches(key, object))
                .map(|(_, object)| EncodedWatchEvent::Added(object.encoded.clone())),
        );
        drop(opening.initial);
        if let Some(revision) = opening.end_bookmark {
            let mut bookmark = bookmark_object(&self.spec.api_version, &self.spec.kind, revision);
            bookmark.metadata.annotations.insert(INITIAL_EVENTS_END_ANNOTATION.to_owned(), "true".to_owned());
            self.ready.push_back(encode_bookmark(&bookmark));
        }
        for event in opening.replay {
            if let Some(event) = self.handle(Dispatch::Event(event)) {
                self.ready.push_back(event);
            }
        }
    }

    /// The event `dispatch` is for this watcher, if any (duplicates and bookmarks it does not
    /// want are dropped).
    fn handle(&mut self, dispatch: Dispatch) -> Option<EncodedWatchEvent> {
        match dispatch {
            Dispatch::Event(event) => {
                if event.revision <= self.last {
                    return None;
                }
                self.last = event.revision;
                self.convert(&event)
            }
            Dispatch::Bookmark(revision) => {
                if self.spec.bookmarks && revision > self.start && revision >= self.last {
                    self.last = revision;
                    Some(encode_bookmark(&bookmark_object(&self.spec.api_version, &self.spec.kind, revision)))
                } else {
                    None
                }
            }
        }
    }

    /// The watch event a change is for this predicate (Kubernetes `convertToWatchEvent`).
    fn convert(&self, event: &CachedEvent) -> Option<EncodedWatchEvent> {
        let matches = |object: &super::cache::CachedObject| self.spec.matcher.matches(&event.key, object);
        match event.kind {
            EventKind::Delete => {
                matches(&event.object).then(|| EncodedWatchEvent::Deleted(event.object.encoded.clone()))
            }
            EventKind::Put => {
                let new_matches = matches(&event.object);
                let old_matches = event.prev.as_ref().is_some_and(matches);
                match (old_matches, new_matches) {
                    (true, true) => Some(EncodedWatchEvent::Modified(event.object.encoded.clone())),
                    (false, true) => Some(EncodedWatchEvent::Added(event.object.encoded.clone())),
                    (true, false) => event.prev_deleted().cloned().map(EncodedWatchEvent::Deleted),
                    (false, false) => None,
                }
            }
        }
    }

    /// Ends the watcher: deregistered, nothing more is queued for it.
    fn end(&mut self) {
        self.opening = None;
        self.spec.input.close();
        self.spec.registration = None;
    }
}

impl PolledWatch for Watcher {
    fn poll_next_encoded(&mut self, cx: &mut Context<'_>) -> Poll<Option<EncodedWatchEvent>> {
        if let Some(opening) = self.opening.take() {
            self.open(opening);
        }
        if let Some(event) = self.ready.pop_front() {
            return Poll::Ready(Some(event));
        }
        loop {
            match self.spec.input.poll_recv(cx) {
                Poll::Ready(Some(dispatch)) => {
                    if let Some(event) = self.handle(dispatch) {
                        return Poll::Ready(Some(event));
                    }
                }
                Poll::Ready(None) => {
                    self.end();
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn stop(&mut self) {
        self.end();
    }
}

/// A bookmark event; an object that cannot be encoded becomes an ERROR event.
fn encode_bookmark(bookmark: &Object) -> EncodedWatchEvent {
    match EncodedObject::encode(bookmark) {
        Ok(encoded) => EncodedWatchEvent::Bookmark(encoded),
        Err(error) => EncodedWatchEvent::Error(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cacher::cache::CachedObject;
    use crate::storage::{Predicate, WatchEvent, WatchStream};

    fn cached(object: &Object) -> CachedObject {
        CachedObject::new(object).expect("encode")
    }

    fn event(revision: Revision, name: &str, kind: EventKind, prev: Option<Object>) -> Arc<CachedEvent> {
        let mut object = Object::new("v1", "Pod", "ns", name);
        object.metadata.resource_version = revision.to_string();
        let key = format!("/pods/ns/{name}");
        Arc::new(CachedEvent::new(revision, key.into(), kind, cached(&object), prev.as_ref().map(cached)))
    }

    fn watcher(
        predicate: Predicate,
        bookmarks: bool,
        input: mpsc::Receiver<Dispatch>,
        opening: Opening,
    ) -> WatchStream {
        let spec = WatcherSpec {
            key: "/pods/".into(),
            recursive: true,
            matcher: Matcher::new(&predicate, "/pods/".len()),
            bookmarks,
            api_version: "v1".into(),
            kind: "Pod".into(),
            input,
            registration: None,
        };
        WatchStream::polled(Box::new(Watcher::new(spec, opening)))
    }

    fn rv_of(event: &WatchEvent) -> u64 {
        event.object().and_then(|o| o.resource_version().ok()).unwrap_or_default()
    }

    #[tokio::test]
    async fn duplicates_are_dropped_and_bookmarks_never_go_backwards() {
        let (input_sender, input) = mpsc::channel(16);
        // Start at 10 (e.g. a consistent list at 10); the replay holds 11 and 12.
        let opening = Opening {
            initial: Objects::unit("/pods/ns/listed".into(), cached(&Object::new("v1", "Pod", "ns", "listed"))),
            end_bookmark: Some(10),
            replay: vec![event(11, "a", EventKind::Put, None), event(12, "b", EventKind::Put, None)],
            start: 10,
        };
        let mut stream = watcher(Predicate::default(), true, input, opening);
        for dispatch in [
            Dispatch::Bookmark(9),                                    // before the start: dropped
            Dispatch::Event(event(12, "b", EventKind::Put, None)),    // already replayed: dropped
            Dispatch::Bookmark(11),                                   // below the last event: dropped
            Dispatch::Event(event(13, "a", EventKind::Delete, None)), // delivered
            Dispatch::Bookmark(13),                                   // delivered
            Dispatch::Event(event(10, "c", EventKind::Put, None)),    // at the start: dropped
            Dispatch::Bookmark(15),                                   // delivered
        ] {
            input_sender.send(dispatch).await.expect("queue");
        }
        // The queue's sender dropped (the watcher terminated): what was queued is read, then the end.
        drop(input_sender);
        let mut seen = Vec::new();
        while let Some(event) = stream.next().await {
            seen.push((event.type_name(), rv_of(&event)));
        }
        assert_eq!(
            seen,
            [
                ("ADDED", 0),
                ("BOOKMARK", 10),
                ("ADDED", 11),
                ("ADDED", 12),
                ("DELETED", 13),
                ("BOOKMARK", 13),
                ("BOOKMARK", 15)
            ]
        );
    }

    #[tokio::test]
    async fn an_update_out_of_the_selector_is_deleted_with_the_event_revision() {
        let (input_sender, input) = mpsc::channel(4);
        let predicate = Predicate {
            label: crate::selector::LabelSelector::parse("app=x").expect("selector"),
            ..Predicate::default()
        };
        let opening = Opening { initial: Objects::new(), end_bookmark: None, replay: vec![], start: 1 };
        let mut stream = watcher(predicate, false, input, opening);
        let mut before = Object::new("v1", "Pod", "ns", "a").with_label("app", "x");
        before.metadata.resource_version = "4".into();
        input_sender.send(Dispatch::Event(event(5, "a", EventKind::Put, Some(before)))).await.expect("queue");
        input_sender.send(Dispatch::Bookmark(6)).await.expect("queue");
        drop(input_sender);
        let deleted = stream.next().await.expect("one event");
        assert_eq!(deleted.type_name(), "DELETED");
        assert_eq!(rv_of(&deleted), 5, "the old object carries the event's revision");
        assert_eq!(deleted.object().map(|o| o.metadata.labels.get("app").cloned()), Some(Some("x".to_owned())));
        assert!(stream.next().await.is_none(), "no bookmark without allowWatchBookmarks");
    }
}
