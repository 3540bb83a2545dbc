//! The store's identity file (`IDENTITY`): the random id every version-2 file of the
//! store carries. Written once, atomically, when a writer first opens the directory;
//! read by every scan and open so that a file from another store is refused.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::format::{self, IDENTITY_FILE_NAME, Identity, StoreId};
use crate::io::{EntryKind, Vfs};

/// The identity file as found in a store directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum IdentityFile {
    /// There is none: a store that no writer of format version 2 has opened yet.
    #[default]
    Missing,
    /// A valid identity.
    Valid(Identity),
    /// The file exists but is unusable; the reason says why.
    Damaged(String),
}

impl IdentityFile {
    /// The identity, when the file is valid.
    pub fn valid(&self) -> Option<Identity> {
        match self {
            IdentityFile::Valid(identity) => Some(*identity),
            _ => None,
        }
    }
}

/// Path of the identity file of the store in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(IDENTITY_FILE_NAME)
}

/// Reads the identity file of `dir`. I/O failures are errors; damage is a value.
pub fn read(vfs: &dyn Vfs, dir: &Path) -> Result<IdentityFile> {
    let path = path(dir);
    match vfs
        .entry_kind(&path)
        .map_err(|err| Error::io("stat", &path, err))?
    {
        None => return Ok(IdentityFile::Missing),
        Some(EntryKind::Dir) => {
            return Ok(IdentityFile::Damaged(
                "it is a directory, not a file".into(),
            ));
        }
        Some(EntryKind::File) => {}
    }
    let bytes = vfs
        .read_file(&path, false)
        .map_err(|err| Error::io("read identity file", &path, err))?;
    Ok(match Identity::decode(&bytes) {
        Ok(identity) => IdentityFile::Valid(identity),
        Err(err) => IdentityFile::Damaged(err.describe()),
    })
}

/// Writes `identity` as the identity file of `dir` atomically (temp file, fsync,
/// rename, directory fsync). A failure leaves no identity file behind.
pub fn write(vfs: &dyn Vfs, dir: &Path, identity: Identity) -> Result<()> {
    checkpoint::write_atomically(vfs, dir, format::IDENTITY_FILE_NAME, &identity.encode())
        .map(drop)
        .map_err(|failure| failure.error)
}

/// Gives the store in `dir`, which has no identity file yet, a new random id and writes
/// it (see [`write()`]). `holds_v1_files` sets `IDENTITY_FLAG_LEGACY_V1`: the directory
/// already has version-1 files, which name no store.
pub fn create(vfs: &dyn Vfs, dir: &Path, holds_v1_files: bool) -> Result<Identity> {
    let identity = Identity {
        store_id: StoreId::generate(),
        flags: if holds_v1_files {
            format::IDENTITY_FLAG_LEGACY_V1
        } else {
            0
        },
    };
    write(vfs, dir, identity)?;
    Ok(identity)
}
