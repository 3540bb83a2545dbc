//! `Store::refresh` of a read-only store reads only what the writer appended since the
//! last look, and ends in exactly the state a fresh open would recover: across rotations,
//! group commits, checkpoints that delete segments, snapshot restores and writer reopens
//! (seals), with and without preallocated segments.

use std::sync::Arc;

use proptest::prelude::*;
use walstate::io::{SimFs, VfsRef};
use walstate::{KvStore, Options};

const DIR: &str = "/srv/app/state";

fn options(vfs: &VfsRef, preallocate: bool) -> Options {
    Options::default()
        .vfs(vfs.clone())
        .checkpoint_after_bytes(None)
        .segment_size_bytes(4096)
        .preallocate_segments(preallocate)
}

/// What the writer does between two looks of the reader.
#[derive(Debug, Clone)]
enum Step {
    Put(u8, u16),
    Delete(u8),
    Batch(Vec<(u8, u16)>),
    Checkpoint,
    Snapshot,
    Restore,
    ReopenWriter,
    Refresh,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0u8..24, any::<u16>()).prop_map(|(k, v)| Step::Put(k, v)),
        2 => (0u8..24).prop_map(Step::Delete),
        2 => proptest::collection::vec((0u8..24, any::<u16>()), 1..6).prop_map(Step::Batch),
        1 => Just(Step::Checkpoint),
        1 => Just(Step::Snapshot),
        1 => Just(Step::Restore),
        1 => Just(Step::ReopenWriter),
        4 => Just(Step::Refresh),
    ]
}

fn key(k: u8) -> Vec<u8> {
    format!("key/{k:02}").into_bytes()
}

/// A value long enough that a few dozen commits fill a 4 KiB segment.
fn value(v: u16) -> Vec<u8> {
    format!("{v:05}-{}", "x".repeat(40)).into_bytes()
}

fn contents(store: &KvStore) -> Vec<(Vec<u8>, Vec<u8>)> {
    store.scan_prefix(b"").expect("scan")
}

fn run(steps: &[Step], preallocate: bool) {
    let sim = SimFs::new(11);
    let vfs: VfsRef = sim.clone();
    let mut writer = Some(KvStore::open(DIR, options(&vfs, preallocate)).expect("open writer"));
    writer
        .as_ref()
        .expect("writer")
        .put("seed", "0")
        .expect("put");
    let reader = KvStore::open_read_only(DIR, options(&vfs, preallocate)).expect("open reader");
    let mut snapshots = 0u32;
    // Commits the writer made since the reader's last refresh, and whether a checkpoint
    // ran meanwhile (only then may a refresh need to recover again).
    let mut commits_since = 0u64;
    let mut checkpointed_since = false;
    let mut refreshes = 0;
    for step in steps.iter().chain(std::iter::once(&Step::Refresh)) {
        let store = writer.as_ref().expect("writer");
        match step {
            Step::Put(k, v) => {
                store.put(key(*k), value(*v)).expect("put");
                commits_since += 1;
            }
            Step::Delete(k) => {
                store.delete(key(*k)).expect("delete");
                commits_since += 1;
            }
            Step::Batch(pairs) => {
                store
                    .put_batch(pairs.iter().map(|(k, v)| (key(*k), value(*v))))
                    .expect("batch");
                commits_since += pairs.len() as u64;
            }
            Step::Checkpoint => {
                store.checkpoint().expect("checkpoint");
                checkpointed_since = true;
            }
            Step::Snapshot => {
                snapshots += 1;
                store.snapshot(&format!("s{snapshots}")).expect("snapshot");
            }
            Step::Restore => {
                if snapshots > 0 {
                    store
                        .restore_snapshot(&format!("s{snapshots}"))
                        .expect("restore");
                    // A restore logs one record.
                    commits_since += 1;
                }
            }
            Step::ReopenWriter => {
                writer.take().expect("writer").close().expect("close");
                writer = Some(KvStore::open(DIR, options(&vfs, preallocate)).expect("reopen"));
            }
            Step::Refresh => {
                let refreshed = reader.refresh().expect("refresh");
                refreshes += 1;
                let fresh =
                    KvStore::open_read_only(DIR, options(&vfs, preallocate)).expect("fresh reader");
                assert_eq!(
                    contents(&reader),
                    contents(&fresh),
                    "refresh {refreshes} ended in another state than a fresh open ({refreshed:?})"
                );
                assert_eq!(reader.last_lsn(), fresh.last_lsn());
                assert_eq!(refreshed.last_lsn, fresh.last_lsn());
                if !checkpointed_since {
                    assert_eq!(
                        refreshed.reloaded, None,
                        "refresh {refreshes} recovered again with no checkpoint since the last one"
                    );
                }
                if refreshed.reloaded.is_none() {
                    assert_eq!(
                        refreshed.records, commits_since,
                        "refresh {refreshes} read other records than the writer appended since"
                    );
                }
                commits_since = 0;
                checkpointed_since = false;
            }
        }
    }
    drop(Arc::clone(&sim));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn refresh_reads_what_was_appended_and_matches_a_fresh_open(
        steps in proptest::collection::vec(step(), 1..120),
        preallocate in any::<bool>(),
    ) {
        run(&steps, preallocate);
    }
}

