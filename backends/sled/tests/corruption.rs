//! Fuzzing sled's on-disk records: a database directory with flipped or truncated bytes —
//! in sled's own files, in apistore's history records and metadata (`layout.rs`), and in the
//! revision ceiling file — must give a typed error on open or on read: never a panic, and
//! every value read back is one that was written. apistore's history records, the packed
//! history of a rewrite and the ceiling file are checksummed (see the crate's `layout`
//! module): a flipped byte in a stored value is `Error::Corrupt` naming the key, never the
//! wrong value; a data directory written before checksums still opens. `APISTORE_FUZZ_ITERATIONS` sets the number
//! of corrupted directories per target (default 16, small for CI).

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use apistore::kv::{prefix_end, RangeRequest, TxnOutcome};
use apistore::{Error, KvBackend};
use apistore_sled::{SledBackend, SledOptions, CEILING_FILE};
use bytes::Bytes;

fn iterations() -> u64 {
    std::env::var("APISTORE_FUZZ_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(16)
}

/// A small deterministic generator (splitmix64): the seed of a failure reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

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

/// Opens and reads everything, in a panic guard. Ok(n values read) or Err(typed error text);
/// panics (the test failing) on a panic or a value that was never written.
fn open_and_read(dir: &Path, written: Option<&Written>, what: &str) -> Result<usize, String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        runtime().block_on(async {
            let backend = SledBackend::open(SledOptions::new(dir)).map_err(|e| e.to_string())?;
            let mut read = Vec::new();
            let all =
                RangeRequest { start: "/".into(), end: prefix_end("/"), limit: 0, revision: 0, count_only: false };
            let latest = backend.range(all.clone()).await.map_err(|e| e.to_string())?;
            read.extend(latest.kvs);
            // Every revision that was not compacted (nothing is compacted here).
            for revision in 1..=latest.revision {
                match backend.range(RangeRequest { revision, ..all.clone() }).await {
                    Ok(page) => read.extend(page.kvs),
                    Err(e) => return Err(e.to_string()),
                }
            }
            for i in 0..4 {
                if let Some(kv) = backend.get(&format!("/registry/k{i}"), 0).await.map_err(|e| e.to_string())?.kv {
                    read.push(kv);
                }
            }
            Ok(read)
        })
    }));
    match outcome {
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("{what}: open or read panicked: {message}")
        }
        // A panic on a blocking thread comes back as a JoinError: still a panic.
        Ok(Err(e)) if e.contains("panicked") => panic!("{what}: a backend task panicked: {e}"),
        Ok(Err(e)) => Err(e),
        Ok(Ok(read)) => {
            for kv in read.iter().filter(|_| written.is_some()) {
                let triple = (kv.key.clone(), kv.value.to_vec(), kv.mod_revision);
                assert!(written.is_some_and(|w| w.contains(&triple)), "{what}: read a value never written: {triple:?}");
            }
            Ok(read.len())
        }
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for file in files(from) {
        let target = to.join(file.strip_prefix(from).expect("inside"));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&file, &target).expect("copy");
    }
}

/// Flips 1–4 bytes or truncates `bytes`.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) -> String {
    if bytes.is_empty() || rng.below(3) == 0 {
        let len = rng.below(bytes.len() + 1);
        bytes.truncate(len);
        format!("truncated to {len}")
    } else {
        let flips = 1 + rng.below(4);
        let mut at = Vec::new();
        for _ in 0..flips {
            let i = rng.below(bytes.len());
            bytes[i] ^= 1 << rng.below(8);
            at.push(i);
        }
        format!("flipped bytes at {at:?}")
    }
}

