//! What a response carries of one object version, computed once from its stored bytes and kept
//! with them (Kubernetes' `CachingObject`, for every representation this server writes).
//!
//! The watch cache holds each object as the JSON it stores ([`EncodedObject`]); a GET, LIST or
//! WATCH served from it writes those bytes when they already are the served JSON (apiVersion and
//! kind of the endpoint first, a kind that serves its stored form). Everything else — the served
//! JSON of an object stored in another form, YAML, `PartialObjectMetadata` as JSON and as YAML, a
//! Table row's cells as JSON and as YAML — is made on first use and kept in the object's
//! [`EncodedObject::derived`] slot as [`Forms`], one per served apiVersion/kind that asked
//! ([`Versions`]: a CRD's served versions, core and events.k8s.io events over one storage), so
//! every later request (and every clone the cache hands out: lists, GETs, every watcher's event)
//! reuses it until the object changes: a new version is a new [`EncodedObject`] with an empty
//! slot, so a resourceVersion served is always the bytes' own. Each kept value is counted in the
//! holder's memory budget ([`EncodedObject::keep_derived`]) and kept only while it fits.
//!
//! A response is assembled from kept parts: a Table row is its kept cells, the `Age` cell and
//! the object's kept JSON or YAML (`includeObject=Object`: the object's served JSON as stored,
//! its keys in stored order — the decoded path writes them sorted, the same JSON); a YAML entry
//! is the kept document indented where it stands ([`push_yaml_nested`]).
//!
//! What is not kept: a Table's `Age` cell (it depends on the time of the request; the creation
//! timestamp is kept instead) and the cells of custom resources (their printer columns may be
//! dates rendered relative to now): both are computed per request. An object asked for in more
//! than [`MAX_VERSIONS`] served versions computes the others' forms per request.

use std::collections::HashMap;
use std::sync::OnceLock;

use apistore::encoded::EncodedObject;
use apistore::Object;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::clock;
use crate::codec;
use crate::negotiation::Format;
use crate::resources::Resource;
use crate::status::{ApiError, ApiResult};
use crate::table::{self, Include};

/// The most served apiVersion/kinds one object version keeps forms for.
pub const MAX_VERSIONS: usize = 4;

/// What an object version keeps in its [`EncodedObject::derived`] slot: the [`Forms`] of each
/// served apiVersion/kind that asked, in the order they asked (an append-only chain: a reader
/// finds or adds its version without a lock held across requests).
#[derive(Debug, Default)]
pub struct Versions {
    first: OnceLock<Box<Node>>,
}

#[derive(Debug)]
struct Node {
    forms: Forms,
    next: OnceLock<Box<Node>>,
}

impl Versions {
    /// The forms of `serving` in this chain, added when missing (their bookkeeping counted in
    /// `object`'s holder whatever its budget: it is small and cannot be given back); None when
    /// the chain already holds [`MAX_VERSIONS`] others.
    fn forms(&self, object: &EncodedObject, serving: &Serving, kind: &str) -> Option<&Forms> {
        let mut at = &self.first;
        for _ in 0..MAX_VERSIONS {
            let node = at.get_or_init(|| {
                let forms =
                    Forms { api_version: serving.api_version.clone(), kind: kind.to_owned(), ..Forms::default() };
                object.keep_derived(std::mem::size_of::<Node>() + forms.api_version.len() + forms.kind.len(), true);
                Box::new(Node { forms, next: OnceLock::new() })
            });
            if node.forms.kind == kind && node.forms.api_version == serving.api_version {
                return Some(&node.forms);
            }
            at = &node.next;
        }
        None
    }
}

/// The representations of one object version for one served apiVersion/kind.
#[derive(Debug, Default)]
pub struct Forms {
    api_version: String,
    kind: String,
    json: OnceLock<Bytes>,
    yaml: OnceLock<Bytes>,
    metadata: OnceLock<Bytes>,
    metadata_yaml: OnceLock<Bytes>,
    cells: OnceLock<Cells>,
    cells_yaml: OnceLock<Cells>,
}

