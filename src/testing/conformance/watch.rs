//! Watch: event types, predicate transitions, start points, compaction, stop, fan-out
//! (Kubernetes `RunTestWatch` split per case, `RunTestWatchFromZero`, `RunTestDeleteTriggerWatch`,
//! `RunTestWatchFromNonZero`, `RunTestWatcherTimeout`, `RunTestWatchDeleteEventObjectHaveLatestRV`,
//! `RunTestClusterScopedWatch`, `RunTestNamespaceScopedWatch`, `RunTestWatchDispatchBookmarkEvents`,
//! `RunSendInitialEventsBackwardCompatibility`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::object::Object;
use crate::storage::{ListOptions, Predicate, ResourceVersion, WatchEvent};
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;

/// One step of a watch case: write `object` (or delete when None), then expect an event.
struct Step {
    object: Option<Object>,
    expect: Option<&'static str>,
}

fn step(object: Object, expect: Option<&'static str>) -> Step {
    Step { object: Some(object), expect }
}

fn labelled(object: Object) -> Object {
    object.with_label("select", "true")
}

fn unassigned(namespace: &str) -> Object {
    pod(namespace, "foo")
}

fn assigned(namespace: &str) -> Object {
    pod_on_node(namespace, "foo", "bar")
}

/// Kubernetes `testWatch`: watch `/pods/<ns>` (recursive) or `/pods/<ns>/foo` from the list
/// RV with `predicate`, write a pod in another namespace (never seen), then run `steps`.
async fn run_watch_case(fixture: &Arc<dyn BackendFixture>, predicate: Predicate, steps: &[Step]) {
    for recursive in [true, false] {
        let h = Harness::new(fixture).await;
        let namespace = format!("test-ns-{recursive}");
        let watch_key = if recursive { format!("/pods/{namespace}") } else { key(&namespace, "foo") };
        let list_options = ListOptions { recursive, predicate: predicate.clone(), ..ListOptions::default() };
        let start = h.list(&watch_key, list_options.clone()).await.resource_version;
        let mut watch = h
            .watch(&watch_key, ListOptions { resource_version: ResourceVersion::at(start), ..list_options.clone() })
            .await;
        h.put(unassigned(&format!("{namespace}-bad"))).await;
        let mut previous: Option<Object> = None;
        for step in steps {
            let out = match &step.object {
                Some(object) => {
                    let mut object = object.clone();
                    object.metadata.namespace.clone_from(&namespace);
                    h.put(object).await
                }
                None => h.delete(&key(&namespace, "foo")).await,
            };
            if let Some(expected_type) = step.expect {
                let expected = if expected_type == "DELETED" {
                    let mut last = previous.clone().expect("a DELETED step follows a write");
                    last.metadata.resource_version.clone_from(&out.metadata.resource_version);
                    last
                } else {
                    out.clone()
                };
                assert_event(&next_event(&mut watch).await, expected_type, &expected);
            }
            previous = Some(out);
        }
        expect_no_event(&mut watch, true).await;
        watch.stop();
        expect_closed(&mut watch).await;
    }
}

/// `RunTestWatch` "create a key": a create is ADDED; writes to another namespace are invisible.
pub async fn watch_reports_create_as_added(fixture: Arc<dyn BackendFixture>) {
    run_watch_case(&fixture, Predicate::default(), &[step(unassigned(""), Some("ADDED"))]).await;
}

/// `RunTestWatch` "key updated to match predicate": an update into the selector is ADDED.
pub async fn watch_reports_update_into_selector_as_added(fixture: Arc<dyn BackendFixture>) {
    let steps = [step(unassigned(""), None), step(assigned(""), Some("ADDED"))];
    run_watch_case(&fixture, field_predicate("spec.nodeName=bar"), &steps).await;
}

/// `RunTestWatch` "update": an update of a matching object is MODIFIED.
pub async fn watch_reports_update_as_modified(fixture: Arc<dyn BackendFixture>) {
    let steps = [step(unassigned(""), Some("ADDED")), step(assigned(""), Some("MODIFIED"))];
    run_watch_case(&fixture, Predicate::default(), &steps).await;
}

/// `RunTestWatch` "delete because of being filtered": an update out of the selector is DELETED
/// carrying the old object with the new RV.
pub async fn watch_reports_update_out_of_selector_as_deleted_old_object(fixture: Arc<dyn BackendFixture>) {
    let steps = [step(unassigned(""), Some("ADDED")), step(assigned(""), Some("DELETED"))];
    run_watch_case(&fixture, field_predicate("spec.nodeName!=bar"), &steps).await;
}

