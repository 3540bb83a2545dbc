//! Store behaviour on the real file system.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use walstate::{Error, KvCommand, KvStore, Options, StateMachine, Store, Writers};

fn options() -> Options {
    Options::default().checkpoint_after_bytes(None)
}

#[test]
fn committed_values_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = KvStore::open(dir.path(), options()).unwrap();
        assert!(store.recovery_report().created);
        assert_eq!(store.put("a", "1").unwrap(), None);
        assert_eq!(store.put("a", "2").unwrap(), Some(b"1".to_vec()));
        store.put("b", "3").unwrap();
        assert_eq!(store.delete("b").unwrap(), Some(b"3".to_vec()));
        store.close().unwrap();
    }
    let store = KvStore::open(dir.path(), options()).unwrap();
    let report = store.recovery_report();
    assert!(!report.created);
    assert_eq!(report.records_replayed, 4);
    assert_eq!(store.get(b"a").unwrap(), Some(b"2".to_vec()));
    assert_eq!(store.get(b"b").unwrap(), None);
    assert_eq!(store.last_lsn(), 4);
}

#[test]
fn checkpoint_then_reopen_replays_only_the_tail_and_deletes_covered_segments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options().segment_size_bytes(4096).checkpoints_retained(1);
    {
        let store = KvStore::open(dir.path(), opts.clone()).unwrap();
        for i in 0..200 {
            store.put(format!("k{i:03}"), vec![i as u8; 50]).unwrap();
        }
        let info = store.checkpoint().unwrap();
        assert_eq!(info.lsn, 200);
        assert!(
            !info.segments_deleted.is_empty(),
            "covered segments deleted"
        );
        store.put("after", "x").unwrap();
    }
    let store = KvStore::open(dir.path(), opts).unwrap();
    let report = store.recovery_report();
    assert_eq!(report.checkpoint.as_ref().unwrap().lsn, 200);
    assert_eq!(report.records_replayed, 1);
    assert_eq!(store.len().unwrap(), 201);
    assert_eq!(store.get(b"k150").unwrap(), Some(vec![150u8; 50]));
}

#[test]
fn damaged_newest_checkpoint_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let newest;
    {
        let store = KvStore::open(dir.path(), options()).unwrap();
        store.put("a", "1").unwrap();
        store.checkpoint().unwrap();
        store.put("b", "2").unwrap();
        newest = store.checkpoint().unwrap().path;
        store.put("c", "3").unwrap();
    }
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&newest, bytes).unwrap();
    let store = KvStore::open(dir.path(), options()).unwrap();
    let report = store.recovery_report();
    assert_eq!(report.checkpoint.as_ref().unwrap().lsn, 1);
    assert_eq!(report.checkpoints_skipped.len(), 1);
    assert_eq!(report.checkpoints_skipped[0].path, newest);
    assert_eq!(store.get(b"c").unwrap(), Some(b"3".to_vec()));
    assert_eq!(store.get(b"b").unwrap(), Some(b"2".to_vec()));
}

#[test]
fn batch_is_one_lsn_range_and_cas_mismatch_is_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(dir.path(), options()).unwrap();
    store.put("x", "1").unwrap();
    let outputs = store
        .apply_batch(vec![
            KvCommand::put("manifest", "v2"),
            KvCommand::put("lock", "v2"),
        ])
        .unwrap();
    assert_eq!(outputs.len(), 2);
    assert_eq!(store.last_lsn(), 3);
    let mismatch = store
        .cas("x", Some(b"wrong"), Some(b"2"))
        .unwrap()
        .unwrap_err();
    assert_eq!(mismatch.actual, Some(b"1".to_vec()));
    assert_eq!(store.get(b"x").unwrap(), Some(b"1".to_vec()));
    store.cas("x", Some(b"1"), Some(b"2")).unwrap().unwrap();
    drop(store);
    let store = KvStore::open(dir.path(), options()).unwrap();
    assert_eq!(
        store.get(b"x").unwrap(),
        Some(b"2".to_vec()),
        "rejection replays the same"
    );
    assert_eq!(store.get(b"lock").unwrap(), Some(b"v2".to_vec()));
}

