//! Byte layouts of everything walstate writes: segment headers, record frames and
//! checkpoint files, exactly as `wal-format.md` specifies them.
//!
//! This module owns the bytes and nothing else: it never does I/O, never allocates a
//! length read from disk, and never panics on any input, so fuzz targets can call its
//! decoders directly.

/// The on-disk format version written by this build (segments and checkpoints).
pub const FORMAT_VERSION: u32 = 1;

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"WALSTSEG";
/// Size of the segment header in bytes.
pub const SEGMENT_HEADER_LEN: usize = 48;

/// Magic bytes at the start of every checkpoint and snapshot file.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"WALSTCKP";
/// Size of the checkpoint header in bytes (the CRC trailer is 4 more).
pub const CHECKPOINT_HEADER_LEN: usize = 32;
/// Size of the checkpoint trailer (CRC-32) in bytes.
pub const CHECKPOINT_TRAILER_LEN: usize = 4;

/// Size of a record frame header in bytes; the payload follows it.
pub const RECORD_HEADER_LEN: usize = 20;
/// The largest record payload any walstate build accepts (64 MiB). A store may choose a
/// smaller limit; it is recorded in every segment header.
pub const RECORD_PAYLOAD_MAX_HARD: u32 = 64 << 20;

/// The largest LSN, segment sequence number or checkpoint LSN a reader accepts (2^62).
/// Anything larger in a file or file name is refused as damage, so `+ 1` on any of them
/// can never overflow. At a million records a second it lasts 146,000 years.
pub const LSN_MAX: u64 = 1 << 62;

/// Record flag: the record belongs to an atomic group and is not its last record.
pub const FLAG_GROUP_CONTINUES: u8 = 0b0000_0001;
const KNOWN_RECORD_FLAGS: u8 = FLAG_GROUP_CONTINUES;

/// Segment header flag: the segment file was preallocated (zero-filled beyond the data).
pub const SEGMENT_FLAG_PREALLOCATED: u32 = 0b1;
const KNOWN_SEGMENT_FLAGS: u32 = SEGMENT_FLAG_PREALLOCATED;

fn crc(parts: &[&[u8]]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

// ---------------------------------------------------------------------------------------
// Segment header
// ---------------------------------------------------------------------------------------

/// The fixed header at offset 0 of every segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment sequence number; equals the number in the file name.
    pub segment_seq: u64,
    /// LSN of the first record this segment holds (or would hold, when empty).
    pub first_lsn: u64,
    /// The most bytes that can have been written to this segment but not yet synced.
    /// A bad record that starts within this many bytes of the end of the written data
    /// is a torn tail; anywhere else it is corruption.
    pub torn_window_bytes: u64,
    /// The largest record payload the writer of this segment accepted.
    pub record_payload_max: u32,
    /// Flags, see `SEGMENT_FLAG_*`.
    pub flags: u32,
}

/// Why a segment header was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentHeaderError {
    /// Fewer than [`SEGMENT_HEADER_LEN`] bytes.
    Truncated,
    /// The magic bytes are wrong: not a walstate segment.
    BadMagic,
    /// The header checksum does not match.
    BadChecksum,
    /// The checksum matches but the version is not [`FORMAT_VERSION`].
    UnsupportedVersion(u32),
    /// The checksum matches but a field is out of range.
    BadField(&'static str),
}

