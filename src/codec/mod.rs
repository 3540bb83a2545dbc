//! Serde values <-> bytes. The only place in the crate that knows about the codecs.
//!
//! Two codecs, picked by [`Codec`] (its [`id`](Codec::id) is what goes on disk):
//! - **Compact** ([`Codec::Compact`], the default, and the free functions of this module):
//!   bincode 2 in serde mode with `bincode::config::standard()`: little endian,
//!   variable-length integers, no type tags, no field names. The fastest and smallest,
//!   but the bytes mean something only to the exact type that wrote them.
//! - **Evolvable** ([`Codec::Evolvable`]): CBOR (RFC 8949) via `ciborium`. Structs are
//!   maps keyed by field name, enum variants are identified by name (a unit variant is
//!   its name as a text string, any other variant a one-entry map `{name: content}`),
//!   integers are self-describing and of minimal width. Encoding takes 1.1-3x as long as
//!   Compact's, decoding 2-9x, and the bytes are 1.9-2.4x larger (benches/CODEC-CHOICE.md),
//!   so it is for config-style states whose type changes between releases, not for hot
//!   high-volume commands.
//!
//! Identical values give identical bytes under both codecs as long as their `Serialize`
//! is deterministic (a `HashMap` is not: its entry order varies between processes, so
//! prefer `BTreeMap` or `imbl::OrdMap`).
//!
//! # Evolution rules (Evolvable)
//! Bytes written by an old version of a type decode as the new version, with no
//! migration code, after these changes:
//! - **adding a field** marked `#[serde(default)]` (or `default = "path"`): old bytes
//!   decode with the default. An `Option<_>` field added without `default` also decodes
//!   as `None` (serde treats a missing `Option` as `None`);
//! - **removing a field**: its value in old bytes is skipped;
//! - **reordering fields**;
//! - **adding, inserting or reordering enum variants**: variants are matched by name, so an
//!   old `Stop` still decodes as `Stop` after `Pause` is inserted before it;
//! - **renaming a field or variant with `#[serde(alias = "old")]`** kept on the new name;
//! - **widening an integer** (`u16` -> `u32`, `i32` -> `i64`, unsigned -> a wider
//!   signed type): CBOR integers carry no width. Narrowing works only while every stored
//!   value fits; one that does not fails with an [`Error::Codec`] naming the value.
//!
//! Unsafe, and refused with an [`Error::Codec`] (never a wrong value):
//! - renaming a field without an alias (the message names the missing field), or a
//!   variant without one (the message names the unknown variant);
//! - adding a field that is neither `Option` nor `#[serde(default)]`;
//! - changing a field's type incompatibly (string -> integer, struct -> sequence);
//! - removing an enum variant that the log or a checkpoint still holds.
//!
//! Under Compact every one of these changes breaks old bytes (often silently, for
//! variants, which are numbered by position): a Compact type may not change at all
//! without migration code.
//!
//! # Limits
//! - **No `deserialize_any` under Compact.** Bincode stores no type information, so it
//!   cannot decode types whose `Deserialize` asks the format what comes next:
//!   `serde_json::Value`, `#[serde(untagged)]` and internally/adjacently tagged enums
//!   (`#[serde(tag = ...)]`), and structs using `#[serde(flatten)]` (which also fail to
//!   encode). Such types often encode fine and only fail when read back, so
//!   [`encode_verified`] decodes what it encoded and refuses them with an
//!   [`Error::Codec`] before anything is logged. **Evolvable supports all of these**
//!   (CBOR is self-describing; `flatten` is written as an indefinite-length map).
//! - **No skipped fields under Compact.** `#[serde(skip_serializing_if = ...)]` makes the
//!   field count vary and the bytes undecodable; [`encode_verified`] refuses such values
//!   when they fail to decode or leave trailing bytes. Evolvable supports them when the
//!   field also has `#[serde(default)]` (or is an `Option`).
//! - **Bounded allocation.** A corrupt or hostile length prefix cannot make [`decode`]
//!   allocate more than a budget derived from the input size: 16 MiB for inputs up to
//!   1 MiB, 1 GiB up to 64 MiB, 64 GiB up to 4 GiB (unbounded beyond that). Every valid
//!   encoding fits its budget (bincode charges at most 16 budget bytes per input byte), so
//!   large states never fail to decode because of the limit. Evolvable first checks the
//!   whole input's structure in one linear pass: every declared length
//!   of a string, byte string, array or map must fit in the bytes that remain after its
//!   header (each element takes at least one byte), so no length the decoder later acts
//!   on exceeds the input size, and serde's collections preallocate at most that (and at
//!   most 1 MiB per collection). Evolvable's [`Codec::decode_from_reader`] reads the
//!   input into memory first (its buffer grows with the bytes actually read, up to
//!   `input_len`) because that pass must see all of it before decoding starts.
//! - **Nesting depth.** Evolvable refuses input nested deeper than
//!   [`EVOLVABLE_DEPTH_MAX`] arrays, maps and tags before decoding, so hostile input
//!   cannot overflow the stack. (Compact's nesting is set by the type, not the input.)
//! - **Whole input.** [`decode`] and both codecs' [`Codec::decode`] reject trailing bytes
//!   after a complete value.

