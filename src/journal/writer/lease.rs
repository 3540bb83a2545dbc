//! The writer lease of a shared writer: the store's writer lock (`LOCK`), taken for a
//! commit group and released after it, so other processes can write in between.
//!
//! The lease is the process's: while it is held, every round of this process writes
//! without taking it again. It is released at the end of a round that leaves nothing
//! acknowledged in the write buffer (under `Buffered` acknowledged records sit there
//! until written, and nobody else may write before them), unless a section pinned it
//! (a checkpoint, a snapshot, a restore: see [`LeasePin`]). Everything here runs under
//! the journal's writer mutex, so the lease changes hands only between rounds.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::io::{LockAttempt, LockFile, LockGuard, VfsRef};

/// How a shared writer takes the store's writer lock.
pub(crate) struct LeaseConfig {
    pub(crate) vfs: VfsRef,
    /// The lock file.
    pub(crate) path: PathBuf,
    /// What the lock file records while this process holds it.
    pub(crate) holder: String,
    /// How long to wait for another process to release it.
    pub(crate) wait: Duration,
}

pub(super) struct Lease {
    config: LeaseConfig,
    /// The lock file kept open, where the file system offers that.
    file: Option<Arc<dyn LockFile>>,
    held: Mutex<Option<Box<dyn LockGuard>>>,
    /// Sections that keep the lease across rounds.
    pins: AtomicUsize,
}

/// Shortest and longest pause between two attempts to take a lock someone holds. Short
/// first: a shared writer holds it for about one fdatasync.
const RETRY_PAUSE_MIN: Duration = Duration::from_micros(20);
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(2);

impl Lease {
    pub(super) fn new(config: LeaseConfig) -> Result<Lease> {
        let file = config
            .vfs
            .open_lock(&config.path)
            .map_err(|err| Error::io("open writer lock", &config.path, err))?;
        Ok(Lease {
            config,
            file,
            held: Mutex::new(None),
            pins: AtomicUsize::new(0),
        })
    }

    pub(super) fn is_held(&self) -> bool {
        self.held.lock().is_some()
    }

    /// Takes the lease if this process does not hold it, waiting for another holder up
    /// to the configured wait. Returns whether it was taken now (then what others
    /// appended since the last look must be caught up with before writing).
    pub(super) fn acquire(&self) -> Result<bool> {
        let mut held = self.held.lock();
        if held.is_some() {
            return Ok(false);
        }
        let deadline = Instant::now() + self.config.wait;
        let mut pause = RETRY_PAUSE_MIN;
        loop {
            match self.try_once()? {
                LockAttempt::Acquired(guard) => {
                    *held = Some(guard);
                    return Ok(true);
                }
                LockAttempt::Held(holder) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(Error::Locked {
                            path: self.config.path.clone(),
                            holder,
                        });
                    }
                    std::thread::sleep(pause.min(deadline - now));
                    pause = (pause * 2).min(RETRY_PAUSE_MAX);
                }
            }
        }
    }

    /// Takes the lease only if it is free right now. Returns whether this process holds
    /// it afterwards, and whether it was taken now.
    pub(super) fn try_acquire(&self) -> Result<(bool, bool)> {
        let mut held = self.held.lock();
        if held.is_some() {
            return Ok((true, false));
        }
        match self.try_once()? {
            LockAttempt::Acquired(guard) => {
                *held = Some(guard);
                Ok((true, true))
            }
            LockAttempt::Held(_) => Ok((false, false)),
        }
    }

    fn try_once(&self) -> Result<LockAttempt> {
        let attempt = match &self.file {
            Some(file) => file.try_acquire(&self.config.holder),
            None => self
                .config
                .vfs
                .try_lock(&self.config.path, &self.config.holder),
        };
        attempt.map_err(|err| Error::io("take writer lock", &self.config.path, err))
    }

    /// Releases the lease unless a section pinned it or `buffered` bytes of acknowledged
    /// records still wait in the write buffer.
    pub(super) fn release_if_idle(&self, buffered: u64) {
        if buffered == 0 && self.pins.load(Ordering::Acquire) == 0 {
            self.held.lock().take();
        }
    }

    /// Releases the lease whatever holds it (the journal closes, or is poisoned).
    pub(super) fn release(&self) {
        self.held.lock().take();
    }

    pub(super) fn pin(&self) {
        self.pins.fetch_add(1, Ordering::AcqRel);
    }

    /// Ends one pin; returns whether none is left.
    pub(super) fn unpin(&self) -> bool {
        let before = self.pins.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "a lease is unpinned only after it was pinned");
        before == 1
    }
}