impl SegmentHeader {
    /// Encodes the header into its 48 bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.flags.to_le_bytes());
        out[16..24].copy_from_slice(&self.segment_seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.first_lsn.to_le_bytes());
        out[32..40].copy_from_slice(&self.torn_window_bytes.to_le_bytes());
        out[40..44].copy_from_slice(&self.record_payload_max.to_le_bytes());
        let sum = crc(&[&out[0..44]]);
        out[44..48].copy_from_slice(&sum.to_le_bytes());
        out
    }

    /// Decodes and validates a header from the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, SegmentHeaderError> {
        if bytes.len() < SEGMENT_HEADER_LEN {
            return Err(SegmentHeaderError::Truncated);
        }
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(SegmentHeaderError::BadMagic);
        }
        if crc(&[&bytes[0..44]]) != le_u32(bytes, 44) {
            return Err(SegmentHeaderError::BadChecksum);
        }
        let version = le_u32(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(SegmentHeaderError::UnsupportedVersion(version));
        }
        let header = SegmentHeader {
            flags: le_u32(bytes, 12),
            segment_seq: le_u64(bytes, 16),
            first_lsn: le_u64(bytes, 24),
            torn_window_bytes: le_u64(bytes, 32),
            record_payload_max: le_u32(bytes, 40),
        };
        if header.flags & !KNOWN_SEGMENT_FLAGS != 0 {
            return Err(SegmentHeaderError::BadField("unknown segment flags"));
        }
        if header.first_lsn == 0 {
            return Err(SegmentHeaderError::BadField(
                "first LSN 0 (LSNs start at 1)",
            ));
        }
        if header.first_lsn > LSN_MAX || header.segment_seq > LSN_MAX {
            return Err(SegmentHeaderError::BadField(
                "LSN or segment number above 2^62",
            ));
        }
        if header.record_payload_max == 0 || header.record_payload_max > RECORD_PAYLOAD_MAX_HARD {
            return Err(SegmentHeaderError::BadField(
                "record payload limit out of range",
            ));
        }
        let frame_max = u64::from(header.record_payload_max) + RECORD_HEADER_LEN as u64;
        if header.torn_window_bytes < frame_max {
            return Err(SegmentHeaderError::BadField(
                "torn window smaller than the largest record",
            ));
        }
        Ok(header)
    }
}

// ---------------------------------------------------------------------------------------
// Record frames
// ---------------------------------------------------------------------------------------

/// A decoded record borrowing its payload from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The record's log sequence number.
    pub lsn: u64,
    /// Record kind (1..=255; the store defines what each means).
    pub kind: u8,
    /// Record flags, see `FLAG_*`.
    pub flags: u8,
    /// The payload bytes.
    pub payload: &'a [u8],
}

impl RecordView<'_> {
    /// Total bytes of this frame on disk (header + payload).
    pub fn frame_len(&self) -> usize {
        RECORD_HEADER_LEN + self.payload.len()
    }

    /// True when a later record of the same atomic group follows this one.
    pub fn group_continues(&self) -> bool {
        self.flags & FLAG_GROUP_CONTINUES != 0
    }
}

/// Why the bytes at some offset are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than a frame header.
    TruncatedHeader,
    /// The header is entirely zero bytes (zero-filled or preallocated space).
    ZeroHeader,
    /// The length field exceeds the record limit.
    LengthOverLimit(u32),
    /// The length field points past the end of the available bytes.
    TruncatedPayload(u32),
    /// The checksum does not match (covers length, LSN, kind, flags and payload).
    BadChecksum,
    /// The checksum matches but the kind is 0 or the flags or reserved bytes are unknown.
    BadHeaderField,
}

impl FrameError {
    /// A short human description.
    pub fn describe(&self) -> String {
        match self {
            FrameError::TruncatedHeader => "incomplete record header".into(),
            FrameError::ZeroHeader => "zero-filled bytes where a record header belongs".into(),
            FrameError::LengthOverLimit(len) => format!("record length {len} over the limit"),
            FrameError::TruncatedPayload(len) => {
                format!("record length {len} runs past the end of the file")
            }
            FrameError::BadChecksum => "record checksum mismatch".into(),
            FrameError::BadHeaderField => "record header has an invalid kind or flags".into(),
        }
    }
}

/// The checksum of a whole record frame (header and payload, contiguous): it covers the
/// length (0..4) and LSN, kind, flags, reserved (8..20), then the payload, which is
/// everything in the frame but the checksum field itself.
fn frame_checksum(frame: &[u8]) -> u32 {
    crc(&[&frame[0..4], &frame[8..]])
}

