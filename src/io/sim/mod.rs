//! [`SimFs`]: an in-memory, deterministic file system that loses, tears and fails I/O on
//! command, so tests and fuzz targets can crash the store at any I/O call.
//!
//! # Durability model
//!
//! Every file is an inode with three views: `current` (what reads see now), `durable`
//! (what survives a crash for sure) and the list of *pending* operations made since its
//! last successful sync (`write_at`, `set_len`, `allocate`, in order). A successful
//! `sync_data`/`sync_all` replays the pending operations onto `durable`; a *failed* one
//! (injected fault) throws them away: reads still show the data, a crash loses it, and
//! later syncs only persist operations made after the failure.
//!
//! Directories map names to inodes, again as a current and a durable namespace.
//! Creating a file, each directory made by `create_dir_all`, `rename`, `remove_file` and
//! the lock-file creation of `try_lock` change the current namespace at once and are
//! appended to one ordered list of pending directory operations. `sync_dir(dir)` makes
//! durable, in order, every pending directory operation that touches `dir` (a rename
//! touches both of its directories; a mkdir touches the parent only). File syncs never
//! persist a directory entry. A file survives a crash only if a durable name reaches it
//! from the root through durable directory entries.
//!
//! # Crashes
//!
//! [`SimFs::crash`] replaces the whole file system by a post-crash image. Every pending
//! operation is cut into *units* and each unit gets a [`UnitFate`]. Units are numbered in
//! this order:
//!
//! 1. files by inode number ascending (inode numbers grow with creation order), only
//!    files that are or may become durably named (named in the durable namespace or by a
//!    pending directory operation); for each file its pending operations in order; a
//!    write is split at 512-byte-aligned *file offsets* into chunks, one unit each,
//!    lowest offset first; a `set_len` or `allocate` is one unit;
//! 2. then every pending directory operation, in the order they were made.
//!
//! A sector reaches the disk as the page held it: when a write's chunk is kept, the
//! bytes that earlier pending writes (since the file's last `set_len`) put in the same
//! sector land with it, so a later write never lands without the earlier ones to that
//! sector.
//!
//! [`SimFs::pending_units`] tells how many units a crash would see now.

// One job per file: `crash` (crash modes and the post-crash image), `faults` (the fault
// model and the admission of every call), `namespace` (paths, directories, entries and
// pending directory operations), `files` (inode contents, pending operations, space),
// `vfs_impl` (the `Vfs`/`VfsFile` implementation, handles and locks), `inspect` (test
// helpers that read or change the image without being I/O calls, and tracing),
// `errors` (the `io::Error`s the simulation returns). This file holds `SimFs`, the
// state behind its mutex and its configuration and counter API.
mod crash;
mod errors;
mod faults;
mod files;
mod inspect;
mod namespace;
#[cfg(test)]
mod tests;
mod vfs_impl;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

pub use crash::{CrashMode, UnitFate};
pub use faults::{FAULT_CLASSES, Fault, FaultKind, OpClass};
pub use inspect::TraceEntry;

use crash::splitmix64;
use faults::ActiveFault;
use files::{Inode, PendingOp};
use namespace::{DirOp, Namespace, norm, root};
use vfs_impl::HeldLock;

/// Everything the simulation knows, behind [`SimFs`]'s one mutex.
struct State {
    seed: u64,
    rng: u64,
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    cur_ns: Namespace,
    dur_ns: Namespace,
    pending_dir: Vec<DirOp>,
    locks: HashMap<PathBuf, HeldLock>,
    next_lock_id: u64,
    generation: u64,
    mutating: u64,
    reads: u64,
    syncs: u64,
    crash_at: Option<u64>,
    dead: bool,
    faults: Vec<ActiveFault>,
    space_limit: Option<u64>,
    tracing: bool,
    trace: Vec<TraceEntry>,
    read_only: BTreeSet<PathBuf>,
    sync_latency: Option<std::time::Duration>,
}

impl State {
    fn new(seed: u64) -> State {
        let mut ns = Namespace::new();
        ns.insert(root(), BTreeMap::new());
        State {
            seed,
            rng: seed,
            inodes: BTreeMap::new(),
            next_ino: 1,
            cur_ns: ns.clone(),
            dur_ns: ns,
            pending_dir: Vec::new(),
            locks: HashMap::new(),
            next_lock_id: 1,
            generation: 0,
            mutating: 0,
            reads: 0,
            syncs: 0,
            crash_at: None,
            dead: false,
            faults: Vec::new(),
            space_limit: None,
            tracing: false,
            trace: Vec::new(),
            read_only: BTreeSet::new(),
            sync_latency: None,
        }
    }
}

