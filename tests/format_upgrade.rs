//! Version-1 stores (written by the release before format version 2) still open, are
//! reported as such, and are upgraded in place by `walstate upgrade` — crash-safe at
//! every step. `tests/fixtures/v1-store` was written by that release's CLI: 25 puts, a
//! checkpoint, a snapshot, a delete, a restore and 5 more puts; its expected state is
//! `tests/fixtures/v1-store.export.json`, exported by the same release.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use walstate::format::{self, Identity};
use walstate::io::sim::CrashMode;
use walstate::io::{SimFs, VfsRef, real_fs};
use walstate::{KvStore, Options};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1-store");
const DIR: &str = "/store";

type State = BTreeMap<Vec<u8>, Vec<u8>>;
type Image = BTreeMap<PathBuf, Vec<u8>>;

fn expected_state() -> State {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/v1-store.export.json"
    ))
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["lsn"], 28);
    doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().as_bytes().to_vec(),
                e["value"].as_str().unwrap().as_bytes().to_vec(),
            )
        })
        .collect()
}

fn state(store: &KvStore) -> State {
    store.scan_prefix(b"").unwrap().into_iter().collect()
}

/// The fixture's files, keyed by their path under `root`.
fn fixture_image(root: &Path) -> Image {
    let mut image = Image::new();
    for sub in ["", "snapshots"] {
        let dir = Path::new(FIXTURE).join(sub);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                image.insert(
                    root.join(sub).join(path.file_name().unwrap()),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    image
}

fn copy_fixture() -> tempfile::TempDir {
    let tmp = tempfile::TempDir::new().unwrap();
    let root = tmp.path().join("store");
    for (path, bytes) in fixture_image(&root) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    tmp
}

fn versions(dir: &Path) -> Vec<(String, u32)> {
    let mut found = Vec::new();
    for sub in ["", "snapshots"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_file() && (name.ends_with(".seg") || name.ends_with(".ckpt")) {
                let bytes = std::fs::read(&path).unwrap();
                found.push((name, u32::from_le_bytes(bytes[8..12].try_into().unwrap())));
            }
        }
    }
    found.sort();
    found
}

fn identity(dir: &Path) -> Option<Identity> {
    std::fs::read(dir.join(format::IDENTITY_FILE_NAME))
        .ok()
        .map(|bytes| Identity::decode(&bytes).unwrap())
}

#[test]
fn a_version_1_store_opens_read_only_unchanged_and_reported() {
    let tmp = copy_fixture();
    let dir = tmp.path().join("store");
    let before = fixture_image(&dir);
    let store = KvStore::open_read_only(&dir, Options::default()).unwrap();
    assert_eq!(state(&store), expected_state());
    let report = store.recovery_report();
    assert!(report.read_format_v1, "{report:?}");
    assert_eq!(report.store_id, None);
    assert_eq!(report.last_lsn, 28);
    drop(store);
    assert_eq!(
        fixture_image(&dir),
        before,
        "a read-only open changes nothing"
    );
}

#[test]
fn a_writer_opens_a_version_1_store_gives_it_an_identity_and_appends_in_version_2() {
    let tmp = copy_fixture();
    let dir = tmp.path().join("store");
    let store = KvStore::open(&dir, Options::default()).unwrap();
    assert_eq!(state(&store), expected_state());
    assert!(store.recovery_report().read_format_v1);
    let id = identity(&dir).expect("identity written at the first writer open");
    assert!(id.legacy_v1());
    store.put("after", "upgrade").unwrap();
    store.close().unwrap();
    let found = versions(&dir);
    assert!(found.contains(&("wal-00000000000000000001.seg".into(), 1)));
    assert!(
        found.contains(&(
            "wal-00000000000000000002.seg".into(),
            walstate::format::FORMAT_VERSION
        )),
        "{found:?}"
    );
    let store = KvStore::open(&dir, Options::default()).unwrap();
    let mut expected = expected_state();
    expected.insert(b"after".to_vec(), b"upgrade".to_vec());
    assert_eq!(state(&store), expected);
    // The pre-restore snapshot of the v1 store still restores.
    store.restore_snapshot("pre-restore-22").unwrap();
    assert_eq!(
        store.get(b"key2").unwrap().as_deref(),
        Some(&b"changed"[..])
    );
}

#[test]
fn upgrade_rewrites_every_version_1_file_and_its_dry_run_says_exactly_which() {
    let tmp = copy_fixture();
    let dir = tmp.path().join("store");
    let vfs = real_fs();
    let dry = walstate::upgrade::upgrade(vfs.as_ref(), &dir, true).unwrap();
    assert!(dry.legacy_flag_cleared);
    assert_eq!(dry.rewritten.len(), 5, "{:?}", dry.rewritten);
    assert_eq!(identity(&dir), None, "a dry run writes nothing");
    let real = walstate::upgrade::upgrade(vfs.as_ref(), &dir, false).unwrap();
    assert_eq!(
        real.rewritten, dry.rewritten,
        "the dry run predicts the real run"
    );
    assert!(
        versions(&dir)
            .iter()
            .all(|(_, version)| *version == walstate::format::FORMAT_VERSION),
        "{:?}",
        versions(&dir)
    );
    let id = identity(&dir).unwrap();
    assert!(!id.legacy_v1());
    let store = KvStore::open(&dir, Options::default()).unwrap();
    assert_eq!(state(&store), expected_state());
    assert!(!store.recovery_report().read_format_v1);
    store.restore_snapshot("nightly").unwrap();
    drop(store);
    let again = walstate::upgrade::upgrade(vfs.as_ref(), &dir, false).unwrap();
    assert!(again.rewritten.is_empty() && !again.legacy_flag_cleared);

    // Once upgraded, a version-1 segment copied back in is a foreign file.
    std::fs::copy(
        Path::new(FIXTURE).join("wal-00000000000000000001.seg"),
        dir.join("wal-00000000000000000001.seg"),
    )
    .unwrap();
    let err = KvStore::open(&dir, Options::default()).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains("version-1"), "{err}");
}

