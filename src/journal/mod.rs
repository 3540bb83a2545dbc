//! The segmented, checksummed journal: appending records with group commit, rotating
//! and deleting segments, and scanning what is on disk with an exact classification of
//! every defect (see `wal-format.md`, "Reading a journal").

mod options;
pub mod scan;
mod segment;
mod writer;

pub use options::{JournalOptions, SyncPolicy};
pub use scan::{Defect, DefectKind, ScanOptions, ScanOutcome, SegmentSummary, scan};
pub use segment::{SegmentFile, list_segments};
pub use writer::{GROUP_BYTES_MAX, Journal, JournalStats, PREALLOCATE_STEP_BYTES, RecordToAppend};

use serde::Serialize;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::format::SEGMENT_FLAG_PREALLOCATED;
use crate::io::{OpenMode, Vfs};

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
}

/// Truncates the torn tail reported in `outcome`, if any, and makes the cut durable.
/// A preallocated segment is zero-filled back to its previous length. Returns `None`
/// when there is no torn tail; any other defect is left alone.
pub fn truncate_torn_tail(
    vfs: &dyn Vfs,
    outcome: &ScanOutcome,
) -> Result<Option<TornTailTruncation>> {
    let Some(defect) = outcome.defect.as_ref().filter(|d| d.kind.is_torn_tail()) else {
        return Ok(None);
    };
    let summary = outcome.segments.get(defect.segment_index);
    let preallocated = summary
        .and_then(|s| s.header)
        .is_some_and(|h| h.flags & SEGMENT_FLAG_PREALLOCATED != 0);
    let file_len = summary.map_or(defect.offset + defect.bytes_after, |s| s.file_len);
    let path = &defect.path;
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
    Ok(Some(TornTailTruncation {
        path: path.clone(),
        offset: defect.offset,
        bytes: file_len.saturating_sub(defect.offset),
        detail: defect.detail.clone(),
    }))
}
