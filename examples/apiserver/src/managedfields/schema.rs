//! The type information server-side apply merges with (structured-merge-diff's schema, as
//! kube-openapi's `schemaconv` derives it): which maps are granular or atomic, which lists
//! are atomic, sets, or maps keyed by some of their items' fields.
//!
//! Built-in kinds get theirs from [`builtin`]; a CustomResourceDefinition's version gets its
//! tree from its `openAPIV3Schema` (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type`). Anything a schema does not describe is [`Node::Deduced`]:
//! objects granular, lists atomic, as structured-merge-diff's deduced type.

use std::collections::BTreeMap;

mod builtin;
#[allow(unused_imports)] // builtin and metadata: for the handlers and the CRD schema builder
pub use builtin::{builtin, deduced_kind, metadata, zero_object};

/// How a list merges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// Replaced as a whole; owned as one field (the default for lists).
    Atomic,
    /// A set of scalars (`x-kubernetes-list-type: set`), items `v:<json>`.
    Set,
    /// A map of objects keyed by these fields (`x-kubernetes-list-type: map` +
    /// `x-kubernetes-list-map-keys`), items `k:{...}`.
    Map(Vec<String>),
}

/// The type of one node of an object.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// A scalar (string, number, boolean, null): owned as a leaf.
    Scalar,
    /// A scalar with a schema `default`: the value a map list's item takes for this key field
    /// when it omits it (container ports' `protocol` defaults to `"TCP"`, so
    /// `k:{"containerPort":80,"protocol":"TCP"}` even when the item omits `protocol`).
    DefaultedScalar(serde_json::Value),
    /// An object with known fields, and a type for any other field (`additionalProperties`).
    Map {
        /// Known fields.
        fields: BTreeMap<String, Node>,
        /// The type of fields not listed in `fields` (None: deduced).
        additional: Option<Box<Node>>,
        /// `x-kubernetes-map-type: atomic`: replaced and owned as a whole.
        atomic: bool,
    },
    /// A list of items of one type.
    List {
        /// How the list merges.
        kind: ListKind,
        /// The items' type.
        items: Box<Node>,
    },
    /// No type information: objects granular, lists atomic, other values scalars.
    Deduced,
}

impl Node {
    /// A granular map of these fields (others deduced).
    pub fn map<const N: usize>(fields: [(&str, Node); N]) -> Node {
        Node::Map {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            additional: None,
            atomic: false,
        }
    }

    /// A granular map whose every value is of type `values` (`map[string]T`).
    pub fn map_of(values: Node) -> Node {
        Node::Map { fields: BTreeMap::new(), additional: Some(Box::new(values)), atomic: false }
    }

    /// A list of objects keyed by `keys`.
    pub fn keyed_list(keys: &[&str], items: Node) -> Node {
        Node::List { kind: ListKind::Map(keys.iter().map(|k| (*k).to_owned()).collect()), items: Box::new(items) }
    }

    /// A set of scalars.
    pub fn set() -> Node {
        Node::List { kind: ListKind::Set, items: Box::new(Node::Scalar) }
    }

    /// An atomic list of `items`.
    pub fn atomic_list(items: Node) -> Node {
        Node::List { kind: ListKind::Atomic, items: Box::new(items) }
    }

    /// The type of field `name` of this node (Deduced when unknown or not a map).
    pub fn field(&self, name: &str) -> &Node {
        static DEDUCED: Node = Node::Deduced;
        match self {
            Node::Map { fields, additional, .. } => fields.get(name).or(additional.as_deref()).unwrap_or(&DEDUCED),
            _ => &DEDUCED,
        }
    }
}
