//! Every file names the store it belongs to (`wal-format.md` section 3.1): a segment,
//! checkpoint, restore file or snapshot copied in from another store — even under the
//! same file name — is refused naming both ids, never mixed into this store's history.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;
use walstate::format::{self, Identity};
use walstate::journal::DefectKind;
use walstate::verify::{self, Verdict};
use walstate::{KvStore, Options};

fn store_with(dir: &Path, prefix: &str, puts: usize, checkpoint: bool) {
    let store = KvStore::open(dir, Options::default()).unwrap();
    for i in 0..puts {
        store.put(format!("{prefix}{i}"), "v").unwrap();
    }
    if checkpoint {
        store.checkpoint().unwrap();
        store.put(format!("{prefix}-after"), "v").unwrap();
    }
    store.close().unwrap();
}

fn id_of(dir: &Path) -> String {
    let bytes = std::fs::read(dir.join(format::IDENTITY_FILE_NAME)).unwrap();
    Identity::decode(&bytes).unwrap().store_id.to_string()
}

/// The case: a segment of store B copied over store A's segment of the same
/// name. Version 1 accepted it as clean and mixed the two stores' records.
#[test]
fn a_segment_from_another_store_is_refused_naming_both_ids() {
    let tmp = TempDir::new().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    store_with(&a, "a", 5, false);
    store_with(&b, "b", 5, false);
    let name = format::segment_file_name(1);
    std::fs::copy(b.join(&name), a.join(&name)).unwrap();

    let err = KvStore::open(&a, Options::default()).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&id_of(&a)) && text.contains(&id_of(&b)),
        "{text}"
    );
    assert!(text.contains(&name), "{text}");
    let report = verify::verify(walstate::io::real_fs().as_ref(), &a).unwrap();
    assert_eq!(report.verdict, Verdict::NeedsRepair);
    assert!(
        KvStore::open_read_only(&a, Options::default()).is_err(),
        "read-only open refuses it too"
    );

    // The CLI says the same, exit 2.
    let bin = env!("CARGO_BIN_EXE_walstate");
    let out = Command::new(bin).arg("verify").arg(&a).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("another store"));

    // Salvage moves it to quarantine/ and the store continues without b's records.
    let store = KvStore::open(&a, Options::default().salvage(true)).unwrap();
    let salvaged = &store.recovery_report().salvaged;
    assert_eq!(salvaged.len(), 1);
    assert_eq!(salvaged[0].defect.kind, DefectKind::ForeignFile);
    assert!(store.get(b"b0").unwrap().is_none());
    assert!(a.join("quarantine").join(&name).exists());
}

#[test]
fn a_checkpoint_from_another_store_is_skipped_and_reported_with_both_ids() {
    let tmp = TempDir::new().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    store_with(&a, "a", 5, false);
    store_with(&b, "b", 5, true);
    // b's checkpoint at LSN 5 dropped into a, whose journal holds LSNs 1..5 itself.
    let name = format::checkpoint_file_name(5);
    std::fs::copy(b.join(&name), a.join(&name)).unwrap();

    let store = KvStore::open_read_only(&a, Options::default()).unwrap();
    assert_eq!(store.get(b"a4").unwrap().as_deref(), Some(&b"v"[..]));
    assert!(
        store.get(b"b0").unwrap().is_none(),
        "b's state was not used"
    );
    let skipped = &store.recovery_report().checkpoints_skipped;
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].reason.contains(&id_of(&a)) && skipped[0].reason.contains(&id_of(&b)),
        "{}",
        skipped[0].reason
    );
    let report = verify::verify(walstate::io::real_fs().as_ref(), &a).unwrap();
    assert_ne!(report.verdict, Verdict::Clean, "{:?}", report.problems);
}

#[test]
fn a_snapshot_from_another_store_cannot_be_restored() {
    let tmp = TempDir::new().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    store_with(&a, "a", 3, false);
    let store = KvStore::open(&b, Options::default()).unwrap();
    store.put("b0", "v").unwrap();
    store.snapshot("nightly").unwrap();
    store.close().unwrap();
    std::fs::create_dir_all(a.join("snapshots")).unwrap();
    std::fs::copy(
        b.join("snapshots/nightly.ckpt"),
        a.join("snapshots/nightly.ckpt"),
    )
    .unwrap();
    let report = verify::verify(walstate::io::real_fs().as_ref(), &a).unwrap();
    assert_ne!(
        report.verdict,
        Verdict::Clean,
        "verify names the foreign snapshot"
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("nightly") && p.contains(&id_of(&b))),
        "{:?}",
        report.problems
    );
    let store = KvStore::open(&a, Options::default()).unwrap();
    let listed = store.list_snapshots().unwrap();
    assert!(
        listed[0]
            .damage
            .as_deref()
            .is_some_and(|d| d.contains("another store"))
    );
    let err = store.restore_snapshot("nightly").unwrap_err();
    assert!(err.to_string().contains(&id_of(&b)), "{err}");
    assert_eq!(store.get(b"a2").unwrap().as_deref(), Some(&b"v"[..]));
    assert!(store.get(b"b0").unwrap().is_none());
}

#[test]
fn a_store_whose_identity_file_is_gone_is_refused() {
    let tmp = TempDir::new().unwrap();
    let a = tmp.path().join("a");
    store_with(&a, "a", 3, false);
    std::fs::remove_file(a.join(format::IDENTITY_FILE_NAME)).unwrap();
    for err in [
        KvStore::open(&a, Options::default()).unwrap_err(),
        KvStore::open_read_only(&a, Options::default()).unwrap_err(),
    ] {
        assert!(err.is_corruption(), "{err}");
        assert!(err.to_string().contains("IDENTITY"), "{err}");
    }
    assert!(
        !a.join(format::IDENTITY_FILE_NAME).exists(),
        "open does not invent a new identity for files that name one"
    );
}
