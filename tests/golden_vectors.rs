//! Golden vectors for `wal-format.md`.
//!
//! The hex below is the frozen output of the encoders in `walstate::format`. Each test
//! (a) encodes a value and compares with the frozen bytes, (b) decodes the frozen bytes
//! and checks the fields. A hand-written CRC-32 checks that the checksums cover exactly
//! the bytes the spec says, and the hex blocks are parsed out of `wal-format.md` itself
//! and compared with the constants here, so the spec, this file and the code cannot
//! drift apart. If a test here fails after a layout change: the change needs a
//! `FORMAT_VERSION` bump and new vectors (see "Versioning" in the spec). The version-1
//! vectors stay as long as version 1 is readable (appendix A).

use walstate::format::{
    CHECKPOINT_HEADER_LEN, CHECKPOINT_MAGIC, CHECKPOINT_TRAILER_LEN, CheckpointError,
    FLAG_GROUP_CONTINUES, FORMAT_VERSION, FRAME_END_MARK, FRAME_START_MARK, FrameError,
    IDENTITY_LEN, Identity, RECORD_HEADER_LEN, RECORD_KIND_SEAL, RECORD_PAYLOAD_MAX_HARD,
    SCHEMA_NAME_MAX, SCHEMA_RECORD_VERSION, SCHEMA_SHAPE_MAX, SEGMENT_FLAG_PREALLOCATED,
    SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SchemaId, SchemaRecord, SchemaRecordError, SegmentHeader,
    SegmentHeaderError, StoreId, checkpoint_file_name, decode_checkpoint, decode_record,
    encode_checkpoint, encode_record, parse_checkpoint_file_name, parse_segment_file_name,
    restore_file_name, segment_file_name, v1,
};

// ---------------------------------------------------------------------------------------
// The frozen vectors (identical to the ```hex blocks in wal-format.md)
// ---------------------------------------------------------------------------------------

/// The store id of every vector.
const STORE_ID: u64 = 0x0123_4567_89ab_cdef;

/// The schema id of the segment and checkpoint vectors.
const SCHEMA_ID: u64 = 0x1122_3344_5566_7788;

/// Segment `{ seq 1, first_lsn 1, store STORE_ID, record_payload_max 4194304, flags 0, schema SCHEMA_ID }`
const SEGMENT_HEADER: &str = "
57 41 4c 53 54 53 45 47 03 00 00 00 00 00 00 00
01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00
ef cd ab 89 67 45 23 01 00 00 40 00 a2 fa d2 19
88 77 66 55 44 33 22 11 00 00 00 00 e9 3f a5 a9
";

/// Segment `{ seq 2, first_lsn 100, store STORE_ID, record_payload_max 1024, PREALLOCATED, schema SCHEMA_ID }`
const SEGMENT_HEADER_PREALLOCATED: &str = "
57 41 4c 53 54 53 45 47 03 00 00 00 01 00 00 00
02 00 00 00 00 00 00 00 64 00 00 00 00 00 00 00
ef cd ab 89 67 45 23 01 00 04 00 00 f4 3f 28 19
88 77 66 55 44 33 22 11 00 00 00 00 67 5c 73 ad
";

/// Version 2 (still read): segment `{ seq 1, first_lsn 1, store STORE_ID, record_payload_max 4194304, flags 0, schema 0 }`
const V2_SEGMENT_HEADER: &str = "
57 41 4c 53 54 53 45 47 02 00 00 00 00 00 00 00
01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00
ef cd ab 89 67 45 23 01 00 00 40 00 37 2e a2 8c
00 00 00 00 00 00 00 00 00 00 00 00 82 94 42 e2
";

/// Record `{ lsn 1, kind 1, flags 0, synced_end 64, payload "hello" }`
const RECORD_HELLO: &str = "
a5 01 00 05 00 00 00 01 00 00 00 00 00 00 00 40
00 00 00 00 00 00 00 86 a6 10 36 25 09 9c 31 5a
68 65 6c 6c 6f
";

/// Record `{ lsn 2, kind 1, flags FLAG_GROUP_CONTINUES, synced_end 101, payload "" }`
const RECORD_GROUP_CONTINUES_EMPTY: &str = "
a5 01 01 00 00 00 00 02 00 00 00 00 00 00 00 65
00 00 00 00 00 00 00 00 00 00 00 ac 3e 64 9e 5a
";

/// Seal `{ lsn 3 (the next record's), kind 3, flags 0, synced_end 133 (its own offset) }`
const RECORD_SEAL: &str = "
a5 03 00 00 00 00 00 03 00 00 00 00 00 00 00 85
00 00 00 00 00 00 00 00 00 00 00 6e d2 22 95 5a
";

/// Checkpoint `{ lsn 7, store STORE_ID, schema SCHEMA_ID, state "state" }`
const CHECKPOINT_STATE: &str = "
57 41 4c 53 54 43 4b 50 03 00 00 00 00 00 00 00
07 00 00 00 00 00 00 00 15 00 00 00 00 00 00 00
ef cd ab 89 67 45 23 01 88 77 66 55 44 33 22 11
73 74 61 74 65 77 e5 7a d0
";

