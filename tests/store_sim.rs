//! The problems walstate replaces, one test each, on the simulated file system.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use serde::{Deserialize, Serialize};
use walstate::io::sim::{CrashMode, Fault, FaultKind, OpClass};
use walstate::io::{SimFs, Vfs, VfsRef};
use walstate::{Error, KvCommand, KvStore, Options, StateMachine, Store, Writers};

mod common;

const DIR: &str = "/srv/app/state";

/// A service's whole configuration, saved as one command.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Config {
    version: u32,
    listen: String,
    workers: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum ConfigCommand {
    Save(Config),
}

impl StateMachine for Config {
    type Command = ConfigCommand;
    type Output = ();
    fn apply(&mut self, command: &ConfigCommand) {
        let ConfigCommand::Save(config) = command;
        *self = config.clone();
    }
}

fn config(version: u32) -> Config {
    Config {
        version,
        listen: format!("0.0.0.0:{}", 8000 + version),
        workers: version as u16 * 2,
    }
}

fn sim(seed: u64) -> (Arc<SimFs>, VfsRef) {
    let sim = SimFs::new(seed);
    let vfs: VfsRef = sim.clone();
    (sim, vfs)
}

fn options(vfs: &VfsRef) -> Options {
    Options::default()
        .vfs(vfs.clone())
        .checkpoint_after_bytes(None)
        .segment_size_bytes(4096)
}

#[test]
fn config_save_on_full_disk_fails_clearly_keeps_old_config_and_succeeds_after_space_is_freed() {
    let (sim, vfs) = sim(1);
    // Without preallocation: a preallocated segment would take this save into space it
    // reserved earlier, and the save would (rightly) succeed on a full disk.
    let options = |vfs: &VfsRef| options(vfs).preallocate_segments(false);
    let store: Store<Config> = Store::open(DIR, options(&vfs)).unwrap();
    store.apply(ConfigCommand::Save(config(1))).unwrap();
    sim.set_space_limit(Some(sim.used_bytes() + 10));
    let err = store.apply(ConfigCommand::Save(config(2))).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert!(err.to_string().contains("free disk space"), "{err}");
    assert_eq!(
        store.read(Clone::clone).unwrap(),
        config(1),
        "memory still holds the old config"
    );
    sim.set_space_limit(None);
    store.apply(ConfigCommand::Save(config(3))).unwrap();
    assert_eq!(store.read(Clone::clone).unwrap(), config(3));
    drop(store);
    sim.crash(CrashMode::DropUnsynced);
    let store: Store<Config> = Store::open(DIR, options(&vfs)).unwrap();
    assert_eq!(
        store.read(Clone::clone).unwrap(),
        config(3),
        "disk holds the new config"
    );
    assert_eq!(store.last_lsn(), 2, "the failed save used no LSN");
}

#[test]
fn opening_in_a_directory_without_write_permission_fails_before_anything_changes() {
    let (sim, vfs) = sim(2);
    sim.create_dir_all(Path::new(DIR)).unwrap();
    sim.set_read_only_dir(Path::new(DIR), true);
    let files_before = sim.list_files();
    let err = Store::<Config>::open(DIR, options(&vfs)).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert!(err.to_string().contains("permission"), "{err}");
    assert_eq!(sim.list_files(), files_before, "nothing was created");
}

#[test]
fn losing_write_permission_fails_the_save_that_needs_a_new_segment_and_keeps_the_state() {
    let (sim, vfs) = sim(3);
    let store: Store<Config> = Store::open(DIR, options(&vfs)).unwrap();
    store.apply(ConfigCommand::Save(config(1))).unwrap();
    sim.set_read_only_dir(Path::new(DIR), true);
    // Saves go to the existing segment until it is full; rotation needs the directory.
    let mut failed = None;
    for version in 2..200 {
        match store.apply(ConfigCommand::Save(config(version))) {
            Ok(()) => {}
            Err(err) => {
                failed = Some((version, err));
                break;
            }
        }
    }
    let (version, err) = failed.expect("rotation must fail without directory permission");
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert_eq!(
        store.read(|c| c.version).unwrap(),
        version - 1,
        "state is the last acknowledged save"
    );
    sim.set_read_only_dir(Path::new(DIR), false);
    store.apply(ConfigCommand::Save(config(version))).unwrap();
}

