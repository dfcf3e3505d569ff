//! Fuzzing of request bodies (proptest, stable Rust): object bodies through the codec's
//! decode, and patch bodies (merge, JSON, strategic) through the patch handler's
//! application. Each input must give a 4xx `Status` or a JSON object, never a panic or a
//! 5xx, and an error leaves the stored object unchanged. `APISTORE_FUZZ_ITERATIONS` sets N
//! (default 2000, small for CI).

use apistore::Object;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

use crate::codec;
use crate::negotiation::Format;
use crate::patch::PatchType;
use crate::status::ApiError;

fn iterations() -> u32 {
    std::env::var("APISTORE_FUZZ_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(2000)
}

fn runner(seed: u8) -> TestRunner {
    let config = Config { cases: iterations(), failure_persistence: None, max_shrink_iters: 500, ..Config::default() };
    let rng = proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[seed; 32]);
    TestRunner::new_with_rng(config, rng)
}

/// Keys the patch directives and Kubernetes objects use, to reach the interesting paths.
fn key() -> BoxedStrategy<String> {
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

fn json_value() -> BoxedStrategy<Value> {
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
fn json_patch_body() -> BoxedStrategy<Value> {
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
fn body() -> BoxedStrategy<Vec<u8>> {
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

#[test]
fn patch_bodies_give_a_4xx_status_or_an_object_and_change_nothing_on_error() {
    let kinds = prop_oneof![Just(PatchType::Merge), Just(PatchType::Json), Just(PatchType::StrategicMerge)];
    let applied = std::cell::Cell::new(0u32);
    runner(3)
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
        .unwrap_or_else(|e| panic!("{e}"));
    // The generator reaches the success path, not only the error one.
    let applied = applied.get();
    assert!(applied > iterations() / 20, "only {applied} patches applied");
}

#[test]
fn object_bodies_give_a_4xx_status_or_a_value() {
    let formats = prop_oneof![Just(Format::Json), Just(Format::Yaml)];
    runner(5)
        .run(&(formats, body()), |(format, body)| {
            if let Err(e) = codec::parse(&body, format) {
                typed(&format!("{format:?} body"), &body, &e)?;
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