#[test]
fn many_rotations_between_two_refreshes_are_followed_without_a_reload() {
    let steps: Vec<Step> = (0..400).map(|i| Step::Put((i % 24) as u8, i)).collect();
    run(&steps, true);
    run(&steps, false);
}

#[test]
fn a_checkpoint_that_deletes_the_readers_segment_makes_it_recover_again() {
    let sim = SimFs::new(3);
    let vfs: VfsRef = sim.clone();
    let writer = KvStore::open(DIR, options(&vfs, true)).expect("open writer");
    writer.put("a", "1").expect("put");
    let reader = KvStore::open_read_only(DIR, options(&vfs, true)).expect("reader");
    for i in 0..200u16 {
        writer.put(key((i % 24) as u8), value(i)).expect("put");
    }
    let info = writer.checkpoint().expect("checkpoint");
    assert!(
        !info.segments_deleted.is_empty(),
        "the checkpoint deletes the reader's segment"
    );
    let refreshed = reader.refresh().expect("refresh");
    let why = refreshed.reloaded.expect("a reload");
    assert!(why.contains("was deleted"), "{why}");
    assert_eq!(contents(&reader), contents(&writer));
    // From there on it follows again.
    writer.put("b", "2").expect("put");
    let refreshed = reader.refresh().expect("refresh");
    assert_eq!(refreshed.reloaded, None);
    assert_eq!(refreshed.records, 1);
    assert_eq!(reader.get(b"b").expect("get"), Some(b"2".to_vec()));
}

#[test]
fn a_restore_is_followed_like_any_record() {
    let sim = SimFs::new(5);
    let vfs: VfsRef = sim.clone();
    let writer = KvStore::open(DIR, options(&vfs, false)).expect("open writer");
    writer.put("manifest", "v1").expect("put");
    writer.snapshot("before-upgrade").expect("snapshot");
    let reader = KvStore::open_read_only(DIR, options(&vfs, false)).expect("reader");
    writer.put("manifest", "v2").expect("put");
    assert_eq!(reader.refresh().expect("refresh").records, 1);
    assert_eq!(reader.get(b"manifest").expect("get"), Some(b"v2".to_vec()));
    writer.restore_snapshot("before-upgrade").expect("restore");
    let refreshed = reader.refresh().expect("refresh");
    assert_eq!(refreshed.reloaded, None);
    assert_eq!(refreshed.records, 1);
    assert_eq!(reader.get(b"manifest").expect("get"), Some(b"v1".to_vec()));
}

#[test]
fn a_refresh_with_nothing_new_changes_nothing() {
    let sim = SimFs::new(9);
    let vfs: VfsRef = sim.clone();
    let writer = KvStore::open(DIR, options(&vfs, true)).expect("open writer");
    writer.put("a", "1").expect("put");
    let reader = KvStore::open_read_only(DIR, options(&vfs, true)).expect("reader");
    let lsn = reader.last_lsn();
    for _ in 0..3 {
        let refreshed = reader.refresh().expect("refresh");
        assert_eq!((refreshed.records, refreshed.last_lsn), (0, lsn));
        assert_eq!(refreshed.reloaded, None);
    }
}

#[test]
fn more_than_one_read_of_new_bytes_large_records_and_large_groups_are_followed() {
    for preallocate in [true, false] {
        let sim = SimFs::new(21);
        let vfs: VfsRef = sim.clone();
        let options = || {
            options(&vfs, preallocate)
                .segment_size_bytes(8 << 20)
                .record_payload_max(1 << 20)
        };
        let writer = KvStore::open(DIR, options()).expect("open writer");
        writer.put("seed", "0").expect("put");
        let reader = KvStore::open_read_only(DIR, options()).expect("reader");
        // Far more new bytes than one read of the tail (64 KiB) ...
        for i in 0..3_000u16 {
            writer.put(key((i % 24) as u8), value(i)).expect("put");
        }
        // ... a record larger than one read ...
        writer.put("large", vec![b'L'; 300_000]).expect("large put");
        // ... and a group larger than one read.
        writer
            .put_batch((0..2_000u16).map(|i| (format!("batch/{i:04}"), value(i))))
            .expect("batch");
        let refreshed = reader.refresh().expect("refresh");
        assert_eq!(refreshed.reloaded, None, "preallocate {preallocate}");
        assert_eq!(refreshed.records, 3_000 + 1 + 2_000);
        assert_eq!(contents(&reader), contents(&writer));
        assert_eq!(reader.last_lsn(), writer.last_lsn());
    }
}
