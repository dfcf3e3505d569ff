//! The packed history of a generation: the history entries a rewrite carried over (live
//! state plus the retained window), written once, in revision order, into one plain file
//! next to the generation's sled database, exactly as many bytes as they hold.
//!
//! Why: a fresh sled database costs about 2.5 times the bytes inserted into it (leaf pages are
//! rewritten as they fill and split, and sled's segment cleaner leaves segments up to half
//! garbage; measured with 1 KiB values for segment sizes of 64 KiB to 512 KiB, batched or
//! not), so a rewrite into sled can never bring the directory near its bytes in use. The
//! packed file is immutable once the generation is live: new writes go to the generation's
//! sled tree (always at higher revisions than every packed entry), compaction drops packed
//! entries from the in-memory key index only, and the next rewrite leaves them behind.
//!
//! ```text
//! file   = MAGIC frame*
//! frame  = revision (u64 BE) | length (u32 BE) | history record (length bytes, checksummed,
//!          see crate::layout)
//! ```
//!
//! Every record is a checksummed one (format 2 of [`crate::layout`]; the rewrite upgrades
//! older records), and its checksum covers its revision: a flipped byte, a cut file or a
//! frame read at the wrong place is [`apistore::Error::Corrupt`], never a wrong value. The
//! whole file is verified when the generation opens.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use apistore::kv::Revision;
use apistore::{Error, Result};

use crate::layout;

/// Name of the packed history file inside a generation's directory.
pub(crate) const PACKED_FILE: &str = "apistore-packed-history";

const MAGIC: &[u8; 16] = b"apistore-pack-1\n";
const FRAME_HEADER: usize = 8 + 4;

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::unavailable(format!("{}: {e}", path.display()))
}

fn corrupt_file(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Corrupt { key: path.display().to_string(), message: format!("packed history: {what}") }
}

/// The packed history of one generation (possibly empty), read-only.
#[derive(Debug, Default)]
pub(crate) struct Packed {
    file: Option<(File, PathBuf)>,
    /// (revision, offset of the record, record length), ascending by revision.
    entries: Vec<(Revision, u64, u32)>,
}

impl Packed {
    /// Opens the packed history at `path` (absent: empty), verifying every record.
    ///
    /// Errors: [`Error::Corrupt`] for a damaged file; [`Error::Unavailable`] on I/O errors.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Packed::default()),
            Err(e) => return Err(io(path)(e)),
        };
        let len = file.metadata().map_err(io(path))?.len();
        let mut reader = std::io::BufReader::with_capacity(1 << 20, &file);
        let mut magic = [0u8; MAGIC.len()];
        if reader.read_exact(&mut magic).is_err() || &magic != MAGIC {
            return Err(corrupt_file(path, "not a packed history file"));
        }
        let mut entries = Vec::new();
        let mut at = MAGIC.len() as u64;
        let mut last = 0;
        let mut record = Vec::new();
        while at < len {
            let mut header = [0u8; FRAME_HEADER];
            if len - at < FRAME_HEADER as u64 || reader.read_exact(&mut header).is_err() {
                return Err(corrupt_file(path, format!("cut frame at offset {at}")));
            }
            let revision = layout::be_u64(&header[..8])?;
            let record_len = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
            let start = at + FRAME_HEADER as u64;
            if len - start < u64::from(record_len) {
                return Err(corrupt_file(path, format!("cut record at offset {at}")));
            }
            if revision <= last {
                return Err(corrupt_file(path, format!("revision {revision} out of order at offset {at}")));
            }
            record.resize(record_len as usize, 0);
            reader.read_exact(&mut record).map_err(io(path))?;
            layout::verify_record(revision, &record)
                .map_err(|e| corrupt_file(path, format!("revision {revision}: {e}")))?;
            entries.push((revision, start, record_len));
            last = revision;
            at = start + u64::from(record_len);
        }
        drop(reader);
        Ok(Packed { file: Some((file, path.to_path_buf())), entries })
    }

    fn find(&self, revision: Revision) -> Option<usize> {
        self.entries.binary_search_by_key(&revision, |(r, _, _)| *r).ok()
    }

    fn read(&self, index: usize) -> Result<(Revision, Vec<u8>)> {
        let (revision, offset, len) = self.entries[index];
        let (file, path) = self.file.as_ref().ok_or_else(|| Error::internal("packed history without a file"))?;
        let mut raw = vec![0; len as usize];
        file.read_exact_at(&mut raw, offset).map_err(io(path))?;
        Ok((revision, raw))
    }

    /// The record of `revision`, if packed (not verified here: callers decode it with
    /// [`layout::decode_event`], which verifies the checksum).
    ///
    /// Errors: [`Error::Unavailable`] on I/O errors.
    pub(crate) fn get(&self, revision: Revision) -> Result<Option<Vec<u8>>> {
        match self.find(revision) {
            Some(index) => self.read(index).map(|(_, raw)| Some(raw)),
            None => Ok(None),
        }
    }

    /// The packed records of revisions `from..=until`, ascending.
    pub(crate) fn range(
        &self,
        from: Revision,
        until: Revision,
    ) -> impl Iterator<Item = Result<(Revision, Vec<u8>)>> + '_ {
        let start = self.entries.partition_point(|(r, _, _)| *r < from);
        let end = self.entries.partition_point(|(r, _, _)| *r <= until);
        (start..end.max(start)).map(move |index| self.read(index))
    }

    /// The newest packed revision (0 when empty).
    pub(crate) fn last_revision(&self) -> Revision {
        self.entries.last().map_or(0, |(r, _, _)| *r)
    }
}

