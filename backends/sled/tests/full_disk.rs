//! A full disk (issue 11): the sled backend on a small tmpfs. Filling it gives typed
//! `Unavailable` errors (503 at the HTTP edge), never a panic; every acknowledged write stays
//! readable while the disk is full (or a read is a typed Unavailable when sled must first
//! finish a tree split, which writes — never a wrong value); and once space is back writes succeed again in the same
//! process without a reopen (sled 0.34 keeps a failed flush's error; the backend's
//! maintenance probes the disk and switches to a fresh generation). Needs root to mount the
//! tmpfs (CI runs as root); the test fails with a clear message when it cannot mount.

use std::collections::BTreeMap;

use apistore::kv::{KvBackend, TxnOutcome};
use apistore::testing::tmpfs::Tmpfs;
use apistore::Error;
use apistore_sled::{SledBackend, SledOptions};
use bytes::Bytes;

fn value(tag: u64) -> Bytes {
    let mut v = format!("{tag:020}").into_bytes();
    v.resize(4096, b'v');
    Bytes::from(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_typed_keeps_reads_and_writes_resume_once_space_is_back() {
    fill_refuse_recover(false).await;
}

/// The same, with the recovery forced onto the path it takes when sled 0.34 refuses reads
/// after the I/O error (it does in some runs, when a read must first finish a tree split):
/// the database reopened from disk instead of rewritten from memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_when_the_recovery_reopens_the_database_from_disk() {
    fill_refuse_recover(true).await;
}

async fn fill_refuse_recover(reopen: bool) {
    let fs = Tmpfs::mount("24m");
    let data = fs.path().join("data");
    let options = SledOptions { reclaim_min_bytes: 0, compaction_window: 0, ..SledOptions::new(&data) };
    let kv = SledBackend::open(options).expect("open");
    kv.set_recovery_rewrite(!reopen);
    // Ballast that fills most of the disk; deleting it is "space is back".
    let ballast = fs.path().join("ballast");
    let _ = std::fs::write(&ballast, vec![0u8; 12 << 20]);
    let mut acknowledged: BTreeMap<String, (u64, Bytes)> = BTreeMap::new();
    let mut refused = None;
    for i in 0..20_000u64 {
        let key = format!("/registry/configmaps/default/cm-{:03}", i % 500);
        let expected = acknowledged.get(&key).map_or(0, |(r, _)| *r);
        let v = value(i);
        match kv.put(&key, v.clone(), expected, None).await {
            Ok(TxnOutcome::Succeeded { revision }) => {
                acknowledged.insert(key, (revision, v));
            }
            Ok(other) => panic!("put {key}: {other:?}"),
            Err(e) => {
                refused = Some((e, key, v));
                break;
            }
        }
    }
    let (refused, refused_key, refused_value) = refused.expect("the disk never filled up");
    assert!(matches!(refused, Error::Unavailable { .. }), "a full disk gives Unavailable, got {refused:?}");
    assert!(!acknowledged.is_empty());
    // Reads go on and every acknowledged write is there — or, when sled 0.34 must first
    // finish a pending tree split or merge (a read can write), a typed Unavailable; never a
    // wrong answer. (Seen once in a plain `cargo test --workspace` run.)
    let mut unavailable = 0;
    for (key, (revision, v)) in &acknowledged {
        match kv.get(key, 0).await {
            Ok(got) => {
                let got = got.kv.expect("acknowledged key");
                assert_eq!((got.mod_revision, &got.value), (*revision, v), "{key}");
            }
            Err(Error::Unavailable { .. }) => unavailable += 1,
            Err(e) => panic!("read {key} on a full disk: {e:?}"),
        }
    }
    println!("reads on a full disk: {} keys, {unavailable} refused with Unavailable", acknowledged.len());
    // Space back: writes succeed again in this process, without a reopen, within seconds.
    std::fs::remove_file(&ballast).expect("remove ballast");
    let last = acknowledged.values().map(|(r, _)| *r).max().expect("one write");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let resumed = loop {
        match kv.put("/registry/configmaps/default/after", value(0), 0, None).await {
            Ok(TxnOutcome::Succeeded { revision }) => break revision,
            // An earlier attempt refused with Unavailable had an unknown outcome: written.
            Ok(TxnOutcome::Failed { current: Some(kv), .. }) if kv.value == value(0) => break kv.mod_revision,
            Ok(other) => panic!("put after space is back: {other:?}"),
            Err(e) => {
                assert!(matches!(e, Error::Unavailable { .. }), "refused typed until recovered: {e:?}");
                assert!(std::time::Instant::now() < deadline, "writes did not resume without a reopen: {e:?}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    assert!(resumed > last, "revision {resumed} after {last}");
    // Counted once the recovery finished, which may be a moment after writes resumed (a
    // rewrite's switch lets writes go on before it removed the old generation).
    while kv.recoveries() == 0 {
        assert!(std::time::Instant::now() < deadline, "the backend recovered by itself");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    acknowledged.insert("/registry/configmaps/default/after".into(), (resumed, value(0)));
    // The refused write's outcome is unknown (like a timeout's): its key holds either the
    // acknowledged value or the refused one, which then counts as written.
    if let Some(got) = kv.get(&refused_key, 0).await.expect("read").kv {
        if got.value == refused_value {
            let before = acknowledged.get(&refused_key).map_or(0, |(r, _)| *r);
            assert!(got.mod_revision > before && got.mod_revision < resumed, "{}", got.mod_revision);
            acknowledged.insert(refused_key, (got.mod_revision, refused_value));
        }
    }
    for (key, (revision, v)) in &acknowledged {
        let got = kv.get(key, 0).await.expect("read after recovery").kv.expect("acknowledged key");
        assert_eq!((got.mod_revision, &got.value), (*revision, v), "{key}");
    }
    drop(kv);
    // Reopened: everything acknowledged before the disk filled and after it recovered.
    let options = SledOptions { reclaim_min_bytes: 0, compaction_window: 0, ..SledOptions::new(&data) };
    let kv = SledBackend::open(options).expect("reopen");
    for (key, (revision, v)) in &acknowledged {
        let got = kv.get(key, 0).await.expect("read").kv.expect("acknowledged key");
        assert_eq!((got.mod_revision, &got.value), (*revision, v), "{key}");
    }
    let revision = match kv.put("/registry/configmaps/default/later", value(1), 0, None).await.expect("put") {
        TxnOutcome::Succeeded { revision } => revision,
        other => panic!("put after the reopen: {other:?}"),
    };
    let last = resumed;
    assert!(revision > last, "revision {revision} after {last}");
}

#[path = "fixture/crash.rs"]
#[allow(dead_code)] // the writer loop is the other crash tests'
mod crash;

const CHILD_DIR_ENV: &str = "APISTORE_SLED_FULL_DISK_CHILD_DIR";
const CHILD_GO_ENV: &str = "APISTORE_SLED_FULL_DISK_CHILD_GO";

/// Child side of the log test below: writes 4 KiB values durably (500 keys updated in turn)
/// until a write is refused (prints `refused <error>`), waits until the parent's go file
/// exists (space is back), then creates new keys forever, printing each acknowledged write
/// (`ack <revision> <key> <i>`) and retrying refused ones.
#[test]
fn wal_full_disk_child() {
    let (Ok(dir), Ok(go)) = (std::env::var(CHILD_DIR_ENV), std::env::var(CHILD_GO_ENV)) else { return };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let options = SledOptions { reclaim_min_bytes: 0, compaction_window: 0, ..SledOptions::new(&dir) };
        let kv = SledBackend::open(options).expect("open");
        let mut revisions: BTreeMap<String, u64> = BTreeMap::new();
        for i in 0u64.. {
            let key = format!("/registry/configmaps/default/cm-{:03}", i % 500);
            let expected = revisions.get(&key).copied().unwrap_or(0);
            match kv.put(&key, value(i), expected, None).await {
                Ok(TxnOutcome::Succeeded { revision }) => {
                    println!("ack {revision} {key} {i}");
                    revisions.insert(key, revision);
                }
                Ok(other) => panic!("put {key}: {other:?}"),
                Err(e) => {
                    println!("refused {e}");
                    break;
                }
            }
        }
        while !std::path::Path::new(&go).exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let mut n = 0u64;
        loop {
            let key = format!("/registry/configmaps/default/after-{n}");
            match kv.put(&key, value(n), 0, None).await {
                Ok(TxnOutcome::Succeeded { revision }) => {
                    println!("ack {revision} {key} {n}");
                    n += 1;
                }
                // An earlier attempt refused with Unavailable was written after all.
                Ok(TxnOutcome::Failed { .. }) => n += 1,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    });
}

/// A write-ahead log write that fails on a full disk (ENOSPC mid-record) must leave no torn
/// record in front of the writes acknowledged after space is back: the child fills the
/// disk, space comes back, it writes on, it is killed with SIGKILL, and every write it was
/// told is durable — before the disk filled and after — is there when the directory reopens;
/// no segment of the log holds a damaged record.
#[test]
fn a_failed_log_write_leaves_no_torn_record_in_front_of_later_acknowledged_writes() {
    let fs = Tmpfs::mount("24m");
    let data = fs.path().join("data");
    let ballast = fs.path().join("ballast");
    let _ = std::fs::write(&ballast, vec![0u8; 12 << 20]);
    let go = fs.path().join("go");
    let env = [(CHILD_DIR_ENV, data.display().to_string()), (CHILD_GO_ENV, go.display().to_string())];
    let (mut child, mut lines) = crash::spawn_child("wal_full_disk_child", &env);
    let mut acknowledged: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let record = |acknowledged: &mut BTreeMap<String, (u64, u64)>, line: &str| {
        if let Some((revision, key, i)) = crash::parse_ack(line) {
            acknowledged.insert(key, (revision, i));
        }
    };
    let refusal = loop {
        let line = lines.next().expect("the child stopped before the disk filled").expect("read");
        if let Some(at) = line.find("refused ") {
            break line[at + 8..].to_owned();
        }
        record(&mut acknowledged, &line);
    };
    println!("refused on the full disk: {refusal}");
    let before = acknowledged.len();
    std::fs::remove_file(&ballast).expect("remove ballast");
    std::fs::write(&go, b"").expect("go");
    let mut after = 0;
    while after < 200 {
        let line = lines.next().expect("the child stopped after space was back").expect("read");
        if line.contains("ack ") {
            after += 1;
        }
        record(&mut acknowledged, &line);
    }
    child.kill().expect("SIGKILL the child");
    for line in lines.map_while(Result::ok) {
        record(&mut acknowledged, &line);
    }
    let _ = child.wait();
    assert!(before > 0 && acknowledged.len() > before, "writes acknowledged before and after the full disk");
    let report = apistore_sled::inspect_wal(&data).expect("inspect the log");
    let last = report.len().saturating_sub(1);
    for (i, segment) in report.iter().enumerate() {
        // Only the very end of the log may be cut (the kill may land in a write).
        if i < last {
            assert_eq!(segment.good_bytes, segment.file_bytes, "a damaged record inside the log: {segment:?}");
        }
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let options = SledOptions { reclaim_min_bytes: 0, compaction_window: 0, ..SledOptions::new(&data) };
        let kv = SledBackend::open(options).expect("reopen");
        let mut newest = 0;
        for (key, (revision, i)) in &acknowledged {
            let got = kv.get(key, 0).await.expect("read").kv;
            let got = got.unwrap_or_else(|| panic!("acknowledged {key} at {revision} lost"));
            // A cm key's write in flight at the refusal may have landed after all (outcome
            // unknown); every other acknowledged write is exactly there.
            if got.mod_revision != *revision {
                assert!(
                    key.contains("/cm-") && got.mod_revision > *revision,
                    "{key}: {} vs {revision}",
                    got.mod_revision
                );
            } else {
                assert_eq!(got.value, value(*i), "{key}");
            }
            newest = newest.max(*revision);
        }
        match kv.put("/registry/configmaps/default/later", value(1), 0, None).await.expect("put") {
            TxnOutcome::Succeeded { revision } => assert!(revision > newest, "revision {revision} after {newest}"),
            other => panic!("put after the reopen: {other:?}"),
        }
    });
}
