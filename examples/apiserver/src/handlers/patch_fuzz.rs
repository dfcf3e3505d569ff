//! Fuzzing of request bodies (proptest, stable Rust), two targets of the fuzz runner
//! (`apiserver fuzz`): `object_body`, object bodies through the codec's decode, and
//! `patch_body`, patch bodies (merge, JSON, strategic) through the patch handler's
//! application. Each input must give a 4xx `Status` or a JSON object, never a panic or a
//! 5xx, and an error leaves the stored object unchanged. The generators are shared with the
//! HTTP target (`crate::fuzz::http`).

use std::cell::Cell;
use std::time::Instant;

use apistore::testing::audit::fuzz::{test_runner, FuzzStats, FuzzTarget};
use apistore::Object;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

use crate::codec;
use crate::negotiation::Format;
use crate::patch::PatchType;
use crate::status::ApiError;

apistore::inventory::submit! {
    FuzzTarget {
        name: "patch_body",
        about: "merge, JSON and strategic patch bodies applied to an object: a 4xx or an object, the object unchanged",
        run: patch_bodies,
    }
}

apistore::inventory::submit! {
    FuzzTarget {
        name: "object_body",
        about: "JSON and YAML object bodies through the codec: a 4xx or a value",
        run: object_bodies,
    }
}

/// Keys the patch directives and Kubernetes objects use, to reach the interesting paths.
pub(crate) fn key() -> BoxedStrategy<String> {
    prop_oneof![
        Just("metadata".to_owned()),
        Just("name".to_owned()),
        Just("labels".to_owned()),
        Just("spec".to_owned()),
        Just("containers".to_owned()),
        Just("$patch".to_owned()),
        Just("$retainKeys".to_owned()),
        Just("$setElementOrder/containers".to_owned()),
        Just("$deleteFromPrimitiveList/finalizers".to_owned()),
        Just("finalizers".to_owned()),
        Just("data".to_owned()),
        "[a-z$/]{0,6}",
    ]
    .boxed()
}

/// JSON values up to 4 levels deep, with the keys of [`key`] and patch directive strings.
pub(crate) fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![Just("delete".to_owned()), Just("replace".to_owned()), Just("merge".to_owned()), ".{0,8}"]
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            proptest::collection::btree_map(key(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// RFC 6902 operations with random paths and values.
pub(crate) fn json_patch_body() -> BoxedStrategy<Value> {
    let path = proptest::collection::vec(prop_oneof![key(), "[0-9-]{1,2}".prop_map(String::from)], 0..4)
        .prop_map(|parts| parts.iter().map(|p| format!("/{p}")).collect::<String>());
    let op = prop_oneof![
        Just("add"),
        Just("remove"),
        Just("replace"),
        Just("move"),
        Just("copy"),
        Just("test"),
        Just("bogus")
    ];
    let operation = (op, path.clone(), path, json_value())
        .prop_map(|(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}));
    proptest::collection::vec(operation, 0..5).prop_map(Value::from).boxed()
}

/// Bodies: random bytes, random JSON, and JSON patches.
pub(crate) fn body() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| serde_json::to_vec(&v).expect("a Value serializes")),
        json_patch_body().prop_map(|v| serde_json::to_vec(&v).expect("a Value serializes")),
    ]
    .boxed()
}

fn current(fields: Value) -> Object {
    let mut object = Object::new("v1", "ConfigMap", "default", "cm")
        .with_label("app", "x")
        .with_field("data", json!({"a": "1"}))
        .with_field("spec", json!({"containers": [{"name": "c", "image": "i"}], "finalizers": ["f"]}));
    if let Value::Object(extra) = fields {
        for (k, v) in extra {
            if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                object.fields.insert(k, v);
            }
        }
    }
    object
}

fn typed(what: &str, input: &[u8], error: &ApiError) -> Result<(), TestCaseError> {
    if (400..500).contains(&error.code()) {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!(
            "{what}: {:?} gave {}: {error:?}",
            String::from_utf8_lossy(input),
            error.code()
        )))
    }
}

/// `iterations` patch bodies of every kind applied to a ConfigMap-like object.
fn patch_bodies(iterations: u32, seed: u64) -> Result<FuzzStats, String> {
    let started = Instant::now();
    let kinds = prop_oneof![Just(PatchType::Merge), Just(PatchType::Json), Just(PatchType::StrategicMerge)];
    let applied = Cell::new(0u64);
    test_runner(iterations, seed, 500)
        .run(&(kinds, json_value(), body()), |(kind, fields, body)| {
            let object = current(fields);
            let before = object.clone();
            if let Err(e) = super::patch::check_patch_json(&body) {
                typed("check_patch_json", &body, &e)?;
            }
            match super::patch::apply_patch(kind, &object, &body, "ConfigMap", "cm") {
                Ok(patched) => {
                    prop_assert!(patched.is_object(), "{kind:?} gave a non-object: {patched}");
                    // The handler then reads the result back as an object: an error, not a panic.
                    let _ = serde_json::from_value::<Object>(patched);
                    applied.set(applied.get() + 1);
                }
                Err(e) => typed(&format!("{kind:?} patch"), &body, &e)?,
            }
            prop_assert_eq!(&object, &before, "the stored object changed");
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    Ok(FuzzStats { inputs: u64::from(iterations), accepted: applied.get(), elapsed: started.elapsed() })
}

/// `iterations` bodies decoded as JSON or YAML.
fn object_bodies(iterations: u32, seed: u64) -> Result<FuzzStats, String> {
    let started = Instant::now();
    let formats = prop_oneof![Just(Format::Json), Just(Format::Yaml)];
    let parsed = Cell::new(0u64);
    test_runner(iterations, seed, 500)
        .run(&(formats, body()), |(format, body)| {
            match codec::parse(&body, format) {
                Ok(_) => parsed.set(parsed.get() + 1),
                Err(e) => typed(&format!("{format:?} body"), &body, &e)?,
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    Ok(FuzzStats { inputs: u64::from(iterations), accepted: parsed.get(), elapsed: started.elapsed() })
}

#[cfg(test)]
mod tests {
    #[test]
    fn patch_bodies_give_a_4xx_status_or_an_object_and_change_nothing_on_error() {
        let stats = super::patch_bodies(2000, 3).unwrap_or_else(|e| panic!("{e}"));
        // The generator reaches the success path, not only the error one.
        assert!(stats.accepted > 2000 / 20, "only {} patches applied", stats.accepted);
    }

    #[test]
    fn object_bodies_give_a_4xx_status_or_a_value() {
        let stats = super::object_bodies(2000, 5).unwrap_or_else(|e| panic!("{e}"));
        assert!(stats.accepted > 0, "no body parsed");
    }
}
