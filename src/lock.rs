//! One writer process per store directory, enforced with a lock file (`LOCK`) that
//! records the holder's pid.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::io::{LockAttempt, LockGuard, Vfs};

/// Name of the lock file inside a store directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// Takes the writer lock of `dir`, waiting up to `timeout` (or failing at once when
/// `None`). The error names the holder recorded in the lock file.
pub fn lock_store(
    vfs: &dyn Vfs,
    dir: &Path,
    timeout: Option<Duration>,
) -> Result<Box<dyn LockGuard>> {
    let path = dir.join(LOCK_FILE_NAME);
    let me = format!("pid {}", std::process::id());
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        match vfs.try_lock(&path, &me) {
            Ok(LockAttempt::Acquired(guard)) => return Ok(guard),
            Ok(LockAttempt::Held(holder)) => {
                if deadline.is_none_or(|d| Instant::now() >= d) {
                    return Err(Error::Locked { path, holder });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(err) => return Err(Error::io("take writer lock", &path, err)),
        }
    }
}
