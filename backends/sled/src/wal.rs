//! The write-ahead log of [`Durability::Immediate`](crate::Durability::Immediate) mode: what
//! makes an acknowledged write durable, one `pwrite` + `fdatasync` per group commit, with sled
//! flushed in the background.
//!
//! ```text
//!  writer (writer lock)           flusher thread (group commit)      maintenance thread
//!  ──────────────────────         ─────────────────────────────      ──────────────────
//!  append record to the buffer    take the buffer, one pwrite at     checkpoint (every
//!  insert history + TTL in sled   the segment's end, fdatasync,      CHECKPOINT_EVERY or
//!  (in memory)                    publish + acknowledge              CHECKPOINT_BYTES):
//!                                                                    rotate, flush sled
//!  data-dir/apistore-wal/00000000000000000007.wal  (closed)          durably, delete the
//!  data-dir/apistore-wal/00000000000000000008.wal  (being appended)  closed segments
//! ```
//!
//! The store's source of truth is the history entry of each revision plus the TTL index
//! (see [`crate::layout`]); a record holds exactly what a write applied: its revision, its
//! history entry (the bytes `layout::encode_event` made, the same bytes the sled tree gets) and
//! the deadline of the TTL entry it replaced. Records are appended to an in-memory buffer under
//! the writer lock, so in revision order; the flusher writes everything buffered with one
//! write at the end of the current segment and `fdatasync`s it instead of flushing sled. A
//! write is published and acknowledged once its record is durable, as before (publish only
//! once durable).
//!
//! ```text
//! segment = frame*
//! frame   = length (u32 BE, of the body) | CRC-32 (u32 BE, IEEE, of the length field and the body) | body
//! body    = revision (u64 BE) | replaced TTL deadline (u64 BE, 0 = none) | history entry
//! ```
//!
//! Invariants:
//!
//! * **Every acknowledged write is in sled durably or in a segment.** A segment is deleted
//!   only by a checkpoint, after a durable flush of sled ([`crate::generation::Gen::flush_durably`],
//!   and the pending generation switch made durable) that started after the segment was closed.
//!   The rotation that closes it takes the writer lock: every record in a closed segment
//!   belongs to a write whose sled inserts were complete before the flush began.
//! * **No torn record in front of an acknowledged one.** A failed write or `fdatasync` (e.g.
//!   ENOSPC) truncates the segment back to its last good offset (`set_len`), drops every
//!   buffered record and marks the log failed: appends and flushes are refused (the writes
//!   applied in memory meanwhile are unacknowledged, their outcome unknown) until a
//!   checkpoint — the recovery's rewrite or reopen ends with one — made sled durable and
//!   deleted the failed segment. So a bad record, should the truncation itself fail, is never
//!   followed by a record anyone was told is durable.
//! * **Replay is idempotent and never resurrects compacted history.** On open every segment is
//!   replayed in order into the live generation with blind inserts and removes (a revision's
//!   history entry is always the same bytes), skipping records at or below the compaction
//!   revision (compaction checkpoints before it removes anything, so they are in sled) and at
//!   or below the generation's packed history (a rewrite packed them; packed revisions stay
//!   below the sled tree's). Replay stops at the first record that is cut or fails its
//!   checksum — only an unacknowledged write can be there — truncates it away (durably) and
//!   removes any later segment; the key index is then rebuilt from the history as always.
//! * The revision ceiling is untouched: replayed revisions are below it.
//!
//! Periodic mode has no log (a directory last written in Immediate mode is replayed, flushed
//! into sled and its log removed on open); temporary databases have none either.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use apistore::kv::Revision;
use apistore::{Error, Result};

/// The log's directory inside the data directory (shared by all generations).
pub const WAL_DIR: &str = "apistore-wal";

/// A checkpoint is due this long after the last one (when anything was logged since).
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// ... or as soon as the current segment holds this many bytes.
pub(crate) const CHECKPOINT_BYTES: u64 = 8 * 1024 * 1024;

const FRAME_HEADER: usize = 4 + 4;
const BODY_HEADER: usize = 8 + 8;
/// Larger bodies are corrupt (sled values are far below).
const MAX_BODY: usize = 1 << 30;
const SUFFIX: &str = ".wal";

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::unavailable(format!("{}: {e}", path.display()))
}

/// One logged write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    /// Its revision.
    pub revision: Revision,
    /// The deadline of the TTL entry the write replaced (0: none); its new deadline is in the
    /// history entry.
    pub old_expiry: u64,
    /// The history entry (format 2 of [`crate::layout`]).
    pub event: &'a [u8],
}

