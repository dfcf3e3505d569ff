//! Durability of the sled backend: a clean restart continues the revision counter and keeps
//! data, history, the compaction point and TTLs; a child killed with SIGKILL mid-stream loses
//! no acknowledged write, nothing a watcher saw, and never gets a revision reused.

use std::path::Path;
use std::time::Duration;

use apistore::kv::{KvBackend, RangeRequest, TxnOutcome, WatchEvent, WatchRequest};
use apistore::Error;
use apistore_sled::{Durability, SledBackend, SledOptions};
use bytes::Bytes;
use futures::StreamExt;

#[path = "fixture/crash.rs"]
mod crash;

const CHILD_ENV: &str = "APISTORE_SLED_CRASH_CHILD_DIR";
const ROUND_ENV: &str = "APISTORE_SLED_CRASH_ROUND";

/// `(revision, key)` of an `ack` line.
fn parse_ack(line: &str) -> Option<(u64, String)> {
    crash::parse_ack(line).map(|(revision, key, _)| (revision, key))
}

/// `(revision, key)` of a `seen <revision> <key>` line (a watcher saw the write).
fn parse_seen(line: &str) -> Option<(u64, String)> {
    let rest = &line[line.find("seen ")? + 5..];
    let (revision, key) = rest.split_once(' ')?;
    Some((revision.parse().ok()?, key.trim().to_owned()))
}

fn open(dir: &Path) -> SledBackend {
    SledBackend::open(SledOptions::new(dir)).expect("open sled")
}

async fn put(kv: &SledBackend, key: &str, value: &str, expected: u64) -> u64 {
    match kv.put(key, Bytes::copy_from_slice(value.as_bytes()), expected, None).await.expect("put") {
        TxnOutcome::Succeeded { revision } => revision,
        failed => panic!("put {key} failed: {failed:?}"),
    }
}

#[tokio::test]
async fn restart_continues_revisions_and_keeps_data_history_and_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a1, a2, b1, compacted) = {
        let kv = open(dir.path());
        assert_eq!(kv.current_revision().await.expect("current"), 1, "a fresh backend is at revision 1");
        let a1 = put(&kv, "/r/a", "a1", 0).await;
        assert_eq!(a1, 2, "the first write gets revision 2");
        let a2 = put(&kv, "/r/a", "a2", a1).await;
        let b1 = put(&kv, "/r/b", "b1", 0).await;
        let c1 = put(&kv, "/r/c", "c1", 0).await;
        let c2 = put(&kv, "/r/c", "c2", c1).await;
        kv.compact(b1).await.expect("compact");
        assert_eq!((c1, c2), (5, 6));
        (a1, a2, b1, b1)
    };
    let kv = open(dir.path());
    assert_eq!(kv.current_revision().await.expect("current"), 6, "a clean restart continues exactly");
    assert_eq!(kv.compacted_revision().await.expect("compacted"), compacted);
    let got = kv.get("/r/a", 0).await.expect("get").kv.expect("a survives");
    assert_eq!((got.value.as_ref(), got.create_revision, got.mod_revision, got.version), (&b"a2"[..], a1, a2, 2));
    let old = kv.get("/r/a", compacted).await.expect("history survives").kv.expect("a at the compaction point");
    assert_eq!(old.value.as_ref(), b"a2");
    assert!(matches!(kv.get("/r/a", a1).await, Err(Error::Compacted { .. })), "the compaction point survives");
    let all = kv.range(RangeRequest::prefix("/r/")).await.expect("range");
    assert_eq!(all.count, 3);
    // Watch replay across the restart, with previous values.
    let request = WatchRequest { start: "/r/".into(), end: "/r0".into(), start_revision: b1, progress_notify: false };
    let mut stream = kv.watch(request).await.expect("watch");
    let next = put(&kv, "/r/b", "b2", b1).await;
    assert_eq!(next, 7, "the next write continues the counter");
    let mut revisions = Vec::new();
    for _ in 0..4 {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("event");
        revisions.push(event.revision());
        if let WatchEvent::Put { kv: item, prev: Some(prev) } = &event {
            if item.key == "/r/b" {
                assert_eq!(prev.value.as_ref(), b"b1");
            }
        }
    }
    assert_eq!(revisions, vec![b1, 5, 6, 7]);
}