/// A Table row's cells but `Age` — as JSON values joined by commas, or as the YAML document of
/// their sequence — and the creation timestamp (epoch seconds; None: unknown).
#[derive(Clone, Debug)]
struct Cells {
    fixed: Bytes,
    created: Option<i64>,
}

impl Cells {
    fn cost(&self) -> usize {
        std::mem::size_of::<Cells>() + self.fixed.len()
    }
}

/// What a request fixes for every object it serves of one resource: the served apiVersion and
/// the served JSON prefix `{"apiVersion":…,"kind":…,` (stored bytes that start with it are the
/// served JSON as they are). Made once per request.
#[derive(Clone, Debug)]
pub struct Serving {
    api_version: String,
    prefix: Vec<u8>,
}

impl Serving {
    /// What `resource` serves.
    pub fn of(resource: &Resource) -> Serving {
        let api_version = resource.api_version();
        let prefix = format!("{{\"apiVersion\":{},\"kind\":{},", json!(api_version), json!(resource.kind)).into_bytes();
        Serving { api_version, prefix }
    }

    /// The served JSON prefix: `{"apiVersion":…,"kind":…,`.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }
}

/// The one object version `object` as `resource` serves it, each representation computed once.
pub struct Served<'a> {
    resource: &'a Resource,
    object: &'a EncodedObject,
    serving: &'a Serving,
    /// The object's forms for this resource, looked up (and its slot set up) the first time a
    /// form is asked for: serving the stored bytes as they are touches nothing else. None: its
    /// slot holds something else, or the forms of [`MAX_VERSIONS`] other versions.
    forms: std::cell::OnceCell<Option<&'a Forms>>,
    /// The stored bytes are the served JSON.
    stored_is_served: bool,
    /// The object decoded and served, for the forms this request makes (decoded at most once).
    decoded: std::cell::OnceCell<Object>,
}

impl<'a> Served<'a> {
    /// `object` served by `resource`; `serving` is [`Serving::of`] `resource`.
    pub fn new(resource: &'a Resource, object: &'a EncodedObject, serving: &'a Serving) -> Self {
        let stored_is_served = resource.strategy.serves_stored_form() && object.json().starts_with(&serving.prefix);
        Served {
            resource,
            object,
            serving,
            forms: std::cell::OnceCell::new(),
            stored_is_served,
            decoded: std::cell::OnceCell::new(),
        }
    }

    /// The stored bytes are the served JSON (as they are: no form to make for JSON).
    pub fn stored_is_served(&self) -> bool {
        self.stored_is_served
    }