/// Crash after every mutating I/O call of a save; the reopened config must be entirely the
/// old one or entirely the new one, and the new one whenever the save was acknowledged.
#[test]
fn crash_at_any_point_of_a_save_leaves_the_old_or_the_new_config() {
    let mut point = 0u64;
    let mut saw_old = false;
    let mut saw_new = false;
    loop {
        let (sim, vfs) = sim(point);
        {
            let store: Store<Config> = Store::open(DIR, options(&vfs)).unwrap();
            store.apply(ConfigCommand::Save(config(1))).unwrap();
            store.close().unwrap();
        }
        let start = sim.mutating_calls();
        sim.crash_at_mutating_call(Some(start + point));
        let acknowledged = Store::<Config>::open(DIR, options(&vfs))
            .and_then(|store| {
                store.apply(ConfigCommand::Save(config(2)))?;
                store.checkpoint()?;
                store.apply(ConfigCommand::Save(config(3)))
            })
            .is_ok();
        let finished = !sim.is_dead();
        for mode in [
            CrashMode::DropUnsynced,
            CrashMode::KeepAll,
            CrashMode::Random(point),
        ] {
            let (copy_sim, copy_vfs) = (sim.clone(), vfs.clone());
            let _ = &copy_sim;
            copy_sim.crash(mode.clone());
            let store: Store<Config> = Store::open(DIR, options(&copy_vfs)).unwrap_or_else(|err| {
                panic!("crash at call {point} ({mode:?}): reopen failed: {err}")
            });
            let got = store.read(Clone::clone).unwrap();
            assert!(
                got == config(1) || got == config(2) || got == config(3),
                "crash at call {point} ({mode:?}): a mixed config {got:?}"
            );
            if acknowledged {
                assert_eq!(
                    got,
                    config(3),
                    "crash at call {point} ({mode:?}): acknowledged save lost"
                );
            }
            saw_old |= got == config(1);
            saw_new |= got == config(3);
            drop(store);
            // Each later mode starts from this recovered image: recovery is idempotent.
        }
        if finished {
            break;
        }
        point += 1;
        assert!(point < 500, "the workload never finished");
    }
    assert!(
        saw_old && saw_new,
        "the sweep covered crashes before and after the save"
    );
}

/// Updates the manifest and its lock entry to version `v` as one batch.
type ManifestUpdate = fn(&KvStore, &str) -> walstate::Result<()>;

/// The batch as `Store::apply_batch` of built commands.
fn update_with_apply_batch(store: &KvStore, v: &str) -> walstate::Result<()> {
    store
        .apply_batch(vec![
            KvCommand::put("manifest", format!("manifest {v}")),
            KvCommand::put("manifest.lock", format!("lock {v}")),
        ])
        .map(drop)
}

/// The batch as `KvStore::put_batch` of borrowed bytes.
fn update_with_put_batch(store: &KvStore, v: &str) -> walstate::Result<()> {
    let (manifest, lock) = (format!("manifest {v}"), format!("lock {v}"));
    store
        .put_batch([
            ("manifest", manifest.as_str()),
            ("manifest.lock", lock.as_str()),
        ])
        .map(drop)
}

/// A manifest and its lock entry are updated together as one batch.
#[test]
fn manifest_and_lock_change_together_or_not_at_all_under_crashes_and_faults() {
    manifest_and_lock_change_together(update_with_apply_batch);
}

/// The same guarantee for `KvStore::put_batch`, which logs its records without building
/// commands.
#[test]
fn put_batch_changes_manifest_and_lock_together_or_not_at_all_under_crashes_and_faults() {
    manifest_and_lock_change_together(update_with_put_batch);
}

