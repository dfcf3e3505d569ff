//! sled-specific behaviour beyond the shared suite: revision numbering, slow watchers,
//! background compaction, progress notifications and requests, key validation.

use std::time::Duration;

use apistore::kv::{KvBackend, RangeRequest, TxnOutcome, WatchEvent, WatchRequest};
use apistore::Error;
use apistore_sled::{SledBackend, SledOptions};
use bytes::Bytes;
use futures::StreamExt;

async fn create(kv: &SledBackend, key: &str) -> u64 {
    match kv.put(key, Bytes::from_static(b"v"), 0, None).await.expect("put") {
        TxnOutcome::Succeeded { revision } => revision,
        failed => panic!("create {key} failed: {failed:?}"),
    }
}

fn prefix_watch(prefix: &str, start_revision: u64, progress_notify: bool) -> WatchRequest {
    WatchRequest { start: prefix.to_owned(), end: apistore::kv::prefix_end(prefix), start_revision, progress_notify }
}

#[tokio::test]
async fn fresh_backend_is_at_one_and_failed_writes_use_no_revision() {
    let kv = SledBackend::temporary().expect("open");
    assert_eq!(kv.current_revision().await.expect("current"), 1);
    assert_eq!(create(&kv, "/a").await, 2);
    let failed = kv.put("/a", Bytes::from_static(b"again"), 0, None).await.expect("put");
    assert!(matches!(failed, TxnOutcome::Failed { revision: 2, .. }), "{failed:?}");
    let failed = kv.delete("/missing", 2).await.expect("delete");
    assert!(matches!(failed, TxnOutcome::Failed { current: None, revision: 2 }), "{failed:?}");
    assert_eq!(create(&kv, "/b").await, 3, "failed writes consumed no revision");
}

#[tokio::test]
async fn keys_with_nul_or_empty_are_rejected_as_invalid() {
    let kv = SledBackend::temporary().expect("open");
    for key in ["", "/a\0b"] {
        let err = kv.put(key, Bytes::from_static(b"v"), 0, None).await.expect_err("invalid key");
        assert_eq!(err.code(), 422, "{key:?}: {err}");
    }
    assert_eq!(kv.current_revision().await.expect("current"), 1, "nothing was written");
}

#[tokio::test]
async fn a_watcher_that_falls_behind_ends_with_unavailable_after_its_buffered_events() {
    let options = SledOptions { watch_buffer: 4, ..SledOptions::temporary() };
    let kv = SledBackend::open(options).expect("open");
    let mut slow = kv.watch(prefix_watch("/w/", 0, false)).await.expect("watch");
    let mut revisions = Vec::new();
    for i in 0..10 {
        revisions.push(create(&kv, &format!("/w/{i}")).await); // writers never wait for the watcher
    }
    let mut delivered = Vec::new();
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await.expect("no hang") {
            Some(Ok(event)) => delivered.push(event.revision()),
            Some(Err(e)) => break e,
            None => panic!("the stream must end with an error, not silently"),
        }
    };
    assert_eq!(delivered, revisions[..4], "the buffered events come first, in order");
    assert!(matches!(error, Error::Unavailable { .. }), "{error}");
    assert!(error.to_string().contains("relist"), "{error}");
    assert!(slow.next().await.is_none(), "the error is the last item");
    // A fresh watch from the last delivered revision + 1 resumes without loss.
    let mut resumed = kv.watch(prefix_watch("/w/", delivered[3] + 1, false)).await.expect("watch");
    for expected in &revisions[4..] {
        let event = resumed.next().await.expect("event").expect("ok");
        assert_eq!(event.revision(), *expected);
    }
}

