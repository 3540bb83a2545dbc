//! Golden vectors for `wal-format.md`.
//!
//! The hex below is the frozen output of the encoders in `walstate::format`. Each test
//! (a) encodes a value and compares with the frozen bytes, (b) decodes the frozen bytes
//! and checks the fields. A hand-written CRC-32 checks that the checksums cover exactly
//! the bytes the spec says, and the hex blocks are parsed out of `wal-format.md` itself
//! and compared with the constants here, so the spec, this file and the code cannot
//! drift apart. If a test here fails after a layout change: the change needs a
//! `FORMAT_VERSION` bump and new vectors (see "Versioning" in the spec).

use walstate::format::{
    CHECKPOINT_HEADER_LEN, CHECKPOINT_MAGIC, CHECKPOINT_TRAILER_LEN, CheckpointError,
    FLAG_GROUP_CONTINUES, FORMAT_VERSION, FrameError, RECORD_HEADER_LEN, RECORD_PAYLOAD_MAX_HARD,
    SEGMENT_FLAG_PREALLOCATED, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SegmentHeader,
    SegmentHeaderError, checkpoint_file_name, decode_checkpoint, decode_record, encode_checkpoint,
    encode_record, parse_checkpoint_file_name, parse_segment_file_name, restore_file_name,
    segment_file_name,
};

// ---------------------------------------------------------------------------------------
// The frozen vectors (identical to the ```hex blocks in wal-format.md)
// ---------------------------------------------------------------------------------------

/// `{ seq 1, first_lsn 1, torn_window_bytes 4194324, record_payload_max 4194304, flags 0 }`
const SEGMENT_HEADER: &str = "
57 41 4c 53 54 53 45 47 01 00 00 00 00 00 00 00
01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00
14 00 40 00 00 00 00 00 00 00 40 00 62 93 d1 c2
";

/// `{ seq 2, first_lsn 100, torn_window_bytes 4096, record_payload_max 1024, PREALLOCATED }`
const SEGMENT_HEADER_PREALLOCATED: &str = "
57 41 4c 53 54 53 45 47 01 00 00 00 01 00 00 00
02 00 00 00 00 00 00 00 64 00 00 00 00 00 00 00
00 10 00 00 00 00 00 00 00 04 00 00 dc 43 79 fd
";

/// `{ lsn 1, kind 1, flags 0, payload "hello" }`
const RECORD_HELLO: &str = "
05 00 00 00 35 cc c8 ac 01 00 00 00 00 00 00 00
01 00 00 00 68 65 6c 6c 6f
";

/// `{ lsn 2, kind 1, flags FLAG_GROUP_CONTINUES, payload "" }`
const RECORD_GROUP_CONTINUES_EMPTY: &str = "
00 00 00 00 98 d8 fe b9 02 00 00 00 00 00 00 00
01 01 00 00
";

/// Checkpoint `{ lsn 7, state "state" }`
const CHECKPOINT_STATE: &str = "
57 41 4c 53 54 43 4b 50 01 00 00 00 00 00 00 00
07 00 00 00 00 00 00 00 05 00 00 00 00 00 00 00
73 74 61 74 65 bf b3 8e e1
";

/// Codec (bincode 2, standard config): `RestoreMarker { snapshot: "nightly", snapshot_lsn: 300 }`
const RESTORE_MARKER: &str = "07 6e 69 67 68 74 6c 79 fb 2c 01";

/// Every golden block the spec must contain, by marker name.
const GOLDEN: &[(&str, &str)] = &[
    ("segment-header", SEGMENT_HEADER),
    ("segment-header-preallocated", SEGMENT_HEADER_PREALLOCATED),
    ("record-hello", RECORD_HELLO),
    ("record-group-continues-empty", RECORD_GROUP_CONTINUES_EMPTY),
    ("checkpoint-state", CHECKPOINT_STATE),
    ("restore-marker", RESTORE_MARKER),
];

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

