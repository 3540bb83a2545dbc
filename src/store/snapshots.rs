//! Named snapshots of a store: write, list, delete, and restore one atomically.

use std::borrow::Cow;
use std::sync::Arc;

use crate::checkpoint::{self, SnapshotInfo};
use crate::codec;
use crate::error::{DiskFullOp, Error, Result};
use crate::format::{self, RECORD_KIND_RESTORE, RestoreMarker};
use crate::journal::RecordToAppend;
use crate::state::StateMachine;

use super::{RestoreInfo, Store, Writer};

impl<S: StateMachine> Store<S> {
    /// Keeps the current state under `name` until deleted.
    ///
    /// A snapshot is a durable copy of the state at one LSN; restoring one rolls the
    /// store back to it (and is itself logged, so it survives a crash and a reopen):
    ///
    /// ```
    /// use walstate::{KvStore, Options};
    ///
    /// # let tmp = tempfile::tempdir()?;
    /// # let dir = tmp.path().join("snap");
    /// let store = KvStore::open(&dir, Options::default())?;
    /// store.put("release", "v1")?;
    /// let before = store.snapshot("before-upgrade")?;
    /// assert_eq!(before.lsn, 1);
    /// store.put("release", "v2-broken")?;
    ///
    /// let restored = store.restore_snapshot("before-upgrade")?;
    /// assert_eq!(store.get(b"release")?.as_deref(), Some(&b"v1"[..]));
    /// // The replaced state was kept first, under an automatic snapshot.
    /// let names: Vec<String> = store.list_snapshots()?.into_iter().map(|s| s.name).collect();
    /// assert!(names.contains(&"before-upgrade".to_string()));
    /// assert!(names.contains(&restored.previous_state_snapshot));
    /// store.close()?;
    ///
    /// let store = KvStore::open(&dir, Options::default())?;
    /// assert_eq!(store.get(b"release")?.as_deref(), Some(&b"v1"[..]));
    /// store.delete_snapshot("before-upgrade")?;
    /// assert_eq!(store.list_snapshots()?.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn snapshot(&self, name: &str) -> Result<SnapshotInfo> {
        checkpoint::validate_snapshot_name(name)?;
        let writer = self.writer()?;
        // A shared writer snapshots holding the writer lock, caught up with every process.
        let _pin = writer.journal.pin_lease()?;
        let (state, lsn) = self.inner.clone_state();
        writer.journal.sync()?;
        self.write_snapshot(name, state, lsn)
            .map_err(|err| err.during(DiskFullOp::Snapshot))
    }

    /// The named snapshots, by name.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        checkpoint::list_snapshots(self.inner.vfs.as_ref(), &self.inner.dir)
    }

    /// Deletes a named snapshot.
    pub fn delete_snapshot(&self, name: &str) -> Result<()> {
        checkpoint::validate_snapshot_name(name)?;
        let _pin = self.writer()?.journal.pin_lease()?;
        checkpoint::delete_snapshot(self.inner.vfs.as_ref(), &self.inner.dir, name)
    }

    /// Rolls the store back to snapshot `name`, atomically and durably: a crash in the
    /// middle leaves either the old or the restored state. The replaced state is kept
    /// first as the automatic snapshot named in the result.
    pub fn restore_snapshot(&self, name: &str) -> Result<RestoreInfo> {
        self.restore_snapshot_unlabelled(name)
            .map_err(|err| err.during(DiskFullOp::Restore))
    }

    fn restore_snapshot_unlabelled(&self, name: &str) -> Result<RestoreInfo> {
        let writer = self.writer()?;
        let (snapshot_lsn, restored) = self.read_snapshot(name)?;
        // No other append may take the LSN the restore record needs: not another
        // process's (a shared writer holds the writer lock, caught up, until the record is
        // written) nor this one's.
        let pin = writer.journal.pin_lease()?;
        let _gate = writer.gate.write();
        let (current, current_lsn) = self.inner.clone_state();
        writer.journal.sync()?;
        let previous = self.free_snapshot_name(&format!("pre-restore-{current_lsn}"))?;
        self.write_snapshot(&previous, current, current_lsn)?;

        let record_lsn = self.switch_state(
            writer,
            restored,
            RestoreMarker {
                snapshot: name.to_owned(),
                snapshot_lsn,
            },
        )?;
        drop(_gate);
        drop(pin);
        Ok(RestoreInfo {
            snapshot: name.to_owned(),
            lsn: record_lsn,
            previous_state_snapshot: previous,
        })
    }

    /// The commit of a restore or an install (wal-format.md section 6), with the writer
    /// lock pinned, the gate held and the journal synced by the caller: writes `state` as
    /// `restore-<L>.ckpt` for the next LSN `L`, then appends the restore record `marker`
    /// at `L`, whose durable hook makes `state` the store's. Returns `L`.
    pub(super) fn switch_state(
        &self,
        writer: &Writer,
        state: S,
        marker: RestoreMarker,
    ) -> Result<u64> {
        let lsn = writer.journal.next_lsn();
        self.inner.write_state_file(
            &self.inner.dir,
            &format::restore_file_name(lsn),
            lsn,
            Cow::Borrowed(&state),
        )?;
        let payload = codec::encode(&marker)?;
        let applied = Arc::clone(&self.inner.applied);
        let (record_lsn, ()) = writer.journal.append_with(
            vec![RecordToAppend {
                kind: RECORD_KIND_RESTORE,
                payload,
            }],
            move |lsn| {
                let mut guard = applied.write();
                guard.state = state;
                guard.lsn = lsn;
            },
        )?;
        debug_assert_eq!(
            record_lsn, lsn,
            "the restore record took the LSN its file names"
        );
        Ok(record_lsn)
    }

    /// Writes `state` (a snapshot taken for it, consumed as it is written) as the named
    /// snapshot.
    pub(super) fn write_snapshot(&self, name: &str, state: S, lsn: u64) -> Result<SnapshotInfo> {
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

    pub(super) fn free_snapshot_name(&self, base: &str) -> Result<String> {
        let existing: Vec<String> = self.list_snapshots()?.into_iter().map(|s| s.name).collect();
        let mut name = base.to_owned();
        let mut n = 1;
        while existing.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        Ok(name)
    }
}
