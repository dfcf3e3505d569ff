//! Ownership bookkeeping of one write (SMD `merge/update.go`): who loses what an update
//! changed, what an apply merges, prunes and conflicts with.

use super::compare::{compare, Comparison};
use super::conflict::Conflict;
use super::entries::{Managed, Operation, Owned};
use super::fieldpath::Set;
use super::merge::merge;
use super::remove::remove_items;
use super::schema::{zero_object, Node};
use super::tofieldset::{ensure_named_fields_are_members, to_field_set};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// `v` with the fields kube's typed conversion always renders for a built-in kind (zero
/// structs `{}`, nil slices `null`) filled in where absent, so that changes are computed as
/// kube computes them on Go structs.
/// (Borrowed, no copy, when nothing is missing.)
fn with_zero_fields(v: &Value) -> Cow<'_, Value> {
    match zero_fields_of(v) {
        Some(zero) if lacks(v, &zero) => {
            let mut out = v.clone();
            fill(&mut out, &zero);
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(v),
    }
}

/// Fills in place what [`with_zero_fields`] would add to `v` (so that it then finds nothing
/// missing and copies nothing).
pub fn fill_zero_fields(v: &mut Value) {
    if let Some(zero) = zero_fields_of(v) {
        fill(v, &zero);
    }
}

/// The zero object of `v`'s kind when it has fields to fill in (more than apiVersion and kind).
fn zero_fields_of(v: &Value) -> Option<Value> {
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    let zero = zero_object(api_version, kind);
    zero.as_object().is_some_and(|z| z.len() > 2).then_some(zero)
}

/// True when [`fill`] would add something to `v`.
fn lacks(v: &Value, zero: &Value) -> bool {
    match (v, zero) {
        (Value::Object(m), Value::Object(z)) => z.iter().any(|(k, zv)| match m.get(k) {
            Some(existing) => lacks(existing, zv),
            None => true,
        }),
        _ => false,
    }
}

fn fill(v: &mut Value, zero: &Value) {
    if let (Value::Object(m), Value::Object(z)) = (v, zero) {
        for (k, zv) in z {
            match m.get_mut(k) {
                Some(existing) => fill(existing, zv),
                None => {
                    m.insert(k.clone(), zv.clone());
                }
            }
        }
    }
}

/// Compares `live` with `new`, takes the changed fields from every manager but `workflow`
/// (error with the conflicts instead, unless `force`), takes removed fields from them all and
/// drops managers left with nothing (SMD `Updater.update`).
fn update_managers(
    live: &Value,
    new: &Value,
    node: &Node,
    managers: &mut Managed,
    workflow: &str,
    force: bool,
) -> Result<Comparison, Vec<Conflict>> {
    let cmp = compare(Some(&with_zero_fields(live)), Some(&with_zero_fields(new)), node);
    let changed = cmp.modified.union(&cmp.added);
    let mut conflicts: Vec<(String, Set)> = Vec::new();
    for (id, owned) in managers.iter() {
        if id == workflow {
            continue;
        }
        let contested = owned.set.intersection(&changed);
        if !contested.is_empty() {
            conflicts.push((id.clone(), contested));
        }
    }
    if !force && !conflicts.is_empty() {
        let mut out = Vec::new();
        for (id, set) in &conflicts {
            let Some(owned) = managers.get(id) else { continue };
            for path in set.paths() {
                out.push(Conflict {
                    manager: owned.manager.clone(),
                    operation: owned.operation,
                    api_version: owned.api_version.clone(),
                    subresource: owned.subresource.clone(),
                    time: None,
                    path,
                });
            }
        }
        return Err(out);
    }
    for (id, set) in &conflicts {
        if let Some(owned) = managers.get_mut(id) {
            owned.set = owned.set.difference(set);
        }
    }
    if !cmp.removed.is_empty() {
        for (id, owned) in managers.iter_mut() {
            if id != workflow {
                owned.set = owned.set.difference(&cmp.removed);
            }
        }
    }
    managers.retain(|_, o| !o.set.is_empty());
    Ok(cmp)
}

/// A non-apply write by `id` (SMD `Updater.Update`): every other manager loses the fields
/// the write changed or removed; `id` gets them (its entry is created as Update at
/// `api_version`, time untouched).
pub fn update(live: &Value, new: &Value, node: &Node, managers: &mut Managed, id: &str, api_version: &str) {
    // Updates always force: no conflicts can come back.
    let Ok(cmp) = update_managers(live, new, node, managers, id, true) else { return };
    let mine = managers.remove(id);
    let previous = mine.as_ref().map(|o| o.set.clone()).unwrap_or_default();
    let set = previous.difference(&cmp.removed).union(&cmp.modified).union(&cmp.added);
    if !set.is_empty() {
        let owned = mine.unwrap_or_else(|| Owned {
            manager: id.to_owned(),
            operation: Operation::Update,
            api_version: api_version.to_owned(),
            subresource: None,
            time: None,
            set: Set::new(),
        });
        managers.insert(id.to_owned(), Owned { set, api_version: api_version.to_owned(), ..owned });
    }
}

/// An apply by `owner` (SMD `Updater.Apply`): merges `config` into `live`, makes the config's
/// fields `owner`'s set, prunes what `owner` applied last time and no longer does (unless
/// another manager owns it), then takes changed fields from the others (or returns the
/// conflicts unless `force`). Returns the new object.
///
/// # Errors
/// The conflicts, when not forced.
pub fn apply(
    live: &Value,
    config: &Value,
    node: &Node,
    managers: &mut Managed,
    owner: Owned,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let id = owner.id();
    let merged = merge(Some(live), Some(config), node).unwrap_or_else(|| Value::Object(Map::new()));
    let last = managers.get(&id).map(|o| o.set.clone());
    let time = managers.get(&id).and_then(|o| o.time.clone());
    managers.insert(id.clone(), Owned { set: to_field_set(config, node), time, ..owner });
    let new = match last {
        Some(last) if !last.is_empty() => prune(&merged, managers, &last, node),
        _ => merged,
    };
    update_managers(live, &new, node, managers, &id, force)?;
    Ok(new)
}

/// Removes what the applier owned last time, owns no longer, and nobody else owns (SMD
/// `prune`, `addBackOwnedItems`, `addBackDanglingItems`).
fn prune(merged: &Value, managers: &Managed, last: &Set, node: &Node) -> Value {
    let ensure = |s: &Set| ensure_named_fields_are_members(s, Some(node));
    let remove = |s: &Set| remove_items(merged, s, node).unwrap_or_else(|| Value::Object(Map::new()));
    let last = ensure(last);
    let pruned = remove(&last);
    let managed = managers.values().fold(Set::new(), |acc, o| acc.union(&o.set));
    let merged_set = ensure(&to_field_set(merged, node));
    let keep = ensure(&to_field_set(&pruned, node)).union(&ensure(&managed));
    let pruned = remove(&merged_set.difference(&keep));
    let pruned_set = ensure(&to_field_set(&pruned, node));
    remove(&merged_set.difference(&pruned_set).intersection(&last))
}
