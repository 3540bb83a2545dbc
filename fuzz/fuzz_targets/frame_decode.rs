//! Every on-disk decoder on arbitrary bytes: record frames (format versions 2 and 1),
//! segment headers, checkpoint files, the identity file, the lost-write shape test, and
//! the codec for `KvCommand` and `KvState`.
//!
//! Input: 4 bytes of record payload limit (little endian), then the bytes to decode.
//! Asserts: no decoder panics; every error is the one its documented precondition
//! names; a successful decode of a frame, header or checkpoint re-encodes to exactly the
//! bytes it came from; a single flipped bit in a decoded frame (outside its length
//! field) is always rejected; codec values re-encode to something that decodes to the
//! same value and is never longer than the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use walstate::format::{
    self, CheckpointError, FrameError, Identity, RECORD_HEADER_LEN, RECORD_PAYLOAD_MAX_HARD,
    SEGMENT_HEADER_LEN, SegmentHeader, SegmentHeaderError, StoreId, v1,
};
use walstate::{KvCommand, KvState, codec};

fuzz_target!(|data: &[u8]| {
    let (limit, bytes) = data.split_at(data.len().min(4));
    let mut word = [0u8; 4];
    word[..limit.len()].copy_from_slice(limit);
    let payload_max = u32::from_le_bytes(word);

    check_record(bytes, payload_max);
    // The scan reads records at every offset of a segment: try a few more.
    for start in [1, 7, RECORD_HEADER_LEN] {
        if let Some(rest) = bytes.get(start..) {
            check_record(rest, payload_max);
        }
    }
    check_v1_record(bytes, payload_max);
    check_segment_header(bytes);
    check_checkpoint(bytes);
    check_identity(bytes);
    let half = bytes.len() / 2;
    let _ = format::has_lost_write_shape(
        bytes,
        half,
        bytes.len() + usize::from(bytes.first().copied().unwrap_or(0) & 1),
    );
    check_one_bit_tests(bytes);
    check_codec::<KvCommand>(bytes);
    check_codec::<KvState>(bytes);
    // Payload position inside a record or checkpoint, after the framing bytes.
    for start in [RECORD_HEADER_LEN, format::CHECKPOINT_HEADER_LEN] {
        if let Some(rest) = bytes.get(start..) {
            check_codec::<KvCommand>(rest);
            check_codec::<KvState>(rest);
        }
    }
});

fn check_record(bytes: &[u8], payload_max: u32) {
    match format::decode_record(bytes, payload_max) {
        Ok(view) => {
            let frame_len = view.frame_len();
            assert!(frame_len <= bytes.len(), "frame longer than the input");
            assert!(view.payload.len() as u64 <= u64::from(payload_max));
            assert!(view.payload.len() as u64 <= u64::from(RECORD_PAYLOAD_MAX_HARD));
            assert_ne!(view.kind, 0, "kind 0 accepted");
            assert_eq!(
                view.flags & !format::FLAG_GROUP_CONTINUES,
                0,
                "unknown flags accepted"
            );
            let mut again = Vec::new();
            format::encode_record(
                &mut again,
                view.lsn,
                view.kind,
                view.flags,
                view.synced_end,
                view.payload,
            );
            assert_eq!(
                again,
                &bytes[..frame_len],
                "decoded record does not re-encode to its bytes"
            );
            // A single bit flip anywhere must always be detected: the header CRC covers
            // the length before it is used, the payload CRC the rest.
            let pick = bytes.iter().fold(0usize, |h, &b| {
                h.wrapping_mul(31).wrapping_add(usize::from(b))
            });
            let bit = pick % (frame_len * 8);
            let mut damaged = bytes[..frame_len].to_vec();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                format::decode_record(&damaged, payload_max).is_err(),
                "flipped bit {bit} of a valid frame was accepted"
            );
        }
        Err(FrameError::ZeroHeader) => {
            let head = &bytes[..bytes.len().min(RECORD_HEADER_LEN)];
            assert!(head.iter().all(|&b| b == 0), "ZeroHeader on non-zero bytes");
        }
        Err(FrameError::TruncatedHeader) => assert!(bytes.len() < RECORD_HEADER_LEN),
        Err(FrameError::LengthOverLimit(len)) => {
            assert!(len > payload_max.min(RECORD_PAYLOAD_MAX_HARD));
        }
        Err(FrameError::TruncatedPayload(len)) => {
            assert!(RECORD_HEADER_LEN + len as usize > bytes.len());
        }
        Err(
            FrameError::BadChecksum | FrameError::BadHeaderField | FrameError::BadHeaderChecksum,
        ) => {
            assert!(bytes.len() >= RECORD_HEADER_LEN);
        }
    }
}

fn check_v1_record(bytes: &[u8], payload_max: u32) {
    if let Ok(view) = v1::decode_record(bytes, payload_max) {
        let mut again = Vec::new();
        v1::encode_record(&mut again, view.lsn, view.kind, view.flags, view.payload);
        assert_eq!(
            again,
            &bytes[..view.frame_len()],
            "decoded version-1 record does not re-encode to its bytes"
        );
    }
}