#[test]
fn corrupted_sled_files_give_a_typed_error_or_written_values_never_a_panic() {
    let original = tempfile::tempdir().expect("tempdir");
    let written = populate(original.path());
    assert!(open_and_read(original.path(), Some(&written), "intact").expect("the intact database reads") > 0);
    let mut rng = Rng(0x5eed);
    let (mut errors, mut reads) = (0, 0);
    for iteration in 0..iterations() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(original.path(), dir.path());
        let candidates: Vec<PathBuf> = files(dir.path()).into_iter().filter(|f| !f.ends_with(CEILING_FILE)).collect();
        let file = &candidates[rng.below(candidates.len())];
        let mut bytes = std::fs::read(file).expect("read");
        let how = mutate(&mut rng, &mut bytes);
        std::fs::write(file, &bytes).expect("write");
        let what = format!("iteration {iteration}: {} {how}", file.display());
        match open_and_read(dir.path(), Some(&written), &what) {
            Ok(_) => reads += 1,
            Err(_) => errors += 1,
        }
    }
    println!("sled files: {errors} typed errors, {reads} opened with only written values");
    assert_eq!(errors + reads, iterations());
}

#[test]
fn corrupted_apistore_records_give_a_typed_error_never_a_panic() {
    let original = tempfile::tempdir().expect("tempdir");
    let written = populate(original.path());
    let mut rng = Rng(0xdead);
    let (mut errors, mut reads) = (0, 0);
    for iteration in 0..iterations() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(original.path(), dir.path());
        // Corrupts one record of apistore's layout (history entry, its key, or metadata).
        let how = {
            let db = sled::open(dir.path()).expect("raw sled open");
            let entries: Vec<(sled::IVec, sled::IVec)> = db.iter().map(|e| e.expect("raw read")).collect();
            let (key, value) = &entries[rng.below(entries.len())];
            let how = if rng.below(4) == 0 {
                // A key cut short or with a changed prefix byte.
                let mut bad = key.to_vec();
                let how = mutate(&mut rng, &mut bad);
                db.remove(key).expect("raw remove");
                db.insert(bad, value.clone()).expect("raw insert");
                format!("key {key:?} {how}")
            } else {
                let mut bad = value.to_vec();
                let how = mutate(&mut rng, &mut bad);
                db.insert(key, bad).expect("raw insert");
                format!("value of {key:?} {how}")
            };
            db.flush().expect("raw flush");
            how
        };
        let what = format!("iteration {iteration}: {how}");
        // History records are checksummed: whatever reads back was written.
        match open_and_read(dir.path(), Some(&written), &what) {
            Ok(_) => reads += 1,
            Err(_) => errors += 1,
        }
    }
    println!("apistore records: {errors} typed errors, {reads} opened");
    assert!(errors > 0, "no corruption of apistore's records was detected");
}

#[test]
fn a_corrupted_ceiling_file_is_a_typed_error_on_open() {
    let original = tempfile::tempdir().expect("tempdir");
    let written = populate(original.path());
    let mut rng = Rng(7);
    for iteration in 0..iterations() {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(original.path(), dir.path());
        let path = dir.path().join(CEILING_FILE);
        let mut bytes = std::fs::read(&path).expect("the ceiling file exists after a clean close");
        let how = mutate(&mut rng, &mut bytes);
        std::fs::write(&path, &bytes).expect("write");
        let what = format!("iteration {iteration}: ceiling {how} = {:?}", String::from_utf8_lossy(&bytes));
        // A ceiling that still parses is only a higher or lower floor for new revisions.
        let _ = open_and_read(dir.path(), Some(&written), &what);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(original.path(), dir.path());
    std::fs::write(dir.path().join(CEILING_FILE), b"12x").expect("write");
    let error = open_and_read(dir.path(), Some(&written), "ceiling 12x").expect_err("a non-number ceiling is refused");
    assert!(error.contains("corrupt revision ceiling"), "{error}");
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
            Some(&2u64.to_be_bytes()[..]),
            "open records format 2"
        );
        db.insert(b"mformat", &3u64.to_be_bytes()).expect("insert");
        db.flush().expect("flush");
    }
    let error = SledBackend::open(SledOptions::new(dir.path())).expect_err("a newer format is refused");
    assert!(error.to_string().contains("data format 3"), "{error}");
}