fn manifest_and_lock_change_together(update: ManifestUpdate) {
    let both = |store: &KvStore| -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        (
            store.get(b"manifest").unwrap(),
            store.get(b"manifest.lock").unwrap(),
        )
    };
    // Crashes at every call.
    let mut point = 0;
    loop {
        let (sim, vfs) = sim(100 + point);
        {
            let store = KvStore::open(DIR, options(&vfs)).unwrap();
            update(&store, "v1").unwrap();
        }
        sim.crash(CrashMode::DropUnsynced);
        sim.crash_at_mutating_call(Some(sim.mutating_calls() + point));
        let acknowledged = KvStore::open(DIR, options(&vfs))
            .and_then(|store| update(&store, "v2"))
            .is_ok();
        let finished = !sim.is_dead();
        sim.crash(CrashMode::Random(point));
        let store = KvStore::open(DIR, options(&vfs)).unwrap();
        let (manifest, lock) = both(&store);
        let version = |v: &Option<Vec<u8>>, prefix: &str| {
            String::from_utf8(v.clone().unwrap())
                .unwrap()
                .strip_prefix(prefix)
                .unwrap()
                .to_owned()
        };
        let (m, l) = (version(&manifest, "manifest "), version(&lock, "lock "));
        assert_eq!(m, l, "crash at call {point}: manifest {m} with lock {l}");
        if acknowledged {
            assert_eq!(m, "v2", "crash at call {point}: acknowledged update lost");
        }
        if finished {
            break;
        }
        point += 1;
    }
    // Failures at every write and sync call.
    for op in [OpClass::Write, OpClass::Sync] {
        for nth in 0..3 {
            let (sim, vfs) = sim(200);
            let store = KvStore::open(DIR, options(&vfs)).unwrap();
            update(&store, "v1").unwrap();
            sim.inject(Fault {
                op,
                nth,
                kind: FaultKind::Eio,
                persistent: false,
            });
            let result = update(&store, "v2");
            match &result {
                Err(err) if err.is_poisoned() => {
                    assert!(
                        store.get(b"manifest").unwrap_err().is_poisoned(),
                        "{op:?} #{nth}"
                    );
                }
                Err(_) => {
                    let in_memory = both(&store);
                    assert_eq!(
                        in_memory,
                        (Some(b"manifest v1".to_vec()), Some(b"lock v1".to_vec())),
                        "{op:?} #{nth}"
                    );
                }
                Ok(_) => {}
            }
            drop(store);
            sim.crash(CrashMode::DropUnsynced);
            let store = KvStore::open(DIR, options(&vfs)).unwrap();
            let on_disk = both(&store);
            assert!(
                on_disk == (Some(b"manifest v1".to_vec()), Some(b"lock v1".to_vec()))
                    || on_disk == (Some(b"manifest v2".to_vec()), Some(b"lock v2".to_vec())),
                "{op:?} #{nth}: {on_disk:?}"
            );
            if result.is_ok() {
                assert_eq!(on_disk.0, Some(b"manifest v2".to_vec()), "{op:?} #{nth}");
            }
        }
    }
}

/// `KvStore::put_batch` of slices logs the same records as `Store::apply_batch` of the
/// same `KvCommand::Put`s, returns the same previous values (a key given twice sees
/// its first value), and reopens to the same state.
#[test]
fn put_batch_logs_returns_and_replays_what_apply_batch_of_the_same_puts_does() {
    let pairs: [(&str, &str); 4] = [("a", "2"), ("b", "x"), ("b", "y"), ("c", "")];
    let (_sim_a, vfs_a) = sim(7);
    let (_sim_b, vfs_b) = sim(7);
    let by_put_batch = KvStore::open(DIR, options(&vfs_a)).unwrap();
    let by_apply_batch = KvStore::open(DIR, options(&vfs_b)).unwrap();
    for store in [&by_put_batch, &by_apply_batch] {
        store.put("a", "1").unwrap();
    }

    let returned = by_put_batch.put_batch(pairs).unwrap();
    let outputs = by_apply_batch
        .apply_batch(pairs.iter().map(|&(k, v)| KvCommand::put(k, v)).collect())
        .unwrap();
    let expected: Vec<Option<Vec<u8>>> = vec![Some(b"1".to_vec()), None, Some(b"x".to_vec()), None];
    assert_eq!(returned, expected);
    let previous: Vec<Option<Vec<u8>>> = outputs
        .into_iter()
        .map(|output| match output {
            Ok(walstate::KvApplied::Put { previous }) => previous,
            other => panic!("not a put: {other:?}"),
        })
        .collect();
    assert_eq!(previous, expected);
    assert_eq!(by_put_batch.last_lsn(), 5);
    assert_eq!(by_put_batch.last_lsn(), by_apply_batch.last_lsn());
    // The empty batch logs nothing in either form.
    assert_eq!(
        by_put_batch.put_batch(Vec::<(&str, &str)>::new()).unwrap(),
        vec![]
    );
    assert_eq!(by_put_batch.last_lsn(), 5);

    drop((by_put_batch, by_apply_batch));
    let (outcome_a, records_a) = common::read_all(&vfs_a, Path::new(DIR));
    let (outcome_b, records_b) = common::read_all(&vfs_b, Path::new(DIR));
    assert_eq!(records_a.len(), 5);
    assert_eq!(records_a, records_b, "the logged records differ");
    assert_eq!(outcome_a.next_lsn, outcome_b.next_lsn);
    let reopened_a = KvStore::open(DIR, options(&vfs_a)).unwrap();
    let reopened_b = KvStore::open(DIR, options(&vfs_b)).unwrap();
    let everything = |store: &KvStore| store.scan_prefix(b"").unwrap();
    assert_eq!(
        everything(&reopened_a),
        vec![
            (b"a".to_vec(), b"2".to_vec()),
            (b"b".to_vec(), b"y".to_vec()),
            (b"c".to_vec(), Vec::new()),
        ]
    );
    assert_eq!(everything(&reopened_a), everything(&reopened_b));
}

