//! sled's checksummed records (see the crate's `layout` module): a flipped byte in a stored
//! value or in the packed history of a rewrite is `Error::Corrupt` naming the key, never the
//! wrong value; a generation pointer naming a missing generation is `Corrupt`, never a fresh
//! empty store; a data directory written before checksums still opens and a rewrite upgrades
//! it; a newer format is refused. The corrupted-directory fuzz targets (random flips and
//! truncations of sled's files, apistore's records and the ceiling file) run in the fuzz
//! runner: `apiserver fuzz --target sled_files,sled_records,sled_ceiling`
//! (`examples/apiserver/src/fuzz/sled_dirs.rs`).

use std::collections::HashSet;
use std::path::Path;

use apistore::kv::TxnOutcome;
use apistore::{Error, KvBackend};
use apistore_sled::{SledBackend, SledOptions, CEILING_FILE};
use bytes::Bytes;

/// (key, value, mod_revision) of every write.
type Written = HashSet<(String, Vec<u8>, u64)>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Writes a few keys (with updates and a delete) and closes the database.
fn populate(dir: &Path) -> Written {
    let mut written = Written::new();
    runtime().block_on(async {
        let backend = SledBackend::open(SledOptions::new(dir)).expect("open sled");
        for i in 0..8u32 {
            let key = format!("/registry/k{}", i % 4);
            let value = format!("value-{i}-{}", "x".repeat(i as usize * 10));
            let current = backend.get(&key, 0).await.expect("get").kv.map(|kv| kv.mod_revision).unwrap_or(0);
            match backend.put(&key, Bytes::from(value.clone()), current, None).await.expect("put") {
                TxnOutcome::Succeeded { revision } => written.insert((key, value.into_bytes(), revision)),
                other => panic!("unexpected {other:?}"),
            };
        }
        backend.delete("/registry/k0", 0).await.ok();
    });
    written
}

/// The index of the last byte of `needle`'s first occurrence in `haystack`.
fn last_byte_of(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle).map(|at| at + needle.len() - 1)
}

/// The value `populate` wrote last for `/registry/k1` (its 6th write, i = 5).
fn k1_latest() -> Vec<u8> {
    format!("value-5-{}", "x".repeat(50)).into_bytes()
}

#[test]
fn a_flipped_byte_in_a_stored_value_is_a_corrupt_error_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = populate(dir.path());
    assert!(written.iter().any(|(k, v, _)| k == "/registry/k1" && *v == k1_latest()));
    {
        // One flipped bit in the last byte of /registry/k1's latest value, through sled (so
        // sled's own checksums hold: only apistore's record can tell).
        let db = sled::open(dir.path()).expect("raw sled open");
        let (key, value) = db
            .iter()
            .map(|e| e.expect("raw read"))
            .find(|(k, v)| k[0] == b'h' && last_byte_of(v, &k1_latest()).is_some())
            .expect("the history record of k1's latest value");
        let mut bad = value.to_vec();
        let at = last_byte_of(&bad, &k1_latest()).expect("value");
        bad[at] ^= 0x01;
        db.insert(key, bad).expect("raw insert");
        db.flush().expect("raw flush");
    }
    let error = SledBackend::open(SledOptions::new(dir.path())).expect_err("a wrong value must not be served");
    match &error {
        Error::Corrupt { key, message } => {
            assert_eq!(key, "/registry/k1", "{error}");
            assert!(message.contains("checksum"), "{error}");
        }
        other => panic!("expected a Corrupt error, got {other:?}"),
    }
    assert_eq!(error.code(), 500);
}

