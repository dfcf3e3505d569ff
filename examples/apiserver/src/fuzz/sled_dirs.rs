//! Fuzzing sled's on-disk records, three targets of the fuzz runner: a database directory with
//! flipped or truncated bytes — in sled's own files (`sled_files`), in apistore's history
//! records and metadata (`sled_records`), and in the revision ceiling file (`sled_ceiling`) —
//! must give a typed error on open or on read: never a panic, and every value read back is
//! one that was written (apistore's records are checksummed, so a flipped value byte is
//! `Error::Corrupt`, never a wrong value). One input is one corrupted copy of a small
//! database, opened and read in full.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use apistore::kv::{prefix_end, RangeRequest, TxnOutcome};
use apistore::testing::audit::fuzz::{FuzzStats, FuzzTarget};
use apistore::KvBackend;
use apistore_sled::{SledBackend, SledOptions, CEILING_FILE};
use bytes::Bytes;

apistore::inventory::submit! {
    FuzzTarget {
        name: "sled_files",
        about: "a sled directory with flipped or truncated bytes in its files: a typed error or only written values",
        run: corrupted_files,
    }
}

apistore::inventory::submit! {
    FuzzTarget {
        name: "sled_records",
        about: "apistore's history records and metadata in sled with flipped or truncated bytes: a typed error or only written values (checksummed), never a panic",
        run: corrupted_records,
    }
}

