//! An encoded object's labels in one allocation.
//!
//! An [`EncodedObject`](super::EncodedObject) keeps its object's `metadata.labels` beside the
//! bytes, so a reader (the watch cache's selectors and label index) filters without decoding. As `(Box<str>, Box<str>)` pairs that cost three allocations per label
//! (about 130 bytes for `group=3`); here they are one buffer per object: for each pair, in key
//! order, the key's and the value's lengths (`u32`, little endian) followed by their bytes.
//!
//! Invariant: the buffer is well formed (built only by [`Labels::new`]), so reading it back
//! never fails; the pairs come out in the order they went in (sorted by key).

use std::collections::BTreeMap;

/// An object's labels, sorted by key, in one allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Labels(Box<[u8]>);

const LEN: usize = std::mem::size_of::<u32>();

impl Labels {
    /// The labels of a `metadata.labels` map. A key or value longer than `u32::MAX` bytes
    /// (impossible for a valid label; the cache takes what the store holds) is cut there.
    pub(crate) fn new(labels: &BTreeMap<String, String>) -> Self {
        let size: usize = labels.iter().map(|(k, v)| 2 * LEN + k.len() + v.len()).sum();
        let mut buffer = Vec::with_capacity(size);
        for (key, value) in labels {
            let (key, value) = (cut(key), cut(value));
            buffer.extend_from_slice(&(key.len() as u32).to_le_bytes());
            buffer.extend_from_slice(&(value.len() as u32).to_le_bytes());
            buffer.extend_from_slice(key.as_bytes());
            buffer.extend_from_slice(value.as_bytes());
        }
        Labels(buffer.into_boxed_slice())
    }

    /// The `(key, value)` pairs, sorted by key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut rest: &[u8] = &self.0;
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
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.iter().take_while(|(k, _)| *k <= key).find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Heap bytes the labels occupy.
    pub(crate) fn heap_len(&self) -> usize {
        self.0.len()
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
        let labels = Labels::new(&map(&[("tier", "web"), ("app", ""), ("example.com/owner", "ops-é")]));
        let pairs: Vec<_> = labels.iter().collect();
        assert_eq!(pairs, vec![("app", ""), ("example.com/owner", "ops-é"), ("tier", "web")]);
        assert_eq!(labels.get("app"), Some(""), "an empty value is a value");
        assert_eq!(labels.get("tier"), Some("web"));
        assert_eq!(labels.get("example.com/owner"), Some("ops-é"));
        assert_eq!(labels.get("apps"), None);
        assert_eq!(labels.get("zzz"), None);
        assert_eq!(labels.get(""), None);
        assert_eq!(labels.heap_len(), 3 * 8 + "app".len() + "example.com/owner".len() + "ops-é".len() + 7);
    }

    #[test]
    fn no_labels_is_an_empty_buffer() {
        let labels = Labels::new(&BTreeMap::new());
        assert_eq!(labels.iter().count(), 0);
        assert_eq!(labels.get("app"), None);
        assert_eq!(labels.heap_len(), 0);
    }
}