#[tokio::test]
async fn ttl_deadline_survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let kv = open(dir.path());
        let outcome = kv
            .put("/ttl/a", Bytes::from_static(b"v"), 0, Some(Duration::from_millis(300)))
            .await
            .expect("put with ttl");
        assert!(matches!(outcome, TxnOutcome::Succeeded { revision: 2 }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let kv = open(dir.path());
    let expired = kv.expire_now().await.expect("expire");
    assert_eq!(expired, 1, "the stored deadline passed while closed");
    assert!(kv.get("/ttl/a", 0).await.expect("get").kv.is_none());
    assert_eq!(kv.current_revision().await.expect("current"), 3, "expiry is a write");
    assert!(kv.get("/ttl/a", 2).await.expect("get at 2").kv.is_some(), "history keeps the value");
}

#[tokio::test]
async fn second_open_of_the_same_directory_is_refused_with_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = open(dir.path());
    match SledBackend::open(SledOptions::new(dir.path())) {
        Err(e) => assert_eq!(e.code(), 503, "{e}"),
        Ok(_) => panic!("sled must refuse a second open of the same directory"),
    }
}

#[tokio::test]
async fn a_closed_directory_reopens_at_once() {
    // A pooled backend dropped and opened again in the same process (the API server checks
    // its backends, drops them, then opens them for its resources): the lock sled releases
    // from its background threads must not make the reopen fail.
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..20u64 {
        let kv = open(dir.path());
        let key = format!("/reopen/{round}");
        let outcome = kv
            .put(&key, Bytes::from_static(b"v"), 0, None)
            .await
            .unwrap_or_else(|e| panic!("write in round {round}: {e}"));
        assert!(matches!(outcome, TxnOutcome::Succeeded { .. }), "round {round}: {outcome:?}");
        drop(kv);
    }
    let kv = open(dir.path());
    let listed = kv.range(RangeRequest::prefix("/reopen/")).await.expect("range");
    assert_eq!(listed.kvs.len(), 20, "every round's write survived its close");
}

/// Child side of the crash test: writes durably forever from 4 tasks, printing every
/// acknowledged write, and watches them, printing every write the watch saw. Does nothing
/// unless started by the parent.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let round = std::env::var(ROUND_ENV).unwrap_or_default();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let options = SledOptions::new(dir).durability(Durability::Immediate);
        let kv = std::sync::Arc::new(SledBackend::open(options).expect("open"));
        let prefix = format!("/crash/{round}/");
        let request = WatchRequest {
            end: apistore::kv::prefix_end(&prefix),
            start: prefix,
            start_revision: 0,
            progress_notify: false,
        };
        let mut watch = kv.watch(request).await.expect("watch");
        tokio::spawn(async move {
            while let Some(Ok(WatchEvent::Put { kv, .. })) = watch.next().await {
                println!("seen {} {}", kv.mod_revision, kv.key);
            }
        });
        // Every write creates a new key whose value is its name.
        crash::write_and_ack_forever(kv, 4, move |task, i, _| {
            let key = format!("/crash/{round}/{task}/{i}");
            let value = Bytes::from(key.clone());
            (key, value, 0)
        })
        .await;
    });
}

#[test]
fn sigkill_loses_no_acknowledged_write_and_reuses_no_revision() {
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..2 {
        let env = [(CHILD_ENV, dir.path().display().to_string()), (ROUND_ENV, round.to_string())];
        let (mut child, mut lines) = crash::spawn_child("crash_child", &env);
        let mut acked: Vec<(u64, String)> = Vec::new();
        let mut seen: Vec<(u64, String)> = Vec::new();
        while acked.len() < 300 {
            let line = lines.next().expect("child stopped early").expect("read child output");
            acked.extend(parse_ack(&line));
            seen.extend(parse_seen(&line));
        }
        child.kill().expect("SIGKILL the child");
        // Everything printed before the kill was acknowledged (or seen) too.
        for line in lines.map_while(Result::ok) {
            acked.extend(parse_ack(&line));
            seen.extend(parse_seen(&line));
        }
        let _ = child.wait();
        assert!(!seen.is_empty(), "round {round}: the watcher saw nothing");
        let max_acked = acked.iter().map(|(r, _)| *r).max().expect("acks");

        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let kv = open(dir.path());
            for (revision, key) in &acked {
                let got = kv.get(key, 0).await.expect("get").kv;
                let got = got.unwrap_or_else(|| panic!("round {round}: acknowledged {key} at {revision} lost"));
                assert_eq!(got.mod_revision, *revision, "{key}");
                assert_eq!(got.value.as_ref(), key.as_bytes());
            }
            for (revision, key) in &seen {
                let got = kv.get(key, 0).await.expect("get").kv;
                let got = got.unwrap_or_else(|| panic!("round {round}: {key} at {revision} was watched, then lost"));
                assert_eq!(got.mod_revision, *revision, "{key}");
            }
            let current = kv.current_revision().await.expect("current");
            assert!(current >= max_acked, "round {round}: current {current} below acknowledged {max_acked}");
            let next = put(&kv, &format!("/after-crash/{round}"), "x", 0).await;
            assert!(next > max_acked, "round {round}: revision {next} reused (acknowledged up to {max_acked})");
        });
    }
}