#[test]
fn beside_an_exclusive_writer_a_second_writer_gets_lock_error_naming_holder_and_read_only_works() {
    let dir = tempfile::tempdir().unwrap();
    let writer = KvStore::open(dir.path(), options().writers(Writers::Exclusive)).unwrap();
    writer.put("k", "v").unwrap();
    for second in [
        options().writers(Writers::Exclusive),
        options().lock_timeout(Some(std::time::Duration::ZERO)),
    ] {
        match KvStore::open(dir.path(), second) {
            Err(Error::Locked { holder, .. }) => {
                assert_eq!(holder, format!("pid {}", std::process::id()))
            }
            Err(other) => panic!("expected Locked, got {other}"),
            Ok(_) => panic!("a second writer beside an exclusive one must be refused"),
        }
    }
    let err = KvStore::open(dir.path(), options().writers(Writers::Exclusive)).unwrap_err();
    match &err {
        Error::Locked { holder, .. } => {
            assert_eq!(holder, &format!("pid {}", std::process::id()))
        }
        other => panic!("expected Locked, got {other}"),
    }
    let reader = KvStore::open_read_only(dir.path(), options()).unwrap();
    assert_eq!(reader.get(b"k").unwrap(), Some(b"v".to_vec()));
    assert!(matches!(reader.put("k", "w"), Err(Error::ReadOnly)));
    writer.put("k2", "v2").unwrap();
    reader.refresh().unwrap();
    assert_eq!(reader.get(b"k2").unwrap(), Some(b"v2".to_vec()));
}

#[test]
fn snapshot_restore_rolls_back_and_keeps_the_replaced_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(dir.path(), options()).unwrap();
    store.put("a", "1").unwrap();
    store.snapshot("good").unwrap();
    store.put("a", "bad").unwrap();
    store.put("b", "bad").unwrap();
    let info = store.restore_snapshot("good").unwrap();
    assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.get(b"b").unwrap(), None);
    let names: Vec<String> = store
        .list_snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(names.contains(&info.previous_state_snapshot), "{names:?}");
    store.put("c", "after").unwrap();
    drop(store);
    let store = KvStore::open(dir.path(), options()).unwrap();
    assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.get(b"b").unwrap(), None);
    assert_eq!(store.get(b"c").unwrap(), Some(b"after".to_vec()));
    // The automatic snapshot holds the replaced state.
    store
        .restore_snapshot(&info.previous_state_snapshot)
        .unwrap();
    assert_eq!(store.get(b"a").unwrap(), Some(b"bad".to_vec()));
    store.delete_snapshot("good").unwrap();
    assert!(matches!(
        store.delete_snapshot("good"),
        Err(Error::SnapshotNotFound { .. })
    ));
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct Untagged {
    values: BTreeMap<String, String>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Loose {
    Text(String),
    Number(u64),
}

impl StateMachine for Untagged {
    type Command = Loose;
    type Output = ();
    // An untagged enum cannot be traced: such types declare their schema.
    const SCHEMA: Option<walstate::state::SchemaName> =
        Some(walstate::state::SchemaName::new("untagged", 1));
    fn apply(&mut self, command: &Loose) {
        let text = match command {
            Loose::Text(t) => t.clone(),
            Loose::Number(n) => n.to_string(),
        };
        self.values.insert(text.clone(), text);
    }
}

#[test]
fn command_the_codec_cannot_round_trip_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store: Store<Untagged> = Store::open(dir.path(), options()).unwrap();
    let err = store.apply(Loose::Text("x".into())).unwrap_err();
    assert!(matches!(err, Error::Codec(_)), "{err}");
    assert_eq!(store.last_lsn(), 0, "nothing was logged");
    drop(store);
    let store: Store<Untagged> = Store::open(dir.path(), options()).unwrap();
    assert_eq!(store.recovery_report().records_replayed, 0);
}

