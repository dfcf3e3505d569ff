//! Stored bytes and value transformers (Kubernetes `RunTestGuaranteedUpdate` /
//! `RunTestGuaranteedUpdateChecksStoredData` / `RunTestTransformationFailure` /
//! `RunTestWatchError` / `RunTestWatchWithUnsafeDelete`, marked `[E]` in Kubernetes only because
//! they reach into etcd; here they go through `KvBackend` and a test prefix transformer, so
//! every backend runs them).

use std::sync::Arc;

use crate::error::StatusReason;
use crate::object::Object;
use crate::storage::{allow_all_deletions, DeleteOptions, GetOptions, ListOptions, WatchEvent};
use crate::store::StoreConfig;
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;

fn with_transformer(transformer: Arc<PrefixTransformer>) -> StoreConfig {
    StoreConfig { transformer, ..StoreConfig::new(RESOURCE) }
}

/// Writes go through the transformer with the full backend key as authenticated data, and
/// reads strip it again.
pub async fn transformer_gets_full_backend_key_as_authenticated_data(fixture: Arc<dyn BackendFixture>) {
    let transformer = PrefixTransformer::new("k8s:test:v1:", &[]);
    let h = Harness::with_config(&fixture, with_transformer(transformer.clone())).await;
    let created = h.create_pod("ns", "a").await;
    let raw = h.raw(&key("ns", "a")).await.expect("stored");
    assert!(raw.starts_with(b"k8s:test:v1:{"), "stored bytes are not transformed: {raw:?}");
    assert_eq!(h.get(&key("ns", "a")).await.expect("get"), Some(created));
    let seen = transformer.seen_authenticated_data.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|aad| aad == b"/registry/pods/ns/a"), "{seen:?}");
}

/// `RunTestGuaranteedUpdate` "stale transformer": a no-op update of data read with a
/// non-primary transformer still writes (re-encryption / storage migration).
pub async fn guaranteed_update_rewrites_data_read_by_stale_transformer(fixture: Arc<dyn BackendFixture>) {
    let old = Harness::with_config(&fixture, with_transformer(PrefixTransformer::new("old:", &[]))).await;
    let created = old.create_pod("ns", "a").await;
    let new = old.sibling(with_transformer(PrefixTransformer::new("new:", &["old:"]))).await;
    let mut no_op = |current: Object, _| Ok((current, None));
    let out = new.storage.guaranteed_update(&key("ns", "a"), false, None, &mut no_op, None).await.expect("update");
    assert!(rv(&out) > rv(&created), "a stale value must be rewritten");
    assert!(new.raw(&key("ns", "a")).await.expect("stored").starts_with(b"new:"));
    let again = new.storage.guaranteed_update(&key("ns", "a"), false, None, &mut no_op, None).await.expect("again");
    assert_eq!(again.metadata.resource_version, out.metadata.resource_version, "fresh data is not rewritten");
}

/// `RunTestGuaranteedUpdateChecksStoredData`: stored bytes that decode fine but are not the
/// codec's canonical form are rewritten by a no-op update; canonical bytes are not.
pub async fn guaranteed_update_rewrites_non_canonical_stored_bytes(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let written = h
        .write_raw(
            &key("ns", "a"),
            b"{ \"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"a\", \"namespace\": \"ns\"} }",
        )
        .await;
    let mut no_op = |current: Object, _| Ok((current, None));
    let out = h.storage.guaranteed_update(&key("ns", "a"), false, None, &mut no_op, None).await.expect("update");
    assert!(rv(&out) > written, "non-canonical bytes must be rewritten");
    let canonical = h.raw(&key("ns", "a")).await.expect("stored");
    assert!(!canonical.contains(&b' '), "{canonical:?}");
    let again = h.storage.guaranteed_update(&key("ns", "a"), false, None, &mut no_op, None).await.expect("again");
    assert_eq!(again.metadata.resource_version, out.metadata.resource_version);
}

