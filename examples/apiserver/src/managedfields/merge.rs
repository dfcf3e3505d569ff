//! Merging an applied configuration into the live object, by schema (SMD `typed/merge.go`).

use super::fieldpath::{Path, PathElement};
use super::schema::{ListKind, Node};
use super::typed::{self, Atom};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Why a configuration cannot be merged: its text, as SMD reports it, with the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeError {
    /// Where (`.spec.containers[name="web"].env`).
    pub path: Path,
    /// What (`duplicate entries for key [name="FOO"]`).
    pub message: String,
}

impl std::fmt::Display for MergeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Checks that a configuration can be applied: every item of a set or map list can be keyed
/// and no key appears twice (SMD validates the applied object so).
///
/// # Errors
/// Every problem found, each with its path.
pub fn validate_config(v: &Value, node: &Node) -> Result<(), Vec<MergeError>> {
    let mut errors = Vec::new();
    validate(v, node, &mut Vec::new(), &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn validate(v: &Value, node: &Node, path: &mut Vec<PathElement>, errors: &mut Vec<MergeError>) {
    match Atom::of(node, v) {
        Atom::Map { node, atomic: false } => {
            if let Value::Object(m) = v {
                for (k, child) in m {
                    path.push(PathElement::Field(k.clone()));
                    validate(child, node.field(k), path, errors);
                    path.pop();
                }
            }
        }
        Atom::List { kind, items } if *kind != ListKind::Atomic => {
            let Value::Array(list) = v else { return };
            let mut seen = BTreeSet::new();
            for (i, item) in list.iter().enumerate() {
                match typed::item_path_element(kind, items, item) {
                    Err(e) => {
                        errors.push(MergeError { path: Path(path.clone()), message: format!("element {i}: {e}") })
                    }
                    Ok(pe) => {
                        if seen.contains(&pe) {
                            errors.push(MergeError {
                                path: Path(path.clone()),
                                message: format!("duplicate entries for key {pe}"),
                            });
                            continue;
                        }
                        path.push(pe.clone());
                        validate(item, items, path, errors);
                        path.pop();
                        seen.insert(pe);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Merges `rhs` (the applied configuration) into `lhs` (live): granular maps by field, set and
/// map lists by item (live order kept, new items placed as SMD places them), atomic values and
/// scalars replaced by `rhs`. The configuration must have passed [`validate_config`].
pub fn merge(lhs: Option<&Value>, rhs: Option<&Value>, node: &Node) -> Option<Value> {
    let null = Value::Null;
    let la = Atom::of(node, lhs.unwrap_or(&null));
    let ra = Atom::of(node, rhs.unwrap_or(&null));
    match (lhs, rhs) {
        (None, None) => None,
        (_, None) => handle(la, lhs, rhs),
        _ => handle(ra, lhs, rhs),
    }
}

fn keep_rhs(lhs: Option<&Value>, rhs: Option<&Value>) -> Option<Value> {
    rhs.or(lhs).cloned()
}

fn handle(atom: Atom<'_>, lhs: Option<&Value>, rhs: Option<&Value>) -> Option<Value> {
    match atom {
        Atom::Scalar => keep_rhs(lhs, rhs),
        Atom::Map { node, atomic } => {
            let lm = lhs.and_then(Value::as_object);
            let rm = rhs.and_then(Value::as_object);
            let empty = lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty);
            if atomic || empty {
                return keep_rhs(lhs, rhs);
            }
            let mut out = Map::new();
            for k in lm.into_iter().flat_map(Map::keys).chain(rm.into_iter().flat_map(Map::keys)) {
                if out.contains_key(k) {
                    continue;
                }
                if let Some(v) = merge(lm.and_then(|m| m.get(k)), rm.and_then(|m| m.get(k)), node.field(k)) {
                    out.insert(k.clone(), v);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Atom::List { kind, items } => {
            let ll = lhs.and_then(Value::as_array);
            let rl = rhs.and_then(Value::as_array);
            let empty = ll.is_none_or(Vec::is_empty) && rl.is_none_or(Vec::is_empty);
            if atom.atomic() || empty {
                return keep_rhs(lhs, rhs);
            }
            let out =
                list_items(kind, items, ll.map(Vec::as_slice).unwrap_or(&[]), rl.map(Vec::as_slice).unwrap_or(&[]));
            (!out.is_empty()).then_some(Value::Array(out))
        }
    }
}

/// SMD's `visitListItems`: walks both lists at once, keeping live order, taking items in the
/// order of the configuration where they are shared, appending items only one side has.
fn list_items(kind: &ListKind, items: &Node, ll: &[Value], rl: &[Value]) -> Vec<Value> {
    let rhs_pes = typed::item_path_elements(kind, items, rl);
    let lhs_pes = typed::item_path_elements(kind, items, ll);
    let mut observed_rhs: BTreeMap<&PathElement, &Value> = BTreeMap::new();
    for (pe, item) in rhs_pes.iter().zip(rl) {
        observed_rhs.entry(pe).or_insert(item);
    }
    // A duplicated live item maps to None: the configuration's item replaces it.
    let mut observed_lhs: BTreeMap<&PathElement, Option<&Value>> = BTreeMap::new();
    for (pe, item) in lhs_pes.iter().zip(ll) {
        observed_lhs.entry(pe).and_modify(|v| *v = None).or_insert(Some(item));
    }
    let mut shared = rhs_pes.iter().filter(|pe| observed_lhs.contains_key(pe));
    let mut next_shared = shared.next();
    let mut merged_rhs: BTreeSet<&PathElement> = BTreeSet::new();
    let mut out = Vec::with_capacity(ll.len().max(rl.len()));
    let (mut li, mut ri) = (0, 0);
    while li < lhs_pes.len() || ri < rhs_pes.len() {
        let before = (li, ri);
        if li < lhs_pes.len() && ri < rhs_pes.len() {
            let pe = &lhs_pes[li];
            if *pe == rhs_pes[ri] {
                merged_rhs.insert(pe);
                let l = observed_lhs.get(pe).copied().flatten();
                out.extend(merge(l, observed_rhs.get(pe).copied(), items));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if observed_rhs.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lhs_pes.len() {
            let pe = &lhs_pes[li];
            if !observed_rhs.contains_key(pe) {
                out.extend(merge(Some(&ll[li]), None, items));
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
            }
        }
        if ri < rhs_pes.len() {
            let pe = &rhs_pes[ri];
            merged_rhs.insert(pe);
            let l = observed_lhs.get(pe).copied().flatten();
            out.extend(merge(l, observed_rhs.get(pe).copied(), items));
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
        }
        if before == (li, ri) {
            // Cannot happen with consistent inputs; never loop forever.
            li += 1;
        }
    }
    out
}
