//! Online backup: every key under the prefix (or the chosen resources) as of one revision,
//! read in pages at that revision while writes go on, streamed out in the [`format`](super::format).
//!
//! TTLs ([`KvBackend::expiries`]) are read just before and just after the backup's revision
//! is taken; a record carries the time its key had left when the TTL belongs to the version
//! backed up. Only a version written and replaced again within those milliseconds loses its
//! TTL; a backend that cannot tell its TTLs (the default of `expiries`) gives none.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::kv::{prefix_end, KeyValue, KvBackend, RangeRequest, Revision};

use super::format::{self, Header, Record, Trailer, CHUNK_RECORDS};

/// What a backup wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    /// The revision the backup is consistent at.
    pub revision: u64,
    /// The source's compaction revision.
    pub compact_revision: u64,
    /// Keys, value bytes and chunks written.
    pub trailer: Trailer,
}

/// The key ranges a backup reads: the whole prefix, or one per resource
/// (`<prefix>/<resource>/`, where a resource is its storage prefix: `configmaps`,
/// `stable.example.com/crontabs`).
pub(crate) fn ranges(prefix: &str, resources: Option<&[String]>) -> Vec<(String, String)> {
    let prefix = prefix.trim_end_matches('/');
    match resources {
        None => {
            let start = format!("{prefix}/");
            let end = prefix_end(&start);
            vec![(start, end)]
        }
        Some(list) => {
            let mut starts: Vec<String> = list.iter().map(|r| format!("{prefix}/{}/", r.trim_matches('/'))).collect();
            starts.sort();
            starts.dedup();
            starts.into_iter().map(|s| (s.clone(), prefix_end(&s))).collect()
        }
    }
}

/// The TTLs of a backup's keys: key → (mod revision of the version the TTL belongs to,
/// time left).
#[derive(Default)]
pub(crate) struct Ttls(HashMap<String, Vec<(Revision, Duration)>>);

impl Ttls {
    /// Adds the TTLs `backend` reports for `ranges` now.
    ///
    /// Errors: the backend's.
    pub(crate) async fn read(&mut self, backend: &dyn KvBackend, ranges: &[(String, String)]) -> Result<()> {
        for (start, end) in ranges {
            for expiry in backend.expiries(start, end).await? {
                let versions = self.0.entry(expiry.key).or_default();
                if !versions.iter().any(|(revision, _)| *revision == expiry.mod_revision) {
                    versions.push((expiry.mod_revision, expiry.remaining));
                }
            }
        }
        Ok(())
    }

    /// The TTL of `kv`'s version, if it has one.
    pub(crate) fn of(&self, kv: &KeyValue) -> Option<Duration> {
        let versions = self.0.get(&kv.key)?;
        versions.iter().find(|(revision, _)| *revision == kv.mod_revision).map(|(_, left)| *left)
    }
}

/// Backs up `backend` into `out`, consistent at the backend's current revision when the
/// backup starts. `progress(done, total)` is called after every chunk.
///
/// Errors: backend errors (a compaction past the backup's revision while it runs is
/// [`Error::Compacted`]: run it again), I/O errors writing `out` ([`Error::Internal`]).
pub async fn backup(
    backend: &dyn KvBackend,
    prefix: &str,
    resources: Option<&[String]>,
    out: &mut (dyn Write + Send),
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<BackupSummary> {
    let ranges = ranges(prefix, resources);
    let mut ttls = Ttls::default();
    ttls.read(backend, &ranges).await?;
    let revision = backend.current_revision().await?;
    ttls.read(backend, &ranges).await?;
    let compact_revision = backend.compacted_revision().await?;
    let mut total = 0;
    for (start, end) in &ranges {
        let request = RangeRequest { start: start.clone(), end: end.clone(), limit: 0, revision, count_only: true };
        total += backend.range(request).await?.count;
    }
    let io = |e: std::io::Error| Error::internal(format!("writing the backup: {e}"));
    let header = Header {
        revision,
        compact_revision,
        prefix: prefix.trim_end_matches('/').to_owned(),
        resources: resources.map(<[String]>::to_vec),
    };
    out.write_all(format!("{}\n", format::MAGIC).as_bytes()).map_err(io)?;
    out.write_all(format::line('H', &header)?.as_bytes()).map_err(io)?;
    let mut trailer = Trailer::default();
    for (start, end) in ranges {
        let mut next = start;
        loop {
            let request = RangeRequest {
                start: next.clone(),
                end: end.clone(),
                limit: CHUNK_RECORDS as u64,
                revision,
                count_only: false,
            };
            let page = backend.range(request).await?;
            let Some(last) = page.kvs.last() else { break };
            next = format!("{}\0", last.key);
            let records: Vec<Record> = page.kvs.iter().map(|kv| Record::from_kv(kv, ttls.of(kv))).collect();
            trailer.chunks += 1;
            trailer.keys += records.len() as u64;
            trailer.bytes += page.kvs.iter().map(|kv| kv.value.len() as u64).sum::<u64>();
            out.write_all(format::line('C', &records)?.as_bytes()).map_err(io)?;
            progress(trailer.keys, total);
            if !page.more {
                break;
            }
        }
    }
    out.write_all(format::line('E', &trailer)?.as_bytes()).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(BackupSummary { revision, compact_revision, trailer })
}
