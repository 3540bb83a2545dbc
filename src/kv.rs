//! The built-in state machine: an ordered map of byte keys to byte values.
//!
//! [`KvState`] is changed only by applying [`KvCommand`]s, each of which returns a
//! [`KvOutput`]. A failed compare-and-set is a rejection ([`CasMismatch`]), not a store
//! error: it is logged like any command and changes nothing.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::iter::FusedIterator;
use std::marker::PhantomData;
use std::ops::{Bound, Deref, RangeBounds};

use imbl::OrdMap;
use imbl::ordmap::RangedIter;
use imbl::shared_ptr::DefaultSharedPtr;
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use triomphe::ThinArc;

use crate::state::StateMachine;

/// An ordered map of byte keys to byte values.
///
/// Backed by a persistent B-tree (`imbl::OrdMap`): `clone` is O(1) and shares structure
/// with the original, which is what lets checkpoints snapshot it under a short lock.
/// Keys and values are reference-counted behind one-word pointers ([`SharedBytes`]), so
/// the copy-on-write of a shared B-tree leaf after a snapshot copies 24-byte entries (key
/// head, key pointer, value pointer), not the bytes; and each key keeps its first 8 bytes
/// inline and compares them first, so most comparisons in the tree's binary searches
/// touch no key allocation (the order is still exactly the byte order).
///
/// A checkpoint's snapshot does not stay shared for the length of the checkpoint: its
/// entries are first moved out into a flat list (16 bytes per entry, freed as written;
/// see [`StateMachine::encode_owned`]), so commits during the checkpoint change the
/// live map's leaves in place instead of copying them.
///
/// Serialized as a sequence of `(key, value)` pairs in strictly increasing key order (the
/// same bytes as a `Vec<(Vec<u8>, Vec<u8>)>` in bincode); deserializing rejects unsorted
/// or duplicate keys.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct KvState {
    map: OrdMap<MapKey, SharedBytes>,
    /// Sum of key and value lengths over all entries.
    bytes: usize,
}

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
struct MapKey {
    head: u64,
    bytes: SharedBytes,
}

/// Immutable, reference-counted bytes behind a thin (one-word) pointer: the length lives
/// in the allocation next to the count, where `Arc<[u8]>` carries it in a second word of
/// the pointer. Same heap cost as `Arc<[u8]>` (16 bytes of header, as a strong and a weak
/// count there), half the size in the map's B-tree entries, which is what a
/// copy-on-write of a leaf copies and what a leaf insert shifts.
#[derive(Clone)]
struct SharedBytes(ThinArc<(), u8>);

/// A map entry is 24 bytes, against 40 with fat `Arc<[u8]>` pointers: imbl's leaves hold
/// 64 entries, and every write into a leaf shared with a checkpoint's snapshot copies the
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
    fn new(bytes: SharedBytes) -> Self {
        MapKey {
            head: key_head(&bytes),
            bytes,
        }
    }
}

/// What the map's order looks at: stored keys ([`MapKey`]) and lookup probes
/// ([`KeyProbe`], which borrows the caller's bytes instead of allocating a key) compare
/// as `dyn KeyView`, so both share one definition of the order.
trait KeyView {
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
struct KeyProbe<'a> {
    head: u64,
    bytes: &'a [u8],
}

impl<'a> KeyProbe<'a> {
    fn new(bytes: &'a [u8]) -> Self {
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
fn probe<'k, 'b>(key: &'k KeyProbe<'b>) -> &'k (dyn KeyView + 'b) {
    key
}

impl KvState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(probe(&KeyProbe::new(key))).map(|v| &**v)
    }

    /// True when `key` has a value.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.map.contains_key(probe(&KeyProbe::new(key)))
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

    fn range_bounds(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Entries<'_> {
        if range_is_empty(start, end) {
            return Entries { inner: None };
        }
        let start = start.map(KeyProbe::new);
        let end = end.map(KeyProbe::new);
        let bounds: (Bound<&dyn KeyView>, Bound<&dyn KeyView>) =
            (start.as_ref().map(probe), end.as_ref().map(probe));
        Entries {
            inner: Some(self.map.range::<_, dyn KeyView>(bounds)),
        }
    }

    fn insert(&mut self, key: MapKey, value: SharedBytes) -> Option<SharedBytes> {
        let added = key.bytes.len() + value.len();
        let key_len = key.bytes.len();
        let previous = self.map.insert(key, value);
        // Lengths of live allocations: neither sum can overflow nor underflow, because
        // `bytes` is always the exact sum over the entries.
        self.bytes += added;
        if let Some(prev) = &previous {
            self.bytes -= key_len + prev.len();
        }
        previous
    }

    fn remove(&mut self, key: &[u8]) -> Option<SharedBytes> {
        let previous = self.map.remove(probe(&KeyProbe::new(key)));
        if let Some(prev) = &previous {
            self.bytes -= key.len() + prev.len();
        }
        previous
    }

    fn remove_range(&mut self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> u64 {
        let keys: Vec<MapKey> = match self.range_bounds(start, end).inner {
            Some(range) => range.map(|(k, _)| k.clone()).collect(),
            None => Vec::new(),
        };
        for key in &keys {
            if let Some(prev) = self.map.remove(key) {
                self.bytes -= key.bytes.len() + prev.len();
            }
        }
        keys.len() as u64
    }

    /// `Put`: stores `value` under `key`, returns the previous value.
    fn put(&mut self, key: SharedBytes, value: SharedBytes) -> KvOutput {
        let previous = self.insert(MapKey::new(key), value);
        Ok(KvApplied::Put {
            previous: previous.map(|v| v.to_vec()),
        })
    }

    /// `CompareAndSet` without building the rejection: `Err(actual)` on a mismatch.
    fn compare_and_set(
        &mut self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<(), Option<Vec<u8>>> {
        let actual = self.get(key);
        if actual != expected {
            return Err(actual.map(<[u8]>::to_vec));
        }
        match new {
            Some(value) => {
                self.insert(MapKey::new(key.into()), value.into());
            }
            None => {
                self.remove(key);
            }
        }
        Ok(())
    }
}

/// Iterator over `(key, value)` entries of a [`KvState`] in key order (also reversible).
pub struct Entries<'a> {
    inner: Option<RangedIter<'a, MapKey, SharedBytes, DefaultSharedPtr>>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (k, v) = self.inner.as_mut()?.next()?;
        Some((&k.bytes, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner
            .as_ref()
            .map_or((0, Some(0)), Iterator::size_hint)
    }
}

impl DoubleEndedIterator for Entries<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let (k, v) = self.inner.as_mut()?.next_back()?;
        Some((&k.bytes, v))
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
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1; // ok: end[last] != 0xFF, so no overflow
    Some(end)
}

