//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.
//!
//! Strategic merge patch is a merge patch plus kubectl's directives: `$patch: delete` /
//! `$patch: replace`, `$setElementOrder/<list>`, `$retainKeys`, `$deleteFromPrimitiveList/`.
//! Without Go type metadata, lists of objects are merged by their `name` key when every
//! element has one (containers, env, volumes, ...), and replaced otherwise — which equals
//! the strategic merge for the types served here.

use serde_json::{Map, Value};

/// The patch types of `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
}

impl PatchType {
    /// The patch type of a `Content-Type` value; None when unsupported.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            _ => None,
        }
    }
}

/// Why a patch failed.
#[derive(Debug, PartialEq, Eq)]
pub enum PatchError {
    /// The patch document itself is malformed (400).
    Malformed(String),
    /// The patch does not apply to the object (422).
    Inapplicable(String),
}

/// Applies a patch document to `target`.
///
/// Errors: [`PatchError::Malformed`] for a patch that is not valid JSON of the right shape,
/// [`PatchError::Inapplicable`] for a JSON patch operation that fails (missing path, failed
/// `test`).
pub fn apply(kind: PatchType, target: Value, patch: &[u8]) -> Result<Value, PatchError> {
    let patch: Value =
        serde_json::from_slice(patch).map_err(|e| PatchError::Malformed(format!("error decoding patch: {e}")))?;
    match kind {
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(PatchError::Malformed("a merge patch must be a JSON object".into()));
            }
            Ok(merge(target, patch))
        }
        PatchType::StrategicMerge => {
            if !patch.is_object() {
                return Err(PatchError::Malformed("a strategic merge patch must be a JSON object".into()));
            }
            Ok(strategic(target, patch))
        }
        PatchType::Json => json_patch(target, &patch),
    }
}

/// RFC 7386 merge.
pub fn merge(target: Value, patch: Value) -> Value {
    match patch {
        Value::Object(patch) => {
            let mut target = match target {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    let current = target.remove(&key).unwrap_or(Value::Null);
                    target.insert(key, merge(current, value));
                }
            }
            Value::Object(target)
        }
        other => other,
    }
}

fn strategic(target: Value, patch: Value) -> Value {
    let Value::Object(mut patch) = patch else {
        return patch;
    };
    match patch.remove("$patch").as_ref().and_then(Value::as_str) {
        Some("delete") => return Value::Null,
        Some("replace") => return Value::Object(strip_directives(patch)),
        _ => {}
    }
    let retain: Option<Vec<String>> = patch.remove("$retainKeys").and_then(|v| serde_json::from_value(v).ok());
    let mut target = match target {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let mut orders = Map::new();
    let mut primitive_deletes = Map::new();
    for (key, value) in std::mem::take(&mut patch) {
        if let Some(list) = key.strip_prefix("$setElementOrder/") {
            orders.insert(list.to_owned(), value);
        } else if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            primitive_deletes.insert(list.to_owned(), value);
        } else if !key.starts_with('$') {
            patch.insert(key, value);
        }
    }
    for (key, value) in patch {
        let current = target.remove(&key).unwrap_or(Value::Null);
        let merged = match (current, value) {
            (_, Value::Null) => Value::Null,
            (Value::Array(current), Value::Array(items)) => merge_list(current, items),
            (current, value @ Value::Object(_)) => strategic(current, value),
            (_, value) => value,
        };
        if !merged.is_null() {
            target.insert(key, merged);
        }
    }
    for (key, order) in orders {
        if let (Some(Value::Array(items)), Value::Array(order)) = (target.get(&key).cloned(), order) {
            target.insert(key, Value::Array(reorder(items, &order)));
        }
    }
    for (key, deletes) in primitive_deletes {
        if let (Some(Value::Array(items)), Value::Array(deletes)) = (target.get_mut(&key), deletes) {
            items.retain(|item| !deletes.contains(item));
        }
    }
    if let Some(retain) = retain {
        target.retain(|k, _| retain.contains(k));
    }
    Value::Object(target)
}

fn strip_directives(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter().filter(|(k, _)| !k.starts_with('$')).collect()
}

fn merge_key(item: &Value) -> Option<&Value> {
    item.as_object()?.get("name")
}

/// Merges list `items` into `current` by `name` (reordering by `$setElementOrder` happens after).
fn merge_list(current: Vec<Value>, items: Vec<Value>) -> Value {
    let keyed = !items.is_empty()
        && items.iter().all(|i| merge_key(i).is_some())
        && current.iter().all(|i| merge_key(i).is_some());
    if !keyed {
        return Value::Array(items.into_iter().map(|i| strategic(Value::Null, i)).filter(|v| !v.is_null()).collect());
    }
    let mut result = current;
    for item in items {
        let key = merge_key(&item).cloned();
        let position = result.iter().position(|existing| merge_key(existing) == key.as_ref());
        let is_delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, is_delete) {
            (Some(i), true) => {
                result.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                let existing = std::mem::take(&mut result[i]);
                result[i] = strategic(existing, item);
            }
            (None, false) => result.push(strategic(Value::Null, item)),
        }
    }
    Value::Array(result)
}

fn reorder(items: Vec<Value>, order: &[Value]) -> Vec<Value> {
    let mut ordered = Vec::with_capacity(items.len());
    let mut rest = items;
    for wanted in order {
        let key = merge_key(wanted);
        if let Some(i) = rest.iter().position(|item| merge_key(item) == key) {
            ordered.push(rest.remove(i));
        }
    }
    ordered.extend(rest);
    ordered
}