/// A read-only store refuses `put_batch`, even an empty one.
#[test]
fn put_batch_on_a_read_only_store_is_refused() {
    let (_sim, vfs) = sim(8);
    drop(KvStore::open(DIR, options(&vfs)).unwrap());
    let reader = KvStore::open_read_only(DIR, options(&vfs)).unwrap();
    for pairs in [vec![("k", "v")], vec![]] {
        let err = reader.put_batch(pairs).unwrap_err();
        assert!(matches!(err, Error::ReadOnly), "{err}");
    }
}

#[test]
fn a_daemon_and_a_cli_write_one_store_and_see_each_others_commits() {
    let (_sim, vfs) = sim(4);
    let daemon = KvStore::open(DIR, options(&vfs)).unwrap();
    daemon.put("status", "running").unwrap();
    let cli = KvStore::open(DIR, options(&vfs)).expect("shared writers open beside each other");
    assert_eq!(cli.get(b"status").unwrap(), Some(b"running".to_vec()));
    cli.put("status", "draining").unwrap();
    // The daemon sees it when it asks, and before its own next commit.
    daemon.refresh().unwrap();
    assert_eq!(daemon.get(b"status").unwrap(), Some(b"draining".to_vec()));
    daemon.put("n", "1").unwrap();
    // Compare-and-set against the caught-up state: exactly one of the two wins.
    assert!(cli.cas(b"n", Some(b"1"), Some(b"cli")).unwrap().is_ok());
    assert!(
        daemon
            .cas(b"n", Some(b"1"), Some(b"daemon"))
            .unwrap()
            .is_err(),
        "the daemon's cas must see the CLI's write"
    );
    daemon.refresh().unwrap();
    assert_eq!(daemon.get(b"n").unwrap(), Some(b"cli".to_vec()));
    let reader = KvStore::open_read_only(DIR, options(&vfs)).unwrap();
    assert_eq!(reader.get(b"n").unwrap(), Some(b"cli".to_vec()));
    drop(cli);
    daemon.put("after", "cli closed").unwrap();
    drop(daemon);
    let reopened = KvStore::open(DIR, options(&vfs)).unwrap();
    assert_eq!(reopened.get(b"status").unwrap(), Some(b"draining".to_vec()));
    assert_eq!(reopened.get(b"n").unwrap(), Some(b"cli".to_vec()));
    assert_eq!(
        reopened.get(b"after").unwrap(),
        Some(b"cli closed".to_vec())
    );
}

#[test]
fn an_exclusive_daemon_refuses_other_writers_naming_itself_and_readers_see_latest_state() {
    let (_sim, vfs) = sim(4);
    let daemon = KvStore::open(DIR, options(&vfs).writers(Writers::Exclusive)).unwrap();
    daemon.put("status", "running").unwrap();
    let shared_no_wait = options(&vfs).lock_timeout(Some(std::time::Duration::ZERO));
    let err = KvStore::open(DIR, shared_no_wait.clone()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    let reader = KvStore::open_read_only(DIR, options(&vfs)).unwrap();
    assert_eq!(reader.get(b"status").unwrap(), Some(b"running".to_vec()));
    daemon.put("status", "draining").unwrap();
    reader.refresh().unwrap();
    assert_eq!(reader.get(b"status").unwrap(), Some(b"draining".to_vec()));
    drop(daemon);
    KvStore::open(DIR, shared_no_wait).expect("the lock is free once the daemon is gone");
}

#[test]
fn read_only_open_never_writes() {
    let (sim, vfs) = sim(5);
    {
        let store = KvStore::open(DIR, options(&vfs)).unwrap();
        for i in 0..50 {
            store.put(format!("k{i}"), "v").unwrap();
        }
    }
    // Leave a torn tail and a temp file behind.
    let segment = sim
        .list_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()
        .unwrap();
    let mut bytes = sim.file_bytes(&segment).unwrap();
    bytes.extend_from_slice(&[0xEE; 33]);
    sim.write_durable(&segment, &bytes);
    sim.write_durable(
        &Path::new(DIR).join("checkpoint-00000000000000000009.ckpt.tmp"),
        b"junk",
    );
    let before = sim.mutating_calls();
    let files = sim.list_files();
    let reader = KvStore::open_read_only(DIR, options(&vfs)).unwrap();
    assert_eq!(reader.len().unwrap(), 50);
    assert!(reader.recovery_report().torn_tail.is_some());
    assert_eq!(
        sim.mutating_calls(),
        before,
        "read-only open made a mutating call"
    );
    assert_eq!(sim.list_files(), files);
}

/// A crash-recovery state tracker (job → step) killed mid-save recovers its last
/// acknowledged state.
#[test]
fn state_tracker_killed_mid_save_recovers_its_last_acknowledged_state() {
    for point in 0..60 {
        let (sim, vfs) = sim(300 + point);
        sim.crash_at_mutating_call(Some(point));
        let mut acknowledged = None;
        if let Ok(store) = KvStore::open(DIR, options(&vfs)) {
            for step in 1..=20u32 {
                if store.put("job-42/step", step.to_string()).is_err() {
                    break;
                }
                acknowledged = Some(step);
            }
        }
        sim.crash(CrashMode::Random(point));
        let store = KvStore::open(DIR, options(&vfs)).unwrap();
        let recovered = store
            .get(b"job-42/step")
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap().parse::<u32>().unwrap());
        match acknowledged {
            Some(step) => {
                let got = recovered.unwrap_or(0);
                assert!(
                    got >= step,
                    "crash at call {point}: acknowledged step {step}, recovered {got}"
                );
                assert!(
                    got <= step + 1,
                    "crash at call {point}: recovered step {got} never submitted"
                );
            }
            None => assert!(recovered.unwrap_or(1) <= 1, "crash at call {point}"),
        }
    }
}

