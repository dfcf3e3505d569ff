//! Key validation on every method and Stats (Kubernetes `RunTestKeySchema`, `RunTestStats`).

use std::sync::Arc;

use crate::error::Error;
use crate::object::Object;
use crate::storage::{allow_all_deletions, DeleteOptions, GetOptions, ListOptions};
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;

/// Calls every `Storage` method with `key` and returns each result's error (None on success).
async fn key_errors(h: &Harness, key: &str, recursive: bool) -> Vec<(&'static str, Option<Error>)> {
    let list_options = ListOptions { recursive, ..ListOptions::default() };
    let mut results = Vec::new();
    if !recursive {
        results.push(("create", h.storage.create(key, pod("ns", "x"), 0).await.err()));
        let options = DeleteOptions::default();
        results.push(("delete", h.storage.delete(key, None, &allow_all_deletions, None, options).await.err()));
        let get_options = GetOptions { ignore_not_found: true, ..GetOptions::default() };
        results.push(("get", h.storage.get(key, get_options).await.err()));
        let mut update = |o: Object, _| Ok((o, None));
        results
            .push(("guaranteed_update", h.storage.guaranteed_update(key, false, None, &mut update, None).await.err()));
    }
    results.push(("get_list", h.storage.get_list(key, list_options.clone()).await.err()));
    results.push(("watch", h.storage.watch(key, list_options).await.err()));
    results
}

fn is_key_error(error: &Error) -> bool {
    let message = error.to_string();
    error.code() == 400 && (message.contains("empty key") || message.contains("invalid key"))
}

/// `RunTestKeySchema`: every method rejects empty keys, `.`/`..` segments and keys outside
/// the resource prefix with a 400 key error, and stores nothing.
pub async fn every_method_rejects_invalid_keys(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let cases: [(&str, bool, &str); 12] = [
        ("", false, "empty key"),
        ("/", false, "empty key"),
        ("", true, "empty key"),
        ("/", true, "empty key"),
        ("/pods/..", false, "invalid key"),
        ("/pods/../secrets/x", true, "invalid key"),
        ("/pods/ns/.", false, "invalid key"),
        ("pods", false, "invalid key"),
        ("/pods.apps", true, "invalid key"),
        ("/foo/", true, "invalid key"),
        ("/pods", false, "invalid key"),
        ("/podsfoo/x", false, "invalid key"),
    ];
    for (key, recursive, expected) in cases {
        for (method, error) in key_errors(&h, key, recursive).await {
            let Some(error) = error else { panic!("{method}({key:?}, recursive={recursive}) accepted an invalid key") };
            assert!(is_key_error(&error), "{method}({key:?}): {error:?}");
            assert!(error.to_string().contains(expected), "{method}({key:?}): {error}");
        }
    }
    assert_eq!(h.raw_count().await, 0);
    assert!(h.backend.range(crate::kv::RangeRequest::prefix("/")).await.expect("range").kvs.is_empty());
}

/// `RunTestKeySchema`: keys under the prefix are accepted by every method (recursive `/pods`
/// is normalized to `/pods/`).
pub async fn every_method_accepts_keys_under_resource_prefix(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    for (key, recursive) in [("/pods/", true), ("/pods", true), ("/pods/x", false), ("/pods/ns/x", false)] {
        for (method, error) in key_errors(&h, key, recursive).await {
            if let Some(error) = error {
                assert!(!is_key_error(&error), "{method}({key:?}, recursive={recursive}) refused the key: {error}");
            }
        }
    }
}

/// `RunTestStats`: the object count follows creates and deletes, not updates or failed deletes.
pub async fn stats_object_count_tracks_creates_and_deletes(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let count = |h: &Harness| {
        let storage = h.storage.clone();
        async move { storage.stats().await.expect("stats").object_count }
    };
    assert_eq!(count(&h).await, 0);
    h.create_pod("ns", "a").await;
    h.create_pod("ns", "b").await;
    h.create_pod("other", "c").await;
    h.bump_revision().await;
    assert_eq!(count(&h).await, 3, "writes outside the resource prefix are not counted");
    h.annotate(&key("ns", "a"), "k", "v").await;
    assert_eq!(count(&h).await, 3);
    h.delete(&key("ns", "b")).await;
    assert_eq!(count(&h).await, 2);
    let failed = h.storage.delete(&key("ns", "b"), None, &allow_all_deletions, None, DeleteOptions::default()).await;
    assert!(failed.is_err_and(|e| e.is_not_found()));
    assert_eq!(count(&h).await, 2);
}

/// `ReadinessCheck` and `GetCurrentResourceVersion`: a store over a healthy backend is ready
/// and reports the backend's current revision (never 0).
pub async fn readiness_and_current_resource_version_follow_the_backend(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    h.storage.readiness_check().await.expect("ready");
    let initial = h.storage.current_resource_version().await.expect("current rv");
    assert!(initial > 0);
    let created = h.create_pod("ns", "a").await;
    assert_eq!(h.storage.current_resource_version().await.expect("current rv"), rv(&created));
    let bumped = h.bump_revision().await;
    assert_eq!(h.storage.current_resource_version().await.expect("current rv"), bumped);
}

/// `RunTestStats` (size estimate): `estimated_average_object_size_bytes` is 0 with no objects
/// and otherwise the mean size of the stored values (exact for a small resource), following
/// creates of different sizes and a delete.
pub async fn stats_estimate_the_average_object_size(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let empty = h.storage.stats().await.expect("stats");
    assert_eq!((empty.object_count, empty.estimated_average_object_size_bytes), (0, 0));
    let mut keys = Vec::new();
    for (i, size) in [10usize, 200, 3_000].into_iter().enumerate() {
        let object = pod("ns", &format!("p{i}")).with_field("data", serde_json::json!("x".repeat(size)));
        keys.push(key_of(&h.create(object).await));
    }
    let mut sizes = Vec::new();
    for key in &keys {
        sizes.push(h.raw(key).await.expect("stored").len() as i64);
    }
    let stats = h.storage.stats().await.expect("stats");
    assert_eq!(stats.object_count, 3);
    assert_eq!(stats.estimated_average_object_size_bytes, sizes.iter().sum::<i64>() / 3, "sizes {sizes:?}");
    h.delete(&keys[2]).await;
    let stats = h.storage.stats().await.expect("stats");
    assert_eq!(stats.object_count, 2);
    assert_eq!(stats.estimated_average_object_size_bytes, (sizes[0] + sizes[1]) / 2, "after a delete");
}
