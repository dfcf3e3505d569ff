//! `KvBackend`: the contract a storage backend implements — etcd's data model, small.
//!
//! # The model
//!
//! * A **revisioned key space**. Every successful write (put or delete, of any key) gets the
//!   next store-wide revision. Like etcd, a new empty backend is at revision 1 and its first
//!   write gets revision 2. Revisions strictly increase and never go backwards or get
//!   reused — also across restarts and crashes.
//! * Each live key carries `create_revision` (revision of the write that created it),
//!   `mod_revision` (revision of its last write) and `version` (number of writes since
//!   creation, 1 after create). A deleted key is absent; re-creating it starts over.
//! * **Reads at a revision**: [`KvBackend::get`] and [`KvBackend::range`] read the state as
//!   of any revision between the compaction point and the current one. Below the compaction
//!   point → [`Error::Compacted`]; above the current one → [`Error::FutureRevision`].
//! * **Conditional writes** compare the key's `mod_revision` (0 = "must not exist") and
//!   return the current value on failure, so a retry loop needs no extra round trip.
//! * **Watch** from a revision: every change with revision ≥ `start_revision` in revision
//!   order, exactly once, each with the previous value. A watch that cannot continue ends
//!   with an error item (never a silent gap).
//! * **TTL**: a key written with a TTL is deleted by the backend once it expires; the
//!   deletion is an ordinary write (new revision, watch delete event).
//!
//! A backend implements only this trait; [`Store`](crate::store::Store) builds the whole
//! Kubernetes `storage.Interface` on top of it.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::error::{Error, Result};

/// A store-wide revision. 0 means "none" / "latest" depending on the field.
pub type Revision = u64;

/// One key with its value and revision metadata.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The full backend key, e.g. `/registry/pods/default/nginx`.
    pub key: String,
    /// The stored bytes (already transformed, e.g. encrypted).
    pub value: Bytes,
    /// Revision of the write that created the key.
    pub create_revision: Revision,
    /// Revision of the key's last write.
    pub mod_revision: Revision,
    /// Number of writes since creation (1 after create).
    pub version: u64,
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &self.key)
            .field("value_len", &self.value.len())
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .field("version", &self.version)
            .finish()
    }
}

/// Result of [`KvBackend::get`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetResponse {
    /// The key's value at the read revision, if it existed then.
    pub kv: Option<KeyValue>,
    /// The backend's current revision when the read was served (etcd's header revision);
    /// for a latest read, the revision read at.
    pub revision: Revision,
}

/// A range read over `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeRequest {
    /// First key (inclusive).
    pub start: String,
    /// End key (exclusive). Use [`prefix_end`] to range over a prefix.
    pub end: String,
    /// Maximum number of keys returned; 0 = no limit.
    pub limit: u64,
    /// Read at this revision; 0 = latest.
    pub revision: Revision,
    /// Return only `count` (and `revision`), no keys.
    pub count_only: bool,
}

impl RangeRequest {
    /// A latest, unlimited read of every key starting with `prefix`.
    pub fn prefix(prefix: &str) -> Self {
        RangeRequest { start: prefix.to_owned(), end: prefix_end(prefix), limit: 0, revision: 0, count_only: false }
    }
}

/// Result of [`KvBackend::range`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResponse {
    /// Keys in order, at most `limit` of them (none when `count_only`).
    pub kvs: Vec<KeyValue>,
    /// Total number of keys in `[start, end)` at the read revision, regardless of `limit`.
    pub count: u64,
    /// True when more keys than returned exist in the range.
    pub more: bool,
    /// The backend's current revision when the read was served (etcd's header revision);
    /// for a latest read, the revision read at.
    pub revision: Revision,
}

/// Outcome of a conditional write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOutcome {
    /// The condition held; the write got `revision`.
    Succeeded {
        /// Revision of this write.
        revision: Revision,
    },
    /// The condition failed; nothing was written.
    Failed {
        /// The key's current value (None if absent), like etcd's `Else(Get)`.
        current: Option<KeyValue>,
        /// The backend's revision when the comparison was made.
        revision: Revision,
    },
}

/// A key whose live version carries a TTL ([`KvBackend::expiries`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// The key.
    pub key: String,
    /// The `mod_revision` of the version the TTL belongs to.
    pub mod_revision: Revision,
    /// The time it has left.
    pub remaining: Duration,
}

/// One conditional write of [`KvBackend::write_batch`].
#[derive(Clone, PartialEq, Eq)]
pub struct BatchWrite {
    /// The key (at most one write per key in a batch).
    pub key: String,
    /// The key's `mod_revision` the write needs (0 = the key must not exist).
    pub expected_mod_revision: Revision,
    /// The value to put; None deletes the key (then `expected_mod_revision` must be > 0).
    pub value: Option<Bytes>,
    /// An expiry for a put, as [`KvBackend::put`]'s `ttl`.
    pub ttl: Option<Duration>,
}

