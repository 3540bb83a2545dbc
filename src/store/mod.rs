//! `Store<S>`: the embedded API. Commands are encoded, decoded back (the decoded value is
//! what gets applied), logged, and applied to the state only once durable, in LSN order.
//! Checkpoints run in the background; snapshots and restores are atomic.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::checkpoint::{self, SNAPSHOT_DIR_NAME};
use crate::error::{Error, Result};
use crate::format::RECORD_KIND_COMMAND;
use crate::io::{EntryKind, LockGuard, VfsRef};
use crate::journal::follow::TailPosition;
use crate::journal::{CaughtUpTo, Journal, JournalStats, LeaseConfig, RecordToAppend};
use crate::lock::{LOCK_FILE_NAME, lock_store};
use crate::options::{Options, SHARED_LOCK_WAIT_DEFAULT, Writers};
use crate::recovery::{self, Mode, RecoveryReport};
use crate::schema::{self, Schema};
use crate::state::StateMachine;

mod checkpointer;
mod dir;
mod snapshots;
mod stream;
#[cfg(feature = "internals")]
pub mod writer_stats;
#[cfg(not(feature = "internals"))]
mod writer_stats;

use checkpointer::{CheckpointProgress, CheckpointSignal};
use dir::prepare_dir;
pub use stream::{STREAM_IN_FLIGHT_MAX, StreamStopped, Streamed};

/// The state and the LSN of the last command applied to it.
struct Applied<S> {
    state: S,
    lsn: u64,
}

/// A checkpoint that was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointInfo {
    /// The file.
    pub path: PathBuf,
    /// LSN of the state it holds.
    pub lsn: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Segment files deleted because the oldest retained checkpoint covers them.
    pub segments_deleted: Vec<PathBuf>,
    /// Older checkpoints deleted beyond the retained count.
    pub checkpoints_deleted: Vec<PathBuf>,
}

/// What [`Store::refresh`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refreshed {
    /// Records applied by this refresh.
    pub records: u64,
    /// The LSN of the last command applied, after the refresh.
    pub last_lsn: u64,
    /// `None` when only the records appended since the last look were read; otherwise
    /// why the store had to be recovered again from its newest checkpoint (a checkpoint
    /// deleted the segment it stood in, a snapshot was restored, bytes it had read were
    /// rewritten, ...). [`Store::recovery_report`] then describes that recovery.
    pub reloaded: Option<String>,
}

/// What a snapshot restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreInfo {
    /// The snapshot restored.
    pub snapshot: String,
    /// LSN of the restore record: the restored state is in effect from this LSN on.
    pub lsn: u64,
    /// The automatic snapshot holding the state that was replaced.
    pub previous_state_snapshot: String,
}

struct Writer {
    journal: Journal,
    /// Appends hold it shared; a restore holds it exclusively so it knows its LSN.
    gate: RwLock<()>,
    /// Held for the whole of a checkpoint: one runs at a time.
    checkpoint_running: Mutex<()>,
    /// Locked only to read or update the counters, never across a checkpoint's I/O, so
    /// nothing that needs it waits for a checkpoint.
    progress: Mutex<CheckpointProgress>,
    signal: Arc<CheckpointSignal>,
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    last_checkpoint_error: Mutex<Option<String>>,
    /// The writer lock, held from open to close by an exclusive writer (a shared one
    /// takes it per commit group, in the journal).
    _lock: Option<Box<dyn LockGuard>>,
    /// Why the last catch-up of a shared writer had to recover again, until a refresh
    /// reports it.
    reloaded: Mutex<Option<String>>,
}

struct Inner<S: StateMachine> {
    dir: PathBuf,
    options: Options,
    vfs: VfsRef,
    applied: Arc<RwLock<Applied<S>>>,
    report: RwLock<RecoveryReport>,
    /// Where the journal was last read up to (read-only stores follow it from there).
    /// Held across a refresh: one runs at a time.
    tail: Mutex<TailPosition>,
    /// The schema of `S`, which every file this store writes names.
    schema: Schema,
    writer: Option<Writer>,
}

