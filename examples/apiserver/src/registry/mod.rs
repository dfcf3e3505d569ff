//! Strategies per kind, as k8s.io/apiserver `pkg/registry/rest` and each kind's
//! `strategy.go`: what a create or update prepares (fields clients may not set, defaults),
//! what makes an object valid, how a kind is printed in a Table and stored.
//!
//! The generic steps every kind shares (uid, creationTimestamp, generation, status kept apart
//! from spec, `metadata` validation) live in [`crate::handlers`]; a strategy holds only what
//! differs per kind.

mod configmap;
mod crd;
mod custom;
mod custom_resource;
mod deployment;
mod event;
mod namespace;
mod rbac;
mod secret;

pub use configmap::ConfigMapStrategy;
pub use crd::CrdStrategy;
pub use custom::CustomStrategy;
pub use custom_resource::CustomResourceStrategy;
pub use deployment::DeploymentStrategy;
pub use event::{CoreEventStrategy, EventsV1Strategy};
pub use namespace::NamespaceStrategy;
pub use rbac::{AccessReviewStrategy, RbacStrategy};
pub use secret::SecretStrategy;

use apistore::Object;
use serde_json::{json, Value};

use crate::validation::FieldError;

/// One Table column a kind prints between `Name` and `Age`.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Header, e.g. `Data`.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: String,
    /// Column format (`name`, ...), usually empty.
    pub format: String,
    /// What the column shows.
    pub description: String,
    /// 0 for default columns, more for `-o wide` only.
    pub priority: i64,
}

impl Column {
    /// A string column of priority 0.
    pub fn string(name: &str, description: &str) -> Column {
        Column {
            name: name.into(),
            kind: "string".into(),
            format: String::new(),
            description: description.into(),
            priority: 0,
        }
    }

    /// The column's `columnDefinitions` entry.
    pub fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// What differs per kind. Every method has the behaviour of a kind without special rules.
pub trait Strategy: Send + Sync {
    /// True when `status` is a subresource: writes to the main resource keep the stored
    /// status, writes to `/status` change only it.
    fn has_status(&self) -> bool {
        false
    }

    /// True when the kind serves an autoscaling/v1 `scale` subresource.
    fn has_scale(&self) -> bool {
        false
    }

    /// Where a custom resource's Scale reads and writes (None: the kind's own rules, as
    /// deployments have).
    fn scale_paths(&self) -> Option<crate::scale::ScalePaths> {
        None
    }

    /// The type tree server-side apply merges this kind with (None: the built-in schema of
    /// the kind, [`crate::managedfields::schema::builtin`]).
    fn merge_schema(&self) -> Option<crate::managedfields::schema::Node> {
        None
    }

    /// True when `metadata.generation` counts spec changes.
    fn tracks_generation(&self) -> bool {
        false
    }

    /// True when `field` may be used in a field selector, beyond `metadata.name` and
    /// `metadata.namespace` (which every kind supports).
    fn selectable_field(&self, _field: &str) -> bool {
        false
    }

    /// The verbs discovery lists (every verb, unless the kind serves fewer).
    fn verbs(&self) -> &'static [&'static str] {
        crate::resources::VERBS
    }

    /// Discovery categories (`all`).
    fn categories(&self) -> Vec<String> {
        Vec::new()
    }

    /// Marks an object a delete keeps (kube's graceful deletion): true when the kind keeps
    /// every deleted object until a finalizer of its own is done (CRDs: their objects'
    /// cleanup), having set what the kind sets; objects with finalizers are kept whatever this
    /// says. The handler sets `deletionTimestamp` when the kind did not.
    fn prepare_for_delete(&self, _object: &mut Object) -> bool {
        false
    }

    /// The fields of `object` (API shape) its schema does not know, as paths
    /// (`spec.foo`): what pruning would drop. Kinds without a schema know every field.
    fn unknown_fields(&self, _object: &Object) -> Vec<String> {
        Vec::new()
    }

    /// `Warning` headers for requests to this resource (a deprecated CRD version).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// Defaults a new object (kube's `PrepareForCreate` + defaulting), before validation.
    fn prepare_for_create(&self, _object: &mut Object) {}

    /// Prepares an update of `old` into `object` (kube's `PrepareForUpdate`), before
    /// validation.
    fn prepare_for_update(&self, _object: &mut Object, _old: &Object) {}

    /// The field errors of an object about to be written (empty: valid).
    fn validate(&self, _object: &Object) -> Vec<FieldError> {
        Vec::new()
    }

    /// The field errors of an update (default: those of the new object).
    fn validate_update(&self, object: &Object, _old: &Object) -> Vec<FieldError> {
        self.validate(object)
    }

    /// The kind's Table columns between `Name` and `Age`.
    fn columns(&self) -> Vec<Column> {
        Vec::new()
    }

    /// The cells of [`Strategy::columns`] for `object` (served shape).
    fn cells(&self, _object: &Object) -> Vec<Value> {
        Vec::new()
    }

    /// True when the Table ends with an `Age` column (custom resources with printer columns
    /// print their own).
    fn prints_age(&self) -> bool {
        true
    }

    /// The object as stored, from the served shape (kinds whose API version is converted).
    fn to_storage(&self, object: Object) -> Object {
        object
    }

    /// True when [`Strategy::to_served`] returns the stored object unchanged, so the stored
    /// bytes (with the served apiVersion/kind) can be written into responses as they are.
    fn serves_stored_form(&self) -> bool {
        true
    }

    /// The object as served, from the stored shape.
    fn to_served(&self, object: Object) -> Object {
        object
    }
}

/// Field errors of `metadata` every kind shares: label keys and values.
pub fn validate_object_meta(object: &Object) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (key, value) in object.metadata.labels.iter() {
        if !valid_label_key(key) {
            errors.push(FieldError::invalid("metadata.labels", json!(key), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
        }
        if !valid_label_value(value) {
            errors.push(FieldError::invalid(format!("metadata.labels.{key}"), json!(value), "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"));
        }
    }
    errors
}

fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn valid_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(apistore::names::is_dns1123_subdomain) && !name.is_empty() && valid_label_value(name)
}

/// The string at `path` of `object`'s fields ("" when absent).
pub fn str_at<'a>(object: &'a Object, path: &[&str]) -> &'a str {
    value_at(object, path).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `path` of `object`'s fields (0 when absent).
pub fn int_at(object: &Object, path: &[&str]) -> i64 {
    value_at(object, path).and_then(Value::as_i64).unwrap_or(0)
}

/// The value at `path` of `object`'s fields.
pub fn value_at<'a>(object: &'a Object, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(object.fields.get(*first)?, |v, segment| v.get(*segment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_rules() {
        let mut object = Object::new("v1", "ConfigMap", "default", "a");
        object.metadata.labels.insert("app".into(), "web".into());
        assert!(validate_object_meta(&object).is_empty());
        object.metadata.labels.insert("bad key!".into(), "x".into());
        object.metadata.labels.insert("ok".into(), "-bad".into());
        let errors = validate_object_meta(&object);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.field == "metadata.labels"));
        assert!(errors.iter().any(|e| e.field == "metadata.labels.ok"));
    }
}
