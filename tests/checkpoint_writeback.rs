//! Checkpoint writeback pacing on the simulated file system: the hints go to the
//! checkpoint's temp file only, never replace its fsync + rename + directory fsync, and a
//! failed hint fails the checkpoint cleanly without poisoning the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use walstate::io::sim::{CrashMode, Fault, FaultKind, OpClass, TraceEntry};
use walstate::io::{SimFs, VfsRef};
use walstate::{Error, KvCommand, KvStore, Options};

const DIR: &str = "/srv/state";
/// Puts of [`VALUE_BYTES`] each: a state of about 50 MiB, three writeback bursts of
/// 16 MiB (each started, and all but the last waited for) and a tail.
const PUTS: usize = 800;
const VALUE_BYTES: usize = 64 << 10;

fn options(vfs: &VfsRef) -> Options {
    Options::default()
        .vfs(vfs.clone())
        .checkpoint_after_bytes(None)
        // These tests are about writeback hints, not pacing (store_real_fs covers it).
        .checkpoint_write_rate(None)
}

fn key(i: usize) -> Vec<u8> {
    format!("key{i:04}").into_bytes()
}

/// A store holding [`PUTS`] large values.
fn filled_store(seed: u64) -> (Arc<SimFs>, VfsRef, KvStore) {
    let sim = SimFs::new(seed);
    let vfs: VfsRef = sim.clone();
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    let commands: Vec<KvCommand> = (0..PUTS)
        .map(|i| KvCommand::put(key(i), vec![i as u8; VALUE_BYTES]))
        .collect();
    for batch in commands.chunks(10) {
        store.apply_batch(batch.to_vec()).unwrap();
    }
    (sim, vfs, store)
}

fn is_hint(entry: &TraceEntry) -> bool {
    matches!(entry.op, "start_writeback" | "wait_writeback")
}

fn temp_of(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap().to_string_lossy();
    path.with_file_name(format!("{name}.tmp"))
}

fn leftovers(sim: &SimFs) -> Vec<PathBuf> {
    sim.list_files()
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".tmp") || name.starts_with("checkpoint-")
        })
        .collect()
}

fn assert_all_values(store: &KvStore, context: &str) {
    for i in 0..PUTS {
        assert_eq!(
            store.get(&key(i)).unwrap(),
            Some(vec![i as u8; VALUE_BYTES]),
            "{context}: key {i}"
        );
    }
}

#[test]
fn writeback_hints_go_to_the_checkpoint_temp_file_which_is_still_fsynced_renamed_and_dir_fsynced() {
    let (sim, vfs, store) = filled_store(1);
    sim.set_trace(true);
    store.put("small", "commit").unwrap();
    let commit_trace = sim.take_trace();
    assert!(
        !commit_trace.iter().any(is_hint),
        "commits never issue writeback hints: {commit_trace:?}"
    );

    let info = store.checkpoint().unwrap();
    let trace = sim.take_trace();
    let temp = temp_of(&info.path);
    let hints: Vec<&TraceEntry> = trace.iter().filter(|e| is_hint(e)).collect();
    assert!(
        hints.iter().all(|e| e.path == temp),
        "hints only on {temp:?}: {hints:?}"
    );
    // Each 16 MiB burst: wait for the previous one's writeback, start its own.
    let ops: Vec<&str> = hints.iter().map(|e| e.op).collect();
    assert_eq!(
        ops,
        [
            "start_writeback",
            "wait_writeback",
            "start_writeback",
            "wait_writeback",
            "start_writeback"
        ]
    );

    // The hints are no durability point: the usual atomic replacement follows them.
    let last_hint = trace.iter().rposition(is_hint).unwrap();
    let fsync = trace
        .iter()
        .position(|e| e.op == "sync_all" && e.path == temp)
        .expect("the temp file is fsynced");
    let rename = trace
        .iter()
        .position(|e| e.op == "rename" && e.path == info.path)
        .expect("the temp file is renamed into place");
    let dir_fsync = trace
        .iter()
        .skip(rename)
        .position(|e| e.op == "sync_dir" && e.path == Path::new(DIR))
        .map(|n| n + rename)
        .expect("the directory is fsynced after the rename");
    assert!(
        last_hint < fsync && fsync < rename && rename < dir_fsync,
        "{trace:?}"
    );

    drop(store);
    sim.crash(CrashMode::DropUnsynced);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    assert_eq!(
        store.recovery_report().checkpoint.map(|c| c.lsn),
        Some(info.lsn)
    );
    assert_all_values(&store, "after the power loss");
}

