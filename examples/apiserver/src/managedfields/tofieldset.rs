//! The set of fields an object holds, by its schema (SMD `typed/tofieldset.go`): what an
//! applied configuration claims.

use super::fieldpath::{PathElement, Set};
use super::schema::Node;
use super::typed::{self, Atom};
use serde_json::Value;
use std::collections::BTreeSet;

/// The fields of `v` typed by `node`: scalars and atomic maps/lists as leaves; items of set and
/// map lists as members themselves (and their fields below them); a map field is a member
/// itself when it is null, an empty object, or not a declared field (a `map[string]T` key or a
/// deduced object's field). Duplicate list items are owned as one atomic member.
pub fn to_field_set(v: &Value, node: &Node) -> Set {
    let mut set = Set::new();
    walk(v, node, &mut Vec::new(), &mut set);
    set
}

fn walk(v: &Value, node: &Node, path: &mut Vec<PathElement>, set: &mut Set) {
    let atom = Atom::of(node, v);
    if atom.atomic() {
        set.insert(path);
        return;
    }
    match atom {
        Atom::Scalar => {}
        Atom::Map { node, .. } => {
            let Value::Object(m) = v else { return };
            for (k, child) in m {
                path.push(PathElement::Field(k.clone()));
                walk(child, node.field(k), path, set);
                let empty_map = matches!(child, Value::Object(o) if o.is_empty());
                if child.is_null() || empty_map || !typed::declares(node, k) {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Atom::List { kind, items } => {
            let Value::Array(list) = v else { return };
            let pes = typed::item_path_elements(kind, items, list);
            let mut seen = BTreeSet::new();
            let mut duplicates = BTreeSet::new();
            for pe in &pes {
                if !seen.insert(pe) && duplicates.insert(pe) {
                    path.push(pe.clone());
                    set.insert(path);
                    path.pop();
                }
            }
            for (pe, item) in pes.iter().zip(list) {
                if duplicates.contains(pe) {
                    continue;
                }
                path.push(pe.clone());
                walk(item, items, path, set);
                set.insert(path);
                path.pop();
            }
        }
    }
}

/// `set` with every declared field that has members below it made a member itself (SMD
/// `EnsureNamedFieldsAreMembers`), so that removing by the set also removes struct fields
/// whose content nobody owns.
pub fn ensure_named_fields_are_members(set: &Set, node: Option<&Node>) -> Set {
    let mut out = Set { members: set.members.clone(), children: Default::default() };
    for (pe, child) in &set.children {
        let child_node = match (pe, node) {
            (PathElement::Field(name), Some(n @ (Node::Map { .. } | Node::Deduced))) => {
                if typed::declares(n, name) {
                    out.members.insert(pe.clone());
                }
                Some(n.field(name))
            }
            (PathElement::Key(_), Some(Node::List { items, .. })) => Some(&**items),
            (PathElement::Key(_), Some(Node::Deduced)) => Some(&Node::Deduced),
            _ => None,
        };
        out.children.insert(pe.clone(), ensure_named_fields_are_members(child, child_node));
    }
    out
}
