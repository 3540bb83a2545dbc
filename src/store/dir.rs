//! Preparing a store directory before the lock is taken: create it, or check that it
//! holds a store.

use std::path::Path;

use crate::error::{DiskFullOp, Error, Result};
use crate::io::{EntryKind, Vfs, VfsRef};
use crate::recovery::{self};

/// Makes sure `dir` is a store (or, when allowed, creates it). Returns true if created.
pub(super) fn prepare_dir(vfs: &VfsRef, dir: &Path, create: bool) -> Result<bool> {
    match vfs
        .entry_kind(dir)
        .map_err(|err| Error::io("stat", dir, err))?
    {
        None if create => {
            vfs.create_dir_all(dir)
                .map_err(|err| Error::io("create store directory", dir, err))?;
            // Every directory above the store must be a durable name, also one that
            // another process created a moment ago and has not made durable yet.
            sync_ancestors(vfs.as_ref(), dir)?;
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
            } else if create
                && names
                    .iter()
                    .all(|name| recovery::is_creation_leftover(name))
            {
                // Empty, or the lock file of a creation that did not finish. That
                // creation may have failed its directory fsyncs: this one cannot tell,
                // so it makes the path durable itself before building a store there.
                sync_ancestors(vfs.as_ref(), dir)?;
                Ok(true)
            } else {
                Err(Error::NotAStore {
                    path: dir.to_path_buf(),
                })
            }
        }
    }
}

/// Fsyncs every ancestor of `dir`, nearest first, so `dir` and the directories above it
/// are durable names: this process cannot tell which of them a failed earlier attempt,
/// or another process creating the same path at the same moment, left unsynced. An
/// ancestor beyond the parent that cannot be opened for lack of permission ends the
/// walk (nothing this process could create lies above it).
fn sync_ancestors(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let mut cursor = dir.parent();
    let mut nearest = true;
    while let Some(parent) = cursor.filter(|p| !p.as_os_str().is_empty()) {
        match vfs.sync_dir(parent) {
            Ok(()) => {}
            Err(err) if !nearest && err.kind() == std::io::ErrorKind::PermissionDenied => {
                break;
            }
            Err(err) => return Err(Error::io("fsync directory", parent, err)),
        }
        nearest = false;
        cursor = parent.parent();
    }
    Ok(())
}

/// After a failed open that was creating the store in `dir` (`created`): removes what
/// creation wrote, so the directory is again what it was (empty, or missing but for the
/// directory itself), and returns `err` saying the store was not created. Called while
/// the writer lock is still held, so nothing else is writing there. The lock file itself
/// stays: another opener may be waiting on it, and removing a lock file someone waits on
/// would let two writers in. A directory holding only `LOCK` is not a store
/// ([`recovery::is_store_file_name`]) and creating a store there works again.
pub(super) fn undo_creation(vfs: &dyn Vfs, dir: &Path, created: bool, err: Error) -> Error {
    if !created {
        return err;
    }
    if let Ok(names) = vfs.read_dir(dir) {
        for name in names {
            if recovery::is_creation_leftover(&name) {
                continue;
            }
            let path = dir.join(&name);
            if let Ok(Some(EntryKind::File)) = vfs.entry_kind(&path) {
                // Best effort: what is left is reported by the next open or verify.
                let _ = vfs.remove_file(&path);
            }
        }
        let _ = vfs.sync_dir(dir);
    }
    err.during(DiskFullOp::CreateStore)
}
