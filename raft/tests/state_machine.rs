//! The state machine side through openraft's API: applying entries, snapshots that
//! survive a reopen, installing a leader's snapshot, refusing a bad one.

mod common;

use std::collections::BTreeSet;
use std::io::Cursor;

use common::{Sm, Types};
use openraft::storage::RaftStateMachine;
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftSnapshotBuilder, SnapshotMeta,
    StoredMembership,
};
use walstate::{KvApplied, KvCommand, Options};

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn put(index: u64, key: &str, value: &str) -> Entry<Types> {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(KvCommand::put(key.as_bytes(), value.as_bytes())),
    }
}

fn membership(index: u64, nodes: &[u64]) -> Entry<Types> {
    let voters: BTreeSet<u64> = nodes.iter().copied().collect();
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Membership(Membership::new(vec![voters], None)),
    }
}

fn value(sm: &Sm, key: &str) -> Option<String> {
    sm.read(|kv| {
        kv.get(key.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
    .unwrap()
}

fn open(dir: &std::path::Path) -> Sm {
    Sm::open(dir, Options::default()).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn applied_entries_give_outputs_and_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut sm = open(tmp.path());
    let outputs = rt
        .block_on(sm.apply([
            membership(1, &[1, 2, 3]),
            put(2, "a", "1"),
            put(3, "a", "2"),
        ]))
        .unwrap();
    assert_eq!(outputs.len(), 3);
    assert!(outputs[0].is_none(), "a membership entry has no output");
    assert_eq!(
        outputs[2],
        Some(Ok(KvApplied::Put {
            previous: Some(b"1".to_vec())
        })),
        "the output of the second put names the value it replaced"
    );
    drop(sm);

    let mut sm = open(tmp.path());
    let (applied, members) = rt.block_on(sm.applied_state()).unwrap();
    assert_eq!(applied, Some(log_id(1, 3)));
    assert_eq!(members.log_id(), &Some(log_id(1, 1)));
    assert_eq!(value(&sm, "a").as_deref(), Some("2"));
}

#[test]
fn the_current_snapshot_survives_reopen_and_older_ones_are_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut sm = open(tmp.path());
    rt.block_on(sm.apply([put(1, "a", "1")])).unwrap();
    let first = build(&rt, &mut sm);
    rt.block_on(sm.apply([put(2, "b", "2")])).unwrap();
    let second = build(&rt, &mut sm);
    assert_eq!(first.meta.last_log_id, Some(log_id(1, 1)));
    assert_eq!(second.meta.last_log_id, Some(log_id(1, 2)));
    assert_eq!(
        sm.walstate().list_snapshots().unwrap().len(),
        1,
        "one current snapshot"
    );
    drop(sm);

    let mut sm = open(tmp.path());
    let current = rt
        .block_on(sm.get_current_snapshot())
        .unwrap()
        .expect("a snapshot");
    assert_eq!(current.meta, second.meta);
    assert_eq!(current.snapshot.get_ref(), second.snapshot.get_ref());
}

#[test]
fn an_installed_snapshot_replaces_the_state_and_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut leader = open(&tmp.path().join("leader"));
    rt.block_on(leader.apply([membership(1, &[1, 2]), put(2, "k", "leader")]))
        .unwrap();
    let snapshot = build(&rt, &mut leader);

    let mut follower = open(&tmp.path().join("follower"));
    rt.block_on(follower.apply([put(1, "stale", "x")])).unwrap();
    let mut data = rt.block_on(follower.begin_receiving_snapshot()).unwrap();
    *data = *snapshot.snapshot.clone();
    rt.block_on(follower.install_snapshot(&snapshot.meta, data))
        .unwrap();
    assert_eq!(value(&follower, "stale"), None);
    drop(follower);

    let mut follower = open(&tmp.path().join("follower"));
    assert_eq!(value(&follower, "k").as_deref(), Some("leader"));
    let (applied, members) = rt.block_on(follower.applied_state()).unwrap();
    assert_eq!(applied, Some(log_id(1, 2)));
    assert_eq!(members, snapshot.meta.last_membership);
    let current = rt.block_on(follower.get_current_snapshot()).unwrap();
    assert_eq!(current.map(|s| s.meta), Some(snapshot.meta));
}

#[test]
fn a_snapshot_whose_data_disagrees_with_its_meta_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut leader = open(&tmp.path().join("leader"));
    rt.block_on(leader.apply([put(1, "k", "v")])).unwrap();
    let snapshot = build(&rt, &mut leader);

    let mut follower = open(&tmp.path().join("follower"));
    rt.block_on(follower.apply([put(1, "mine", "1")])).unwrap();
    let lying_meta = SnapshotMeta {
        last_log_id: Some(log_id(9, 99)),
        last_membership: StoredMembership::default(),
        snapshot_id: "9-0-99".into(),
    };
    let err = rt
        .block_on(follower.install_snapshot(&lying_meta, snapshot.snapshot.clone()))
        .unwrap_err();
    assert!(err.to_string().contains("metadata"), "{err}");

    let garbage = Box::new(Cursor::new(vec![0xff; 16]));
    let err = rt
        .block_on(follower.install_snapshot(&snapshot.meta, garbage))
        .unwrap_err();
    assert!(err.to_string().contains("does not decode"), "{err}");

    assert_eq!(
        value(&follower, "mine").as_deref(),
        Some("1"),
        "state unchanged"
    );
    assert_eq!(value(&follower, "k"), None);
}

