//! Removing a set of fields from an object, by schema (SMD `typed/remove.go`): how apply
//! prunes what its manager stopped applying.

use super::fieldpath::{PathElement, Set};
use super::schema::Node;
use super::typed::{self, Atom};
use serde_json::{Map, Value};

/// `v` without the members of `to_remove` (a member removes the field or item with all it
/// holds). Atomic and empty values are kept whole; a map or list left empty by removal is
/// dropped from its parent (kube stores no empty remnant).
pub fn remove_items(v: &Value, to_remove: &Set, node: &Node) -> Option<Value> {
    match Atom::of(node, v) {
        Atom::Scalar => Some(v.clone()),
        atom @ Atom::Map { node, .. } => {
            let Value::Object(m) = v else { return Some(v.clone()) };
            if m.is_empty() || atom.atomic() {
                return Some(v.clone());
            }
            let mut out = Map::new();
            for (k, child) in m {
                let pe = PathElement::Field(k.clone());
                if to_remove.members.contains(&pe) {
                    continue;
                }
                match to_remove.children.get(&pe) {
                    Some(sub) => {
                        if let Some(kept) = remove_items(child, sub, node.field(k)) {
                            out.insert(k.clone(), kept);
                        }
                    }
                    None => {
                        out.insert(k.clone(), child.clone());
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        atom @ Atom::List { kind, items } => {
            let Value::Array(list) = v else { return Some(v.clone()) };
            if list.is_empty() || atom.atomic() {
                return Some(v.clone());
            }
            let mut out = Vec::with_capacity(list.len());
            for (pe, item) in typed::item_path_elements(kind, items, list).into_iter().zip(list) {
                if to_remove.members.contains(&pe) {
                    continue;
                }
                match to_remove.children.get(&pe) {
                    Some(sub) => out.extend(remove_items(item, sub, items)),
                    None => out.push(item.clone()),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
    }
}
