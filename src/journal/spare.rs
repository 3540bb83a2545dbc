//! The spare segment: the file of the next segment, made ahead of need so that a
//! rotation does not write and fsync a new file on the commit path (PostgreSQL recycles
//! and pre-creates WAL files the same way).
//!
//! A spare is `SPARE-SEGMENT` in the store directory: its length of zeros, written (not
//! fallocated) and fsynced under a temp name, then renamed into place and the directory
//! fsynced, so under its final name it is always whole and durable. It holds no record
//! and names no store until a rotation claims it: the claimer (holding the writer lock)
//! renames it to the new segment's temp name first, which makes the file its own even if
//! another process renames a new spare into place meanwhile, then writes the segment
//! header over its first bytes, fdatasyncs, and finishes like any segment creation
//! ([`super::segment::create_segment`]). There is at most one spare, and only stores
//! whose active segment is half full make one (see `SpareSegment`).
//!
//! Preparing a spare never affects a commit: its writes and fsyncs touch only its own
//! file (a failed fsync there says nothing about any segment's bytes), a failure only
//! leaves the next rotation to create its segment itself, and a crash leaves either a
//! whole spare or a temp file, which a writer's open removes like every `*.tmp`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::format::SPARE_SEGMENT_FILE_NAME;
use crate::io::{OpenMode, Vfs, VfsFile};

/// What [`prepare_spare`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prepared {
    /// A spare of the asked length was already there.
    AlreadyThere,
    /// A new spare is in place.
    Made,
}

/// The path of `dir`'s spare segment.
pub(crate) fn spare_path(dir: &Path) -> PathBuf {
    dir.join(SPARE_SEGMENT_FILE_NAME)
}

/// Makes `dir`'s spare segment, `len` bytes of zeros, unless one of that length is
/// there. On an error nothing is left behind but what was there before (the temp file
/// is removed); a crash can leave only the temp file.
pub(crate) fn prepare_spare(vfs: &dyn Vfs, dir: &Path, len: u64) -> Result<Prepared> {
    let path = spare_path(dir);
    if spare_len(vfs, &path)? == Some(len) {
        return Ok(Prepared::AlreadyThere);
    }
    // One temp name per process and attempt: preparers in two processes never share one.
    static ATTEMPT: AtomicU64 = AtomicU64::new(0);
    let temp_path = dir.join(format!(
        "{SPARE_SEGMENT_FILE_NAME}.{}-{}.tmp",
        std::process::id(),
        ATTEMPT.fetch_add(1, Ordering::Relaxed)
    ));
    let made = (|| -> Result<()> {
        let file = vfs
            .open(&temp_path, OpenMode::CreateNew)
            .map_err(|err| Error::io("create spare segment", &temp_path, err))?;
        write_zeros_paced(file.as_ref(), len)
            .map_err(|err| Error::io("write zeros into spare segment", &temp_path, err))?;
        file.sync_all()
            .map_err(|err| Error::io("fsync spare segment", &temp_path, err))?;
        drop(file);
        vfs.rename(&temp_path, &path)
            .map_err(|err| Error::io("rename spare segment into place", &temp_path, err))
    })();
    if let Err(err) = made {
        let _ = vfs.remove_file(&temp_path);
        return Err(err);
    }
    vfs.sync_dir(dir)
        .map_err(|err| Error::io("fsync directory", dir, err))?;
    Ok(Prepared::Made)
}

/// Claims `dir`'s spare segment for a new segment: renames it to `into` (the new
/// segment's temp name) and opens it. `None` when there is no spare, or when it is not
/// `len` bytes long (made for another segment size: it holds only zeros, and is
/// removed). The returned file is `len` bytes of durable zeros under `into`.
pub(crate) fn take_spare(
    vfs: &dyn Vfs,
    dir: &Path,
    into: &Path,
    len: u64,
) -> Result<Option<Box<dyn VfsFile>>> {
    let path = spare_path(dir);
    match vfs.rename(&path, into) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io("claim spare segment", &path, err)),
    }
    let file = vfs
        .open(into, OpenMode::ReadWrite)
        .map_err(|err| Error::io("open claimed spare segment", into, err))?;
    let actual = file
        .len()
        .map_err(|err| Error::io("stat claimed spare segment", into, err))?;
    if actual != len {
        drop(file);
        vfs.remove_file(into)
            .map_err(|err| Error::io("remove spare segment of another size", into, err))?;
        return Ok(None);
    }
    Ok(Some(file))
}

/// Bytes of zeros written, then waited out to the disk, at a time: the spare reaches
/// the disk in small pieces instead of one burst that a commit's fdatasync would queue
/// behind.
const ZERO_FILL_STEP: usize = 1 << 20;

