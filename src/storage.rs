//! `Storage`: the contract an API server uses — Kubernetes `storage.Interface`.
//!
//! This file is the specification; [`Store`](crate::store::Store) implements it over any
//! [`KvBackend`](crate::kv::KvBackend) and decorators implement it by wrapping another
//! `Arc<dyn Storage>`. Semantics follow `k8s.io/apiserver/pkg/storage` exactly:
//!
//! * **Keys** are resource-relative (`/pods/<ns>/<name>`); every method validates them
//!   (`PrepareKey`): empty or `/` → "empty key", `.`/`..` segments → "invalid key", and the
//!   key must lie under the store's resource prefix. A recursive key lists/watches the
//!   "directory" (a trailing `/` is added).
//! * **resourceVersion (RV)** is one global revision. An object's RV is its last write; a
//!   list's RV is the revision it was read at. A request's RV arrives parsed
//!   ([`ResourceVersion`]: "" = `Unset`, "0" = `Any`, N = `At(N)`; the parse errors are the
//!   caller's, at the edge). Reads:
//!
//!   | RV  | match        | limit | meaning                                   |
//!   |-----|--------------|-------|-------------------------------------------|
//!   | ""  | —            | any   | consistent: the latest state              |
//!   | "0" | — / NotOlder | any   | any state (the latest, here)              |
//!   | N   | —            | 0     | not older than N (N > current → 504)      |
//!   | N   | —            | > 0   | exactly N (legacy)                        |
//!   | N   | NotOlderThan | any   | not older than N                          |
//!   | N   | Exact        | any   | exactly the state at N (compacted → 410)  |
//!
//! * **Continue tokens** are Kubernetes' own (`base64url({"v":"meta.k8s.io/v1","rv":..,"start":..})`),
//!   relative to the list key and pinned to the first page's RV.
//! * **Preconditions** failing → [`Error::InvalidObject`] (409). Delete's result and the
//!   DELETED watch event carry the *delete* revision.
//! * **Watch** from N delivers every change after N in order, exactly once; errors after
//!   the watch started arrive as one [`WatchEvent::Error`] and end the stream.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::encoded::{EncodedList, EncodedObject, EncodedWatchEvent};
use crate::error::{Error, Result};
use crate::kv::Revision;
use crate::object::Object;
use crate::selector::{FieldSelector, LabelSelector};
pub use crate::version::ResourceVersion;

/// `ResourceVersionMatch` of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceVersionMatch {
    /// The state exactly at the given RV.
    Exact,
    /// Any state at least as new as the given RV.
    NotOlderThan,
}

impl ResourceVersionMatch {
    /// Parses the query-parameter form; "" → None.
    ///
    /// Errors: [`Error::BadRequest`] "unknown ResourceVersionMatch value".
    pub fn parse(value: &str) -> Result<Option<Self>> {
        match value {
            "" => Ok(None),
            "Exact" => Ok(Some(ResourceVersionMatch::Exact)),
            "NotOlderThan" => Ok(Some(ResourceVersionMatch::NotOlderThan)),
            other => Err(Error::bad_request(format!("unknown ResourceVersionMatch value: {other}"))),
        }
    }
}

/// `SelectionPredicate`: selectors, paging and bookmarks of a list or watch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Predicate {
    /// Label selector; empty matches all.
    pub label: LabelSelector,
    /// Field selector over dotted paths (`metadata.name`, `spec.nodeName`); empty matches all.
    pub field: FieldSelector,
    /// Page size; 0 = no limit.
    pub limit: i64,
    /// Continue token from a previous page; "" = first page.
    pub continue_token: String,
    /// The client accepts BOOKMARK events.
    pub allow_watch_bookmarks: bool,
}

impl Predicate {
    /// Matches everything, no paging.
    pub fn everything() -> Self {
        Self::default()
    }

    /// True when there is no label or field selector (`SelectionPredicate.Empty`).
    pub fn is_empty(&self) -> bool {
        self.label.is_empty() && self.field.is_empty()
    }

    /// True when `object` satisfies both selectors.
    pub fn matches(&self, object: &Object) -> bool {
        (self.label.is_empty() || self.label.matches(&object.metadata.labels))
            && (self.field.is_empty() || self.field.matches(object))
    }

    /// The single name selected by `metadata.name=<x>` (not with a continue token).
    pub fn matches_single(&self) -> Option<&str> {
        if !self.continue_token.is_empty() {
            return None;
        }
        self.field.exact_match("metadata.name")
    }
}

/// Options of [`Storage::get`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// Return `Ok(None)` instead of [`Error::NotFound`] for a missing key.
    pub ignore_not_found: bool,
    /// Unset = latest (a consistent read); otherwise the result is not older than this RV.
    pub resource_version: ResourceVersion,
}

