//! What a writer open removes because it is garbage by construction: temp files, and
//! restore files of restores that never committed.

use std::path::{Path, PathBuf};

use super::salvage::move_into_quarantine;
use crate::checkpoint::SNAPSHOT_DIR_NAME;
use crate::error::{Error, Result};
use crate::format::{self};
use crate::io::{EntryKind, Vfs};

pub(crate) fn remove_temp_files(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let snapshot_dir = dir.join(SNAPSHOT_DIR_NAME);
    for folder in [dir.to_path_buf(), snapshot_dir] {
        if vfs
            .entry_kind(&folder)
            .map_err(|err| Error::io("stat", &folder, err))?
            != Some(EntryKind::Dir)
        {
            continue;
        }
        let names = vfs
            .read_dir(&folder)
            .map_err(|err| Error::io("list directory", &folder, err))?;
        let mut any = false;
        for name in names.iter().filter(|n| n.ends_with(".tmp")) {
            let path = folder.join(name);
            vfs.remove_file(&path)
                .map_err(|err| Error::io("remove temp file", &path, err))?;
            removed.push(path);
            any = true;
        }
        if any {
            vfs.sync_dir(&folder)
                .map_err(|err| Error::io("fsync directory", &folder, err))?;
        }
    }
    Ok(removed)
}

/// Removes restore files no journal record refers to (a restore that crashed before
/// its record was durable). After salvage they may belong to restore records that went
/// to quarantine: then they are moved there too (returned), never deleted.
pub(crate) fn remove_orphan_restore_files(
    vfs: &dyn Vfs,
    dir: &Path,
    next_lsn: u64,
    salvaged: bool,
) -> Result<Vec<PathBuf>> {
    let names = vfs
        .read_dir(dir)
        .map_err(|err| Error::io("list directory", dir, err))?;
    let mut any = false;
    let mut moved = Vec::new();
    for name in names {
        if format::parse_restore_file_name(&name).is_some_and(|lsn| lsn >= next_lsn) {
            let path = dir.join(&name);
            if salvaged {
                moved.push(move_into_quarantine(vfs, dir, &path)?);
                continue;
            }
            vfs.remove_file(&path)
                .map_err(|err| Error::io("remove orphan restore file", &path, err))?;
            any = true;
        }
    }
    if any {
        vfs.sync_dir(dir)
            .map_err(|err| Error::io("fsync directory", dir, err))?;
    }
    Ok(moved)
}
