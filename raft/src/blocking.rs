//! Running the stores' blocking calls (they wait for fdatasync) on tokio's blocking pool,
//! so that no runtime worker thread waits for the disk.

use crate::error::Error;

/// Runs `f` on the blocking pool and waits for it without blocking the caller's thread.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| Error::Task(err.to_string()))?
}
