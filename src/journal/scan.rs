//! Reading a journal: walks the segments in LSN order, hands every complete record (or
//! complete atomic group) to the caller, and classifies the first defect it meets,
//! exactly as `wal-format.md` ("Reading a journal") specifies: in a version-2 segment
//! by the durable-frontier rule (section 7.3), in a version-1 segment by the old
//! torn-window rule (appendix A). It never writes.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::classify::{classify_v1, classify_v2, later_frames};
use super::follow::FrameMark;
use super::identity::{self, IdentityFile};
use super::segment::{SegmentFile, list_segments};
use crate::error::{Error, Result};
use crate::format::{
    self, FrameError, Identity, RecordView, SEGMENT_FLAG_PREALLOCATED, SegmentHeader,
    SegmentHeaderError, v1,
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
    /// Offset just past the last valid complete record or group (or seal).
    pub valid_end: u64,
    /// The segment's format version (0 when the header is unreadable).
    pub version: u32,
    /// True when the segment's valid part ends with a seal: the writer closed cleanly.
    pub sealed: bool,
    /// The segment is known synced up to this offset: the furthest durable frontier its
    /// valid frames record (version 1: the valid end less the torn window).
    pub synced_through: u64,
    /// The last frame of the valid part (of its last complete group, or its seal): where
    /// a follower re-checks that what it read is still there.
    #[serde(skip)]
    pub(crate) last_frame: Option<FrameMark>,
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
    /// A segment that names another store (or a version-1 segment in a store created
    /// by version 2): copied in from elsewhere. Open refuses.
    ForeignFile,
}

impl DefectKind {
    /// True when open may cut this by itself: bytes no record proves were ever durable.
    pub fn is_torn_tail(self) -> bool {
        self == DefectKind::TornTail
    }

    /// The kind in words, for reports ("torn tail", "LSN gap"); the one wording every
    /// report (verify's DETAIL column, dump, errors) uses.
    pub fn describe(self) -> &'static str {
        match self {
            DefectKind::TornTail => "torn tail",
            DefectKind::Corruption => "corruption",
            DefectKind::StaleRecord => "stale record",
            DefectKind::LsnGap => "LSN gap",
            DefectKind::UnsupportedVersion => "unsupported version",
            DefectKind::ForeignFile => "foreign file",
        }
    }
}

impl std::fmt::Display for DefectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// The first defect the scan met; scanning stops there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Defect {
    /// What kind of defect.
    pub kind: DefectKind,
    /// The file it is in.
    pub path: PathBuf,
    /// Index into the scan's list of segments of that file (segments after it are not scanned).
    pub segment_index: usize,
    /// Byte offset of the defect in the file (for a torn tail: where to truncate).
    pub offset: u64,
    /// The LSN expected at that offset.
    pub expected_lsn: u64,
    /// Bytes from `offset` to the end of the file.
    pub bytes_after: u64,
    /// Human description.
    pub detail: String,
    /// Valid frames found from `offset` to the end of the file (the open group's and
    /// any after the damage): what a cut there drops.
    pub frames_dropped: u64,
    /// The highest LSN among those frames, if any.
    pub last_lsn_dropped: Option<u64>,
}

impl Defect {
    /// The defect in one line, as `verify`'s table and `dump` show it.
    pub fn row_detail(&self) -> String {
        format!(
            "{} at offset {} (expected LSN {}): {}",
            self.kind.describe(),
            self.offset, self.expected_lsn, self.detail
        )
    }

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
    /// The store's identity file, as found.
    #[serde(skip)]
    pub identity: IdentityFile,
}

/// Where a delivered record lives.
#[derive(Debug, Clone, Copy)]
pub struct RecordPosition<'a> {
    /// The segment file.
    pub path: &'a Path,
    /// The schema its header records for its commands (0: none recorded).
    pub schema_id: u64,
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
    deliver: impl FnMut(&[RecordView<'_>], RecordPosition<'_>) -> Result<()>,
) -> Result<ScanOutcome> {
    let outcome = scan_segments(vfs, dir, options, deliver)?;
    check_outcome(&outcome, options);
    Ok(outcome)
}

