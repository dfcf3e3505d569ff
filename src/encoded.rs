//! Encoded objects: an object as the JSON bytes a server sends, shared without copying.
//!
//! The watch cache holds every object in this form (Kubernetes `CachingObject`: serialize once,
//! share with every reader), and [`Storage::get_list_encoded`](crate::Storage::get_list_encoded),
//! [`Storage::get_encoded`](crate::Storage::get_encoded) and
//! [`WatchStream::next_encoded`](crate::storage::WatchStream::next_encoded) hand the bytes out, so
//! an API server writes them straight into a response. A storage that only has decoded objects
//! (the plain [`Store`](crate::Store), any third-party layer) is served by the default methods,
//! which encode its objects once per request.
//!
//! Invariant: the bytes are the JSON encoding of an [`Object`] (as [`Object::to_json`] writes it)
//! whose `metadata.resourceVersion` is [`EncodedObject::revision`].
//!
//! What a server derives from the bytes (another encoding, a Table row, the object in another
//! served version) can be kept with them in [`EncodedObject::derived`]: computed once per object
//! version, shared by every clone, dropped with the last one.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::kv::Revision;
use crate::object::Object;
use crate::storage::{ObjectList, WatchEvent};

/// One object as JSON bytes plus its revision. Cloning shares the bytes and the derived slot
/// (one reference count: a list of n cached objects costs n increments, each on one cache line).
/// Two encoded objects are equal when their bytes and revisions are.
#[derive(Clone, Debug)]
pub struct EncodedObject(Arc<Encoded>);

#[derive(Debug)]
struct Encoded {
    json: Bytes,
    revision: Revision,
    /// See [`EncodedObject::derived`].
    derived: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl PartialEq for EncodedObject {
    fn eq(&self, other: &Self) -> bool {
        self.0.revision == other.0.revision && self.0.json == other.0.json
    }
}

impl Eq for EncodedObject {}

impl EncodedObject {
    /// Encodes `object` (its `metadata.resourceVersion` is kept as it is).
    ///
    /// Errors: [`Error::Invalid`] for a resourceVersion that is not decimal,
    /// [`Error::Internal`] when encoding fails.
    pub fn encode(object: &Object) -> Result<Self> {
        let revision = object.resource_version()?;
        let mut json = object.to_json()?;
        // An exact allocation: `Bytes` then takes the buffer without another allocation.
        json.shrink_to_fit();
        let json = Bytes::from(json.into_boxed_slice());
        Ok(EncodedObject(Arc::new(Encoded { json, revision, derived: OnceLock::new() })))
    }

    /// What a reader derives from these bytes, computed by `make` on first use and kept with
    /// them: every clone of this object (the watch cache's, every list's and every watch
    /// event's) shares the one value, so it is computed once per object version. The slot holds
    /// one value: when it already holds a value of another type than `T`, `make` is not called
    /// and the result is None (the caller computes its value itself, uncached).
    ///
    /// Invariant: the value must be a function of the bytes (and of what the caller fixes in
    /// `T`, e.g. the served version it was made for), since every holder sees it.
    pub fn derived<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Option<&T> {
        self.0.derived.get_or_init(|| Box::new(make())).downcast_ref::<T>()
    }

    /// The JSON bytes.
    pub fn json(&self) -> &Bytes {
        &self.0.json
    }

    /// The object's resourceVersion as a revision.
    pub fn revision(&self) -> Revision {
        self.0.revision
    }

    /// Decodes the object. Errors: [`Error::Internal`] naming the JSON problem (the bytes were
    /// produced by [`EncodedObject::encode`], so this means memory corruption or a bug).
    pub fn decode(&self) -> Result<Object> {
        serde_json::from_slice(&self.0.json).map_err(|e| Error::internal(format!("decoding a cached object: {e}")))
    }
}

/// The result of [`Storage::get_list_encoded`](crate::Storage::get_list_encoded): an
/// [`ObjectList`] whose items are encoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodedList {
    /// The revision the list was read at.
    pub resource_version: Revision,
    /// Token for the next page; empty on the last page.
    pub continue_token: String,
    /// Items after this page, when known and no selector was used.
    pub remaining_item_count: Option<i64>,
    /// The matching objects, in key order.
    pub items: Vec<EncodedObject>,
}

impl EncodedList {
    /// Encodes every item of a decoded list. Errors: as [`EncodedObject::encode`].
    pub fn encode(list: ObjectList) -> Result<Self> {
        Ok(EncodedList {
            resource_version: list.resource_version,
            continue_token: list.continue_token,
            remaining_item_count: list.remaining_item_count,
            items: list.items.iter().map(EncodedObject::encode).collect::<Result<_>>()?,
        })
    }

    /// Decodes every item. Errors: as [`EncodedObject::decode`].
    pub fn decode(self) -> Result<ObjectList> {
        Ok(ObjectList {
            resource_version: self.resource_version,
            continue_token: self.continue_token,
            remaining_item_count: self.remaining_item_count,
            items: self.items.iter().map(EncodedObject::decode).collect::<Result<_>>()?,
        })
    }
}

