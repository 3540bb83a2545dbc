//! Opening a store: as a writer (the lock, recovery, the journal resumed after what it
//! found, creation finished or undone within the open) or read-only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::checkpointer::{CheckpointProgress, CheckpointSignal};
use super::dir::{self, prepare_dir};
use super::{Store, Writer};
use crate::checkpoint::SNAPSHOT_DIR_NAME;
use crate::error::{Error, Result};
use crate::io::{EntryKind, LockGuard, VfsRef};
use crate::journal::{Journal, LeaseConfig};
use crate::lock::{LOCK_FILE_NAME, lock_store};
use crate::options::{Options, SHARED_LOCK_WAIT_DEFAULT, Writers};
use crate::recovery::{self, Mode};
use crate::schema::{self, Schema};
use crate::state::StateMachine;

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
}
