//! What a shared writer does to files other writers use too: deleting the segments a
//! checkpoint covers (the directory, not this writer's list, says which exist: another
//! process may have started or deleted some) and sealing the journal on close (only when
//! this writer's end is the journal's end).

use std::io;
use std::path::PathBuf;

use super::Shared;
use super::catch_up::read_header;
use super::segment_writer::SegmentWriter;
use crate::error::{Error, Result};
use crate::format;
use crate::io::OpenMode;

impl Shared {
    /// Deletes segments all of whose records have LSN <= `lsn`, oldest first, fsyncing
    /// the directory after each, holding the writer lock (pinned by the checkpoint, or
    /// taken here). Never the last segment in the directory, nor this writer's active
    /// one or any after it.
    pub(super) fn delete_shared_segments_through(
        &self,
        writer: &mut SegmentWriter,
        lsn: u64,
    ) -> Result<Vec<PathBuf>> {
        let Some(lease) = &self.lease else {
            unreachable!("only a shared writer deletes by the directory")
        };
        lease.acquire()?;
        let result = self.delete_listed_through(writer, lsn);
        self.release_lease_if_idle(writer);
        result
    }

    fn delete_listed_through(&self, writer: &mut SegmentWriter, lsn: u64) -> Result<Vec<PathBuf>> {
        let vfs = writer.plan.vfs.clone();
        let dir = &self.dir;
        let mut seqs: Vec<u64> = vfs
            .read_dir(dir)
            .map_err(|err| Error::io("list directory", dir, err))?
            .iter()
            .filter_map(|name| format::parse_segment_file_name(name))
            .collect();
        seqs.sort_unstable();
        let keep_from = writer.last_seq().unwrap_or(u64::MAX);
        let mut deleted = Vec::new();
        for pair in seqs.windows(2) {
            let (oldest, next) = (pair[0], pair[1]);
            if oldest >= keep_from {
                break;
            }
            let next_path = dir.join(format::segment_file_name(next));
            if first_lsn(vfs.as_ref(), &next_path)? > lsn.saturating_add(1) {
                break;
            }
            let path = dir.join(format::segment_file_name(oldest));
            match vfs.remove_file(&path) {
                Ok(()) => {}
                // Another process's checkpoint deleted it first.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(Error::io("delete segment", &path, err)),
            }
            vfs.sync_dir(dir)
                .map_err(|err| Error::io("fsync directory", dir, err))?;
            writer.forget_deleted(oldest);
            deleted.push(path);
        }
        Ok(deleted)
    }

    /// On close: seals the journal if this writer's end is still its end (taking the
    /// lock only if it is free: a seal is never worth a wait). Another writer's records
    /// after it, or a lock held elsewhere, leave the journal unsealed, which costs the
    /// next open nothing but the certainty a seal gives. So does a failure to take the
    /// lock or to look for other writers' records (everything is durable already): a
    /// `tracing` warning, not a failed close. A failed seal write fails the close, as for
    /// an exclusive writer.
    pub(super) fn seal_if_last(&self, writer: &mut SegmentWriter) -> Result<()> {
        let Some(lease) = &self.lease else {
            return self.seal(writer);
        };
        let unsealed = |err: Error| {
            tracing::warn!(
                target: "walstate",
                dir = %self.dir.display(),
                error = %err,
                "closed without a seal: could not tell whether this writer's end is the journal's"
            );
            Ok(())
        };
        let (held, fresh) = match lease.try_acquire() {
            Ok(taken) => taken,
            Err(err) => return unsealed(err),
        };
        if !held {
            return Ok(());
        }
        let last = !fresh
            || match self.foreign_appends(writer) {
                Ok(foreign) => !foreign,
                Err(err) => return unsealed(err),
            };
        if last {
            self.seal(writer)?;
        }
        Ok(())
    }
}

/// The first LSN segment `path` names in its header (a segment another process started).
fn first_lsn(vfs: &dyn crate::io::Vfs, path: &std::path::Path) -> Result<u64> {
    let file = vfs
        .open(path, OpenMode::Read)
        .map_err(|err| Error::io("open segment", path, err))?;
    read_header(file.as_ref(), path).map(|header| header.first_lsn)
}
