//! Returning disk space and the space quota.
//!
//! sled 0.34 never shrinks its files: compaction removes history entries, the bytes stay.
//! So maintenance *rewrites*: it copies the retained history (live state plus the retained
//! window, every record upgraded to the checksummed format) into the next generation's
//! packed history file ([`crate::packed`]: exactly the bytes in use, where a fresh sled
//! database would take about 2.5 times them), and the TTL index and the metadata into the
//! next generation's fresh sled database, while reads and writes go on against the live
//! one, catching up on new revisions in rounds. Every fsync of the new generation runs before
//! the writer lock is taken; under it run only the last round (at most about
//! [`TAIL_UNDER_LOCK`] entries, copied into the new sled tree in memory) and the in-memory
//! swap, so writes wait for microseconds of work (measured: [`Reclaimed::under_lock`]). The
//! switch is made durable right after (flush of the new generation, rename of the pointer —
//! the commit point, see [`crate::generation`] — and fsync of the directory) while writes
//! are applied to the new generation; their acknowledgements wait for it. Readers hold the
//! generation of their operation; the old generation is removed once they are done.
//!
//! The bound: the retention policy keeps the bytes in use at most twice the live bytes
//! (see [`SledOptions::history_budget_percent`]) and a rewrite is due at 1.5 times the bytes
//! in use or at 2.75 times the live bytes, whichever comes first, so the directory stays
//! within about three times the live bytes (with 1.5 times the bytes in use alone it could
//! rest at 3.1 times them once the writes stopped: measured after the churn of issue 11).
//!
//! Invariants: the compaction lock is held for the whole rewrite (no history is removed
//! while it is copied); every revision applied before the switch is in the new database
//! and durable there before the pointer names it (the rename follows the flush of the new
//! generation); no write is acknowledged between the in-memory switch and the durable
//! rename; a crash before the rename leaves the old generation live (the partial new one
//! is removed on open), after it the new one.
//!
//! A failed write (sled 0.34 keeps the I/O error of a failed flush, e.g. on a full disk, and
//! refuses every later write until the database is reopened): maintenance probes the disk
//! (a small file written and fsynced) every [`RECOVERY_BACKOFF`]; once that succeeds it
//! rewrites the live generation into the next one (the rewrite reads the failed database's
//! memory, which is complete) and switches to it, so writes resume without a restart. What
//! was acknowledged was durable in the old generation and is copied; a write that failed
//! may or may not be there afterwards (its outcome is unknown, as for a timeout). sled 0.34
//! may refuse some of those reads too, for good (a read that must first finish a tree split
//! or consolidate a page writes, and gets the stored error): when the rewrite fails and the
//! live database refuses a write, it is closed and its generation reopened from disk in a
//! fresh sled handle instead ([`Core::reopen`]; reads and writes get `Unavailable` for that
//! moment), which holds every acknowledged write.
//!
//! The quota (`quota_backend_bytes`, like etcd's `--quota-backend-bytes`): when the data
//! directory reaches it, the NOSPACE alarm is raised and puts are refused with
//! [`Error::NoSpace`]; deletes, reads and compaction go on; the alarm clears itself when a
//! rewrite brought the directory back below the quota.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use apistore::kv::SpaceStatus;

use super::*;
use crate::durable::DurableFiles;
use crate::packed::{Packed, PackedWriter, PACKED_FILE};

/// A rewrite is due when the directory is `REWRITE_FACTOR.0 / REWRITE_FACTOR.1` times the
/// bytes in use (see [`Core::rewrite_due`]).
const REWRITE_FACTOR: (u64, u64) = (3, 2);

/// ... or `LIVE_REWRITE_FACTOR.0 / LIVE_REWRITE_FACTOR.1` times the live bytes.
const LIVE_REWRITE_FACTOR: (u64, u64) = (11, 4);

/// Catch-up rounds run without the writer lock until at most this many history entries are
/// left for the final round under it.
const TAIL_UNDER_LOCK: u64 = 64;

/// How long a rewrite waits for reads still on the old generation before removing it.
const OLD_GENERATION_GRACE: Duration = Duration::from_secs(10);