/// Appends one encoded record frame to `out`.
///
/// Preconditions (checked by the journal before calling): `kind != 0`, `flags` only uses
/// known bits, and `payload.len() <= RECORD_PAYLOAD_MAX_HARD`.
pub fn encode_record(out: &mut Vec<u8>, lsn: u64, kind: u8, flags: u8, payload: &[u8]) {
    debug_assert!(kind != 0);
    debug_assert!(flags & !KNOWN_RECORD_FLAGS == 0);
    debug_assert!(payload.len() <= RECORD_PAYLOAD_MAX_HARD as usize);
    let mut header = [0u8; RECORD_HEADER_LEN];
    header[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[8..16].copy_from_slice(&lsn.to_le_bytes());
    header[16] = kind;
    header[17] = flags;
    let start = out.len();
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    // Checksummed in place: one pass over the contiguous frame.
    let sum = frame_checksum(&out[start..]);
    out[start + 4..start + 8].copy_from_slice(&sum.to_le_bytes());
}

/// Decodes the record frame at the start of `bytes`, accepting payloads up to
/// `payload_max` bytes. The length is checked against the limit and the available bytes
/// before the payload is touched, and nothing is allocated.
pub fn decode_record(bytes: &[u8], payload_max: u32) -> Result<RecordView<'_>, FrameError> {
    if bytes.len() < RECORD_HEADER_LEN {
        if bytes.iter().all(|&b| b == 0) {
            return Err(FrameError::ZeroHeader);
        }
        return Err(FrameError::TruncatedHeader);
    }
    let header = &bytes[..RECORD_HEADER_LEN];
    if header.iter().all(|&b| b == 0) {
        return Err(FrameError::ZeroHeader);
    }
    let len = le_u32(header, 0);
    if len > payload_max.min(RECORD_PAYLOAD_MAX_HARD) {
        return Err(FrameError::LengthOverLimit(len));
    }
    let end = RECORD_HEADER_LEN + len as usize;
    if end > bytes.len() {
        return Err(FrameError::TruncatedPayload(len));
    }
    let payload = &bytes[RECORD_HEADER_LEN..end];
    if frame_checksum(&bytes[..end]) != le_u32(header, 4) {
        return Err(FrameError::BadChecksum);
    }
    let kind = header[16];
    let flags = header[17];
    if kind == 0 || flags & !KNOWN_RECORD_FLAGS != 0 || header[18] != 0 || header[19] != 0 {
        return Err(FrameError::BadHeaderField);
    }
    Ok(RecordView {
        lsn: le_u64(header, 8),
        kind,
        flags,
        payload,
    })
}

// ---------------------------------------------------------------------------------------
// Checkpoint files
// ---------------------------------------------------------------------------------------

/// The header of a checkpoint (or named snapshot) file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointHeader {
    /// The state includes every record with an LSN up to and including this one
    /// (0: the empty state before any record).
    pub lsn: u64,
    /// Length of the encoded state that follows the header.
    pub state_len: u64,
}

/// Why a checkpoint file was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointError {
    /// Shorter than header + trailer, or shorter than the header says.
    Truncated,
    /// Longer than the header says (bytes after the trailer).
    TrailingBytes,
    /// The magic bytes are wrong: not a walstate checkpoint.
    BadMagic,
    /// The checksum over header and state does not match.
    BadChecksum,
    /// The checksum matches but the version is not [`FORMAT_VERSION`].
    UnsupportedVersion(u32),
    /// Unknown flags.
    BadField(&'static str),
}

impl CheckpointError {
    /// A short human description.
    pub fn describe(&self) -> String {
        match self {
            CheckpointError::Truncated => "file is shorter than its header says".into(),
            CheckpointError::TrailingBytes => "file is longer than its header says".into(),
            CheckpointError::BadMagic => "not a walstate checkpoint (bad magic)".into(),
            CheckpointError::BadChecksum => "checksum mismatch".into(),
            CheckpointError::UnsupportedVersion(v) => {
                format!("format version {v}, this build reads {FORMAT_VERSION}")
            }
            CheckpointError::BadField(what) => (*what).into(),
        }
    }
}

/// Encodes a checkpoint header for a state of `state_len` bytes at `lsn`.
pub fn encode_checkpoint_header(lsn: u64, state_len: u64) -> [u8; CHECKPOINT_HEADER_LEN] {
    let mut out = [0u8; CHECKPOINT_HEADER_LEN];
    out[0..8].copy_from_slice(&CHECKPOINT_MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&0u32.to_le_bytes());
    out[16..24].copy_from_slice(&lsn.to_le_bytes());
    out[24..32].copy_from_slice(&state_len.to_le_bytes());
    out
}

