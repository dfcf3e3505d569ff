//! The on-disk layout: one sled tree, key spaces told apart by their first byte.
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `h` rev | key + [`Version`] with value | the history, the source of truth: each retained revision's key, metadata and value |
//! | `x` deadline key | empty | TTL index: keys that expire at `deadline` (unix ms) |
//! | `m` name | u64 | metadata: compaction revision, compaction progress, format version ([`FORMAT`]) |
//!
//! Revisions are big-endian so that byte order is numeric order. A write is one plain insert
//! of its history entry (a sled `Batch` costs about four plain inserts, an on-disk per-key
//! index another insert); the per-key index lives in memory ([`crate::index`]) and is rebuilt
//! from the history on open. A crash can cut a write only between its history insert and its
//! TTL index change: open re-inserts the TTL entry of every live key with a deadline, and the
//! sweeper ignores stale entries.
//!
//! ## History record formats
//!
//! A history value is one of two formats, told apart by its first byte:
//!
//! | first byte | format | layout |
//! |---|---|---|
//! | `0x00` | 1 (written before checksums) | key length (u32 BE) + key + version record |
//! | `0xFF` ([`RECORD_V2`]) | 2 (written now) | `0xFF` + CRC-32 (u32 BE) + key length + key + version record |
//!
//! Format 2's CRC-32 (IEEE, `crc32fast`) covers the record's revision (8 bytes BE, the sled
//! key or the packed frame's revision) followed by everything after the checksum field, so a
//! flipped byte in the key, the metadata or the value, or a record found under another
//! revision, reads as [`Error::Corrupt`] naming the key (or the revision when the key itself
//! is unreadable) — never as a wrong value. Format 1 records (a data directory written before
//! checksums; a key length below 2^24 always starts with `0x00`) are still read, unverified;
//! a rewrite upgrades every record it copies to format 2 ([`upgrade`]). Any other first byte
//! is corrupt. The packed history of a generation ([`crate::packed`]) holds format 2 records
//! only.

use apistore::kv::{KeyValue, Revision};
use apistore::{Error, Result};
use bytes::Bytes;

/// Prefix of the history space.
pub(crate) const HISTORY: u8 = b'h';
/// Prefix of the TTL index.
pub(crate) const EXPIRY: u8 = b'x';
/// Prefix of the metadata.
pub(crate) const META: u8 = b'm';

/// Metadata key: the compaction revision (reads below it fail).
pub(crate) const META_COMPACT: &[u8] = b"mcompact";
/// Metadata key: history below this revision has been physically removed.
pub(crate) const META_COMPACTED_THROUGH: &[u8] = b"mcompacted_through";
/// Metadata key: the data format version ([`FORMAT`]); absent in directories written before it.
pub(crate) const META_FORMAT: &[u8] = b"mformat";

/// The data format this version writes: 2 = checksummed history records (format 2 below) and
/// packed histories in rewritten generations; 3 = also a write-ahead log beside the
/// generations (`apistore-wal/`, [`crate::wal`]) that may hold acknowledged writes sled does not
/// have yet. Open records it (durably, before anything is logged); a directory of a higher
/// format (a newer version's) is refused, and versions before format 2 cannot read what this
/// one writes (they refuse format 2 records as corrupt, and a rewritten generation's history is
/// in its packed file, which they do not know) while a version of format 2 would ignore the
/// log and lose what only it holds: no downgrade.
pub(crate) const FORMAT: u64 = 3;

/// Rejects keys the layout cannot store. Errors: [`Error::Invalid`].
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("key", key, "must not be empty"));
    }
    if key.as_bytes().contains(&0) {
        return Err(Error::invalid("key", key.replace('\0', "\\0"), "must not contain NUL"));
    }
    Ok(())
}

/// `h` + rev.
pub(crate) fn history_key(revision: Revision) -> [u8; 9] {
    let mut out = [HISTORY; 9];
    out[1..].copy_from_slice(&revision.to_be_bytes());
    out
}

