//! GuaranteedUpdate (Kubernetes `RunTestGuaranteedUpdate*`).
//!
//! `RunTestGuaranteedUpdate` is marked `[E]` only because it inspects etcd's stored bytes; its
//! backend-neutral cases are ported here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;

use crate::error::Error;
use crate::object::Object;
use crate::storage::{Preconditions, ResponseMeta, Storage, WatchEvent};
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;

/// A missing key without `ignore_not_found` is NotFound and nothing is created.
pub async fn guaranteed_update_of_missing_key_is_not_found(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let calls = AtomicUsize::new(0);
    let mut update = |current: Object, _| {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok((current, None))
    };
    let err = expect_err(
        h.storage.guaranteed_update(&key("test-ns", "foo"), false, None, &mut update, None).await,
        "update of a missing key",
    );
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "tryUpdate must not run for a missing key");
    assert!(h.raw(&key("test-ns", "foo")).await.is_none());
}

/// With `ignore_not_found` a missing key passes a zero object (RV 0) and the result is created.
pub async fn guaranteed_update_with_ignore_not_found_creates(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let mut seen = Vec::new();
    let mut update = |current: Object, meta: ResponseMeta| {
        seen.push((current.clone(), meta));
        Ok((pod("test-ns", "foo"), None))
    };
    let created = h
        .storage
        .guaranteed_update(&key("test-ns", "foo"), true, None, &mut update, None)
        .await
        .expect("create through update");
    assert_eq!(seen, vec![(Object::default(), ResponseMeta { resource_version: 0 })]);
    assert_eq!(rv(&created), h.current_revision().await);
    assert_eq!(h.get(&key("test-ns", "foo")).await.expect("get"), Some(created));
}

/// An update that changes the object writes it with a new RV and passes the current RV to tryUpdate.
pub async fn guaranteed_update_changes_resource_version(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let created = h.create_pod("test-ns", "foo").await;
    let mut meta_seen = None;
    let mut update = |mut current: Object, meta: ResponseMeta| {
        meta_seen = Some(meta);
        current.fields.insert("spec".into(), json!({"nodeName": "node-1"}));
        Ok((current, None))
    };
    let updated =
        h.storage.guaranteed_update(&key("test-ns", "foo"), false, None, &mut update, None).await.expect("update");
    assert_eq!(meta_seen, Some(ResponseMeta { resource_version: rv(&created) }));
    assert!(rv(&updated) > rv(&created));
    assert_eq!(updated.field_value("spec.nodeName").as_deref(), Some("node-1"));
    assert_eq!(h.get(&key("test-ns", "foo")).await.expect("get"), Some(updated));
}

/// An update producing identical data does not write: same RV, no new revision — also when
/// the returned object carries a selfLink and a different resourceVersion (never persisted).
pub async fn guaranteed_update_with_identical_data_does_not_write(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let created = h.create_pod("test-ns", "foo").await;
    let revision = h.current_revision().await;
    for self_link in ["", "/api/v1/namespaces/test-ns/pods/foo"] {
        let mut update = |mut current: Object, _| {
            current.metadata.self_link = self_link.to_owned();
            current.metadata.resource_version = "1".into();
            Ok((current, None))
        };
        let out =
            h.storage.guaranteed_update(&key("test-ns", "foo"), false, None, &mut update, None).await.expect("no-op");
        assert_eq!(out.metadata.resource_version, created.metadata.resource_version, "no-op must keep the RV");
        assert!(out.metadata.self_link.is_empty(), "selfLink must not be returned: {out:?}");
    }
    assert_eq!(h.current_revision().await, revision, "a no-op update wrote to the backend");
}

/// A matching UID precondition updates; a mismatching one is InvalidObject and nothing changes.
pub async fn guaranteed_update_checks_uid_precondition(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let mut object = pod("test-ns", "foo");
    object.metadata.uid = "A".into();
    h.create(object).await;
    let mut update = |mut current: Object, _| {
        current.metadata.annotations.insert("touched".into(), "yes".into());
        Ok((current, None))
    };
    let good = Preconditions { uid: Some("A".into()), resource_version: None };
    let updated = h
        .storage
        .guaranteed_update(&key("test-ns", "foo"), false, Some(&good), &mut update, None)
        .await
        .expect("update with matching uid");
    let bad = Preconditions { uid: Some("B".into()), resource_version: None };
    let err = expect_err(
        h.storage.guaranteed_update(&key("test-ns", "foo"), false, Some(&bad), &mut update, None).await,
        "update with wrong uid",
    );
    assert!(err.is_invalid_object(), "{err:?}");
    assert_eq!(err.code(), 409);
    assert_eq!(h.get(&key("test-ns", "foo")).await.expect("get"), Some(updated));
}

