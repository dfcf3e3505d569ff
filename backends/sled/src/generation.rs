//! Generations of the data directory: which sled database is the live one, and the durable
//! switch from one to the next that returns disk space (sled 0.34 never shrinks its files).
//!
//! ```text
//! data-dir/
//!   apistore-generation        pointer: the live generation's directory name ("gen-000002")
//!   gen-000002/                the live sled database, and apistore-packed-history in it
//!                              (the history the rewrite carried over, see crate::packed)
//!   gen-000003/                a rewrite in progress (garbage until the pointer names it)
//!   apistore-revision-ceiling  the revision ceiling (shared by all generations)
//!   apistore-wal/              the write-ahead log (shared by all generations: replayed into
//!                              the live one, see crate::wal)
//! ```
//!
//! Without a pointer file the database is the legacy layout (sled's files in `data-dir`
//! itself, generation 0). The commit point of a switch is the atomic replacement of the
//! pointer file (a prepared file per generation, `apistore-generation.gen-NNNNNN.tmp`,
//! fsynced; its rename; the fsync of the directory): before it the old generation is the
//! truth and the new directory is removed on open; after it the new one is, and the old one
//! is removed. A rewrite switches in memory first and renames only once the new generation
//! is flushed, with acknowledgements waiting ([`DbCell::switch`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use apistore::kv::Revision;
use apistore::{Error, Result};

use crate::durable::DurableFiles;
use crate::layout;
use crate::packed::Packed;

/// Name of the pointer file naming the live generation.
pub const GENERATION_FILE: &str = "apistore-generation";

const PREFIX: &str = "gen-";

/// The files sled 0.34 keeps in its directory (removed from `data-dir` once a legacy
/// database moved into a generation); `snap.*` files are matched by prefix.
const LEGACY_FILES: [&str; 3] = ["conf", "db", "blobs"];

/// One generation: its sled database (new writes, TTL index, metadata) and its packed history
/// (what the rewrite that made it carried over; empty for generation 0 and temporary
/// databases). Every packed revision is below every history revision in the sled tree.
#[derive(Debug)]
pub(crate) struct Gen {
    /// The sled database.
    pub db: sled::Db,
    /// The packed history.
    pub packed: Packed,
    /// The files a durable flush syncs beyond sled's own flush (None: a temporary database).
    pub files: Option<DurableFiles>,
}

impl std::ops::Deref for Gen {
    type Target = sled::Db;

    fn deref(&self) -> &sled::Db {
        &self.db
    }
}

/// A history record read from either part of a generation.
pub(crate) enum Raw {
    /// From the sled tree.
    Sled(sled::IVec),
    /// From the packed history.
    Packed(Vec<u8>),
}

impl std::ops::Deref for Raw {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Raw::Sled(raw) => raw,
            Raw::Packed(raw) => raw,
        }
    }
}

impl Gen {
    /// Makes every write applied to this generation so far durable: sled's flush plus the
    /// fsyncs it leaves out (see [`crate::durable`]).
    ///
    /// Errors: [`Error::Unavailable`] when a write or sync fails.
    pub(crate) fn flush_durably(&self) -> Result<()> {
        DurableFiles::flush(self.files.as_ref(), &self.db)
    }

    /// The history record of `revision` (packed or in sled), if retained.
    ///
    /// Errors: [`Error::Unavailable`] on I/O errors.
    pub(crate) fn history(&self, revision: Revision) -> Result<Option<Raw>> {
        if revision <= self.packed.last_revision() {
            return Ok(self.packed.get(revision)?.map(Raw::Packed));
        }
        Ok(self.db.get(layout::history_key(revision)).map_err(crate::backend::sled_error)?.map(Raw::Sled))
    }