/// Writes a packed history file (during a rewrite).
pub(crate) struct PackedWriter {
    out: BufWriter<File>,
    path: PathBuf,
    last: Revision,
    offset: u64,
    entries: Vec<(Revision, u64, u32)>,
}

impl PackedWriter {
    /// Creates (truncates) the file at `path`.
    ///
    /// Errors: [`Error::Unavailable`] on I/O errors.
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(io(path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(MAGIC).map_err(io(path))?;
        Ok(PackedWriter { out, path: path.to_path_buf(), last: 0, offset: MAGIC.len() as u64, entries: Vec::new() })
    }

    /// Appends the (checksummed) record of `revision`; revisions must ascend.
    ///
    /// Errors: [`Error::Internal`] for a revision out of order; [`Error::Unavailable`] on I/O
    /// errors.
    pub(crate) fn append(&mut self, revision: Revision, record: &[u8]) -> Result<()> {
        if revision <= self.last {
            return Err(Error::internal(format!("packed history: revision {revision} after {}", self.last)));
        }
        let len = u32::try_from(record.len()).map_err(|_| Error::internal("packed history: record over 4 GiB"))?;
        let io = io(&self.path);
        self.out.write_all(&revision.to_be_bytes()).map_err(&io)?;
        self.out.write_all(&len.to_be_bytes()).map_err(&io)?;
        self.out.write_all(record).map_err(&io)?;
        self.last = revision;
        self.offset += FRAME_HEADER as u64;
        self.entries.push((revision, self.offset, len));
        self.offset += u64::from(len);
        Ok(())
    }

    /// Writes out and fsyncs the file, then opens it for reading (records verified as they
    /// are read; the whole file is verified when the generation is opened again).
    ///
    /// Errors: [`Error::Unavailable`] on I/O errors.
    pub(crate) fn finish(self) -> Result<Packed> {
        let io = io(&self.path);
        let file = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(&io)?;
        drop(file);
        let file = File::open(&self.path).map_err(&io)?;
        Ok(Packed { file: Some((file, self.path.clone())), entries: self.entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Version;
    use bytes::Bytes;

    fn record(revision: Revision, value: &'static [u8]) -> Vec<u8> {
        let version = Version {
            live: true,
            create_revision: 2,
            version: 1,
            prev_revision: 0,
            expires_at_ms: 0,
            value: Bytes::from_static(value),
        };
        layout::encode_event(revision, b"/k", &version)
    }

    #[test]
    fn a_packed_file_reads_back_and_a_flipped_byte_is_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(PACKED_FILE);
        let mut writer = PackedWriter::create(&path).expect("create");
        writer.append(3, &record(3, b"three")).expect("append");
        writer.append(7, &record(7, b"seven")).expect("append");
        assert!(writer.append(7, &record(7, b"again")).is_err(), "revisions ascend");
        let packed = writer.finish().expect("finish");
        assert_eq!(packed.last_revision(), 7);
        assert_eq!(packed.get(7).expect("get"), Some(record(7, b"seven")));
        assert_eq!(packed.get(5).expect("get"), None);
        let revisions: Vec<_> = packed.range(4, 100).map(|e| e.expect("read").0).collect();
        assert_eq!(revisions, vec![7]);
        assert!(Packed::open(&dir.path().join("absent")).expect("absent").range(0, u64::MAX).next().is_none());

        let mut raw = std::fs::read(&path).expect("read");
        let last = raw.len() - 2;
        raw[last] ^= 0x01;
        std::fs::write(&path, &raw).expect("write");
        let error = Packed::open(&path).expect_err("a flipped byte");
        assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
        std::fs::write(&path, &raw[..raw.len() - 3]).expect("cut");
        assert!(matches!(Packed::open(&path), Err(Error::Corrupt { .. })));
    }
}
