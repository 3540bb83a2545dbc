//! Schema identity (issue 17): a store opened with other types than those that wrote it
//! fails with `Error::SchemaMismatch` saying what changed — never decodes silently,
//! never calls it corruption — and a migrating open converts it, crash-safely.

// The command names mirror the configuration fields they set (`SetWorkers`).
#![allow(clippy::enum_variant_names)]

use std::path::Path;

use serde::{Deserialize, Serialize};
use walstate::io::VfsRef;
use walstate::io::sim::{CrashMode, SimFs};
use walstate::migrate::Migrations;
use walstate::schema::Schema;
use walstate::{Error, KvStore, Options, StateMachine, Store};

/// Release 1 of the README's config service.
mod r1 {
    use super::*;
    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Config {
        pub listen: String,
        pub workers: u16,
    }
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub enum Command {
        SetListen(String),
        SetWorkers(u16),
    }
    impl StateMachine for Config {
        type Command = Command;
        type Output = ();
        fn apply(&mut self, command: &Command) {
            match command {
                Command::SetListen(listen) => self.listen = listen.clone(),
                Command::SetWorkers(workers) => self.workers = *workers,
            }
        }
    }
}

/// Release 2: a variant inserted before `SetWorkers`, and a field added.
mod r2 {
    use super::*;
    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Config {
        pub listen: String,
        pub timeout_secs: u16,
        pub workers: u16,
    }
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub enum Command {
        SetListen(String),
        SetTimeoutSecs(u16),
        SetWorkers(u16),
    }
    impl StateMachine for Config {
        type Command = Command;
        type Output = ();
        fn apply(&mut self, command: &Command) {
            match command {
                Command::SetListen(listen) => self.listen = listen.clone(),
                Command::SetTimeoutSecs(secs) => self.timeout_secs = *secs,
                Command::SetWorkers(workers) => self.workers = *workers,
            }
        }
    }
    impl From<r1::Config> for Config {
        fn from(old: r1::Config) -> Self {
            Config {
                listen: old.listen,
                timeout_secs: 30,
                workers: old.workers,
            }
        }
    }
}

/// Release 3: `listen` renamed to `address`, `timeout_secs` removed.
mod r3 {
    use super::*;
    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Config {
        pub address: String,
        pub workers: u16,
    }
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub enum Command {
        SetAddress(String),
        SetWorkers(u16),
    }
    impl StateMachine for Config {
        type Command = Command;
        type Output = ();
        fn apply(&mut self, command: &Command) {
            match command {
                Command::SetAddress(address) => self.address = address.clone(),
                Command::SetWorkers(workers) => self.workers = *workers,
            }
        }
    }
    impl From<r2::Config> for Config {
        fn from(old: r2::Config) -> Self {
            Config {
                address: old.listen,
                workers: old.workers,
            }
        }
    }
}

/// Release 1 with a `#[serde(default)]` field added: bincode stores no field names, so
/// this is a different schema under the compact codec.
mod r1_default_field {
    use super::*;
    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Config {
        pub listen: String,
        pub workers: u16,
        #[serde(default)]
        pub timeout_secs: u16,
    }
    impl StateMachine for Config {
        type Command = r1::Command;
        type Output = ();
        fn apply(&mut self, command: &r1::Command) {
            match command {
                r1::Command::SetListen(listen) => self.listen = listen.clone(),
                r1::Command::SetWorkers(workers) => self.workers = *workers,
            }
        }
    }
}

fn release_1_store(dir: &Path, checkpoint: bool) {
    let store = Store::<r1::Config>::open(dir, Options::default()).unwrap();
    store
        .apply(r1::Command::SetListen("0.0.0.0:8080".into()))
        .unwrap();
    store.apply(r1::Command::SetWorkers(8)).unwrap();
    if checkpoint {
        store.checkpoint().unwrap();
    }
    store.close().unwrap();
}

fn release_1_state() -> r1::Config {
    r1::Config {
        listen: "0.0.0.0:8080".into(),
        workers: 8,
    }
}