/// A crash-safe store of a state machine `S`. Clone it freely: clones share one store.
///
/// Every command is logged and made durable (under the [`SyncPolicy`](crate::SyncPolicy))
/// before it is applied, so reopening replays exactly what was acknowledged:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use walstate::{Options, StateMachine, Store};
///
/// #[derive(Default, Clone, Serialize, Deserialize)]
/// struct Counter { total: u64 }
///
/// #[derive(Serialize, Deserialize)]
/// enum Command { Add(u64) }
///
/// impl StateMachine for Counter {
///     type Command = Command;
///     type Output = u64; // the total after the command
///     fn apply(&mut self, command: &Command) -> u64 {
///         match command {
///             Command::Add(n) => self.total += n,
///         }
///         self.total
///     }
/// }
///
/// # let tmp = tempfile::tempdir()?;
/// # let dir = tmp.path().join("counter");
/// let store = Store::<Counter>::open(&dir, Options::default())?;
/// assert!(store.recovery_report().created);
/// assert_eq!(store.apply(Command::Add(2))?, 2);
/// // A batch is one atomic, durable group: after a crash all of it is there or none.
/// assert_eq!(store.apply_batch(vec![Command::Add(3), Command::Add(5)])?, vec![5, 10]);
/// assert_eq!(store.read(|counter| counter.total)?, 10);
/// assert_eq!(store.last_lsn(), 3); // one LSN per command
/// store.close()?;
///
/// // Reopening replays the journal and says what it found.
/// let store = Store::<Counter>::open(&dir, Options::default())?;
/// let report = store.recovery_report();
/// assert!(!report.created);
/// assert_eq!(report.last_lsn, 3);
/// assert!(report.torn_tail.is_none());
/// assert_eq!(store.read(|counter| counter.total)?, 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Store<S: StateMachine> {
    inner: Arc<Inner<S>>,
    _lifetime: Arc<Lifetime<S>>,
}

/// Shared by every user-facing handle (never by the background checkpointer): when the
/// last handle is dropped it stops and joins the checkpointer, so the store — and its
/// writer lock — is gone by the time `drop` returns.
struct Lifetime<S: StateMachine>(Arc<Inner<S>>);

impl<S: StateMachine> Drop for Lifetime<S> {
    fn drop(&mut self) {
        self.0.stop_checkpointer();
    }
}

impl<S: StateMachine> Store<S> {
    fn from_parts(
        dir: PathBuf,
        options: Options,
        vfs: VfsRef,
        recovered: recovery::Recovered<S>,
        schema: Schema,
        writer: Option<Writer>,
    ) -> Self {
        let inner = Arc::new(Inner {
            dir,
            options,
            vfs,
            applied: Arc::new(RwLock::new(Applied {
                state: recovered.state,
                lsn: recovered.lsn,
            })),
            report: RwLock::new(recovered.report),
            tail: Mutex::new(TailPosition::after(&recovered.outcome)),
            schema,
            writer,
        });
        Store {
            _lifetime: Arc::new(Lifetime(Arc::clone(&inner))),
            inner,
        }
    }
}

impl<S: StateMachine> Clone for Store<S> {
    fn clone(&self) -> Self {
        Store {
            inner: Arc::clone(&self.inner),
            _lifetime: Arc::clone(&self._lifetime),
        }
    }
}

impl<S: StateMachine> std::fmt::Debug for Store<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .field("read_only", &self.inner.writer.is_none())
            .finish()
    }
}

