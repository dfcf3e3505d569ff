//! [`SledBackend`]: the [`KvBackend`] contract on one sled tree (see [`crate::layout`]).
//!
//! * **One writer at a time.** Writes take the writer lock, allocate the next revision, apply
//!   one atomic sled batch (latest record, version, history entry, TTL index) and publish the
//!   event to watchers, all in revision order. The lock is held for microseconds; durable
//!   writers wait for their flush *after* releasing it, so they share flushes (group commit,
//!   see [`crate::flusher`]).
//! * **Revisions never repeat.** A small ceiling file next to the database records a revision
//!   no revision handed out exceeds; it is raised (written and fsynced) before a revision
//!   above it becomes visible, in steps of [`CEILING_STEP`]. On open the current revision is
//!   the maximum of the history and the ceiling, so after `kill -9` the counter jumps forward
//!   by at most one step and never reuses a revision anyone may have seen (an unflushed write
//!   may be lost in [`Durability::Periodic`] mode, its revision is not reused).
//! * **Consistent latest reads without a lock.** A latest range scans the live keys and checks
//!   that no write started meanwhile (a sequence check); if one did, it re-reads at the
//!   revision it started at from the version space, which never changes for old revisions.
//! * **Blocking work off the async workers.** Point reads and writes are in-memory sled
//!   operations of a few microseconds and run inline; fsyncs run on the flusher thread;
//!   ranges, watch replay and compaction run on tokio's blocking pool; TTL expiry and
//!   background compaction run on a maintenance thread.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
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
use crate::layout::{self, Latest, Version};
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