/// A `Put` built from borrowed bytes, for [`crate::KvStore::put`]: the state's copies
/// of the key and value are made once, the logged payload is encoded from them, and
/// applying it is exactly what replay does with the decoded [`KvCommand::Put`].
pub(crate) struct PreparedPut {
    key: SharedBytes,
    value: SharedBytes,
}

impl PreparedPut {
    pub(crate) fn new(key: &[u8], value: &[u8]) -> Self {
        PreparedPut {
            key: key.into(),
            value: value.into(),
        }
    }

    /// The bytes [`KvCommand::Put`] of the same key and value encodes to.
    pub(crate) fn payload(&self) -> crate::Result<Vec<u8>> {
        crate::codec::encode(&PutRef {
            key: &self.key,
            value: &self.value,
        })
    }

    /// Applies the put, as `apply_owned(KvCommand::Put { .. })` does.
    pub(crate) fn apply(self, state: &mut KvState) -> KvOutput {
        state.put(self.key, self.value)
    }
}

/// Serializes as [`KvCommand::Put`] of these bytes (variant 0, then the key and value
/// as bytes), without owning them.
struct PutRef<'a> {
    key: &'a [u8],
    value: &'a [u8],
}

impl Serialize for PutRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStructVariant;
        let mut put = s.serialize_struct_variant("KvCommand", 0, "Put", 2)?;
        put.serialize_field("key", &bytes::Ser(self.key))?;
        put.serialize_field("value", &bytes::Ser(self.value))?;
        put.end()
    }
}

/// A mutation of a [`KvState`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvCommand {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
        /// The new value.
        #[serde(with = "bytes")]
        value: Vec<u8>,
    },
    /// Removes `key` (a no-op when absent).
    Delete {
        /// The key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
    },
    /// Removes every key in `[start, end)`; nothing when `start >= end`.
    DeleteRange {
        /// First key removed (inclusive).
        #[serde(with = "bytes")]
        start: Vec<u8>,
        /// First key kept (exclusive).
        #[serde(with = "bytes")]
        end: Vec<u8>,
    },
    /// Removes every key starting with `prefix`; the empty prefix removes everything.
    DeletePrefix {
        /// The prefix.
        #[serde(with = "bytes")]
        prefix: Vec<u8>,
    },
    /// Sets `key` to `new` only if its current value equals `expected`.
    CompareAndSet {
        /// The key.
        #[serde(with = "bytes")]
        key: Vec<u8>,
        /// Required current value; `None` means the key must be absent.
        #[serde(with = "opt_bytes")]
        expected: Option<Vec<u8>>,
        /// Value to store; `None` deletes the key.
        #[serde(with = "opt_bytes")]
        new: Option<Vec<u8>>,
    },
}

impl KvCommand {
    /// `Put { key, value }`.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        KvCommand::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `Delete { key }`.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        KvCommand::Delete { key: key.into() }
    }

    /// `DeleteRange { start, end }`: removes keys in `[start, end)`.
    pub fn delete_range(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        KvCommand::DeleteRange {
            start: start.into(),
            end: end.into(),
        }
    }

    /// `DeletePrefix { prefix }`.
    pub fn delete_prefix(prefix: impl Into<Vec<u8>>) -> Self {
        KvCommand::DeletePrefix {
            prefix: prefix.into(),
        }
    }

    /// `CompareAndSet`: `expected = None` requires the key to be absent, `new = None`
    /// deletes it. Slices so that a bare `None` needs no type annotation:
    /// `KvCommand::cas("k", None, Some(b"v"))`.
    pub fn cas(key: impl Into<Vec<u8>>, expected: Option<&[u8]>, new: Option<&[u8]>) -> Self {
        KvCommand::CompareAndSet {
            key: key.into(),
            expected: expected.map(<[u8]>::to_vec),
            new: new.map(<[u8]>::to_vec),
        }
    }
}

/// What applying a [`KvCommand`] returns: the effect, or a compare-and-set rejection.
pub type KvOutput = Result<KvApplied, CasMismatch>;

/// The effect of a successfully applied [`KvCommand`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvApplied {
    /// A `Put` stored its value.
    Put {
        /// The value it replaced, if any.
        previous: Option<Vec<u8>>,
    },
    /// A `Delete` ran.
    Deleted {
        /// The value it removed; `None` when the key was absent.
        previous: Option<Vec<u8>>,
    },
    /// A `DeleteRange` or `DeletePrefix` ran.
    DeletedRange {
        /// Number of keys removed.
        removed: u64,
    },
    /// A `CompareAndSet` matched and stored (or deleted) the new value.
    Swapped,
}

/// A `CompareAndSet` found a value other than the expected one; the state is unchanged.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error(
    "compare-and-set on key {} failed: expected {}, found {}",
    ShowBytes(key),
    ShowOpt(expected.as_deref()),
    ShowOpt(actual.as_deref())
)]
pub struct CasMismatch {
    /// The key.
    pub key: Vec<u8>,
    /// The value the command required (`None`: absent).
    pub expected: Option<Vec<u8>>,
    /// The value actually present (`None`: absent).
    pub actual: Option<Vec<u8>>,
}

/// Displays bytes as a quoted string when they are printable UTF-8, else as hex;
/// long values are cut after [`SHOW_MAX`] bytes.
struct ShowBytes<'a>(&'a [u8]);

/// Bytes shown before a value is cut in messages.
const SHOW_MAX: usize = 64;

