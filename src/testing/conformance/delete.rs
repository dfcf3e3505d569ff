//! Delete (Kubernetes `RunTest*Delete*`, `RunTestValidateDeletion*`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::Error;
use crate::object::Object;
use crate::storage::{allow_all_deletions, DeleteOptions, Preconditions, Storage};
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;

/// Updates `key` (adds an annotation) through `storage` from a synchronous callback.
fn concurrent_annotate(storage: &Arc<dyn Storage>, key: &str) {
    let mut update = |mut current: Object, _| {
        current.metadata.annotations.insert("concurrent".into(), "update".into());
        Ok((current, None))
    };
    if let Err(e) = run_blocking(storage.guaranteed_update(key, false, None, &mut update, None)) {
        panic!("concurrent update of {key} failed: {e}");
    }
}

fn uid_precondition(uid: &str) -> Preconditions {
    Preconditions { uid: Some(uid.to_owned()), resource_version: None }
}

fn pod_with_uid(name: &str, uid: &str) -> Object {
    let mut object = pod("test-ns", name);
    object.metadata.uid = uid.to_owned();
    object
}

/// `RunTestUnconditionalDelete`: delete returns the last object with the *delete* revision as
/// its RV; the key is gone; deleting again is NotFound.
pub async fn unconditional_delete_returns_object_with_delete_resource_version(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let created = h.create_pod("test-ns", "foo").await;
    let deleted = h.delete(&key("test-ns", "foo")).await;
    assert!(rv(&deleted) > rv(&created), "delete RV {} must be newer than {}", rv(&deleted), rv(&created));
    assert_eq!(rv(&deleted), h.current_revision().await);
    let mut expected = created.clone();
    expected.metadata.resource_version = deleted.metadata.resource_version.clone();
    assert_eq!(deleted, expected);
    assert!(h.raw(&key("test-ns", "foo")).await.is_none());
    let err = expect_err(
        h.storage.delete(&key("test-ns", "foo"), None, &allow_all_deletions, None, DeleteOptions::default()).await,
        "second delete",
    );
    assert!(err.is_not_found(), "{err:?}");
}

/// `RunTestConditionalDelete`: a matching UID precondition deletes.
pub async fn delete_with_matching_uid_precondition_deletes(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    h.create(pod_with_uid("foo", "A")).await;
    let pre = uid_precondition("A");
    let deleted = h
        .storage
        .delete(&key("test-ns", "foo"), Some(&pre), &allow_all_deletions, None, DeleteOptions::default())
        .await
        .expect("delete with matching uid");
    assert_eq!(deleted.metadata.uid, "A");
    assert!(h.raw(&key("test-ns", "foo")).await.is_none());
}

/// `RunTestConditionalDelete`: a mismatching UID precondition fails with InvalidObject (409)
/// and keeps the object.
pub async fn delete_with_mismatching_uid_precondition_is_invalid_object(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let created = h.create(pod_with_uid("foo", "A")).await;
    let pre = uid_precondition("B");
    let err = expect_err(
        h.storage
            .delete(&key("test-ns", "foo"), Some(&pre), &allow_all_deletions, None, DeleteOptions::default())
            .await,
        "delete with wrong uid",
    );
    assert!(err.is_invalid_object(), "{err:?}");
    assert_eq!(err.code(), 409);
    assert_eq!(h.get(&key("test-ns", "foo")).await.expect("get"), Some(created));
}

/// `RunTestDeleteWithSuggestion`: an up-to-date cached object as suggestion deletes.
pub async fn delete_with_up_to_date_suggestion_deletes(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let created = h.create_pod("test-ns", "foo").await;
    let deleted = h
        .storage
        .delete(&key("test-ns", "foo"), None, &allow_all_deletions, Some(created.clone()), DeleteOptions::default())
        .await
        .expect("delete with suggestion");
    assert_eq!(deleted.metadata.name, "foo");
    assert!(h.get(&key("test-ns", "foo")).await.is_err_and(|e| e.is_not_found()));
}

/// `RunTestDeleteWithSuggestionAndConflict`: a stale suggestion is detected, the delete retries
/// and returns the latest content with the delete RV.
pub async fn delete_with_stale_suggestion_retries_and_returns_latest(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let stale = h.create_pod("test-ns", "foo").await;
    let latest = h.annotate(&key("test-ns", "foo"), "updated", "yes").await;
    let deleted = h
        .storage
        .delete(&key("test-ns", "foo"), None, &allow_all_deletions, Some(stale), DeleteOptions::default())
        .await
        .expect("delete with stale suggestion");
    assert_eq!(deleted.metadata.annotations.get("updated").map(String::as_str), Some("yes"));
    assert!(rv(&deleted) > rv(&latest));
    assert!(h.raw(&key("test-ns", "foo")).await.is_none());
}

