//! Bad input: each case asserts the typed error *and* that the stored state (list RV and
//! items) did not change.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;

use crate::error::{Error, StatusReason};
use crate::names;
use crate::object::Object;
use crate::storage::{
    allow_all_deletions, DeleteOptions, GetOptions, ObjectList, Preconditions, ResourceVersion, Storage,
};
use crate::store::StoreConfig;
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;

/// Seeds three pods and returns the stored state every bad-input case must leave untouched.
async fn seeded(h: &Harness) -> ObjectList {
    h.create(pod("ns", "a").with_label("app", "web")).await;
    h.create(pod_on_node("ns", "b", "node-1")).await;
    h.create_pod("other", "c").await;
    h.snapshot().await
}

async fn assert_unchanged(h: &Harness, before: &ObjectList, case: &str) {
    let now = h.snapshot().await;
    assert_eq!(now.resource_version, before.resource_version, "{case}: something was written");
    assert_eq!(now.items, before.items, "{case}: the stored objects changed");
}

/// Malformed JSON (and JSON that is not an object) is a 400 BadRequest from
/// `Object::from_json`; nothing reaches the store.
pub async fn malformed_json_is_bad_request_and_stores_nothing(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let before = seeded(&h).await;
    for body in [&b"{not json"[..], b"", b"[1,2]", b"{\"metadata\": 5}", b"{\"apiVersion\":\"v1\",\"kind\":\"Pod\""] {
        let err = expect_err(Object::from_json(body), "decode malformed JSON");
        assert!(matches!(err, Error::BadRequest { .. }), "{body:?}: {err:?}");
        assert_eq!((err.code(), err.reason()), (400, StatusReason::BadRequest), "{body:?}");
    }
    assert_unchanged(&h, &before, "malformed JSON").await;
}

/// An object over the size limit is 413 TooLarge on create and on update, and nothing is stored.
pub async fn oversized_object_is_too_large_and_stores_nothing(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let before = seeded(&h).await;
    let huge = "x".repeat(crate::store::DEFAULT_MAX_OBJECT_SIZE + 1);
    let big = pod("ns", "big").with_field("data", json!({ "blob": huge }));
    let err = expect_err(h.storage.create(&key("ns", "big"), big, 0).await, "create oversized");
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
    assert_eq!(err.code(), 413);
    let mut grow = |mut current: Object, _| {
        current.fields.insert("data".into(), json!({ "blob": huge.clone() }));
        Ok((current, None))
    };
    let err = expect_err(
        h.storage.guaranteed_update(&key("ns", "a"), false, None, &mut grow, None).await,
        "update to an oversized object",
    );
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
    assert_unchanged(&h, &before, "oversized object").await;
}

/// The size limit is configurable (`StoreConfig::max_object_size`) and names the sizes.
pub async fn configured_size_limit_is_enforced(fixture: Arc<dyn BackendFixture>) {
    let config = StoreConfig { max_object_size: 1024, ..StoreConfig::new(RESOURCE) };
    let h = Harness::with_config(&fixture, config).await;
    let before = seeded(&h).await;
    let big = pod("ns", "big").with_field("data", json!({ "blob": "y".repeat(2048) }));
    let err = expect_err(h.storage.create(&key("ns", "big"), big, 0).await, "create over 1 KiB");
    let Error::TooLarge { size, limit, .. } = err else { panic!("expected TooLarge, got {err:?}") };
    assert_eq!(limit, 1024);
    assert!(size > 2048);
    assert_unchanged(&h, &before, "configured size limit").await;
}

/// Names or namespaces with `/`, `.` or `..` are 422 Invalid from `names::object_key`; raw keys
/// with `.`/`..` segments are refused by every Store method; nothing changes.
pub async fn names_with_slash_or_dot_segments_are_rejected(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let before = seeded(&h).await;
    for (namespace, name) in [("ns", "a/b"), ("ns", ".."), ("ns", "."), ("..", "a"), ("ns/x", "a"), ("ns", "")] {
        let err = expect_err(names::object_key(RESOURCE, namespace, name), "object_key");
        assert!(matches!(err, Error::Invalid { .. }), "{namespace}/{name}: {err:?}");
        assert_eq!(err.code(), 422);
    }
    for raw in ["/pods/ns/..", "/pods/../ns/a", "/pods/ns/./a", "/pods/ns/../../secrets/x"] {
        let create = h.storage.create(raw, pod("ns", "x"), 0).await.err();
        let get = h.storage.get(raw, GetOptions::default()).await.err();
        let delete = h.storage.delete(raw, None, &allow_all_deletions, None, DeleteOptions::default()).await.err();
        let mut update = |o: Object, _| Ok((o, None));
        let updated = h.storage.guaranteed_update(raw, true, None, &mut update, None).await.err();
        for (method, err) in [("create", create), ("get", get), ("delete", delete), ("update", updated)] {
            let Some(err) = err else { panic!("{method}({raw:?}) accepted a traversal key") };
            assert_eq!(err.code(), 400, "{method}({raw:?}): {err:?}");
            assert!(err.to_string().contains("invalid key"), "{method}({raw:?}): {err}");
        }
    }
    assert_unchanged(&h, &before, "invalid names").await;
}