impl fmt::Display for ShowBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = self.0;
        let shown = &all[..all.len().min(SHOW_MAX)];
        match std::str::from_utf8(shown) {
            Ok(s) if !s.chars().any(char::is_control) => write!(f, "{s:?}")?,
            // A cut inside a multi-byte character, or binary data: hex.
            _ => {
                f.write_str("0x")?;
                for b in shown {
                    write!(f, "{b:02x}")?;
                }
            }
        }
        if shown.len() < all.len() {
            write!(f, "... ({} bytes)", all.len())?;
        }
        Ok(())
    }
}

/// Displays an optional value, `None` as "absent".
struct ShowOpt<'a>(Option<&'a [u8]>);

impl fmt::Display for ShowOpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(b) => ShowBytes(b).fmt(f),
            None => f.write_str("absent"),
        }
    }
}

impl StateMachine for KvState {
    type Command = KvCommand;
    type Output = KvOutput;

    /// Byte strings and options only: checked by `commands_round_trip` below.
    const COMMANDS_ROUND_TRIP: bool = true;
    /// Declared, so tools name it: a store of `walstate.kv v1` is the CLI's own.
    const SCHEMA: Option<crate::schema::SchemaName> =
        Some(crate::schema::SchemaName::new(KV_SCHEMA_NAME, 1));

    /// Checks an encoded state one entry at a time (memory for one entry, not a second
    /// map): every pair decodes, keys strictly increase, nothing trails.
    fn check_encoded(encoded: &mut dyn std::io::Read, len: u64) -> crate::Result<()> {
        let mut previous: Option<Vec<u8>> = None;
        let mut index = 0u64;
        // Through `deserialize_byte_buf` (as `KvState` itself decodes), not as a `Vec<u8>`
        // sequence of single bytes: the same bytes are checked, one read per key or value.
        crate::codec::for_each_in_seq::<(bytes::De, bytes::De)>(
            encoded,
            len,
            |(bytes::De(key), _)| {
                if previous.as_ref().is_some_and(|last| key <= *last) {
                    return Err(crate::Error::Codec(format!(
                        "KvState entry {index}: keys are not unique and sorted"
                    )));
                }
                previous = Some(key);
                index += 1;
                Ok(())
            },
        )
    }

    /// Same bytes as encoding by reference, but first moves the entries out of the
    /// snapshot's B-tree into a flat list (16 bytes per entry, two pointers), which frees
    /// the snapshot's tree and so ends its sharing with the live map: commits stop copying
    /// B-tree leaves (1.5 KiB each) for the rest of the checkpoint. The list is freed as
    /// it is written, and with it any value the live map has replaced since.
    fn encode_owned<W: std::io::Write>(self, out: &mut W) -> crate::Result<()> {
        crate::codec::encode_into(&Drained::new(self.map), out).map(drop)
    }

    fn apply(&mut self, command: &KvCommand) -> KvOutput {
        match command {
            KvCommand::Put { key, value } => {
                self.put(key.as_slice().into(), value.as_slice().into())
            }
            KvCommand::CompareAndSet { key, expected, new } => self
                .compare_and_set(key, expected.as_deref(), new.as_deref())
                .map(|()| KvApplied::Swapped)
                .map_err(|actual| CasMismatch {
                    key: key.clone(),
                    expected: expected.clone(),
                    actual,
                }),
            KvCommand::Delete { key } => Ok(KvApplied::Deleted {
                previous: self.remove(key).map(|v| v.to_vec()),
            }),
            KvCommand::DeleteRange { start, end } => Ok(KvApplied::DeletedRange {
                removed: self.remove_range(Bound::Included(start), Bound::Excluded(end)),
            }),
            KvCommand::DeletePrefix { prefix } => {
                let removed = if prefix.is_empty() {
                    let n = self.map.len() as u64;
                    *self = KvState::default();
                    n
                } else {
                    let end = prefix_end(prefix);
                    let end = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                    self.remove_range(Bound::Included(prefix), end)
                };
                Ok(KvApplied::DeletedRange { removed })
            }
        }
    }

    /// Same result as [`apply`](StateMachine::apply); a rejected compare-and-set moves
    /// the command's key and expected value into the [`CasMismatch`] instead of cloning
    /// them. A `Put` still copies its bytes once, into the map's [`SharedBytes`]
    /// allocations (a reference-counted allocation cannot adopt a `Vec`'s buffer), but
    /// frees the command's buffers right away.
    fn apply_owned(&mut self, command: KvCommand) -> KvOutput {
        match command {
            KvCommand::Put { key, value } => self.put(key.into(), value.into()),
            KvCommand::CompareAndSet { key, expected, new } => {
                match self.compare_and_set(&key, expected.as_deref(), new.as_deref()) {
                    Ok(()) => Ok(KvApplied::Swapped),
                    Err(actual) => Err(CasMismatch {
                        key,
                        expected,
                        actual,
                    }),
                }
            }
            other => self.apply(&other),
        }
    }
}

/// Serializes bytes with `serialize_bytes` (in bincode: length + raw bytes, the same as a
/// `Vec<u8>`), and reads them back from bytes or a sequence.
mod bytes {
    use super::*;

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor(PhantomData))
    }

    /// Serde wrapper around a borrowed byte slice.
    pub(super) struct Ser<'a>(pub(super) &'a [u8]);

    impl Serialize for Ser<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    /// Serde wrapper around an owned byte vector.
    pub(super) struct De(pub(super) Vec<u8>);

    impl<'de> Deserialize<'de> for De {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_byte_buf(BytesVisitor(PhantomData)).map(De)
        }
    }

    /// Serde wrapper around shared bytes: decoded straight into the [`SharedBytes`] from
    /// a deserializer that lends its input (one copy), else from its `Vec`.
    pub(super) struct DeShared(pub(super) SharedBytes);

    impl<'de> Deserialize<'de> for DeShared {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_bytes(BytesVisitor(PhantomData)).map(DeShared)
        }
    }

    /// Builds a `T` (`Vec<u8>` or [`SharedBytes`]) from whatever form the bytes come in.
    struct BytesVisitor<T>(PhantomData<T>);

    impl<'de, T> Visitor<'de> for BytesVisitor<T>
    where
        T: for<'a> From<&'a [u8]> + From<Vec<u8>>,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<T, E> {
            Ok(T::from(v))
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<T, E> {
            Ok(T::from(v))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            Ok(T::from(v.as_bytes()))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
            // Cap the preallocation: the length hint comes from untrusted input.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(T::from(out))
        }
    }
}

