//! Appending to the journal: LSN assignment, group commit, rotation, segment deletion,
//! the unsynced-bytes bound and the failure rules (a failed write leaves no partial
//! record; a failed fsync poisons).
//!
//! Concurrency: appenders queue requests; whoever finds no leader becomes the leader,
//! takes every queued request (up to `unsynced_bytes_max` bytes), writes them with one
//! write call and one fdatasync, and hands leadership to the oldest waiting appender
//! right away, so the next round's write and fdatasync overlap this round's hooks. It
//! then runs its round's on-durable hooks once every earlier round's have run (rounds
//! take numbered turns, so hooks run in LSN order) and wakes exactly the appenders it
//! completed. Appenders arriving meanwhile queue up for the next leader, so under load
//! one fdatasync covers many commits. An appender that finds no leader and nobody queued
//! skips the queue: it leads a round of its own request and runs its hook itself, so a
//! lone appender's commit allocates nothing in the journal. Under `Buffered`, where most
//! appends only copy into the write buffer, a lone appender does less still: holding the
//! queue's mutex (so no round can start meanwhile), it encodes its records into the
//! buffer and runs its hook, with no round or turn at all (`Shared::append_to_buffer`).
//!
//! Under the other policies the syncer thread fdatasyncs outside the writer's mutex: at
//! half the unsynced bound (see [`Background`]) and, under `Interval`, on its tick.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use smallvec::SmallVec;

use super::identity::{self, IdentityFile};
use super::options::{JournalOptions, SyncPolicy};
use super::scan::{DefectKind, ScanOutcome};
use super::segment::create_segment;
use crate::error::{Error, Result, is_enospc};
use crate::format::{
    self, FLAG_GROUP_CONTINUES, RECORD_HEADER_LEN, RECORD_KIND_SEAL, SEGMENT_FLAG_PREALLOCATED,
    SEGMENT_HEADER_LEN, SegmentHeader, StoreId,
};
use crate::io::{OpenMode, VfsFile, VfsRef};

/// One record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordToAppend {
    /// Record kind, 1..=255.
    pub kind: u8,
    /// Payload bytes, at most `record_payload_max`.
    pub payload: Vec<u8>,
}

/// Largest atomic group, in frame bytes (1 GiB): a group is encoded in memory and never
/// split across segments.
pub const GROUP_BYTES_MAX: u64 = 1 << 30;

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
}

struct Request {
    id: u64,
    records: Requests<RecordToAppend>,
    frame_bytes: u64,
    hook: Option<DurableHook>,
    /// Wakes the appender waiting for this request (its thread's own condvar); `None`
    /// for a lone leader's own request (nobody waits for it).
    waker: Option<Arc<Condvar>>,
}

/// The requests of one round and what became of them, or the records of one request.
/// Inline room for one: a lone appender's round of one record allocates nothing.
type Requests<T> = SmallVec<[T; 1]>;

thread_local! {
    /// Each thread waits for at most one request at a time, always with the queue mutex
    /// of the journal it appends to, so one condvar per thread serves every request.
    static WAKER: Arc<Condvar> = Arc::new(Condvar::new());
}

/// A completed append.
struct Completed {
    first_lsn: u64,
    output: Option<Box<dyn Any + Send>>,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Request>,
    leader_active: bool,
    results: HashMap<u64, Result<Completed>>,
    next_id: u64,
    /// Number of the next leader round; rounds run their hooks in this order.
    next_round: u64,
}

/// What one leader round produced: requests made durable (hooks not yet run) and
/// requests that failed.
#[derive(Default)]
struct Round {
    durable: Requests<Staged>,
    failed: Requests<Outcome>,
}

impl Round {
    fn fail(&mut self, request: &Request, err: &Error) {
        self.failed.push(Outcome {
            id: request.id,
            waker: request.waker.clone(),
            result: Err(retell(err)),
        });
    }
}

/// A request's result, with the condvar that wakes its appender.
struct Outcome {
    id: u64,
    waker: Option<Arc<Condvar>>,
    result: Result<Completed>,
}

/// The background syncer's state. Under every policy but `Always`, once half of
/// `unsynced_bytes_max` is written but not synced, the writer hands an fdatasync of the
/// active segment to the syncer thread, which runs it outside the writer's mutex, so
/// appenders keep writing; an appender waits only when the whole bound would be exceeded.
/// Every other fdatasync of the active segment first waits for a background one to finish
/// (so a failure the kernel reports to only one caller is never missed: it poisons before
/// the wait ends).
#[derive(Default)]
struct Background {
    /// A claimed fdatasync waiting for the syncer thread.
    job: Option<SyncJob>,
    /// The syncer is stopping (or stopped): no more jobs are claimed.
    stop: bool,
}

/// One background fdatasync: it covers `written_bytes` once it succeeds.
struct SyncJob {
    file: Arc<dyn VfsFile>,
    path: PathBuf,
    written_bytes: u64,
}

struct LiveSegment {
    seq: u64,
    first_lsn: u64,
    path: PathBuf,
}

struct Writer {
    /// The active segment, or `None` when the next append must create one. Shared with
    /// the background syncer, which fdatasyncs it outside this writer's mutex.
    file: Option<Arc<dyn VfsFile>>,
    /// Write position in the active segment.
    offset: u64,
    /// Records in the active segment.
    segment_records: u64,
    /// LSN of the next record.
    next_lsn: u64,
    /// Bytes written to segments since the journal was opened (never reset). The bytes
    /// not yet covered by a completed fdatasync are `written_bytes - Shared::synced_bytes`
    /// (see [`Shared::unsynced`]).
    written_bytes: u64,
    /// Segment files in order; the last is the active one (when `file` is `Some`).
    segments: Vec<LiveSegment>,
    /// Encode buffer. Between rounds it is empty, except under `SyncPolicy::Buffered`,
    /// where it holds the `buffered_acked` bytes of acknowledged records not yet written.
    buf: Vec<u8>,
    /// Bytes at the start of `buf` whose records are acknowledged (`Buffered` only).
    buffered_acked: u64,
    /// The active segment has the `PREALLOCATED` flag: zeros after its last frame are
    /// free space, so it may be extended with zeros ahead of the write position.
    preallocated: bool,
    /// Length of the active segment file (the zero-filled room ends here).
    allocated_end: u64,
    /// The active segment's last frame is a seal: a clean close has nothing to add.
    sealed: bool,
}

