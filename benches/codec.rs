//! Codec candidates for `Codec::Evolvable`, next to bincode (`Codec::Compact`), on three
//! shapes of value: a config-like struct, a small command enum, and a state with a
//! 10 000-entry `BTreeMap<String, struct>`. Each is encoded and decoded by:
//! - `bincode`: the crate's Compact codec (`codec::encode` / `codec::decode`);
//! - `evolvable`: the crate's Evolvable codec (`Codec::Evolvable`: ciborium plus the
//!   structure check that bounds allocation and depth);
//! - `ciborium`: raw CBOR, `ciborium::into_writer` / `from_reader`;
//! - `rmp_serde`: MessagePack with struct maps (`to_vec_named`; rmp-serde 1.3 always
//!   writes enum variants by name);
//! - `postcard`: not evolvable, for comparison.
//!
//! Encoded sizes are printed before the timings. Run:
//! `cargo bench --bench codec` (add `-- --quick` for a rough pass).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use walstate::codec::{self, Codec};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Mode {
    Off,
    Standby { since_ms: u64 },
    Active(u32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Config {
    name: String,
    listen_host: String,
    listen_port: u16,
    connections_max: u32,
    timeout_ms: u64,
    skew_ppm: i64,
    tags: Vec<String>,
    owner: Option<String>,
    mode: Mode,
    retries: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Command {
    Put { key: String, value: u64 },
    Delete { key: String },
    Clear,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    id: u64,
    label: String,
    weight: u32,
    enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    generation: u64,
    entries: BTreeMap<String, Entry>,
}

fn config() -> Config {
    Config {
        name: "ingest-eu-west".into(),
        listen_host: "0.0.0.0".into(),
        listen_port: 8443,
        connections_max: 10_000,
        timeout_ms: 30_000,
        skew_ppm: -250,
        tags: vec!["prod".into(), "eu".into(), "tier-1".into()],
        owner: Some("platform-team".into()),
        mode: Mode::Standby {
            since_ms: 1_700_000_000_000,
        },
        retries: 5,
    }
}

fn command() -> Command {
    Command::Put {
        key: "user:4711".into(),
        value: 123_456,
    }
}

fn state() -> State {
    let entries = (0..10_000u64)
        .map(|i| {
            let entry = Entry {
                id: i,
                label: format!("label-{i}"),
                weight: (i * 7919 % 100_000) as u32,
                enabled: i % 3 != 0,
            };
            (format!("key-{i:06}"), entry)
        })
        .collect();
    State {
        generation: 42,
        entries,
    }
}

/// One candidate: a name and its encode/decode functions.
struct Candidate<T> {
    name: &'static str,
    encode: fn(&T) -> Vec<u8>,
    decode: fn(&[u8]) -> T,
}

fn candidates<T: Serialize + DeserializeOwned>() -> Vec<Candidate<T>> {
    vec![
        Candidate {
            name: "bincode",
            encode: |v| codec::encode(v).unwrap(),
            decode: |b| codec::decode(b).unwrap(),
        },
        Candidate {
            name: "evolvable",
            encode: |v| Codec::Evolvable.encode(v).unwrap(),
            decode: |b| Codec::Evolvable.decode(b).unwrap(),
        },
        Candidate {
            name: "ciborium",
            encode: |v| {
                let mut out = Vec::new();
                ciborium::into_writer(v, &mut out).unwrap();
                out
            },
            decode: |b| ciborium::from_reader(b).unwrap(),
        },
        Candidate {
            name: "rmp_serde",
            encode: |v| rmp_serde::to_vec_named(v).unwrap(),
            decode: |b| rmp_serde::from_slice(b).unwrap(),
        },
        Candidate {
            name: "postcard",
            encode: |v| postcard::to_allocvec(v).unwrap(),
            decode: |b| postcard::from_bytes(b).unwrap(),
        },
    ]
}

fn bench_value<T>(c: &mut Criterion, shape: &str, value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut group = c.benchmark_group(format!("codec/{shape}"));
    for candidate in candidates::<T>() {
        let bytes = (candidate.encode)(value);
        assert_eq!(
            &(candidate.decode)(&bytes),
            value,
            "{} round trip",
            candidate.name
        );
        println!("size {shape} {} {} bytes", candidate.name, bytes.len());
        group.bench_function(BenchmarkId::new("encode", candidate.name), |b| {
            b.iter(|| (candidate.encode)(black_box(value)))
        });
        group.bench_function(BenchmarkId::new("decode", candidate.name), |b| {
            b.iter(|| (candidate.decode)(black_box(&bytes)))
        });
    }
    group.finish();
}

fn codecs(c: &mut Criterion) {
    bench_value(c, "config", &config());
    bench_value(c, "command", &command());
    bench_value(c, "state10k", &state());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = codecs
}
criterion_main!(benches);
