//! Pruning (apiextensions-apiserver `pkg/apiserver/schema/pruning`, `defaulting/prunenulls.go`):
//! fields the schema does not specify are dropped, unless a node says
//! `x-kubernetes-preserve-unknown-fields: true`; at the resource root and in
//! `x-kubernetes-embedded-resource` objects `apiVersion`, `kind` and `metadata` stay.
//! The dropped paths are returned, sorted, for the `unknown field "spec.foo"` warnings.

use serde_json::Value;

use super::schema::{AdditionalProperties, SchemaNode, StructuralSchema};

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

impl StructuralSchema {
    /// Drops unknown fields from a custom resource; returns their paths (`spec.foo`,
    /// `spec.items[0].bar`), sorted.
    pub fn prune(&self, object: &mut Value) -> Vec<String> {
        let root = SchemaNode { embedded_resource: true, ..self.root.clone() };
        let mut pruned = Vec::new();
        prune(object, Some(&root), "", &mut pruned);
        pruned.sort();
        pruned
    }

    /// Drops `null` values of fields that are neither nullable nor defaulted
    /// (`PruneNonNullableNullsWithoutDefaults`).
    pub fn prune_nulls(&self, object: &mut Value) {
        prune_nulls(object, Some(&self.root));
    }

    /// What kube does to a custom resource on decode and on read from storage: defaults,
    /// then prunes unknown fields and non-nullable nulls. Returns the pruned paths.
    pub fn coerce(&self, object: &mut Value) -> Vec<String> {
        self.default(object);
        let pruned = self.prune(object);
        self.prune_nulls(object);
        pruned
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn field_schema<'a>(s: &'a SchemaNode, key: &str) -> Option<Option<&'a SchemaNode>> {
    if let Some(p) = s.properties.get(key) {
        return Some(Some(p));
    }
    s.additional_properties.as_ref().map(AdditionalProperties::schema)
}

fn prune(x: &mut Value, s: Option<&SchemaNode>, path: &str, pruned: &mut Vec<String>) {
    if let Some(s) = s.filter(|s| s.preserves_unknown()) {
        skip_prune(x, s, path, pruned);
        return;
    }
    match x {
        Value::Object(map) => {
            let Some(s) = s else {
                pruned.extend(map.keys().map(|k| join(path, k)));
                map.clear();
                return;
            };
            map.retain(|k, v| {
                if s.embedded_resource && META_FIELDS.contains(&k.as_str()) {
                    return true;
                }
                match field_schema(s, k) {
                    Some(sub) => {
                        prune(v, sub, &join(path, k), pruned);
                        true
                    }
                    None => {
                        if !META_FIELDS.contains(&k.as_str()) || !path.is_empty() {
                            pruned.push(join(path, k));
                        }
                        false
                    }
                }
            });
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            for (i, item) in items.iter_mut().enumerate() {
                prune(item, item_schema, &format!("{path}[{i}]"), pruned);
            }
        }
        _ => {}
    }
}

fn skip_prune(x: &mut Value, s: &SchemaNode, path: &str, pruned: &mut Vec<String>) {
    match x {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if s.embedded_resource && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(sub) = field_schema(s, k) {
                    prune(v, sub, &join(path, k), pruned);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.items.as_deref() {
                for (i, item) in items.iter_mut().enumerate() {
                    skip_prune(item, item_schema, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

fn prune_nulls(x: &mut Value, s: Option<&SchemaNode>) {
    match x {
        Value::Object(map) => map.retain(|k, v| {
            let sub = s.and_then(|s| field_schema(s, k)).flatten();
            let drop = v.is_null() && sub.is_some_and(|sub| !sub.nullable && sub.default.is_none());
            if !drop {
                prune_nulls(v, sub);
            }
            !drop
        }),
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            for item in items {
                prune_nulls(item, item_schema);
            }
        }
        _ => {}
    }
}
