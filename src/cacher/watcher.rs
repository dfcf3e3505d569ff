//! One cache watcher (Kubernetes `cacheWatcher`): sends its initial events, the
//! initial-events-end bookmark, the replayed history, then live changes, filtered for its
//! predicate. Events carry the cache's encoded objects: every watcher shares the bytes of a
//! change (Kubernetes `CachingObject`), nothing is encoded per watcher but bookmarks.
//!
//! Ordering invariant: every change carries a revision greater than the last one this watcher
//! handled (`last`); anything at or below it is a duplicate (a change both in the replay and
//! dispatched live) and is dropped. Bookmarks are sent only when their revision is after the
//! watch's start and not below `last`, so bookmark revisions never go backwards and are ≥ every
//! event already sent.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::encoded::{EncodedObject, EncodedWatchEvent};
use crate::kv::Revision;
use crate::object::Object;
use crate::storage::INITIAL_EVENTS_END_ANNOTATION;
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

/// A running watcher's task state.
pub(crate) struct Watcher {
    /// The prepared watch key and whether it is a directory.
    pub(crate) key: String,
    pub(crate) recursive: bool,
    pub(crate) matcher: Matcher,
    pub(crate) bookmarks: bool,
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) result: mpsc::Sender<EncodedWatchEvent>,
    pub(crate) input: mpsc::Receiver<Dispatch>,
    pub(crate) terminate: oneshot::Receiver<()>,
    /// Deregisters the watcher from the cache when its task ends (None in unit tests).
    pub(crate) _registration: Option<Registration>,
}

/// A watcher's entry in the cache's watcher table, removed as soon as the watcher's task ends
/// (its consumer dropped or stopped the stream, or it was terminated), so the table holds
/// exactly the live watchers ([`Cacher::watcher_count`](super::Cacher::watcher_count)).
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

/// Why a watcher stopped sending.
struct Ended;

impl Watcher {
    /// Runs the watcher to its end: terminated by the cacher, or the consumer went away.
    pub(crate) async fn run(mut self, opening: Opening) {
        let _ = self.serve(opening).await;
    }

    async fn serve(&mut self, opening: Opening) -> Result<(), Ended> {
        let mut last = opening.start;
        let initial: Vec<EncodedObject> = scope(&opening.initial, &self.key, self.recursive, None)
            .filter(|(key, object)| self.matcher.matches(key, object))
            .map(|(_, object)| object.encoded.clone())
            .collect();
        drop(opening.initial);
        for object in initial {
            self.send(EncodedWatchEvent::Added(object)).await?;
        }
        if let Some(revision) = opening.end_bookmark {
            let mut bookmark = bookmark_object(&self.api_version, &self.kind, revision);
            bookmark.metadata.annotations.insert(INITIAL_EVENTS_END_ANNOTATION.to_owned(), "true".to_owned());
            self.send_bookmark(&bookmark).await?;
        }
        for event in opening.replay {
            self.handle(Dispatch::Event(event), &mut last, opening.start).await?;
        }
        loop {
            let next = tokio::select! {
                biased;
                _ = &mut self.terminate => return Err(Ended),
                // The consumer dropped or stopped the stream: end now, not at the next event.
                _ = self.result.closed() => return Err(Ended),
                next = self.input.recv() => next,
            };
            match next {
                Some(dispatch) => self.handle(dispatch, &mut last, opening.start).await?,
                None => return Err(Ended),
            }
        }
    }

    async fn handle(&mut self, dispatch: Dispatch, last: &mut Revision, start: Revision) -> Result<(), Ended> {
        match dispatch {
            Dispatch::Event(event) => {
                if event.revision <= *last {
                    return Ok(());
                }
                *last = event.revision;
                if let Some(converted) = self.convert(&event) {
                    self.send(converted).await?;
                }
            }
            Dispatch::Bookmark(revision) => {
                if self.bookmarks && revision > start && revision >= *last {
                    *last = revision;
                    self.send_bookmark(&bookmark_object(&self.api_version, &self.kind, revision)).await?;
                }
            }
        }
        Ok(())
    }

