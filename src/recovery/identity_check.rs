//! Which files belong to the store: the identity file read (and, for a writer, created)
//! before anything else, and the foreign-file rule for checkpoint-format files.

use std::path::{Path, PathBuf};

use super::Mode;
use crate::error::{Error, Result};
use crate::format::{self, Identity, v1};
use crate::io::Vfs;
use crate::journal::identity::{self, IdentityFile};

pub(crate) fn version_of(vfs: &dyn Vfs, path: &Path) -> u32 {
    vfs.read_file(path, false)
        .ok()
        .and_then(|bytes| format::claimed_version(&bytes))
        .unwrap_or(0)
}

/// Why a checkpoint-format file does not belong to the store with `identity`, if it
/// does not: it names another store, or it is of version 1 (which names none) in a
/// store created by version 2.
pub(crate) fn foreign_file(
    header: &format::CheckpointHeader,
    identity: Option<Identity>,
) -> Option<String> {
    match (header.version, identity) {
        (v1::FORMAT_VERSION_V1, Some(identity)) if !identity.legacy_v1() => Some(
            "a version-1 file in a store created by format version 2: it belongs to another store"
                .into(),
        ),
        (v1::FORMAT_VERSION_V1, _) => None,
        (_, None) => Some(format!(
            "the file belongs to store {:016x}, but this store has no identity file",
            header.store_id
        )),
        (_, Some(identity)) if header.store_id != identity.store_id.get() => Some(format!(
            "the file belongs to store {:016x}, this store is {}: it was copied in from another store",
            header.store_id, identity.store_id
        )),
        _ => None,
    }
}

/// Reads (and, for a writer, creates) the store's identity file before anything else.
/// A directory without one is a version-1 store, or a new one: a writer gives it an
/// identity now, flagged as holding version-1 files when it has any. A store with
/// version-2 files but no usable identity is refused: the identity is what tells its
/// own files from foreign ones.
pub(crate) fn prepare_identity(vfs: &dyn Vfs, dir: &Path, mode: Mode) -> Result<Option<Identity>> {
    let path = identity::path(dir);
    match identity::read(vfs, dir)? {
        IdentityFile::Valid(identity) => Ok(Some(identity)),
        IdentityFile::Damaged(reason) => Err(Error::Corruption {
            path,
            offset: 0,
            lsn: 0,
            detail: format!(
                "the store's identity file is unusable ({reason}); it names the store every other file must belong to"
            ),
        }),
        IdentityFile::Missing => {
            let files = store_file_versions(vfs, dir)?;
            if let Some(v2_file) = files
                .iter()
                .find(|(_, version)| format::version_names_store(*version))
            {
                return Err(Error::Corruption {
                    path,
                    offset: 0,
                    lsn: 0,
                    detail: format!(
                        "the identity file is missing, but {} is a version-2 file that names a store: it was deleted, or these files were copied in",
                        v2_file.0.display()
                    ),
                });
            }
            if mode == Mode::ReadOnly {
                return Ok(None);
            }
            identity::create(vfs, dir, !files.is_empty()).map(Some)
        }
    }
}

/// The segment, checkpoint and restore files of `dir` with the format version their
/// header claims (0 when unreadable).
pub(crate) fn store_file_versions(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<(PathBuf, u32)>> {
    let names = vfs
        .read_dir(dir)
        .map_err(|err| Error::io("list directory", dir, err))?;
    let mut found = Vec::new();
    for name in names {
        let ours = format::parse_segment_file_name(&name).is_some()
            || format::parse_checkpoint_file_name(&name).is_some()
            || format::parse_restore_file_name(&name).is_some();
        if ours {
            let path = dir.join(&name);
            let version = version_of(vfs, &path);
            found.push((path, version));
        }
    }
    Ok(found)
}
