//! `Store::install_state` (a state from elsewhere replaces the store's, atomically and
//! durably) and `Store::read_snapshot` (a named snapshot's state, checked, read back).

use std::path::Path;

use walstate::io::SimFs;
use walstate::io::VfsRef;
use walstate::io::sim::CrashMode;
use walstate::{Error, INSTALL_SOURCE_BYTES_MAX, KvCommand, KvState, Options, Store};

const DIR: &str = "/data/replica";

fn options(vfs: &VfsRef) -> Options {
    Options::default().vfs(vfs.clone())
}

fn put(key: &str, value: &str) -> KvCommand {
    KvCommand::put(key.as_bytes(), value.as_bytes())
}

fn commit(store: &Store<KvState>, command: KvCommand) {
    store
        .apply(command)
        .expect("apply")
        .expect("a put always applies");
}

fn value(store: &Store<KvState>, key: &str) -> Option<String> {
    store
        .read(|state| {
            state
                .get(key.as_bytes())
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
        .expect("read")
}

/// A state with `keys` keys `k0..`, each valued `tag`.
fn state_with(keys: usize, tag: &str) -> KvState {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::<KvState>::open(tmp.path().join("source"), Options::default()).unwrap();
    let commands = (0..keys).map(|i| put(&format!("k{i}"), tag)).collect();
    store.apply_batch(commands).unwrap();
    store.read(|state| state.clone()).unwrap()
}

#[test]
fn installed_state_replaces_the_old_one_and_survives_reopen() {
    let sim = SimFs::new(1);
    let vfs: VfsRef = sim.clone();
    let store = Store::<KvState>::open(DIR, options(&vfs)).unwrap();
    commit(&store, put("old", "x"));
    commit(&store, put("k0", "old"));

    let lsn = store
        .install_state("leader 3-7", state_with(3, "new"))
        .unwrap();
    assert_eq!(lsn, 3, "the restore record takes the next LSN");
    assert_eq!(store.last_lsn(), 3);
    assert_eq!(value(&store, "old"), None, "the old state is gone");
    assert_eq!(value(&store, "k2").as_deref(), Some("new"));
    // Commands after the install apply to the installed state.
    commit(&store, put("after", "y"));
    drop(store);

    // Nothing was synced after the acknowledgements that a crash could lose.
    sim.crash(CrashMode::DropUnsynced);
    let store = Store::<KvState>::open(DIR, options(&vfs)).unwrap();
    assert_eq!(value(&store, "old"), None);
    assert_eq!(value(&store, "k0").as_deref(), Some("new"));
    assert_eq!(value(&store, "after").as_deref(), Some("y"));
    assert_eq!(store.last_lsn(), 4);
}

#[test]
fn an_install_keeps_no_copy_of_the_replaced_state() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::<KvState>::open(tmp.path().join("s"), Options::default()).unwrap();
    commit(&store, put("a", "1"));
    store.install_state("peer", state_with(1, "z")).unwrap();
    assert!(
        store.list_snapshots().unwrap().is_empty(),
        "unlike restore_snapshot, install_state writes no pre-restore snapshot"
    );
}

/// A crash at every mutating I/O call of an install leaves the old state or the new one
/// (each crash mode), and never an error on reopen.
#[test]
fn a_crash_anywhere_in_an_install_leaves_the_old_or_the_new_state() {
    let installed = state_with(4, "new");
    let mut outcomes = [0usize; 2];
    for mode in [CrashMode::DropUnsynced, CrashMode::KeepAll] {
        for offset in 0.. {
            let sim = SimFs::new(offset);
            let vfs: VfsRef = sim.clone();
            let store = Store::<KvState>::open(DIR, options(&vfs)).unwrap();
            commit(&store, put("k0", "old"));
            let crash_at = sim.mutating_calls() + offset;
            sim.crash_at_mutating_call(Some(crash_at));
            let result = store.install_state("peer", installed.clone());
            let finished = !sim.is_dead();
            drop(store);
            sim.crash(mode.clone());

            let store = Store::<KvState>::open(DIR, options(&vfs))
                .unwrap_or_else(|err| panic!("crash at +{offset} {mode:?}: reopen: {err}"));
            let k0 = value(&store, "k0");
            match k0.as_deref() {
                Some("old") => {
                    assert!(
                        result.is_err(),
                        "+{offset}: an acknowledged install was lost"
                    );
                    assert_eq!(value(&store, "k3"), None, "+{offset}: half an install");
                    outcomes[0] += 1;
                }
                Some("new") => {
                    assert_eq!(value(&store, "k3").as_deref(), Some("new"));
                    outcomes[1] += 1;
                }
                other => panic!("+{offset} {mode:?}: neither state: k0 = {other:?}"),
            }
            if finished {
                assert!(result.is_ok());
                break;
            }
        }
    }
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "both outcomes seen: {outcomes:?}"
    );
}

#[test]
fn a_long_source_label_is_refused_before_anything_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::<KvState>::open(tmp.path().join("s"), Options::default()).unwrap();
    commit(&store, put("a", "1"));
    let label = "x".repeat(INSTALL_SOURCE_BYTES_MAX + 1);
    let err = store.install_state(&label, state_with(1, "z")).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert_eq!(value(&store, "a").as_deref(), Some("1"));
    assert_eq!(store.last_lsn(), 1);
}

#[test]
fn a_read_only_store_refuses_an_install() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    Store::<KvState>::open(&dir, Options::default())
        .unwrap()
        .close()
        .unwrap();
    let reader = Store::<KvState>::open_read_only(&dir, Options::default()).unwrap();
    let err = reader
        .install_state("peer", state_with(1, "z"))
        .unwrap_err();
    assert!(matches!(err, Error::ReadOnly), "{err}");
}

#[test]
fn read_snapshot_returns_the_state_and_lsn_it_was_taken_at() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::<KvState>::open(tmp.path().join("s"), Options::default()).unwrap();
    commit(&store, put("a", "1"));
    commit(&store, put("b", "2"));
    store.snapshot("two").unwrap();
    commit(&store, put("a", "changed"));

    let (lsn, state) = store.read_snapshot("two").unwrap();
    assert_eq!(lsn, 2);
    assert_eq!(state.get(b"a"), Some(&b"1"[..]));
    assert_eq!(state.len(), 2);
    assert_eq!(
        value(&store, "a").as_deref(),
        Some("changed"),
        "the store is unchanged"
    );
}

#[test]
fn read_snapshot_of_a_missing_name_says_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::<KvState>::open(tmp.path().join("s"), Options::default()).unwrap();
    let err = store.read_snapshot("nope").unwrap_err();
    assert!(matches!(err, Error::SnapshotNotFound { .. }), "{err}");
}

#[test]
fn read_snapshot_detects_a_flipped_bit() {
    let sim = SimFs::new(7);
    let vfs: VfsRef = sim.clone();
    let store = Store::<KvState>::open(DIR, options(&vfs)).unwrap();
    commit(&store, put("a", "1"));
    let info = store.snapshot("one").unwrap();
    let len = sim.file_bytes(&info.path).expect("snapshot file").len() as u64;
    assert!(sim.corrupt(Path::new(&info.path), len - 2, 0x10));
    let err = store.read_snapshot("one").unwrap_err();
    assert!(matches!(err, Error::SnapshotDamaged { .. }), "{err}");
}
