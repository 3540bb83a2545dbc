//! A full disk, on the simulated file system: each operation's error says what was not
//! done (a checkpoint, a snapshot, a salvage, a store creation; not "the commit") and
//! that the store is unchanged, and a store creation that runs out of space leaves
//! nothing a read command would take for a store.

use std::path::Path;
use std::sync::Arc;

use walstate::io::{OpenMode, SimFs, Vfs, VfsRef};
use walstate::{DiskFullOp, Error, KvStore, Options};

const DIR: &str = "/srv/state";

fn sim() -> (Arc<SimFs>, VfsRef) {
    let sim = SimFs::new(7);
    let vfs: VfsRef = sim.clone();
    (sim, vfs)
}

/// No preallocation (a preallocated segment would hold the writes in space it
/// reserved), small segments, no background checkpoints.
fn options(vfs: &VfsRef) -> Options {
    Options::default()
        .vfs(vfs.clone())
        .checkpoint_after_bytes(None)
        .segment_size_bytes(4096)
        .preallocate_segments(false)
}

fn disk_full_op(err: &Error) -> Option<DiskFullOp> {
    match err {
        Error::DiskFull { op, .. } => Some(*op),
        _ => None,
    }
}

fn store_with_keys(vfs: &VfsRef, count: u32) -> KvStore {
    let store = KvStore::open(DIR, options(vfs)).unwrap();
    for n in 0..count {
        store
            .put(
                format!("key{n:04}"),
                format!("value {n} {}", "v".repeat(60)),
            )
            .unwrap();
    }
    store
}

