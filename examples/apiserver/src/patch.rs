//! Patches: JSON merge patch (RFC 7386) and JSON patch (RFC 6902), both by the `json-patch`
//! crate, and strategic merge patch (Kubernetes-specific, here).
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
        PatchType::Json => json_patch(target, patch),
    }
}

/// RFC 7386 merge of `patch` into `target`.
pub fn merge(mut target: Value, patch: Value) -> Value {
    json_patch::merge(&mut target, &patch);
    target
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

/// RFC 6902 JSON patch. Like before the crate did it, an operation that would replace or
/// remove the whole object (path `""`) is refused.
fn json_patch(mut target: Value, patch: Value) -> Result<Value, PatchError> {
    if !patch.is_array() {
        return Err(PatchError::Malformed("a JSON patch must be a JSON array of operations".into()));
    }
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(|e| PatchError::Malformed(format!("invalid JSON patch: {e}")))?;
    for operation in &patch.0 {
        if !matches!(operation, json_patch::PatchOperation::Test(_)) && operation.path().is_root() {
            return Err(PatchError::Inapplicable("the root of the object cannot be replaced".into()));
        }
    }
    // `patch_unsafe`: no undo on failure. `patch` undoes the applied operations when a later
    // one fails, and its undo can itself fail and panic (json-patch 5.0.0, found by the
    // `patch_body` fuzz target); `target` is this call's own copy, dropped on error.
    json_patch::patch_unsafe(&mut target, &patch.0)
        .map_err(|e| PatchError::Inapplicable(json_patch_message(&patch, &e)))?;
    Ok(target)
}

/// The messages kube-apiserver's JSON patch library gives.
fn json_patch_message(patch: &json_patch::Patch, error: &json_patch::PatchError) -> String {
    use json_patch::{PatchErrorKind, PatchOperation};
    match error.kind {
        PatchErrorKind::TestFailed => format!("testing value {} failed", error.path),
        PatchErrorKind::InvalidPointer => format!("the path {} does not exist", error.path),
        PatchErrorKind::InvalidFromPointer => match patch.0.get(error.operation) {
            Some(PatchOperation::Move(op)) => format!("the path {} does not exist", op.from),
            Some(PatchOperation::Copy(op)) => format!("the path {} does not exist", op.from),
            _ => error.to_string(),
        },
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by the `patch_body` fuzz target: a failing second operation made json-patch's
    /// undo of the first panic ("unable to undo applied patches").
    #[test]
    fn a_json_patch_failing_after_an_add_is_an_error_not_a_panic() {
        let target = json!({"metadata": {"name": "cm"}, "spec": {"finalizers": ["f"]}});
        let patch = br#"[{"from":"","op":"add","path":"/finalizers","value":null},{"from":"/finalizers","op":"move","path":"/containers/metadata","value":null}]"#;
        match apply(PatchType::Json, target, patch) {
            Err(PatchError::Inapplicable(_)) => {}
            other => panic!("expected an inapplicable patch, got {other:?}"),
        }
    }

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

    #[test]
    fn json_patch_move_copy_replace_and_error_classes() {
        let doc = json!({"a": {"b": 1}, "c": [1, 2], "k/~": 0});
        let patch = br#"[{"op":"copy","from":"/a/b","path":"/d"},{"op":"move","from":"/c/0","path":"/c/-"},
            {"op":"replace","path":"/a","value":"x"},{"op":"remove","path":"/k~1~0"},{"op":"test","path":"","value":{"a":"x","c":[2,1],"d":1}}]"#;
        assert_eq!(apply(PatchType::Json, doc.clone(), patch), Ok(json!({"a": "x", "c": [2, 1], "d": 1})));
        for malformed in [
            &br#"[{"op":"frobnicate","path":"/a"}]"#[..],
            br#"[{"op":"add","path":"a","value":1}]"#,
            br#"[{"op":"add","path":"/a"}]"#,
            br#"[{"op":"move","path":"/a"}]"#,
            br#"not json"#,
        ] {
            let out = apply(PatchType::Json, doc.clone(), malformed);
            assert!(matches!(out, Err(PatchError::Malformed(_))), "{}: {out:?}", String::from_utf8_lossy(malformed));
        }
        for inapplicable in [
            &br#"[{"op":"test","path":"/a/b","value":2}]"#[..],
            br#"[{"op":"replace","path":"/nope","value":1}]"#,
            br#"[{"op":"add","path":"/c/9","value":1}]"#,
            br#"[{"op":"add","path":"/x/y","value":1}]"#,
            br#"[{"op":"replace","path":"","value":{}}]"#,
            br#"[{"op":"remove","path":""}]"#,
            br#"[{"op":"move","from":"/a","path":"/a/b/c"}]"#,
        ] {
            let out = apply(PatchType::Json, doc.clone(), inapplicable);
            assert!(
                matches!(out, Err(PatchError::Inapplicable(_))),
                "{}: {out:?}",
                String::from_utf8_lossy(inapplicable)
            );
        }
    }

    #[test]
    fn json_patch_errors_read_like_kube() {
        let doc = json!({"a": {"b": 1}});
        let message = |patch: &[u8]| match apply(PatchType::Json, doc.clone(), patch) {
            Err(PatchError::Inapplicable(message)) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(message(br#"[{"op":"test","path":"/a/b","value":2}]"#), "testing value /a/b failed");
        assert_eq!(message(br#"[{"op":"remove","path":"/a/x"}]"#), "the path /a/x does not exist");
        assert_eq!(message(br#"[{"op":"copy","from":"/z","path":"/y"}]"#), "the path /z does not exist");
    }

    #[test]
    fn merge_patch_must_be_an_object_and_replaces_non_objects() {
        assert!(matches!(apply(PatchType::Merge, json!({}), b"[1]"), Err(PatchError::Malformed(_))));
        assert!(matches!(apply(PatchType::Merge, json!({}), b"{"), Err(PatchError::Malformed(_))));
        let out = apply(PatchType::Merge, json!({"a": [1, 2], "b": "s"}), br#"{"a": [3], "b": {"c": null, "d": 1}}"#);
        assert_eq!(out, Ok(json!({"a": [3], "b": {"d": 1}})));
    }
}
