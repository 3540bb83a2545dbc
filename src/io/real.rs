//! [`Vfs`] on the operating system's file system (Unix).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use super::{EntryKind, FileBytes, LockAttempt, LockFile, LockGuard, OpenMode, Vfs, VfsFile};

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

struct RealFile(File);

/// The zeros [`RealFile::allocate`] writes, a chunk at a time.
static ZEROS: [u8; 256 << 10] = [0; 256 << 10];

impl VfsFile for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.0.write_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
    /// Writes zeros from the current end of the file up to `len`, rather than
    /// `posix_fallocate`: on ext4 and XFS fallocated space is a run of *unwritten*
    /// extents, and every fdatasync after records land in it must also write the extent
    /// tree that converts them (measured: durable batches of 100 puts, W5, ran 20-40 %
    /// faster on written zeros). Written zeros cost their write once, with the next
    /// fdatasync, and claim the space as `posix_fallocate` does (ENOSPC here, not later).
    fn allocate(&self, len: u64) -> io::Result<()> {
        let mut at = self.len()?;
        while at < len {
            let chunk = usize::try_from(len - at).map_or(ZEROS.len(), |n| n.min(ZEROS.len()));
            self.0.write_all_at(&ZEROS[..chunk], at)?;
            at += chunk as u64;
        }
        Ok(())
    }
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        sync_file_range(&self.0, offset, len, false)
    }
    fn wait_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        sync_file_range(&self.0, offset, len, true)
    }
}

/// `sync_file_range` over `len` bytes at `offset`: start writeback, or (`wait`) wait for
/// earlier writeback, write and wait again. File systems or kernels without it make this a
/// no-op (it is only a hint); every other error is returned.
#[cfg(target_os = "linux")]
fn sync_file_range(file: &File, offset: u64, len: u64, wait: bool) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "writeback range too large",
        ));
    };
    if len == 0 {
        // 0 would mean "to the end of the file".
        return Ok(());
    }
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    loop {
        // SAFETY: plain syscall on a file descriptor we own; no memory is passed.
        let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::ENOSYS | libc::EOPNOTSUPP) => return Ok(()),
            _ => return Err(err),
        }
    }
}

/// Elsewhere the writeback hints do nothing: the final fsync does all the work.
#[cfg(not(target_os = "linux"))]
fn sync_file_range(_file: &File, _offset: u64, _len: u64, _wait: bool) -> io::Result<()> {
    Ok(())
}

/// A lock taken by [`Vfs::try_lock`]: released with `flock(LOCK_UN)` when dropped, not
/// merely by closing the descriptor. A child forked by another thread between our
/// open and its `exec` shares the open file description, and closing ours alone would
/// leave the lock held until that child execs or exits.
struct RealLock(File);
impl LockGuard for RealLock {}

impl Drop for RealLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// The lock file kept open by a shared writer ([`Vfs::open_lock`]): an `flock` taken
/// and released on the one descriptor.
struct ReusableLock(Arc<File>);

/// A lock taken on a [`ReusableLock`]: released (`flock(LOCK_UN)`) when dropped.
struct HeldReusableLock(Arc<File>);
impl LockGuard for HeldReusableLock {}

impl Drop for HeldReusableLock {
    fn drop(&mut self) {
        // Closing the descriptor would release it too; it stays open for the next turn.
        let _ = self.0.unlock();
    }
}

/// A waiting mark ([`LockFile::mark_waiting`]) on a lock file's descriptor.
#[cfg(target_os = "linux")]
struct WaitingMark(Arc<File>);
#[cfg(target_os = "linux")]
impl LockGuard for WaitingMark {}
#[cfg(target_os = "linux")]
impl Drop for WaitingMark {
    fn drop(&mut self) {
        super::wait_mark::unmark(&self.0);
    }
}

/// Width the holder is padded to when written in place, so a shorter name overwrites
/// a longer one without a truncate.
const HOLDER_WIDTH: usize = 32;

impl LockFile for ReusableLock {
    fn try_acquire(&self, holder: &str) -> io::Result<LockAttempt> {
        match self.0.try_lock() {
            Ok(()) => {
                // A shared writer takes the lock for every commit group: the name is
                // written only when another holder replaced it (a read dirties nothing).
                let recorded = format!("{holder:<HOLDER_WIDTH$}");
                let mut current = [0u8; HOLDER_WIDTH];
                let unchanged = self
                    .0
                    .read_at(&mut current, 0)
                    .is_ok_and(|len| current[..len] == *recorded.as_bytes());
                if !unchanged && let Err(err) = self.0.write_all_at(recorded.as_bytes(), 0) {
                    let _ = self.0.unlock();
                    return Err(err);
                }
                Ok(LockAttempt::Acquired(Box::new(HeldReusableLock(
                    Arc::clone(&self.0),
                ))))
            }
            Err(fs::TryLockError::WouldBlock) => {
                let mut recorded = vec![0u8; 256];
                let len = self.0.read_at(&mut recorded, 0).unwrap_or(0);
                Ok(LockAttempt::Held(holder_named(&recorded[..len])))
            }
            Err(fs::TryLockError::Error(err)) => Err(err),
        }
    }

    #[cfg(target_os = "linux")]
    fn mark_waiting(&self) -> Option<Box<dyn LockGuard>> {
        super::wait_mark::mark(&self.0).ok()?;
        Some(Box::new(WaitingMark(Arc::clone(&self.0))))
    }

    #[cfg(target_os = "linux")]
    fn others_waiting(&self) -> Option<bool> {
        super::wait_mark::others_marked(&self.0).ok()
    }
}

