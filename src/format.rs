//! Byte layouts of everything walstate writes: the identity file, segment headers,
//! record frames, record kinds and the restore record's payload, checkpoint files and
//! schema files, exactly as `wal-format.md` specifies them (versions 2 and 3; version 1,
//! still read, is in [`v1`]), and the rules that tell the versions apart.
//!
//! This module owns the bytes and nothing else: it never does I/O, never allocates a
//! length read from disk, and never panics on any input, so fuzz targets can call its
//! decoders directly.

mod damage;
mod identity;
mod record;
mod schema;
pub mod v1;

pub use identity::{Identity, StoreId};
pub use damage::{
    has_earlier_sector_version_shape, has_lost_write_shape, header_is_one_bit_from_valid,
    payload_is_one_bit_from_crc,
};
pub use record::{
    RECORD_KIND_COMMAND, RECORD_KIND_RESTORE, RECORD_KIND_SEAL, RecordKind, RestoreMarker,
};
pub use schema::{SCHEMA_NAME_MAX, SchemaId, SchemaRecord};
#[cfg(feature = "internals")]
pub use schema::{SCHEMA_RECORD_VERSION, SCHEMA_SHAPE_MAX, SchemaRecordError};

/// The on-disk format version written by this build.
pub const FORMAT_VERSION: u32 = 3;
/// Format version 2: the layouts of version 3, but every schema id is 0 and there are
/// no schema files. Read as version 3 with "no schema recorded".
pub const FORMAT_VERSION_V2: u32 = 2;
/// The oldest format version this build reads (and upgrades).
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub const FORMAT_VERSION_OLDEST_READ: u32 = v1::FORMAT_VERSION_V1;

/// The format version a segment or checkpoint-format file claims: bytes `8..12`, where
/// every version of both headers keeps it. Unchecked (no magic, no checksum): for
/// sorting files by version before reading them; `None` when `bytes` is shorter.
pub fn claimed_version(bytes: &[u8]) -> Option<u32> {
    (bytes.len() >= 12).then(|| le_u32(bytes, 8))
}

/// True when files of format `version` name their store (a store id in every header):
/// version 2 and later. Version-1 files name none.
pub const fn version_names_store(version: u32) -> bool {
    version >= FORMAT_VERSION_V2
}

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"WALSTSEG";
/// Size of the (version 2) segment header in bytes; the first frame follows it.
pub const SEGMENT_HEADER_LEN: usize = 64;

/// Magic bytes at the start of every checkpoint, restore and snapshot file.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"WALSTCKP";
/// Size of the (version 2) checkpoint header in bytes (the CRC trailer is 4 more).
pub const CHECKPOINT_HEADER_LEN: usize = 48;
/// Size of the checkpoint trailer (CRC-32) in bytes.
pub const CHECKPOINT_TRAILER_LEN: usize = 4;
/// The part of a checkpoint header every version shares (magic, version, flags, LSN,
/// body length): a version-1 reader parses this much of a newer file.
const CHECKPOINT_COMMON_LEN: usize = 32;

/// Name of the identity file in the store directory.
pub const IDENTITY_FILE_NAME: &str = "IDENTITY";

/// The file name of a store's spare segment: zeros made ahead of need, which the next
/// rotation turns into its segment (`wal-format.md` section 3). Not a store file: open
/// never reads it, and it does not make a directory a store.
pub const SPARE_SEGMENT_FILE_NAME: &str = "SPARE-SEGMENT";
/// Magic bytes at the start of the identity file.
pub const IDENTITY_MAGIC: [u8; 8] = *b"WALSTIDN";
/// Size of the identity file in bytes.
pub const IDENTITY_LEN: usize = 32;
/// Identity flag: the store was created by format version 1 and may still hold
/// version-1 files (which carry no store id). Cleared by an upgrade.
pub const IDENTITY_FLAG_LEGACY_V1: u32 = 0b1;
pub(crate) const KNOWN_IDENTITY_FLAGS: u32 = IDENTITY_FLAG_LEGACY_V1;

