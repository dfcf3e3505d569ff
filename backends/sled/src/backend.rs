//! [`SledBackend`]: the [`KvBackend`] contract on one sled tree (see [`crate::layout`]).
//!
//! * **One writer at a time.** Writes take the writer lock, allocate the next revision, insert
//!   the history entry (key, metadata, value), then the per-key index entry (and TTL index
//!   changes), and publish the event to watchers, all in revision order. Plain inserts, not a
//!   sled `Batch` (which costs about four inserts): the history is the source of truth and
//!   [`Core::open`] re-derives index entries a crash left missing (see [`crate::layout`]). The lock is held for microseconds; durable
//!   writers wait for their flush *after* releasing it, so they share flushes (group commit,
//!   see [`crate::flusher`]).
//! * **Revisions never repeat.** A small ceiling file next to the database records a revision
//!   no revision handed out exceeds; it is raised (written and fsynced) before a revision
//!   above it becomes visible, in steps of [`CEILING_STEP`]. On open the current revision is
//!   the maximum of the history and the ceiling, so after `kill -9` the counter jumps forward
//!   by at most one step and never reuses a revision anyone may have seen (an unflushed write
//!   may be lost in [`Durability::Periodic`] mode, its revision is not reused).
//! * **An in-memory index of each key's latest version** (like etcd's `treeIndex`): point
//!   reads and the comparison of a conditional write find the latest revision of a key
//!   without touching the disk index; it is rebuilt from the disk index on open and costs
//!   about the key's length plus 48 bytes per key (deleted keys until compaction).
//! * **Consistent reads without a lock.** Every read, latest included, is a read *at* a
//!   revision (the current one for a latest read): it takes each key's newest version at or
//!   below that revision, so writes running concurrently (always at higher revisions) are
//!   invisible to it.
//! * **Blocking work off the async workers.** Point reads and writes are in-memory sled
//!   operations of a few microseconds and run inline; fsyncs run on the flusher thread;
//!   ranges, watch replay and compaction run on tokio's blocking pool; TTL expiry and
//!   background compaction run on a maintenance thread.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apistore::kv::{
    Capabilities, GetResponse, KeyValue, KvBackend, RangeRequest, RangeResponse, Revision, TxnOutcome, WatchEvent,
    WatchRequest, WatchStream,
};
use apistore::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;

use crate::flusher::Flusher;
use crate::layout::{self, Version};
use crate::options::{Durability, SledOptions};
use crate::watch::{self, Hub};

/// How far the revision ceiling is raised at a time (the largest forward jump of the
/// revision counter after a crash).
pub const CEILING_STEP: u64 = 10_000;

/// Name of the revision ceiling file inside the database directory.
pub const CEILING_FILE: &str = "apistore-revision-ceiling";

/// Most history entries removed per compaction batch.
const COMPACTION_CHUNK: usize = 1_000;

