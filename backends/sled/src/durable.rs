//! A flush of sled that is durable: what sled 0.34's own `flush` leaves out.
//!
//! sled 0.34 writes its log with `pwrite` and then, on Linux, waits with
//! `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)`: the data is handed to the disk, but
//! neither the file's metadata (the log file grows as it is written) nor the disk's volatile
//! write cache are flushed, so a power loss can still lose a write sled called flushed. Values
//! too large for its log (over a quarter of a segment) go to files of their own under `blobs/`,
//! which sled never syncs. (A process crash, `kill -9`, loses none of it: the kernel has it.)
//!
//! [`DurableFiles::flush`] therefore syncs the blob files created since the last flush and
//! their directory *before* sled's flush (so that no flushed log entry names a blob that is
//! not durable), runs sled's flush, and then `fdatasync`s the log file: one real fsync per
//! flush. In [`Durability::Immediate`](crate::Durability::Immediate) mode on disk, writes are
//! made durable by the backend's write-ahead log ([`crate::wal`]) and this flush runs in its
//! checkpoints (and in rewrites); a temporary database's group commit (see [`crate::flusher`])
//! still runs it.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use apistore::{Error, Result};

/// sled 0.34's log file inside its directory (`Config::db_path`).
const LOG_FILE: &str = "db";

/// sled 0.34's directory of large values (`Config::blob_path`: one file per value, named by
/// its log sequence number in decimal).
const BLOBS_DIR: &str = "blobs";

/// The files of one sled database that [`DurableFiles::flush`] syncs. None for a temporary
/// database (sled syncs nothing there, and nothing survives a close).
#[derive(Debug)]
pub(crate) struct DurableFiles {
    /// sled's log file, opened read-only: `fdatasync` on any descriptor of a file syncs it.
    log: File,
    blobs: PathBuf,
    /// The highest blob log sequence number already synced.
    blobs_synced: Mutex<i64>,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::unavailable(format!("{}: {e}", path.display()))
}

impl DurableFiles {
    /// Opens the files of the sled database in `dir` (after sled opened it: its log exists).
    ///
    /// Errors: [`Error::Unavailable`] when the log file cannot be opened.
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(LOG_FILE);
        let log = File::open(&path).map_err(io_error(&path))?;
        Ok(DurableFiles { log, blobs: dir.join(BLOBS_DIR), blobs_synced: Mutex::new(-1) })
    }

    /// Makes everything applied to `db` before the call durable (see the module doc).
    ///
    /// Errors: [`Error::Unavailable`] when a sync fails (nothing may then be acknowledged;
    /// the next flush tries again from the same point).
    pub(crate) fn flush(files: Option<&Self>, db: &sled::Db) -> Result<()> {
        if let Some(files) = files {
            files.sync_new_blobs()?;
        }
        db.flush().map_err(crate::backend::sled_error)?;
        if let Some(files) = files {
            files.log.sync_data().map_err(|e| Error::unavailable(format!("fdatasync of sled's log failed: {e}")))?;
        }
        Ok(())
    }

    /// Syncs the blob files newer than the last synced one, then their directory.
    fn sync_new_blobs(&self) -> Result<()> {
        let mut synced = self.blobs_synced.lock().unwrap_or_else(|e| e.into_inner());
        let entries = match fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(&self.blobs)(e)),
        };
        let mut newest = *synced;
        for entry in entries {
            let entry = entry.map_err(io_error(&self.blobs))?;
            let Some(lsn) = entry.file_name().to_str().and_then(|name| name.parse::<i64>().ok()) else { continue };
            if lsn <= *synced {
                continue;
            }
            let path = entry.path();
            match File::open(&path) {
                Ok(file) => file.sync_data().map_err(io_error(&path))?,
                // Removed meanwhile (sled garbage-collects blobs it no longer needs).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&path)(e)),
            }
            newest = newest.max(lsn);
        }
        if newest > *synced {
            crate::generation::sync_dir(&self.blobs)?;
            *synced = newest;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_syncs_what_sled_wrote_including_blobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new().path(dir.path()).open().expect("open");
        let files = DurableFiles::open(dir.path()).expect("files");
        db.insert(b"small", &b"v"[..]).expect("insert");
        // Over a quarter of sled's default 512 KiB segment: stored as a blob file.
        db.insert(b"large", vec![7u8; 200 * 1024]).expect("insert");
        DurableFiles::flush(Some(&files), &db).expect("flush");
        let blobs: Vec<i64> = fs::read_dir(dir.path().join(BLOBS_DIR))
            .expect("blobs")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        assert!(!blobs.is_empty(), "the large value is a blob file");
        assert_eq!(*files.blobs_synced.lock().expect("lock"), *blobs.iter().max().expect("max"));
        drop(db);
        let db = sled::Config::new().path(dir.path()).open().expect("reopen");
        assert_eq!(db.get(b"large").expect("get").expect("large").len(), 200 * 1024);
    }

    #[test]
    fn a_database_without_its_log_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = DurableFiles::open(dir.path()).expect_err("no log file");
        assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
    }
}