/// What every scan's outcome satisfies, whatever the bytes were: the positions it
/// reports lie inside the files it read (the writer resumes at them, a follower starts
/// from them, a cut happens at them), and LSNs never go back.
fn check_outcome(outcome: &ScanOutcome, options: ScanOptions) {
    debug_assert!(outcome.next_lsn >= options.from_lsn);
    for segment in &outcome.segments {
        if let Some(header) = segment.header {
            let data_start = header.data_start() as u64;
            debug_assert!(data_start <= segment.valid_end && segment.valid_end <= segment.file_len);
            // Not <= valid_end: frames of a group that never completed lie after it and
            // still record how far the file was synced.
            debug_assert!(segment.synced_through <= segment.file_len);
            if let Some(mark) = segment.last_frame {
                debug_assert!(mark.offset + mark.header_len <= segment.valid_end);
            }
        }
    }
    // A gap names the segment after it, which was not read (index one past the end).
    if let Some(defect) = &outcome.defect
        && let Some(segment) = outcome.segments.get(defect.segment_index)
    {
        debug_assert!(defect.offset <= segment.file_len);
        debug_assert!(defect.offset + defect.bytes_after <= segment.file_len);
    }
}

fn scan_segments(
    vfs: &dyn Vfs,
    dir: &Path,
    options: ScanOptions,
    mut deliver: impl FnMut(&[RecordView<'_>], RecordPosition<'_>) -> Result<()>,
) -> Result<ScanOutcome> {
    let segment_files = list_segments(vfs, dir)?;
    let mut outcome = ScanOutcome {
        next_lsn: options.from_lsn,
        temp_files: temp_files(vfs, dir)?,
        identity: identity::read(vfs, dir)?,
        ..ScanOutcome::default()
    };
    let identity = outcome.identity.valid();
    let mut seen_v2 = false;
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
                frames_dropped: 0,
                last_lsn_dropped: None,
            });
            outcome.unscanned_segments = remaining(&segment_files, index);
            return Ok(outcome);
        }
        previous_seq = Some(file.seq);
        let bytes = vfs
            .read_file(&file.path, options.may_map)
            .map_err(|err| Error::io("read segment", &file.path, err))?;
        let segment_index = outcome.segments.len();
        let context = SegmentContext {
            file,
            is_last,
            expected_lsn,
            from_lsn: options.from_lsn,
            segment_index,
            identity,
            seen_v2,
        };
        let result = scan_segment(&context, &bytes, &mut outcome, &mut deliver)?;
        seen_v2 |= outcome
            .segments
            .last()
            .is_some_and(|s| format::version_names_store(s.version));
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

/// The highest LSN among the valid frames at the start of a segment image, of either
/// version (best effort, for reporting what a file set aside held).
pub fn valid_prefix_last_lsn(bytes: &[u8]) -> Option<u64> {
    let header = SegmentHeader::decode(bytes).ok()?;
    let mut offset = header.data_start();
    let mut last = None;
    while let Some(rest) = bytes.get(offset..) {
        let decoded = if header.is_v1() {
            v1::decode_record(rest, header.record_payload_max)
        } else {
            format::decode_record(rest, header.record_payload_max)
        };
        let Ok(record) = decoded else {
            break;
        };
        if !record.is_seal() || header.is_v1() {
            last = Some(record.lsn);
        }
        offset += record.frame_len();
    }
    last
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

/// What the scan knows about a segment before reading it.
struct SegmentContext<'a> {
    file: &'a SegmentFile,
    is_last: bool,
    /// The LSN the previous segment ended before (`None` for the first segment).
    expected_lsn: Option<u64>,
    from_lsn: u64,
    segment_index: usize,
    /// The store's identity, when its file is valid.
    identity: Option<Identity>,
    /// A version-2 segment came before this one.
    seen_v2: bool,
}

