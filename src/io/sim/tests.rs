//! Tests of the simulator as a whole: they drive it through the `Vfs` trait and check
//! the images crashes leave, so they span every file of the module.
//! Compiled only under `#[cfg(test)]`, where `mod.rs` declares this module.

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::files::write_into;
use super::*;
use crate::io::{EntryKind, LockAttempt, OpenMode, Vfs, VfsFile};

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

/// A SimFs with a durable directory `/db`.
fn fs_with_db() -> Arc<SimFs> {
    let fs = SimFs::new(1);
    fs.create_dir_all(&p("/db")).unwrap();
    fs.sync_dir(&p("/")).unwrap();
    fs
}

/// Creates `/db/<name>` and makes its name durable.
fn durable_file(fs: &SimFs, name: &str) -> Box<dyn VfsFile> {
    let path = p("/db").join(name);
    let file = fs.open(&path, OpenMode::CreateNew).unwrap();
    fs.sync_dir(&p("/db")).unwrap();
    file
}

fn is_errno(err: &io::Error, errno: i32) -> bool {
    err.raw_os_error() == Some(errno)
}

fn is_crashed(err: &io::Error) -> bool {
    err.to_string() == "simulated crash"
}

#[test]
fn unsynced_write_lost_on_drop_unsynced() {
    let fs = fs_with_db();
    let file = durable_file(&fs, "f");
    file.write_all_at(b"hello", 0).unwrap();
    assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"hello");
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"");
}

#[test]
fn synced_write_kept() {
    let fs = fs_with_db();
    let file = durable_file(&fs, "f");
    file.write_all_at(b"hello", 0).unwrap();
    file.sync_data().unwrap();
    file.write_all_at(b"world", 5).unwrap();
    assert_eq!(fs.sync_calls(), 1);
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"hello");
    assert_eq!(fs.pending_units(), 0);
}

#[test]
fn set_len_and_allocate_are_pending_until_synced() {
    let fs = fs_with_db();
    let file = durable_file(&fs, "f");
    file.write_all_at(b"0123456789", 0).unwrap();
    file.sync_all().unwrap();
    file.set_len(4).unwrap();
    file.allocate(8).unwrap();
    file.allocate(2).unwrap(); // never shrinks, no op recorded
    assert_eq!(file.len().unwrap(), 8);
    assert_eq!(fs.pending_units(), 2);
    fs.crash(CrashMode::Fates(vec![UnitFate::Keep, UnitFate::Drop]));
    assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"0123");
}

#[test]
fn created_file_needs_sync_dir() {
    for (mode, survives) in [(CrashMode::DropUnsynced, false), (CrashMode::KeepAll, true)] {
        let fs = fs_with_db();
        let file = fs.open(&p("/db/new"), OpenMode::CreateNew).unwrap();
        file.write_all_at(b"data", 0).unwrap();
        file.sync_data().unwrap();
        fs.crash(mode);
        if survives {
            assert_eq!(fs.file_bytes(&p("/db/new")).unwrap(), b"data");
        } else {
            assert_eq!(fs.file_bytes(&p("/db/new")), None);
            assert!(fs.list_files().is_empty());
        }
    }
}

#[test]
fn mkdir_is_pending_on_the_parent() {
    let fs = SimFs::new(3);
    fs.create_dir_all(&p("/a/b")).unwrap();
    let file = fs.open(&p("/a/b/f"), OpenMode::CreateNew).unwrap();
    file.sync_all().unwrap();
    fs.sync_dir(&p("/a/b")).unwrap();
    fs.sync_dir(&p("/a")).unwrap();
    drop(file);
    fs.crash(CrashMode::DropUnsynced);
    // "/a" itself was never made durable in "/".
    assert_eq!(fs.entry_kind(&p("/a")).unwrap(), None);
    assert!(fs.list_files().is_empty());

    fs.create_dir_all(&p("/a/b")).unwrap();
    fs.open(&p("/a/b/f"), OpenMode::CreateNew).unwrap();
    for dir in ["/a/b", "/a", "/"] {
        fs.sync_dir(&p(dir)).unwrap();
    }
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.list_files(), vec![p("/a/b/f")]);
    assert_eq!(fs.read_dir(&p("/a")).unwrap(), vec!["b".to_owned()]);
}

