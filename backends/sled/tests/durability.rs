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

const WAL_ROUND_ENV: &str = "APISTORE_SLED_WAL_ROUND";
const WAL_CHECKPOINTS_ENV: &str = "APISTORE_SLED_WAL_CHECKPOINTS";

/// Task `task`'s `i`-th write in the write-ahead log crash tests: even tasks create a new key
/// each time (its value is its name), odd tasks update their one key (value `i`).
fn wal_write(round: &str, task: usize, i: u64, previous: u64) -> (String, Bytes, u64) {
    if task % 2 == 0 {
        let key = format!("/wal/{round}/new/{task}/{i}");
        let value = Bytes::from(key.clone());
        (key, value, 0)
    } else {
        (format!("/wal/{round}/upd/{task}"), Bytes::from(i.to_string()), previous)
    }
}

/// Child side of the write-ahead log crash tests: 8 tasks write durably forever (see
/// [`wal_write`]), printing every acknowledged write; with checkpoints paused unless
/// `WAL_CHECKPOINTS_ENV` is set (then sled is flushed behind the log every second as usual).
#[test]
fn wal_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let round = std::env::var(WAL_ROUND_ENV).unwrap_or_default();
    let checkpoints = std::env::var(WAL_CHECKPOINTS_ENV).is_ok();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let kv = std::sync::Arc::new(SledBackend::open(SledOptions::new(dir)).expect("open"));
        kv.pause_checkpoints(!checkpoints);
        crash::write_and_ack_forever(kv, 8, move |task, i, previous| wal_write(&round, task, i, previous)).await;
    });
}

/// Runs [`wal_crash_child`] on `dir` until it acknowledged `acks` writes and ran for at least
/// `at_least`, kills it with SIGKILL and returns every write it acknowledged: `(revision, key, i)`.
fn run_and_kill(
    dir: &Path,
    round: &str,
    checkpoints: bool,
    acks: usize,
    at_least: Duration,
) -> Vec<(u64, String, u64)> {
    let mut env = vec![(CHILD_ENV, dir.display().to_string()), (WAL_ROUND_ENV, round.to_owned())];
    if checkpoints {
        env.push((WAL_CHECKPOINTS_ENV, "1".to_owned()));
    }
    let started = std::time::Instant::now();
    let (mut child, mut lines) = crash::spawn_child("wal_crash_child", &env);
    let mut acked = Vec::new();
    while acked.len() < acks || started.elapsed() < at_least {
        let line = lines.next().expect("child stopped early").expect("read child output");
        acked.extend(crash::parse_ack(&line));
    }
    child.kill().expect("SIGKILL the child");
    for line in lines.map_while(Result::ok) {
        acked.extend(crash::parse_ack(&line));
    }
    let _ = child.wait();
    acked
}

/// Checks on the reopened `kv` that every write of `acked` is there: each created key with
/// its value and revision, each updated key at its last acknowledged version or later (a
/// write in flight at the kill may have become durable: its outcome was unknown), and every
/// acknowledged version readable at its revision (the history survived too).
async fn check_acknowledged(kv: &SledBackend, acked: &[(u64, String, u64)]) {
    let mut last_update: std::collections::BTreeMap<&str, (u64, u64)> = std::collections::BTreeMap::new();
    for (revision, key, i) in acked {
        if key.contains("/new/") {
            let got = kv.get(key, 0).await.expect("get").kv;
            let got = got.unwrap_or_else(|| panic!("acknowledged {key} at {revision} lost"));
            assert_eq!((got.mod_revision, got.value.as_ref()), (*revision, key.as_bytes()), "{key}");
        } else {
            let at = kv.get(key, *revision).await.expect("get at its revision").kv;
            let at = at.unwrap_or_else(|| panic!("acknowledged {key} = {i} at {revision} lost from the history"));
            assert_eq!((at.mod_revision, at.value.as_ref()), (*revision, i.to_string().as_bytes()), "{key}");
            let entry = last_update.entry(key).or_insert((*revision, *i));
            if *revision > entry.0 {
                *entry = (*revision, *i);
            }
        }
    }
    for (key, (revision, i)) in last_update {
        let got = kv.get(key, 0).await.expect("get").kv.expect("updated key");
        let value: u64 = std::str::from_utf8(&got.value).expect("utf-8").parse().expect("a number");
        assert!(
            got.mod_revision >= revision && value >= i,
            "{key}: {} at {} behind {i} at {revision}",
            value,
            got.mod_revision
        );
        if got.mod_revision == revision {
            assert_eq!(value, i, "{key}");
        }
    }
}