/// `x` + deadline + key.
pub(crate) fn expiry_key(deadline_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 9);
    out.push(EXPIRY);
    out.extend_from_slice(&deadline_ms.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Splits a TTL-index key into (deadline, key).
pub(crate) fn parse_expiry_key(raw: &[u8]) -> Result<(u64, &[u8])> {
    if raw.len() < 9 || raw[0] != EXPIRY {
        return Err(corrupt("expiry key", raw));
    }
    Ok((be_u64(&raw[1..9])?, &raw[9..]))
}

/// Reads a big-endian u64. Errors: [`Error::Internal`] on a wrong length (corrupt data).
pub(crate) fn be_u64(raw: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = raw.try_into().map_err(|_| corrupt("u64", raw))?;
    Ok(u64::from_be_bytes(bytes))
}

pub(crate) fn corrupt(what: &str, raw: &[u8]) -> Error {
    Error::internal(format!("sled backend: corrupt {what} ({} bytes)", raw.len()))
}

/// First byte of a format 2 (checksummed) history record.
pub(crate) const RECORD_V2: u8 = 0xFF;
/// First byte of a format 1 record (the high byte of its key length).
const RECORD_V1: u8 = 0x00;
const V2_HEADER: usize = 1 + 4;

/// The error of a history record that fails its checksum or does not parse.
fn corrupt_record(revision: Revision, what: &str) -> Error {
    Error::Corrupt { key: format!("history revision {revision}"), message: format!("sled backend: {what}") }
}

/// `error` naming `key` instead of the revision (callers that know which key they read).
pub(crate) fn name_key(error: Error, key: &[u8]) -> Error {
    match error {
        Error::Corrupt { message, key: at } => {
            Error::Corrupt { key: String::from_utf8_lossy(key).into_owned(), message: format!("{message} ({at})") }
        }
        other => other,
    }
}

fn checksum(revision: Revision, body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&revision.to_be_bytes());
    hasher.update(body);
    hasher.finalize()
}

/// The body of a history record (key length, key, version record) after checking its format
/// and, for format 2, its checksum. Errors: [`Error::Corrupt`].
fn record_body(revision: Revision, raw: &[u8]) -> Result<&[u8]> {
    match raw.first() {
        Some(&RECORD_V2) if raw.len() >= V2_HEADER => {
            let stored = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]);
            let body = &raw[V2_HEADER..];
            if checksum(revision, body) != stored {
                return Err(corrupt_record(revision, "history record fails its checksum"));
            }
            Ok(body)
        }
        Some(&RECORD_V1) => Ok(raw),
        _ => Err(corrupt_record(revision, "unknown history record format")),
    }
}

/// The key of a history record as stored, without verifying anything (to name the key of a
/// record that failed its checksum); None when it does not parse.
pub(crate) fn unverified_key(raw: &[u8]) -> Option<&[u8]> {
    let body = match raw.first()? {
        &RECORD_V2 => raw.get(V2_HEADER..)?,
        _ => raw,
    };
    split_event(0, body).ok().map(|(key, _)| key)
}

/// The ceiling file's text: the revision in decimal, a space and the CRC-32 of the decimal
/// text (8 hex digits). Files written before checksums hold the decimal alone; both parse
/// ([`parse_ceiling`]).
pub(crate) fn encode_ceiling(ceiling: Revision) -> String {
    let text = ceiling.to_string();
    format!("{text} {:08x}\n", crc32fast::hash(text.as_bytes()))
}

/// Parses the ceiling file's text. Errors: why it is corrupt.
pub(crate) fn parse_ceiling(text: &str) -> std::result::Result<Revision, &'static str> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let (number, sum) = match text.split_once(' ') {
        Some((number, sum)) => (number, Some(sum)),
        None => (text, None),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a number");
    }
    if let Some(sum) = sum {
        let valid = sum.len() == 8 && u32::from_str_radix(sum, 16).ok() == Some(crc32fast::hash(number.as_bytes()));
        if !valid {
            return Err("checksum mismatch");
        }
    }
    number.parse().map_err(|_| "not a number")
}