/// Builds a snapshot the way openraft does: a builder, then `build_snapshot`.
fn build(rt: &tokio::runtime::Runtime, sm: &mut Sm) -> openraft::Snapshot<Types> {
    rt.block_on(async {
        let mut builder = sm.get_snapshot_builder().await;
        builder.build_snapshot().await
    })
    .expect("build a snapshot")
}

/// A crash at any I/O call of an install leaves the old state with no newer snapshot, or
/// the new state with its snapshot (or none, which openraft rebuilds): never a current
/// snapshot older than a state that moved past it.
#[test]
fn a_crash_anywhere_in_an_install_leaves_a_snapshot_no_older_than_the_state() {
    use walstate::io::sim::CrashMode;
    use walstate::io::{SimFs, VfsRef};

    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut leader = open(&tmp.path().join("leader"));
    rt.block_on(leader.apply([put(1, "a", "1"), put(2, "b", "2"), put(3, "c", "3")]))
        .unwrap();
    let snapshot = build(&rt, &mut leader);

    let mut outcomes = [0usize; 2];
    for offset in 0.. {
        let sim = SimFs::new(offset);
        let vfs: VfsRef = sim.clone();
        let options = || Options::default().vfs(vfs.clone());
        let mut follower = Sm::open("/follower", options()).unwrap();
        rt.block_on(follower.apply([put(1, "a", "1")])).unwrap();
        build(&rt, &mut follower);
        sim.crash_at_mutating_call(Some(sim.mutating_calls() + offset));
        let result =
            rt.block_on(follower.install_snapshot(&snapshot.meta, snapshot.snapshot.clone()));
        let finished = !sim.is_dead();
        drop(follower);
        sim.crash(CrashMode::Random(offset));

        let mut follower = Sm::open("/follower", options())
            .unwrap_or_else(|err| panic!("+{offset}: reopen: {err}"));
        let (applied, _) = rt.block_on(follower.applied_state()).unwrap();
        let current = rt.block_on(follower.get_current_snapshot()).unwrap();
        let current = current.and_then(|s| s.meta.last_log_id);
        match applied {
            Some(id) if id == log_id(1, 1) => {
                assert!(
                    result.is_err(),
                    "+{offset}: an acknowledged install was lost"
                );
                assert!(
                    current.is_none() || current == Some(id),
                    "+{offset}: {current:?}"
                );
                outcomes[0] += 1;
            }
            Some(id) if id == log_id(1, 3) => {
                assert!(
                    current.is_none() || current == Some(id),
                    "+{offset}: {current:?}"
                );
                assert_eq!(value(&follower, "c").as_deref(), Some("3"));
                outcomes[1] += 1;
            }
            other => panic!("+{offset}: applied {other:?}, neither the old nor the new state"),
        }
        if finished {
            assert!(result.is_ok(), "{result:?}");
            break;
        }
    }
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "both outcomes seen: {outcomes:?}"
    );
}