/// Bytes of the good records in the log's segments (what a replay has to apply).
fn logged_records(dir: &Path) -> usize {
    apistore_sled::inspect_wal(dir).expect("inspect the log").iter().map(|s| s.revisions.len()).sum()
}

#[test]
fn sigkill_under_8_durable_writers_loses_no_acknowledged_write_and_revisions_continue_above() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // Round 0: sled never checkpointed, the log alone holds the writes; round 1: checkpoints
    // run (every second) for 3.5 s while the writers write, the kill lands wherever it lands.
    for (round, checkpoints, acks, at_least) in
        [("0", false, 2_000, Duration::ZERO), ("1", true, 2_000, Duration::from_millis(3_500))]
    {
        let acked = run_and_kill(dir.path(), round, checkpoints, acks, at_least);
        if !checkpoints {
            assert!(
                logged_records(dir.path()) >= acked.len(),
                "round {round}: the log holds every acknowledged write (the replay is what is tested)"
            );
        }
        let max_acked = acked.iter().map(|(r, _, _)| *r).max().expect("acks");
        runtime.block_on(async {
            let kv = open(dir.path());
            check_acknowledged(&kv, &acked).await;
            let current = kv.current_revision().await.expect("current");
            assert!(current >= max_acked, "round {round}: current {current} below acknowledged {max_acked}");
            let next = put(&kv, &format!("/wal/after/{round}"), "x", 0).await;
            assert!(next > max_acked, "round {round}: revision {next} reused (acknowledged up to {max_acked})");
        });
    }
}