/// `RunTestWatch` "filtering": a label-filtered sequence in and out of the selector, ending
/// with a delete.
pub async fn watch_label_selector_sequence_ends_with_deleted(fixture: Arc<dyn BackendFixture>) {
    let steps = [
        step(labelled(unassigned("")), Some("ADDED")),
        step(unassigned(""), Some("DELETED")),
        step(labelled(unassigned("")), Some("ADDED")),
        step(labelled(assigned("")), Some("MODIFIED")),
        Step { object: None, expect: Some("DELETED") },
    ];
    run_watch_case(&fixture, label_predicate("select=true"), &steps).await;
}

/// `RunTestWatch`: `stop()` closes the stream.
pub async fn watch_stop_closes_stream(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let mut watch = h.watch("/pods/", recursive("")).await;
    watch.stop();
    expect_closed(&mut watch).await;
    h.create_pod("ns", "after-stop").await;
    assert!(watch.next().await.is_none(), "a stopped watch delivers nothing new");
}

/// `RunTestWatchFromZero`: RV "0" sends the current state as ADDED then changes; a new watch
/// from "0" sees the latest version as ADDED.
pub async fn watch_from_zero_sends_current_state_then_changes(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let stored = h.create_pod("test-ns", "foo").await;
    let key = key("test-ns", "foo");
    let mut watch = h.watch(&key, single("0")).await;
    assert_event(&next_event(&mut watch).await, "ADDED", &stored);
    let updated = h.annotate(&key, "a", "1").await;
    assert_event(&next_event(&mut watch).await, "MODIFIED", &updated);
    watch.stop();
    h.sync_reads(rv(&updated)).await;
    let mut again = h.watch(&key, single("0")).await;
    assert_event(&next_event(&mut again).await, "ADDED", &updated);
}

