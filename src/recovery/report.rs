//! What open found and did: the recovery report and its parts (serializable: the CLI
//! prints it as JSON).

use std::path::PathBuf;

use serde::Serialize;

use crate::format::{SchemaId, StoreId};
use crate::journal::{Defect, TornTailTruncation};

/// The checkpoint recovery started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointUsed {
    /// The file.
    pub path: PathBuf,
    /// Its LSN.
    pub lsn: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// The schema fingerprint its header records (0: none).
    pub schema_id: u64,
}

/// A checkpoint recovery could not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedCheckpoint {
    /// The file.
    pub path: PathBuf,
    /// Why it was rejected.
    pub reason: String,
}

/// What salvage did about one defect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SalvageAction {
    /// The defect that was salvaged.
    pub defect: Defect,
    /// Files moved (or, for a segment cut at the damage, copied whole) into `quarantine/`.
    pub quarantined: Vec<PathBuf>,
    /// First LSN no longer in the log.
    pub lost_from_lsn: u64,
    /// Highest LSN seen in the quarantined files (best effort), if any.
    pub lost_through_lsn: Option<u64>,
}

/// What open found and did. Serializable: the CLI prints it as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// The store directory.
    pub dir: PathBuf,
    /// True when open created a new store.
    pub created: bool,
    /// True when opened read-only (nothing was changed on disk).
    pub read_only: bool,
    /// The checkpoint used, or `None` when replay started from the empty state.
    pub checkpoint: Option<CheckpointUsed>,
    /// Newer checkpoints that could not be used, and why.
    pub checkpoints_skipped: Vec<SkippedCheckpoint>,
    /// Journal records replayed after the checkpoint.
    pub records_replayed: u64,
    /// Journal bytes replayed.
    pub bytes_replayed: u64,
    /// LSN of the last record in the recovered state (0: empty).
    pub last_lsn: u64,
    /// Segment files scanned.
    pub segments_scanned: usize,
    /// The torn tail truncated (writer) or left as in-flight (read-only), if any.
    pub torn_tail: Option<TornTailTruncation>,
    /// What salvage moved to quarantine, if it ran.
    pub salvaged: Vec<SalvageAction>,
    /// Temp files left by a crash and removed.
    pub temp_files_removed: Vec<PathBuf>,
    /// Wall time of recovery in milliseconds.
    pub elapsed_ms: u64,
    /// The store's id (from its identity file; `None` for a version-1 store that no
    /// version-2 writer has opened yet).
    pub store_id: Option<StoreId>,
    /// True when recovery read files of format version 1 (segments by the torn-window
    /// rule): `walstate upgrade` or the next checkpoints replace them.
    pub read_format_v1: bool,
    /// The schemas the checkpoint used and the segments scanned were written with, each
    /// once: the checkpoint's first, then the segments' in order (files that record no
    /// schema add none).
    pub schemas: Vec<SchemaId>,
    /// What a migrating open ([`crate::Store::open_migrating`]) did, if it migrated.
    pub migration: Option<crate::migrate::MigrationReport>,
    /// What a rolling-back open ([`crate::Store::open_rolling_back`]) did, if it rolled
    /// the store back across schemas.
    pub rollback: Option<crate::migrate::RollbackReport>,
}
