//! The async facade's promise that no thread waits per commit: 1,000 commits in flight,
//! and the process's thread count does not grow. Alone in its test binary, so the
//! threads of other tests do not count.

use walstate::{AsyncKvStore, Options};

/// The number of threads of this process, from /proc (Linux).
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

#[test]
fn a_thousand_waiting_commits_keep_the_thread_count_flat_and_share_fdatasyncs() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let store = AsyncKvStore::open(tmp.path().join("kv"), Options::default())
            .await
            .unwrap();
        store.put("warm", "up").await.unwrap();
        let before = threads();
        let syncs_before = store.store().journal_stats().unwrap().syncs;

        let tasks: Vec<_> = (0..1000)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.put(format!("k{i}"), format!("v{i}")).await })
            })
            .collect();
        // All thousand are queued or waiting now (or done): count the threads.
        tokio::task::yield_now().await;
        let during = threads();
        for task in tasks {
            assert_eq!(
                task.await.unwrap().unwrap(),
                None,
                "a new key has no previous value"
            );
        }
        let after = threads();

        assert!(
            during <= before && after <= before,
            "threads before {before}, with 1,000 commits in flight {during}, after {after}"
        );
        let syncs = store.store().journal_stats().unwrap().syncs - syncs_before;
        assert!(
            syncs < 1000,
            "1,000 commits took {syncs} fdatasyncs: no group commit"
        );
        assert_eq!(store.read(|state| state.len()).unwrap(), 1001);
        assert_eq!(store.get(b"k999").unwrap().as_deref(), Some(&b"v999"[..]));
        store.close().await.unwrap();
    });
}
