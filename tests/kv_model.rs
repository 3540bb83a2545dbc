//! `KvState` against the one reference model (`tests/common/kv_model.rs`): after every
//! command of a random program, the outputs, the entries, the sizes, prefix scans,
//! ranges and the encoding round trip agree with a plain `BTreeMap`.
//!
//! An integration test, not a unit test of `src/kv/`, so that it shares the model with
//! `crash_sim.rs` and the fuzz targets without the library exporting it.

mod common;

use common::kv_model::{self, Map};
use proptest::prelude::*;
use walstate::{KvCommand, KvState, StateMachine, codec};

/// Few distinct bytes, so keys collide, share prefixes and include 0xFF.
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

proptest! {
    #[test]
    fn matches_btreemap_model(
        cmds in prop::collection::vec(arb_command(), 0..60),
        probe in arb_bytes(),
        lo in arb_bytes(),
        hi in arb_bytes(),
    ) {
        let mut s = KvState::new();
        let mut m = Map::new();
        for cmd in &cmds {
            let snapshot = s.clone();
            let got = s.apply(cmd);
            prop_assert_eq!(&got, &kv_model::apply(&mut m, cmd), "command {:?}", cmd);
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