    /// This version's forms, looked up on first use.
    fn forms(&self) -> Option<&'a Forms> {
        *self.forms.get_or_init(|| {
            let (object, serving) = (self.object, self.serving);
            object.derived(Versions::default).and_then(|v| v.forms(object, serving, &self.resource.kind))
        })
    }

    /// The stored object as the resource serves it (decoded once per request).
    ///
    /// Errors: 500 when the bytes do not decode (they were encoded by the storage).
    fn decode_served(&self) -> ApiResult<&Object> {
        if let Some(object) = self.decoded.get() {
            return Ok(object);
        }
        let decoded = self.object.decode().map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(self.decoded.get_or_init(|| self.resource.served(decoded)))
    }

    /// `make`'s value, kept in `slot` of this version's forms when there are forms, `keep` and
    /// the object's holder has room for its `cost` ([`EncodedObject::keep_derived`]; errors are
    /// not kept: the next request tries again).
    fn kept<T: Clone + 'a>(
        &self,
        slot: impl FnOnce(&'a Forms) -> &'a OnceLock<T>,
        keep: bool,
        cost: impl Fn(&T) -> usize,
        make: impl FnOnce() -> ApiResult<T>,
    ) -> ApiResult<T> {
        let Some(forms) = self.forms().filter(|_| keep) else { return make() };
        let lock = slot(forms);
        if let Some(value) = lock.get() {
            return Ok(value.clone());
        }
        let made = make()?;
        let cost = cost(&made);
        if !self.object.keep_derived(cost, false) {
            return Ok(made);
        }
        if lock.set(made.clone()).is_err() {
            // Another request kept its (equal) value first.
            self.object.unkeep_derived(cost);
        }
        Ok(lock.get().cloned().unwrap_or(made))
    }

    /// [`Served::kept`] of bytes.
    fn kept_bytes(
        &self,
        slot: impl FnOnce(&'a Forms) -> &'a OnceLock<Bytes>,
        make: impl FnOnce() -> ApiResult<Bytes>,
    ) -> ApiResult<Bytes> {
        self.kept(slot, true, |b| b.len() + std::mem::size_of::<Bytes>(), make)
    }

    /// The served object as JSON: the stored bytes when they are in the served form.
    ///
    /// Errors: 500 when the stored bytes do not decode.
    pub fn json(&self) -> ApiResult<Bytes> {
        if self.stored_is_served {
            return Ok(self.object.json_bytes());
        }
        self.kept_bytes(
            |f| &f.json,
            || self.decode_served()?.to_json().map(Bytes::from).map_err(|e| ApiError::internal(e.to_string())),
        )
    }

    /// The served object as YAML.
    ///
    /// Errors: as [`Served::json`].
    pub fn yaml(&self) -> ApiResult<Bytes> {
        self.kept_bytes(
            |f| &f.yaml,
            || {
                // Through a JSON value, as the decoded path always wrote it (keys sorted).
                let value =
                    serde_json::to_value(self.decode_served()?).map_err(|e| ApiError::internal(e.to_string()))?;
                Ok(Bytes::from(codec::encode(&value, Format::Yaml)))
            },
        )
    }

    /// The object in `format` (YAML from [`Served::yaml`]).
    ///
    /// Errors: as [`Served::json`].
    pub fn encoded(&self, format: Format) -> ApiResult<Bytes> {
        match format {
            Format::Json => self.json(),
            Format::Yaml => self.yaml(),
        }
    }

    /// The object's `PartialObjectMetadata` in `format`.
    ///
    /// Errors: as [`Served::json`].
    pub fn partial_metadata_in(&self, format: Format) -> ApiResult<Bytes> {
        let slot = |f: &'a Forms| match format {
            Format::Json => &f.metadata,
            Format::Yaml => &f.metadata_yaml,
        };
        self.kept_bytes(slot, || {
            let served = self.decode_served()?;
            Ok(Bytes::from(codec::encode(&table::partial_metadata(served), format)))
        })
    }

    /// The row's cells but `Age` in `format` (kept for a built-in kind; a custom resource's
    /// printer columns may render relative to now, so they are made per request).
    fn cells(&self, format: Format) -> ApiResult<Cells> {
        let keep = !self.resource.is_custom();
        let slot = |f: &'a Forms| match format {
            Format::Json => &f.cells,
            Format::Yaml => &f.cells_yaml,
        };
        self.kept(slot, keep, Cells::cost, || {
            let served = self.decode_served()?;
            let fixed = table::fixed_cells(self.resource, served);
            let fixed = match format {
                Format::Json => fixed.iter().map(Value::to_string).collect::<Vec<_>>().join(",").into_bytes(),
                Format::Yaml => codec::encode(&fixed, Format::Yaml),
            };
            let created = served.metadata.creation_timestamp.as_deref().and_then(clock::parse_rfc3339);
            Ok(Cells { fixed: Bytes::from(fixed), created })
        })
    }

    /// The object's Table row as JSON (`cells`, then `object` per `include`), its `Age` cell
    /// computed now.
    ///
    /// Errors: as [`Served::json`].
    pub fn table_row(&self, include: Include) -> ApiResult<Vec<u8>> {
        let cells = self.cells(Format::Json)?;
        let mut row = Vec::with_capacity(cells.fixed.len() + 64);
        row.extend_from_slice(b"{\"cells\":[");
        row.extend_from_slice(&cells.fixed);
        if self.resource.strategy.prints_age() {
            row.push(b',');
            row.extend_from_slice(json!(clock::age_since(cells.created)).to_string().as_bytes());
        }
        row.push(b']');
        let object = match include {
            Include::None => None,
            Include::Metadata => Some(self.partial_metadata_in(Format::Json)?),
            Include::Object => Some(self.json()?),
        };
        if let Some(object) = object {
            row.extend_from_slice(b",\"object\":");
            row.extend_from_slice(&object);
        }
        row.push(b'}');
        Ok(row)
    }

    /// The object's Table row as YAML, as an entry of the Table's `rows` sequence (`- cells:`,
    /// then `object:` per `include`), its `Age` cell computed now (`ages` keeps the request's
    /// Age entries: a list's rows share a few).
    ///
    /// Errors: as [`Served::json`].
    pub fn table_row_yaml(&self, include: Include, ages: &mut Ages) -> ApiResult<Vec<u8>> {
        let cells = self.cells(Format::Yaml)?;
        let object = match include {
            Include::None => None,
            Include::Metadata => Some(self.partial_metadata_in(Format::Yaml)?),
            Include::Object => Some(self.yaml()?),
        };
        let mut row = Vec::with_capacity(cells.fixed.len() + object.as_ref().map_or(0, Bytes::len) * 9 / 8 + 64);
        // The row is a mapping entry of `rows` (content at 2); its `cells` sequence stands
        // indentless at 2 under its key, its `object` mapping at 4.
        row.extend_from_slice(b"- cells:\n");
        push_yaml_nested(&mut row, b"  ", &cells.fixed, b"  ");
        if self.resource.strategy.prints_age() {
            row.extend_from_slice(ages.entry(cells.created));
        }
        if let Some(object) = object {
            row.extend_from_slice(b"  object:\n");
            push_yaml_nested(&mut row, b"    ", &object, b"    ");
        }
        Ok(row)
    }
}