/// The parts of a schema mismatch; panics on any other outcome.
fn mismatch<T: std::fmt::Debug>(result: walstate::Result<T>) -> (String, Vec<String>, String) {
    match result {
        Err(err @ Error::SchemaMismatch { .. }) => {
            assert!(!err.is_corruption());
            let message = err.to_string();
            assert!(
                !message.contains("salvage"),
                "a schema error never advises salvage: {message}"
            );
            let Error::SchemaMismatch { path, changes, .. } = err else {
                unreachable!()
            };
            (path.display().to_string(), changes, message)
        }
        other => panic!("expected a schema mismatch, got {other:?}"),
    }
}

#[test]
fn an_inserted_variant_is_refused_naming_it_instead_of_replaying_set_workers_as_a_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    release_1_store(tmp.path(), false);
    let (path, changes, message) =
        mismatch(Store::<r2::Config>::open(tmp.path(), Options::default()));
    assert!(
        path.ends_with(".seg"),
        "the journal is what differs: {path}"
    );
    let all = changes.join("\n");
    assert!(all.contains("SetTimeoutSecs"), "{all}");
    assert!(all.contains("timeout_secs"), "{all}");
    assert!(message.contains("open_migrating"), "{message}");
    // Nothing was changed: release 1 still opens its store, with its state.
    let store = Store::<r1::Config>::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(store.read(Clone::clone).unwrap(), release_1_state());
}

#[test]
fn a_checkpoint_of_other_types_is_refused_not_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    release_1_store(tmp.path(), true);
    let (path, changes, _) = mismatch(Store::<r2::Config>::open(tmp.path(), Options::default()));
    assert!(
        path.contains("checkpoint-"),
        "the checkpoint differs: {path}"
    );
    assert!(changes.join("\n").contains("SetTimeoutSecs"), "{changes:?}");
    let store = Store::<r1::Config>::open(tmp.path(), Options::default()).unwrap();
    assert!(store.recovery_report().checkpoints_skipped.is_empty());
    assert_eq!(store.read(Clone::clone).unwrap(), release_1_state());
}

#[test]
fn a_default_field_under_the_compact_codec_is_a_schema_change_not_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    release_1_store(tmp.path(), true);
    let (_, changes, _) = mismatch(Store::<r1_default_field::Config>::open(
        tmp.path(),
        Options::default(),
    ));
    assert!(changes.join("\n").contains("timeout_secs"), "{changes:?}");
    // Read-only opens are refused the same way.
    mismatch(Store::<r1_default_field::Config>::open_read_only(
        tmp.path(),
        Options::default(),
    ));
}

#[test]
fn the_same_types_reopen_and_every_file_names_their_schema() {
    let tmp = tempfile::tempdir().unwrap();
    release_1_store(tmp.path(), true);
    let schema = Schema::of::<r1::Config>().unwrap();
    let store = Store::<r1::Config>::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(store.recovery_report().schemas, vec![schema.id()]);
    assert!(
        tmp.path()
            .join(walstate::format::schema_file_name(schema.id()))
            .is_file()
    );
    store.close().unwrap();
    for entry in std::fs::read_dir(tmp.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        if walstate::format::parse_segment_file_name(&name).is_some() {
            let header = walstate::format::SegmentHeader::decode(&bytes).unwrap();
            assert_eq!(header.schema_id, schema.id().get(), "{name}");
        } else if walstate::format::parse_checkpoint_file_name(&name).is_some() {
            let (header, _) = walstate::format::decode_checkpoint(&bytes).unwrap();
            assert_eq!(header.schema_id, schema.id().get(), "{name}");
        }
    }
}

#[test]
fn the_kv_store_refuses_a_typed_store_as_a_schema_error() {
    let tmp = tempfile::tempdir().unwrap();
    release_1_store(tmp.path(), false);
    let (_, changes, _) = mismatch(KvStore::open(tmp.path(), Options::default()));
    assert!(!changes.is_empty());
    mismatch(KvStore::open_read_only(tmp.path(), Options::default()));
}

#[test]
fn a_missing_schema_file_still_gives_a_schema_error() {
    let tmp = tempfile::tempdir().unwrap();
    release_1_store(tmp.path(), false);
    let file = tmp.path().join(walstate::format::schema_file_name(
        Schema::of::<r1::Config>().unwrap().id(),
    ));
    std::fs::remove_file(file).unwrap();
    let (_, changes, _) = mismatch(Store::<r2::Config>::open(tmp.path(), Options::default()));
    assert!(changes.join("\n").contains("missing"), "{changes:?}");
}

