//! Reading a journal: walks the segments in LSN order, hands every complete record (or
//! complete atomic group) to the caller, and classifies the first defect it meets,
//! exactly as `wal-format.md` ("Reading a journal") specifies. It never writes.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::segment::{SegmentFile, list_segments};
use crate::error::{Error, Result};
use crate::format::{
    self, FrameError, RecordView, SEGMENT_FLAG_PREALLOCATED, SEGMENT_HEADER_LEN, SegmentHeader,
    SegmentHeaderError,
};
use crate::io::Vfs;

/// What the scan should deliver.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// The first LSN the caller needs (checkpoint LSN + 1). Earlier records are still
    /// validated but not delivered.
    pub from_lsn: u64,
    /// Memory-map segment files. Only when no other process can shrink them.
    pub may_map: bool,
}

/// What the scan found in one segment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentSummary {
    /// The file.
    pub path: PathBuf,
    /// Sequence number from the file name.
    pub seq: u64,
    /// The decoded header, when valid.
    #[serde(skip)]
    pub header: Option<SegmentHeader>,
    /// First LSN of the segment (from its header; 0 when the header is unreadable).
    pub first_lsn: u64,
    /// LSN of the last valid record, if any.
    pub last_lsn: Option<u64>,
    /// Number of valid records.
    pub records: u64,
    /// File length in bytes.
    pub file_len: u64,
    /// Offset just past the last valid complete record or group.
    pub valid_end: u64,
}

/// The class of a defect, which decides what open does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DefectKind {
    /// A bad record, zero-filled space or an incomplete atomic group at the end of the
    /// last segment, inside the window that may not have been synced: what a crash
    /// leaves. Open truncates it and reports it.
    TornTail,
    /// A bad record or header anywhere a crash cannot explain. Open refuses.
    Corruption,
    /// A record with a valid checksum but not the expected LSN (a stale or misplaced
    /// record). Open refuses.
    StaleRecord,
    /// LSNs do not continue from one segment (or the checkpoint) to the next: a segment
    /// is missing or misplaced. Open refuses.
    LsnGap,
    /// A segment of another format version. Open refuses with a version error.
    UnsupportedVersion,
}

impl DefectKind {
    /// True when open may repair this by itself without losing anything acknowledged.
    pub fn is_torn_tail(self) -> bool {
        self == DefectKind::TornTail
    }
}

/// The first defect the scan met; scanning stops there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Defect {
    /// What kind of defect.
    pub kind: DefectKind,
    /// The file it is in.
    pub path: PathBuf,
    /// Index into [`ScanOutcome::segments`] of that file (segments after it are not scanned).
    pub segment_index: usize,
    /// Byte offset of the defect in the file (for a torn tail: where to truncate).
    pub offset: u64,
    /// The LSN expected at that offset.
    pub expected_lsn: u64,
    /// Bytes from `offset` to the end of the file.
    pub bytes_after: u64,
    /// Human description.
    pub detail: String,
}

impl Defect {
    /// The error open returns for this defect (torn tails are not errors).
    pub fn to_error(&self) -> Error {
        match self.kind {
            DefectKind::UnsupportedVersion => Error::UnsupportedVersion {
                path: self.path.clone(),
                found: u32::try_from(self.expected_lsn).unwrap_or(u32::MAX),
                supported: format::FORMAT_VERSION,
            },
            _ => Error::Corruption {
                path: self.path.clone(),
                offset: self.offset,
                lsn: self.expected_lsn,
                detail: self.detail.clone(),
            },
        }
    }
}

/// Everything a scan learned.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanOutcome {
    /// The segment files scanned, in order, up to and including the defective one.
    pub segments: Vec<SegmentSummary>,
    /// Segment files after a defect, not scanned for records.
    pub unscanned_segments: Vec<PathBuf>,
    /// The LSN the next appended record gets: one past the last valid record.
    pub next_lsn: u64,
    /// Records delivered to the callback (LSN >= `from_lsn`).
    pub records_delivered: u64,
    /// Frame bytes delivered to the callback.
    pub bytes_delivered: u64,
    /// The first defect, if any.
    pub defect: Option<Defect>,
    /// Leftover `*.seg.tmp` files from an interrupted segment creation.
    pub temp_files: Vec<PathBuf>,
}

/// Where a delivered record lives.
#[derive(Debug, Clone, Copy)]
pub struct RecordPosition<'a> {
    /// The segment file.
    pub path: &'a Path,
    /// Byte offset of the first record of the delivered group.
    pub offset: u64,
}

