//! Create and Get (Kubernetes `RunTestCreate*`, `RunTestGet`).

use std::sync::Arc;

use crate::error::Error;
use crate::storage::{GetOptions, ResourceVersion, WatchEvent};
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;

/// `RunTestCreate`: the returned object has its name and a fresh non-empty RV that is the
/// backend's current revision; a read returns the same object.
pub async fn create_returns_stored_object_with_new_resource_version(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let before = h.current_revision().await;
    let created = h.create(pod("test-ns", "foo")).await;
    assert_eq!(created.metadata.name, "foo");
    assert!(rv(&created) > before, "create RV {} must be above the previous revision {before}", rv(&created));
    assert_eq!(rv(&created), h.current_revision().await, "create RV is the revision of the write");
    let read = h.get(&key("test-ns", "foo")).await.expect("get").expect("present");
    assert_eq!(read, created);
}

/// `RunTestCreate` key validation: the value lives at `/registry/pods/<ns>/<name>` and the
/// stored bytes carry neither resourceVersion nor selfLink.
pub async fn create_stores_object_without_resource_version_under_registry_key(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let mut object = pod("test-ns", "foo");
    object.metadata.self_link = "/api/v1/namespaces/test-ns/pods/foo".into();
    h.create(object).await;
    let stored = h.backend.get("/registry/pods/test-ns/foo", 0).await.expect("raw get").kv.expect("stored");
    let json: serde_json::Value = serde_json::from_slice(&stored.value).expect("stored JSON");
    assert_eq!(json["metadata"]["name"], "foo");
    assert!(json["metadata"].get("resourceVersion").is_none(), "resourceVersion persisted: {json}");
    assert!(json["metadata"].get("selfLink").is_none(), "selfLink persisted: {json}");
    assert_eq!((stored.version, stored.create_revision), (1, stored.mod_revision));
}

/// `RunTestCreate`: an object with a resourceVersion cannot be created; nothing is stored.
pub async fn create_with_resource_version_set_is_rejected(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let mut object = pod("test-ns", "foo");
    object.metadata.resource_version = "1".into();
    let err = expect_err(h.storage.create(&key("test-ns", "foo"), object, 0).await, "create with RV");
    assert_eq!(err, Error::ResourceVersionSetOnCreate);
    assert!(h.raw(&key("test-ns", "foo")).await.is_none(), "rejected create stored something");
}

/// `RunTestCreateWithKeyExist`: a second create of the same key fails with AlreadyExists and
/// leaves the first object untouched.
pub async fn create_on_existing_key_fails_already_exists(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let first = h.create(pod("test-ns", "foo")).await;
    let err = expect_err(h.storage.create(&key("test-ns", "foo"), pod_on_node("test-ns", "foo", "n"), 0).await, "");
    assert!(err.is_already_exists(), "{err:?}");
    assert_eq!(err.code(), 409);
    assert_eq!(h.get(&key("test-ns", "foo")).await.expect("get"), Some(first));
}

/// `RunTestCreateWithTTL`: an object created with a 1 s TTL disappears with a DELETED event.
pub async fn create_with_ttl_expires_with_deleted_event(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    assert!(h.backend.capabilities().ttl, "the Storage suite needs a backend that honours TTLs");
    let key = key("test-ns", "foo");
    let created = h.storage.create(&key, pod("test-ns", "foo"), 1).await.expect("create with ttl");
    let mut watch = h.watch(&key, single(&created.metadata.resource_version)).await;
    let event = next_event(&mut watch).await;
    let WatchEvent::Deleted(deleted) = event else { panic!("expected DELETED after the TTL, got {event:?}") };
    assert_eq!(deleted.metadata.name, "foo");
    assert!(rv(&deleted) > rv(&created));
    assert!(h.get(&key).await.is_err_and(|e| e.is_not_found()));
}

/// Seeds `foo` created then updated; returns (created, updated).
async fn created_and_updated(h: &Harness) -> (crate::Object, crate::Object) {
    let created = h.create(pod("test-ns", "foo")).await;
    let updated = h.annotate(&key("test-ns", "foo"), "updated", "yes").await;
    assert!(rv(&updated) > rv(&created));
    (created, updated)
}

