//! The `KvBackend` behaviour suite: revisions, conditional writes, ranges at a revision,
//! watch order from an old revision, compaction errors, TTL.
//!
//! Every behaviour gets a fresh backend from the fixture and uses keys under `/kvsuite/`.
//! Behaviours never assume they are alone on the backend's revision counter (a shared etcd
//! fixture isolates by key prefix only): they assert order and relations of revisions, not
//! absolute values, except where the contract fixes them relative to a write they made.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;

use super::{BackendFixture, Behaviour};
use crate::error::Error;
use crate::kv::{
    prefix_end, KeyValue, KvBackend, RangeRequest, Revision, TxnOutcome, WatchEvent, WatchRequest, WatchStream,
};

/// How long a behaviour waits for an expected event before failing.
const WAIT: Duration = Duration::from_secs(10);

macro_rules! behaviours {
    ($($name:ident),* $(,)?) => {
        vec![$((
            stringify!($name).to_owned(),
            (|fixture: Arc<dyn BackendFixture>| -> BoxFuture<'static, ()> { Box::pin($name(fixture)) }) as Behaviour,
        )),*]
    };
}

/// The behaviours of this suite, named.
pub fn behaviours() -> Vec<(String, Behaviour)> {
    behaviours![
        revision_is_global_and_monotonic,
        first_write_gets_next_revision,
        create_sets_revisions_and_version_one,
        update_increments_version_and_keeps_create_revision,
        create_of_existing_key_fails_with_current_value,
        update_with_stale_revision_fails_with_current_value,
        delete_with_matching_revision_removes_key,
        delete_with_stale_revision_fails_with_current_value,
        delete_of_missing_key_fails_without_a_write,
        recreate_after_delete_starts_a_new_lifecycle,
        get_at_old_revision_returns_the_value_then,
        reads_at_future_revision_fail,
        range_returns_prefix_in_key_order_with_count,
        range_with_limit_reports_more_and_total_count,
        range_at_old_revision_sees_the_state_then,
        range_count_only_returns_no_keys,
        read_responses_carry_the_current_revision,
        watch_from_old_revision_replays_in_order_with_prev_values,
        watch_of_one_key_ignores_other_keys,
        watch_of_prefix_sees_only_the_prefix,
        watch_from_zero_sees_only_new_changes,
        watch_from_future_revision_waits_for_it,
        watch_hands_over_from_replay_to_live_without_gap_or_duplicate,
        progress_request_reaches_progress_watches_after_their_events,
        compaction_fails_reads_and_watches_below_it,
        compaction_keeps_current_values_and_rejects_future_revisions,
        ttl_key_expires_with_a_delete_event,
        put_without_ttl_clears_an_expiry,
        concurrent_creates_only_one_wins,
        concurrent_updates_of_one_revision_only_one_wins,
    ]
}

fn value(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// Creates `key` (must not exist) and returns the write's revision.
async fn create(kv: &dyn KvBackend, key: &str, text: &str) -> Revision {
    match kv.put(key, value(text), 0, None).await.expect("create") {
        TxnOutcome::Succeeded { revision } => revision,
        failed => panic!("create of {key} failed: {failed:?}"),
    }
}

/// Updates `key` expecting `mod_revision` and returns the write's revision.
async fn update(kv: &dyn KvBackend, key: &str, text: &str, mod_revision: Revision) -> Revision {
    match kv.put(key, value(text), mod_revision, None).await.expect("update") {
        TxnOutcome::Succeeded { revision } => revision,
        failed => panic!("update of {key} at {mod_revision} failed: {failed:?}"),
    }
}

async fn delete(kv: &dyn KvBackend, key: &str, mod_revision: Revision) -> Revision {
    match kv.delete(key, mod_revision).await.expect("delete") {
        TxnOutcome::Succeeded { revision } => revision,
        failed => panic!("delete of {key} at {mod_revision} failed: {failed:?}"),
    }
}

async fn get(kv: &dyn KvBackend, key: &str, revision: Revision) -> Option<KeyValue> {
    kv.get(key, revision).await.expect("get").kv
}

fn text(kv: &KeyValue) -> String {
    String::from_utf8_lossy(&kv.value).into_owned()
}

fn one_key(key: &str) -> (String, String) {
    (key.to_owned(), format!("{key}\0"))
}

async fn watch(kv: &dyn KvBackend, start: &str, end: &str, start_revision: Revision) -> WatchStream {
    let request = WatchRequest { start: start.to_owned(), end: end.to_owned(), start_revision, progress_notify: false };
    kv.watch(request).await.expect("watch")
}

/// The next non-progress event, failing after [`WAIT`].
async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    loop {
        match tokio::time::timeout(WAIT, stream.next()).await {
            Ok(Some(Ok(WatchEvent::Progress { .. }))) => continue,
            Ok(Some(Ok(event))) => return event,
            Ok(Some(Err(e))) => panic!("watch ended with an error: {e}"),
            Ok(None) => panic!("watch ended unexpectedly"),
            Err(_) => panic!("no watch event within {WAIT:?}"),
        }
    }
}

/// Asserts no (non-progress) event arrives within `within`.
async fn assert_quiet(stream: &mut WatchStream, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return,
            Ok(Some(Ok(WatchEvent::Progress { .. }))) => continue,
            Ok(other) => panic!("expected no event, got {other:?}"),
        }
    }
}