#[test]
fn a_directory_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let err = KvStore::open(dir.path(), options()).unwrap_err();
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
    let missing = dir.path().join("missing");
    let err = KvStore::open(&missing, options().create_if_missing(false)).unwrap_err();
    assert!(matches!(err, Error::NotAStore { .. }), "{err}");
    let nested = dir.path().join("a/b/c");
    KvStore::open(&nested, options()).unwrap();
    assert!(nested.is_dir());
}

#[test]
fn background_checkpoint_runs_after_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(
        dir.path(),
        Options::default().checkpoint_after_bytes(Some(8192)),
    )
    .unwrap();
    for i in 0..400 {
        store.put(format!("key{i}"), vec![7u8; 40]).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = std::fs::read_dir(dir.path()).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("checkpoint-")
        });
        if found {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no background checkpoint appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(store.last_checkpoint_error(), None);
    drop(store);
    let store = KvStore::open(dir.path(), Options::default()).unwrap();
    assert!(store.recovery_report().checkpoint.is_some());
    assert_eq!(store.len().unwrap(), 400);
}

#[test]
fn a_long_journal_left_by_an_earlier_process_is_checkpointed_soon_after_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = KvStore::open(dir.path(), options()).unwrap();
        for i in 0..300 {
            store.put(format!("k{i}"), vec![1u8; 100]).unwrap();
        }
    }
    // No appends at all by this process: the replayed backlog alone passes the threshold.
    let store = KvStore::open(
        dir.path(),
        Options::default().checkpoint_after_bytes(Some(16 * 1024)),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_dir(dir.path()).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("checkpoint-")
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint after opening a long journal"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(store.len().unwrap(), 300);
}

fn checkpoint_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("checkpoint-"))
        .collect();
    names.sort();
    names
}

/// What a short-lived process (the CLI) does: no background thread, and the trigger
/// evaluated before close, counting the journal an earlier process left.
#[test]
fn checkpoint_if_due_writes_only_past_the_trigger_and_counts_the_replayed_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || {
        Options::default()
            .checkpoint_after_bytes(Some(16 * 1024))
            .background_checkpoints(false)
    };
    {
        let store = KvStore::open(dir.path(), opts()).unwrap();
        for i in 0..100 {
            store.put(format!("k{i}"), vec![1u8; 100]).unwrap();
        }
        let since = store.journal_bytes_since_checkpoint();
        assert!(since > 100 * 100 && since < 16 * 1024, "{since}");
        assert_eq!(store.checkpoint_if_due().unwrap(), None);
        store.close().unwrap();
    }
    assert!(checkpoint_files(dir.path()).is_empty());
    let store = KvStore::open(dir.path(), opts()).unwrap();
    // The backlog counts: 100 more puts pass 16 KiB only together with it.
    for i in 100..200 {
        store.put(format!("k{i}"), vec![1u8; 100]).unwrap();
    }
    // No background thread: nothing was written on its own.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(checkpoint_files(dir.path()).is_empty());
    assert!(store.journal_bytes_since_checkpoint() >= 16 * 1024);
    let info = store
        .checkpoint_if_due()
        .unwrap()
        .expect("a checkpoint is due");
    assert_eq!(info.lsn, 200);
    assert_eq!(checkpoint_files(dir.path()).len(), 1);
    assert_eq!(store.journal_bytes_since_checkpoint(), 0);
    assert_eq!(store.checkpoint_if_due().unwrap(), None);
    store.close().unwrap();
    let store = KvStore::open(dir.path(), opts()).unwrap();
    assert_eq!(
        store.recovery_report().checkpoint.as_ref().unwrap().lsn,
        200
    );
    assert_eq!(store.len().unwrap(), 200);
    // A trigger of None never checkpoints, however long the journal.
    drop(store);
    let store = KvStore::open(dir.path(), options()).unwrap();
    store.put("x", vec![0u8; 64 * 1024]).unwrap();
    assert_eq!(store.checkpoint_if_due().unwrap(), None);
    // A read-only store cannot checkpoint.
    let reader = KvStore::open_read_only(dir.path(), options()).unwrap();
    assert_eq!(reader.journal_bytes_since_checkpoint(), 0);
    assert!(matches!(reader.checkpoint_if_due(), Err(Error::ReadOnly)));
}