#[test]
fn upgrade_survives_a_crash_at_every_io_call() {
    let root = PathBuf::from(DIR);
    let image = fixture_image(&root);
    let expected = expected_state();
    let mut point = 0;
    loop {
        let sim = SimFs::new(point);
        for (path, bytes) in &image {
            sim.write_durable(path, bytes);
        }
        let vfs: VfsRef = sim.clone();
        sim.crash_at_mutating_call(Some(sim.mutating_calls() + point));
        let finished = walstate::upgrade::upgrade(vfs.as_ref(), &root, false).is_ok();
        if finished && !sim.is_dead() {
            assert!(point > 10, "the upgrade makes I/O calls");
            break;
        }
        sim.crash(CrashMode::Random(point));
        let opts = || Options::default().vfs(vfs.clone()).create_if_missing(false);
        let store = KvStore::open(DIR, opts())
            .unwrap_or_else(|err| panic!("crash at call {point}: the store must open: {err}"));
        assert_eq!(state(&store), expected, "crash at call {point}");
        drop(store);
        walstate::upgrade::upgrade(vfs.as_ref(), &root, false)
            .unwrap_or_else(|err| panic!("crash at call {point}: the upgrade must finish: {err}"));
        let store = KvStore::open(DIR, opts()).unwrap();
        assert_eq!(state(&store), expected, "after finishing, crash at {point}");
        assert!(!store.recovery_report().read_format_v1, "crash at {point}");
        point += 1;
    }
}

#[test]
fn the_cli_upgrades_a_version_1_store() {
    let tmp = copy_fixture();
    let dir = tmp.path().join("store");
    let bin = env!("CARGO_BIN_EXE_walstate");
    let dry = Command::new(bin)
        .args(["upgrade", "--dry-run"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(dry.status.code(), Some(0));
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        text.contains("would rewrite wal-00000000000000000001.seg"),
        "{text}"
    );
    let run = Command::new(bin).arg("upgrade").arg(&dir).output().unwrap();
    assert_eq!(run.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&run.stdout).contains("upgraded"));
    let verify = Command::new(bin).arg("verify").arg(&dir).output().unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
