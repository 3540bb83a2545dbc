//! The limits an append is checked against before anything is buffered or written.

use super::RecordToAppend;
use crate::error::{Error, Result};
use crate::format::RECORD_HEADER_LEN;

/// Largest atomic group, in frame bytes (1 GiB): a group is encoded in memory and never
/// split across segments.
pub const GROUP_BYTES_MAX: u64 = 1 << 30;

/// Checks an append's records against the limits (at least one record, no reserved
/// kind, each payload at most `payload_max`, the group at most [`GROUP_BYTES_MAX`]);
/// returns their frame bytes.
pub(super) fn frame_bytes(records: &[RecordToAppend], payload_max: u32) -> Result<u64> {
    if records.is_empty() {
        return Err(Error::InvalidArgument(
            "an append needs at least one record".into(),
        ));
    }
    let mut total = 0u64;
    for record in records {
        if record.kind == 0 {
            return Err(Error::InvalidArgument("record kind 0 is reserved".into()));
        }
        if record.payload.len() as u64 > u64::from(payload_max) {
            return Err(Error::InvalidArgument(format!(
                "record payload of {} bytes is over the limit of {payload_max} bytes (Options::record_payload_max)",
                record.payload.len()
            )));
        }
        total += (RECORD_HEADER_LEN + record.payload.len()) as u64;
    }
    if total > GROUP_BYTES_MAX {
        return Err(Error::InvalidArgument(format!(
            "atomic group of {total} bytes is over the limit of {GROUP_BYTES_MAX} bytes"
        )));
    }
    Ok(total)
}
