//! Replay: the newest usable checkpoint, then the journal after it, into a typed state
//! (through the schema gate) or untyped (framing only); restore records and their files.

use std::path::{Path, PathBuf};

use super::identity_check::foreign_file;
use super::report::{CheckpointUsed, RecoveryReport, SkippedCheckpoint};
use super::{Mode, Recovered};
use crate::checkpoint::{self};
use crate::error::{CodecFailure, Error, Result};
use crate::format::{self, Identity, RecordKind};
use crate::io::Vfs;
use crate::journal::identity::{self};
use crate::journal::{self, Defect, DefectKind, ScanOptions, ScanOutcome};
use crate::schema::Schema;
use crate::schema::gate::{Admission, SchemaGate};
use crate::state::StateMachine;

/// How recovery turns checkpoints and records into a state: typed (decoding commands
/// with the store's state machine) or untyped (checking framing only, for tools that
/// work on a store of any state type).
pub(crate) trait Replayer: Sized {
    /// The state before any record.
    fn empty() -> Self;
    /// The schema its bytes must have been written with (`None`: untyped, any).
    fn schema() -> Result<Option<Schema>>;
    /// The state stored in a checkpoint's state bytes.
    fn from_state_bytes(bytes: &[u8]) -> std::result::Result<Self, String>;
    /// Applies one record.
    fn apply_record(&mut self, record: RecordContext<'_>) -> Result<()>;
}

/// One record to replay and where it lives.
pub(crate) struct RecordContext<'a> {
    pub vfs: &'a dyn Vfs,
    pub dir: &'a Path,
    pub kind: u8,
    pub payload: &'a [u8],
    pub lsn: u64,
    pub may_map: bool,
    /// The gate of a typed replay, with the verdict on the record's segment.
    pub gate: Option<(&'a SchemaGate, Admission)>,
    /// The segment and the offset of the record's group.
    pub path: &'a Path,
    pub offset: u64,
}

/// Replays into a typed state machine.
pub(crate) struct Typed<S>(pub S);

impl<S: StateMachine> Replayer for Typed<S> {
    fn empty() -> Self {
        Typed(S::default())
    }
    fn schema() -> Result<Option<Schema>> {
        Schema::of::<S>().map(Some)
    }
    fn from_state_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        S::CODEC
            .decode::<S>(bytes)
            .map(Typed)
            .map_err(|err| err.to_string())
    }
    fn apply_record(&mut self, record: RecordContext<'_>) -> Result<()> {
        match RecordKind::from_u8(record.kind) {
            Some(RecordKind::Command) => {
                self.0
                    .apply_encoded(record.payload)
                    .map_err(|err| match record.gate {
                        Some((gate, admission)) => gate.undecodable(
                            record.vfs,
                            admission,
                            record.path,
                            &format!(
                                "the command at LSN {} (group at offset {})",
                                record.lsn, record.offset
                            ),
                            &err.to_string(),
                        ),
                        None => err,
                    })
            }
            Some(RecordKind::Restore) => {
                let gate = record.gate.map(|(gate, _)| gate);
                self.0 = load_restore::<Typed<S>>(
                    record.vfs,
                    record.dir,
                    record.lsn,
                    record.may_map,
                    gate,
                )?
                .0;
                Ok(())
            }
            Some(RecordKind::Seal) | None => Err(unknown_kind(record.kind)),
        }
    }
}

/// Checks framing only: any state type, nothing decoded.
pub(crate) struct Untyped;

impl Replayer for Untyped {
    fn empty() -> Self {
        Untyped
    }
    fn schema() -> Result<Option<Schema>> {
        Ok(None)
    }
    fn from_state_bytes(_bytes: &[u8]) -> std::result::Result<Self, String> {
        Ok(Untyped)
    }
    fn apply_record(&mut self, record: RecordContext<'_>) -> Result<()> {
        match RecordKind::from_u8(record.kind) {
            Some(RecordKind::Command) => Ok(()),
            Some(RecordKind::Restore) => {
                load_restore::<Untyped>(record.vfs, record.dir, record.lsn, record.may_map, None)
                    .map(|_| ())
            }
            Some(RecordKind::Seal) | None => Err(unknown_kind(record.kind)),
        }
    }
}

