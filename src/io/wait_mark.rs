//! The waiting mark on a lock file (Linux): a process that waits for the writer lock
//! holds a shared open-file-description lock (`F_OFD_SETLK`, `F_RDLCK`) on one byte of
//! the lock file; the holder asks with `F_OFD_GETLK` whether anyone holds one. These
//! byte-range locks are independent of the `flock` that is the writer lock itself, and
//! the kernel drops them when the waiter's descriptor closes (a killed waiter leaves
//! no mark).

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

/// The byte of the lock file the marks lock (far past the holder's name).
const MARK_OFFSET: i64 = 1 << 20;

fn mark_lock(kind: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is a plain C struct; all-zero is a valid value of every field.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = MARK_OFFSET;
    lock.l_len = 1;
    lock
}

/// Marks `file`'s open file description as waiting, until [`unmark`] or its close.
pub(super) fn mark(file: &File) -> io::Result<()> {
    let lock = mark_lock(libc::F_RDLCK);
    // SAFETY: a valid descriptor and a pointer to an initialised `flock`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes `file`'s waiting mark.
pub(super) fn unmark(file: &File) {
    let lock = mark_lock(libc::F_UNLCK);
    // SAFETY: as in `mark`.
    let _ = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
}

/// Whether a descriptor other than `file`'s holds a waiting mark.
pub(super) fn others_marked(file: &File) -> io::Result<bool> {
    let mut lock = mark_lock(libc::F_WRLCK);
    // SAFETY: a valid descriptor and a pointer to an initialised `flock` it may write.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}