/// Fails hint `nth` of a checkpoint. Returns false when the checkpoint issued fewer
/// hints (and succeeded); otherwise checks the failure was clean.
fn checkpoint_with_failed_hint(kind: FaultKind, nth: u64) -> bool {
    let context = format!("{kind:?} at hint #{nth}");
    let (sim, vfs, store) = filled_store(nth + 10);
    sim.inject(Fault {
        op: OpClass::Writeback,
        nth,
        kind,
        persistent: false,
    });
    let err = match store.checkpoint() {
        Ok(_) => return false,
        Err(err) => err,
    };
    assert!(!err.is_poisoned(), "{context}: {err}");
    match kind {
        FaultKind::Enospc => assert!(matches!(err, Error::DiskFull { .. }), "{context}: {err}"),
        _ => assert!(err.to_string().contains("writeback"), "{context}: {err}"),
    }
    assert_eq!(leftovers(&sim), Vec::<PathBuf>::new(), "{context}");

    store.put("after", "failure").unwrap();
    let info = store.checkpoint().unwrap();
    assert_eq!(leftovers(&sim), vec![info.path.clone()], "{context}");
    drop(store);
    sim.crash(CrashMode::DropUnsynced);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    assert_all_values(&store, &context);
    assert_eq!(
        store.get(b"after").unwrap(),
        Some(b"failure".to_vec()),
        "{context}"
    );
    true
}

#[test]
fn a_failed_writeback_hint_fails_the_checkpoint_cleanly_and_the_store_stays_usable() {
    let mut nth = 0;
    while checkpoint_with_failed_hint(FaultKind::Eio, nth) {
        nth += 1;
        assert!(nth < 100, "the checkpoint never ran out of hints");
    }
    // Three bursts started, the first two waited for.
    assert_eq!(nth, 5, "hints issued");
    assert!(checkpoint_with_failed_hint(FaultKind::Enospc, 0));
    assert!(checkpoint_with_failed_hint(FaultKind::Enospc, nth - 1));
}

#[test]
fn a_background_checkpoint_whose_hint_fails_reports_it_and_the_next_one_succeeds() {
    let (sim, vfs, store) = filled_store(3);
    drop(store);
    sim.inject(Fault {
        op: OpClass::Writeback,
        nth: 2,
        kind: FaultKind::Eio,
        persistent: false,
    });
    // The replayed backlog is over the threshold: a checkpoint starts at open.
    let store = KvStore::open(DIR, options(&vfs).checkpoint_after_bytes(Some(1 << 20))).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while store.last_checkpoint_error().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the failed background checkpoint was not reported"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let error = store.last_checkpoint_error().unwrap();
    assert!(error.contains("writeback"), "{error}");
    assert_all_values(&store, "after the failed background checkpoint");
    store.put("still", "works").unwrap();
    let info = store.checkpoint().unwrap();
    // Dropping joins the checkpointer, which may have started another checkpoint.
    drop(store);
    let files = leftovers(&sim);
    assert!(files.contains(&info.path), "{files:?}");
    assert!(
        !files.iter().any(|p| p.to_string_lossy().ends_with(".tmp")),
        "{files:?}"
    );
    sim.crash(CrashMode::DropUnsynced);
    let store = KvStore::open(DIR, options(&vfs)).unwrap();
    assert_all_values(&store, "after a power loss");
    assert_eq!(store.get(b"still").unwrap(), Some(b"works".to_vec()));
}