/// Size of a (version 2) record frame header in bytes; the payload follows it.
pub const RECORD_HEADER_LEN: usize = 32;
/// The largest record payload any walstate build accepts (64 MiB). A store may choose a
/// smaller limit; it is recorded in every segment header.
pub const RECORD_PAYLOAD_MAX_HARD: u32 = 64 << 20;
/// First byte of every version-2 frame header.
pub const FRAME_START_MARK: u8 = 0xA5;
/// Last byte of every version-2 frame header. With [`FRAME_START_MARK`] it makes both
/// ends of every header non-zero, so an all-zero piece of a header is never written
/// data (section 7.3 of the spec relies on it).
pub const FRAME_END_MARK: u8 = 0x5A;
/// The sector size torn writes are assumed to respect: a crash leaves each 512-byte
/// aligned piece of an unsynced write either written or as it was before (zeros).
pub const SECTOR_BYTES: usize = 512;

/// The largest LSN, segment sequence number or checkpoint LSN a reader accepts (2^62).
/// Anything larger in a file or file name is refused as damage, so `+ 1` on any of them
/// can never overflow. At a million records a second it lasts 146,000 years.
pub const LSN_MAX: u64 = 1 << 62;

/// Record flag: the record belongs to an atomic group and is not its last record.
pub const FLAG_GROUP_CONTINUES: u8 = 0b0000_0001;
pub(crate) const KNOWN_RECORD_FLAGS: u8 = FLAG_GROUP_CONTINUES;

/// Segment header flag: the segment file was preallocated (zero-filled beyond the data).
pub const SEGMENT_FLAG_PREALLOCATED: u32 = 0b1;
pub(crate) const KNOWN_SEGMENT_FLAGS: u32 = SEGMENT_FLAG_PREALLOCATED;

pub(crate) fn crc(parts: &[&[u8]]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}

pub(crate) fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

pub(crate) fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

// ---------------------------------------------------------------------------------------
// Segment header
// ---------------------------------------------------------------------------------------

/// The fixed header at offset 0 of every segment file (either version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version of the segment: 2, or 1 for a segment written before version 2.
    pub version: u32,
    /// Segment sequence number; equals the number in the file name.
    pub segment_seq: u64,
    /// LSN of the first record this segment holds (or would hold, when empty).
    pub first_lsn: u64,
    /// Version 1 only (0 in version 2): the most bytes its writer could have had written
    /// but not synced; version-1 segments are read with the torn-window rule.
    pub torn_window_bytes: u64,
    /// The largest record payload the writer of this segment accepted.
    pub record_payload_max: u32,
    /// Flags, see `SEGMENT_FLAG_*`.
    pub flags: u32,
    /// The store this segment belongs to (version 2; 0 in version 1, which has none).
    pub store_id: u64,
    /// The schema of the commands in this segment (its [`SchemaId`]; 0: none recorded).
    pub schema_id: u64,
}

/// Why a segment header was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentHeaderError {
    /// Fewer bytes than the header.
    Truncated,
    /// The magic bytes are wrong: not a walstate segment.
    BadMagic,
    /// A header checksum does not match.
    BadChecksum,
    /// The checksum matches but the version is not one this build reads.
    UnsupportedVersion(u32),
    /// The checksum matches but a field is out of range.
    BadField(&'static str),
}

impl SegmentHeader {
    /// A header (of [`FORMAT_VERSION`]) for a new segment whose commands are of schema
    /// `schema_id` (0: none recorded).
    pub fn new(
        segment_seq: u64,
        first_lsn: u64,
        record_payload_max: u32,
        flags: u32,
        store_id: StoreId,
        schema_id: u64,
    ) -> Self {
        SegmentHeader {
            version: FORMAT_VERSION,
            segment_seq,
            first_lsn,
            torn_window_bytes: 0,
            record_payload_max,
            flags,
            store_id: store_id.get(),
            schema_id,
        }
    }

    /// Where the first frame starts: the header's length in its version.
    pub fn data_start(&self) -> usize {
        if self.version == v1::FORMAT_VERSION_V1 {
            v1::SEGMENT_HEADER_LEN_V1
        } else {
            SEGMENT_HEADER_LEN
        }
    }

