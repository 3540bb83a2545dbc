//! Appending to the journal: LSN assignment, group commit, rotation, segment deletion,
//! the unsynced-bytes bound and the failure rules (a failed write leaves no partial
//! record; a failed fsync poisons).
//!
//! Three layers, each in its own file, under the [`Journal`] API here:
//! - [`segment_writer`]: framing, placement, rotation and cut-back on the active segment,
//!   with no concurrency (it runs under the writer's mutex);
//! - [`barrier`]: the group-commit queue, leadership and hook turns, and the lone
//!   appender's fast paths; [`round`] is what a leader does with a batch;
//! - [`syncer`]: which written bytes are durable, and the background fdatasyncs.
//!
//! Every decision that depends on the sync policy is one question to the
//! [`strategy::SyncStrategy`]; [`health`] says whether the journal is still usable.

mod barrier;
mod catch_up;
mod health;
mod histogram;
mod lease;
mod lease_keeper;
mod limits;
mod round;
mod segment_writer;
mod spare_maker;
mod shared_files;
mod strategy;
mod stream;
mod syncer;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use self::barrier::{Barrier, FastPath, Requests};
pub(crate) use self::catch_up::{CatchUpFn, CaughtUpTo};
use self::health::Health;
pub use self::histogram::{HISTOGRAM_BUCKETS, Histogram};
use self::histogram::AtomicHistogram;
pub(crate) use self::lease::LeaseConfig;
use self::lease::Lease;
use self::lease_keeper::{LeaseKeeper, spawn_lease_keeper};
#[cfg(feature = "internals")]
pub use self::segment_writer::PREALLOCATE_STEP_BYTES;
pub(crate) use self::spare_maker::SpareMaker;
#[cfg(feature = "internals")]
pub use self::limits::GROUP_BYTES_MAX;
use self::segment_writer::{LiveSegment, ResumedSegment, SegmentPlan, SegmentWriter};
use self::strategy::{SyncStrategy, SyncerDuty};
pub use self::stream::{AppendStream, Ticket};
use self::syncer::{Syncer, spawn_syncer};
use super::identity::{self, IdentityFile};
use super::options::JournalOptions;
use super::scan::{DefectKind, ScanOutcome};
use crate::error::{Error, Result};
use crate::format::{RECORD_HEADER_LEN, SEGMENT_FLAG_PREALLOCATED, StoreId};
use crate::io::{OpenMode, VfsFile, VfsRef};

/// One record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordToAppend {
    /// Record kind, 1..=255.
    pub kind: u8,
    /// Payload bytes, at most `record_payload_max`.
    pub payload: Vec<u8>,
}


/// Runs once the request is durable (under the sync policy), in LSN order, with the
/// request's first LSN. Its return value is handed back to the appender.
pub type DurableHook = Box<dyn FnOnce(u64) -> Box<dyn Any + Send> + Send>;

/// Counters describing what the journal did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Records appended and acknowledged.
    pub records: u64,
    /// Frame bytes appended and acknowledged.
    pub bytes: u64,
    /// fdatasync calls on segment files.
    pub syncs: u64,
    /// Leader rounds (write calls of a group commit).
    pub batches: u64,
    /// How long each fdatasync of a segment took, in microseconds (the appenders' and
    /// the background syncer's).
    pub fsync_micros: Histogram,
    /// The group-commit group sizes: records made durable together, by a round (or
    /// by a part of one that a rotation or the unsynced bound ended).
    pub records_per_group: Histogram,
}

/// The counters only ever changed with the writer locked: a plain load and store, not a
/// locked read-modify-write (readers of the stats see either value).
#[derive(Default)]
struct Counters {
    records: AtomicU64,
    bytes: AtomicU64,
    batches: AtomicU64,
    records_per_group: AtomicHistogram,
}

impl Counters {
    fn round_started(&self) {
        bump(&self.batches, 1);
    }

    fn completed(&self, records: u64, bytes: u64) {
        bump(&self.records, records);
        bump(&self.bytes, bytes);
    }