#[test]
fn fsync_failure_poisons_the_store_until_reopened() {
    let (sim, vfs) = sim(6);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    store.put("a", "1").unwrap();
    sim.inject(Fault::once(OpClass::Sync, FaultKind::Eio));
    assert!(store.put("b", "2").unwrap_err().is_poisoned());
    assert!(
        store.get(b"b").unwrap_err().is_poisoned(),
        "reads error too"
    );
    assert!(store.put("c", "3").unwrap_err().is_poisoned());
    assert!(store.checkpoint().unwrap_err().is_poisoned());
    assert!(store.snapshot("s").unwrap_err().is_poisoned());
    drop(store);
    // The failed fsync dropped the pages of "b" (the page cache still showed them): after
    // a power loss it is gone, and it was never acknowledged.
    sim.crash(CrashMode::KeepAll);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(
        store.get(b"b").unwrap(),
        None,
        "the unacknowledged put is not there"
    );
    store.put("c", "3").unwrap();
}

#[test]
fn checkpoint_fsync_failure_poisons_and_changes_nothing() {
    let (sim, vfs) = sim(7);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    store.put("a", "1").unwrap();
    sim.inject(Fault::once(OpClass::Sync, FaultKind::Eio));
    assert!(store.checkpoint().unwrap_err().is_poisoned());
    assert!(store.put("b", "2").unwrap_err().is_poisoned());
    drop(store);
    sim.crash(CrashMode::KeepAll);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
}

/// Drops of [`Tracked`] values, and how many there had been when the last state file
/// was read back.
static TRACKED_DROPS: AtomicUsize = AtomicUsize::new(0);
static TRACKED_DROPS_AT_CHECK: AtomicUsize = AtomicUsize::new(usize::MAX);

/// A state that counts its drops: used by one test only, so the counters are its own.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Tracked {
    total: u64,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        TRACKED_DROPS.fetch_add(1, AtomicOrdering::SeqCst);
    }
}

impl StateMachine for Tracked {
    type Command = u64;
    type Output = ();
    fn apply(&mut self, add: &u64) {
        self.total += add;
    }
    fn check_encoded(encoded: &mut dyn std::io::Read, len: u64) -> walstate::Result<()> {
        TRACKED_DROPS_AT_CHECK.store(
            TRACKED_DROPS.load(AtomicOrdering::SeqCst),
            AtomicOrdering::SeqCst,
        );
        walstate::codec::decode_from_reader::<Tracked>(encoded, len).map(drop)
    }
}