impl fmt::Debug for BatchWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchWrite")
            .field("key", &self.key)
            .field("expected_mod_revision", &self.expected_mod_revision)
            .field("value_len", &self.value.as_ref().map(Bytes::len))
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// A watch on `[start, end)` from a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchRequest {
    /// First key (inclusive).
    pub start: String,
    /// End key (exclusive); [`prefix_end`] for a prefix, `start + "\0"` for one key.
    pub end: String,
    /// Deliver every change with revision ≥ this; 0 = changes after the current revision.
    /// A future revision is accepted: the watch waits for it.
    pub start_revision: Revision,
    /// Ask for [`WatchEvent::Progress`] notifications when idle (if the backend can).
    pub progress_notify: bool,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was created or updated. `kv.mod_revision` is the event revision.
    Put {
        /// The new value.
        kv: KeyValue,
        /// The value before this write; None for a create.
        prev: Option<KeyValue>,
    },
    /// A key was deleted (explicitly or by TTL expiry) at `revision`.
    Delete {
        /// The deleted key.
        key: String,
        /// Revision of the delete.
        revision: Revision,
        /// The value before the delete.
        prev: Option<KeyValue>,
    },
    /// Every change up to `revision` has been delivered (etcd progress notify).
    Progress {
        /// The revision the watch has caught up to.
        revision: Revision,
    },
}

impl WatchEvent {
    /// The revision this event carries.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put { kv, .. } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } | WatchEvent::Progress { revision } => *revision,
        }
    }
}

/// The stream a watch delivers. It ends when the caller drops it; an `Err` item is the
/// last one (e.g. [`Error::Compacted`], [`Error::Unavailable`]) and means "relist".
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

/// What a backend can do; the suite and decorators adapt to it instead of guessing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Sends [`WatchEvent::Progress`] when asked.
    pub progress_notify: bool,
    /// Answers [`KvBackend::request_progress`] (etcd's `RequestProgress`).
    pub progress_requests: bool,
    /// Honours TTLs on writes.
    pub ttl: bool,
    /// Largest value accepted, if the backend has a limit (etcd: 1.5 MiB request size).
    pub max_value_size: Option<usize>,
}

/// How much space a backend takes and whether it is out of it ([`KvBackend::space`]).
///
/// Invariant: `in_use_bytes` never counts more than what a rewrite (sled) or a defragment
/// (etcd) would keep; `db_bytes - in_use_bytes` is what such a reclamation can return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpaceStatus {
    /// Bytes the store occupies on disk (etcd: `dbSize` of the answering member).
    pub db_bytes: u64,
    /// Bytes of it holding retained data, live state plus retained history (etcd:
    /// `dbSizeInUse`).
    pub in_use_bytes: u64,
    /// The space quota in bytes (`quota_backend_bytes`); 0 = none.
    pub quota_bytes: u64,
    /// Active alarms, etcd's names (`"NOSPACE"`, `"CORRUPT"`); empty when healthy.
    pub alarms: Vec<String>,
}

impl SpaceStatus {
    /// The NOSPACE alarm name (etcd's `AlarmType_NOSPACE`).
    pub const NOSPACE: &'static str = "NOSPACE";

    /// True when the NOSPACE alarm is raised: writes that grow the store are refused.
    pub fn nospace(&self) -> bool {
        self.alarms.iter().any(|alarm| alarm == Self::NOSPACE)
    }
}