/// The YAML `Age` cell entries of one request (`  - 5m` and a newline, as the entry stands in a
/// row's `cells`), by age.
#[derive(Debug, Default)]
pub struct Ages {
    entries: HashMap<String, Vec<u8>>,
}

impl Ages {
    fn entry(&mut self, created: Option<i64>) -> &[u8] {
        let age = clock::age_since(created);
        self.entries.entry(age).or_insert_with_key(|age| {
            let mut entry = Vec::new();
            push_yaml_nested(&mut entry, b"  ", &codec::encode(&[age], Format::Yaml), b"  ");
            entry
        })
    }
}

/// The JSON of a Table up to its first row: `{"apiVersion":…,"columnDefinitions":…,"kind":
/// "Table","metadata":…,"rows":[` (keys sorted, as the decoded path writes them); `]}` closes it.
/// Without `columns` the definitions are `null` (a watch's Table events after the first).
pub fn table_head(resource: &Resource, list_meta: &Value, columns: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"apiVersion\":\"meta.k8s.io/v1\",\"columnDefinitions\":");
    match columns {
        true => out.extend_from_slice(&codec::encode(&table::column_definitions(resource), Format::Json)),
        false => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"kind\":\"Table\",\"metadata\":");
    out.extend_from_slice(&codec::encode(list_meta, Format::Json));
    out.extend_from_slice(b",\"rows\":[");
    out
}

/// The YAML of a list-like `value` whose top-level sequence `key` (`items`, `rows`) is empty,
/// split where that sequence's entries go: (the bytes before the first entry, ending in
/// `<key>:` and a newline; the bytes after the last; the whole document, written when there is
/// no entry: `<key>: []`). Entries are written with [`push_yaml_item`] (or as
/// [`Served::table_row_yaml`] writes rows): serde_yaml's bytes for the value with them.
pub fn yaml_envelope(value: &Value, key: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let empty = codec::encode(value, Format::Yaml);
    let marker = format!("{key}: []\n");
    let at = empty
        .windows(marker.len())
        .enumerate()
        .filter(|(i, w)| *w == marker.as_bytes() && (*i == 0 || empty[i - 1] == b'\n'))
        .map(|(i, _)| i)
        .next_back()
        .unwrap_or(empty.len());
    let mut head = empty[..at].to_vec();
    head.extend_from_slice(key.as_bytes());
    head.extend_from_slice(b":\n");
    let tail = empty.get(at + marker.len()..).unwrap_or_default().to_vec();
    (head, tail, empty)
}