/// A [`WatchEvent`] whose object is encoded: what a watch cache shares with all its watchers.
#[derive(Clone, Debug, PartialEq)]
pub enum EncodedWatchEvent {
    /// See [`WatchEvent::Added`].
    Added(EncodedObject),
    /// See [`WatchEvent::Modified`].
    Modified(EncodedObject),
    /// See [`WatchEvent::Deleted`].
    Deleted(EncodedObject),
    /// See [`WatchEvent::Bookmark`].
    Bookmark(EncodedObject),
    /// See [`WatchEvent::Error`].
    Error(Error),
}

impl EncodedWatchEvent {
    /// The Kubernetes event type: `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`.
    pub fn type_name(&self) -> &'static str {
        match self {
            EncodedWatchEvent::Added(_) => "ADDED",
            EncodedWatchEvent::Modified(_) => "MODIFIED",
            EncodedWatchEvent::Deleted(_) => "DELETED",
            EncodedWatchEvent::Bookmark(_) => "BOOKMARK",
            EncodedWatchEvent::Error(_) => "ERROR",
        }
    }

    /// Encodes a decoded event; an object that cannot be encoded becomes an ERROR event.
    pub fn encode(event: WatchEvent) -> Self {
        let wrap = |object: &Object, make: fn(EncodedObject) -> EncodedWatchEvent| match EncodedObject::encode(object) {
            Ok(encoded) => make(encoded),
            Err(error) => EncodedWatchEvent::Error(error),
        };
        match event {
            WatchEvent::Added(o) => wrap(&o, EncodedWatchEvent::Added),
            WatchEvent::Modified(o) => wrap(&o, EncodedWatchEvent::Modified),
            WatchEvent::Deleted(o) => wrap(&o, EncodedWatchEvent::Deleted),
            WatchEvent::Bookmark(o) => wrap(&o, EncodedWatchEvent::Bookmark),
            WatchEvent::Error(e) => EncodedWatchEvent::Error(e),
        }
    }

    /// Decodes the event; an object that cannot be decoded becomes an ERROR event.
    pub fn decode(self) -> WatchEvent {
        let unwrap = |object: EncodedObject, make: fn(Object) -> WatchEvent| match object.decode() {
            Ok(decoded) => make(decoded),
            Err(error) => WatchEvent::Error(error),
        };
        match self {
            EncodedWatchEvent::Added(o) => unwrap(o, WatchEvent::Added),
            EncodedWatchEvent::Modified(o) => unwrap(o, WatchEvent::Modified),
            EncodedWatchEvent::Deleted(o) => unwrap(o, WatchEvent::Deleted),
            EncodedWatchEvent::Bookmark(o) => unwrap(o, WatchEvent::Bookmark),
            EncodedWatchEvent::Error(e) => WatchEvent::Error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_once_and_round_trips() {
        let mut object = Object::new("v1", "ConfigMap", "ns", "a").with_label("app", "x");
        object.metadata.resource_version = "42".into();
        let encoded = EncodedObject::encode(&object).expect("encode");
        assert_eq!(encoded.revision(), 42);
        assert_eq!(encoded.json().as_ref(), object.to_json().expect("json").as_slice());
        let shared = encoded.clone();
        assert_eq!(shared.json().as_ptr(), encoded.json().as_ptr(), "clones share the bytes");
        assert_eq!(encoded.decode().expect("decode"), object);
        let event = EncodedWatchEvent::encode(WatchEvent::Modified(object.clone()));
        assert_eq!(event.type_name(), "MODIFIED");
        assert_eq!(event.decode(), WatchEvent::Modified(object.clone()));
        object.metadata.resource_version = "x".into();
        assert!(EncodedObject::encode(&object).is_err_and(|e| e.code() == 422));
        assert!(matches!(EncodedWatchEvent::encode(WatchEvent::Added(object)), EncodedWatchEvent::Error(_)));
    }

    #[test]
    fn derived_values_are_made_once_and_shared_by_clones() {
        let mut object = Object::new("v1", "ConfigMap", "ns", "a");
        object.metadata.resource_version = "7".into();
        let encoded = EncodedObject::encode(&object).expect("encode");
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let make = || {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            encoded.json().len()
        };
        assert_eq!(encoded.derived(make), Some(&encoded.json().len()));
        let clone = encoded.clone();
        assert_eq!(clone.derived(|| 0usize), Some(&encoded.json().len()), "a clone sees the value made first");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(clone.derived(|| "another type"), None, "one type per slot");
        let fresh = EncodedObject::encode(&object).expect("encode");
        assert_eq!(fresh, encoded, "equality ignores the slot");
        assert_eq!(fresh.derived(|| 5usize), Some(&5), "another encoding has its own slot");
    }
}
