//! Segment files on disk: finding them and creating new ones atomically.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{self, SegmentHeader};
use crate::io::{OpenMode, Vfs, VfsFile};
use crate::journal::writer::SpareMaker;

/// A segment file found in a store directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Sequence number from the file name.
    pub seq: u64,
    /// Full path.
    pub path: PathBuf,
}

/// Lists the segment files of `dir`, ordered by sequence number. Files that are not
/// segments are ignored.
pub fn list_segments(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<SegmentFile>> {
    let names = vfs
        .read_dir(dir)
        .map_err(|err| Error::io("list directory", dir, err))?;
    let mut segments: Vec<SegmentFile> = names
        .iter()
        .filter_map(|name| {
            format::parse_segment_file_name(name).map(|seq| SegmentFile {
                seq,
                path: dir.join(name),
            })
        })
        .collect();
    segments.sort_by_key(|segment| segment.seq);
    Ok(segments)
}

/// Why [`create_segment`] failed, which decides whether the journal must be poisoned.
#[derive(Debug)]
pub(crate) enum CreateFailure {
    /// Failed before the rename; the temp file was removed and nothing changed.
    NothingChanged(Error),
    /// The segment is in place but the directory fsync failed: its name may not be
    /// durable, so the journal must not build on it.
    NameNotDurable(Error),
}

/// Creates segment `header.segment_seq` in `dir`: the header is written to a temp file,
/// preallocated if asked, fsynced, renamed into place and the directory fsynced, so a
/// segment under its final name always has a durable, valid header. With `spare` the
/// temp file is the claimed spare segment instead, when one is ready: already
/// `preallocate_bytes` of durable zeros, so only its header is written and fdatasynced.
///
/// On an error before the rename the temp file is removed and nothing changed
/// ([`CreateFailure::NothingChanged`]). A failed directory fsync is
/// [`CreateFailure::NameNotDurable`]: the caller must poison, since the new name may not
/// be durable.
pub(crate) fn create_segment(
    vfs: &dyn Vfs,
    dir: &Path,
    header: &SegmentHeader,
    preallocate_bytes: Option<u64>,
    spare: Option<&SpareMaker>,
) -> std::result::Result<(Box<dyn VfsFile>, PathBuf), CreateFailure> {
    let final_path = dir.join(format::segment_file_name(header.segment_seq));
    let temp_path = dir.join(format!(
        "{}.tmp",
        format::segment_file_name(header.segment_seq)
    ));
    // A temp file left by an earlier failed attempt is garbage by definition.
    let _ = vfs.remove_file(&temp_path);
    let claimed = match (spare, preallocate_bytes) {
        (Some(spare), Some(len)) => spare.claim(&temp_path, len),
        _ => None,
    };
    let written = (|| -> Result<Box<dyn VfsFile>> {
        let file = match claimed {
            Some(file) => {
                file.write_all_at(&header.encode(), 0)
                    .map_err(|err| Error::io("write segment header", &temp_path, err))?;
                // The spare's zeros and length are durable already: only the header is new.
                file.sync_data()
                    .map_err(|err| Error::io("fdatasync new segment", &temp_path, err))?;
                file
            }
            None => {
                let file = vfs
                    .open(&temp_path, OpenMode::CreateNew)
                    .map_err(|err| Error::io("create segment", &temp_path, err))?;
                file.write_all_at(&header.encode(), 0)
                    .map_err(|err| Error::io("write segment header", &temp_path, err))?;
                if let Some(bytes) = preallocate_bytes {
                    file.allocate(bytes)
                        .map_err(|err| Error::io("preallocate segment", &temp_path, err))?;
                }
                file.sync_all()
                    .map_err(|err| Error::io("fsync new segment", &temp_path, err))?;
                file
            }
        };
        vfs.rename(&temp_path, &final_path)
            .map_err(|err| Error::io("rename new segment", &temp_path, err))?;
        Ok(file)
    })();
    let file = match written {
        Ok(file) => file,
        Err(err) => {
            let _ = vfs.remove_file(&temp_path);
            return Err(CreateFailure::NothingChanged(err));
        }
    };
    vfs.sync_dir(dir)
        .map_err(|err| CreateFailure::NameNotDurable(Error::io("fsync directory", dir, err)))?;
    Ok((file, final_path))
}