/// How far ahead of the write position a preallocated segment is extended with zeros at
/// a time (capped at the segment size): the size change reaches the disk with one
/// commit's fdatasync per step instead of with every commit.
pub const PREALLOCATE_STEP_BYTES: u64 = 4 << 20;

struct Shared {
    vfs: VfsRef,
    dir: PathBuf,
    /// The store every segment this writer creates names.
    store_id: StoreId,
    options: JournalOptions,
    queue: Mutex<Queue>,
    writer: Mutex<Writer>,
    /// The round whose hooks run next.
    /// Read and passed on without a lock (a lone appender's turn is always ready);
    /// `hook_turn_waiters` says whether a pass must wake someone.
    hook_turn: AtomicU64,
    hook_turn_lock: Mutex<()>,
    hook_turn_cv: Condvar,
    /// Appenders waiting in [`Shared::wait_for_turn`].
    hook_turn_waiters: AtomicU64,
    poison_cause: Mutex<Option<String>>,
    poisoned: AtomicBool,
    closed: AtomicBool,
    /// The `Writer::written_bytes` value the last completed fdatasync covered: an
    /// fdatasync covers every byte written before it started. Only grows.
    synced_bytes: AtomicU64,
    /// The background syncer's job slot (see [`Background`]).
    background: Mutex<Background>,
    /// Wakes the syncer thread (a job, a stop, or its `Interval` tick).
    background_cv: Condvar,
    /// Wakes those waiting for a background fdatasync to finish.
    background_done_cv: Condvar,
    /// A background fdatasync is claimed or running. Set and cleared with `background`
    /// locked; read without it as a fast check.
    background_in_flight: AtomicBool,
    records: AtomicU64,
    bytes: AtomicU64,
    syncs: AtomicU64,
    batches: AtomicU64,
}