/// The error of a record whose kind replay has no meaning for. (Version-2 seals never
/// reach replay, the scan consumes them; kind 3 in a version-1 segment is unassigned.)
fn unknown_kind(kind: u8) -> Error {
    Error::codec(
        CodecFailure::UnknownRecordKind,
        format!("unknown record kind {kind}"),
    )
}

/// Loads the newest usable checkpoint and replays the journal after it.
pub(crate) fn replay<R: Replayer>(
    vfs: &dyn Vfs,
    dir: &Path,
    mode: Mode,
    report: &mut RecoveryReport,
    gate: Option<&SchemaGate>,
) -> Result<Recovered<R>> {
    let may_map = mode != Mode::ReadOnly;
    let identity = identity::read(vfs, dir)?.valid();
    let checkpoints = checkpoint::list_checkpoints(vfs, dir)?;
    let mut start: Option<(u64, R, CheckpointUsed)> = None;
    report.checkpoint = None;
    report.checkpoints_skipped.clear();
    for candidate in checkpoints.iter().rev() {
        match load_checkpoint_file::<R>(vfs, &candidate.path, may_map, identity, gate)? {
            Ok((lsn, state, bytes, schema_id)) if lsn == candidate.lsn => {
                let used = CheckpointUsed {
                    path: candidate.path.clone(),
                    lsn,
                    bytes,
                    schema_id,
                };
                start = Some((lsn, state, used));
                break;
            }
            Ok((lsn, ..)) => report.checkpoints_skipped.push(SkippedCheckpoint {
                path: candidate.path.clone(),
                reason: format!(
                    "header says LSN {lsn}, the file name says {}",
                    candidate.lsn
                ),
            }),
            Err(Unusable::Damaged(format::CheckpointError::UnsupportedVersion(found))) => {
                return Err(Error::UnsupportedVersion {
                    path: candidate.path.clone(),
                    found,
                    supported: format::FORMAT_VERSION,
                });
            }
            Err(unusable) => report.checkpoints_skipped.push(SkippedCheckpoint {
                path: candidate.path.clone(),
                reason: unusable.to_string(),
            }),
        }
    }
    let (checkpoint_lsn, mut state, used) = match start {
        Some((lsn, state, used)) => (lsn, state, Some(used)),
        None => (0, R::empty(), None),
    };
    report.checkpoint = used;

    let mut lsn = checkpoint_lsn;
    // A restore record whose restore file is missing or damaged: (segment, group offset,
    // LSN, detail). It becomes the scan's defect, so salvage can cut the log there.
    let mut unreplayable: Option<(PathBuf, u64, u64, String)> = None;
    let outcome = journal::scan(
        vfs,
        dir,
        ScanOptions {
            from_lsn: checkpoint_lsn + 1,
            may_map,
        },
        |group, position| {
            if unreplayable.is_some() {
                return Ok(());
            }
            // Nothing of a segment is decoded before its schema is admitted.
            let admitted = match gate {
                Some(gate) => Some((gate, gate.admit(vfs, position.schema_id, position.path)?)),
                None => None,
            };
            for record in group {
                let applied = state.apply_record(RecordContext {
                    vfs,
                    dir,
                    kind: record.kind,
                    payload: record.payload,
                    lsn: record.lsn,
                    may_map,
                    gate: admitted,
                    path: position.path,
                    offset: position.offset,
                });
                if let Err(err) = applied {
                    // An I/O failure (reading a restore file) is not damage, and neither are
                    // bytes of other types.
                    if matches!(
                        err,
                        Error::Io { .. }
                            | Error::PermissionDenied { .. }
                            | Error::SchemaMismatch { .. }
                    ) {
                        return Err(err);
                    }
                    // Only `load_restore` reports corruption here: a damaged restore file.
                    if let Error::Corruption { detail, .. } = err {
                        unreplayable = Some((
                            position.path.to_path_buf(),
                            position.offset,
                            record.lsn,
                            detail,
                        ));
                        return Ok(());
                    }
                    return Err(Error::Corruption {
                        path: position.path.to_path_buf(),
                        offset: position.offset,
                        lsn: record.lsn,
                        detail: format!(
                            "the record's checksum is valid but it cannot be replayed ({err}); is this store opened with the state type that wrote it?"
                        ),
                    });
                }
                debug_assert!(record.lsn > lsn, "replay applies LSNs in increasing order");
                lsn = record.lsn;
            }
            Ok(())
        },
    )?;
    let outcome = match unreplayable {
        Some((path, offset, lsn, detail)) => defect_at_record(outcome, path, offset, lsn, detail),
        None => outcome,
    };
    // With every checkpoint unusable, replay from the empty state is only honest when the
    // journal really starts at LSN 1; scan reports the gap otherwise (at LSN 1: a gap
    // further on leaves a valid prefix that salvage can keep). No state can be rebuilt,
    // so salvage cannot help either.
    if report.checkpoint.is_none()
        && !report.checkpoints_skipped.is_empty()
        && let Some(defect) = &outcome.defect
        && defect.kind == DefectKind::LsnGap
        && defect.expected_lsn == 1
    {
        let skipped: Vec<String> = report
            .checkpoints_skipped
            .iter()
            .map(|c| format!("{}: {}", c.path.display(), c.reason))
            .collect();
        return Err(Error::NoStateBase {
            path: dir.to_path_buf(),
            detail: format!(
                "no checkpoint is usable ({}) and the journal does not reach back to LSN 1 ({}: {})",
                skipped.join("; "),
                defect.path.display(),
                defect.detail
            ),
        });
    }
    report.records_replayed = outcome.records_delivered;
    report.bytes_replayed = outcome.bytes_delivered;
    Ok(Recovered {
        state,
        lsn,
        outcome,
        report: RecoveryReport::default(),
        checkpoint_lsn,
    })
}