    /// The history records of revisions `from..=until`, ascending: the packed ones, then
    /// those in sled.
    pub(crate) fn history_range(
        &self,
        from: Revision,
        until: Revision,
    ) -> impl Iterator<Item = Result<(Revision, Raw)>> + '_ {
        let packed = self.packed.range(from, until).map(|entry| entry.map(|(r, raw)| (r, Raw::Packed(raw))));
        let from_sled = from.max(self.packed.last_revision().saturating_add(1));
        let sled = (from_sled <= until)
            .then(|| self.db.range(layout::history_key(from_sled)..=layout::history_key(until)))
            .into_iter()
            .flatten()
            .map(|entry| {
                let (raw_rev, raw) = entry.map_err(crate::backend::sled_error)?;
                Ok((layout::be_u64(&raw_rev[1..])?, Raw::Sled(raw)))
            });
        packed.chain(sled)
    }

    /// The newest history revision (0 when there is none).
    ///
    /// Errors: [`Error::Unavailable`] / [`Error::Internal`] when sled fails.
    pub(crate) fn last_history(&self) -> Result<Revision> {
        let in_sled = self
            .db
            .range(layout::history_key(0)..layout::history_key(u64::MAX))
            .next_back()
            .transpose()
            .map_err(crate::backend::sled_error)?
            .map(|(k, _)| layout::be_u64(&k[1..]))
            .transpose()?
            .unwrap_or(0);
        Ok(in_sled.max(self.packed.last_revision()))
    }
}

/// The live generation, swappable: readers clone the `Arc` for the duration of one
/// operation, the rewrite swaps in the next generation ([`DbCell::switch`]).
#[derive(Debug)]
pub(crate) struct DbCell {
    /// None while the database is being reopened ([`DbCell::take`], [`DbCell::install`]).
    live: RwLock<Option<Arc<Gen>>>,
    /// A switch made in memory but not yet durable (see [`DbCell::switch`]).
    pending: Mutex<Option<Pending>>,
    /// Called at the steps of making a switch durable (tests: crash points).
    hook: RwLock<Option<fn(&'static str)>>,
}

/// A switch to `generation` not yet durable: its pointer is prepared (`Some`: not yet renamed
/// over the live one) or renamed but the directory not yet fsynced (`None`).
#[derive(Debug)]
struct Pending {
    root: PathBuf,
    prepared: Option<PreparedCommit>,
    generation: Arc<Gen>,
}

impl DbCell {
    pub(crate) fn new(generation: Gen) -> Self {
        DbCell { live: RwLock::new(Some(Arc::new(generation))), pending: Mutex::new(None), hook: RwLock::new(None) }
    }

    /// The live generation.
    ///
    /// Errors: [`Error::Unavailable`] while the database is being reopened after a failed
    /// write ([`DbCell::take`]).
    pub(crate) fn get(&self) -> Result<Arc<Gen>> {
        self.live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::unavailable("sled backend: the database is being reopened after a failed write"))
    }