    /// The watch event a change is for this predicate (Kubernetes `convertToWatchEvent`).
    fn convert(&self, event: &CachedEvent) -> Option<EncodedWatchEvent> {
        let matches = |object: &super::cache::CachedObject| self.matcher.matches(&event.key, object);
        match event.kind {
            EventKind::Delete => {
                matches(&event.object).then(|| EncodedWatchEvent::Deleted(event.object.encoded.clone()))
            }
            EventKind::Put => {
                let new_matches = matches(&event.object);
                let old_matches = event.prev.as_ref().is_some_and(|prev| matches(prev));
                match (old_matches, new_matches) {
                    (true, true) => Some(EncodedWatchEvent::Modified(event.object.encoded.clone())),
                    (false, true) => Some(EncodedWatchEvent::Added(event.object.encoded.clone())),
                    (true, false) => event.prev_deleted().cloned().map(EncodedWatchEvent::Deleted),
                    (false, false) => None,
                }
            }
        }
    }

    async fn send_bookmark(&mut self, bookmark: &Object) -> Result<(), Ended> {
        match EncodedObject::encode(bookmark) {
            Ok(encoded) => self.send(EncodedWatchEvent::Bookmark(encoded)).await,
            Err(error) => self.send(EncodedWatchEvent::Error(error)).await,
        }
    }

    async fn send(&mut self, event: EncodedWatchEvent) -> Result<(), Ended> {
        tokio::select! {
            biased;
            _ = &mut self.terminate => Err(Ended),
            sent = self.result.send(event) => sent.map_err(|_| Ended),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cacher::cache::CachedObject;
    use crate::storage::{Predicate, WatchEvent, WatchStream};

    fn cached(object: &Object) -> Arc<CachedObject> {
        Arc::new(CachedObject::new(object).expect("encode"))
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
        result: mpsc::Sender<EncodedWatchEvent>,
        input: mpsc::Receiver<Dispatch>,
        terminate: oneshot::Receiver<()>,
    ) -> Watcher {
        Watcher {
            key: "/pods/".into(),
            recursive: true,
            matcher: Matcher::new(&predicate, "/pods/".len()),
            bookmarks,
            api_version: "v1".into(),
            kind: "Pod".into(),
            result,
            input,
            terminate,
            _registration: None,
        }
    }

    fn rv_of(event: &WatchEvent) -> u64 {
        event.object().and_then(|o| o.resource_version().ok()).unwrap_or_default()
    }

    #[tokio::test]
    async fn duplicates_are_dropped_and_bookmarks_never_go_backwards() {
        let (input_sender, input) = mpsc::channel(16);
        let (_terminate_sender, terminate) = oneshot::channel();
        let (result, mut stream) = WatchStream::encoded_channel(16);
        let watcher = watcher(Predicate::default(), true, result, input, terminate);
        // Start at 10 (e.g. a consistent list at 10); the replay holds 11 and 12.
        let opening = Opening {
            initial: Objects::unit("/pods/ns/listed".into(), cached(&Object::new("v1", "Pod", "ns", "listed"))),
            end_bookmark: Some(10),
            replay: vec![event(11, "a", EventKind::Put, None), event(12, "b", EventKind::Put, None)],
            start: 10,
        };
        let task = tokio::spawn(watcher.run(opening));
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
        drop(input_sender);
        task.await.expect("watcher");
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
        let (_terminate_sender, terminate) = oneshot::channel();
        let (result, mut stream) = WatchStream::encoded_channel(4);
        let predicate = Predicate {
            label: crate::selector::LabelSelector::parse("app=x").expect("selector"),
            ..Predicate::default()
        };
        let watcher = watcher(predicate, false, result, input, terminate);
        let opening = Opening { initial: Objects::new(), end_bookmark: None, replay: vec![], start: 1 };
        let task = tokio::spawn(watcher.run(opening));
        let mut before = Object::new("v1", "Pod", "ns", "a").with_label("app", "x");
        before.metadata.resource_version = "4".into();
        input_sender.send(Dispatch::Event(event(5, "a", EventKind::Put, Some(before)))).await.expect("queue");
        input_sender.send(Dispatch::Bookmark(6)).await.expect("queue");
        drop(input_sender);
        task.await.expect("watcher");
        let deleted = stream.next().await.expect("one event");
        assert_eq!(deleted.type_name(), "DELETED");
        assert_eq!(rv_of(&deleted), 5, "the old object carries the event's revision");
        assert_eq!(deleted.object().map(|o| o.metadata.labels.get("app").cloned()), Some(Some("x".to_owned())));
        assert!(stream.next().await.is_none(), "no bookmark without allowWatchBookmarks");
    }
}
