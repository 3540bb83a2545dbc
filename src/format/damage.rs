//! The shapes crash damage can take in a journal's unsynced bytes, which classification
//! tells apart from corruption (`wal-format.md` section 7.3): a sector that never landed
//! (zeros where zeros were), a sector that landed as an earlier version of itself (a
//! prefix of what was being written, then zeros), and the one-bit flips that are bit rot
//! whatever their shape. Pure functions of the bytes; no I/O.

use super::{RECORD_HEADER_LEN, SECTOR_BYTES, crc, header_checksum, le_u32};

/// Whether the bytes `image[start..end]` (clamped to the image) have the shape a lost
/// write leaves: the range runs past the end of the image, or one of its pieces between
/// 512-byte aligned file offsets is entirely zero (a sector that never landed, where
/// zeros were before). The other shape a crash leaves, a sector that landed as an
/// earlier version of itself, is [`has_earlier_sector_version_shape`]; damage of any
/// other shape is corruption (`wal-format.md` section 7.3).
pub fn has_lost_write_shape(image: &[u8], start: usize, end: usize) -> bool {
    if end > image.len() {
        return true;
    }
    let mut piece_start = start;
    while piece_start < end {
        let piece_end = ((piece_start / SECTOR_BYTES + 1) * SECTOR_BYTES).min(end);
        if image[piece_start..piece_end].iter().all(|&b| b == 0) {
            return true;
        }
        piece_start = piece_end;
    }
    false
}

/// Whether a 512-byte sector that the bytes `image[start..end]` reach into holds an
/// earlier version of itself: from the range's last byte in that sector to the end of
/// the sector (or of the image, if that comes first) every byte is zero. That is what a
/// sector written back by the kernel between two write calls into it, whose later
/// writes were then lost, looks like: the bytes of the earlier calls, then the zeros
/// that were there before (the writer only ever writes into zeroed space). An empty or
/// inverted range, or one past the image, has no such sector (`wal-format.md` section 7.3).
pub fn has_earlier_sector_version_shape(image: &[u8], start: usize, end: usize) -> bool {
    let end = end.min(image.len());
    let mut piece_start = start;
    while piece_start < end {
        let sector_end = (piece_start / SECTOR_BYTES + 1) * SECTOR_BYTES;
        let piece_end = sector_end.min(end);
        let sector_tail = &image[piece_end - 1..sector_end.min(image.len())];
        if sector_tail.iter().all(|&b| b == 0) {
            return true;
        }
        piece_start = piece_end;
    }
    false
}

/// Whether flipping a single bit of the 32-byte frame header `header` makes its header
/// checksum match: the damage is then one flipped bit (bit rot), never a lost write,
/// whatever else its shape. False for a slice that is not a whole header.
pub fn header_is_one_bit_from_valid(header: &[u8]) -> bool {
    let Ok(header) = <[u8; RECORD_HEADER_LEN]>::try_from(header) else {
        return false;
    };
    (0..RECORD_HEADER_LEN * 8).any(|bit| {
        let mut flipped = header;
        flipped[bit / 8] ^= 1 << (bit % 8);
        header_checksum(&flipped) == le_u32(&flipped, 27)
    })
}

/// Whether flipping a single bit of `payload` makes its CRC-32 equal `expected_crc`: the
/// damage is then one flipped bit (bit rot), never a lost write.
///
/// CRC-32 is linear: for a message of fixed length, flipping bit `k` of the byte `d`
/// bytes before the end changes the CRC by `Z^d(T[1 << k])`, where `T` is the CRC of one
/// byte from a zero register and `Z` feeds one zero byte. So one pass from the end, with
/// eight registers, compares every single-bit change with the observed difference:
/// linear in the payload's length, no allocation.
pub fn payload_is_one_bit_from_crc(payload: &[u8], expected_crc: u32) -> bool {
    let difference = crc(&[payload]) ^ expected_crc;
    if difference == 0 {
        return false;
    }
    let mut registers: [u32; 8] = std::array::from_fn(|k| crc_register_step(1 << k));
    for _ in 0..payload.len() {
        if registers.contains(&difference) {
            return true;
        }
        for register in &mut registers {
            *register = (*register >> 8) ^ crc_register_step((*register & 0xFF) as u8);
        }
    }
    false
}

/// The reflected CRC-32 register (polynomial `0xEDB88320`) after feeding the byte
/// `byte` into a zero register: the table entry `T[byte]`.
fn crc_register_step(byte: u8) -> u32 {
    let mut register = u32::from(byte);
    for _ in 0..8 {
        let carry = register & 1;
        register >>= 1;
        if carry != 0 {
            register ^= 0xEDB8_8320;
        }
    }
    register
}