use bincode::config::{self, Config, Configuration};
use bincode::enc::write::{SizeWriter, Writer};
use bincode::error::{DecodeError, EncodeError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{CodecFailure, Error, Result};

mod evolvable;

use evolvable::{cbor_decode, cbor_decode_from_reader, cbor_encode, cbor_encode_into};

/// How deep Evolvable input may nest arrays, maps and tags (each struct, map, sequence,
/// non-unit enum variant and `Option::Some` of a struct counts one level). Deeper input is
/// refused before decoding, so hostile bytes cannot overflow the stack.
pub const EVOLVABLE_DEPTH_MAX: usize = 128;

/// The bincode configuration of every value walstate writes.
const BASE: Configuration = config::standard();

/// `1 << shift`, or `usize::MAX` where that does not fit (32-bit targets).
const fn pow2_or_max(shift: u32) -> usize {
    match 1usize.checked_shl(shift) {
        Some(v) => v,
        None => usize::MAX,
    }
}

/// Inputs up to this size decode with [`BUDGET_SMALL`].
const INPUT_SMALL: usize = 1 << 20;
/// Inputs up to this size decode with [`BUDGET_MEDIUM`].
const INPUT_MEDIUM: usize = 1 << 26;
/// Inputs up to this size decode with [`BUDGET_LARGE`].
const INPUT_LARGE: usize = pow2_or_max(32);
/// Budget for inputs up to 1 MiB: 16 MiB.
const BUDGET_SMALL: usize = INPUT_SMALL * 16;
/// Budget for inputs up to 64 MiB: 1 GiB.
const BUDGET_MEDIUM: usize = INPUT_MEDIUM * 16;
/// Budget for inputs up to 4 GiB: 64 GiB.
const BUDGET_LARGE: usize = pow2_or_max(36);

/// Encodes `value` with the crate's bincode configuration.
///
/// Fails with [`Error::Codec`] when the value's `Serialize` errors or emits a sequence or
/// map of unknown length (`#[serde(flatten)]`, `collect_seq` over a non-exact iterator).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    // Two passes, sizing then writing, so the result is allocated once at its exact
    // size: `encode_to_vec` grows its buffer as it goes, a reallocation or more per
    // command on the commit path.
    let mut size = SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut size, BASE)
        .map_err(|e| encode_error::<T>(&e))?;
    let mut out = ExactVec(Vec::with_capacity(size.bytes_written));
    bincode::serde::encode_into_writer(value, &mut out, BASE).map_err(|e| encode_error::<T>(&e))?;
    Ok(out.0)
}

/// A bincode writer appending to a `Vec` sized beforehand.
struct ExactVec(Vec<u8>);