impl SegmentContext<'_> {
    fn fallback_lsn(&self) -> u64 {
        self.expected_lsn.unwrap_or(self.from_lsn)
    }

    fn defect(
        &self,
        kind: DefectKind,
        offset: u64,
        lsn: u64,
        file_len: u64,
        detail: String,
    ) -> Defect {
        Defect {
            kind,
            path: self.file.path.clone(),
            segment_index: self.segment_index,
            offset,
            expected_lsn: lsn,
            bytes_after: file_len.saturating_sub(offset),
            detail,
            frames_dropped: 0,
            last_lsn_dropped: None,
        }
    }

    /// Why this segment's header cannot be accepted here, if it cannot: it names another
    /// store, it is version 1 where only version 2 may be, it is misnumbered, or its
    /// first LSN does not continue the journal.
    fn header_problem(&self, header: &SegmentHeader) -> Option<(DefectKind, String)> {
        if let Some(problem) = self.identity_problem(header) {
            return Some((DefectKind::ForeignFile, problem));
        }
        if header.segment_seq != self.file.seq {
            return Some((
                DefectKind::LsnGap,
                format!(
                    "header says segment {} but the file is named for segment {}: a misplaced or renamed file",
                    header.segment_seq, self.file.seq
                ),
            ));
        }
        let from_lsn = self.from_lsn;
        let detail = match self.expected_lsn {
            // A segment may start past the previous one's end only when every LSN skipped
            // is covered by the checkpoint in use (the writer starts a fresh segment at
            // the checkpoint's LSN + 1 when the journal ends before it).
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
        detail.map(|detail| (DefectKind::LsnGap, detail))
    }

    fn identity_problem(&self, header: &SegmentHeader) -> Option<String> {
        if header.is_v1() {
            let legacy_allowed = self.identity.is_none_or(|id| id.legacy_v1());
            return match (legacy_allowed, self.seen_v2) {
                (true, false) => None,
                (true, true) => Some(
                    "a version-1 segment after version-2 segments: version 2 never writes version 1, so this file was copied in".into(),
                ),
                (false, _) => Some(
                    "a version-1 segment in a store created by format version 2: it belongs to another store".into(),
                ),
            };
        }
        let identity = self.identity?;
        (header.store_id != identity.store_id.get()).then(|| {
            format!(
                "the segment belongs to store {:016x}, this store is {}: a file copied in from another store",
                header.store_id, identity.store_id
            )
        })
    }
}

