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
}
