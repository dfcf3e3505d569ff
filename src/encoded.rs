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
    /// The JSON watch event line `json` is a slice of, and its event type (see
    /// [`EncodedObject::encode_in_watch_line`]).
    line: Option<(&'static str, Bytes)>,
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
        Ok(EncodedObject(Arc::new(Encoded { json, line: None, revision, derived: OnceLock::new() })))
    }

    /// Encodes `object` inside the line of a JSON watch event of type `type_name`
    /// (`{"type":"<type_name>","object":<the object>}` and a newline, the line kube-apiserver
    /// writes for a watch event): [`EncodedObject::json`] is the object's slice of that line and
    /// [`EncodedObject::watch_line`] hands out the whole line, so a watch cache's event is framed
    /// once and every watcher writes the same buffer (about 30 bytes more than
    /// [`EncodedObject::encode`]).
    ///
    /// Errors: as [`EncodedObject::encode`].
    pub fn encode_in_watch_line(object: &Object, type_name: &'static str) -> Result<Self> {
        let revision = object.resource_version()?;
        let mut line = Vec::with_capacity(1024);
        write_watch_line_start(&mut line, type_name);
        let start = line.len();
        serde_json::to_writer(&mut line, object).map_err(|e| Error::internal(format!("encoding object: {e}")))?;
        let end = line.len();
        line.extend_from_slice(WATCH_LINE_END);
        line.shrink_to_fit();
        let line = Bytes::from(line.into_boxed_slice());
        let json = line.slice(start..end);
        Ok(EncodedObject(Arc::new(Encoded { json, line: Some((type_name, line)), revision, derived: OnceLock::new() })))
    }

    /// The whole JSON watch event line of type `type_name` around these bytes, when they were
    /// encoded in one ([`EncodedObject::encode_in_watch_line`] with that type); None otherwise.
    pub fn watch_line(&self, type_name: &str) -> Option<&Bytes> {
        self.0.line.as_ref().filter(|(t, _)| *t == type_name).map(|(_, line)| line)
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

/// The end of a JSON watch event line: the event object's closing brace and the newline.
pub const WATCH_LINE_END: &[u8] = b"}\n";

/// Appends the start of a JSON watch event line, `{"type":"<type_name>","object":`, to `out`;
/// the object's JSON and [`WATCH_LINE_END`] complete it.
pub fn write_watch_line_start(out: &mut Vec<u8>, type_name: &str) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(type_name.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
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
    fn an_object_encoded_in_its_watch_line_is_a_slice_of_it() {
        let mut object = Object::new("v1", "ConfigMap", "ns", "a").with_label("app", "x");
        object.metadata.resource_version = "9".into();
        let plain = EncodedObject::encode(&object).expect("encode");
        let framed = EncodedObject::encode_in_watch_line(&object, "MODIFIED").expect("encode");
        assert_eq!(framed, plain, "the same object bytes and revision");
        assert_eq!(plain.watch_line("MODIFIED"), None, "no line without encoding in one");
        assert_eq!(framed.watch_line("ADDED"), None, "a line of another type is not this one");
        let line = framed.watch_line("MODIFIED").expect("line");
        let mut expected = b"{\"type\":\"MODIFIED\",\"object\":".to_vec();
        expected.extend_from_slice(plain.json());
        expected.extend_from_slice(b"}\n");
        assert_eq!(line.as_ref(), expected.as_slice());
        let offset = framed.json().as_ptr() as usize - line.as_ptr() as usize;
        assert_eq!(&line[offset..offset + framed.json().len()], framed.json().as_ref(), "json is inside the line");
        let event: serde_json::Value = serde_json::from_slice(line).expect("the line is JSON");
        assert_eq!(event["object"]["metadata"]["resourceVersion"], "9");
        object.metadata.resource_version = "x".into();
        assert!(EncodedObject::encode_in_watch_line(&object, "ADDED").is_err_and(|e| e.code() == 422));
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