/// The YAML envelope of `resource`'s Table with list metadata `list_meta` ([`yaml_envelope`]
/// of its `rows`).
pub fn table_yaml_envelope(resource: &Resource, list_meta: &Value) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    yaml_envelope(&table::table(resource, &[], Include::None, list_meta.clone()), "rows")
}

/// Appends one object's YAML document `item` (as [`Served::yaml`] writes it) to `out` as an
/// entry of a block sequence that is the value of a top-level key (a list's `items:`): the
/// bytes serde_yaml writes for the same value inside the list ([`push_yaml_nested`] after `- `,
/// the entry's content at two).
pub fn push_yaml_item(out: &mut Vec<u8>, item: &[u8]) {
    push_yaml_nested(out, b"- ", item, b"  ");
}

/// Appends the YAML document `doc` (serde_yaml's bytes for a value at the top level) to `out`
/// as that value stands nested in a larger document: `first` before its first line (`- ` for a
/// sequence entry, the indentation of a mapping value's first key) and `indent` after every line
/// break followed by content. This is how libyaml nests a block node: it indents a nested
/// node's lines by the node's indentation and nothing else (no line folding: serde_yaml writes
/// with unlimited width), and it writes indentation only before a character, so a break
/// followed by another break, or the end, gets none. A sequence that is a mapping's value is
/// not indented beyond its key, so a sequence under a key at column n is nested with n spaces.
/// Line breaks are `\n`, U+2028 and U+2029 (NEL and CR are always escaped in quotes).
pub fn push_yaml_nested(out: &mut Vec<u8>, first: &[u8], doc: &[u8], indent: &[u8]) {
    const LS: &[u8] = "\u{2028}".as_bytes();
    const PS: &[u8] = "\u{2029}".as_bytes();
    out.reserve(doc.len() + first.len() + 64);
    out.extend_from_slice(first);
    let mut rest = doc;
    while !rest.is_empty() {
        let brk = if rest[0] == b'\n' {
            1
        } else if rest.starts_with(LS) || rest.starts_with(PS) {
            3
        } else {
            0
        };
        if brk == 0 {
            // Copy up to the next possible break (`\n` or a U+2028/9 lead byte) at once.
            let run = rest.iter().position(|b| *b == b'\n' || *b == 0xE2).unwrap_or(rest.len()).max(1);
            out.extend_from_slice(&rest[..run]);
            rest = &rest[run..];
            continue;
        }
        out.extend_from_slice(&rest[..brk]);
        rest = &rest[brk..];
        let next_is_content = !rest.is_empty() && rest[0] != b'\n' && !rest.starts_with(LS) && !rest.starts_with(PS);
        if next_is_content {
            out.extend_from_slice(indent);
        }
    }
}

