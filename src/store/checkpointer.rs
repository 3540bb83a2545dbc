//! The background checkpointer and what a checkpoint does: snapshot the state under a
//! short read lock, write it at low priority, prune checkpoints, segments and restore
//! files it covers.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};

use crate::checkpoint;
use crate::error::{DiskFullOp, Error, Result};
use crate::format;
use crate::state::StateMachine;

use super::{CheckpointInfo, Inner, Store, Writer};

/// Journal bytes are counted as "backlog + bytes appended by this process": the backlog
/// is what open replayed, so a long journal is compacted soon after open even when this
/// process appends little.
pub(super) struct CheckpointProgress {
    pub(super) last_lsn: u64,
    /// Journal bytes replayed at open (not yet covered by a checkpoint of this process).
    pub(super) backlog_bytes: u64,
    /// Backlog + appended bytes at the last checkpoint (0 before the first).
    pub(super) journal_bytes_at_last: u64,
}

/// Wakes the background checkpointer. Kept apart from the store so the waiting thread
/// holds no reference to it: dropping the store releases the lock at once.
#[derive(Default)]
pub(super) struct CheckpointSignal {
    pub(super) triggered: Mutex<bool>,
    pub(super) cv: Condvar,
    pub(super) stop: AtomicBool,
}

impl<S: StateMachine> Store<S> {
    /// Writes a checkpoint of the current state now, then deletes checkpoints beyond the
    /// retained count and segments the oldest retained checkpoint covers. Waits for a
    /// checkpoint already running to finish first.
    ///
    /// Like a background checkpoint, the state is encoded, written and checked on a
    /// helper thread at a low CPU priority (Linux: nice 19), so that commits made
    /// meanwhile are scheduled first, and written no faster than
    /// [`crate::Options::checkpoint_write_rate`]; this call returns when the checkpoint is done.
    pub fn checkpoint(&self) -> Result<CheckpointInfo> {
        let writer = self.writer()?;
        self.inner
            .run_checkpoint(writer)
            .map_err(|err| err.during(DiskFullOp::Checkpoint))
    }

    /// Writes a checkpoint now, as [`Store::checkpoint`] does, if the trigger says one is
    /// due: at least [`crate::Options::checkpoint_after_bytes`] journal bytes since the
    /// last checkpoint (counting the journal replayed at open, as the background
    /// checkpointer does). Returns `None`, writing nothing, when none is due or the trigger
    /// is off (`None`).
    ///
    /// For short-lived processes (command-line tools, batch jobs), which exit before the
    /// background checkpointer gets to run: call it before [`Store::close`]. With
    /// [`crate::Options::background_checkpoints`] off the trigger is evaluated only here.
    ///
    /// ```
    /// use walstate::{KvStore, Options};
    ///
    /// # let tmp = tempfile::tempdir()?;
    /// let options = Options::default()
    ///     .checkpoint_after_bytes(Some(4096))
    ///     .background_checkpoints(false);
    /// let store = KvStore::open(tmp.path().join("data"), options)?;
    /// store.put("small", "value")?;
    /// assert!(store.checkpoint_if_due()?.is_none()); // far below 4 KiB of journal
    /// store.put("large", vec![b'x'; 8192])?;
    /// let written = store.checkpoint_if_due()?; // 8 KiB of journal: over the trigger
    /// assert_eq!(written.map(|info| info.lsn), Some(2));
    /// assert!(store.checkpoint_if_due()?.is_none()); // nothing since that checkpoint
    /// store.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn checkpoint_if_due(&self) -> Result<Option<CheckpointInfo>> {
        let writer = self.writer()?;
        let Some(threshold) = self.inner.options.checkpoint_after_bytes else {
            return Ok(None);
        };
        // Counted under the checkpoint lock: one that ran meanwhile (in the background)
        // has updated the counters, and a second one is not written right after it.
        let _running = writer.checkpoint_running.lock();
        if journal_bytes_since_checkpoint(writer) < threshold {
            return Ok(None);
        }
        self.inner.run_checkpoint_holding_lock(writer).map(Some)
    }

    /// Journal bytes since the last checkpoint, as the trigger counts them: what open
    /// replayed plus what this process appended, less what the last checkpoint of this
    /// process covered. Always 0 for a read-only store.
    pub fn journal_bytes_since_checkpoint(&self) -> u64 {
        self.inner
            .writer
            .as_ref()
            .map_or(0, journal_bytes_since_checkpoint)
    }

    pub(super) fn maybe_trigger_checkpoint(&self, writer: &Writer) {
        if !self.inner.options.background_checkpoints {
            return;
        }
        let Some(threshold) = self.inner.options.checkpoint_after_bytes else {
            return;
        };
        // A running checkpoint needs no trigger (its counters are not updated yet, so
        // this would count its bytes again and queue a second one at once).
        if writer.checkpoint_running.is_locked() {
            return;
        }
        let since = journal_bytes_since_checkpoint(writer);
        if since >= threshold {
            *writer.signal.triggered.lock() = true;
            writer.signal.cv.notify_one();
        }
    }

    pub(super) fn start_checkpointer(&self) -> Result<()> {
        let weak: Weak<Inner<S>> = Arc::downgrade(&self.inner);
        let Some(writer) = &self.inner.writer else {
            return Ok(());
        };
        let signal = Arc::clone(&writer.signal);
        let handle = std::thread::Builder::new()
            .name("walstate-checkpointer".into())
            .spawn(move || checkpointer_loop(weak, signal))
            .map_err(|err| Error::io("spawn checkpoint thread", PathBuf::new(), err))?;
        *writer.checkpointer.lock() = Some(handle);
        Ok(())
    }

    /// The error of the last background checkpoint, if it failed.
    pub fn last_checkpoint_error(&self) -> Option<String> {
        self.inner
            .writer
            .as_ref()
            .and_then(|w| w.last_checkpoint_error.lock().clone())
    }
}