fn describe(event: &WatchEvent) -> (String, &'static str, Revision, Option<String>, Option<String>) {
    match event {
        WatchEvent::Put { kv, prev } => {
            (kv.key.clone(), "put", kv.mod_revision, Some(text(kv)), prev.as_ref().map(text))
        }
        WatchEvent::Delete { key, revision, prev } => (key.clone(), "delete", *revision, None, prev.as_ref().map(text)),
        WatchEvent::Progress { revision } => (String::new(), "progress", *revision, None, None),
    }
}

async fn revision_is_global_and_monotonic(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let mut last = kv.current_revision().await.expect("current revision");
    assert!(last >= 1, "revision must start at 1 or above, got {last}");
    let mut created = Vec::new();
    for i in 0..5 {
        let key = format!("/kvsuite/mono/{i}");
        let revision = create(kv.as_ref(), &key, "v").await;
        assert!(revision > last, "write to {key} got {revision}, not above {last}");
        last = revision;
        created.push((key, revision));
    }
    // Updates and deletes of different keys share the same counter.
    let (key0, rev0) = &created[0];
    let updated = update(kv.as_ref(), key0, "v2", *rev0).await;
    assert!(updated > last);
    let (key1, rev1) = &created[1];
    let deleted = delete(kv.as_ref(), key1, *rev1).await;
    assert!(deleted > updated);
    let current = kv.current_revision().await.expect("current revision");
    assert!(current >= deleted, "current {current} is below the last write {deleted}");
}

async fn first_write_gets_next_revision(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let before = kv.current_revision().await.expect("current revision");
    let revision = create(kv.as_ref(), "/kvsuite/first", "v").await;
    assert!(revision > before, "first write got {revision}, current was {before}");
    let after = kv.current_revision().await.expect("current revision");
    assert!(after >= revision, "current {after} is below the write's revision {revision}");
    let got = get(kv.as_ref(), "/kvsuite/first", 0).await.expect("key exists");
    assert_eq!(got.mod_revision, revision);
}

async fn create_sets_revisions_and_version_one(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let revision = create(kv.as_ref(), "/kvsuite/a", "hello").await;
    let got = get(kv.as_ref(), "/kvsuite/a", 0).await.expect("created key");
    assert_eq!(got.key, "/kvsuite/a");
    assert_eq!(text(&got), "hello");
    assert_eq!((got.create_revision, got.mod_revision, got.version), (revision, revision, 1));
}

async fn update_increments_version_and_keeps_create_revision(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let created = create(kv.as_ref(), "/kvsuite/a", "1").await;
    let second = update(kv.as_ref(), "/kvsuite/a", "2", created).await;
    let third = update(kv.as_ref(), "/kvsuite/a", "3", second).await;
    assert!(created < second && second < third);
    let got = get(kv.as_ref(), "/kvsuite/a", 0).await.expect("key");
    assert_eq!((got.create_revision, got.mod_revision, got.version), (created, third, 3));
    assert_eq!(text(&got), "3");
}

async fn create_of_existing_key_fails_with_current_value(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let created = create(kv.as_ref(), "/kvsuite/a", "first").await;
    match kv.put("/kvsuite/a", value("second"), 0, None).await.expect("put") {
        TxnOutcome::Failed { current: Some(current), revision } => {
            assert_eq!(text(&current), "first");
            assert_eq!(current.mod_revision, created);
            assert!(revision >= created);
        }
        other => panic!("a create of an existing key must fail with its value, got {other:?}"),
    }
    let got = get(kv.as_ref(), "/kvsuite/a", 0).await.expect("key");
    assert_eq!((text(&got).as_str(), got.mod_revision, got.version), ("first", created, 1));
}

