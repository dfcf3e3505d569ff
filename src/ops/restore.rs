//! Restore into an empty backend: the whole file verified first (every checksum, the
//! trailer's counts), then the backend's revision raised past the backup's, the keys
//! written, and everything older compacted — so a resourceVersion from before the restore
//! is answered with 410 Gone, never with a silently different state. A key backed up with
//! a TTL is restored with the time it had left (counted from the restore).

use std::io::BufRead;

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::kv::{KvBackend, RangeRequest, TxnOutcome};

use super::format::{self, Header, Line, Record, Trailer};

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreSummary {
    /// The backup's revision.
    pub backup_revision: u64,
    /// The backend's revision after the restore (above `backup_revision`).
    pub revision: u64,
    /// The compaction revision set (reads and watches below it are 410).
    pub compacted: u64,
    /// Keys restored.
    pub keys: u64,
}

/// Writes in flight while restoring.
const CONCURRENCY: usize = 32;

/// Reads and verifies a whole backup; returns its header and trailer.
///
/// Errors: [`Error::BadRequest`] naming the line for a bad magic line, checksum, order or
/// count, or a truncated file.
pub fn verify(input: &mut dyn BufRead) -> Result<(Header, Trailer)> {
    let mut header = None;
    let mut seen = Trailer::default();
    let mut trailer = None;
    for (index, text) in input.lines().enumerate() {
        let number = index + 1;
        let text = text.map_err(|e| Error::BadRequest { message: format!("reading the backup: {e}") })?;
        if number == 1 {
            if text.trim_end() != format::MAGIC {
                return Err(Error::BadRequest {
                    message: format!("not an apistore backup (line 1 is not {:?})", format::MAGIC),
                });
            }
            continue;
        }
        if trailer.is_some() {
            return Err(Error::BadRequest { message: format!("backup line {number}: data after the trailer") });
        }
        match format::parse_line(number, &text)? {
            Line::Header(h) if header.is_none() && number == 2 => header = Some(h),
            Line::Chunk(records) if header.is_some() => {
                for record in &records {
                    record.value()?;
                    seen.bytes += record.value()?.len() as u64;
                }
                seen.chunks += 1;
                seen.keys += records.len() as u64;
            }
            Line::Trailer(t) if header.is_some() => trailer = Some(t),
            _ => return Err(Error::BadRequest { message: format!("backup line {number}: out of order") }),
        }
    }
    let header = header.ok_or_else(|| Error::BadRequest { message: "the backup has no header".into() })?;
    let trailer = trailer.ok_or_else(|| Error::BadRequest { message: "the backup is truncated: no trailer".into() })?;
    if trailer != seen {
        return Err(Error::BadRequest {
            message: format!(
                "the backup is truncated or corrupt: the trailer counts {trailer:?}, the file holds {seen:?}"
            ),
        });
    }
    Ok((header, trailer))
}

/// Restores a backup into `backend`, which must hold no key under the backup's prefix.
/// `open` reopens the backup (it is read twice: verified, then written).
/// `progress(done, total)` is called as keys are written.
///
/// Errors: what [`verify`] finds (nothing is written then); [`Error::BadRequest`] when the
/// backend is not empty under the prefix; backend errors.
pub async fn restore(
    backend: &dyn KvBackend,
    open: &mut (dyn FnMut() -> Result<Box<dyn BufRead + Send>> + Send),
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<RestoreSummary> {
    let (header, trailer) = verify(&mut *open()?)?;
    let start = format!("{}/", header.prefix);
    let existing = backend.range(RangeRequest { count_only: true, ..RangeRequest::prefix(&start) }).await?.count;
    if existing > 0 {
        return Err(Error::BadRequest {
            message: format!(
                "the target backend is not empty: {existing} keys under {start}; restore needs an empty one"
            ),
        });
    }
    raise_revision(backend, &header.prefix, header.revision).await?;
    let mut written = 0;
    let mut input = open()?;
    let mut text = String::new();
    let mut number = 0;
    loop {
        text.clear();
        number += 1;
        let read = input
            .read_line(&mut text)
            .map_err(|e| Error::BadRequest { message: format!("reading the backup: {e}") })?;
        if read == 0 {
            break;
        }
        if number == 1 {
            continue;
        }
        let Line::Chunk(records) = format::parse_line(number, &text)? else { continue };
        write_chunk(backend, &records).await?;
        written += records.len() as u64;
        progress(written, trailer.keys);
    }
    let revision = backend.current_revision().await?;
    backend.compact(revision).await?;
    Ok(RestoreSummary { backup_revision: header.revision, revision, compacted: revision, keys: written })
}

async fn write_chunk(backend: &dyn KvBackend, records: &[Record]) -> Result<()> {
    stream::iter(records.iter().map(Ok))
        .try_for_each_concurrent(CONCURRENCY, |record: &Record| async move {
            let value = record.value()?;
            match backend.put(&record.k, value, 0, record.ttl()).await? {
                TxnOutcome::Succeeded { .. } => Ok(()),
                TxnOutcome::Failed { .. } => {
                    Err(Error::BadRequest { message: format!("key {:?} appears twice in the backup", record.k) })
                }
            }
        })
        .await
}

/// Raises the backend's revision to at least `target` with writes of scratch keys under
/// `<prefix>/.apistore-restore/` (created and deleted again), up to CONCURRENCY at a time
/// (fewer for a small gap, so a small raise costs about as many writes as it needs).
pub(crate) async fn raise_revision(backend: &dyn KvBackend, prefix: &str, target: u64) -> Result<()> {
    let prefix = prefix.trim_end_matches('/');
    loop {
        let current = backend.current_revision().await?;
        if current >= target {
            return Ok(());
        }
        // Each worker's put + delete is two revisions.
        let gap = target - current;
        let workers = gap.div_ceil(2).min(CONCURRENCY as u64);
        let rounds = gap.div_ceil(2 * workers).max(1);
        stream::iter(0..workers)
            .map(Ok)
            .try_for_each_concurrent(CONCURRENCY, |worker| async move {
                let key = format!("{prefix}/.apistore-restore/{worker}");
                for _ in 0..rounds {
                    let TxnOutcome::Succeeded { revision } = backend.put(&key, bytes::Bytes::new(), 0, None).await?
                    else {
                        return Err(Error::internal(format!("scratch key {key} exists")));
                    };
                    backend.delete(&key, revision).await?;
                }
                Ok(())
            })
            .await?;
    }
}