/// `RunTestTransformationFailure`: data no transformer can read fails get, list, update (with
/// and without suggestion) and delete with a 500, and stays stored.
pub async fn untransformable_data_fails_every_read_path_with_internal_error(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::with_config(&fixture, with_transformer(PrefixTransformer::new("good:", &[]))).await;
    let readable = h.create_pod("ns", "a").await;
    h.write_raw(&key("ns", "b"), b"bad:{\"metadata\":{\"name\":\"b\"}}").await;
    let key = key("ns", "b");
    let get = h.storage.get(&key, GetOptions::default()).await.err();
    let list = h.storage.get_list("/pods/", recursive("")).await.err();
    let mut no_op = |current: Object, _| Ok((current, None));
    let update = h.storage.guaranteed_update(&key, false, None, &mut no_op, None).await.err();
    let mut suggestion = readable.clone();
    suggestion.metadata.name = "b".into();
    let suggested = h.storage.guaranteed_update(&key, false, None, &mut no_op, Some(suggestion)).await.err();
    let delete = h.storage.delete(&key, None, &allow_all_deletions, None, DeleteOptions::default()).await.err();
    for (method, err) in
        [("get", get), ("list", list), ("update", update), ("update+suggestion", suggested), ("delete", delete)]
    {
        let Some(err) = err else { panic!("{method} of untransformable data succeeded") };
        assert_eq!(err.code(), 500, "{method}: {err:?}");
    }
    assert!(h.raw(&key).await.is_some());
}

/// `RunTestWatchError`: a watch whose initial state cannot be transformed starts with an ERROR.
pub async fn watch_of_untransformable_data_ends_with_error_event(fixture: Arc<dyn BackendFixture>) {
    let writer = Harness::with_config(&fixture, with_transformer(PrefixTransformer::new("a:", &[]))).await;
    let start = writer.current_revision().await.to_string();
    writer.create_pod("ns", "foo").await;
    let reader = writer.sibling(with_transformer(PrefixTransformer::new("b:", &[]))).await;
    if reader.expect.watch_needs_readable_resource {
        // The cache cannot list the resource: it stays not ready (429) and says why.
        let err = expect_err(reader.storage.watch(&key("ns", "foo"), single(&start)).await, "watch of unready cache");
        assert_eq!(err.code(), 429, "{err:?}");
        let not_ready = expect_err(reader.storage.readiness_check().await, "readiness of an unready cache");
        assert!(not_ready.to_string().contains("storage is (re)initializing"), "{not_ready}");
        assert!(not_ready.to_string().contains("transform"), "the reason is reported: {not_ready}");
        return;
    }
    let mut watch = reader.watch(&key("ns", "foo"), single(&start)).await;
    match next_event(&mut watch).await {
        WatchEvent::Error(e) => assert_eq!(e.code(), 500, "{e:?}"),
        other => panic!("expected an ERROR event, got {other:?}"),
    }
    assert!(watch.next().await.is_none(), "no event follows an ERROR");
}

/// `RunTestWatchWithUnsafeDelete`: a watcher seeing the unsafe delete of a corrupt object gets
/// a 500 ERROR with reason StoreReadError, and nothing after it.
pub async fn watch_of_unsafe_delete_of_corrupt_object_reports_store_read_error(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let key = key("ns", "foo");
    h.write_raw(&key, b"corrupt").await;
    let start = h.current_revision().await.to_string();
    if h.expect.watch_needs_readable_resource {
        cache_recovers_after_unsafe_delete_of_corrupt_object(&h, &key, &start).await;
        return;
    }
    let mut watch = h.watch("/pods/", recursive(&start)).await;
    let unsafe_delete = DeleteOptions { expect_transform_or_decode_error: true };
    h.storage.delete(&key, None, &allow_all_deletions, None, unsafe_delete).await.expect("unsafe delete");
    h.create_pod("ns", "after").await;
    match next_event(&mut watch).await {
        WatchEvent::Error(e) => {
            assert_eq!((e.code(), e.reason()), (500, StatusReason::StoreReadError), "{e:?}");
            assert!(e.to_string().contains("saw a DELETED event, but object data is corrupt"), "{e}");
        }
        other => panic!("expected a StoreReadError ERROR event, got {other:?}"),
    }
    assert!(watch.next().await.is_none(), "no event follows an ERROR");
}

/// The cache's side of `RunTestWatchWithUnsafeDelete`: a corrupt object makes the cache's own
/// watch fail, so it turns not ready (watches get 429) and relists; the relist fails while the
/// object is stored. Once the object is deleted unsafely the cache recovers: it becomes ready
/// and a watch from before the delete replays the later changes.
async fn cache_recovers_after_unsafe_delete_of_corrupt_object(h: &Harness, key: &str, start: &str) {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        match h.storage.watch("/pods/", recursive(start)).await {
            Err(e) => {
                assert_eq!(e.code(), 429, "{e:?}");
                break;
            }
            Ok(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(QUIET_PERIOD / 10).await,
            Ok(_) => panic!("the cache kept serving watches over a corrupt object"),
        }
    }
    let unsafe_delete = DeleteOptions { expect_transform_or_decode_error: true };
    h.storage.delete(key, None, &allow_all_deletions, None, unsafe_delete).await.expect("unsafe delete");
    let after = h.create_pod("ns", "after").await;
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    while h.storage.readiness_check().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the cache did not recover after the unsafe delete");
        tokio::time::sleep(QUIET_PERIOD / 10).await;
    }
    let mut watch = h.watch("/pods/", ListOptions { send_initial_events: Some(true), ..recursive("") }).await;
    assert_event(&next_event(&mut watch).await, "ADDED", &after);
    expect_no_event(&mut watch, true).await;
}