#[test]
fn rename_without_sync_dir_may_revert() {
    for (mode, synced_dir) in [
        (CrashMode::DropUnsynced, false),
        (CrashMode::KeepAll, false),
        (CrashMode::DropUnsynced, true),
    ] {
        let fs = fs_with_db();
        fs.write_durable(&p("/db/cur"), b"old");
        let tmp = durable_file(&fs, "tmp");
        tmp.write_all_at(b"new", 0).unwrap();
        tmp.sync_all().unwrap();
        fs.rename(&p("/db/tmp"), &p("/db/cur")).unwrap();
        if synced_dir {
            fs.sync_dir(&p("/db")).unwrap();
        }
        // The handle follows the inode.
        let mut buf = [0; 3];
        tmp.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"new");
        assert_eq!(fs.file_bytes(&p("/db/cur")).unwrap(), b"new");
        let expect_new = synced_dir || mode == CrashMode::KeepAll;
        fs.crash(mode);
        if expect_new {
            assert_eq!(fs.list_files(), vec![p("/db/cur")]);
            assert_eq!(fs.file_bytes(&p("/db/cur")).unwrap(), b"new");
        } else {
            assert_eq!(fs.list_files(), vec![p("/db/cur"), p("/db/tmp")]);
            assert_eq!(fs.file_bytes(&p("/db/cur")).unwrap(), b"old");
            assert_eq!(fs.file_bytes(&p("/db/tmp")).unwrap(), b"new");
        }
    }
}

#[test]
fn remove_without_sync_dir_may_revert() {
    let fs = fs_with_db();
    fs.write_durable(&p("/db/x"), b"x");
    fs.remove_file(&p("/db/x")).unwrap();
    assert_eq!(fs.entry_kind(&p("/db/x")).unwrap(), None);
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.file_bytes(&p("/db/x")).unwrap(), b"x");
    fs.remove_file(&p("/db/x")).unwrap();
    fs.sync_dir(&p("/db")).unwrap();
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.file_bytes(&p("/db/x")), None);
}

#[test]
fn failed_fsync_loses_data_even_after_later_successful_fsync() {
    let fs = fs_with_db();
    let file = durable_file(&fs, "f");
    file.write_all_at(b"AAAA", 0).unwrap();
    fs.inject(Fault::once(OpClass::Sync, FaultKind::Eio));
    let err = file.sync_data().unwrap_err();
    assert!(is_errno(&err, libc::EIO));
    let mut buf = [0; 4];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"AAAA", "reads still show the lost data");
    file.write_all_at(b"BBBB", 4).unwrap();
    file.sync_data().unwrap();
    assert_eq!(fs.sync_calls(), 1);
    assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"AAAABBBB");
    fs.crash(CrashMode::KeepAll);
    assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"\0\0\0\0BBBB");
}

#[test]
fn a_later_write_to_a_sector_never_lands_without_the_earlier_ones() {
    // Two unsynced writes to one sector: whatever reaches the disk is the page as it
    // was after one of them, never the second write's bytes without the first's.
    let fs = fs_with_db();
    let file = durable_file(&fs, "/db/f");
    file.write_at(b"first", 0).unwrap();
    file.write_at(b"second", 5).unwrap();
    fs.crash(CrashMode::Fates(vec![UnitFate::Drop, UnitFate::Keep]));
    assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"firstsecond".to_vec());
}

#[test]
fn fates_cover_torn_sector_prefixes() {
    let data: Vec<u8> = (0..1500u32).map(|i| (i % 251) as u8 + 1).collect();
    let setup = || {
        let fs = fs_with_db();
        let file = durable_file(&fs, "f");
        file.write_all_at(&data, 100).unwrap();
        assert_eq!(fs.pending_units(), 4);
        fs
    };
    let bounds = [
        (100usize, 512usize),
        (512, 1024),
        (1024, 1536),
        (1536, 1600),
    ];
    let fate_of = |code: usize| match code {
        0 => UnitFate::Keep,
        1 => UnitFate::Drop,
        _ => UnitFate::Zero,
    };
    let mut seen = BTreeSet::new();
    for combo in 0..81usize {
        let fates: Vec<UnitFate> = (0..4).map(|i| fate_of(combo / 3usize.pow(i) % 3)).collect();
        let mut expected = Vec::new();
        for (fate, (lo, hi)) in fates.iter().zip(bounds) {
            match fate {
                UnitFate::Keep => write_into(&mut expected, lo, &data[lo - 100..hi - 100]),
                UnitFate::Zero => write_into(&mut expected, lo, &vec![0; hi - lo]),
                UnitFate::Drop => {}
            }
        }
        let fs = setup();
        fs.crash(CrashMode::Fates(fates.clone()));
        let got = fs.file_bytes(&p("/db/f")).unwrap();
        assert_eq!(got, expected, "fates {fates:?}");
        seen.insert(got);
    }
    // Torn prefixes explicitly.
    for keep in 0..=4 {
        let fs = setup();
        fs.crash(CrashMode::Fates(vec![UnitFate::Keep; keep]));
        let got = fs.file_bytes(&p("/db/f")).unwrap();
        let len = if keep == 0 { 0 } else { bounds[keep - 1].1 };
        assert_eq!(got.len(), len);
        if keep > 0 {
            assert_eq!(&got[100..], &data[..len - 100]);
        }
    }
    // Dropped and zeroed chunks read alike below a surviving one: 16+8+4+2+1 images.
    assert_eq!(seen.len(), 31);
}

