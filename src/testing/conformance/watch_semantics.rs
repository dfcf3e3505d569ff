//! Watch start semantics: resourceVersion × sendInitialEvents × allowWatchBookmarks
//! (Kubernetes `RunWatchSemantics` split per resourceVersion, `RunWatchSemanticInitialEventsExtended`,
//! `RunWatchListMatchSingle`).

use std::sync::Arc;

use crate::object::Object;
use crate::storage::{ListOptions, WatchEvent, WatchStream, INITIAL_EVENTS_END_ANNOTATION};
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;

/// Which resourceVersion a case watches from.
#[derive(Clone, Copy, Debug)]
enum StartAt {
    Unset,
    Zero,
    One,
    /// The current RV after creating the initial pods.
    Current,
}

/// Asserts the end-of-initial-events bookmark: annotated, with an RV at least `minimum`.
fn assert_initial_events_end(event: &WatchEvent, minimum: u64) -> u64 {
    let WatchEvent::Bookmark(bookmark) = event else {
        panic!("expected the initial-events-end BOOKMARK, got {event:?}")
    };
    assert_eq!(
        bookmark.metadata.annotations.get(INITIAL_EVENTS_END_ANNOTATION).map(String::as_str),
        Some("true"),
        "{bookmark:?}"
    );
    assert!(rv(bookmark) >= minimum, "bookmark RV {} below {minimum}", rv(bookmark));
    assert!(bookmark.metadata.name.is_empty(), "a bookmark carries only metadata.resourceVersion");
    rv(bookmark)
}

/// One `RunWatchSemantics` case: create pods 1–3, watch `/pods/ns` with the options, create
/// pods 4–5, and check the exact event sequence (ignoring other bookmarks at the end).
async fn run_case(
    fixture: &Arc<dyn BackendFixture>,
    start: StartAt,
    send_initial_events: Option<bool>,
    allow_watch_bookmarks: bool,
) {
    let h = Harness::new(fixture).await;
    let mut initial = Vec::new();
    for i in 1..=3 {
        initial.push(h.create_pod("ns", &format!("pod-{i}")).await);
    }
    // Kubernetes: "this list call ensures that the cache has seen the created pods".
    h.sync_reads(rv(&initial[2])).await;
    let resource_version = match start {
        StartAt::Unset => String::new(),
        StartAt::Zero => "0".to_owned(),
        StartAt::One => "1".to_owned(),
        StartAt::Current => h.current_revision().await.to_string(),
    };
    let mut options = ListOptions { send_initial_events, ..recursive(&resource_version) };
    options.predicate.allow_watch_bookmarks = allow_watch_bookmarks;
    let case = format!("{start:?}, sendInitialEvents={send_initial_events:?}, bookmarks={allow_watch_bookmarks}");
    let mut watch = match h.storage.watch("/pods/ns", options).await {
        Ok(watch) => watch,
        Err(e) => panic!("{case}: watch failed: {e}"),
    };
    // Initial events: sendInitialEvents=true always; legacy (None) for RV ""/"0"; and a
    // watch from RV 1 replays the creates as ordinary ADDED events.
    let replays_initial = match send_initial_events {
        Some(true) => true,
        Some(false) => matches!(start, StartAt::One),
        None => !matches!(start, StartAt::Current),
    };
    if replays_initial {
        for object in &initial {
            assert_next(&mut watch, "ADDED", object, &case).await;
        }
    }
    if send_initial_events == Some(true) && allow_watch_bookmarks {
        assert_initial_events_end(&next_event(&mut watch).await, rv(&initial[2]));
    }
    for i in 4..=5 {
        let created = h.create_pod("ns", &format!("pod-{i}")).await;
        assert_next(&mut watch, "ADDED", &created, &case).await;
    }
    expect_no_event(&mut watch, true).await;
}

async fn assert_next(watch: &mut WatchStream, expected_type: &str, expected: &Object, case: &str) {
    let event = next_non_bookmark(watch).await;
    assert_eq!(event.type_name(), expected_type, "{case}: {event:?}");
    assert_eq!(event.object(), Some(expected), "{case}");
}

