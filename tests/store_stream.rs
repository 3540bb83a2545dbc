//! `Store::apply_stream` on the simulated file system: acknowledged items are durable
//! (a crash at any mutating call keeps every one), acknowledgements come in input order
//! as a prefix, a failure stops the stream with nothing after it applied, a refused item
//! does not, and many items share one fdatasync.

use std::sync::Arc;
use std::time::Duration;

use walstate::io::sim::{CrashMode, Fault, FaultKind, OpClass};
use walstate::io::{SimFs, VfsRef};
use walstate::{Error, KvCommand, KvStore, Options, Streamed};

const DIR: &str = "/srv/app/state";

fn options(vfs: &VfsRef) -> Options {
    Options::default()
        .vfs(vfs.clone())
        .checkpoint_after_bytes(None)
        .segment_size_bytes(16 * 1024)
}

fn key(i: usize) -> Vec<u8> {
    format!("line/{i:05}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i}-{}", "v".repeat(i % 64)).into_bytes()
}

type Item = Result<(usize, Vec<KvCommand>), usize>;

fn puts(count: usize) -> impl Iterator<Item = Item> + Send {
    (0..count).map(|i| Ok((i, vec![KvCommand::put(key(i), value(i))])))
}

/// How a stream ended, if it stopped: the failed item (if any) and the failure.
type Stop = Option<(Option<usize>, Error)>;

/// Runs a stream, returning the acknowledged items (their contexts, with LSNs) in the
/// order acknowledged, and how it ended.
fn stream(store: &KvStore, items: impl Iterator<Item = Item> + Send) -> (Vec<(usize, u64)>, Stop) {
    let mut acked = Vec::new();
    let result = store.apply_stream(items, |done| match done {
        Streamed::Applied {
            context, first_lsn, ..
        } => acked.push((context, first_lsn)),
        Streamed::Refused { context, error } => panic!("item {context} refused: {error}"),
        Streamed::Skipped(context) => panic!("item {context} skipped"),
    });
    (
        acked,
        result.err().map(|stopped| (stopped.context, stopped.error)),
    )
}

#[test]
fn a_crash_at_any_call_keeps_every_acknowledged_item_and_acks_are_an_ordered_prefix() {
    let items = 120;
    for crash_after in (0..400).step_by(7) {
        let sim = SimFs::new(crash_after);
        let vfs: VfsRef = sim.clone();
        let store = KvStore::open(DIR, options(&vfs)).expect("open");
        let base = sim.mutating_calls();
        sim.crash_at_mutating_call(Some(base + crash_after));
        let (acked, stopped) = stream(&store, puts(items));
        let contexts: Vec<usize> = acked.iter().map(|(context, _)| *context).collect();
        assert_eq!(
            contexts,
            (0..acked.len()).collect::<Vec<_>>(),
            "acks in input order, as a prefix (crash after {crash_after} calls)"
        );
        if acked.len() < items {
            let (context, _) = stopped.expect("a stream that did not finish says why");
            assert_eq!(
                context,
                Some(acked.len()),
                "it stopped at the first unacknowledged item"
            );
        }
        for (i, (context, lsn)) in acked.iter().enumerate() {
            assert_eq!(
                *lsn,
                i as u64 + 1,
                "item {context}'s LSN follows input order"
            );
        }
        drop(store);
        sim.crash(CrashMode::DropUnsynced);
        let reopened = KvStore::open(DIR, options(&vfs)).expect("reopen");
        for (i, _) in &acked {
            assert_eq!(
                reopened.get(&key(*i)).expect("get"),
                Some(value(*i)),
                "acknowledged item {i} lost (crash after {crash_after} calls)"
            );
        }
    }
}

fn small_rounds(vfs: &VfsRef) -> Options {
    options(vfs)
        .preallocate_segments(false)
        .unsynced_bytes_max(4096)
}

#[test]
fn a_failed_write_stops_the_stream_and_nothing_after_it_is_applied() {
    let sim = SimFs::new(1);
    let vfs: VfsRef = sim.clone();
    // Without preallocation, so the disk fills up inside a segment, and with rounds of
    // at most 4 KiB, so it fills up mid-stream.
    let store = KvStore::open(DIR, small_rounds(&vfs)).expect("open");
    store.put("first", "0").expect("put");
    sim.set_space_limit(Some(sim.used_bytes() + 24 * 1024));
    let (acked, stopped) = stream(&store, puts(2_000));
    let (context, error) = stopped.expect("the disk fills up");
    assert!(matches!(error, Error::DiskFull { .. }), "{error}");
    let failed = context.expect("the failed item is named");
    assert_eq!(
        failed,
        acked.len(),
        "acks stop right before the failed item"
    );
    assert!(acked.len() > 10 && acked.len() < 2_000, "{}", acked.len());
    for i in 0..2_000 {
        let expected = (i < failed).then(|| value(i));
        assert_eq!(
            store.get(&key(i)).expect("the store is still readable"),
            expected,
            "item {i} (the stream failed at {failed})"
        );
    }
    // The store itself is fine: with room again, it takes commits.
    sim.set_space_limit(None);
    store.put("after", "1").expect("put after the failure");
    drop(store);
    sim.crash(CrashMode::DropUnsynced);
    let reopened = KvStore::open(DIR, small_rounds(&vfs)).expect("reopen");
    assert_eq!(
        reopened.get(&key(failed - 1)).expect("get"),
        Some(value(failed - 1))
    );
    assert_eq!(reopened.get(&key(failed)).expect("get"), None);
}