#[test]
fn dir_units_follow_file_units() {
    let fs = fs_with_db();
    let file = fs.open(&p("/db/f"), OpenMode::CreateNew).unwrap();
    file.write_all_at(b"abc", 0).unwrap();
    assert_eq!(fs.pending_units(), 2);
    // Keep the write, drop the create: the file is unreachable.
    fs.crash(CrashMode::Fates(vec![UnitFate::Keep, UnitFate::Drop]));
    assert!(fs.list_files().is_empty());
    let file = fs.open(&p("/db/f"), OpenMode::CreateNew).unwrap();
    file.write_all_at(b"abc", 0).unwrap();
    fs.crash(CrashMode::Fates(vec![UnitFate::Drop, UnitFate::Keep]));
    assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"");
}

#[test]
fn space_limit_short_write_then_enospc_then_freed() {
    let fs = fs_with_db();
    fs.set_space_limit(Some(1000));
    let a = durable_file(&fs, "a");
    let b = durable_file(&fs, "b");
    assert_eq!(a.write_at(&[1; 600], 0).unwrap(), 600);
    assert_eq!(b.write_at(&[2; 600], 0).unwrap(), 400);
    let err = b.write_at(&[2; 10], 400).unwrap_err();
    assert!(is_errno(&err, libc::ENOSPC));
    assert!(is_errno(&b.set_len(401).unwrap_err(), libc::ENOSPC));
    assert!(is_errno(&b.allocate(401).unwrap_err(), libc::ENOSPC));
    assert_eq!(fs.used_bytes(), 1000);
    // An open handle keeps the space of a removed file.
    fs.remove_file(&p("/db/a")).unwrap();
    assert!(is_errno(
        &b.write_at(&[2; 10], 400).unwrap_err(),
        libc::ENOSPC
    ));
    drop(a);
    assert_eq!(fs.used_bytes(), 400);
    assert_eq!(b.write_at(&[2; 10], 400).unwrap(), 10);
    // Raising the limit works too.
    b.write_all_at(&[3; 590], 410).unwrap();
    assert!(is_errno(
        &b.write_at(&[4; 1], 1000).unwrap_err(),
        libc::ENOSPC
    ));
    fs.set_space_limit(Some(2000));
    assert_eq!(b.write_at(&[4; 1], 1000).unwrap(), 1);
    fs.set_space_limit(None);
    b.write_all_at(&[5; 5000], 0).unwrap();
}

#[test]
fn crash_at_mutating_call_kills_that_call_and_all_later() {
    let fs = fs_with_db(); // calls 0 (mkdir) and 1 (sync_dir)
    let file = durable_file(&fs, "f"); // 2, 3
    assert_eq!(fs.mutating_calls(), 4);
    fs.crash_at_mutating_call(Some(5));
    file.write_all_at(b"one", 0).unwrap(); // 4
    assert!(!fs.is_dead());
    let err = file.sync_data().unwrap_err(); // would be 5
    assert!(is_crashed(&err));
    assert!(fs.is_dead());
    assert!(is_crashed(&file.read_at(&mut [0; 3], 0).unwrap_err()));
    assert!(is_crashed(&fs.read_dir(&p("/db")).unwrap_err()));
    assert!(is_crashed(
        &fs.open(&p("/db/g"), OpenMode::CreateNew).err().unwrap()
    ));
    assert!(is_crashed(&fs.remove_file(&p("/db/f")).unwrap_err()));
    assert_eq!(fs.mutating_calls(), 5);
    assert_eq!(fs.sync_calls(), 0);
    assert_eq!(fs.list_files(), vec![p("/db/f")]);
    fs.crash(CrashMode::DropUnsynced);
    assert!(!fs.is_dead());
    assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"");
    let file = fs.open(&p("/db/f"), OpenMode::ReadWrite).unwrap();
    file.write_all_at(b"two", 0).unwrap();
    assert_eq!(fs.mutating_calls(), 6);
}