#[test]
fn a_migrating_open_converts_keeps_the_old_state_as_a_snapshot_and_chains_releases() {
    let tmp = tempfile::tempdir().unwrap();
    release_1_store(tmp.path(), false);
    let to_r2 = Migrations::<r2::Config>::new().step::<r1::Config, r2::Config>();
    let store = Store::open_migrating(tmp.path(), Options::default(), &to_r2).unwrap();
    assert_eq!(
        store.read(Clone::clone).unwrap(),
        r2::Config {
            listen: "0.0.0.0:8080".into(),
            timeout_secs: 30,
            workers: 8
        }
    );
    let report = store.recovery_report().migration.unwrap();
    assert_eq!(report.lsn, 2);
    assert_eq!(report.steps.len(), 1);
    store.apply(r2::Command::SetTimeoutSecs(5)).unwrap();
    store.close().unwrap();
    // The old state is kept in the old schema.
    let snapshot = tmp
        .path()
        .join("snapshots")
        .join(format!("{}.ckpt", report.snapshot));
    let bytes = std::fs::read(&snapshot).unwrap();
    let (header, state) = walstate::format::decode_checkpoint(&bytes).unwrap();
    assert_eq!(
        header.schema_id,
        Schema::of::<r1::Config>().unwrap().id().get()
    );
    assert_eq!(
        walstate::codec::decode::<r1::Config>(state).unwrap(),
        release_1_state()
    );
    // Release 2 now opens the store plainly; release 1 is refused.
    let store = Store::<r2::Config>::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(store.read(|c| c.timeout_secs).unwrap(), 5);
    assert!(store.recovery_report().migration.is_none());
    store.close().unwrap();
    mismatch(Store::<r1::Config>::open(tmp.path(), Options::default()));

    // A release-1 store opened by release 3 goes through both steps, given in any order.
    let tmp = tempfile::tempdir().unwrap();
    release_1_store(tmp.path(), true);
    let to_r3 = Migrations::<r3::Config>::new()
        .step::<r2::Config, r3::Config>()
        .step::<r1::Config, r2::Config>();
    let store = Store::open_migrating(tmp.path(), Options::default(), &to_r3).unwrap();
    assert_eq!(
        store.read(Clone::clone).unwrap(),
        r3::Config {
            address: "0.0.0.0:8080".into(),
            workers: 8
        }
    );
    assert_eq!(store.recovery_report().migration.unwrap().steps.len(), 2);
    store.apply(r3::Command::SetWorkers(3)).unwrap();
    store.close().unwrap();
    let store = Store::<r3::Config>::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(store.read(|c| c.workers).unwrap(), 3);
}

#[test]
fn a_migrating_open_without_a_step_from_the_stores_schema_is_a_schema_error() {
    let tmp = tempfile::tempdir().unwrap();
    release_1_store(tmp.path(), false);
    let only_r2_to_r3 = Migrations::<r3::Config>::new().step::<r2::Config, r3::Config>();
    let (_, changes, _) = mismatch(Store::open_migrating(
        tmp.path(),
        Options::default(),
        &only_r2_to_r3,
    ));
    assert!(
        changes.join("\n").contains("no chain of migration steps"),
        "{changes:?}"
    );
}

#[test]
fn a_snapshot_of_an_earlier_schema_is_not_restored_with_new_types() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::<r1::Config>::open(tmp.path(), Options::default()).unwrap();
    store.apply(r1::Command::SetWorkers(2)).unwrap();
    store.snapshot("release-1").unwrap();
    store.close().unwrap();
    let to_r2 = Migrations::<r2::Config>::new().step::<r1::Config, r2::Config>();
    let store = Store::open_migrating(tmp.path(), Options::default(), &to_r2).unwrap();
    mismatch(store.restore_snapshot("release-1"));
    assert_eq!(store.read(|c| c.workers).unwrap(), 2);
}

const DIR: &str = "/store";