/// Builds a frame by hand, straight from the spec's table (independent of the encoder).
fn hand_frame(
    length: u32,
    lsn: u64,
    kind: u8,
    flags: u8,
    reserved: [u8; 2],
    payload: &[u8],
) -> Vec<u8> {
    let mut header = [0u8; 20];
    header[0..4].copy_from_slice(&length.to_le_bytes());
    header[8..16].copy_from_slice(&lsn.to_le_bytes());
    header[16] = kind;
    header[17] = flags;
    header[18..20].copy_from_slice(&reserved);
    let sum = crc32_of(&[&header[0..4], &header[8..20], payload]);
    header[4..8].copy_from_slice(&sum.to_le_bytes());
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
// Segment headers
// ---------------------------------------------------------------------------------------

#[test]
fn segment_header_golden_encode_and_decode() {
    let header = SegmentHeader {
        segment_seq: 1,
        first_lsn: 1,
        torn_window_bytes: 4_194_324,
        record_payload_max: 4_194_304,
        flags: 0,
    };
    let golden = unhex(SEGMENT_HEADER);
    assert_eq!(golden.len(), SEGMENT_HEADER_LEN);
    assert_eq!(header.encode().to_vec(), golden, "encoder output changed");
    assert_eq!(SegmentHeader::decode(&golden), Ok(header));
    // The defaults produce exactly this window and limit.
    let defaults = walstate::journal::JournalOptions::default();
    assert_eq!(defaults.torn_window_bytes(), header.torn_window_bytes);
    assert_eq!(defaults.record_payload_max, header.record_payload_max);
}

#[test]
fn preallocated_segment_header_golden_encode_and_decode() {
    let header = SegmentHeader {
        segment_seq: 2,
        first_lsn: 100,
        torn_window_bytes: 4096,
        record_payload_max: 1024,
        flags: SEGMENT_FLAG_PREALLOCATED,
    };
    let golden = unhex(SEGMENT_HEADER_PREALLOCATED);
    assert_eq!(header.encode().to_vec(), golden, "encoder output changed");
    let decoded = SegmentHeader::decode(&golden).unwrap();
    assert_eq!(decoded, header);
    assert_eq!(
        decoded.flags & SEGMENT_FLAG_PREALLOCATED,
        SEGMENT_FLAG_PREALLOCATED
    );
}

#[test]
fn segment_header_fields_sit_at_documented_offsets() {
    let bytes = unhex(SEGMENT_HEADER_PREALLOCATED);
    assert_eq!(bytes[0..8], SEGMENT_MAGIC);
    assert_eq!(&bytes[0..8], b"WALSTSEG");
    assert_eq!(le32(&bytes, 8), FORMAT_VERSION);
    assert_eq!(le32(&bytes, 12), SEGMENT_FLAG_PREALLOCATED);
    assert_eq!(u64::from_le_bytes(bytes[16..24].try_into().unwrap()), 2);
    assert_eq!(u64::from_le_bytes(bytes[24..32].try_into().unwrap()), 100);
    assert_eq!(u64::from_le_bytes(bytes[32..40].try_into().unwrap()), 4096);
    assert_eq!(le32(&bytes, 40), 1024);
    assert_eq!(le32(&bytes, 44), crc32_of(&[&bytes[0..44]]));
}

#[test]
fn segment_header_validation_matches_spec() {
    let good = unhex(SEGMENT_HEADER);
    let recrc = |mut bytes: Vec<u8>| {
        let sum = crc32_of(&[&bytes[0..44]]);
        bytes[44..48].copy_from_slice(&sum.to_le_bytes());
        bytes
    };
    assert_eq!(
        SegmentHeader::decode(&good[..47]),
        Err(SegmentHeaderError::Truncated)
    );
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    assert_eq!(
        SegmentHeader::decode(&bad_magic),
        Err(SegmentHeaderError::BadMagic)
    );
    let mut bad_crc = good.clone();
    bad_crc[20] ^= 1;
    assert_eq!(
        SegmentHeader::decode(&bad_crc),
        Err(SegmentHeaderError::BadChecksum)
    );
    // Version is checked after the CRC: with a valid CRC it is an unsupported version.
    let mut v2 = good.clone();
    v2[8] = 2;
    assert_eq!(
        SegmentHeader::decode(&recrc(v2)),
        Err(SegmentHeaderError::UnsupportedVersion(2))
    );
    let mut flags = good.clone();
    flags[12] = 0b10;
    assert!(matches!(
        SegmentHeader::decode(&recrc(flags)),
        Err(SegmentHeaderError::BadField(_))
    ));
    let mut lsn0 = good.clone();
    lsn0[24] = 0;
    assert!(matches!(
        SegmentHeader::decode(&recrc(lsn0)),
        Err(SegmentHeaderError::BadField(_))
    ));
    let mut over = good.clone();
    over[40..44].copy_from_slice(&(RECORD_PAYLOAD_MAX_HARD + 1).to_le_bytes());
    assert!(matches!(
        SegmentHeader::decode(&recrc(over)),
        Err(SegmentHeaderError::BadField(_))
    ));
    // torn_window_bytes must be at least record_payload_max + 20.
    let mut small_window = good.clone();
    small_window[32..40].copy_from_slice(&(4_194_304u64 + 19).to_le_bytes());
    assert!(matches!(
        SegmentHeader::decode(&recrc(small_window)),
        Err(SegmentHeaderError::BadField(_))
    ));
    let mut exact_window = good;
    exact_window[32..40].copy_from_slice(&(4_194_304u64 + 20).to_le_bytes());
    assert!(SegmentHeader::decode(&recrc(exact_window)).is_ok());
}

// ---------------------------------------------------------------------------------------
// Record frames
// ---------------------------------------------------------------------------------------

#[test]
fn record_hello_golden_encode_and_decode() {
    let golden = unhex(RECORD_HELLO);
    let mut encoded = Vec::new();
    encode_record(&mut encoded, 1, 1, 0, b"hello");
    assert_eq!(encoded, golden, "encoder output changed");
    assert_eq!(golden.len(), RECORD_HEADER_LEN + 5);
    let record = decode_record(&golden, 4_194_304).unwrap();
    assert_eq!(record.lsn, 1);
    assert_eq!(record.kind, 1);
    assert_eq!(record.flags, 0);
    assert_eq!(record.payload, b"hello");
    assert!(!record.group_continues());
    assert_eq!(record.frame_len(), golden.len());
    assert_eq!(hand_frame(5, 1, 1, 0, [0, 0], b"hello"), golden);
}

#[test]
fn record_group_continues_empty_golden_encode_and_decode() {
    let golden = unhex(RECORD_GROUP_CONTINUES_EMPTY);
    let mut encoded = Vec::new();
    encode_record(&mut encoded, 2, 1, FLAG_GROUP_CONTINUES, b"");
    assert_eq!(encoded, golden, "encoder output changed");
    assert_eq!(golden.len(), RECORD_HEADER_LEN);
    let record = decode_record(&golden, 1).unwrap();
    assert_eq!(record.lsn, 2);
    assert_eq!(record.kind, 1);
    assert_eq!(record.flags, FLAG_GROUP_CONTINUES);
    assert_eq!(FLAG_GROUP_CONTINUES, 0x01);
    assert!(record.group_continues());
    assert!(record.payload.is_empty());
    assert_eq!(hand_frame(0, 2, 1, 0x01, [0, 0], b""), golden);
}

#[test]
fn record_checksum_covers_length_header_tail_and_payload() {
    let frame = unhex(RECORD_HELLO);
    // Exactly bytes 0..4, then 8..20, then the payload: everything but the field itself.
    assert_eq!(
        le32(&frame, 4),
        crc32_of(&[&frame[0..4], &frame[8..20], &frame[20..]])
    );
    assert_ne!(le32(&frame, 4), crc32_of(&[&frame[8..20], &frame[20..]]));
    let empty = unhex(RECORD_GROUP_CONTINUES_EMPTY);
    assert_eq!(le32(&empty, 4), crc32_of(&[&empty[0..4], &empty[8..20]]));
    // Every single-bit flip in a frame is detected (the length is covered).
    for bit in 0..frame.len() * 8 {
        let mut damaged = frame.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        assert!(decode_record(&damaged, 1 << 20).is_err(), "bit {bit}");
    }
}

#[test]
fn record_decoding_order_matches_spec() {
    let hello = unhex(RECORD_HELLO);
    // 1. Fewer than 20 bytes: zero header if all zero, else truncated header.
    assert_eq!(decode_record(&[0u8; 19], 1024), Err(FrameError::ZeroHeader));
    assert_eq!(
        decode_record(&hello[..19], 1024),
        Err(FrameError::TruncatedHeader)
    );
    // 2. An all-zero 20-byte header.
    assert_eq!(decode_record(&[0u8; 64], 1024), Err(FrameError::ZeroHeader));
    // 3. Length over the segment's limit (or the hard limit), before anything else.
    assert_eq!(
        decode_record(&hello, 4),
        Err(FrameError::LengthOverLimit(5))
    );
    let mut huge = hello.clone();
    huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        decode_record(&huge, u32::MAX),
        Err(FrameError::LengthOverLimit(u32::MAX))
    );
    // 4. Length past the end of the available bytes.
    assert_eq!(
        decode_record(&hello[..24], 1024),
        Err(FrameError::TruncatedPayload(5))
    );
    // 5. Checksum.
    let mut bad = hello.clone();
    bad[24] ^= 0x20;
    assert_eq!(decode_record(&bad, 1024), Err(FrameError::BadChecksum));
    // 6. Valid checksum but kind 0, unknown flag or non-zero reserved bytes.
    for frame in [
        hand_frame(5, 1, 0, 0, [0, 0], b"hello"),
        hand_frame(5, 1, 1, 0x02, [0, 0], b"hello"),
        hand_frame(5, 1, 1, 0, [0, 1], b"hello"),
        hand_frame(5, 1, 1, 0, [1, 0], b"hello"),
    ] {
        assert_eq!(decode_record(&frame, 1024), Err(FrameError::BadHeaderField));
    }
    // Kind 255 is valid framing.
    assert_eq!(
        decode_record(&hand_frame(1, 9, 255, 0, [0, 0], b"x"), 1)
            .unwrap()
            .kind,
        255
    );
    // Frames are packed back to back.
    let mut two = hello.clone();
    two.extend_from_slice(&unhex(RECORD_GROUP_CONTINUES_EMPTY));
    let first = decode_record(&two, 1024).unwrap();
    assert_eq!(
        decode_record(&two[first.frame_len()..], 1024).unwrap().lsn,
        2
    );
}