#[test]
fn crash_at_zero_fails_first_call() {
    let fs = SimFs::new(0);
    fs.crash_at_mutating_call(Some(0));
    assert!(is_crashed(&fs.create_dir_all(&p("/x")).unwrap_err()));
    fs.crash(CrashMode::KeepAll);
    assert_eq!(fs.entry_kind(&p("/x")).unwrap(), None);
}

#[test]
fn old_handles_dead_after_crash() {
    let fs = fs_with_db();
    let file = durable_file(&fs, "f");
    file.write_all_at(b"abc", 0).unwrap();
    file.sync_data().unwrap();
    fs.crash(CrashMode::KeepAll);
    assert!(file.read_at(&mut [0; 3], 0).is_err());
    assert!(file.write_at(b"x", 0).is_err());
    assert!(file.len().is_err());
    assert!(file.sync_data().is_err());
    let fresh = fs.open(&p("/db/f"), OpenMode::Read).unwrap();
    drop(file);
    assert_eq!(fresh.len().unwrap(), 3);
    assert!(fresh.write_at(b"x", 0).is_err(), "read-only handle");
}

#[test]
fn lock_held_and_released() {
    let fs = fs_with_db();
    let lock = p("/db/LOCK");
    let LockAttempt::Acquired(guard) = fs.try_lock(&lock, "pid 1").unwrap() else {
        panic!("first lock must succeed");
    };
    assert_eq!(fs.entry_kind(&lock).unwrap(), Some(EntryKind::File));
    match fs.try_lock(&lock, "pid 2").unwrap() {
        LockAttempt::Held(holder) => assert_eq!(holder, "pid 1"),
        LockAttempt::Acquired(_) => panic!("lock taken twice"),
    }
    drop(guard);
    let LockAttempt::Acquired(old_guard) = fs.try_lock(&lock, "pid 3").unwrap() else {
        panic!("released lock must be free");
    };
    // The lock file's creation was never synced.
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.entry_kind(&lock).unwrap(), None);
    let LockAttempt::Acquired(_new_guard) = fs.try_lock(&lock, "pid 4").unwrap() else {
        panic!("a crash releases locks");
    };
    drop(old_guard); // must not release pid 4's lock
    assert!(matches!(
        fs.try_lock(&lock, "pid 5").unwrap(),
        LockAttempt::Held(holder) if holder == "pid 4"
    ));
}

#[test]
fn one_shot_and_persistent_faults() {
    let fs = fs_with_db();
    let file = durable_file(&fs, "f");
    fs.inject(Fault {
        op: OpClass::Write,
        nth: 1,
        kind: FaultKind::Eio,
        persistent: false,
    });
    assert!(file.write_at(b"a", 0).is_ok());
    assert!(is_errno(&file.write_at(b"b", 1).unwrap_err(), libc::EIO));
    assert!(file.write_at(b"c", 1).is_ok());
    assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"ac");
    fs.clear_faults();

    fs.inject(Fault {
        op: OpClass::Write,
        nth: 1,
        kind: FaultKind::Enospc,
        persistent: true,
    });
    assert!(file.write_at(b"d", 2).is_ok());
    for _ in 0..3 {
        assert!(is_errno(&file.write_at(b"e", 3).unwrap_err(), libc::ENOSPC));
    }
    assert!(file.sync_data().is_ok(), "other classes unaffected");
    fs.clear_faults();
    assert!(file.write_at(b"e", 3).is_ok());

    fs.inject(Fault::once(OpClass::Write, FaultKind::ShortWrite));
    assert_eq!(file.write_at(b"12345", 4).unwrap(), 2);
    assert_eq!(fs.file_bytes(&p("/db/f")).unwrap(), b"acde12");

    fs.inject(Fault {
        op: OpClass::Any,
        nth: 0,
        kind: FaultKind::Eio,
        persistent: true,
    });
    assert!(fs.rename(&p("/db/f"), &p("/db/g")).is_err());
    assert!(fs.create_dir_all(&p("/db/sub")).is_err());
    assert_eq!(fs.list_files(), vec![p("/db/f")]);
    assert!(fs.read_dir(&p("/db")).is_ok(), "reads are not mutating");
    fs.clear_faults();

    fs.inject(Fault::once(OpClass::Read, FaultKind::Eio));
    assert!(fs.read_file(&p("/db/f"), true).is_err());
    assert_eq!(&*fs.read_file(&p("/db/f"), true).unwrap(), b"acde12");
}