/// `RunTestGuaranteedUpdateWithSuggestionAndConflict`/`ChecksStoredData` with a suggestion:
/// a suggestion (an up-to-date copy of the object) says nothing about how it is stored, so a
/// no-op update given it still reads the live value, finds it written by a stale transformer
/// and rewrites it; once rewritten, the same update with a fresh suggestion writes nothing.
pub async fn guaranteed_update_with_suggestion_rewrites_data_of_a_stale_transformer(fixture: Arc<dyn BackendFixture>) {
    let old = Harness::with_config(&fixture, with_transformer(PrefixTransformer::new("old:", &[]))).await;
    let created = old.create_pod("ns", "a").await;
    let new = old.sibling(with_transformer(PrefixTransformer::new("new:", &["old:"]))).await;
    let suggestion = new.get(&key("ns", "a")).await.expect("get").expect("stored");
    assert_eq!(suggestion, created, "the suggestion is the current object");
    let mut no_op = |current: Object, _| Ok((current, None));
    let out = new
        .storage
        .guaranteed_update(&key("ns", "a"), false, None, &mut no_op, Some(suggestion))
        .await
        .expect("update");
    assert!(rv(&out) > rv(&created), "a value of a stale transformer must be rewritten despite the suggestion");
    assert!(new.raw(&key("ns", "a")).await.expect("stored").starts_with(b"new:"));
    let again = new
        .storage
        .guaranteed_update(&key("ns", "a"), false, None, &mut no_op, Some(out.clone()))
        .await
        .expect("again");
    assert_eq!(again.metadata.resource_version, out.metadata.resource_version, "fresh data is not rewritten");
}

/// Like [`guaranteed_update_rewrites_non_canonical_stored_bytes`], given a suggestion: the
/// non-canonical bytes are found by a live read and rewritten in the codec's form.
pub async fn guaranteed_update_with_suggestion_rewrites_non_canonical_stored_bytes(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let written = h
        .write_raw(
            &key("ns", "a"),
            b"{ \"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"a\", \"namespace\": \"ns\"} }",
        )
        .await;
    h.sync_reads(written).await;
    let suggestion = h.get(&key("ns", "a")).await.expect("get").expect("stored");
    assert_eq!(rv(&suggestion), written);
    let mut no_op = |current: Object, _| Ok((current, None));
    let out =
        h.storage.guaranteed_update(&key("ns", "a"), false, None, &mut no_op, Some(suggestion)).await.expect("update");
    assert!(rv(&out) > written, "non-canonical bytes must be rewritten despite the suggestion");
    let canonical = h.raw(&key("ns", "a")).await.expect("stored");
    assert!(!canonical.contains(&b' '), "{canonical:?}");
    let again =
        h.storage.guaranteed_update(&key("ns", "a"), false, None, &mut no_op, Some(out.clone())).await.expect("again");
    assert_eq!(again.metadata.resource_version, out.metadata.resource_version);
}

/// kube's transform errors name the key: reading data the transformer cannot read fails with
/// "unable to transform key \"<backend key>\"" on get and list.
pub async fn transform_failure_names_the_key(fixture: Arc<dyn BackendFixture>) {
    let writer = Harness::with_config(&fixture, with_transformer(PrefixTransformer::new("a:", &[]))).await;
    let created = writer.create_pod("ns", "foo").await;
    let reader = writer.sibling(with_transformer(PrefixTransformer::new("b:", &[]))).await;
    let backend_key = reader.store.backend_key(&key("ns", "foo"));
    let expected = format!("unable to transform key {backend_key:?}");
    let get = expect_err(reader.get(&key("ns", "foo")).await, "get of untransformable data");
    assert!(get.to_string().contains(&expected), "get: {get}");
    let exact = ListOptions {
        resource_version_match: Some(crate::storage::ResourceVersionMatch::Exact),
        ..recursive(&created.metadata.resource_version)
    };
    let list = expect_err(reader.storage.get_list("/pods/", exact).await, "list of untransformable data");
    assert!(list.to_string().contains(&expected), "list: {list}");
    assert_eq!((get.code(), list.code()), (500, 500));
}