/// Why a checkpoint-format file cannot be used (for the recovery report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// Its bytes are damaged, or of a format version this build does not read.
    Damaged(format::CheckpointError),
    /// It belongs to another store (why).
    Foreign(String),
    /// Untyped only: the state does not decode (why). A typed load reports a schema
    /// error instead.
    Undecodable(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Damaged(err) => f.write_str(&err.describe()),
            Unusable::Foreign(reason) => f.write_str(reason),
            Unusable::Undecodable(detail) => write!(
                f,
                "checksum is valid but the state does not decode: {detail}"
            ),
        }
    }
}

/// Loads and verifies a checkpoint-format file into a replayer: (lsn, state, bytes).
/// The outer error is an I/O failure reading it (not damage: retry, or fix the disk) or
/// a file of another schema ([`Error::SchemaMismatch`]: intact bytes that do not decode
/// with these types are one too, never skipped); the inner one says why the bytes are
/// unusable (damage or a foreign file, for the recovery report).
pub(crate) fn load_checkpoint_with<R: Replayer>(
    vfs: &dyn Vfs,
    path: &Path,
    may_map: bool,
    identity: Option<Identity>,
    gate: Option<&SchemaGate>,
) -> Result<std::result::Result<(u64, R, u64), Unusable>> {
    load_checkpoint_file::<R>(vfs, path, may_map, identity, gate)
        .map(|loaded| loaded.map(|(lsn, state, bytes, _)| (lsn, state, bytes)))
}

/// [`load_checkpoint_with`], also returning the schema id its header records, so that
/// recovery never reads the file a second time for it.
fn load_checkpoint_file<R: Replayer>(
    vfs: &dyn Vfs,
    path: &Path,
    may_map: bool,
    identity: Option<Identity>,
    gate: Option<&SchemaGate>,
) -> Result<std::result::Result<(u64, R, u64, u64), Unusable>> {
    let bytes = vfs
        .read_file(path, may_map)
        .map_err(|err| Error::io("read checkpoint", path, err))?;
    let (header, state_bytes) = match format::decode_checkpoint(&bytes) {
        Ok(decoded) => decoded,
        Err(err) => return Ok(Err(Unusable::Damaged(err))),
    };
    if let Some(reason) = foreign_file(&header, identity) {
        return Ok(Err(Unusable::Foreign(reason)));
    }
    let admission = match gate {
        Some(gate) => Some(gate.admit(vfs, header.schema_id, path)?),
        None => None,
    };
    match R::from_state_bytes(state_bytes) {
        Ok(state) => Ok(Ok((header.lsn, state, bytes.len() as u64, header.schema_id))),
        Err(detail) => match (gate, admission) {
            (Some(gate), Some(admission)) => Err(gate.undecodable(
                vfs,
                admission,
                path,
                &format!("the state at LSN {}", header.lsn),
                &detail,
            )),
            _ => Ok(Err(Unusable::Undecodable(detail))),
        },
    }
}

