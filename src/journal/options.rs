//! Journal configuration and its limits.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{RECORD_HEADER_LEN, RECORD_PAYLOAD_MAX_HARD, SEGMENT_HEADER_LEN};

/// When appended records are made durable, that is, what an acknowledged commit
/// survives. A process crash loses nothing acknowledged under every policy but
/// `Buffered`; a power loss loses nothing acknowledged only under `Always`.
///
/// ```
/// use std::time::Duration;
/// use walstate::{KvStore, Options, SyncPolicy};
///
/// # let tmp = tempfile::tempdir()?;
/// // Bulk load: acknowledge from an in-process buffer, then make it all durable at once.
/// let options = Options::default().sync_policy(SyncPolicy::Buffered);
/// let store = KvStore::open(tmp.path().join("bulk"), options)?;
/// for i in 0..1000u32 {
///     store.put(i.to_be_bytes(), b"row")?;
/// }
/// store.sync()?; // writes the buffer and fdatasyncs: now a power loss keeps all 1000
/// assert_eq!(store.len()?, 1000);
/// store.close()?;
///
/// // The default is `Always`: every acknowledged commit is on disk (one fdatasync shared
/// // by each group of concurrent commits). `Interval` bounds the loss window in time.
/// let every_5_ms = SyncPolicy::Interval(Duration::from_millis(5));
/// let _relaxed = Options::default().sync_policy(every_5_ms);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Acknowledge only after write + fdatasync. Appenders that arrive while a sync is in
    /// flight are written and synced together by one leader: one fdatasync for the group.
    Always,
    /// Acknowledge once written to the OS; a background thread fdatasyncs at this
    /// interval. A power loss (not a process crash) can lose up to one interval of
    /// acknowledged records, and never more than `unsynced_bytes_max` bytes.
    Interval(Duration),
    /// Acknowledge once written to the OS; sync on `sync()`, at rotation, and in the
    /// background once half of `unsynced_bytes_max` is unsynced (on the syncer thread,
    /// while appenders keep writing: an appender waits for a sync only when the whole
    /// bound would be exceeded). A power loss can lose acknowledged records.
    Never,
    /// Acknowledge once the record is in the journal's in-process buffer; the buffer is
    /// written to the OS when it reaches `write_buffer_bytes`, and on `sync()`, at
    /// rotation, before a checkpoint, on close and on drop. Syncs as under `Never`.
    /// Besides what `Never` can lose at a power loss, a **process crash** loses the
    /// buffered records (at most `write_buffer_bytes`). A failed write of the buffer
    /// **poisons** the store: the records were acknowledged and applied, so the state is
    /// ahead of the file, and only a reopen gets back to what is on disk.
    /// Readers in other processes (`open_read_only`, `refresh`) see buffered commits
    /// only once they are written. For bulk loads: one system call per buffer instead of
    /// one per commit.
    Buffered,
}

/// Configuration of a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalOptions {
    /// When records become durable.
    pub sync_policy: SyncPolicy,
    /// A segment is rotated once appending a request would take it past this size.
    pub segment_size_bytes: u64,
    /// Extend segments with zeros ahead of the write position (up to
    /// `segment_size_bytes`, in steps of [`super::PREALLOCATE_STEP_BYTES`]), so a commit's
    /// fdatasync rarely has to update the file size: about one commit in every step pays
    /// for a size change instead of every commit. Segments written this way carry the
    /// `PREALLOCATED` header flag. On by default.
    pub preallocate: bool,
    /// Make the next segment's file ahead of need, so that a rotation only renames it
    /// into place instead of creating, zero-filling and fsyncing a file on the commit
    /// path of the commit that rotates (`wal-format.md` section 3, "spare segment"). A
    /// background thread makes it once the active segment is half full (inline, in that
    /// commit, on a file system without background work: a simulation), so a small store
    /// never carries one; it costs one preallocation step of disk
    /// ([`super::PREALLOCATE_STEP_BYTES`], or the segment size if smaller). Needs
    /// `preallocate`. On by default.
    pub spare_segment: bool,
    /// The largest payload of a single record.
    pub record_payload_max: u32,
    /// The most bytes written but not yet synced at any moment. Bounds one group-commit
    /// batch and, with the record limit, the torn-tail window recorded in each segment.
    /// Under every policy but `Always` a background fdatasync starts at half of it.
    pub unsynced_bytes_max: u64,
    /// Under [`SyncPolicy::Buffered`], the most bytes of acknowledged records held in the
    /// process before they are written to the OS; `unsynced_bytes_max` caps it.
    pub write_buffer_bytes: u64,
    /// The schema of the commands appended ([`crate::format::SchemaId`]; 0: none), written
    /// into every new segment's header. A last segment of another schema is never
    /// appended to: new records start a fresh segment. [`crate::Store`] sets it from its
    /// state type; a journal used directly may leave it 0.
    pub schema_id: u64,
}