/// RFC 6902 JSON patch.
fn json_patch(mut target: Value, patch: &Value) -> Result<Value, PatchError> {
    let Some(operations) = patch.as_array() else {
        return Err(PatchError::Malformed("a JSON patch must be a JSON array of operations".into()));
    };
    for operation in operations {
        let op = operation.get("op").and_then(Value::as_str).ok_or_else(|| malformed_op(operation, "op"))?;
        let path = operation.get("path").and_then(Value::as_str).ok_or_else(|| malformed_op(operation, "path"))?;
        let path = parse_pointer(path)?;
        match op {
            "add" => add(&mut target, &path, value_of(operation)?)?,
            "remove" => {
                remove(&mut target, &path)?;
            }
            "replace" => {
                remove(&mut target, &path)?;
                add(&mut target, &path, value_of(operation)?)?;
            }
            "move" | "copy" => {
                let from =
                    operation.get("from").and_then(Value::as_str).ok_or_else(|| malformed_op(operation, "from"))?;
                let from = parse_pointer(from)?;
                let value = if op == "move" { remove(&mut target, &from)? } else { get(&target, &from)?.clone() };
                add(&mut target, &path, value)?;
            }
            "test" => {
                let expected = value_of(operation)?;
                if *get(&target, &path)? != expected {
                    return Err(PatchError::Inapplicable(format!("testing value /{} failed", path.join("/"))));
                }
            }
            other => return Err(PatchError::Malformed(format!("unexpected JSON patch operation {other:?}"))),
        }
    }
    Ok(target)
}

fn malformed_op(operation: &Value, field: &str) -> PatchError {
    PatchError::Malformed(format!("JSON patch operation {operation} has no valid {field:?}"))
}

fn value_of(operation: &Value) -> Result<Value, PatchError> {
    operation.get("value").cloned().ok_or_else(|| malformed_op(operation, "value"))
}

fn parse_pointer(pointer: &str) -> Result<Vec<String>, PatchError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(PatchError::Malformed(format!("JSON pointer {pointer:?} must start with '/'")));
    };
    Ok(rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect())
}

fn missing(path: &[String]) -> PatchError {
    PatchError::Inapplicable(format!("the path /{} does not exist", path.join("/")))
}

fn get<'a>(target: &'a Value, path: &[String]) -> Result<&'a Value, PatchError> {
    let mut current = target;
    for segment in path {
        current = match current {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
        .ok_or_else(|| missing(path))?;
    }
    Ok(current)
}

fn parent<'a>(target: &'a mut Value, path: &[String]) -> Result<(&'a mut Value, String), PatchError> {
    let Some((last, init)) = path.split_last() else {
        return Err(PatchError::Inapplicable("the root of the object cannot be replaced".into()));
    };
    let mut current = target;
    for segment in init {
        current = match current {
            Value::Object(map) => map.get_mut(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(move |i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| missing(path))?;
    }
    Ok((current, last.clone()))
}

fn add(target: &mut Value, path: &[String], value: Value) -> Result<(), PatchError> {
    let (parent, last) = parent(target, path)?;
    match parent {
        Value::Object(map) => {
            map.insert(last, value);
            Ok(())
        }
        Value::Array(items) => {
            let index = if last == "-" { items.len() } else { last.parse::<usize>().map_err(|_| missing(path))? };
            if index > items.len() {
                return Err(missing(path));
            }
            items.insert(index, value);
            Ok(())
        }
        _ => Err(missing(path)),
    }
}

fn remove(target: &mut Value, path: &[String]) -> Result<Value, PatchError> {
    let (parent, last) = parent(target, path)?;
    match parent {
        Value::Object(map) => map.remove(&last).ok_or_else(|| missing(path)),
        Value::Array(items) => {
            let index = last.parse::<usize>().map_err(|_| missing(path))?;
            if index >= items.len() {
                return Err(missing(path));
            }
            Ok(items.remove(index))
        }
        _ => Err(missing(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_sets_and_removes() {
        let out = apply(PatchType::Merge, json!({"a": 1, "b": {"c": 2}}), br#"{"a": null, "b": {"d": 3}}"#);
        assert_eq!(out, Ok(json!({"b": {"c": 2, "d": 3}})));
    }

    #[test]
    fn json_patch_ops_and_failures() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2]});
        let patch = br#"[{"op":"add","path":"/metadata/labels/b","value":"2"},{"op":"remove","path":"/list/0"},
            {"op":"test","path":"/list/0","value":2},{"op":"add","path":"/list/-","value":3}]"#;
        assert_eq!(
            apply(PatchType::Json, doc.clone(), patch),
            Ok(json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "list": [2, 3]}))
        );
        assert!(matches!(
            apply(PatchType::Json, doc.clone(), br#"[{"op":"remove","path":"/nope"}]"#),
            Err(PatchError::Inapplicable(_))
        ));
        assert!(matches!(apply(PatchType::Json, doc, br#"{"op":"add"}"#), Err(PatchError::Malformed(_))));
    }

    #[test]
    fn strategic_merges_named_lists_and_drops_directives() {
        let doc = json!({"spec": {"containers": [{"name": "a", "image": "x:1", "ports": [{"containerPort": 80}]}, {"name": "b", "image": "y"}]}});
        let patch = br#"{"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "x:2"}, {"name": "b", "$patch": "delete"}]}}"#;
        let out = apply(PatchType::StrategicMerge, doc, patch);
        assert_eq!(
            out,
            Ok(json!({"spec": {"containers": [{"name": "a", "image": "x:2", "ports": [{"containerPort": 80}]}]}}))
        );
    }
}