    /// A group of `records` records was made durable together.
    fn group_completed(&self, records: u64) {
        if records > 0 {
            self.records_per_group.record(records);
        }
    }
}

/// A hook boxed for the queue, its output erased to `Any` (a queued request's waiter
/// downcasts it back).
fn boxed_hook<T: Send + 'static>(hook: impl FnOnce(u64) -> T + Send + 'static) -> DurableHook {
    Box::new(move |lsn| Box::new(hook(lsn)) as Box<dyn Any + Send>)
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Ordering::Relaxed) + by, Ordering::Relaxed);
}

/// What the layers share: each layer's state, and the strategy they consult.
struct Shared {
    dir: PathBuf,
    /// The store every segment this journal creates names.
    store_id: StoreId,
    options: JournalOptions,
    strategy: SyncStrategy,
    health: Arc<Health>,
    barrier: Barrier,
    writer: Mutex<SegmentWriter>,
    syncer: Syncer,
    counters: Counters,
    /// A shared writer's lease on the writer lock (`None`: the store holds the lock for
    /// the journal's lifetime). Taken and released under the writer mutex.
    lease: Option<Lease>,
    /// How a shared writer applies what other processes appended (set by the store).
    catch_up: OnceLock<CatchUpFn>,
    /// Lets go of a lingering lease (a shared writer whose lock file can mark waiters).
    keeper: LeaseKeeper,
}

/// The journal's writer. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Journal {
    shared: Arc<Shared>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    keeper: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.shared.dir)
            .field("next_lsn", &self.next_lsn())
            .finish()
    }
}

impl Journal {
    /// Opens the journal for appending after a scan. A torn tail in `outcome` must have
    /// been truncated already (see [`super::truncate_torn_tail`]); any other defect is refused.
    pub fn resume(
        vfs: VfsRef,
        dir: &Path,
        options: JournalOptions,
        outcome: &ScanOutcome,
    ) -> Result<Journal> {
        Self::resume_with(vfs, dir, options, outcome, None)
    }

    /// [`Journal::resume`] for a shared writer: the writer lock is taken for each commit
    /// group (see [`crate::Writers::Shared`]), and what other processes appended is
    /// applied first by the store's catch-up (see [`Journal::set_catch_up`]).
    pub(crate) fn resume_shared(
        vfs: VfsRef,
        dir: &Path,
        options: JournalOptions,
        outcome: &ScanOutcome,
        lease: LeaseConfig,
    ) -> Result<Journal> {
        Self::resume_with(vfs, dir, options, outcome, Some(lease))
    }