/// Appends the frame of `record` to `out`.
fn encode_into(out: &mut Vec<u8>, record: Record<'_>) {
    let start = out.len();
    let body = BODY_HEADER + record.event.len();
    out.extend_from_slice(&(body as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&record.revision.to_be_bytes());
    out.extend_from_slice(&record.old_expiry.to_be_bytes());
    out.extend_from_slice(record.event);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[start..start + 4]);
    hasher.update(&out[start + FRAME_HEADER..]);
    out[start + 4..start + FRAME_HEADER].copy_from_slice(&hasher.finalize().to_be_bytes());
}

/// Calls `apply` for each good frame of `data`, in order, and returns the offset after the
/// last good one (`data.len()` when every frame is good: no torn tail).
///
/// Errors: what `apply` returns.
fn parse(data: &[u8], apply: &mut dyn FnMut(Record<'_>) -> Result<()>) -> Result<usize> {
    let mut at = 0;
    while data.len() - at >= FRAME_HEADER {
        let length = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let stored = u32::from_be_bytes([data[at + 4], data[at + 5], data[at + 6], data[at + 7]]);
        if !(BODY_HEADER..=MAX_BODY).contains(&length) || data.len() - at - FRAME_HEADER < length {
            return Ok(at);
        }
        let body = &data[at + FRAME_HEADER..at + FRAME_HEADER + length];
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&data[at..at + 4]);
        hasher.update(body);
        if hasher.finalize() != stored {
            return Ok(at);
        }
        let revision = u64::from_be_bytes(body[0..8].try_into().unwrap_or_default());
        let old_expiry = u64::from_be_bytes(body[8..16].try_into().unwrap_or_default());
        apply(Record { revision, old_expiry, event: &body[BODY_HEADER..] })?;
        at += FRAME_HEADER + length;
    }
    Ok(at)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SUFFIX}"))
}

/// The segments of `dir`, ascending by sequence number (none when `dir` is missing).
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some(seq) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)).and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        found.push((seq, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// What replaying a log found.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// Records read (applied or skipped by the callback).
    pub records: u64,
    /// Bytes cut off a torn tail (0: none).
    pub torn_bytes: u64,
    /// The highest segment sequence number seen (0: none).
    pub last_seq: u64,
}

/// Replays every segment of the log under `root` in order (see the module doc): `apply` gets
/// each good record; the first cut or bad-checksum record ends the replay, is truncated away
/// (durably), and any later segment is removed.
///
/// Errors: [`Error::Unavailable`] on I/O errors; what `apply` returns.
pub(crate) fn replay(root: &Path, apply: &mut dyn FnMut(Record<'_>) -> Result<()>) -> Result<Replayed> {
    let dir = root.join(WAL_DIR);
    let found = segments(&dir)?;
    let mut replayed = Replayed { last_seq: found.last().map_or(0, |(seq, _)| *seq), ..Replayed::default() };
    for (i, (_, path)) in found.iter().enumerate() {
        let data = fs::read(path).map_err(io_error(path))?;
        let good = parse(&data, &mut |record| {
            replayed.records += 1;
            apply(record)
        })?;
        if good == data.len() {
            continue;
        }
        replayed.torn_bytes = (data.len() - good) as u64;
        tracing::warn!(
            segment = %path.display(),
            offset = good,
            bytes = replayed.torn_bytes,
            "sled backend: the write-ahead log ends with a cut or damaged record (an unacknowledged write); truncating it"
        );
        let file = OpenOptions::new().write(true).open(path).map_err(io_error(path))?;
        file.set_len(good as u64).and_then(|()| file.sync_data()).map_err(io_error(path))?;
        for (_, later) in &found[i + 1..] {
            tracing::warn!(segment = %later.display(), "sled backend: removing a log segment behind a damaged record");
            fs::remove_file(later).map_err(io_error(later))?;
        }
        crate::generation::sync_dir(&dir)?;
        break;
    }
    Ok(replayed)
}

/// One segment of a log as [`inspect`] found it.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentReport {
    /// The segment file.
    pub path: PathBuf,
    /// Revisions of its good records, in order.
    pub revisions: Vec<Revision>,
    /// Bytes of its good records (the offset of the first cut or damaged one).
    pub good_bytes: u64,
    /// Bytes of the file.
    pub file_bytes: u64,
}

/// Test hook, not part of the API: reads the log under the data directory `root` without
/// changing it (tests check what a crash left).
///
/// Errors: [`Error::Unavailable`] on I/O errors.
#[doc(hidden)]
pub fn inspect(root: &Path) -> Result<Vec<SegmentReport>> {
    let mut reports = Vec::new();
    for (_, path) in segments(&root.join(WAL_DIR))? {
        let data = fs::read(&path).map_err(io_error(&path))?;
        let mut revisions = Vec::new();
        let good = parse(&data, &mut |record| {
            revisions.push(record.revision);
            Ok(())
        })?;
        reports.push(SegmentReport { path, revisions, good_bytes: good as u64, file_bytes: data.len() as u64 });
    }
    Ok(reports)
}

/// Removes every segment of the log under `root` (after its records were made durable in sled).
///
/// Errors: [`Error::Unavailable`] on I/O errors.
pub(crate) fn remove_all(root: &Path) -> Result<()> {
    let dir = root.join(WAL_DIR);
    let found = segments(&dir)?;
    if found.is_empty() {
        return Ok(());
    }
    for (_, path) in found {
        fs::remove_file(&path).map_err(io_error(&path))?;
    }
    crate::generation::sync_dir(&dir)
}

/// The segment being appended.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    file: File,
    /// Bytes durably written (the offset of the next write).
    len: u64,
}