/// A checkpoint or snapshot hands its snapshot of the state to `encode_owned`, so with the
/// default encoding it is dropped once written, before the file is read back and synced,
/// not when the checkpoint returns.
#[test]
fn checkpoint_and_snapshot_drop_their_state_copy_before_the_read_back() {
    let (_sim, vfs) = sim(31);
    let store: Store<Tracked> = Store::open(DIR, options(&vfs)).unwrap();
    store.apply(5).unwrap();
    let before = TRACKED_DROPS.load(AtomicOrdering::SeqCst);
    store.checkpoint().unwrap();
    assert_eq!(
        TRACKED_DROPS_AT_CHECK.load(AtomicOrdering::SeqCst),
        before + 1
    );
    store.apply(2).unwrap();
    let before = TRACKED_DROPS.load(AtomicOrdering::SeqCst);
    store.snapshot("seven").unwrap();
    assert_eq!(
        TRACKED_DROPS_AT_CHECK.load(AtomicOrdering::SeqCst),
        before + 1
    );
    drop(store);
    let store: Store<Tracked> = Store::open(DIR, options(&vfs)).unwrap();
    assert_eq!(store.read(|state| state.total).unwrap(), 7);
}

/// A process crash leaves written-but-unsynced bytes in the page cache. The next writer
/// replays them, so it must make them durable before building on them: a later power
/// loss must not take away what the reopened store already served and checkpointed.
#[test]
fn reopen_after_a_process_crash_makes_the_inherited_tail_durable() {
    let (sim, vfs) = sim(20);
    let never = |vfs: &VfsRef| options(vfs).sync_policy(walstate::SyncPolicy::Never);
    {
        let store = KvStore::open(DIR, never(&vfs)).unwrap();
        for i in 0..5 {
            store.put(format!("k{i}"), "v").unwrap();
        }
        // Process crash: no close, no sync; the page cache keeps the bytes.
    }
    // Other limits give another torn window, so the next append starts a new segment.
    let other_limits = |vfs: &VfsRef| options(vfs).record_payload_max(1 << 20);
    let store = KvStore::open(DIR, other_limits(&vfs)).unwrap();
    assert_eq!(store.len().unwrap(), 5, "the new process sees the old tail");
    store.put("k5", "v").unwrap();
    drop(store);
    sim.crash(CrashMode::DropUnsynced); // power loss
    let store = KvStore::open(DIR, other_limits(&vfs))
        .expect("a power loss after the reopen must not look like corruption");
    assert_eq!(store.len().unwrap(), 6);
}

/// A directory fsync that fails while the store is created, at each level of the
/// path: the open fails, the retry finds the directories already there, and what it
/// then acknowledges must survive a power loss (the retry makes the names durable
/// itself instead of trusting the failed attempt).
#[test]
fn a_retried_open_after_a_failed_directory_fsync_at_creation_loses_nothing_acknowledged() {
    for nth in 0..4 {
        let (sim, vfs) = sim(30 + nth);
        sim.inject(Fault {
            nth,
            ..Fault::once(OpClass::SyncDir, FaultKind::Eio)
        });
        let mut failures = 0;
        let store = loop {
            assert!(
                failures < 3,
                "fault {nth}: still failing after {failures} retries"
            );
            match KvStore::open("/srv/deep/store", options(&vfs)) {
                Ok(store) => match store.put("k", "v") {
                    Ok(_) => break store,
                    Err(_) => failures += 1,
                },
                Err(_) => failures += 1,
            }
        };
        assert_eq!(failures, 1, "fault {nth}: the one fault was met once");
        drop(store);
        sim.crash(CrashMode::DropUnsynced);
        let store = KvStore::open("/srv/deep/store", options(&vfs).create_if_missing(false))
            .unwrap_or_else(|err| panic!("fault at directory fsync {nth}: {err}"));
        assert_eq!(
            store.get(b"k").unwrap().as_deref(),
            Some(&b"v"[..]),
            "fault at directory fsync {nth}: the acknowledged put is gone"
        );
    }
}

