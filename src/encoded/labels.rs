//! An encoded object's labels, kept in the object's buffer after its JSON.
//!
//! An [`EncodedObject`](super::EncodedObject) keeps its object's `metadata.labels` beside the
//! bytes, so a reader (the watch cache's selectors and label index) filters without decoding. As
//! `(Box<str>, Box<str>)` pairs that cost three allocations per label (about 130 bytes for
//! `group=3`); here they are appended to the object's one buffer, after its JSON (or watch
//! line): no allocation of their own, often within the slack of the buffer's size class. For
//! each pair, in key order, the key's and the value's lengths (`u32`, little endian) followed by
//! their bytes.
//!
//! Invariant: the bytes were written by [`Labels::append`], so reading them back never fails;
//! the pairs come out in the order they went in (sorted by key).

use std::collections::BTreeMap;

/// An object's labels, sorted by key: a view of the bytes [`Labels::append`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Labels<'a>(&'a [u8]);

const LEN: usize = std::mem::size_of::<u32>();

impl<'a> Labels<'a> {
    /// The labels [`Labels::append`] wrote as `bytes`.
    pub(crate) fn read(bytes: &'a [u8]) -> Self {
        Labels(bytes)
    }

    /// The bytes [`Labels::append`] writes for `labels`.
    pub(crate) fn encoded_len(labels: &BTreeMap<String, String>) -> usize {
        labels.iter().map(|(k, v)| 2 * LEN + cut(k).len() + cut(v).len()).sum()
    }

    /// Appends `labels` (a `metadata.labels` map) to `out`. A key or value longer than
    /// `u32::MAX` bytes (impossible for a valid label; the cache takes what the store holds) is
    /// cut there.
    pub(crate) fn append(labels: &BTreeMap<String, String>, out: &mut Vec<u8>) {
        for (key, value) in labels {
            let (key, value) = (cut(key), cut(value));
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(value.as_bytes());
        }
    }

    /// The `(key, value)` pairs, sorted by key.
    pub(crate) fn iter(self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let mut rest: &[u8] = self.0;
        std::iter::from_fn(move || {
            let (lengths, after) = rest.split_at_checked(2 * LEN)?;
            let key_len = u32::from_le_bytes(lengths[..LEN].try_into().ok()?) as usize;
            let value_len = u32::from_le_bytes(lengths[LEN..].try_into().ok()?) as usize;
            let (key, after) = after.split_at_checked(key_len)?;
            let (value, after) = after.split_at_checked(value_len)?;
            rest = after;
            Some((std::str::from_utf8(key).ok()?, std::str::from_utf8(value).ok()?))
        })
    }

    /// The value of label `key`.
    pub(crate) fn get(self, key: &str) -> Option<&'a str> {
        self.iter().take_while(|(k, _)| *k <= key).find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// `text` cut to at most `u32::MAX` bytes, at a character boundary.
fn cut(text: &str) -> &str {
    let mut end = text.len().min(u32::MAX as usize);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn round_trips_in_key_order_and_looks_up() {
        let map = map(&[("tier", "web"), ("app", ""), ("example.com/owner", "ops-é")]);
        let mut buffer = b"the object's bytes".to_vec();
        let start = buffer.len();
        Labels::append(&map, &mut buffer);
        assert_eq!(buffer.len() - start, Labels::encoded_len(&map));
        assert_eq!(Labels::encoded_len(&map), 3 * 8 + "app".len() + "example.com/owner".len() + "ops-é".len() + 7);
        let labels = Labels::read(&buffer[start..]);
        let pairs: Vec<_> = labels.iter().collect();
        assert_eq!(pairs, vec![("app", ""), ("example.com/owner", "ops-é"), ("tier", "web")]);
        assert_eq!(labels.get("app"), Some(""), "an empty value is a value");
        assert_eq!(labels.get("tier"), Some("web"));
        assert_eq!(labels.get("example.com/owner"), Some("ops-é"));
        assert_eq!(labels.get("apps"), None);
        assert_eq!(labels.get("zzz"), None);
        assert_eq!(labels.get(""), None);
    }

    #[test]
    fn no_labels_take_no_bytes() {
        let mut buffer = Vec::new();
        Labels::append(&BTreeMap::new(), &mut buffer);
        assert!(buffer.is_empty());
        assert_eq!(Labels::encoded_len(&BTreeMap::new()), 0);
        let labels = Labels::read(&buffer);
        assert_eq!(labels.iter().count(), 0);
        assert_eq!(labels.get("app"), None);
    }
}