/// Smallest allowed segment size.
pub const SEGMENT_SIZE_MIN: u64 = 4096;
/// Largest allowed segment size (4 GiB).
pub const SEGMENT_SIZE_MAX: u64 = 4 << 30;
/// Smallest allowed bound on unsynced bytes.
pub const UNSYNCED_BYTES_MIN: u64 = 4096;
/// Largest allowed bound on unsynced bytes (256 MiB).
pub const UNSYNCED_BYTES_MAX: u64 = 256 << 20;
/// Smallest allowed write buffer of [`SyncPolicy::Buffered`].
pub const WRITE_BUFFER_BYTES_MIN: u64 = 4096;

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            sync_policy: SyncPolicy::Always,
            segment_size_bytes: 64 << 20,
            preallocate: true,
            spare_segment: true,
            record_payload_max: 4 << 20,
            unsynced_bytes_max: 4 << 20,
            write_buffer_bytes: 256 << 10,
            schema_id: 0,
        }
    }
}

impl JournalOptions {
    /// The torn-tail window written into each segment header: the most bytes that can be
    /// written but not synced, which is the larger of the unsynced bound and one frame.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn torn_window_bytes(&self) -> u64 {
        let frame_max = u64::from(self.record_payload_max) + RECORD_HEADER_LEN as u64;
        self.unsynced_bytes_max.max(frame_max)
    }

    /// The write buffer that [`SyncPolicy::Buffered`] fills before writing: 0 under the
    /// other policies, which write every round.
    pub(crate) fn buffered_bytes_max(&self) -> u64 {
        match self.sync_policy {
            SyncPolicy::Buffered => self.write_buffer_bytes.min(self.unsynced_bytes_max),
            _ => 0,
        }
    }

    /// Checks every limit; the error names the option and its allowed range.
    pub fn validate(&self) -> Result<()> {
        let range = |name: &str, value: u64, min: u64, max: u64| -> Result<()> {
            if value < min || value > max {
                return Err(Error::InvalidArgument(format!(
                    "{name} = {value} is outside {min}..={max}"
                )));
            }
            Ok(())
        };
        range(
            "segment_size_bytes",
            self.segment_size_bytes,
            SEGMENT_SIZE_MIN.max(SEGMENT_HEADER_LEN as u64),
            SEGMENT_SIZE_MAX,
        )?;
        range(
            "record_payload_max",
            u64::from(self.record_payload_max),
            1,
            u64::from(RECORD_PAYLOAD_MAX_HARD),
        )?;
        range(
            "unsynced_bytes_max",
            self.unsynced_bytes_max,
            UNSYNCED_BYTES_MIN,
            UNSYNCED_BYTES_MAX,
        )?;
        range(
            "write_buffer_bytes",
            self.write_buffer_bytes,
            WRITE_BUFFER_BYTES_MIN,
            UNSYNCED_BYTES_MAX,
        )?;
        if let SyncPolicy::Interval(every) = self.sync_policy
            && every.is_zero()
        {
            return Err(Error::InvalidArgument(
                "SyncPolicy::Interval needs a non-zero duration".into(),
            ));
        }
        Ok(())
    }
}