/// Like [`bytes`] for `Option<Vec<u8>>`.
mod opt_bytes {
    use super::*;

    pub(super) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&bytes::Ser(b)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<bytes::De>::deserialize(d)?.map(|b| b.0))
    }
}

/// The declared schema name of [`KvState`] stores.
pub const KV_SCHEMA_NAME: &str = "walstate.kv";

impl Serialize for KvState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.map.len()))?;
        for (k, v) in self.map.iter() {
            seq.serialize_element(&(bytes::Ser(&k.bytes), bytes::Ser(v)))?;
        }
        seq.end()
    }
}

/// Entries per chunk of a [`Drained`] snapshot: 64 KiB, freed as each is written.
const DRAINED_CHUNK_ENTRIES: usize = 4096;

/// A snapshot's entries moved out of its B-tree, in key order, in chunks that are freed
/// as they are written; serialized exactly as [`KvState`] is. Built by
/// [`StateMachine::encode_owned`]. It serializes once; a second attempt is an error.
struct Drained {
    len: usize,
    chunks: std::cell::Cell<Vec<Vec<(SharedBytes, SharedBytes)>>>,
}

impl Drained {
    /// Moves the entries out of `map`, releasing each of its leaves once emptied (a leaf
    /// another map still shares is copied, and then that map's alone).
    fn new(map: OrdMap<MapKey, SharedBytes>) -> Self {
        let len = map.len();
        let mut entries = map.into_iter().map(|(key, value)| (key.bytes, value));
        let mut chunks = Vec::with_capacity(len.div_ceil(DRAINED_CHUNK_ENTRIES));
        loop {
            let chunk: Vec<_> = entries.by_ref().take(DRAINED_CHUNK_ENTRIES).collect();
            if chunk.is_empty() {
                break;
            }
            chunks.push(chunk);
        }
        Drained {
            len,
            chunks: std::cell::Cell::new(chunks),
        }
    }
}