impl<S: StateMachine> Store<S> {
    /// Opens (or creates, see [`Options::create_if_missing`]) the store in `dir`: takes
    /// the writer lock, loads the newest valid checkpoint, replays the journal, truncates
    /// a torn tail and refuses mid-log corruption unless [`Options::salvage`] is set.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Self> {
        // Before anything touches the directory: types without a schema are refused.
        let schema = Schema::of::<S>()?;
        let (dir, vfs, created, lock) = Self::lock_for_writing(dir.as_ref(), &options)?;
        let recovered = match recovery::recover::<S>(
            vfs.as_ref(),
            &dir,
            Mode::Writer {
                salvage: options.salvage,
            },
        ) {
            Ok(recovered) => recovered,
            // Still holding the lock: nothing else writes while creation is undone.
            Err(err) => return Err(dir::undo_creation(vfs.as_ref(), &dir, created, err)),
        };
        Self::open_locked(dir, options, vfs, created, lock, recovered, schema)
    }

    /// Validates the options, prepares the directory and takes the writer lock: what
    /// every writer open does before recovery. Returns (dir, vfs, created, lock).
    pub(crate) fn lock_for_writing(
        dir: &Path,
        options: &Options,
    ) -> Result<(PathBuf, VfsRef, bool, Box<dyn LockGuard>)> {
        options.validate()?;
        let dir = dir.to_path_buf();
        let vfs = options.vfs.clone();
        let mut created = prepare_dir(&vfs, &dir, options.create_if_missing)?;
        let lock = lock_store(vfs.as_ref(), &dir, options.lock_wait())?;
        if created {
            // Another writer may have created the store between the look and the lock:
            // then this open does not create it (and a failure undoes nothing of theirs).
            let names = vfs
                .read_dir(&dir)
                .map_err(|err| Error::io("list directory", &dir, err))?;
            created = !recovery::looks_like_store(&names);
        }
        // Make the directory's entries durable before building on them: the lock file of
        // a new store, and entries an earlier writer created whose directory fsync failed.
        if let Err(err) = vfs.sync_dir(&dir) {
            let err = Error::io("fsync store directory at open", &dir, err);
            return Err(dir::undo_creation(vfs.as_ref(), &dir, created, err));
        }
        let snapshot_dir = dir.join(SNAPSHOT_DIR_NAME);
        if vfs
            .entry_kind(&snapshot_dir)
            .map_err(|err| Error::io("stat", &snapshot_dir, err))?
            == Some(EntryKind::Dir)
        {
            vfs.sync_dir(&snapshot_dir)
                .map_err(|err| Error::io("fsync snapshot directory at open", &snapshot_dir, err))?;
        }
        Ok((dir, vfs, created, lock))
    }

    /// The rest of a writer open, holding `lock`, with what recovery found.
    pub(crate) fn open_locked(
        dir: PathBuf,
        options: Options,
        vfs: VfsRef,
        created: bool,
        lock: Box<dyn LockGuard>,
        mut recovered: recovery::Recovered<S>,
        schema: Schema,
    ) -> Result<Self> {
        recovered.report.created = created;
        let journal = match Self::start_journal(&dir, &options, &vfs, &recovered, &schema, created)
        {
            Ok(journal) => journal,
            // Still holding the lock: nothing else writes while creation is undone.
            Err(err) => return Err(dir::undo_creation(vfs.as_ref(), &dir, created, err)),
        };
        let writer = Writer {
            journal,
            gate: RwLock::new(()),
            checkpoint_running: Mutex::new(()),
            progress: Mutex::new(CheckpointProgress {
                last_lsn: recovered.checkpoint_lsn,
                backlog_bytes: recovered.report.bytes_replayed,
                journal_bytes_at_last: 0,
            }),
            signal: Arc::new(CheckpointSignal::default()),
            checkpointer: Mutex::new(None),
            last_checkpoint_error: Mutex::new(None),
            _lock: None,
            reloaded: Mutex::new(None),
        };
        let shared = writer.journal.is_shared();
        let mut writer = writer;
        let mut open_lock = Some(lock);
        if !shared {
            writer._lock = open_lock.take();
        }
        let store = Store::from_parts(dir, options, vfs, recovered, schema, Some(writer));
        if shared {
            store.install_catch_up();
            // From here on the lock is taken for each commit group.
            drop(open_lock);
        }
        if store.inner.options.checkpoint_after_bytes.is_some()
            && store.inner.options.background_checkpoints
        {
            store.start_checkpointer()?;
            if let Some(writer) = &store.inner.writer {
                store.maybe_trigger_checkpoint(writer);
            }
        }
        Ok(store)
    }

    /// Writes the schema file (first: every segment and checkpoint from now on names it)
    /// and resumes the journal after what recovery found. A store being `created` gets
    /// its first segment now: creation is finished, or fails, within the open.
    fn start_journal(
        dir: &Path,
        options: &Options,
        vfs: &VfsRef,
        recovered: &recovery::Recovered<S>,
        schema: &Schema,
        created: bool,
    ) -> Result<Journal> {
        let store_id = recovered.report.store_id.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} has no identity file after recovery as a writer",
                dir.display()
            ))
        })?;
        schema::files::ensure(vfs.as_ref(), dir, store_id, schema)?;
        let journal_options = crate::journal::JournalOptions {
            schema_id: schema.id().get(),
            ..options.journal.clone()
        };
        let journal = match options.writers {
            Writers::Exclusive => {
                Journal::resume(vfs.clone(), dir, journal_options, &recovered.outcome)?
            }
            Writers::Shared => Journal::resume_shared(
                vfs.clone(),
                dir,
                journal_options,
                &recovered.outcome,
                LeaseConfig {
                    vfs: vfs.clone(),
                    path: dir.join(LOCK_FILE_NAME),
                    holder: format!("pid {}", std::process::id()),
                    wait: options.lock_wait().unwrap_or(SHARED_LOCK_WAIT_DEFAULT),
                },
            )?,
        };
        if created {
            journal.start_first_segment()?;
        }
        Ok(journal)
    }

    /// Opens the store without taking the writer lock and without ever writing: works
    /// while another process writes. An incomplete tail is treated as in flight. Call
    /// [`Store::refresh`] to catch up with the writer.
    pub fn open_read_only(dir: impl AsRef<Path>, options: Options) -> Result<Self> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let vfs = options.vfs.clone();
        let schema = Schema::of::<S>()?;
        prepare_dir(&vfs, &dir, false)?;
        let recovered = recovery::recover::<S>(vfs.as_ref(), &dir, Mode::ReadOnly)?;
        Ok(Store::from_parts(
            dir, options, vfs, recovered, schema, None,
        ))
    }

    /// Catches a read-only store up with what the writer committed since the open or the
    /// last refresh. Reads only the records appended since (O(new records)); recovers
    /// again from the newest checkpoint only when the journal changed in a way that
    /// needs it, and says why in [`Refreshed::reloaded`]. The state is replaced at once,
    /// never left half-applied; on an error it stays as it was.
    ///
    /// A shared writer ([`crate::Writers::Shared`]) catches up with the other processes'
    /// commits the same way, taking the writer lock briefly (it also does so before
    /// each of its own commits; [`Store::read`] alone never looks). `records` then counts
    /// the LSNs the state moved, its own commits made meanwhile included. An exclusive
    /// writer is always current: nothing to do.
    ///
    /// A reader sees commits the writer has written, which it acknowledges once they are
    /// durable: a refresh racing a commit may show it a moment before the writer's
    /// caller hears of it.
    pub fn refresh(&self) -> Result<Refreshed> {
        let inner = &self.inner;
        if let Some(writer) = &inner.writer {
            let before = self.last_lsn();
            writer.journal.catch_up_now()?;
            return Ok(Refreshed {
                records: self.last_lsn().saturating_sub(before),
                last_lsn: self.last_lsn(),
                reloaded: writer.reloaded.lock().take(),
            });
        }
        let mut tail = inner.tail.lock();
        let store_id = inner.report.read().store_id;
        let gate = schema::gate::SchemaGate::new(inner.schema.clone(), &inner.dir, store_id);
        let caught_up = {
            let applied = inner.applied.read();
            recovery::catch_up(
                inner.vfs.as_ref(),
                &inner.dir,
                &applied.state,
                *tail,
                store_id,
                &gate,
            )?
        };
        match caught_up {
            recovery::CaughtUp::At {
                state,
                lsn,
                records,
                position,
                unfinished: _,
            } => {
                if let Some(state) = state {
                    *inner.applied.write() = Applied { state, lsn };
                }
                *tail = position;
                Ok(Refreshed {
                    records,
                    last_lsn: self.last_lsn(),
                    reloaded: None,
                })
            }
            recovery::CaughtUp::Reload(why) => {
                tracing::info!(
                    target: "walstate",
                    dir = %inner.dir.display(),
                    reason = %why,
                    "refresh recovers again"
                );
                let recovered =
                    recovery::recover::<S>(inner.vfs.as_ref(), &inner.dir, Mode::ReadOnly)?;
                *tail = TailPosition::after(&recovered.outcome);
                let records = recovered.report.records_replayed;
                *inner.applied.write() = Applied {
                    state: recovered.state,
                    lsn: recovered.lsn,
                };
                *inner.report.write() = recovered.report;
                Ok(Refreshed {
                    records,
                    last_lsn: self.last_lsn(),
                    reloaded: Some(why),
                })
            }
        }
    }

    /// What the last open (or a refresh that had to recover again) found and did.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.inner.report.read().clone()
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// True when opened with [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.inner.writer.is_none()
    }

    /// Logs `command`, waits until it is durable under the sync policy, applies it and
    /// returns its output. The command applied is the one decoded from the logged bytes;
    /// a command that does not survive the codec round trip is refused before anything
    /// is written.
    pub fn apply(&self, command: S::Command) -> Result<S::Output> {
        self.apply_with_lsn(command).map(|(_, output)| output)
    }

    /// Like [`Store::apply`], and also returns the command's LSN.
    pub fn apply_with_lsn(&self, command: S::Command) -> Result<(u64, S::Output)> {
        // A read-only store refuses before the command is encoded.
        let writer = self.writer()?;
        let (payload, decoded) = logged::<S>(command)?;
        self.log_and_apply(writer, payload, move |state| state.apply_owned(decoded))
    }

    /// Logs `payload`, an encoded command, and once it is durable runs `apply` on the
    /// state in log order; returns the LSN and `apply`'s output. For callers that encode
    /// a command without building it ([`crate::KvStore::put`]): `apply` must change the
    /// state exactly as `apply_owned` of the decoded payload does, since that is what
    /// replay runs.
    pub(crate) fn apply_encoded<O: Send + 'static>(
        &self,
        payload: Vec<u8>,
        apply: impl FnOnce(&mut S) -> O + Send + 'static,
    ) -> Result<(u64, O)> {
        self.log_and_apply(self.writer()?, payload, apply)
    }

    /// [`Store::apply_encoded`] with the writer already checked usable.
    fn log_and_apply<O: Send + 'static>(
        &self,
        writer: &Writer,
        payload: Vec<u8>,
        apply: impl FnOnce(&mut S) -> O + Send + 'static,
    ) -> Result<(u64, O)> {
        let _gate = writer.gate.read();
        let done = writer
            .journal
            .append_record_with(command_record(payload), self.when_durable(1, apply))?;
        self.maybe_trigger_checkpoint(writer);
        Ok(done)
    }

    /// Applies `commands` all-or-nothing: one atomic group of records with consecutive
    /// LSNs and one durable point. After a crash either all are there or none.
    pub fn apply_batch(&self, commands: Vec<S::Command>) -> Result<Vec<S::Output>> {
        self.apply_batch_with_lsn(commands)
            .map(|(_, outputs)| outputs)
    }

    /// Like [`Store::apply_batch`], and also returns the LSN of the first command (the
    /// others follow consecutively). An empty batch logs nothing and returns LSN 0.
    pub fn apply_batch_with_lsn(&self, commands: Vec<S::Command>) -> Result<(u64, Vec<S::Output>)> {
        let writer = self.writer()?;
        if commands.is_empty() {
            return Ok((0, Vec::new()));
        }
        let (records, decoded) = logged_group::<S>(commands)?;
        self.log_group_and_apply(writer, records, move |state| apply_all(state, decoded))
    }

    /// Logs `payloads`, encoded commands, as one atomic group, and once it is durable
    /// runs `apply` on the state; returns the first LSN and `apply`'s output. For callers
    /// that encode commands without building them ([`crate::KvStore::put_batch`]):
    /// `apply` must change the state exactly as `apply_owned` of each decoded payload, in
    /// order, does, since that is what replay runs. `payloads` must not be empty.
    pub(crate) fn apply_batch_encoded<O: Send + 'static>(
        &self,
        payloads: Vec<Vec<u8>>,
        apply: impl FnOnce(&mut S) -> O + Send + 'static,
    ) -> Result<(u64, O)> {
        let records = payloads.into_iter().map(command_record).collect();
        self.log_group_and_apply(self.writer()?, records, apply)
    }

    /// Appends `records` (commands) as one group with the writer already checked usable,
    /// then runs `apply` once they are durable.
    fn log_group_and_apply<O: Send + 'static>(
        &self,
        writer: &Writer,
        records: Vec<RecordToAppend>,
        apply: impl FnOnce(&mut S) -> O + Send + 'static,
    ) -> Result<(u64, O)> {
        let count = records.len() as u64;
        let _gate = writer.gate.read();
        let done = writer
            .journal
            .append_with(records, self.when_durable(count, apply))?;
        self.maybe_trigger_checkpoint(writer);
        Ok(done)
    }

    /// The journal hook of `records` commands logged from the first LSN it is given:
    /// runs `apply` on the state and moves the state's LSN to the last of them.
    fn when_durable<O>(
        &self,
        records: u64,
        apply: impl FnOnce(&mut S) -> O + Send + 'static,
    ) -> impl FnOnce(u64) -> O + Send + 'static {
        let applied = Arc::clone(&self.inner.applied);
        move |first_lsn| {
            let mut guard = applied.write();
            let output = apply(&mut guard.state);
            guard.lsn = first_lsn + records - 1;
            output
        }
    }

    /// Runs `f` on the current state: everything this process committed, and, for a
    /// shared writer or a reader, what other processes committed up to its last catch-up
    /// (its last commit or [`Store::refresh`]). It reads no file: call `refresh` first to
    /// see what another process committed a moment ago.
    pub fn read<R>(&self, f: impl FnOnce(&S) -> R) -> Result<R> {
        if let Some(writer) = &self.inner.writer {
            writer.journal.check_usable()?;
        }
        let guard = self.inner.applied.read();
        Ok(f(&guard.state))
    }

    /// The LSN of the last command applied (0 for an empty store).
    pub fn last_lsn(&self) -> u64 {
        self.inner.applied.read().lsn
    }

    /// Journal counters (records, bytes, fdatasyncs, group-commit batches).
    pub fn journal_stats(&self) -> Option<JournalStats> {
        self.inner.writer.as_ref().map(|w| w.journal.stats())
    }

    /// Makes everything acknowledged durable (needed only with `Never`, `Interval` and
    /// `Buffered`; under `Buffered` it also writes out the buffered commits).
    pub fn sync(&self) -> Result<()> {
        self.writer()?.journal.sync()
    }

    /// Stops the background checkpointer and makes everything acknowledged durable.
    /// Dropping the store without `close` is safe too (nothing acknowledged is lost
    /// under `Always`).
    pub fn close(self) -> Result<()> {
        let Some(writer) = &self.inner.writer else {
            return Ok(());
        };
        self.inner.stop_checkpointer();
        let closed = writer.journal.close();
        if closed.is_ok() {
            self.inner.record_writer_stats(writer);
        }
        closed
    }

    // ---------------------------------------------------------------------------------

    fn writer(&self) -> Result<&Writer> {
        let writer = self.inner.writer.as_ref().ok_or(Error::ReadOnly)?;
        writer.journal.check_usable()?;
        Ok(writer)
    }
}

