//! The `KvBackend` behaviour suite: revisions, conditional writes, ranges at a revision,
//! watch order from an old revision, compaction errors, TTL.

use super::Behaviour;

/// The behaviours of this suite, named.
pub fn behaviours() -> Vec<(String, Behaviour)> {
    Vec::new()
}