/// What one rewrite did ([`SledBackend::reclaim_now`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reclaimed {
    /// The generation now live.
    pub generation: u64,
    /// Bytes of the data directory before.
    pub before_bytes: u64,
    /// Bytes of the data directory after (the old generation removed).
    pub after_bytes: u64,
    /// History entries copied.
    pub entries: u64,
    /// How long writes could not be applied: the writer lock held for the final catch-up
    /// round (in memory) and the in-memory switch.
    pub pause: Duration,
    /// What ran while writes could not be applied, step by step (name, time), in order;
    /// their sum is about `pause`.
    pub under_lock: Vec<(&'static str, Duration)>,
    /// What ran after the writer lock was released until the switch was durable (name,
    /// time; empty when a concurrent flush had already done it): writes are applied
    /// meanwhile, their acknowledgements wait for it.
    pub commit: Vec<(&'static str, Duration)>,
    /// When writes could go on again (the end of the pause).
    pub resumed_at: Instant,
}

/// Times consecutive steps ([`Reclaimed::under_lock`], [`Reclaimed::commit`]).
struct Steps {
    last: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl Steps {
    fn start() -> Self {
        Steps { last: Instant::now(), steps: Vec::new() }
    }

    /// Records the time since the previous mark as step `name`.
    fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.steps.push((name, now - self.last));
        self.last = now;
    }
}

/// Space accounting of an open backend.
#[derive(Debug)]
pub(crate) struct SpaceState {
    /// The NOSPACE alarm: puts are refused while it is raised.
    nospace: AtomicBool,
    /// The directory size measured last.
    db_bytes: AtomicU64,
    /// The directory size right after the last rewrite (0: none since open).
    rewritten_bytes: AtomicU64,
    /// The bytes in use right after the last rewrite.
    rewritten_in_use: AtomicU64,
    /// Rewrites since open.
    rewrites: AtomicU64,
    /// The longest writer pause of a rewrite since open, microseconds.
    longest_pause_us: AtomicU64,
    /// A write or flush failed with an I/O error: sled refuses writes until a rewrite
    /// switched to a fresh database.
    io_failed: AtomicBool,
    /// No recovery attempt before this; the backoff after a failed recovery rewrite.
    recovery_after: Mutex<Option<(Instant, Duration)>>,
    /// Recoveries since open.
    recoveries: AtomicU64,
    /// Reopens of the live database since open ([`Core::reopens`]).
    reopens: AtomicU64,
    /// Recovery tries the rewrite from memory first (false: reopens at once; tests).
    recovery_rewrite: AtomicBool,
    /// The last [`KEPT_REWRITES`] rewrites.
    log: Mutex<VecDeque<Reclaimed>>,
}

impl Default for SpaceState {
    fn default() -> Self {
        SpaceState {
            nospace: AtomicBool::default(),
            db_bytes: AtomicU64::default(),
            rewritten_bytes: AtomicU64::default(),
            rewritten_in_use: AtomicU64::default(),
            rewrites: AtomicU64::default(),
            longest_pause_us: AtomicU64::default(),
            io_failed: AtomicBool::default(),
            recovery_after: Mutex::default(),
            recoveries: AtomicU64::default(),
            reopens: AtomicU64::default(),
            recovery_rewrite: AtomicBool::new(true),
            log: Mutex::default(),
        }
    }
}

/// How many rewrites [`SpaceState`] keeps.
const KEPT_REWRITES: usize = 1_000;

/// How often a backend whose writes failed probes the disk and tries to recover.
const RECOVERY_BACKOFF: Duration = Duration::from_millis(500);

/// The longest wait after failed recovery rewrites (the wait doubles after each: a disk
/// with room for the probe but not for the bytes in use is not rewritten in a loop).
const MAX_RECOVERY_BACKOFF: Duration = Duration::from_secs(30);

/// Bytes the disk probe writes (and fsyncs) before a recovery is tried.
const PROBE_BYTES: usize = 1024 * 1024;

/// Name of the probe file in the data directory (removed right after).
const PROBE_FILE: &str = "apistore-space-probe";

/// Writes, fsyncs and removes a probe file of [`PROBE_BYTES`] in `dir`.
fn probe_disk(dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(PROBE_FILE);
    let outcome = std::fs::File::create(&path).and_then(|mut file| {
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        file.sync_data()
    });
    let removed = std::fs::remove_file(&path);
    outcome.and(removed)
}

/// Opens `generation` under the options' path (or a temporary one): its sled database and
/// its packed history (verified).
///
/// Errors: [`Error::Unavailable`] when sled cannot open it; [`Error::Corrupt`] for a damaged
/// packed history.
pub(super) fn open_generation(
    options: &SledOptions,
    generation: u64,
    flush_every_ms: Option<u64>,
) -> Result<generation::Gen> {
    let db = open_db(options, generation, flush_every_ms)?;
    let packed = if options.temporary || generation == 0 {
        Packed::default()
    } else {
        Packed::open(&generation::path_of(&options.path, generation).join(PACKED_FILE))?
    };
    let files = durable_files(options, generation)?;
    Ok(generation::Gen { db, packed, files })
}

/// The files a durable flush of `generation`'s database syncs (None for a temporary one).
fn durable_files(options: &SledOptions, generation: u64) -> Result<Option<DurableFiles>> {
    if options.temporary {
        return Ok(None);
    }
    DurableFiles::open(&generation::path_of(&options.path, generation)).map(Some)
}

/// Opens the sled database of `generation` under the options' path (or a temporary one).
///
/// Errors: [`Error::Unavailable`] when sled cannot open it.
fn open_db(options: &SledOptions, generation: u64, flush_every_ms: Option<u64>) -> Result<sled::Db> {
    let config = sled::Config::new().cache_capacity(options.cache_capacity).flush_every_ms(flush_every_ms);
    let path = generation::path_of(&options.path, generation);
    let config = if options.temporary { config.temporary(true) } else { config.path(&path) };
    super::open_db(&config)
        .map_err(|e| Error::unavailable(format!("cannot open sled database at {}: {e}", path.display())))
}

/// Copies `entries` into `new`, one insert each. Returns how many were copied.
///
/// Not in sled batches: [`sled::Tree::apply_batch`] takes sled 0.34's process-wide
/// concurrency-control lock exclusively, which waits for the background flush of every open
/// sled database (it holds the lock shared across its disk write) while every other sled
/// operation of the process — the writers' inserts included — queues behind it. Measured:
/// an empty batch under the writer lock took up to 7 ms on a loaded disk. `new` is not live
/// before the switch, so the atomicity of a batch is not needed.
fn copy(entries: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>, new: &sled::Db) -> Result<u64> {
    let mut copied = 0;
    for entry in entries {
        let (key, value) = entry.map_err(sled_error)?;
        new.insert(key, value).map_err(sled_error)?;
        copied += 1;
    }
    Ok(copied)
}

impl Core {
    /// Appends the retained history entries of revisions `after + 1 ..= upto` of `old` to
    /// `packed`, each in the checksummed format (entries compaction dropped from the key
    /// index are left behind). Returns how many were copied.
    fn copy_history(
        &self,
        old: &generation::Gen,
        packed: &mut PackedWriter,
        after: Revision,
        upto: Revision,
    ) -> Result<u64> {
        self.for_retained_history(old, after, upto, |revision, _, _, raw| {
            packed.append(revision, &layout::upgrade(revision, raw)?)
        })
    }

    /// Calls `copy(revision, key, version, raw record)` for each history entry of revisions
    /// `after + 1 ..= upto` of `old` that the key index still retains (entries compaction
    /// dropped are left behind). Returns how many were copied.
    fn for_retained_history(
        &self,
        old: &generation::Gen,
        after: Revision,
        upto: Revision,
        mut copy: impl FnMut(Revision, &[u8], &layout::Version, &[u8]) -> Result<()>,
    ) -> Result<u64> {
        if upto <= after {
            return Ok(0);
        }
        let mut copied = 0;
        for entry in old.history_range(after + 1, upto) {
            let (revision, raw) = entry?;
            let (key, version) = layout::decode_event_header(revision, &raw)?;
            if !self.index.read().unwrap_or_else(|e| e.into_inner()).contains(key, revision) {
                continue;
            }
            copy(revision, key, &version, &raw)?;
            copied += 1;
        }
        Ok(copied)
    }
}

impl Core {
    fn flush_every_ms(&self) -> u64 {
        match self.options.durability {
            Durability::Periodic(ms) => ms,
            Durability::Immediate => crate::options::DEFAULT_PERIODIC_FLUSH_MS,
        }
    }

    /// Bytes the backend occupies on disk now: every file of the data directory (all
    /// generations, the pointer and ceiling files).
    pub(super) fn db_bytes(&self) -> u64 {
        if self.options.temporary {
            return self.db().ok().and_then(|db| db.size_on_disk().ok()).unwrap_or(0);
        }
        generation::dir_bytes(&self.options.path)
    }

    /// Fails with [`Error::NoSpace`] while the NOSPACE alarm is raised.
    pub(super) fn refuse_growth(&self) -> Result<()> {
        if !self.space.nospace.load(Ordering::SeqCst) {
            return Ok(());
        }
        Err(Error::NoSpace {
            message: format!(
                "the sled data directory holds {} bytes, quota_backend_bytes is {}; delete objects and compact, \
                 the alarm clears once space is back",
                self.space.db_bytes.load(Ordering::SeqCst),
                self.options.quota_backend_bytes
            ),
        })
    }

    /// Measures the directory and raises or clears the NOSPACE alarm. Returns the size.
    fn update_alarm(&self) -> u64 {
        let db_bytes = self.db_bytes();
        self.space.db_bytes.store(db_bytes, Ordering::SeqCst);
        let quota = self.options.quota_backend_bytes;
        let over = quota > 0 && db_bytes >= quota;
        if self.space.nospace.swap(over, Ordering::SeqCst) != over {
            if over {
                tracing::warn!(db_bytes, quota, "sled backend: NOSPACE alarm raised, puts are refused");
            } else {
                tracing::info!(db_bytes, quota, "sled backend: NOSPACE alarm cleared");
            }
        }
        db_bytes
    }

    /// The space status now (measured, alarm updated).
    pub(super) fn space_status(&self) -> SpaceStatus {
        let db_bytes = self.update_alarm();
        let alarms =
            if self.space.nospace.load(Ordering::SeqCst) { vec![SpaceStatus::NOSPACE.to_owned()] } else { Vec::new() };
        SpaceStatus {
            db_bytes,
            in_use_bytes: self.history_bytes.load(Ordering::SeqCst),
            quota_bytes: self.options.quota_backend_bytes,
            alarms,
        }
    }

    /// True when a rewrite would return enough space: the directory is at least
    /// `reclaim_min_bytes` and more than [`REWRITE_FACTOR`] times the bytes in use or
    /// [`LIVE_REWRITE_FACTOR`] times the live bytes, and the rewrite is expected to return at
    /// least a fifth of it — expected from what the last rewrite cost per byte in use (so a
    /// rewrite is never repeated in vain, and one that
    /// would return space after compaction shrank the bytes in use is never held back).
    /// Under the NOSPACE alarm a tenth above the bytes in use and a twentieth returned are
    /// enough, whatever the size.
    fn rewrite_due(&self, db_bytes: u64) -> bool {
        let min = self.options.reclaim_min_bytes;
        if self.options.temporary || min == 0 {
            return false;
        }
        let in_use = self.history_bytes.load(Ordering::SeqCst).max(1);
        let expected = self.expected_after_rewrite(in_use);
        if self.space.nospace.load(Ordering::SeqCst) {
            db_bytes > in_use + in_use / 10 && expected.saturating_mul(20) < db_bytes.saturating_mul(19)
        } else {
            let live = self.live_bytes.load(Ordering::SeqCst);
            db_bytes >= min
                && (db_bytes * REWRITE_FACTOR.1 > REWRITE_FACTOR.0 * in_use
                    || db_bytes * LIVE_REWRITE_FACTOR.1 > LIVE_REWRITE_FACTOR.0 * live)
                && expected.saturating_mul(5) < db_bytes.saturating_mul(4)
        }
    }

    /// The directory size a rewrite would leave for `in_use` bytes in use: the last rewrite's
    /// ratio of directory to bytes in use applied to `in_use` (the bytes in use themselves
    /// before any rewrite).
    fn expected_after_rewrite(&self, in_use: u64) -> u64 {
        let rewritten = self.space.rewritten_bytes.load(Ordering::SeqCst);
        let rewritten_in_use = self.space.rewritten_in_use.load(Ordering::SeqCst);
        if rewritten == 0 || rewritten_in_use == 0 {
            return in_use;
        }
        (u128::from(in_use) * u128::from(rewritten) / u128::from(rewritten_in_use)) as u64
    }

    /// One round of space maintenance: measure, alarm, rewrite when due.
    pub(super) fn maintain_space(&self) {
        let db_bytes = self.update_alarm();
        if self.rewrite_due(db_bytes) {
            match self.rewrite_if(|| self.rewrite_due(self.db_bytes())) {
                Ok(Some(done)) => tracing::info!(
                    generation = done.generation,
                    before = done.before_bytes,
                    after = done.after_bytes,
                    pause_us = done.pause.as_micros() as u64,
                    "sled backend: rewrite returned space"
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "sled backend: rewrite failed, the old generation stays live"),
            }
        }
    }

    /// Notes a failed write or flush: with an I/O error ([`Error::Unavailable`]) sled may
    /// refuse every later write, so maintenance recovers (see the module doc).
    pub(super) fn note_io_failure(&self, error: &Error) {
        if matches!(error, Error::Unavailable { .. }) && !self.space.io_failed.swap(true, Ordering::SeqCst) {
            tracing::warn!(error = %error, "sled backend: a write failed with an I/O error; writes resume once the disk takes writes again");
        }
    }

    /// True while a failed write waits for [`Core::recover_from_io_failure`].
    pub(super) fn io_failure_pending(&self) -> bool {
        self.space.io_failed.load(Ordering::SeqCst)
    }

    /// Recovers from a failed write when the disk takes writes again: probes it, then
    /// rewrites into a fresh generation (see the module doc). At most once per
    /// [`RECOVERY_BACKOFF`].
    pub(super) fn recover_from_io_failure(&self) {
        if !self.space.io_failed.load(Ordering::SeqCst) || self.options.temporary {
            return;
        }
        let backoff = {
            let mut after = self.space.recovery_after.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if after.is_some_and(|(after, _)| now < after) {
                return;
            }
            let backoff = after.map_or(RECOVERY_BACKOFF, |(_, backoff)| backoff);
            *after = Some((now + RECOVERY_BACKOFF, backoff));
            backoff
        };
        if let Err(e) = probe_disk(&self.options.path) {
            tracing::debug!(error = %e, "sled backend: the disk does not take writes yet");
            return;
        }
        // The rewrite reads the live database's memory. sled 0.34 refuses some reads too once
        // it stored an I/O error (a read that must first finish a tree split or consolidate a
        // page writes), for good: then the live database is reopened from disk instead.
        let reopen_only = !self.space.recovery_rewrite.load(Ordering::SeqCst) || self.db().is_err();
        let outcome = if reopen_only { Err(Error::unavailable("recovery by reopening")) } else { self.rewrite() };
        let outcome = match outcome {
            Ok(Some(done)) => Ok(format!("on the fresh generation {}", done.generation)),
            Ok(None) => return,
            Err(e) => {
                let refuses = reopen_only || self.refuses_writes();
                if refuses {
                    tracing::info!(error = %e, "sled backend: the live database refuses to flush although the disk takes writes; reopening it");
                    self.reopen().map(|generation| format!("on generation {generation}, reopened from disk"))
                } else {
                    Err(e)
                }
            }
        };
        match outcome {
            Ok(how) => {
                self.space.io_failed.store(false, Ordering::SeqCst);
                *self.space.recovery_after.lock().unwrap_or_else(|e| e.into_inner()) = None;
                self.space.recoveries.fetch_add(1, Ordering::SeqCst);
                tracing::info!("sled backend: writes resumed {how}");
            }
            Err(e) => {
                let backoff = (backoff * 2).min(MAX_RECOVERY_BACKOFF);
                *self.space.recovery_after.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now() + backoff, backoff));
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "sled backend: recovery rewrite failed");
            }
        }
    }

    /// True when the live database refuses a write and its flush although the disk takes
    /// writes (sled 0.34 stored an earlier I/O error). The write is the format record's own
    /// value again (a flush alone may succeed with nothing to write).
    fn refuses_writes(&self) -> bool {
        self.db()
            .and_then(|db| {
                db.insert(layout::META_FORMAT, &layout::FORMAT.to_be_bytes()).map_err(sled_error)?;
                db.flush_durably()
            })
            .is_err()
    }

    /// Reopens the generation the pointer file names from disk, in place of the live
    /// database (which sled 0.34 made unusable after an I/O error: see the module doc). Returns
    /// the generation reopened.
    ///
    /// While it runs, reads and writes get [`Error::Unavailable`] (the old database must be
    /// closed first: sled locks its directory). What the disk holds is what a restart after
    /// a crash would find: every write acknowledged in [`Durability::Immediate`] mode (an
    /// acknowledgement waits for its flush), and possibly some applied after the last
    /// successful flush, which failed (outcome unknown). The key index is rebuilt from it; an
    /// unpublished write it does not hold is dropped (never acknowledged nor visible; its
    /// revision is not reused: revisions only go forward), one it holds is written again
    /// (what a failed flush left may be in the page cache only) and published once the flush
    /// at the end made it durable. A writer whose flush straddled the reopen gets
    /// [`Error::Unavailable`] (see [`Core::reopens`]). In [`Durability::Periodic`] mode the
    /// writes acknowledged since the last background flush are lost, as in a crash.
    ///
    /// Errors: [`Error::Unavailable`] when a step fails (the database stays closed; the next
    /// recovery round starts again from the disk); [`Error::Corrupt`] for damaged data.
    fn reopen(&self) -> Result<u64> {
        let root = self.options.path.clone();
        let _compaction = self.compaction.lock().unwrap_or_else(|e| e.into_inner());
        let taken = {
            let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            // What the log has not written yet is discarded with the database's memory, and
            // nothing is acknowledged until the checkpoint at the end.
            if let Some(wal) = &self.wal {
                wal.fail("the database is being reopened after a failed write");
            }
            self.db.take()
        };
        // Let operations still on them finish (they fail or read), then close them.
        let waited = Instant::now();
        for old in taken {
            while Arc::strong_count(&old) > 1 && waited.elapsed() < OLD_GENERATION_GRACE {
                thread::sleep(Duration::from_millis(1));
            }
        }
        // A pointer renamed by a switch whose directory fsync failed is made durable (its
        // generation was flushed before the rename); one never renamed leaves the old one live.
        generation::sync_dir(&root)?;
        let live = generation::live(&root)?;
        let gen = open_generation(&self.options, live, Some(self.flush_every_ms()))?;
        // The compaction revision never goes back (Periodic mode may not have flushed it).
        let stored_compact = super::meta(&gen, layout::META_COMPACT)?;
        let compact = stored_compact.max(self.compacted());
        if compact > stored_compact {
            gen.insert(layout::META_COMPACT, &compact.to_be_bytes()).map_err(sled_error)?;
        }
        self.compact.store(compact, Ordering::SeqCst);
        // What the disk holds includes the write-ahead log.
        if let Some(wal) = &self.wal {
            wal.replay_all(&root, &mut |record| super::replay_record(&gen, compact, record).map(drop))?;
        }
        let index = self.index_of(&gen)?;
        {
            let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            let mut unpublished = self.unpublished.lock().unwrap_or_else(|e| e.into_inner());
            let mut held = Vec::with_capacity(unpublished.len());
            for write in unpublished.iter() {
                let on_disk = index.contains(write.key.as_bytes(), write.revision);
                if on_disk && write.revision > gen.packed.last_revision() {
                    if let Some(raw) = gen.history(write.revision)? {
                        gen.insert(layout::history_key(write.revision), &*raw).map_err(sled_error)?;
                    }
                }
                held.push(on_disk);
            }
            let mut held = held.into_iter();
            unpublished.retain(|_| held.next().unwrap_or(false));
            self.history_bytes.store(index.total_bytes(), Ordering::SeqCst);
            self.live_bytes.store(index.live_bytes(), Ordering::SeqCst);
            *self.index.write().unwrap_or_else(|e| e.into_inner()) = index;
            self.generation.store(live, Ordering::SeqCst);
            self.db.install(gen);
            self.space.reopens.fetch_add(1, Ordering::SeqCst);
        }
        generation::remove_stale(&root, live)?;
        self.remove_compacted_history(compact)?;
        // sled durable with what was replayed and written again; the log's failure clears.
        self.checkpoint_and_publish()?;
        Ok(live)
    }

    /// How many times the live database was reopened after a failed write ([`Core::reopen`]):
    /// a durable writer reads it before applying and after its flush; when it changed, its
    /// flush may have been one of the reopened database, which may not hold the write, so its
    /// outcome is unknown.
    pub(super) fn reopens(&self) -> u64 {
        self.space.reopens.load(Ordering::SeqCst)
    }

    /// Test hook: `false` makes recovery skip the rewrite from memory and reopen the
    /// database from disk (the path taken when sled refuses reads).
    pub(super) fn set_recovery_rewrite(&self, enabled: bool) {
        self.space.recovery_rewrite.store(enabled, Ordering::SeqCst);
    }

    /// Recoveries from failed writes since open.
    pub(super) fn recoveries(&self) -> u64 {
        self.space.recoveries.load(Ordering::SeqCst)
    }

    /// The writer pauses of the last rewrites (at most [`KEPT_REWRITES`]), oldest first.
    pub(super) fn rewrite_pauses(&self) -> Vec<Duration> {
        self.space.log.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|r| r.pause).collect()
    }

    /// The last rewrites (at most [`KEPT_REWRITES`]), oldest first.
    pub(super) fn rewrite_log(&self) -> Vec<Reclaimed> {
        self.space.log.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// (rewrites since open, the longest writer pause of one).
    pub(super) fn rewrite_stats(&self) -> (u64, Duration) {
        (
            self.space.rewrites.load(Ordering::SeqCst),
            Duration::from_micros(self.space.longest_pause_us.load(Ordering::SeqCst)),
        )
    }

    /// Rewrites the database into the next generation and removes the old one. None for a
    /// temporary database (nothing to switch to).
    ///
    /// Errors: [`Error::Unavailable`] on I/O errors (e.g. the disk is full); the old
    /// generation stays live and the partial new one is removed.
    pub(super) fn rewrite(&self) -> Result<Option<Reclaimed>> {
        self.rewrite_if(|| true)
    }

    /// [`Core::rewrite`] if `still_due()` holds once the compaction lock is taken (a rewrite
    /// that ran meanwhile may have made it pointless).
    fn rewrite_if(&self, still_due: impl Fn() -> bool) -> Result<Option<Reclaimed>> {
        if self.options.temporary {
            return Ok(None);
        }
        let root = self.options.path.clone();
        let _compaction = self.compaction.lock().unwrap_or_else(|e| e.into_inner());
        if !still_due() {
            return Ok(None);
        }
        let before_bytes = self.db_bytes();
        let old = self.db()?;
        let next = self.generation.load(Ordering::SeqCst) + 1;
        let path = generation::path_of(&root, next);
        generation::remove(&path)?;
        let outcome = open_db(&self.options, next, Some(self.flush_every_ms())).and_then(|new| {
            let packed = PackedWriter::create(&path.join(PACKED_FILE))?;
            self.copy_and_switch(&old, new, packed, &root, next)
        });
        let (entries, pause, under_lock, mut commit) = match outcome {
            Ok(done) => done,
            Err(e) => {
                if let Err(cleanup) = generation::remove(&path) {
                    tracing::warn!(error = %cleanup, "sled backend: cannot remove the partial generation");
                }
                return Err(e);
            }
        };
        // The switch durable before the old generation goes. On failure the new generation is
        // live (in memory and, after a crash, possibly on disk): nothing is removed.
        let resumed_at = commit.last;
        self.db.sync_pointer_marking(&mut |step| commit.mark(step))?;
        // The new generation holds every applied write durably: the log's closed segments go
        // (and a log failure clears: this is how a recovery's rewrite ends).
        if let Err(e) = self.checkpoint() {
            tracing::warn!(error = %e, "sled backend: checkpoint after a rewrite failed; the log keeps the writes");
        }
        // Let reads still on the old generation finish, then remove it (and legacy files).
        let waited = Instant::now();
        while Arc::strong_count(&old) > 1 && waited.elapsed() < OLD_GENERATION_GRACE {
            thread::sleep(Duration::from_millis(1));
        }
        drop(old);
        generation::remove_stale(&root, next)?;
        let after_bytes = self.update_alarm();
        self.space.rewritten_bytes.store(after_bytes, Ordering::SeqCst);
        self.space.rewritten_in_use.store(self.history_bytes.load(Ordering::SeqCst), Ordering::SeqCst);
        self.space.rewrites.fetch_add(1, Ordering::SeqCst);
        self.space.longest_pause_us.fetch_max(pause.as_micros() as u64, Ordering::SeqCst);
        let done = Reclaimed {
            generation: next,
            before_bytes,
            after_bytes,
            entries,
            pause,
            under_lock: under_lock.steps,
            commit: commit.steps,
            resumed_at,
        };
        {
            let mut log = self.space.log.lock().unwrap_or_else(|e| e.into_inner());
            if log.len() == KEPT_REWRITES {
                log.pop_front();
            }
            log.push_back(done.clone());
        }
        Ok(Some(done))
    }

    /// Copies history rounds after `copied` into `packed` until a round copied at most
    /// [`TAIL_UNDER_LOCK`] entries (writes go on meanwhile).
    fn catch_up(
        &self,
        old: &generation::Gen,
        packed: &mut PackedWriter,
        copied: &mut Revision,
        entries: &mut u64,
    ) -> Result<()> {
        self.in_rounds(copied, entries, |after, upto| self.copy_history(old, packed, after, upto))
    }

    /// Copies history rounds after `copied` into the sled tree of `new` (each record in the
    /// checksummed format, with its TTL entry when it is above `ttl_from`) until a round
    /// copied at most [`TAIL_UNDER_LOCK`] entries (writes go on meanwhile).
    fn catch_up_into_sled(
        &self,
        old: &generation::Gen,
        new: &sled::Db,
        ttl_from: Revision,
        copied: &mut Revision,
        entries: &mut u64,
    ) -> Result<()> {
        self.in_rounds(copied, entries, |after, upto| self.copy_history_into_sled(old, new, after, upto, ttl_from))
    }

    /// Runs `round(copied, applied)` (it copies the revisions `copied + 1 ..= applied` and
    /// returns how many entries it copied) until a round copied at most [`TAIL_UNDER_LOCK`]
    /// entries, advancing `copied` and adding to `entries` after each.
    fn in_rounds(
        &self,
        copied: &mut Revision,
        entries: &mut u64,
        mut round: impl FnMut(Revision, Revision) -> Result<u64>,
    ) -> Result<()> {
        loop {
            let upto = self.applied.load(Ordering::SeqCst);
            let count = round(*copied, upto)?;
            *entries += count;
            *copied = upto.max(*copied);
            if count <= TAIL_UNDER_LOCK {
                return Ok(());
            }
        }
    }

    /// Copies the retained history entries of revisions `after + 1 ..= upto` of `old` into the
    /// sled tree of `new` (in memory until `new` is flushed; plain inserts, see [`copy`]), each
    /// in the checksummed format, and the TTL entry of each one above `ttl_from` that has a
    /// deadline (the TTL index was copied at `ttl_from`; an entry a later write made stale is
    /// ignored by the sweeper). Returns how many were copied.
    fn copy_history_into_sled(
        &self,
        old: &generation::Gen,
        new: &sled::Db,
        after: Revision,
        upto: Revision,
        ttl_from: Revision,
    ) -> Result<u64> {
        self.for_retained_history(old, after, upto, |revision, key, version, raw| {
            if revision > ttl_from && version.expires_at_ms != 0 {
                new.insert(layout::expiry_key(version.expires_at_ms, key), &[][..]).map_err(sled_error)?;
            }
            new.insert(layout::history_key(revision), &*layout::upgrade(revision, raw)?).map_err(sled_error)?;
            Ok(())
        })
    }

    /// Copies everything into `new` and makes it the live generation in memory (the switch is
    /// made durable by [`generation::DbCell::sync_pointer`] afterwards). Returns (history
    /// entries copied, how long writes waited, what ran while they waited, a timer of what
    /// runs from their resumption on).
    ///
    /// Every fsync runs before the writer lock is taken: the bulk of the history goes into
    /// the packed file, which is then fsynced; the TTL index and the metadata, the history
    /// that landed meanwhile (rounds) and the new pointer file (fsynced, not yet renamed) are
    /// written too. Under the writer lock only in-memory work runs: the last round (at most
    /// about [`TAIL_UNDER_LOCK`] entries) into the new sled tree, and the swap
    /// ([`generation::DbCell::switch`]). After it, writes go to the new generation; none is
    /// acknowledged before the new generation was flushed (the tail copied under the lock
    /// with it), the pointer renamed and the directory fsynced, in that order: a crash before
    /// the rename finds the old generation, which holds every write acknowledged before the
    /// switch; a crash after it finds the new one, which then holds them too.
    fn copy_and_switch(
        &self,
        old: &generation::Gen,
        new: sled::Db,
        mut packed: PackedWriter,
        root: &Path,
        next: u64,
    ) -> Result<(u64, Duration, Steps, Steps)> {
        let (mut copied, mut entries) = (0, 0);
        self.catch_up(old, &mut packed, &mut copied, &mut entries)?;
        let packed = packed.finish()?;
        let ttl_from = self.applied.load(Ordering::SeqCst);
        copy(old.scan_prefix([layout::EXPIRY]), &new)?;
        copy(old.scan_prefix([layout::META]), &new)?;
        let prepared = generation::prepare_commit(root, next)?;
        // What landed during those fsyncs, flushed, then what landed during that flush.
        self.catch_up_into_sled(old, &new, ttl_from, &mut copied, &mut entries)?;
        let files = durable_files(&self.options, next)?;
        DurableFiles::flush(files.as_ref(), &new)?;
        self.catch_up_into_sled(old, &new, ttl_from, &mut copied, &mut entries)?;
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let paused = Instant::now();
        let mut steps = Steps::start();
        entries += self.copy_history_into_sled(old, &new, copied, self.applied.load(Ordering::SeqCst), ttl_from)?;
        steps.mark("tail copy (in memory)");
        let previous = self.db.switch(generation::Gen { db: new, packed, files }, root.to_path_buf(), prepared);
        self.generation.store(next, Ordering::SeqCst);
        steps.mark("swap");
        drop(writer);
        let pause = paused.elapsed();
        let commit = Steps::start();
        drop(previous);
        Ok((entries, pause, steps, commit))
    }
}
