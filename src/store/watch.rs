//! `Watch`: start-point rules, initial events, predicate transitions, errors as the last event
//! (Kubernetes etcd3 `watcher.go`).

use futures::StreamExt;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::kv::{prefix_end, KeyValue, Revision, WatchEvent as KvEvent, WatchRequest};
use crate::object::Object;
use crate::storage::{ListOptions, Predicate, WatchEvent, WatchStream, INITIAL_EVENTS_END_ANNOTATION};
use crate::version::format_resource_version;

use super::Store;

/// Message of a 410 for a watch from a compacted resourceVersion.
pub(crate) const WATCH_TOO_OLD: &str = "The resourceVersion for the provided watch is too old.";

/// Page size of the initial list of a watch.
const INITIAL_PAGE: u64 = 10_000;

/// How a watch starts.
struct Plan {
    /// Watch events from this revision on (exclusive: events with RV > `after`).
    after: Revision,
    /// Send the current state first (and read it to learn `after`).
    initial_events: bool,
    /// Send the `k8s.io/initial-events-end` bookmark after the initial events.
    end_bookmark: bool,
    /// A start RV that must not be in the future (sendInitialEvents with RV N).
    minimum: Revision,
}

impl Store {
    pub(super) async fn start_watch(&self, key: String, options: ListOptions) -> Result<WatchStream> {
        let requested = options.resource_version.revision();
        let send_initial = options.send_initial_events;
        let initial_events = match send_initial {
            None => requested == 0,
            Some(send) => send,
        };
        let end_bookmark = send_initial == Some(true) && options.predicate.allow_watch_bookmarks;
        let after = if requested > 0 || initial_events {
            requested
        } else {
            // sendInitialEvents=false with RV ""/"0": start at the most recent revision.
            crate::storage::Storage::current_resource_version(self).await?
        };
        let plan = Plan { after, initial_events, end_bookmark, minimum: if initial_events { requested } else { 0 } };
        let (sender, stream) = WatchStream::channel(WatchStream::DEFAULT_CAPACITY);
        let store = self.clone();
        let live = LiveWatch::start(self);
        tokio::spawn(async move {
            let _live = live;
            let producer = WatchProducer { store, key, options, sender };
            if let Err(err) = producer.run(plan).await {
                // The consumer may be gone already; nothing else to do then.
                let _ = producer.sender.send(WatchEvent::Error(err)).await;
            }
        });
        Ok(stream)
    }
}

/// Counts a watch in [`Store::live_watches`] from its start until its producer ends.
struct LiveWatch(Store);

impl LiveWatch {
    fn start(store: &Store) -> Self {
        store.inner.live_watches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        LiveWatch(store.clone())
    }
}

