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
use super::keys::{MapKey, SharedBytes};
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

    /// Serde wrapper around shared bytes: decoded straight into the [`SharedBytes`] from
    /// a deserializer that lends its input (one copy), else from its `Vec`.
    pub(in crate::kv) struct DeShared(pub(in crate::kv) SharedBytes);

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
pub(super) struct Drained {
    len: usize,
    chunks: std::cell::Cell<Vec<Vec<(SharedBytes, SharedBytes)>>>,
}

impl Drained {
    /// Moves the entries out of `map`, releasing each of its leaves once emptied (a leaf
    /// another map still shares is copied, and then that map's alone).
    pub(super) fn new(map: Tree<MapKey, SharedBytes>) -> Self {
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

            /// One pass: entries arrive in key order and go straight into full leaves
            /// (no per-key descent); the order is checked against the previous key.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KvState, A::Error> {
                let mut builder = TreeBuilder::default();
                let mut bytes = 0usize;
                let mut index = 0u64;
                while let Some((bytes::DeShared(key), bytes::DeShared(value))) =
                    seq.next_element()?
                {
                    let key = MapKey::new(key);
                    if let Some(last) = builder.last_key()
                        && key <= *last
                    {
                        return Err(de::Error::custom(format_args!(
                            "KvState entry {index}: key {} is not greater than the previous key {} \
                             (keys must be unique and sorted; the data is corrupt)",
                            ShowBytes::quoted(&key.bytes),
                            ShowBytes::quoted(&last.bytes),
                        )));
                    }
                    bytes += key.bytes.len() + value.len();
                    builder.push(key, value);
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
