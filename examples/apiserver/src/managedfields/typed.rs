//! How a schema [`Node`] applies to a value (SMD `typed/helpers.go`): the atom a value is
//! handled as, and the path element of a list item.

use super::fieldpath::PathElement;
use super::schema::{ListKind, Node};
use serde_json::Value;

/// What a node handles a value as (SMD's `deduceAtom` + `handleAtom`).
#[derive(Clone, Copy, Debug)]
pub enum Atom<'a> {
    /// A leaf.
    Scalar,
    /// A map: `node` resolves its fields' types.
    Map {
        /// The map's node (`Node::Map` or `Node::Deduced`).
        node: &'a Node,
        /// Owned and replaced as a whole.
        atomic: bool,
    },
    /// A list.
    List {
        /// How it merges.
        kind: &'a ListKind,
        /// Its items' type.
        items: &'a Node,
    },
}

static SCALAR_ITEMS: Node = Node::Scalar;
static ATOMIC: ListKind = ListKind::Atomic;

impl<'a> Atom<'a> {
    /// The atom `node` handles `v` as. Typed nodes decide alone (a value of another shape is
    /// then treated as absent content); a deduced node follows the value: objects (and null)
    /// granular maps, lists atomic, anything else a scalar.
    pub fn of(node: &'a Node, v: &Value) -> Atom<'a> {
        match node {
            Node::Scalar | Node::DefaultedScalar(_) => Atom::Scalar,
            Node::Map { atomic, .. } => Atom::Map { node, atomic: *atomic },
            Node::List { kind, items } => Atom::List { kind, items },
            Node::Deduced => match v {
                Value::Object(_) | Value::Null => Atom::Map { node, atomic: false },
                Value::Array(_) => Atom::List { kind: &ATOMIC, items: &SCALAR_ITEMS },
                _ => Atom::Scalar,
            },
        }
    }

    /// Whether two atoms of the same node are the same (SMD compares the resolved schema
    /// atoms; of one node they differ only for deduced values of different shapes).
    pub fn same(&self, other: &Atom<'_>) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    /// Whether this atom is owned and replaced as a whole.
    pub fn atomic(&self) -> bool {
        match self {
            Atom::Scalar => true,
            Atom::Map { atomic, .. } => *atomic,
            Atom::List { kind, .. } => **kind == ListKind::Atomic,
        }
    }
}

/// Whether `name` is a declared field of `node` (a struct field in SMD terms: not a key of a
/// `map[string]T` nor of a deduced object).
pub fn declares(node: &Node, name: &str) -> bool {
    matches!(node, Node::Map { fields, .. } if fields.contains_key(name))
}

/// The path element of an item of a set or map list (SMD `listItemToPathElement`).
///
/// # Errors
/// The text SMD reports: a map-list item that is not an object or omits every key (with no
/// default), a set item that is a map, list or null.
pub fn item_path_element(kind: &ListKind, items: &Node, item: &Value) -> Result<PathElement, String> {
    match kind {
        ListKind::Atomic => Err("invalid indexing of non-associative list".to_owned()),
        ListKind::Map(keys) if !keys.is_empty() => {
            let obj = match item {
                Value::Null => return Err("associative list with keys may not have a null element".to_owned()),
                Value::Object(obj) => obj,
                _ => return Err("associative list with keys may not have non-map elements".to_owned()),
            };
            let mut fields = Vec::with_capacity(keys.len());
            for key in keys {
                if let Some(v) = obj.get(key) {
                    fields.push((key.clone(), v.clone()));
                } else if let Node::DefaultedScalar(default) = items.field(key) {
                    fields.push((key.clone(), default.clone()));
                }
            }
            if fields.is_empty() {
                let quoted: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
                return Err(format!(
                    "associative list with keys has an element that omits all key fields [{}] (and doesn't have default values for any key fields)",
                    quoted.join(" ")
                ));
            }
            Ok(PathElement::key(fields))
        }
        ListKind::Map(_) | ListKind::Set => match item {
            Value::Object(_) => Err("associative list without keys has an element that's a map type".to_owned()),
            Value::Array(_) => Err("not supported: associative list with lists as elements".to_owned()),
            Value::Null => Err("associative list without keys has an element that's an explicit null".to_owned()),
            v => Ok(PathElement::Value(v.clone())),
        },
    }
}

/// The path elements of a granular list's items. Items that cannot be keyed get their index
/// (SMD would fail; live objects must not make ownership tracking fail).
pub fn item_path_elements(kind: &ListKind, items: &Node, list: &[Value]) -> Vec<PathElement> {
    list.iter()
        .enumerate()
        .map(|(i, item)| item_path_element(kind, items, item).unwrap_or(PathElement::Index(i as i64)))
        .collect()
}
