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
    /// Bytes of the version's history entry (sled key and record): its share of the bytes in
    /// use.
    pub bytes: u32,
}

impl Meta {
    /// The metadata of `version`, whose history entry takes `bytes`.
    pub(crate) fn of(version: &Version, bytes: usize) -> Self {
        Meta {
            live: version.live,
            create_revision: version.create_revision,
            version: version.version,
            expires_at_ms: version.expires_at_ms,
            bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
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
    /// tombstone. Returns the dropped revisions with their metadata.
    pub(crate) fn compact_key(&mut self, key: &[u8], revision: Revision) -> Vec<(Revision, Meta)> {
        let Some(versions) = self.keys.get_mut(key) else { return Vec::new() };
        let below = versions.partition_point(|(at, _)| *at < revision);
        if below == 0 {
            return Vec::new();
        }
        let newest_below_is_tombstone = !versions[below - 1].1.live;
        let drop_count = if newest_below_is_tombstone { below } else { below - 1 };
        let dropped: Vec<(Revision, Meta)> = versions.drain(..drop_count).collect();
        if versions.is_empty() {
            self.keys.remove(key);
        }
        dropped
    }

    /// [`KeyIndex::compact_key`] for every key. Returns the dropped revisions.
    pub(crate) fn compact_all(&mut self, revision: Revision) -> Vec<Revision> {
        let keys: Vec<Vec<u8>> = self.keys.keys().cloned().collect();
        keys.iter().flat_map(|key| self.compact_key(key, revision)).map(|(at, _)| at).collect()
    }

    /// True when version `revision` of `key` is retained.
    pub(crate) fn contains(&self, key: &[u8], revision: Revision) -> bool {
        self.keys.get(key).is_some_and(|versions| versions.binary_search_by_key(&revision, |(at, _)| *at).is_ok())
    }

    /// Bytes of every key's latest version when it is live (the live data).
    pub(crate) fn live_bytes(&self) -> u64 {
        self.keys
            .values()
            .filter_map(|versions| versions.last())
            .filter(|(_, meta)| meta.live)
            .map(|(_, meta)| u64::from(meta.bytes))
            .sum()
    }

    /// Bytes of every retained version's history entry (the bytes in use).
    pub(crate) fn total_bytes(&self) -> u64 {
        self.keys.values().flatten().map(|(_, meta)| u64::from(meta.bytes)).sum()
    }

    /// The lowest compaction revision that leaves at most `budget(live)` bytes in use, where
    /// `live` is the bytes of every key's latest live version; 0 when everything fits.
    ///
    /// A version is kept by a compaction at R when R is at most its *threshold*: its own
    /// revision for a tombstone (dropped once below R), the next version's revision for a
    /// live one (kept while it is the newest version below R, the previous value of the
    /// event at R), never for a key's latest live version. So the bytes in use after a
    /// compaction at R are the bytes of the versions whose threshold is ≥ R; sorted by
    /// threshold, the first one that overflows the budget gives R = its threshold + 1.
    pub(crate) fn budget_revision(&self, budget: impl Fn(u64) -> u64) -> Revision {
        let mut live = 0u64;
        let mut thresholds = Vec::new();
        for versions in self.keys.values() {
            for (i, (at, meta)) in versions.iter().enumerate() {
                let threshold = match versions.get(i + 1) {
                    _ if !meta.live => *at,
                    Some((next, _)) => *next,
                    None => {
                        live += u64::from(meta.bytes);
                        continue;
                    }
                };
                thresholds.push((threshold, meta.bytes));
            }
        }
        let budget = budget(live);
        thresholds.sort_unstable_by_key(|(threshold, _)| std::cmp::Reverse(*threshold));
        let mut kept = live;
        for (threshold, bytes) in thresholds {
            kept += u64::from(bytes);
            if kept > budget {
                return threshold + 1;
            }
        }
        0
    }

    /// `(key, deadline)` of every live key with a TTL.
    pub(crate) fn expiring(&self) -> Vec<(Vec<u8>, u64)> {
        self.expiring_in(b"", b"").into_iter().map(|(key, _, deadline)| (key, deadline)).collect()
    }

    /// `(key, mod revision, deadline)` of every live key with a TTL in `[start, end)` (an
    /// empty `end`: no upper bound), in key order.
    pub(crate) fn expiring_in(&self, start: &[u8], end: &[u8]) -> Vec<(Vec<u8>, Revision, u64)> {
        let upper = if end.is_empty() { Bound::Unbounded } else { Bound::Excluded(end) };
        self.keys
            .range::<[u8], _>((Bound::Included(start), upper))
            .filter_map(|(key, versions)| {
                let (revision, meta) = versions.last()?;
                (meta.live && meta.expires_at_ms != 0).then(|| (key.clone(), *revision, meta.expires_at_ms))
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
        Meta { live, create_revision: 2, version: 1, expires_at_ms: 0, bytes: 10 }
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
        let revisions = |dropped: Vec<(Revision, Meta)>| dropped.into_iter().map(|(at, _)| at).collect::<Vec<_>>();
        assert_eq!(revisions(index.compact_key(b"/a", 6)), vec![2]);
        assert_eq!(index.versions_of(b"/a"), 2);
        assert_eq!(revisions(index.compact_key(b"/b", 6)), vec![4, 5]);
        assert_eq!(index.versions_of(b"/b"), 0);
    }

    #[test]
    fn the_budget_revision_keeps_exactly_the_bytes_a_compaction_leaves() {
        let mut index = KeyIndex::default();
        for revision in 2..=11 {
            index.push(b"/a", revision, meta(true)); // 10 bytes each; /a@11 is live
        }
        index.push(b"/b", 12, meta(true));
        index.push(b"/b", 13, meta(false)); // a tombstone: /b is not live
        assert_eq!(index.budget_revision(|_| 1_000), 0, "everything fits");
        // Live: /a@11 = 10 bytes. A budget of 40 keeps 3 more versions: /b@12 and /b@13
        // (threshold 13), /a@10 (threshold 11); /a@9 (threshold 10) overflows.
        assert_eq!(index.budget_revision(|live| live * 4), 11);
        let mut compacted = KeyIndex::default();
        std::mem::swap(&mut compacted, &mut index);
        compacted.compact_all(11);
        assert_eq!(compacted.total_bytes(), 40, "compaction at the budget revision leaves the budget");
        assert!(compacted.contains(b"/a", 10) && !compacted.contains(b"/a", 9));
    }
}
