//! The key and value byte types of [`KvState`]'s map: [`SharedBytes`] (immutable,
//! reference-counted bytes behind a one-word pointer) and [`MapKey`] (a key with its
//! first bytes inline), and the one key order that stored keys and lookup probes share.
//!
//! Owns the byte order of keys; must never decide what a command does to the map.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::ops::Deref;

use triomphe::ThinArc;

#[cfg(doc)]
use super::KvState;

/// A key of [`KvState`]'s map: the whole key, plus its first [`KEY_HEAD_BYTES`] bytes as
/// a big-endian, zero-padded `u64` that is compared first.
///
/// The order is exactly the lexicographic byte order of the keys: if the heads differ,
/// the first difference of the zero-padded heads is either a real byte difference or a
/// zero pad against a real byte of a longer key that starts with the shorter one — in
/// both cases the byte order agrees. Equal heads (`"a"` and `"a\0"` pad the same) fall
/// back to comparing the whole keys. Lookups by `&[u8]` go through [`KeyView`], under
/// the same order.
///
/// Invariant: `head == key_head(&bytes)`; build keys only with [`MapKey::new`].
#[derive(Clone)]
pub(super) struct MapKey {
    head: u64,
    pub(super) bytes: SharedBytes,
}

/// Immutable, reference-counted bytes behind a thin (one-word) pointer: the length lives
/// in the allocation next to the count, where `Arc<[u8]>` carries it in a second word of
/// the pointer. Same heap cost as `Arc<[u8]>` (16 bytes of header, as a strong and a weak
/// count there), half the size in the map's B-tree entries, which is what a
/// copy-on-write of a leaf copies and what a leaf insert shifts.
#[derive(Clone)]
pub(super) struct SharedBytes(pub(super) ThinArc<(), u8>);

/// A map entry is 24 bytes, against 40 with fat `Arc<[u8]>` pointers: the tree's leaves
/// hold up to 64 entries, and every write into a leaf shared with a checkpoint's snapshot copies the
/// whole leaf, so this size is most of a checkpoint's extra memory.
const _: () = assert!(std::mem::size_of::<(MapKey, SharedBytes)>() == 24);

impl Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0.slice
    }
}

/// Copies `bytes` into a new allocation (the only allocation).
impl From<&[u8]> for SharedBytes {
    fn from(bytes: &[u8]) -> Self {
        SharedBytes(ThinArc::from_header_and_slice((), bytes))
    }
}

/// One allocation and copy, like `Arc<[u8]>::from(Vec<u8>)`: a `ThinArc` cannot adopt the
/// `Vec`'s buffer either (its counts and length sit in front of the bytes).
impl From<Vec<u8>> for SharedBytes {
    fn from(bytes: Vec<u8>) -> Self {
        SharedBytes::from(bytes.as_slice())
    }
}

impl PartialEq for SharedBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for SharedBytes {}

impl fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// Key bytes held inline in [`MapKey::head`].
const KEY_HEAD_BYTES: usize = 8;

/// The first [`KEY_HEAD_BYTES`] bytes of `key`, zero-padded, as a big-endian integer.
fn key_head(key: &[u8]) -> u64 {
    let mut head = [0u8; KEY_HEAD_BYTES];
    let n = key.len().min(KEY_HEAD_BYTES);
    head[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(head)
}

impl MapKey {
    pub(super) fn new(bytes: SharedBytes) -> Self {
        MapKey {
            head: key_head(&bytes),
            bytes,
        }
    }
}

/// What the map's order looks at: stored keys ([`MapKey`]) and lookup probes
/// ([`KeyProbe`], which borrows the caller's bytes instead of allocating a key) compare
/// as `dyn KeyView`, so both share one definition of the order.
pub(super) trait KeyView {
    /// [`key_head`] of the key.
    fn head(&self) -> u64;
    /// The whole key.
    fn bytes(&self) -> &[u8];
}

/// The one key order: head first, whole bytes on a tie (see [`MapKey`]).
fn cmp_keys(a_head: u64, a: &[u8], b_head: u64, b: &[u8]) -> Ordering {
    a_head.cmp(&b_head).then_with(|| a.cmp(b))
}

impl KeyView for MapKey {
    fn head(&self) -> u64 {
        self.head
    }
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A lookup key borrowing the caller's bytes.
pub(super) struct KeyProbe<'a> {
    head: u64,
    bytes: &'a [u8],
}

impl<'a> KeyProbe<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        KeyProbe {
            head: key_head(bytes),
            bytes,
        }
    }
}

impl KeyView for KeyProbe<'_> {
    fn head(&self) -> u64 {
        self.head
    }
    fn bytes(&self) -> &[u8] {
        self.bytes
    }
}

impl Ord for MapKey {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_keys(self.head, &self.bytes, other.head, &other.bytes)
    }
}

impl PartialOrd for MapKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for MapKey {
    fn eq(&self, other: &Self) -> bool {
        self.head == other.head && self.bytes == other.bytes
    }
}

impl Eq for MapKey {}

impl fmt::Debug for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.bytes.fmt(f)
    }
}

impl Ord for dyn KeyView + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_keys(self.head(), self.bytes(), other.head(), other.bytes())
    }
}

impl PartialOrd for dyn KeyView + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for dyn KeyView + '_ {}

// Sound for `Borrow`: `MapKey`'s `Ord`/`Eq` and `dyn KeyView`'s are the same `cmp_keys`.
impl<'a> Borrow<dyn KeyView + 'a> for MapKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

/// The map lookup key for `key`.
pub(super) fn probe<'k, 'b>(key: &'k KeyProbe<'b>) -> &'k (dyn KeyView + 'b) {
    key
}