/// Options of [`Storage::get_list`] and [`Storage::watch`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// See the module table.
    pub resource_version: ResourceVersion,
    /// See the module table.
    pub resource_version_match: Option<ResourceVersionMatch>,
    /// Selectors, limit, continue, bookmarks.
    pub predicate: Predicate,
    /// The key is a directory (list/watch everything under it).
    pub recursive: bool,
    /// Internal: ask the backend for progress notifications (bookmarks) on a watch.
    pub progress_notify: bool,
    /// Watch: send the current state as ADDED events first (`sendInitialEvents`).
    pub send_initial_events: Option<bool>,
}

/// `Preconditions` of an update or delete.
///
/// The resourceVersion is a revision, parsed where the request enters
/// ([`crate::version::parse_precondition`]); a client's text that is no revision matches no
/// object, and the edge answers it as Kubernetes does (409 Conflict after reading the object).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    /// The object's UID must equal this.
    pub uid: Option<String>,
    /// The object's resourceVersion must be this revision.
    pub resource_version: Option<Revision>,
}

impl Preconditions {
    /// Checks `object` against the preconditions.
    ///
    /// Errors: [`Error::InvalidObject`] with Kubernetes' "Precondition failed" message.
    pub fn check(&self, key: &str, object: &Object) -> Result<()> {
        if let Some(uid) = &self.uid {
            if *uid != object.metadata.uid {
                return Err(Error::InvalidObject {
                    key: key.to_owned(),
                    message: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        object.metadata.uid
                    ),
                });
            }
        }
        if let Some(rv) = self.resource_version {
            if object.resource_version().ok() != Some(rv) {
                return Err(Error::InvalidObject {
                    key: key.to_owned(),
                    message: format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        object.metadata.resource_version
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Options of [`Storage::delete`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Unsafe deletion of an object whose stored data cannot be transformed or decoded.
    /// Fails with [`Error::InvalidObject`] when the object is readable.
    pub expect_transform_or_decode_error: bool,
}

/// What [`UpdateFn`] learns about the current state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseMeta {
    /// The current object's resourceVersion (0 when it does not exist).
    pub resource_version: u64,
}

/// The new object an [`UpdateFn`] returns, with an optional TTL in seconds
/// (None = no TTL).
pub type UpdateOutput = (Object, Option<u64>);

/// The mutation of [`Storage::guaranteed_update`]: given the current object (a zero
/// `Object` when absent and `ignore_not_found`), return the new one. Called again with
/// fresh state after a conflict, so it must be free of side effects that cannot repeat.
pub type UpdateFn<'a> = &'a mut (dyn FnMut(Object, ResponseMeta) -> Result<UpdateOutput> + Send);

/// `ValidateObjectFunc` of a delete: return an error to refuse the deletion of the given
/// object (None for an undecodable object under unsafe deletion).
pub type ValidateDeletion<'a> = &'a (dyn Fn(Option<&Object>) -> Result<()> + Send + Sync);

/// A `ValidateDeletion` that allows everything.
pub fn allow_all_deletions(_: Option<&Object>) -> Result<()> {
    Ok(())
}

/// The result of [`Storage::get_list`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectList {
    /// The revision the list was read at (never 0 for a successful list).
    pub resource_version: u64,
    /// Token for the next page; empty on the last page.
    pub continue_token: String,
    /// Items after this page, when known and no selector was used.
    pub remaining_item_count: Option<i64>,
    /// The matching objects, in key order.
    pub items: Vec<Object>,
}

/// `Stats` of a store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Number of objects under the store's resource prefix.
    pub object_count: i64,
    /// Average stored size in bytes (0 when not estimated).
    pub estimated_average_object_size_bytes: i64,
}

/// Annotation set on the bookmark that ends the initial events of a watch.
pub const INITIAL_EVENTS_END_ANNOTATION: &str = "k8s.io/initial-events-end";

/// One event of a [`WatchStream`].
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    /// An object started matching (created, or updated into the selector).
    Added(Object),
    /// A matching object changed.
    Modified(Object),
    /// An object stopped matching (deleted, or updated out of the selector); the object is
    /// the last matching state with the RV of the event.
    Deleted(Object),
    /// Progress: an object with only `metadata.resourceVersion` (and annotations) set.
    Bookmark(Object),
    /// The watch failed (e.g. 410 too old); no event follows.
    Error(Error),
}

impl WatchEvent {
    /// The Kubernetes event type: `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`.
    pub fn type_name(&self) -> &'static str {
        match self {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => "BOOKMARK",
            WatchEvent::Error(_) => "ERROR",
        }
    }

