//! Installing a state that came from elsewhere (a replication peer, a backup), and reading
//! a named snapshot's state back: what a consensus engine's state-machine storage needs
//! (`walstate-raft` builds openraft's snapshot transfer on these two).
//!
//! An install is a restore without a snapshot file (wal-format.md section 6): the journal
//! is synced, the state is written as `restore-<L>.ckpt` with `L` the next LSN, and the
//! restore record at `L` switches the state. No `pre-restore-*` snapshot is kept: the
//! caller owns the state it replaces (a replica's is a prefix of the log it installs).

use crate::checkpoint::{self, SNAPSHOT_DIR_NAME};
use crate::error::{DiskFullOp, Error, Result};
use crate::format::RestoreMarker;
use crate::recovery;
use crate::schema;
use crate::state::StateMachine;

use super::Store;

/// Longest `source` label [`Store::install_state`] logs, in bytes.
pub const INSTALL_SOURCE_BYTES_MAX: usize = 256;

impl<S: StateMachine> Store<S> {
    /// Replaces the whole state by `state`, atomically and durably, and returns the LSN
    /// of the restore record from which it is in effect. `source` says where the state
    /// came from (at most [`INSTALL_SOURCE_BYTES_MAX`] bytes); it is logged with the
    /// record, for tools, and means nothing to replay.
    ///
    /// A crash in the middle leaves either the old state or `state`. Unlike
    /// [`Store::restore_snapshot`] the replaced state is not kept: a replica installing
    /// its leader's snapshot has no use for it.
    ///
    /// ```
    /// use walstate::{KvCommand, KvState, Options, StateMachine, Store};
    ///
    /// # let tmp = tempfile::tempdir()?;
    /// // A state built elsewhere, here in another store.
    /// let leader = Store::<KvState>::open(tmp.path().join("leader"), Options::default())?;
    /// leader.apply(KvCommand::Put { key: b"k".to_vec(), value: b"v".to_vec() })?;
    /// let state = leader.read(|state| state.clone())?;
    ///
    /// let replica = Store::<KvState>::open(tmp.path().join("replica"), Options::default())?;
    /// let lsn = replica.install_state("leader snapshot", state)?;
    /// assert_eq!(lsn, 1);
    /// replica.close()?;
    /// let replica = Store::<KvState>::open(tmp.path().join("replica"), Options::default())?;
    /// assert_eq!(replica.read(|state| state.get(b"k").map(|v| v.to_vec()))?, Some(b"v".to_vec()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn install_state(&self, source: &str, state: S) -> Result<u64> {
        self.install_state_unlabelled(source, state)
            .map_err(|err| err.during(DiskFullOp::Restore))
    }

    fn install_state_unlabelled(&self, source: &str, state: S) -> Result<u64> {
        if source.len() > INSTALL_SOURCE_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "an install's source label is {} bytes, more than {INSTALL_SOURCE_BYTES_MAX}; \
                 shorten it",
                source.len()
            )));
        }
        let writer = self.writer()?;
        // As for a restore: no other append (this process's or, for a shared writer,
        // another's) may take the LSN the restore record needs.
        let pin = writer.journal.pin_lease()?;
        let gate = writer.gate.write();
        writer.journal.sync()?;
        let record_lsn = self.switch_state(
            writer,
            state,
            RestoreMarker {
                snapshot: source.to_owned(),
                snapshot_lsn: 0,
            },
        )?;
        drop(gate);
        drop(pin);
        Ok(record_lsn)
    }

    /// The state held by snapshot `name` and the LSN it was taken at, read and checked
    /// (checksum, store id, schema) as a restore would, without changing the store.
    ///
    /// ```
    /// use walstate::{KvCommand, KvState, Options, Store};
    ///
    /// # let tmp = tempfile::tempdir()?;
    /// let store = Store::<KvState>::open(tmp.path().join("s"), Options::default())?;
    /// store.apply(KvCommand::Put { key: b"k".to_vec(), value: b"1".to_vec() })?;
    /// store.snapshot("one")?;
    /// store.apply(KvCommand::Put { key: b"k".to_vec(), value: b"2".to_vec() })?;
    /// let (lsn, state) = store.read_snapshot("one")?;
    /// assert_eq!(lsn, 1);
    /// assert_eq!(state.get(b"k").map(|v| v.to_vec()), Some(b"1".to_vec()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_snapshot(&self, name: &str) -> Result<(u64, S)> {
        checkpoint::validate_snapshot_name(name)?;
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
        let (lsn, recovery::Typed(state), _) =
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
        Ok((lsn, state))
    }
}