impl Serialize for Drained {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let chunks = self.chunks.take();
        if chunks.len() != self.len.div_ceil(DRAINED_CHUNK_ENTRIES) {
            return Err(serde::ser::Error::custom(
                "a drained KvState serializes once",
            ));
        }
        let mut seq = s.serialize_seq(Some(self.len))?;
        for chunk in chunks {
            for (key, value) in chunk {
                seq.serialize_element(&(bytes::Ser(&key), bytes::Ser(&value)))?;
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for KvState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StateVisitor;

        impl<'de> Visitor<'de> for StateVisitor {
            type Value = KvState;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of (key, value) byte-string pairs in increasing key order")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KvState, A::Error> {
                let mut state = KvState::default();
                let mut index = 0u64;
                while let Some((bytes::DeShared(key), bytes::DeShared(value))) =
                    seq.next_element()?
                {
                    let key = MapKey::new(key);
                    if let Some((last, _)) = state.map.get_max()
                        && key <= *last
                    {
                        return Err(de::Error::custom(format_args!(
                            "KvState entry {index}: key {} is not greater than the previous key {} \
                             (keys must be unique and sorted; the data is corrupt)",
                            ShowBytes(&key.bytes),
                            ShowBytes(&last.bytes),
                        )));
                    }
                    state.insert(key, value);
                    index += 1;
                }
                Ok(state)
            }
        }

        d.deserialize_seq(StateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn state(entries: &[(&[u8], &[u8])]) -> KvState {
        let mut s = KvState::new();
        for (k, v) in entries {
            s.apply(&KvCommand::put(*k, *v)).unwrap();
        }
        s
    }

    fn keys(s: &KvState) -> Vec<Vec<u8>> {
        s.iter().map(|(k, _)| k.to_vec()).collect()
    }

    #[test]
    fn put_get_delete() {
        let mut s = KvState::new();
        assert!(s.is_empty());
        assert_eq!(
            s.apply(&KvCommand::put("a", "1")),
            Ok(KvApplied::Put { previous: None })
        );
        assert_eq!(
            s.apply(&KvCommand::put("a", "22")),
            Ok(KvApplied::Put {
                previous: Some(b"1".to_vec())
            })
        );
        assert_eq!(s.get(b"a"), Some(&b"22"[..]));
        assert_eq!(s.len(), 1);
        assert_eq!(s.approx_bytes(), 3);
        assert_eq!(
            s.apply(&KvCommand::delete("a")),
            Ok(KvApplied::Deleted {
                previous: Some(b"22".to_vec())
            })
        );
        assert_eq!(
            s.apply(&KvCommand::delete("a")),
            Ok(KvApplied::Deleted { previous: None })
        );
        assert_eq!(s.get(b"a"), None);
        assert_eq!(s.approx_bytes(), 0);
        assert!(s.is_empty());
    }

    #[test]
    fn cas() {
        let mut s = KvState::new();
        // Absent expected, key absent: creates.
        assert_eq!(
            s.apply(&KvCommand::cas("k", None, Some(b"v1"))),
            Ok(KvApplied::Swapped)
        );
        assert_eq!(s.get(b"k"), Some(&b"v1"[..]));
        let before = s.clone();
        // Absent expected, key present: mismatch.
        let err = s.apply(&KvCommand::cas("k", None, Some(b"x"))).unwrap_err();
        assert_eq!(
            err,
            CasMismatch {
                key: b"k".to_vec(),
                expected: None,
                actual: Some(b"v1".to_vec())
            }
        );
        assert_eq!(
            err.to_string(),
            r#"compare-and-set on key "k" failed: expected absent, found "v1""#
        );
        assert_eq!(s, before);
        // Wrong value: mismatch, unchanged.
        let err = s
            .apply(&KvCommand::cas("k", Some(b"nope"), None))
            .unwrap_err();
        assert_eq!(err.actual.as_deref(), Some(&b"v1"[..]));
        assert_eq!(s, before);
        // Present expected, key absent: mismatch.
        let err = s
            .apply(&KvCommand::cas("other", Some(b"v1"), Some(b"x")))
            .unwrap_err();
        assert_eq!(err.actual, None);
        assert_eq!(s, before);
        // Present expected matches: swap.
        assert_eq!(
            s.apply(&KvCommand::cas("k", Some(b"v1"), Some(b"v2"))),
            Ok(KvApplied::Swapped)
        );
        assert_eq!(s.get(b"k"), Some(&b"v2"[..]));
        assert_eq!(s.approx_bytes(), 3);
        // Matching expected with new = None deletes.
        assert_eq!(
            s.apply(&KvCommand::cas("k", Some(b"v2"), None)),
            Ok(KvApplied::Swapped)
        );
        assert!(s.is_empty());
        assert_eq!(s.approx_bytes(), 0);
        // Absent/absent with delete is a successful no-op.
        assert_eq!(
            s.apply(&KvCommand::cas("k", None, None)),
            Ok(KvApplied::Swapped)
        );
    }

    #[test]
    fn mismatch_display_binary_and_long() {
        let err = CasMismatch {
            key: vec![0, 0xFF, b'\n'],
            expected: Some(vec![b'a'; 100]),
            actual: Some("é".as_bytes().to_vec()),
        };
        let msg = err.to_string();
        assert!(msg.contains("key 0x00ff0a"), "{msg}");
        assert!(
            msg.contains(&format!("\"{}\"... (100 bytes)", "a".repeat(64))),
            "{msg}"
        );
        assert!(msg.contains("found \"é\""), "{msg}");
    }

    #[test]
    fn delete_range_boundaries() {
        let base = state(&[
            (b"a", b"1"),
            (b"b", b"2"),
            (b"b\0", b"3"),
            (b"c", b"4"),
            (b"d", b"5"),
        ]);
        let mut s = base.clone();
        assert_eq!(
            s.apply(&KvCommand::delete_range("b", "c")),
            Ok(KvApplied::DeletedRange { removed: 2 })
        );
        assert_eq!(keys(&s), vec![b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]);
        assert_eq!(s.approx_bytes(), 6);
        // Empty and inverted ranges remove nothing.
        for (a, b) in [("c", "c"), ("d", "a"), ("x", "z")] {
            let mut s = base.clone();
            assert_eq!(
                s.apply(&KvCommand::delete_range(a, b)),
                Ok(KvApplied::DeletedRange { removed: 0 })
            );
            assert_eq!(s, base);
        }
        // Empty start = from the beginning.
        let mut s = base.clone();
        assert_eq!(
            s.apply(&KvCommand::delete_range("", "b\0")),
            Ok(KvApplied::DeletedRange { removed: 2 })
        );
        assert_eq!(
            keys(&s),
            vec![b"b\0".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
    }

    #[test]
    fn delete_prefix() {
        let base = state(&[
            (b"", b"empty"),
            (b"a", b"1"),
            (b"ab", b"2"),
            (b"ab\xff", b"3"),
            (b"ac", b"4"),
            (b"\xff", b"5"),
            (b"\xff\xff", b"6"),
            (b"\xff\xff\x00", b"7"),
        ]);
        let mut s = base.clone();
        assert_eq!(
            s.apply(&KvCommand::delete_prefix("ab")),
            Ok(KvApplied::DeletedRange { removed: 2 })
        );
        assert!(s.get(b"a").is_some() && s.get(b"ac").is_some());
        assert!(s.get(b"ab").is_none() && s.get(b"ab\xff").is_none());

        // 0xFF prefixes have no successor: everything after them goes.
        let mut s = base.clone();
        assert_eq!(
            s.apply(&KvCommand::delete_prefix(b"\xff\xff".to_vec())),
            Ok(KvApplied::DeletedRange { removed: 2 })
        );
        assert_eq!(s.get(b"\xff"), Some(&b"5"[..]));
        let mut s = base.clone();
        assert_eq!(
            s.apply(&KvCommand::delete_prefix(b"\xff".to_vec())),
            Ok(KvApplied::DeletedRange { removed: 3 })
        );
        assert_eq!(s.len(), 5);
        // a\xff: successor is "b".
        let mut s = base.clone();
        let _ = s.apply(&KvCommand::put(b"b".to_vec(), "keep"));
        assert_eq!(
            s.apply(&KvCommand::delete_prefix(b"a".to_vec())),
            Ok(KvApplied::DeletedRange { removed: 4 })
        );
        assert_eq!(s.get(b"b"), Some(&b"keep"[..]));

        // Empty prefix: everything.
        let mut s = base.clone();
        assert_eq!(
            s.apply(&KvCommand::delete_prefix("")),
            Ok(KvApplied::DeletedRange { removed: 8 })
        );
        assert!(s.is_empty());
        assert_eq!(s.approx_bytes(), 0);
    }

    #[test]
    fn scan_prefix_and_range() {
        let s = state(&[
            (b"a", b"1"),
            (b"ab", b"2"),
            (b"ab\xff", b"3"),
            (b"b", b"4"),
            (b"\xff", b"5"),
            (b"\xff\x01", b"6"),
        ]);
        let scan =
            |p: &[u8]| -> Vec<Vec<u8>> { s.scan_prefix(p).map(|(k, _)| k.to_vec()).collect() };
        assert_eq!(scan(b"ab"), vec![b"ab".to_vec(), b"ab\xff".to_vec()]);
        assert_eq!(scan(b"\xff"), vec![b"\xff".to_vec(), b"\xff\x01".to_vec()]);
        assert_eq!(scan(b"").len(), 6);
        assert!(scan(b"zz").is_empty());
        let r: Vec<_> = s
            .range(b"ab".to_vec()..b"b".to_vec())
            .map(|(k, _)| k)
            .collect();
        assert_eq!(r, vec![&b"ab"[..], &b"ab\xff"[..]]);
        let r: Vec<_> = s
            .range::<&[u8]>(&b"b"[..]..)
            .rev()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(r, vec![&b"\xff\x01"[..], &b"\xff"[..], &b"b"[..]]);
        assert_eq!(s.range::<&[u8]>(&b"b"[..]..&b"a"[..]).count(), 0);
        assert_eq!(s.range::<&[u8]>(&b"b"[..]..&b"b"[..]).count(), 0);
        assert_eq!(s.range::<&[u8]>(&b"b"[..]..=&b"b"[..]).count(), 1);
        assert_eq!(
            s.range::<&[u8]>((Bound::Excluded(&b"b"[..]), Bound::Excluded(&b"b"[..])))
                .count(),
            0
        );
        assert_eq!(s.range::<Vec<u8>>(..).count(), 6);
    }

    #[test]
    fn clone_is_independent() {
        let original = state(&[(b"a", b"1"), (b"b", b"2")]);
        let mut copy = original.clone();
        copy.apply(&KvCommand::put("a", "changed")).unwrap();
        copy.apply(&KvCommand::delete("b")).unwrap();
        copy.apply(&KvCommand::put("c", "3")).unwrap();
        assert_eq!(original.get(b"a"), Some(&b"1"[..]));
        assert_eq!(original.get(b"b"), Some(&b"2"[..]));
        assert_eq!(original.get(b"c"), None);
        assert_eq!(original.approx_bytes(), 4);
        assert_ne!(original, copy);
    }

    #[test]
    fn codec_round_trip_and_format() {
        let s = state(&[(b"", b""), (b"a", b"1"), (b"b\xff", &[0u8; 300])]);
        let bytes = codec::encode(&s).unwrap();
        let back: KvState = codec::decode(&bytes).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.approx_bytes(), s.approx_bytes());
        // Documented format: the bytes of a Vec<(Vec<u8>, Vec<u8>)> in key order.
        let plain: Vec<(Vec<u8>, Vec<u8>)> =
            s.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        assert_eq!(codec::encode(&plain).unwrap(), bytes);
        assert_eq!(
            codec::decode::<KvState>(&codec::encode(&KvState::new()).unwrap()).unwrap(),
            KvState::new()
        );
        // Commands: same bytes as plain Vec<u8> fields, and round trip.
        #[derive(Serialize)]
        enum Plain {
            _Put {
                key: Vec<u8>,
                value: Vec<u8>,
            },
            _Delete,
            _DeleteRange,
            _DeletePrefix,
            Cas {
                key: Vec<u8>,
                expected: Option<Vec<u8>>,
                new: Option<Vec<u8>>,
            },
        }
        let cmd = KvCommand::cas("k", None, Some(b"v"));
        let plain = Plain::Cas {
            key: b"k".to_vec(),
            expected: None,
            new: Some(b"v".to_vec()),
        };
        assert_eq!(codec::encode(&cmd).unwrap(), codec::encode(&plain).unwrap());
        for cmd in [
            KvCommand::put("k", "v"),
            KvCommand::delete(""),
            KvCommand::delete_range("a", "b"),
            KvCommand::delete_prefix(b"\xff".to_vec()),
            cmd,
        ] {
            let (_, back) = codec::encode_verified(&cmd).unwrap();
            assert_eq!(back, cmd);
        }
    }

    #[test]
    fn unsorted_or_duplicate_keys_rejected() {
        for pairs in [
            vec![
                (b"b".to_vec(), b"1".to_vec()),
                (b"a".to_vec(), b"2".to_vec()),
            ],
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"a".to_vec(), b"2".to_vec()),
            ],
        ] {
            let bytes = codec::encode(&pairs).unwrap();
            match codec::decode::<KvState>(&bytes) {
                Err(crate::Error::Codec(msg)) => assert!(msg.contains("not greater"), "{msg}"),
                other => panic!("expected a codec error, got {other:?}"),
            }
        }
    }

    #[test]
    fn truncated_state_rejected() {
        let s = state(&[(b"key", b"value"), (b"other", b"thing")]);
        let bytes = codec::encode(&s).unwrap();
        for cut in 0..bytes.len() {
            assert!(codec::decode::<KvState>(&bytes[..cut]).is_err());
        }
    }

    fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(vec![0u8, 1, b'a', 0xFE, 0xFF]), 0..4)
    }

    fn arb_opt() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop::option::of(arb_bytes())
    }

    fn arb_command() -> impl Strategy<Value = KvCommand> {
        prop_oneof![
            4 => (arb_bytes(), arb_bytes()).prop_map(|(k, v)| KvCommand::put(k, v)),
            2 => arb_bytes().prop_map(KvCommand::delete),
            1 => (arb_bytes(), arb_bytes()).prop_map(|(a, b)| KvCommand::delete_range(a, b)),
            1 => arb_bytes().prop_map(KvCommand::delete_prefix),
            2 => (arb_bytes(), arb_opt(), arb_opt())
                .prop_map(|(key, expected, new)| KvCommand::CompareAndSet { key, expected, new }),
        ]
    }

    type Model = BTreeMap<Vec<u8>, Vec<u8>>;

    fn model_apply(m: &mut Model, cmd: &KvCommand) -> KvOutput {
        let remove_where = |m: &mut Model, pred: &dyn Fn(&[u8]) -> bool| {
            let before = m.len();
            m.retain(|k, _| !pred(k));
            Ok(KvApplied::DeletedRange {
                removed: (before - m.len()) as u64,
            })
        };
        match cmd {
            KvCommand::Put { key, value } => Ok(KvApplied::Put {
                previous: m.insert(key.clone(), value.clone()),
            }),
            KvCommand::Delete { key } => Ok(KvApplied::Deleted {
                previous: m.remove(key),
            }),
            KvCommand::DeleteRange { start, end } => {
                remove_where(m, &|k| start.as_slice() <= k && k < end.as_slice())
            }
            KvCommand::DeletePrefix { prefix } => remove_where(m, &|k| k.starts_with(prefix)),
            KvCommand::CompareAndSet { key, expected, new } => {
                let actual = m.get(key).cloned();
                if actual != *expected {
                    return Err(CasMismatch {
                        key: key.clone(),
                        expected: expected.clone(),
                        actual,
                    });
                }
                match new {
                    Some(v) => m.insert(key.clone(), v.clone()),
                    None => m.remove(key),
                };
                Ok(KvApplied::Swapped)
            }
        }
    }

    /// Keys that stress the inline head: zero bytes (which look like head padding),
    /// lengths around [`KEY_HEAD_BYTES`], and long shared prefixes.
    fn arb_key() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(vec![0u8, 0, 0, 1, b'a', 0xFF]), 0..20)
    }

    fn map_key(bytes: &[u8]) -> MapKey {
        MapKey::new(bytes.into())
    }

    #[test]
    fn key_order_is_byte_order_at_the_head_boundary() {
        // Pairs whose zero-padded heads tie or nearly tie, each in byte order.
        let ordered: [&[u8]; 12] = [
            b"",
            b"\0",
            b"\0\0\0\0\0\0\0",
            b"\0\0\0\0\0\0\0\0",
            b"\0\0\0\0\0\0\0\0\0",
            b"\0\0\0\0\0\0\0\x01",
            b"a",
            b"a\0",
            b"a\0\0\0\0\0\0\0\0\0",
            b"a\0\x01",
            b"abcdefgh",
            b"abcdefgh\0",
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                let expected = i.cmp(&j);
                assert_eq!(map_key(a).cmp(&map_key(b)), expected, "{a:?} vs {b:?}");
                assert_eq!(map_key(a) == map_key(b), i == j, "{a:?} vs {b:?}");
            }
        }
    }

    /// Keys `0..count` as big-endian `u32`s, each with 100 bytes of 7s.
    fn numbered_state(count: u32) -> KvState {
        let mut s = KvState::new();
        for i in 0..count {
            s.apply(&KvCommand::put(i.to_be_bytes(), vec![7u8; 100]))
                .unwrap();
        }
        s
    }

    fn same_allocation(a: &SharedBytes, b: &SharedBytes) -> bool {
        a.0.heap_ptr() == b.0.heap_ptr()
    }

    #[test]
    fn snapshot_shares_key_and_value_bytes() {
        let mut s = numbered_state(1000);
        let snapshot = s.clone();
        // A write into every leaf: copy-on-write clones the leaves of `s`.
        for i in (0..1000u32).step_by(10) {
            s.apply(&KvCommand::put(i.to_be_bytes(), vec![8u8; 100]))
                .unwrap();
        }
        let mut shared = 0;
        for (i, ((k1, v1), (k2, v2))) in snapshot.map.iter().zip(s.map.iter()).enumerate() {
            // Keys in order of `i`; a put replaces key and value.
            let overwritten = i % 10 == 0;
            assert_eq!(
                same_allocation(&k1.bytes, &k2.bytes),
                !overwritten,
                "key {i}"
            );
            assert_eq!(same_allocation(v1, v2), !overwritten, "value {i}");
            shared += usize::from(!overwritten);
        }
        assert_eq!(shared, 900);
        assert_eq!(snapshot.get(&0u32.to_be_bytes()), Some(&[7u8; 100][..]));
    }

    /// `encode_owned` writes the bytes `codec::encode` gives, for an empty state, one
    /// leaf, a multi-level tree, and a snapshot whose live map has moved on since.
    #[test]
    fn consuming_encoding_is_byte_identical() {
        let mut live = KvState::new();
        let mut cases = vec![live.clone(), state(&[(b"", b""), (b"a", b"1")])];
        for i in 0..20_000u32 {
            live.apply(&KvCommand::put(
                i.wrapping_mul(2_654_435_761).to_be_bytes(),
                i.to_le_bytes(),
            ))
            .unwrap();
        }
        cases.push(live.clone());
        let snapshot = live.clone();
        for i in (0..20_000u32).step_by(7) {
            live.apply(&KvCommand::put(i.to_be_bytes(), vec![9u8; 50]))
                .unwrap();
            live.apply(&KvCommand::delete(
                i.wrapping_mul(2_654_435_761).to_be_bytes(),
            ))
            .unwrap();
        }
        cases.push(snapshot);
        cases.push(live.clone());
        for case in cases {
            let expected = codec::encode(&case).unwrap();
            let mut got = Vec::new();
            case.encode_owned(&mut got).unwrap();
            assert_eq!(got, expected);
        }
    }

    /// The live map of a snapshot being encoded: once `after` bytes are written it
    /// overwrites `keys`, and records by how much each write raised the strong count of
    /// the value next to it: a write into a shared leaf copies the leaf, and with it a
    /// reference to every other value in it.
    struct WriteDuring {
        live: KvState,
        keys: Vec<u32>,
        after: usize,
        written: Vec<u8>,
        neighbour_counts: Option<Vec<usize>>,
    }

    impl std::io::Write for WriteDuring {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.written.extend_from_slice(data);
            if self.neighbour_counts.is_none() && self.written.len() >= self.after {
                let mut counts = Vec::new();
                for &key in &self.keys {
                    let neighbour = map_key(&(key + 1).to_be_bytes());
                    let count = |live: &KvState| ThinArc::strong_count(&live.map[&neighbour].0);
                    let before = count(&self.live);
                    self.live
                        .apply(&KvCommand::put(key.to_be_bytes(), vec![8u8; 100]))
                        .unwrap();
                    counts.push(count(&self.live) - before);
                }
                self.neighbour_counts = Some(counts);
            }
            Ok(data.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// While `encode_owned` encodes a snapshot, from its first byte on, the snapshot no
    /// longer shares B-tree leaves with the live map: a write anywhere changes the live
    /// map's leaf in place instead of copying it. Encoding by reference would copy.
    #[test]
    fn consuming_encoding_unshares_the_snapshot_before_writing() {
        let live = numbered_state(2000);
        let snapshot = live.clone();
        let expected = codec::encode(&snapshot).unwrap();
        let mut out = WriteDuring {
            live,
            keys: vec![10, 500, 850, 1150, 1500, 1900],
            after: 1,
            written: Vec::new(),
            neighbour_counts: None,
        };
        snapshot.encode_owned(&mut out).unwrap();
        assert_eq!(out.written, expected);
        assert_eq!(out.neighbour_counts, Some(vec![0; 6]));
        // A second serialization of the same drained entries is refused.
        let one = state(&[(b"a", b"1")]);
        let drained = Drained::new(one.clone().map);
        let mut first = Vec::new();
        codec::encode_into(&drained, &mut first).unwrap();
        assert_eq!(first, codec::encode(&one).unwrap());
        assert!(codec::encode_into(&drained, &mut Vec::new()).is_err());
    }

    proptest! {
        #[test]
        fn key_order_matches_byte_order(a in arb_key(), b in arb_key()) {
            let expected = a.as_slice().cmp(b.as_slice());
            let (ka, kb) = (map_key(&a), map_key(&b));
            prop_assert_eq!(ka.cmp(&kb), expected);
            prop_assert_eq!(ka == kb, a == b);
            prop_assert_eq!(ka.partial_cmp(&kb), Some(expected));
            // Lookup probes follow the same order, against stored keys and each other.
            let (pa, pb) = (KeyProbe::new(&a), KeyProbe::new(&b));
            prop_assert_eq!(probe(&pa).cmp(probe(&pb)), expected);
            let stored: &dyn KeyView = ka.borrow();
            prop_assert_eq!(stored.cmp(probe(&pb)), expected);
            prop_assert_eq!(stored == probe(&pb), a == b);
        }

        #[test]
        fn apply_owned_matches_apply(
            cmds in prop::collection::vec(arb_command(), 0..60),
        ) {
            let mut by_ref = KvState::new();
            let mut owned = KvState::new();
            for cmd in cmds {
                let expected = by_ref.apply(&cmd);
                let got = owned.apply_owned(cmd.clone());
                prop_assert_eq!(&got, &expected, "command {:?}", cmd);
                prop_assert_eq!(&owned, &by_ref);
                prop_assert_eq!(owned.approx_bytes(), by_ref.approx_bytes());
            }
            prop_assert_eq!(codec::encode(&owned).unwrap(), codec::encode(&by_ref).unwrap());
        }
    }

    proptest! {
        /// What `COMMANDS_ROUND_TRIP = true` promises: the store applies the caller's
        /// command, and replay the decoded one, so the two must be equal.
        #[test]
        fn commands_round_trip(cmd in arb_command()) {
            let bytes = codec::encode(&cmd).unwrap();
            prop_assert_eq!(codec::decode::<KvCommand>(&bytes).unwrap(), cmd);
        }
    }

    proptest! {
        /// `KvStore::put` logs a `PreparedPut` and applies it directly, while replay
        /// decodes and applies a `KvCommand::Put`: the logged bytes, the output and the
        /// resulting state must all be the same. Lengths cross the 1-byte varint limit.
        #[test]
        fn prepared_put_logs_and_applies_what_kv_command_put_does(
            existing in prop::collection::vec((arb_bytes(), arb_bytes()), 0..8),
            key in prop::collection::vec(any::<u8>(), 0..300),
            value in prop::collection::vec(any::<u8>(), 0..300),
            overwrite in any::<bool>(),
        ) {
            let mut direct = KvState::default();
            for (k, v) in existing {
                direct.apply_owned(KvCommand::put(k, v)).unwrap();
            }
            if overwrite {
                direct.apply_owned(KvCommand::put(key.clone(), b"old".to_vec())).unwrap();
            }
            let mut replayed = direct.clone();
            let command = KvCommand::put(key.clone(), value.clone());
            let prepared = PreparedPut::new(&key, &value);
            let payload = prepared.payload().unwrap();
            prop_assert_eq!(&payload, &codec::encode(&command).unwrap());
            prop_assert_eq!(codec::decode::<KvCommand>(&payload).unwrap(), command);
            let out_direct = prepared.apply(&mut direct);
            let out_replayed = replayed.apply_owned(codec::decode(&payload).unwrap());
            prop_assert_eq!(out_direct, out_replayed);
            prop_assert_eq!(direct.approx_bytes(), replayed.approx_bytes());
            prop_assert_eq!(direct, replayed);
        }
    }

    proptest! {
        #[test]
        fn matches_btreemap_model(
            cmds in prop::collection::vec(arb_command(), 0..60),
            probe in arb_bytes(),
            lo in arb_bytes(),
            hi in arb_bytes(),
        ) {
            let mut s = KvState::new();
            let mut m = Model::new();
            for cmd in &cmds {
                let snapshot = s.clone();
                let got = s.apply(cmd);
                prop_assert_eq!(&got, &model_apply(&mut m, cmd), "command {:?}", cmd);
                if got.is_err() {
                    prop_assert_eq!(&s, &snapshot);
                }
                let entries: Vec<(Vec<u8>, Vec<u8>)> =
                    s.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
                let model: Vec<(Vec<u8>, Vec<u8>)> = m.clone().into_iter().collect();
                prop_assert_eq!(entries, model);
                prop_assert_eq!(s.len(), m.len());
                prop_assert_eq!(
                    s.approx_bytes(),
                    m.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
                );
            }
            let scanned: Vec<&[u8]> = s.scan_prefix(&probe).map(|(k, _)| k).collect();
            let expected: Vec<&[u8]> =
                m.keys().filter(|k| k.starts_with(&probe)).map(Vec::as_slice).collect();
            prop_assert_eq!(scanned, expected);
            let ranged: Vec<&[u8]> = s.range(lo.clone()..hi.clone()).map(|(k, _)| k).collect();
            let expected: Vec<&[u8]> = m
                .keys()
                .filter(|k| lo <= **k && **k < hi)
                .map(Vec::as_slice)
                .collect();
            prop_assert_eq!(ranged, expected);
            let back: KvState = codec::decode(&codec::encode(&s).unwrap()).unwrap();
            prop_assert_eq!(back, s);
        }
    }
}
