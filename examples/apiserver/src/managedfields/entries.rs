//! `metadata.managedFields`: its entries, decoded into the sets each manager owns and encoded
//! back in kube's order (apimachinery `managedfields.go`).

use super::fieldpath::Set;
use super::fieldsv1::FieldsV1Error;
use super::value::write_go_string;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The operation an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Operation {
    /// Server-side apply: one entry per manager (and subresource).
    Apply,
    /// Any other write: one entry per manager, apiVersion and subresource.
    Update,
}

impl Operation {
    /// `Apply` or `Update`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One entry of `metadata.managedFields`, as the API serializes it (`metav1.ManagedFieldsEntry`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedFieldsEntry {
    /// The manager's name (`kubectl`, `kube-controller-manager`, ...).
    #[serde(default)]
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: Operation,
    /// The apiVersion of the request that wrote the fields.
    #[serde(default)]
    pub api_version: String,
    /// When the entry last changed (RFC 3339, seconds); absent when never set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Always `FieldsV1`.
    #[serde(default)]
    pub fields_type: String,
    /// The owned fields (see [`Set::to_fields_v1`]).
    #[serde(default, rename = "fieldsV1", skip_serializing_if = "Option::is_none")]
    pub fields_v1: Option<Value>,
    /// The subresource written through (`status`, `scale`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
}

/// What is wrong with a `managedFields` list. `index` is the entry's position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManagedFieldsError {
    /// `metadata.managedFields` is not a list.
    #[error("metadata.managedFields must be a list")]
    NotAList,
    /// An entry is not a valid `ManagedFieldsEntry` (wrong types, unknown operation).
    #[error("managed fields entry {index}: {reason}")]
    InvalidEntry {
        /// Entry position.
        index: usize,
        /// What serde said.
        reason: String,
    },
    /// An entry has no apiVersion.
    #[error("managed fields entry {index} (manager {manager:?}): apiVersion must not be empty")]
    MissingApiVersion {
        /// Entry position.
        index: usize,
        /// Its manager.
        manager: String,
    },
    /// An entry's fieldsType is not `FieldsV1`.
    #[error("managed fields entry {index} (manager {manager:?}): invalid fieldsType {fields_type:?}")]
    InvalidFieldsType {
        /// Entry position.
        index: usize,
        /// Its manager.
        manager: String,
        /// The type found (empty: missing).
        fields_type: String,
    },
    /// An entry's fieldsV1 does not decode.
    #[error("managed fields entry {index} (manager {manager:?}): {source}")]
    InvalidFieldsV1 {
        /// Entry position.
        index: usize,
        /// Its manager.
        manager: String,
        /// The decoding error.
        source: FieldsV1Error,
    },
    /// The object (or its metadata) is not a JSON object.
    #[error("the object and its metadata must be JSON objects")]
    NotAnObject,
}

/// What one manager owns (SMD `VersionedSet` + its time and identity).
#[derive(Clone, Debug, PartialEq)]
pub struct Owned {
    /// The manager's name.
    pub manager: String,
    /// Apply or Update.
    pub operation: Operation,
    /// The apiVersion the set is expressed in.
    pub api_version: String,
    /// The subresource, if any.
    pub subresource: Option<String>,
    /// When it last changed.
    pub time: Option<String>,
    /// The fields.
    pub set: Set,
}

/// Every manager's fields, keyed by kube's manager identifier (`BuildManagerIdentifier`:
/// the entry's JSON without time and fields, and without apiVersion for Apply).
pub type Managed = BTreeMap<String, Owned>;

/// Kube's manager identifier: `{"manager":"m","operation":"Update","apiVersion":"v1"}`
/// (apiVersion omitted for Apply; `"subresource"` last when set).
pub fn manager_id(manager: &str, operation: Operation, api_version: &str, subresource: Option<&str>) -> String {
    let mut out = String::from("{");
    let mut fields: Vec<(&str, &str)> = Vec::new();
    if !manager.is_empty() {
        fields.push(("manager", manager));
    }
    fields.push(("operation", operation.as_str()));
    if operation == Operation::Update && !api_version.is_empty() {
        fields.push(("apiVersion", api_version));
    }
    if let Some(sub) = subresource.filter(|s| !s.is_empty()) {
        fields.push(("subresource", sub));
    }
    for (i, (k, v)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(k);
        out.push_str("\":");
        write_go_string(&mut out, v, true);
    }
    out.push('}');
    out
}

impl Owned {
    /// This owner's identifier (see [`manager_id`]).
    pub fn id(&self) -> String {
        manager_id(&self.manager, self.operation, &self.api_version, self.subresource.as_deref())
    }
}

