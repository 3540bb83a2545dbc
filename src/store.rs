//! `Store<S>`: the embedded API. Commands are encoded, decoded back (the decoded value is
//! what gets applied), logged, and applied to the state only once durable, in LSN order.
//! Checkpoints run in the background; snapshots and restores are atomic.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex, RwLock};
use serde::Serialize;

use crate::checkpoint::{self, SNAPSHOT_DIR_NAME, SnapshotInfo};
use crate::codec;
use crate::error::{Error, Result};
use crate::format;
use crate::io::{EntryKind, LockGuard, VfsRef};
use crate::journal::{Journal, JournalStats, RecordToAppend};
use crate::lock::lock_store;
use crate::options::Options;
use crate::recovery::{
    self, Mode, RECORD_KIND_COMMAND, RECORD_KIND_RESTORE, RecoveryReport, RestoreMarker,
};
use crate::schema::{self, Schema};
use crate::state::StateMachine;

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

/// Journal bytes are counted as "backlog + bytes appended by this process": the backlog
/// is what open replayed, so a long journal is compacted soon after open even when this
/// process appends little.
struct CheckpointProgress {
    last_lsn: u64,
    /// Journal bytes replayed at open (not yet covered by a checkpoint of this process).
    backlog_bytes: u64,
    /// Backlog + appended bytes at the last checkpoint (0 before the first).
    journal_bytes_at_last: u64,
}

/// Wakes the background checkpointer. Kept apart from the store so the waiting thread
/// holds no reference to it: dropping the store releases the lock at once.
#[derive(Default)]
struct CheckpointSignal {
    triggered: Mutex<bool>,
    cv: Condvar,
    stop: AtomicBool,
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
    _lock: Box<dyn LockGuard>,
}

struct Inner<S: StateMachine> {
    dir: PathBuf,
    options: Options,
    vfs: VfsRef,
    applied: Arc<RwLock<Applied<S>>>,
    report: RwLock<RecoveryReport>,
    /// The schema of `S`, which every file this store writes names.
    schema: Schema,
    writer: Option<Writer>,
}