/// The journal's writer. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Journal {
    shared: Arc<Shared>,
    syncer: Mutex<Option<JoinHandle<()>>>,
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
        options.validate()?;
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
        let mut writer = Writer {
            file: None,
            offset: 0,
            segment_records: 0,
            next_lsn: outcome.next_lsn.max(1),
            written_bytes: 0,
            segments,
            buf: Vec::new(),
            buffered_acked: 0,
            preallocated: false,
            allocated_end: 0,
            sealed: false,
        };
        let store_id = store_identity(vfs.as_ref(), dir, outcome)?;
        // Keep appending to the last segment only if its header matches these options
        // (its torn window must stay an honest bound) and the journal does not end before
        // the checkpoint (then the next LSN starts a fresh segment).
        if let Some(last) = outcome.segments.last()
            && let Some(header) = last.header
        {
            let file = vfs
                .open(&last.path, OpenMode::ReadWrite)
                .map_err(|err| Error::io("open segment", &last.path, err))?;
            // A crashed writer may have left bytes that were written but never synced,
            // and one poisoned by a failed fsync may have left bytes the kernel already
            // dropped while the page cache still shows them (a later fsync would not
            // write them). Either way they lie within the torn window before the valid
            // end: write that range again as read, then fdatasync, so everything this
            // writer builds on is durable and a checkpoint never claims what could be lost.
            let valid_end = valid_end_of_last.unwrap_or(last.valid_end);
            rewrite_and_sync(
                file.as_ref(),
                &last.path,
                last.synced_through.min(valid_end),
                valid_end,
            )?;
            let records_end_lsn = last.last_lsn.map_or(last.first_lsn, |lsn| lsn + 1);
            // A version-1 segment, or one with other limits or of another schema, is left
            // as it is: new records go to a fresh segment.
            if !header.is_v1()
                && header.store_id == store_id.get()
                && header.schema_id == options.schema_id
                && header.record_payload_max == options.record_payload_max
                && records_end_lsn == writer.next_lsn
            {
                writer.offset = valid_end;
                writer.sealed = last.sealed && valid_end_of_last.is_none();
                writer.segment_records = last.records;
                writer.preallocated = header.flags & SEGMENT_FLAG_PREALLOCATED != 0;
                writer.allocated_end = file
                    .len()
                    .map_err(|err| Error::io("read segment length", &last.path, err))?;
                writer.file = Some(Arc::from(file));
            }
        }
        let shared = Arc::new(Shared {
            vfs,
            dir: dir.to_path_buf(),
            store_id,
            options,
            queue: Mutex::new(Queue::default()),
            writer: Mutex::new(writer),
            hook_turn: AtomicU64::new(0),
            hook_turn_lock: Mutex::new(()),
            hook_turn_cv: Condvar::new(),
            hook_turn_waiters: AtomicU64::new(0),
            poison_cause: Mutex::new(None),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            synced_bytes: AtomicU64::new(0),
            background: Mutex::new(Background::default()),
            background_cv: Condvar::new(),
            background_done_cv: Condvar::new(),
            background_in_flight: AtomicBool::new(false),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            batches: AtomicU64::new(0),
        });
        let syncer = match shared.options.sync_policy {
            SyncPolicy::Always => None,
            SyncPolicy::Interval(every) => Some(spawn_syncer(Arc::clone(&shared), Some(every))?),
            SyncPolicy::Never | SyncPolicy::Buffered => {
                Some(spawn_syncer(Arc::clone(&shared), None)?)
            }
        };
        Ok(Journal {
            shared,
            syncer: Mutex::new(syncer),
        })
    }

    /// The id of the store this journal belongs to (carried by every segment it creates).
    pub fn store_id(&self) -> StoreId {
        self.shared.store_id
    }

    /// The options the journal runs with.
    pub fn options(&self) -> &JournalOptions {
        &self.shared.options
    }

    /// The LSN the next appended record will get.
    pub fn next_lsn(&self) -> u64 {
        self.shared.writer.lock().next_lsn
    }

    /// What the journal did so far.
    pub fn stats(&self) -> JournalStats {
        JournalStats {
            records: self.shared.records.load(Ordering::Relaxed),
            bytes: self.shared.bytes.load(Ordering::Relaxed),
            syncs: self.shared.syncs.load(Ordering::Relaxed),
            batches: self.shared.batches.load(Ordering::Relaxed),
        }
    }

    /// Appends one record; returns its LSN once durable under the sync policy.
    pub fn append(&self, kind: u8, payload: Vec<u8>) -> Result<u64> {
        self.append_record_with(RecordToAppend { kind, payload }, |_| ())
            .map(|(lsn, ())| lsn)
    }

    /// Appends records as one atomic group with consecutive LSNs: after a crash either all
    /// of them are there or none. Returns the first LSN once durable.
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

    fn append_requests_with<T: Send + 'static>(
        &self,
        records: Requests<RecordToAppend>,
        hook: impl FnOnce(u64) -> T + Send + 'static,
    ) -> Result<(u64, T)> {
        self.check_usable()?;
        let frame_bytes = self.validate(&records)?;
        let (records, hook) = match self.shared.append_to_buffer(records, frame_bytes, hook) {
            BufferAppend::Done(done) => return Ok(done),
            BufferAppend::Declined(records, hook) => (records, hook),
        };
        if let Some(round_number) = self.shared.lead_alone() {
            return self
                .shared
                .lead_own_round(round_number, records, frame_bytes, hook);
        }
        let hook: DurableHook = Box::new(move |lsn| Box::new(hook(lsn)) as Box<dyn Any + Send>);
        let done = self.submit(records, frame_bytes, Some(hook))?;
        let output = done
            .output
            .and_then(|output| output.downcast::<T>().ok())
            .ok_or_else(|| Error::Codec("internal: durable hook output lost".into()))?;
        Ok((done.first_lsn, *output))
    }

    /// Makes everything appended so far durable, writing out what
    /// [`SyncPolicy::Buffered`] holds first (a no-op under `Always`).
    pub fn sync(&self) -> Result<()> {
        self.check_usable()?;
        let mut writer = self.shared.writer.lock();
        self.shared.write_and_sync(&mut writer)
    }

    /// Returns an error if the journal is poisoned or closed.
    pub fn check_usable(&self) -> Result<()> {
        self.shared.check_usable()
    }

    /// The poison cause, if the journal is poisoned.
    pub fn poison_cause(&self) -> Option<String> {
        self.shared.poison_cause.lock().clone()
    }

    /// Poisons the journal from outside (the store does this when a checkpoint's fsync
    /// fails): every later call errors until reopened.
    pub fn poison(&self, cause: String) {
        self.shared.poison(cause);
    }

    /// Deletes segments all of whose records have LSN <= `lsn` (never the active one),
    /// oldest first, fsyncing the directory after each so the files left are always a
    /// contiguous suffix. Returns the deleted paths.
    pub fn delete_segments_through(&self, lsn: u64) -> Result<Vec<PathBuf>> {
        self.check_usable()?;
        let mut writer = self.shared.writer.lock();
        let mut deleted = Vec::new();
        while writer.segments.len() >= 2 && writer.segments[1].first_lsn <= lsn.saturating_add(1) {
            let path = writer.segments[0].path.clone();
            self.shared
                .vfs
                .remove_file(&path)
                .map_err(|err| Error::io("delete segment", &path, err))?;
            writer.segments.remove(0);
            self.shared
                .vfs
                .sync_dir(&self.shared.dir)
                .map_err(|err| Error::io("fsync directory", &self.shared.dir, err))?;
            deleted.push(path);
        }
        Ok(deleted)
    }

    /// Paths of the live segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        let writer = self.shared.writer.lock();
        writer.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// Stops the background syncer and makes everything appended durable.
    pub fn close(&self) -> Result<()> {
        self.stop_syncer();
        let mut writer = self.shared.writer.lock();
        let result = if self.shared.poisoned.load(Ordering::Acquire) {
            Ok(())
        } else {
            self.shared
                .write_and_sync(&mut writer)
                .and_then(|()| self.shared.seal(&mut writer))
        };
        // Still under the writer's mutex: an append that takes it after the final sync
        // finds the journal closed and is refused, instead of being acknowledged into
        // a buffer (or a file) that nothing will sync again.
        self.shared.closed.store(true, Ordering::Release);
        drop(writer);
        result
    }

    fn stop_syncer(&self) {
        self.shared.background.lock().stop = true;
        self.shared.background_cv.notify_all();
        if let Some(handle) = self.syncer.lock().take() {
            let _ = handle.join();
        }
    }

    /// The queued path: waits for a leader (or becomes one) to write and sync the
    /// request with others, and for its hook's output.
    fn submit(
        &self,
        records: Requests<RecordToAppend>,
        frame_bytes: u64,
        hook: Option<DurableHook>,
    ) -> Result<Completed> {
        let shared = &self.shared;
        let waker = WAKER.with(Arc::clone);
        let mut queue = shared.queue.lock();
        let id = queue.next_id;
        queue.next_id += 1;
        queue.pending.push_back(Request {
            id,
            records,
            frame_bytes,
            hook,
            waker: Some(Arc::clone(&waker)),
        });
        loop {
            if let Some(result) = queue.results.remove(&id) {
                return result;
            }
            if !queue.leader_active {
                queue.leader_active = true;
                let batch = take_batch(&mut queue, shared.options.unsynced_bytes_max);
                let round_number = queue.next_round;
                queue.next_round += 1;
                drop(queue);
                let round = shared.lead(batch);
                // Hand leadership on before running hooks: the next round's write and
                // fdatasync overlap this round's hooks.
                shared.pass_leadership();
                let outcomes = shared.run_hooks_in_turn(round_number, round);
                let mut own = None;
                queue = shared.queue.lock();
                for outcome in outcomes {
                    if outcome.id == id {
                        own = Some(outcome.result);
                    } else {
                        queue.results.insert(outcome.id, outcome.result);
                        if let Some(waker) = &outcome.waker {
                            waker.notify_one();
                        }
                    }
                }
                if let Some(result) = own {
                    return result;
                }
                continue;
            }
            waker.wait(&mut queue);
        }
    }

    fn validate(&self, records: &[RecordToAppend]) -> Result<u64> {
        if records.is_empty() {
            return Err(Error::InvalidArgument(
                "an append needs at least one record".into(),
            ));
        }
        let limit = self.shared.options.record_payload_max;
        let mut total = 0u64;
        for record in records {
            if record.kind == 0 {
                return Err(Error::InvalidArgument("record kind 0 is reserved".into()));
            }
            if record.payload.len() as u64 > u64::from(limit) {
                return Err(Error::InvalidArgument(format!(
                    "record payload of {} bytes is over the limit of {limit} bytes (Options::record_payload_max)",
                    record.payload.len()
                )));
            }
            total += (RECORD_HEADER_LEN + record.payload.len()) as u64;
        }
        if total > GROUP_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "atomic group of {total} bytes is over the limit of {GROUP_BYTES_MAX} bytes"
            )));
        }
        Ok(total)
    }
}

