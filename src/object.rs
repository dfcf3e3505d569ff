//! The dynamic object: Kubernetes `metadata` plus the rest of the JSON document.
//!
//! The storage layer is untyped like Kubernetes' unstructured objects. [`Object`] keeps
//! `apiVersion`, `kind` and a typed [`ObjectMeta`]; every other top-level field (`spec`,
//! `data`, `status`, ...) stays JSON in [`Object::fields`]. Field names are Kubernetes'
//! camelCase, so kubectl reads what apistore serves.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Kubernetes `metav1.ObjectMeta` (the fields a storage layer and its clients use).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `metadata.name`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `metadata.generateName`: prefix for a server-generated name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generate_name: String,
    /// `metadata.namespace` (empty for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// `metadata.selfLink` (deprecated; never persisted).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub self_link: String,
    /// `metadata.uid`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// `metadata.resourceVersion`: the backend revision of the last write, as decimal.
    /// Never persisted; set by the storage on every read.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// `metadata.generation`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
    /// `metadata.creationTimestamp` (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// `metadata.deletionTimestamp` (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// `metadata.deletionGracePeriodSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    /// `metadata.labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `metadata.ownerReferences` (kept as JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<Value>,
    /// `metadata.finalizers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// `metadata.managedFields` (kept as JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<Value>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A dynamic Kubernetes object.
///
/// Serializes as one flat JSON document: `apiVersion`, `kind`, `metadata`, then the other
/// fields in their order. An empty `apiVersion`/`kind` is omitted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object {
    /// `apiVersion`, e.g. `v1` or `apps/v1`.
    pub api_version: String,
    /// `kind`, e.g. `ConfigMap`.
    pub kind: String,
    /// `metadata`.
    pub metadata: ObjectMeta,
    /// Every other top-level field (`spec`, `data`, `status`, ...).
    pub fields: Map<String, Value>,
}

impl Object {
    /// A new object of `api_version`/`kind` named `name` in `namespace` ("" = cluster scope).
    pub fn new(api_version: &str, kind: &str, namespace: &str, name: &str) -> Self {
        Object {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            metadata: ObjectMeta { name: name.to_owned(), namespace: namespace.to_owned(), ..Default::default() },
            fields: Map::new(),
        }
    }

    /// Sets a top-level field and returns the object (builder style).
    pub fn with_field(mut self, name: &str, value: Value) -> Self {
        self.fields.insert(name.to_owned(), value);
        self
    }

    /// Sets a label and returns the object (builder style).
    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        self.metadata.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The object's resourceVersion parsed as a revision ("" → 0).
    ///
    /// Errors: [`Error::Invalid`](crate::Error::Invalid) when it is not a decimal number.
    pub fn resource_version(&self) -> crate::Result<u64> {
        crate::version::parse_resource_version(&self.metadata.resource_version)
    }

    /// Looks up a field by a dotted path (`metadata.name`, `spec.nodeName`) and renders it
    /// as a field-selector value: strings as-is, numbers and booleans in JSON form.
    /// Returns None for missing paths and for objects/arrays.
    pub fn field_value(&self, path: &str) -> Option<String> {
        match path {
            "metadata.name" => return Some(self.metadata.name.clone()),
            "metadata.namespace" => return Some(self.metadata.namespace.clone()),
            "metadata.uid" => return Some(self.metadata.uid.clone()),
            "metadata.resourceVersion" => return Some(self.metadata.resource_version.clone()),
            "kind" => return Some(self.kind.clone()),
            "apiVersion" => return Some(self.api_version.clone()),
            _ => {}
        }
        let mut segments = path.split('.');
        let first = segments.next()?;
        let mut current = if first == "metadata" {
            // Rare: other metadata fields go through a JSON rendering of the metadata.
            let meta = serde_json::to_value(&self.metadata).ok()?;
            return lookup(&meta, segments);
        } else {
            self.fields.get(first)?
        };
        for segment in segments {
            current = current.get(segment)?;
        }
        scalar(current)
    }

    /// Encodes the object as JSON bytes.
    pub fn to_json(&self) -> crate::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(128);
        self.write_json(&mut out)?;
        Ok(out)
    }

    /// Appends the object's JSON (the bytes [`Object::to_json`] returns) to `out`.
    /// Errors: [`Error::Internal`](crate::Error::Internal) when encoding fails.
    pub fn write_json(&self, out: &mut Vec<u8>) -> crate::Result<()> {
        serde_json::to_writer(out, self).map_err(|e| crate::Error::internal(format!("encoding object: {e}")))
    }

    /// Decodes an object from JSON bytes. Errors: [`Error::BadRequest`](crate::Error::BadRequest)
    /// naming the JSON problem.
    pub fn from_json(bytes: &[u8]) -> crate::Result<Self> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

fn lookup<'a>(value: &Value, segments: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut current = value;
    for segment in segments {
        current = current.get(segment)?;
    }
    scalar(current)
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if !self.api_version.is_empty() {
            map.serialize_entry("apiVersion", &self.api_version)?;
        }
        if !self.kind.is_empty() {
            map.serialize_entry("kind", &self.kind)?;
        }
        map.serialize_entry("metadata", &self.metadata)?;
        for (k, v) in &self.fields {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object with apiVersion, kind and metadata")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Object, A::Error> {
                let mut object = Object::default();
                let mut seen_metadata = false;
                while let Some(key) = access.next_key::<String>()? {
                    match key.as_str() {
                        "apiVersion" => object.api_version = access.next_value::<Option<String>>()?.unwrap_or_default(),
                        "kind" => object.kind = access.next_value::<Option<String>>()?.unwrap_or_default(),
                        "metadata" => {
                            if seen_metadata {
                                return Err(de::Error::duplicate_field("metadata"));
                            }
                            seen_metadata = true;
                            object.metadata = access.next_value::<Option<ObjectMeta>>()?.unwrap_or_default();
                        }
                        _ => {
                            let value: Value = access.next_value()?;
                            object.fields.insert(key, value);
                        }
                    }
                }
                Ok(object)
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_a_configmap() {
        let doc = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "ns", "labels": {"app": "x"}, "resourceVersion": "7"},
            "data": {"k": "v"}
        });
        let object: Object = serde_json::from_value(doc.clone()).expect("decode");
        assert_eq!(object.metadata.name, "a");
        assert_eq!(object.resource_version(), Ok(7));
        assert_eq!(object.field_value("data.k").as_deref(), Some("v"));
        assert_eq!(object.field_value("metadata.namespace").as_deref(), Some("ns"));
        assert_eq!(object.field_value("metadata.labels.app").as_deref(), Some("x"));
        assert_eq!(object.field_value("spec.missing"), None);
        assert_eq!(serde_json::to_value(&object).expect("encode"), doc);
    }

    #[test]
    fn rejects_non_objects() {
        assert!(Object::from_json(b"[1,2]").is_err());
        assert!(Object::from_json(b"{\"metadata\": 5}").is_err());
        assert!(Object::from_json(b"{not json").is_err());
    }
}
