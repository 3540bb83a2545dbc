//! Classifying the first defect of a segment (`wal-format.md` sections 7.2 and 7.3): the
//! evidence that its bytes were durable (a later frame's frontier), the shape of the
//! damage, and the version-1 torn-window rule. Pure functions over a segment image;
//! no I/O.

use std::ops::Range;

use super::scan::DefectKind;
use crate::format::{self, FrameError, RECORD_HEADER_LEN, SegmentHeader, v1};

/// Valid frames found after a defect: how many, the highest LSN, and the furthest
/// durable frontier any of them records.
#[derive(Debug, Default)]
pub(super) struct LaterFrames {
    pub(super) frames: u64,
    pub(super) last_lsn: Option<u64>,
    /// (offset, LSN, synced_end) of the frame recording the furthest frontier.
    evidence: Option<(usize, u64, u64)>,
}

/// Looks for valid frames after the defect at `bad_offset` (byte by byte, since the
/// damage hides where the next frame starts; a found frame is skipped whole).
pub(super) fn later_frames(bytes: &[u8], bad_offset: usize, header: &SegmentHeader) -> LaterFrames {
    let mut found = LaterFrames::default();
    let mark = if header.is_v1() {
        None
    } else {
        Some(format::FRAME_START_MARK)
    };
    let mut at = bad_offset + 1;
    while at < bytes.len() {
        if let Some(mark) = mark {
            match bytes[at..].iter().position(|&b| b == mark) {
                Some(skip) => at += skip,
                None => break,
            }
        }
        let decoded = if header.is_v1() {
            v1::decode_record(&bytes[at..], header.record_payload_max)
        } else {
            format::decode_record(&bytes[at..], header.record_payload_max)
        };
        let Ok(record) = decoded else {
            at += 1;
            continue;
        };
        found.frames += u64::from(!record.is_seal() || header.is_v1());
        found.last_lsn = found.last_lsn.max(Some(record.lsn));
        let frontier = record.synced_end;
        if frontier <= at as u64 && found.evidence.is_none_or(|(.., best)| frontier > best) {
            found.evidence = Some((at, record.lsn, frontier));
        }
        at += record.frame_len();
    }
    found
}

/// Version 2 (`wal-format.md` section 7.3): damage is a torn tail only in the last
/// segment, only where no later frame proves the bytes were synced, and only when it
/// has the shape a lost write leaves. An atomic group left open at the clean end of the
/// last segment was never acknowledged: a torn tail.
pub(super) fn classify_v2(
    is_last: bool,
    bytes: &[u8],
    bad_offset: usize,
    error: Option<FrameError>,
    later: &LaterFrames,
    detail: String,
) -> (DefectKind, String) {
    if !is_last {
        return (
            DefectKind::Corruption,
            format!("{detail}, in a segment that was fully synced before the next one was created"),
        );
    }
    let Some(error) = error else {
        return (DefectKind::TornTail, detail);
    };
    if let Some((at, lsn, frontier)) = later.evidence
        && frontier > bad_offset as u64
    {
        return (
            DefectKind::Corruption,
            format!(
                "{detail}; the record at offset {at} (LSN {lsn}), written later, says the segment was synced through offset {frontier}, so these bytes were durable: not a torn write"
            ),
        );
    }
    match damage_shape(bytes, bad_offset, error) {
        DamageShape::LostWrite => (DefectKind::TornTail, detail),
        DamageShape::OneFlippedBit => (
            DefectKind::Corruption,
            format!(
                "{detail}; flipping a single bit makes the frame valid again: bit rot or a bad sector, not a torn write"
            ),
        ),
        DamageShape::Other => (
            DefectKind::Corruption,
            format!(
                "{detail}; a crash only loses whole 512-byte sectors, the end of a sector (one that landed as an earlier version of itself) or the end of the file, and this damage has none of these shapes: bit rot, a bad sector or an overwrite"
            ),
        ),
    }
}

/// What the damage of a bad frame looks like (section 7.3, evidence 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DamageShape {
    /// What a crash leaves of unsynced bytes.
    LostWrite,
    /// A sector that looks like an earlier version of itself, but a single flipped bit
    /// explains the checksum failure: bit rot.
    OneFlippedBit,
    /// Nothing a crash can leave.
    Other,
}

/// The shape of the defect `error` at `offset` (section 7.3).
fn damage_shape(bytes: &[u8], offset: usize, error: FrameError) -> DamageShape {
    if has_lost_write_shape(bytes, offset, error) {
        return DamageShape::LostWrite;
    }
    let Some(covered) = checksummed_range(bytes, offset, error) else {
        return DamageShape::Other;
    };
    if !format::has_earlier_sector_version_shape(bytes, covered.start, covered.end) {
        return DamageShape::Other;
    }
    if one_flipped_bit_explains(bytes, offset, error, covered) {
        return DamageShape::OneFlippedBit;
    }
    DamageShape::LostWrite
}