async fn update_with_stale_revision_fails_with_current_value(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let created = create(kv.as_ref(), "/kvsuite/a", "1").await;
    let updated = update(kv.as_ref(), "/kvsuite/a", "2", created).await;
    match kv.put("/kvsuite/a", value("stale"), created, None).await.expect("put") {
        TxnOutcome::Failed { current: Some(current), .. } => {
            assert_eq!((text(&current).as_str(), current.mod_revision, current.version), ("2", updated, 2));
        }
        other => panic!("a stale update must fail with the current value, got {other:?}"),
    }
    // An update of a missing key fails with no current value.
    match kv.put("/kvsuite/missing", value("x"), updated, None).await.expect("put") {
        TxnOutcome::Failed { current: None, .. } => {}
        other => panic!("an update of a missing key must fail with None, got {other:?}"),
    }
    assert!(get(kv.as_ref(), "/kvsuite/missing", 0).await.is_none());
}

async fn delete_with_matching_revision_removes_key(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let created = create(kv.as_ref(), "/kvsuite/a", "1").await;
    let deleted = delete(kv.as_ref(), "/kvsuite/a", created).await;
    assert!(deleted > created);
    assert!(get(kv.as_ref(), "/kvsuite/a", 0).await.is_none());
    assert!(kv.current_revision().await.expect("current") >= deleted);
}

async fn delete_with_stale_revision_fails_with_current_value(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let created = create(kv.as_ref(), "/kvsuite/a", "1").await;
    let updated = update(kv.as_ref(), "/kvsuite/a", "2", created).await;
    match kv.delete("/kvsuite/a", created).await.expect("delete") {
        TxnOutcome::Failed { current: Some(current), .. } => assert_eq!(current.mod_revision, updated),
        other => panic!("a stale delete must fail with the current value, got {other:?}"),
    }
    assert_eq!(get(kv.as_ref(), "/kvsuite/a", 0).await.expect("still there").mod_revision, updated);
}

async fn delete_of_missing_key_fails_without_a_write(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let created = create(kv.as_ref(), "/kvsuite/other", "x").await;
    match kv.delete("/kvsuite/missing", created).await.expect("delete") {
        TxnOutcome::Failed { current: None, .. } => {}
        other => panic!("deleting a missing key must fail with None, got {other:?}"),
    }
    assert_eq!(get(kv.as_ref(), "/kvsuite/other", 0).await.expect("untouched").mod_revision, created);
}

async fn recreate_after_delete_starts_a_new_lifecycle(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let first = create(kv.as_ref(), "/kvsuite/a", "1").await;
    let second = update(kv.as_ref(), "/kvsuite/a", "2", first).await;
    delete(kv.as_ref(), "/kvsuite/a", second).await;
    let recreated = create(kv.as_ref(), "/kvsuite/a", "new").await;
    let got = get(kv.as_ref(), "/kvsuite/a", 0).await.expect("recreated");
    assert_eq!((got.create_revision, got.mod_revision, got.version), (recreated, recreated, 1));
}

async fn get_at_old_revision_returns_the_value_then(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let before = kv.current_revision().await.expect("current");
    let v1 = create(kv.as_ref(), "/kvsuite/a", "1").await;
    let v2 = update(kv.as_ref(), "/kvsuite/a", "2", v1).await;
    let other = create(kv.as_ref(), "/kvsuite/b", "b").await;
    let gone = delete(kv.as_ref(), "/kvsuite/a", v2).await;
    assert!(get(kv.as_ref(), "/kvsuite/a", before).await.is_none(), "the key did not exist before its create");
    let at_v1 = get(kv.as_ref(), "/kvsuite/a", v1).await.expect("value at v1");
    assert_eq!((text(&at_v1).as_str(), at_v1.mod_revision, at_v1.version), ("1", v1, 1));
    let at_other = get(kv.as_ref(), "/kvsuite/a", other).await.expect("value between writes");
    assert_eq!((text(&at_other).as_str(), at_other.mod_revision, at_other.version), ("2", v2, 2));
    assert_eq!(at_other.create_revision, v1);
    assert!(get(kv.as_ref(), "/kvsuite/a", gone).await.is_none(), "deleted at {gone}");
    assert!(get(kv.as_ref(), "/kvsuite/a", 0).await.is_none());
}

