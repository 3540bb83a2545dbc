//! The `io::Error` values the simulation returns, in one place so every call fails the
//! same way for the same reason.

use std::io;
use std::path::Path;

use super::faults::FaultKind;
pub(super) fn crashed() -> io::Error {
    io::Error::other("simulated crash")
}

pub(super) fn stale_handle() -> io::Error {
    io::Error::other("file handle opened before a simulated crash")
}

pub(super) fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory (simulated)", path.display()),
    )
}

pub(super) fn os_error(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

pub(super) fn fault_error(kind: FaultKind) -> io::Error {
    match kind {
        FaultKind::Enospc => os_error(libc::ENOSPC),
        FaultKind::Eio | FaultKind::ShortWrite => os_error(libc::EIO),
    }
}

pub(super) fn to_usize(value: u64) -> io::Result<usize> {
    usize::try_from(value).map_err(|_| os_error(libc::EFBIG))
}

pub(super) fn read_only_handle() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "file handle opened read-only (simulated)",
    )
}