fn sim(seed: u64) -> (std::sync::Arc<SimFs>, VfsRef) {
    let sim = SimFs::new(seed);
    let vfs: VfsRef = sim.clone();
    (sim, vfs)
}

fn sim_options(vfs: &VfsRef) -> Options {
    Options::default()
        .vfs(vfs.clone())
        .checkpoint_after_bytes(None)
}

/// A crash after each mutating I/O call of a migration: the store afterwards is the old
/// one (release 1 opens it with its state, and the migration runs again) or the
/// migrated one (with the pre-migration snapshot in place), never anything else.
#[test]
fn a_crash_at_any_io_of_a_migration_leaves_the_old_or_the_migrated_store() {
    let to_r2 = Migrations::<r2::Config>::new().step::<r1::Config, r2::Config>();
    let migrated = r2::Config::from(release_1_state());
    for mode in [
        CrashMode::DropUnsynced,
        CrashMode::KeepAll,
        CrashMode::Random(7),
    ] {
        let (mut saw_old, mut saw_migrated) = (false, false);
        let mut point = 0u64;
        loop {
            let (sim, vfs) = sim(point);
            {
                let store = Store::<r1::Config>::open(DIR, sim_options(&vfs)).unwrap();
                store
                    .apply(r1::Command::SetListen("0.0.0.0:8080".into()))
                    .unwrap();
                store.checkpoint().unwrap();
                store.apply(r1::Command::SetWorkers(8)).unwrap();
                store.close().unwrap();
            }
            sim.crash_at_mutating_call(Some(sim.mutating_calls() + point));
            let completed = Store::open_migrating(DIR, sim_options(&vfs), &to_r2)
                .and_then(|store| store.close())
                .is_ok();
            let finished = !sim.is_dead();
            sim.crash(mode.clone());
            match Store::<r1::Config>::open_read_only(DIR, sim_options(&vfs)) {
                Ok(store) => {
                    assert!(
                        !completed,
                        "call {point} ({mode:?}): migration acknowledged, yet undone"
                    );
                    assert_eq!(store.read(Clone::clone).unwrap(), release_1_state());
                    saw_old = true;
                }
                Err(Error::SchemaMismatch { .. }) => saw_migrated = true,
                Err(err) => panic!("call {point} ({mode:?}): release 1 open failed: {err}"),
            }
            let store = Store::open_migrating(DIR, sim_options(&vfs), &to_r2)
                .unwrap_or_else(|err| panic!("call {point} ({mode:?}): migration failed: {err}"));
            assert_eq!(
                store.read(Clone::clone).unwrap(),
                migrated,
                "call {point} ({mode:?})"
            );
            let snapshots = store.list_snapshots().unwrap();
            assert!(
                snapshots
                    .iter()
                    .any(|s| s.name.starts_with("pre-migration-") && s.damage.is_none()),
                "call {point} ({mode:?}): {snapshots:?}"
            );
            store.close().unwrap();
            if finished {
                break;
            }
            point += 1;
            assert!(point < 500, "the migration never finished");
        }
        assert!(
            saw_old && saw_migrated,
            "{mode:?}: the sweep covered both outcomes"
        );
    }
}

/// Release 1 of a config-style state on the evolvable codec.
mod e1 {
    use super::*;
    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Config {
        pub listen: String,
        pub workers: u16,
        pub legacy_flag: bool,
    }
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub enum Command {
        SetListen(String),
        SetWorkers(u16),
        SetLegacyFlag(bool),
    }
    impl StateMachine for Config {
        type Command = Command;
        type Output = ();
        const SCHEMA: Option<SchemaName> = Some(SchemaName::new("config", 1));
        const CODEC: Codec = Codec::Evolvable;
        fn apply(&mut self, command: &Command) {
            match command {
                Command::SetListen(listen) => self.listen = listen.clone(),
                Command::SetWorkers(workers) => self.workers = *workers,
                Command::SetLegacyFlag(on) => self.legacy_flag = *on,
            }
        }
    }
}