impl<S: StateMachine> Store<S> {
    /// A shared writer's catch-up (see [`Journal::set_catch_up`]): the journal calls it
    /// holding the writer lock, in turn, when another process appended since its last
    /// look.
    fn install_catch_up(&self) {
        let Some(writer) = &self.inner.writer else {
            return;
        };
        let inner = Arc::downgrade(&self.inner);
        writer.journal.set_catch_up(Box::new(move |from| {
            let inner = inner.upgrade().ok_or(Error::Closed)?;
            inner.catch_up_writer(from)
        }));
    }
}

impl<S: StateMachine> Inner<S> {
    /// Applies to the state what other processes appended after `from`. Anything the
    /// follower cannot explain while this process holds the writer lock (a deleted
    /// segment, a torn tail a dead holder left, a record that does not apply) is judged
    /// by recovering again as a writer, which truncates a torn tail into quarantine or
    /// fails naming the damage.
    fn catch_up_writer(&self, from: TailPosition) -> Result<CaughtUpTo> {
        let store_id = self.report.read().store_id;
        let gate = schema::gate::SchemaGate::new(self.schema.clone(), &self.dir, store_id);
        let caught_up = {
            let applied = self.applied.read();
            recovery::catch_up(
                self.vfs.as_ref(),
                &self.dir,
                &applied.state,
                from,
                store_id,
                &gate,
            )?
        };
        let why = match caught_up {
            recovery::CaughtUp::At {
                state,
                lsn,
                position,
                unfinished: None,
                ..
            } => {
                if let Some(state) = state {
                    *self.applied.write() = Applied { state, lsn };
                }
                return Ok(CaughtUpTo::At(position));
            }
            recovery::CaughtUp::At {
                unfinished: Some(why),
                ..
            } => format!("{why}, left by a writer that is gone"),
            recovery::CaughtUp::Reload(why) => why,
        };
        tracing::info!(
            target: "walstate",
            dir = %self.dir.display(),
            reason = %why,
            "shared writer recovers again"
        );
        let recovered = recovery::recover::<S>(
            self.vfs.as_ref(),
            &self.dir,
            Mode::Writer {
                salvage: self.options.salvage,
            },
        )?;
        *self.applied.write() = Applied {
            state: recovered.state,
            lsn: recovered.lsn,
        };
        *self.report.write() = recovered.report;
        if let Some(writer) = &self.writer {
            *writer.reloaded.lock() = Some(why);
        }
        Ok(CaughtUpTo::Recovered(recovered.outcome))
    }