/// `RunTestGuaranteedUpdateWithTTL`: an update creating an object with a 1 s TTL produces a
/// DELETED event when it expires.
pub async fn guaranteed_update_with_ttl_expires_with_deleted_event(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    assert!(h.backend.capabilities().ttl, "the Storage suite needs a backend that honours TTLs");
    let key = key("test-ns", "foo");
    let mut update = |_: Object, _| Ok((pod("test-ns", "foo"), Some(1)));
    let created = h.storage.guaranteed_update(&key, true, None, &mut update, None).await.expect("update with ttl");
    let mut watch = h.watch(&key, single(&created.metadata.resource_version)).await;
    let event = next_event(&mut watch).await;
    assert!(matches!(event, WatchEvent::Deleted(_)), "expected DELETED after the TTL, got {event:?}");
    assert!(h.raw(&key).await.is_none());
}

/// `RunTestGuaranteedUpdateWithConflict`: a write racing with tryUpdate makes the update
/// retry: tryUpdate runs twice and the result contains both changes.
pub async fn guaranteed_update_retries_after_conflicting_write(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    h.create_pod("test-ns", "foo").await;
    let calls = AtomicUsize::new(0);
    let storage = h.storage.clone();
    let mut update = |mut current: Object, _| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            let mut racing = |mut other: Object, _| {
                other.metadata.annotations.insert("racer".into(), "won".into());
                Ok((other, None))
            };
            run_blocking(storage.guaranteed_update(&key("test-ns", "foo"), false, None, &mut racing, None))
                .expect("racing update");
        }
        current.metadata.annotations.insert("retried".into(), "yes".into());
        Ok((current, None))
    };
    let out =
        h.storage.guaranteed_update(&key("test-ns", "foo"), false, None, &mut update, None).await.expect("update");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "tryUpdate must run again after the conflict");
    assert_eq!(out.metadata.annotations.get("racer").map(String::as_str), Some("won"));
    assert_eq!(out.metadata.annotations.get("retried").map(String::as_str), Some("yes"));
}

/// `RunTestGuaranteedUpdateWithSuggestionAndConflict`: with a stale suggestion the update
/// conflicts and re-runs tryUpdate on the live object; the live content wins. (Through the
/// watch cache the caller's suggestion is replaced by the cache's object,
/// [`Expectations::writes_use_cached_suggestion`].)
pub async fn guaranteed_update_with_stale_suggestion_reruns_on_live_object(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let stale = h.create_pod("test-ns", "foo").await;
    h.annotate(&key("test-ns", "foo"), "live", "yes").await;
    let mut inputs = Vec::new();
    let mut update = |mut current: Object, _| {
        inputs.push(current.metadata.annotations.contains_key("live"));
        current.metadata.annotations.insert("second".into(), "update".into());
        Ok((current, None))
    };
    let out = h
        .storage
        .guaranteed_update(&key("test-ns", "foo"), false, None, &mut update, Some(stale))
        .await
        .expect("update with stale suggestion");
    if h.expect.writes_use_cached_suggestion {
        // The cache's own object replaces the stale suggestion: it may already be live.
        assert!(inputs == vec![true] || inputs == vec![false, true], "tryUpdate inputs {inputs:?}");
    } else {
        assert_eq!(inputs, vec![false, true], "first on the suggestion, then on the live object");
    }
    assert!(out.metadata.annotations.contains_key("live") && out.metadata.annotations.contains_key("second"));
}

/// `RunTestGuaranteedUpdateWithSuggestionAndConflict`: a tryUpdate error on a fresh suggestion
/// is returned after at most two attempts, without writing.
pub async fn guaranteed_update_error_on_fresh_suggestion_is_returned(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let created = h.create_pod("test-ns", "foo").await;
    let revision = h.current_revision().await;
    let calls = AtomicUsize::new(0);
    let mut update = |_: Object, _| {
        calls.fetch_add(1, Ordering::SeqCst);
        Err(Error::bad_request("refused by tryUpdate"))
    };
    let err = expect_err(
        h.storage.guaranteed_update(&key("test-ns", "foo"), false, None, &mut update, Some(created)).await,
        "update refused by tryUpdate",
    );
    assert_eq!(err, Error::bad_request("refused by tryUpdate"));
    assert!((1..=2).contains(&calls.load(Ordering::SeqCst)), "tryUpdate ran {} times", calls.load(Ordering::SeqCst));
    assert_eq!(h.current_revision().await, revision);
}

/// A tryUpdate error on a stale suggestion is re-checked against the live object, where the
/// update succeeds.
pub async fn guaranteed_update_error_on_stale_suggestion_retries_live_object(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let stale = h.create_pod("test-ns", "foo").await;
    h.annotate(&key("test-ns", "foo"), "ready", "true").await;
    let mut update = |mut current: Object, _| {
        if !current.metadata.annotations.contains_key("ready") {
            return Err(Error::bad_request("not ready"));
        }
        current.metadata.annotations.insert("done".into(), "yes".into());
        Ok((current, None))
    };
    let out = h
        .storage
        .guaranteed_update(&key("test-ns", "foo"), false, None, &mut update, Some(stale))
        .await
        .expect("update after refreshing the stale suggestion");
    assert!(out.metadata.annotations.contains_key("done"));
}