/// The backend contract. See the module documentation for the model and its invariants.
///
/// Implementations must be cheap to share (`Arc<dyn KvBackend>`) and safe to call
/// concurrently. No method may block a tokio worker thread for long.
#[async_trait]
pub trait KvBackend: Send + Sync + fmt::Debug + 'static {
    /// The registered backend type name (e.g. `"sled"`, `"etcd3"`).
    fn backend_name(&self) -> &str;

    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;

    /// Reads one key at `revision` (0 = latest).
    ///
    /// Errors: [`Error::Compacted`], [`Error::FutureRevision`], [`Error::Unavailable`].
    async fn get(&self, key: &str, revision: Revision) -> Result<GetResponse>;

    /// Reads keys of `[start, end)` in key order at a revision, with the total count.
    ///
    /// Errors: as [`KvBackend::get`].
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse>;

    /// Writes `value` under `key` if the key's `mod_revision` equals `expected_mod_revision`
    /// (0 = the key must not exist: create). `ttl` attaches an expiry; `None` removes any.
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
        ttl: Option<Duration>,
    ) -> Result<TxnOutcome>;

    /// Deletes `key` if its `mod_revision` equals `expected_mod_revision` (must be > 0).
    /// A missing key fails the comparison (`Failed { current: None, .. }`).
    async fn delete(&self, key: &str, expected_mod_revision: Revision) -> Result<TxnOutcome>;

    /// Applies `writes` (distinct keys) if every comparison holds: the revision each write
    /// got, in order; None when a comparison failed.
    ///
    /// A backend with multi-key transactions (etcd) applies all of them or none, in one
    /// transaction at one revision; the default applies them one by one in order with
    /// [`KvBackend::put`] and [`KvBackend::delete`], so the writes before a failed comparison
    /// stay (each gets its own revision). Either way every write gets a revision above the
    /// backend's revision before the call.
    ///
    /// Errors: [`Error::Invalid`] for a key written twice or a delete expecting 0; as
    /// [`KvBackend::put`] (a batch over the backend's request size: [`Error::TooLarge`]).
    async fn write_batch(&self, writes: Vec<BatchWrite>) -> Result<Option<Vec<Revision>>> {
        check_batch(&writes)?;
        let mut revisions = Vec::with_capacity(writes.len());
        for write in writes {
            let outcome = match write.value {
                Some(value) => self.put(&write.key, value, write.expected_mod_revision, write.ttl).await?,
                None => self.delete(&write.key, write.expected_mod_revision).await?,
            };
            match outcome {
                TxnOutcome::Succeeded { revision } => revisions.push(revision),
                TxnOutcome::Failed { .. } => return Ok(None),
            }
        }
        Ok(Some(revisions))
    }

    /// Every key of `[start, end)` whose live version carries a TTL, in key order, with the
    /// time it has left (what backup and migration carry over). The default (a backend
    /// without TTLs, or one that cannot tell) reports none.
    ///
    /// Errors: [`Error::Unavailable`].
    async fn expiries(&self, start: &str, end: &str) -> Result<Vec<Expiry>> {
        let _ = (start, end);
        Ok(Vec::new())
    }

    /// Watches `[start, end)` from a revision. Errors (at start, or as the stream's last
    /// item): [`Error::Compacted`] when `start_revision` is below the compaction revision (a
    /// watch from the compaction revision itself is fine, as in etcd), [`Error::Unavailable`].
    async fn watch(&self, request: WatchRequest) -> Result<WatchStream>;

    /// The current (latest) revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Asks every open watch that requested progress notifications to send a
    /// [`WatchEvent::Progress`] soon, at a revision at least the one current when this call
    /// was made, once every change up to that revision has been delivered on the watch (etcd's
    /// `RequestProgress`; the watch cache uses it to serve consistent reads).
    ///
    /// Ok(false) when the backend cannot ([`Capabilities::progress_requests`] is false); then
    /// nothing is sent. Errors: [`Error::Unavailable`].
    async fn request_progress(&self) -> Result<bool>;

    /// Discards history before `revision`: reads and watches at revisions below it fail with
    /// [`Error::Compacted`] afterwards. Current values are kept. Compacting at or below the
    /// compaction point is a no-op; above the current revision → [`Error::FutureRevision`].
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The latest compaction revision (0 if never compacted).
    async fn compacted_revision(&self) -> Result<Revision>;

    /// Checks the backend can serve requests now (a cheap read with a short timeout).
    async fn health(&self) -> Result<()>;

    /// Bytes on disk, bytes in use, the space quota and active alarms. The default (a
    /// backend that does not know) reports zeros and no alarm.
    ///
    /// Errors: [`Error::Unavailable`] when the backend cannot be asked.
    async fn space(&self) -> Result<SpaceStatus> {
        Ok(SpaceStatus::default())
    }
}

/// The exclusive end of the range of all keys starting with `prefix` (etcd's
/// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff incremented and what
/// follows dropped. An empty result means "to the end of the key space".
pub fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            // Incrementing an ASCII byte keeps the string valid UTF-8.
            return String::from_utf8(bytes).unwrap_or_default();
        }
    }
    String::new()
}

/// Checks a [`KvBackend::write_batch`]: distinct keys, no delete expecting 0.
///
/// Errors: [`Error::Invalid`] naming the key.
pub fn check_batch(writes: &[BatchWrite]) -> Result<()> {
    let mut keys = std::collections::HashSet::with_capacity(writes.len());
    for write in writes {
        if !keys.insert(write.key.as_str()) {
            return Err(Error::invalid("batch", &write.key, "the key is written twice in one batch"));
        }
        if write.value.is_none() && write.expected_mod_revision == 0 {
            return Err(Error::invalid("batch", &write.key, "a delete needs the key's mod revision"));
        }
    }
    Ok(())
}

/// Checks that `[start, end)` is a sensible range (end empty = unbounded).
pub fn validate_range(start: &str, end: &str) -> Result<()> {
    if !end.is_empty() && end < start {
        return Err(Error::internal(format!("invalid range: end {end:?} sorts before start {start:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end("/registry/pods/"), "/registry/pods0");
        assert_eq!(prefix_end("a"), "b");
        assert_eq!(prefix_end(""), "");
    }
}