/// For a checksum failure, the bytes the failing checksum covers: the header for a bad
/// header checksum; the payload for a bad payload checksum (the header is valid, so
/// intact). `None` for any other defect, or a range the image does not hold.
fn checksummed_range(bytes: &[u8], offset: usize, error: FrameError) -> Option<Range<usize>> {
    let payload_start = offset.checked_add(RECORD_HEADER_LEN)?;
    let header = bytes.get(offset..payload_start)?;
    let covered = match error {
        FrameError::BadHeaderChecksum => offset..payload_start,
        FrameError::BadChecksum => {
            payload_start..payload_start.checked_add(le_u32(header, 3) as usize)?
        }
        _ => return None,
    };
    (covered.end <= bytes.len()).then_some(covered)
}

/// Whether flipping one bit of the bytes `covered` (from [`checksummed_range`]) makes the
/// failing checksum of the frame at `offset` match: bit rot, which no crash leaves.
fn one_flipped_bit_explains(
    bytes: &[u8],
    offset: usize,
    error: FrameError,
    covered: Range<usize>,
) -> bool {
    debug_assert!(covered.end <= bytes.len() && offset + RECORD_HEADER_LEN <= bytes.len());
    let header = &bytes[offset..offset + RECORD_HEADER_LEN];
    match error {
        FrameError::BadHeaderChecksum => format::header_is_one_bit_from_valid(header),
        FrameError::BadChecksum => {
            format::payload_is_one_bit_from_crc(&bytes[covered], le_u32(header, 23))
        }
        _ => false,
    }
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Whether the defect `error` at `offset` is what a lost write leaves: a sector that
/// never landed, or a file that ends early (section 7.3).
fn has_lost_write_shape(bytes: &[u8], offset: usize, error: FrameError) -> bool {
    match error {
        FrameError::ZeroHeader | FrameError::TruncatedPayload(_) => true,
        // The file ends inside a header: the start of a written header (its mark), or
        // one with a lost piece.
        FrameError::TruncatedHeader => {
            bytes.get(offset) == Some(&format::FRAME_START_MARK)
                || format::has_lost_write_shape(bytes, offset, bytes.len())
        }
        FrameError::BadHeaderChecksum => {
            let end = offset + RECORD_HEADER_LEN;
            format::has_lost_write_shape(bytes, offset, end) || cut_short(bytes, end)
        }
        FrameError::BadChecksum => {
            // The header is valid, so its length is the writer's.
            let len = bytes
                .get(offset + 3..offset + 7)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            let end = offset + RECORD_HEADER_LEN + len;
            format::has_lost_write_shape(bytes, offset, end) || cut_short(bytes, end)
        }
        // A valid header checksum over an invalid field is no crash.
        FrameError::LengthOverLimit(_) | FrameError::BadHeaderField => false,
    }
}

/// Whether the last write stopped inside the frame that should end at `frame_end`: the
/// last non-zero byte of the whole file lies before it (a write cut short by a full
/// disk or a failed device leaves a prefix of its bytes and, after them, the zeros that
/// were there). Nothing after such a frame was ever written.
fn cut_short(bytes: &[u8], frame_end: usize) -> bool {
    let written_end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    written_end < frame_end
}

/// Version 1 (`wal-format.md` appendix A): a bad frame is a torn tail in the last
/// segment within the segment's torn window of the end of the written data; an open
/// group at the clean end of the last segment is a torn tail at any distance.
pub(super) fn classify_v1(
    is_last: bool,
    bytes: &[u8],
    bad_offset: usize,
    group_never_completed: bool,
    header: &SegmentHeader,
    detail: String,
) -> (DefectKind, String) {
    let written_end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let within_window =
        (written_end as u64).saturating_sub(bad_offset as u64) <= header.torn_window_bytes;
    if is_last && (within_window || group_never_completed) {
        return (
            DefectKind::TornTail,
            format!("{detail} (version-1 segment, read by the torn-window rule)"),
        );
    }
    let detail = if !is_last {
        format!("{detail}, in a segment that was fully synced before the next one was created")
    } else {
        format!(
            "{detail}, {} bytes before the end of the written data, outside the {}-byte window a crash can leave unsynced",
            written_end.saturating_sub(bad_offset),
            header.torn_window_bytes
        )
    };
    (DefectKind::Corruption, detail)
}
