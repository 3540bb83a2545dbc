//! Schema evolution under `Codec::Evolvable`: bytes written by a "v1" type decoded as its
//! "v2", one test per rule in the codec module's docs; plus the guarantees Evolvable
//! shares with Compact (whole input, bounded allocation, depth limit, no panics,
//! determinism), checked for both codecs where they apply.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use walstate::Error;
use walstate::codec::{self, Codec, EVOLVABLE_DEPTH_MAX};
use walstate::error::CodecFailure;

// ---- A counting allocator: the largest single allocation each thread asked for. ----

struct LargestAllocation;

thread_local! {
    static LARGEST_BYTES: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST_BYTES.try_with(|largest| {
        if size > largest.get() {
            largest.set(size);
        }
    });
}

// SAFETY: forwards every call to `System` unchanged; only records sizes.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// Runs `f` and returns its result with the largest allocation it made on this thread.
fn largest_allocation_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST_BYTES.with(|l| l.set(0));
    let result = f();
    (result, LARGEST_BYTES.with(Cell::get))
}

// ---- Helpers ----

const EVO: Codec = Codec::Evolvable;

/// Encodes `old` with Evolvable and decodes the bytes as `New`.
fn upgrade<Old: Serialize, New: DeserializeOwned>(old: &Old) -> walstate::Result<New> {
    EVO.decode::<New>(&EVO.encode(old).unwrap())
}

fn codec_message<T: std::fmt::Debug>(r: walstate::Result<T>) -> String {
    match r {
        Err(Error::Codec(err)) => err.message().to_owned(),
        other => panic!("expected Error::Codec, got {other:?}"),
    }
}

fn assert_codec_error<T: std::fmt::Debug>(r: walstate::Result<T>, needles: &[&str]) {
    let msg = codec_message(r);
    for needle in needles {
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    }
}

// ---- Codec identity ----

#[test]
fn codec_ids_are_stable_and_round_trip() {
    assert_eq!(Codec::default(), Codec::Compact);
    assert_eq!(Codec::Compact.id(), 0);
    assert_eq!(Codec::Evolvable.id(), 1);
    for codec in [Codec::Compact, Codec::Evolvable] {
        assert_eq!(Codec::from_id(codec.id()), Some(codec));
    }
    for unknown in 2..=u8::MAX {
        assert_eq!(Codec::from_id(unknown), None);
    }
    assert_eq!(Codec::Compact.name(), "compact (bincode 2)");
    assert!(Codec::Evolvable.name().starts_with("evolvable (CBOR"));
}

#[test]
fn compact_arms_are_the_free_functions() {
    let value = (String::from("k"), vec![1u32, 2, 3], Some(-4i64));
    let bytes = codec::encode(&value).unwrap();
    assert_eq!(Codec::Compact.encode(&value).unwrap(), bytes);
    assert_eq!(
        Codec::Compact
            .decode::<(String, Vec<u32>, Option<i64>)>(&bytes)
            .unwrap(),
        value
    );
    let (verified, back) = Codec::Compact.encode_verified(&value).unwrap();
    assert_eq!((verified, back), codec::encode_verified(&value).unwrap());
}

// ---- Evolution rules, v1 bytes decoded as v2 ----