/// A state whose commands round-trip but whose *state* does not (apply builds an
/// untagged enum): a checkpoint of it must be refused, leaving nothing behind.
#[derive(Default, Clone, Serialize, Deserialize)]
struct LooseState {
    items: Vec<Loose>,
}

impl StateMachine for LooseState {
    type Command = String;
    type Output = ();
    const SCHEMA: Option<walstate::state::SchemaName> =
        Some(walstate::state::SchemaName::new("loose-state", 1));
    fn apply(&mut self, command: &String) {
        self.items.push(Loose::Text(command.clone()));
    }
}

#[test]
fn a_state_that_does_not_decode_back_is_never_written_as_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store: Store<LooseState> = Store::open(dir.path(), options()).unwrap();
    store.apply("hello".to_string()).unwrap();
    let err = store.checkpoint().unwrap_err();
    assert!(matches!(err, Error::Codec(_)), "{err}");
    assert!(err.to_string().contains("does not decode back"), "{err}");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("checkpoint")), "{names:?}");
    store.apply("still works".to_string()).unwrap();
    assert!(
        store.snapshot("s").is_err(),
        "snapshots are guarded the same way"
    );
}

#[test]
fn kv_state_checks_its_encoding_entry_by_entry() {
    use walstate::{KvState, codec};
    let mut state = KvState::default();
    for i in 0..100u32 {
        state
            .apply(&KvCommand::put(i.to_be_bytes().to_vec(), vec![i as u8; 10]))
            .unwrap();
    }
    let bytes = codec::encode(&state).unwrap();
    KvState::check_encoded(&mut &bytes[..], bytes.len() as u64).unwrap();
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(KvState::check_encoded(&mut &trailing[..], trailing.len() as u64).is_err());
    let unsorted = codec::encode(&vec![
        (b"b".to_vec(), b"1".to_vec()),
        (b"a".to_vec(), b"2".to_vec()),
    ])
    .unwrap();
    assert!(KvState::check_encoded(&mut &unsorted[..], unsorted.len() as u64).is_err());
    for cut in 0..bytes.len().min(300) {
        assert!(
            KvState::check_encoded(&mut &bytes[..cut], cut as u64).is_err(),
            "prefix {cut}"
        );
    }
}

#[test]
fn dropping_a_store_during_a_background_checkpoint_releases_the_lock_before_drop_returns() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = KvStore::open(dir.path(), options()).unwrap();
        let batch: Vec<KvCommand> = (0..100_000)
            .map(|i| KvCommand::put(format!("key{i:06}"), vec![9u8; 200]))
            .collect();
        for chunk in batch.chunks(5_000) {
            store.apply_batch(chunk.to_vec()).unwrap();
        }
    }
    for round in 0..5 {
        // The replayed backlog starts a checkpoint in the background right at open.
        let store = KvStore::open(
            dir.path(),
            Options::default().checkpoint_after_bytes(Some(1024)),
        )
        .unwrap();
        // Let the checkpoint of ~20 MiB get going, then drop the store in the middle of it.
        std::thread::sleep(std::time::Duration::from_millis(5));
        drop(store);
        let again = KvStore::open(dir.path(), options())
            .unwrap_or_else(|err| panic!("round {round}: reopen right after drop failed: {err}"));
        assert_eq!(again.len().unwrap(), 100_000);
    }
}