async fn reads_at_future_revision_fail(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    create(kv.as_ref(), "/kvsuite/a", "1").await;
    let future = kv.current_revision().await.expect("current") + 1_000;
    match kv.get("/kvsuite/a", future).await {
        Err(Error::FutureRevision { requested, current }) => assert!(requested == future && current < future),
        other => panic!("a get at a future revision must fail with FutureRevision, got {other:?}"),
    }
    let mut request = RangeRequest::prefix("/kvsuite/");
    request.revision = future;
    match kv.range(request).await {
        Err(Error::FutureRevision { requested, .. }) => assert_eq!(requested, future),
        other => panic!("a range at a future revision must fail with FutureRevision, got {other:?}"),
    }
}

async fn range_returns_prefix_in_key_order_with_count(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    for key in ["/kvsuite/r/c", "/kvsuite/r/a", "/kvsuite/rx", "/kvsuite/r/b", "/kvsuite/q"] {
        create(kv.as_ref(), key, key).await;
    }
    let response = kv.range(RangeRequest::prefix("/kvsuite/r/")).await.expect("range");
    let keys: Vec<&str> = response.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/kvsuite/r/a", "/kvsuite/r/b", "/kvsuite/r/c"]);
    assert_eq!(response.count, 3);
    assert!(!response.more);
    for item in &response.kvs {
        assert_eq!(text(item), item.key, "each key carries its own value");
    }
    // A start key inside the prefix skips the keys before it.
    let request = RangeRequest { start: "/kvsuite/r/b".into(), ..RangeRequest::prefix("/kvsuite/r/") };
    let response = kv.range(request).await.expect("range from b");
    let keys: Vec<&str> = response.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/kvsuite/r/b", "/kvsuite/r/c"]);
}

async fn range_with_limit_reports_more_and_total_count(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    for i in 0..7 {
        create(kv.as_ref(), &format!("/kvsuite/l/{i}"), "v").await;
    }
    let request = RangeRequest { limit: 3, ..RangeRequest::prefix("/kvsuite/l/") };
    let response = kv.range(request).await.expect("range");
    let keys: Vec<&str> = response.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/kvsuite/l/0", "/kvsuite/l/1", "/kvsuite/l/2"]);
    assert_eq!(response.count, 7);
    assert!(response.more);
    // Paging on at the same revision from just after the last key returned.
    let request = RangeRequest {
        start: "/kvsuite/l/2\0".into(),
        limit: 10,
        revision: response.revision,
        ..RangeRequest::prefix("/kvsuite/l/")
    };
    let rest = kv.range(request).await.expect("next page");
    assert_eq!(rest.kvs.len(), 4);
    assert_eq!(rest.count, 4);
    assert!(!rest.more);
    let exact = RangeRequest { limit: 7, ..RangeRequest::prefix("/kvsuite/l/") };
    assert!(!kv.range(exact).await.expect("range").more, "a limit equal to the count leaves nothing more");
}

async fn range_at_old_revision_sees_the_state_then(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let a = create(kv.as_ref(), "/kvsuite/p/a", "a1").await;
    let b = create(kv.as_ref(), "/kvsuite/p/b", "b1").await;
    let snapshot = kv.current_revision().await.expect("current");
    update(kv.as_ref(), "/kvsuite/p/a", "a2", a).await;
    delete(kv.as_ref(), "/kvsuite/p/b", b).await;
    create(kv.as_ref(), "/kvsuite/p/c", "c1").await;
    let old = kv.range(RangeRequest { revision: snapshot, ..RangeRequest::prefix("/kvsuite/p/") }).await.expect("old");
    let seen: Vec<(String, String)> = old.kvs.iter().map(|kv| (kv.key.clone(), text(kv))).collect();
    assert_eq!(seen, [("/kvsuite/p/a".to_owned(), "a1".to_owned()), ("/kvsuite/p/b".to_owned(), "b1".to_owned())]);
    assert_eq!(old.count, 2);
    let request = RangeRequest { revision: snapshot, limit: 1, ..RangeRequest::prefix("/kvsuite/p/") };
    let limited = kv.range(request).await.expect("old, limited");
    assert_eq!((limited.kvs.len(), limited.count, limited.more), (1, 2, true));
    let now = kv.range(RangeRequest::prefix("/kvsuite/p/")).await.expect("latest");
    let seen: Vec<(String, String)> = now.kvs.iter().map(|kv| (kv.key.clone(), text(kv))).collect();
    assert_eq!(seen, [("/kvsuite/p/a".to_owned(), "a2".to_owned()), ("/kvsuite/p/c".to_owned(), "c1".to_owned())]);
}

async fn range_count_only_returns_no_keys(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    for i in 0..4 {
        create(kv.as_ref(), &format!("/kvsuite/n/{i}"), "v").await;
    }
    let response =
        kv.range(RangeRequest { count_only: true, ..RangeRequest::prefix("/kvsuite/n/") }).await.expect("count");
    assert!(response.kvs.is_empty());
    assert_eq!(response.count, 4);
}

