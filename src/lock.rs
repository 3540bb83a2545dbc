//! One writer process per store directory, enforced with a lock file (`LOCK`) that
//! records the holder's pid.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::io::{EntryKind, LockAttempt, LockGuard, Vfs};

/// Name of the lock file inside a store directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// Takes the writer lock of `dir`, waiting up to `timeout` (or failing at once when
/// `None`). The error names the holder recorded in the lock file.
pub fn lock_store(
    vfs: &dyn Vfs,
    dir: &Path,
    timeout: Option<Duration>,
) -> Result<Box<dyn LockGuard>> {
    check_lock_entry(vfs, dir)?;
    let path = dir.join(LOCK_FILE_NAME);
    let me = format!("pid {}", std::process::id());
    let deadline = timeout.map(|t| Instant::now() + t);
    // While it waits, the caller is marked waiting: a shared writer keeping the lock
    // between its commit groups lets go at the end of its next one.
    let mut waiting = None;
    loop {
        match vfs.try_lock(&path, &me) {
            Ok(LockAttempt::Acquired(guard)) => return Ok(guard),
            Ok(LockAttempt::Held(holder)) => {
                if deadline.is_none_or(|d| Instant::now() >= d) {
                    return Err(Error::Locked { path, holder });
                }
                if waiting.is_none() {
                    waiting = vfs.mark_waiting(&path);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(err) if err.raw_os_error() == Some(libc::EISDIR) => {
                return Err(Error::LockNotAFile { path });
            }
            Err(err) => return Err(Error::io("take writer lock", &path, err)),
        }
    }
}

/// Fails with [`Error::LockNotAFile`] when `dir/LOCK` exists and is not a regular file
/// (a directory, or a link to one): no writer can ever lock it. Absent is fine (the
/// writer creates it).
pub fn check_lock_entry(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let path = dir.join(LOCK_FILE_NAME);
    match vfs
        .entry_kind(&path)
        .map_err(|err| Error::io("stat", &path, err))?
    {
        Some(EntryKind::Dir) => Err(Error::LockNotAFile { path }),
        Some(EntryKind::File) | None => Ok(()),
    }
}
