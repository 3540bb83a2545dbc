//! Format version 1 (read-only): the segment header and record frame layouts that
//! walstate wrote before version 2 (`wal-format.md`, appendix A). A version-2 build
//! still reads version-1 stores and upgrades them; it never writes these layouts, so
//! the encoders here exist for tests and fixtures only.

use super::{
    FrameError, KNOWN_RECORD_FLAGS, LSN_MAX, RECORD_PAYLOAD_MAX_HARD, RecordView,
    SegmentHeader, SegmentHeaderError, crc, le_u32, le_u64,
};

/// The version number of this layout.
pub const FORMAT_VERSION_V1: u32 = 1;
/// Size of a version-1 segment header in bytes.
pub const SEGMENT_HEADER_LEN_V1: usize = 48;
/// Size of a version-1 record frame header in bytes.
pub const RECORD_HEADER_LEN_V1: usize = 20;

/// Decodes the fields of a version-1 segment header whose magic, common checksum
/// (bytes `0..44`) and version were already checked by [`SegmentHeader::decode`].
pub(super) fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, SegmentHeaderError> {
    let header = SegmentHeader {
        version: FORMAT_VERSION_V1,
        flags: le_u32(bytes, 12),
        segment_seq: le_u64(bytes, 16),
        first_lsn: le_u64(bytes, 24),
        torn_window_bytes: le_u64(bytes, 32),
        record_payload_max: le_u32(bytes, 40),
        store_id: 0,
        schema_id: 0,
    };
    header.check_common_fields()?;
    let frame_max = u64::from(header.record_payload_max) + RECORD_HEADER_LEN_V1 as u64;
    if header.torn_window_bytes < frame_max {
        return Err(SegmentHeaderError::BadField(
            "torn window smaller than the largest record",
        ));
    }
    Ok(header)
}

/// Encodes a version-1 segment header (tests and fixtures only).
#[cfg(any(test, feature = "internals"))]
pub fn encode_segment_header(header: &SegmentHeader) -> [u8; SEGMENT_HEADER_LEN_V1] {
    let mut out = [0u8; SEGMENT_HEADER_LEN_V1];
    out[0..8].copy_from_slice(&super::SEGMENT_MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION_V1.to_le_bytes());
    out[12..16].copy_from_slice(&header.flags.to_le_bytes());
    out[16..24].copy_from_slice(&header.segment_seq.to_le_bytes());
    out[24..32].copy_from_slice(&header.first_lsn.to_le_bytes());
    out[32..40].copy_from_slice(&header.torn_window_bytes.to_le_bytes());
    out[40..44].copy_from_slice(&header.record_payload_max.to_le_bytes());
    let sum = crc(&[&out[0..44]]);
    out[44..48].copy_from_slice(&sum.to_le_bytes());
    out
}

/// The version-1 frame checksum: bytes `0..4`, then `8..` (everything but the field).
fn frame_checksum(frame: &[u8]) -> u32 {
    crc(&[&frame[0..4], &frame[8..]])
}

/// Appends one version-1 record frame to `out` (tests and fixtures only).
#[cfg(any(test, feature = "internals"))]
pub fn encode_record(out: &mut Vec<u8>, lsn: u64, kind: u8, flags: u8, payload: &[u8]) {
    let mut header = [0u8; RECORD_HEADER_LEN_V1];
    header[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[8..16].copy_from_slice(&lsn.to_le_bytes());
    header[16] = kind;
    header[17] = flags;
    let start = out.len();
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    let sum = frame_checksum(&out[start..]);
    out[start + 4..start + 8].copy_from_slice(&sum.to_le_bytes());
}

/// Decodes the version-1 record frame at the start of `bytes` (`wal-format.md`,
/// appendix A). The length is checked before the payload is touched; nothing is
/// allocated.
pub fn decode_record(bytes: &[u8], payload_max: u32) -> Result<RecordView<'_>, FrameError> {
    if bytes.len() < RECORD_HEADER_LEN_V1 {
        if bytes.iter().all(|&b| b == 0) {
            return Err(FrameError::ZeroHeader);
        }
        return Err(FrameError::TruncatedHeader);
    }
    let header = &bytes[..RECORD_HEADER_LEN_V1];
    if header.iter().all(|&b| b == 0) {
        return Err(FrameError::ZeroHeader);
    }
    let len = le_u32(header, 0);
    if len > payload_max.min(RECORD_PAYLOAD_MAX_HARD) {
        return Err(FrameError::LengthOverLimit(len));
    }
    let end = RECORD_HEADER_LEN_V1 + len as usize;
    if end > bytes.len() {
        return Err(FrameError::TruncatedPayload(len));
    }
    if frame_checksum(&bytes[..end]) != le_u32(header, 4) {
        return Err(FrameError::BadChecksum);
    }
    let kind = header[16];
    let flags = header[17];
    if kind == 0 || flags & !KNOWN_RECORD_FLAGS != 0 || header[18] != 0 || header[19] != 0 {
        return Err(FrameError::BadHeaderField);
    }
    let lsn = le_u64(header, 8);
    if lsn > LSN_MAX {
        return Err(FrameError::BadHeaderField);
    }
    Ok(RecordView {
        lsn,
        kind,
        flags,
        payload: &bytes[RECORD_HEADER_LEN_V1..end],
        synced_end: 0,
        header_len: RECORD_HEADER_LEN_V1,
    })
}

/// Encodes a whole version-1 checkpoint file (tests and fixtures only).
#[cfg(any(test, feature = "internals"))]
pub fn encode_checkpoint(lsn: u64, state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(36 + state.len());
    out.extend_from_slice(&super::CHECKPOINT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION_V1.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    out.extend_from_slice(state);
    let sum = crc(&[&out]);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}