async fn read_responses_carry_the_current_revision(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let first = create(kv.as_ref(), "/kvsuite/h/a", "1").await;
    let last = create(kv.as_ref(), "/kvsuite/h/b", "1").await;
    let current = kv.current_revision().await.expect("current");
    assert!(current >= last);
    let old_get = kv.get("/kvsuite/h/a", first).await.expect("get at first");
    assert!(old_get.revision >= last, "a read at an old revision reports the current revision (etcd header)");
    let old_range =
        kv.range(RangeRequest { revision: first, ..RangeRequest::prefix("/kvsuite/h/") }).await.expect("range");
    assert!(old_range.revision >= last);
    assert_eq!(old_range.count, 1);
    let latest = kv.range(RangeRequest::prefix("/kvsuite/h/")).await.expect("range");
    assert!(latest.revision >= last);
}

async fn watch_from_old_revision_replays_in_order_with_prev_values(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let r1 = create(kv.as_ref(), "/kvsuite/w/a", "a1").await;
    let r2 = update(kv.as_ref(), "/kvsuite/w/a", "a2", r1).await;
    let r3 = create(kv.as_ref(), "/kvsuite/w/b", "b1").await;
    let r4 = delete(kv.as_ref(), "/kvsuite/w/a", r2).await;
    let mut stream = watch(kv.as_ref(), "/kvsuite/w/", &prefix_end("/kvsuite/w/"), r2).await;
    let r5 = update(kv.as_ref(), "/kvsuite/w/b", "b2", r3).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(describe(&next_event(&mut stream).await));
    }
    let expected = vec![
        ("/kvsuite/w/a".to_owned(), "put", r2, Some("a2".to_owned()), Some("a1".to_owned())),
        ("/kvsuite/w/b".to_owned(), "put", r3, Some("b1".to_owned()), None),
        ("/kvsuite/w/a".to_owned(), "delete", r4, None, Some("a2".to_owned())),
        ("/kvsuite/w/b".to_owned(), "put", r5, Some("b2".to_owned()), Some("b1".to_owned())),
    ];
    assert_eq!(seen, expected);
    assert_quiet(&mut stream, Duration::from_millis(200)).await;
}

async fn watch_of_one_key_ignores_other_keys(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let (start, end) = one_key("/kvsuite/k/a");
    let mut stream = watch(kv.as_ref(), &start, &end, 0).await;
    create(kv.as_ref(), "/kvsuite/k/ab", "longer key").await;
    create(kv.as_ref(), "/kvsuite/k/b", "other").await;
    let mine = create(kv.as_ref(), "/kvsuite/k/a", "mine").await;
    let event = next_event(&mut stream).await;
    assert_eq!(describe(&event), ("/kvsuite/k/a".to_owned(), "put", mine, Some("mine".to_owned()), None));
    assert_quiet(&mut stream, Duration::from_millis(200)).await;
}

async fn watch_of_prefix_sees_only_the_prefix(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let mut stream = watch(kv.as_ref(), "/kvsuite/pre/", &prefix_end("/kvsuite/pre/"), 0).await;
    create(kv.as_ref(), "/kvsuite/pre", "no slash").await;
    create(kv.as_ref(), "/kvsuite/prefix", "sibling").await;
    let inside = create(kv.as_ref(), "/kvsuite/pre/x", "in").await;
    let deep = create(kv.as_ref(), "/kvsuite/pre/y/z", "deep").await;
    assert_eq!(next_event(&mut stream).await.revision(), inside);
    assert_eq!(next_event(&mut stream).await.revision(), deep);
    assert_quiet(&mut stream, Duration::from_millis(200)).await;
}