#[test]
fn a_store_creation_that_runs_out_of_space_leaves_no_store_behind() {
    let (sim, vfs) = sim();
    sim.create_dir_all(Path::new("/srv")).unwrap();
    let base = sim.used_bytes();
    let mut failures = 0;
    // Every amount of free space from none to enough: the creation fails at each of its
    // writes in turn (lock file, identity, schema file, first segment).
    for room in (0..2048).step_by(8) {
        sim.set_space_limit(Some(base + room));
        match KvStore::open(DIR, options(&vfs)) {
            Ok(store) => {
                store.close().unwrap();
                break;
            }
            Err(err) => {
                failures += 1;
                assert!(err.is_disk_full(), "room {room}: {err}");
                if let Some(op) = disk_full_op(&err) {
                    assert_eq!(op, DiskFullOp::CreateStore, "room {room}: {err}");
                    assert!(
                        err.to_string().contains("the store was not created"),
                        "room {room}: {err}"
                    );
                }
                let names = sim.read_dir(Path::new(DIR)).unwrap_or_default();
                assert!(
                    names
                        .iter()
                        .all(|name| walstate::recovery::is_creation_leftover(name)),
                    "room {room}: the failed creation left {names:?}"
                );
                // Read commands see no store (before the fix: an empty store, so `get`
                // answered "absent").
                let read = KvStore::open_read_only(DIR, options(&vfs).create_if_missing(false));
                assert!(
                    matches!(read, Err(Error::NotAStore { .. })),
                    "room {room}: {read:?}"
                );
                assert!(
                    walstate::verify::verify(vfs.as_ref(), Path::new(DIR)).is_err(),
                    "room {room}: verify calls it a store"
                );
            }
        }
    }
    assert!(
        failures > 3,
        "the creation failed at too few points: {failures}"
    );
    sim.set_space_limit(None);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    store.put("k", "v").unwrap();
    store.close().unwrap();
    let store = KvStore::open_read_only(DIR, options(&vfs)).unwrap();
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn a_checkpoint_on_a_full_disk_says_the_checkpoint_was_not_written() {
    let (sim, vfs) = sim();
    let store = store_with_keys(&vfs, 40);
    sim.set_space_limit(Some(sim.used_bytes() + 16));
    let err = store.checkpoint().unwrap_err();
    assert_eq!(disk_full_op(&err), Some(DiskFullOp::Checkpoint), "{err}");
    let text = err.to_string();
    assert!(text.contains("the checkpoint was not written"), "{text}");
    assert!(text.contains("the store is unchanged"), "{text}");
    assert!(!text.contains("commit was not made"), "{text}");
    sim.set_space_limit(None);
    store.checkpoint().unwrap();
    assert_eq!(store.len().unwrap(), 40);
}

#[test]
fn a_snapshot_on_a_full_disk_says_the_snapshot_was_not_created() {
    let (sim, vfs) = sim();
    let store = store_with_keys(&vfs, 40);
    sim.set_space_limit(Some(sim.used_bytes() + 16));
    let err = store.snapshot("before").unwrap_err();
    assert_eq!(disk_full_op(&err), Some(DiskFullOp::Snapshot), "{err}");
    let text = err.to_string();
    assert!(text.contains("the snapshot was not created"), "{text}");
    assert!(text.contains("the store is unchanged"), "{text}");
    assert!(!text.contains("commit"), "{text}");
    assert!(store.list_snapshots().unwrap().is_empty());
    sim.set_space_limit(None);
    store.snapshot("before").unwrap();
}

#[test]
fn a_salvage_on_a_full_disk_says_nothing_was_salvaged_and_changes_nothing() {
    let (sim, vfs) = sim();
    store_with_keys(&vfs, 200).close().unwrap();
    let mut segments: Vec<String> = sim
        .read_dir(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|name| walstate::format::parse_segment_file_name(name).is_some())
        .collect();
    segments.sort();
    assert!(segments.len() > 2, "{segments:?}");
    // A flipped byte inside the first segment: corruption that needs salvage.
    let first = Path::new(DIR).join(&segments[0]);
    let file = sim.open(&first, OpenMode::ReadWrite).unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, 300).unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], 300).unwrap();
    file.sync_all().unwrap();
    drop(file);
    let files_before = sim.list_files();
    let lens_before: Vec<u64> = files_before
        .iter()
        .map(|path| sim.open(path, OpenMode::Read).unwrap().len().unwrap())
        .collect();

    sim.set_space_limit(Some(sim.used_bytes()));
    let err = KvStore::open(DIR, options(&vfs).salvage(true)).unwrap_err();
    assert_eq!(disk_full_op(&err), Some(DiskFullOp::Salvage), "{err}");
    let text = err.to_string();
    assert!(text.contains("nothing was salvaged"), "{text}");
    assert!(text.contains("the store is unchanged"), "{text}");
    assert!(!text.contains("commit"), "{text}");
    let files_after: Vec<_> = sim
        .list_files()
        .into_iter()
        .filter(|path| !path.ends_with("LOCK"))
        .collect();
    let expected: Vec<_> = files_before
        .iter()
        .filter(|path| !path.ends_with("LOCK"))
        .cloned()
        .collect();
    assert_eq!(files_after, expected, "salvage moved or made files");
    for (path, len) in files_before.iter().zip(&lens_before) {
        if !path.ends_with("LOCK") {
            let now = sim.open(path, OpenMode::Read).unwrap().len().unwrap();
            assert_eq!(now, *len, "{} was changed", path.display());
        }
    }

    sim.set_space_limit(None);
    KvStore::open(DIR, options(&vfs).salvage(true))
        .unwrap()
        .close()
        .unwrap();
}

#[test]
fn a_commit_on_a_full_disk_still_says_the_commit_was_not_made() {
    let (sim, vfs) = sim();
    let store = store_with_keys(&vfs, 1);
    sim.set_space_limit(Some(sim.used_bytes() + 10));
    let err = store.put("big", "x".repeat(500)).unwrap_err();
    assert_eq!(disk_full_op(&err), Some(DiskFullOp::Commit), "{err}");
    assert!(err.to_string().contains("the commit was not made"), "{err}");
}