    /// Takes the live generation out, and the generation of a pending switch (which is no
    /// longer made durable): until [`DbCell::install`], every operation gets
    /// [`Error::Unavailable`]. Returns what it took (drop it to close those databases).
    pub(crate) fn take(&self) -> Vec<Arc<Gen>> {
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner()).take();
        live.take().into_iter().chain(pending.map(|p| p.generation)).collect()
    }

    /// Makes `generation` the live one (after [`DbCell::take`]; nothing pending).
    pub(crate) fn install(&self, generation: Gen) {
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(generation));
    }

    /// Makes `generation` the live one in memory, the pointer `prepared` for it, under `root`;
    /// returns the previous generation. In-memory work only (no I/O): writes go to
    /// `generation` from now on, and none of them counts as durable before
    /// [`DbCell::sync_pointer`] returned, which first flushes `generation` (the history the
    /// rewrite copied into its sled tree, and the writes since), then renames the pointer,
    /// then fsyncs the directory. Until the rename the old generation stays the one on disk;
    /// it holds every write made durable before the switch.
    ///
    /// The pending switch is recorded before the swap, so a flush that finds the new
    /// generation live also finds the switch pending.
    pub(crate) fn switch(&self, generation: Gen, root: PathBuf, prepared: PreparedCommit) -> Option<Arc<Gen>> {
        let generation = Arc::new(generation);
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Pending { root, prepared: Some(prepared), generation: generation.clone() });
        live.replace(generation)
    }

    /// Sets the function called at each step of [`DbCell::sync_pointer`] ("flushing",
    /// "renamed", "durable"; tests kill the process there).
    pub(crate) fn set_hook(&self, hook: fn(&'static str)) {
        *self.hook.write().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    fn at(&self, step: &'static str) {
        if let Some(hook) = *self.hook.read().unwrap_or_else(|e| e.into_inner()) {
            hook(step);
        }
    }

    /// Makes a pending switch ([`DbCell::switch`]) durable, once: flushes the new generation,
    /// renames its pointer over the live one, fsyncs the data directory. Nothing to do when
    /// none is pending. Flushes call it after flushing (a write to the new generation is
    /// durable only once the pointer names it durably), the rewrite right after the switch.
    /// Concurrent callers wait for the one doing it.
    ///
    /// Errors: [`Error::Unavailable`] when a step fails (the rest is tried again next time;
    /// the old generation stays the one on disk until the rename succeeded).
    pub(crate) fn sync_pointer(&self) -> Result<()> {
        self.sync_pointer_marking(&mut |_| {})
    }

    /// [`DbCell::sync_pointer`], calling `mark` after each step it ran ("waiting for a
    /// concurrent flush" doing the same, "new generation flush", "pointer rename", "directory
    /// fsync"; none when nothing was pending).
    ///
    /// Errors: as [`DbCell::sync_pointer`].
    pub(crate) fn sync_pointer_marking(&self, mark: &mut dyn FnMut(&'static str)) -> Result<()> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(switch) = pending.as_mut() else { return Ok(()) };
        mark("waiting for a concurrent flush");
        if let Some(prepared) = &switch.prepared {
            self.at("flushing");
            switch.generation.flush_durably()?;
            mark("new generation flush");
            switch_pointer(&switch.root, prepared)?;
            switch.prepared = None;
            mark("pointer rename");
            self.at("renamed");
        }
        sync_dir(&switch.root)?;
        mark("directory fsync");
        *pending = None;
        drop(pending);
        self.at("durable");
        Ok(())
    }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::unavailable(format!("{}: {e}", path.display()))
}

/// The directory of generation `generation` under `root` (0 = `root` itself, legacy).
pub(crate) fn path_of(root: &Path, generation: u64) -> PathBuf {
    if generation == 0 {
        root.to_path_buf()
    } else {
        root.join(format!("{PREFIX}{generation:06}"))
    }
}

/// The live generation of `root` (0 when there is no pointer file: the legacy layout).
///
/// Errors: [`Error::Internal`] for a corrupt pointer file; [`Error::Unavailable`] when it
/// cannot be read.
pub(crate) fn live(root: &Path) -> Result<u64> {
    let pointer = root.join(GENERATION_FILE);
    match fs::read_to_string(&pointer) {
        Ok(text) => text
            .trim()
            .strip_prefix(PREFIX)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::internal(format!("corrupt generation file {}: {text:?}", pointer.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_error(&pointer)(e)),
    }
}

/// Removes every generation of `root` but `live` (an interrupted rewrite, or an old
/// generation a crash left behind), prepared pointer files never renamed, and the legacy
/// files once `live` is not 0. Not while a switch is pending (its prepared pointer).
///
/// Errors: [`Error::Unavailable`] on I/O errors.
pub(crate) fn remove_stale(root: &Path, live: u64) -> Result<()> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(root)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_error(root))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let generation = name.strip_prefix(PREFIX).and_then(|n| n.parse::<u64>().ok());
        let prepared_pointer = name.starts_with(&format!("{GENERATION_FILE}.")) && name.ends_with(".tmp");
        let stale = match generation {
            Some(generation) => generation != live,
            None => {
                prepared_pointer || live != 0 && (LEGACY_FILES.contains(&name.as_str()) || name.starts_with("snap."))
            }
        };
        if stale {
            remove(&entry.path())?;
        }
    }
    Ok(())
}

/// Removes a file or directory tree (absent is fine).
pub(crate) fn remove(path: &Path) -> Result<()> {
    let outcome = if path.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) };
    match outcome {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(path)(e)),
        _ => Ok(()),
    }
}

/// Makes `generation` the live one: the commit point of a rewrite ([`prepare_commit`] then
/// [`commit_prepared`]; a rewrite prepares before it switches in memory, and renames and
/// fsyncs after, see [`DbCell::switch`]).
///
/// Errors: [`Error::Unavailable`] on I/O errors (the old generation stays live).
#[cfg(test)]
pub(crate) fn commit(root: &Path, generation: u64) -> Result<()> {
    commit_prepared(root, prepare_commit(root, generation)?)
}