/// Another process created a directory on the store's path a moment ago and has not
/// made it durable yet: creating the store makes it durable too, or a power loss would
/// take the store and everything acknowledged in it.
#[test]
fn creating_a_store_under_a_directory_another_process_just_created_makes_it_durable() {
    let (sim, vfs) = sim(40);
    vfs.create_dir_all(std::path::Path::new("/srv")).unwrap(); // never synced
    let store = KvStore::open("/srv/deep/store", options(&vfs)).unwrap();
    store.put("k", "v").unwrap();
    drop(store);
    sim.crash(CrashMode::DropUnsynced);
    let store = KvStore::open("/srv/deep/store", options(&vfs).create_if_missing(false))
        .expect("the store survives the power loss");
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

/// A checkpoint proves every record up to its LSN was synced, so a bad record it covers
/// is corruption even where its damage looks like a crash's; salvage keeps the checkpoint's state and
/// the store continues after it.
#[test]
fn damage_covered_by_the_checkpoint_is_corruption_and_salvage_continues_after_it() {
    let (sim, vfs) = sim(21);
    let opts = |vfs: &VfsRef| {
        options(vfs)
            .segment_size_bytes(1 << 20)
            .checkpoints_retained(1)
    };
    let segment;
    {
        let store = KvStore::open(DIR, opts(&vfs)).unwrap();
        for i in 0..10 {
            store.put(format!("k{i}"), "value").unwrap();
        }
        store.checkpoint().unwrap();
        segment = store.journal_stats().map(|_| ()).and_then(|_| {
            sim.list_files()
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "seg"))
                .max()
        });
    }
    let segment = segment.unwrap();
    // Cut the last record (LSN 10) short: damage of the shape a crash leaves (the file
    // ends inside the frame), in the last group, which no later frame covers. Only the
    // checkpoint proves it was synced (the records end at the last non-zero byte: the
    // rest of a preallocated segment is zero room).
    let bytes = sim.file_bytes(&segment).unwrap();
    let len = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    sim.write_durable(&segment, &bytes[..len - 2]);
    let err = KvStore::open(DIR, opts(&vfs)).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(
        err.to_string().contains("covered by the checkpoint"),
        "{err}"
    );

    let store = KvStore::open(DIR, opts(&vfs).salvage(true)).unwrap();
    assert_eq!(
        store.len().unwrap(),
        10,
        "the checkpoint holds every record"
    );
    assert_eq!(store.recovery_report().salvaged.len(), 1);
    store.put("after", "salvage").unwrap();
    drop(store);
    let store = KvStore::open(DIR, opts(&vfs)).expect("the gap is covered by the checkpoint");
    assert_eq!(store.len().unwrap(), 11);
    assert!(
        sim.list_files()
            .iter()
            .any(|p| p.to_string_lossy().contains("/quarantine/")),
        "the damaged segment was kept in quarantine"
    );
}

/// After a failed fsync the kernel may drop the pages while the page cache still shows
/// them. A store reopened without a power loss must not build acknowledged commits on
/// bytes that are not on disk (found by the store_ops fuzz target).
#[test]
fn reopening_a_poisoned_store_without_a_power_loss_keeps_later_acks_durable() {
    let (sim, vfs) = sim(30);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    store.put("a", "1").unwrap();
    sim.inject(Fault::once(OpClass::Sync, FaultKind::Eio));
    assert!(store.put("x", "lost?").unwrap_err().is_poisoned());
    drop(store);
    // Reopen while the page cache still holds "x" (no power loss).
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    let saw_x = store.get(b"x").unwrap().is_some();
    store.put("b", "2").unwrap(); // acknowledged
    drop(store);
    sim.crash(CrashMode::DropUnsynced);
    let store =
        KvStore::open(DIR, options(&vfs)).expect("no false corruption after the power loss");
    assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(
        store.get(b"b").unwrap(),
        Some(b"2".to_vec()),
        "an acknowledged commit was lost"
    );
    assert_eq!(
        store.get(b"x").unwrap().is_some(),
        saw_x,
        "what the reopened store served stays"
    );
}

/// A first snapshot whose directory fsync failed created `snapshots/`; a later snapshot
/// must still make that directory's entry durable (found by the store_ops fuzz target).
#[test]
fn an_acknowledged_snapshot_survives_a_power_loss_after_an_earlier_directory_fsync_failure() {
    let (sim, vfs) = sim(31);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    store.put("k", "v").unwrap();
    sim.inject(Fault::once(OpClass::SyncDir, FaultKind::Eio));
    assert!(store.snapshot("first").is_err());
    drop(store);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    store.snapshot("second").unwrap();
    drop(store);
    sim.crash(CrashMode::DropUnsynced);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    let names: Vec<String> = store
        .list_snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        names.contains(&"second".to_string()),
        "acknowledged snapshot lost: {names:?}"
    );
}