#[test]
fn read_only_dir_refuses_entry_changes() {
    let fs = fs_with_db();
    fs.write_durable(&p("/db/x"), b"x");
    fs.set_read_only_dir(&p("/db"), true);
    let err = fs.open(&p("/db/new"), OpenMode::CreateNew).err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    assert!(is_errno(&err, libc::EACCES));
    assert!(fs.remove_file(&p("/db/x")).is_err());
    assert!(fs.rename(&p("/db/x"), &p("/db/y")).is_err());
    assert!(fs.try_lock(&p("/db/LOCK"), "me").is_err());
    assert!(fs.create_dir_all(&p("/db/sub")).is_err());
    assert!(fs.open(&p("/db/x"), OpenMode::ReadWrite).is_ok());
    fs.set_read_only_dir(&p("/db"), false);
    assert!(fs.open(&p("/db/new"), OpenMode::CreateNew).is_ok());
}

#[test]
fn trait_errors() {
    let fs = fs_with_db();
    durable_file(&fs, "f");
    let kind = |r: io::Result<Box<dyn VfsFile>>| r.err().map(|e| e.kind());
    assert_eq!(
        kind(fs.open(&p("/db/f"), OpenMode::CreateNew)),
        Some(io::ErrorKind::AlreadyExists)
    );
    assert_eq!(
        kind(fs.open(&p("/nodir/f"), OpenMode::CreateNew)),
        Some(io::ErrorKind::NotFound)
    );
    assert_eq!(
        kind(fs.open(&p("/db/g"), OpenMode::Read)),
        Some(io::ErrorKind::NotFound)
    );
    assert!(fs.open(&p("/db"), OpenMode::Read).is_err());
    assert_eq!(
        fs.read_dir(&p("/missing")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(fs.read_dir(&p("/")).unwrap(), vec!["db".to_owned()]);
    assert_eq!(fs.entry_kind(&p("/")).unwrap(), Some(EntryKind::Dir));
    let file = fs.open(&p("/db/f"), OpenMode::ReadWrite).unwrap();
    assert_eq!(file.read_at(&mut [0; 4], 100).unwrap(), 0);
    file.write_all_at(b"xy", 0).unwrap();
    let mut buf = [0; 4];
    assert_eq!(file.read_at(&mut buf, 1).unwrap(), 1);
    // Removed file: handle still works on the orphan inode.
    fs.remove_file(&p("/db/f")).unwrap();
    file.write_all_at(b"z", 2).unwrap();
    assert_eq!(file.len().unwrap(), 3);
    assert!(fs.rename(&p("/db/f"), &p("/db/g")).is_err());
    assert!(fs.remove_file(&p("/db")).is_err());
}

#[test]
fn writeback_hints_are_traced_fail_on_command_and_make_nothing_durable() {
    let fs = fs_with_db();
    let file = durable_file(&fs, "f");
    fs.set_trace(true);
    file.write_all_at(b"data", 0).unwrap();
    let mutating = fs.mutating_calls();
    file.start_writeback(0, 4).unwrap();
    file.wait_writeback(0, 4).unwrap();
    assert_eq!(fs.mutating_calls(), mutating, "hints are not crash points");
    let ops: Vec<&str> = fs.take_trace().iter().map(|t| t.op).collect();
    assert_eq!(ops, ["write_at", "start_writeback", "wait_writeback"]);
    fs.inject(Fault {
        op: OpClass::Writeback,
        nth: 1,
        kind: FaultKind::Eio,
        persistent: false,
    });
    file.start_writeback(0, 4).unwrap();
    assert!(is_errno(&file.wait_writeback(0, 4).unwrap_err(), libc::EIO));
    file.start_writeback(0, 4).unwrap();
    // A hint is not a sync: the write is still pending and a crash loses it.
    assert!(fs.pending_units() > 0);
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.file_bytes(&p("/db/f")), Some(Vec::new()));
    let read_only = fs_with_db();
    read_only.write_durable(&p("/db/r"), b"x");
    let handle = read_only.open(&p("/db/r"), OpenMode::Read).unwrap();
    assert!(handle.start_writeback(0, 1).is_err());
}

#[test]
fn counters_and_trace() {
    let fs = SimFs::new(9);
    fs.set_trace(true);
    fs.create_dir_all(&p("/d")).unwrap();
    let file = fs.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
    file.write_all_at(b"x", 0).unwrap();
    file.sync_data().unwrap();
    file.read_at(&mut [0; 1], 0).unwrap();
    fs.entry_kind(&p("/d/f")).unwrap();
    fs.rename(&p("/d/f"), &p("/d/g")).unwrap();
    assert_eq!(fs.mutating_calls(), 5);
    assert_eq!(fs.read_calls(), 2);
    let trace = fs.take_trace();
    let ops: Vec<(&str, u64)> = trace.iter().map(|t| (t.op, t.call)).collect();
    assert_eq!(
        ops,
        vec![
            ("create_dir_all", 0),
            ("create_new", 1),
            ("write_at", 2),
            ("sync_data", 3),
            ("read_at", u64::MAX),
            ("entry_kind", u64::MAX),
            ("rename", 4),
        ]
    );
    assert_eq!(trace[2].path, p("/d/f"));
    assert_eq!(trace[6].path, p("/d/g"));
    assert!(fs.take_trace().is_empty());
}

#[test]
fn corrupt_and_durable_helpers() {
    let fs = SimFs::new(2);
    fs.write_durable(&p("/a/b/c"), b"abc");
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(fs.file_bytes(&p("/a/b/c")).unwrap(), b"abc");
    assert!(fs.corrupt(&p("/a/b/c"), 1, 0xff));
    assert!(!fs.corrupt(&p("/a/b/c"), 3, 0xff));
    assert!(!fs.corrupt(&p("/a/b/missing"), 0, 0xff));
    fs.crash(CrashMode::DropUnsynced);
    assert_eq!(
        fs.file_bytes(&p("/a/b/c")).unwrap(),
        vec![b'a', !b'b', b'c']
    );
    assert!(fs.remove_durable(&p("/a/b/c")));
    fs.crash(CrashMode::KeepAll);
    assert!(fs.list_files().is_empty());
    assert_eq!(fs.entry_kind(&p("/a/b")).unwrap(), Some(EntryKind::Dir));
}

/// A workload leaving many kinds of pending units behind.
fn workload(fs: &SimFs) {
    fs.create_dir_all(&p("/db")).unwrap();
    fs.sync_dir(&p("/")).unwrap();
    fs.write_durable(&p("/db/base"), &[7; 700]);
    for i in 0..4u8 {
        let name = p(&format!("/db/seg{i}"));
        let file = fs.open(&name, OpenMode::CreateNew).unwrap();
        file.write_all_at(&vec![i + 1; 1300], 0).unwrap();
        if i % 2 == 0 {
            file.sync_data().unwrap();
        }
        file.write_all_at(&vec![i + 10; 900], 1000).unwrap();
    }
    fs.rename(&p("/db/seg1"), &p("/db/base")).unwrap();
    fs.remove_file(&p("/db/seg2")).unwrap();
}

fn image(fs: &SimFs) -> Vec<(PathBuf, Vec<u8>)> {
    fs.list_files()
        .into_iter()
        .map(|path| {
            let bytes = fs.file_bytes(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

#[test]
fn random_crash_is_deterministic() {
    let mut images = BTreeSet::new();
    for seed in 0..20 {
        let one = SimFs::new(5);
        let two = SimFs::new(5);
        workload(&one);
        workload(&two);
        assert_eq!(one.pending_units(), two.pending_units());
        one.crash(CrashMode::Random(seed));
        two.crash(CrashMode::Random(seed));
        assert_eq!(image(&one), image(&two));
        images.insert(image(&one));
    }
    assert!(images.len() > 10, "random fates barely vary");

    let one = SimFs::new(42);
    let two = SimFs::new(42);
    workload(&one);
    workload(&two);
    one.crash_random();
    two.crash_random();
    assert_eq!(image(&one), image(&two));
}

#[test]
fn keep_all_equals_current_view() {
    let fs = SimFs::new(8);
    workload(&fs);
    let before = image(&fs);
    fs.crash(CrashMode::KeepAll);
    assert_eq!(image(&fs), before);
    let units = fs.pending_units();
    assert_eq!(units, 0);
}