/// The `managedFields` value of an object: `None` when absent or null.
pub fn managed_fields_of(obj: &Value) -> Option<&Value> {
    obj.get("metadata")?.get("managedFields").filter(|v| !v.is_null())
}

/// Whether a submitted list asks to reset managed fields: `[]`, or one entry with nothing set
/// (fieldmanager.go `isResetManagedFields`).
pub fn is_reset(list: &Value) -> bool {
    match list.as_array().map(Vec::as_slice) {
        Some([]) => true,
        Some([Value::Object(m)]) => m.values().all(|v| match v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            _ => false,
        }),
        _ => false,
    }
}

/// Decodes `metadata.managedFields` (absent or null: no managers).
///
/// # Errors
/// [`ManagedFieldsError`] naming the first bad entry, as kube's `DecodeManagedFields` checks:
/// operation Apply or Update, non-empty apiVersion, fieldsType `FieldsV1`, decodable fieldsV1.
pub fn decode(list: Option<&Value>) -> Result<Managed, ManagedFieldsError> {
    let mut managed = Managed::new();
    let Some(list) = list.filter(|v| !v.is_null()) else { return Ok(managed) };
    let items = list.as_array().ok_or(ManagedFieldsError::NotAList)?;
    for (index, item) in items.iter().enumerate() {
        let entry: ManagedFieldsEntry = serde_json::from_value(item.clone())
            .map_err(|e| ManagedFieldsError::InvalidEntry { index, reason: e.to_string() })?;
        if entry.api_version.is_empty() {
            return Err(ManagedFieldsError::MissingApiVersion { index, manager: entry.manager });
        }
        if entry.fields_type != "FieldsV1" {
            return Err(ManagedFieldsError::InvalidFieldsType {
                index,
                manager: entry.manager,
                fields_type: entry.fields_type,
            });
        }
        let set = match &entry.fields_v1 {
            None => Set::new(),
            Some(v) => Set::from_fields_v1(v).map_err(|source| ManagedFieldsError::InvalidFieldsV1 {
                index,
                manager: entry.manager.clone(),
                source,
            })?,
        };
        let owned = Owned {
            manager: entry.manager,
            operation: entry.operation,
            api_version: entry.api_version,
            subresource: entry.subresource.filter(|s| !s.is_empty()),
            time: entry.time,
            set,
        };
        managed.insert(owned.id(), owned);
    }
    Ok(managed)
}

/// Seconds since the epoch of an RFC 3339 time (0 when absent or unparsable, as kube treats a
/// nil time).
pub fn unix_seconds(time: Option<&str>) -> i64 {
    time.and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

/// The entries for `managed`, sorted as kube sorts them: Apply before Update, then by time,
/// manager, apiVersion, subresource. Empty sets are not written.
pub fn encode(managed: &Managed) -> Vec<ManagedFieldsEntry> {
    let mut entries: Vec<ManagedFieldsEntry> = managed
        .values()
        .filter(|o| !o.set.is_empty())
        .map(|o| ManagedFieldsEntry {
            manager: o.manager.clone(),
            operation: o.operation,
            api_version: o.api_version.clone(),
            time: o.time.clone(),
            fields_type: "FieldsV1".to_owned(),
            fields_v1: Some(o.set.to_fields_v1()),
            subresource: o.subresource.clone(),
        })
        .collect();
    entries.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then_with(|| unix_seconds(p.time.as_deref()).cmp(&unix_seconds(q.time.as_deref())))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.as_deref().unwrap_or("").cmp(q.subresource.as_deref().unwrap_or("")))
    });
    entries
}

/// Writes `managed` into `obj.metadata.managedFields` (removing the field when there are no
/// entries, as kube stores nil).
///
/// # Errors
/// [`ManagedFieldsError::NotAnObject`] when `obj` or its metadata is not an object.
pub fn write(obj: &mut Value, managed: &Managed) -> Result<(), ManagedFieldsError> {
    write_list(obj, to_list(managed))
}

/// Writes `list` (as [`to_list`] makes it) into `obj.metadata.managedFields`, as [`write`].
///
/// # Errors
/// As [`write`].
pub fn write_list(obj: &mut Value, list: Vec<Value>) -> Result<(), ManagedFieldsError> {
    let root = obj.as_object_mut().ok_or(ManagedFieldsError::NotAnObject)?;
    let meta = root.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
    let meta = meta.as_object_mut().ok_or(ManagedFieldsError::NotAnObject)?;
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".to_owned(), Value::Array(list));
    }
    Ok(())
}

/// The `metadata.managedFields` list of `managed`, as [`write`] stores it (empty when there
/// are no entries).
pub fn to_list(managed: &Managed) -> Vec<Value> {
    encode(managed).iter().filter_map(|e| serde_json::to_value(e).ok()).collect()
}