/// A transient read error is not damage: open fails with an I/O error (never
/// corruption, which would send an operator to `repair --salvage`), and a retry works
/// (found by the store_ops fuzz target).
#[test]
fn a_read_error_at_open_is_an_io_error_not_corruption() {
    let (sim, vfs) = sim(32);
    let opts = options(&vfs).checkpoints_retained(1);
    {
        let store = KvStore::open(DIR, opts.clone()).unwrap();
        for i in 0..12 {
            store.put(format!("k{i}"), vec![b'v'; 1000]).unwrap();
        }
        let info = store.checkpoint().unwrap();
        assert!(
            !info.segments_deleted.is_empty(),
            "the journal no longer reaches LSN 1"
        );
    }
    // Which read calls does a clean open make?
    sim.set_trace(true);
    drop(KvStore::open(DIR, opts.clone()).unwrap());
    let reads: Vec<_> = sim
        .take_trace()
        .into_iter()
        .filter(|e| matches!(e.op, "read_at" | "read_file" | "read_dir"))
        .collect();
    sim.set_trace(false);
    assert!(
        reads
            .iter()
            .any(|e| e.path.to_string_lossy().contains("checkpoint-"))
    );
    for (nth, entry) in reads.iter().enumerate() {
        sim.inject(Fault {
            op: OpClass::Read,
            nth: nth as u64,
            kind: FaultKind::Eio,
            persistent: false,
        });
        match KvStore::open(DIR, opts.clone()) {
            Ok(store) => assert_eq!(store.len().unwrap(), 12),
            Err(err) => assert!(
                matches!(err, Error::Io { .. }),
                "EIO on {} {} gave {err}",
                entry.op,
                entry.path.display()
            ),
        }
        sim.clear_faults();
        assert_eq!(KvStore::open(DIR, opts.clone()).unwrap().len().unwrap(), 12);
    }
}

/// A snapshot whose directory fsync failed (poisoning the store) must not be reported by
/// the reopened store and then vanish at a power loss (found by the store_ops fuzz target).
#[test]
fn a_snapshot_the_reopened_store_lists_survives_a_power_loss() {
    let (sim, vfs) = sim(33);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    store.put("k", "v").unwrap();
    store.snapshot("first").unwrap();
    // The second sync_dir of the next snapshot is that of snapshots/ after the rename.
    sim.inject(Fault {
        op: OpClass::SyncDir,
        nth: 1,
        kind: FaultKind::Enospc,
        persistent: false,
    });
    assert!(store.snapshot("second").unwrap_err().is_poisoned());
    drop(store);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    let listed: Vec<String> = store
        .list_snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    drop(store);
    sim.crash(CrashMode::DropUnsynced);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    let after: Vec<String> = store
        .list_snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    for name in &listed {
        assert!(
            after.contains(name),
            "snapshot {name} was listed after reopen but lost: {after:?}"
        );
    }
    for name in &after {
        store.restore_snapshot(name).unwrap();
    }
}

/// `SyncPolicy::Buffered` for bulk loads: commits are acknowledged from the process's
/// buffer. A checkpoint and a close write and sync them; when writing the buffer fails,
/// the store is poisoned (reads too, since the state is ahead of the file), and the
/// reopened store holds exactly the commits that reached the disk, in order.
#[test]
fn buffered_store_syncs_at_checkpoint_and_poisons_when_the_buffer_cannot_be_written() {
    let (sim, vfs) = sim(30);
    let buffered = |vfs: &VfsRef| {
        options(vfs)
            .sync_policy(walstate::SyncPolicy::Buffered)
            .segment_size_bytes(1 << 20)
            .write_buffer_bytes(8192)
    };
    let store = KvStore::open(DIR, buffered(&vfs)).unwrap();
    for i in 0..20 {
        store.put(format!("k{i:03}"), "v").unwrap();
    }
    assert_eq!(store.len().unwrap(), 20, "acknowledged puts are visible");
    store.checkpoint().unwrap();
    for i in 20..40 {
        store.put(format!("k{i:03}"), "v").unwrap();
    }
    sim.inject(Fault {
        persistent: true,
        ..Fault::once(OpClass::Write, FaultKind::Eio)
    });
    let mut i = 40;
    let err = loop {
        match store.put(format!("k{i:03}"), "v") {
            Ok(_) => i += 1,
            Err(err) => break err,
        }
        assert!(i < 10_000, "the buffer was never written");
    };
    assert!(err.is_poisoned(), "{err}");
    assert!(
        store.get(b"k000").unwrap_err().is_poisoned(),
        "reads error too"
    );
    assert!(store.sync().unwrap_err().is_poisoned());
    drop(store);
    sim.clear_faults();
    sim.crash(CrashMode::DropUnsynced);
    let store = KvStore::open(DIR, buffered(&vfs)).unwrap();
    let keys: Vec<Vec<u8>> = store
        .scan_prefix(b"k")
        .unwrap()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let expected: Vec<Vec<u8>> = (0..20).map(|i| format!("k{i:03}").into_bytes()).collect();
    assert_eq!(keys, expected, "exactly what the checkpoint made durable");
    store.put("k020", "v").unwrap();
    store.close().unwrap();
    sim.crash(CrashMode::DropUnsynced);
    let store = KvStore::open(DIR, buffered(&vfs)).unwrap();
    assert_eq!(
        store.len().unwrap(),
        21,
        "close wrote and synced the buffer"
    );
}