fn check_identity(bytes: &[u8]) {
    if let Ok(identity) = Identity::decode(bytes) {
        let encoded = identity.encode();
        if bytes[8..12] == format::FORMAT_VERSION.to_le_bytes() {
            assert_eq!(&encoded[..], bytes, "identity does not re-encode");
        } else {
            // Version 2 is read, and rewritten in the current version.
            assert_eq!(Identity::decode(&encoded), Ok(identity));
        }
    }
}

fn check_segment_header(bytes: &[u8]) {
    match SegmentHeader::decode(bytes) {
        Ok(header) => {
            let encoded = if header.is_v1() {
                v1::encode_segment_header(&header).to_vec()
            } else if header.version == format::FORMAT_VERSION_V2 {
                // Version 2 is read, and written in the current version only.
                let current = SegmentHeader {
                    version: format::FORMAT_VERSION,
                    ..header
                };
                assert_eq!(SegmentHeader::decode(&current.encode()), Ok(current));
                bytes[..header.data_start()].to_vec()
            } else {
                header.encode().to_vec()
            };
            assert_eq!(
                encoded,
                &bytes[..header.data_start()],
                "decoded segment header does not re-encode to its bytes"
            );
            assert_ne!(header.first_lsn, 0);
            assert!(header.record_payload_max >= 1);
            assert!(header.record_payload_max <= RECORD_PAYLOAD_MAX_HARD);
            if header.is_v1() {
                assert!(
                    header.torn_window_bytes
                        >= u64::from(header.record_payload_max) + v1::RECORD_HEADER_LEN_V1 as u64
                );
            } else {
                assert_ne!(header.store_id, 0);
            }
            assert_eq!(header.flags & !format::SEGMENT_FLAG_PREALLOCATED, 0);
        }
        Err(SegmentHeaderError::Truncated) => assert!(bytes.len() < SEGMENT_HEADER_LEN),
        Err(_) => assert!(bytes.len() >= v1::SEGMENT_HEADER_LEN_V1),
    }
}

fn check_checkpoint(bytes: &[u8]) {
    match format::decode_checkpoint(bytes) {
        Ok((header, state)) => {
            assert_eq!(header.state_len, state.len() as u64);
            let encoded = match StoreId::new(header.store_id) {
                None => v1::encode_checkpoint(header.lsn, state),
                // This build writes the newest version only.
                Some(_) if header.version != format::FORMAT_VERSION => bytes.to_vec(),
                Some(id) => format::encode_checkpoint(header.lsn, id, header.schema_id, state),
            };
            assert_eq!(
                encoded, bytes,
                "decoded checkpoint does not re-encode to its bytes"
            );
        }
        Err(CheckpointError::TrailingBytes) => {
            // The part every version shares: 32 header bytes and the 4-byte trailer.
            assert!(bytes.len() > 32 + format::CHECKPOINT_TRAILER_LEN);
        }
        Err(_) => {}
    }
}

fn check_codec<T>(bytes: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(value) = codec::decode::<T>(bytes) else {
        return;
    };
    let again = codec::encode(&value).expect("a decoded value must encode");
    // Bincode accepts over-long varints, so the bytes may differ, but only by being
    // shorter; the value must be the same.
    assert!(
        again == bytes || again.len() < bytes.len(),
        "re-encoding a decoded {} grew it: {} -> {} bytes",
        std::any::type_name::<T>(),
        bytes.len(),
        again.len()
    );
    let back = codec::decode::<T>(&again).expect("re-encoded value must decode");
    assert_eq!(back, value, "codec round trip changed the value");
}

/// The earlier-version shape and the single-flipped-bit tests of section 7.3 never panic
/// (also on ranges that are empty, inverted or past the end), and one flipped bit of a
/// payload is always recognised as one.
fn check_one_bit_tests(bytes: &[u8]) {
    let half = bytes.len() / 2;
    let _ = format::has_earlier_sector_version_shape(bytes, half, bytes.len() + 1);
    let _ = format::has_earlier_sector_version_shape(bytes, bytes.len(), half);
    let _ = format::header_is_one_bit_from_valid(bytes);
    if let Some(header) = bytes.get(..RECORD_HEADER_LEN) {
        let _ = format::header_is_one_bit_from_valid(header);
    }
    let Some(&first) = bytes.first() else {
        return;
    };
    let bit = usize::from(first) * 31 % (bytes.len() * 8);
    let mut flipped = bytes.to_vec();
    flipped[bit / 8] ^= 1 << (bit % 8);
    assert!(
        format::payload_is_one_bit_from_crc(&flipped, crc32fast::hash(bytes)),
        "bit {bit} flipped in a payload of {} bytes is not recognised as one flip",
        bytes.len()
    );
}
