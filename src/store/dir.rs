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
            } else if create
                && names
                    .iter()
                    .all(|name| recovery::is_creation_leftover(name))
            {
                // Empty, or the lock file of a creation that did not finish.
                Ok(true)
            } else {
                Err(Error::NotAStore {
                    path: dir.to_path_buf(),
                })
            }
        }
    }
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
