//! What a response carries of one object version, computed once from its stored bytes and kept
//! with them (Kubernetes' `CachingObject`, for every representation this server writes).
//!
//! The watch cache holds each object as the JSON it stores ([`EncodedObject`]); a GET or LIST
//! served from it writes those bytes when they already are the served JSON (apiVersion and kind
//! of the endpoint first, a kind that serves its stored form). Everything else — the served JSON
//! of an object stored in another form, YAML, `PartialObjectMetadata`, a Table row's cells — is
//! made on first use and kept in the object's [`EncodedObject::derived`] slot as [`Forms`], so
//! every later request (and every clone the cache hands out) reuses it until the object changes:
//! a new version is a new [`EncodedObject`] with an empty slot, so a resourceVersion served is
//! always the bytes' own.
//!
//! What is not kept: a Table's `Age` cell (it depends on the time of the request; the creation
//! timestamp is kept instead) and the cells of custom resources (their printer columns may be
//! dates rendered relative to now): both are computed per request. Forms are made for one served
//! apiVersion/kind; a request of another version (two resources over one storage) computes its
//! own, uncached.

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

/// The representations of one object version for one served apiVersion/kind.
#[derive(Debug, Default)]
pub struct Forms {
    api_version: String,
    kind: String,
    json: OnceLock<Option<Bytes>>,
    yaml: OnceLock<Option<Bytes>>,
    metadata: OnceLock<Option<Bytes>>,
    cells: OnceLock<Option<Cells>>,
}

/// A Table row's cells but `Age`, as JSON values joined by commas, and the creation timestamp.
#[derive(Debug)]
struct Cells {
    fixed: Bytes,
    created: Option<String>,
}

/// The served JSON prefix of `resource`'s objects: `{"apiVersion":…,"kind":…,`.
pub fn served_prefix(resource: &Resource) -> Vec<u8> {
    format!("{{\"apiVersion\":{},\"kind\":{},", json!(resource.api_version()), json!(resource.kind)).into_bytes()
}

/// The one object version `object` as `resource` serves it, each representation computed once.
pub struct Served<'a> {
    resource: &'a Resource,
    object: &'a EncodedObject,
    /// The object's forms for this resource (None: its slot holds another version's).
    forms: Option<&'a Forms>,
    /// The stored bytes are the served JSON.
    stored_is_served: bool,
    /// The object decoded and served, for the forms this request makes (decoded at most once).
    decoded: std::cell::OnceCell<Object>,
}

