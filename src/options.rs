//! Store configuration, with a builder and documented limits.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::io::{VfsRef, real_fs};
use crate::journal::{JournalOptions, SyncPolicy};

/// Default cap on how fast checkpoints are written: 32 MiB/s.
pub const CHECKPOINT_WRITE_RATE_DEFAULT: u64 = 32 << 20;

/// Default checkpoint trigger ([`Options::checkpoint_after_bytes`]): 32 MiB of journal.
pub const CHECKPOINT_AFTER_BYTES_DEFAULT: u64 = 32 << 20;

/// Most checkpoints a store may retain.
pub const CHECKPOINTS_RETAINED_MAX: usize = 16;

/// How long a shared writer waits for the writer lock before a commit (or an open)
/// fails with [`Error::Locked`], unless [`Options::lock_timeout`] says otherwise. Other
/// shared writers hold it only while they commit a group; an exclusive writer holds it
/// until it closes.
pub const SHARED_LOCK_WAIT_DEFAULT: Duration = Duration::from_secs(10);

/// Whether other processes may write to the store while this one has it open.
///
/// ```
/// use walstate::{KvStore, Options, Writers};
///
/// # let tmp = tempfile::tempdir()?;
/// # let dir = tmp.path().join("shared");
/// // A daemon and a CLI (or any two processes) writing one store: the default.
/// let daemon = KvStore::open(&dir, Options::default())?;
/// let cli = KvStore::open(&dir, Options::default())?;
/// cli.put("mode", "maintenance")?;
/// // The daemon sees the CLI's commit at its next commit, or when it asks:
/// daemon.refresh()?;
/// assert_eq!(daemon.get(b"mode")?.as_deref(), Some(&b"maintenance"[..]));
/// // Compare-and-set is evaluated against everything committed before it, by anyone.
/// assert!(daemon.cas(b"mode", Some(b"maintenance"), Some(b"serving"))?.is_ok());
/// assert!(cli.cas(b"mode", Some(b"maintenance"), Some(b"off"))?.is_err());
/// # drop((daemon, cli));
/// // One writer for the store's lifetime, as before version 0.2: others are refused.
/// let only = KvStore::open(&dir, Options::default().writers(Writers::Exclusive))?;
/// assert!(KvStore::open(&dir, Options::default()).is_err());
/// # drop(only);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Writers {
    /// Several processes write (SQLite's WAL mode is the model): a process takes the
    /// writer lock (`LOCK`) only while it commits a group, first applying what other
    /// processes committed since its last look (it reads just their new records), so a
    /// command's output, compare-and-set included, is computed against everything
    /// committed before it. Checkpoints, snapshots and restores also run holding the
    /// lock. A process sees other processes' commits at its own next commit and on
    /// [`Store::refresh`](crate::Store::refresh); [`Store::read`](crate::Store::read)
    /// alone does not look.
    ///
    /// On Linux a process committing one group after another keeps the lock between
    /// them for up to 2 ms while nobody waits (taking it once, not per group), lets go
    /// at the end of its next group when another process waits for it, and never holds
    /// it longer than 50 ms at a stretch. So a writer that opens beside it should wait
    /// for the lock a little ([`Options::lock_timeout`]; shared writers wait 10 s by
    /// default).
    ///
    /// Under [`SyncPolicy::Buffered`] the lock stays held while acknowledged commits sit
    /// in the buffer (until it is written: full, `sync`, a checkpoint, close).
    #[default]
    Shared,
    /// This process is the only writer until it closes: it holds the lock from open to
    /// close, and every other writer open fails with [`Error::Locked`] naming it.
    Exclusive,
}