/// Loads the state a restore record at `lsn` switches to. A missing or damaged restore
/// file is corruption (wal-format.md, "Replay errors"): [`Error::Corruption`] naming the
/// file, which replay turns into a defect at the restore record. A file that is intact
/// but does not decode as the state type is a codec error, as for a command.
pub(crate) fn load_restore<R: Replayer>(
    vfs: &dyn Vfs,
    dir: &Path,
    lsn: u64,
    may_map: bool,
    gate: Option<&SchemaGate>,
) -> Result<R> {
    let path = dir.join(format::restore_file_name(lsn));
    let corrupt = |detail: String| Error::Corruption {
        path: path.clone(),
        offset: 0,
        lsn,
        detail: format!(
            "the restore record at LSN {lsn} needs {}, which {detail}",
            path.display()
        ),
    };
    let bytes = match vfs.read_file(&path, may_map) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(corrupt("is missing".into()));
        }
        Err(err) => return Err(Error::io("read restore file", &path, err)),
    };
    let (header, state_bytes) = format::decode_checkpoint(&bytes)
        .map_err(|err| corrupt(format!("is damaged ({})", err.describe())))?;
    if header.lsn != lsn {
        return Err(corrupt(format!("has LSN {} in its header", header.lsn)));
    }
    if let Some(reason) = foreign_file(&header, identity::read(vfs, dir)?.valid()) {
        return Err(corrupt(format!("is not this store's ({reason})")));
    }
    let admission = match gate {
        Some(gate) => Some(gate.admit(vfs, header.schema_id, &path)?),
        None => None,
    };
    R::from_state_bytes(state_bytes).map_err(|reason| match (gate, admission) {
        (Some(gate), Some(admission)) => gate.undecodable(
            vfs,
            admission,
            &path,
            &format!("the state the restore record at LSN {lsn} switches to"),
            &reason,
        ),
        _ => Error::codec(
            CodecFailure::Decode,
            format!("restore file {}: {reason}", path.display()),
        ),
    })
}

/// The scan outcome with its defect moved to a record whose framing is valid but that
/// cannot be replayed (a restore record without its file): the segments after it count
/// as unscanned, as after any defect, so salvage keeps the log before that record.
pub(crate) fn defect_at_record(
    mut outcome: ScanOutcome,
    path: PathBuf,
    offset: u64,
    lsn: u64,
    detail: String,
) -> ScanOutcome {
    // The record was delivered from one of the scanned segments.
    let index = outcome
        .segments
        .iter()
        .position(|s| s.path == path)
        .unwrap_or(outcome.segments.len().saturating_sub(1));
    let later: Vec<PathBuf> = if index < outcome.segments.len() {
        outcome.segments.split_off(index + 1)
    } else {
        Vec::new()
    }
    .into_iter()
    .map(|s| s.path)
    .collect();
    outcome.unscanned_segments.splice(0..0, later);
    let file_len = outcome.segments.get(index).map_or(offset, |s| s.file_len);
    outcome.next_lsn = lsn;
    outcome.defect = Some(unreplayable_defect(
        path,
        index,
        offset,
        lsn,
        file_len.saturating_sub(offset),
        detail,
    ));
    outcome
}

pub(crate) fn unreplayable_defect(
    path: PathBuf,
    segment_index: usize,
    offset: u64,
    lsn: u64,
    bytes_after: u64,
    detail: String,
) -> Defect {
    Defect {
        kind: DefectKind::Corruption,
        path,
        segment_index,
        offset,
        expected_lsn: lsn,
        bytes_after,
        detail,
        frames_dropped: 0,
        last_lsn_dropped: None,
    }
}
