//! Durability accounting and the background syncer: which written bytes a completed
//! fdatasync covers, the fdatasyncs of the active segment (by an appender, or handed to
//! the syncer thread so appenders keep writing), and the rule that a failed fdatasync
//! poisons before anyone waiting for it learns the outcome.
//!
//! Under every policy but `Always`, once half of `unsynced_bytes_max` is written but not
//! synced, the writer hands an fdatasync of the active segment to the syncer thread,
//! which runs it outside the writer's mutex; an appender waits only when the whole bound
//! would be exceeded. Every other fdatasync of the active segment first waits for a
//! background one to finish, so a failure the kernel reports to only one caller is never
//! missed. Under `Interval` the thread also fdatasyncs on its tick.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::Shared;
use super::health::Health;
use super::histogram::{AtomicHistogram, Histogram};
use super::segment_writer::SegmentWriter;
use super::strategy::SyncStrategy;
use crate::error::{Error, Result};
use crate::io::VfsFile;

/// The syncer's job slot.
#[derive(Default)]
struct Slot {
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

pub(super) struct Syncer {
    health: Arc<Health>,
    strategy: SyncStrategy,
    /// The `SegmentWriter::written_bytes` value the last completed fdatasync covered: an
    /// fdatasync covers every byte written before it started. Only grows, and never
    /// passes the bytes written.
    synced_bytes: AtomicU64,
    slot: Mutex<Slot>,
    /// Wakes the syncer thread (a job, a stop, or its `Interval` tick).
    wake: Condvar,
    /// Wakes those waiting for a background fdatasync to finish.
    done: Condvar,
    /// A background fdatasync is claimed or running. Set and cleared with `slot` locked;
    /// read without it as a fast check.
    in_flight: AtomicBool,
    /// fdatasync (and fsync) calls on segment files.
    syncs: AtomicU64,
    /// How long the fdatasyncs of the active segment took, in microseconds.
    fsync_micros: AtomicHistogram,
}

impl Syncer {
    pub(super) fn new(health: Arc<Health>, strategy: SyncStrategy) -> Self {
        Syncer {
            health,
            strategy,
            synced_bytes: AtomicU64::new(0),
            slot: Mutex::new(Slot::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
            in_flight: AtomicBool::new(false),
            syncs: AtomicU64::new(0),
            fsync_micros: AtomicHistogram::default(),
        }
    }

    /// The fdatasync latencies so far, in microseconds.
    pub(super) fn fsync_micros(&self) -> Histogram {
        self.fsync_micros.snapshot()
    }

    /// Segment fsyncs so far.
    pub(super) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Counts an fsync of a segment made by a layer below (a cut-back, a new segment).
    pub(super) fn count_sync(&self) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes written to the active segment and not yet covered by a completed fdatasync.
    pub(super) fn unsynced(&self, writer: &SegmentWriter) -> u64 {
        writer.unsynced(self.synced_bytes.load(Ordering::Acquire))
    }

    /// The durable frontier a frame encoded now records (a background fdatasync still
    /// running is not counted, so it never claims more than is durable).
    pub(super) fn durable_frontier(&self, writer: &SegmentWriter) -> u64 {
        writer.durable_frontier(self.synced_bytes.load(Ordering::Acquire))
    }

    /// Records that everything `writer` wrote so far is durable (after it synced or cut
    /// back the file itself, or started a segment).
    pub(super) fn mark_synced(&self, writer: &SegmentWriter) {
        self.mark_synced_through(writer.written_bytes());
    }

    /// Records that a completed fdatasync covered the first `written_bytes` bytes written.
    fn mark_synced_through(&self, written_bytes: u64) {
        self.synced_bytes.fetch_max(written_bytes, Ordering::AcqRel);
    }

    /// fdatasyncs `file`, which then covers the first `written_bytes` bytes written; a
    /// failure poisons (`op` and `path` name the call in the error; the path is built
    /// only then, off the commit path).
    fn fdatasync_covering(
        &self,
        file: &dyn VfsFile,
        path: impl FnOnce() -> PathBuf,
        written_bytes: u64,
        op: &'static str,
    ) -> Result<()> {
        let started = Instant::now();
        let synced = file.sync_data();
        self.fsync_micros.record_duration(started.elapsed());
        match synced {
            Ok(()) => {
                self.count_sync();
                self.mark_synced_through(written_bytes);
                Ok(())
            }
            Err(err) => Err(self.health.poison_with(Error::io(op, path(), err))),
        }
    }

    /// fdatasyncs the active segment if it has unsynced bytes; a failure poisons. Waits
    /// for a background fdatasync first, so one that failed is seen here.
    pub(super) fn sync_active(&self, writer: &SegmentWriter) -> Result<()> {
        self.wait_idle();
        self.health.check_usable()?;
        if self.unsynced(writer) == 0 {
            return Ok(());
        }
        let Some(file) = writer.active_file() else {
            return Ok(());
        };
        self.fdatasync_covering(
            file.as_ref(),
            || writer.active_path(),
            writer.written_bytes(),
            "fdatasync",
        )
    }

    /// Hands an fdatasync to the syncer thread when the strategy says one is due and none
    /// is running (called with the writer locked, after a write).
    pub(super) fn hand_off_if_due(&self, writer: &SegmentWriter) {
        if self.in_flight.load(Ordering::Acquire)
            || !self.strategy.hands_off_sync(self.unsynced(writer))
        {
            return;
        }
        let mut slot = self.slot.lock();
        if let Some(job) = self.claim(writer, &mut slot) {
            slot.job = Some(job);
            self.wake.notify_one();
        }
    }

    /// Claims a background fdatasync of everything written to the active segment so
    /// far: `None` if nothing is unsynced, one is already running, or the syncer stopped.
    fn claim(&self, writer: &SegmentWriter, slot: &mut Slot) -> Option<SyncJob> {
        if slot.stop || self.in_flight.load(Ordering::Acquire) || self.unsynced(writer) == 0 {
            return None;
        }
        let file = Arc::clone(writer.active_file()?);
        self.in_flight.store(true, Ordering::Release);
        Some(SyncJob {
            file,
            path: writer.active_path(),
            written_bytes: writer.written_bytes(),
        })
    }

    /// Runs a claimed background fdatasync (without the writer's mutex): on success it
    /// covers what was written before it was claimed; a failure poisons, before anyone
    /// waiting for it is woken.
    fn run(&self, job: SyncJob) {
        /// Ends the job even if the file system panics, so no waiter waits forever.
        struct Finish<'a>(&'a Syncer);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                let _slot = self.0.slot.lock();
                self.0.in_flight.store(false, Ordering::Release);
                self.0.done.notify_all();
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
    pub(super) fn wait_idle(&self) {
        if !self.in_flight.load(Ordering::Acquire) {
            return;
        }
        let mut slot = self.slot.lock();
        if let Some(job) = slot.job.take() {
            drop(slot);
            self.run(job);
            return;
        }
        while self.in_flight.load(Ordering::Acquire) {
            self.done.wait(&mut slot);
        }
    }

    /// Asks the syncer thread to stop (it runs a claimed job first).
    pub(super) fn stop(&self) {
        self.slot.lock().stop = true;
        self.wake.notify_all();
    }
}

/// Starts the syncer thread: it runs the background fdatasyncs the writer hands it and,
/// with `every`, one every `every`. It runs a claimed job before it stops, so nobody
/// waits for a job that never runs.
pub(super) fn spawn_syncer(shared: Arc<Shared>, every: Option<Duration>) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("walstate-syncer".into())
        .spawn(move || {
            let syncer = &shared.syncer;
            loop {
                let job = {
                    let mut slot = syncer.slot.lock();
                    loop {
                        if let Some(job) = slot.job.take() {
                            break Some(job);
                        }
                        if slot.stop {
                            return;
                        }
                        match every {
                            Some(every) => {
                                if syncer.wake.wait_for(&mut slot, every).timed_out() {
                                    break None;
                                }
                            }
                            None => syncer.wake.wait(&mut slot),
                        }
                    }
                };
                let job = match job {
                    Some(job) => Some(job),
                    // The interval tick: everything written so far. With the writer
                    // locked no waiter runs a job, so one claimed meanwhile is still in
                    // the slot: it is widened to cover everything too.
                    None if syncer.health.check_usable().is_ok() => {
                        let writer = shared.writer.lock();
                        let mut slot = syncer.slot.lock();
                        match slot.job.take() {
                            Some(mut job) => {
                                job.written_bytes = writer.written_bytes();
                                Some(job)
                            }
                            None => syncer.claim(&writer, &mut slot),
                        }
                    }
                    None => None,
                };
                if let Some(job) = job {
                    // A failure poisons inside; nothing else to do here.
                    syncer.run(job);
                }
            }
        })
        .map_err(|err| Error::io("spawn syncer thread", PathBuf::new(), err))
}