impl Drop for Journal {
    /// Stops the syncer and hands records [`SyncPolicy::Buffered`] still holds to the OS
    /// (best effort, like a process exit after `Never`: no fdatasync; a failure poisons,
    /// and the next open recovers what is on disk).
    fn drop(&mut self) {
        self.stop_syncer();
        if self.shared.check_usable().is_ok() {
            let mut writer = self.shared.writer.lock();
            let _ = self.shared.write_buffered(&mut writer);
        }
    }
}

/// Rewrites the bytes from `start` (where the segment's records say it was last known
/// synced, never before the header) to `valid_end` with what reads return, then
/// fdatasyncs: pages a failed fsync dropped become dirty, and durable, again.
fn rewrite_and_sync(file: &dyn VfsFile, path: &Path, start: u64, valid_end: u64) -> Result<()> {
    debug_assert!(start <= valid_end);
    if valid_end > start {
        let mut tail = vec![0u8; (valid_end - start) as usize];
        file.read_exact_at(&mut tail, start)
            .map_err(|err| Error::io("read segment tail at open", path, err))?;
        file.write_all_at(&tail, start)
            .map_err(|err| Error::io("rewrite segment tail at open", path, err))?;
    }
    file.sync_data()
        .map_err(|err| Error::io("fdatasync segment at open", path, err))
}

fn take_batch(queue: &mut Queue, bytes_max: u64) -> Requests<Request> {
    let mut batch = Requests::new();
    let mut total = 0u64;
    while let Some(front) = queue.pending.front() {
        if !batch.is_empty() && total + front.frame_bytes > bytes_max {
            break;
        }
        total += front.frame_bytes;
        if let Some(request) = queue.pending.pop_front() {
            batch.push(request);
        }
    }
    batch
}

/// The syncer thread: runs the background fdatasyncs the writer hands it and, under
/// `SyncPolicy::Interval(every)`, one every `every`. It runs a claimed job before it
/// stops, so nobody waits for a job that never runs.
fn spawn_syncer(shared: Arc<Shared>, every: Option<Duration>) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("walstate-syncer".into())
        .spawn(move || {
            loop {
                let job = {
                    let mut background = shared.background.lock();
                    loop {
                        if let Some(job) = background.job.take() {
                            break Some(job);
                        }
                        if background.stop {
                            return;
                        }
                        match every {
                            Some(every) => {
                                if shared
                                    .background_cv
                                    .wait_for(&mut background, every)
                                    .timed_out()
                                {
                                    break None;
                                }
                            }
                            None => shared.background_cv.wait(&mut background),
                        }
                    }
                };
                let job = match job {
                    Some(job) => Some(job),
                    // The interval tick: everything written so far. With the writer
                    // locked no waiter runs a job, so one claimed meanwhile is still in
                    // the slot: it is widened to cover everything too.
                    None if shared.check_usable().is_ok() => {
                        let writer = shared.writer.lock();
                        let mut background = shared.background.lock();
                        match background.job.take() {
                            Some(mut job) => {
                                job.written_bytes = writer.written_bytes;
                                Some(job)
                            }
                            None => shared.claim_background_sync(&writer, &mut background),
                        }
                    }
                    None => None,
                };
                if let Some(job) = job {
                    // A failure poisons inside; nothing else to do here.
                    shared.run_background_sync(job);
                }
            }
        })
        .map_err(|err| Error::io("spawn syncer thread", PathBuf::new(), err))
}

/// Passes the hook turn on to the next round when dropped.
struct PassTurn<'a>(&'a Shared);

impl Drop for PassTurn<'_> {
    fn drop(&mut self) {
        let shared = self.0;
        // SeqCst with the waiter's increment-then-check: either it sees the new turn,
        // or this sees it waiting and wakes it (taking the lock orders the wake-up after
        // its wait began).
        shared.hook_turn.fetch_add(1, Ordering::SeqCst);
        if shared.hook_turn_waiters.load(Ordering::SeqCst) > 0 {
            drop(shared.hook_turn_lock.lock());
            shared.hook_turn_cv.notify_all();
        }
    }
}

/// What [`Shared::append_to_buffer`] did: the acknowledged append, or the records and hook
/// handed back for the general path.
enum BufferAppend<T, H> {
    Done((u64, T)),
    Declined(Requests<RecordToAppend>, H),
}

/// A request whose records are written but not yet complete.
struct Staged {
    request: Request,
    first_lsn: u64,
}

