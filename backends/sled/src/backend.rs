//! [`SledBackend`]: the [`KvBackend`] contract on one sled tree (see [`crate::layout`]).
//!
//! * **One writer at a time.** Writes take the writer lock, allocate the next revision, insert
//!   the history entry (key, metadata, value) — one plain sled insert — plus TTL index
//!   changes, and record the version in the in-memory key index, all in revision order. The
//!   lock is held for microseconds; durable writers wait for their flush *after* releasing
//!   it, so they share flushes (group commit, see [`crate::flusher`]).
//! * **Visible only once durable.** In [`Durability::Immediate`] mode a write is *published*
//!   — the current revision moves to it, watchers get its event — only after a flush made it
//!   durable, and before it is acknowledged; so nothing a reader or watcher saw can be lost
//!   in a crash. Conditional writes compare against the latest *applied* version (it may be
//!   unpublished); a failed comparison is answered once what it saw is durable. In
//!   `Periodic` mode writes are published at once (and may be lost in a crash).
//! * **Revisions never repeat.** A small ceiling file next to the database records a revision
//!   no revision handed out exceeds; it is raised (written and fsynced) before a revision
//!   above it becomes visible, in steps of [`CEILING_STEP`]. On open the current revision is
//!   the maximum of the history and the ceiling, so after `kill -9` the counter jumps forward
//!   by at most one step and never reuses a revision anyone may have seen (an unflushed write
//!   may be lost in [`Durability::Periodic`] mode, its revision is not reused).
//! * **An in-memory key index** (like etcd's `treeIndex`, see [`crate::index`]): each key's
//!   retained revisions. Reads find the version they need there and fetch its value with one
//!   point read of the history. Rebuilt from the history on open.
//! * **Consistent reads.** Every read, latest included, is a read *at* a
//!   revision (the current one for a latest read): it takes each key's newest version at or
//!   below that revision, so writes running concurrently (always at higher revisions) are
//!   invisible to it.
//! * **Durable through a write-ahead log** (Immediate mode, see [`crate::wal`]): the writer
//!   appends each write's record (revision, history entry, replaced TTL deadline) to the log's
//!   buffer under the writer lock, in revision order; a group-commit flush writes the buffer
//!   with one `pwrite` and `fdatasync`s it — not sled's flush — before it publishes and
//!   acknowledges. sled is flushed durably behind it by checkpoints (about once a second, and
//!   in compaction, after a rewrite's switch, on close), which then delete the closed log
//!   segments. Open replays the log into sled before the index is built (skipping what
//!   compaction or the packed history covers, stopping at a torn record). A failed log write
//!   cuts the segment back, fails the log (appends and flushes refused) and leaves recovery to
//!   maintenance as for a failed sled flush; its checkpoint clears the failure.
//! * **Blocking work off the async workers.** Point reads and writes are in-memory sled
//!   operations of a few microseconds and run inline; log writes and fsyncs run on the flusher
//!   thread, checkpoints on the maintenance thread (or in compaction and rewrites);
//!   ranges, watch replay and compaction run on tokio's blocking pool; TTL expiry and
//!   background compaction run on a maintenance thread.