/// `RunTestGet`: RV "" is a consistent read of the latest state.
pub async fn get_with_empty_resource_version_returns_latest(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let (_, updated) = created_and_updated(&h).await;
    let got = h.storage.get(&key("test-ns", "foo"), GetOptions::default()).await.expect("get");
    assert_eq!(got, Some(updated));
}

/// `RunTestGet`: RV "0" returns any version (here one of the versions the key has had).
pub async fn get_with_resource_version_zero_returns_some_version(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let (created, updated) = created_and_updated(&h).await;
    let options = GetOptions { resource_version: ResourceVersion::Any, ignore_not_found: true };
    let got = h.storage.get(&key("test-ns", "foo"), options).await.expect("get rv 0");
    assert!(got.is_none() || got == Some(created) || got == Some(updated.clone()), "{got:?}");
}

/// `RunTestGet`: an older RV means "not older than": the created or the updated version.
pub async fn get_with_older_resource_version_returns_not_older_state(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let (created, updated) = created_and_updated(&h).await;
    let options = GetOptions { resource_version: ResourceVersion::at(rv(&created)), ..GetOptions::default() };
    let got = h.storage.get(&key("test-ns", "foo"), options).await.expect("get").expect("present");
    assert!(got == created || got == updated, "{got:?}");
}

/// `RunTestGet`: the current RV (the object's, and the store's latest) returns the current object.
pub async fn get_with_current_resource_version_returns_current(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let (_, updated) = created_and_updated(&h).await;
    let latest = h.bump_revision().await;
    for at in [rv(&updated), latest] {
        let options = GetOptions { resource_version: ResourceVersion::at(at), ..GetOptions::default() };
        let got = h.storage.get(&key("test-ns", "foo"), options).await.expect("get");
        assert_eq!(got.as_ref(), Some(&updated), "at RV {at}");
    }
}

/// `RunTestGet`: an RV beyond the current revision is TooLargeResourceVersion (504).
pub async fn get_with_future_resource_version_is_too_large(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    created_and_updated(&h).await;
    let options = GetOptions { resource_version: ResourceVersion::at(i64::MAX as u64), ..GetOptions::default() };
    let err = expect_err(h.storage.get(&key("test-ns", "foo"), options).await, "get at MaxInt64");
    assert!(err.is_too_large_resource_version(), "{err:?}");
    assert_eq!(err.code(), 504);
}

/// `RunTestGet`: a missing key is NotFound (404), or `None` with `ignore_not_found`.
pub async fn get_missing_key_not_found_or_none_when_ignored(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    h.create_pod("test-ns", "other").await;
    let err = expect_err(h.get(&key("test-ns", "foo")).await, "get missing");
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.code(), 404);
    let options = GetOptions { ignore_not_found: true, ..GetOptions::default() };
    assert_eq!(h.storage.get(&key("test-ns", "foo"), options).await.expect("ignored"), None);
}

/// A write without a TTL detaches the TTL of an earlier write (Kubernetes: a Put without a
/// lease): the object outlives a sentinel created later with the same TTL.
pub async fn update_without_ttl_removes_earlier_ttl(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    assert!(h.backend.capabilities().ttl, "the Storage suite needs a backend that honours TTLs");
    let start = h.current_revision().await.to_string();
    let kept = key("test-ns", "kept");
    // 2 s leaves room for the update on a slow (durable) backend before the TTL could fire.
    h.storage.create(&kept, pod("test-ns", "kept"), 2).await.expect("create with ttl");
    let updated = h.annotate(&kept, "ttl", "removed").await;
    let sentinel = h.storage.create(&key("test-ns", "sentinel"), pod("test-ns", "sentinel"), 2).await.expect("create");
    let mut watch = h.watch("/pods/", recursive(&start)).await;
    loop {
        let event = next_event(&mut watch).await;
        if let WatchEvent::Deleted(deleted) = &event {
            assert_eq!(deleted.metadata.name, "sentinel", "only the sentinel may expire: {event:?}");
            assert!(rv(deleted) > rv(&sentinel));
            break;
        }
    }
    assert_eq!(h.get(&kept).await.expect("get"), Some(updated), "the TTL was not removed by the update");
}
