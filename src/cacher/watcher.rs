//! One cache watcher (Kubernetes `cacheWatcher`): sends its initial events, the
//! initial-events-end bookmark, the replayed history, then live changes, filtered and converted
//! for its predicate.
//!
//! Ordering invariant: every change carries a revision greater than the last one this watcher
//! handled (`last`); anything at or below it is a duplicate (a change both in the replay and
//! dispatched live) and is dropped. Bookmarks are sent only when their revision is after the
//! watch's start and not below `last`, so bookmark revisions never go backwards and are ≥ every
//! event already sent.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::kv::Revision;
use crate::object::Object;
use crate::storage::{Predicate, WatchEvent, INITIAL_EVENTS_END_ANNOTATION};
use crate::version::format_resource_version;

use super::cache::{CachedEvent, Dispatch, EventKind};

/// What a watcher sends before its live changes.
pub(crate) struct Opening {
    /// The current state as ADDED events (already in scope, filtered here by the predicate).
    pub(crate) initial: Vec<Arc<Object>>,
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
    pub(crate) predicate: Predicate,
    pub(crate) bookmarks: bool,
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) result: mpsc::Sender<WatchEvent>,
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
        for object in opening.initial {
            if self.matches(&object) {
                self.send(WatchEvent::Added(Object::clone(&object))).await?;
            }
        }
        if let Some(revision) = opening.end_bookmark {
            let mut bookmark = bookmark_object(&self.api_version, &self.kind, revision);
            bookmark.metadata.annotations.insert(INITIAL_EVENTS_END_ANNOTATION.to_owned(), "true".to_owned());
            self.send(WatchEvent::Bookmark(bookmark)).await?;
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
                    self.send(WatchEvent::Bookmark(bookmark_object(&self.api_version, &self.kind, revision))).await?;
                }
            }
        }
        Ok(())
    }

    fn matches(&self, object: &Object) -> bool {
        self.predicate.is_empty() || self.predicate.matches(object)
    }

    /// The watch event a change is for this predicate (Kubernetes `convertToWatchEvent`).
    fn convert(&self, event: &CachedEvent) -> Option<WatchEvent> {
        match event.kind {
            EventKind::Delete => self.matches(&event.object).then(|| WatchEvent::Deleted(Object::clone(&event.object))),
            EventKind::Put => {
                let new_matches = self.matches(&event.object);
                let old_matches = event.prev.as_ref().is_some_and(|prev| self.matches(prev));
                match (old_matches, new_matches) {
                    (true, true) => Some(WatchEvent::Modified(Object::clone(&event.object))),
                    (false, true) => Some(WatchEvent::Added(Object::clone(&event.object))),
                    (true, false) => {
                        let mut old = event.prev.as_deref().cloned().unwrap_or_default();
                        old.metadata.resource_version = format_resource_version(event.revision);
                        Some(WatchEvent::Deleted(old))
                    }
                    (false, false) => None,
                }
            }
        }
    }

    async fn send(&mut self, event: WatchEvent) -> Result<(), Ended> {
        tokio::select! {
            biased;
            _ = &mut self.terminate => Err(Ended),
            sent = self.result.send(event) => sent.map_err(|_| Ended),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::storage::WatchStream;

    fn event(revision: Revision, name: &str, kind: EventKind, prev: Option<Object>) -> Arc<CachedEvent> {
        let mut object = Object::new("v1", "Pod", "ns", name);
        object.metadata.resource_version = revision.to_string();
        Arc::new(CachedEvent {
            revision,
            key: format!("/pods/ns/{name}"),
            kind,
            object: Arc::new(object),
            prev: prev.map(Arc::new),
            recorded: Instant::now(),
        })
    }

    fn rv_of(event: &WatchEvent) -> u64 {
        event.object().and_then(|o| o.resource_version().ok()).unwrap_or_default()
    }

    #[tokio::test]
    async fn duplicates_are_dropped_and_bookmarks_never_go_backwards() {
        let (input_sender, input) = mpsc::channel(16);
        let (_terminate_sender, terminate) = oneshot::channel();
        let (result, mut stream) = WatchStream::channel(16);
        let watcher = Watcher {
            predicate: Predicate::default(),
            bookmarks: true,
            api_version: "v1".into(),
            kind: "Pod".into(),
            result,
            input,
            terminate,
            _registration: None,
        };
        // Start at 10 (e.g. a consistent list at 10); the replay holds 11 and 12.
        let opening = Opening {
            initial: vec![Arc::new(Object::new("v1", "Pod", "ns", "listed"))],
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
        let (result, mut stream) = WatchStream::channel(4);
        let predicate = Predicate {
            label: crate::selector::LabelSelector::parse("app=x").expect("selector"),
            ..Predicate::default()
        };
        let watcher = Watcher {
            predicate,
            bookmarks: false,
            api_version: String::new(),
            kind: String::new(),
            result,
            input,
            terminate,
            _registration: None,
        };
        let task = tokio::spawn(watcher.run(Opening { initial: vec![], end_bookmark: None, replay: vec![], start: 1 }));
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