/// The trigger's count (see [`Store::journal_bytes_since_checkpoint`]). Holds the progress
/// lock only to read the counters: a commit never waits for a checkpoint.
fn journal_bytes_since_checkpoint(writer: &Writer) -> u64 {
    let progress = writer.progress.lock();
    (writer.journal.stats().bytes + progress.backlog_bytes)
        .saturating_sub(progress.journal_bytes_at_last)
}

pub(super) fn checkpointer_loop<S: StateMachine>(
    weak: Weak<Inner<S>>,
    signal: Arc<CheckpointSignal>,
) {
    loop {
        {
            let mut triggered = signal.triggered.lock();
            while !*triggered && !signal.stop.load(Ordering::Acquire) {
                signal.cv.wait(&mut triggered);
            }
            *triggered = false;
        }
        if signal.stop.load(Ordering::Acquire) {
            return;
        }
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let Some(writer) = &inner.writer else {
            return;
        };
        let result = inner.run_checkpoint(writer);
        *writer.last_checkpoint_error.lock() = result.err().map(|e| e.to_string());
    }
}

impl<S: StateMachine> Inner<S> {
    /// [`Inner::write_state_file`] for a checkpoint, on a helper thread that lowers its
    /// own CPU priority first (see [`lower_thread_priority`]) and then encodes, writes,
    /// checks and syncs the file: seconds of CPU for a large state, which would otherwise
    /// delay committers on a busy machine. Only this part runs at low priority: it takes
    /// no lock a commit needs (but to poison the store after a failed fsync), so a
    /// starved helper cannot hold commits up. If no thread can be spawned, the work runs
    /// here. `state`, the checkpoint's snapshot, is consumed as it is written.
    pub(super) fn write_checkpoint_file(
        &self,
        dir: &Path,
        name: &str,
        lsn: u64,
        state: S,
    ) -> Result<(PathBuf, u64)> {
        // Handed over through a slot, so that it is still here if the helper cannot be
        // spawned (a failed spawn drops its closure).
        let slot = Mutex::new(Some(state));
        let write = || match slot.lock().take() {
            Some(state) => self.write_state_file(dir, name, lsn, Cow::Owned(state)),
            // Not reached: the helper and the fallback below never both run.
            None => Err(Error::InvalidArgument(
                "the checkpoint's state was already written".into(),
            )),
        };
        std::thread::scope(|scope| {
            let helper = std::thread::Builder::new()
                .name("walstate-checkpoint-writer".into())
                .spawn_scoped(scope, || {
                    lower_thread_priority();
                    write()
                });
            match helper {
                Ok(helper) => helper
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(_) => write(),
            }
        })
    }

    /// Leaves this writer's journal counters in `WRITER-STATS`, when the options ask for
    /// it (best effort: see [`super::writer_stats::record`]).
    pub(super) fn record_writer_stats(&self, writer: &Writer) {
        if self.options.record_writer_stats {
            super::writer_stats::record(
                self.vfs.as_ref(),
                &self.dir,
                writer.journal.store_id(),
                writer.journal.stats(),
            );
        }
    }

    pub(super) fn run_checkpoint(&self, writer: &Writer) -> Result<CheckpointInfo> {
        let _running = writer.checkpoint_running.lock();
        let started = std::time::Instant::now();
        let result = self.run_checkpoint_holding_lock(writer);
        trace_checkpoint(&self.dir, &result, started.elapsed());
        result
    }