impl Writer for ExactVec {
    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Decodes a `T` that must fill `bytes` exactly.
///
/// Trailing bytes are an error. Allocation is bounded by a budget derived from
/// `bytes.len()` (see the module docs), so corrupt input fails instead of exhausting memory.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let len = bytes.len();
    let decoded = if len <= INPUT_SMALL {
        decode_with(bytes, BASE.with_limit::<BUDGET_SMALL>())
    } else if len <= INPUT_MEDIUM {
        decode_with(bytes, BASE.with_limit::<BUDGET_MEDIUM>())
    } else if len <= INPUT_LARGE {
        decode_with(bytes, BASE.with_limit::<BUDGET_LARGE>())
    } else {
        decode_with(bytes, BASE.with_limit::<{ usize::MAX }>())
    };
    let (value, read) = decoded.map_err(|e| decode_error::<T>(&e, len))?;
    if read != len {
        return Err(Error::codec(
            CodecFailure::TrailingBytes,
            format!(
                "{} trailing bytes after a complete {} ({read} of {len} bytes used): the bytes are corrupt or hold a different type",
                len.saturating_sub(read),
                std::any::type_name::<T>(),
            ),
        ));
    }
    Ok(value)
}

/// Encodes `value` straight into `writer` (nothing is buffered here: a large state is
/// never held in memory as bytes). Returns the number of bytes written.
pub fn encode_into<T: Serialize + ?Sized, W: std::io::Write>(
    value: &T,
    writer: &mut W,
) -> Result<usize> {
    bincode::serde::encode_into_std_write(value, writer, BASE).map_err(|e| encode_error::<T>(&e))
}

/// Decodes one `T` from `reader`, which holds `input_len` bytes, and checks that nothing
/// follows it. Allocation is bounded as for [`decode`].
pub fn decode_from_reader<T: DeserializeOwned>(
    reader: &mut dyn std::io::Read,
    input_len: u64,
) -> Result<T> {
    let value = read_one::<T>(reader, input_len)?;
    expect_end(reader)?;
    Ok(value)
}

/// Walks an encoded sequence of `T` (a `Vec<T>`, or any type serialized as a sequence)
/// from `reader`, decoding one element at a time and handing it to `each`: checks an
/// encoding with memory for a single element. `input_len` is the number of bytes the
/// reader holds; nothing may follow the sequence.
pub fn for_each_in_seq<T: DeserializeOwned>(
    reader: &mut dyn std::io::Read,
    input_len: u64,
    mut each: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    // A sequence is its length (a varint u64, exactly as a u64 is encoded) and then its
    // elements.
    let count = read_one::<u64>(reader, input_len)?;
    if count > input_len {
        return Err(Error::codec(
            CodecFailure::Decode,
            format!(
                "sequence claims {count} elements but only {input_len} bytes exist: the bytes are corrupt"
            ),
        ));
    }
    for _ in 0..count {
        each(read_one::<T>(reader, input_len)?)?;
    }
    expect_end(reader)
}

fn read_one<T: DeserializeOwned>(mut reader: &mut dyn std::io::Read, input_len: u64) -> Result<T> {
    let len = usize::try_from(input_len).unwrap_or(usize::MAX);
    let decoded = if len <= INPUT_SMALL {
        bincode::serde::decode_from_std_read(&mut reader, BASE.with_limit::<BUDGET_SMALL>())
    } else if len <= INPUT_MEDIUM {
        bincode::serde::decode_from_std_read(&mut reader, BASE.with_limit::<BUDGET_MEDIUM>())
    } else if len <= INPUT_LARGE {
        bincode::serde::decode_from_std_read(&mut reader, BASE.with_limit::<BUDGET_LARGE>())
    } else {
        bincode::serde::decode_from_std_read(&mut reader, BASE.with_limit::<{ usize::MAX }>())
    };
    decoded.map_err(|e| decode_error::<T>(&e, len))
}

fn expect_end(reader: &mut dyn std::io::Read) -> Result<()> {
    let mut probe = [0u8; 1];
    match reader.read(&mut probe) {
        Ok(0) => Ok(()),
        Ok(_) => Err(Error::codec(
            CodecFailure::TrailingBytes,
            "trailing bytes after a complete value: the bytes are corrupt or hold a different type",
        )),
        Err(err) => Err(Error::codec(
            CodecFailure::Decode,
            format!("reading encoded bytes: {err}"),
        )),
    }
}