#[test]
fn after_a_write_that_failed_once_the_items_queued_behind_it_are_not_written() {
    for nth in [0, 3, 9] {
        let sim = SimFs::new(nth);
        let vfs: VfsRef = sim.clone();
        let store = KvStore::open(DIR, small_rounds(&vfs)).expect("open");
        store.put("first", "0").expect("put");
        // One write fails; every write after it would succeed.
        sim.inject(Fault {
            op: OpClass::Write,
            nth,
            kind: FaultKind::Eio,
            persistent: false,
        });
        let (acked, stopped) = stream(&store, puts(500));
        let (context, error) = stopped.expect("the failed write stops the stream");
        assert!(matches!(error, Error::Io { .. }), "{error}");
        let failed = context.expect("the failed item is named");
        assert_eq!(failed, acked.len());
        for i in failed..500 {
            assert_eq!(
                store.get(&key(i)).expect("get"),
                None,
                "item {i} was applied after the stream failed at item {failed} (fault at write {nth})"
            );
        }
        drop(store);
        sim.crash(CrashMode::KeepAll);
        let reopened = KvStore::open(DIR, small_rounds(&vfs)).expect("reopen");
        for i in 0..500 {
            assert_eq!(
                reopened.get(&key(i)).expect("get"),
                (i < failed).then(|| value(i)),
                "item {i} after reopen (the stream failed at item {failed})"
            );
        }
    }
}

#[test]
fn skipped_and_refused_items_keep_their_place_and_the_stream_goes_on() {
    let sim = SimFs::new(2);
    let vfs: VfsRef = sim.clone();
    let store = KvStore::open(DIR, options(&vfs).record_payload_max(4096)).expect("open");
    let items: Vec<Item> = vec![
        Ok((0, vec![KvCommand::put("a", "1")])),
        Err(1),
        Ok((2, vec![KvCommand::put("big", vec![b'x'; 10_000])])),
        Ok((3, vec![KvCommand::put("b", "2"), KvCommand::delete("a")])),
        Ok((4, vec![])),
    ];
    let mut seen = Vec::new();
    store
        .apply_stream(items, |done| {
            seen.push(match done {
                Streamed::Applied {
                    context,
                    first_lsn,
                    outputs,
                } => format!(
                    "{context}: applied at {first_lsn}, {} outputs",
                    outputs.len()
                ),
                Streamed::Skipped(context) => format!("{context}: skipped"),
                Streamed::Refused { context, error } => {
                    assert!(matches!(error, Error::InvalidArgument(_)), "{error}");
                    format!("{context}: refused")
                }
            })
        })
        .expect("the stream finishes");
    assert_eq!(
        seen,
        [
            "0: applied at 1, 1 outputs",
            "1: skipped",
            "2: refused",
            "3: applied at 2, 2 outputs",
            "4: applied at 0, 0 outputs",
        ]
    );
    assert_eq!(store.get(b"a").expect("get"), None);
    assert_eq!(store.get(b"b").expect("get"), Some(b"2".to_vec()));
    assert_eq!(store.get(b"big").expect("get"), None);
}

#[test]
fn items_in_flight_share_fdatasyncs() {
    let sim = SimFs::new(3);
    let vfs: VfsRef = sim.clone();
    let store = KvStore::open(DIR, options(&vfs)).expect("open");
    // A slow disk: while one round syncs, the submitter queues the next items.
    sim.set_sync_latency(Some(Duration::from_millis(2)));
    let before = store.journal_stats().expect("writer").syncs;
    let (acked, stopped) = stream(&store, puts(1_000));
    assert!(stopped.is_none());
    assert_eq!(acked.len(), 1_000);
    let stats = store.journal_stats().expect("writer");
    let syncs = stats.syncs - before;
    assert!(
        syncs * 10 <= 1_000,
        "{syncs} fdatasyncs for 1000 items: items in flight must share them"
    );
    // What the stats say about it: groups of many records, fdatasyncs of 2 ms.
    let largest = stats.records_per_group.percentile(1.0).expect("groups ran");
    assert!(largest >= 10, "largest group at most {largest} records");
    let median_fsync = stats.fsync_micros.percentile(0.5).expect("fdatasyncs ran");
    assert!(
        median_fsync >= 2_000,
        "median fdatasync at most {median_fsync} µs"
    );
    drop(Arc::clone(&sim));
}