    fn resume_with(
        vfs: VfsRef,
        dir: &Path,
        options: JournalOptions,
        outcome: &ScanOutcome,
        lease: Option<LeaseConfig>,
    ) -> Result<Journal> {
        options.validate()?;
        let store_id = store_identity(vfs.as_ref(), dir, outcome)?;
        let placement = journal_after(&vfs, &options, outcome, store_id)?;
        let plan = SegmentPlan::new(Arc::clone(&vfs), dir.to_path_buf(), store_id, &options);
        let writer = placement.writer(plan);
        let lease = lease.map(Lease::new).transpose()?;
        let strategy = SyncStrategy::new(&options);
        let health = Arc::new(Health::default());
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            store_id,
            options,
            strategy,
            health: Arc::clone(&health),
            barrier: Barrier::default(),
            writer: Mutex::new(writer),
            syncer: Syncer::new(health, strategy),
            counters: Counters::default(),
            lease,
            catch_up: OnceLock::new(),
            keeper: LeaseKeeper::default(),
        });
        let syncer = match strategy.syncer_duty() {
            SyncerDuty::None => None,
            SyncerDuty::OnDemand => Some(spawn_syncer(Arc::clone(&shared), None)?),
            SyncerDuty::OnDemandAndEvery(every) => {
                Some(spawn_syncer(Arc::clone(&shared), Some(every))?)
            }
        };
        let keeper = match &shared.lease {
            Some(lease) if lease.can_linger() => Some(spawn_lease_keeper(Arc::clone(&shared))?),
            _ => None,
        };
        Ok(Journal {
            shared,
            syncer: Mutex::new(syncer),
            keeper: Mutex::new(keeper),
        })
    }

    /// Creates the first segment now when there is none (a new store), so that a disk
    /// too full to hold one fails the open creating the store, which then undoes the
    /// creation, instead of its first commit.
    pub(crate) fn start_first_segment(&self) -> Result<()> {
        let mut writer = self.shared.writer.lock();
        if writer.has_active_segment() || !writer.segment_paths().is_empty() {
            return Ok(());
        }
        self.shared.rotate(&mut writer)
    }

    /// Installs how a shared writer applies the records other processes appended (the
    /// store's typed catch-up); called once, right after the journal is resumed.
    pub(crate) fn set_catch_up(&self, catch_up: CatchUpFn) {
        assert!(
            self.shared.catch_up.set(catch_up).is_ok(),
            "a journal's catch-up is installed once"
        );
    }

    /// Whether this journal is a shared writer's (takes the writer lock per commit).
    pub(crate) fn is_shared(&self) -> bool {
        self.shared.lease.is_some()
    }

    /// A shared writer: takes the writer lock and applies what other processes appended
    /// since the last look, in turn after every commit of this process already made
    /// durable (a round with no records of its own). Nothing to do for an exclusive one.
    pub(crate) fn catch_up_now(&self) -> Result<()> {
        if self.shared.lease.is_none() {
            return Ok(());
        }
        self.check_usable()?;
        self.shared.submit(Requests::new(), 0, None).map(|_| ())
    }

    /// Holds a shared writer's lock until the returned pin is dropped, caught up first
    /// ([`Journal::catch_up_now`]): for work no other process may interleave with (a
    /// checkpoint and the segments it deletes, a snapshot, a restore, which must know the
    /// LSN its record gets). This process's own commits go on meanwhile.
    pub(crate) fn pin_lease(&self) -> Result<LeasePin> {
        let pin = LeasePin {
            shared: Arc::clone(&self.shared),
        };
        if let Some(lease) = &self.shared.lease {
            lease.pin();
            // Dropping `pin` on an error unpins again.
            self.catch_up_now()?;
        }
        Ok(pin)
    }

    /// The id of the store this journal belongs to (carried by every segment it creates).
    pub fn store_id(&self) -> StoreId {
        self.shared.store_id
    }

    /// The options the journal runs with.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn options(&self) -> &JournalOptions {
        &self.shared.options
    }

    /// The LSN the next appended record will get.
    pub fn next_lsn(&self) -> u64 {
        self.shared.writer.lock().next_lsn()
    }

    /// What the journal did so far.
    pub fn stats(&self) -> JournalStats {
        let counters = &self.shared.counters;
        JournalStats {
            records: counters.records.load(Ordering::Relaxed),
            bytes: counters.bytes.load(Ordering::Relaxed),
            syncs: self.shared.syncer.syncs(),
            batches: counters.batches.load(Ordering::Relaxed),
            fsync_micros: self.shared.syncer.fsync_micros(),
            records_per_group: counters.records_per_group.snapshot(),
        }
    }

    /// Appends one record; returns its LSN once durable under the sync policy.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn append(&self, kind: u8, payload: Vec<u8>) -> Result<u64> {
        self.append_record_with(RecordToAppend { kind, payload }, |_| ())
            .map(|(lsn, ())| lsn)
    }

    /// Appends records as one atomic group with consecutive LSNs: after a crash either all
    /// of them are there or none. Returns the first LSN once durable.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn append_group(&self, records: Vec<RecordToAppend>) -> Result<u64> {
        self.append_with(records, |_| ())
            .map(|(first_lsn, ())| first_lsn)
    }

    /// Like [`Journal::append_group`], and runs `hook` with the first LSN once the group
    /// is durable, in LSN order relative to every other append, returning its output.
    pub fn append_with<T: Send + 'static>(
        &self,
        records: Vec<RecordToAppend>,
        hook: impl FnOnce(u64) -> T + Send + 'static,
    ) -> Result<(u64, T)> {
        self.append_requests_with(Requests::from_vec(records), hook)
    }

    /// Like [`Journal::append_with`] for a single record, which then needs no vector.
    pub fn append_record_with<T: Send + 'static>(
        &self,
        record: RecordToAppend,
        hook: impl FnOnce(u64) -> T + Send + 'static,
    ) -> Result<(u64, T)> {
        self.append_requests_with(smallvec::smallvec![record], hook)
    }

    /// Tries the fast paths in order (buffer it, lead a round of it alone), then queues.
    fn append_requests_with<T: Send + 'static>(
        &self,
        records: Requests<RecordToAppend>,
        hook: impl FnOnce(u64) -> T + Send + 'static,
    ) -> Result<(u64, T)> {
        self.check_usable()?;
        let frame_bytes = limits::frame_bytes(&records, self.shared.options.record_payload_max)?;
        let shared = &self.shared;
        let (records, hook) = match shared.append_to_buffer(records, frame_bytes, hook) {
            FastPath::Done(result) => return result,
            FastPath::Declined(records, hook) => (records, hook),
        };
        let (records, hook) = match shared.lead_own_round(records, frame_bytes, hook) {
            FastPath::Done(result) => return result,
            FastPath::Declined(records, hook) => (records, hook),
        };
        let done = shared.submit(records, frame_bytes, Some(boxed_hook(hook)))?;
        match done.output.map(|output| output.downcast::<T>()) {
            Some(Ok(output)) => Ok((done.first_lsn, *output)),
            _ => unreachable!("a queued request's hook output has the hook's type"),
        }
    }

    /// Makes everything appended so far durable, writing out what
    /// [`SyncPolicy::Buffered`](super::SyncPolicy::Buffered) holds first (a no-op under `Always`).
    pub fn sync(&self) -> Result<()> {
        self.check_usable()?;
        let mut writer = self.shared.writer.lock();
        let result = self.shared.write_and_sync(&mut writer);
        self.shared.release_lease_if_idle(&writer);
        result
    }

    /// Returns an error if the journal is poisoned or closed.
    pub fn check_usable(&self) -> Result<()> {
        self.shared.health.check_usable()
    }

    /// The poison cause, if the journal is poisoned.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn poison_cause(&self) -> Option<String> {
        self.shared.health.cause()
    }

    /// Poisons the journal from outside (the store does this when a checkpoint's fsync
    /// fails): every later call errors until reopened.
    pub fn poison(&self, cause: String) {
        self.shared.health.poison(cause);
    }

    /// Deletes segments all of whose records have LSN <= `lsn` (never the active one),
    /// oldest first, fsyncing the directory after each so the files left are always a
    /// contiguous suffix. Returns the deleted paths.
    pub fn delete_segments_through(&self, lsn: u64) -> Result<Vec<PathBuf>> {
        self.check_usable()?;
        let mut writer = self.shared.writer.lock();
        if self.shared.lease.is_some() {
            return self.shared.delete_shared_segments_through(&mut writer, lsn);
        }
        let vfs = Arc::clone(&writer.plan.vfs);
        let dir = &self.shared.dir;
        let mut deleted = Vec::new();
        while let Some(path) = writer.oldest_deletable(lsn) {
            vfs.remove_file(&path)
                .map_err(|err| Error::io("delete segment", &path, err))?;
            writer.forget_oldest();
            vfs.sync_dir(dir)
                .map_err(|err| Error::io("fsync directory", dir, err))?;
            deleted.push(path);
        }
        Ok(deleted)
    }

    /// Paths of the live segment files, oldest first.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.shared.writer.lock().segment_paths()
    }

    /// Stops the background syncer and makes everything appended durable.
    pub fn close(&self) -> Result<()> {
        self.stop_syncer();
        let shared = &self.shared;
        let mut writer = shared.writer.lock();
        let result = if shared.health.is_poisoned() {
            Ok(())
        } else {
            shared
                .write_and_sync(&mut writer)
                .and_then(|()| shared.seal_if_last(&mut writer))
        };
        if let Some(lease) = &shared.lease {
            lease.release();
        }
        // Still under the writer's mutex: an append that takes it after the final sync
        // finds the journal closed and is refused, instead of being acknowledged into
        // a buffer (or a file) that nothing will sync again.
        shared.health.close();
        drop(writer);
        result
    }

    fn stop_syncer(&self) {
        let spare = Arc::clone(&self.shared.writer.lock().plan.spare);
        spare.finish();
        self.shared.syncer.stop();
        if let Some(handle) = self.syncer.lock().take() {
            let _ = handle.join();
        }
        self.shared.keeper.stop();
        if let Some(handle) = self.keeper.lock().take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Journal {
    /// Stops the syncer and hands records [`SyncPolicy::Buffered`](super::SyncPolicy::Buffered) still holds to the OS
    /// (best effort, like a process exit after `Never`: no fdatasync; a failure poisons,
    /// and the next open recovers what is on disk).
    fn drop(&mut self) {
        self.stop_syncer();
        if self.shared.health.check_usable().is_ok() {
            let mut writer = self.shared.writer.lock();
            let _ = self.shared.write_buffered(&mut writer);
        }
        if let Some(lease) = &self.shared.lease {
            lease.release();
        }
    }
}

/// A shared writer's lock held for a section (see [`Journal::pin_lease`]).
pub(crate) struct LeasePin {
    shared: Arc<Shared>,
}

impl Drop for LeasePin {
    fn drop(&mut self) {
        if let Some(lease) = &self.shared.lease
            && lease.unpin()
        {
            let writer = self.shared.writer.lock();
            self.shared.release_lease_if_idle(&writer);
        }
    }
}

/// Where a journal stands after a scan: its live segments, the next LSN, the last
/// segment if new records can go into it, and otherwise the end of the last one's
/// records (where a shared writer looks for other processes' appends).
struct Placement {
    segments: Vec<LiveSegment>,
    next_lsn: u64,
    resumed: Option<ResumedSegment>,
    tail_offset: u64,
}

impl Placement {
    /// A segment writer placed here.
    fn writer(self, plan: SegmentPlan) -> SegmentWriter {
        let mut writer = SegmentWriter::new(plan, self.segments, self.next_lsn, self.resumed);
        if !writer.has_active_segment() {
            writer.set_tail_offset(self.tail_offset);
        }
        writer
    }
}

/// Where a journal resumes after `outcome`. A torn tail in `outcome` must have been
/// truncated already; any other defect is refused.
fn journal_after(
    vfs: &VfsRef,
    options: &JournalOptions,
    outcome: &ScanOutcome,
    store_id: StoreId,
) -> Result<Placement> {
    let mut valid_end_of_last = None;
    if let Some(defect) = &outcome.defect {
        if defect.kind != DefectKind::TornTail {
            return Err(defect.to_error());
        }
        valid_end_of_last = Some(defect.offset);
    }
    let segments: Vec<LiveSegment> = outcome
        .segments
        .iter()
        .map(|summary| LiveSegment {
            seq: summary.seq,
            first_lsn: summary.first_lsn,
            path: summary.path.clone(),
        })
        .collect();
    let next_lsn = outcome.next_lsn.max(1);
    let resumed = resume_last_segment(vfs, options, outcome, store_id, valid_end_of_last)?;
    let tail_offset = outcome
        .segments
        .last()
        .filter(|last| last.header.is_some())
        .map_or(0, |last| valid_end_of_last.unwrap_or(last.valid_end));
    Ok(Placement {
        segments,
        next_lsn,
        resumed,
        tail_offset,
    })
}

/// The last segment, opened to keep appending to it, if its header matches these options
/// (its torn window must stay an honest bound) and the journal does not end before the
/// checkpoint (then the next LSN starts a fresh segment). Either way its tail is made
/// durable first.
fn resume_last_segment(
    vfs: &VfsRef,
    options: &JournalOptions,
    outcome: &ScanOutcome,
    store_id: StoreId,
    valid_end_of_last: Option<u64>,
) -> Result<Option<ResumedSegment>> {
    let Some(last) = outcome.segments.last() else {
        return Ok(None);
    };
    let Some(header) = last.header else {
        return Ok(None);
    };
    let file = vfs
        .open(&last.path, OpenMode::ReadWrite)
        .map_err(|err| Error::io("open segment", &last.path, err))?;
    // A crashed writer may have left bytes that were written but never synced, and one
    // poisoned by a failed fsync may have left bytes the kernel already dropped while
    // the page cache still shows them (a later fsync would not write them). Either way
    // they lie within the torn window before the valid end: write that range again as
    // read, then fdatasync, so everything this writer builds on is durable and a
    // checkpoint never claims what could be lost.
    let valid_end = valid_end_of_last.unwrap_or(last.valid_end);
    rewrite_and_sync(
        file.as_ref(),
        &last.path,
        last.synced_through.min(valid_end),
        valid_end,
    )?;
    let records_end_lsn = last.last_lsn.map_or(last.first_lsn, |lsn| lsn + 1);
    // A version-1 segment, or one with other limits or of another schema, is left as it
    // is: new records go to a fresh segment.
    let matches = !header.is_v1()
        && header.store_id == store_id.get()
        && header.schema_id == options.schema_id
        && header.record_payload_max == options.record_payload_max
        && records_end_lsn == outcome.next_lsn.max(1);
    if !matches {
        return Ok(None);
    }
    let file_len = file
        .len()
        .map_err(|err| Error::io("read segment length", &last.path, err))?;
    if file_len < valid_end {
        return Err(Error::Corruption {
            path: last.path.clone(),
            offset: file_len,
            lsn: records_end_lsn,
            detail: format!(
                "the segment is {file_len} bytes, shorter than the {valid_end} bytes of records \
                 the scan found: another process changed it during the open; open the store again"
            ),
        });
    }
    Ok(Some(ResumedSegment {
        file: Arc::from(file),
        valid_end,
        file_len,
        records: last.records,
        preallocated: header.flags & SEGMENT_FLAG_PREALLOCATED != 0,
        sealed: last.sealed && valid_end_of_last.is_none(),
    }))
}

/// Rewrites the bytes from `start` (where the segment's records say it was last known
/// synced, never before the header) to `valid_end` with what reads return, then
/// fdatasyncs: pages a failed fsync dropped become dirty, and durable, again.
fn rewrite_and_sync(file: &dyn VfsFile, path: &Path, start: u64, valid_end: u64) -> Result<()> {
    rewrite_as_read(file, path, start, valid_end)?;
    file.sync_data()
        .map_err(|err| Error::io("fdatasync segment at open", path, err))
}

/// Writes the bytes `[start, end)` of `file` again as reads return them, so pages a
/// failed fsync dropped (still shown by the page cache, never to be written by the
/// kernel) are dirty again and the next fdatasync makes them durable.
pub(super) fn rewrite_as_read(file: &dyn VfsFile, path: &Path, start: u64, end: u64) -> Result<()> {
    debug_assert!(start <= end);
    if end > start {
        let mut tail = vec![0u8; (end - start) as usize];
        file.read_exact_at(&mut tail, start)
            .map_err(|err| Error::io("read segment tail", path, err))?;
        file.write_all_at(&tail, start)
            .map_err(|err| Error::io("rewrite segment tail", path, err))?;
    }
    Ok(())
}

/// The store id new segments carry: the identity the scan found, or, for a directory
/// that has none yet, a new one written now (flagged as holding version-1 files when
/// the journal has version-1 segments). A damaged identity file is refused.
fn store_identity(vfs: &dyn crate::io::Vfs, dir: &Path, outcome: &ScanOutcome) -> Result<StoreId> {
    match &outcome.identity {
        IdentityFile::Valid(identity) => Ok(identity.store_id),
        IdentityFile::Damaged(reason) => Err(Error::Corruption {
            path: identity::path(dir),
            offset: 0,
            lsn: outcome.next_lsn,
            detail: format!("the store's identity file is unusable ({reason})"),
        }),
        IdentityFile::Missing => {
            let legacy = outcome.segments.iter().any(|s| s.version == 1);
            identity::create(vfs, dir, legacy).map(|identity| identity.store_id)
        }
    }
}
