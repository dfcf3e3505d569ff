//! How a watch starts, reports progress and ends: progress notifications
//! (`RunOptionalTestProgressNotify`), delivery after `stop()` (`RunTestDelayedWatchDelivery`),
//! errors (`RunTestWatchError`), bookmarks (`RunTestWatchDispatchBookmarkEvents`) and a watch
//! cancelled by its consumer (`RunTestWatchContextCancel`), on the store and through the cache.

use std::sync::Arc;
use std::time::Duration;

use crate::object::Object;
use crate::storage::WatchEvent;
use crate::store::StoreConfig;
use crate::testing::fixtures::*;
use crate::testing::BackendFixture;
use crate::transformer::DynTransformer;

/// `RunOptionalTestProgressNotify`: a watch with progress notify, on a key that does not
/// change, gets a BOOKMARK whose object carries the type and a resourceVersion not older than
/// the object (on a store: at least the current revision, written after the object) and
/// nothing else. The cache's reflector relies on this. A backend without progress
/// notifications ([`Capabilities::progress_notify`](crate::kv::Capabilities)) must send none.
pub async fn progress_notify_watch_gets_an_empty_bookmark_at_the_current_revision(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let created = h.create_pod("ns", "name").await;
    let current = h.bump_revision().await;
    let mut options = single(&created.metadata.resource_version);
    options.progress_notify = true;
    let mut watch = h.watch(&key("ns", "name"), options).await;
    let notifies = h.expect.periodic_bookmarks || h.backend.capabilities().progress_notify;
    if !notifies {
        let _ = h.storage.request_watch_progress().await;
        expect_no_event(&mut watch, false).await;
        return;
    }
    let _ = h.storage.request_watch_progress().await;
    match next_event(&mut watch).await {
        WatchEvent::Bookmark(object) => {
            let revision = rv(&object);
            assert!(revision >= rv(&created), "bookmark at {revision} older than the object");
            if h.cacher.is_none() {
                assert!(
                    revision >= current,
                    "a store's bookmark at {revision} is below the current revision {current}"
                );
            }
            assert!(revision <= h.current_revision().await, "bookmark from the future");
            let mut rest = object.clone();
            rest.metadata.resource_version = String::new();
            let empty =
                Object { api_version: object.api_version.clone(), kind: object.kind.clone(), ..Object::default() };
            assert_eq!(rest, empty, "a bookmark carries only its type and resourceVersion");
        }
        other => panic!("expected a BOOKMARK, got {other:?}"),
    }
}

/// `RunTestDelayedWatchDelivery`, on every storage: of 21 events written before `stop()`,
/// those already buffered (at least 10, Kubernetes' out-buffer) are still delivered after it,
/// in order, and then the stream ends; nothing written after `stop()` is delivered. (Kubernetes
/// asserts exactly this: `Stop` stops producing, it does not discard what the consumer
/// has not read yet.)
pub async fn stopped_watch_delivers_what_it_buffered_and_nothing_written_after(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let start = h.create_pod("test-ns", "foo").await;
    let mut watch = h.watch("/pods/test-ns", recursive(&start.metadata.resource_version)).await;
    for i in 0..21 {
        h.put(pod("test-ns", &format!("foo-{i:02}"))).await;
    }
    let first = next_non_bookmark(&mut watch).await;
    assert_eq!(first.object().map(|o| o.metadata.name.as_str()), Some("foo-00"));
    tokio::time::sleep(QUIET_PERIOD).await;
    watch.stop();
    for i in 0..3 {
        h.create_pod("test-ns", &format!("after-stop-{i}")).await;
    }
    let mut names = Vec::new();
    loop {
        match tokio::time::timeout(EVENT_TIMEOUT, watch.next()).await {
            Ok(Some(WatchEvent::Bookmark(_))) => {}
            Ok(Some(event)) => names.push(event.object().map(|o| o.metadata.name.clone()).unwrap_or_default()),
            Ok(None) => break,
            Err(_) => panic!("a stopped watch did not end"),
        }
    }
    assert!(names.len() >= 10, "only {} buffered events were delivered after stop: {names:?}", names.len());
    let expected: Vec<String> = (1..=names.len()).map(|i| format!("foo-{i:02}")).collect();
    assert_eq!(names, expected, "buffered events arrive in order, and none written after stop");
}

fn with_transformer(transformer: DynTransformer) -> StoreConfig {
    StoreConfig { transformer, ..StoreConfig::new(RESOURCE) }
}