/// Version 2 (still read): checkpoint `{ lsn 7, store STORE_ID, schema 0, state "state" }`
const V2_CHECKPOINT_STATE: &str = "
57 41 4c 53 54 43 4b 50 02 00 00 00 00 00 00 00
07 00 00 00 00 00 00 00 15 00 00 00 00 00 00 00
ef cd ab 89 67 45 23 01 00 00 00 00 00 00 00 00
73 74 61 74 65 53 bd 9f 26
";

/// Identity file `{ store STORE_ID, flags 0 }`
const IDENTITY: &str = "
57 41 4c 53 54 49 44 4e 03 00 00 00 00 00 00 00
ef cd ab 89 67 45 23 01 00 00 00 00 2a 74 28 58
";

/// Version 2 (still read): identity file `{ store STORE_ID, flags 0 }`
const V2_IDENTITY: &str = "
57 41 4c 53 54 49 44 4e 02 00 00 00 00 00 00 00
ef cd ab 89 67 45 23 01 00 00 00 00 6c 4f 4f 3d
";

/// Schema record `{ codec 1 (evolvable), version 2, name "config", no shape }`; its id
/// is `SCHEMA_RECORD_ID`.
const SCHEMA_RECORD: &str = "
01 01 02 00 00 00 06 00 63 6f 6e 66 69 67 00 00
00 00 00
";

/// The shape (section 5.2) of the README's `struct Config { listen: String, workers: u16 }`
/// and `enum Command { SetListen(String), SetWorkers(u16) }`; its fingerprint (FNV-1a 64)
/// is `SCHEMA_SHAPE_FINGERPRINT`. If this changes, every stored schema id would stop
/// matching: a new shape encoding version is needed.
const SCHEMA_SHAPE: &str = "
01 16 06 43 6f 6e 66 69 67 16 07 43 6f 6d 6d 61
6e 64 02 07 43 6f 6d 6d 61 6e 64 04 02 09 53 65
74 4c 69 73 74 65 6e 01 0f 0a 53 65 74 57 6f 72
6b 65 72 73 01 08 06 43 6f 6e 66 69 67 03 02 06
6c 69 73 74 65 6e 0f 07 77 6f 72 6b 65 72 73 08
";

/// FNV-1a 64 of `SCHEMA_SHAPE`.
const SCHEMA_SHAPE_FINGERPRINT: u64 = 0x26fb_83a3_2e40_9f97;

/// FNV-1a 64 of `SCHEMA_RECORD`.
const SCHEMA_RECORD_ID: u64 = 0x39a5_69eb_b872_fc9b;

/// The schema file of that record: `schema-39a569ebb872fc9b.schema`.
const SCHEMA_FILE: &str = "
57 41 4c 53 54 43 4b 50 03 00 00 00 00 00 00 00
00 00 00 00 00 00 00 00 23 00 00 00 00 00 00 00
ef cd ab 89 67 45 23 01 9b fc 72 b8 eb 69 a5 39
01 01 02 00 00 00 06 00 63 6f 6e 66 69 67 00 00
00 00 00 88 01 9d a3
";

/// Codec (bincode 2, standard config): `RestoreMarker { snapshot: "nightly", snapshot_lsn: 300 }`
const RESTORE_MARKER: &str = "07 6e 69 67 68 74 6c 79 fb 2c 01";

/// Version 1 (appendix A): `{ seq 1, first_lsn 1, torn_window_bytes 4194324, record_payload_max 4194304, flags 0 }`
const V1_SEGMENT_HEADER: &str = "
57 41 4c 53 54 53 45 47 01 00 00 00 00 00 00 00
01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00
14 00 40 00 00 00 00 00 00 00 40 00 62 93 d1 c2
";

/// Version 1: record `{ lsn 1, kind 1, flags 0, payload "hello" }`
const V1_RECORD_HELLO: &str = "
05 00 00 00 35 cc c8 ac 01 00 00 00 00 00 00 00
01 00 00 00 68 65 6c 6c 6f
";

/// Version 1: checkpoint `{ lsn 7, state "state" }`
const V1_CHECKPOINT_STATE: &str = "
57 41 4c 53 54 43 4b 50 01 00 00 00 00 00 00 00
07 00 00 00 00 00 00 00 05 00 00 00 00 00 00 00
73 74 61 74 65 bf b3 8e e1
";

/// Every golden block the spec must contain, by marker name.
const GOLDEN: &[(&str, &str)] = &[
    ("segment-header", SEGMENT_HEADER),
    ("segment-header-preallocated", SEGMENT_HEADER_PREALLOCATED),
    ("record-hello", RECORD_HELLO),
    ("record-group-continues-empty", RECORD_GROUP_CONTINUES_EMPTY),
    ("record-seal", RECORD_SEAL),
    ("checkpoint-state", CHECKPOINT_STATE),
    ("identity", IDENTITY),
    ("schema-record", SCHEMA_RECORD),
    ("schema-shape", SCHEMA_SHAPE),
    ("schema-file", SCHEMA_FILE),
    ("v2-segment-header", V2_SEGMENT_HEADER),
    ("v2-checkpoint-state", V2_CHECKPOINT_STATE),
    ("v2-identity", V2_IDENTITY),
    ("restore-marker", RESTORE_MARKER),
    ("v1-segment-header", V1_SEGMENT_HEADER),
    ("v1-record-hello", V1_RECORD_HELLO),
    ("v1-checkpoint-state", V1_CHECKPOINT_STATE),
];