apistore::inventory::submit! {
    FuzzTarget {
        name: "sled_ceiling",
        about: "a corrupted revision ceiling file: a typed error on open or only written values",
        run: corrupted_ceiling,
    }
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

/// What went wrong in the harness itself (a temporary directory, a copy): not a finding.
fn io<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> Result<T, String> {
    result.map_err(|e| format!("harness: {what}: {e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    io("runtime", tokio::runtime::Builder::new_current_thread().enable_all().build())
}

/// Writes a few keys (with updates and a delete) and closes the database.
fn populate(dir: &Path) -> Result<Written, String> {
    let mut written = Written::new();
    runtime()?.block_on(async {
        let backend = io("open sled", SledBackend::open(SledOptions::new(dir)))?;
        for i in 0..8u32 {
            let key = format!("/registry/k{}", i % 4);
            let value = format!("value-{i}-{}", "x".repeat(i as usize * 10));
            let current = io("get", backend.get(&key, 0).await)?.kv.map(|kv| kv.mod_revision).unwrap_or(0);
            match io("put", backend.put(&key, Bytes::from(value.clone()), current, None).await)? {
                TxnOutcome::Succeeded { revision } => written.insert((key, value.into_bytes(), revision)),
                other => return Err(format!("harness: unexpected {other:?}")),
            };
        }
        backend.delete("/registry/k0", 0).await.ok();
        Ok(written)
    })
}

/// The last revision [`populate`] made (its delete follows the last write).
fn last_revision(written: &Written) -> u64 {
    written.iter().map(|(_, _, revision)| *revision).max().unwrap_or(0) + 1
}

/// Opens and reads everything, in a panic guard: Ok(Ok(n values read)) or Ok(Err(typed error
/// text)); Err (a finding) on a panic or a value that was never written. Reads at every
/// revision up to the database's, but not past `last` (a corrupted counter can claim
/// trillions).
fn open_and_read(
    dir: &Path,
    written: Option<&Written>,
    last: u64,
    what: &str,
) -> Result<Result<usize, String>, String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        runtime()?.block_on(async {
            let backend = SledBackend::open(SledOptions::new(dir)).map_err(|e| e.to_string())?;
            let mut read = Vec::new();
            let all =
                RangeRequest { start: "/".into(), end: prefix_end("/"), limit: 0, revision: 0, count_only: false };
            let latest = backend.range(all.clone()).await.map_err(|e| e.to_string())?;
            read.extend(latest.kvs);
            // Every revision that was not compacted (nothing is compacted here).
            for revision in 1..=latest.revision.min(last) {
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
            Err(format!("{what}: open or read panicked: {message}"))
        }
        // A panic on a blocking thread comes back as a JoinError: still a panic.
        Ok(Err(e)) if e.contains("panicked") => Err(format!("{what}: a backend task panicked: {e}")),
        Ok(Err(e)) => Ok(Err(e)),
        Ok(Ok(read)) => {
            if let Some(written) = written {
                for kv in &read {
                    let triple = (kv.key.clone(), kv.value.to_vec(), kv.mod_revision);
                    if !written.contains(&triple) {
                        return Err(format!("{what}: read a value never written: {triple:?}"));
                    }
                }
            }
            Ok(Ok(read.len()))
        }
    }
}

fn files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for entry in io("read_dir", std::fs::read_dir(dir))?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path)?);
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    for file in files(from)? {
        let target = to.join(file.strip_prefix(from).map_err(|e| e.to_string())?);
        if let Some(parent) = target.parent() {
            io("mkdir", std::fs::create_dir_all(parent))?;
        }
        io("copy", std::fs::copy(&file, &target))?;
    }
    Ok(())
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

/// A populated database and a fresh copy of it per input.
struct Original {
    dir: tempfile::TempDir,
    written: Written,
    last: u64,
}

impl Original {
    fn new() -> Result<Original, String> {
        let dir = io("tempdir", tempfile::tempdir())?;
        let written = populate(dir.path())?;
        let last = last_revision(&written);
        Ok(Original { dir, written, last })
    }

    fn copy(&self) -> Result<tempfile::TempDir, String> {
        let dir = io("tempdir", tempfile::tempdir())?;
        copy_dir(self.dir.path(), dir.path())?;
        Ok(dir)
    }
}

fn stats(iterations: u32, reads: u64, started: Instant) -> FuzzStats {
    FuzzStats { inputs: u64::from(iterations), accepted: reads, elapsed: started.elapsed() }
}

fn corrupted_files(iterations: u32, seed: u64) -> Result<FuzzStats, String> {
    let started = Instant::now();
    let original = Original::new()?;
    match open_and_read(original.dir.path(), Some(&original.written), original.last, "intact")? {
        Ok(n) if n > 0 => {}
        other => return Err(format!("the intact database does not read: {other:?}")),
    }
    let mut rng = Rng(seed ^ 0x5eed);
    let mut reads = 0;
    for iteration in 0..iterations {
        let dir = original.copy()?;
        let candidates: Vec<PathBuf> = files(dir.path())?.into_iter().filter(|f| !f.ends_with(CEILING_FILE)).collect();
        let file = &candidates[rng.below(candidates.len())];
        let mut bytes = io("read", std::fs::read(file))?;
        let how = mutate(&mut rng, &mut bytes);
        io("write", std::fs::write(file, &bytes))?;
        let what = format!("seed {seed} iteration {iteration}: {} {how}", file.display());
        if open_and_read(dir.path(), Some(&original.written), original.last, &what)?.is_ok() {
            reads += 1;
        }
    }
    Ok(stats(iterations, reads, started))
}

fn corrupted_records(iterations: u32, seed: u64) -> Result<FuzzStats, String> {
    let started = Instant::now();
    let original = Original::new()?;
    let mut rng = Rng(seed ^ 0xdead);
    let (mut errors, mut reads) = (0u64, 0u64);
    for iteration in 0..iterations {
        let dir = original.copy()?;
        // Corrupts one record of apistore's layout (history entry, its key, or metadata).
        let how = {
            // No flusher thread: it would hold the directory's lock for a moment after the drop.
            let db = io("raw sled open", sled::Config::new().path(dir.path()).flush_every_ms(None).open())?;
            let entries: Vec<(sled::IVec, sled::IVec)> = io("raw read", db.iter().collect::<Result<Vec<_>, _>>())?;
            let (key, value) = &entries[rng.below(entries.len())];
            let how = if rng.below(4) == 0 {
                // A key cut short or with a changed prefix byte.
                let mut bad = key.to_vec();
                let how = mutate(&mut rng, &mut bad);
                io("raw remove", db.remove(key))?;
                io("raw insert", db.insert(bad, value.clone()))?;
                format!("key {key:?} {how}")
            } else {
                let mut bad = value.to_vec();
                let how = mutate(&mut rng, &mut bad);
                io("raw insert", db.insert(key, bad))?;
                format!("value of {key:?} {how}")
            };
            io("raw flush", db.flush())?;
            how
        };
        let what = format!("seed {seed} iteration {iteration}: {how}");
        // History records are checksummed (revision and record): whatever reads back was written.
        match open_and_read(dir.path(), Some(&original.written), original.last, &what)? {
            Ok(_) => reads += 1,
            Err(_) => errors += 1,
        }
    }
    // Some corruptions (a cut key, a record that does not decode) must be detected.
    if iterations >= 16 && errors == 0 {
        return Err(format!("none of {iterations} corruptions of apistore's records was detected"));
    }
    Ok(stats(iterations, reads, started))
}

fn corrupted_ceiling(iterations: u32, seed: u64) -> Result<FuzzStats, String> {
    let started = Instant::now();
    let original = Original::new()?;
    let mut rng = Rng(seed ^ 7);
    let mut reads = 0;
    for iteration in 0..iterations {
        let dir = original.copy()?;
        let path = dir.path().join(CEILING_FILE);
        let mut bytes = io("the ceiling file after a clean close", std::fs::read(&path))?;
        let how = mutate(&mut rng, &mut bytes);
        io("write", std::fs::write(&path, &bytes))?;
        let what = format!("seed {seed} iteration {iteration}: ceiling {how} = {:?}", String::from_utf8_lossy(&bytes));
        // A ceiling that still parses is only a higher or lower floor for new revisions.
        if open_and_read(dir.path(), Some(&original.written), original.last, &what)?.is_ok() {
            reads += 1;
        }
    }
    let dir = original.copy()?;
    io("write", std::fs::write(dir.path().join(CEILING_FILE), b"12x"))?;
    match open_and_read(dir.path(), Some(&original.written), original.last, "ceiling 12x")? {
        Err(error) if error.contains("corrupt revision ceiling") => {}
        other => return Err(format!("a non-number ceiling must be refused as corrupt, got {other:?}")),
    }
    Ok(stats(iterations, reads, started))
}
