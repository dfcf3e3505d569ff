//! The server-side-apply type tree of a structural schema (kube-openapi
//! `pkg/schemaconv`): lists are atomic unless `x-kubernetes-list-type: set|map`, maps are
//! granular unless `x-kubernetes-map-type: atomic`, untyped and preserve-unknown nodes are
//! deduced. The root `metadata` (and that of embedded resources) is ObjectMeta's shape:
//! `finalizers` a set, `ownerReferences` keyed by `uid`.

use std::collections::BTreeMap;

use super::schema::{AdditionalProperties, SchemaNode, StructuralSchema};
use crate::managedfields::schema::{ListKind, Node};

impl StructuralSchema {
    /// The SSA type of a custom resource of this schema.
    pub fn smd_node(&self) -> Node {
        resource(&self.root)
    }
}

fn object_meta() -> Node {
    Node::map([
        ("finalizers", Node::set()),
        ("ownerReferences", Node::keyed_list(&["uid"], Node::Deduced)),
        ("labels", Node::map_of(Node::Scalar)),
        ("annotations", Node::map_of(Node::Scalar)),
    ])
}

/// A node that is a resource (the root, or `x-kubernetes-embedded-resource`).
fn resource(s: &SchemaNode) -> Node {
    match node(s) {
        Node::Map { mut fields, additional, atomic } => {
            fields.insert("metadata".to_owned(), object_meta());
            Node::Map { fields, additional, atomic }
        }
        other => other,
    }
}

fn node(s: &SchemaNode) -> Node {
    if s.embedded_resource {
        return resource(&SchemaNode { embedded_resource: false, ..s.clone() });
    }
    match s.type_.as_str() {
        "object" => map(s),
        "array" => list(s),
        "integer" | "number" | "string" | "boolean" => Node::Scalar,
        // Untyped (int-or-string, preserve-unknown): whatever the value turns out to be.
        _ if !s.properties.is_empty() => map(s),
        _ => Node::Deduced,
    }
}

fn map(s: &SchemaNode) -> Node {
    let fields: BTreeMap<String, Node> = s.properties.iter().map(|(k, p)| (k.clone(), node(p))).collect();
    let additional = match &s.additional_properties {
        Some(AdditionalProperties::Schema(ap)) => Some(Box::new(node(ap))),
        _ => None,
    };
    Node::Map { fields, additional, atomic: s.map_type.as_deref() == Some("atomic") }
}

fn list(s: &SchemaNode) -> Node {
    let kind = match s.list_type.as_deref() {
        Some("set") => ListKind::Set,
        Some("map") => ListKind::Map(s.list_map_keys.clone()),
        _ => ListKind::Atomic,
    };
    let items = s.items.as_deref().map_or(Node::Deduced, node);
    Node::List { kind, items: Box::new(items) }
}
