//! The in-memory key index (like etcd's `treeIndex`): for every key, the revisions of its
//! versions still in the history, with their metadata. Rebuilt from the history on open.
//!
//! Reads find "the newest version of a key at or below revision R" here and then fetch the
//! value with one point read of the history entry; a write is one history insert plus an
//! in-memory push. Memory: about the key's length plus 48 bytes per retained version.

use std::collections::BTreeMap;
use std::ops::Bound;

use apistore::kv::Revision;

use crate::layout::Version;

/// Metadata of one version (live or tombstone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub live: bool,
    pub create_revision: Revision,
    pub version: u64,
    /// Unix ms after which the key expires; 0 = never.
    pub expires_at_ms: u64,
}

impl Meta {
    pub(crate) fn of(version: &Version) -> Self {
        Meta {
            live: version.live,
            create_revision: version.create_revision,
            version: version.version,
            expires_at_ms: version.expires_at_ms,
        }
    }
}

/// Every key's retained versions, ascending by revision.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    keys: BTreeMap<Vec<u8>, Vec<(Revision, Meta)>>,
}

impl KeyIndex {
    /// Records version `revision` of `key` (revisions arrive in increasing order per key).
    pub(crate) fn push(&mut self, key: &[u8], revision: Revision, meta: Meta) {
        match self.keys.get_mut(key) {
            Some(versions) => versions.push((revision, meta)),
            None => {
                self.keys.insert(key.to_vec(), vec![(revision, meta)]);
            }
        }
    }

    /// The newest version of `key` at or below `revision` (possibly a tombstone).
    pub(crate) fn at(&self, key: &[u8], revision: Revision) -> Option<(Revision, Meta)> {
        newest_at(self.keys.get(key)?, revision)
    }

    /// Keys of `[start, end)` (empty `end` = unbounded) live at `revision`: the total count
    /// and the first `limit` of them (0 = all; none when `count_only`) with the revision of
    /// their version then.
    pub(crate) fn range_at(
        &self,
        start: &[u8],
        end: &[u8],
        revision: Revision,
        limit: u64,
        count_only: bool,
    ) -> (Vec<(Vec<u8>, Revision)>, u64) {
        let upper = if end.is_empty() { Bound::Unbounded } else { Bound::Excluded(end) };
        let mut found = Vec::new();
        let mut count = 0u64;
        for (key, versions) in self.keys.range::<[u8], _>((Bound::Included(start), upper)) {
            if let Some((at, meta)) = newest_at(versions, revision) {
                if meta.live {
                    count += 1;
                    if !count_only && (limit == 0 || (found.len() as u64) < limit) {
                        found.push((key.clone(), at));
                    }
                }
            }
        }
        (found, count)
    }

    /// Drops the versions of `key` that compaction at `revision` makes unreachable: all
    /// older than its newest version below `revision`, and that one too when it is a
    /// tombstone. Returns the dropped revisions.
    pub(crate) fn compact_key(&mut self, key: &[u8], revision: Revision) -> Vec<Revision> {
        let Some(versions) = self.keys.get_mut(key) else { return Vec::new() };
        let below = versions.partition_point(|(at, _)| *at < revision);
        if below == 0 {
            return Vec::new();
        }
        let newest_below_is_tombstone = !versions[below - 1].1.live;
        let drop_count = if newest_below_is_tombstone { below } else { below - 1 };
        let dropped: Vec<Revision> = versions.drain(..drop_count).map(|(at, _)| at).collect();
        if versions.is_empty() {
            self.keys.remove(key);
        }
        dropped
    }

    /// `(key, deadline)` of every live key with a TTL.
    pub(crate) fn expiring(&self) -> Vec<(Vec<u8>, u64)> {
        self.keys
            .iter()
            .filter_map(|(key, versions)| {
                let (_, meta) = versions.last()?;
                (meta.live && meta.expires_at_ms != 0).then(|| (key.clone(), meta.expires_at_ms))
            })
            .collect()
    }

    /// Number of retained versions of `key` (tests).
    #[cfg(test)]
    pub(crate) fn versions_of(&self, key: &[u8]) -> usize {
        self.keys.get(key).map_or(0, Vec::len)
    }
}

fn newest_at(versions: &[(Revision, Meta)], revision: Revision) -> Option<(Revision, Meta)> {
    let upto = versions.partition_point(|(at, _)| *at <= revision);
    upto.checked_sub(1).map(|i| versions[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(live: bool) -> Meta {
        Meta { live, create_revision: 2, version: 1, expires_at_ms: 0 }
    }

    #[test]
    fn reads_at_a_revision_take_the_newest_version_then() {
        let mut index = KeyIndex::default();
        index.push(b"/a", 2, meta(true));
        index.push(b"/a", 5, meta(false));
        index.push(b"/b", 3, meta(true));
        assert_eq!(index.at(b"/a", 1), None);
        assert_eq!(index.at(b"/a", 4).map(|(r, m)| (r, m.live)), Some((2, true)));
        assert_eq!(index.at(b"/a", 9).map(|(r, m)| (r, m.live)), Some((5, false)));
        let (found, count) = index.range_at(b"/", b"", 4, 0, false);
        assert_eq!((found, count), (vec![(b"/a".to_vec(), 2), (b"/b".to_vec(), 3)], 2));
        let (found, count) = index.range_at(b"/", b"/b", 9, 1, false);
        assert_eq!((found.len(), count), (0, 0));
    }

    #[test]
    fn compaction_keeps_the_newest_live_version_below_the_point() {
        let mut index = KeyIndex::default();
        index.push(b"/a", 2, meta(true));
        index.push(b"/a", 3, meta(true));
        index.push(b"/a", 6, meta(true));
        index.push(b"/b", 4, meta(true));
        index.push(b"/b", 5, meta(false));
        assert_eq!(index.compact_key(b"/a", 6), vec![2]);
        assert_eq!(index.versions_of(b"/a"), 2);
        assert_eq!(index.compact_key(b"/b", 6), vec![4, 5]);
        assert_eq!(index.versions_of(b"/b"), 0);
    }
}