impl Shared {
    fn check_usable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned {
                cause: self
                    .poison_cause
                    .lock()
                    .clone()
                    .unwrap_or_else(|| "unknown".into()),
            });
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn poison(&self, cause: String) {
        let mut slot = self.poison_cause.lock();
        if slot.is_none() {
            *slot = Some(cause);
        }
        self.poisoned.store(true, Ordering::Release);
    }

    fn poison_with(&self, err: Error) -> Error {
        let cause = err.to_string();
        self.poison(cause.clone());
        Error::Poisoned { cause }
    }

    /// Bytes written to the active segment and not yet covered by a completed fdatasync.
    fn unsynced(&self, writer: &Writer) -> u64 {
        writer
            .written_bytes
            .saturating_sub(self.synced_bytes.load(Ordering::Acquire))
    }

    /// Records that a completed fdatasync covered everything written so far.
    fn mark_synced(&self, writer: &Writer) {
        self.mark_synced_through(writer.written_bytes);
    }

    /// Records that a completed fdatasync covered the first `written_bytes` bytes written.
    fn mark_synced_through(&self, written_bytes: u64) {
        self.synced_bytes.fetch_max(written_bytes, Ordering::AcqRel);
    }

    /// fdatasyncs `file`, which then covers the first `written_bytes` bytes written; a
    /// failure poisons (`op` and `path` name the call in the error; the path is built
    /// only then, off the commit path). Shared by the appenders' and the background syncs.
    fn fdatasync_covering(
        &self,
        file: &dyn VfsFile,
        path: impl FnOnce() -> PathBuf,
        written_bytes: u64,
        op: &'static str,
    ) -> Result<()> {
        match file.sync_data() {
            Ok(()) => {
                self.syncs.fetch_add(1, Ordering::Relaxed);
                self.mark_synced_through(written_bytes);
                Ok(())
            }
            Err(err) => Err(self.poison_with(Error::io(op, path(), err))),
        }
    }

    /// fdatasyncs the active segment if it has unsynced bytes; a failure poisons. Waits
    /// for a background fdatasync first, so one that failed is seen here.
    fn sync_active(&self, writer: &mut Writer) -> Result<()> {
        self.wait_for_background_sync();
        self.check_usable()?;
        if self.unsynced(writer) == 0 {
            return Ok(());
        }
        let Some(file) = writer.file.as_ref() else {
            return Ok(());
        };
        self.fdatasync_covering(
            file.as_ref(),
            || self.active_path(writer),
            writer.written_bytes,
            "fdatasync",
        )
    }

    /// Hands an fdatasync to the syncer thread once half of the unsynced bound is
    /// written, unless one is already running (called with the writer locked, after a
    /// write).
    fn maybe_start_background_sync(&self, writer: &Writer) {
        if self.options.sync_policy == SyncPolicy::Always
            || self.background_in_flight.load(Ordering::Acquire)
            || self.unsynced(writer) < self.options.unsynced_bytes_max / 2
        {
            return;
        }
        let mut background = self.background.lock();
        if let Some(job) = self.claim_background_sync(writer, &mut background) {
            background.job = Some(job);
            self.background_cv.notify_one();
        }
    }

    /// Claims a background fdatasync of everything written to the active segment so
    /// far: `None` if nothing is unsynced, one is already running, or the syncer stopped.
    fn claim_background_sync(
        &self,
        writer: &Writer,
        background: &mut Background,
    ) -> Option<SyncJob> {
        if background.stop
            || self.background_in_flight.load(Ordering::Acquire)
            || self.unsynced(writer) == 0
        {
            return None;
        }
        let file = Arc::clone(writer.file.as_ref()?);
        self.background_in_flight.store(true, Ordering::Release);
        Some(SyncJob {
            file,
            path: self.active_path(writer),
            written_bytes: writer.written_bytes,
        })
    }

    /// Runs a claimed background fdatasync (without the writer's mutex): on success it
    /// covers what was written before it was claimed; a failure poisons, before anyone
    /// waiting for it is woken.
    fn run_background_sync(&self, job: SyncJob) {
        /// Ends the job even if the file system panics, so no waiter waits forever.
        struct Finish<'a>(&'a Shared);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                let _background = self.0.background.lock();
                self.0.background_in_flight.store(false, Ordering::Release);
                self.0.background_done_cv.notify_all();
            }
        }
        let _finish = Finish(self);
        // A failure poisons inside; the appenders see it.
        let _ = self.fdatasync_covering(
            job.file.as_ref(),
            || job.path.clone(),
            job.written_bytes,
            "background fdatasync",
        );
    }

    /// Waits until no background fdatasync is claimed or running. One claimed but not
    /// yet picked up by the syncer thread is run here: the syncer may itself be waiting
    /// for the writer's mutex (its `Interval` tick), which the caller may hold.
    fn wait_for_background_sync(&self) {
        if !self.background_in_flight.load(Ordering::Acquire) {
            return;
        }
        let mut background = self.background.lock();
        if let Some(job) = background.job.take() {
            drop(background);
            self.run_background_sync(job);
            return;
        }
        while self.background_in_flight.load(Ordering::Acquire) {
            self.background_done_cv.wait(&mut background);
        }
    }

    /// Writes out the acknowledged records `SyncPolicy::Buffered` holds (a failure
    /// poisons, see [`Shared::flush`]).
    fn write_buffered(&self, writer: &mut Writer) -> Result<()> {
        let start = writer.offset;
        self.flush(writer, start)
    }

    /// [`Shared::write_buffered`], then [`Shared::sync_active`].
    fn write_and_sync(&self, writer: &mut Writer) -> Result<()> {
        self.write_buffered(writer)?;
        self.sync_active(writer)
    }

    /// The durable frontier a frame encoded now records: the offset in the active
    /// segment up to which it is known synced. Bytes written since the last completed
    /// fdatasync lie after it; a background fdatasync still running is not counted, so
    /// the frontier never claims more than is durable.
    fn durable_frontier(&self, writer: &Writer) -> u64 {
        let frontier = writer.offset.saturating_sub(self.unsynced(writer));
        debug_assert!(frontier <= writer.offset);
        debug_assert!(writer.file.is_none() || frontier >= SEGMENT_HEADER_LEN as u64);
        frontier
    }

    /// Writes a seal after the last record and fdatasyncs it (a clean close): the seal's
    /// frontier is its own offset, so recovery knows every byte before it was durable.
    /// The caller has synced everything before. Nothing to do without an active segment
    /// or when the segment already ends with a seal.
    fn seal(&self, writer: &mut Writer) -> Result<()> {
        if writer.file.is_none() || writer.sealed {
            return Ok(());
        }
        debug_assert!(writer.buf.is_empty());
        debug_assert_eq!(self.unsynced(writer), 0);
        let offset = writer.offset;
        format::encode_record(
            &mut writer.buf,
            writer.next_lsn,
            RECORD_KIND_SEAL,
            0,
            offset,
            b"",
        );
        if self.flush(writer, offset).is_err() {
            // Everything acknowledged is durable already: a seal that cannot be written
            // (a full disk) only leaves the store unsealed. `flush` cut back what it
            // wrote; if even that failed (the journal is poisoned now), the prefix of a
            // seal left behind is a write cut short, which the next open drops as a torn
            // tail (wal-format.md section 7.3). No commit is affected either way.
            return Ok(());
        }
        self.sync_active(writer)?;
        writer.sealed = true;
        Ok(())
    }

    fn active_path(&self, writer: &Writer) -> PathBuf {
        writer
            .segments
            .last()
            .map(|s| s.path.clone())
            .unwrap_or_else(|| self.dir.clone())
    }

    /// The `SyncPolicy::Buffered` fast path of a lone appender: when nobody leads, nobody
    /// is queued and every earlier round's hooks have run, and the records fit in the
    /// write buffer with no write, sync or rotation due and LSNs to spare, encodes them
    /// into the buffer (they are then acknowledged) and runs `hook` at once. The queue's
    /// mutex is held throughout, so no other round can start in between and hooks stay
    /// in LSN order; no round number is taken, since none can be waiting for one. Anything
    /// else is declined untouched for the general path, which handles every case.
    fn append_to_buffer<T, H: FnOnce(u64) -> T>(
        &self,
        records: Requests<RecordToAppend>,
        frame_bytes: u64,
        hook: H,
    ) -> BufferAppend<T, H> {
        if self.options.sync_policy != SyncPolicy::Buffered {
            return BufferAppend::Declined(records, hook);
        }
        let queue = self.queue.lock();
        if queue.leader_active
            || !queue.pending.is_empty()
            || self.hook_turn.load(Ordering::SeqCst) != queue.next_round
        {
            return BufferAppend::Declined(records, hook);
        }
        let mut writer = self.writer.lock();
        let count = records.len() as u64;
        let pending = writer.buf.len() as u64;
        let fits = writer.file.is_some()
            && !self.overflows_segment(&writer, frame_bytes)
            && pending + frame_bytes < self.options.buffered_bytes_max()
            && !self.over_bound(&writer, frame_bytes)
            && lsns_left(writer.next_lsn, count);
        // Checked last, right before acknowledging, as the general path does.
        if !fits || self.check_usable().is_err() {
            return BufferAppend::Declined(records, hook);
        }
        debug_assert_eq!(pending, writer.buffered_acked);
        let first_lsn = writer.next_lsn;
        let synced_end = self.durable_frontier(&writer);
        for (index, record) in records.iter().enumerate() {
            format::encode_record(
                &mut writer.buf,
                first_lsn + index as u64,
                record.kind,
                group_flags(index, records.len()),
                synced_end,
                &record.payload,
            );
        }
        writer.sealed = false;
        writer.next_lsn = first_lsn + count;
        writer.segment_records += count;
        writer.buffered_acked = writer.buf.len() as u64;
        bump(&self.batches, 1);
        bump(&self.records, count);
        bump(&self.bytes, frame_bytes);
        drop(writer);
        let output = hook(first_lsn);
        drop(queue);
        BufferAppend::Done((first_lsn, output))
    }

    /// The single-appender fast path: when no round is being led and nobody is queued,
    /// the caller becomes the leader of a round of just its own request, without
    /// queueing it. Returns the round's number.
    fn lead_alone(&self) -> Option<u64> {
        let mut queue = self.queue.lock();
        if queue.leader_active || !queue.pending.is_empty() {
            return None;
        }
        queue.leader_active = true;
        let number = queue.next_round;
        queue.next_round += 1;
        Some(number)
    }

    /// Leads round `number` of the caller's own request (see [`Shared::lead_alone`]):
    /// writes and syncs it like any round, hands leadership on, and runs `hook` itself
    /// in the round's turn (no boxed hook, no results map, no wake-up).
    fn lead_own_round<T>(
        &self,
        number: u64,
        records: Requests<RecordToAppend>,
        frame_bytes: u64,
        hook: impl FnOnce(u64) -> T,
    ) -> Result<(u64, T)> {
        let request = Request {
            // Never queued: its outcome never enters the results map.
            id: u64::MAX,
            records,
            frame_bytes,
            hook: None,
            waker: None,
        };
        let Round { durable, failed } = self.lead(smallvec::smallvec![request]);
        self.pass_leadership();
        let _pass = self.wait_for_turn(number);
        match (durable.into_iter().next(), failed.into_iter().next()) {
            (Some(staged), _) => Ok((staged.first_lsn, hook(staged.first_lsn))),
            (None, Some(outcome)) => Err(match outcome.result {
                Err(err) => err,
                Ok(_) => Error::Codec("internal: a failed request had no error".into()),
            }),
            (None, None) => Err(Error::Codec("internal: a request was lost".into())),
        }
    }

    /// Ends the caller's leadership and wakes the oldest queued appender to lead next.
    fn pass_leadership(&self) {
        let mut queue = self.queue.lock();
        queue.leader_active = false;
        if let Some(waker) = queue.pending.front().and_then(|next| next.waker.as_ref()) {
            waker.notify_one();
        }
    }

    /// Waits until the hooks of every round before `number` have run; the returned guard
    /// passes the turn on when dropped (even if a hook panics, so later rounds never
    /// wait forever).
    fn wait_for_turn(&self, number: u64) -> PassTurn<'_> {
        if self.hook_turn.load(Ordering::SeqCst) != number {
            let mut guard = self.hook_turn_lock.lock();
            self.hook_turn_waiters.fetch_add(1, Ordering::SeqCst);
            while self.hook_turn.load(Ordering::SeqCst) != number {
                self.hook_turn_cv.wait(&mut guard);
            }
            self.hook_turn_waiters.fetch_sub(1, Ordering::SeqCst);
        }
        PassTurn(self)
    }

    /// Waits for round `number`'s turn, runs the hooks of its durable requests in LSN
    /// order, passes the turn on, and returns every request's result.
    fn run_hooks_in_turn(&self, number: u64, round: Round) -> Requests<Outcome> {
        let Round {
            durable,
            mut failed,
        } = round;
        let _pass = self.wait_for_turn(number);
        for Staged { request, first_lsn } in durable {
            let output = request.hook.map(|hook| hook(first_lsn));
            failed.push(Outcome {
                id: request.id,
                waker: request.waker,
                result: Ok(Completed { first_lsn, output }),
            });
        }
        failed
    }

    /// Leader work: writes and syncs one batch; returns the requests made durable (their
    /// hooks not run yet) and the failed ones.
    fn lead(&self, batch: Requests<Request>) -> Round {
        let mut results = Round::default();
        if let Err(err) = self.check_usable() {
            for request in batch {
                results.fail(&request, &err);
            }
            return results;
        }
        let mut writer = self.writer.lock();
        bump(&self.batches, 1);
        let always = self.options.sync_policy == SyncPolicy::Always;
        let buffered_max = self.options.buffered_bytes_max();
        let mut staged: Requests<Staged> = Requests::new();
        // Offset where the first staged (incomplete) request starts: where a failed
        // write truncates back to. The buffer holds acknowledged records only.
        debug_assert_eq!(writer.buf.len() as u64, writer.buffered_acked);
        let mut staged_offset = writer.offset + writer.buf.len() as u64;
        let mut failure: Option<Error> = None;

        for request in batch {
            if let Some(err) = &failure {
                results.fail(&request, err);
                continue;
            }
            let step = self.place(
                &mut writer,
                &mut staged,
                &mut staged_offset,
                &mut results.durable,
                &request,
            );
            if let Err(err) = step {
                results.fail(&request, &err);
                failure = Some(err);
                continue;
            }
            if staged.is_empty() {
                staged_offset = writer.offset + writer.buf.len() as u64;
            }
            let first_lsn = writer.next_lsn;
            if let Err(err) =
                self.encode_request(&mut writer, &request, first_lsn, &staged, staged_offset)
            {
                results.fail(&request, &err);
                failure = Some(err);
                continue;
            }
            staged.push(Staged { request, first_lsn });
        }
        if failure.is_none() {
            // Under `Buffered` a round that leaves the buffer short of full writes nothing.
            let keep_buffered = (writer.buf.len() as u64) < buffered_max;
            let flushed = if keep_buffered {
                Ok(())
            } else {
                self.flush(&mut writer, staged_offset)
            };
            let synced = flushed.and_then(|()| {
                if always || self.unsynced(&writer) > self.options.unsynced_bytes_max {
                    self.sync_active(&mut writer)
                } else {
                    // A background fdatasync may have failed meanwhile: then nothing
                    // more is acknowledged.
                    self.check_usable()
                }
            });
            match synced {
                Ok(()) => {
                    writer.buffered_acked = writer.buf.len() as u64;
                    self.complete(&mut staged, &mut results.durable);
                }
                Err(err) => failure = Some(err),
            }
        }
        if let Some(err) = failure {
            // Nothing of a failed request stays behind to be written by a later round, and
            // its LSNs go to the next request (a failed write or encode stops the round).
            let acked = writer.buffered_acked as usize;
            writer.buf.truncate(acked);
            if let Some(first) = staged.first() {
                writer.next_lsn = first.first_lsn;
            }
            for staged in staged.drain(..) {
                results.fail(&staged.request, &err);
            }
        }
        results
    }

    /// Makes room for `request`: rotates the segment when it would overflow, and syncs
    /// when the unsynced bound would be exceeded. Completes staged requests made durable.
    fn place(
        &self,
        writer: &mut Writer,
        staged: &mut Requests<Staged>,
        staged_offset: &mut u64,
        durable: &mut Requests<Staged>,
        request: &Request,
    ) -> Result<()> {
        let pending = writer.buf.len() as u64;
        let needs_segment = writer.file.is_none();
        let overflows = writer.segment_records > 0 || pending > 0;
        let needs_rotation =
            needs_segment || (overflows && self.overflows_segment(writer, request.frame_bytes));
        if needs_rotation {
            self.flush(writer, *staged_offset)?;
            self.sync_active(writer)?;
            self.complete(staged, durable);
            self.rotate(writer)?;
            *staged_offset = writer.offset;
        } else if self.over_bound(writer, request.frame_bytes) {
            // A background fdatasync already running may make the room.
            self.wait_for_background_sync();
            if self.over_bound(writer, request.frame_bytes) {
                self.flush(writer, *staged_offset)?;
                self.sync_active(writer)?;
                self.complete(staged, durable);
                *staged_offset = writer.offset;
            }
        }
        Ok(())
    }

    /// Whether the buffer plus `frame_bytes` more would run past the end of the segment.
    fn overflows_segment(&self, writer: &Writer, frame_bytes: u64) -> bool {
        writer.offset + writer.buf.len() as u64 + frame_bytes > self.options.segment_size_bytes
    }

    /// Whether writing the buffer plus `frame_bytes` more would take the unsynced bytes
    /// past `unsynced_bytes_max` (a single frame larger than the bound is allowed onto
    /// a synced segment: the torn window covers one frame).
    fn over_bound(&self, writer: &Writer, frame_bytes: u64) -> bool {
        let pending = writer.buf.len() as u64;
        let unsynced = self.unsynced(writer);
        (pending > 0 || unsynced > 0)
            && unsynced + pending + frame_bytes > self.options.unsynced_bytes_max
    }

    /// Encodes a request's frames into the buffer. A group larger than the unsynced bound
    /// is flushed and synced in parts (it stays incomplete, and so invisible to a reader,
    /// until its last record is written).
    fn encode_request(
        &self,
        writer: &mut Writer,
        request: &Request,
        first_lsn: u64,
        staged: &[Staged],
        staged_offset: u64,
    ) -> Result<()> {
        let count = request.records.len();
        if !lsns_left(first_lsn, count as u64) {
            return Err(Error::InvalidArgument(
                "the LSN space (2^62) is exhausted: export the state and import it into a new store"
                    .into(),
            ));
        }
        for (index, record) in request.records.iter().enumerate() {
            let frame = (RECORD_HEADER_LEN + record.payload.len()) as u64;
            if self.over_bound(writer, frame) {
                let result = self
                    .flush(writer, staged_offset)
                    .and_then(|()| self.sync_active(writer));
                if let Err(err) = result {
                    writer.next_lsn = staged.first().map_or(first_lsn, |s| s.first_lsn);
                    return Err(err);
                }
            }
            let lsn = first_lsn + index as u64;
            let flags = group_flags(index, count);
            let synced_end = self.durable_frontier(writer);
            format::encode_record(
                &mut writer.buf,
                lsn,
                record.kind,
                flags,
                synced_end,
                &record.payload,
            );
        }
        writer.sealed = false;
        writer.next_lsn = first_lsn + count as u64;
        writer.segment_records += count as u64;
        Ok(())
    }

    /// Writes the buffer at the write position. On failure, truncates back to
    /// `truncate_to` (the start of the oldest incomplete request), makes that durable and
    /// returns the error (the caller rewinds the LSN counter); if the cleanup fails,
    /// poisons.
    /// If the buffer held acknowledged records (`SyncPolicy::Buffered`), a failure
    /// poisons: those commits cannot be failed any more, and the state is ahead of the file.
    fn flush(&self, writer: &mut Writer, truncate_to: u64) -> Result<()> {
        if writer.buf.is_empty() {
            return Ok(());
        }
        self.check_usable()?;
        let path = self.active_path(writer);
        let Some(file) = writer.file.as_ref() else {
            return Err(Error::InvalidArgument("internal: no active segment".into()));
        };
        let offset = writer.offset;
        let end = offset + writer.buf.len() as u64;
        let extended = if writer.preallocated && end > writer.allocated_end {
            let target =
                end.max((end + PREALLOCATE_STEP_BYTES).min(self.options.segment_size_bytes));
            file.allocate(target)
                .map(|()| writer.allocated_end = target)
        } else {
            Ok(())
        };
        match extended.and_then(|()| file.write_all_at(&writer.buf, offset)) {
            Ok(()) => {
                let written = writer.buf.len() as u64;
                writer.offset += written;
                writer.written_bytes += written;
                writer.buf.clear();
                writer.buffered_acked = 0;
                self.maybe_start_background_sync(writer);
                Ok(())
            }
            Err(err) => {
                writer.buf.clear();
                let acked = std::mem::take(&mut writer.buffered_acked);
                if acked > 0 {
                    // Best effort: leave no partial record behind for the next open.
                    let _ = self.truncate_back(writer, offset);
                    return Err(self.poison_with(Error::io(
                        "write records acknowledged under SyncPolicy::Buffered",
                        &path,
                        io::Error::new(
                            err.kind(),
                            format!(
                                "{err}; {acked} bytes of acknowledged commits at offset {offset} \
                                 were not written, so the in-memory state is ahead of the \
                                 file: reopen the store to continue from what is on disk"
                            ),
                        ),
                    )));
                }
                let error = if is_enospc(&err) {
                    Error::DiskFull {
                        path: path.clone(),
                        offset,
                    }
                } else {
                    Error::io("write", &path, err)
                };
                if let Err(cleanup) = self.truncate_back(writer, truncate_to) {
                    return Err(self.poison_with(Error::io(
                        "remove partial record after failed write",
                        &path,
                        io::Error::other(format!("{cleanup} (after: {error})")),
                    )));
                }
                Err(error)
            }
        }
    }

    /// Cuts the active segment back to `len` bytes and makes that durable; checks the
    /// length really is `len` afterwards.
    fn truncate_back(&self, writer: &mut Writer, len: u64) -> io::Result<()> {
        self.wait_for_background_sync();
        let Some(file) = writer.file.as_ref() else {
            return Ok(());
        };
        file.set_len(len)?;
        file.sync_data()?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let actual = file.len()?;
        if actual != len {
            return Err(io::Error::other(format!(
                "segment is {actual} bytes after truncating to {len}"
            )));
        }
        writer.offset = len;
        writer.allocated_end = len;
        self.mark_synced(writer);
        Ok(())
    }

    /// Moves every staged request, now durable, to `durable` (in LSN order) and bumps
    /// the counters; their hooks run later, in the round's turn.
    fn complete(&self, staged: &mut Requests<Staged>, durable: &mut Requests<Staged>) {
        for done in staged.drain(..) {
            bump(&self.records, done.request.records.len() as u64);
            bump(&self.bytes, done.request.frame_bytes);
            durable.push(done);
        }
    }

    /// Starts a new segment whose first LSN is the next LSN. The previous segment has
    /// been synced by the caller, so every segment but the last is fully durable.
    fn rotate(&self, writer: &mut Writer) -> Result<()> {
        let seq = writer.segments.last().map_or(1, |s| s.seq + 1);
        if seq > crate::format::LSN_MAX {
            return Err(Error::InvalidArgument(
                "segment numbers (2^62) are exhausted: export the state and import it into a new store"
                    .into(),
            ));
        }
        let flags = if self.options.preallocate {
            SEGMENT_FLAG_PREALLOCATED
        } else {
            0
        };
        let header = SegmentHeader::new(
            seq,
            writer.next_lsn,
            self.options.record_payload_max,
            flags,
            self.store_id,
            self.options.schema_id,
        );
        let preallocate = self.options.preallocate.then_some(
            (SEGMENT_HEADER_LEN as u64 + PREALLOCATE_STEP_BYTES)
                .min(self.options.segment_size_bytes),
        );
        match create_segment(self.vfs.as_ref(), &self.dir, &header, preallocate) {
            Ok((file, path)) => {
                self.syncs.fetch_add(1, Ordering::Relaxed);
                writer.file = Some(Arc::from(file));
                writer.offset = SEGMENT_HEADER_LEN as u64;
                writer.preallocated = self.options.preallocate;
                writer.allocated_end = preallocate.unwrap_or(SEGMENT_HEADER_LEN as u64);
                writer.segment_records = 0;
                writer.sealed = false;
                self.mark_synced(writer);
                writer.segments.push(LiveSegment {
                    seq,
                    first_lsn: writer.next_lsn,
                    path,
                });
                Ok(())
            }
            Err((err, true)) => Err(self.poison_with(err)),
            Err((err, false)) => Err(err),
        }
    }
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