impl<'a> Served<'a> {
    /// `object` served by `resource`; `prefix` is [`served_prefix`] of `resource`.
    pub fn new(resource: &'a Resource, object: &'a EncodedObject, prefix: &[u8]) -> Self {
        let stored_is_served = resource.strategy.serves_stored_form() && object.json().starts_with(prefix);
        let slot = object.derived(|| {
            let forms = Forms { api_version: resource.api_version(), kind: resource.kind.clone(), ..Forms::default() };
            // The slot's own bookkeeping is kept whatever the budget (it is small and the slot
            // cannot be emptied); the forms in it are kept only when they fit.
            object.keep_derived(std::mem::size_of::<Forms>() + forms.api_version.len() + forms.kind.len(), true);
            forms
        });
        let forms = slot.filter(|f| f.kind == resource.kind && f.api_version == resource.api_version());
        Served { resource, object, forms, stored_is_served, decoded: std::cell::OnceCell::new() }
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

    /// `make`'s value, kept in `slot` when there is one and the object's holder has room for
    /// it ([`EncodedObject::keep_derived`]; errors are not kept: the next request tries again).
    fn kept(
        &self,
        slot: impl FnOnce(&'a Forms) -> &'a OnceLock<Option<Bytes>>,
        make: impl FnOnce() -> ApiResult<Bytes>,
    ) -> ApiResult<Bytes> {
        let Some(forms) = self.forms else { return make() };
        let lock = slot(forms);
        if let Some(Some(bytes)) = lock.get() {
            return Ok(bytes.clone());
        }
        let made = make()?;
        let cost = made.len() + std::mem::size_of::<Bytes>();
        if !self.object.keep_derived(cost, false) {
            return Ok(made);
        }
        if let Err(Some(_)) = lock.set(Some(made.clone())) {
            // Another request kept its (equal) value first.
            self.object.unkeep_derived(cost);
        }
        Ok(lock.get().cloned().flatten().unwrap_or(made))
    }

    /// The served object as JSON: the stored bytes when they are in the served form.
    ///
    /// Errors: 500 when the stored bytes do not decode.
    pub fn json(&self) -> ApiResult<Bytes> {
        if self.stored_is_served {
            return Ok(self.object.json().clone());
        }
        self.kept(
            |f| &f.json,
            || self.decode_served()?.to_json().map(Bytes::from).map_err(|e| ApiError::internal(e.to_string())),
        )
    }

    /// The served object as YAML.
    ///
    /// Errors: as [`Served::json`].
    pub fn yaml(&self) -> ApiResult<Bytes> {
        self.kept(
            |f| &f.yaml,
            || {
                // Through a JSON value, as the decoded path always wrote it (keys sorted).
                let value =
                    serde_json::to_value(self.decode_served()?).map_err(|e| ApiError::internal(e.to_string()))?;
                Ok(Bytes::from(codec::encode(&value, Format::Yaml)))
            },
        )
    }

    /// The object as JSON in `format` (YAML from [`Served::yaml`]).
    ///
    /// Errors: as [`Served::json`].
    pub fn encoded(&self, format: Format) -> ApiResult<Bytes> {
        match format {
            Format::Json => self.json(),
            Format::Yaml => self.yaml(),
        }
    }

    /// The object's `PartialObjectMetadata` as JSON.
    ///
    /// Errors: as [`Served::json`].
    pub fn partial_metadata(&self) -> ApiResult<Bytes> {
        self.kept(
            |f| &f.metadata,
            || {
                let served = self.decode_served()?;
                Ok(Bytes::from(codec::encode(&table::partial_metadata(served), Format::Json)))
            },
        )
    }

    /// The object's Table row as JSON (`cells`, then `object` per `include`), its `Age` cell
    /// computed now.
    ///
    /// Errors: as [`Served::json`].
    pub fn table_row(&self, include: Include) -> ApiResult<Vec<u8>> {
        let made;
        let cells = match self.forms.filter(|_| !self.resource.is_custom()) {
            Some(forms) => match forms.cells.get() {
                Some(Some(cells)) => cells,
                _ => {
                    made = self.cells()?;
                    let cost =
                        std::mem::size_of::<Cells>() + made.fixed.len() + made.created.as_ref().map_or(0, String::len);
                    if self.object.keep_derived(cost, false) {
                        if let Err(Some(_)) = forms.cells.set(Some(made)) {
                            self.object.unkeep_derived(cost);
                        }
                        forms.cells.get().and_then(Option::as_ref).ok_or_else(|| ApiError::internal("no cells"))?
                    } else {
                        &made
                    }
                }
            },
            None => {
                made = self.cells()?;
                &made
            }
        };
        let mut row = Vec::with_capacity(cells.fixed.len() + 64);
        row.extend_from_slice(b"{\"cells\":[");
        row.extend_from_slice(&cells.fixed);
        if self.resource.strategy.prints_age() {
            row.push(b',');
            row.extend_from_slice(json!(clock::age(cells.created.as_deref())).to_string().as_bytes());
        }
        row.push(b']');
        let object = match include {
            Include::None => None,
            Include::Metadata => Some(self.partial_metadata()?),
            Include::Object => Some(self.json()?),
        };
        if let Some(object) = object {
            row.extend_from_slice(b",\"object\":");
            row.extend_from_slice(&object);
        }
        row.push(b'}');
        Ok(row)
    }

    fn cells(&self) -> ApiResult<Cells> {
        let served = self.decode_served()?;
        let fixed: Vec<String> = table::fixed_cells(self.resource, served).iter().map(Value::to_string).collect();
        Ok(Cells { fixed: Bytes::from(fixed.join(",")), created: served.metadata.creation_timestamp.clone() })
    }
}

/// The JSON of a Table up to its first row: `{"apiVersion":…,"columnDefinitions":…,"kind":
/// "Table","metadata":…,"rows":[` (keys sorted, as the decoded path writes them); `]}` closes it.
pub fn table_head(resource: &Resource, list_meta: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"apiVersion\":\"meta.k8s.io/v1\",\"columnDefinitions\":");
    out.extend_from_slice(&codec::encode(&table::column_definitions(resource), Format::Json));
    out.extend_from_slice(b",\"kind\":\"Table\",\"metadata\":");
    out.extend_from_slice(&codec::encode(list_meta, Format::Json));
    out.extend_from_slice(b",\"rows\":[");
    out
}

/// Appends one object's YAML document `item` (as [`Served::yaml`] writes it) to `out` as an
/// entry of a block sequence that is the value of a top-level key (a list's `items:`): the
/// bytes serde_yaml writes for the same value inside the list. libyaml indents such a sequence
/// not at all and its entries' content by two, so the entry is `- ` before the first line and
/// two spaces after every line break that is followed by content (a break followed by another
/// break, or the end, gets none: libyaml writes indentation only before a character). Its line
/// breaks are `\n`, U+2028 and U+2029 (NEL and CR are always escaped in quotes).
pub fn push_yaml_item(out: &mut Vec<u8>, item: &[u8]) {
    const LS: &[u8] = "\u{2028}".as_bytes();
    const PS: &[u8] = "\u{2029}".as_bytes();
    out.reserve(item.len() + 64);
    out.extend_from_slice(b"- ");
    let mut rest = item;
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
            out.extend_from_slice(b"  ");
        }
    }
}

/// A Table of `rows` (each from [`Served::table_row`]) with list metadata `list_meta`, as JSON
/// (keys in the order the decoded path writes them).
pub fn table_json(
    resource: &Resource,
    list_meta: &Value,
    rows: impl Iterator<Item = ApiResult<Vec<u8>>>,
) -> ApiResult<Vec<u8>> {
    let mut out = table_head(resource, list_meta);
    for (i, row) in rows.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&row?);
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}
