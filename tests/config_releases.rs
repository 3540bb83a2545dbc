//! The four releases of `examples/config_manager/releases.rs`: a store written by each
//! earlier release (with and without a checkpoint) opens in every later one, with the
//! state each release's rules give, and never in an earlier one.

#[path = "../examples/config_manager/releases.rs"]
#[allow(dead_code)]
mod releases;

use std::path::Path;

use releases::{v1, v2, v3, v4};
use walstate::Error;

fn v1_store(dir: &Path, checkpoint: bool) {
    let store = v1::open(dir).unwrap();
    store
        .apply(v1::Command::SetListen("0.0.0.0:8080".into()))
        .unwrap();
    if checkpoint {
        store.checkpoint().unwrap();
    }
    store.apply(v1::Command::SetWorkers(8)).unwrap();
    store
        .apply(v1::Command::SetLogLevel("info".into()))
        .unwrap();
    store.close().unwrap();
}

fn v2_store(dir: &Path, checkpoint: bool) {
    v1_store(dir, checkpoint);
    let store = v2::open(dir).unwrap();
    store
        .apply(v2::Command::AddFeature("metrics".into()))
        .unwrap();
    if checkpoint {
        store.checkpoint().unwrap();
    }
    store.close().unwrap();
}

fn v3_store(dir: &Path, checkpoint: bool) {
    v2_store(dir, checkpoint);
    let store = v3::open(dir).unwrap();
    store.apply(v3::Command::SetTimeoutSecs(5)).unwrap();
    store.close().unwrap();
}

#[test]
fn release_2_opens_release_1_stores_with_the_new_field_defaulted() {
    for checkpoint in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        v1_store(tmp.path(), checkpoint);
        let store = v2::open(tmp.path()).unwrap();
        assert_eq!(
            store.read(Clone::clone).unwrap(),
            v2::Config {
                listen: "0.0.0.0:8080".into(),
                workers: 8,
                log_level: "info".into(),
                features: vec![],
            }
        );
        assert!(store.recovery_report().migration.is_none());
    }
}

#[test]
fn release_3_migrates_release_1_and_2_stores_renaming_the_field() {
    for (written_by, checkpoint) in [(1, false), (1, true), (2, false), (2, true)] {
        let tmp = tempfile::tempdir().unwrap();
        let features = if written_by == 1 {
            v1_store(tmp.path(), checkpoint);
            vec![]
        } else {
            v2_store(tmp.path(), checkpoint);
            vec!["metrics".to_owned()]
        };
        let store = v3::open(tmp.path()).unwrap();
        let case = format!("v{written_by} store, checkpoint {checkpoint}");
        assert_eq!(
            store.read(Clone::clone).unwrap(),
            v3::Config {
                address: "0.0.0.0:8080".into(),
                workers: 8,
                log_level: "info".into(),
                features,
                timeout_secs: 30,
            },
            "{case}"
        );
        let migration = store.recovery_report().migration.expect("migrated");
        assert_eq!(migration.steps.len(), 1, "{case}");
        // The pre-migration snapshot is kept.
        assert!(
            store
                .list_snapshots()
                .unwrap()
                .iter()
                .any(|s| s.name == migration.snapshot),
            "{case}"
        );
        // An inserted command variant replays as itself after a reopen.
        store.apply(v3::Command::SetTimeoutSecs(7)).unwrap();
        store.apply(v3::Command::SetWorkers(9)).unwrap();
        store.close().unwrap();
        let store = v3::open(tmp.path()).unwrap();
        assert_eq!(
            store.read(|c| (c.timeout_secs, c.workers)).unwrap(),
            (7, 9),
            "{case}"
        );
        assert!(store.recovery_report().migration.is_none(), "{case}");
    }
}

#[test]
fn release_4_opens_every_earlier_store_and_drops_the_removed_field() {
    for written_by in 1..=3 {
        for checkpoint in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let (features, timeout_secs) = match written_by {
                1 => (vec![], 30),
                2 => (vec!["metrics".to_owned()], 30),
                _ => (vec!["metrics".to_owned()], 5),
            };
            match written_by {
                1 => v1_store(tmp.path(), checkpoint),
                2 => v2_store(tmp.path(), checkpoint),
                _ => v3_store(tmp.path(), checkpoint),
            }
            let store = v4::open(tmp.path()).unwrap();
            let case = format!("v{written_by} store, checkpoint {checkpoint}");
            assert_eq!(
                store.read(Clone::clone).unwrap(),
                v4::Config {
                    address: "0.0.0.0:8080".into(),
                    workers: 8,
                    features,
                    timeout_secs,
                },
                "{case}"
            );
            assert_eq!(
                store.recovery_report().migration.is_some(),
                written_by < 3,
                "{case}"
            );
            store.apply(v4::Command::SetWorkers(2)).unwrap();
            store.checkpoint().unwrap();
            store.close().unwrap();
            let store = v4::open(tmp.path()).unwrap();
            assert_eq!(store.read(|c| c.workers).unwrap(), 2, "{case}");
        }
    }
}

#[test]
fn no_release_opens_a_store_of_a_later_one() {
    let tmp = tempfile::tempdir().unwrap();
    v3_store(tmp.path(), true);
    let store = v4::open(tmp.path()).unwrap();
    store.apply(v4::Command::SetWorkers(4)).unwrap();
    store.close().unwrap();
    for result in [
        v1::open(tmp.path()).map(drop),
        v2::open(tmp.path()).map(drop),
        v3::open(tmp.path()).map(drop),
    ] {
        match result {
            Err(Error::SchemaMismatch { changes, .. }) => {
                assert!(
                    changes.iter().any(|c| c.contains("in the store")),
                    "{changes:?}"
                );
            }
            other => panic!("an older release opened a newer store: {other:?}"),
        }
    }
}
