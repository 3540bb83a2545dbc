//! The file-system seam. Every byte walstate reads or writes goes through [`Vfs`] and
//! [`VfsFile`], so the whole store can run on the real file system ([`RealFs`]) or on a
//! deterministic simulated one ([`SimFs`]) that loses, tears and fails I/O on command.
//!
//! The trait is deliberately small: positional reads and writes, length changes, the two
//! kinds of sync (plus writeback hints that pace large writes but promise nothing), and
//! the directory operations whose durability matters (create, rename, unlink, directory
//! fsync).

mod real;
pub mod sim;
#[cfg(target_os = "linux")]
mod wait_mark;

use std::fmt;
use std::io;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

pub use real::RealFs;
pub use sim::SimFs;

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; the file must not exist yet (it is created empty).
    CreateNew,
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// The whole contents of a file, either memory-mapped (real fs) or owned.
pub enum FileBytes {
    /// A read-only memory map (the real file system, exclusive access).
    Mapped(memmap2::Mmap),
    /// Bytes read into memory.
    Owned(Vec<u8>),
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(map) => map,
            FileBytes::Owned(bytes) => bytes,
        }
    }
}

impl fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileBytes({} bytes)", self.len())
    }
}

/// A held writer lock; dropping it releases the lock.
pub trait LockGuard: Send + Sync {}

/// A lock file opened once and taken and released many times: a shared writer holds
/// the store's writer lock only while it commits, so it takes it for every commit group
/// (see [`Vfs::open_lock`]).
pub trait LockFile: Send + Sync {
    /// Tries to take the lock, recording `holder` in the file for others to read.
    fn try_acquire(&self, holder: &str) -> io::Result<LockAttempt>;

    /// Marks this handle as waiting for the lock until the guard is dropped, so that a
    /// holder that keeps the lock between commit groups lets go of it
    /// ([`LockFile::others_waiting`]). `None` when it cannot be marked (the default).
    fn mark_waiting(&self) -> Option<Box<dyn LockGuard>> {
        None
    }

    /// Whether another handle (another process's, or another store's in this process)
    /// is marked waiting. `None` when this file system cannot tell (the default): the
    /// holder then lets go after every commit group.
    fn others_waiting(&self) -> Option<bool> {
        None
    }
}

/// The outcome of trying to take a lock.
pub enum LockAttempt {
    /// The lock is ours until the guard is dropped.
    Acquired(Box<dyn LockGuard>),
    /// Someone else holds it; the string names the holder as recorded in the lock file.
    Held(String),
}

/// An open file.
#[allow(clippy::len_without_is_empty)]
pub trait VfsFile: Send + Sync {
    /// Reads at `offset`; may return fewer bytes than asked (0 at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes at `offset`; may write fewer bytes than asked (a short write).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// The current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeros) to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data (and the size, if it changed) durable: `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
    /// Makes data and all metadata durable: `fsync`.
    fn sync_all(&self) -> io::Result<()>;
    /// Extends the file to `len` bytes of zeros (never shrinks it), with the space
    /// claimed now: the real file system writes the zeros (see `RealFs`), so data
    /// written over them later has no unwritten extents to convert at its fdatasync.
    fn allocate(&self, len: u64) -> io::Result<()>;

    /// A hint, not a durability point: starts writing `len` bytes at `offset` back to
    /// the disk without waiting, so a later fsync has less to flush (Linux
    /// `sync_file_range(SYNC_FILE_RANGE_WRITE)`). Nothing is durable until
    /// [`VfsFile::sync_data`]/[`VfsFile::sync_all`] succeeds. The default does nothing.
    ///
    /// An error may be reported here *instead of* by the next fsync (the kernel reports a
    /// writeback error once per file handle), so a caller must treat it as a failure of
    /// the file's durability, never ignore it.
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// A hint, not a durability point: writes `len` bytes at `offset` back to the disk and
    /// waits until that writeback is done (Linux `sync_file_range(SYNC_FILE_RANGE_WAIT_BEFORE
    /// | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER)`), which bounds how much dirty
    /// data a large sequential write leaves for its final fsync. It flushes no metadata and
    /// no disk cache: only a successful fsync makes data durable. The default does
    /// nothing. Errors must not be ignored, as for [`VfsFile::start_writeback`].
    fn wait_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// Writes all of `buf` at `offset`, looping over short writes. A write that makes no
    /// progress fails with `WriteZero`. On error some prefix may have been written.
    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "short write")),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes at `offset` or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file ended")),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

/// A file system.
pub trait Vfs: Send + Sync + fmt::Debug {
    /// Opens (or, with [`OpenMode::CreateNew`], creates) a file.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn VfsFile>>;
    /// Reads a whole file. `may_map` allows a memory map: only pass it when no other
    /// process can shrink the file while the bytes are in use.
    fn read_file(&self, path: &Path, may_map: bool) -> io::Result<FileBytes>;
    /// Names of the entries of a directory, sorted.
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// What `path` is, or `None` when it does not exist.
    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>>;
    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Atomically renames a file, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creates, renames, unlinks) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Tries to take the exclusive writer lock at `path` (created if missing), recording
    /// `holder` (e.g. "pid 1234") in it for others to read.
    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<LockAttempt>;
    /// Opens the lock file at `path` (created if missing) to be taken many times with
    /// [`LockFile::try_acquire`], each time as [`Vfs::try_lock`] would, without opening
    /// it again. `None` (the default) means the caller uses `try_lock` each time.
    fn open_lock(&self, path: &Path) -> io::Result<Option<Arc<dyn LockFile>>> {
        let _ = path;
        Ok(None)
    }
    /// Whether work may run on background threads (the spare segment): true for real
    /// file systems. A simulated one says no, so what a test does to it happens in one
    /// deterministic order (such work then runs inline, at the point that asks for it).
    fn allows_background_work(&self) -> bool {
        true
    }

    /// Marks the caller as waiting for the lock at `path` until the guard is dropped
    /// (see [`LockFile::mark_waiting`]); `None` (the default) when it cannot.
    fn mark_waiting(&self, path: &Path) -> Option<Box<dyn LockGuard>> {
        let _ = path;
        None
    }
}

/// A shared handle to a file system.
pub type VfsRef = Arc<dyn Vfs>;

/// The real file system as a shared handle.
pub fn real_fs() -> VfsRef {
    Arc::new(RealFs)
}