/// Release 2, evolvable: a `#[serde(default)]` field added, a variant inserted before
/// `SetWorkers`, the `legacy_flag` field removed, and its command kept (old records of
/// it still replay; a release may drop a variant only once no record of it is left).
mod e2 {
    use super::*;
    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Config {
        pub listen: String,
        #[serde(default)]
        pub timeout_secs: u16,
        pub workers: u16,
    }
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub enum Command {
        SetListen(String),
        SetTimeoutSecs(u16),
        SetWorkers(u16),
        SetLegacyFlag(bool),
    }
    impl StateMachine for Config {
        type Command = Command;
        type Output = ();
        const SCHEMA: Option<SchemaName> = Some(SchemaName::new("config", 2));
        const CODEC: Codec = Codec::Evolvable;
        fn apply(&mut self, command: &Command) {
            match command {
                Command::SetListen(listen) => self.listen = listen.clone(),
                Command::SetTimeoutSecs(secs) => self.timeout_secs = *secs,
                Command::SetWorkers(workers) => self.workers = *workers,
                Command::SetLegacyFlag(_) => {}
            }
        }
    }
}

/// Release 2 without the `SetLegacyFlag` variant, while the log still holds one.
mod e2_dropped_variant {
    use super::*;
    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Config {
        pub listen: String,
        #[serde(default)]
        pub timeout_secs: u16,
        pub workers: u16,
    }
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub enum Command {
        SetListen(String),
        SetTimeoutSecs(u16),
        SetWorkers(u16),
    }
    impl StateMachine for Config {
        type Command = Command;
        type Output = ();
        const SCHEMA: Option<SchemaName> = Some(SchemaName::new("config", 2));
        const CODEC: Codec = Codec::Evolvable;
        fn apply(&mut self, _command: &Command) {}
    }
}

use walstate::state::{Codec, SchemaName};

fn evolvable_release_1_store(dir: &Path, checkpoint: bool) {
    let store = Store::<e1::Config>::open(dir, Options::default()).unwrap();
    store
        .apply(e1::Command::SetListen("0.0.0.0:8080".into()))
        .unwrap();
    store.apply(e1::Command::SetLegacyFlag(true)).unwrap();
    if checkpoint {
        store.checkpoint().unwrap();
    }
    store.apply(e1::Command::SetWorkers(8)).unwrap();
    store.close().unwrap();
}

#[test]
fn an_evolvable_store_opens_with_an_added_field_an_inserted_variant_and_a_removed_field() {
    for checkpoint in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        evolvable_release_1_store(tmp.path(), checkpoint);
        let store = Store::<e2::Config>::open(tmp.path(), Options::default()).unwrap();
        assert_eq!(
            store.read(Clone::clone).unwrap(),
            e2::Config {
                listen: "0.0.0.0:8080".into(),
                timeout_secs: 0,
                workers: 8,
            },
            "checkpoint: {checkpoint}"
        );
        store.apply(e2::Command::SetTimeoutSecs(5)).unwrap();
        store.checkpoint().unwrap();
        store.close().unwrap();
        let store = Store::<e2::Config>::open(tmp.path(), Options::default()).unwrap();
        assert_eq!(store.read(|c| (c.timeout_secs, c.workers)).unwrap(), (5, 8));
        let schemas = store.recovery_report().schemas;
        assert!(
            schemas.contains(&Schema::of::<e2::Config>().unwrap().id()),
            "{schemas:?}"
        );
        store.close().unwrap();
        // An older release is refused: it would drop what it does not know of.
        let (_, changes, _) = mismatch(Store::<e1::Config>::open(tmp.path(), Options::default()));
        assert!(
            changes
                .join("\n")
                .contains("version is 2 in the store, 1 here"),
            "{changes:?}"
        );
    }
}

#[test]
fn an_evolvable_store_refuses_a_release_without_a_variant_its_log_still_holds() {
    let tmp = tempfile::tempdir().unwrap();
    evolvable_release_1_store(tmp.path(), false);
    let (path, changes, _) = mismatch(Store::<e2_dropped_variant::Config>::open(
        tmp.path(),
        Options::default(),
    ));
    assert!(path.ends_with(".seg"), "{path}");
    let all = changes.join("\n");
    assert!(
        all.contains("LSN 2") && all.contains("SetLegacyFlag"),
        "{all}"
    );
}

