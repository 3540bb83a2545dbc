//! Record kinds (`wal-format.md` section 6) and the payload of a restore record.

use serde::{Deserialize, Serialize};

/// Record kind of a logged command (payload: the encoded command).
pub const RECORD_KIND_COMMAND: u8 = 1;
/// Record kind of a snapshot restore (payload: the encoded [`RestoreMarker`]); the state
/// it switches to is in `restore-<lsn>.ckpt`.
pub const RECORD_KIND_RESTORE: u8 = 2;
/// Record kind of a seal (empty payload): written and synced by a clean close, it
/// takes no LSN of its own (its LSN field is the next record's) and proves that every
/// byte before it was durable.
pub const RECORD_KIND_SEAL: u8 = 3;

/// The record kinds this build assigns a meaning to. The framing accepts any kind
/// `1..=255`; [`RecordKind::from_u8`] is `None` for the unassigned ones, which replay
/// refuses as "unknown record kind".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// [`RECORD_KIND_COMMAND`]: a logged command.
    Command,
    /// [`RECORD_KIND_RESTORE`]: a snapshot restore.
    Restore,
    /// [`RECORD_KIND_SEAL`]: a clean close.
    Seal,
}

#[cfg_attr(not(feature = "internals"), allow(dead_code))]
impl RecordKind {
    /// Every assigned kind, in the order of their numbers.
    pub const ALL: [RecordKind; 3] = [RecordKind::Command, RecordKind::Restore, RecordKind::Seal];

    /// The kind a record's kind byte names, or `None` for an unassigned one.
    pub const fn from_u8(kind: u8) -> Option<RecordKind> {
        match kind {
            RECORD_KIND_COMMAND => Some(RecordKind::Command),
            RECORD_KIND_RESTORE => Some(RecordKind::Restore),
            RECORD_KIND_SEAL => Some(RecordKind::Seal),
            _ => None,
        }
    }

    /// The kind byte written for this kind.
    pub const fn as_u8(self) -> u8 {
        match self {
            RecordKind::Command => RECORD_KIND_COMMAND,
            RecordKind::Restore => RECORD_KIND_RESTORE,
            RecordKind::Seal => RECORD_KIND_SEAL,
        }
    }

    /// The kind's name in the spec's table ("command", "restore", "seal").
    pub const fn name(self) -> &'static str {
        match self {
            RecordKind::Command => "command",
            RecordKind::Restore => "restore",
            RecordKind::Seal => "seal",
        }
    }
}

/// Payload of a restore record (codec-encoded; informational: replay takes the state
/// from the restore file, not from this).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreMarker {
    /// The snapshot that was restored.
    pub snapshot: String,
    /// The LSN of the snapshot's state.
    pub snapshot_lsn: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_byte() {
        for kind in RecordKind::ALL {
            assert_eq!(RecordKind::from_u8(kind.as_u8()), Some(kind));
        }
        assert_eq!(RecordKind::from_u8(0), None);
        assert!((4..=255).all(|byte| RecordKind::from_u8(byte).is_none()));
    }
}