use std::collections::{BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apistore::kv::{
    Capabilities, Expiry, GetResponse, KeyValue, KvBackend, RangeRequest, RangeResponse, Revision, TxnOutcome,
    WatchEvent, WatchRequest, WatchStream,
};
use apistore::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;

use crate::flusher::Flusher;
use crate::generation::{self, DbCell};
use crate::index::{KeyIndex, Meta};
use crate::layout::{self, Version};
use crate::options::{Durability, SledOptions};
use crate::wal::{self, Wal};
use crate::watch::{self, Hub};

mod reclaim;

pub use reclaim::Reclaimed;

/// How far the revision ceiling is raised at a time (the largest forward jump of the
/// revision counter after a crash).
pub const CEILING_STEP: u64 = 10_000;

/// Name of the revision ceiling file inside the database directory.
pub const CEILING_FILE: &str = "apistore-revision-ceiling";

/// Most history entries removed per compaction batch.
const COMPACTION_CHUNK: usize = 1_000;

pub(crate) fn sled_error(e: sled::Error) -> Error {
    match e {
        sled::Error::Io(io) => Error::unavailable(format!("sled I/O error: {io}")),
        other => Error::internal(format!("sled error: {other}")),
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

struct WriterState {
    /// No revision above this may be handed out before the ceiling is raised.
    ceiling: Revision,
}

/// The shared state of an open backend (held by the backend, its maintenance thread and its
/// watch streams).
pub(crate) struct Core {
    /// The live generation's database (swapped by a rewrite, see [`reclaim`]).
    db: Arc<DbCell>,
    /// The live generation (0 = the legacy layout or a temporary database).
    generation: AtomicU64,
    /// (when, current revision) sampled once per compaction interval: the age limit of the
    /// retention policy.
    samples: Mutex<VecDeque<(std::time::Instant, Revision)>>,
    /// Bytes of the history entries in the database (keys and values): the bytes in use.
    history_bytes: AtomicU64,
    /// Bytes of the history entries of every key's latest live version (the live data).
    live_bytes: AtomicU64,
    /// Space accounting and the NOSPACE alarm (see [`reclaim`]).
    space: reclaim::SpaceState,
    options: SledOptions,
    ceiling_path: Option<PathBuf>,
    writer: Mutex<WriterState>,
    /// Every key's retained versions. Changed only by the writer (before publishing) and by
    /// compaction.
    index: RwLock<KeyIndex>,
    /// The latest published revision: what reads, watches and `current_revision` see. In
    /// [`Durability::Immediate`] mode a write is published only once it is durable.
    current: AtomicU64,
    /// The latest applied revision (≥ `current`); conditional writes compare against it.
    applied: AtomicU64,
    /// Applied writes not yet published, in revision order (only with a flusher: they wait
    /// for the flush that makes them durable).
    unpublished: Mutex<VecDeque<Unpublished>>,
    /// The compaction revision.
    compact: AtomicU64,
    compaction: Mutex<()>,
    hub: Hub,
    /// The write-ahead log (Immediate mode on disk; see [`crate::wal`]).
    wal: Option<Arc<Wal>>,
    /// Held for a whole checkpoint ([`Core::checkpoint`]): one at a time.
    checkpointing: Mutex<()>,
    flusher: Option<Flusher>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("path", &self.options.path)
            .field("current", &self.current.load(Ordering::SeqCst))
            .field("compact", &self.compact.load(Ordering::SeqCst))
            .field("durability", &self.options.durability)
            .finish()
    }
}

/// A write applied but not yet published to readers and watchers.
struct Unpublished {
    revision: Revision,
    key: String,
    /// `(create_revision, version, value)` of a put; None for a delete.
    put: Option<(Revision, Revision, Bytes)>,
    prev_revision: Revision,
}

/// What a conditional write does when its comparison holds.
enum Mutation {
    Put { value: Bytes, expires_at_ms: u64 },
    Delete,
}

impl Core {
    fn open(options: SledOptions) -> Result<Self> {
        options.validate()?;
        let flush_every = match options.durability {
            Durability::Periodic(ms) => Some(ms),
            Durability::Immediate => Some(crate::options::DEFAULT_PERIODIC_FLUSH_MS),
        };
        let live = if options.temporary { 0 } else { generation::live(&options.path)? };
        if live != 0 && !generation::path_of(&options.path, live).is_dir() {
            return Err(Error::Corrupt {
                key: options.path.join(generation::GENERATION_FILE).display().to_string(),
                message: format!("sled backend: the generation file names generation {live}, which does not exist"),
            });
        }
        if !options.temporary {
            generation::remove_stale(&options.path, live)?;
        }
        let db = reclaim::open_generation(&options, live, flush_every)?;
        let ceiling_path = (!options.temporary).then(|| options.path.join(CEILING_FILE));
        let ceiling = match &ceiling_path {
            Some(path) => read_ceiling(path)?,
            None => 0,
        };
        let compact = meta(&db, layout::META_COMPACT)?;
        let format = meta(&db, layout::META_FORMAT)?;
        if format > layout::FORMAT {
            return Err(Error::internal(format!(
                "sled backend: {} holds data format {format}, this version reads up to {}",
                options.path.display(),
                layout::FORMAT
            )));
        }
        if format < layout::FORMAT {
            // Durable before any write is logged: a version that does not know the log must
            // refuse this directory, not open it without what the log holds.
            db.insert(layout::META_FORMAT, &layout::FORMAT.to_be_bytes()).map_err(sled_error)?;
            db.flush_durably()?;
        }
        // What the write-ahead log holds beyond sled (a crash, or a last run in Immediate mode).
        let replayed = if options.temporary {
            None
        } else {
            Some(wal::replay(&options.path, &mut |record| replay_record(&db, compact, record).map(drop))?)
        };
        let wal = match (&replayed, options.durability) {
            (Some(replayed), Durability::Immediate) => Some(Arc::new(Wal::start(&options.path, replayed)?)),
            (Some(replayed), Durability::Periodic(_)) => {
                if replayed.last_seq > 0 {
                    // No log in Periodic mode: what it held goes into sled durably, then it goes.
                    db.flush_durably()?;
                    wal::remove_all(&options.path)?;
                }
                None
            }
            (None, _) => None,
        };
        let last_history = db.last_history()?;
        let current = 1.max(last_history).max(compact).max(ceiling);
        let db = Arc::new(DbCell::new(db));
        let flusher = match options.durability {
            Durability::Immediate => Some(Flusher::start(db.clone(), wal.clone())?),
            Durability::Periodic(_) => None,
        };
        let core = Core {
            db,
            generation: AtomicU64::new(live),
            samples: Mutex::new(VecDeque::new()),
            history_bytes: AtomicU64::new(0),
            live_bytes: AtomicU64::new(0),
            space: reclaim::SpaceState::default(),
            ceiling_path,
            writer: Mutex::new(WriterState { ceiling }),
            index: RwLock::new(KeyIndex::default()),
            current: AtomicU64::new(current),
            applied: AtomicU64::new(current),
            unpublished: Mutex::new(VecDeque::new()),
            compact: AtomicU64::new(compact),
            compaction: Mutex::new(()),
            hub: Hub::default(),
            wal,
            checkpointing: Mutex::new(()),
            flusher,
            options,
        };
        core.build_index()?;
        // Finish a compaction a crash interrupted.
        core.remove_compacted_history(compact)?;
        Ok(core)
    }

    /// Builds the in-memory key index from the history (verifying every record's checksum),
    /// dropping what the compaction revision made unreachable (a packed history keeps the
    /// entries compaction removed after its rewrite).
    fn build_index(&self) -> Result<()> {
        let index = self.index_of(&*self.db()?)?;
        self.history_bytes.store(index.total_bytes(), Ordering::SeqCst);
        self.live_bytes.store(index.live_bytes(), Ordering::SeqCst);
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = index;
        Ok(())
    }

    /// The key index of `db`'s history (verifying every record's checksum) at the compaction
    /// revision; removes from `db` what compaction made unreachable and restores TTL entries
    /// a crash cut off (see [`Core::build_index`]).
    ///
    /// Errors: [`Error::Corrupt`] for a damaged record; [`Error::Unavailable`] on I/O errors.
    fn index_of(&self, db: &generation::Gen) -> Result<KeyIndex> {
        let mut index = KeyIndex::default();
        for entry in db.history_range(0, u64::MAX) {
            let (revision, raw) = entry?;
            let (key, version) =
                layout::decode_event_header(revision, &raw).map_err(|e| match layout::unverified_key(&raw) {
                    Some(key) => layout::name_key(e, key),
                    None => e,
                })?;
            index.push(key, revision, Meta::of(&version, 9 + raw.len()));
        }
        let mut batch = sled::Batch::default();
        for dropped in index.compact_all(self.compacted()) {
            batch.remove(&layout::history_key(dropped));
        }
        db.apply_batch(batch).map_err(sled_error)?;
        // A crash may have cut a write between its history insert and its TTL entry.
        for (key, deadline) in index.expiring() {
            db.insert(layout::expiry_key(deadline, &key), &[][..]).map_err(sled_error)?;
        }
        Ok(index)
    }

    /// The newest version of `key` at or below `revision` (possibly a tombstone).
    fn version_meta(&self, key: &[u8], revision: Revision) -> Option<(Revision, Meta)> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).at(key, revision)
    }

    /// The live generation (hold the `Arc` for one operation only: a rewrite waits for it).
    ///
    /// Errors: [`Error::Unavailable`] while it is being reopened after a failed write.
    fn db(&self) -> Result<Arc<generation::Gen>> {
        self.db.get()
    }

    pub(crate) fn options(&self) -> &SledOptions {
        &self.options
    }

    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    pub(crate) fn current_atomic(&self) -> &AtomicU64 {
        &self.current
    }

    pub(crate) fn current(&self) -> Revision {
        self.current.load(Ordering::SeqCst)
    }

    pub(crate) fn compacted(&self) -> Revision {
        self.compact.load(Ordering::SeqCst)
    }

    fn check_read_revision(&self, revision: Revision) -> Result<()> {
        let current = self.current();
        if revision > current {
            return Err(Error::FutureRevision { requested: revision, current });
        }
        let compacted = self.compacted();
        if revision < compacted {
            return Err(Error::Compacted { requested: revision, compacted });
        }
        Ok(())
    }

    /// The full version (with value) `key` got at `revision`, from the history; None when
    /// that history entry is gone (compacted) or belongs to another key.
    fn version_from_history(&self, key: &[u8], revision: Revision) -> Result<Option<Version>> {
        let Some(raw) = self.db()?.history(revision)? else { return Ok(None) };
        let (stored_key, version) = layout::decode_event(revision, &raw).map_err(|e| layout::name_key(e, key))?;
        Ok((stored_key == key).then_some(version))
    }

    /// The key-value of `key`'s version written at `revision`, if it is a live version.
    fn kv_at_exact(&self, key: &[u8], revision: Revision) -> Result<Option<KeyValue>> {
        match self.version_from_history(key, revision)? {
            Some(version) => version.into_kv(key, revision),
            None => Ok(None),
        }
    }

    /// The key-value of an indexed live version (fetching its value from the history), for a
    /// read at `read_revision`. Errors: [`Error::Compacted`] when compaction overtook the read
    /// and removed the version meanwhile; [`Error::Internal`] when the history entry is missing
    /// otherwise (corruption).
    fn kv_of(&self, key: &[u8], revision: Revision, read_revision: Revision) -> Result<KeyValue> {
        match self.kv_at_exact(key, revision)? {
            Some(kv) => Ok(kv),
            None => {
                let compacted = self.compacted();
                if compacted > read_revision {
                    return Err(Error::Compacted { requested: read_revision, compacted });
                }
                Err(layout::corrupt("index entry without history", key))
            }
        }
    }

    /// `key`'s newest version at or below `revision` if it is live (the key existed then),
    /// with the revision it was written at.
    fn live_at(&self, key: &[u8], revision: Revision) -> Option<(Revision, Meta)> {
        self.version_meta(key, revision).filter(|(_, meta)| meta.live)
    }

    /// The value of `key` as of `revision` (MVCC read).
    fn get_at(&self, key: &[u8], revision: Revision) -> Result<Option<KeyValue>> {
        match self.live_at(key, revision) {
            Some((at, _)) => self.kv_of(key, at, revision).map(Some),
            None => Ok(None),
        }
    }

    fn get_latest(&self, key: &[u8]) -> Result<GetResponse> {
        let at = self.current();
        let kv = self.get_at(key, at)?;
        Ok(GetResponse { kv, revision: at })
    }

    fn get(&self, key: &str, revision: Revision) -> Result<GetResponse> {
        layout::check_key(key)?;
        if revision == 0 {
            // A latest read cannot be "compacted"; if compaction overtakes it, read again.
            let mut attempts = 0;
            loop {
                match self.get_latest(key.as_bytes()) {
                    Err(Error::Compacted { .. }) if attempts < 3 => attempts += 1,
                    other => return other,
                }
            }
        }
        self.check_read_revision(revision)?;
        let kv = self.get_at(key.as_bytes(), revision)?;
        self.check_read_revision(revision)?; // compaction may have overtaken the read
        Ok(GetResponse { kv, revision: self.current() })
    }

    /// The live keys with a TTL in `[start, end)`, from the key index (no disk read).
    fn expiries(&self, start: &str, end: &str) -> Result<Vec<Expiry>> {
        apistore::kv::validate_range(start, end)?;
        let now = now_ms();
        let expiring =
            self.index.read().unwrap_or_else(|e| e.into_inner()).expiring_in(start.as_bytes(), end.as_bytes());
        expiring
            .into_iter()
            .map(|(key, mod_revision, deadline)| {
                Ok(Expiry {
                    key: layout::key_string(&key)?,
                    mod_revision,
                    remaining: Duration::from_millis(deadline.saturating_sub(now)),
                })
            })
            .collect()
    }

    fn range(&self, request: &RangeRequest) -> Result<RangeResponse> {
        apistore::kv::validate_range(&request.start, &request.end)?;
        if request.revision == 0 {
            // A latest read cannot be "compacted"; if compaction overtakes it, read again.
            let mut attempts = 0;
            loop {
                match self.range_at(request, self.current()) {
                    Err(Error::Compacted { .. }) if attempts < 3 => attempts += 1,
                    other => return other,
                }
            }
        }
        self.check_read_revision(request.revision)?;
        let mut response = self.range_at(request, request.revision)?;
        self.check_read_revision(request.revision)?;
        response.revision = self.current();
        Ok(response)
    }

    fn range_at(&self, request: &RangeRequest, revision: Revision) -> Result<RangeResponse> {
        // Collect (key, revision) pairs under the index lock, then read values without it.
        let (found, count) = self.index.read().unwrap_or_else(|e| e.into_inner()).range_at(
            request.start.as_bytes(),
            request.end.as_bytes(),
            revision,
            request.limit,
            request.count_only,
        );
        let kvs = found.iter().map(|(key, at)| self.kv_of(key, *at, revision)).collect::<Result<Vec<_>>>()?;
        let more = !request.count_only && count > kvs.len() as u64;
        Ok(RangeResponse { kvs, count, more, revision })
    }

    /// Allocates the next revision, raising the durable ceiling first when needed.
    fn next_revision(&self, writer: &mut WriterState) -> Result<Revision> {
        let revision = self.applied.load(Ordering::SeqCst) + 1;
        if let Some(path) = &self.ceiling_path {
            if revision > writer.ceiling {
                let ceiling = revision + CEILING_STEP;
                write_ceiling(path, ceiling)?;
                writer.ceiling = ceiling;
            }
        }
        Ok(revision)
    }

    /// A conditional write: `mutation` applies when `key`'s mod_revision equals `expected`
    /// (`None` = unconditional, for TTL expiry). Synchronous and short; durability and, with a
    /// flusher, publication are the caller's (see [`Core::write_durably`]).
    fn write(&self, key: &str, expected: Option<Revision>, mutation: Mutation) -> Result<TxnOutcome> {
        self.write_counting_reopens(key, expected, mutation).map(|(outcome, _)| outcome)
    }

    /// [`Core::write`], also returning [`Core::reopens`] as it was when the write was applied
    /// (read under the writer lock, which a reopen holds to install the reopened database).
    fn write_counting_reopens(
        &self,
        key: &str,
        expected: Option<Revision>,
        mutation: Mutation,
    ) -> Result<(TxnOutcome, u64)> {
        layout::check_key(key)?;
        let key_bytes = key.as_bytes();
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let reopens = self.reopens();
        let latest = self.live_at(key_bytes, Revision::MAX);
        let holds = match (expected, &latest) {
            (None, _) => true,
            (Some(0), None) => matches!(mutation, Mutation::Put { .. }),
            (Some(expected), Some((mod_revision, _))) => *mod_revision == expected,
            (Some(_), None) => false,
        };
        if !holds {
            let current = match latest {
                Some((mod_revision, _)) => Some(self.kv_of(key_bytes, mod_revision, mod_revision)?),
                None => None,
            };
            return Ok((TxnOutcome::Failed { current, revision: self.current() }, reopens));
        }
        if latest.is_none() && matches!(mutation, Mutation::Delete) {
            return Ok((TxnOutcome::Failed { current: None, revision: self.current() }, reopens));
        }
        let revision = self.next_revision(&mut writer)?;
        let prev_revision = latest.map_or(0, |(mod_revision, _)| mod_revision);
        let (stored, put) = match &mutation {
            Mutation::Put { value, expires_at_ms } => {
                let (create_revision, version) = match &latest {
                    Some((_, old)) => (old.create_revision, old.version + 1),
                    None => (revision, 1),
                };
                let stored = Version {
                    live: true,
                    create_revision,
                    version,
                    prev_revision,
                    expires_at_ms: *expires_at_ms,
                    value: value.clone(),
                };
                (stored, Some((create_revision, version, value.clone())))
            }
            Mutation::Delete => {
                let tombstone = Version {
                    live: false,
                    create_revision: 0,
                    version: 0,
                    prev_revision,
                    expires_at_ms: 0,
                    value: Bytes::new(),
                };
                (tombstone, None)
            }
        };
        let old_expiry = latest.map_or(0, |(_, old)| old.expires_at_ms);
        let bytes = match self.apply(key_bytes, revision, &stored, old_expiry) {
            Ok(bytes) => bytes,
            Err(e) => {
                // Best effort: leave no half-written revision behind (it will be reused).
                let _ = self.db().map(|db| db.remove(layout::history_key(revision)));
                self.note_io_failure(&e);
                return Err(e);
            }
        };
        self.index.write().unwrap_or_else(|e| e.into_inner()).push(key_bytes, revision, Meta::of(&stored, bytes));
        // The live bytes: the key's latest live version replaced (or removed by a delete).
        let replaced = latest.map_or(0, |(_, old)| u64::from(old.bytes));
        let added = if stored.live { bytes as u64 } else { 0 };
        let _ = self.live_bytes.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |live| {
            Some(live.saturating_sub(replaced).saturating_add(added))
        });
        self.applied.store(revision, Ordering::SeqCst);
        let write = Unpublished { revision, key: key.to_owned(), put, prev_revision };
        if self.flusher.is_some() {
            // Published by `publish_through` once a flush made it durable.
            self.unpublished.lock().unwrap_or_else(|e| e.into_inner()).push_back(write);
        } else {
            self.publish(write)?;
        }
        drop(writer);
        Ok((TxnOutcome::Succeeded { revision }, reopens))
    }

    /// Makes `write` visible: the current revision moves to it and watchers get its event.
    fn publish(&self, write: Unpublished) -> Result<()> {
        let Unpublished { revision, key, put, prev_revision } = write;
        self.hub.publish(&self.current, revision, &key, || {
            let prev = if prev_revision == 0 { None } else { self.kv_at_exact(key.as_bytes(), prev_revision)? };
            Ok(match put {
                Some((create_revision, version, value)) => WatchEvent::Put {
                    kv: KeyValue { key: key.clone(), value, create_revision, mod_revision: revision, version },
                    prev,
                },
                None => WatchEvent::Delete { key: key.clone(), revision, prev },
            })
        })
    }

    /// Publishes, in revision order, every unpublished write up to `revision` (they are
    /// durable: a flush that started after they were applied has completed).
    fn publish_through(&self, revision: Revision) -> Result<()> {
        let mut unpublished = self.unpublished.lock().unwrap_or_else(|e| e.into_inner());
        let mut result = Ok(());
        while unpublished.front().is_some_and(|write| write.revision <= revision) {
            if let Some(write) = unpublished.pop_front() {
                result = result.and(self.publish(write));
            }
        }
        result
    }

    /// Stores revision `revision` of `key`: the history entry (the source of truth), then TTL
    /// index changes (a stale TTL entry left by a crash is ignored by the sweeper). Returns the
    /// bytes of the history entry.
    ///
    /// With a write-ahead log the write's record is appended first (refused while the log is
    /// failed: nothing is applied then); a sled insert failing after it fails the log (the
    /// record may reach the disk, its revision is reused: see [`crate::wal`]).
    fn apply(&self, key: &[u8], revision: Revision, stored: &Version, old_expiry: u64) -> Result<usize> {
        let event = layout::encode_event(revision, key, stored);
        let bytes = 9 + event.len();
        if let Some(wal) = &self.wal {
            wal.append(wal::Record { revision, old_expiry, event: &event })?;
        }
        let stored_in_sled =
            self.db().and_then(|db| store_write(&db, key, revision, event, old_expiry, stored.expires_at_ms));
        if let (Err(e), Some(wal)) = (&stored_in_sled, &self.wal) {
            wal.fail(&format!("a sled insert failed after its record was logged: {e}"));
        }
        stored_in_sled?;
        self.history_bytes.fetch_add(bytes as u64, Ordering::SeqCst);
        Ok(bytes)
    }

    /// Applies a conditional write and makes it durable according to the durability
    /// setting (durable writers share flushes, see [`crate::flusher`]).
    async fn write_durably(&self, key: &str, expected: Revision, mutation: Mutation) -> Result<TxnOutcome> {
        if matches!(mutation, Mutation::Put { .. }) {
            self.refuse_growth()?;
        }
        let Some(flusher) = &self.flusher else { return self.write(key, Some(expected), mutation) };
        let committing = flusher.committing();
        let (outcome, reopens) = self.write_counting_reopens(key, Some(expected), mutation)?;
        let through = match &outcome {
            TxnOutcome::Succeeded { revision } => *revision,
            // A failed comparison may have seen writes not yet durable (the current value,
            // or a key's absence): answer only once they are.
            TxnOutcome::Failed { .. } => {
                let applied = self.applied.load(Ordering::SeqCst);
                if applied <= self.current() {
                    return Ok(outcome);
                }
                applied
            }
        };
        if let Err(e) = flusher.flush(Some(committing)).await {
            self.note_io_failure(&e);
            return Err(e);
        }
        if self.reopens() != reopens {
            return Err(Error::unavailable(
                "sled backend: the database was reopened after a failed write while this write waited for its \
                 flush; its outcome is unknown",
            ));
        }
        self.publish_through(through)?;
        Ok(match outcome {
            TxnOutcome::Failed { current, .. } => TxnOutcome::Failed { current, revision: self.current() },
            succeeded => succeeded,
        })
    }

    /// In Immediate mode, [`Core::flush_and_publish`]; in Periodic mode nothing (sled
    /// flushes in the background).
    fn flush_blocking(&self) -> Result<()> {
        if self.flusher.is_some() {
            self.flush_and_publish()?;
        }
        Ok(())
    }

    /// Makes everything applied so far durable (the write-ahead log's flush, or sled's without
    /// a log) and publishes it.
    fn flush_and_publish(&self) -> Result<()> {
        let applied = self.applied.load(Ordering::SeqCst);
        let durable = match &self.wal {
            Some(wal) => wal.sync(),
            None => self.db().and_then(|db| db.flush_durably()),
        };
        if let Err(e) = durable.and_then(|_| self.db.sync_pointer()) {
            self.note_io_failure(&e);
            return Err(e);
        }
        self.publish_through(applied)
    }

    /// A checkpoint and then the publication of everything applied before it (it is durable in
    /// sled then).
    fn checkpoint_and_publish(&self) -> Result<()> {
        let applied = self.applied.load(Ordering::SeqCst);
        self.checkpoint()?;
        self.publish_through(applied)
    }

    /// Flushes sled durably behind the write-ahead log (see [`crate::wal`]): rotates the log
    /// (under the writer lock), flushes the live generation durably (and makes a pending
    /// switch durable), then deletes the closed segments, which clears a log failure. Without
    /// a log, sled's durable flush alone.
    ///
    /// Errors: [`Error::Unavailable`] when a step fails (the closed segments stay: replayed on
    /// open).
    pub(super) fn checkpoint(&self) -> Result<()> {
        let outcome = match &self.wal {
            None => self.db().and_then(|db| db.flush_durably()).and_then(|()| self.db.sync_pointer()),
            Some(wal) => {
                let _one = self.checkpointing.lock().unwrap_or_else(|e| e.into_inner());
                wal.rotate(|| self.writer.lock().unwrap_or_else(|e| e.into_inner())).and_then(|below| {
                    self.db()?.flush_durably()?;
                    self.db.sync_pointer()?;
                    wal.checkpointed(below)
                })
            }
        };
        if let Err(e) = &outcome {
            self.note_io_failure(e);
        }
        outcome
    }

    /// A checkpoint when one is due ([`Wal::checkpoint_due`]), not while recovery from a
    /// failed write is pending (it ends with one).
    fn checkpoint_if_due(&self) {
        let Some(wal) = &self.wal else { return };
        if self.io_failure_pending() || !wal.checkpoint_due() {
            return;
        }
        if let Err(e) = self.checkpoint() {
            tracing::warn!(error = %e, "sled backend: checkpoint failed; the write-ahead log keeps the writes");
        }
    }

    /// Events of `[start, end)` with revisions in `from..=until`, reading at most `chunk`
    /// history entries. Returns the events and the last revision examined.
    pub(crate) fn replay(
        &self,
        start: &str,
        end: &str,
        from: Revision,
        until: Revision,
        chunk: usize,
    ) -> Result<(Vec<WatchEvent>, Revision)> {
        let mut events = Vec::new();
        let mut through = until;
        let mut scanned = 0;
        let db = self.db()?;
        for entry in db.history_range(from, until) {
            let (revision, raw) = entry?;
            scanned += 1;
            let (raw_key, version) = layout::decode_event(revision, &raw)?;
            let key = layout::key_string(raw_key)?;
            if watch::in_range(&key, start, end) {
                let prev = match version.prev_revision {
                    0 => None,
                    prev => self.kv_at_exact(raw_key, prev)?,
                };
                events.push(if version.live {
                    WatchEvent::Put {
                        kv: KeyValue {
                            key,
                            value: version.value,
                            create_revision: version.create_revision,
                            mod_revision: revision,
                            version: version.version,
                        },
                        prev,
                    }
                } else {
                    WatchEvent::Delete { key, revision, prev }
                });
            }
            if scanned >= chunk {
                through = revision;
                break;
            }
        }
        // History below the compaction point may have been removed while we read it.
        let compacted = self.compacted();
        if from < compacted {
            return Err(Error::Compacted { requested: from, compacted });
        }
        Ok((events, through))
    }

    /// Moves the compaction point to `revision` and removes the history below it.
    fn compact(&self, revision: Revision) -> Result<()> {
        let _compaction = self.compaction.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current();
        if revision > current {
            return Err(Error::FutureRevision { requested: revision, current });
        }
        if revision <= self.compacted() {
            return Ok(());
        }
        self.db()?.insert(layout::META_COMPACT, &revision.to_be_bytes()).map_err(sled_error)?;
        // The compaction point durable in sled (it is not in the write-ahead log) before any
        // history goes, and with it every revision below it: replay skips those.
        if self.flusher.is_some() {
            self.checkpoint_and_publish()?;
        }
        self.compact.store(revision, Ordering::SeqCst);
        self.remove_compacted_history(revision)
    }

    /// Removes what compaction at `revision` made unreachable: per key written below
    /// `revision`, every version older than its newest version below `revision` (kept: reads
    /// at `revision` and the previous value of the event at `revision` need it), and that
    /// newest one too when it is a tombstone — from the key index, then from the history.
    /// Resumable after a crash (progress is recorded in the same batch).
    fn remove_compacted_history(&self, revision: Revision) -> Result<()> {
        let db = self.db()?;
        let mut through = meta(&db, layout::META_COMPACTED_THROUGH)?;
        while through < revision {
            let mut keys = BTreeSet::new();
            let mut last = None;
            for entry in db.history_range(through, revision - 1).take(COMPACTION_CHUNK) {
                let (at, raw) = entry?;
                last = Some(at);
                keys.insert(layout::decode_event_header(at, &raw)?.0.to_vec());
            }
            let next_through = last.map_or(revision, |last| last + 1);
            let mut batch = sled::Batch::default();
            let mut freed = 0;
            {
                let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
                for key in keys {
                    for (dropped, meta) in index.compact_key(&key, revision) {
                        freed += u64::from(meta.bytes);
                        batch.remove(&layout::history_key(dropped));
                    }
                }
            }
            batch.insert(layout::META_COMPACTED_THROUGH, &next_through.to_be_bytes()[..]);
            db.apply_batch(batch).map_err(sled_error)?;
            let _ =
                self.history_bytes.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| Some(b.saturating_sub(freed)));
            through = next_through;
        }
        Ok(())
    }

    /// Deletes every key whose TTL deadline has passed (an ordinary delete: new revision,
    /// watch event). Returns how many keys expired.
    fn expire_due(&self, now_ms: u64) -> Result<usize> {
        let low = vec![layout::EXPIRY];
        let high = layout::expiry_key(now_ms, &[0xff]);
        let due: Vec<sled::IVec> =
            self.db()?.range(low..high).keys().collect::<std::result::Result<_, _>>().map_err(sled_error)?;
        let mut expired = 0;
        for raw in due {
            let (deadline, key) = layout::parse_expiry_key(&raw)?;
            if deadline > now_ms {
                continue;
            }
            let key = layout::key_string(key)?;
            let still_due =
                self.live_at(key.as_bytes(), Revision::MAX).is_some_and(|(_, meta)| meta.expires_at_ms == deadline);
            if still_due {
                if let TxnOutcome::Succeeded { .. } = self.write(&key, None, Mutation::Delete)? {
                    expired += 1;
                }
            } else {
                self.db()?.remove(&raw).map_err(sled_error)?; // stale index entry
            }
        }
        if expired > 0 {
            self.flush_blocking()?;
        }
        Ok(expired)
    }

    /// The revision background compaction compacts to now: the highest of the three limits of
    /// the retention policy (see [`SledOptions`]): the last `compaction_window` revisions, the
    /// last `compaction_retention_ms` of history (sampled once per compaction interval), and
    /// the history budget (the bytes in use at most the live bytes plus
    /// `history_budget_percent` of them, at least [`crate::options::HISTORY_BUDGET_FLOOR`]
    /// beyond the live bytes). Never above the current revision.
    fn retention_target(&self, sample: bool) -> Revision {
        let current = self.current();
        let options = &self.options;
        let by_count = current.saturating_sub(options.compaction_window);
        let by_age = {
            let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
            let now = std::time::Instant::now();
            if sample {
                samples.push_back((now, current));
            }
            let retention = Duration::from_millis(options.compaction_retention_ms);
            let old_enough = |at: &std::time::Instant| now.duration_since(*at) >= retention;
            // Drop samples while the next one is old enough too: the front is then the newest
            // sample at least `retention` old.
            while samples.get(1).is_some_and(|(at, _)| old_enough(at)) {
                samples.pop_front();
            }
            match samples.front() {
                Some((at, revision)) if options.compaction_retention_ms > 0 && old_enough(at) => *revision,
                _ => 0,
            }
        };
        let by_bytes = if options.history_budget_percent == 0 {
            0
        } else {
            self.index.read().unwrap_or_else(|e| e.into_inner()).budget_revision(|live| self.history_budget(live))
        };
        by_count.max(by_age).max(by_bytes).min(current)
    }

    /// The bytes in use the history budget allows for `live` bytes of live data.
    fn history_budget(&self, live: u64) -> u64 {
        let percent = self.options.history_budget_percent;
        live + (live.saturating_mul(percent) / 100).max(crate::options::HISTORY_BUDGET_FLOOR)
    }

    /// True when the bytes in use outgrew the history budget by a quarter: compaction runs
    /// then without waiting for its interval (a fast churn would otherwise fill the disk
    /// between two compactions).
    fn over_budget(&self) -> bool {
        if self.options.history_budget_percent == 0 {
            return false;
        }
        let budget = self.history_budget(self.live_bytes.load(Ordering::SeqCst));
        self.history_bytes.load(Ordering::SeqCst) > budget + budget / 4
    }

    /// One round of background work: TTL expiry, compaction when due, the space quota and
    /// a rewrite when one would return enough space.
    fn maintain(&self, compaction_due: bool) {
        self.recover_from_io_failure();
        self.checkpoint_if_due();
        if let Err(e) = self.expire_due(now_ms()) {
            tracing::warn!(error = %e, "sled backend: TTL expiry failed");
        }
        if (compaction_due || self.over_budget()) && self.options.compaction_window > 0 {
            let target = self.retention_target(compaction_due);
            if target > self.compacted() {
                if let Err(e) = self.compact(target) {
                    tracing::warn!(error = %e, revision = target, "sled backend: background compaction failed");
                }
            }
        }
        self.maintain_space();
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // A clean close: everything durable, and the ceiling equal to the current revision so
        // the next open continues exactly where this one stopped.
        self.flusher.take();
        if self.checkpoint().is_ok() {
            if let Some(path) = &self.ceiling_path {
                if let Err(e) = write_ceiling(path, self.applied.load(Ordering::SeqCst)) {
                    tracing::warn!(error = %e, "sled backend: cannot record the revision ceiling on close");
                }
            }
        }
    }
}