mod added_field {
    use super::*;
    #[derive(Serialize)]
    pub struct V1 {
        pub name: String,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    pub struct V2 {
        pub name: String,
        #[serde(default)]
        pub retries: u32,
        #[serde(default = "default_port")]
        pub port: u16,
        pub owner: Option<String>,
    }
    fn default_port() -> u16 {
        8080
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    pub struct V2NoDefault {
        pub name: String,
        pub port: u16,
    }
}

#[test]
fn added_default_field_decodes_old_bytes_with_the_default() {
    let v2: added_field::V2 = upgrade(&added_field::V1 { name: "a".into() }).unwrap();
    assert_eq!(
        v2,
        added_field::V2 {
            name: "a".into(),
            retries: 0,
            port: 8080,
            // An Option added without #[serde(default)] is None too (serde's rule).
            owner: None,
        }
    );
}

#[test]
fn added_field_without_default_fails_naming_the_field() {
    let r = upgrade::<_, added_field::V2NoDefault>(&added_field::V1 { name: "a".into() });
    assert_eq!(
        r.as_ref().err().and_then(Error::codec_failure),
        Some(CodecFailure::StructureMismatch),
        "a well-formed value of another structure is a mismatch, not damage"
    );
    assert_codec_error(r, &["missing field `port`", "V2NoDefault"]);
}

#[test]
fn compact_added_default_field_breaks_old_bytes() {
    let bytes = codec::encode(&added_field::V1 { name: "a".into() }).unwrap();
    assert_codec_error(codec::decode::<added_field::V2>(&bytes), &["cannot decode"]);
}

mod variants {
    use super::*;
    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    pub enum V1 {
        Start,
        Resize(u32),
        Move { x: i32, y: i32 },
    }
    /// `Pause(u32)` inserted before `Resize`, `Rename` appended.
    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    pub enum V2 {
        Start,
        Pause(u32),
        Resize(u32),
        Move { x: i32, y: i32 },
        Rename(String),
    }
    /// `Resize` removed.
    #[derive(Debug, Deserialize, PartialEq)]
    pub enum V3 {
        Start,
        Move { x: i32, y: i32 },
    }
    /// `Resize` renamed to `Scale`, without and with an alias.
    #[derive(Debug, Deserialize, PartialEq)]
    pub enum Renamed {
        Start,
        Scale(u32),
    }
    #[derive(Debug, Deserialize, PartialEq)]
    pub enum Aliased {
        Start,
        #[serde(alias = "Resize")]
        Scale(u32),
    }
}

#[test]
fn appended_variant_keeps_every_old_variant() {
    use variants::{V1, V2};
    assert_eq!(upgrade::<_, V2>(&V1::Start).unwrap(), V2::Start);
    assert_eq!(
        upgrade::<_, V2>(&V1::Move { x: -1, y: 2 }).unwrap(),
        V2::Move { x: -1, y: 2 }
    );
}

#[test]
fn inserted_variant_decodes_the_right_variant() {
    use variants::{V1, V2};
    assert_eq!(upgrade::<_, V2>(&V1::Resize(7)).unwrap(), V2::Resize(7));
}

#[test]
fn compact_inserted_variant_silently_changes_meaning() {
    // What Evolvable exists for: under bincode the variant index 1 now means `Pause`.
    use variants::{V1, V2};
    let bytes = codec::encode(&V1::Resize(7)).unwrap();
    assert_eq!(codec::decode::<V2>(&bytes).unwrap(), V2::Pause(7));
}

#[test]
fn removed_variant_still_in_the_log_fails() {
    use variants::{V1, V3};
    assert_eq!(upgrade::<_, V3>(&V1::Start).unwrap(), V3::Start);
    assert_codec_error(
        upgrade::<_, V3>(&V1::Resize(7)),
        &["unknown variant `Resize`"],
    );
}

#[test]
fn renamed_variant_needs_an_alias() {
    use variants::{Aliased, Renamed, V1};
    assert_codec_error(
        upgrade::<_, Renamed>(&V1::Resize(7)),
        &["unknown variant `Resize`"],
    );
    assert_eq!(
        upgrade::<_, Aliased>(&V1::Resize(7)).unwrap(),
        Aliased::Scale(7)
    );
}

mod fields {
    use super::*;
    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    pub struct V1 {
        pub host: String,
        pub port: u16,
        pub legacy_flags: Vec<String>,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    pub struct Removed {
        pub host: String,
        pub port: u16,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    pub struct Reordered {
        pub legacy_flags: Vec<String>,
        pub port: u16,
        pub host: String,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    pub struct Renamed {
        pub address: String,
        pub port: u16,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    pub struct Aliased {
        #[serde(alias = "host")]
        pub address: String,
        pub port: u16,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    pub struct Widened {
        pub host: String,
        pub port: u32,
        pub legacy_flags: Vec<String>,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    pub struct Narrowed {
        pub host: String,
        pub port: u8,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    pub struct Retyped {
        pub host: u64,
        pub port: u16,
    }
    pub fn v1() -> V1 {
        V1 {
            host: "db.internal".into(),
            port: 5432,
            legacy_flags: vec!["a".into(), "b".into()],
        }
    }
}

#[test]
fn removed_field_is_ignored() {
    let r: fields::Removed = upgrade(&fields::v1()).unwrap();
    assert_eq!(
        r,
        fields::Removed {
            host: "db.internal".into(),
            port: 5432
        }
    );
}

#[test]
fn reordered_fields_decode() {
    let r: fields::Reordered = upgrade(&fields::v1()).unwrap();
    assert_eq!(r.host, "db.internal");
    assert_eq!(r.port, 5432);
    assert_eq!(r.legacy_flags, ["a", "b"]);
}

#[test]
fn renamed_field_without_alias_fails_naming_the_new_field() {
    assert_codec_error(
        upgrade::<_, fields::Renamed>(&fields::v1()),
        &["missing field `address`"],
    );
}

#[test]
fn renamed_field_with_alias_decodes() {
    let r: fields::Aliased = upgrade(&fields::v1()).unwrap();
    assert_eq!(r.address, "db.internal");
}

#[test]
fn widened_integer_decodes_the_same_value() {
    // u16 -> u32: CBOR integers carry no width, so the value simply decodes.
    let r: fields::Widened = upgrade(&fields::v1()).unwrap();
    assert_eq!(r.port, 5432u32);
}

#[test]
fn narrowed_integer_fails_when_the_value_does_not_fit() {
    // u16 -> u8 with 5432 stored: refused, never truncated.
    assert_codec_error(
        upgrade::<_, fields::Narrowed>(&fields::v1()),
        &["cannot decode", "Narrowed"],
    );
}

#[test]
fn incompatible_field_type_fails() {
    assert_codec_error(
        upgrade::<_, fields::Retyped>(&fields::v1()),
        &["cannot decode", "invalid type"],
    );
}

// ---- serde features Evolvable supports and Compact refuses ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(u64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
enum Internal {
    Circle { radius: u32 },
    Square { side: u32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Flattened {
    id: u64,
    #[serde(flatten)]
    extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Skipping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    items: Vec<u8>,
    n: u8,
}

fn evolvable_round_trips<T>(value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let (bytes, back) = EVO.encode_verified(value).unwrap();
    assert_eq!(&back, value);
    assert_eq!(EVO.decode::<T>(&bytes).unwrap(), *value);
}

#[test]
fn evolvable_supports_deserialize_any_types_that_compact_refuses() {
    let json = serde_json::json!({"a": [1, -2, 3.5, {"b": null, "c": true}], "d": "x"});
    evolvable_round_trips(&json);
    evolvable_round_trips(&Untagged::Number(5));
    evolvable_round_trips(&Untagged::Text("five".into()));
    evolvable_round_trips(&Internal::Square { side: 3 });
    let flattened = Flattened {
        id: 9,
        extra: [("colour".to_string(), "red".to_string())].into(),
    };
    evolvable_round_trips(&flattened);
    // 128-bit integers (CBOR bignum tags), which Compact also stores.
    evolvable_round_trips(&(u128::MAX, i128::MIN, 1u128 << 64));
    evolvable_round_trips(&Skipping {
        note: None,
        items: vec![],
        n: 1,
    });
    evolvable_round_trips(&Skipping {
        note: Some("n".into()),
        items: vec![1, 2],
        n: 1,
    });

    assert_codec_error(Codec::Compact.encode_verified(&json), &["cannot be stored"]);
    assert_codec_error(
        Codec::Compact.encode_verified(&Untagged::Number(5)),
        &["cannot be stored"],
    );
    assert_codec_error(
        Codec::Compact.encode_verified(&Internal::Square { side: 3 }),
        &["cannot be stored"],
    );
    assert_codec_error(
        Codec::Compact.encode_verified(&flattened),
        &["cannot be stored"],
    );
}

// ---- Guarantees shared with Compact ----

#[test]
fn trailing_bytes_rejected_by_both_codecs() {
    for codec in [Codec::Compact, Codec::Evolvable] {
        let mut bytes = codec.encode(&fields::v1()).unwrap();
        bytes.extend_from_slice(&[0, 0]);
        assert_codec_error(codec.decode::<fields::V1>(&bytes), &["2 trailing bytes"]);
        let len = bytes.len() as u64;
        assert_codec_error(
            codec.decode_from_reader::<fields::V1>(&mut bytes.as_slice(), len - 2),
            &["trailing bytes"],
        );
    }
}

#[test]
fn every_truncation_rejected_by_evolvable() {
    let bytes = EVO.encode(&fields::v1()).unwrap();
    for cut in 0..bytes.len() {
        assert_codec_error(EVO.decode::<fields::V1>(&bytes[..cut]), &["cannot decode"]);
    }
    let short = bytes.len() as u64 + 5;
    assert_codec_error(
        EVO.decode_from_reader::<fields::V1>(&mut bytes.as_slice(), short),
        &["input ends early"],
    );
}

#[test]
fn encode_into_and_decode_from_reader_match_the_slice_functions() {
    let value = fields::v1();
    for codec in [Codec::Compact, Codec::Evolvable] {
        let bytes = codec.encode(&value).unwrap();
        let mut streamed = Vec::new();
        let written = codec.encode_into(&value, &mut streamed).unwrap();
        assert_eq!(written, bytes.len());
        assert_eq!(streamed, bytes);
        let back: fields::V1 = codec
            .decode_from_reader(&mut bytes.as_slice(), bytes.len() as u64)
            .unwrap();
        assert_eq!(back, value);
    }
}

/// A CBOR header of major type `major` with an 8-byte argument `arg`.
fn cbor_header_u64(major: u8, arg: u64) -> Vec<u8> {
    let mut out = vec![(major << 5) | 27];
    out.extend_from_slice(&arg.to_be_bytes());
    out
}

/// A byte buffer read through `deserialize_byte_buf`, the path that preallocates.
#[derive(Debug)]
struct ByteBuf(#[allow(dead_code)] Vec<u8>);
impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// A sequence whose `Deserialize` trusts the size hint completely, as some third-party
/// collections do: it shows the hint the decoder passes on is bounded by the input.
#[derive(Debug)]
struct TrustingVec(#[allow(dead_code)] Vec<u64>);
impl<'de> Deserialize<'de> for TrustingVec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TrustingVec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<TrustingVec, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(x) = seq.next_element()? {
                    out.push(x);
                }
                Ok(TrustingVec(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// Allocations a hostile 20-byte input may cause: small buffers of the decoder, never
/// anything proportional to a claimed length.
const HOSTILE_ALLOCATION_BYTES_MAX: usize = 64 << 10;

fn assert_hostile_fails_small<T: DeserializeOwned + std::fmt::Debug>(bytes: &[u8]) {
    let (result, largest) = largest_allocation_of(|| EVO.decode::<T>(bytes));
    assert!(
        largest <= HOSTILE_ALLOCATION_BYTES_MAX,
        "{} allocated {largest} bytes for {} input",
        std::any::type_name::<T>(),
        walstate::error::sized(bytes.len() as u64)
    );
    assert_codec_error(result, &["claims"]);
    let (result, largest) =
        largest_allocation_of(|| EVO.decode_from_reader::<T>(&mut &bytes[..], bytes.len() as u64));
    assert!(
        largest <= HOSTILE_ALLOCATION_BYTES_MAX,
        "reader: {largest} bytes"
    );
    assert_codec_error(result, &["claims"]);
}

#[test]
fn hostile_length_prefixes_fail_fast_without_large_allocation() {
    for claimed in [
        u64::MAX,
        1 << 40,
        4 << 30,
        (4 << 30) - 1,
        100 << 20,
        1 << 16,
    ] {
        let mut text = cbor_header_u64(3, claimed);
        text.extend_from_slice(b"abc");
        assert_hostile_fails_small::<String>(&text);
        assert_hostile_fails_small::<serde_json::Value>(&text);

        let mut bytes = cbor_header_u64(2, claimed);
        bytes.extend_from_slice(b"abc");
        assert_hostile_fails_small::<ByteBuf>(&bytes);

        let mut seq = cbor_header_u64(4, claimed);
        seq.extend_from_slice(&[0x61, b'a', 0x61, b'b']);
        assert_hostile_fails_small::<Vec<String>>(&seq);
        assert_hostile_fails_small::<TrustingVec>(&seq);
        assert_hostile_fails_small::<serde_json::Value>(&seq);

        let mut map = cbor_header_u64(5, claimed);
        map.extend_from_slice(&[0x61, b'a', 0x01]);
        assert_hostile_fails_small::<BTreeMap<String, u64>>(&map);
        assert_hostile_fails_small::<fields::V1>(&map);

        // The same claim nested inside a valid struct field.
        let mut nested = vec![0xa3, 0x64];
        nested.extend_from_slice(b"host");
        nested.extend(cbor_header_u64(3, claimed));
        nested.extend_from_slice(b"db");
        assert_hostile_fails_small::<fields::V1>(&nested);
    }
    // A map claiming more entries than half the remaining bytes: each entry takes two.
    assert_hostile_fails_small::<BTreeMap<u8, u8>>(&[0xa3, 0, 0, 0, 0, 0]);
}

#[test]
fn deep_nesting_refused_before_decoding() {
    let depth_ok = EVOLVABLE_DEPTH_MAX;
    let mut ok = vec![0x81; depth_ok - 1];
    ok.push(0x80);
    assert!(EVO.decode::<serde_json::Value>(&ok).is_ok());

    for depth in [EVOLVABLE_DEPTH_MAX + 1, 100_000] {
        let mut deep = vec![0x81; depth - 1];
        deep.push(0x80);
        assert_codec_error(EVO.decode::<serde_json::Value>(&deep), &["nesting deeper"]);
        // Tags nest too.
        let mut tags = vec![0xc6; depth];
        tags.push(0x00);
        assert_codec_error(EVO.decode::<serde_json::Value>(&tags), &["nesting deeper"]);
    }
}

#[test]
fn malformed_headers_rejected() {
    for bytes in [
        &[0x1c][..],               // reserved additional information
        &[0xff],                   // a lone break
        &[0x1f],                   // indefinite integer
        &[0x7f, 0x41, 0x00, 0xff], // byte-string chunk inside a text string
        &[0x9f, 0x01],             // indefinite array without its break
    ] {
        assert_codec_error(EVO.decode::<serde_json::Value>(bytes), &["cannot decode"]);
    }
}

// ---- Random input and values ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Unit,
    Newtype(i64),
    Tuple(u8, String),
    Struct { flag: bool, ratio: i32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Nested {
    name: String,
    numbers: Vec<u64>,
    table: BTreeMap<String, Kind>,
    maybe: Option<Box<Nested>>,
    kind: Kind,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Unit),
        any::<i64>().prop_map(Kind::Newtype),
        (any::<u8>(), ".{0,8}").prop_map(|(a, b)| Kind::Tuple(a, b)),
        (any::<bool>(), any::<i32>()).prop_map(|(flag, ratio)| Kind::Struct { flag, ratio }),
    ]
}

fn nested() -> impl Strategy<Value = Nested> {
    let leaf = (
        ".{0,12}",
        prop::collection::vec(any::<u64>(), 0..6),
        prop::collection::btree_map(".{0,6}", kind(), 0..4),
        kind(),
    )
        .prop_map(|(name, numbers, table, kind)| Nested {
            name,
            numbers,
            table,
            maybe: None,
            kind,
        });
    leaf.prop_recursive(3, 8, 1, |inner| {
        (inner, ".{0,4}", kind()).prop_map(|(child, name, kind)| Nested {
            name,
            numbers: vec![],
            table: BTreeMap::new(),
            maybe: Some(Box::new(child)),
            kind,
        })
    })
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for codec in [Codec::Compact, Codec::Evolvable] {
            let _ = codec.decode::<Nested>(&bytes);
            let _ = codec.decode::<Kind>(&bytes);
            let _ = codec.decode::<String>(&bytes);
            let _ = codec.decode::<Vec<u32>>(&bytes);
            let _ = codec.decode_from_reader::<Nested>(&mut bytes.as_slice(), bytes.len() as u64);
        }
        let _ = EVO.decode::<serde_json::Value>(&bytes);
    }

    #[test]
    fn random_values_round_trip_both_codecs(value in nested()) {
        for codec in [Codec::Compact, Codec::Evolvable] {
            let (bytes, back) = codec.encode_verified(&value).unwrap();
            prop_assert_eq!(&back, &value);
            prop_assert_eq!(codec.decode::<Nested>(&bytes).unwrap(), value.clone());
        }
    }

    #[test]
    fn equal_values_give_equal_bytes(value in nested()) {
        // A clone rebuilt field by field (maps re-inserted in reverse order) is equal
        // and must encode to the same bytes.
        let mut rebuilt = value.clone();
        rebuilt.table = value.table.iter().rev().map(|(k, v)| (k.clone(), v.clone())).collect();
        for codec in [Codec::Compact, Codec::Evolvable] {
            prop_assert_eq!(codec.encode(&value).unwrap(), codec.encode(&rebuilt).unwrap());
        }
    }
}
