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
//! version, shared by every clone, dropped with the last one. A holder that budgets its memory
//! (the watch cache) attaches a [`DerivedMeter`] to the objects it holds: the deriving side
//! asks [`EncodedObject::keep_derived`] before keeping a value, so the derived bytes are
//! counted with the holder's and kept only while they fit its budget.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::kv::Revision;
use crate::object::Object;
use crate::storage::{ObjectList, WatchEvent};

mod labels;
use labels::Labels;

/// One object as JSON bytes plus its revision. Cloning shares the bytes and the derived slot
/// (one reference count: a list of n cached objects costs n increments, each on one cache line).
/// Two encoded objects are equal when their bytes and revisions are.
#[derive(Clone, Debug)]
pub struct EncodedObject(Arc<Encoded>);

#[derive(Debug)]
struct Encoded {
    /// The object's JSON, or the JSON watch event line it is a slice of (see
    /// [`EncodedObject::encode_in_watch_line`]), then its labels ([`Labels`]): one buffer.
    bytes: Bytes,
    /// Where the object's JSON starts in `bytes` (0 but in a watch line).
    json_start: u32,
    /// Where the labels start in `bytes`: the end of the JSON or of the watch line.
    labels_start: u32,
    /// The event type of the watch line `bytes` holds, None when it holds the JSON alone.
    line_type: Option<&'static str>,
    revision: Revision,
    /// See [`EncodedObject::derived`].
    derived: OnceLock<Box<dyn Any + Send + Sync>>,
    /// The bytes of the derived values kept so far and the meter they are counted in.
    metered: Mutex<Metered>,
}

/// See [`Encoded::metered`].
#[derive(Debug, Default)]
struct Metered {
    bytes: usize,
    meter: Option<Arc<DerivedMeter>>,
}

/// Counts the bytes of the values derived from the objects one holder holds (a watch cache's
/// objects: [`EncodedObject::attach_meter`]), beside the holder's own bytes, within the holder's
/// budget.
///
/// Invariants: [`DerivedMeter::derived_bytes`] is the sum of
/// [`EncodedObject::derived_bytes`] over the attached objects; a value is kept
/// ([`EncodedObject::keep_derived`] true) only while held + derived bytes stay within the budget
/// after it (so derived values alone never push a holder over its budget; its own bytes may).
pub struct DerivedMeter {
    budget: Option<usize>,
    held: AtomicUsize,
    derived: AtomicUsize,
    /// Called with [`DerivedMeter::total`] after the derived bytes changed (a gauge).
    on_change: OnceLock<Box<dyn Fn(usize) + Send + Sync>>,
}

impl std::fmt::Debug for DerivedMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DerivedMeter")
            .field("budget", &self.budget)
            .field("held", &self.held)
            .field("derived", &self.derived)
            .finish_non_exhaustive()
    }
}

impl DerivedMeter {
    /// A meter of a holder whose bytes (its own and the derived ones) may total `budget` (None:
    /// no limit); nothing counted yet.
    pub fn new(budget: Option<usize>) -> Arc<Self> {
        Arc::new(DerivedMeter {
            budget,
            held: AtomicUsize::new(0),
            derived: AtomicUsize::new(0),
            on_change: OnceLock::new(),
        })
    }

    /// Calls `on_change` with the new total after every change of the derived bytes (from the
    /// thread that changed them; it must be cheap and must not call back into this meter's
    /// objects). Only the first call sets it.
    pub fn on_change(&self, on_change: impl Fn(usize) + Send + Sync + 'static) {
        let _ = self.on_change.set(Box::new(on_change));
    }

    /// Records the holder's own bytes (besides the derived ones).
    pub fn set_held(&self, bytes: usize) {
        self.held.store(bytes, Ordering::SeqCst);
    }

    /// The bytes of the derived values kept by the attached objects.
    pub fn derived_bytes(&self) -> usize {
        self.derived.load(Ordering::SeqCst)
    }

    /// The holder's own bytes plus the derived ones.
    pub fn total(&self) -> usize {
        self.held.load(Ordering::SeqCst).saturating_add(self.derived_bytes())
    }

    /// Counts `bytes` more when they fit the budget (or `force`); false when they do not.
    fn try_add(&self, bytes: usize, force: bool) -> bool {
        let fits = |derived: usize| match self.budget {
            Some(budget) if !force => {
                self.held.load(Ordering::SeqCst).saturating_add(derived).saturating_add(bytes) <= budget
            }
            _ => true,
        };
        let added = self
            .derived
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| fits(d).then(|| d.saturating_add(bytes)))
            .is_ok();
        if added {
            self.changed();
        }
        added
    }

    fn sub(&self, bytes: usize) {
        let _ = self.derived.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| Some(d.saturating_sub(bytes)));
        self.changed();
    }

    fn changed(&self) {
        if let Some(on_change) = self.on_change.get() {
            on_change(self.total());
        }
    }
}

impl PartialEq for EncodedObject {
    fn eq(&self, other: &Self) -> bool {
        self.0.revision == other.0.revision && self.json() == other.json()
    }
}

impl Eq for EncodedObject {}

