//! Both codecs (`Codec::Compact`, bincode; `Codec::Evolvable`, CBOR) on arbitrary bytes,
//! decoded as a representative nested state type: strings, a byte vector, a map of
//! enums, an optional boxed recursion, defaulted and optional fields.
//!
//! Input: the bytes to decode, whole (each codec decodes all of them).
//! Asserts: no decode panics, aborts on a hostile length prefix (libFuzzer's
//! `-rss_limit_mb` and `-malloc_limit_mb` catch large allocations) or overflows the stack;
//! a value that decodes re-encodes to bytes that decode to the same value and that
//! encode again to exactly the same bytes (determinism); a decoded value's re-encoding
//! under the other codec round-trips too.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use walstate::codec::Codec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Count(u32),
    Pair(i16, String),
    Named { id: u64, tags: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    title: String,
    #[serde(default)]
    version: u32,
    data: Vec<u8>,
    index: BTreeMap<String, Shape>,
    parent: Option<Box<Doc>>,
    shape: Shape,
    ratio: Option<i64>,
}

const CODECS: [Codec; 2] = [Codec::Compact, Codec::Evolvable];

fuzz_target!(|data: &[u8]| {
    for codec in CODECS {
        if let Ok(doc) = codec.decode::<Doc>(data) {
            for again in CODECS {
                check_round_trip(again, &doc);
            }
        }
        if let Ok(shape) = codec.decode::<Shape>(data) {
            check_round_trip(codec, &shape);
        }
        let from_reader = codec.decode_from_reader::<Doc>(&mut &data[..], data.len() as u64);
        let from_slice = codec.decode::<Doc>(data);
        assert_eq!(
            from_reader.ok(),
            from_slice.ok(),
            "{} decodes differently from a reader",
            codec.name()
        );
    }
});

fn check_round_trip<T>(codec: Codec, value: &T)
where
    T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    let bytes = codec.encode(value).expect("a decoded value encodes");
    let back: T = codec
        .decode(&bytes)
        .unwrap_or_else(|e| panic!("{} re-encoding does not decode: {e}", codec.name()));
    assert_eq!(&back, value, "{} round trip changed the value", codec.name());
    assert_eq!(
        codec.encode(&back).unwrap(),
        bytes,
        "{} encoding is not deterministic",
        codec.name()
    );
}
