//! Preparing a store directory before the lock is taken: create it, or check that it
//! holds a store.

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::{EntryKind, VfsRef};
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
