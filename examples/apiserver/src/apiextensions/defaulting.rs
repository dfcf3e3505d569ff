//! Defaulting (apiextensions-apiserver `pkg/apiserver/schema/defaulting`): `default` values
//! fill absent fields (and non-nullable nulls), from the outside in, so a defaulted object
//! gets its own nested defaults. Also the CRD-time check that every default validates
//! against its schema and survives pruning.

use serde_json::Value;

use super::schema::{child, key, AdditionalProperties, SchemaNode, StructuralSchema};
use crate::validation::FieldError;

impl StructuralSchema {
    /// Applies the schema's defaults to a custom resource.
    pub fn default(&self, object: &mut Value) {
        default(object, &self.root);
    }
}

fn non_nullable_null(x: &Value, s: &SchemaNode) -> bool {
    x.is_null() && !s.nullable
}

fn default(x: &mut Value, s: &SchemaNode) {
    match x {
        Value::Object(map) => {
            for (k, prop) in &s.properties {
                let Some(d) = &prop.default else { continue };
                if map.get(k).is_none_or(|v| non_nullable_null(v, prop)) {
                    map.insert(k.clone(), d.clone());
                }
            }
            let additional = s.additional_properties.as_ref().and_then(AdditionalProperties::schema);
            for (k, v) in map.iter_mut() {
                if let Some(prop) = s.properties.get(k) {
                    default(v, prop);
                } else if let Some(ap) = additional {
                    if non_nullable_null(v, ap) {
                        if let Some(d) = &ap.default {
                            *v = d.clone();
                        }
                    }
                    default(v, ap);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = s.items.as_deref() else { return };
            for item in items {
                if non_nullable_null(item, item_schema) {
                    if let Some(d) = &item_schema.default {
                        *item = d.clone();
                    }
                }
                default(item, item_schema);
            }
        }
        _ => {}
    }
}

/// `ValidateDefaults` (without CEL and metadata coercion): each default must have no unknown
/// fields and must validate against its own schema; errors at `<node>.default`.
pub(crate) fn validate_defaults(root: &SchemaNode, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    walk(root, path, true, false, &mut errs);
    errs
}

fn walk(s: &SchemaNode, path: &str, resource_root: bool, inside_meta: bool, errs: &mut Vec<FieldError>) {
    let resource_root = resource_root || s.embedded_resource;
    let inside_meta = inside_meta && !s.embedded_resource;
    if let (Some(d), false) = (&s.default, inside_meta) {
        let at = child(path, "default");
        let node = StructuralSchema { root: SchemaNode { embedded_resource: s.embedded_resource, ..s.clone() } };
        let mut probe = d.clone();
        let removed = prune_default(&node, &mut probe);
        if removed || probe != *d {
            errs.push(FieldError::invalid(&at, d.clone(), "must not have unknown fields"));
        }
        let found = node.validate_at(d, &at);
        errs.extend(found);
    }
    if let Some(items) = &s.items {
        walk(items, &child(path, "items"), false, inside_meta, errs);
    }
    for (k, p) in &s.properties {
        let meta = resource_root && ["metadata", "apiVersion", "kind"].contains(&k.as_str());
        walk(p, &key(&child(path, "properties"), k), false, inside_meta || meta, errs);
    }
}

/// Prunes a default as kube does (at a resource root only when embedded).
fn prune_default(node: &StructuralSchema, value: &mut Value) -> bool {
    if node.root.embedded_resource {
        !node.prune(value).is_empty()
    } else {
        let wrapper = StructuralSchema {
            root: SchemaNode {
                type_: "object".to_owned(),
                properties: [("x".to_owned(), node.root.clone())].into_iter().collect(),
                ..SchemaNode::default()
            },
        };
        let mut holder = serde_json::json!({ "x": value.take() });
        let removed = !wrapper.prune(&mut holder).is_empty();
        *value = holder.get_mut("x").map(Value::take).unwrap_or(Value::Null);
        removed
    }
}