/// Tampered continue tokens (garbage, bad JSON, path traversal, rv 0, empty start, unknown
/// version, flipped bytes) are 400 BadRequest; nothing changes.
pub async fn tampered_continue_token_is_bad_request(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let before = seeded(&h).await;
    let mut first_page = recursive("");
    first_page.predicate.limit = 1;
    let valid = h.list("/pods/", first_page).await.continue_token;
    let mut flipped = valid.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii token");
    let forged = |json: &str| URL_SAFE_NO_PAD.encode(json);
    let tokens = [
        "!!!not-base64!!!".to_owned(),
        forged("{not json"),
        forged(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"../secrets/x"}"#),
        forged(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"ns/b"}"#),
        forged(r#"{"v":"meta.k8s.io/v1","rv":3,"start":""}"#),
        forged(r#"{"v":"meta.k8s.io/v2","rv":3,"start":"ns/b"}"#),
        flipped,
    ];
    for token in tokens {
        let mut options = recursive("");
        options.predicate.limit = 1;
        options.predicate.continue_token = token.clone();
        let err = expect_err(h.storage.get_list("/pods/", options).await, "list with a tampered token");
        assert!(matches!(err, Error::BadRequest { .. }), "{token}: {err:?}");
        assert!(err.to_string().contains("continue"), "{token}: {err}");
    }
    assert_unchanged(&h, &before, "tampered continue token").await;
}

/// resourceVersion "abc": a get's or list's is 400 BadRequest and a watch's 422 Invalid
/// (Kubernetes) where it is parsed, before any storage sees it (the options carry the parsed
/// [`ResourceVersion`]); create refuses it in an object; an RV precondition "abc" is no
/// revision (the edge's `parse_precondition` refuses it), and one of revision 0 never matches
/// (409); nothing changes.
pub async fn resource_version_abc_is_rejected_on_every_path(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let before = seeded(&h).await;
    for text in ["abc", "-1", "1.5", "+1"] {
        let err = expect_err(ResourceVersion::parse_read(text), "a get's or list's RV");
        assert!(matches!(err, Error::BadRequest { .. }), "{text}: {err:?}");
        assert!(err.to_string().contains("invalid resource version"), "{text}: {err}");
        let err = expect_err(ResourceVersion::parse_watch(text), "a watch's RV");
        assert!(matches!(err, Error::Invalid { .. }), "{text}: {err:?}");
        assert_eq!(err.code(), 422);
    }
    let mut object = pod("ns", "new");
    object.metadata.resource_version = "abc".into();
    let err = expect_err(h.storage.create(&key("ns", "new"), object, 0).await, "create with RV abc");
    assert!(err.code() == 400 || err.code() == 422, "{err:?}");
    // A precondition's text that is no revision never reaches the storage (the edge parses
    // it: `parse_precondition`); revision 0, which no stored object has, is the nearest.
    for text in ["abc", "", "0", "-1", "+1"] {
        assert_eq!(crate::version::parse_precondition(text), None, "{text}");
    }
    assert_eq!(crate::version::parse_precondition("17"), Some(17));
    let pre = Preconditions { uid: None, resource_version: Some(0) };
    let mut update = |mut o: Object, _| {
        o.metadata.annotations.insert("x".into(), "y".into());
        Ok((o, None))
    };
    let err = expect_err(
        h.storage.guaranteed_update(&key("ns", "a"), false, Some(&pre), &mut update, None).await,
        "update with RV precondition 0",
    );
    assert!(err.is_invalid_object(), "{err:?}");
    let err = expect_err(
        h.storage.delete(&key("ns", "a"), Some(&pre), &allow_all_deletions, None, DeleteOptions::default()).await,
        "delete with RV precondition 0",
    );
    assert!(err.is_invalid_object(), "{err:?}");
    assert_unchanged(&h, &before, "resourceVersion abc").await;
}

/// Malformed label and field selectors are 400 BadRequest before anything is read.
pub async fn malformed_selectors_are_bad_requests(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let before = seeded(&h).await;
    for selector in ["app in web", "a b c", "=x", "app in (a"] {
        let err = expect_err(crate::selector::LabelSelector::parse(selector), "label selector");
        assert_eq!(err.code(), 400, "{selector}: {err:?}");
    }
    for selector in ["metadata.name", "=x", "spec name=x"] {
        let err = expect_err(crate::selector::FieldSelector::parse(selector), "field selector");
        assert_eq!(err.code(), 400, "{selector}: {err:?}");
    }
    assert_unchanged(&h, &before, "malformed selectors").await;
}

/// An unknown backend name is a 422 naming the registered backends; stored data is untouched.
pub async fn unknown_backend_name_lists_registered_backends(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let before = seeded(&h).await;
    let config = crate::registry::BackendConfig::new("no-such-backend");
    let err = match crate::registry::open(&config).await {
        Ok(_) => panic!("opening an unknown backend succeeded"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-backend") && err.to_string().contains("registered backends"), "{err}");
    for name in crate::registry::names() {
        assert!(err.to_string().contains(name), "{err} does not list {name}");
    }
    assert_unchanged(&h, &before, "unknown backend").await;
}

/// A duplicate create (AlreadyExists) and a create with a resourceVersion change nothing.
pub async fn failed_creates_leave_stored_state_unchanged(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let before = seeded(&h).await;
    let storage: &Arc<dyn Storage> = &h.storage;
    let err = expect_err(storage.create(&key("ns", "a"), pod_on_node("ns", "a", "n"), 0).await, "duplicate create");
    assert!(err.is_already_exists(), "{err:?}");
    let mut with_rv = pod("ns", "new");
    with_rv.metadata.resource_version = before.resource_version.to_string();
    let err = expect_err(storage.create(&key("ns", "new"), with_rv, 0).await, "create with an RV");
    assert_eq!(err, Error::ResourceVersionSetOnCreate);
    assert_unchanged(&h, &before, "failed creates").await;
}