/// A Table of `rows` (each from [`Served::table_row`]) with list metadata `list_meta`, as JSON
/// (keys in the order the decoded path writes them); without `columns`, `columnDefinitions` is
/// `null`.
pub fn table_json(
    resource: &Resource,
    list_meta: &Value,
    columns: bool,
    rows: impl Iterator<Item = ApiResult<Vec<u8>>>,
) -> ApiResult<Vec<u8>> {
    let mut out = table_head(resource, list_meta, columns);
    for (i, row) in rows.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&row?);
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// A Table of `rows` (each from [`Served::table_row_yaml`]) with list metadata `list_meta`, as
/// YAML: the decoded path's bytes.
pub fn table_yaml(
    resource: &Resource,
    list_meta: &Value,
    rows: impl Iterator<Item = ApiResult<Vec<u8>>>,
) -> ApiResult<Vec<u8>> {
    let (mut out, tail, empty) = table_yaml_envelope(resource, list_meta);
    let mut any = false;
    for row in rows {
        out.extend_from_slice(&row?);
        any = true;
    }
    if !any {
        return Ok(empty);
    }
    out.extend_from_slice(&tail);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use apistore::encoded::DerivedMeter;
    use apistore::store::{Store, StoreConfig};
    use apistore_memory::MemoryBackend;
    use std::sync::Arc;

    /// The gizmo resource served as `version` (a CRD's served versions over one storage).
    fn gizmos(version: &str) -> Resource {
        let store = Store::new(Arc::new(MemoryBackend::new()), StoreConfig::new("gizmos")).expect("store");
        let mut resource = crate::resources::for_tests("example.com", "gizmos", true, Arc::new(store)).expect("gizmos");
        resource.version = version.to_owned();
        resource
    }

    /// Each served version's forms are kept with the one object version (alternating versions
    /// do not recompute them, and each is counted once in the holder's meter), up to
    /// [`MAX_VERSIONS`]; a version beyond that is served right, uncached.
    #[test]
    fn forms_are_kept_per_served_version() {
        let mut object = Object::new("example.com/v1", "Gizmo", "default", "g").with_field("spec", json!({"size": 3}));
        object.metadata.resource_version = "7".into();
        let encoded = EncodedObject::encode(&object).expect("encode");
        let meter = DerivedMeter::new(None);
        encoded.attach_meter(&meter);
        let versions: Vec<Resource> = (1..=MAX_VERSIONS + 1).map(|v| gizmos(&format!("v{v}"))).collect();
        let servings: Vec<Serving> = versions.iter().map(Serving::of).collect();
        let mut kept = Vec::new();
        for (resource, serving) in versions.iter().zip(&servings).skip(1) {
            let served = Served::new(resource, &encoded, serving);
            let (json, yaml) = (served.json().expect("json"), served.yaml().expect("yaml"));
            let value: Value = serde_json::from_slice(&json).expect("JSON");
            assert_eq!(value["apiVersion"], json!(resource.api_version()));
            assert_eq!(serde_yaml::from_slice::<Value>(&yaml).expect("YAML"), value);
            kept.push((json, yaml));
        }
        let counted = meter.derived_bytes();
        assert_eq!(counted, encoded.derived_bytes());
        assert!(counted > 0);
        // Alternate: every version finds its own forms (the same buffers), nothing is added.
        for _ in 0..2 {
            for ((resource, serving), (json, yaml)) in versions.iter().zip(&servings).skip(1).zip(&kept).rev() {
                let served = Served::new(resource, &encoded, serving);
                assert_eq!(served.json().expect("json").as_ptr(), json.as_ptr(), "{}: kept", resource.version);
                assert_eq!(served.yaml().expect("yaml").as_ptr(), yaml.as_ptr(), "{}: kept", resource.version);
            }
        }
        assert_eq!(meter.derived_bytes(), counted, "nothing computed again");
        // v1 is the stored form: its JSON is the stored bytes; a fifth version is served right,
        // its forms not kept.
        let served = Served::new(&versions[0], &encoded, &servings[0]);
        assert_eq!(served.json().expect("json").as_ptr(), encoded.json().as_ptr());
        let yaml = served.yaml().expect("yaml");
        assert_eq!(serde_yaml::from_slice::<Value>(&yaml).expect("YAML")["apiVersion"], "example.com/v1");
        assert_eq!(meter.derived_bytes(), counted, "beyond {MAX_VERSIONS} versions: not kept");
        encoded.detach_meter();
        assert_eq!(meter.derived_bytes(), 0);
    }

    /// A YAML document nested under a key or as a sequence entry is indented where it stands,
    /// breaks followed by breaks or the end left bare.
    #[test]
    fn nested_yaml_is_indented_where_it_stands() {
        let mut out = Vec::new();
        push_yaml_nested(&mut out, b"    ", b"a: |-\n  x\n\n  y\nb:\n- c\n", b"    ");
        assert_eq!(String::from_utf8_lossy(&out), "    a: |-\n      x\n\n      y\n    b:\n    - c\n");
        let (head, tail, empty) = yaml_envelope(&json!({"a": 1, "items": [], "z": {"items": []}}), "items");
        assert_eq!(String::from_utf8_lossy(&empty), "a: 1\nitems: []\nz:\n  items: []\n");
        assert_eq!((head.as_slice(), tail.as_slice()), (&b"a: 1\nitems:\n"[..], &b"z:\n  items: []\n"[..]));
    }
}
