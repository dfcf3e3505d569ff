//! Watch-cache-only behaviours (Kubernetes' `[C]` tests:
//! `RunTestOptionalWatchBookmarksWithCorrectResourceVersion`, `TestDelayedWatchDelivery`) and
//! the cache's own limits (history size, slow watchers). Run only by
//! [`run_cached`](crate::testing::run_cached).

use std::sync::Arc;
use std::time::Duration;

use crate::cacher::{Cacher, CacherConfig};
use crate::storage::{Storage, WatchEvent};
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;

/// `RunTestOptionalWatchBookmarksWithCorrectResourceVersion`: during 100 creates (10 ms apart)
/// a watch with bookmarks gets at least one BOOKMARK; bookmark RVs never go backwards and every
/// other event has an RV greater than anything seen before.
pub async fn bookmark_resource_versions_never_go_backwards_during_creates(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let start = h.list("/pods/", recursive("")).await.resource_version;
    let mut options = recursive(&start.to_string());
    options.predicate.allow_watch_bookmarks = true;
    let mut watch = h.watch("/pods/test-ns", options).await;
    let creates = (0..100).map(|i| pod("test-ns", &format!("foo-{i}"))).collect();
    let writer = spawn_creates(h.storage.clone(), creates, Duration::from_millis(10));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let (mut bookmarks, mut events, mut last) = (0, 0, 0);
    while let Ok(next) = tokio::time::timeout_at(deadline, watch.next()).await {
        let Some(event) = next else { panic!("the watch ended") };
        let object = event.object().unwrap_or_else(|| panic!("unexpected event {event:?}"));
        let revision = rv(object);
        if let WatchEvent::Bookmark(_) = event {
            bookmarks += 1;
            assert!(revision >= last, "bookmark RV {revision} below the last observed {last}");
        } else {
            events += 1;
            assert!(revision > last, "event RV {revision} not above the last observed {last}");
        }
        last = revision;
    }
    writer.await.expect("writer");
    assert!(bookmarks > 0, "no bookmark during {events} events");
    assert!(events > 0, "no event at all");
}

/// `TestDelayedWatchDelivery`: events already queued for a watcher are still delivered, in
/// order, after the watch is stopped (at least the cache's out-buffer plus one).
pub async fn stopped_watch_delivers_buffered_events_in_order(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let start = h.current_revision().await;
    let mut last = 0;
    for i in 0..21 {
        last = rv(&h.create_pod("ns", &format!("pod-{i:02}")).await);
    }
    h.sync_reads(last).await;
    let mut watch = h.watch("/pods/ns", recursive(&start.to_string())).await;
    let first = next_event(&mut watch).await;
    assert_eq!(first.object().map(|o| o.metadata.name.as_str()), Some("pod-00"));
    tokio::time::sleep(QUIET_PERIOD).await;
    watch.stop();
    let mut names = Vec::new();
    while let Some(event) = watch.next().await {
        names.push(event.object().map(|o| o.metadata.name.clone()).unwrap_or_default());
    }
    assert!(names.len() >= 10, "only {} events were delivered after stop", names.len());
    let expected: Vec<String> = (1..=names.len()).map(|i| format!("pod-{i:02}")).collect();
    assert_eq!(names, expected, "buffered events arrive in order");
}

/// A cache with a tiny history (4 events, no growth): a watch from a revision whose changes
/// were evicted is 410 "too old resource version"; a watch from within the history replays it.
pub async fn watch_older_than_the_cache_history_is_gone(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let config = CacherConfig { history_min: 4, history_max: 4, ..suite_cacher_config() };
    let cacher = Cacher::new(Arc::new(h.store.clone()), config).expect("cacher");
    cacher.wait_until_ready(EVENT_TIMEOUT).await.expect("ready");
    let start = h.current_revision().await;
    let mut created = Vec::new();
    for i in 0..10 {
        created.push(h.create_pod("ns", &format!("pod-{i}")).await);
    }
    h.sync_reads(rv(&created[9])).await;
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    while cacher.resource_version() < rv(&created[9]) {
        assert!(tokio::time::Instant::now() < deadline, "the cache did not see the creates");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut too_old = cacher.watch("/pods/", recursive(&start.to_string())).await.expect("watch");
    match next_event(&mut too_old).await {
        WatchEvent::Error(e) => {
            assert_eq!(e.code(), 410, "{e:?}");
            assert!(e.to_string().contains("too old resource version"), "{e}");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(too_old.next().await.is_none(), "no event follows an ERROR");
    let mut recent = cacher.watch("/pods/", recursive(&created[6].metadata.resource_version)).await.expect("watch");
    for object in &created[7..] {
        assert_event(&next_event(&mut recent).await, "ADDED", object);
    }
}

/// A watcher that never reads is terminated once its queues are full (its stream ends after
/// the events it buffered, a gap-free prefix), while a reading watcher gets every event.
pub async fn watcher_that_does_not_read_is_terminated_not_waited_for(fixture: Arc<dyn BackendFixture>) {
    const WRITES: usize = 150;
    let h = Harness::new(&fixture).await;
    let config = CacherConfig { watcher_queue: 2, ..suite_cacher_config() };
    let cacher = Arc::new(Cacher::new(Arc::new(h.store.clone()), config).expect("cacher"));
    cacher.wait_until_ready(EVENT_TIMEOUT).await.expect("ready");
    let start = h.current_revision().await.to_string();
    let mut idle = cacher.watch("/pods/", recursive(&start)).await.expect("idle watch");
    let mut reader = cacher.watch("/pods/", recursive(&start)).await.expect("reading watch");
    // Each write once the reader has the previous one: the reader keeps up however fast the
    // backend writes (the idle watcher's termination spends the shared dispatch budget, so a
    // reader whose small queue a burst of fast writes filled would be cut off too).
    for i in 0..WRITES {
        let object = pod("ns", &format!("pod-{i:03}"));
        h.storage.create(&key_of(&object), object, 0).await.expect("create");
        let event = next_event(&mut reader).await;
        assert_eq!(event.object().map(|o| o.metadata.name.clone()), Some(format!("pod-{i:03}")));
    }
    let mut received = 0;
    loop {
        match tokio::time::timeout(EVENT_TIMEOUT, idle.next()).await {
            Ok(Some(event)) => {
                assert_eq!(event.object().map(|o| o.metadata.name.clone()), Some(format!("pod-{received:03}")));
                received += 1;
            }
            Ok(None) => break,
            Err(_) => panic!("the idle watcher was neither terminated nor given every event"),
        }
    }
    assert!(received < WRITES, "the idle watcher was not terminated (got all {received} events)");
}