/// Checks a history record's format and checksum. Errors: [`Error::Corrupt`].
pub(crate) fn verify_record(revision: Revision, raw: &[u8]) -> Result<()> {
    if raw.first() != Some(&RECORD_V2) {
        return Err(corrupt_record(revision, "packed record without a checksum"));
    }
    let body = record_body(revision, raw)?;
    split_event(revision, body).map(|_| ())
}

/// The record in format 2: `raw` itself when it already is (verified), else re-encoded.
/// Errors: [`Error::Corrupt`].
pub(crate) fn upgrade(revision: Revision, raw: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>> {
    let body = record_body(revision, raw)?;
    if raw[0] == RECORD_V2 {
        split_event(revision, body)?;
        return Ok(std::borrow::Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(V2_HEADER + body.len());
    out.push(RECORD_V2);
    out.extend_from_slice(&checksum(revision, body).to_be_bytes());
    out.extend_from_slice(body);
    Ok(std::borrow::Cow::Owned(out))
}

const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;
const VERSION_HEADER: usize = 1 + 8 * 4;

/// One version of a key (`i` space): a put with its value, or a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    /// False for a tombstone (the key was deleted at this revision).
    pub live: bool,
    /// Create revision of the key (0 for a tombstone).
    pub create_revision: Revision,
    /// Version counter of the key (0 for a tombstone).
    pub version: u64,
    /// The key's mod_revision before this write (0 when it did not exist): where the
    /// previous value of a watch event lives.
    pub prev_revision: Revision,
    /// Unix ms after which the key expires; 0 = never (and for a tombstone).
    pub expires_at_ms: u64,
    /// The value (empty for a tombstone).
    pub value: Bytes,
}

impl Version {
    /// The version record: header, then the value.
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Bytes of the encoded record.
    fn encoded_len(&self) -> usize {
        VERSION_HEADER + self.value.len()
    }

    /// Appends the record to `out` (one copy of the value, into the caller's buffer).
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(if self.live { KIND_PUT } else { KIND_DELETE });
        out.extend_from_slice(&self.create_revision.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.prev_revision.to_be_bytes());
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        out.extend_from_slice(&self.value);
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<Self> {
        let mut version = Self::decode_header(raw)?;
        version.value = Bytes::copy_from_slice(&raw[VERSION_HEADER..]);
        Ok(version)
    }

    /// Decodes everything but the value (left empty).
    pub(crate) fn decode_header(raw: &[u8]) -> Result<Self> {
        if raw.len() < VERSION_HEADER || !matches!(raw[0], KIND_PUT | KIND_DELETE) {
            return Err(corrupt("version record", raw));
        }
        Ok(Version {
            live: raw[0] == KIND_PUT,
            create_revision: be_u64(&raw[1..9])?,
            version: be_u64(&raw[9..17])?,
            prev_revision: be_u64(&raw[17..25])?,
            expires_at_ms: be_u64(&raw[25..33])?,
            value: Bytes::new(),
        })
    }

    /// The key-value of a live version written at `revision`; None for a tombstone.
    pub(crate) fn into_kv(self, key: &[u8], revision: Revision) -> Result<Option<KeyValue>> {
        if !self.live {
            return Ok(None);
        }
        Ok(Some(KeyValue {
            key: key_string(key)?,
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: revision,
            version: self.version,
        }))
    }
}

/// The history value of `revision` in format 2: tag, checksum, key length (u32), key, then
/// the full version record, written into one buffer of exactly that size.
pub(crate) fn encode_event(revision: Revision, key: &[u8], version: &Version) -> Vec<u8> {
    let mut out = Vec::with_capacity(V2_HEADER + 4 + key.len() + version.encoded_len());
    out.push(RECORD_V2);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    version.encode_into(&mut out);
    let sum = checksum(revision, &out[V2_HEADER..]);
    out[1..V2_HEADER].copy_from_slice(&sum.to_be_bytes());
    debug_assert_eq!(out.len(), out.capacity());
    out
}

/// Splits the history value of `revision` into (key, version with value), verifying it.
/// Errors: [`Error::Corrupt`].
pub(crate) fn decode_event(revision: Revision, raw: &[u8]) -> Result<(&[u8], Version)> {
    let (key, record) = split_event(revision, record_body(revision, raw)?)?;
    Ok((key, Version::decode(record).map_err(|_| corrupt_record(revision, "bad version record"))?))
}

/// Splits the history value of `revision` into (key, version without its value), verifying
/// it. Errors: [`Error::Corrupt`].
pub(crate) fn decode_event_header(revision: Revision, raw: &[u8]) -> Result<(&[u8], Version)> {
    let (key, record) = split_event(revision, record_body(revision, raw)?)?;
    Ok((key, Version::decode_header(record).map_err(|_| corrupt_record(revision, "bad version record"))?))
}

fn split_event(revision: Revision, raw: &[u8]) -> Result<(&[u8], &[u8])> {
    if raw.len() < 4 {
        return Err(corrupt_record(revision, "cut history record"));
    }
    let len = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
    if raw.len() < 4 + len {
        return Err(corrupt_record(revision, "cut history record"));
    }
    Ok(raw[4..].split_at(len))
}

/// A stored key as a `String`. Errors: [`Error::Internal`] when not UTF-8 (corrupt data).
pub(crate) fn key_string(key: &[u8]) -> Result<String> {
    String::from_utf8(key.to_vec()).map_err(|_| corrupt("key (not UTF-8)", key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let version = Version {
            live: true,
            create_revision: 2,
            version: 3,
            prev_revision: 5,
            expires_at_ms: 77,
            value: Bytes::from_static(b"v"),
        };
        assert_eq!(Version::decode(&version.encode()).expect("decode"), version);
        let event = encode_event(9, b"/key", &version);
        assert_eq!(event.len(), event.capacity(), "one buffer of exactly the record's size");
        let header = decode_event_header(9, &event).expect("header").1;
        assert_eq!(header, Version { value: Bytes::new(), ..version.clone() });
        assert_eq!(decode_event(9, &event).expect("event"), (&b"/key"[..], version.clone()));
        assert!(decode_event(9, b"\0\0\0\x09ab").is_err());
        // A format 1 record (no checksum) still reads, and upgrades to exactly format 2.
        let v1 = &event[V2_HEADER..];
        assert_eq!(decode_event(9, v1).expect("format 1"), (&b"/key"[..], version.clone()));
        assert_eq!(upgrade(9, v1).expect("upgrade").as_ref(), &event[..]);
        // A flipped byte anywhere, or the record under another revision, is corrupt.
        for at in 0..event.len() {
            let mut flipped = event.clone();
            flipped[at] ^= 0x10;
            let error = decode_event(9, &flipped).expect_err("flipped byte");
            assert!(matches!(error, Error::Corrupt { .. }), "byte {at}: {error:?}");
        }
        assert!(matches!(decode_event(10, &event), Err(Error::Corrupt { .. })));
        let named = name_key(decode_event(10, &event).expect_err("moved"), b"/key");
        assert!(matches!(&named, Error::Corrupt { key, .. } if key == "/key"), "{named:?}");
        assert!(Version::decode(b"\x07short").is_err());
        let raw = expiry_key(42, b"/k");
        let (deadline, key) = parse_expiry_key(&raw).expect("expiry");
        assert_eq!((deadline, key), (42, &b"/k"[..]));
        assert!(check_key("a\0b").is_err());
        assert_eq!(parse_ceiling(&encode_ceiling(12_345)), Ok(12_345));
        assert_eq!(parse_ceiling("777\n"), Ok(777), "a ceiling file written before checksums");
        assert!(parse_ceiling(&encode_ceiling(12_345).replace("123", "124")).is_err());
        assert!(parse_ceiling("12x").is_err() && parse_ceiling("").is_err() && parse_ceiling("1 2").is_err());
        assert_eq!(unverified_key(&event), Some(&b"/key"[..]));
        assert!(check_key("").is_err());
    }
}