/// The simulated file system. See the [module documentation](self) for the durability
/// model. All state sits behind one mutex; every method is deterministic.
///
/// Write your own crash tests with it: run a store on it through [`Options::vfs`],
/// crash at any point, reopen, and check that what was acknowledged survived.
///
/// ```
/// use walstate::io::sim::{CrashMode, Fault, FaultKind, OpClass};
/// use walstate::io::{SimFs, VfsRef};
/// use walstate::{KvStore, Options, SyncPolicy};
///
/// let sim = SimFs::new(7);
/// let vfs: VfsRef = sim.clone();
/// let options = |policy| Options::default().vfs(vfs.clone()).sync_policy(policy);
///
/// // Under `Always`, an acknowledged put is durable: a crash that drops everything
/// // unsynced keeps it.
/// let store = KvStore::open("/db", options(SyncPolicy::Always))?;
/// store.put("acked", "yes")?;
/// sim.crash(CrashMode::DropUnsynced);
/// drop(store); // its handles died with the "machine"
///
/// let store = KvStore::open("/db", options(SyncPolicy::Never))?;
/// assert_eq!(store.get(b"acked")?.as_deref(), Some(&b"yes"[..]));
/// // Under `Never` a put is acknowledged before it is synced: a power loss loses it,
/// // and recovery cuts the torn tail instead of failing.
/// store.put("unsynced", "maybe")?;
/// sim.crash(CrashMode::DropUnsynced);
/// drop(store);
///
/// let store = KvStore::open("/db", options(SyncPolicy::Always))?;
/// assert_eq!(store.get(b"unsynced")?, None);
/// assert_eq!(store.get(b"acked")?.as_deref(), Some(&b"yes"[..]));
///
/// // Faults: a failed fdatasync refuses the commit and poisons the store.
/// sim.inject(Fault::once(OpClass::Sync, FaultKind::Eio));
/// assert!(store.put("lost", "no").is_err());
/// assert!(store.put("after", "no").unwrap_err().is_poisoned());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`Options::vfs`]: crate::Options::vfs
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("SimFs")
            .field("seed", &st.seed)
            .field("inodes", &st.inodes.len())
            .field("mutating_calls", &st.mutating)
            .field("dead", &st.dead)
            .finish()
    }
}

impl SimFs {
    /// A new, empty file system (only the root directory exists). `seed` drives
    /// [`SimFs::crash_random`].
    pub fn new(seed: u64) -> Arc<SimFs> {
        Arc::new(SimFs {
            state: Arc::new(Mutex::new(State::new(seed))),
        })
    }

    /// Replaces the file system, in place, by a post-crash image (see the module docs):
    /// afterwards current = durable = the image, nothing is pending, all locks are
    /// released, handles opened before are dead, the process is alive again, and the
    /// crash point ([`SimFs::crash_at_mutating_call`]) and all injected faults are cleared.
    /// Counters, the space limit, read-only dirs and tracing are kept.
    pub fn crash(&self, mode: CrashMode) {
        self.state.lock().crash(mode);
    }

    /// [`SimFs::crash`] with [`CrashMode::Random`], its seed drawn from this file
    /// system's own generator (seeded by [`SimFs::new`]).
    pub fn crash_random(&self) {
        let mut st = self.state.lock();
        let seed = splitmix64(&mut st.rng);
        st.crash(CrashMode::Random(seed));
    }

    /// How many units a crash now would assign fates to (see the module docs for their
    /// order).
    pub fn pending_units(&self) -> usize {
        self.state.lock().pending_units()
    }

    /// Mutating calls admitted so far: `write_at`, `set_len`, `sync_data`, `sync_all`,
    /// `allocate`, `open` with `CreateNew`, `create_dir_all`, `rename`, `remove_file`,
    /// `sync_dir`, `try_lock`. Failed calls count; calls refused because the process is
    /// dead (including the one that hit the crash point) do not.
    pub fn mutating_calls(&self) -> u64 {
        self.state.lock().mutating
    }

    /// Read calls admitted so far (every other trait call).
    pub fn read_calls(&self) -> u64 {
        self.state.lock().reads
    }

    /// Successful `sync_data`/`sync_all` calls so far.
    pub fn sync_calls(&self) -> u64 {
        self.state.lock().syncs
    }

    /// With `Some(n)`, the mutating call numbered `n` (0-based, counted since creation)
    /// and every later call of any kind fail with "simulated crash" and have no effect,
    /// until [`SimFs::crash`] is called. If `n` has already passed, the next mutating
    /// call dies. `None` disarms it.
    pub fn crash_at_mutating_call(&self, n: Option<u64>) {
        self.state.lock().crash_at = n;
    }

    /// Whether the simulated process is dead (the crash point was hit).
    pub fn is_dead(&self) -> bool {
        self.state.lock().dead
    }

    /// Adds a fault; several may be active (the first one that fires wins).
    pub fn inject(&self, fault: Fault) {
        self.state
            .lock()
            .faults
            .push(ActiveFault { fault, seen: 0 });
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Limits the total current length of all files (named or still open). A write
    /// that does not fit writes what fits and returns the short count, or fails with
    /// `ENOSPC` when nothing fits; `set_len`/`allocate` growth that does not fit fails
    /// whole with `ENOSPC`. Shrinking is always allowed.
    pub fn set_space_limit(&self, bytes: Option<u64>) {
        self.state.lock().space_limit = bytes;
    }

    /// Makes every file sync take this long (outside the file system's lock), as a real
    /// flush does: lets concurrency tests see group commit form.
    pub fn set_sync_latency(&self, latency: Option<std::time::Duration>) {
        self.state.lock().sync_latency = latency;
    }

    /// Bytes of writes not yet made durable by a sync, over every file: what a power
    /// loss could take away now.
    pub fn unsynced_write_bytes(&self) -> u64 {
        let st = self.state.lock();
        st.inodes
            .values()
            .flat_map(|inode| inode.pending.iter())
            .map(|op| match op {
                PendingOp::Write { data, .. } => data.len() as u64,
                PendingOp::SetLen(_) | PendingOp::Allocate(_) => 0,
            })
            .sum()
    }

    /// Bytes counted against the space limit: current lengths of all files that have a
    /// name or an open handle.
    pub fn used_bytes(&self) -> u64 {
        self.state.lock().used_bytes()
    }

    /// Makes creating, renaming into or out of, removing entries in, and making
    /// directories in `dir` fail with `EACCES` (`PermissionDenied`).
    pub fn set_read_only_dir(&self, dir: &Path, read_only: bool) {
        let dir = norm(dir);
        let mut st = self.state.lock();
        if read_only {
            st.read_only.insert(dir);
        } else {
            st.read_only.remove(&dir);
        }
    }
}
