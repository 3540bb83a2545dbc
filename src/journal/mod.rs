//! The segmented, checksummed journal: appending records with group commit, rotating
//! and deleting segments, and scanning what is on disk with an exact classification of
//! every defect (see `wal-format.md`, "Reading a journal").

mod classify;
pub(crate) mod follow;
pub mod identity;
mod options;
pub mod scan;
mod segment;
mod spare;
mod writer;

pub use options::{JournalOptions, SyncPolicy};
#[cfg(feature = "internals")]
pub use scan::SegmentSummary;
pub use scan::{Defect, DefectKind, ScanOptions, ScanOutcome, scan};
#[cfg(feature = "internals")]
pub use segment::SegmentFile;
pub use segment::list_segments;
#[cfg(feature = "internals")]
pub use writer::{GROUP_BYTES_MAX, PREALLOCATE_STEP_BYTES};
pub use writer::{
    AppendStream, HISTOGRAM_BUCKETS, Histogram, Journal, JournalStats, RecordToAppend, Ticket,
};
pub(crate) use writer::{CaughtUpTo, LeaseConfig};

use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::format::SEGMENT_FLAG_PREALLOCATED;
use crate::io::{OpenMode, Vfs};

/// Directory (inside the store) where bytes cut from the journal and damaged files are
/// kept. Open never reads it; nothing in it is ever deleted by walstate.
pub const QUARANTINE_DIR_NAME: &str = "quarantine";

/// What truncating a torn tail changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TornTailTruncation {
    /// The segment file.
    pub path: PathBuf,
    /// The offset it was cut at (the end of the last complete record or group).
    pub offset: u64,
    /// Bytes removed (for a preallocated segment, bytes reset to zero).
    pub bytes: u64,
    /// Why the bytes were a torn tail.
    pub detail: String,
    /// The copy of the cut bytes (up to their last non-zero byte) in `quarantine/`;
    /// `None` when they were all zero, or when nothing was cut (read-only open).
    pub quarantined: Option<PathBuf>,
    /// The first LSN the cut bytes would have held (the LSN expected at the cut).
    pub first_lsn: u64,
    /// The highest LSN of a complete, valid frame among the cut bytes, if any: LSNs
    /// `first_lsn..=last_lsn` were in flight at the crash and are gone.
    pub last_lsn: Option<u64>,
    /// Complete, valid frames among the cut bytes.
    pub frames: u64,
}

/// The torn tail `outcome` reports, described without changing anything (what a
/// read-only open reports, and what a writer open is about to cut).
pub fn describe_torn_tail(outcome: &ScanOutcome) -> Option<TornTailTruncation> {
    let defect = outcome.defect.as_ref().filter(|d| d.kind.is_torn_tail())?;
    Some(TornTailTruncation {
        path: defect.path.clone(),
        offset: defect.offset,
        bytes: defect.bytes_after,
        detail: defect.detail.clone(),
        quarantined: None,
        first_lsn: defect.expected_lsn,
        last_lsn: defect.last_lsn_dropped,
        frames: defect.frames_dropped,
    })
}

/// Truncates the torn tail reported in `outcome`, if any, and makes the cut durable.
/// The cut bytes (up to their last non-zero byte) are first copied, durably, into
/// `quarantine/` of the store: nothing is cut without a copy. A preallocated segment is
/// zero-filled back to its previous length. Returns `None` when there is no torn tail;
/// any other defect is left alone.
pub fn truncate_torn_tail(
    vfs: &dyn Vfs,
    outcome: &ScanOutcome,
) -> Result<Option<TornTailTruncation>> {
    let Some(mut torn) = describe_torn_tail(outcome) else {
        return Ok(None);
    };
    let Some(defect) = outcome.defect.as_ref() else {
        return Ok(None);
    };
    let summary = outcome.segments.get(defect.segment_index);
    let preallocated = summary
        .and_then(|s| s.header)
        .is_some_and(|h| h.flags & SEGMENT_FLAG_PREALLOCATED != 0);
    let file_len = summary.map_or(defect.offset + defect.bytes_after, |s| s.file_len);
    let path = &defect.path;
    torn.quarantined = quarantine_cut(vfs, path, defect.offset)?;
    let file = vfs
        .open(path, OpenMode::ReadWrite)
        .map_err(|err| Error::io("open segment to truncate torn tail", path, err))?;
    file.set_len(defect.offset)
        .map_err(|err| Error::io("truncate torn tail", path, err))?;
    if preallocated && file_len > defect.offset {
        file.allocate(file_len)
            .map_err(|err| Error::io("re-preallocate segment", path, err))?;
    }
    file.sync_all()
        .map_err(|err| Error::io("fsync truncated segment", path, err))?;
    torn.bytes = file_len.saturating_sub(defect.offset);
    Ok(Some(torn))
}

/// Copies the bytes of `path` from `offset` up to their last non-zero byte into
/// `quarantine/<file name>.cut-<offset>` of the store, atomically. `None` when there
/// is nothing but zeros to keep.
fn quarantine_cut(vfs: &dyn Vfs, path: &Path, offset: u64) -> Result<Option<PathBuf>> {
    let bytes = vfs
        .read_file(path, false)
        .map_err(|err| Error::io("read segment before truncating", path, err))?;
    let from = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let Some(last) = bytes[from..].iter().rposition(|&b| b != 0) else {
        return Ok(None);
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let base = path
        .file_name()
        .map_or_else(|| "segment".into(), |n| n.to_string_lossy().into_owned());
    let copy = quarantine_file_name(vfs, dir, &format!("{base}.cut-{offset}"))?;
    let quarantine_dir = quarantine_dir(vfs, dir)?;
    checkpoint::write_atomically(vfs, &quarantine_dir, &copy, &bytes[from..from + last + 1])
        .map(Some)
        .map_err(|failure| failure.error)
}

/// `dir/quarantine/`, created (and made durable in `dir`) if missing.
pub fn quarantine_dir(vfs: &dyn Vfs, dir: &Path) -> Result<PathBuf> {
    let quarantine = dir.join(QUARANTINE_DIR_NAME);
    if vfs
        .entry_kind(&quarantine)
        .map_err(|err| Error::io("stat", &quarantine, err))?
        .is_none()
    {
        vfs.create_dir_all(&quarantine)
            .map_err(|err| Error::io("create quarantine directory", &quarantine, err))?;
        vfs.sync_dir(dir)
            .map_err(|err| Error::io("fsync directory", dir, err))?;
    }
    Ok(quarantine)
}

/// A name in `dir/quarantine/` not taken yet: `base`, else `base.1`, `base.2`, …
pub fn quarantine_file_name(vfs: &dyn Vfs, dir: &Path, base: &str) -> Result<String> {
    let quarantine = dir.join(QUARANTINE_DIR_NAME);
    let existing = match vfs
        .entry_kind(&quarantine)
        .map_err(|err| Error::io("stat", &quarantine, err))?
    {
        Some(_) => vfs
            .read_dir(&quarantine)
            .map_err(|err| Error::io("list directory", &quarantine, err))?,
        None => Vec::new(),
    };
    let mut name = base.to_owned();
    let mut n = 1;
    while existing.contains(&name) {
        name = format!("{base}.{n}");
        n += 1;
    }
    Ok(name)
}
