//! The serde encodings of the key-value types: byte strings as bytes (`bytes`,
//! `opt_bytes`), [`KvState`] as a sorted sequence of pairs (checked when decoded), the
//! [`Drained`] snapshot a checkpoint writes, and [`PutRef`], a `KvCommand::Put` encoded
//! from borrowed bytes.
//!
//! Owns the bytes these types are logged and checkpointed as (tests pin them); must
//! never change what a command does.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::KvState;
use super::keys::Entry;
use super::tree::{Tree, TreeBuilder};
use crate::error::ShowBytes;

/// Serializes as [`KvCommand::Put`] of these bytes (variant 0, then the key and value
/// as bytes), without owning them.
pub(super) struct PutRef<'a> {
    pub(super) key: &'a [u8],
    pub(super) value: &'a [u8],
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

/// Serializes bytes with `serialize_bytes` (in bincode: length + raw bytes, the same as a
/// `Vec<u8>`), and reads them back from bytes or a sequence.
pub(super) mod bytes {
    use super::*;

    pub(in crate::kv) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(in crate::kv) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor(PhantomData))
    }

    /// Serde wrapper around a borrowed byte slice.
    pub(in crate::kv) struct Ser<'a>(pub(in crate::kv) &'a [u8]);

    impl Serialize for Ser<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    /// Serde wrapper around an owned byte vector.
    pub(in crate::kv) struct De(pub(in crate::kv) Vec<u8>);

    impl<'de> Deserialize<'de> for De {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_byte_buf(BytesVisitor(PhantomData)).map(De)
        }
    }

    /// Bytes written as a sequence of `u8`s (what a `Vec<u8>` without `serde(with)` is).
    pub(in crate::kv) fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Vec<u8>, A::Error> {
        // Cap the preallocation: the length hint comes from untrusted input.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }

    /// Builds a `T` (a `Vec<u8>`) from whatever form the bytes come in.
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

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
            from_seq(seq).map(T::from)
        }
    }
}

/// Like [`bytes`] for `Option<Vec<u8>>`.
pub(super) mod opt_bytes {
    use super::*;

    pub(in crate::kv) fn serialize<S: Serializer>(
        v: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&bytes::Ser(b)),
            None => s.serialize_none(),
        }
    }

    pub(in crate::kv) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<bytes::De>::deserialize(d)?.map(|b| b.0))
    }
}

impl Serialize for KvState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.map.len()))?;
        for (entry, ()) in self.map.iter() {
            seq.serialize_element(&(bytes::Ser(entry.key()), bytes::Ser(entry.value())))?;
        }
        seq.end()
    }
}

/// Entries per chunk of a [`Drained`] snapshot: 32 KiB, freed as each is written.
const DRAINED_CHUNK_ENTRIES: usize = 4096;

/// A snapshot's entries moved out of its B-tree, in key order, in chunks that are freed
/// as they are written; serialized exactly as [`KvState`] is. Built by
/// [`StateMachine::encode_owned`]. It serializes once; a second attempt is an error.
pub(super) struct Drained {
    len: usize,
    chunks: std::cell::Cell<Vec<Vec<Entry>>>,
}

impl Drained {
    /// Moves the entries out of `map`, releasing each of its leaves once emptied (a leaf
    /// another map still shares is copied, and then that map's alone).
    pub(super) fn new(map: Tree<Entry, ()>) -> Self {
        let len = map.len();
        let mut entries = map.into_iter().map(|(entry, ())| entry);
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
            for entry in chunk {
                seq.serialize_element(&(bytes::Ser(entry.key()), bytes::Ser(entry.value())))?;
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

            /// One pass: entries arrive in key order and go straight into full leaves
            /// (no per-key descent); the order is checked against the previous key.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KvState, A::Error> {
                let mut builder = TreeBuilder::default();
                let mut bytes = 0usize;
                let mut index = 0u64;
                while let Some(DeEntry(entry)) = seq.next_element()? {
                    if let Some(last) = builder.last_key()
                        && entry <= *last
                    {
                        return Err(de::Error::custom(format_args!(
                            "KvState entry {index}: key {} is not greater than the previous key {} \
                             (keys must be unique and sorted; the data is corrupt)",
                            ShowBytes::quoted(entry.key()),
                            ShowBytes::quoted(last.key()),
                        )));
                    }
                    bytes += entry.key().len() + entry.value().len();
                    builder.push(entry, ());
                    index += 1;
                }
                Ok(KvState {
                    map: builder.finish(),
                    bytes,
                })
            }
        }

        d.deserialize_seq(StateVisitor)
    }
}

/// A `(key, value)` pair of byte strings, decoded into one [`Entry`]: from bytes the
/// deserializer lends (one copy, into the entry), else from owned ones.
struct DeEntry(Entry);

impl<'de> Deserialize<'de> for DeEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairVisitor;

        impl<'de> Visitor<'de> for PairVisitor {
            type Value = Entry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a (key, value) pair of byte strings")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
                let CowBytes(key) = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let CowBytes(value) = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                Ok(Entry::new(&key, &value))
            }
        }

        d.deserialize_tuple(2, PairVisitor).map(DeEntry)
    }
}

/// Bytes borrowed from the input when the deserializer lends them, else owned.
struct CowBytes<'de>(std::borrow::Cow<'de, [u8]>);

impl<'de> Deserialize<'de> for CowBytes<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CowVisitor;

        impl<'de> Visitor<'de> for CowVisitor {
            type Value = CowBytes<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(CowBytes(v.into()))
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(CowBytes(v.to_vec().into()))
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                Ok(CowBytes(v.into()))
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowBytes(v.as_bytes().into()))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowBytes(v.as_bytes().to_vec().into()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                bytes::from_seq(seq).map(|v| CowBytes(v.into()))
            }
        }

        d.deserialize_bytes(CowVisitor)
    }
}

/// The key and value of a [`KvCommand::Put`](super::KvCommand::Put) in the Compact
/// codec (bincode's standard configuration: the variant index 0 as one byte, then the
/// key and the value, each a varint length and its bytes), borrowed from `payload`, with
/// nothing after them. `None` for any other command and for any form this does not
/// read: then the full decoder decides. It reads only canonical varints, which the
/// full decoder reads as the same lengths, so a payload this accepts decodes to the
/// same `Put`.
pub(super) fn borrowed_put(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&variant, rest) = payload.split_first()?;
    if variant != 0 {
        return None;
    }
    let (key, rest) = byte_string(rest)?;
    let (value, rest) = byte_string(rest)?;
    rest.is_empty().then_some((key, value))
}

/// A varint length and that many bytes from the start of `bytes`, and what follows.
fn byte_string(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = canonical_varint(bytes)?;
    let len = usize::try_from(len).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// bincode's varint of an unsigned integer, in its shortest form only: one byte below
/// 251; 251 and a little-endian `u16`, `u32` (252) or `u64` (253) too large for the
/// form before.
fn canonical_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let fixed = |n: usize, min: u64| -> Option<(u64, &[u8])> {
        let (raw, rest) = (rest.get(..n)?, &rest[n..]);
        let mut le = [0u8; 8];
        le[..n].copy_from_slice(raw);
        let value = u64::from_le_bytes(le);
        (value >= min).then_some((value, rest))
    };
    match tag {
        0..=250 => Some((u64::from(tag), rest)),
        251 => fixed(2, 251),
        252 => fixed(4, 1 << 16),
        253 => fixed(8, 1 << 32),
        _ => None,
    }
}