#[test]
fn a_flipped_byte_in_the_packed_history_is_corrupt_on_read_and_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path());
    runtime().block_on(async {
        let backend = SledBackend::open(SledOptions::new(dir.path())).expect("open");
        let done = backend.reclaim_now().await.expect("rewrite").expect("a directory database rewrites");
        let packed = dir.path().join(format!("gen-{:06}", done.generation)).join("apistore-packed-history");
        let kv = backend.get("/registry/k1", 0).await.expect("get").kv.expect("k1");
        assert_eq!(kv.value.as_ref(), &k1_latest(), "read back from the packed history");
        let mut raw = std::fs::read(&packed).expect("the rewrite wrote a packed history");
        let at = last_byte_of(&raw, &k1_latest()).expect("k1's value is packed");
        raw[at] ^= 0x01;
        std::fs::write(&packed, &raw).expect("flip");
        // While open: the read verifies the record it reads.
        let error = backend.get("/registry/k1", 0).await.expect_err("a wrong value must not be served");
        assert!(matches!(&error, Error::Corrupt { key, .. } if key == "/registry/k1"), "{error:?}");
        assert!(backend.get("/registry/k2", 0).await.expect("other keys read").kv.is_some());
    });
    let error = SledBackend::open(SledOptions::new(dir.path())).expect_err("open verifies the packed history");
    assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
}

#[test]
fn a_generation_file_naming_a_missing_generation_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path());
    runtime().block_on(async {
        let backend = SledBackend::open(SledOptions::new(dir.path())).expect("open");
        backend.reclaim_now().await.expect("rewrite").expect("rewrote");
    });
    std::fs::write(dir.path().join(apistore_sled::GENERATION_FILE), b"gen-000009\n").expect("write");
    let error = SledBackend::open(SledOptions::new(dir.path())).expect_err("never a fresh empty database");
    assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
}

/// A history record of format 1 (written before checksums): key length, key, then the
/// version record (kind 1 = put, create revision, version, previous revision, expiry, value).
fn format_1_record(key: &str, create: u64, version: u64, prev: u64, value: &[u8]) -> Vec<u8> {
    let mut out = (key.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(key.as_bytes());
    out.push(1);
    for field in [create, version, prev, 0] {
        out.extend_from_slice(&field.to_be_bytes());
    }
    out.extend_from_slice(value);
    out
}

#[test]
fn a_data_directory_written_before_checksums_opens_and_a_rewrite_upgrades_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = sled::open(dir.path()).expect("raw sled open");
        let history = |revision: u64| [&[b'h'][..], &revision.to_be_bytes()].concat();
        db.insert(history(2), format_1_record("/registry/old", 2, 1, 0, b"legacy-1")).expect("insert");
        db.insert(history(3), format_1_record("/registry/old", 2, 2, 2, b"legacy-2")).expect("insert");
        db.flush().expect("flush");
    }
    std::fs::write(dir.path().join(CEILING_FILE), b"3").expect("a ceiling file without checksum");
    runtime().block_on(async {
        let options = SledOptions { compaction_window: 0, ..SledOptions::new(dir.path()) };
        let backend = SledBackend::open(options.clone()).expect("a format 1 directory opens");
        let check = |kv: Option<apistore::kv::KeyValue>, value: &[u8], revision: u64| {
            let kv = kv.expect("the legacy key");
            assert_eq!((kv.value.as_ref(), kv.mod_revision, kv.create_revision), (value, revision, 2));
        };
        check(backend.get("/registry/old", 0).await.expect("get").kv, b"legacy-2", 3);
        check(backend.get("/registry/old", 2).await.expect("get at 2").kv, b"legacy-1", 2);
        backend.reclaim_now().await.expect("rewrite").expect("rewrote");
        drop(backend);
        let backend = SledBackend::open(options).expect("reopen the upgraded generation");
        check(backend.get("/registry/old", 0).await.expect("get").kv, b"legacy-2", 3);
        check(backend.get("/registry/old", 2).await.expect("get at 2").kv, b"legacy-1", 2);
        match backend.put("/registry/old", Bytes::from_static(b"new"), 3, None).await.expect("put") {
            TxnOutcome::Succeeded { revision } => assert!(revision > 3),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn a_data_directory_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path());
    {
        let db = sled::open(dir.path()).expect("raw sled open");
        assert_eq!(
            db.get(b"mformat").expect("read").as_deref(),
            Some(&3u64.to_be_bytes()[..]),
            "open records format 3"
        );
        db.insert(b"mformat", &4u64.to_be_bytes()).expect("insert");
        db.flush().expect("flush");
    }
    let error = SledBackend::open(SledOptions::new(dir.path())).expect_err("a newer format is refused");
    assert!(error.to_string().contains("data format 4"), "{error}");
}