/// The flags of record `index` of a group of `count`: every record but the last says
/// the group continues.
fn group_flags(index: usize, count: usize) -> u8 {
    if index + 1 < count {
        FLAG_GROUP_CONTINUES
    } else {
        0
    }
}

/// Whether `count` more records from `first_lsn` stay within the LSN space.
fn lsns_left(first_lsn: u64, count: u64) -> bool {
    first_lsn.saturating_add(count) <= crate::format::LSN_MAX
}

/// Adds to a counter only ever changed with the writer locked: a plain load and store,
/// not a locked read-modify-write (readers of the stats see either value).
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Ordering::Relaxed) + by, Ordering::Relaxed);
}

/// Produces an equivalent error for each of several waiters (errors are not `Clone`).
fn retell(err: &Error) -> Error {
    match err {
        Error::Io { op, path, source } => Error::Io {
            op,
            path: path.clone(),
            source: match source.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(source.kind(), source.to_string()),
            },
        },
        Error::DiskFull { path, offset } => Error::DiskFull {
            path: path.clone(),
            offset: *offset,
        },
        Error::Poisoned { cause } => Error::Poisoned {
            cause: cause.clone(),
        },
        Error::InvalidArgument(msg) => Error::InvalidArgument(msg.clone()),
        Error::PermissionDenied { op, path } => Error::PermissionDenied {
            op,
            path: path.clone(),
        },
        Error::Closed => Error::Closed,
        other => Error::Poisoned {
            cause: other.to_string(),
        },
    }
}