async fn run_all_flags(fixture: &Arc<dyn BackendFixture>, start: StartAt) {
    for send_initial_events in [Some(true), Some(false), None] {
        for allow_watch_bookmarks in [true, false] {
            run_case(fixture, start, send_initial_events, allow_watch_bookmarks).await;
        }
    }
}

/// `RunWatchSemantics`, RV unset: sendInitialEvents=true → consistent initial state (+ end
/// bookmark when allowed); false → only new changes; legacy → initial state, no bookmark.
pub async fn watch_semantics_with_resource_version_unset(fixture: Arc<dyn BackendFixture>) {
    run_all_flags(&fixture, StartAt::Unset).await;
}

/// `RunWatchSemantics`, RV "0": as unset ("any" state is the latest on a store without cache).
pub async fn watch_semantics_with_resource_version_zero(fixture: Arc<dyn BackendFixture>) {
    run_all_flags(&fixture, StartAt::Zero).await;
}

/// `RunWatchSemantics`, RV "1": sendInitialEvents=true → initial state + end bookmark; otherwise
/// every change after revision 1 is replayed.
pub async fn watch_semantics_with_resource_version_one(fixture: Arc<dyn BackendFixture>) {
    run_all_flags(&fixture, StartAt::One).await;
}

/// `RunWatchSemantics`, RV = current: sendInitialEvents=true → initial state + end bookmark;
/// otherwise only changes after the current RV.
pub async fn watch_semantics_with_current_resource_version(fixture: Arc<dyn BackendFixture>) {
    run_all_flags(&fixture, StartAt::Current).await;
}

/// `RunWatchSemanticInitialEventsExtended`: the end bookmark carries the *global* RV, here a
/// write in another namespace after the last pod of the watched one.
pub async fn initial_events_end_bookmark_carries_global_resource_version(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let watched = h.create_pod("ns", "pod-1").await;
    let other = h.create_pod("other-ns", "pod-2").await;
    let mut options = ListOptions { send_initial_events: Some(true), ..recursive("") };
    options.predicate.allow_watch_bookmarks = true;
    let mut watch = h.watch("/pods/ns", options).await;
    assert_event(&next_event(&mut watch).await, "ADDED", &watched);
    let bookmark_rv = assert_initial_events_end(&next_event(&mut watch).await, rv(&other));
    assert_eq!(bookmark_rv, rv(&other));
}

/// `RunWatchListMatchSingle`: a watch-list with a `metadata.name` selector sends that one object,
/// then the end bookmark with the global RV.
pub async fn watch_list_with_name_selector_sends_one_object_then_bookmark(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    h.create_pod("ns", "pod-1").await;
    let wanted = h.create_pod("ns", "pod-2").await;
    h.create_pod("ns", "pod-3").await;
    let global = h.bump_revision().await;
    let mut options = ListOptions { send_initial_events: Some(true), ..recursive("") };
    options.predicate = field_predicate("metadata.name=pod-2");
    options.predicate.allow_watch_bookmarks = true;
    let mut watch = h.watch("/pods/ns", options).await;
    assert_event(&next_event(&mut watch).await, "ADDED", &wanted);
    assert_eq!(assert_initial_events_end(&next_event(&mut watch).await, global), global);
    expect_no_event(&mut watch, true).await;
}

/// sendInitialEvents=true from an RV the store has not reached ends with a 504
/// TooLargeResourceVersion ERROR event.
pub async fn send_initial_events_from_future_resource_version_is_too_large(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    h.create_pod("ns", "a").await;
    let future = (h.current_revision().await + 100).to_string();
    let options = ListOptions { send_initial_events: Some(true), ..recursive(&future) };
    let mut watch = match h.storage.watch("/pods/", options).await {
        Ok(watch) => watch,
        Err(e) => {
            assert!(e.is_too_large_resource_version(), "{e:?}");
            return;
        }
    };
    match next_event(&mut watch).await {
        WatchEvent::Error(e) => assert!(e.is_too_large_resource_version(), "{e:?}"),
        other => panic!("expected a TooLargeResourceVersion ERROR, got {other:?}"),
    }
    assert!(watch.next().await.is_none());
}
