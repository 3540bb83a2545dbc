//! The entries of [`KvState`]'s map: [`Entry`], a key and its value in one
//! reference-counted allocation behind a one-word pointer, with the key's first bytes
//! inline; and the one key order that stored entries and lookup probes share.
//!
//! Owns the byte order of keys; must never decide what a command does to the map.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;

use triomphe::ThinArc;

#[cfg(doc)]
use super::KvState;

/// An entry of [`KvState`]'s map: the key and the value in one allocation, laid out as
/// the key's length (LEB128), the key, the value; plus the key's first
/// [`KEY_HEAD_BYTES`] bytes as a big-endian, zero-padded `u64` that is compared first.
///
/// One allocation per entry, not one each for key and value: a million 16-byte keys
/// with 100-byte values take 144-byte heap chunks instead of a 48- and a 128-byte one,
/// and loading or writing an entry calls the allocator once.
///
/// The order is exactly the lexicographic byte order of the keys: if the heads differ,
/// the first difference of the zero-padded heads is either a real byte difference or a
/// zero pad against a real byte of a longer key that starts with the shorter one — in
/// both cases the byte order agrees. Equal heads (`"a"` and `"a\0"` pad the same) fall
/// back to comparing the whole keys. Lookups by `&[u8]` go through [`KeyView`], under
/// the same order. Entries compare by key only.
///
/// Invariant: `head == key_head(self.key())`; build entries only with [`Entry::new`].
#[derive(Clone)]
pub(super) struct Entry {
    head: u64,
    data: ThinArc<(), u8>,
}

/// A leaf slot is 16 bytes: the tree's leaves hold up to 64, and every write into a leaf
/// shared with a checkpoint's snapshot copies the whole leaf, so this size is most of a
/// checkpoint's extra memory.
const _: () = assert!(std::mem::size_of::<(Entry, ())>() == 16);

/// Entries up to this many bytes are assembled on the stack, then copied into their one
/// allocation; longer ones through a temporary vector.
const ASSEMBLE_ON_STACK_BYTES: usize = 256;

impl Entry {
    /// `key` and `value`, copied into one new allocation.
    pub(super) fn new(key: &[u8], value: &[u8]) -> Self {
        let mut prefix = [0u8; 10];
        let prefix_len = encode_len(key.len(), &mut prefix);
        let total = prefix_len + key.len() + value.len();
        let parts = [&prefix[..prefix_len], key, value];
        let data = if total <= ASSEMBLE_ON_STACK_BYTES {
            let mut buf = [0u8; ASSEMBLE_ON_STACK_BYTES];
            let mut at = 0;
            for part in parts {
                buf[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            ThinArc::from_header_and_slice((), &buf[..total])
        } else {
            ThinArc::from_header_and_slice((), &parts.concat())
        };
        Entry {
            head: key_head(key),
            data,
        }
    }

    /// The key.
    pub(super) fn key(&self) -> &[u8] {
        let (len, at) = decode_len(&self.data.slice);
        &self.data.slice[at..at + len]
    }

    /// The value.
    pub(super) fn value(&self) -> &[u8] {
        let (len, at) = decode_len(&self.data.slice);
        &self.data.slice[at + len..]
    }

    /// Whether both are the same allocation (tests of structure sharing).
    #[cfg(test)]
    pub(super) fn same_allocation(&self, other: &Entry) -> bool {
        self.data.heap_ptr() == other.data.heap_ptr()
    }

    /// How many entries share this allocation (tests of structure sharing).
    #[cfg(test)]
    pub(super) fn strong_count(&self) -> usize {
        ThinArc::strong_count(&self.data)
    }
}

/// Writes `len` as LEB128 into `out`; returns the bytes used (at most 10).
fn encode_len(mut len: usize, out: &mut [u8; 10]) -> usize {
    let mut i = 0;
    loop {
        let low = (len & 0x7F) as u8;
        len >>= 7;
        if len == 0 {
            out[i] = low;
            return i + 1;
        }
        out[i] = low | 0x80;
        i += 1;
    }
}

/// The key length at the start of an entry's bytes, and where the key starts. The
/// bytes were written by [`encode_len`] (an entry is never built any other way).
fn decode_len(bytes: &[u8]) -> (usize, usize) {
    let first = bytes[0];
    if first < 0x80 {
        return (usize::from(first), 1);
    }
    let mut len = 0usize;
    let mut shift = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        len |= usize::from(byte & 0x7F) << shift;
        if byte < 0x80 {
            return (len, i + 1);
        }
        shift += 7;
    }
    unreachable!("an entry's key length is complete")
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} => {:?}", self.key(), self.value())
    }
}

/// Key bytes held inline in [`Entry`]'s head.
const KEY_HEAD_BYTES: usize = 8;

/// The first [`KEY_HEAD_BYTES`] bytes of `key`, zero-padded, as a big-endian integer.
fn key_head(key: &[u8]) -> u64 {
    let mut head = [0u8; KEY_HEAD_BYTES];
    let n = key.len().min(KEY_HEAD_BYTES);
    head[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(head)
}

/// What the map's order looks at: stored entries ([`Entry`]) and lookup probes
/// ([`KeyProbe`], which borrows the caller's bytes instead of allocating a key) compare
/// as `dyn KeyView`, so both share one definition of the order.
pub(super) trait KeyView {
    /// [`key_head`] of the key.
    fn head(&self) -> u64;
    /// The whole key.
    fn bytes(&self) -> &[u8];
}

/// The one key order: head first, whole bytes on a tie (see [`Entry`]).
/// The whole keys are only looked at on a tie of the heads: that reads the entry's
/// allocation, which the head saves most comparisons from touching.
fn cmp_keys<'a, 'b>(
    a_head: u64,
    a: impl FnOnce() -> &'a [u8],
    b_head: u64,
    b: impl FnOnce() -> &'b [u8],
) -> Ordering {
    a_head.cmp(&b_head).then_with(|| a().cmp(b()))
}

impl KeyView for Entry {
    fn head(&self) -> u64 {
        self.head
    }
    fn bytes(&self) -> &[u8] {
        self.key()
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

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_keys(self.head, || self.key(), other.head, || other.key())
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// By key: an entry is the map slot of its key.
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.head == other.head && self.key() == other.key()
    }
}

impl Eq for Entry {}

impl Ord for dyn KeyView + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_keys(self.head(), || self.bytes(), other.head(), || other.bytes())
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

// Sound for `Borrow`: `Entry`'s `Ord`/`Eq` and `dyn KeyView`'s are the same `cmp_keys`.
impl<'a> Borrow<dyn KeyView + 'a> for Entry {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

/// The map lookup key for `key`.
pub(super) fn probe<'k, 'b>(key: &'k KeyProbe<'b>) -> &'k (dyn KeyView + 'b) {
    key
}