/// How a store is opened and run. Start from `Options::default()` and chain setters.
///
/// The knobs that matter most: the [`SyncPolicy`] (what an acknowledged commit
/// promises), how much journal accumulates before a background checkpoint, whether a
/// missing store is created, and whether open may salvage past corruption.
///
/// ```
/// use std::time::Duration;
/// use walstate::{KvStore, Options, SyncPolicy};
///
/// # let tmp = tempfile::tempdir()?;
/// # let dir = tmp.path().join("tuned");
/// let options = Options::default()
///     // Acknowledge once written to the OS; fdatasync every 10 ms in the background.
///     .sync_policy(SyncPolicy::Interval(Duration::from_millis(10)))
///     // Checkpoint after 64 MiB of journal (None: only on `checkpoint()`).
///     .checkpoint_after_bytes(Some(64 << 20))
///     // Wait up to a second for another process's writer lock.
///     .lock_timeout(Some(Duration::from_secs(1)));
/// options.validate()?;
/// let store = KvStore::open(&dir, options)?;
/// store.put("k", "v")?;
/// store.sync()?; // everything acknowledged is durable now
/// store.close()?;
///
/// // `create_if_missing(false)` refuses a directory that holds no store.
/// let strict = Options::default().create_if_missing(false);
/// let missing = KvStore::open(tmp.path().join("typo"), strict);
/// assert!(missing.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Options {
    pub(crate) journal: JournalOptions,
    pub(crate) checkpoint_after_bytes: Option<u64>,
    pub(crate) background_checkpoints: bool,
    pub(crate) checkpoint_write_rate: Option<u64>,
    pub(crate) checkpoints_retained: usize,
    pub(crate) create_if_missing: bool,
    pub(crate) salvage: bool,
    pub(crate) lock_timeout: Option<Duration>,
    pub(crate) writers: Writers,
    pub(crate) record_writer_stats: bool,
    pub(crate) vfs: VfsRef,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("journal", &self.journal)
            .field("checkpoint_after_bytes", &self.checkpoint_after_bytes)
            .field("background_checkpoints", &self.background_checkpoints)
            .field("checkpoint_write_rate", &self.checkpoint_write_rate)
            .field("checkpoints_retained", &self.checkpoints_retained)
            .field("create_if_missing", &self.create_if_missing)
            .field("salvage", &self.salvage)
            .field("lock_timeout", &self.lock_timeout)
            .field("writers", &self.writers)
            .field("record_writer_stats", &self.record_writer_stats)
            .field("vfs", &self.vfs)
            .finish()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            journal: JournalOptions::default(),
            checkpoint_after_bytes: Some(CHECKPOINT_AFTER_BYTES_DEFAULT),
            background_checkpoints: true,
            checkpoint_write_rate: Some(CHECKPOINT_WRITE_RATE_DEFAULT),
            checkpoints_retained: 2,
            create_if_missing: true,
            salvage: false,
            lock_timeout: None,
            writers: Writers::Shared,
            record_writer_stats: true,
            vfs: real_fs(),
        }
    }
}

impl Options {
    /// Same as `Options::default()`.
    pub fn new() -> Self {
        Self::default()
    }

    /// When commits are made durable (default [`SyncPolicy::Always`]).
    pub fn sync_policy(mut self, policy: SyncPolicy) -> Self {
        self.journal.sync_policy = policy;
        self
    }

    /// Segment size before rotation (default 64 MiB; 4 KiB..=4 GiB).
    pub fn segment_size_bytes(mut self, bytes: u64) -> Self {
        self.journal.segment_size_bytes = bytes;
        self
    }

    /// Extend segments with zeros ahead of the write position, so commits rarely pay for a
    /// file-size change in their fdatasync (default on): about one commit per
    /// preallocation step pays for a size change instead of every commit.
    pub fn preallocate_segments(mut self, on: bool) -> Self {
        self.journal.preallocate = on;
        self
    }

    /// Make the next segment's file ahead of need, so a rotation only renames it into
    /// place instead of creating and fsyncing a file in the commit that rotates (default
    /// on). Made in the background once the active segment is half full, so small stores
    /// never carry one; it takes one preallocation step (4 MiB) of disk.
    pub fn spare_segment(mut self, on: bool) -> Self {
        self.journal.spare_segment = on;
        self
    }

    /// Largest encoded command (default 4 MiB; at most 64 MiB). A batch may hold many.
    pub fn record_payload_max(mut self, bytes: u32) -> Self {
        self.journal.record_payload_max = bytes;
        self
    }

    /// Most bytes written but not yet synced (default 4 MiB, the same as the default
    /// `record_payload_max`, so it does not widen the torn window; 4 KiB..=256 MiB).
    /// Under every policy but `Always` a background fdatasync starts at half of it, so
    /// commits rarely wait for one.
    pub fn unsynced_bytes_max(mut self, bytes: u64) -> Self {
        self.journal.unsynced_bytes_max = bytes;
        self
    }

    /// Under [`SyncPolicy::Buffered`], the most bytes of acknowledged commits held in the
    /// process before they are written to the OS: what a process crash can lose (default
    /// 256 KiB, 4 KiB..=256 MiB; capped at `unsynced_bytes_max`).
    pub fn write_buffer_bytes(mut self, bytes: u64) -> Self {
        self.journal.write_buffer_bytes = bytes;
        self
    }

    /// Write a checkpoint in the background once this many journal bytes were appended
    /// since the last one (default [`CHECKPOINT_AFTER_BYTES_DEFAULT`], 32 MiB); `None`
    /// checkpoints only on demand.
    pub fn checkpoint_after_bytes(mut self, bytes: Option<u64>) -> Self {
        self.checkpoint_after_bytes = bytes;
        self
    }

    /// The current checkpoint trigger (see [`Options::checkpoint_after_bytes`]).
    pub fn checkpoint_trigger_bytes(&self) -> Option<u64> {
        self.checkpoint_after_bytes
    }