/// `RunTestWatchError` with 10 concurrent watchers: each watcher of data it cannot transform
/// gets one 500 ERROR and then its stream ends; a readable object written after the
/// unreadable one is delivered to none of them. Through the cache the resource cannot be
/// listed, so every watch is refused with 429 ([`Expectations::watch_needs_readable_resource`]).
pub async fn watch_error_ends_each_of_ten_concurrent_watchers(fixture: Arc<dyn BackendFixture>) {
    let writer = Harness::with_config(&fixture, with_transformer(PrefixTransformer::new("a:", &[]))).await;
    let start = writer.current_revision().await.to_string();
    writer.create_pod("ns", "unreadable").await;
    let reader = writer.sibling(with_transformer(PrefixTransformer::new("b:", &[]))).await;
    if reader.expect.watch_needs_readable_resource {
        for i in 0..10 {
            let err = expect_err(reader.storage.watch("/pods/", recursive(&start)).await, "watch of an unready cache");
            assert_eq!(err.code(), 429, "watcher {i}: {err:?}");
        }
        return;
    }
    let mut watches = Vec::new();
    for _ in 0..10 {
        watches.push(reader.watch("/pods/", recursive(&start)).await);
    }
    reader.create_pod("ns", "readable").await;
    let checks: Vec<_> = watches
        .into_iter()
        .enumerate()
        .map(|(i, mut watch)| {
            tokio::spawn(async move {
                match next_event(&mut watch).await {
                    WatchEvent::Error(e) => assert_eq!(e.code(), 500, "watcher {i}: {e:?}"),
                    other => panic!("watcher {i}: expected an ERROR event, got {other:?}"),
                }
                let after = tokio::time::timeout(EVENT_TIMEOUT, watch.next()).await;
                assert!(matches!(after, Ok(None)), "watcher {i}: an event followed the ERROR: {after:?}");
            })
        })
        .collect();
    for check in checks {
        check.await.expect("watcher check");
    }
    reader.expect_live_watches(0).await;
}

/// `RunTestWatchDispatchBookmarkEvents` over a window longer than the cache's bookmark
/// period (1 s): a watch without `allowWatchBookmarks` never gets a BOOKMARK; one with it gets
/// periodic bookmarks through the cache ([`Expectations::periodic_bookmarks`]) and none from a
/// store; both get the one change made meanwhile.
pub async fn bookmarks_are_sent_only_when_allowed(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let start = h.create_pod("ns", "seed").await.metadata.resource_version;
    let mut allowed_options = recursive(&start);
    allowed_options.predicate.allow_watch_bookmarks = true;
    let mut allowed = h.watch("/pods/", allowed_options).await;
    let mut plain = h.watch("/pods/", recursive(&start)).await;
    let writer = spawn_creates(h.storage.clone(), vec![pod("ns", "during")], Duration::from_millis(0));
    let window = suite_cacher_config().bookmark_frequency + Duration::from_millis(600);
    let deadline = tokio::time::Instant::now() + window;
    let (mut allowed_bookmarks, mut allowed_changes, mut plain_changes) = (0, 0, 0);
    let mut last = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            event = allowed.next() => match event {
                Some(WatchEvent::Bookmark(object)) => {
                    assert!(rv(&object) >= last, "bookmark RV went backwards");
                    last = rv(&object);
                    allowed_bookmarks += 1;
                }
                Some(WatchEvent::Added(object)) => {
                    last = last.max(rv(&object));
                    allowed_changes += 1;
                }
                other => panic!("unexpected event on the watch allowing bookmarks: {other:?}"),
            },
            event = plain.next() => match event {
                Some(WatchEvent::Added(_)) => plain_changes += 1,
                other => panic!("unexpected event on the watch without bookmarks: {other:?}"),
            },
        }
    }
    writer.await.expect("writer");
    assert_eq!((allowed_changes, plain_changes), (1, 1), "each watch gets the one create");
    if h.expect.periodic_bookmarks {
        assert!(allowed_bookmarks >= 1, "no bookmark within {window:?}");
    } else {
        assert_eq!(allowed_bookmarks, 0, "a store sends no periodic bookmarks");
    }
}

/// `RunTestWatchContextCancel`: a watch whose consumer drops its stream or calls `stop()` ends
/// promptly and frees its resources (the storage's count of live watches falls back), even
/// when no event arrives; the other watches keep working.
pub async fn watch_cancelled_by_its_consumer_frees_its_resources(fixture: Arc<dyn BackendFixture>) {
    let h = Harness::new(&fixture).await;
    let before = h.live_watches();
    let start = h.current_revision().await.to_string();
    let mut watches = Vec::new();
    for _ in 0..6 {
        watches.push(h.watch("/pods/", recursive(&start)).await);
    }
    let not_existing = h.watch("/pods/not-existing", single("0")).await;
    h.expect_live_watches(before + 7).await;
    drop(not_existing);
    drop(watches.pop());
    drop(watches.pop());
    h.expect_live_watches(before + 4).await;
    watches[0].stop();
    h.expect_live_watches(before + 3).await;
    assert!(watches[0].next().await.is_none(), "a stopped idle watch ends");
    let created = h.create_pod("ns", "after").await;
    for watch in &mut watches[1..] {
        assert_event(&next_non_bookmark(watch).await, "ADDED", &created);
    }
    drop(watches);
    h.expect_live_watches(before).await;
}