fn store_id() -> StoreId {
    StoreId::new(STORE_ID).unwrap()
}

// ---------------------------------------------------------------------------------------
// Helpers: hex and an independent, bitwise CRC-32 (no crates)
// ---------------------------------------------------------------------------------------

/// Decodes whitespace-separated hex; panics on anything else.
fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {text:?}"
    );
    let nibble = |d: u8| match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        b'A'..=b'F' => d - b'A' + 10,
        _ => panic!("not a hex digit: {:?} in {text:?}", d as char),
    };
    digits
        .chunks(2)
        .map(|pair| nibble(pair[0]) << 4 | nibble(pair[1]))
        .collect()
}

/// CRC-32 as the spec defines it: reflected polynomial 0xEDB88320, init 0xFFFFFFFF,
/// final XOR 0xFFFFFFFF, one CRC over the concatenation of `parts`.
fn crc32_of(parts: &[&[u8]]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for part in parts {
        for &byte in *part {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
    }
    crc ^ 0xFFFF_FFFF
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Builds a version-2 frame by hand, straight from the spec's table (independent of the
/// encoder).
fn hand_frame(kind: u8, flags: u8, lsn: u64, synced_end: u64, payload: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 32];
    header[0] = 0xA5;
    header[1] = kind;
    header[2] = flags;
    header[3..7].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[7..15].copy_from_slice(&lsn.to_le_bytes());
    header[15..23].copy_from_slice(&synced_end.to_le_bytes());
    header[23..27].copy_from_slice(&crc32_of(&[payload]).to_le_bytes());
    header[31] = 0x5A;
    let sum = crc32_of(&[&header[0..27], &header[31..32]]);
    header[27..31].copy_from_slice(&sum.to_le_bytes());
    let mut frame = header.to_vec();
    frame.extend_from_slice(payload);
    frame
}

// ---------------------------------------------------------------------------------------
// Conventions
// ---------------------------------------------------------------------------------------

#[test]
fn crc32_check_value_matches_spec() {
    assert_eq!(crc32_of(&[b"123456789"]), 0xCBF4_3926);
    // The implementation's CRC (crc32fast, a dependency of the crate) agrees.
    assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    assert_eq!(
        crc32fast::hash(b"123456789"),
        crc32_of(&[b"1234", b"56789"])
    );
}

// ---------------------------------------------------------------------------------------
// Identity file and segment headers
// ---------------------------------------------------------------------------------------

#[test]
fn identity_golden_encode_and_decode() {
    let identity = Identity {
        store_id: store_id(),
        flags: 0,
    };
    let golden = unhex(IDENTITY);
    assert_eq!(golden.len(), IDENTITY_LEN);
    assert_eq!(identity.encode().to_vec(), golden, "encoder output changed");
    assert_eq!(Identity::decode(&golden), Ok(identity));
    assert_eq!(&golden[0..8], b"WALSTIDN");
    assert_eq!(le32(&golden, 8), FORMAT_VERSION);
    assert_eq!(le64(&golden, 16), STORE_ID);
    assert_eq!(le32(&golden, 28), crc32_of(&[&golden[0..28]]));
    assert_eq!(walstate::format::IDENTITY_FILE_NAME, "IDENTITY");
}

#[test]
fn segment_header_golden_encode_and_decode() {
    let header = SegmentHeader::new(1, 1, 4_194_304, 0, store_id(), SCHEMA_ID);
    let golden = unhex(SEGMENT_HEADER);
    assert_eq!(golden.len(), SEGMENT_HEADER_LEN);
    assert_eq!(header.encode().to_vec(), golden, "encoder output changed");
    assert_eq!(SegmentHeader::decode(&golden), Ok(header));
    let defaults = walstate::journal::JournalOptions::default();
    assert_eq!(defaults.record_payload_max, header.record_payload_max);
    let preallocated = SegmentHeader::new(
        2,
        100,
        1024,
        SEGMENT_FLAG_PREALLOCATED,
        store_id(),
        SCHEMA_ID,
    );
    let golden = unhex(SEGMENT_HEADER_PREALLOCATED);
    assert_eq!(
        preallocated.encode().to_vec(),
        golden,
        "encoder output changed"
    );
    assert_eq!(SegmentHeader::decode(&golden), Ok(preallocated));
}

#[test]
fn segment_header_fields_sit_at_documented_offsets() {
    let bytes = unhex(SEGMENT_HEADER_PREALLOCATED);
    assert_eq!(bytes[0..8], SEGMENT_MAGIC);
    assert_eq!(&bytes[0..8], b"WALSTSEG");
    assert_eq!(le32(&bytes, 8), FORMAT_VERSION);
    assert_eq!(le32(&bytes, 12), SEGMENT_FLAG_PREALLOCATED);
    assert_eq!(le64(&bytes, 16), 2);
    assert_eq!(le64(&bytes, 24), 100);
    assert_eq!(le64(&bytes, 32), STORE_ID);
    assert_eq!(le32(&bytes, 40), 1024);
    // The version-1 checksum position: a version-1 reader sees "unsupported version".
    assert_eq!(le32(&bytes, 44), crc32_of(&[&bytes[0..44]]));
    assert_eq!(le64(&bytes, 48), SCHEMA_ID);
    assert_eq!(le32(&bytes, 56), 0);
    assert_eq!(le32(&bytes, 60), crc32_of(&[&bytes[0..44], &bytes[48..60]]));
}

#[test]
fn segment_header_validation_matches_spec() {
    let good = unhex(SEGMENT_HEADER);
    let recrc = |mut bytes: Vec<u8>| {
        let sum = crc32_of(&[&bytes[0..44]]);
        bytes[44..48].copy_from_slice(&sum.to_le_bytes());
        let sum = crc32_of(&[&bytes[0..44], &bytes[48..60]]);
        bytes[60..64].copy_from_slice(&sum.to_le_bytes());
        bytes
    };
    assert_eq!(
        SegmentHeader::decode(&good[..47]),
        Err(SegmentHeaderError::Truncated)
    );
    assert_eq!(
        SegmentHeader::decode(&good[..63]),
        Err(SegmentHeaderError::Truncated)
    );
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    assert_eq!(
        SegmentHeader::decode(&bad_magic),
        Err(SegmentHeaderError::BadMagic)
    );
    for at in [20, 50] {
        let mut bad_crc = good.clone();
        bad_crc[at] ^= 1;
        assert_eq!(
            SegmentHeader::decode(&bad_crc),
            Err(SegmentHeaderError::BadChecksum),
            "byte {at}"
        );
    }
    // Version is checked after the first CRC: with a valid CRC it is unsupported.
    let mut v4 = good.clone();
    v4[8] = 4;
    assert_eq!(
        SegmentHeader::decode(&recrc(v4)),
        Err(SegmentHeaderError::UnsupportedVersion(4))
    );
    for (at, value) in [(12, 0b10u8), (24, 0), (32, 0), (56, 1)] {
        let mut damaged = good.clone();
        if at == 32 {
            damaged[32..40].fill(0);
        } else {
            damaged[at] = value;
        }
        assert!(
            matches!(
                SegmentHeader::decode(&recrc(damaged)),
                Err(SegmentHeaderError::BadField(_))
            ),
            "field at {at}"
        );
    }
    let mut over = good;
    over[40..44].copy_from_slice(&(RECORD_PAYLOAD_MAX_HARD + 1).to_le_bytes());
    assert!(matches!(
        SegmentHeader::decode(&recrc(over)),
        Err(SegmentHeaderError::BadField(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Record frames
// ---------------------------------------------------------------------------------------

#[test]
fn record_golden_encode_and_decode() {
    for (constant, lsn, kind, flags, synced_end, payload) in [
        (RECORD_HELLO, 1, 1, 0, 64, &b"hello"[..]),
        (
            RECORD_GROUP_CONTINUES_EMPTY,
            2,
            1,
            FLAG_GROUP_CONTINUES,
            101,
            b"",
        ),
        (RECORD_SEAL, 3, RECORD_KIND_SEAL, 0, 133, b""),
    ] {
        let golden = unhex(constant);
        let mut encoded = Vec::new();
        encode_record(&mut encoded, lsn, kind, flags, synced_end, payload);
        assert_eq!(encoded, golden, "encoder output changed");
        assert_eq!(golden.len(), RECORD_HEADER_LEN + payload.len());
        assert_eq!(hand_frame(kind, flags, lsn, synced_end, payload), golden);
        let record = decode_record(&golden, 4_194_304).unwrap();
        assert_eq!(
            (
                record.lsn,
                record.kind,
                record.flags,
                record.synced_end,
                record.payload
            ),
            (lsn, kind, flags, synced_end, payload)
        );
        assert_eq!(record.frame_len(), golden.len());
        assert_eq!(record.group_continues(), flags == FLAG_GROUP_CONTINUES);
        assert_eq!(record.is_seal(), kind == RECORD_KIND_SEAL);
        assert_eq!((golden[0], golden[31]), (FRAME_START_MARK, FRAME_END_MARK));
    }
    assert_eq!(
        (FRAME_START_MARK, FRAME_END_MARK, RECORD_KIND_SEAL),
        (0xA5, 0x5A, 3)
    );
    // The three vectors are one valid journal: hello at 64, the group record at 101, the
    // seal at 133 (frontiers: each frame's own offset, everything before it synced).
    let mut journal = unhex(RECORD_HELLO);
    journal.extend(unhex(RECORD_GROUP_CONTINUES_EMPTY));
    assert_eq!(64 + journal.len(), 133);
}

#[test]
fn record_checksums_cover_what_the_spec_says() {
    let frame = unhex(RECORD_HELLO);
    assert_eq!(le32(&frame, 23), crc32_of(&[&frame[32..]]));
    assert_eq!(le32(&frame, 27), crc32_of(&[&frame[0..27], &frame[31..32]]));
    // Every single-bit flip in a frame is detected.
    for bit in 0..frame.len() * 8 {
        let mut damaged = frame.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        assert!(decode_record(&damaged, 1 << 20).is_err(), "bit {bit}");
    }
}

#[test]
fn record_decoding_order_matches_spec() {
    let hello = unhex(RECORD_HELLO);
    // 1. Fewer than 32 bytes: zero header if all zero, else truncated header.
    assert_eq!(decode_record(&[0u8; 31], 1024), Err(FrameError::ZeroHeader));
    assert_eq!(
        decode_record(&hello[..31], 1024),
        Err(FrameError::TruncatedHeader)
    );
    // 2. An all-zero 32-byte header.
    assert_eq!(decode_record(&[0u8; 64], 1024), Err(FrameError::ZeroHeader));
    // 3. Header checksum, before any field is trusted (the length included).
    let mut bad_header = hello.clone();
    bad_header[4] ^= 0x80;
    assert_eq!(
        decode_record(&bad_header, 1024),
        Err(FrameError::BadHeaderChecksum)
    );
    // 4. Marks, kind 0, unknown flags, an LSN above 2^62 (with a valid header checksum).
    let refix = |mut frame: Vec<u8>| {
        let sum = crc32_of(&[&frame[0..27], &frame[31..32]]);
        frame[27..31].copy_from_slice(&sum.to_le_bytes());
        frame
    };
    for (at, value) in [(0, 0xA4u8), (31, 0x5B), (1, 0), (2, 0x02)] {
        let mut frame = hello.clone();
        frame[at] = value;
        assert_eq!(
            decode_record(&refix(frame), 1024),
            Err(FrameError::BadHeaderField),
            "byte {at}"
        );
    }
    assert_eq!(
        decode_record(&hand_frame(1, 0, (1 << 62) + 1, 64, b"x"), 1024),
        Err(FrameError::BadHeaderField)
    );
    // 5. Length over the segment's limit (or the hard limit).
    assert_eq!(
        decode_record(&hello, 4),
        Err(FrameError::LengthOverLimit(5))
    );
    // 6. Length past the end of the available bytes.
    assert_eq!(
        decode_record(&hello[..36], 1024),
        Err(FrameError::TruncatedPayload(5))
    );
    // 7. Payload checksum.
    let mut bad = hello.clone();
    bad[36] ^= 0x20;
    assert_eq!(decode_record(&bad, 1024), Err(FrameError::BadChecksum));
    // Kind 255 is valid framing.
    assert_eq!(
        decode_record(&hand_frame(255, 0, 9, 64, b"x"), 1)
            .unwrap()
            .kind,
        255
    );
}

// ---------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------

#[test]
fn checkpoint_golden_encode_and_decode() {
    let golden = unhex(CHECKPOINT_STATE);
    assert_eq!(
        encode_checkpoint(7, store_id(), SCHEMA_ID, b"state"),
        golden,
        "encoder output changed"
    );
    assert_eq!(
        golden.len(),
        CHECKPOINT_HEADER_LEN + 5 + CHECKPOINT_TRAILER_LEN
    );
    let (header, state) = decode_checkpoint(&golden).unwrap();
    assert_eq!(
        (
            header.version,
            header.lsn,
            header.state_len,
            header.store_id,
            header.schema_id
        ),
        (FORMAT_VERSION, 7, 5, STORE_ID, SCHEMA_ID)
    );
    assert_eq!(state, b"state");
    // Layout: magic, version, flags 0, lsn, body length (ids + state), store id, schema
    // id, state, CRC of everything before it.
    assert_eq!(golden[0..8], CHECKPOINT_MAGIC);
    assert_eq!(&golden[0..8], b"WALSTCKP");
    assert_eq!(le32(&golden, 8), FORMAT_VERSION);
    assert_eq!(le32(&golden, 12), 0);
    assert_eq!(le64(&golden, 24), 16 + 5);
    assert_eq!(le64(&golden, 32), STORE_ID);
    let crc_at = golden.len() - 4;
    assert_eq!(le32(&golden, crc_at), crc32_of(&[&golden[..crc_at]]));
    assert_eq!(
        decode_checkpoint(&golden[..golden.len() - 1]),
        Err(CheckpointError::Truncated)
    );
    let mut longer = golden.clone();
    longer.push(0);
    assert_eq!(
        decode_checkpoint(&longer),
        Err(CheckpointError::TrailingBytes)
    );
    let recrc = |mut bytes: Vec<u8>| {
        let at = bytes.len() - 4;
        let sum = crc32_of(&[&bytes[..at]]);
        bytes[at..].copy_from_slice(&sum.to_le_bytes());
        bytes
    };
    let mut v4 = golden.clone();
    v4[8] = 4;
    assert_eq!(
        decode_checkpoint(&recrc(v4)),
        Err(CheckpointError::UnsupportedVersion(4))
    );
    let mut flagged = golden;
    flagged[12] = 1;
    assert!(matches!(
        decode_checkpoint(&recrc(flagged)),
        Err(CheckpointError::BadField(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Schema records and schema files (section 5.1)
// ---------------------------------------------------------------------------------------

#[test]
fn schema_record_golden_encode_decode_and_id() {
    let record = SchemaRecord {
        codec: 1,
        version: 2,
        name: "config".into(),
        shape: None,
    };
    let golden = unhex(SCHEMA_RECORD);
    assert_eq!(record.encode(), golden, "encoder output changed");
    assert_eq!(SchemaRecord::decode(&golden), Ok(record.clone()));
    assert_eq!(record.id().get(), SCHEMA_RECORD_ID);
    // The id is FNV-1a 64 of the record's bytes, computed here independently.
    let mut fnv: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in &golden {
        fnv = (fnv ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    assert_eq!(fnv, SCHEMA_RECORD_ID);
    // Layout: record version, codec, declared version, name length + name, shape flag,
    // shape length.
    assert_eq!(golden[0], SCHEMA_RECORD_VERSION);
    assert_eq!(golden[1], 1);
    assert_eq!(le32(&golden, 2), 2);
    assert_eq!(u16::from_le_bytes([golden[6], golden[7]]), 6);
    assert_eq!(&golden[8..14], b"config");
    assert_eq!(golden[14], 0);
    assert_eq!(le32(&golden, 15), 0);
    assert_eq!((SCHEMA_NAME_MAX, SCHEMA_SHAPE_MAX), (256, 1 << 20));
    // Validation order: version, lengths, name UTF-8, shape flag, trailing bytes.
    let mut other_version = golden.clone();
    other_version[0] = 2;
    assert_eq!(
        SchemaRecord::decode(&other_version),
        Err(SchemaRecordError::UnsupportedVersion(2))
    );
    let mut bad_flag = golden.clone();
    bad_flag[14] = 2;
    assert!(matches!(
        SchemaRecord::decode(&bad_flag),
        Err(SchemaRecordError::BadField(_))
    ));
    let mut longer = golden.clone();
    longer.push(0);
    assert_eq!(
        SchemaRecord::decode(&longer),
        Err(SchemaRecordError::TrailingBytes)
    );
    assert_eq!(
        SchemaRecord::decode(&golden[..golden.len() - 1]),
        Err(SchemaRecordError::Truncated)
    );
}

#[test]
fn schema_shape_golden_is_what_tracing_the_readme_types_gives() {
    #[derive(serde::Serialize, serde::Deserialize)]
    #[allow(dead_code)]
    struct Config {
        listen: String,
        workers: u16,
    }
    #[derive(serde::Serialize, serde::Deserialize)]
    #[allow(dead_code)]
    enum Command {
        SetListen(String),
        SetWorkers(u16),
    }
    let shape = walstate::schema::trace::<Config, Command>().unwrap();
    let golden = unhex(SCHEMA_SHAPE);
    assert_eq!(
        shape.encode(),
        golden,
        "the canonical shape encoding changed"
    );
    assert_eq!(shape.fingerprint(), SCHEMA_SHAPE_FINGERPRINT);
    assert_eq!(walstate::schema::Shape::decode(&golden), Ok(shape.clone()));
    assert_eq!(
        shape.render(),
        "state: Config\ncommand: Command\n\
         enum Command { 0 SetListen(str), 1 SetWorkers(u16) }\n\
         struct Config { listen: str, workers: u16 }"
    );
    // Layout: version, state (named "Config"), command (named "Command"), two
    // containers in name order, each name then body.
    assert_eq!(golden[0], walstate::schema::shape::SHAPE_ENCODING_VERSION);
    assert_eq!(&golden[1..9], b"\x16\x06Config");
    assert_eq!(&golden[9..18], b"\x16\x07Command");
    assert_eq!(golden[18], 2);
}

#[test]
fn schema_file_golden_is_a_checkpoint_format_file_of_lsn_0() {
    let golden = unhex(SCHEMA_FILE);
    let record = unhex(SCHEMA_RECORD);
    assert_eq!(
        encode_checkpoint(0, store_id(), SCHEMA_RECORD_ID, &record),
        golden,
        "encoder output changed"
    );
    let (header, body) = decode_checkpoint(&golden).unwrap();
    assert_eq!(
        (header.lsn, header.store_id, header.schema_id),
        (0, STORE_ID, SCHEMA_RECORD_ID)
    );
    assert_eq!(body, &record[..]);
}

#[test]
fn version_2_vectors_still_decode_as_files_with_no_schema() {
    let header = SegmentHeader::decode(&unhex(V2_SEGMENT_HEADER)).unwrap();
    assert_eq!(
        (
            header.version,
            header.segment_seq,
            header.store_id,
            header.schema_id
        ),
        (2, 1, STORE_ID, 0)
    );
    let v2_checkpoint = unhex(V2_CHECKPOINT_STATE);
    let (header, state) = decode_checkpoint(&v2_checkpoint).unwrap();
    assert_eq!(
        (header.version, header.lsn, header.schema_id, state),
        (2, 7, 0, &b"state"[..])
    );
    assert_eq!(
        Identity::decode(&unhex(V2_IDENTITY)),
        Ok(Identity {
            store_id: store_id(),
            flags: 0
        })
    );
}

// ---------------------------------------------------------------------------------------
// Version 1 (appendix A): still read
// ---------------------------------------------------------------------------------------

#[test]
fn v1_vectors_still_decode_and_encode() {
    let golden = unhex(V1_SEGMENT_HEADER);
    let header = SegmentHeader::decode(&golden).unwrap();
    assert_eq!(
        (
            header.version,
            header.segment_seq,
            header.first_lsn,
            header.torn_window_bytes,
            header.store_id
        ),
        (1, 1, 1, 4_194_324, 0)
    );
    assert_eq!(v1::encode_segment_header(&header).to_vec(), golden);
    let record = unhex(V1_RECORD_HELLO);
    let view = v1::decode_record(&record, 1024).unwrap();
    assert_eq!((view.lsn, view.kind, view.payload), (1, 1, &b"hello"[..]));
    let mut encoded = Vec::new();
    v1::encode_record(&mut encoded, 1, 1, 0, b"hello");
    assert_eq!(encoded, record);
    assert_eq!(le32(&record, 4), crc32_of(&[&record[0..4], &record[8..]]));
    let checkpoint = unhex(V1_CHECKPOINT_STATE);
    let (header, state) = decode_checkpoint(&checkpoint).unwrap();
    assert_eq!((header.version, header.lsn, state), (1, 7, &b"state"[..]));
    assert_eq!(v1::encode_checkpoint(7, b"state"), checkpoint);
    assert_eq!(
        (v1::SEGMENT_HEADER_LEN_V1, v1::RECORD_HEADER_LEN_V1),
        (48, 20)
    );
}

// ---------------------------------------------------------------------------------------
// Payload codec example, file names, constants and limits
// ---------------------------------------------------------------------------------------

#[test]
fn restore_marker_payload_golden_encode_and_decode() {
    use walstate::format::{RECORD_KIND_COMMAND, RECORD_KIND_RESTORE, RestoreMarker};
    assert_eq!((RECORD_KIND_COMMAND, RECORD_KIND_RESTORE), (1, 2));
    let marker = RestoreMarker {
        snapshot: "nightly".into(),
        snapshot_lsn: 300,
    };
    let golden = unhex(RESTORE_MARKER);
    assert_eq!(
        walstate::codec::encode(&marker).unwrap(),
        golden,
        "codec output changed"
    );
    assert_eq!(
        walstate::codec::decode::<RestoreMarker>(&golden).unwrap(),
        marker
    );
}

#[test]
fn file_names_and_constants_match_spec() {
    assert_eq!(FORMAT_VERSION, 3);
    assert_eq!(walstate::format::FORMAT_VERSION_V2, 2);
    assert_eq!(
        walstate::format::schema_file_name(SchemaId::new(SCHEMA_RECORD_ID).unwrap()),
        "schema-39a569ebb872fc9b.schema"
    );
    assert_eq!(
        walstate::format::parse_schema_file_name("schema-39a569ebb872fc9b.schema"),
        SchemaId::new(SCHEMA_RECORD_ID)
    );
    for bad in [
        "schema-39A569EBB872FC9B.schema",
        "schema-39a569ebb872fc9.schema",
        "schema-0000000000000000.schema",
        "schema-39a569ebb872fc9b.schema.tmp",
    ] {
        assert_eq!(walstate::format::parse_schema_file_name(bad), None, "{bad}");
    }
    assert_eq!(SEGMENT_HEADER_LEN, 64);
    assert_eq!(RECORD_HEADER_LEN, 32);
    assert_eq!((CHECKPOINT_HEADER_LEN, CHECKPOINT_TRAILER_LEN), (48, 4));
    assert_eq!(RECORD_PAYLOAD_MAX_HARD, 67_108_864);
    assert_eq!(SEGMENT_FLAG_PREALLOCATED, 1);
    assert_eq!(walstate::format::SECTOR_BYTES, 512);
    assert_eq!(segment_file_name(12), "wal-00000000000000000012.seg");
    assert_eq!(
        checkpoint_file_name(7),
        "checkpoint-00000000000000000007.ckpt"
    );
    assert_eq!(restore_file_name(7), "restore-00000000000000000007.ckpt");
    assert_eq!(
        parse_segment_file_name("wal-00000000000000000012.seg"),
        Some(12)
    );
    assert_eq!(parse_segment_file_name("wal-12.seg"), None);
    assert_eq!(
        parse_segment_file_name("wal-00000000000000000012.seg.tmp"),
        None
    );
    assert_eq!(
        parse_checkpoint_file_name("checkpoint-0000000000000000000x.ckpt"),
        None
    );
    assert_eq!(walstate::lock::LOCK_FILE_NAME, "LOCK");
    assert_eq!(walstate::checkpoint::SNAPSHOT_DIR_NAME, "snapshots");
    assert_eq!(walstate::recovery::QUARANTINE_DIR_NAME, "quarantine");
    assert_eq!(
        walstate::checkpoint::snapshot_file_name("nightly"),
        "nightly.ckpt"
    );
}

#[test]
fn limits_match_spec() {
    use walstate::journal::JournalOptions;
    let ok = |o: JournalOptions| o.validate().is_ok();
    let base = JournalOptions::default();
    assert_eq!(base.record_payload_max, 4 << 20);
    assert_eq!(base.segment_size_bytes, 64 << 20);
    assert_eq!(base.unsynced_bytes_max, 4 << 20);
    for (payload, valid) in [
        (0, false),
        (1, true),
        (64 << 20, true),
        ((64 << 20) + 1, false),
    ] {
        assert_eq!(
            ok(JournalOptions {
                record_payload_max: payload,
                ..base.clone()
            }),
            valid,
            "payload {payload}"
        );
    }
    for (size, valid) in [
        (4095, false),
        (4096, true),
        (4 << 30, true),
        ((4 << 30) + 1, false),
    ] {
        assert_eq!(
            ok(JournalOptions {
                segment_size_bytes: size,
                ..base.clone()
            }),
            valid,
            "segment {size}"
        );
    }
    for (bytes, valid) in [
        (4095, false),
        (4096, true),
        (256 << 20, true),
        ((256 << 20) + 1, false),
    ] {
        assert_eq!(
            ok(JournalOptions {
                unsynced_bytes_max: bytes,
                ..base.clone()
            }),
            valid,
            "unsynced {bytes}"
        );
    }
    assert_eq!(walstate::CHECKPOINTS_RETAINED_MAX, 16);
    for (count, valid) in [(0, false), (1, true), (16, true), (17, false)] {
        assert_eq!(
            walstate::Options::default()
                .checkpoints_retained(count)
                .validate()
                .is_ok(),
            valid
        );
    }
    use walstate::checkpoint::{SNAPSHOT_NAME_MAX, validate_snapshot_name};
    assert_eq!(SNAPSHOT_NAME_MAX, 64);
    for name in ["a", "Nightly-2024.01_x", &"x".repeat(64)] {
        assert!(validate_snapshot_name(name).is_ok(), "{name}");
    }
    for name in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
        assert!(validate_snapshot_name(name).is_err(), "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// The spec itself
// ---------------------------------------------------------------------------------------

/// The `<!-- golden: NAME -->` + ```hex blocks of wal-format.md, in order.
fn spec_blocks() -> Vec<(String, Vec<u8>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/wal-format.md");
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("read {path}: {err}"));
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- golden:")
            .and_then(|rest| rest.strip_suffix("-->"))
        else {
            continue;
        };
        let name = name.trim().to_owned();
        let fence = lines.by_ref().find(|l| !l.trim().is_empty());
        assert_eq!(
            fence.map(str::trim),
            Some("```hex"),
            "marker {name:?} must be followed by a ```hex block"
        );
        let mut hex = String::new();
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("unterminated hex block {name:?}"));
            if line.trim() == "```" {
                break;
            }
            hex.push_str(line);
            hex.push('\n');
        }
        blocks.push((name, unhex(&hex)));
    }
    blocks
}

#[test]
fn spec_hex_blocks_equal_golden_constants() {
    let blocks = spec_blocks();
    let mut names: Vec<&str> = blocks.iter().map(|(name, _)| name.as_str()).collect();
    names.sort_unstable();
    let mut expected: Vec<&str> = GOLDEN.iter().map(|(name, _)| *name).collect();
    expected.sort_unstable();
    assert_eq!(
        names, expected,
        "golden blocks in wal-format.md differ from this test's list"
    );
    for (name, constant) in GOLDEN {
        let (_, bytes) = blocks.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(
            bytes,
            &unhex(constant),
            "wal-format.md block {name:?} drifted"
        );
    }
}

/// The limits table of the spec states the defaults the code has (it once said 1 MiB
/// for `unsynced_bytes_max` while the code used 4 MiB).
#[test]
fn spec_limits_table_states_the_code_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/wal-format.md");
    let text = std::fs::read_to_string(path).unwrap();
    let row = |name: &str| {
        text.lines()
            .find(|line| line.starts_with(&format!("| `{name}`")))
            .unwrap_or_else(|| panic!("no limits row for {name}"))
            .to_owned()
    };
    let with_commas = |n: u64| {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    let defaults = walstate::journal::JournalOptions::default();
    for (name, value) in [
        ("unsynced_bytes_max", defaults.unsynced_bytes_max),
        ("record_payload_max", u64::from(defaults.record_payload_max)),
        ("segment_size_bytes", defaults.segment_size_bytes),
        ("write_buffer_bytes", defaults.write_buffer_bytes),
    ] {
        let line = row(name);
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert!(
            cells[3].starts_with(&with_commas(value)),
            "wal-format.md says the default {name} is {:?}, the code has {value}",
            cells[3]
        );
    }
}