/// Records applied but not yet written, and the failure state.
#[derive(Debug, Default)]
struct Buffered {
    frames: Vec<u8>,
    /// Why the log refuses appends and flushes (see the module doc), if it does.
    failed: Option<String>,
    /// Bytes appended since the last rotation.
    since_rotation: u64,
    /// Closed segments wait for a checkpoint to be deleted.
    closed: bool,
}

/// The write-ahead log of an open database (see the module doc).
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    /// Held across a write and its `fdatasync` (the flusher) and across a rotation.
    segment: Mutex<Segment>,
    buffered: Mutex<Buffered>,
    last_checkpoint: Mutex<Instant>,
    /// Test hook: no checkpoint is due while set.
    paused: AtomicBool,
    next_seq: AtomicU64,
}

fn create_segment(dir: &Path, seq: u64) -> Result<Segment> {
    let path = segment_path(dir, seq);
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io_error(&path))?;
    // The new name durable before any record in it is acknowledged.
    crate::generation::sync_dir(dir)?;
    Ok(Segment { path, file, len: 0 })
}

impl Wal {
    /// Starts a log under `root` after [`replay`] (which found `replayed`): a new segment
    /// after the last one; the replayed segments stay until the next checkpoint.
    ///
    /// Errors: [`Error::Unavailable`] on I/O errors.
    pub(crate) fn start(root: &Path, replayed: &Replayed) -> Result<Self> {
        let dir = root.join(WAL_DIR);
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(io_error(&dir))?;
            crate::generation::sync_dir(root)?;
        }
        let seq = replayed.last_seq + 1;
        let segment = create_segment(&dir, seq)?;
        Ok(Wal {
            dir,
            segment: Mutex::new(segment),
            buffered: Mutex::new(Buffered { closed: replayed.last_seq > 0, ..Buffered::default() }),
            last_checkpoint: Mutex::new(Instant::now()),
            paused: AtomicBool::new(false),
            next_seq: AtomicU64::new(seq + 1),
        })
    }

    /// Buffers the record of a write (under the writer lock, in revision order).
    ///
    /// Errors: [`Error::Unavailable`] while the log is failed (see the module doc).
    pub(crate) fn append(&self, record: Record<'_>) -> Result<()> {
        let mut buffered = lock(&self.buffered);
        if let Some(why) = &buffered.failed {
            return Err(Error::unavailable(format!("sled backend: the write-ahead log refuses writes: {why}")));
        }
        let before = buffered.frames.len();
        encode_into(&mut buffered.frames, record);
        buffered.since_rotation += (buffered.frames.len() - before) as u64;
        Ok(())
    }

    /// Makes every record appended before the call durable: one write of the buffered
    /// records at the end of the segment and one `fdatasync`. On failure the segment is cut
    /// back to its last good offset and the log fails (see the module doc).
    ///
    /// Errors: [`Error::Unavailable`] when the write or sync fails or the log is failed.
    pub(crate) fn sync(&self) -> Result<()> {
        let mut segment = lock(&self.segment);
        let mut frames = {
            let mut buffered = lock(&self.buffered);
            if let Some(why) = &buffered.failed {
                return Err(Error::unavailable(format!("sled backend: the write-ahead log refuses writes: {why}")));
            }
            std::mem::take(&mut buffered.frames)
        };
        if frames.is_empty() {
            return Ok(());
        }
        match segment.file.write_all_at(&frames, segment.len).and_then(|()| segment.file.sync_data()) {
            Ok(()) => {
                segment.len += frames.len() as u64;
                frames.clear();
                let mut buffered = lock(&self.buffered);
                if buffered.frames.is_empty() && buffered.frames.capacity() < frames.capacity() {
                    buffered.frames = frames; // keep the allocation
                }
                Ok(())
            }
            Err(e) => {
                let cut = segment.file.set_len(segment.len).and_then(|()| segment.file.sync_data());
                let why = match cut {
                    Ok(()) => {
                        format!("writing {} failed: {e} (cut back to {} bytes)", segment.path.display(), segment.len)
                    }
                    Err(cut) => format!(
                        "writing {} failed: {e}; cutting it back to {} bytes failed too: {cut}",
                        segment.path.display(),
                        segment.len
                    ),
                };
                self.fail(&why);
                Err(Error::unavailable(format!("sled backend: {why}")))
            }
        }
    }

    /// Fails the log: drops every buffered record and refuses appends and flushes until a
    /// checkpoint succeeded ([`Wal::checkpointed`]).
    pub(crate) fn fail(&self, why: &str) {
        let mut buffered = lock(&self.buffered);
        buffered.frames.clear();
        if buffered.failed.is_none() {
            buffered.failed = Some(why.to_owned());
        }
    }

    /// True while the log refuses writes.
    #[cfg(test)]
    pub(crate) fn failed(&self) -> bool {
        lock(&self.buffered).failed.is_some()
    }

    /// The first step of a checkpoint: closes the current segment and starts the next, with
    /// `exclude_writers()` (the writer lock) held for the swap, so that every record in a
    /// closed segment belongs to a write whose sled inserts are complete. Returns the new
    /// segment's sequence number (every closed segment is below it).
    ///
    /// Errors: [`Error::Unavailable`] when the new segment cannot be created.
    pub(crate) fn rotate<G>(&self, exclude_writers: impl FnOnce() -> G) -> Result<u64> {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let next = create_segment(&self.dir, seq)?;
        let mut segment = lock(&self.segment);
        let writers = exclude_writers();
        let mut buffered = lock(&self.buffered);
        let _closed = std::mem::replace(&mut *segment, next);
        buffered.since_rotation = 0;
        buffered.closed = true;
        drop(buffered);
        drop(writers);
        Ok(seq)
    }

    /// The last step of a checkpoint, once sled is durable: deletes the segments below `seq`,
    /// clears a failure (sled holds every applied write now), and restarts the checkpoint clock.
    ///
    /// Errors: [`Error::Unavailable`] when a segment cannot be deleted.
    pub(crate) fn checkpointed(&self, seq: u64) -> Result<()> {
        let found = segments(&self.dir)?;
        let mut removed = false;
        for (_, path) in found.iter().filter(|(s, _)| *s < seq) {
            fs::remove_file(path).map_err(io_error(path))?;
            removed = true;
        }
        if removed {
            crate::generation::sync_dir(&self.dir)?;
        }
        {
            let mut buffered = lock(&self.buffered);
            buffered.closed = false;
            if buffered.failed.take().is_some() {
                tracing::info!("sled backend: the write-ahead log takes writes again");
            }
        }
        *lock(&self.last_checkpoint) = Instant::now();
        Ok(())
    }

    /// Replays every segment, the current one included, into `apply` (a reopen after a failed
    /// write: what the disk holds), with the segment held so that nothing is written meanwhile.
    /// A torn tail is truncated as on open.
    ///
    /// Errors: as [`replay`].
    pub(crate) fn replay_all(&self, root: &Path, apply: &mut dyn FnMut(Record<'_>) -> Result<()>) -> Result<Replayed> {
        let mut segment = lock(&self.segment);
        let replayed = replay(root, apply)?;
        if segment.path.exists() {
            // Cut back if its tail was torn.
            segment.len = segment.file.metadata().map_err(io_error(&segment.path))?.len();
        } else {
            // Removed as a segment behind a damaged record (nothing in it was acknowledged).
            *segment = create_segment(&self.dir, self.next_seq.fetch_add(1, Ordering::SeqCst))?;
        }
        Ok(replayed)
    }

    /// True when a checkpoint is due: [`CHECKPOINT_EVERY`] since the last one with anything
    /// logged or replayed since, or [`CHECKPOINT_BYTES`] in the current segment, or the log
    /// failed (a checkpoint clears it).
    pub(crate) fn checkpoint_due(&self) -> bool {
        if self.paused.load(Ordering::SeqCst) {
            return false;
        }
        let (pending, bytes, failed) = {
            let buffered = lock(&self.buffered);
            (buffered.since_rotation > 0 || buffered.closed, buffered.since_rotation, buffered.failed.is_some())
        };
        failed || bytes >= CHECKPOINT_BYTES || pending && lock(&self.last_checkpoint).elapsed() >= CHECKPOINT_EVERY
    }

    /// Test hook: `true` pauses periodic checkpoints (explicit ones still run).
    pub(crate) fn pause_checkpoints(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(records: &[Record<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for record in records {
            encode_into(&mut out, *record);
        }
        out
    }

    fn parsed(data: &[u8]) -> (Vec<(Revision, u64, Vec<u8>)>, usize) {
        let mut out = Vec::new();
        let good = parse(data, &mut |r| {
            out.push((r.revision, r.old_expiry, r.event.to_vec()));
            Ok(())
        })
        .expect("parse");
        (out, good)
    }

    #[test]
    fn frames_round_trip_and_a_cut_or_flipped_frame_ends_the_log() {
        let a = Record { revision: 7, old_expiry: 0, event: b"first" };
        let b = Record { revision: 8, old_expiry: 99, event: b"second entry" };
        let data = frames(&[a, b]);
        let (records, good) = parsed(&data);
        assert_eq!(good, data.len());
        assert_eq!(records, vec![(7, 0, b"first".to_vec()), (8, 99, b"second entry".to_vec())]);
        let first_len = FRAME_HEADER + BODY_HEADER + 5;
        for cut in first_len..data.len() {
            let (records, good) = parsed(&data[..cut]);
            assert_eq!((records.len(), good), (1, first_len), "cut at {cut}");
        }
        for at in first_len..data.len() {
            let mut flipped = data.clone();
            flipped[at] ^= 0x01;
            let (records, good) = parsed(&flipped);
            assert_eq!((records.len(), good), (1, first_len), "flipped byte {at}");
        }
        let zeros = [0u8; 64];
        assert_eq!(parsed(&zeros).1, 0, "zeros are no frame");
    }

    #[test]
    fn replay_truncates_a_torn_tail_and_removes_later_segments() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join(WAL_DIR);
        fs::create_dir_all(&dir).expect("mkdir");
        let good = frames(&[Record { revision: 2, old_expiry: 0, event: b"two" }]);
        let mut torn = good.clone();
        torn.extend_from_slice(&frames(&[Record { revision: 3, old_expiry: 0, event: b"three" }])[..10]);
        fs::write(segment_path(&dir, 1), &torn).expect("segment 1");
        fs::write(segment_path(&dir, 2), frames(&[Record { revision: 4, old_expiry: 0, event: b"4" }]))
            .expect("segment 2");
        let mut seen = Vec::new();
        let replayed = replay(root.path(), &mut |r| {
            seen.push(r.revision);
            Ok(())
        })
        .expect("replay");
        assert_eq!(seen, vec![2], "nothing after the torn record");
        assert_eq!(replayed.torn_bytes, 10);
        assert_eq!(fs::read(segment_path(&dir, 1)).expect("read"), good, "cut back to the good frame");
        assert!(!segment_path(&dir, 2).exists(), "a segment behind a torn record is removed");
    }

    #[test]
    fn a_failed_log_refuses_appends_until_a_checkpoint() {
        let root = tempfile::tempdir().expect("tempdir");
        let wal = Wal::start(root.path(), &Replayed::default()).expect("start");
        wal.append(Record { revision: 2, old_expiry: 0, event: b"x" }).expect("append");
        wal.sync().expect("sync");
        wal.append(Record { revision: 3, old_expiry: 0, event: b"y" }).expect("append");
        wal.fail("test");
        assert!(wal.append(Record { revision: 4, old_expiry: 0, event: b"z" }).is_err());
        assert!(wal.sync().is_err(), "a failed log acknowledges nothing");
        let seq = wal.rotate(|| ()).expect("rotate");
        wal.checkpointed(seq).expect("checkpointed");
        assert!(!wal.failed());
        wal.append(Record { revision: 4, old_expiry: 0, event: b"z" }).expect("append after the checkpoint");
        wal.sync().expect("sync");
        let mut seen = Vec::new();
        replay(root.path(), &mut |r| {
            seen.push(r.revision);
            Ok(())
        })
        .expect("replay");
        assert_eq!(seen, vec![4], "the dropped record never reached the disk, the closed segment is gone");
    }
}