/// Concurrent increments of one counter through `guaranteed_update` never lose a write.
pub async fn concurrent_guaranteed_updates_lose_no_increment(fixture: Arc<dyn BackendFixture>) {
    const TASKS: u64 = 4;
    const INCREMENTS: u64 = 25;
    let h = Harness::new(&fixture).await;
    h.create(pod("test-ns", "counter").with_field("count", json!(0))).await;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let storage: Arc<dyn Storage> = h.storage.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..INCREMENTS {
                let mut increment = |mut current: Object, _| {
                    let n = current.fields.get("count").and_then(|v| v.as_u64()).unwrap_or(0);
                    current.fields.insert("count".into(), json!(n + 1));
                    Ok((current, None))
                };
                storage
                    .guaranteed_update(&key("test-ns", "counter"), false, None, &mut increment, None)
                    .await
                    .expect("increment");
            }
        }));
    }
    for task in tasks {
        task.await.expect("increment task");
    }
    let counter = h.get(&key("test-ns", "counter")).await.expect("get").expect("present");
    assert_eq!(counter.fields.get("count"), Some(&json!(TASKS * INCREMENTS)));
}

/// A create through `guaranteed_update(ignore_not_found)` that races with a plain create retries
/// on the object that won, instead of overwriting it.
pub async fn guaranteed_update_create_racing_a_create_retries_on_winner(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let storage = h.storage.clone();
    let mut inputs = Vec::new();
    let mut update = |mut current: Object, meta: ResponseMeta| {
        if inputs.is_empty() {
            run_blocking(storage.create(&key("test-ns", "foo"), pod_on_node("test-ns", "foo", "winner"), 0))
                .expect("racing create");
        }
        inputs.push((current.metadata.name.clone(), meta.resource_version));
        if current.metadata.name.is_empty() {
            current = pod("test-ns", "foo");
        }
        current.metadata.annotations.insert("updated".into(), "yes".into());
        Ok((current, None))
    };
    let out = h
        .storage
        .guaranteed_update(&key("test-ns", "foo"), true, None, &mut update, None)
        .await
        .expect("update racing a create");
    assert_eq!(inputs.len(), 2, "tryUpdate runs again on the object that won: {inputs:?}");
    assert_eq!(inputs[0], (String::new(), 0));
    assert_eq!(inputs[1].0, "foo");
    assert!(inputs[1].1 > 0);
    assert_eq!(out.field_value("spec.nodeName").as_deref(), Some("winner"), "the winner's content is kept");
    assert_eq!(out.metadata.annotations.get("updated").map(String::as_str), Some("yes"));
}

/// A resourceVersion precondition guards update and delete: a stale RV is InvalidObject (409)
/// and changes nothing; the current RV succeeds.
pub async fn resource_version_precondition_guards_update_and_delete(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let created = h.create_pod("test-ns", "foo").await;
    let current = h.annotate(&key("test-ns", "foo"), "v", "2").await;
    let revision = |o: &Object| o.resource_version().expect("a stored object's resourceVersion");
    let stale = Preconditions { uid: None, resource_version: Some(revision(&created)) };
    let fresh = Preconditions { uid: None, resource_version: Some(revision(&current)) };
    let mut update = |mut o: Object, _| {
        o.metadata.annotations.insert("v".into(), "3".into());
        Ok((o, None))
    };
    let err = expect_err(
        h.storage.guaranteed_update(&key("test-ns", "foo"), false, Some(&stale), &mut update, None).await,
        "update with a stale RV precondition",
    );
    assert!(err.is_invalid_object(), "{err:?}");
    let err = expect_err(
        h.storage
            .delete(
                &key("test-ns", "foo"),
                Some(&stale),
                &crate::storage::allow_all_deletions,
                None,
                crate::storage::DeleteOptions::default(),
            )
            .await,
        "delete with a stale RV precondition",
    );
    assert!(err.is_invalid_object(), "{err:?}");
    assert_eq!(h.get(&key("test-ns", "foo")).await.expect("get"), Some(current));
    let updated = h
        .storage
        .guaranteed_update(&key("test-ns", "foo"), false, Some(&fresh), &mut update, None)
        .await
        .expect("update with the current RV");
    let now = Preconditions { uid: None, resource_version: Some(revision(&updated)) };
    h.storage
        .delete(
            &key("test-ns", "foo"),
            Some(&now),
            &crate::storage::allow_all_deletions,
            None,
            crate::storage::DeleteOptions::default(),
        )
        .await
        .expect("delete with the current RV");
    assert!(h.raw(&key("test-ns", "foo")).await.is_none());
}