#[test]
fn a_compact_store_is_not_opened_by_an_evolvable_type_without_a_migration() {
    let tmp = tempfile::tempdir().unwrap();
    release_1_store(tmp.path(), false);
    let (_, changes, _) = mismatch(Store::<e2::Config>::open(tmp.path(), Options::default()));
    assert!(changes.join("\n").contains("codec"), "{changes:?}");
}

/// A state whose shape serde-reflection cannot trace (an untagged enum) and that
/// declares no schema.
mod untraceable {
    use super::*;
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct State {
        pub last: Option<u64>,
    }
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum Command {
        Number(u64),
        Text(String),
    }
    impl StateMachine for State {
        type Command = Command;
        type Output = ();
        const CODEC: Codec = Codec::Evolvable;
        fn apply(&mut self, command: &Command) {
            if let Command::Number(n) = command {
                self.last = Some(*n);
            }
        }
    }
}

/// The same types with a declared schema.
mod declared {
    use super::*;
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct State(pub untraceable::State);
    impl StateMachine for State {
        type Command = untraceable::Command;
        type Output = ();
        const SCHEMA: Option<SchemaName> = Some(SchemaName::new("numbers", 1));
        const CODEC: Codec = Codec::Evolvable;
        fn apply(&mut self, command: &untraceable::Command) {
            self.0.apply(command)
        }
    }
}

#[test]
fn types_that_cannot_be_traced_must_declare_a_schema_and_then_work() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Store::<untraceable::State>::open(tmp.path(), Options::default()).unwrap_err();
    assert!(matches!(err, Error::SchemaUntraceable { .. }), "{err}");
    assert!(err.to_string().contains("const SCHEMA"), "{err}");
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "nothing was written"
    );
    let store = Store::<declared::State>::open(tmp.path(), Options::default()).unwrap();
    store.apply(untraceable::Command::Number(4)).unwrap();
    store.close().unwrap();
    let store = Store::<declared::State>::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(store.read(|s| s.0.last).unwrap(), Some(4));
}

/// A release-1 store migrated by release 2, which then changed it and checkpointed.
fn migrated_and_changed_by_release_2(dir: &Path, vfs: Option<&VfsRef>) {
    let options = || match vfs {
        Some(vfs) => sim_options(vfs),
        None => Options::default(),
    };
    let store = Store::<r1::Config>::open(dir, options()).unwrap();
    store
        .apply(r1::Command::SetListen("0.0.0.0:8080".into()))
        .unwrap();
    store.apply(r1::Command::SetWorkers(8)).unwrap();
    store.close().unwrap();
    let to_r2 = Migrations::<r2::Config>::new().step::<r1::Config, r2::Config>();
    let store = Store::open_migrating(dir, options(), &to_r2).unwrap();
    store.apply(r2::Command::SetTimeoutSecs(5)).unwrap();
    store.apply(r2::Command::SetWorkers(2)).unwrap();
    store.checkpoint().unwrap();
    store.close().unwrap();
}

fn r2_changed() -> r2::Config {
    r2::Config {
        listen: "0.0.0.0:8080".into(),
        timeout_secs: 5,
        workers: 2,
    }
}

fn pre_migration_snapshot() -> String {
    format!(
        "pre-migration-{}-2",
        Schema::of::<r1::Config>().unwrap().id()
    )
}

