//! `Store<S>`: the embedded API. Commands are encoded, decoded back (the decoded value is
//! what gets applied), logged, and applied to the state only once durable, in LSN order.
//! Checkpoints run in the background; snapshots and restores are atomic.
//!
//! Here: the types and the commit path. Opening is in `open.rs`, catching up with other
//! processes (`refresh`, a shared writer's catch-up) in `catch_up.rs`, checkpoints in
//! `checkpointer.rs`, snapshots in `snapshots.rs`, streamed commits in `stream.rs`,
//! installing a state from elsewhere and reading a snapshot's state in `install.rs`, the
//! async facade (feature `tokio`) in `async_store.rs`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::format::RECORD_KIND_COMMAND;
use crate::io::{LockGuard, VfsRef};
use crate::journal::follow::TailPosition;
use crate::journal::{Journal, JournalStats, RecordToAppend};
use crate::options::Options;
use crate::recovery::{self, RecoveryReport};
use crate::schema::Schema;
use crate::state::StateMachine;

#[cfg(feature = "tokio")]
mod async_store;
mod catch_up;
mod checkpointer;
mod dir;
mod install;
mod open;
mod snapshots;
mod stream;
#[cfg(feature = "internals")]
pub mod writer_stats;
#[cfg(not(feature = "internals"))]
mod writer_stats;

#[cfg(feature = "tokio")]
pub use async_store::AsyncStore;
use checkpointer::{CheckpointProgress, CheckpointSignal};
pub use install::INSTALL_SOURCE_BYTES_MAX;
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
            // After the lock is let go (a shared writer's): another process's open may
            // remove the temp file as a leftover, and then the numbers are not recorded
            // (a warning; they are informational).
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
