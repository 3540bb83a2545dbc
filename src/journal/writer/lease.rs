//! The writer lease of a shared writer: the store's writer lock (`LOCK`), taken for a
//! commit group and released after it, so other processes can write in between.
//!
//! The lease is the process's: while it is held, every round of this process writes
//! without taking it again. It is released at the end of a round that leaves nothing
//! acknowledged in the write buffer (under `Buffered` acknowledged records sit there
//! until written, and nobody else may write before them), unless a section pinned it
//! (a checkpoint, a snapshot, a restore: see [`LeasePin`]). Everything here runs under
//! the journal's writer mutex, so the lease changes hands only between rounds.
//!
//! Lingering: where the file system can mark waiters ([`LockFile::others_waiting`]),
//! a round that would release the lease while nobody waits keeps it for [`LINGER`]
//! more, so a process committing one group after another takes the lock once, not per
//! group (and skips the look for other processes' appends: nobody else can have
//! written). The lease keeper ([`super::lease_keeper`]) lets go once the linger runs
//! out; a waiter is let in at the end of the holder's next round, after which (for
//! [`CONTENDED_FOR`]) the lease is released after every round as if it could not
//! linger; nobody holds the lock longer than [`HOLD_MAX`] at a stretch (which bounds
//! the wait of a process that could not mark itself).

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
    held: Mutex<Option<Held>>,
    /// Sections that keep the lease across rounds.
    pins: AtomicUsize,
    /// When this process last saw another wait for the lock (or waited itself): for
    /// [`CONTENDED_FOR`] after that the lease does not linger.
    contended_at: Mutex<Option<Instant>>,
}

struct Held {
    _guard: Box<dyn LockGuard>,
    since: Instant,
    /// When a lingering lease is let go, unless a round extends it first.
    linger_until: Option<Instant>,
}

/// How long a lease is kept after a round that would have released it, when nobody
/// waits: long enough for the next commit of a process committing one after another.
pub(super) const LINGER: Duration = Duration::from_millis(2);

/// How long after the last sign of another writer (one waiting for the lock, or this
/// process waiting for it) the lease is released after every round instead of
/// lingering: writers taking turns hand the lock over at once.
pub(super) const CONTENDED_FOR: Duration = Duration::from_millis(20);

/// The longest a lease is held at a stretch (it is let go at the end of the round that
/// passes it).
pub(super) const HOLD_MAX: Duration = Duration::from_millis(50);

/// Shortest and longest pause between two attempts to take a lock someone holds. Short
/// first: a shared writer holds it for about one fdatasync, and lets go at the end of
/// the round in which it sees this process waiting. (A 200 µs ceiling measured worse
/// at 4 processes on 2 cores: the waiters' wake-ups took the CPU, p99 13 ms.)
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
            contended_at: Mutex::new(None),
        })
    }

    pub(super) fn is_held(&self) -> bool {
        self.held.lock().is_some()
    }

    /// Whether this lease may linger (the lock file can tell about waiters).
    pub(super) fn can_linger(&self) -> bool {
        self.file
            .as_ref()
            .is_some_and(|file| file.others_waiting().is_some())
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
        // Marked waiting while it waits, so a lingering holder lets go.
        let mut waiting = None;
        loop {
            match self.try_once()? {
                LockAttempt::Acquired(guard) => {
                    *held = Some(Held::new(guard));
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
                    if waiting.is_none() {
                        waiting = self.file.as_ref().and_then(|file| file.mark_waiting());
                        *self.contended_at.lock() = Some(now);
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
                *held = Some(Held::new(guard));
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

    /// The end of a round: keeps the lease if a section pinned it or `buffered` bytes of
    /// acknowledged records still wait in the write buffer; otherwise lets it linger
    /// when nobody waits and it has not been held for [`HOLD_MAX`], else releases it.
    /// Returns when a linger it started runs out (the keeper lets go then, unless a
    /// round extends it).
    pub(super) fn after_round(&self, buffered: u64) -> Option<Instant> {
        let mut held = self.held.lock();
        let current = held.as_mut()?;
        if buffered > 0 || self.pins.load(Ordering::Acquire) > 0 {
            return None;
        }
        let now = Instant::now();
        let waiters = self.file.as_ref().and_then(|file| file.others_waiting());
        let mut contended_at = self.contended_at.lock();
        if waiters == Some(true) {
            *contended_at = Some(now);
        }
        let contended = contended_at.is_some_and(|at| now.duration_since(at) < CONTENDED_FOR);
        if waiters == Some(false) && !contended && now.duration_since(current.since) < HOLD_MAX {
            let until = now + LINGER;
            current.linger_until = Some(until);
            return Some(until);
        }
        *held = None;
        None
    }

    /// The keeper's look at a lingering lease, with the writer's mutex held (no round
    /// runs): lets it go once its linger ran out, unless a section pinned it or
    /// `buffered` bytes wait. Returns when to look again, or `None` once it is not held.
    pub(super) fn expire_linger(&self, buffered: u64) -> Option<Instant> {
        let mut held = self.held.lock();
        let current = held.as_ref()?;
        let now = Instant::now();
        if buffered > 0 || self.pins.load(Ordering::Acquire) > 0 {
            // The section's end, or the write of the buffer, ends with a round.
            return Some(now + LINGER);
        }
        match current.linger_until {
            Some(until) if until > now => Some(until),
            _ => {
                *held = None;
                None
            }
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

impl Held {
    fn new(guard: Box<dyn LockGuard>) -> Held {
        Held {
            _guard: guard,
            since: Instant::now(),
            linger_until: None,
        }
    }
}
