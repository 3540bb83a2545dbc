//! Reads of a [`KvState`]: point lookups, sizes, and ordered iteration over all
//! entries, a prefix or a range ([`Entries`]).
//!
//! Never changes the state.

use std::fmt;
use std::iter::FusedIterator;
use std::ops::{Bound, RangeBounds};

use super::KvState;
use super::keys::{Entry, KeyProbe, KeyView, probe};
use super::tree::Range;

impl KvState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map
            .get(probe(&KeyProbe::new(key)))
            .map(|(entry, ())| entry.value())
    }

    /// True when `key` has a value.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.map.get(probe(&KeyProbe::new(key))).is_some()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sum of the lengths of all keys and values (payload only, no per-entry overhead). O(1).
    pub fn approx_bytes(&self) -> usize {
        self.bytes
    }

    /// All entries in key order.
    pub fn iter(&self) -> Entries<'_> {
        self.range_bounds(Bound::Unbounded, Bound::Unbounded)
    }

    /// Entries whose key starts with `prefix`, in key order. O(log n) to start.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Entries<'_> {
        let end = prefix_end(prefix);
        self.range_bounds(
            Bound::Included(prefix),
            end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        )
    }

    /// Entries whose key lies in `range`, in key order; an empty or inverted range yields
    /// nothing. Example: `kv.range(b"a".to_vec()..b"m".to_vec())` or
    /// `kv.range::<&[u8]>(&b"a"[..]..)`.
    pub fn range<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Entries<'_> {
        self.range_bounds(
            range.start_bound().map(AsRef::as_ref),
            range.end_bound().map(AsRef::as_ref),
        )
    }

    pub(super) fn range_bounds(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Entries<'_> {
        if range_is_empty(start, end) {
            return Entries { inner: None };
        }
        let start = start.map(KeyProbe::new);
        let end = end.map(KeyProbe::new);
        let bounds: (Bound<&dyn KeyView>, Bound<&dyn KeyView>) =
            (start.as_ref().map(probe), end.as_ref().map(probe));
        Entries {
            inner: Some(self.map.range::<dyn KeyView>(bounds.0, bounds.1)),
        }
    }
}

/// Iterator over `(key, value)` entries of a [`KvState`] in key order (also reversible).
pub struct Entries<'a> {
    pub(super) inner: Option<Range<'a, Entry, ()>>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (entry, ()) = self.inner.as_mut()?.next()?;
        Some((entry.key(), entry.value()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner
            .as_ref()
            .map_or((0, Some(0)), Iterator::size_hint)
    }
}

impl DoubleEndedIterator for Entries<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let (entry, ()) = self.inner.as_mut()?.next_back()?;
        Some((entry.key(), entry.value()))
    }
}

impl FusedIterator for Entries<'_> {}

impl fmt::Debug for Entries<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entries").finish_non_exhaustive()
    }
}

/// True when no key can lie between `start` and `end`.
fn range_is_empty(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    match (start, end) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e))
        | (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None` when there
/// is none (empty prefix, or all bytes 0xFF).
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1; // ok: end[last] != 0xFF, so no overflow
    Some(end)
}