    /// [`Inner::run_checkpoint`] with `writer.checkpoint_running` already held by the caller.
    fn run_checkpoint_holding_lock(&self, writer: &Writer) -> Result<CheckpointInfo> {
        writer.journal.check_usable()?;
        // A shared writer checkpoints holding the writer lock, caught up: no other
        // process deletes segments or restores meanwhile, and the checkpoint covers what
        // they committed too. This process's commits go on.
        let _pin = writer.journal.pin_lease()?;
        let journal_bytes = writer.journal.stats().bytes + writer.progress.lock().backlog_bytes;
        // The only pause for writers: an O(1) clone for persistent collections.
        let (state, lsn) = self.clone_state();
        // Everything up to `lsn` must be durable before a checkpoint claims it.
        writer.journal.sync()?;
        let vfs = self.vfs.as_ref();
        let dir = &self.dir;
        // Consumes the snapshot as it is written: what commits copied on write since the
        // snapshot is freed as the encoding passes it, not when the checkpoint returns.
        let (path, bytes) =
            self.write_checkpoint_file(dir, &format::checkpoint_file_name(lsn), lsn, state)?;
        let checkpoints_deleted =
            checkpoint::prune_checkpoints(vfs, dir, self.options.checkpoints_retained)?;
        let oldest = checkpoint::list_checkpoints(vfs, dir)?
            .first()
            .map_or(lsn, |c| c.lsn);
        let segments_deleted = writer.journal.delete_segments_through(oldest)?;
        remove_restore_files_through(vfs, dir, oldest)?;
        let mut progress = writer.progress.lock();
        progress.last_lsn = lsn;
        progress.journal_bytes_at_last = journal_bytes;
        drop(progress);
        // Still holding a shared writer's lock: no other process's open removes the
        // temp file of this write as a crash's leftover.
        self.record_writer_stats(writer);
        Ok(CheckpointInfo {
            path,
            lsn,
            bytes,
            segments_deleted,
            checkpoints_deleted,
        })
    }
    pub(super) fn stop_checkpointer(&self) {
        let Some(writer) = &self.writer else {
            return;
        };
        writer.signal.stop.store(true, Ordering::Release);
        *writer.signal.triggered.lock() = true;
        writer.signal.cv.notify_all();
        let handle = writer.checkpointer.lock().take();
        if let Some(handle) = handle
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

/// Niceness of checkpoint threads: the lowest priority short of `SCHED_IDLE`.
#[cfg(target_os = "linux")]
const CHECKPOINT_NICE: libc::c_int = 19;

/// Lowers the calling thread's CPU priority to [`CHECKPOINT_NICE`] (Linux: niceness is
/// per thread; unprivileged, it cannot be raised again, so only short-lived helper
/// threads call this). Checkpoint work then yields the CPU to commits: on a busy core a
/// woken committer preempts it instead of waiting for the next scheduler tick (4 ms at
/// HZ=250). Not `SCHED_IDLE`, which measured no better here and would let any busy
/// thread of the application starve checkpoints (and the journal grow) indefinitely.
/// A failure changes nothing and is not an error: the checkpoint just competes at
/// normal priority.
pub(super) fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread; no memory is passed.
        unsafe {
            let tid = libc::gettid();
            if let Ok(tid) = libc::id_t::try_from(tid) {
                let _ = libc::setpriority(libc::PRIO_PROCESS, tid, CHECKPOINT_NICE);
            }
        }
    }
}

pub(super) fn remove_restore_files_through(
    vfs: &dyn crate::io::Vfs,
    dir: &Path,
    lsn: u64,
) -> Result<()> {
    let names = vfs
        .read_dir(dir)
        .map_err(|err| Error::io("list directory", dir, err))?;
    for name in names {
        if format::parse_restore_file_name(&name).is_some_and(|n| n <= lsn) {
            let path = dir.join(&name);
            vfs.remove_file(&path)
                .map_err(|err| Error::io("delete restore file", &path, err))?;
            vfs.sync_dir(dir)
                .map_err(|err| Error::io("fsync directory", dir, err))?;
        }
    }
    Ok(())
}

/// The `tracing` event of a checkpoint: what it wrote and deleted, or why it failed.
fn trace_checkpoint(dir: &Path, result: &Result<CheckpointInfo>, elapsed: std::time::Duration) {
    match result {
        Ok(info) => tracing::info!(
            target: "walstate",
            checkpoint = %info.path.display(),
            lsn = info.lsn,
            bytes = info.bytes,
            segments_deleted = info.segments_deleted.len(),
            checkpoints_deleted = info.checkpoints_deleted.len(),
            elapsed_ms = elapsed.as_millis() as u64,
            "checkpoint written"
        ),
        Err(err) => tracing::error!(
            target: "walstate",
            dir = %dir.display(),
            error = %err,
            "checkpoint failed"
        ),
    }
}