/// `request_progress`: a watch with progress notifications gets, after its events, a
/// progress at or above the revision current at the request (a write outside its range moved
/// it); a watch without them gets none. A backend without the capability says so.
async fn progress_request_reaches_progress_watches_after_their_events(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    if !kv.capabilities().progress_requests {
        assert!(!kv.request_progress().await.expect("request progress"), "capability says no, the call says yes");
        return;
    }
    let (start, end) = ("/kvsuite/progress/".to_owned(), prefix_end("/kvsuite/progress/"));
    let request =
        |progress_notify| WatchRequest { start: start.clone(), end: end.clone(), start_revision: 0, progress_notify };
    let mut notified = kv.watch(request(true)).await.expect("watch with progress");
    let mut plain = kv.watch(request(false)).await.expect("watch without progress");
    let inside = create(kv.as_ref(), "/kvsuite/progress/a", "in").await;
    let outside = create(kv.as_ref(), "/kvsuite/elsewhere", "out").await;
    assert!(kv.request_progress().await.expect("request progress"), "capability says yes, the call says no");
    let first = tokio::time::timeout(WAIT, notified.next()).await.expect("event in time");
    match first {
        Some(Ok(WatchEvent::Put { kv, .. })) => assert_eq!(kv.mod_revision, inside),
        other => panic!("expected the put at {inside} before any progress, got {other:?}"),
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, notified.next()).await {
            Ok(Some(Ok(WatchEvent::Progress { revision }))) if revision >= outside => break,
            Ok(Some(Ok(WatchEvent::Progress { .. }))) => continue,
            other => panic!("expected a progress at or above {outside}, got {other:?}"),
        }
    }
    match tokio::time::timeout(WAIT, plain.next()).await {
        Ok(Some(Ok(WatchEvent::Put { kv, .. }))) => assert_eq!(kv.mod_revision, inside),
        other => panic!("expected the put at {inside}, got {other:?}"),
    }
    match tokio::time::timeout(Duration::from_millis(300), plain.next()).await {
        Err(_) => {}
        other => panic!("a watch without progress notifications got {other:?}"),
    }
}

async fn watch_from_zero_sees_only_new_changes(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let old = create(kv.as_ref(), "/kvsuite/z/a", "old").await;
    let mut stream = watch(kv.as_ref(), "/kvsuite/z/", &prefix_end("/kvsuite/z/"), 0).await;
    let new = update(kv.as_ref(), "/kvsuite/z/a", "new", old).await;
    let event = next_event(&mut stream).await;
    assert_eq!(describe(&event), ("/kvsuite/z/a".to_owned(), "put", new, Some("new".to_owned()), Some("old".into())));
}

async fn watch_from_future_revision_waits_for_it(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let current = kv.current_revision().await.expect("current");
    let mut stream = watch(kv.as_ref(), "/kvsuite/f/", &prefix_end("/kvsuite/f/"), current + 3).await;
    let mut revisions = Vec::new();
    let mut previous = 0;
    for i in 0..4 {
        let key = format!("/kvsuite/f/{i}");
        revisions.push(create(kv.as_ref(), &key, "v").await);
        previous = previous.max(*revisions.last().unwrap_or(&0));
    }
    // Only writes at or after the start revision are delivered.
    let expected: Vec<Revision> = revisions.iter().copied().filter(|r| *r >= current + 3).collect();
    assert!(!expected.is_empty(), "the writes must reach the start revision (last {previous})");
    for revision in &expected {
        assert_eq!(next_event(&mut stream).await.revision(), *revision);
    }
    assert_quiet(&mut stream, Duration::from_millis(200)).await;
}

async fn watch_hands_over_from_replay_to_live_without_gap_or_duplicate(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let start = create(kv.as_ref(), "/kvsuite/g/0", "v").await;
    for i in 1..50 {
        create(kv.as_ref(), &format!("/kvsuite/g/{i}"), "v").await;
    }
    // Keep writing while the watch starts and replays.
    let writer_kv = kv.clone();
    let writer = tokio::spawn(async move {
        let mut revisions = Vec::new();
        for i in 50..150 {
            revisions.push(create(writer_kv.as_ref(), &format!("/kvsuite/g/{i}"), "v").await);
        }
        revisions
    });
    let mut stream = watch(kv.as_ref(), "/kvsuite/g/", &prefix_end("/kvsuite/g/"), start).await;
    let late = writer.await.expect("writer task");
    let last = *late.last().expect("writes");
    let mut seen = Vec::new();
    while seen.last().is_none_or(|r| *r < last) {
        seen.push(next_event(&mut stream).await.revision());
    }
    assert_eq!(seen.len(), 150, "every write exactly once");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "strictly increasing revisions: {seen:?}");
    assert_eq!(seen[0], start);
    assert!(late.iter().all(|r| seen.contains(r)));
}

