//! A full disk (issue 11): the sled backend on a small tmpfs. Filling it gives typed
//! `Unavailable` errors (503 at the HTTP edge), never a panic; every acknowledged write stays
//! readable while the disk is full; and once space is back writes succeed again in the same
//! process after a reopen (sled 0.34 keeps a failed flush's error until then). Needs root to mount the tmpfs (CI runs as root); the test fails with
//! a clear message when it cannot mount.

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
async fn a_full_disk_refuses_writes_typed_keeps_reads_and_a_reopen_writes_again() {
    let fs = Tmpfs::mount("24m");
    let data = fs.path().join("data");
    let options = SledOptions { reclaim_min_bytes: 0, compaction_window: 0, ..SledOptions::new(&data) };
    let kv = SledBackend::open(options).expect("open");
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
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("the disk never filled up");
    assert!(matches!(refused, Error::Unavailable { .. }), "a full disk gives Unavailable, got {refused:?}");
    assert!(!acknowledged.is_empty());
    // Reads go on and every acknowledged write is there.
    for (key, (revision, v)) in &acknowledged {
        let got = kv.get(key, 0).await.expect("read on a full disk").kv.expect("acknowledged key");
        assert_eq!((got.mod_revision, &got.value), (*revision, v), "{key}");
    }
    // sled 0.34 keeps the I/O error (its global error) once a flush failed, so writes stay
    // refused in this process, typed, even after space is back; they never half-succeed.
    std::fs::remove_file(&ballast).expect("remove ballast");
    let again = kv.put("/registry/configmaps/default/after", value(0), 0, None).await;
    assert!(matches!(again, Err(Error::Unavailable { .. })), "{again:?}");
    drop(kv);
    // Reopened with space back: everything acknowledged is there, writes succeed, and
    // revisions go forward.
    let last = acknowledged.values().map(|(r, _)| *r).max().expect("one write");
    let options = SledOptions { reclaim_min_bytes: 0, compaction_window: 0, ..SledOptions::new(&data) };
    let kv = SledBackend::open(options).expect("reopen once space is back");
    for (key, (revision, v)) in &acknowledged {
        let got = kv.get(key, 0).await.expect("read").kv.expect("acknowledged key");
        assert_eq!((got.mod_revision, &got.value), (*revision, v), "{key}");
    }
    let revision = match kv.put("/registry/configmaps/default/after", value(1), 0, None).await.expect("put") {
        TxnOutcome::Succeeded { revision } => revision,
        other => panic!("put after space is back: {other:?}"),
    };
    assert!(revision > last, "revision {revision} after {last}");
}