    /// The object of the event (None for errors).
    pub fn object(&self) -> Option<&Object> {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) | WatchEvent::Bookmark(o) => {
                Some(o)
            }
            WatchEvent::Error(_) => None,
        }
    }
}

/// A running watch: events arrive on [`WatchStream::next`] (decoded) or
/// [`WatchStream::next_encoded`] (as JSON bytes); dropping it (or [`WatchStream::stop`]) ends
/// the watch and frees its resources. A producer feeds either form ([`WatchStream::channel`],
/// [`WatchStream::encoded_channel`]); the other is converted per event on reading.
pub struct WatchStream {
    receiver: Receiver,
}

enum Receiver {
    Decoded(mpsc::Receiver<WatchEvent>),
    Encoded(mpsc::Receiver<EncodedWatchEvent>),
    Polled(Box<dyn PolledWatch>),
}

/// A watch whose events are made in its consumer's poll (a watch cache's watcher: it filters
/// and converts the shared events in the reader's task, with no task or channel of its own).
pub(crate) trait PolledWatch: Send + Sync + 'static {
    /// The next event: `Ready(None)` once the watch has ended; `Pending` registers `cx`'s waker.
    fn poll_next_encoded(&mut self, cx: &mut Context<'_>) -> Poll<Option<EncodedWatchEvent>>;
    /// No new events are produced; events already made or queued can still be read.
    fn stop(&mut self);
}

impl fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStream").finish_non_exhaustive()
    }
}

impl WatchStream {
    /// Default capacity of a watch channel (Kubernetes' result buffer of 100).
    pub const DEFAULT_CAPACITY: usize = 100;

    /// A stream and the sender its producer feeds. The producer should stop when `send`
    /// fails (the consumer is gone).
    pub fn channel(capacity: usize) -> (mpsc::Sender<WatchEvent>, WatchStream) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (sender, WatchStream { receiver: Receiver::Decoded(receiver) })
    }

    /// Like [`WatchStream::channel`], for a producer that has its objects encoded (a watch
    /// cache): readers of [`WatchStream::next_encoded`] get the producer's bytes unchanged.
    pub fn encoded_channel(capacity: usize) -> (mpsc::Sender<EncodedWatchEvent>, WatchStream) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (sender, WatchStream { receiver: Receiver::Encoded(receiver) })
    }

    /// A stream whose events `watch` makes when it is polled.
    pub(crate) fn polled(watch: Box<dyn PolledWatch>) -> WatchStream {
        WatchStream { receiver: Receiver::Polled(watch) }
    }

    /// The next event; None once the watch has ended.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The next event with its object encoded; None once the watch has ended.
    pub async fn next_encoded(&mut self) -> Option<EncodedWatchEvent> {
        std::future::poll_fn(|cx| self.poll_next_encoded(cx)).await
    }

    /// Polls for the next event (the poll form of [`WatchStream::next`], for a consumer that
    /// drives the stream from its own `poll`, e.g. taking every ready event at once):
    /// `Ready(None)` once the watch has ended; `Pending` registers `cx`'s waker.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        match &mut self.receiver {
            Receiver::Decoded(receiver) => receiver.poll_recv(cx),
            Receiver::Encoded(receiver) => receiver.poll_recv(cx).map(|e| e.map(EncodedWatchEvent::decode)),
            Receiver::Polled(watch) => watch.poll_next_encoded(cx).map(|e| e.map(EncodedWatchEvent::decode)),
        }
    }

    /// The poll form of [`WatchStream::next_encoded`] (see [`WatchStream::poll_next`]).
    pub fn poll_next_encoded(&mut self, cx: &mut Context<'_>) -> Poll<Option<EncodedWatchEvent>> {
        match &mut self.receiver {
            Receiver::Decoded(receiver) => receiver.poll_recv(cx).map(|e| e.map(EncodedWatchEvent::encode)),
            Receiver::Encoded(receiver) => receiver.poll_recv(cx),
            Receiver::Polled(watch) => watch.poll_next_encoded(cx),
        }
    }

    /// Stops the watch: no new events are produced; already buffered ones can still be read.
    pub fn stop(&mut self) {
        match &mut self.receiver {
            Receiver::Decoded(receiver) => receiver.close(),
            Receiver::Encoded(receiver) => receiver.close(),
            Receiver::Polled(watch) => watch.stop(),
        }
    }
}