    /// True for a segment of format version 1.
    pub fn is_v1(&self) -> bool {
        self.version == v1::FORMAT_VERSION_V1
    }

    /// Encodes the header in version 2 (64 bytes). Bytes `0..48` keep the version-1
    /// shape (magic, version, a CRC of `0..44` at `44..48`), so a version-1 reader
    /// reports "unsupported version" rather than damage.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        debug_assert_eq!(self.version, FORMAT_VERSION);
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.flags.to_le_bytes());
        out[16..24].copy_from_slice(&self.segment_seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.first_lsn.to_le_bytes());
        out[32..40].copy_from_slice(&self.store_id.to_le_bytes());
        out[40..44].copy_from_slice(&self.record_payload_max.to_le_bytes());
        let common = crc(&[&out[0..44]]);
        out[44..48].copy_from_slice(&common.to_le_bytes());
        out[48..56].copy_from_slice(&self.schema_id.to_le_bytes());
        // Not over 0..60: a CRC over bytes that end in their own CRC is a constant.
        let whole = crc(&[&out[0..44], &out[48..60]]);
        out[60..64].copy_from_slice(&whole.to_le_bytes());
        out
    }

    /// Decodes and validates a header of either version from the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, SegmentHeaderError> {
        if bytes.len() < v1::SEGMENT_HEADER_LEN_V1 {
            return Err(SegmentHeaderError::Truncated);
        }
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(SegmentHeaderError::BadMagic);
        }
        if crc(&[&bytes[0..44]]) != le_u32(bytes, 44) {
            return Err(SegmentHeaderError::BadChecksum);
        }
        match le_u32(bytes, 8) {
            v1::FORMAT_VERSION_V1 => v1::decode_segment_header(bytes),
            version @ (FORMAT_VERSION_V2 | FORMAT_VERSION) => Self::decode_v2(bytes, version),
            other => Err(SegmentHeaderError::UnsupportedVersion(other)),
        }
    }

    /// Decodes the 64-byte layout versions 2 and 3 share.
    fn decode_v2(bytes: &[u8], version: u32) -> Result<SegmentHeader, SegmentHeaderError> {
        if bytes.len() < SEGMENT_HEADER_LEN {
            return Err(SegmentHeaderError::Truncated);
        }
        if crc(&[&bytes[0..44], &bytes[48..60]]) != le_u32(bytes, 60) {
            return Err(SegmentHeaderError::BadChecksum);
        }
        let header = SegmentHeader {
            version,
            flags: le_u32(bytes, 12),
            segment_seq: le_u64(bytes, 16),
            first_lsn: le_u64(bytes, 24),
            torn_window_bytes: 0,
            store_id: le_u64(bytes, 32),
            record_payload_max: le_u32(bytes, 40),
            schema_id: le_u64(bytes, 48),
        };
        header.check_common_fields()?;
        if header.store_id == 0 {
            return Err(SegmentHeaderError::BadField("store id 0"));
        }
        if le_u32(bytes, 56) != 0 {
            return Err(SegmentHeaderError::BadField("reserved bytes are not zero"));
        }
        Ok(header)
    }

    /// The checks both versions share, in the spec's order.
    pub(crate) fn check_common_fields(&self) -> Result<(), SegmentHeaderError> {
        if self.flags & !KNOWN_SEGMENT_FLAGS != 0 {
            return Err(SegmentHeaderError::BadField("unknown segment flags"));
        }
        if self.first_lsn == 0 {
            return Err(SegmentHeaderError::BadField(
                "first LSN 0 (LSNs start at 1)",
            ));
        }
        if self.first_lsn > LSN_MAX || self.segment_seq > LSN_MAX {
            return Err(SegmentHeaderError::BadField(
                "LSN or segment number above 2^62",
            ));
        }
        if self.record_payload_max == 0 || self.record_payload_max > RECORD_PAYLOAD_MAX_HARD {
            return Err(SegmentHeaderError::BadField(
                "record payload limit out of range",
            ));
        }
        Ok(())
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
    /// Record kind (1..=255; see `RECORD_KIND_*`).
    pub kind: u8,
    /// Record flags, see `FLAG_*`.
    pub flags: u8,
    /// The payload bytes.
    pub payload: &'a [u8],
    /// The durable frontier (version 2; 0 in version 1): the offset in this segment up
    /// to which the file was known synced when this frame was written.
    pub synced_end: u64,
    /// Length of the frame header in the segment's version.
    pub header_len: usize,
}