/// Encodes `value`, decodes the bytes back, and returns both.
///
/// Callers apply the returned decoded value, never the original, so the live state is by
/// construction what replay rebuilds from the same bytes. Values that do not decode back
/// (types that need `deserialize_any`: `serde_json::Value`, untagged or internally tagged
/// enums, `#[serde(flatten)]`; or a `Serialize` that skips fields) are refused with an
/// [`Error::Codec`] saying why.
pub fn encode_verified<T: Serialize + DeserializeOwned>(value: &T) -> Result<(Vec<u8>, T)> {
    let bytes = encode(value)?;
    let decoded = decode::<T>(&bytes).map_err(refused::<T>)?;
    Ok((bytes, decoded))
}

/// Runs one bincode serde decode with a concrete (limited) configuration.
fn decode_with<T: DeserializeOwned, C: Config>(
    bytes: &[u8],
    config: C,
) -> std::result::Result<(T, usize), DecodeError> {
    bincode::serde::decode_from_slice(bytes, config)
}

/// Explains why the type cannot round-trip through bincode.
const ANY_HINT: &str = "its Deserialize needs deserialize_any, which bincode cannot provide because it stores no type information \
     (serde_json::Value, #[serde(untagged)] or #[serde(tag = ...)] enums, #[serde(flatten)]); \
     use a concrete type, an externally tagged enum, or store such data as a String/Vec<u8>";

fn encode_error<T: ?Sized>(err: &EncodeError) -> Error {
    let ty = std::any::type_name::<T>();
    match err {
        EncodeError::Serde(bincode::serde::EncodeError::SequenceMustHaveLength) => Error::codec(
            CodecFailure::Unstorable,
            format!(
                "{ty} cannot be stored: it serializes a sequence or map of unknown length, \
                 which bincode cannot encode (#[serde(flatten)] does this; so does collect_seq/collect_map \
                 over an iterator without an exact size)"
            ),
        ),
        other => Error::codec(CodecFailure::Encode, format!("cannot encode {ty}: {other}")),
    }
}

fn decode_error<T>(err: &DecodeError, len: usize) -> Error {
    use bincode::serde::DecodeError as SerdeErr;
    let ty = std::any::type_name::<T>();
    match err {
        DecodeError::Serde(
            SerdeErr::AnyNotSupported
            | SerdeErr::IgnoredAnyNotSupported
            | SerdeErr::IdentifierNotSupported,
        ) => Error::codec(
            CodecFailure::Unstorable,
            format!("{ty} cannot be stored: {ANY_HINT}"),
        ),
        DecodeError::LimitExceeded => Error::codec(
            CodecFailure::Decode,
            format!(
                "cannot decode {ty} from {len} bytes: a length prefix claims more memory than such an input \
             can hold (corrupt or hostile bytes)"
            ),
        ),
        DecodeError::UnexpectedEnd { additional } => Error::codec(
            CodecFailure::Decode,
            format!(
                "cannot decode {ty} from {len} bytes: input ends early (at least {additional} more bytes needed; truncated or corrupt)"
            ),
        ),
        other => Error::codec(
            CodecFailure::Decode,
            format!("cannot decode {ty} from {len} bytes: {other}"),
        ),
    }
}

/// Which codec a store's values are written with. Chosen by the state type and recorded
/// on disk by its [`id`](Self::id); see the module docs for what each guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Default)]
pub enum Codec {
    /// bincode 2 (the module's free functions): fastest and smallest; the type must
    /// never change without migration code.
    #[default]
    Compact,
    /// CBOR with field and variant names: the type may evolve under the module's rules.
    Evolvable,
}

impl Codec {
    /// The byte that identifies this codec on disk. Stable: never renumber.
    pub const fn id(self) -> u8 {
        match self {
            Codec::Compact => 0,
            Codec::Evolvable => 1,
        }
    }

    /// The codec whose [`id`](Self::id) is `id`, or `None` for an id this build does not
    /// know (written by a newer version, or corrupt).
    pub fn from_id(id: u8) -> Option<Codec> {
        match id {
            0 => Some(Codec::Compact),
            1 => Some(Codec::Evolvable),
            _ => None,
        }
    }