/// `RunTestWatchFromZero`: after compaction a watch from "0" still works, while a watch from a
/// compacted RV ends with a 410 Expired error event.
pub async fn watch_from_compacted_resource_version_is_gone(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let key = key("test-ns", "foo");
    h.create_pod("test-ns", "foo").await;
    let old = h.annotate(&key, "a", "1").await;
    let newest = h.annotate(&key, "a", "2").await;
    h.compact(rv(&newest)).await;
    let mut from_zero = h.watch(&key, single("0")).await;
    assert_event(&next_event(&mut from_zero).await, "ADDED", &newest);
    let mut too_old = h.watch(&key, single(&(rv(&old) - 1).to_string())).await;
    match next_event(&mut too_old).await {
        WatchEvent::Error(e) => {
            assert_eq!(e.code(), 410, "{e:?}");
            assert!(e.is_expired(), "{e:?}");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(too_old.next().await.is_none(), "no event follows an ERROR");
}

/// `RunTestDeleteTriggerWatch`: a delete is DELETED on a watch from the object's RV.
pub async fn delete_triggers_deleted_watch_event(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let stored = h.create_pod("test-ns", "foo").await;
    let mut watch = h.watch(&key("test-ns", "foo"), single(&stored.metadata.resource_version)).await;
    h.delete(&key("test-ns", "foo")).await;
    assert_eq!(next_event(&mut watch).await.type_name(), "DELETED");
}

/// `RunTestWatchFromNonZero`: a watch from the object's RV reports the next update as MODIFIED.
pub async fn watch_from_object_resource_version_reports_update_as_modified(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let stored = h.create_pod("test-ns", "foo").await;
    let mut watch = h.watch(&key("test-ns", "foo"), single(&stored.metadata.resource_version)).await;
    let updated = h.annotate(&key("test-ns", "foo"), "version", "2").await;
    assert_event(&next_event(&mut watch).await, "MODIFIED", &updated);
}

/// Watch from an old RV replays every change after it in order, exactly once, then continues live.
pub async fn watch_from_old_resource_version_replays_history_in_order(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let start = h.current_revision().await;
    let a = h.create_pod("ns", "a").await;
    let a2 = h.annotate(&key("ns", "a"), "v", "2").await;
    let b = h.create_pod("ns", "b").await;
    let a_deleted = h.delete(&key("ns", "a")).await;
    let mut watch = h.watch("/pods/", recursive(&start.to_string())).await;
    assert_event(&next_event(&mut watch).await, "ADDED", &a);
    assert_event(&next_event(&mut watch).await, "MODIFIED", &a2);
    assert_event(&next_event(&mut watch).await, "ADDED", &b);
    assert_event(&next_event(&mut watch).await, "DELETED", &a_deleted);
    let c = h.create_pod("ns", "c").await;
    assert_event(&next_event(&mut watch).await, "ADDED", &c);
    expect_no_event(&mut watch, true).await;
}

/// A watch from a future RV is accepted and delivers only events after that RV.
pub async fn watch_from_future_resource_version_waits_for_it(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let future = h.current_revision().await + 2;
    let mut watch = h.watch("/pods/", recursive(&future.to_string())).await;
    h.create_pod("ns", "a").await;
    h.create_pod("ns", "b").await;
    let c = h.create_pod("ns", "c").await;
    assert_eq!(rv(&c), future + 1);
    assert_event(&next_event(&mut watch).await, "ADDED", &c);
}

/// `RunTestWatchDeleteEventObjectHaveLatestRV`: the DELETED event object equals what delete
/// returned, with the delete RV (not the last stored RV).
pub async fn deleted_event_object_equals_delete_result(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let stored = h.create_pod("test-ns", "foo").await;
    let mut watch = h.watch("/pods/", recursive(&stored.metadata.resource_version)).await;
    let deleted = h.delete(&key("test-ns", "foo")).await;
    assert_ne!(deleted.metadata.resource_version, stored.metadata.resource_version);
    assert_event(&next_event(&mut watch).await, "DELETED", &deleted);
}

/// `RunTestWatcherTimeout`: watchers that never read do not block one that does, even when
/// their buffers are full.
pub async fn idle_watchers_do_not_block_a_reading_watcher(fixture: Arc<dyn BackendFixture>) {
    const IDLE: usize = 50;
    const WRITES: usize = 150;
    let h = Harness::new(&fixture).await;
    let start = h.current_revision().await.to_string();
    let mut idle = Vec::new();
    for _ in 0..IDLE {
        idle.push(h.watch("/pods/", recursive(&start)).await);
    }
    let mut reader = h.watch("/pods/", recursive(&start)).await;
    let creates = (0..WRITES).map(|i| pod("ns", &format!("pod-{i:03}"))).collect();
    let writer = spawn_creates(h.storage.clone(), creates, Duration::ZERO);
    for i in 0..WRITES {
        let event = next_event(&mut reader).await;
        assert_eq!(event.type_name(), "ADDED");
        assert_eq!(event.object().map(|o| o.metadata.name.clone()), Some(format!("pod-{i:03}")));
    }
    writer.await.expect("writer");
    drop(idle);
}

/// `RunTestWatchDispatchBookmarkEvents`: writes in another namespace produce no event; without
/// `allowWatchBookmarks` nothing at all arrives; with it, a store without a cache sends nothing
/// but bookmarks (expected=false), and the watch cache sends a BOOKMARK within 3 s
/// (expected=true, [`Expectations::periodic_bookmarks`]).
pub async fn watch_without_bookmarks_sends_nothing_for_other_namespaces(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let stored = h.create_pod("test-ns", "foo").await;
    for allow_watch_bookmarks in [false, true] {
        let mut options = single(&stored.metadata.resource_version);
        options.predicate.allow_watch_bookmarks = allow_watch_bookmarks;
        let mut watch = h.watch(&key("test-ns", "foo"), options).await;
        h.create_pod(&format!("other-ns-{allow_watch_bookmarks}"), "foo").await;
        if allow_watch_bookmarks && h.expect.periodic_bookmarks {
            match tokio::time::timeout(Duration::from_secs(3), watch.next()).await {
                Ok(Some(WatchEvent::Bookmark(bookmark))) => assert!(rv(&bookmark) >= rv(&stored), "{bookmark:?}"),
                other => panic!("expected a BOOKMARK within 3 s, got {other:?}"),
            }
        } else {
            expect_no_event(&mut watch, allow_watch_bookmarks).await;
        }
    }
}

/// `RunSendInitialEventsBackwardCompatibility`: sendInitialEvents=true with RV "" and no
/// bookmarks establishes the watch (initial ADDED events, no end bookmark).
pub async fn send_initial_events_without_bookmarks_is_accepted(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let stored = h.create(pod("ns", "a").with_field("status", json!({"phase": "Running"}))).await;
    let options = ListOptions { send_initial_events: Some(true), ..recursive("") };
    let mut watch = h.watch("/pods", options).await;
    assert_event(&next_event(&mut watch).await, "ADDED", &stored);
    expect_no_event(&mut watch, false).await;
    watch.stop();
}

/// A non-recursive watch of `/pods/ns/foo` ignores `/pods/ns/foobar`, and a recursive watch of
/// `/pods/ns/foo` sees neither (it watches the directory `/pods/ns/foo/`).
pub async fn watch_of_a_key_ignores_keys_sharing_its_prefix(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let start = h.current_revision().await.to_string();
    let mut exact_key = h.watch(&key("ns", "foo"), single(&start)).await;
    let mut directory = h.watch(&key("ns", "foo"), recursive(&start)).await;
    h.create_pod("ns", "foobar").await;
    let foo_pod = h.create_pod("ns", "foo").await;
    assert_event(&next_event(&mut exact_key).await, "ADDED", &foo_pod);
    expect_no_event(&mut exact_key, true).await;
    expect_no_event(&mut directory, true).await;
}