/// A crash-safe store of a state machine `S`. Clone it freely: clones share one store.
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
        let recovered = recovery::recover::<S>(
            vfs.as_ref(),
            &dir,
            Mode::Writer {
                salvage: options.salvage,
            },
        )?;
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
        let created = prepare_dir(&vfs, &dir, options.create_if_missing)?;
        let lock = lock_store(vfs.as_ref(), &dir, options.lock_timeout)?;
        // Make the directory's entries durable before building on them: the lock file of
        // a new store (so a crash cannot leave a directory that is "not a store"), and
        // entries an earlier writer created whose directory fsync failed.
        vfs.sync_dir(&dir)
            .map_err(|err| Error::io("fsync store directory at open", &dir, err))?;
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
        // The schema file first: every segment and checkpoint from now on names it.
        let store_id = recovered.report.store_id.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} has no identity file after recovery as a writer",
                dir.display()
            ))
        })?;
        schema::files::ensure(vfs.as_ref(), &dir, store_id, &schema)?;
        let journal_options = crate::journal::JournalOptions {
            schema_id: schema.id().get(),
            ..options.journal.clone()
        };
        let journal = Journal::resume(vfs.clone(), &dir, journal_options, &recovered.outcome)?;
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
            _lock: lock,
        };
        let store = Store::from_parts(dir, options, vfs, recovered, schema, Some(writer));
        if store.inner.options.checkpoint_after_bytes.is_some() {
            store.start_checkpointer()?;
            if let Some(writer) = &store.inner.writer {
                store.maybe_trigger_checkpoint(writer);
            }
        }
        Ok(store)
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

    /// Re-reads a read-only store from disk to see what the writer committed since.
    pub fn refresh(&self) -> Result<()> {
        if self.inner.writer.is_some() {
            return Ok(());
        }
        let recovered =
            recovery::recover::<S>(self.inner.vfs.as_ref(), &self.inner.dir, Mode::ReadOnly)?;
        *self.inner.applied.write() = Applied {
            state: recovered.state,
            lsn: recovered.lsn,
        };
        *self.inner.report.write() = recovered.report;
        Ok(())
    }

    /// What the last open (or refresh) found and did.
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
        let mut records = Vec::with_capacity(commands.len());
        let mut decoded = Vec::with_capacity(commands.len());
        for command in commands {
            let (payload, back) = logged::<S>(command)?;
            records.push(command_record(payload));
            decoded.push(back);
        }
        self.log_group_and_apply(writer, records, move |state| {
            decoded
                .into_iter()
                .map(|command| state.apply_owned(command))
                .collect()
        })
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

    /// Runs `f` on the current state (everything acknowledged so far).
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

    /// Writes a checkpoint of the current state now, then deletes checkpoints beyond the
    /// retained count and segments the oldest retained checkpoint covers. Waits for a
    /// checkpoint already running to finish first.
    ///
    /// Like a background checkpoint, the state is encoded, written and checked on a
    /// helper thread at a low CPU priority (Linux: nice 19), so that commits made
    /// meanwhile are scheduled first, and written no faster than
    /// [`Options::checkpoint_write_rate`]; this call returns when the checkpoint is done.
    pub fn checkpoint(&self) -> Result<CheckpointInfo> {
        let writer = self.writer()?;
        self.inner.run_checkpoint(writer)
    }

    /// Keeps the current state under `name` until deleted.
    pub fn snapshot(&self, name: &str) -> Result<SnapshotInfo> {
        checkpoint::validate_snapshot_name(name)?;
        let writer = self.writer()?;
        let (state, lsn) = self.inner.clone_state();
        writer.journal.sync()?;
        self.write_snapshot(name, state, lsn)
    }

    /// The named snapshots, by name.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        checkpoint::list_snapshots(self.inner.vfs.as_ref(), &self.inner.dir)
    }

    /// Deletes a named snapshot.
    pub fn delete_snapshot(&self, name: &str) -> Result<()> {
        checkpoint::validate_snapshot_name(name)?;
        self.writer()?;
        checkpoint::delete_snapshot(self.inner.vfs.as_ref(), &self.inner.dir, name)
    }

    /// Rolls the store back to snapshot `name`, atomically and durably: a crash in the
    /// middle leaves either the old or the restored state. The replaced state is kept
    /// first as the automatic snapshot named in the result.
    pub fn restore_snapshot(&self, name: &str) -> Result<RestoreInfo> {
        checkpoint::validate_snapshot_name(name)?;
        let writer = self.writer()?;
        let snapshot_dir = self.inner.dir.join(SNAPSHOT_DIR_NAME);
        let path = snapshot_dir.join(checkpoint::snapshot_file_name(name));
        if self
            .inner
            .vfs
            .entry_kind(&path)
            .map_err(|err| Error::io("stat", &path, err))?
            .is_none()
        {
            return Err(Error::SnapshotNotFound {
                name: name.to_owned(),
                path: snapshot_dir,
            });
        }
        let identity =
            crate::journal::identity::read(self.inner.vfs.as_ref(), &self.inner.dir)?.valid();
        let gate = schema::gate::SchemaGate::new(
            self.inner.schema.clone(),
            &self.inner.dir,
            identity.map(|identity| identity.store_id),
        );
        let (snapshot_lsn, recovery::Typed(restored), _) =
            recovery::load_checkpoint_with::<recovery::Typed<S>>(
                self.inner.vfs.as_ref(),
                &path,
                false,
                identity,
                Some(&gate),
            )?
            .map_err(|unusable| Error::SnapshotDamaged {
                name: name.to_owned(),
                path: path.clone(),
                detail: unusable.to_string(),
            })?;
        // No other append may take the LSN the restore record needs.
        let _gate = writer.gate.write();
        let (current, current_lsn) = self.inner.clone_state();
        writer.journal.sync()?;
        let previous = self.free_snapshot_name(&format!("pre-restore-{current_lsn}"))?;
        self.write_snapshot(&previous, current, current_lsn)?;

        let lsn = writer.journal.next_lsn();
        self.inner.write_state_file(
            &self.inner.dir,
            &format::restore_file_name(lsn),
            lsn,
            Cow::Borrowed(&restored),
        )?;
        let marker = codec::encode(&RestoreMarker {
            snapshot: name.to_owned(),
            snapshot_lsn,
        })?;
        let applied = Arc::clone(&self.inner.applied);
        let (record_lsn, ()) = writer.journal.append_with(
            vec![RecordToAppend {
                kind: RECORD_KIND_RESTORE,
                payload: marker,
            }],
            move |lsn| {
                let mut guard = applied.write();
                guard.state = restored;
                guard.lsn = lsn;
            },
        )?;
        debug_assert_eq!(record_lsn, lsn);
        drop(_gate);
        Ok(RestoreInfo {
            snapshot: name.to_owned(),
            lsn: record_lsn,
            previous_state_snapshot: previous,
        })
    }

    /// Stops the background checkpointer and makes everything acknowledged durable.
    /// Dropping the store without `close` is safe too (nothing acknowledged is lost
    /// under `Always`).
    pub fn close(self) -> Result<()> {
        let Some(writer) = &self.inner.writer else {
            return Ok(());
        };
        self.inner.stop_checkpointer();
        writer.journal.close()
    }

    // ---------------------------------------------------------------------------------

    fn writer(&self) -> Result<&Writer> {
        let writer = self.inner.writer.as_ref().ok_or(Error::ReadOnly)?;
        writer.journal.check_usable()?;
        Ok(writer)
    }

    /// Writes `state` (a snapshot taken for it, consumed as it is written) as the named
    /// snapshot.
    fn write_snapshot(&self, name: &str, state: S, lsn: u64) -> Result<SnapshotInfo> {
        let vfs = self.inner.vfs.as_ref();
        let snapshot_dir = checkpoint::prepare_snapshot_dir(vfs, &self.inner.dir).map_err(
            |failure| match failure.poison {
                true => self.inner.poison(failure.error),
                false => failure.error,
            },
        )?;
        let file_name = checkpoint::snapshot_file_name(name);
        if vfs
            .entry_kind(&snapshot_dir.join(&file_name))
            .map_err(|err| Error::io("stat", &snapshot_dir, err))?
            .is_some()
        {
            return Err(Error::InvalidArgument(format!(
                "snapshot {name:?} already exists; delete it first or pick another name"
            )));
        }
        let (path, bytes) =
            self.inner
                .write_state_file(&snapshot_dir, &file_name, lsn, Cow::Owned(state))?;
        Ok(SnapshotInfo {
            name: name.to_owned(),
            lsn,
            bytes,
            path,
            damage: None,
        })
    }

    fn free_snapshot_name(&self, base: &str) -> Result<String> {
        let existing: Vec<String> = self.list_snapshots()?.into_iter().map(|s| s.name).collect();
        let mut name = base.to_owned();
        let mut n = 1;
        while existing.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        Ok(name)
    }

    fn maybe_trigger_checkpoint(&self, writer: &Writer) {
        let Some(threshold) = self.inner.options.checkpoint_after_bytes else {
            return;
        };
        // A running checkpoint needs no trigger (its counters are not updated yet, so
        // this would count its bytes again and queue a second one at once).
        if writer.checkpoint_running.is_locked() {
            return;
        }
        // Held only to read or update counters: a commit never waits for a checkpoint.
        let since = {
            let progress = writer.progress.lock();
            (writer.journal.stats().bytes + progress.backlog_bytes)
                .saturating_sub(progress.journal_bytes_at_last)
        };
        if since >= threshold {
            *writer.signal.triggered.lock() = true;
            writer.signal.cv.notify_one();
        }
    }

    fn start_checkpointer(&self) -> Result<()> {
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

fn checkpointer_loop<S: StateMachine>(weak: Weak<Inner<S>>, signal: Arc<CheckpointSignal>) {
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

    /// [`Inner::write_state_file`] for a checkpoint, on a helper thread that lowers its
    /// own CPU priority first (see [`lower_thread_priority`]) and then encodes, writes,
    /// checks and syncs the file: seconds of CPU for a large state, which would otherwise
    /// delay committers on a busy machine. Only this part runs at low priority: it takes
    /// no lock a commit needs (but to poison the store after a failed fsync), so a
    /// starved helper cannot hold commits up. If no thread can be spawned, the work runs
    /// here. `state`, the checkpoint's snapshot, is consumed as it is written.
    fn write_checkpoint_file(
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

    fn run_checkpoint(&self, writer: &Writer) -> Result<CheckpointInfo> {
        let _running = writer.checkpoint_running.lock();
        writer.journal.check_usable()?;
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
        Ok(CheckpointInfo {
            path,
            lsn,
            bytes,
            segments_deleted,
            checkpoints_deleted,
        })
    }
    fn stop_checkpointer(&self) {
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
fn lower_thread_priority() {
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

/// Makes sure `dir` is a store (or, when allowed, creates it). Returns true if created.
fn prepare_dir(vfs: &VfsRef, dir: &Path, create: bool) -> Result<bool> {
    match vfs
        .entry_kind(dir)
        .map_err(|err| Error::io("stat", dir, err))?
    {
        None if create => {
            // Every directory created here must be made durable in its parent.
            let mut missing = vec![dir.to_path_buf()];
            let mut cursor = dir.parent();
            while let Some(parent) = cursor.filter(|p| !p.as_os_str().is_empty()) {
                if vfs
                    .entry_kind(parent)
                    .map_err(|err| Error::io("stat", parent, err))?
                    .is_some()
                {
                    break;
                }
                missing.push(parent.to_path_buf());
                cursor = parent.parent();
            }
            vfs.create_dir_all(dir)
                .map_err(|err| Error::io("create store directory", dir, err))?;
            for created in missing.iter().rev() {
                if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
                    vfs.sync_dir(parent)
                        .map_err(|err| Error::io("fsync directory", parent, err))?;
                }
            }
            Ok(true)
        }
        None | Some(EntryKind::File) => Err(Error::NotAStore {
            path: dir.to_path_buf(),
        }),
        Some(EntryKind::Dir) => {
            let names = vfs
                .read_dir(dir)
                .map_err(|err| Error::io("list directory", dir, err))?;
            if recovery::looks_like_store(&names) {
                Ok(false)
            } else if names.is_empty() && create {
                Ok(true)
            } else {
                Err(Error::NotAStore {
                    path: dir.to_path_buf(),
                })
            }
        }
    }
}

fn remove_restore_files_through(vfs: &dyn crate::io::Vfs, dir: &Path, lsn: u64) -> Result<()> {
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