impl Drop for LiveWatch {
    fn drop(&mut self) {
        self.0.inner.live_watches.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Feeds one watch: initial events, then converted backend events.
struct WatchProducer {
    store: Store,
    key: String,
    options: ListOptions,
    sender: mpsc::Sender<WatchEvent>,
}

/// The consumer went away: stop quietly.
struct Closed;

impl WatchProducer {
    async fn run(&self, plan: Plan) -> Result<()> {
        let backend_key = self.store.backend_key(&self.key);
        let mut after = plan.after;
        if plan.initial_events {
            let current = self.store.inner.backend.current_revision().await?;
            if plan.minimum > current {
                return Err(Error::TooLargeResourceVersion {
                    requested: plan.minimum,
                    current,
                    retry_after_seconds: 1,
                });
            }
            after = match self.send_initial_events(&backend_key).await? {
                Ok(revision) => revision,
                Err(Closed) => return Ok(()),
            };
            if plan.end_bookmark {
                let mut bookmark = self.store.bookmark(after);
                bookmark.metadata.annotations.insert(INITIAL_EVENTS_END_ANNOTATION.to_owned(), "true".to_owned());
                if self.sender.send(WatchEvent::Bookmark(bookmark)).await.is_err() {
                    return Ok(());
                }
            }
        }
        let end = if self.options.recursive { prefix_end(&backend_key) } else { format!("{backend_key}\0") };
        let request = WatchRequest {
            start: backend_key,
            end,
            start_revision: after + 1,
            progress_notify: self.options.progress_notify,
        };
        let mut events = self.store.inner.backend.watch(request).await.map_err(watch_error)?;
        loop {
            tokio::select! {
                _ = self.sender.closed() => return Ok(()),
                next = events.next() => {
                    let Some(event) = next else {
                        return Err(Error::unavailable("the backend ended the watch; relist and watch again"));
                    };
                    let event = event.map_err(watch_error)?;
                    if event.revision() <= after && !matches!(event, KvEvent::Progress { .. }) {
                        continue;
                    }
                    if let Some(converted) = self.convert(event)? {
                        if self.sender.send(converted).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// Sends the current state as ADDED events (paged, pinned to the first page's revision)
    /// and returns that revision.
    async fn send_initial_events(&self, backend_key: &str) -> Result<std::result::Result<Revision, Closed>> {
        let backend = &self.store.inner.backend;
        let predicate = &self.options.predicate;
        if !self.options.recursive {
            let response = backend.get(backend_key, 0).await?;
            if let Some(kv) = response.kv {
                let object = self.store.decode_object(&kv)?;
                if matches(predicate, &object) && self.sender.send(WatchEvent::Added(object)).await.is_err() {
                    return Ok(Err(Closed));
                }
            }
            return Ok(Ok(response.revision));
        }
        let mut request = crate::kv::RangeRequest::prefix(backend_key);
        request.limit = INITIAL_PAGE;
        let mut revision = 0;
        loop {
            let response = backend.range(request.clone()).await?;
            if revision == 0 {
                revision = response.revision;
                request.revision = revision;
            }
            for kv in &response.kvs {
                let object = self.store.decode_object(kv)?;
                if matches(predicate, &object) && self.sender.send(WatchEvent::Added(object)).await.is_err() {
                    return Ok(Err(Closed));
                }
            }
            match response.kvs.last() {
                Some(last) if response.more => request.start = format!("{}\0", last.key),
                _ => return Ok(Ok(revision)),
            }
        }
    }

    /// Turns a backend event into the watch event the predicate calls for, if any.
    fn convert(&self, event: KvEvent) -> Result<Option<WatchEvent>> {
        let predicate = &self.options.predicate;
        match event {
            KvEvent::Progress { revision } => {
                Ok(self.options.progress_notify.then(|| WatchEvent::Bookmark(self.store.bookmark(revision))))
            }
            KvEvent::Put { kv, prev } => {
                let object = self.store.decode_object(&kv)?;
                let new_matches = matches(predicate, &object);
                let old = match prev {
                    Some(prev) => Some(self.decode_prev(&prev, kv.mod_revision)?),
                    None => None,
                };
                let old_matches = old.as_ref().is_some_and(|o| matches(predicate, o));
                Ok(match (old, old_matches, new_matches) {
                    (_, true, true) => Some(WatchEvent::Modified(object)),
                    (_, false, true) => Some(WatchEvent::Added(object)),
                    (Some(old), true, false) => Some(WatchEvent::Deleted(old)),
                    _ => None,
                })
            }
            KvEvent::Delete { key, revision, prev } => {
                let Some(prev) = prev else {
                    return Err(Error::internal(format!(
                        "delete event for {key} at revision {revision} arrived without its previous value"
                    )));
                };
                // An unsafe delete removes data that cannot be read: Kubernetes reports it as a
                // corrupt object (500 StoreReadError), not as an internal error.
                let old = self.decode_prev(&prev, revision).map_err(|e| Error::Corrupt {
                    key: key.clone(),
                    message: format!("saw a DELETED event, but object data is corrupt: {e}"),
                })?;
                Ok(matches(predicate, &old).then_some(WatchEvent::Deleted(old)))
            }
        }
    }

    /// Decodes a previous value, giving it the RV of the event that replaced it.
    fn decode_prev(&self, prev: &KeyValue, event_revision: Revision) -> Result<Object> {
        let mut object = self.store.decode_object(prev)?;
        object.metadata.resource_version = format_resource_version(event_revision);
        Ok(object)
    }
}

fn matches(predicate: &Predicate, object: &Object) -> bool {
    predicate.is_empty() || predicate.matches(object)
}

/// Maps backend watch errors to what a watcher sees: compaction → 410 Expired.
fn watch_error(error: Error) -> Error {
    match error {
        Error::Compacted { .. } => Error::Expired { message: WATCH_TOO_OLD.to_owned(), continue_token: None },
        other => other,
    }
}