    /// A human-readable name, for messages and `walstate` output.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Compact => "compact (bincode 2)",
            Codec::Evolvable => "evolvable (CBOR, RFC 8949)",
        }
    }

    /// Encodes `value`; Compact is the module's `encode`.
    #[inline]
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>> {
        match self {
            Codec::Compact => encode(value),
            Codec::Evolvable => cbor_encode(value),
        }
    }

    /// Decodes a `T` that must fill `bytes` exactly; Compact is the module's `decode`. Allocation is
    /// bounded and nesting limited as the module docs say.
    #[inline]
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T> {
        match self {
            Codec::Compact => decode(bytes),
            Codec::Evolvable => cbor_decode(bytes),
        }
    }

    /// Encodes `value` straight into `writer`, returning the number of bytes written;
    /// Compact is the module's `encode_into`. Neither codec buffers the encoding.
    #[inline]
    pub fn encode_into<T: Serialize + ?Sized, W: std::io::Write>(
        self,
        value: &T,
        writer: &mut W,
    ) -> Result<usize> {
        match self {
            Codec::Compact => encode_into(value, writer),
            Codec::Evolvable => cbor_encode_into(value, writer),
        }
    }

    /// Decodes one `T` from `reader`, which holds `input_len` bytes, and checks that
    /// nothing follows it; Compact is the module's `decode_from_reader`. Evolvable reads the input
    /// into memory first (at most `input_len` bytes, allocated as they arrive).
    #[inline]
    pub fn decode_from_reader<T: DeserializeOwned>(
        self,
        reader: &mut dyn std::io::Read,
        input_len: u64,
    ) -> Result<T> {
        match self {
            Codec::Compact => decode_from_reader(reader, input_len),
            Codec::Evolvable => cbor_decode_from_reader(reader, input_len),
        }
    }

    /// Encodes `value`, decodes the bytes back, and returns both; Compact is
    /// the module's `encode_verified`. Callers apply the decoded value, never the original.
    #[inline]
    pub fn encode_verified<T: Serialize + DeserializeOwned>(
        self,
        value: &T,
    ) -> Result<(Vec<u8>, T)> {
        match self {
            Codec::Compact => encode_verified(value),
            Codec::Evolvable => {
                let bytes = cbor_encode(value)?;
                let decoded = cbor_decode::<T>(&bytes).map_err(refused::<T>)?;
                Ok((bytes, decoded))
            }
        }
    }
}