fn scan_segment(
    context: &SegmentContext<'_>,
    bytes: &[u8],
    outcome: &mut ScanOutcome,
    deliver: &mut impl FnMut(&[RecordView<'_>], RecordPosition<'_>) -> Result<()>,
) -> Result<SegmentEnd> {
    let file_len = bytes.len() as u64;
    let fallback_lsn = context.fallback_lsn();
    let mut summary = SegmentSummary {
        path: context.file.path.clone(),
        seq: context.file.seq,
        header: None,
        first_lsn: 0,
        last_lsn: None,
        records: 0,
        file_len,
        valid_end: 0,
        version: 0,
        sealed: false,
        synced_through: 0,
        last_frame: None,
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
            let defect = context.defect(kind, 0, lsn, file_len, detail);
            return Ok(SegmentEnd::Defect(defect, fallback_lsn));
        }
    };
    summary.header = Some(header);
    summary.first_lsn = header.first_lsn;
    summary.version = header.version;
    summary.valid_end = header.data_start() as u64;
    summary.synced_through = header.data_start() as u64;
    if let Some((kind, detail)) = context.header_problem(&header) {
        outcome.segments.push(summary);
        let defect = context.defect(kind, 0, fallback_lsn, file_len, detail);
        return Ok(SegmentEnd::Defect(defect, fallback_lsn));
    }

    let decode: fn(&[u8], u32) -> std::result::Result<RecordView<'_>, FrameError> =
        if header.is_v1() {
            v1::decode_record
        } else {
            format::decode_record
        };
    let mut next_lsn = header.first_lsn;
    let mut offset = header.data_start();
    // An open atomic group: its first record's offset and the records so far.
    let mut group: Vec<RecordView<'_>> = Vec::new();
    let mut group_offset = offset;
    let result = loop {
        if offset == bytes.len() {
            break None;
        }
        let record = match decode(&bytes[offset..], header.record_payload_max) {
            Ok(record) => record,
            Err(FrameError::ZeroHeader) if bytes[offset..].iter().all(|&b| b == 0) => {
                // Zero-filled space to the end: preallocated room (clean), or a size that
                // reached the disk before its data (a torn tail, only possible at the end).
                if header.flags & SEGMENT_FLAG_PREALLOCATED != 0 {
                    break None;
                }
                break Some((
                    offset,
                    FrameError::ZeroHeader,
                    FrameError::ZeroHeader.describe() + " up to the end of the file",
                ));
            }
            Err(err) => break Some((offset, err, err.describe())),
        };
        let expected = next_lsn + group.len() as u64;
        if let Some(problem) = frame_problem(&header, &record, offset, expected, group.is_empty()) {
            outcome.segments.push(summary);
            let defect = context.defect(
                DefectKind::StaleRecord,
                offset as u64,
                expected,
                file_len,
                problem,
            );
            return Ok(SegmentEnd::Defect(defect, next_lsn));
        }
        summary.synced_through = summary.synced_through.max(record.synced_end);
        let mark = FrameMark::of(&bytes[offset..], offset as u64, &record);
        offset += record.frame_len();
        if record.is_seal() && !header.is_v1() {
            summary.valid_end = offset as u64;
            summary.sealed = true;
            summary.last_frame = Some(mark);
            continue;
        }
        summary.sealed = false;
        if group.is_empty() {
            group_offset = offset - record.frame_len();
        }
        group.push(record);
        if record.group_continues() {
            continue;
        }
        let group_lsn_end = next_lsn + group.len() as u64;
        if group_lsn_end > context.from_lsn {
            // Deliver only the part at or after from_lsn. A checkpoint never splits a
            // group (it is taken between commits), so this is all or nothing in practice.
            let skip = context.from_lsn.saturating_sub(next_lsn) as usize;
            let delivered = &group[skip.min(group.len())..];
            deliver(
                delivered,
                RecordPosition {
                    path: &context.file.path,
                    schema_id: header.schema_id,
                    offset: group_offset as u64,
                },
            )?;
            outcome.records_delivered += delivered.len() as u64;
            outcome.bytes_delivered += delivered.iter().map(|r| r.frame_len() as u64).sum::<u64>();
        }
        summary.records += group.len() as u64;
        summary.last_lsn = Some(group_lsn_end - 1);
        summary.valid_end = offset as u64;
        summary.last_frame = Some(mark);
        next_lsn = group_lsn_end;
        group.clear();
    };

    if header.is_v1() {
        summary.synced_through = summary
            .valid_end
            .saturating_sub(header.torn_window_bytes)
            .max(header.data_start() as u64);
    }
    let (bad_offset, error, detail) = match result {
        None if group.is_empty() => {
            outcome.segments.push(summary);
            return Ok(SegmentEnd::Clean(next_lsn));
        }
        None => (
            offset,
            None,
            format!(
                "atomic group of {} record(s) from LSN {next_lsn} never completed",
                group.len()
            ),
        ),
        Some((offset, error, detail)) => (offset, Some(error), detail),
    };
    // The truncation point: an incomplete group goes as a whole.
    let cut = if group.is_empty() {
        bad_offset
    } else {
        group_offset
    };
    let later = later_frames(bytes, bad_offset, &header);
    let (kind, detail) = if header.is_v1() {
        classify_v1(
            context.is_last,
            bytes,
            bad_offset,
            error.is_none(),
            &header,
            detail,
        )
    } else {
        classify_v2(context.is_last, bytes, bad_offset, error, &later, detail)
    };
    let mut defect = context.defect(kind, cut as u64, next_lsn, file_len, detail);
    defect.frames_dropped = group.len() as u64 + later.frames;
    defect.last_lsn_dropped = later.last_lsn.max(group.last().map(|r| r.lsn));
    outcome.segments.push(summary);
    Ok(SegmentEnd::Defect(defect, next_lsn))
}

/// Why a frame with valid checksums cannot stand where it is, if it cannot: the wrong
/// LSN (stale or misplaced data), a seal inside an atomic group or with the wrong LSN,
/// or a durable frontier that is not before the frame.
pub(super) fn frame_problem(
    header: &SegmentHeader,
    record: &RecordView<'_>,
    offset: usize,
    expected: u64,
    outside_group: bool,
) -> Option<String> {
    if record.lsn != expected {
        return Some(format!(
            "record has a valid checksum but LSN {} where LSN {expected} belongs (stale or misplaced data)",
            record.lsn
        ));
    }
    if header.is_v1() {
        return None;
    }
    if record.is_seal() && (!outside_group || record.flags != 0 || !record.payload.is_empty()) {
        return Some(
            "a seal inside an atomic group or with a payload: no writer writes that".into(),
        );
    }
    let frontier_ok =
        record.synced_end >= header.data_start() as u64 && record.synced_end <= offset as u64;
    (!frontier_ok).then(|| {
        format!(
            "record at offset {offset} claims the segment was synced through offset {}, which is not before it (misplaced data)",
            record.synced_end
        )
    })
}