#[tokio::test]
async fn background_compaction_keeps_the_configured_window() {
    let options = SledOptions {
        compaction_window: 5,
        compaction_interval_ms: 20,
        ttl_check_interval_ms: 10,
        ..SledOptions::temporary()
    };
    let kv = SledBackend::open(options).expect("open");
    for i in 0..30 {
        create(&kv, &format!("/c/{i}")).await;
    }
    let current = kv.current_revision().await.expect("current");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while kv.compacted_revision().await.expect("compacted") < current - 5 {
        assert!(tokio::time::Instant::now() < deadline, "background compaction did not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(kv.compacted_revision().await.expect("compacted"), current - 5, "exactly the window is kept");
    assert!(matches!(kv.get("/c/0", 3).await, Err(Error::Compacted { .. })));
    let at_window = RangeRequest { revision: current - 5, ..RangeRequest::prefix("/c/") };
    assert_eq!(kv.range(at_window).await.expect("range at the window start").count, 30 - 5);
    assert_eq!(kv.range(RangeRequest::prefix("/c/")).await.expect("range").count, 30);
}

#[tokio::test]
async fn an_idle_watch_with_progress_notify_gets_progress_at_the_current_revision() {
    let options = SledOptions { progress_notify_interval_ms: 50, ..SledOptions::temporary() };
    let kv = SledBackend::open(options).expect("open");
    create(&kv, "/elsewhere/a").await;
    let mut stream = kv.watch(prefix_watch("/p/", 0, true)).await.expect("watch");
    let other = create(&kv, "/elsewhere/b").await;
    let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("progress in time")
        .expect("open")
        .expect("ok");
    assert_eq!(event, WatchEvent::Progress { revision: other });
}

#[tokio::test]
async fn a_watcher_cut_off_for_falling_behind_claims_no_progress() {
    let options = SledOptions { watch_buffer: 4, progress_notify_interval_ms: 600_000, ..SledOptions::temporary() };
    let kv = SledBackend::open(options).expect("open");
    let mut slow = kv.watch(prefix_watch("/w/", 0, true)).await.expect("watch");
    let mut revisions = Vec::new();
    for i in 0..10 {
        revisions.push(create(&kv, &format!("/w/{i}")).await);
    }
    assert!(kv.request_progress().await.expect("request"));
    let mut items = Vec::new();
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await.expect("no hang") {
            Some(Ok(event)) => items.push(event),
            Some(Err(e)) => break e,
            None => panic!("the stream must end with an error, not silently"),
        }
    };
    assert!(items.iter().all(|e| !matches!(e, WatchEvent::Progress { .. })), "progress after lost events: {items:?}");
    assert_eq!(items.iter().map(WatchEvent::revision).collect::<Vec<_>>(), revisions[..4]);
    assert!(error.to_string().contains("relist"), "{error}");
}

#[tokio::test]
async fn a_progress_request_is_answered_at_once_not_at_the_idle_interval() {
    let options = SledOptions { progress_notify_interval_ms: 600_000, ..SledOptions::temporary() };
    let kv = SledBackend::open(options).expect("open");
    let mut stream = kv.watch(prefix_watch("/p/", 0, true)).await.expect("watch");
    let other = create(&kv, "/elsewhere/a").await;
    assert!(kv.request_progress().await.expect("request"));
    let event = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("progress long before the 10-minute idle interval")
        .expect("open")
        .expect("ok");
    assert_eq!(event, WatchEvent::Progress { revision: other });
    // One request, one notification: nothing more until the next request.
    let quiet = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(quiet.is_err(), "unrequested event {quiet:?}");
    let again = create(&kv, "/elsewhere/b").await;
    assert!(kv.request_progress().await.expect("request"));
    let event = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("in time");
    assert_eq!(event.expect("open").expect("ok"), WatchEvent::Progress { revision: again });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_ranges_stay_consistent_under_concurrent_writes() {
    let kv = std::sync::Arc::new(SledBackend::temporary().expect("open"));
    // Every write is a create, so the state at revision R holds exactly R - 1 keys.
    let writer = {
        let kv = kv.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                create(&kv, &format!("/pair/{i:04}/a")).await;
                create(&kv, &format!("/pair/{i:04}/b")).await;
            }
        })
    };
    let mut checks = 0;
    while !writer.is_finished() {
        let response = kv.range(RangeRequest::prefix("/pair/")).await.expect("range");
        let expected_revision = 1 + response.count;
        assert_eq!(response.kvs.len() as u64, response.count);
        assert_eq!(response.revision, expected_revision, "the keys seen are exactly the state at the revision");
        checks += 1;
        tokio::task::yield_now().await;
    }
    writer.await.expect("writer");
    assert!(checks > 0);
}