// ---------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------

#[test]
fn checkpoint_golden_encode_and_decode() {
    let golden = unhex(CHECKPOINT_STATE);
    assert_eq!(
        encode_checkpoint(7, b"state"),
        golden,
        "encoder output changed"
    );
    assert_eq!(
        golden.len(),
        CHECKPOINT_HEADER_LEN + 5 + CHECKPOINT_TRAILER_LEN
    );
    let (header, state) = decode_checkpoint(&golden).unwrap();
    assert_eq!(header.lsn, 7);
    assert_eq!(header.state_len, 5);
    assert_eq!(state, b"state");
    // Layout: magic, version, flags 0, lsn, state_len, state, CRC of everything before it.
    assert_eq!(golden[0..8], CHECKPOINT_MAGIC);
    assert_eq!(&golden[0..8], b"WALSTCKP");
    assert_eq!(le32(&golden, 8), FORMAT_VERSION);
    assert_eq!(le32(&golden, 12), 0);
    let crc_at = golden.len() - 4;
    assert_eq!(le32(&golden, crc_at), crc32_of(&[&golden[..crc_at]]));
    // Exact length: one byte more or less is rejected.
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
    // Version after CRC; non-zero flags rejected.
    let recrc = |mut bytes: Vec<u8>| {
        let at = bytes.len() - 4;
        let sum = crc32_of(&[&bytes[..at]]);
        bytes[at..].copy_from_slice(&sum.to_le_bytes());
        bytes
    };
    let mut v2 = golden.clone();
    v2[8] = 2;
    assert_eq!(
        decode_checkpoint(&recrc(v2)),
        Err(CheckpointError::UnsupportedVersion(2))
    );
    let mut flagged = golden;
    flagged[12] = 1;
    assert!(matches!(
        decode_checkpoint(&recrc(flagged)),
        Err(CheckpointError::BadField(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Payload codec example, file names, constants and limits
// ---------------------------------------------------------------------------------------

#[test]
fn restore_marker_payload_golden_encode_and_decode() {
    use walstate::recovery::{RECORD_KIND_COMMAND, RECORD_KIND_RESTORE, RestoreMarker};
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
    assert_eq!(FORMAT_VERSION, 1);
    assert_eq!(SEGMENT_HEADER_LEN, 48);
    assert_eq!(RECORD_HEADER_LEN, 20);
    assert_eq!((CHECKPOINT_HEADER_LEN, CHECKPOINT_TRAILER_LEN), (32, 4));
    assert_eq!(RECORD_PAYLOAD_MAX_HARD, 67_108_864);
    assert_eq!(SEGMENT_FLAG_PREALLOCATED, 1);
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
    assert_eq!(base.torn_window_bytes(), 4_194_324);
    // torn_window_bytes = max(unsynced_bytes_max, record_payload_max + 20)
    let window = |unsynced, payload| {
        JournalOptions {
            unsynced_bytes_max: unsynced,
            record_payload_max: payload,
            ..JournalOptions::default()
        }
        .torn_window_bytes()
    };
    assert_eq!(window(4096, 1024), 4096);
    assert_eq!(window(4096, 4096), 4116);
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