    /// Whether a background thread writes a checkpoint once the trigger
    /// ([`Options::checkpoint_after_bytes`]) is reached (default true). Off, the trigger
    /// is evaluated only when the application calls [`crate::Store::checkpoint_if_due`]:
    /// for short-lived processes, which would exit before a background checkpoint
    /// finishes, and which want to report the checkpoint they wrote.
    pub fn background_checkpoints(mut self, on: bool) -> Self {
        self.background_checkpoints = on;
        self
    }

    /// Caps how fast a live store writes checkpoint and snapshot files, in bytes per
    /// second (default [`CHECKPOINT_WRITE_RATE_DEFAULT`], 32 MiB/s); `None` writes at
    /// full speed. Every commit's fdatasync is a device cache flush that must also persist
    /// whatever checkpoint bytes were written since the last one, so an unpaced
    /// checkpoint of a large state raises commit latency for its whole duration (p99 ≈ 10×
    /// at 4 committers with a 1M-key state in `benches/compare` W6; ≈ 1.1× at 32 MiB/s).
    /// The cost: a checkpoint of N bytes takes at least N / rate seconds (a 112 MiB state:
    /// 3.5 s), and memory copied on write during it grows with its length. Offline tools
    /// (the CLI) use `None`. When the store closes, a running checkpoint finishes
    /// unpaced.
    pub fn checkpoint_write_rate(mut self, bytes_per_second: Option<u64>) -> Self {
        self.checkpoint_write_rate = bytes_per_second;
        self
    }

    /// Checkpoints kept (default 2, 1..=16): a damaged newest one falls back to the next.
    pub fn checkpoints_retained(mut self, count: usize) -> Self {
        self.checkpoints_retained = count;
        self
    }

    /// Create the directory (and parents) and a new store when missing (default true).
    pub fn create_if_missing(mut self, on: bool) -> Self {
        self.create_if_missing = on;
        self
    }

    /// On mid-log corruption keep the valid prefix and move the damaged files into
    /// `quarantine/` (never deleting them) instead of failing; the recovery report names
    /// the lost LSN range. Default off.
    pub fn salvage(mut self, on: bool) -> Self {
        self.salvage = on;
        self
    }

    /// Wait up to this long for another writer to release the lock. Default: under
    /// [`Writers::Shared`], [`SHARED_LOCK_WAIT_DEFAULT`] for the open and for each commit
    /// (`None` means that default there); under [`Writers::Exclusive`], fail at once.
    pub fn lock_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Whether this writer leaves its journal counters ([`crate::JournalStats`]: fdatasync
    /// latencies, group sizes) in the store's `WRITER-STATS` file after each checkpoint
    /// and at [`crate::Store::close`], where `walstate stats` shows them (default true).
    /// Short-lived writers (the CLI's commands) turn it off so they do not replace a
    /// service's numbers with their own few.
    pub fn record_writer_stats(mut self, record: bool) -> Self {
        self.record_writer_stats = record;
        self
    }

    /// Whether other processes may write to the store at the same time (default
    /// [`Writers::Shared`]).
    pub fn writers(mut self, writers: Writers) -> Self {
        self.writers = writers;
        self
    }

    /// How long to wait for the writer lock, at open and (shared) before each commit.
    pub(crate) fn lock_wait(&self) -> Option<Duration> {
        match self.writers {
            Writers::Shared => Some(self.lock_timeout.unwrap_or(SHARED_LOCK_WAIT_DEFAULT)),
            Writers::Exclusive => self.lock_timeout,
        }
    }

    /// The file system to use (default the real one; tests pass a simulated one).
    pub fn vfs(mut self, vfs: VfsRef) -> Self {
        self.vfs = vfs;
        self
    }

    /// The journal part of the options (with the `internals` feature).
    #[cfg(feature = "internals")]
    pub fn journal_options(&self) -> &JournalOptions {
        &self.journal
    }

    /// Checks every limit.
    pub fn validate(&self) -> Result<()> {
        self.journal.validate()?;
        if !(1..=CHECKPOINTS_RETAINED_MAX).contains(&self.checkpoints_retained) {
            return Err(Error::InvalidArgument(format!(
                "checkpoints_retained = {} is outside 1..={CHECKPOINTS_RETAINED_MAX}",
                self.checkpoints_retained
            )));
        }
        if self.checkpoint_write_rate == Some(0) {
            return Err(Error::InvalidArgument(
                "checkpoint_write_rate must be positive (use None for no limit)".into(),
            ));
        }
        if self.checkpoint_after_bytes == Some(0) {
            return Err(Error::InvalidArgument(
                "checkpoint_after_bytes must be positive (use None to disable)".into(),
            ));
        }
        Ok(())
    }
}
