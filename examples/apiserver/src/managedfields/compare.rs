//! What a write changed, by schema (SMD `typed/compare.go`).

use super::fieldpath::{PathElement, Set};
use super::schema::Node;
use super::typed::{self, Atom};
use super::value;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The fields a write removed, modified and added. Leaves are modified when their value
/// changed; maps, lists and list items that appear or disappear as a whole are themselves
/// members of `added`/`removed` (with all their fields).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Fields the old object had and the new one lacks.
    pub removed: Set,
    /// Leaves (and atomic values) whose value changed.
    pub modified: Set,
    /// Fields the new object has and the old one lacked.
    pub added: Set,
}

/// Compares `old` with `new` (either may be absent: a create, a delete).
pub fn compare(old: Option<&Value>, new: Option<&Value>, node: &Node) -> Comparison {
    let mut c = Comparison::default();
    if old.is_some() || new.is_some() {
        walk(old, new, node, &mut Vec::new(), &mut c);
    }
    c
}

fn walk(l: Option<&Value>, r: Option<&Value>, node: &Node, path: &mut Vec<PathElement>, c: &mut Comparison) {
    let null = Value::Null;
    let la = Atom::of(node, l.unwrap_or(&null));
    let ra = Atom::of(node, r.unwrap_or(&null));
    let mut in_leaf = false;
    match (l, r) {
        (_, None) => handle(la, l, r, path, c, &mut in_leaf),
        (None, _) => handle(ra, l, r, path, c, &mut in_leaf),
        _ if la.same(&ra) => handle(ra, l, r, path, c, &mut in_leaf),
        _ => {
            let mut lhs_leaf = false;
            handle(la, l, r, path, c, &mut lhs_leaf);
            handle(ra, l, r, path, c, &mut in_leaf);
        }
    }
    if !in_leaf {
        if l.is_none() {
            c.added.insert(path);
        } else if r.is_none() {
            c.removed.insert(path);
        }
    }
}

fn leaf(l: Option<&Value>, r: Option<&Value>, path: &[PathElement], c: &mut Comparison, in_leaf: &mut bool) {
    if *in_leaf {
        return;
    }
    *in_leaf = true;
    match (l, r) {
        (None, _) => c.added.insert(path),
        (_, None) => c.removed.insert(path),
        (Some(l), Some(r)) if !value::equals(l, r) => c.modified.insert(path),
        _ => {}
    }
}

fn handle(
    atom: Atom<'_>,
    l: Option<&Value>,
    r: Option<&Value>,
    path: &mut Vec<PathElement>,
    c: &mut Comparison,
    in_leaf: &mut bool,
) {
    match atom {
        Atom::Scalar => leaf(l, r, path, c, in_leaf),
        Atom::Map { node, atomic } => {
            let lm = l.and_then(Value::as_object);
            let rm = r.and_then(Value::as_object);
            let empty = lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty);
            if atomic || empty {
                return leaf(l, r, path, c, in_leaf);
            }
            let mut keys: Vec<&String> =
                lm.into_iter().flat_map(Map::keys).chain(rm.into_iter().flat_map(Map::keys)).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                path.push(PathElement::Field(k.clone()));
                walk(lm.and_then(|m| m.get(k)), rm.and_then(|m| m.get(k)), node.field(k), path, c);
                path.pop();
            }
        }
        Atom::List { kind, items } => {
            let ll = l.and_then(Value::as_array);
            let rl = r.and_then(Value::as_array);
            let empty = ll.is_none_or(Vec::is_empty) && rl.is_none_or(Vec::is_empty);
            if atom.atomic() || empty {
                return leaf(l, r, path, c, in_leaf);
            }
            list_items(
                kind,
                items,
                ll.map(Vec::as_slice).unwrap_or(&[]),
                rl.map(Vec::as_slice).unwrap_or(&[]),
                path,
                c,
            );
        }
    }
}

fn list_items(
    kind: &super::schema::ListKind,
    items: &Node,
    ll: &[Value],
    rl: &[Value],
    path: &mut Vec<PathElement>,
    c: &mut Comparison,
) {
    // Items by path element, in first-seen order (left, then items only the right has).
    let mut order: Vec<PathElement> = Vec::new();
    let mut lv: BTreeMap<PathElement, Vec<&Value>> = BTreeMap::new();
    let mut rv: BTreeMap<PathElement, Vec<&Value>> = BTreeMap::new();
    for (pe, item) in typed::item_path_elements(kind, items, ll).into_iter().zip(ll) {
        let entry = lv.entry(pe.clone()).or_default();
        if entry.is_empty() {
            order.push(pe);
        }
        entry.push(item);
    }
    for (pe, item) in typed::item_path_elements(kind, items, rl).into_iter().zip(rl) {
        let entry = rv.entry(pe.clone()).or_default();
        if entry.is_empty() && !lv.contains_key(&pe) {
            order.push(pe);
        }
        entry.push(item);
    }
    for pe in order {
        let lvals = lv.get(&pe).map(Vec::as_slice).unwrap_or(&[]);
        let rvals = rv.get(&pe).map(Vec::as_slice).unwrap_or(&[]);
        path.push(pe);
        match (lvals.len(), rvals.len()) {
            (0, 0) => {}
            (ln, rn) if ln <= 1 && rn <= 1 => walk(lvals.first().copied(), rvals.first().copied(), items, path, c),
            (ln, rn) if ln >= 2 && rn >= 2 => {
                if ln != rn || lvals.iter().zip(rvals).any(|(a, b)| !value::equals(a, b)) {
                    c.modified.insert(path);
                }
            }
            (ln, _) if ln >= 2 => {
                if let Some(first) = rvals.first() {
                    walk(None, Some(first), items, path, c);
                }
                c.removed.insert(path);
            }
            _ => {
                if let Some(first) = lvals.first() {
                    walk(Some(first), None, items, path, c);
                }
                c.added.insert(path);
            }
        }
        path.pop();
    }
}