/// The checkpoint trailer: CRC-32 of the header followed by the state bytes, given the
/// CRC state of the state bytes alone (so a state can be checksummed as it streams out).
pub fn checkpoint_trailer(
    header: &[u8; CHECKPOINT_HEADER_LEN],
    state_crc: &crc32fast::Hasher,
) -> [u8; CHECKPOINT_TRAILER_LEN] {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header);
    hasher.combine(state_crc);
    hasher.finalize().to_le_bytes()
}

/// Encodes a whole checkpoint file: header, `state`, CRC trailer.
pub fn encode_checkpoint(lsn: u64, state: &[u8]) -> Vec<u8> {
    let header = encode_checkpoint_header(lsn, state.len() as u64);
    let mut state_crc = crc32fast::Hasher::new();
    state_crc.update(state);
    let mut out = Vec::with_capacity(CHECKPOINT_HEADER_LEN + state.len() + CHECKPOINT_TRAILER_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(state);
    out.extend_from_slice(&checkpoint_trailer(&header, &state_crc));
    out
}

/// Decodes and verifies a whole checkpoint file, returning its header and state bytes.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<(CheckpointHeader, &[u8]), CheckpointError> {
    if bytes.len() < CHECKPOINT_HEADER_LEN + CHECKPOINT_TRAILER_LEN {
        return Err(CheckpointError::Truncated);
    }
    if bytes[0..8] != CHECKPOINT_MAGIC {
        return Err(CheckpointError::BadMagic);
    }
    let state_len = le_u64(bytes, 24);
    let body_len = (bytes.len() - CHECKPOINT_HEADER_LEN - CHECKPOINT_TRAILER_LEN) as u64;
    if state_len > body_len {
        return Err(CheckpointError::Truncated);
    }
    if state_len < body_len {
        return Err(CheckpointError::TrailingBytes);
    }
    let crc_at = bytes.len() - CHECKPOINT_TRAILER_LEN;
    if crc(&[&bytes[..crc_at]]) != le_u32(bytes, crc_at) {
        return Err(CheckpointError::BadChecksum);
    }
    let version = le_u32(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(CheckpointError::UnsupportedVersion(version));
    }
    if le_u32(bytes, 12) != 0 {
        return Err(CheckpointError::BadField("unknown checkpoint flags"));
    }
    if le_u64(bytes, 16) > LSN_MAX {
        return Err(CheckpointError::BadField("LSN above 2^62"));
    }
    let header = CheckpointHeader {
        lsn: le_u64(bytes, 16),
        state_len,
    };
    Ok((header, &bytes[CHECKPOINT_HEADER_LEN..crc_at]))
}

// ---------------------------------------------------------------------------------------
// File names
// ---------------------------------------------------------------------------------------

/// File name of segment `seq`: `wal-<seq, 20 decimal digits>.seg`.
pub fn segment_file_name(seq: u64) -> String {
    format!("wal-{seq:020}.seg")
}

/// Parses a segment file name back to its sequence number.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    parse_numbered(name, "wal-", ".seg")
}

/// File name of the checkpoint at `lsn`: `checkpoint-<lsn, 20 digits>.ckpt`.
pub fn checkpoint_file_name(lsn: u64) -> String {
    format!("checkpoint-{lsn:020}.ckpt")
}

/// Parses a checkpoint file name back to its LSN.
pub fn parse_checkpoint_file_name(name: &str) -> Option<u64> {
    parse_numbered(name, "checkpoint-", ".ckpt")
}

/// File name of the state a restore record at `lsn` switches to: `restore-<lsn>.ckpt`.
pub fn restore_file_name(lsn: u64) -> String {
    format!("restore-{lsn:020}.ckpt")
}

/// Parses a restore file name back to its LSN.
pub fn parse_restore_file_name(name: &str) -> Option<u64> {
    parse_numbered(name, "restore-", ".ckpt")
}