/// Scans the journal in `dir`, calling `deliver` with each complete record or atomic
/// group whose LSNs are `>= from_lsn`, in LSN order. Stops at the first defect and
/// reports it in the outcome; an error from `deliver` or from I/O aborts the scan.
pub fn scan(
    vfs: &dyn Vfs,
    dir: &Path,
    options: ScanOptions,
    mut deliver: impl FnMut(&[RecordView<'_>], RecordPosition<'_>) -> Result<()>,
) -> Result<ScanOutcome> {
    let segment_files = list_segments(vfs, dir)?;
    let mut outcome = ScanOutcome {
        next_lsn: options.from_lsn,
        temp_files: temp_files(vfs, dir)?,
        ..ScanOutcome::default()
    };
    let mut expected_lsn: Option<u64> = None;
    let mut previous_seq: Option<u64> = None;
    let count = segment_files.len();
    for (index, file) in segment_files.iter().enumerate() {
        let is_last = index + 1 == count;
        if let Some(previous) = previous_seq
            && file.seq != previous + 1
        {
            let missing = format::segment_file_name(previous + 1);
            outcome.defect = Some(Defect {
                kind: DefectKind::LsnGap,
                path: file.path.clone(),
                segment_index: outcome.segments.len(),
                offset: 0,
                expected_lsn: outcome.next_lsn,
                bytes_after: 0,
                detail: format!("segment {missing} is missing before this one"),
            });
            outcome.unscanned_segments = remaining(&segment_files, index);
            return Ok(outcome);
        }
        previous_seq = Some(file.seq);
        let bytes = vfs
            .read_file(&file.path, options.may_map)
            .map_err(|err| Error::io("read segment", &file.path, err))?;
        let segment_index = outcome.segments.len();
        let result = scan_segment(
            file,
            &bytes,
            is_last,
            expected_lsn,
            options.from_lsn,
            segment_index,
            &mut outcome,
            &mut deliver,
        )?;
        match result {
            SegmentEnd::Clean(next) => {
                expected_lsn = Some(next);
                outcome.next_lsn = next.max(options.from_lsn);
            }
            SegmentEnd::Defect(defect, next) => {
                outcome.next_lsn = next.max(options.from_lsn);
                outcome.defect = Some(defect);
                outcome.unscanned_segments = remaining(&segment_files, index + 1);
                return Ok(outcome);
            }
        }
    }
    Ok(outcome)
}

fn remaining(files: &[SegmentFile], from: usize) -> Vec<PathBuf> {
    files[from.min(files.len())..]
        .iter()
        .map(|file| file.path.clone())
        .collect()
}

fn temp_files(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<PathBuf>> {
    let names = vfs
        .read_dir(dir)
        .map_err(|err| Error::io("list directory", dir, err))?;
    Ok(names
        .iter()
        .filter(|name| {
            name.strip_suffix(".tmp")
                .is_some_and(|stem| format::parse_segment_file_name(stem).is_some())
        })
        .map(|name| dir.join(name))
        .collect())
}

enum SegmentEnd {
    /// The segment ended cleanly; the value is the next expected LSN.
    Clean(u64),
    /// A defect; the value is the next LSN after the valid prefix.
    Defect(Defect, u64),
}

#[allow(clippy::too_many_arguments)]
fn scan_segment(
    file: &SegmentFile,
    bytes: &[u8],
    is_last: bool,
    expected_lsn: Option<u64>,
    from_lsn: u64,
    segment_index: usize,
    outcome: &mut ScanOutcome,
    deliver: &mut impl FnMut(&[RecordView<'_>], RecordPosition<'_>) -> Result<()>,
) -> Result<SegmentEnd> {
    let file_len = bytes.len() as u64;
    let fallback_lsn = expected_lsn.unwrap_or(from_lsn);
    let defect = |kind, offset: u64, lsn: u64, detail: String| Defect {
        kind,
        path: file.path.clone(),
        segment_index,
        offset,
        expected_lsn: lsn,
        bytes_after: file_len.saturating_sub(offset),
        detail,
    };
    let mut summary = SegmentSummary {
        path: file.path.clone(),
        seq: file.seq,
        header: None,
        first_lsn: 0,
        last_lsn: None,
        records: 0,
        file_len,
        valid_end: 0,
    };

    let header = match SegmentHeader::decode(bytes) {
        Ok(header) => header,
        Err(err) => {
            let (kind, lsn, detail) = match err {
                SegmentHeaderError::UnsupportedVersion(version) => (
                    DefectKind::UnsupportedVersion,
                    u64::from(version),
                    format!("segment format version {version}"),
                ),
                other => (
                    DefectKind::Corruption,
                    fallback_lsn,
                    format!("invalid segment header: {other:?}"),
                ),
            };
            outcome.segments.push(summary);
            return Ok(SegmentEnd::Defect(
                defect(kind, 0, lsn, detail),
                fallback_lsn,
            ));
        }
    };
    summary.header = Some(header);
    summary.first_lsn = header.first_lsn;
    summary.valid_end = SEGMENT_HEADER_LEN as u64;

    if header.segment_seq != file.seq {
        outcome.segments.push(summary);
        return Ok(SegmentEnd::Defect(
            defect(
                DefectKind::LsnGap,
                0,
                fallback_lsn,
                format!(
                    "header says segment {} but the file is named for segment {}: a misplaced or renamed file",
                    header.segment_seq, file.seq
                ),
            ),
            fallback_lsn,
        ));
    }
    let continuity_problem = match expected_lsn {
        // A segment may start past the previous one's end only when every LSN skipped is
        // covered by the checkpoint in use (the writer starts a fresh segment at the
        // checkpoint's LSN + 1 when the journal ends before it).
        Some(expected) if header.first_lsn > expected && header.first_lsn <= from_lsn => None,
        Some(expected) if header.first_lsn != expected => Some(format!(
            "segment starts at LSN {} but the previous segment ends before LSN {expected}",
            header.first_lsn
        )),
        None if header.first_lsn > from_lsn => Some(format!(
            "the oldest segment starts at LSN {} but LSNs {from_lsn}..{} are needed and exist nowhere (a segment or checkpoint is missing)",
            header.first_lsn,
            header.first_lsn - 1
        )),
        _ => None,
    };
    if let Some(detail) = continuity_problem {
        outcome.segments.push(summary);
        return Ok(SegmentEnd::Defect(
            defect(DefectKind::LsnGap, 0, fallback_lsn, detail),
            fallback_lsn,
        ));
    }

    let mut next_lsn = header.first_lsn;
    let mut offset = SEGMENT_HEADER_LEN;
    // An open atomic group: its first record's offset and the records so far.
    let mut group: Vec<RecordView<'_>> = Vec::new();
    let mut group_offset = offset;
    let result = loop {
        if offset == bytes.len() {
            break None;
        }
        let record = match format::decode_record(&bytes[offset..], header.record_payload_max) {
            Ok(record) => record,
            Err(FrameError::ZeroHeader) if bytes[offset..].iter().all(|&b| b == 0) => {
                // Zero-filled space to the end: preallocated room (clean), or a size that
                // reached the disk before its data (a torn tail, only possible at the end).
                if header.flags & SEGMENT_FLAG_PREALLOCATED != 0 {
                    break None;
                }
                break Some((
                    offset,
                    FrameError::ZeroHeader.describe() + " up to the end of the file",
                ));
            }
            Err(err) => break Some((offset, err.describe())),
        };
        let expected = next_lsn + group.len() as u64;
        if record.lsn != expected {
            outcome.segments.push(summary);
            return Ok(SegmentEnd::Defect(
                defect(
                    DefectKind::StaleRecord,
                    offset as u64,
                    expected,
                    format!(
                        "record has a valid checksum but LSN {} where LSN {expected} belongs (stale or misplaced data)",
                        record.lsn
                    ),
                ),
                next_lsn,
            ));
        }
        if group.is_empty() {
            group_offset = offset;
        }
        offset += record.frame_len();
        group.push(record);
        if record.group_continues() {
            continue;
        }
        let group_lsn_end = next_lsn + group.len() as u64;
        if group_lsn_end > from_lsn {
            // Deliver only the part at or after from_lsn. A checkpoint never splits a
            // group (it is taken between commits), so this is all or nothing in practice.
            let skip = from_lsn.saturating_sub(next_lsn) as usize;
            deliver(
                &group[skip.min(group.len())..],
                RecordPosition {
                    path: &file.path,
                    offset: group_offset as u64,
                },
            )?;
            let delivered = &group[skip.min(group.len())..];
            outcome.records_delivered += delivered.len() as u64;
            outcome.bytes_delivered += delivered.iter().map(|r| r.frame_len() as u64).sum::<u64>();
        }
        summary.records += group.len() as u64;
        summary.last_lsn = Some(group_lsn_end - 1);
        summary.valid_end = offset as u64;
        next_lsn = group_lsn_end;
        group.clear();
    };

    let group_never_completed = result.is_none();
    let (bad_offset, detail) = match result {
        None if group.is_empty() => {
            outcome.segments.push(summary);
            return Ok(SegmentEnd::Clean(next_lsn));
        }
        None => (
            offset,
            format!(
                "atomic group of {} record(s) from LSN {next_lsn} never completed",
                group.len()
            ),
        ),
        Some(found) => found,
    };
    // The truncation point: an incomplete group goes as a whole.
    let cut = if group.is_empty() {
        bad_offset
    } else {
        group_offset
    };
    let written_end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let within_window =
        (written_end as u64).saturating_sub(bad_offset as u64) <= header.torn_window_bytes;
    let kind = if is_last && (within_window || group_never_completed) {
        DefectKind::TornTail
    } else {
        DefectKind::Corruption
    };
    let detail = if kind == DefectKind::Corruption && !is_last {
        format!("{detail}, in a segment that was fully synced before the next one was created")
    } else if kind == DefectKind::Corruption {
        format!(
            "{detail}, {} bytes before the end of the written data, outside the {}-byte window a crash can leave unsynced",
            written_end.saturating_sub(bad_offset),
            header.torn_window_bytes
        )
    } else {
        detail
    };
    outcome.segments.push(summary);
    Ok(SegmentEnd::Defect(
        defect(kind, cut as u64, next_lsn, detail),
        next_lsn,
    ))
}