impl EncodedObject {
    /// Encodes `object` (its `metadata.resourceVersion` is kept as it is).
    ///
    /// Errors: [`Error::Invalid`] for a resourceVersion that is not decimal,
    /// [`Error::Internal`] when encoding fails.
    pub fn encode(object: &Object) -> Result<Self> {
        Self::build(object, None)
    }

    /// Encodes `object` into one buffer: `{"type":"<line_type>","object":` before its JSON and
    /// [`WATCH_LINE_END`] after it when `line_type` is set, then its labels.
    ///
    /// Errors: as [`EncodedObject::encode`]; [`Error::Internal`] for an encoding of 4 GiB or
    /// more (far beyond any store's object limit).
    fn build(object: &Object, line_type: Option<&'static str>) -> Result<Self> {
        let revision = object.resource_version()?;
        let labels = &object.metadata.labels;
        let mut buffer = Vec::with_capacity(1024 + Labels::encoded_len(labels));
        if let Some(type_name) = line_type {
            write_watch_line_start(&mut buffer, type_name);
        }
        let json_start = buffer.len();
        object.write_json(&mut buffer)?;
        if line_type.is_some() {
            buffer.extend_from_slice(WATCH_LINE_END);
        }
        let labels_start = buffer.len();
        Labels::append(labels, &mut buffer);
        if u32::try_from(buffer.len()).is_err() {
            return Err(Error::internal(format!("an encoded object of {} bytes is too large", buffer.len())));
        }
        // Both offsets are within the buffer, so they fit too.
        let (json_start, labels_start) = (json_start as u32, labels_start as u32);
        // An exact allocation: `Bytes` then takes the buffer without another allocation. Not
        // yet shared: a slice is cut out only when asked for as `Bytes`.
        buffer.shrink_to_fit();
        Ok(EncodedObject(Arc::new(Encoded {
            bytes: Bytes::from(buffer.into_boxed_slice()),
            json_start,
            labels_start,
            line_type,
            revision,
            derived: OnceLock::new(),
            metered: Mutex::new(Metered::default()),
        })))
    }

    fn metered(&self) -> std::sync::MutexGuard<'_, Metered> {
        self.0.metered.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts this object's derived bytes in `meter` from now on (those kept already too),
    /// instead of the meter it was attached to before. The holder detaches it when it lets the
    /// object go ([`EncodedObject::detach_meter`]).
    pub fn attach_meter(&self, meter: &Arc<DerivedMeter>) {
        let mut metered = self.metered();
        if let Some(old) = metered.meter.replace(meter.clone()) {
            old.sub(metered.bytes);
        }
        meter.try_add(metered.bytes, true);
    }

    /// Stops counting this object's derived bytes in its meter (subtracting them there); its
    /// derived values stay with it (a reader may still hold the object) but count nowhere.
    pub fn detach_meter(&self) {
        let mut metered = self.metered();
        if let Some(meter) = metered.meter.take() {
            meter.sub(metered.bytes);
        }
    }

    /// Asks to keep `bytes` more of derived values with this object: true when they are counted
    /// (in the attached meter, within its budget; always without a meter, the object then
    /// being a request's own), false when the meter's budget has no room (the caller then uses
    /// its value without keeping it). With `force` the bytes are counted whatever the budget
    /// (for a value the caller keeps anyway, e.g. the slot's own bookkeeping).
    pub fn keep_derived(&self, bytes: usize, force: bool) -> bool {
        let mut metered = self.metered();
        if let Some(meter) = &metered.meter {
            if !meter.try_add(bytes, force) {
                return false;
            }
        }
        metered.bytes = metered.bytes.saturating_add(bytes);
        true
    }

    /// Gives back `bytes` that [`EncodedObject::keep_derived`] counted for a value the caller
    /// did not keep after all (another reader kept its equal value first).
    pub fn unkeep_derived(&self, bytes: usize) {
        let mut metered = self.metered();
        if let Some(meter) = &metered.meter {
            meter.sub(bytes);
        }
        metered.bytes = metered.bytes.saturating_sub(bytes);
    }

    /// The bytes of derived values kept with this object (as counted by
    /// [`EncodedObject::keep_derived`]).
    pub fn derived_bytes(&self) -> usize {
        self.metered().bytes
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
        Self::build(object, Some(type_name))
    }

    /// The bytes this object's one buffer occupies: its watch line when it was encoded in one
    /// (the JSON is a slice of it), else its JSON, and its kept labels. What a holder counts
    /// for it.
    pub fn encoded_len(&self) -> usize {
        self.0.bytes.len()
    }

    /// Where the JSON is in the buffer.
    fn json_range(&self) -> std::ops::Range<usize> {
        let end = self.0.labels_start as usize - self.0.line_type.map_or(0, |_| WATCH_LINE_END.len());
        self.0.json_start as usize..end
    }