/// Kubernetes `storage.Interface`. See the module documentation for the semantics every
/// implementation must keep; the conformance suite (`apistore::testing`) checks them.
///
/// The only default method bodies are the encoded reads ([`Storage::get_list_encoded`],
/// [`Storage::get_encoded`]): they go through the decoded methods, so a decorator that does
/// not forward them stays correct and only loses the cache's zero-copy path. Every other
/// method has no default: a decorator that forgets to forward one must not compile.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Creates `object` at `key`, failing if it exists. `ttl` > 0 makes it expire after that
    /// many seconds. Returns the stored object with its new resourceVersion.
    ///
    /// Errors: [`Error::AlreadyExists`], [`Error::ResourceVersionSetOnCreate`],
    /// [`Error::TooLarge`], key errors.
    async fn create(&self, key: &str, object: Object, ttl: u64) -> Result<Object>;

    /// Deletes `key` if `preconditions` and `validate_deletion` accept the current object;
    /// `cached_existing` is a hint of the current state (checked against storage).
    /// Returns the deleted object with the delete's resourceVersion.
    ///
    /// Errors: [`Error::NotFound`], [`Error::InvalidObject`], validation errors.
    async fn delete(
        &self,
        key: &str,
        preconditions: Option<&Preconditions>,
        validate_deletion: ValidateDeletion<'_>,
        cached_existing: Option<Object>,
        options: DeleteOptions,
    ) -> Result<Object>;

    /// Watches `key` (or everything under it when `options.recursive`).
    ///
    /// Errors returned here are validation errors (key, readiness); later failures (410 too
    /// old, 504 future revision) arrive as [`WatchEvent::Error`].
    async fn watch(&self, key: &str, options: ListOptions) -> Result<WatchStream>;

    /// Reads one object. `Ok(None)` only when `options.ignore_not_found` and it is missing.
    ///
    /// Errors: [`Error::NotFound`], [`Error::TooLargeResourceVersion`], key errors.
    async fn get(&self, key: &str, options: GetOptions) -> Result<Option<Object>>;

    /// Lists objects under `key` (recursive) or the single object at `key`.
    ///
    /// Errors: an invalid continue token or an RV given with one (400), [`Error::Expired`]
    /// (410), [`Error::TooLargeResourceVersion`] (504).
    async fn get_list(&self, key: &str, options: ListOptions) -> Result<ObjectList>;

    /// Reads the current object, applies `try_update`, writes the result if it changed, and
    /// retries on conflict. With `ignore_not_found` a missing object is passed as a zero
    /// `Object` and the result is created. `cached_existing` is a hint of the current state.
    ///
    /// Errors: [`Error::NotFound`], [`Error::InvalidObject`], errors of `try_update`.
    async fn guaranteed_update(
        &self,
        key: &str,
        ignore_not_found: bool,
        preconditions: Option<&Preconditions>,
        try_update: UpdateFn<'_>,
        cached_existing: Option<Object>,
    ) -> Result<Object>;

    /// Object count (and size estimate) under the store's resource prefix.
    async fn stats(&self) -> Result<Stats>;

    /// Ok when the storage can serve requests (a cache is initialized, the backend answers).
    async fn readiness_check(&self) -> Result<()>;

    /// The backend's current revision (for consistent reads and "start at most recent").
    async fn current_resource_version(&self) -> Result<u64>;

    /// The latest compaction revision observed (0 if none).
    async fn compact_revision(&self) -> Result<u64>;

    /// Asks the backend for a progress notification on open watches that set
    /// [`ListOptions::progress_notify`]: each soon gets a bookmark at a revision at least the
    /// one current at this call (Kubernetes `RequestWatchProgress`). Ok(false) when the backend
    /// cannot; then nothing is sent. Errors: the backend's.
    async fn request_watch_progress(&self) -> Result<bool>;

    /// [`Storage::get_list`] with the items as the JSON bytes a server sends. The default
    /// encodes the decoded list; a watch cache hands out the bytes it holds.
    ///
    /// Errors: those of [`Storage::get_list`]; encoding errors as [`Error::Internal`].
    async fn get_list_encoded(&self, key: &str, options: ListOptions) -> Result<EncodedList> {
        EncodedList::encode(self.get_list(key, options).await?)
    }

    /// [`Storage::get`] with the object as JSON bytes. The default encodes the decoded object.
    ///
    /// Errors: those of [`Storage::get`]; encoding errors as [`Error::Internal`].
    async fn get_encoded(&self, key: &str, options: GetOptions) -> Result<Option<EncodedObject>> {
        self.get(key, options).await?.as_ref().map(EncodedObject::encode).transpose()
    }

    /// True when [`Storage::get_list_encoded`] and [`Storage::get_encoded`] hand out bytes this
    /// storage holds (a watch cache serving from memory), so a reader that works from bytes and
    /// their [`EncodedObject::derived`] forms should ask for them. False (the default) when they
    /// would be encoded per request from decoded objects: a reader that needs decoded objects
    /// then reads them directly. A hint only: both reads are correct either way.
    fn holds_encoded(&self) -> bool {
        false
    }
}

/// Shared handle to any storage.
pub type DynStorage = Arc<dyn Storage>;