async fn compaction_fails_reads_and_watches_below_it(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let r1 = create(kv.as_ref(), "/kvsuite/c/a", "1").await;
    let r2 = update(kv.as_ref(), "/kvsuite/c/a", "2", r1).await;
    let r3 = update(kv.as_ref(), "/kvsuite/c/a", "3", r2).await;
    kv.compact(r2).await.expect("compact");
    assert_eq!(kv.compacted_revision().await.expect("compacted revision"), r2);
    match kv.get("/kvsuite/c/a", r1).await {
        Err(e @ Error::Compacted { .. }) => assert_eq!(e.code(), 410),
        other => panic!("a get below the compaction point must fail with Compacted, got {other:?}"),
    }
    let request = RangeRequest { revision: r1, ..RangeRequest::prefix("/kvsuite/c/") };
    assert!(matches!(kv.range(request).await, Err(Error::Compacted { .. })), "range below compaction");
    let below = WatchRequest {
        start: "/kvsuite/c/".into(),
        end: prefix_end("/kvsuite/c/"),
        start_revision: r1,
        progress_notify: false,
    };
    match kv.watch(below).await {
        Err(Error::Compacted { requested, compacted }) => assert_eq!((requested, compacted), (r1, r2)),
        Err(other) => panic!("a watch below the compaction point must fail with Compacted, got {other}"),
        Ok(mut stream) => match tokio::time::timeout(WAIT, stream.next()).await {
            Ok(Some(Err(Error::Compacted { .. }))) => {}
            other => panic!("a watch below the compaction point must end with Compacted, got {other:?}"),
        },
    }
    // At the compaction revision itself everything still works.
    assert_eq!(text(&get(kv.as_ref(), "/kvsuite/c/a", r2).await.expect("at r2")), "2");
    // A watch from it delivers the event at r2 with its previous value (r1) — or, as etcd
    // does, which keeps no value older than the compaction point, ends with Compacted
    // because that previous value is gone (never an update without its previous value).
    let mut stream = watch(kv.as_ref(), "/kvsuite/c/", &prefix_end("/kvsuite/c/"), r2).await;
    match tokio::time::timeout(WAIT, stream.next()).await {
        Ok(Some(Ok(first))) => {
            let expected = ("/kvsuite/c/a".to_owned(), "put", r2, Some("2".to_owned()), Some("1".to_owned()));
            assert_eq!(describe(&first), expected);
            assert_eq!(next_event(&mut stream).await.revision(), r3);
        }
        Ok(Some(Err(Error::Compacted { .. }))) => {}
        other => panic!("a watch from the compaction revision must deliver r2 with its previous value, got {other:?}"),
    }
    // Events after the compaction revision come with previous values at or above it.
    let mut stream = watch(kv.as_ref(), "/kvsuite/c/", &prefix_end("/kvsuite/c/"), r3).await;
    let next = next_event(&mut stream).await;
    assert_eq!(describe(&next), ("/kvsuite/c/a".to_owned(), "put", r3, Some("3".to_owned()), Some("2".to_owned())));
}

async fn compaction_keeps_current_values_and_rejects_future_revisions(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let a = create(kv.as_ref(), "/kvsuite/k/a", "a").await;
    let b = create(kv.as_ref(), "/kvsuite/k/b", "b").await;
    delete(kv.as_ref(), "/kvsuite/k/b", b).await;
    let a2 = update(kv.as_ref(), "/kvsuite/k/a", "a2", a).await;
    let current = kv.current_revision().await.expect("current");
    kv.compact(current).await.expect("compact at current");
    let got = get(kv.as_ref(), "/kvsuite/k/a", 0).await.expect("a survives compaction");
    assert_eq!((text(&got).as_str(), got.create_revision, got.mod_revision, got.version), ("a2", a, a2, 2));
    assert!(get(kv.as_ref(), "/kvsuite/k/b", 0).await.is_none());
    let all = kv.range(RangeRequest::prefix("/kvsuite/k/")).await.expect("range");
    assert_eq!(all.count, 1);
    // Compacting again at or below the point is a no-op; above the current revision fails.
    kv.compact(a).await.expect("compacting below is a no-op");
    assert_eq!(kv.compacted_revision().await.expect("compacted"), current);
    assert!(matches!(kv.compact(current + 100).await, Err(Error::FutureRevision { .. })));
    // Writes continue after compaction with the key's history intact.
    let a3 = update(kv.as_ref(), "/kvsuite/k/a", "a3", a2).await;
    assert_eq!(get(kv.as_ref(), "/kvsuite/k/a", 0).await.expect("a3").version, 3);
    assert!(a3 > current);
}