    fn clone_state(&self) -> (S, u64) {
        let guard = self.applied.read();
        (guard.state.clone(), guard.lsn)
    }

    /// Writes `state` as a checkpoint-format file, poisoning the store if an fsync fails.
    /// An owned state is consumed as it is written (see [`StateMachine::encode_owned`]).
    fn write_state_file(
        &self,
        dir: &Path,
        name: &str,
        lsn: u64,
        state: Cow<'_, S>,
    ) -> Result<(PathBuf, u64)> {
        let pacing = checkpoint::Pacing {
            bytes_per_second: self.options.checkpoint_write_rate,
            hurry: self.writer.as_ref().map(|writer| &writer.signal.stop),
        };
        let Some(writer) = self.writer.as_ref() else {
            return Err(Error::ReadOnly);
        };
        let ids = checkpoint::FileIds {
            store: writer.journal.store_id(),
            schema: self.schema.id(),
        };
        checkpoint::write_state_file(self.vfs.as_ref(), dir, name, lsn, ids, state, pacing).map_err(
            |failure| {
                if failure.poison {
                    self.poison(failure.error)
                } else {
                    failure.error
                }
            },
        )
    }

    /// A failed fsync: poisons the store (every later call errors until reopened) and
    /// returns the error to give the caller. A read-only store has nothing to poison.
    fn poison(&self, error: Error) -> Error {
        let Some(writer) = &self.writer else {
            return error;
        };
        let cause = error.to_string();
        writer.journal.poison(cause.clone());
        Error::Poisoned { cause }
    }
}