/// `RunTestDeleteWithConflict`: an update racing with validation makes the delete re-read and
/// re-validate (twice in total); the deleted object returned is the updated one.
pub async fn delete_racing_an_update_revalidates_and_returns_updated_object(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    h.create_pod("test-ns", "foo").await;
    let calls = AtomicUsize::new(0);
    let storage = h.storage.clone();
    let validate = |_: Option<&Object>| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            concurrent_annotate(&storage, &key("test-ns", "foo"));
        }
        Ok(())
    };
    let deleted = h
        .storage
        .delete(&key("test-ns", "foo"), None, &validate, None, DeleteOptions::default())
        .await
        .expect("delete racing an update");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "validateDeletion must run again on the fresh object");
    assert_eq!(deleted.metadata.annotations.get("concurrent").map(String::as_str), Some("update"));
    assert!(h.raw(&key("test-ns", "foo")).await.is_none());
}

/// `RunTestDeleteWithSuggestionOfDeletedObject`: a suggestion of an already deleted object is NotFound.
pub async fn delete_with_suggestion_of_deleted_object_is_not_found(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let created = h.create_pod("test-ns", "foo").await;
    h.delete(&key("test-ns", "foo")).await;
    let err = expect_err(
        h.storage
            .delete(&key("test-ns", "foo"), None, &allow_all_deletions, Some(created), DeleteOptions::default())
            .await,
        "delete of deleted object",
    );
    assert!(err.is_not_found(), "{err:?}");
}

fn refuse_deletion(_: Option<&Object>) -> crate::Result<()> {
    Err(Error::bad_request("validation refused the deletion"))
}