impl RecordView<'_> {
    /// Total bytes of this frame on disk (header + payload).
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload.len()
    }

    /// True when a later record of the same atomic group follows this one.
    pub fn group_continues(&self) -> bool {
        self.flags & FLAG_GROUP_CONTINUES != 0
    }

    /// True for a seal (a clean close's proof that everything before it was durable).
    pub fn is_seal(&self) -> bool {
        self.kind == RECORD_KIND_SEAL
    }

    /// The record's kind, or `None` for a kind byte this build assigns no meaning to.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn record_kind(&self) -> Option<RecordKind> {
        RecordKind::from_u8(self.kind)
    }
}

/// Why the bytes at some offset are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than a frame header.
    TruncatedHeader,
    /// The header is entirely zero bytes (zero-filled or preallocated space).
    ZeroHeader,
    /// The header checksum does not match (version 2).
    BadHeaderChecksum,
    /// The length field exceeds the record limit.
    LengthOverLimit(u32),
    /// The length field points past the end of the available bytes.
    TruncatedPayload(u32),
    /// The payload checksum (version 1: the frame checksum) does not match.
    BadChecksum,
    /// The checksum matches but a header field is invalid (kind 0, unknown flags,
    /// non-zero reserved bytes, a wrong mark, an LSN above 2^62).
    BadHeaderField,
}

impl FrameError {
    /// A short human description.
    pub fn describe(&self) -> String {
        match self {
            FrameError::TruncatedHeader => "incomplete record header".into(),
            FrameError::ZeroHeader => "zero-filled bytes where a record header belongs".into(),
            FrameError::BadHeaderChecksum => "record header checksum mismatch".into(),
            FrameError::LengthOverLimit(len) => format!("record length {len} over the limit"),
            FrameError::TruncatedPayload(len) => {
                format!("record length {len} runs past the end of the file")
            }
            FrameError::BadChecksum => "record checksum mismatch".into(),
            FrameError::BadHeaderField => "record header has an invalid field".into(),
        }
    }
}

/// The header checksum: bytes `0..27`, then byte `31` (everything but the field).
fn header_checksum(header: &[u8]) -> u32 {
    crc(&[&header[0..27], &header[31..32]])
}

/// Appends one version-2 record frame to `out`.
///
/// `synced_end` is the durable frontier: the segment offset up to which the file was
/// synced when this frame was encoded (never more than the frame's own offset).
/// Preconditions (checked by the journal before calling): `kind != 0`, `flags` only uses
/// known bits, and `payload.len() <= RECORD_PAYLOAD_MAX_HARD`.
pub fn encode_record(
    out: &mut Vec<u8>,
    lsn: u64,
    kind: u8,
    flags: u8,
    synced_end: u64,
    payload: &[u8],
) {
    debug_assert!(kind != 0);
    debug_assert!(flags & !KNOWN_RECORD_FLAGS == 0);
    debug_assert!(payload.len() <= RECORD_PAYLOAD_MAX_HARD as usize);
    let mut header = [0u8; RECORD_HEADER_LEN];
    header[0] = FRAME_START_MARK;
    header[1] = kind;
    header[2] = flags;
    header[3..7].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[7..15].copy_from_slice(&lsn.to_le_bytes());
    header[15..23].copy_from_slice(&synced_end.to_le_bytes());
    header[23..27].copy_from_slice(&crc(&[payload]).to_le_bytes());
    header[31] = FRAME_END_MARK;
    let sum = header_checksum(&header);
    header[27..31].copy_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
}

