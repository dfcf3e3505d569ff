//! The on-disk layout: one sled tree, key spaces told apart by their first byte.
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `h` rev | key + [`Version`] with value | the history, the source of truth: each retained revision's key, metadata and value |
//! | `x` deadline key | empty | TTL index: keys that expire at `deadline` (unix ms) |
//! | `m` name | u64 | metadata: compaction revision, compaction progress |
//!
//! Revisions are big-endian so that byte order is numeric order. A write is one plain insert
//! of its history entry (a sled `Batch` costs about four plain inserts, an on-disk per-key
//! index another insert); the per-key index lives in memory ([`crate::index`]) and is rebuilt
//! from the history on open. A crash can cut a write only between its history insert and its
//! TTL index change: open re-inserts the TTL entry of every live key with a deadline, and the
//! sweeper ignores stale entries.

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

/// The history value of a revision: key length (u32), key, then the full version record,
/// written into one buffer of exactly that size.
pub(crate) fn encode_event(key: &[u8], version: &Version) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len() + version.encoded_len());
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    version.encode_into(&mut out);
    debug_assert_eq!(out.len(), out.capacity());
    out
}

/// Splits a history value into (key, version with value).
pub(crate) fn decode_event(raw: &[u8]) -> Result<(&[u8], Version)> {
    let (key, record) = split_event(raw)?;
    Ok((key, Version::decode(record)?))
}

/// Splits a history value into (key, version without its value).
pub(crate) fn decode_event_header(raw: &[u8]) -> Result<(&[u8], Version)> {
    let (key, record) = split_event(raw)?;
    Ok((key, Version::decode_header(record)?))
}

fn split_event(raw: &[u8]) -> Result<(&[u8], &[u8])> {
    if raw.len() < 4 {
        return Err(corrupt("history record", raw));
    }
    let len = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
    if raw.len() < 4 + len {
        return Err(corrupt("history record", raw));
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
        let event = encode_event(b"/key", &version);
        assert_eq!(event.len(), event.capacity(), "one buffer of exactly the record's size");
        let header = decode_event_header(&event).expect("header").1;
        assert_eq!(header, Version { value: Bytes::new(), ..version.clone() });
        assert_eq!(decode_event(&event).expect("event"), (&b"/key"[..], version));
        assert!(decode_event(b"\0\0\0\x09ab").is_err());
        assert!(Version::decode(b"\x07short").is_err());
        let raw = expiry_key(42, b"/k");
        let (deadline, key) = parse_expiry_key(&raw).expect("expiry");
        assert_eq!((deadline, key), (42, &b"/k"[..]));
        assert!(check_key("a\0b").is_err());
        assert!(check_key("").is_err());
    }
}
