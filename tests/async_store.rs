//! The async facade (feature `tokio`): commits as futures resolved by the journal's
//! durable hook, with no thread waiting per commit.

use walstate::io::sim::{CrashMode, Fault, FaultKind, OpClass};
use walstate::io::{SimFs, VfsRef};
use walstate::{AsyncKvStore, AsyncStore, Error, KvCommand, KvState, Options};

// The thousand-commit thread count is in tests/async_threads.rs: alone in its process,
// so other tests' threads do not count.

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

#[test]
fn an_acknowledged_async_commit_survives_losing_everything_unsynced() {
    let sim = SimFs::new(5);
    let vfs: VfsRef = sim.clone();
    let rt = runtime();
    rt.block_on(async {
        let store = AsyncStore::<KvState>::open("/s", Options::default().vfs(vfs.clone()))
            .await
            .unwrap();
        let outputs = store
            .apply_batch(vec![KvCommand::put("a", "1"), KvCommand::put("b", "2")])
            .await
            .unwrap();
        assert_eq!(outputs.len(), 2);
        store
            .apply(KvCommand::put("c", "3"))
            .await
            .unwrap()
            .unwrap();
        drop(store);
    });
    sim.crash(CrashMode::DropUnsynced);
    let store = walstate::KvStore::open("/s", Options::default().vfs(vfs)).unwrap();
    assert_eq!(store.len().unwrap(), 3);
}

#[test]
fn a_dropped_future_still_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let store = AsyncKvStore::open(tmp.path(), Options::default())
            .await
            .unwrap();
        // Queued when called, never polled.
        drop(store.put("dropped", "still here"));
        // A later commit resolves only after the earlier one (one LSN order).
        store.put("later", "x").await.unwrap();
        assert_eq!(
            store.get(b"dropped").unwrap().as_deref(),
            Some(&b"still here"[..])
        );
        assert_eq!(store.store().last_lsn(), 2);
    });
}

#[test]
fn a_failed_fsync_fails_the_commit_and_poisons_the_store() {
    let sim = SimFs::new(9);
    let vfs: VfsRef = sim.clone();
    let rt = runtime();
    rt.block_on(async {
        let store = AsyncKvStore::open("/s", Options::default().vfs(vfs.clone()))
            .await
            .unwrap();
        store.put("ok", "1").await.unwrap();
        sim.inject(Fault::once(OpClass::Sync, FaultKind::Eio));
        let err = store.put("lost", "2").await.unwrap_err();
        assert!(
            matches!(err, Error::Poisoned { .. } | Error::Io { .. }),
            "{err}"
        );
        let err = store.put("after", "3").await.unwrap_err();
        assert!(
            matches!(err, Error::Poisoned { .. }),
            "poisoned until reopened: {err}"
        );
        assert_eq!(store.get(b"ok").unwrap_err().to_string(), err.to_string());
    });
}

#[test]
fn sync_and_checkpoint_resolve_and_close_ends_the_committer() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let store = AsyncStore::<KvState>::open(tmp.path(), Options::default())
            .await
            .unwrap();
        let other = store.clone();
        store
            .apply(KvCommand::put("a", "1"))
            .await
            .unwrap()
            .unwrap();
        store.sync().await.unwrap();
        let info = store.checkpoint().await.unwrap();
        assert_eq!(info.lsn, 1);
        store.close().await.unwrap();
        let err = other.apply(KvCommand::put("b", "2")).await.unwrap_err();
        assert!(matches!(err, Error::Closed), "{err}");
    });
    let store = walstate::KvStore::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(store.len().unwrap(), 1);
}

#[test]
fn a_read_only_store_refuses_async_commits_before_queueing() {
    let tmp = tempfile::tempdir().unwrap();
    walstate::KvStore::open(tmp.path(), Options::default())
        .unwrap()
        .close()
        .unwrap();
    let reader =
        walstate::Store::<KvState>::open_read_only(tmp.path(), Options::default()).unwrap();
    let store = AsyncStore::from_store(reader).unwrap();
    let rt = runtime();
    let err = rt
        .block_on(store.apply(KvCommand::put("a", "1")))
        .unwrap_err();
    assert!(matches!(err, Error::ReadOnly), "{err}");
    let err = rt.block_on(store.apply_batch(Vec::new())).unwrap_err();
    assert!(matches!(err, Error::ReadOnly), "an empty batch too: {err}");
}

/// Many commits in flight through the async path, a crash at a random I/O call, any
/// allowed post-crash image: every acknowledged commit is there, and what is there is a
/// prefix of the commits in the order they were queued.
#[test]
fn crashes_with_async_commits_in_flight_keep_every_ack_and_a_prefix() {
    const COMMITS: usize = 40;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut crashed_mid_stream = 0;
    for seed in 0..60u64 {
        let sim = SimFs::new(seed);
        let vfs: VfsRef = sim.clone();
        let options = || Options::default().vfs(vfs.clone());
        let acked: Vec<bool> = rt.block_on(async {
            let store = AsyncKvStore::open("/s", options()).await.unwrap();
            sim.crash_at_mutating_call(Some(sim.mutating_calls() + seed % 20));
            // Queued in this order when called, in waves of 8 awaited together, so the
            // crash can fall between group commits.
            let mut acked = Vec::new();
            for wave in 0..COMMITS / 8 {
                let commits: Vec<_> = (wave * 8..wave * 8 + 8)
                    .map(|i| store.put(format!("k{i:02}"), "v"))
                    .collect();
                for commit in commits {
                    acked.push(commit.await.is_ok());
                }
            }
            drop(store);
            acked
        });
        if acked.iter().any(|&a| a) && acked.iter().any(|&a| !a) {
            crashed_mid_stream += 1;
        }
        sim.crash(CrashMode::Random(seed));
        let store = walstate::KvStore::open("/s", options())
            .unwrap_or_else(|err| panic!("seed {seed}: reopen: {err}"));
        let present: Vec<bool> = (0..COMMITS)
            .map(|i| store.get(format!("k{i:02}").as_bytes()).unwrap().is_some())
            .collect();
        for i in 0..COMMITS {
            assert!(
                !acked[i] || present[i],
                "seed {seed}: acknowledged k{i:02} lost"
            );
            if i > 0 {
                assert!(
                    present[i - 1] || !present[i],
                    "seed {seed}: k{i:02} without k{:02}",
                    i - 1
                );
            }
        }
    }
    assert!(
        crashed_mid_stream > 0,
        "no case crashed between acknowledged and failed commits"
    );
}

/// A restore while commits are in flight waits for them (it needs the LSN after the
/// last of them) and then replaces the state: no deadlock with the committer, which
/// holds the writer's gate while groups are outstanding.
#[test]
fn a_restore_waits_for_the_commits_in_flight_then_replaces_the_state() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let store = AsyncKvStore::open(tmp.path(), Options::default())
            .await
            .unwrap();
        store.put("before", "1").await.unwrap();
        store.snapshot("one").await.unwrap();
        let commits: Vec<_> = (0..200).map(|i| store.put(format!("k{i}"), "v")).collect();
        let restored = store.restore_snapshot("one").await.unwrap();
        for commit in commits {
            commit.await.unwrap();
        }
        assert_eq!(
            restored.lsn, 202,
            "the restore record follows the 200 commits"
        );
        assert_eq!(
            store.read(|state| state.len()).unwrap(),
            1,
            "the snapshot's state"
        );
        store.put("after", "2").await.unwrap();
        assert_eq!(store.store().last_lsn(), 203);
    });
}