#[test]
fn the_old_release_rolls_a_migrated_store_back_to_the_pre_migration_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    migrated_and_changed_by_release_2(tmp.path(), None);
    mismatch(Store::<r1::Config>::open(tmp.path(), Options::default()));
    let snapshot = pre_migration_snapshot();
    let store =
        Store::<r1::Config>::open_rolling_back(tmp.path(), Options::default(), &snapshot).unwrap();
    assert_eq!(store.read(Clone::clone).unwrap(), release_1_state());
    let report = store.recovery_report().rollback.unwrap();
    assert_eq!(report.snapshot, snapshot);
    assert!(
        report.previous_schema.contains("state Config"),
        "{report:?}"
    );
    // The replaced state is kept whole, in release 2's schema.
    let kept = tmp
        .path()
        .join("snapshots")
        .join(format!("{}.ckpt", report.previous_state_snapshot));
    let bytes = std::fs::read(kept).unwrap();
    let (header, state) = walstate::format::decode_checkpoint(&bytes).unwrap();
    assert_eq!(
        header.schema_id,
        Schema::of::<r2::Config>().unwrap().id().get()
    );
    assert_eq!(
        walstate::codec::decode::<r2::Config>(state).unwrap(),
        r2_changed()
    );
    // Release 1 works on it again, and release 2 migrates it again.
    store.apply(r1::Command::SetWorkers(9)).unwrap();
    store.close().unwrap();
    let store = Store::<r1::Config>::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(store.read(|c| c.workers).unwrap(), 9);
    store.close().unwrap();
    let to_r2 = Migrations::<r2::Config>::new().step::<r1::Config, r2::Config>();
    let store = Store::open_migrating(tmp.path(), Options::default(), &to_r2).unwrap();
    assert_eq!(
        store.read(|c| (c.workers, c.timeout_secs)).unwrap(),
        (9, 30)
    );
}

#[test]
fn a_rollback_is_refused_while_records_follow_the_newest_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    migrated_and_changed_by_release_2(tmp.path(), None);
    let store = Store::<r2::Config>::open(tmp.path(), Options::default()).unwrap();
    store.apply(r2::Command::SetWorkers(3)).unwrap();
    store.close().unwrap();
    let snapshot = pre_migration_snapshot();
    let err = Store::<r1::Config>::open_rolling_back(tmp.path(), Options::default(), &snapshot)
        .unwrap_err();
    assert!(err.to_string().contains("write a checkpoint"), "{err}");
    // Nothing changed: release 2 still has its state.
    let store = Store::<r2::Config>::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(store.read(|c| c.workers).unwrap(), 3);
}

/// A crash after each mutating I/O call of a rollback: the store afterwards is release
/// 2's (which opens it unchanged) or release 1's rolled-back one, never anything else,
/// and a retried rollback always ends rolled back with the replaced state kept.
#[test]
fn a_crash_at_any_io_of_a_rollback_leaves_the_store_as_it_was_or_rolled_back() {
    for mode in [
        CrashMode::DropUnsynced,
        CrashMode::KeepAll,
        CrashMode::Random(3),
    ] {
        let (mut saw_before, mut saw_after) = (false, false);
        let mut point = 0u64;
        loop {
            let (sim, vfs) = sim(point);
            migrated_and_changed_by_release_2(Path::new(DIR), Some(&vfs));
            let snapshot = pre_migration_snapshot();
            sim.crash_at_mutating_call(Some(sim.mutating_calls() + point));
            let completed =
                Store::<r1::Config>::open_rolling_back(DIR, sim_options(&vfs), &snapshot)
                    .and_then(|store| store.close())
                    .is_ok();
            let finished = !sim.is_dead();
            sim.crash(mode.clone());
            match Store::<r2::Config>::open_read_only(DIR, sim_options(&vfs)) {
                Ok(store) => {
                    assert!(
                        !completed,
                        "call {point} ({mode:?}): rollback acknowledged, yet undone"
                    );
                    assert_eq!(store.read(Clone::clone).unwrap(), r2_changed());
                    saw_before = true;
                }
                Err(Error::SchemaMismatch { .. }) => saw_after = true,
                Err(err) => panic!("call {point} ({mode:?}): release 2 open failed: {err}"),
            }
            let store = Store::<r1::Config>::open_rolling_back(DIR, sim_options(&vfs), &snapshot)
                .unwrap_or_else(|err| panic!("call {point} ({mode:?}): rollback failed: {err}"));
            assert_eq!(
                store.read(Clone::clone).unwrap(),
                release_1_state(),
                "call {point} ({mode:?})"
            );
            assert!(
                store
                    .list_snapshots()
                    .unwrap()
                    .iter()
                    .any(|s| s.name.starts_with("pre-rollback-")),
                "call {point} ({mode:?})"
            );
            store.close().unwrap();
            if finished {
                break;
            }
            point += 1;
            assert!(point < 500, "the rollback never finished");
        }
        assert!(
            saw_before && saw_after,
            "{mode:?}: the sweep covered both outcomes"
        );
    }
}