/// Polls until `key` is gone (TTL expiry), failing after [`WAIT`] plus the TTL.
async fn wait_until_gone(kv: &dyn KvBackend, key: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while get(kv, key, 0).await.is_some() {
        assert!(tokio::time::Instant::now() < deadline, "{key} did not expire within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ttl_key_expires_with_a_delete_event(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    if !kv.capabilities().ttl {
        // Honest reporting: a backend without TTL must refuse a TTL rather than ignore it.
        let refused = kv.put("/kvsuite/t/a", value("v"), 0, Some(Duration::from_secs(1))).await;
        assert!(refused.is_err(), "a backend reporting ttl=false accepted a TTL: {refused:?}");
        return;
    }
    let mut stream = watch(kv.as_ref(), "/kvsuite/t/", &prefix_end("/kvsuite/t/"), 0).await;
    let created = match kv.put("/kvsuite/t/a", value("short-lived"), 0, Some(Duration::from_secs(1))).await {
        Ok(TxnOutcome::Succeeded { revision }) => revision,
        other => panic!("put with TTL failed: {other:?}"),
    };
    let keeper = create(kv.as_ref(), "/kvsuite/t/keep", "forever").await;
    assert!(get(kv.as_ref(), "/kvsuite/t/a", 0).await.is_some(), "present before expiry");
    assert_eq!(next_event(&mut stream).await.revision(), created);
    assert_eq!(next_event(&mut stream).await.revision(), keeper);
    wait_until_gone(kv.as_ref(), "/kvsuite/t/a").await;
    match next_event(&mut stream).await {
        WatchEvent::Delete { key, revision, prev } => {
            assert_eq!(key, "/kvsuite/t/a");
            assert!(revision > keeper, "expiry is a new write");
            assert_eq!(prev.map(|p| text(&p)).as_deref(), Some("short-lived"));
        }
        other => panic!("expected the expiry's delete event, got {other:?}"),
    }
    assert!(get(kv.as_ref(), "/kvsuite/t/keep", 0).await.is_some(), "keys without TTL stay");
}

async fn put_without_ttl_clears_an_expiry(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    if !kv.capabilities().ttl {
        let refused = kv.put("/kvsuite/t/b", value("v"), 0, Some(Duration::from_secs(1))).await;
        assert!(refused.is_err(), "a backend reporting ttl=false accepted a TTL: {refused:?}");
        return;
    }
    let created = match kv.put("/kvsuite/t/b", value("v1"), 0, Some(Duration::from_secs(1))).await {
        Ok(TxnOutcome::Succeeded { revision }) => revision,
        other => panic!("put with TTL failed: {other:?}"),
    };
    update(kv.as_ref(), "/kvsuite/t/b", "v2", created).await;
    // A sibling with the same TTL, written after, shows when the first TTL would have fired.
    match kv.put("/kvsuite/t/probe", value("p"), 0, Some(Duration::from_secs(1))).await {
        Ok(TxnOutcome::Succeeded { .. }) => {}
        other => panic!("put with TTL failed: {other:?}"),
    }
    wait_until_gone(kv.as_ref(), "/kvsuite/t/probe").await;
    let got = get(kv.as_ref(), "/kvsuite/t/b", 0).await.expect("an update without TTL removes the expiry");
    assert_eq!(text(&got), "v2");
}

async fn concurrent_creates_only_one_wins(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let racers: Vec<_> = (0..16)
        .map(|i| {
            let kv = kv.clone();
            tokio::spawn(async move { kv.put("/kvsuite/race", value(&format!("racer-{i}")), 0, None).await })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = 0;
    for (i, racer) in racers.into_iter().enumerate() {
        match racer.await.expect("racer task").expect("put") {
            TxnOutcome::Succeeded { revision } => winners.push((i, revision)),
            TxnOutcome::Failed { current: Some(_), .. } => losers += 1,
            TxnOutcome::Failed { current: None, .. } => panic!("a lost create must see the winner's value"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins: {winners:?}");
    assert_eq!(losers, 15);
    let (winner, revision) = winners[0];
    let got = get(kv.as_ref(), "/kvsuite/race", 0).await.expect("winner's key");
    assert_eq!((text(&got), got.mod_revision), (format!("racer-{winner}"), revision));
}

async fn concurrent_updates_of_one_revision_only_one_wins(fixture: Arc<dyn BackendFixture>) {
    let kv = fixture.new_backend().await;
    let base = create(kv.as_ref(), "/kvsuite/counter", "0").await;
    let racers: Vec<_> = (0..16)
        .map(|i| {
            let kv = kv.clone();
            tokio::spawn(async move { kv.put("/kvsuite/counter", value(&format!("{i}")), base, None).await })
        })
        .collect();
    let mut wins = 0;
    for racer in racers {
        if let TxnOutcome::Succeeded { .. } = racer.await.expect("racer task").expect("put") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(get(kv.as_ref(), "/kvsuite/counter", 0).await.expect("counter").version, 2);
}
