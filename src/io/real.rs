//! [`Vfs`] on the operating system's file system (Unix).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::{EntryKind, FileBytes, LockAttempt, LockGuard, OpenMode, Vfs, VfsFile};

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

struct RealFile(File);

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
    fn allocate(&self, len: u64) -> io::Result<()> {
        let Ok(len_off) = libc::off_t::try_from(len) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "length too large",
            ));
        };
        // SAFETY: plain syscall on a file descriptor we own.
        let rc = unsafe { libc::posix_fallocate(self.0.as_raw_fd(), 0, len_off) };
        match rc {
            0 => Ok(()),
            // File systems without fallocate: a plain extension is zero-filled too.
            libc::EOPNOTSUPP | libc::EINVAL => {
                if self.len()? < len {
                    self.0.set_len(len)?;
                }
                Ok(())
            }
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

struct RealLock(#[allow(dead_code)] File);
impl LockGuard for RealLock {}

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
                let mut recorded = String::new();
                let _ = file.read_to_string(&mut recorded);
                let recorded = recorded.trim();
                Ok(LockAttempt::Held(if recorded.is_empty() {
                    "unknown holder".to_owned()
                } else {
                    recorded.to_owned()
                }))
            }
            Err(fs::TryLockError::Error(err)) => Err(err),
        }
    }
}