/// Writes `len` bytes of zeros from the start of `file`, a step at a time, waiting for
/// each step's writeback (a hint: the fsync that follows is what makes them durable).
fn write_zeros_paced(file: &dyn VfsFile, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; ZERO_FILL_STEP];
    let mut at = 0u64;
    while at < len {
        let step = usize::try_from(len - at).map_or(ZERO_FILL_STEP, |n| n.min(ZERO_FILL_STEP));
        file.write_all_at(&zeros[..step], at)?;
        file.wait_writeback(at, step as u64)?;
        at += step as u64;
    }
    Ok(())
}

/// The length of the spare at `path`, if there is one.
fn spare_len(vfs: &dyn Vfs, path: &Path) -> Result<Option<u64>> {
    match vfs.open(path, OpenMode::Read) {
        Ok(file) => file
            .len()
            .map(Some)
            .map_err(|err| Error::io("stat spare segment", path, err)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::io("open spare segment", path, err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sim::{CrashMode, SimFs};

    const LEN: u64 = 64 << 10;

    fn store_dir(fs: &SimFs) -> PathBuf {
        let dir = PathBuf::from("/store");
        fs.create_dir_all(&dir).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        dir
    }

    fn names(fs: &SimFs, dir: &Path) -> Vec<String> {
        let mut names = fs.read_dir(dir).unwrap();
        names.sort();
        names
    }

    #[test]
    fn a_prepared_spare_is_whole_zeros_and_durable_under_its_name() {
        let fs = SimFs::new(1);
        let dir = store_dir(&fs);
        assert_eq!(prepare_spare(&*fs, &dir, LEN).unwrap(), Prepared::Made);
        assert_eq!(prepare_spare(&*fs, &dir, LEN).unwrap(), Prepared::AlreadyThere);
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(names(&fs, &dir), vec![SPARE_SEGMENT_FILE_NAME.to_string()]);
        let bytes = fs.file_bytes(&spare_path(&dir)).unwrap();
        assert_eq!(bytes.len() as u64, LEN);
        assert!(bytes.iter().all(|&b| b == 0));
    }

    #[test]
    fn a_crash_while_preparing_leaves_a_whole_spare_or_only_a_temp_file() {
        let mut spare_kept = std::collections::BTreeSet::new();
        // Die at each mutating call of the preparation, then crash in every mode.
        for call in 0..8 {
            for mode in 0..6u64 {
                let fs = SimFs::new(call);
                let dir = store_dir(&fs);
                let base = fs.mutating_calls();
                fs.crash_at_mutating_call(Some(base + call));
                let _ = prepare_spare(&*fs, &dir, LEN);
                fs.crash(match mode {
                    0 => CrashMode::DropUnsynced,
                    1 => CrashMode::KeepAll,
                    seed => CrashMode::Random(seed),
                });
                let names = names(&fs, &dir);
                for name in &names {
                    if name == SPARE_SEGMENT_FILE_NAME {
                        let bytes = fs.file_bytes(&dir.join(name)).unwrap();
                        assert_eq!(bytes.len() as u64, LEN, "call {call}: a spare is whole");
                        assert!(bytes.iter().all(|&b| b == 0));
                    } else {
                        assert!(name.ends_with(".tmp"), "call {call}: {name}");
                    }
                }
                spare_kept.insert(names.iter().any(|n| n == SPARE_SEGMENT_FILE_NAME));
            }
        }
        assert_eq!(spare_kept.len(), 2, "later crashes keep the spare, earlier ones do not");
    }

    #[test]
    fn taking_the_spare_moves_it_to_the_new_name_and_a_spare_of_another_size_is_not_used() {
        let fs = SimFs::new(2);
        let dir = store_dir(&fs);
        let into = dir.join("wal-00000000000000000002.seg.tmp");
        assert!(take_spare(&*fs, &dir, &into, LEN).unwrap().is_none(), "no spare yet");
        prepare_spare(&*fs, &dir, LEN).unwrap();
        let file = take_spare(&*fs, &dir, &into, LEN).unwrap().expect("the spare");
        assert_eq!(file.len().unwrap(), LEN);
        assert_eq!(names(&fs, &dir), vec!["wal-00000000000000000002.seg.tmp".to_string()]);
        drop(file);
        fs.remove_file(&into).unwrap();

        prepare_spare(&*fs, &dir, LEN).unwrap();
        assert!(take_spare(&*fs, &dir, &into, 2 * LEN).unwrap().is_none());
        assert!(names(&fs, &dir).is_empty(), "the spare of another size is removed");
    }

    #[test]
    fn a_failed_preparation_leaves_nothing_behind() {
        let fs = SimFs::new(3);
        let dir = store_dir(&fs);
        fs.set_space_limit(Some(fs.used_bytes() + LEN / 2));
        let err = prepare_spare(&*fs, &dir, LEN).unwrap_err();
        assert!(err.to_string().contains("spare segment"), "{err}");
        assert!(names(&fs, &dir).is_empty());
    }
}