/// A pointer file written and fsynced beside the live one, not yet renamed over it.
#[derive(Debug)]
pub(crate) struct PreparedCommit(PathBuf);

/// The first half of [`commit`]: writes and fsyncs the new pointer as a temporary file (the
/// old generation stays live).
///
/// Errors: [`Error::Unavailable`] on I/O errors.
pub(crate) fn prepare_commit(root: &Path, generation: u64) -> Result<PreparedCommit> {
    // One name per generation: a switch still pending (its rename failed) never renames the
    // pointer of a later rewrite that is not complete yet.
    let temp = root.join(format!("{GENERATION_FILE}.{PREFIX}{generation:06}.tmp"));
    write_synced(&temp, format!("{PREFIX}{generation:06}\n").as_bytes())?;
    Ok(PreparedCommit(temp))
}

/// The second half of [`commit`], the commit point: renames the prepared pointer over the
/// live one and fsyncs the directory.
///
/// Errors: [`Error::Unavailable`] on I/O errors.
#[cfg(test)]
pub(crate) fn commit_prepared(root: &Path, prepared: PreparedCommit) -> Result<()> {
    switch_pointer(root, &prepared)?;
    sync_dir(root)
}

/// The commit point without its durability: renames the prepared pointer over the live one.
/// Until [`sync_dir`] of `root` returned, a crash may still find the old pointer: nothing
/// written to the new generation may be acknowledged before (see [`DbCell::switch`]).
///
/// Errors: [`Error::Unavailable`] on I/O errors (the prepared pointer stays, to be tried again).
pub(crate) fn switch_pointer(root: &Path, prepared: &PreparedCommit) -> Result<()> {
    let to = root.join(GENERATION_FILE);
    fs::rename(&prepared.0, &to).map_err(io_error(&to))
}

/// Fsyncs the directory `root` (makes a rename in it durable).
///
/// Errors: [`Error::Unavailable`] on I/O errors.
pub(crate) fn sync_dir(root: &Path) -> Result<()> {
    fs::File::open(root).and_then(|d| d.sync_all()).map_err(io_error(root))
}

/// Replaces `path` with `contents` atomically and durably: temp file, fsync, rename, fsync of
/// the directory. After a crash `path` holds either the old or the new contents.
///
/// Errors: [`Error::Unavailable`] on I/O errors.
pub(crate) fn replace_durably(path: &Path, contents: &[u8]) -> Result<()> {
    let temp = path.with_extension("tmp");
    write_synced(&temp, contents)?;
    rename_durably(&temp, path)
}

/// Creates `path` with `contents` and fsyncs it.
fn write_synced(path: &Path, contents: &[u8]) -> Result<()> {
    let io = io_error(path);
    let mut file = fs::File::create(path).map_err(&io)?;
    file.write_all(contents).map_err(&io)?;
    file.sync_all().map_err(&io)
}

/// Renames `from` over `to` and fsyncs the directory.
fn rename_durably(from: &Path, to: &Path) -> Result<()> {
    let io = io_error(to);
    fs::rename(from, to).map_err(&io)?;
    if let Some(dir) = to.parent() {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(&io)?;
    }
    Ok(())
}

/// Bytes of every file under `path` (the data directory's size on disk).
pub(crate) fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pointer_names_the_live_generation_and_the_rest_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        assert_eq!(live(root).expect("no pointer"), 0, "no pointer: the legacy layout");
        for generation in [1, 2] {
            fs::create_dir_all(path_of(root, generation)).expect("mkdir");
        }
        fs::write(root.join("db"), b"legacy").expect("legacy file");
        fs::write(root.join("apistore-revision-ceiling"), b"7").expect("ceiling");
        commit(root, 2).expect("commit");
        assert_eq!(live(root).expect("pointer"), 2);
        let never_renamed = prepare_commit(root, 3).expect("prepare").0;
        remove_stale(root, 2).expect("remove stale");
        assert!(!path_of(root, 1).exists() && !root.join("db").exists());
        assert!(!never_renamed.exists(), "a prepared pointer never renamed is removed");
        assert!(path_of(root, 2).exists() && root.join("apistore-revision-ceiling").exists());
        fs::write(root.join(GENERATION_FILE), b"garbage").expect("corrupt");
        assert!(live(root).is_err(), "a corrupt pointer is an error, never a silent fallback");
    }
}