/// The error of a value that encodes but does not decode back.
fn refused<T>(err: Error) -> Error {
    let detail = match err {
        Error::Codec(err) => err.to_string(),
        other => other.to_string(),
    };
    Error::codec(
        CodecFailure::Unstorable,
        format!(
            "{} cannot be stored: it encodes but does not decode back ({detail})",
            std::any::type_name::<T>()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Deserializer};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Rec {
        name: String,
        data: Vec<u8>,
        n: u64,
        tag: Option<i32>,
    }

    fn rec() -> Rec {
        Rec {
            name: "héllo wörld".into(),
            data: (0..=255u8).collect(),
            n: 1 << 40,
            tag: Some(-7),
        }
    }

    /// The failure kind a message of this shape must carry.
    fn kind_of_message(msg: &str) -> CodecFailure {
        if msg.contains("cannot be stored") {
            CodecFailure::Unstorable
        } else if msg.contains("trailing bytes") {
            CodecFailure::TrailingBytes
        } else if msg.starts_with("cannot encode") {
            CodecFailure::Encode
        } else {
            CodecFailure::Decode
        }
    }

    fn assert_codec<T: std::fmt::Debug>(r: Result<T>, needles: &[&str]) {
        match r {
            Err(Error::Codec(err)) => {
                let msg = err.message();
                for n in needles {
                    assert!(msg.contains(n), "{msg:?} lacks {n:?}");
                }
                assert_eq!(err.failure(), kind_of_message(msg), "{msg}");
            }
            other => panic!("expected Error::Codec, got {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let v = rec();
        let bytes = encode(&v).unwrap();
        assert_eq!(decode::<Rec>(&bytes).unwrap(), v);
        let (bytes2, back) = encode_verified(&v).unwrap();
        assert_eq!(bytes2, bytes);
        assert_eq!(back, v);
        // Unsized input.
        assert_eq!(
            encode("abc").unwrap(),
            encode(&String::from("abc")).unwrap()
        );
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut bytes = encode(&rec()).unwrap();
        bytes.extend_from_slice(&[0, 0, 0]);
        assert_codec(decode::<Rec>(&bytes), &["3 trailing bytes"]);
    }

    #[test]
    fn every_truncation_rejected() {
        let bytes = encode(&rec()).unwrap();
        for cut in 0..bytes.len() {
            assert_codec(decode::<Rec>(&bytes[..cut]), &["cannot decode"]);
        }
    }

    #[test]
    fn untagged_enum_refused() {
        #[derive(Debug, Serialize, Deserialize)]
        #[serde(untagged)]
        enum U {
            A(u32),
            B(String),
        }
        assert_codec(
            encode_verified(&U::B("x".into())),
            &["cannot be stored", "deserialize_any", "untagged"],
        );
        let _ = U::A(1);
    }

    #[test]
    fn json_value_refused() {
        let v = serde_json::json!({"a": [1, 2, {"b": null}]});
        assert_codec(
            encode_verified(&v),
            &["cannot be stored", "deserialize_any", "serde_json::Value"],
        );
    }

    #[test]
    fn flatten_refused() {
        #[derive(Debug, Serialize, Deserialize)]
        struct Inner {
            x: u8,
        }
        #[derive(Debug, Serialize, Deserialize)]
        struct Outer {
            #[serde(flatten)]
            inner: Inner,
        }
        assert_codec(
            encode_verified(&Outer {
                inner: Inner { x: 1 },
            }),
            &["cannot be stored", "flatten"],
        );
    }

    #[test]
    fn skipped_field_refused() {
        #[derive(Debug, Serialize, Deserialize)]
        struct S {
            #[serde(skip_serializing_if = "Option::is_none")]
            a: Option<u8>,
            b: u8,
        }
        assert_codec(encode_verified(&S { a: None, b: 1 }), &["cannot be stored"]);
    }

    /// Length prefix `n` as bincode's standard config writes it.
    fn varint_u64(n: u64) -> Vec<u8> {
        encode(&n).unwrap()
    }

    /// A byte buffer read through `deserialize_byte_buf`, the path that preallocates.
    #[derive(Debug)]
    struct ByteBuf(#[allow(dead_code)] Vec<u8>);
    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = ByteBuf;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> std::result::Result<ByteBuf, E> {
                    Ok(ByteBuf(v))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    #[test]
    fn hostile_length_prefix_does_not_allocate() {
        // If decode tried to allocate these, the process would abort (no test passes).
        for claimed in [1u64 << 60, 1 << 40, 1 << 31, 100 << 20] {
            let mut bytes = varint_u64(claimed);
            bytes.extend_from_slice(b"abc");
            assert_codec(decode::<Vec<u8>>(&bytes), &["cannot decode"]);
            assert_codec(decode::<String>(&bytes), &["cannot decode"]);
            assert_codec(decode::<ByteBuf>(&bytes), &["cannot decode"]);
            assert_codec(decode::<Vec<String>>(&bytes), &["cannot decode"]);
        }
        let mut bytes = varint_u64(1 << 60);
        bytes.push(0);
        assert_codec(
            decode::<String>(&bytes),
            &["length prefix claims more memory"],
        );
    }

    #[test]
    fn large_values_fit_their_budget() {
        // u128 zeros cost 16 budget bytes per input byte: the worst case. Sizes straddle
        // the first tier boundary.
        for n in [(1 << 20) - 5, (1 << 20) - 4, (1 << 20) + 100] {
            let v = vec![0u128; n];
            let bytes = encode(&v).unwrap();
            if n == (1 << 20) - 5 {
                assert_eq!(bytes.len(), 1 << 20, "largest input of the first tier");
            }
            assert_eq!(decode::<Vec<u128>>(&bytes).unwrap().len(), n);
        }
        let s = "x".repeat(3 << 20);
        assert_eq!(decode::<String>(&encode(&s).unwrap()).unwrap(), s);
    }
}