/// Decodes the version-2 record frame at the start of `bytes`, accepting payloads up to
/// `payload_max` bytes. The header is verified by its own checksum before the length is
/// used, the length is checked against the limit and the available bytes before the
/// payload is touched, and nothing is allocated.
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
    if header_checksum(header) != le_u32(header, 27) {
        return Err(FrameError::BadHeaderChecksum);
    }
    let kind = header[1];
    let flags = header[2];
    let lsn = le_u64(header, 7);
    let synced_end = le_u64(header, 15);
    if header[0] != FRAME_START_MARK
        || header[31] != FRAME_END_MARK
        || kind == 0
        || flags & !KNOWN_RECORD_FLAGS != 0
        || lsn > LSN_MAX
    {
        return Err(FrameError::BadHeaderField);
    }
    let len = le_u32(header, 3);
    if len > payload_max.min(RECORD_PAYLOAD_MAX_HARD) {
        return Err(FrameError::LengthOverLimit(len));
    }
    let end = RECORD_HEADER_LEN + len as usize;
    if end > bytes.len() {
        return Err(FrameError::TruncatedPayload(len));
    }
    let payload = &bytes[RECORD_HEADER_LEN..end];
    if crc(&[payload]) != le_u32(header, 23) {
        return Err(FrameError::BadChecksum);
    }
    Ok(RecordView {
        lsn,
        kind,
        flags,
        payload,
        synced_end,
        header_len: RECORD_HEADER_LEN,
    })
}

// ---------------------------------------------------------------------------------------
// Checkpoint files
// ---------------------------------------------------------------------------------------

/// The header of a checkpoint, restore or snapshot file (either version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointHeader {
    /// Format version of the file (2, or 1 for a file written before version 2).
    pub version: u32,
    /// The state includes every record with an LSN up to and including this one
    /// (0: the empty state before any record).
    pub lsn: u64,
    /// Length of the encoded state.
    pub state_len: u64,
    /// The store the file belongs to (0 in version 1, which records none).
    pub store_id: u64,
    /// Fingerprint of the schema of the state (0: none recorded).
    pub schema_id: u64,
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
    /// The checksum matches but the version is not one this build reads.
    UnsupportedVersion(u32),
    /// Unknown flags, or a field out of range.
    BadField(&'static str),
}

impl CheckpointError {
    /// A short human description.
    pub fn describe(&self) -> String {
        match self {
            CheckpointError::Truncated => "file is shorter than its header says".into(),
            CheckpointError::TrailingBytes => "file is longer than its header says".into(),
            CheckpointError::BadMagic => "not a walstate file (bad magic)".into(),
            CheckpointError::BadChecksum => "checksum mismatch".into(),
            CheckpointError::UnsupportedVersion(v) => {
                format!("format version {v}, this build reads versions 1 to {FORMAT_VERSION}")
            }
            CheckpointError::BadField(what) => (*what).into(),
        }
    }
}