/// The holder a lock file records, or "unknown holder".
fn holder_named(recorded: &[u8]) -> String {
    let recorded = String::from_utf8_lossy(recorded);
    let recorded = recorded.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if recorded.is_empty() {
        "unknown holder".to_owned()
    } else {
        recorded.to_owned()
    }
}

impl Vfs for RealFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>> {
        let mut options = OpenOptions::new();
        match mode {
            OpenMode::Read => options.read(true),
            OpenMode::ReadWrite => options.read(true).write(true),
            OpenMode::CreateNew => options.read(true).write(true).create_new(true),
        };
        Ok(Box::new(RealFile(options.open(path)?)))
    }

    fn read_file(&self, path: &Path, may_map: bool) -> io::Result<FileBytes> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        if may_map && len > 0 {
            // SAFETY: the caller guarantees no process shrinks the file while mapped
            // (the writer lock is held, or the file is immutable once renamed into place).
            let map = unsafe { memmap2::Mmap::map(&file)? };
            return Ok(FileBytes::Mapped(map));
        }
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut bytes)?;
        Ok(FileBytes::Owned(bytes))
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => Ok(Some(EntryKind::Dir)),
            Ok(_) => Ok(Some(EntryKind::File)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<LockAttempt> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                file.write_all(holder.as_bytes())?;
                Ok(LockAttempt::Acquired(Box::new(RealLock(file))))
            }
            Err(fs::TryLockError::WouldBlock) => {
                let mut recorded = Vec::new();
                let _ = file.read_to_end(&mut recorded);
                Ok(LockAttempt::Held(holder_named(&recorded)))
            }
            Err(fs::TryLockError::Error(err)) => Err(err),
        }
    }

    fn open_lock(&self, path: &Path) -> io::Result<Option<Arc<dyn LockFile>>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Some(Arc::new(ReusableLock(Arc::new(file)))))
    }

    #[cfg(target_os = "linux")]
    fn mark_waiting(&self, path: &Path) -> Option<Box<dyn LockGuard>> {
        let file = OpenOptions::new().read(true).write(true).open(path).ok()?;
        super::wait_mark::mark(&file).ok()?;
        Some(Box::new(WaitingMark(Arc::new(file))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_lock_is_released_even_while_a_copy_of_its_descriptor_lives() {
        // The copy (same open file description) stands for a child forked by another
        // thread and not yet exec'd.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        file.try_lock().unwrap();
        let inherited = file.try_clone().unwrap();
        let guard = RealLock(file);
        assert!(matches!(
            RealFs.try_lock(&path, "pid 2").unwrap(),
            LockAttempt::Held(_)
        ));
        drop(guard);
        assert!(
            matches!(
                RealFs.try_lock(&path, "pid 2").unwrap(),
                LockAttempt::Acquired(_)
            ),
            "the lock outlived its guard"
        );
        drop(inherited);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_waiting_mark_is_seen_by_the_holder_and_gone_when_dropped_or_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let holder = RealFs.open_lock(&path).unwrap().unwrap();
        let waiter = RealFs.open_lock(&path).unwrap().unwrap();
        let LockAttempt::Acquired(_held) = holder.try_acquire("pid 1").unwrap() else {
            panic!("a fresh lock is free");
        };
        assert_eq!(holder.others_waiting(), Some(false));
        let mark = waiter.mark_waiting().expect("Linux marks waiters");
        assert_eq!(holder.others_waiting(), Some(true));
        assert_eq!(
            waiter.others_waiting(),
            Some(false),
            "its own mark is not another's"
        );
        drop(mark);
        assert_eq!(holder.others_waiting(), Some(false));
        // A waiter marking through a path (an exclusive open waiting), then gone: its
        // descriptor closes with the guard.
        let mark = RealFs.mark_waiting(&path).expect("marked by path");
        assert_eq!(holder.others_waiting(), Some(true));
        drop(mark);
        assert_eq!(holder.others_waiting(), Some(false));
        // The mark is no writer lock: the holder still holds, the waiter cannot take it.
        assert!(matches!(
            waiter.try_acquire("pid 2").unwrap(),
            LockAttempt::Held(_)
        ));
    }

    #[test]
    fn writeback_hints_succeed_on_a_real_file_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = RealFs.open(&path, OpenMode::CreateNew).unwrap();
        let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        file.write_all_at(&data, 0).unwrap();
        file.start_writeback(0, 1 << 20).unwrap();
        file.start_writeback(1 << 20, 2 << 20).unwrap();
        file.wait_writeback(0, 2 << 20).unwrap();
        // Empty and past-the-end ranges are fine too.
        file.start_writeback(0, 0).unwrap();
        file.wait_writeback(10 << 20, 4096).unwrap();
        file.sync_all().unwrap();
        assert_eq!(file.len().unwrap(), data.len() as u64);
        let mut back = vec![0u8; data.len()];
        file.read_exact_at(&mut back, 0).unwrap();
        assert!(back == data);
    }

    #[test]
    fn allocate_writes_zeros_after_the_data_and_claims_the_space() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = RealFs.open(&path, OpenMode::CreateNew).unwrap();
        file.write_all_at(b"records", 0).unwrap();
        let len = (1 << 20) + 7; // more than one chunk of zeros, not a whole one
        file.allocate(len).unwrap();
        file.allocate(10).unwrap(); // never shrinks
        assert_eq!(file.len().unwrap(), len);
        let mut back = vec![1u8; len as usize];
        file.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(&back[..7], b"records");
        assert!(back[7..].iter().all(|&b| b == 0));
        // Blocks are allocated (written), not a hole a plain `set_len` would leave.
        let blocks_bytes = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(
            blocks_bytes >= len,
            "{blocks_bytes} bytes allocated for {len}"
        );
    }
}