/// The shared state of an open backend (held by the backend, its maintenance thread and its
/// watch streams).
pub(crate) struct Core {
    db: sled::Db,
    options: SledOptions,
    ceiling_path: Option<PathBuf>,
    writer: Mutex<WriterState>,
    /// The latest published revision.
    current: AtomicU64,
    /// The revision of the write in progress (== `current` when no write is in flight).
    pending: AtomicU64,
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
            current: AtomicU64::new(current),
            pending: AtomicU64::new(current),
            compact: AtomicU64::new(compact),
            compaction: Mutex::new(()),
            hub: Hub::default(),
            flusher,
            options,
        };
        // Finish a compaction a crash interrupted.
        core.remove_compacted_history(compact)?;
        Ok(core)
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

    fn get_latest_record(&self, key: &[u8]) -> Result<Option<Latest>> {
        self.db.get(layout::latest_key(key)).map_err(sled_error)?.map(|raw| Latest::decode(&raw)).transpose()
    }

    fn get_version(&self, key: &[u8], revision: Revision) -> Result<Option<Version>> {
        self.db
            .get(layout::version_key(key, revision))
            .map_err(sled_error)?
            .map(|raw| Version::decode(&raw))
            .transpose()
    }

    /// The key-value of `key`'s version written at `revision`, if it is a live version.
    fn kv_at_exact(&self, key: &[u8], revision: Revision) -> Result<Option<KeyValue>> {
        match self.get_version(key, revision)? {
            Some(version) => version.into_kv(key, revision),
            None => Ok(None),
        }
    }

    /// The latest value of `key`.
    fn get_latest(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        // A concurrent write plus a compaction may remove the version the latest record
        // pointed to between the two reads; the record then moved on, so read again.
        for _ in 0..16 {
            let Some(latest) = self.get_latest_record(key)? else { return Ok(None) };
            if let Some(version) = self.get_version(key, latest.mod_revision)? {
                return version.into_kv(key, latest.mod_revision);
            }
        }
        Err(Error::unavailable("sled backend: key changed too often during a read, retry"))
    }

    /// The value of `key` as of `revision` (MVCC read).
    fn get_at(&self, key: &[u8], revision: Revision) -> Result<Option<KeyValue>> {
        let found = self
            .db
            .range(layout::version_key(key, 0)..=layout::version_key(key, revision))
            .next_back()
            .transpose()
            .map_err(sled_error)?;
        match found {
            Some((raw_key, raw)) => {
                let (_, at) = layout::parse_version_key(&raw_key)?;
                Version::decode(&raw)?.into_kv(key, at)
            }
            None => Ok(None),
        }
    }

    fn get(&self, key: &str, revision: Revision) -> Result<GetResponse> {
        layout::check_key(key)?;
        if revision == 0 {
            let kv = self.get_latest(key.as_bytes())?;
            return Ok(GetResponse { kv, revision: self.current() });
        }
        self.check_read_revision(revision)?;
        let kv = self.get_at(key.as_bytes(), revision)?;
        self.check_read_revision(revision)?; // compaction may have overtaken the read
        Ok(GetResponse { kv, revision: self.current() })
    }

    fn range(&self, request: &RangeRequest) -> Result<RangeResponse> {
        apistore::kv::validate_range(&request.start, &request.end)?;
        if request.revision == 0 {
            let before = self.current();
            if self.pending.load(Ordering::SeqCst) == before {
                let response = self.range_latest(request, before)?;
                if self.pending.load(Ordering::SeqCst) == before {
                    return Ok(response);
                }
            }
            // A write overlapped the scan: read at the revision we started at instead.
            let mut response = self.range_at(request, before)?;
            response.revision = before;
            return Ok(response);
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

    fn range_latest(&self, request: &RangeRequest, revision: Revision) -> Result<RangeResponse> {
        let (low, high) = Self::bounds(layout::LATEST, &request.start, &request.end);
        let mut kvs = Vec::new();
        let mut count = 0u64;
        if low < high {
            for entry in self.db.range(low..high) {
                let (raw_key, raw) = entry.map_err(sled_error)?;
                count += 1;
                if Self::wants_more(request, kvs.len()) {
                    let key = &raw_key[1..];
                    let latest = Latest::decode(&raw)?;
                    let version = self
                        .get_version(key, latest.mod_revision)?
                        .ok_or_else(|| layout::corrupt("missing latest version", key))?;
                    if let Some(kv) = version.into_kv(key, latest.mod_revision)? {
                        kvs.push(kv);
                    }
                }
            }
        }
        let more = !request.count_only && count > kvs.len() as u64;
        Ok(RangeResponse { kvs, count, more, revision })
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
                let version = Version::decode(&raw)?;
                if version.live {
                    count += 1;
                    if Self::wants_more(request, kvs.len()) {
                        let (key, _) = layout::parse_version_key(&raw_key)?;
                        kvs.extend(version.into_kv(key, at)?);
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
        let latest = self.get_latest_record(key_bytes)?;
        let holds = match (expected, latest) {
            (None, _) => true,
            (Some(0), None) => matches!(mutation, Mutation::Put { .. }),
            (Some(expected), Some(latest)) => latest.mod_revision == expected,
            (Some(_), None) => false,
        };
        if !holds {
            let current = match latest {
                Some(latest) => self.kv_at_exact(key_bytes, latest.mod_revision)?,
                None => None,
            };
            return Ok(TxnOutcome::Failed { current, revision: self.current() });
        }
        if latest.is_none() && matches!(mutation, Mutation::Delete) {
            return Ok(TxnOutcome::Failed { current: None, revision: self.current() });
        }
        let revision = self.next_revision(&mut writer)?;
        let prev_revision = latest.map_or(0, |l| l.mod_revision);
        let mut batch = sled::Batch::default();
        batch.insert(&layout::history_key(revision), key_bytes);
        if let Some(old) = latest.filter(|l| l.expires_at_ms != 0) {
            batch.remove(layout::expiry_key(old.expires_at_ms, key_bytes));
        }
        let event_value = match &mutation {
            Mutation::Put { value, expires_at_ms } => {
                let (create_revision, version) = match latest {
                    Some(l) => (l.create_revision, l.version + 1),
                    None => (revision, 1),
                };
                let record = Latest { create_revision, mod_revision: revision, version, expires_at_ms: *expires_at_ms };
                batch.insert(layout::latest_key(key_bytes), &record.encode()[..]);
                let stored = Version { live: true, create_revision, version, prev_revision, value: value.clone() };
                batch.insert(layout::version_key(key_bytes, revision), stored.encode());
                if *expires_at_ms != 0 {
                    batch.insert(layout::expiry_key(*expires_at_ms, key_bytes), &[][..]);
                }
                Some((create_revision, version, value.clone()))
            }
            Mutation::Delete => {
                batch.remove(layout::latest_key(key_bytes));
                let tombstone =
                    Version { live: false, create_revision: 0, version: 0, prev_revision, value: Bytes::new() };
                batch.insert(layout::version_key(key_bytes, revision), tombstone.encode());
                None
            }
        };
        self.pending.store(revision, Ordering::SeqCst);
        let applied = self.db.apply_batch(batch).map_err(sled_error);
        if let Err(e) = applied {
            self.pending.store(self.current(), Ordering::SeqCst);
            return Err(e);
        }
        self.hub.publish(&self.current, revision, || {
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

    /// Makes an applied write durable according to the durability setting.
    async fn commit(&self, outcome: TxnOutcome) -> Result<TxnOutcome> {
        if let (TxnOutcome::Succeeded { .. }, Some(flusher)) = (&outcome, &self.flusher) {
            flusher.flush().await?;
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
            let (raw_rev, raw_key) = entry.map_err(sled_error)?;
            let revision = layout::be_u64(&raw_rev[1..])?;
            scanned += 1;
            let key = layout::key_string(&raw_key)?;
            if watch::in_range(&key, start, end) {
                let version = self
                    .get_version(&raw_key, revision)?
                    .ok_or_else(|| layout::corrupt("history without version", &raw_key))?;
                let prev = match version.prev_revision {
                    0 => None,
                    prev => self.kv_at_exact(&raw_key, prev)?,
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

    /// Physically removes what compaction at `revision` made unreachable: history entries
    /// below it, and per key every version older than its newest version below `revision`
    /// (kept: reads at `revision` and the previous value of the event at `revision` need it),
    /// and that newest one too when it is a tombstone. Resumable after a crash.
    fn remove_compacted_history(&self, revision: Revision) -> Result<()> {
        let mut through = meta(&self.db, layout::META_COMPACTED_THROUGH)?;
        while through < revision {
            let mut batch = sled::Batch::default();
            let mut keys = BTreeSet::new();
            let mut last = through;
            for entry in
                self.db.range(layout::history_key(through)..layout::history_key(revision)).take(COMPACTION_CHUNK)
            {
                let (raw_rev, raw_key) = entry.map_err(sled_error)?;
                last = layout::be_u64(&raw_rev[1..])?;
                batch.remove(raw_rev);
                keys.insert(raw_key);
            }
            let done = keys.is_empty();
            let next_through = if done { revision } else { last + 1 };
            for key in keys {
                let versions: Vec<(sled::IVec, sled::IVec)> = self
                    .db
                    .range(layout::version_key(&key, 0)..=layout::version_key(&key, revision - 1))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(sled_error)?;
                if let Some(((newest_key, newest), older)) = versions.split_last() {
                    for (old_key, _) in older {
                        batch.remove(old_key.clone());
                    }
                    if !Version::decode(newest)?.live {
                        batch.remove(newest_key.clone());
                    }
                }
            }
            batch.insert(layout::META_COMPACTED_THROUGH, &next_through.to_be_bytes()[..]);
            self.db.apply_batch(batch).map_err(sled_error)?;
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
            let still_due = self.get_latest_record(key.as_bytes())?.is_some_and(|l| l.expires_at_ms == deadline);
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
        let outcome = self.core.write(key, Some(expected_mod_revision), mutation)?;
        self.core.commit(outcome).await
    }

    async fn delete(&self, key: &str, expected_mod_revision: Revision) -> Result<TxnOutcome> {
        let outcome = self.core.write(key, Some(expected_mod_revision), Mutation::Delete)?;
        self.core.commit(outcome).await
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
