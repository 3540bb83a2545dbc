//! Who makes a journal's spare segment and when (see [`crate::journal::spare`]): once
//! the active segment is half full, on a background thread (inline on a file system
//! without background work, a simulation, so its tests stay deterministic); and who
//! claims it at rotation. A spare is an optimisation only: every
//! failure here is logged and leaves the next rotation to create its segment itself.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::io::{VfsFile, VfsRef};
use crate::journal::spare::{prepare_spare, take_spare};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Background,
    Inline,
}

pub(crate) struct SpareMaker {
    vfs: VfsRef,
    dir: PathBuf,
    mode: Mode,
    /// The background preparation, while one runs or until it is joined.
    running: Mutex<Option<JoinHandle<()>>>,
}

impl SpareMaker {
    /// For the store in `dir`; makes no spare unless `on` and segments are preallocated
    /// (a spare's zeros are free space only in a `PREALLOCATED` segment).
    pub(super) fn new(vfs: VfsRef, dir: PathBuf, on: bool, preallocate: bool) -> Self {
        let mode = match (on && preallocate, vfs.allows_background_work()) {
            (false, _) => Mode::Off,
            (true, true) => Mode::Background,
            (true, false) => Mode::Inline,
        };
        SpareMaker {
            vfs,
            dir,
            mode,
            running: Mutex::new(None),
        }
    }

    /// The active segment is half full: makes a spare of `len` bytes if none is there
    /// (inline, or on a thread unless one is still at it). Never fails.
    pub(super) fn request(&self, len: u64) {
        match self.mode {
            Mode::Off => {}
            Mode::Inline => prepare_logged(self.vfs.as_ref(), &self.dir, len),
            Mode::Background => {
                let mut running = self.running.lock();
                if running.as_ref().is_some_and(|handle| !handle.is_finished()) {
                    return;
                }
                if let Some(done) = running.take() {
                    let _ = done.join();
                }
                let vfs = VfsRef::clone(&self.vfs);
                let dir = self.dir.clone();
                let spawned = std::thread::Builder::new()
                    .name("walstate-spare".into())
                    .spawn(move || prepare_logged(vfs.as_ref(), &dir, len));
                match spawned {
                    Ok(handle) => *running = Some(handle),
                    Err(err) => tracing::warn!(
                        target: "walstate",
                        dir = %self.dir.display(),
                        error = %err,
                        "could not start the thread that prepares the spare segment; the next rotation creates its segment itself"
                    ),
                }
            }
        }
    }

    /// The spare, `len` bytes of durable zeros, renamed to `into` and opened; `None`
    /// when there is none ready (or it could not be claimed: logged, and `into` is
    /// left free for the caller to create).
    pub(crate) fn claim(&self, into: &Path, len: u64) -> Option<Box<dyn VfsFile>> {
        if self.mode == Mode::Off {
            return None;
        }
        match take_spare(self.vfs.as_ref(), &self.dir, into, len) {
            Ok(file) => file,
            Err(err) => {
                tracing::warn!(
                    target: "walstate",
                    error = %err,
                    "could not claim the spare segment; creating the segment instead"
                );
                let _ = self.vfs.remove_file(into);
                None
            }
        }
    }

    /// Waits for a background preparation to end (at close: nothing writes into the
    /// store directory after its journal is gone).
    pub(super) fn finish(&self) {
        if let Some(handle) = self.running.lock().take() {
            let _ = handle.join();
        }
    }
}

fn prepare_logged(vfs: &dyn crate::io::Vfs, dir: &Path, len: u64) {
    match prepare_spare(vfs, dir, len) {
        Ok(prepared) => tracing::debug!(
            target: "walstate",
            dir = %dir.display(),
            ?prepared,
            "spare segment ready"
        ),
        Err(err) => tracing::warn!(
            target: "walstate",
            error = %err,
            "could not prepare the spare segment; the next rotation creates its segment itself"
        ),
    }
}