/// Encodes a batch of commands for one atomic group: the records to log and the commands
/// as decoded back from them (what replay will apply), or the first command refused.
fn logged_group<S: StateMachine>(
    commands: Vec<S::Command>,
) -> Result<(Vec<RecordToAppend>, Vec<S::Command>)> {
    let mut records = Vec::with_capacity(commands.len());
    let mut decoded = Vec::with_capacity(commands.len());
    for command in commands {
        let (payload, back) = logged::<S>(command)?;
        records.push(command_record(payload));
        decoded.push(back);
    }
    Ok((records, decoded))
}

/// Applies a logged group's commands in order, returning their outputs.
fn apply_all<S: StateMachine>(state: &mut S, commands: Vec<S::Command>) -> Vec<S::Output> {
    commands
        .into_iter()
        .map(|command| state.apply_owned(command))
        .collect()
}

/// The journal record of an encoded command.
fn command_record(payload: Vec<u8>) -> RecordToAppend {
    RecordToAppend {
        kind: RECORD_KIND_COMMAND,
        payload,
    }
}

/// A command's log payload and the command to apply: the caller's own when the state
/// declares its commands round-trip ([`StateMachine::COMMANDS_ROUND_TRIP`]), otherwise
/// the copy decoded from the payload, which is what replay will apply.
fn logged<S: StateMachine>(command: S::Command) -> Result<(Vec<u8>, S::Command)> {
    if S::COMMANDS_ROUND_TRIP {
        Ok((S::CODEC.encode(&command)?, command))
    } else {
        S::CODEC.encode_verified(&command)
    }
}

impl<S: StateMachine> Drop for Inner<S> {
    fn drop(&mut self) {
        self.stop_checkpointer();
    }
}