#[test]
fn a_torn_log_tail_is_ignored_and_cut_away_before_later_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = run_and_kill(dir.path(), "0", false, 500, Duration::ZERO);
    // A crash in the middle of a log write: the last segment ends with a cut record, or with
    // a complete one that fails its checksum (here both: a bad frame, then a cut one).
    let segments = apistore_sled::inspect_wal(dir.path()).expect("inspect");
    let last = segments.iter().rev().find(|s| s.file_bytes > 0).expect("a segment with records").clone();
    // (The kill itself may have cut the last write short: a fatal signal can end a write
    // between pages. Everything after `good_bytes` goes.)
    let mut torn = Vec::new();
    let body = [&u64::MAX.to_be_bytes()[..], &0u64.to_be_bytes(), b"not a history entry"].concat();
    torn.extend_from_slice(&(body.len() as u32).to_be_bytes());
    torn.extend_from_slice(&0xdead_beef_u32.to_be_bytes()); // not its checksum
    torn.extend_from_slice(&body);
    torn.extend_from_slice(&[0, 0, 1, 0, 1, 2, 3]); // a cut frame header
    let mut file = std::fs::OpenOptions::new().append(true).open(&last.path).expect("open the segment");
    std::io::Write::write_all(&mut file, &torn).expect("append a torn tail");
    drop(file);
    // The next run opens it (replays, cuts the tail durably) and writes into a new segment,
    // with checkpoints paused: a tail left in place would hide these writes at the next open.
    let second = run_and_kill(dir.path(), "1", false, 500, Duration::ZERO);
    let report = apistore_sled::inspect_wal(dir.path()).expect("inspect");
    let cut = report.iter().find(|s| s.path == last.path).expect("the torn segment is still there (no checkpoint)");
    assert_eq!(cut.file_bytes, last.good_bytes, "the torn tail was cut back to the last good record");
    let newest = report.len() - 1;
    assert!(
        report.iter().take(newest).all(|s| s.good_bytes == s.file_bytes),
        "no damaged record in front of the newest segment (which the second kill may have cut): {report:?}"
    );
    assert!(report[newest].path != last.path, "the second run wrote into a segment of its own");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let kv = open(dir.path());
        check_acknowledged(&kv, &first).await;
        check_acknowledged(&kv, &second).await;
        let max_acked = second.iter().map(|(r, _, _)| *r).max().expect("acks");
        let next = put(&kv, "/wal/after", "x", 0).await;
        assert!(next > max_acked, "revision {next} reused (acknowledged up to {max_acked})");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_replay_skips_compacted_revisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = tempfile::tempdir().expect("tempdir for the saved log");
    let wal = dir.path().join(apistore_sled::WAL_DIR);
    let options = || SledOptions { compaction_window: 0, ..SledOptions::new(dir.path()) };
    let (versions, b_deleted, compacted, in_use, last) = {
        let kv = SledBackend::open(options()).expect("open");
        kv.pause_checkpoints(true);
        let mut versions = Vec::new();
        let mut previous = 0;
        for i in 1..=6 {
            previous = put(&kv, "/c/a", &format!("a{i}"), previous).await;
            versions.push(previous);
        }
        let b = put(&kv, "/c/b", "b", 0).await;
        let b_deleted = match kv.delete("/c/b", b).await.expect("delete") {
            TxnOutcome::Succeeded { revision } => revision,
            failed => panic!("{failed:?}"),
        };
        let c = put(&kv, "/c/c", "c", 0).await;
        // The log as it is now: every record above, all acknowledged.
        for entry in std::fs::read_dir(&wal).expect("log dir") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), saved.path().join(entry.file_name())).expect("save a segment");
        }
        // Compacted at /c/c: of /c/a only a6 (its newest version below) stays, of /c/b nothing.
        kv.compact(c).await.expect("compact");
        let last = put(&kv, "/c/a", "a7", previous).await;
        let in_use = kv.space().await.expect("space").in_use_bytes;
        (versions, b_deleted, c, in_use, last)
    };
    // A crash right after compaction's checkpoint flushed sled and removed the history, with
    // the log's old segments still there: they hold records the compaction removed.
    for entry in std::fs::read_dir(saved.path()).expect("saved") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), wal.join(entry.file_name())).expect("restore a segment");
    }
    let restored = logged_records(dir.path());
    assert!(restored >= 9, "the restored log holds the compacted records ({restored})");
    let kv = SledBackend::open(options()).expect("reopen");
    assert_eq!(kv.compacted_revision().await.expect("compacted"), compacted);
    assert_eq!(kv.current_revision().await.expect("current"), last);
    for revision in versions.iter().filter(|r| **r < compacted) {
        assert!(matches!(kv.get("/c/a", *revision).await, Err(Error::Compacted { .. })), "{revision}");
    }
    let a = kv.get("/c/a", compacted).await.expect("at the compaction point").kv.expect("a6 retained");
    assert_eq!((a.value.as_ref(), a.mod_revision, a.version), (&b"a6"[..], versions[5], 6));
    let a = kv.get("/c/a", 0).await.expect("latest").kv.expect("a7");
    assert_eq!((a.value.as_ref(), a.mod_revision, a.version), (&b"a7"[..], last, 7));
    assert!(kv.get("/c/b", 0).await.expect("b").kv.is_none() && b_deleted < compacted);
    let listed = kv.range(RangeRequest::prefix("/c/")).await.expect("range");
    assert_eq!(listed.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), vec!["/c/a", "/c/c"]);
    assert_eq!(
        kv.space().await.expect("space").in_use_bytes,
        in_use,
        "no compacted history came back (the bytes in use are those before the crash)"
    );
    // A watch from the compaction point replays exactly what compaction kept.
    let request =
        WatchRequest { start: "/c/".into(), end: "/c0".into(), start_revision: compacted, progress_notify: false };
    let mut stream = kv.watch(request).await.expect("watch");
    let mut revisions = Vec::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("in time");
        revisions.push(event.expect("open").expect("event").revision());
    }
    assert_eq!(revisions, vec![compacted, last]);
    assert!(put(&kv, "/c/d", "d", 0).await > last);
}