#[test]
fn a_second_writer_asked_to_wait_gets_the_lock_when_the_holder_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let exclusive = || options().writers(Writers::Exclusive);
    let holder = KvStore::open(dir.path(), exclusive()).unwrap();
    let path = dir.path().to_path_buf();
    let waiter = std::thread::spawn(move || {
        KvStore::open(
            &path,
            exclusive().lock_timeout(Some(std::time::Duration::from_secs(10))),
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    holder.put("from", "holder").unwrap();
    drop(holder);
    let store = waiter
        .join()
        .unwrap()
        .expect("the waiter gets the lock once released");
    assert_eq!(store.get(b"from").unwrap(), Some(b"holder".to_vec()));
    // A short timeout against a holder that stays fails with the lock error.
    let start = std::time::Instant::now();
    let err = KvStore::open(
        dir.path(),
        exclusive().lock_timeout(Some(std::time::Duration::from_millis(50))),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(start.elapsed() >= std::time::Duration::from_millis(50));
}

/// Fills a store with about `mib` MiB of state in batches.
fn fill(store: &KvStore, mib: usize) {
    let value = vec![0xA5u8; 1000];
    for batch in 0..mib {
        let puts = (0..1000)
            .map(|i| KvCommand::put(format!("k{batch:04}-{i:04}"), value.clone()))
            .collect();
        store.apply_batch(puts).unwrap();
    }
}

/// `checkpoint_write_rate` paces checkpoint writes: a ~3 MiB state at 8 MiB/s cannot be
/// written in less than ~0.37 s (a lower bound, which a sleep guarantees), and the
/// checkpoint is complete and used by the next open.
#[test]
fn checkpoint_writes_are_paced_to_the_configured_rate() {
    let dir = tempfile::tempdir().unwrap();
    let rate = 8u64 << 20;
    let store = KvStore::open(dir.path(), options().checkpoint_write_rate(Some(rate))).unwrap();
    fill(&store, 3);
    let start = std::time::Instant::now();
    let info = store.checkpoint().unwrap();
    let elapsed = start.elapsed();
    let floor = std::time::Duration::from_secs_f64(0.9 * info.bytes as f64 / rate as f64);
    assert!(info.bytes > 3_000_000, "state of {} bytes", info.bytes);
    assert!(
        elapsed >= floor,
        "{} bytes written in {elapsed:?}, faster than {rate} B/s allows",
        info.bytes
    );
    drop(store);
    let store = KvStore::open(dir.path(), options()).unwrap();
    assert_eq!(store.recovery_report().records_replayed, 0);
    assert_eq!(store.len().unwrap(), 3000);
}

/// Closing the store while a slowly paced background checkpoint runs does not wait out
/// the pacing (at 64 KiB/s this checkpoint alone would take ~50 s): the rest is written
/// at full speed, and the store reopens with every acknowledged write.
#[test]
fn closing_the_store_finishes_a_paced_checkpoint_without_pauses() {
    let dir = tempfile::tempdir().unwrap();
    let store = KvStore::open(
        dir.path(),
        Options::default()
            .checkpoint_after_bytes(Some(1 << 20))
            .checkpoint_write_rate(Some(64 << 10)),
    )
    .unwrap();
    fill(&store, 3);
    // Wait until the background checkpoint is writing its temp file.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_dir(dir.path())
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no background checkpoint started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let start = std::time::Instant::now();
    drop(store);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "close waited {:?} for the paced checkpoint",
        start.elapsed()
    );
    let store = KvStore::open(dir.path(), options()).unwrap();
    assert_eq!(store.len().unwrap(), 3000);
}

#[test]
fn a_zero_checkpoint_write_rate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = KvStore::open(dir.path(), options().checkpoint_write_rate(Some(0))).unwrap_err();
    assert!(err.to_string().contains("checkpoint_write_rate"), "{err}");
}
