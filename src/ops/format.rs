//! The backup format: line-oriented text, every line checksummed, so a backup streams in
//! and out in bounded memory and any corruption or truncation is found before a restore
//! writes anything.
//!
//! ```text
//! APISTORE-BACKUP 1
//! H <sha256 of the JSON> {"revision":R,"compactRevision":C,"prefix":"/registry","resources":null}
//! C <sha256 of the JSON> [{"k":"/registry/configmaps/default/a","v":"<base64>","c":5,"m":9,"n":3}, ...]
//! C <sha256 of the JSON> [{"k":"/registry/events/default/e","v":"<base64>","c":7,"m":7,"n":1,"t":3599000}, ...]
//! ...
//! E <sha256 of the JSON> {"chunks":N,"keys":K,"bytes":B}
//! ```
//!
//! - the first line names the format and its version;
//! - `H`: the header: the revision the backup is consistent at (`revision`), the source's
//!   compaction revision, the key prefix and the resources taken (null: all);
//! - `C`: a chunk of records in key order: key, base64 value (the stored bytes, already
//!   transformed — encrypted data stays encrypted), create and mod revision, version, and
//!   for a key with a TTL (`t`, absent otherwise) the milliseconds it had left when the backup
//!   was taken; a restore gives the key that TTL again, counted from the restore (etcd's
//!   snapshot restore does the same with its leases). Backups written before `t` existed
//!   read as before: their keys have no TTL;
//! - `E`: the trailer: the number of chunks, keys and value bytes (a truncated file has none
//!   or the wrong counts).
//!
//! Each checksum is the lowercase hex SHA-256 of the JSON text after it on the same line.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::kv::KeyValue;

/// The first line of every backup.
pub const MAGIC: &str = "APISTORE-BACKUP 1";

/// Records per chunk.
pub const CHUNK_RECORDS: usize = 500;

/// The header line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// The revision the backup is consistent at.
    pub revision: u64,
    /// The source's compaction revision when the backup was taken.
    pub compact_revision: u64,
    /// The key prefix backed up (`/registry`).
    pub prefix: String,
    /// The resources taken (`configmaps`, `deployments.apps`); None: everything under the
    /// prefix.
    pub resources: Option<Vec<String>>,
}

/// The trailer line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    /// Chunk lines written.
    pub chunks: u64,
    /// Keys written.
    pub keys: u64,
    /// Value bytes written.
    pub bytes: u64,
}

/// One key of a chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The backend key.
    pub k: String,
    /// The stored value, base64.
    pub v: String,
    /// create_revision at the source.
    pub c: u64,
    /// mod_revision at the source.
    pub m: u64,
    /// version at the source.
    pub n: u64,
    /// The TTL the key had left when the backup was taken, milliseconds; None: no TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<u64>,
}

impl Record {
    /// The record of a key, with the TTL it has left (None: none).
    pub fn from_kv(kv: &KeyValue, ttl: Option<Duration>) -> Record {
        Record {
            t: ttl.map(|left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1)),
            k: kv.key.clone(),
            v: base64::engine::general_purpose::STANDARD.encode(&kv.value),
            c: kv.create_revision,
            m: kv.mod_revision,
            n: kv.version,
        }
    }

    /// The TTL to restore the key with (None: none).
    pub fn ttl(&self) -> Option<Duration> {
        self.t.map(Duration::from_millis)
    }

    /// The stored value.
    ///
    /// Errors: [`Error::BadRequest`] when it is not base64.
    pub fn value(&self) -> Result<Bytes> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.v)
            .map(Bytes::from)
            .map_err(|e| Error::BadRequest { message: format!("backup record {:?}: value is not base64: {e}", self.k) })
    }
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A checksummed line: `<tag> <sha256> <json>\n`.
pub fn line<T: Serialize>(tag: char, body: &T) -> Result<String> {
    let json = serde_json::to_string(body).map_err(Error::internal)?;
    Ok(format!("{tag} {} {json}\n", sha256_hex(&json)))
}

/// A parsed line of a backup.
#[derive(Debug, PartialEq)]
pub enum Line {
    /// `H`.
    Header(Header),
    /// `C`.
    Chunk(Vec<Record>),
    /// `E`.
    Trailer(Trailer),
}

/// Parses and verifies line `number` (1-based, for messages) of a backup.
///
/// Errors: [`Error::BadRequest`] naming the line when its tag is unknown, its checksum does
/// not match or its JSON does not decode.
pub fn parse_line(number: usize, text: &str) -> Result<Line> {
    let bad = |why: String| Error::BadRequest { message: format!("backup line {number}: {why}") };
    let text = text.trim_end_matches(['\n', '\r']);
    let mut parts = text.splitn(3, ' ');
    let (Some(tag), Some(sum), Some(json)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("not a backup line (expected `<tag> <sha256> <json>`)".into()));
    };
    if sha256_hex(json) != sum {
        return Err(bad("checksum mismatch: the backup is corrupt".into()));
    }
    let decode = |e: serde_json::Error| bad(format!("does not decode: {e}"));
    match tag {
        "H" => serde_json::from_str(json).map(Line::Header).map_err(decode),
        "C" => serde_json::from_str(json).map(Line::Chunk).map_err(decode),
        "E" => serde_json::from_str(json).map(Line::Trailer).map_err(decode),
        other => Err(bad(format!("unknown line tag {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_corruption_is_named() {
        let header = Header { revision: 9, compact_revision: 2, prefix: "/registry".into(), resources: None };
        let text = line('H', &header).unwrap();
        assert_eq!(parse_line(2, &text).unwrap(), Line::Header(header));
        let tampered = text.replace("\"revision\":9", "\"revision\":8");
        let e = parse_line(2, &tampered).unwrap_err();
        assert!(e.to_string().contains("backup line 2: checksum mismatch"), "{e}");
        assert!(parse_line(3, "garbage").unwrap_err().to_string().contains("backup line 3"));
        let record = Record { k: "/k".into(), v: "!!".into(), c: 1, m: 1, n: 1, t: None };
        assert!(record.value().is_err());
    }

    #[test]
    fn a_ttl_is_written_only_when_there_is_one_and_old_records_read_without() {
        let kv = KeyValue {
            key: "/e".into(),
            value: Bytes::from_static(b"x"),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
        };
        let plain = serde_json::to_string(&Record::from_kv(&kv, None)).unwrap();
        assert_eq!(plain, r#"{"k":"/e","v":"eA==","c":2,"m":3,"n":2}"#);
        let with_ttl = Record::from_kv(&kv, Some(Duration::from_millis(1500)));
        assert_eq!(serde_json::to_string(&with_ttl).unwrap(), r#"{"k":"/e","v":"eA==","c":2,"m":3,"n":2,"t":1500}"#);
        assert_eq!(with_ttl.ttl(), Some(Duration::from_millis(1500)));
        // A backup of the first format version (no `t`) reads as before: no TTL.
        let old: Record = serde_json::from_str(&plain).unwrap();
        assert_eq!(old.ttl(), None);
    }
}