fn parse_numbered(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n <= LSN_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, 1, 0, b"hello");
        encode_record(&mut buf, 8, 2, FLAG_GROUP_CONTINUES, b"");
        let first = decode_record(&buf, 1024).unwrap();
        assert_eq!(
            (first.lsn, first.kind, first.payload),
            (7, 1, &b"hello"[..])
        );
        let second = decode_record(&buf[first.frame_len()..], 1024).unwrap();
        assert_eq!((second.lsn, second.kind), (8, 2));
        assert!(second.group_continues());
    }

    #[test]
    fn every_single_bit_flip_in_a_record_is_detected() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 42, 1, 0, b"some payload bytes");
        for bit in 0..buf.len() * 8 {
            let mut damaged = buf.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            match decode_record(&damaged, 1 << 20) {
                Err(_) => {}
                Ok(view) => panic!("bit {bit} flip accepted as {view:?}"),
            }
        }
    }

    #[test]
    fn length_over_limit_or_file_is_rejected_without_reading_payload() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 1, 1, 0, b"abc");
        buf[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_record(&buf, RECORD_PAYLOAD_MAX_HARD),
            Err(FrameError::LengthOverLimit(u32::MAX))
        );
        buf[0..4].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            decode_record(&buf, RECORD_PAYLOAD_MAX_HARD),
            Err(FrameError::TruncatedPayload(1000))
        );
        assert_eq!(
            decode_record(&buf, 999),
            Err(FrameError::LengthOverLimit(1000))
        );
    }

    #[test]
    fn zero_bytes_are_reported_as_zero_header() {
        assert_eq!(decode_record(&[0u8; 64], 100), Err(FrameError::ZeroHeader));
        assert_eq!(decode_record(&[0u8; 3], 100), Err(FrameError::ZeroHeader));
        assert_eq!(
            decode_record(&[1u8; 3], 100),
            Err(FrameError::TruncatedHeader)
        );
    }

    #[test]
    fn segment_header_round_trip_and_bit_flips() {
        let header = SegmentHeader {
            segment_seq: 3,
            first_lsn: 100,
            torn_window_bytes: 1 << 22,
            record_payload_max: 1 << 20,
            flags: SEGMENT_FLAG_PREALLOCATED,
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&damaged).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn checkpoint_round_trip_and_damage() {
        let file = encode_checkpoint(9, b"state!");
        let (header, state) = decode_checkpoint(&file).unwrap();
        assert_eq!((header.lsn, state), (9, &b"state!"[..]));
        for bit in 0..file.len() * 8 {
            let mut damaged = file.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_checkpoint(&damaged).is_err(), "bit {bit}");
        }
        for len in 0..file.len() {
            assert!(decode_checkpoint(&file[..len]).is_err(), "len {len}");
        }
        let mut longer = file.clone();
        longer.push(0);
        assert_eq!(
            decode_checkpoint(&longer),
            Err(CheckpointError::TrailingBytes)
        );
    }

    #[test]
    fn numbers_above_lsn_max_are_refused_so_plus_one_never_overflows() {
        let mut header = SegmentHeader {
            segment_seq: LSN_MAX,
            first_lsn: LSN_MAX,
            torn_window_bytes: 1 << 22,
            record_payload_max: 1 << 20,
            flags: 0,
        };
        assert!(SegmentHeader::decode(&header.encode()).is_ok());
        header.first_lsn = u64::MAX;
        assert!(SegmentHeader::decode(&header.encode()).is_err());
        header.first_lsn = 1;
        header.segment_seq = u64::MAX;
        assert!(SegmentHeader::decode(&header.encode()).is_err());
        assert!(decode_checkpoint(&encode_checkpoint(LSN_MAX, b"")).is_ok());
        assert!(decode_checkpoint(&encode_checkpoint(u64::MAX, b"")).is_err());
        assert_eq!(
            parse_checkpoint_file_name("checkpoint-18446744073709551615.ckpt"),
            None
        );
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(segment_file_name(12), "wal-00000000000000000012.seg");
        assert_eq!(
            parse_segment_file_name(&segment_file_name(LSN_MAX)),
            Some(LSN_MAX)
        );
        assert_eq!(
            parse_segment_file_name(&segment_file_name(LSN_MAX + 1)),
            None
        );
        assert_eq!(
            parse_checkpoint_file_name(&checkpoint_file_name(5)),
            Some(5)
        );
        assert_eq!(parse_restore_file_name(&restore_file_name(5)), Some(5));
        assert_eq!(parse_segment_file_name("wal-12.seg"), None);
        assert_eq!(
            parse_segment_file_name("wal-0000000000000000001x.seg"),
            None
        );
    }
}