/// How long [`open_db`] waits for the directory's lock to be released.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Opens sled, waiting up to [`LOCK_WAIT`] while the directory's lock is held. A database
/// closed a moment ago in this process releases its lock only once sled's own background
/// threads have let go of it, so an immediate reopen (a pooled backend dropped and opened
/// again) can find it still taken; another process holding it still fails, after the wait.
fn open_db(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            // sled reports a held lock as `Other` with this text (sled 0.34 `Config::try_lock`).
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline =>
            {
                thread::sleep(Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

/// Stores a write in `db`: its history entry `event` (the source of truth), then the TTL
/// index changes (a stale TTL entry left by a crash is ignored by the sweeper). Blind inserts
/// and removes: storing the same write again changes nothing (the log's replay).
fn store_write(
    db: &sled::Db,
    key: &[u8],
    revision: Revision,
    event: Vec<u8>,
    old_expiry: u64,
    expires_at_ms: u64,
) -> Result<()> {
    db.insert(layout::history_key(revision), event).map_err(sled_error)?;
    if old_expiry != 0 && old_expiry != expires_at_ms {
        db.remove(layout::expiry_key(old_expiry, key)).map_err(sled_error)?;
    }
    if expires_at_ms != 0 {
        db.insert(layout::expiry_key(expires_at_ms, key), &[][..]).map_err(sled_error)?;
    }
    Ok(())
}

/// Replays one write-ahead log record into `db` (see [`crate::wal`]): skipped at or below the
/// compaction revision `compact` (in sled already, or compacted away: never resurrected) and
/// at or below the generation's packed history (packed revisions stay below the sled tree's).
/// Returns whether it was stored.
///
/// Errors: [`Error::Corrupt`] for a record whose checksum held but whose history entry does
/// not (not a torn write); [`Error::Unavailable`] when sled fails.
fn replay_record(db: &generation::Gen, compact: Revision, record: wal::Record<'_>) -> Result<bool> {
    if record.revision <= compact || record.revision <= db.packed.last_revision() {
        return Ok(false);
    }
    let (key, version) = layout::decode_event_header(record.revision, record.event)?;
    store_write(db, key, record.revision, record.event.to_vec(), record.old_expiry, version.expires_at_ms)?;
    Ok(true)
}

fn meta(db: &sled::Db, name: &[u8]) -> Result<u64> {
    match db.get(name).map_err(sled_error)? {
        Some(raw) => layout::be_u64(&raw),
        None => Ok(0),
    }
}

fn read_ceiling(path: &Path) -> Result<Revision> {
    match fs::read_to_string(path) {
        Ok(text) => layout::parse_ceiling(&text).map_err(|message| Error::Corrupt {
            key: path.display().to_string(),
            message: format!("sled backend: corrupt revision ceiling file: {message}: {text:?}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::unavailable(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Writes the ceiling durably (see [`generation::replace_durably`]), checksummed (see
/// [`layout::encode_ceiling`]).
fn write_ceiling(path: &Path, ceiling: Revision) -> Result<()> {
    generation::replace_durably(path, layout::encode_ceiling(ceiling).as_bytes())
}

/// The embedded sled backend. Open it with [`SledBackend::open`] (or through the registry
/// as `{"type": "sled", ...}`); share it as `Arc<dyn KvBackend>`.
///
/// One process may open a database directory at a time (sled holds a lock). Dropping the
/// backend stops its maintenance thread, flushes, and closes the database once no watch
/// stream holds it any more.
///
/// Revisions: a fresh database is at revision 1 and its first write gets 2. A clean close and
/// reopen continues exactly; after a crash the counter continues above every revision that
/// may have been observed, jumping forward by at most [`CEILING_STEP`](crate::CEILING_STEP).
#[derive(Debug)]
pub struct SledBackend {
    core: Arc<Core>,
    stop: Option<mpsc::Sender<()>>,
    maintenance: Option<thread::JoinHandle<()>>,
}

impl SledBackend {
    /// Opens (or creates) the database of `options` and starts its maintenance thread (TTL
    /// expiry, background compaction).
    ///
    /// Errors: [`Error::Invalid`] for bad options; [`Error::Unavailable`] when the database
    /// cannot be opened (e.g. another process holds it); [`Error::Internal`] for corrupt data.
    pub fn open(options: SledOptions) -> Result<Self> {
        let core = Arc::new(Core::open(options)?);
        let (stop, stopped) = mpsc::channel::<()>();
        let worker = core.clone();
        let maintenance = thread::Builder::new()
            .name("apistore-sled-maintenance".into())
            .spawn(move || {
                let tick = Duration::from_millis(worker.options.ttl_check_interval_ms);
                let compaction_every = Duration::from_millis(worker.options.compaction_interval_ms);
                let mut last_compaction = std::time::Instant::now();
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    let due = last_compaction.elapsed() >= compaction_every;
                    if due {
                        last_compaction = std::time::Instant::now();
                    }
                    worker.maintain(due);
                }
            })
            .map_err(|e| Error::internal(format!("cannot start the sled maintenance thread: {e}")))?;
        Ok(SledBackend { core, stop: Some(stop), maintenance: Some(maintenance) })
    }

    /// A temporary database, deleted on close (tests, benches).
    ///
    /// Errors: as [`SledBackend::open`].
    pub fn temporary() -> Result<Self> {
        Self::open(SledOptions::temporary())
    }

    /// The options the backend was opened with.
    pub fn options(&self) -> &SledOptions {
        &self.core.options
    }

    /// Flushes everything written so far to disk.
    ///
    /// Errors: [`Error::Unavailable`] when the flush fails.
    pub async fn flush(&self) -> Result<()> {
        let core = self.core.clone();
        blocking(move || core.flush_and_publish()).await
    }

    /// Rewrites the database into a fresh generation now (what maintenance does once the
    /// directory is 1.5 times its bytes in use), returning the space of removed history. Reads
    /// and writes go on; writes wait only for the final switch. None for a temporary database.
    ///
    /// Errors: [`Error::Unavailable`] on I/O errors (e.g. a full disk: the rewrite needs room
    /// for the bytes in use); the old generation stays live.
    pub async fn reclaim_now(&self) -> Result<Option<Reclaimed>> {
        let core = self.core.clone();
        blocking(move || core.rewrite()).await
    }

    /// Rewrites since open and the longest time one made writes wait.
    pub fn reclaim_stats(&self) -> (u64, Duration) {
        self.core.rewrite_stats()
    }

    /// The writer pauses of the last rewrites (up to 1,000), oldest first.
    pub fn rewrite_pauses(&self) -> Vec<Duration> {
        self.core.rewrite_pauses()
    }

    /// The last rewrites (up to 1,000), oldest first, each with what ran while writes waited
    /// ([`Reclaimed::under_lock`]).
    pub fn rewrite_log(&self) -> Vec<Reclaimed> {
        self.core.rewrite_log()
    }

    /// Test hook, not part of the API: `hook` is called with the name of each step of making
    /// a rewrite's switch durable ("flushing": the new generation live in memory, about to be
    /// flushed; "renamed": its pointer renamed, the directory not yet fsynced; "durable"), on
    /// the thread doing it, with writes' acknowledgements waiting. The crash tests kill the
    /// process there.
    #[doc(hidden)]
    pub fn set_switch_hook(&self, hook: fn(&'static str)) {
        self.core.db.set_hook(hook);
    }

    /// Test hook, not part of the API: `true` pauses the periodic checkpoints of the
    /// write-ahead log (compaction, rewrites and close still checkpoint), so that a crash test
    /// finds the writes in the log.
    #[doc(hidden)]
    pub fn pause_checkpoints(&self, paused: bool) {
        if let Some(wal) = &self.core.wal {
            wal.pause_checkpoints(paused);
        }
    }

    /// How many times since open the backend recovered by itself from failed writes (e.g. a
    /// full disk: once space is back, maintenance switches to a fresh generation).
    pub fn recoveries(&self) -> u64 {
        self.core.recoveries()
    }

    /// Test hook, not part of the API: `false` makes the recovery from failed writes skip
    /// its rewrite from memory and reopen the database from disk, the path it takes when
    /// sled 0.34 refuses reads after an I/O error (which happens only now and then).
    #[doc(hidden)]
    pub fn set_recovery_rewrite(&self, enabled: bool) {
        self.core.set_recovery_rewrite(enabled);
    }

    /// Deletes the keys whose TTL has passed now, without waiting for the maintenance thread.
    /// Returns how many expired.
    ///
    /// Errors: as a delete.
    pub async fn expire_now(&self) -> Result<usize> {
        let core = self.core.clone();
        blocking(move || core.expire_due(now_ms())).await
    }
}

impl Drop for SledBackend {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(maintenance) = self.maintenance.take() {
            let _ = maintenance.join();
        }
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| Error::internal(format!("sled blocking task failed: {e}")))?
}

fn expiry_deadline(ttl: Option<Duration>) -> u64 {
    match ttl {
        Some(ttl) => now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)).max(1),
        None => 0,
    }
}

#[async_trait]
impl KvBackend for SledBackend {
    fn backend_name(&self) -> &str {
        "sled"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { progress_notify: true, progress_requests: true, ttl: true, max_value_size: None }
    }

    async fn get(&self, key: &str, revision: Revision) -> Result<GetResponse> {
        self.core.get(key, revision)
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        let core = self.core.clone();
        blocking(move || core.range(&request)).await
    }

    async fn expiries(&self, start: &str, end: &str) -> Result<Vec<Expiry>> {
        self.core.expiries(start, end)
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
        ttl: Option<Duration>,
    ) -> Result<TxnOutcome> {
        let mutation = Mutation::Put { value, expires_at_ms: expiry_deadline(ttl) };
        self.core.write_durably(key, expected_mod_revision, mutation).await
    }

    async fn delete(&self, key: &str, expected_mod_revision: Revision) -> Result<TxnOutcome> {
        self.core.write_durably(key, expected_mod_revision, Mutation::Delete).await
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        watch::start(self.core.clone(), request)
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.core.current())
    }

    async fn request_progress(&self) -> Result<bool> {
        self.core.hub().request_progress();
        Ok(true)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let core = self.core.clone();
        blocking(move || core.compact(revision)).await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.core.compacted())
    }

    async fn health(&self) -> Result<()> {
        self.core.db()?.get(layout::META_COMPACT).map(|_| ()).map_err(sled_error)
    }

    async fn space(&self) -> Result<apistore::kv::SpaceStatus> {
        let core = self.core.clone();
        blocking(move || Ok(core.space_status())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A durable write, published (what `write_durably` does, synchronously).
    fn put(core: &Core, key: &str, value: &'static [u8], expected: Revision) -> Revision {
        let mutation = Mutation::Put { value: Bytes::from_static(value), expires_at_ms: 0 };
        match core.write(key, Some(expected), mutation).expect("write") {
            TxnOutcome::Succeeded { revision } => {
                core.flush_blocking().expect("flush");
                revision
            }
            failed => panic!("write failed: {failed:?}"),
        }
    }

    fn delete(core: &Core, key: &str, expected: Revision) {
        match core.write(key, Some(expected), Mutation::Delete).expect("delete") {
            TxnOutcome::Succeeded { .. } => core.flush_blocking().expect("flush"),
            failed => panic!("{failed:?}"),
        }
    }

    #[test]
    fn a_write_is_visible_only_once_flushed() {
        let core = Core::open(SledOptions::temporary()).expect("open");
        let before = core.current();
        let mutation = Mutation::Put { value: Bytes::from_static(b"v"), expires_at_ms: 0 };
        let written = match core.write("/a", Some(0), mutation).expect("write") {
            TxnOutcome::Succeeded { revision } => revision,
            failed => panic!("{failed:?}"),
        };
        assert_eq!(core.current(), before, "applied, not yet durable: not published");
        assert!(core.get("/a", 0).expect("get").kv.is_none(), "readers do not see it yet");
        let again = Mutation::Put { value: Bytes::from_static(b"w"), expires_at_ms: 0 };
        let conflict = core.write("/a", Some(0), again).expect("compare");
        assert!(
            matches!(&conflict, TxnOutcome::Failed { current: Some(kv), .. } if kv.mod_revision == written),
            "writers compare against the applied version: {conflict:?}"
        );
        core.flush_blocking().expect("flush");
        assert_eq!(core.current(), written);
        assert_eq!(core.get("/a", 0).expect("get").kv.expect("published").value.as_ref(), b"v");
    }

    #[test]
    fn open_rebuilds_the_key_index_from_the_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (first, second, b) = {
            let core = Core::open(SledOptions::new(dir.path())).expect("open");
            let first = put(&core, "/a", b"1", 0);
            let second = put(&core, "/a", b"2", first);
            let b = put(&core, "/b", b"b", 0);
            delete(&core, "/b", b);
            (first, second, b)
        };
        let core = Core::open(SledOptions::new(dir.path())).expect("reopen");
        let kv = core.get("/a", 0).expect("get").kv.expect("a");
        assert_eq!((kv.value.as_ref(), kv.mod_revision, kv.version, kv.create_revision), (&b"2"[..], second, 2, first));
        assert_eq!(core.get("/a", first).expect("get at first").kv.expect("a").value.as_ref(), b"1");
        assert!(core.get("/b", 0).expect("get b").kv.is_none());
        assert_eq!(core.get("/b", b).expect("get b then").kv.expect("b").value.as_ref(), b"b");
        assert_eq!(put(&core, "/a", b"3", second), b + 2);
    }

    #[test]
    fn open_restores_a_ttl_entry_a_crash_cut_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deadline = {
            let core = Core::open(SledOptions::new(dir.path())).expect("open");
            let deadline = now_ms() + 60_000;
            let mutation = Mutation::Put { value: Bytes::from_static(b"v"), expires_at_ms: deadline };
            assert!(matches!(core.write("/t", Some(0), mutation), Ok(TxnOutcome::Succeeded { .. })));
            core.db().expect("live").remove(layout::expiry_key(deadline, b"/t")).expect("simulate the cut");
            assert_eq!(core.expire_due(deadline + 1).expect("sweep"), 0, "no TTL entry, nothing expires");
            deadline
        };
        let core = Core::open(SledOptions::new(dir.path())).expect("reopen");
        assert_eq!(core.expire_due(deadline + 1).expect("sweep"), 1, "the TTL entry was restored");
        assert!(core.get("/t", 0).expect("get").kv.is_none());
    }

    fn history_revisions(core: &Core) -> Vec<u64> {
        core.db()
            .expect("live")
            .range(layout::history_key(0)..layout::history_key(u64::MAX))
            .keys()
            .map(|k| layout::be_u64(&k.expect("key")[1..]).expect("rev"))
            .collect()
    }

    #[test]
    fn log_replay_stores_nothing_at_or_below_the_compaction_point_or_the_packed_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let core = Core::open(SledOptions { compaction_window: 0, ..SledOptions::new(dir.path()) }).expect("open");
        let a1 = put(&core, "/a", b"1", 0);
        let a2 = put(&core, "/a", b"2", a1);
        let a3 = put(&core, "/a", b"3", a2);
        let record_of = |revision: Revision| -> Vec<u8> {
            let db = core.db().expect("live");
            let raw = db.history(revision).expect("read").expect("retained");
            raw.to_vec()
        };
        let (raw1, raw3) = (record_of(a1), record_of(a3));
        core.compact(a3).expect("compact");
        assert_eq!(history_revisions(&core), vec![a2, a3], "a1 compacted away");
        let db = core.db().expect("live");
        let replay = |revision, raw: &[u8]| {
            replay_record(&db, core.compacted(), wal::Record { revision, old_expiry: 0, event: raw }).expect("replay")
        };
        assert!(!replay(a1, &raw1), "below the compaction point: skipped");
        assert!(!replay(a3, &raw3), "at the compaction point: skipped");
        assert_eq!(history_revisions(&core), vec![a2, a3], "nothing compacted came back");
        let a4 = put(&core, "/a", b"4", a3);
        let raw4 = record_of(a4);
        assert!(replay(a4, &raw4), "above it: stored (the same bytes again)");
        drop(db);
        // After a rewrite everything retained is packed: below its last revision, skipped.
        core.rewrite().expect("rewrite").expect("rewritten");
        let db = core.db().expect("live");
        assert!(db.packed.last_revision() >= a4);
        let stored = replay_record(&db, 0, wal::Record { revision: a4, old_expiry: 0, event: &raw4 }).expect("replay");
        assert!(!stored && history_revisions(&core).is_empty(), "packed revisions stay out of the sled tree");
    }

    #[test]
    fn compaction_removes_superseded_versions_and_tombstones_from_disk() {
        let core = Core::open(SledOptions::temporary()).expect("open");
        let a1 = put(&core, "/a", b"1", 0);
        let a2 = put(&core, "/a", b"2", a1);
        let b1 = put(&core, "/b", b"1", 0);
        delete(&core, "/b", b1);
        let a3 = put(&core, "/a", b"3", a2);
        let live = core.index.read().expect("index").live_bytes();
        assert_eq!(core.live_bytes.load(Ordering::SeqCst), live, "the writer tracks the live bytes");
        let a3_bytes = core.index.read().expect("index").at(b"/a", a3).expect("a3").1.bytes;
        assert_eq!(live, u64::from(a3_bytes), "only /a is live, at a3");
        core.compact(a3).expect("compact");
        // Kept: /a's newest version below the compaction point (a2, the prev of a3) and a3.
        let history: Vec<u64> = core
            .db()
            .expect("live")
            .range(layout::history_key(0)..layout::history_key(u64::MAX))
            .keys()
            .map(|k| layout::be_u64(&k.expect("key")[1..]).expect("rev"))
            .collect();
        assert_eq!(history, vec![a2, a3]);
        let index = core.index.read().expect("index");
        assert_eq!((index.versions_of(b"/a"), index.versions_of(b"/b")), (2, 0));
        drop(index);
        assert_eq!(core.get("/a", a3).expect("get").kv.expect("a").value.as_ref(), b"3");
    }
}
