//! The on-disk layout: one sled tree, four key spaces told apart by their first byte, so
//! every write is one atomic `apply_batch`.
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `k` key | [`Latest`] | the live keys: revision metadata of each key's latest version |
//! | `i` key `\0` rev | [`Version`] | every version of every key (MVCC), tombstones included |
//! | `h` rev | key | the history: which key each revision wrote (watch replay, compaction) |
//! | `x` deadline key | empty | TTL index: keys that expire at `deadline` (unix ms) |
//! | `m` name | u64 | metadata: compaction revision, revision ceiling, ... |
//!
//! Revisions are big-endian so that byte order is numeric order. Keys must not contain NUL
//! (the separator between a key and its revisions in `i`).

use apistore::kv::{KeyValue, Revision};
use apistore::{Error, Result};
use bytes::Bytes;

/// Prefix of the live-key space.
pub(crate) const LATEST: u8 = b'k';
/// Prefix of the version space.
pub(crate) const VERSIONS: u8 = b'i';
/// Prefix of the history space.
pub(crate) const HISTORY: u8 = b'h';
/// Prefix of the TTL index.
pub(crate) const EXPIRY: u8 = b'x';

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

/// `k` + key.
pub(crate) fn latest_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(LATEST);
    out.extend_from_slice(key);
    out
}

/// `i` + key + `\0` + rev.
pub(crate) fn version_key(key: &[u8], revision: Revision) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 10);
    out.push(VERSIONS);
    out.extend_from_slice(key);
    out.push(0);
    out.extend_from_slice(&revision.to_be_bytes());
    out
}

/// Splits a version-space key into (key, revision).
pub(crate) fn parse_version_key(raw: &[u8]) -> Result<(&[u8], Revision)> {
    if raw.len() < 10 || raw[0] != VERSIONS || raw[raw.len() - 9] != 0 {
        return Err(corrupt("version key", raw));
    }
    let (key, rev) = raw[1..].split_at(raw.len() - 10);
    Ok((key, be_u64(&rev[1..])?))
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

/// The latest version of a live key (`k` space). The value lives in the version space at
/// `mod_revision`, so a write stores the value once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Latest {
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: u64,
    /// Unix ms after which the key expires; 0 = never.
    pub expires_at_ms: u64,
}

impl Latest {
    pub(crate) fn encode(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[0..8].copy_from_slice(&self.create_revision.to_be_bytes());
        out[8..16].copy_from_slice(&self.mod_revision.to_be_bytes());
        out[16..24].copy_from_slice(&self.version.to_be_bytes());
        out[24..32].copy_from_slice(&self.expires_at_ms.to_be_bytes());
        out
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<Self> {
        if raw.len() != 32 {
            return Err(corrupt("latest record", raw));
        }
        Ok(Latest {
            create_revision: be_u64(&raw[0..8])?,
            mod_revision: be_u64(&raw[8..16])?,
            version: be_u64(&raw[16..24])?,
            expires_at_ms: be_u64(&raw[24..32])?,
        })
    }
}

const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;
const VERSION_HEADER: usize = 1 + 8 * 3;

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
    /// The value (empty for a tombstone).
    pub value: Bytes,
}

impl Version {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(VERSION_HEADER + self.value.len());
        out.push(if self.live { KIND_PUT } else { KIND_DELETE });
        out.extend_from_slice(&self.create_revision.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.prev_revision.to_be_bytes());
        out.extend_from_slice(&self.value);
        out
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<Self> {
        if raw.len() < VERSION_HEADER || !matches!(raw[0], KIND_PUT | KIND_DELETE) {
            return Err(corrupt("version record", raw));
        }
        Ok(Version {
            live: raw[0] == KIND_PUT,
            create_revision: be_u64(&raw[1..9])?,
            version: be_u64(&raw[9..17])?,
            prev_revision: be_u64(&raw[17..25])?,
            value: Bytes::copy_from_slice(&raw[VERSION_HEADER..]),
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

/// A stored key as a `String`. Errors: [`Error::Internal`] when not UTF-8 (corrupt data).
pub(crate) fn key_string(key: &[u8]) -> Result<String> {
    String::from_utf8(key.to_vec()).map_err(|_| corrupt("key (not UTF-8)", key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_round_trip_and_sort_by_key_then_revision() {
        let a2 = version_key(b"a", 2);
        let a10 = version_key(b"a", 10);
        let ab1 = version_key(b"a/b", 1);
        assert!(a2 < a10 && a10 < ab1);
        assert_eq!(parse_version_key(&a10).expect("parse"), (&b"a"[..], 10));
        assert!(parse_version_key(b"ix").is_err());
    }

    #[test]
    fn records_round_trip() {
        let latest = Latest { create_revision: 2, mod_revision: 9, version: 3, expires_at_ms: 77 };
        assert_eq!(Latest::decode(&latest.encode()).expect("decode"), latest);
        let version =
            Version { live: true, create_revision: 2, version: 3, prev_revision: 5, value: Bytes::from_static(b"v") };
        assert_eq!(Version::decode(&version.encode()).expect("decode"), version);
        assert!(Version::decode(b"\x07short").is_err());
        let raw = expiry_key(42, b"/k");
        let (deadline, key) = parse_expiry_key(&raw).expect("expiry");
        assert_eq!((deadline, key), (42, &b"/k"[..]));
        assert!(check_key("a\0b").is_err());
        assert!(check_key("").is_err());
    }
}