/// Encodes a checkpoint header (of [`FORMAT_VERSION`]) for a state of `state_len` bytes at `lsn`.
/// The body length at `24..32` counts the store and schema ids too, so a version-1
/// reader finds a well-formed file of an unsupported version.
pub fn encode_checkpoint_header(
    lsn: u64,
    state_len: u64,
    store_id: StoreId,
    schema_id: u64,
) -> [u8; CHECKPOINT_HEADER_LEN] {
    let mut out = [0u8; CHECKPOINT_HEADER_LEN];
    out[0..8].copy_from_slice(&CHECKPOINT_MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&0u32.to_le_bytes());
    out[16..24].copy_from_slice(&lsn.to_le_bytes());
    let body_len = state_len + (CHECKPOINT_HEADER_LEN - CHECKPOINT_COMMON_LEN) as u64;
    out[24..32].copy_from_slice(&body_len.to_le_bytes());
    out[32..40].copy_from_slice(&store_id.get().to_le_bytes());
    out[40..48].copy_from_slice(&schema_id.to_le_bytes());
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

/// Encodes a whole checkpoint-format file: header, `state`, CRC trailer.
pub fn encode_checkpoint(lsn: u64, store_id: StoreId, schema_id: u64, state: &[u8]) -> Vec<u8> {
    let header = encode_checkpoint_header(lsn, state.len() as u64, store_id, schema_id);
    let mut state_crc = crc32fast::Hasher::new();
    state_crc.update(state);
    let mut out = Vec::with_capacity(CHECKPOINT_HEADER_LEN + state.len() + CHECKPOINT_TRAILER_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(state);
    out.extend_from_slice(&checkpoint_trailer(&header, &state_crc));
    out
}

/// Decodes and verifies a whole checkpoint file of either version, returning its header
/// and state bytes.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<(CheckpointHeader, &[u8]), CheckpointError> {
    if bytes.len() < CHECKPOINT_COMMON_LEN + CHECKPOINT_TRAILER_LEN {
        return Err(CheckpointError::Truncated);
    }
    if bytes[0..8] != CHECKPOINT_MAGIC {
        return Err(CheckpointError::BadMagic);
    }
    let body_len = le_u64(bytes, 24);
    let actual_body = (bytes.len() - CHECKPOINT_COMMON_LEN - CHECKPOINT_TRAILER_LEN) as u64;
    if body_len > actual_body {
        return Err(CheckpointError::Truncated);
    }
    if body_len < actual_body {
        return Err(CheckpointError::TrailingBytes);
    }
    let crc_at = bytes.len() - CHECKPOINT_TRAILER_LEN;
    if crc(&[&bytes[..crc_at]]) != le_u32(bytes, crc_at) {
        return Err(CheckpointError::BadChecksum);
    }
    let version = le_u32(bytes, 8);
    let ids_len = match version {
        v1::FORMAT_VERSION_V1 => 0,
        FORMAT_VERSION_V2 | FORMAT_VERSION => CHECKPOINT_HEADER_LEN - CHECKPOINT_COMMON_LEN,
        other => return Err(CheckpointError::UnsupportedVersion(other)),
    };
    if le_u32(bytes, 12) != 0 {
        return Err(CheckpointError::BadField("unknown checkpoint flags"));
    }
    if le_u64(bytes, 16) > LSN_MAX {
        return Err(CheckpointError::BadField("LSN above 2^62"));
    }
    if body_len < ids_len as u64 {
        return Err(CheckpointError::Truncated);
    }
    let state_at = CHECKPOINT_COMMON_LEN + ids_len;
    let (store_id, schema_id) = if ids_len > 0 {
        (le_u64(bytes, 32), le_u64(bytes, 40))
    } else {
        (0, 0)
    };
    if ids_len > 0 && store_id == 0 {
        return Err(CheckpointError::BadField("store id 0"));
    }
    let header = CheckpointHeader {
        version,
        lsn: le_u64(bytes, 16),
        state_len: body_len - ids_len as u64,
        store_id,
        schema_id,
    };
    Ok((header, &bytes[state_at..crc_at]))
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

/// File name of the schema file of `id`: `schema-<id, 16 lower-case hex digits>.schema`.
pub fn schema_file_name(id: SchemaId) -> String {
    format!("schema-{id}.schema")
}

/// Parses a schema file name back to its schema id.
pub fn parse_schema_file_name(name: &str) -> Option<SchemaId> {
    let digits = name.strip_prefix("schema-")?.strip_suffix(".schema")?;
    if digits.len() != 16
        || !digits
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    u64::from_str_radix(digits, 16).ok().and_then(SchemaId::new)
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

    fn id() -> StoreId {
        StoreId::new(0x0123_4567_89ab_cdef).unwrap()
    }

    #[test]
    fn record_round_trip() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, 1, 0, 64, b"hello");
        encode_record(&mut buf, 8, 2, FLAG_GROUP_CONTINUES, 64, b"");
        let first = decode_record(&buf, 1024).unwrap();
        assert_eq!(
            (first.lsn, first.kind, first.payload, first.synced_end),
            (7, 1, &b"hello"[..], 64)
        );
        let second = decode_record(&buf[first.frame_len()..], 1024).unwrap();
        assert_eq!((second.lsn, second.kind), (8, 2));
        assert!(second.group_continues());
    }

    #[test]
    fn every_single_bit_flip_in_a_record_is_detected() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 42, 1, 0, 100, b"some payload bytes");
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
    fn a_bit_flip_never_gives_a_header_a_lost_write_shape() {
        // Both ends of a header are non-zero marks with several bits set, so one flipped
        // bit cannot make any sector piece of a header all zero, wherever a sector
        // boundary cuts it.
        let mut frame = Vec::new();
        encode_record(&mut frame, 1, 1, 0, 64, b"");
        for cut in 0..=RECORD_HEADER_LEN {
            for bit in 0..RECORD_HEADER_LEN * 8 {
                let mut image = vec![0xEEu8; SECTOR_BYTES - cut];
                let start = image.len();
                image.extend_from_slice(&frame);
                image[start + bit / 8] ^= 1 << (bit % 8);
                assert!(
                    !has_lost_write_shape(&image, start, start + RECORD_HEADER_LEN),
                    "cut {cut} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn lost_write_shape_is_a_zero_sector_piece_or_a_short_file() {
        let mut image = vec![1u8; 2048];
        assert!(!has_lost_write_shape(&image, 100, 1500));
        assert!(has_lost_write_shape(&image, 100, 2049));
        image[1024..1100].fill(0);
        // 1024..1100 is not a whole piece of 100..1500 (its piece is 1024..1500).
        assert!(!has_lost_write_shape(&image, 100, 1500));
        assert!(has_lost_write_shape(&image, 100, 1100));
        image[1024..1536].fill(0);
        assert!(has_lost_write_shape(&image, 100, 1500));
    }

    #[test]
    fn earlier_sector_version_shape_is_a_zero_run_to_the_end_of_a_sector() {
        let mut image = vec![1u8; 2048];
        assert!(!has_earlier_sector_version_shape(&image, 100, 1500));
        // Zeros from inside the range to the sector's end: the sector 512..1024 landed
        // as it was after a write that ended at 1000.
        image[1000..1024].fill(0);
        assert!(has_earlier_sector_version_shape(&image, 100, 1500));
        // The same zeros do not reach the end of their sector: no earlier version.
        image[1023] = 1;
        assert!(!has_earlier_sector_version_shape(&image, 100, 1500));
        // A range ending inside a sector: its last byte and the rest of the sector zero.
        image[1200..1536].fill(0);
        assert!(has_earlier_sector_version_shape(&image, 100, 1300));
        image[1400] = 1;
        assert!(!has_earlier_sector_version_shape(&image, 100, 1300));
        // The image ends inside the sector: zeros to the end of the image suffice.
        assert!(has_earlier_sector_version_shape(&image[..1300], 100, 1300));
        // Empty, inverted and out-of-image ranges have no sector.
        assert!(!has_earlier_sector_version_shape(&image, 1300, 1300));
        assert!(!has_earlier_sector_version_shape(&image, 1300, 100));
        assert!(!has_earlier_sector_version_shape(&image, 5000, 6000));
    }

    #[test]
    fn one_flipped_bit_is_recognised_in_a_header_and_in_a_payload() {
        let payload: Vec<u8> = (0..700u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut frame = Vec::new();
        encode_record(&mut frame, 9, 1, 0, 64, &payload);
        let stored = le_u32(&frame, 23);
        for bit in 0..RECORD_HEADER_LEN * 8 {
            let mut header = frame[..RECORD_HEADER_LEN].to_vec();
            header[bit / 8] ^= 1 << (bit % 8);
            assert!(header_is_one_bit_from_valid(&header), "header bit {bit}");
        }
        for bit in 0..payload.len() * 8 {
            let mut damaged = payload.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(payload_is_one_bit_from_crc(&damaged, stored), "payload bit {bit}");
        }
        // Intact, or damaged in more than one bit: not one flip.
        assert!(!header_is_one_bit_from_valid(&frame[..RECORD_HEADER_LEN]));
        assert!(!payload_is_one_bit_from_crc(&payload, stored));
        let mut zeroed = frame[..RECORD_HEADER_LEN].to_vec();
        zeroed[27..30].fill(0);
        assert!(!header_is_one_bit_from_valid(&zeroed));
        assert!(!header_is_one_bit_from_valid(&zeroed[..31]));
        let mut lost = payload.clone();
        lost[480..512].fill(0);
        assert!(!payload_is_one_bit_from_crc(&lost, stored));
    }

    #[test]
    fn length_over_limit_or_file_is_rejected_without_reading_payload() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 1, 1, 0, 64, b"abc");
        assert!(decode_record(&buf, RECORD_PAYLOAD_MAX_HARD).is_ok());
        assert_eq!(decode_record(&buf, 2), Err(FrameError::LengthOverLimit(3)));
        assert_eq!(
            decode_record(&buf[..buf.len() - 1], RECORD_PAYLOAD_MAX_HARD),
            Err(FrameError::TruncatedPayload(3))
        );
        // A damaged length is caught by the header checksum before it is used.
        buf[3..7].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_record(&buf, RECORD_PAYLOAD_MAX_HARD),
            Err(FrameError::BadHeaderChecksum)
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
        let header = SegmentHeader::new(3, 100, 1 << 20, SEGMENT_FLAG_PREALLOCATED, id(), 7);
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        assert_eq!(header.data_start(), SEGMENT_HEADER_LEN);
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&damaged).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn v1_segment_header_still_decodes() {
        let header = SegmentHeader {
            version: 1,
            segment_seq: 2,
            first_lsn: 100,
            torn_window_bytes: 4096,
            record_payload_max: 1024,
            flags: 0,
            store_id: 0,
            schema_id: 0,
        };
        let bytes = v1::encode_segment_header(&header);
        let decoded = SegmentHeader::decode(&bytes).unwrap();
        assert_eq!(decoded, header);
        assert!(decoded.is_v1());
        assert_eq!(decoded.data_start(), v1::SEGMENT_HEADER_LEN_V1);
    }

    #[test]
    fn checkpoint_round_trip_and_damage() {
        let file = encode_checkpoint(9, id(), 0, b"state!");
        let (header, state) = decode_checkpoint(&file).unwrap();
        assert_eq!(
            (header.lsn, state, header.store_id),
            (9, &b"state!"[..], id().get())
        );
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
        let old = v1::encode_checkpoint(5, b"old");
        let (header, state) = decode_checkpoint(&old).unwrap();
        assert_eq!(
            (header.version, header.lsn, state, header.store_id),
            (1, 5, &b"old"[..], 0)
        );
    }

    #[test]
    fn identity_round_trip_and_damage() {
        let identity = Identity {
            store_id: id(),
            flags: IDENTITY_FLAG_LEGACY_V1,
        };
        let bytes = identity.encode();
        assert_eq!(Identity::decode(&bytes), Ok(identity));
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(Identity::decode(&damaged).is_err(), "bit {bit}");
        }
        assert_ne!(StoreId::generate(), StoreId::generate());
    }

    #[test]
    fn numbers_above_lsn_max_are_refused_so_plus_one_never_overflows() {
        let mut header = SegmentHeader::new(LSN_MAX, LSN_MAX, 1 << 20, 0, id(), 0);
        assert!(SegmentHeader::decode(&header.encode()).is_ok());
        header.first_lsn = u64::MAX;
        assert!(SegmentHeader::decode(&header.encode()).is_err());
        header.first_lsn = 1;
        header.segment_seq = u64::MAX;
        assert!(SegmentHeader::decode(&header.encode()).is_err());
        assert!(decode_checkpoint(&encode_checkpoint(LSN_MAX, id(), 0, b"")).is_ok());
        assert!(decode_checkpoint(&encode_checkpoint(u64::MAX, id(), 0, b"")).is_err());
        let mut frame = Vec::new();
        encode_record(&mut frame, u64::MAX, 1, 0, 64, b"");
        assert_eq!(decode_record(&frame, 10), Err(FrameError::BadHeaderField));
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
