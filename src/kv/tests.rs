//! Unit tests of the key-value state machine: keys and their order, commands, queries
//! and encodings. The comparison against the reference model is `tests/kv_model.rs`.
//! Compiled only under `#[cfg(test)]`, where `mod.rs` declares this module.

use std::borrow::Borrow;
use std::ops::Bound;

use proptest::prelude::*;
use serde::Serialize;

use super::encoding::Drained;
use super::keys::{Entry, KeyProbe, KeyView, probe};
use super::{CasMismatch, KvApplied, KvCommand, KvState, PreparedPut};
use crate::codec;
use crate::state::StateMachine;

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
    assert!(msg.contains(r#"key "\x00\xff\n""#), "{msg}");
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
    let scan = |p: &[u8]| -> Vec<Vec<u8>> { s.scan_prefix(p).map(|(k, _)| k.to_vec()).collect() };
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
    let plain: Vec<(Vec<u8>, Vec<u8>)> = s.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
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
            Err(crate::Error::Codec(err)) => {
                assert!(err.message().contains("not greater"), "{err}");
                assert_eq!(err.failure(), crate::error::CodecFailure::Decode);
            }
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

/// Keys that stress the inline head: zero bytes (which look like head padding),
/// lengths around `keys::KEY_HEAD_BYTES` (8), and long shared prefixes.
fn arb_key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0u8, 0, 0, 1, b'a', 0xFF]), 0..20)
}

fn map_key(bytes: &[u8]) -> Entry {
    Entry::new(bytes, b"")
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

fn same_allocation(a: &Entry, b: &Entry) -> bool {
    a.same_allocation(b)
}

/// One allocation holds both: every key length around the length prefix's byte
/// boundaries and the stack assembly limit, with empty, small and large values.
#[test]
fn an_entry_gives_back_its_key_and_value() {
    for key_len in [0usize, 1, 8, 127, 128, 129, 255, 256, 300, 16_383, 16_384, 70_000] {
        for value_len in [0usize, 1, 100, 255, 256, 5000] {
            let key: Vec<u8> = (0..key_len).map(|i| (i % 251) as u8).collect();
            let value: Vec<u8> = (0..value_len).map(|i| (i % 241) as u8 ^ 0x5A).collect();
            let entry = Entry::new(&key, &value);
            assert_eq!(entry.key(), &key[..], "key of {key_len} bytes");
            assert_eq!(entry.value(), &value[..], "value of {value_len} bytes");
            assert_eq!(entry, map_key(&key), "entries compare by key");
        }
    }
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
    for (i, ((e1, ()), (e2, ()))) in snapshot.map.iter().zip(s.map.iter()).enumerate() {
        // Keys in order of `i`; a put replaces the entry (key and value, one allocation).
        let overwritten = i % 10 == 0;
        assert_eq!(same_allocation(e1, e2), !overwritten, "entry {i}");
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
                let count = |live: &KvState| {
                    live.map.get(&neighbour).expect("a neighbour").0.strong_count()
                };
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

/// The bytes of `KvCommand::Put` of these lengths, and the put `borrowed_put` reads.
#[test]
fn borrowed_put_reads_every_varint_length_form_and_nothing_else() {
    for len in [0usize, 1, 250, 251, 252, 65_535, 65_536, 70_000] {
        let key = vec![0xA5u8; len.min(300)];
        let value: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let payload = codec::encode(&KvCommand::put(key.clone(), value.clone())).unwrap();
        let (k, v) = super::encoding::borrowed_put(&payload).expect("a put");
        assert_eq!((k, v), (&key[..], &value[..]), "lengths {} and {len}", key.len());
        // Truncated anywhere, or with a byte after it: not a put it reads.
        for cut in 0..payload.len() {
            assert!(super::encoding::borrowed_put(&payload[..cut]).is_none());
        }
        let mut longer = payload.clone();
        longer.push(0);
        assert!(super::encoding::borrowed_put(&longer).is_none());
    }
    // A length in a longer form than it needs is left to the full decoder.
    assert!(super::encoding::borrowed_put(&[0, 251, 1, 0, 0]).is_none());
    for other in [KvCommand::delete("k"), KvCommand::cas("k", None, Some(b"v"))] {
        assert!(super::encoding::borrowed_put(&codec::encode(&other).unwrap()).is_none());
    }
}

proptest! {
    /// Replay's path (`apply_encoded`) and the decoded command's (`apply_owned`) give
    /// the same state for every command sequence, and fail on the same payloads.
    #[test]
    fn applying_encoded_commands_equals_applying_decoded_ones(
        commands in prop::collection::vec(arb_command(), 0..40),
        garbage in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..8),
    ) {
        let mut encoded = KvState::new();
        let mut decoded = KvState::new();
        for command in &commands {
            let payload = codec::encode(command).unwrap();
            encoded.apply_encoded(&payload).unwrap();
            let _ = decoded.apply_owned(codec::decode::<KvCommand>(&payload).unwrap());
            prop_assert_eq!(&encoded, &decoded);
            prop_assert_eq!(encoded.approx_bytes(), decoded.approx_bytes());
        }
        for payload in garbage {
            let via_decode = codec::decode::<KvCommand>(&payload);
            let via_encoded = encoded.apply_encoded(&payload);
            prop_assert_eq!(via_decode.is_ok(), via_encoded.is_ok(), "payload {:?}", payload);
            if let Ok(command) = via_decode {
                let _ = decoded.apply_owned(command);
            }
            prop_assert_eq!(&encoded, &decoded);
        }
    }
}