    fn kept_labels(&self) -> Labels<'_> {
        Labels::read(&self.0.bytes[self.0.labels_start as usize..])
    }

    /// The whole JSON watch event line of type `type_name` around these bytes, when they were
    /// encoded in one ([`EncodedObject::encode_in_watch_line`] with that type); None otherwise.
    /// Shares the buffer (no copy: a slice of it).
    pub fn watch_line(&self, type_name: &str) -> Option<Bytes> {
        (self.0.line_type == Some(type_name)).then(|| self.0.bytes.slice(..self.0.labels_start as usize))
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
    pub fn json(&self) -> &[u8] {
        &self.0.bytes[self.json_range()]
    }

    /// The JSON bytes as shared [`Bytes`] (no copy: a slice of the one buffer).
    pub fn json_bytes(&self) -> Bytes {
        self.0.bytes.slice(self.json_range())
    }

    /// The object's resourceVersion as a revision.
    pub fn revision(&self) -> Revision {
        self.0.revision
    }

    /// The value of the object's label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.kept_labels().get(key)
    }

    /// The object's labels, sorted by key.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.kept_labels().iter()
    }

    /// Decodes the object. Errors: [`Error::Internal`] naming the JSON problem (the bytes were
    /// produced by [`EncodedObject::encode`], so this means memory corruption or a bug).
    pub fn decode(&self) -> Result<Object> {
        serde_json::from_slice(self.json()).map_err(|e| Error::internal(format!("decoding a cached object: {e}")))
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
        assert_eq!(encoded.json(), object.to_json().expect("json").as_slice());
        let shared = encoded.clone();
        assert_eq!(shared.json().as_ptr(), encoded.json().as_ptr(), "clones share the bytes");
        assert_eq!(encoded.json_bytes().as_ptr(), encoded.json().as_ptr(), "as Bytes, the same bytes");
        assert_eq!(encoded.label("app"), Some("x"), "the labels are kept beside the bytes");
        assert_eq!(encoded.labels().collect::<Vec<_>>(), vec![("app", "x")]);
        assert_eq!(encoded.encoded_len(), encoded.json().len() + 8 + "appx".len(), "in one buffer");
        assert_eq!(encoded.decode().expect("decode"), object);
        let event = EncodedWatchEvent::encode(WatchEvent::Modified(object.clone()));
        assert_eq!(event.type_name(), "MODIFIED");
        assert_eq!(event.decode(), WatchEvent::Modified(object.clone()));
        object.metadata.resource_version = "x".into();
        assert!(EncodedObject::encode(&object).is_err_and(|e| e.code() == 422));
        assert!(matches!(EncodedWatchEvent::encode(WatchEvent::Added(object)), EncodedWatchEvent::Error(_)));
    }

    #[test]
    fn a_meter_counts_kept_derived_bytes_within_its_budget() {
        let mut object = Object::new("v1", "ConfigMap", "ns", "a");
        object.metadata.resource_version = "3".into();
        let (one, two) =
            (EncodedObject::encode(&object).expect("encode"), EncodedObject::encode(&object).expect("encode"));
        assert!(one.keep_derived(10, false), "without a meter every value is kept");
        let meter = DerivedMeter::new(Some(100));
        let seen = Arc::new(AtomicUsize::new(0));
        let gauge = seen.clone();
        meter.on_change(move |total| gauge.store(total, Ordering::SeqCst));
        meter.set_held(40);
        one.attach_meter(&meter);
        assert_eq!((meter.derived_bytes(), seen.load(Ordering::SeqCst)), (10, 50), "bytes kept before attaching count");
        two.attach_meter(&meter);
        assert!(two.clone().keep_derived(30, false), "a clone counts for the one object");
        assert_eq!((two.derived_bytes(), meter.total()), (30, 80));
        assert!(!one.keep_derived(21, false), "40 held + 40 derived + 21 > 100");
        assert_eq!((one.derived_bytes(), meter.total()), (10, 80), "a refused value is not counted");
        assert!(one.keep_derived(21, true), "forced");
        assert_eq!(meter.total(), 101);
        one.unkeep_derived(21);
        assert_eq!((one.derived_bytes(), meter.total(), seen.load(Ordering::SeqCst)), (10, 80, 80));
        two.detach_meter();
        assert_eq!((meter.derived_bytes(), seen.load(Ordering::SeqCst)), (10, 50), "a detached object's bytes leave");
        assert!(two.keep_derived(1_000, false), "and it counts nowhere");
        assert_eq!(meter.derived_bytes(), 10);
        let other = DerivedMeter::new(None);
        one.attach_meter(&other);
        assert_eq!((meter.derived_bytes(), other.derived_bytes()), (0, 10), "attaching elsewhere moves the bytes");
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_encoded_object_header_fits_a_128_byte_allocation() {
        // `Arc<Encoded>`'s allocation is its two counts and the value: the header of every
        // cached object, in the allocators' 128-byte size class (jemalloc's next one is 160).
        let allocation = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<Encoded>();
        assert!(allocation <= 128, "{allocation} bytes");
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
        assert_eq!(&line[offset..offset + framed.json().len()], framed.json(), "json is inside the line");
        assert_eq!(framed.json_bytes().as_ptr(), framed.json().as_ptr(), "as Bytes, a slice of the line");
        assert_eq!(framed.label("app"), Some("x"), "in a watch line too");
        let event: serde_json::Value = serde_json::from_slice(&line).expect("the line is JSON");
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