/// `RunTestValidateDeletionWithSuggestion`: a failing validation with an up-to-date suggestion
/// is returned after one call, and the object stays.
pub async fn failing_validation_with_fresh_suggestion_is_returned_after_one_call(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let created = h.create_pod("test-ns", "foo").await;
    let calls = AtomicUsize::new(0);
    let validate = |object: Option<&Object>| {
        calls.fetch_add(1, Ordering::SeqCst);
        refuse_deletion(object)
    };
    let err = expect_err(
        h.storage
            .delete(&key("test-ns", "foo"), None, &validate, Some(created.clone()), DeleteOptions::default())
            .await,
        "refused delete",
    );
    assert_eq!(err, Error::bad_request("validation refused the deletion"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(h.get(&key("test-ns", "foo")).await.expect("get"), Some(created));
}

/// `RunTestValidateDeletionWithSuggestion`: validation failing on a stale suggestion but passing
/// on the current object deletes, with at most two validation calls.
pub async fn validation_failing_only_on_stale_suggestion_deletes(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let stale = h.create_pod("test-ns", "foo").await;
    h.annotate(&key("test-ns", "foo"), "allow", "true").await;
    let calls = AtomicUsize::new(0);
    let validate = |object: Option<&Object>| {
        calls.fetch_add(1, Ordering::SeqCst);
        match object {
            Some(o) if o.metadata.annotations.contains_key("allow") => Ok(()),
            _ => Err(Error::bad_request("not allowed yet")),
        }
    };
    h.storage
        .delete(&key("test-ns", "foo"), None, &validate, Some(stale), DeleteOptions::default())
        .await
        .expect("delete after re-validation");
    assert!(calls.load(Ordering::SeqCst) <= 2, "validation ran {} times", calls.load(Ordering::SeqCst));
    assert!(h.raw(&key("test-ns", "foo")).await.is_none());
}

/// `RunTestValidateDeletionWithOnlySuggestionValid`: validation passing on the stale suggestion
/// but failing on the current object refuses the delete and keeps the object.
pub async fn validation_passing_only_on_stale_suggestion_refuses_delete(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let mut allowed = pod("test-ns", "foo");
    allowed.metadata.annotations.insert("allow".into(), "true".into());
    let stale = h.create(allowed).await;
    let mut update = |mut current: Object, _| {
        current.metadata.annotations.clear();
        Ok((current, None))
    };
    let current =
        h.storage.guaranteed_update(&key("test-ns", "foo"), false, None, &mut update, None).await.expect("update");
    let calls = AtomicUsize::new(0);
    let validate = |object: Option<&Object>| {
        calls.fetch_add(1, Ordering::SeqCst);
        match object {
            Some(o) if o.metadata.annotations.contains_key("allow") => Ok(()),
            _ => Err(Error::bad_request("stale object")),
        }
    };
    let err = expect_err(
        h.storage.delete(&key("test-ns", "foo"), None, &validate, Some(stale), DeleteOptions::default()).await,
        "delete validated on a stale suggestion",
    );
    assert_eq!(err, Error::bad_request("stale object"));
    assert!(calls.load(Ordering::SeqCst) <= 2);
    assert_eq!(h.get(&key("test-ns", "foo")).await.expect("get"), Some(current));
}

/// `RunTestPreconditionalDeleteWithSuggestion`: a stale suggestion failing the UID
/// precondition is re-checked against the current object, which passes: deleted.
pub async fn precondition_failing_on_stale_suggestion_rechecks_and_deletes(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let stale = h.create(pod_with_uid("foo", "A")).await;
    h.put(pod_with_uid("foo", "B")).await;
    let pre = uid_precondition("B");
    h.storage
        .delete(&key("test-ns", "foo"), Some(&pre), &allow_all_deletions, Some(stale), DeleteOptions::default())
        .await
        .expect("delete after re-checking the precondition");
    assert!(h.raw(&key("test-ns", "foo")).await.is_none());
}

/// `RunTestPreconditionalDeleteWithOnlySuggestionPass`: the suggestion passes the UID
/// precondition but the current object does not: InvalidObject, object kept.
pub async fn precondition_passing_only_on_stale_suggestion_is_invalid_object(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let stale = h.create(pod_with_uid("foo", "A")).await;
    let current = h.put(pod_with_uid("foo", "B")).await;
    let pre = uid_precondition("A");
    let err = expect_err(
        h.storage
            .delete(&key("test-ns", "foo"), Some(&pre), &allow_all_deletions, Some(stale), DeleteOptions::default())
            .await,
        "delete with precondition passing only on the suggestion",
    );
    assert!(err.is_invalid_object(), "{err:?}");
    assert_eq!(h.get(&key("test-ns", "foo")).await.expect("get"), Some(current));
}

const UNSAFE: DeleteOptions = DeleteOptions { expect_transform_or_decode_error: true };

/// `RunTestDeleteExpectedTransformOrDecodeError`: a normal delete of an undecodable object
/// fails; an unsafe delete removes it; afterwards the key is NotFound.
pub async fn unsafe_delete_removes_undecodable_object(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let key = key("test-ns", "corrupt");
    h.write_raw(&key, b"{this is not json").await;
    let err = expect_err(
        h.storage.delete(&key, None, &allow_all_deletions, None, DeleteOptions::default()).await,
        "normal delete of corrupt data",
    );
    assert_eq!(err.code(), 500, "{err:?}");
    assert!(h.raw(&key).await.is_some(), "a failed delete removed the corrupt object");
    let seen = std::sync::Mutex::new(Vec::new());
    let validate = |object: Option<&Object>| {
        seen.lock().unwrap_or_else(|e| e.into_inner()).push(object.is_some());
        Ok(())
    };
    h.storage.delete(&key, None, &validate, None, UNSAFE).await.expect("unsafe delete");
    assert_eq!(*seen.lock().unwrap_or_else(|e| e.into_inner()), vec![false], "validation sees no object");
    assert!(h.raw(&key).await.is_none());
    let err = expect_err(h.storage.delete(&key, None, &allow_all_deletions, None, UNSAFE).await, "delete again");
    assert!(err.is_not_found(), "{err:?}");
}

/// `RunTestDeleteWithSuggestionAndMissingExpectedTransformOrDecodeError`: an unsafe delete of
/// a decodable object is refused (InvalidObject) even with a suggestion.
pub async fn unsafe_delete_of_decodable_object_is_refused_even_with_suggestion(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let created = h.create_pod("test-ns", "foo").await;
    for suggestion in [None, Some(created.clone())] {
        let err = expect_err(
            h.storage.delete(&key("test-ns", "foo"), None, &allow_all_deletions, suggestion, UNSAFE).await,
            "unsafe delete of a readable object",
        );
        assert!(err.is_invalid_object(), "{err:?}");
    }
    assert_eq!(h.get(&key("test-ns", "foo")).await.expect("get"), Some(created));
}

/// `RunTestDeleteWithConflictAndMissingExpectedTransformOrDecodeError`: the corrupt object
/// becomes decodable while the unsafe delete runs: the retry refuses with InvalidObject.
pub async fn unsafe_delete_refuses_object_that_became_decodable(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let key = key("test-ns", "foo");
    h.write_raw(&key, b"corrupt").await;
    let calls = AtomicUsize::new(0);
    let backend = h.backend.clone();
    let backend_key = h.store.backend_key(&key);
    let validate = |_: Option<&Object>| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            let fixed = serde_json::to_vec(&pod("test-ns", "foo")).expect("encode");
            run_blocking(async {
                let current = backend.get(&backend_key, 0).await.expect("get").kv.expect("present");
                backend.put(&backend_key, fixed.into(), current.mod_revision, None).await.expect("repair")
            });
        }
        Ok(())
    };
    let err = expect_err(h.storage.delete(&key, None, &validate, None, UNSAFE).await, "unsafe delete of repaired");
    assert!(err.is_invalid_object(), "{err:?}");
    assert!(h.get(&key).await.expect("get").is_some(), "the repaired object must stay");
}