fn sled_error(e: sled::Error) -> Error {
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

/// A key's latest version (live or tombstone), kept in memory.
#[derive(Clone, Copy, Debug)]
struct Latest {
    mod_revision: Revision,
    live: bool,
    create_revision: Revision,
    version: u64,
    expires_at_ms: u64,
}

impl Latest {
    fn of(revision: Revision, version: &Version) -> Self {
        Latest {
            mod_revision: revision,
            live: version.live,
            create_revision: version.create_revision,
            version: version.version,
            expires_at_ms: version.expires_at_ms,
        }
    }
}

/// The shared state of an open backend (held by the backend, its maintenance thread and its
/// watch streams).
pub(crate) struct Core {
    db: sled::Db,
    options: SledOptions,
    ceiling_path: Option<PathBuf>,
    writer: Mutex<WriterState>,
    /// Latest version of every key with a version on disk (tombstones until compaction).
    /// Changed only by the writer (before publishing) and by compaction.
    latest: RwLock<HashMap<Vec<u8>, Latest>>,
    /// The latest published revision.
    current: AtomicU64,
    /// The compaction revision.
    compact: AtomicU64,
    compaction: Mutex<()>,
    hub: Hub,
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
        let mut config = sled::Config::new().cache_capacity(options.cache_capacity).flush_every_ms(flush_every);
        config = if options.temporary { config.temporary(true) } else { config.path(&options.path) };
        let db = config
            .open()
            .map_err(|e| Error::unavailable(format!("cannot open sled database at {}: {e}", options.path.display())))?;
        let ceiling_path = (!options.temporary).then(|| options.path.join(CEILING_FILE));
        let ceiling = match &ceiling_path {
            Some(path) => read_ceiling(path)?,
            None => 0,
        };
        let compact = meta(&db, layout::META_COMPACT)?;
        let last_history = db
            .range(layout::history_key(0)..layout::history_key(u64::MAX))
            .next_back()
            .transpose()
            .map_err(sled_error)?
            .map(|(k, _)| layout::be_u64(&k[1..]))
            .transpose()?
            .unwrap_or(0);
        let current = 1.max(last_history).max(compact).max(ceiling);
        let flusher = match options.durability {
            Durability::Immediate => Some(Flusher::start(db.clone())?),
            Durability::Periodic(_) => None,
        };
        let core = Core {
            db,
            ceiling_path,
            writer: Mutex::new(WriterState { ceiling }),
            latest: RwLock::new(HashMap::new()),
            current: AtomicU64::new(current),
            compact: AtomicU64::new(compact),
            compaction: Mutex::new(()),
            hub: Hub::default(),
            flusher,
            options,
        };
        // Repair what a crash may have cut, and finish an interrupted compaction.
        let repaired = core.repair_index(last_history, compact)?;
        if repaired > 0 {
            tracing::info!(repaired, "sled backend: re-derived index entries from the history after a crash");
        }
        core.remove_compacted_history(compact)?;
        core.load_latest()?;
        Ok(core)
    }

    /// Builds the in-memory latest index from the disk index (keys sort together, revisions
    /// ascending: the last entry of each key is its latest).
    fn load_latest(&self) -> Result<()> {
        let mut latest = HashMap::new();
        for entry in self.db.range(vec![layout::VERSIONS]..vec![layout::VERSIONS + 1]) {
            let (raw_key, raw) = entry.map_err(sled_error)?;
            let (key, revision) = layout::parse_version_key(&raw_key)?;
            latest.insert(key.to_vec(), Latest::of(revision, &Version::decode(&raw)?));
        }
        *self.latest.write().unwrap_or_else(|e| e.into_inner()) = latest;
        Ok(())
    }

    fn latest_of(&self, key: &[u8]) -> Option<Latest> {
        self.latest.read().unwrap_or_else(|e| e.into_inner()).get(key).copied()
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
        let Some(raw) = self.db.get(layout::history_key(revision)).map_err(sled_error)? else { return Ok(None) };
        let (stored_key, version) = layout::decode_event(&raw)?;
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
    /// with the revision it was written at; the version's value is not loaded.
    /// `Revision::MAX` = the latest version.
    fn live_at(&self, key: &[u8], revision: Revision) -> Result<Option<(Revision, Version)>> {
        let found = self
            .db
            .range(layout::version_key(key, 0)..=layout::version_key(key, revision))
            .next_back()
            .transpose()
            .map_err(sled_error)?;
        let Some((raw_key, raw)) = found else { return Ok(None) };
        let (_, at) = layout::parse_version_key(&raw_key)?;
        let version = Version::decode(&raw)?;
        Ok(version.live.then_some((at, version)))
    }

    /// The value of `key` as of `revision` (MVCC read).
    fn get_at(&self, key: &[u8], revision: Revision) -> Result<Option<KeyValue>> {
        match self.live_at(key, revision)? {
            Some((at, _)) => self.kv_of(key, at, revision).map(Some),
            None => Ok(None),
        }
    }

    fn get_latest(&self, key: &[u8]) -> Result<GetResponse> {
        let at = self.current();
        let kv = match self.latest_of(key) {
            None => None,
            Some(latest) if latest.mod_revision <= at => match latest.live {
                true => Some(self.kv_of(key, latest.mod_revision, at)?),
                false => None,
            },
            // A write above `at` is being published right now: read as of `at`.
            Some(_) => self.get_at(key, at)?,
        };
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

    fn bounds(prefix: u8, start: &str, end: &str) -> (Vec<u8>, Vec<u8>) {
        let mut low = vec![prefix];
        low.extend_from_slice(start.as_bytes());
        let high = if end.is_empty() {
            vec![prefix + 1]
        } else {
            let mut high = vec![prefix];
            high.extend_from_slice(end.as_bytes());
            high
        };
        (low, high)
    }

    fn wants_more(request: &RangeRequest, returned: usize) -> bool {
        !request.count_only && (request.limit == 0 || (returned as u64) < request.limit)
    }

    fn range_at(&self, request: &RangeRequest, revision: Revision) -> Result<RangeResponse> {
        // Version keys are `key \0 rev`: a bound containing NUL (e.g. `key\0` = "just after
        // key") is cut at the NUL and the keys are filtered exactly below.
        let cut = |bound: &str| bound.split('\0').next().unwrap_or_default().to_owned();
        let (low, mut high) = Self::bounds(layout::VERSIONS, &cut(&request.start), &cut(&request.end));
        if request.end.contains('\0') {
            high.push(1);
        }
        let mut kvs = Vec::new();
        let mut count = 0u64;
        // The newest version at or below `revision` of the key being walked.
        let mut best: Option<(sled::IVec, Revision, sled::IVec)> = None;
        let mut finish = |best: Option<(sled::IVec, Revision, sled::IVec)>, kvs: &mut Vec<KeyValue>| -> Result<()> {
            if let Some((raw_key, at, raw)) = best {
                if Version::decode(&raw)?.live {
                    count += 1;
                    if Self::wants_more(request, kvs.len()) {
                        let (key, _) = layout::parse_version_key(&raw_key)?;
                        kvs.push(self.kv_of(key, at, revision)?);
                    }
                }
            }
            Ok(())
        };
        if low < high {
            for entry in self.db.range(low..high) {
                let (raw_key, raw) = entry.map_err(sled_error)?;
                let (key, at) = layout::parse_version_key(&raw_key)?;
                if key < request.start.as_bytes() || (!request.end.is_empty() && key >= request.end.as_bytes()) {
                    continue;
                }
                let same_key =
                    best.as_ref().is_some_and(|(k, _, _)| k.len() == raw_key.len() && k[1..k.len() - 9] == *key);
                if !same_key {
                    finish(best.take(), &mut kvs)?;
                }
                if at <= revision {
                    best = Some((raw_key, at, raw));
                } else if !same_key {
                    // Only versions newer than `revision` so far: the key did not exist then.
                    best = None;
                }
            }
        }
        finish(best.take(), &mut kvs)?;
        let more = !request.count_only && count > kvs.len() as u64;
        Ok(RangeResponse { kvs, count, more, revision })
    }

    /// Allocates the next revision, raising the durable ceiling first when needed.
    fn next_revision(&self, writer: &mut WriterState) -> Result<Revision> {
        let revision = self.current() + 1;
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
    /// (`None` = unconditional, for TTL expiry). Synchronous and short; durability is the
    /// caller's (see [`Core::commit`]).
    fn write(&self, key: &str, expected: Option<Revision>, mutation: Mutation) -> Result<TxnOutcome> {
        layout::check_key(key)?;
        let key_bytes = key.as_bytes();
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let latest = self.latest_of(key_bytes).filter(|l| l.live);
        let holds = match (expected, &latest) {
            (None, _) => true,
            (Some(0), None) => matches!(mutation, Mutation::Put { .. }),
            (Some(expected), Some(latest)) => latest.mod_revision == expected,
            (Some(_), None) => false,
        };
        if !holds {
            let current = match latest {
                Some(latest) => Some(self.kv_of(key_bytes, latest.mod_revision, latest.mod_revision)?),
                None => None,
            };
            return Ok(TxnOutcome::Failed { current, revision: self.current() });
        }
        if latest.is_none() && matches!(mutation, Mutation::Delete) {
            return Ok(TxnOutcome::Failed { current: None, revision: self.current() });
        }
        let revision = self.next_revision(&mut writer)?;
        let prev_revision = latest.map_or(0, |l| l.mod_revision);
        let (stored, event_value) = match &mutation {
            Mutation::Put { value, expires_at_ms } => {
                let (create_revision, version) = match &latest {
                    Some(old) => (old.create_revision, old.version + 1),
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
        let old_expiry = latest.map_or(0, |l| l.expires_at_ms);
        if let Err(e) = self.apply(key_bytes, revision, &stored, old_expiry) {
            // Best effort: leave no half-written revision behind (it will be reused).
            let _ = self.db.remove(layout::version_key(key_bytes, revision));
            let _ = self.db.remove(layout::history_key(revision));
            return Err(e);
        }
        self.latest
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key_bytes.to_vec(), Latest::of(revision, &stored));
        self.hub.publish(&self.current, revision, key, || {
            let prev = if prev_revision == 0 { None } else { self.kv_at_exact(key_bytes, prev_revision)? };
            Ok(match event_value {
                Some((create_revision, version, value)) => WatchEvent::Put {
                    kv: KeyValue { key: key.to_owned(), value, create_revision, mod_revision: revision, version },
                    prev,
                },
                None => WatchEvent::Delete { key: key.to_owned(), revision, prev },
            })
        })?;
        drop(writer);
        Ok(TxnOutcome::Succeeded { revision })
    }

    /// Stores revision `revision` of `key`: history first (the source of truth), then the
    /// index entry and TTL index changes.
    fn apply(&self, key: &[u8], revision: Revision, stored: &Version, old_expiry: u64) -> Result<()> {
        self.db.insert(layout::history_key(revision), layout::encode_event(key, stored)).map_err(sled_error)?;
        self.db.insert(layout::version_key(key, revision), stored.encode_header()).map_err(sled_error)?;
        if old_expiry != 0 && old_expiry != stored.expires_at_ms {
            self.db.remove(layout::expiry_key(old_expiry, key)).map_err(sled_error)?;
        }
        if stored.expires_at_ms != 0 {
            self.db.insert(layout::expiry_key(stored.expires_at_ms, key), &[][..]).map_err(sled_error)?;
        }
        Ok(())
    }

    /// Re-derives index and TTL entries of the last history entries (a crash may have cut a
    /// write between its history and index inserts). Returns how many were repaired.
    fn repair_index(&self, last: Revision, compacted: Revision) -> Result<usize> {
        let from = last.saturating_sub(CEILING_STEP).max(compacted);
        let mut repaired = 0;
        for entry in self.db.range(layout::history_key(from)..=layout::history_key(last)) {
            let (raw_rev, raw) = entry.map_err(sled_error)?;
            let revision = layout::be_u64(&raw_rev[1..])?;
            let (key, version) = layout::decode_event(&raw)?;
            let index = layout::version_key(key, revision);
            if !self.db.contains_key(&index).map_err(sled_error)? {
                self.db.insert(index, version.encode_header()).map_err(sled_error)?;
                if version.expires_at_ms != 0 {
                    self.db.insert(layout::expiry_key(version.expires_at_ms, key), &[][..]).map_err(sled_error)?;
                }
                repaired += 1;
            }
        }
        Ok(repaired)
    }

    /// Applies a conditional write and makes it durable according to the durability
    /// setting (durable writers share flushes, see [`crate::flusher`]).
    async fn write_durably(&self, key: &str, expected: Revision, mutation: Mutation) -> Result<TxnOutcome> {
        let Some(flusher) = &self.flusher else { return self.write(key, Some(expected), mutation) };
        let committing = flusher.committing();
        let outcome = self.write(key, Some(expected), mutation)?;
        if let TxnOutcome::Succeeded { .. } = outcome {
            flusher.flush(Some(committing)).await?;
        }
        Ok(outcome)
    }

    fn flush_blocking(&self) -> Result<()> {
        if self.flusher.is_some() {
            self.db.flush().map_err(sled_error)?;
        }
        Ok(())
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
        for entry in self.db.range(layout::history_key(from)..=layout::history_key(until)) {
            let (raw_rev, raw) = entry.map_err(sled_error)?;
            let revision = layout::be_u64(&raw_rev[1..])?;
            scanned += 1;
            let (raw_key, version) = layout::decode_event(&raw)?;
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
        self.db.insert(layout::META_COMPACT, &revision.to_be_bytes()).map_err(sled_error)?;
        self.flush_blocking()?;
        self.compact.store(revision, Ordering::SeqCst);
        self.remove_compacted_history(revision)
    }

    /// Physically removes what compaction at `revision` made unreachable: per key written
    /// below `revision`, every version (index and history entry) older than its newest version
    /// below `revision` (kept: reads at `revision` and the previous value of the event at
    /// `revision` need it), and that newest one too when it is a tombstone. Resumable after a
    /// crash (progress is recorded in the same batch).
    fn remove_compacted_history(&self, revision: Revision) -> Result<()> {
        let mut through = meta(&self.db, layout::META_COMPACTED_THROUGH)?;
        while through < revision {
            let mut keys = BTreeSet::new();
            let mut last = None;
            for entry in
                self.db.range(layout::history_key(through)..layout::history_key(revision)).take(COMPACTION_CHUNK)
            {
                let (raw_rev, raw) = entry.map_err(sled_error)?;
                last = Some(layout::be_u64(&raw_rev[1..])?);
                keys.insert(layout::decode_event(&raw)?.0.to_vec());
            }
            let next_through = last.map_or(revision, |last| last + 1);
            let mut batch = sled::Batch::default();
            let mut forgotten = Vec::new();
            for key in keys {
                let versions: Vec<(sled::IVec, sled::IVec)> = self
                    .db
                    .range(layout::version_key(&key, 0)..=layout::version_key(&key, revision - 1))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(sled_error)?;
                if let Some(((newest_key, newest), older)) = versions.split_last() {
                    let mut remove = |index_key: &sled::IVec| -> Result<()> {
                        let (_, at) = layout::parse_version_key(index_key)?;
                        batch.remove(index_key.clone());
                        batch.remove(&layout::history_key(at));
                        Ok(())
                    };
                    for (old_key, _) in older {
                        remove(old_key)?;
                    }
                    if !Version::decode(newest)?.live {
                        remove(newest_key)?;
                        let (_, at) = layout::parse_version_key(newest_key)?;
                        forgotten.push((key.clone(), at));
                    }
                }
            }
            batch.insert(layout::META_COMPACTED_THROUGH, &next_through.to_be_bytes()[..]);
            self.db.apply_batch(batch).map_err(sled_error)?;
            let mut latest = self.latest.write().unwrap_or_else(|e| e.into_inner());
            for (key, tombstone) in forgotten {
                if latest.get(&key).is_some_and(|l| l.mod_revision == tombstone) {
                    latest.remove(&key);
                }
            }
            drop(latest);
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
            self.db.range(low..high).keys().collect::<std::result::Result<_, _>>().map_err(sled_error)?;
        let mut expired = 0;
        for raw in due {
            let (deadline, key) = layout::parse_expiry_key(&raw)?;
            if deadline > now_ms {
                continue;
            }
            let key = layout::key_string(key)?;
            let still_due = self.latest_of(key.as_bytes()).is_some_and(|l| l.live && l.expires_at_ms == deadline);
            if still_due {
                if let TxnOutcome::Succeeded { .. } = self.write(&key, None, Mutation::Delete)? {
                    expired += 1;
                }
            } else {
                self.db.remove(&raw).map_err(sled_error)?; // stale index entry
            }
        }
        if expired > 0 {
            self.flush_blocking()?;
        }
        Ok(expired)
    }

    /// One round of background work: TTL expiry, and compaction when due.
    fn maintain(&self, compaction_due: bool) {
        if let Err(e) = self.expire_due(now_ms()) {
            tracing::warn!(error = %e, "sled backend: TTL expiry failed");
        }
        let window = self.options.compaction_window;
        if compaction_due && window > 0 {
            let target = self.current().saturating_sub(window);
            if target > self.compacted() {
                if let Err(e) = self.compact(target) {
                    tracing::warn!(error = %e, revision = target, "sled backend: background compaction failed");
                }
            }
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // A clean close: everything durable, and the ceiling equal to the current revision so
        // the next open continues exactly where this one stopped.
        self.flusher.take();
        if self.db.flush().is_ok() {
            if let Some(path) = &self.ceiling_path {
                if let Err(e) = write_ceiling(path, self.current()) {
                    tracing::warn!(error = %e, "sled backend: cannot record the revision ceiling on close");
                }
            }
        }
    }
}

fn meta(db: &sled::Db, name: &[u8]) -> Result<u64> {
    match db.get(name).map_err(sled_error)? {
        Some(raw) => layout::be_u64(&raw),
        None => Ok(0),
    }
}

fn read_ceiling(path: &PathBuf) -> Result<Revision> {
    match fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            Error::internal(format!("sled backend: corrupt revision ceiling file {}: {text:?}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::unavailable(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Writes the ceiling durably: temp file, fsync, rename, fsync of the directory.
fn write_ceiling(path: &PathBuf, ceiling: Revision) -> Result<()> {
    let io = |e: std::io::Error| Error::unavailable(format!("cannot write {}: {e}", path.display()));
    let temp = path.with_extension("tmp");
    let mut file = fs::File::create(&temp).map_err(io)?;
    file.write_all(ceiling.to_string().as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&temp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
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
        blocking(move || core.db.flush().map(|_| ()).map_err(sled_error)).await
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
        Capabilities { progress_notify: true, ttl: true, max_value_size: None }
    }

    async fn get(&self, key: &str, revision: Revision) -> Result<GetResponse> {
        self.core.get(key, revision)
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        let core = self.core.clone();
        blocking(move || core.range(&request)).await
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

    async fn compact(&self, revision: Revision) -> Result<()> {
        let core = self.core.clone();
        blocking(move || core.compact(revision)).await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.core.compacted())
    }

    async fn health(&self) -> Result<()> {
        self.core.db.get(layout::META_COMPACT).map(|_| ()).map_err(sled_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(core: &Core, key: &str, value: &'static [u8], expected: Revision) -> Revision {
        let mutation = Mutation::Put { value: Bytes::from_static(value), expires_at_ms: 0 };
        match core.write(key, Some(expected), mutation).expect("write") {
            TxnOutcome::Succeeded { revision } => revision,
            failed => panic!("write failed: {failed:?}"),
        }
    }

    #[test]
    fn open_re_derives_index_entries_a_crash_cut_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (first, second) = {
            let core = Core::open(SledOptions::new(dir.path())).expect("open");
            let first = put(&core, "/a", b"1", 0);
            let second = put(&core, "/a", b"2", first);
            // Simulate a crash between the history insert and the index insert of `second`.
            core.db.remove(layout::version_key(b"/a", second)).expect("remove index entry");
            assert_eq!(core.get("/a", second).expect("get").kv.expect("a").mod_revision, first, "index cut");
            (first, second)
        };
        let core = Core::open(SledOptions::new(dir.path())).expect("reopen");
        let kv = core.get("/a", 0).expect("get").kv.expect("a");
        assert_eq!((kv.value.as_ref(), kv.mod_revision, kv.version), (&b"2"[..], second, 2));
        assert_eq!(core.get("/a", first).expect("get at first").kv.expect("a").value.as_ref(), b"1");
        assert_eq!(put(&core, "/a", b"3", second), second + 1);
    }

    #[test]
    fn compaction_removes_superseded_versions_and_tombstones_from_disk() {
        let core = Core::open(SledOptions::temporary()).expect("open");
        let a1 = put(&core, "/a", b"1", 0);
        let a2 = put(&core, "/a", b"2", a1);
        let b1 = put(&core, "/b", b"1", 0);
        let gone = match core.write("/b", Some(b1), Mutation::Delete).expect("delete") {
            TxnOutcome::Succeeded { revision } => revision,
            failed => panic!("{failed:?}"),
        };
        let a3 = put(&core, "/a", b"3", a2);
        core.compact(a3).expect("compact");
        // Kept: /a's newest version below the compaction point (a2, the prev of a3) and a3.
        let history: Vec<u64> = core
            .db
            .range(layout::history_key(0)..layout::history_key(u64::MAX))
            .keys()
            .map(|k| layout::be_u64(&k.expect("key")[1..]).expect("rev"))
            .collect();
        assert_eq!(history, vec![a2, a3]);
        assert!(core.get_version_count(b"/b") == 0 && core.get_version_count(b"/a") == 2, "{gone}");
        assert_eq!(core.get("/a", a3).expect("get").kv.expect("a").value.as_ref(), b"3");
    }

    impl Core {
        fn get_version_count(&self, key: &[u8]) -> usize {
            self.db.range(layout::version_key(key, 0)..=layout::version_key(key, u64::MAX)).count()
        }
    }
}
