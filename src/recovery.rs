//! Open-time orchestration: find or create the store, load the newest valid checkpoint,
//! replay the journal after it, truncate a torn tail, refuse (or, when asked, salvage)
//! corruption, and say exactly what was done in a [`RecoveryReport`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, SNAPSHOT_DIR_NAME};
use crate::error::{Error, Result};
use crate::format::{self, Identity, SchemaId, StoreId};
use crate::io::{EntryKind, Vfs};
use crate::journal::identity::{self, IdentityFile};
use crate::journal::{self, Defect, DefectKind, ScanOptions, ScanOutcome, TornTailTruncation};
use crate::lock::LOCK_FILE_NAME;
use crate::schema::Schema;
use crate::schema::gate::{Admission, SchemaGate};
use crate::state::StateMachine;

pub use crate::format::{RECORD_KIND_COMMAND, RECORD_KIND_RESTORE};
pub use crate::journal::QUARANTINE_DIR_NAME;

/// Payload of a restore record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreMarker {
    /// The snapshot that was restored.
    pub snapshot: String,
    /// The LSN of the snapshot's state.
    pub snapshot_lsn: u64,
}

/// The checkpoint recovery started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointUsed {
    /// The file.
    pub path: PathBuf,
    /// Its LSN.
    pub lsn: u64,
    /// Its size in bytes.
    pub bytes: u64,
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

/// The outcome of recovery, handed to the store.
pub(crate) struct Recovered<S> {
    pub state: S,
    pub lsn: u64,
    pub outcome: ScanOutcome,
    pub report: RecoveryReport,
    pub checkpoint_lsn: u64,
}

/// Whether recovery may change the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Holding the writer lock: truncate torn tails, remove temp files, salvage if asked.
    Writer { salvage: bool },
    /// Never writes; an incomplete tail is in-flight, not damage.
    ReadOnly,
}

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
        match record.kind {
            RECORD_KIND_COMMAND => {
                let command = S::CODEC
                    .decode::<S::Command>(record.payload)
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
                    })?;
                self.0.apply_owned(command);
                Ok(())
            }
            RECORD_KIND_RESTORE => {
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
            other => Err(Error::Codec(format!("unknown record kind {other}"))),
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
        match record.kind {
            RECORD_KIND_COMMAND => Ok(()),
            RECORD_KIND_RESTORE => {
                load_restore::<Untyped>(record.vfs, record.dir, record.lsn, record.may_map, None)
                    .map(|_| ())
            }
            other => Err(Error::Codec(format!("unknown record kind {other}"))),
        }
    }
}

/// Bound on salvage rounds (each quarantines at least one file).
const SALVAGE_ROUNDS_MAX: usize = 64;

/// True when `names` (a directory's entries) make it a walstate store: see
/// [`is_store_file_name`].
pub(crate) fn looks_like_store(names: &[String]) -> bool {
    names.iter().any(|name| is_store_file_name(name))
}

/// True for a name that makes its directory a walstate store: the lock or identity
/// file, a segment, checkpoint, restore or schema file, or the temp file of one (a
/// crash while the store was being created). The one rule open, verify and the CLI use.
pub fn is_store_file_name(name: &str) -> bool {
    {
        let stem = name.strip_suffix(".tmp").unwrap_or(name);
        stem == LOCK_FILE_NAME
            || stem == format::IDENTITY_FILE_NAME
            || format::parse_segment_file_name(stem).is_some()
            || format::parse_checkpoint_file_name(stem).is_some()
            || format::parse_restore_file_name(stem).is_some()
            || format::parse_schema_file_name(stem).is_some()
    }
}

/// Runs recovery of `dir` for state machine `S`.
pub(crate) fn recover<S: StateMachine>(
    vfs: &dyn Vfs,
    dir: &Path,
    mode: Mode,
) -> Result<Recovered<S>> {
    let recovered = recover_with::<Typed<S>>(vfs, dir, mode)?;
    Ok(Recovered {
        state: recovered.state.0,
        lsn: recovered.lsn,
        outcome: recovered.outcome,
        report: recovered.report,
        checkpoint_lsn: recovered.checkpoint_lsn,
    })
}

/// Runs recovery with any replayer.
pub(crate) fn recover_with<R: Replayer>(
    vfs: &dyn Vfs,
    dir: &Path,
    mode: Mode,
) -> Result<Recovered<R>> {
    let started = Instant::now();
    let mut report = RecoveryReport {
        dir: dir.to_path_buf(),
        read_only: mode == Mode::ReadOnly,
        ..RecoveryReport::default()
    };
    if let Mode::Writer { .. } = mode {
        report.temp_files_removed = remove_temp_files(vfs, dir)?;
    }
    report.store_id = prepare_identity(vfs, dir, mode)?.map(|identity| identity.store_id);
    let gate = R::schema()?.map(|schema| SchemaGate::new(schema, dir, report.store_id));
    let mut rounds = 0;
    let mut recovered = loop {
        let attempt = replay::<R>(vfs, dir, mode, &mut report, gate.as_ref())?;
        let Some(mut defect) = attempt.outcome.defect.clone() else {
            break attempt;
        };
        // The checkpoint proves every record up to its LSN was synced before it was
        // written, so damage there cannot be a torn write: it is corruption.
        if defect.kind == DefectKind::TornTail && defect.expected_lsn <= attempt.checkpoint_lsn {
            defect.kind = DefectKind::Corruption;
            defect.detail = format!(
                "{}; the record is covered by the checkpoint at LSN {}, which proves it was synced, so this is not a torn write",
                defect.detail, attempt.checkpoint_lsn
            );
        }
        match (defect.kind, mode) {
            (DefectKind::TornTail, Mode::Writer { .. }) => {
                report.torn_tail = journal::truncate_torn_tail(vfs, &attempt.outcome)?;
                break attempt;
            }
            (DefectKind::TornTail, Mode::ReadOnly) => {
                report.torn_tail =
                    journal::describe_torn_tail(&attempt.outcome).map(|torn| TornTailTruncation {
                        bytes: 0,
                        detail: format!("{} (in flight or torn; left as is)", torn.detail),
                        ..torn
                    });
                break attempt;
            }
            (DefectKind::UnsupportedVersion, _) => return Err(defect.to_error()),
            (_, Mode::Writer { salvage: true }) if rounds < SALVAGE_ROUNDS_MAX => {
                rounds += 1;
                let action =
                    quarantine(vfs, dir, &attempt.outcome, &defect, attempt.checkpoint_lsn)?;
                report.salvaged.push(action);
                report.records_replayed = 0;
                report.bytes_replayed = 0;
                report.checkpoints_skipped.clear();
            }
            _ => return Err(defect.to_error()),
        }
    };
    if let Mode::Writer { .. } = mode {
        let moved = remove_orphan_restore_files(
            vfs,
            dir,
            recovered.outcome.next_lsn,
            !report.salvaged.is_empty(),
        )?;
        if let Some(last) = report.salvaged.last_mut() {
            last.quarantined.extend(moved);
        }
    }
    report.last_lsn = recovered.lsn;
    report.segments_scanned = recovered.outcome.segments.len();
    report.read_format_v1 |= recovered.outcome.segments.iter().any(|s| s.version == 1);
    report.schemas = schemas_named(vfs, &report, &recovered.outcome);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    recovered.report = report;
    Ok(recovered)
}

/// Loads the newest usable checkpoint and replays the journal after it.
fn replay<R: Replayer>(
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
        match load_checkpoint_with::<R>(vfs, &candidate.path, may_map, identity, gate)? {
            Ok((lsn, state, bytes)) if lsn == candidate.lsn => {
                let used = CheckpointUsed {
                    path: candidate.path.clone(),
                    lsn,
                    bytes,
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

fn version_of(vfs: &dyn Vfs, path: &Path) -> u32 {
    vfs.read_file(path, false)
        .ok()
        .and_then(|bytes| {
            bytes
                .get(8..12)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        })
        .unwrap_or(0)
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
        Ok(state) => Ok(Ok((header.lsn, state, bytes.len() as u64))),
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

/// Why a checkpoint-format file does not belong to the store with `identity`, if it
/// does not: it names another store, or it is of version 1 (which names none) in a
/// store created by version 2.
pub(crate) fn foreign_file(
    header: &format::CheckpointHeader,
    identity: Option<Identity>,
) -> Option<String> {
    match (header.version, identity) {
        (1, Some(identity)) if !identity.legacy_v1() => Some(
            "a version-1 file in a store created by format version 2: it belongs to another store"
                .into(),
        ),
        (1, _) => None,
        (_, None) => Some(format!(
            "the file belongs to store {:016x}, but this store has no identity file",
            header.store_id
        )),
        (_, Some(identity)) if header.store_id != identity.store_id.get() => Some(format!(
            "the file belongs to store {:016x}, this store is {}: it was copied in from another store",
            header.store_id, identity.store_id
        )),
        _ => None,
    }
}

/// Reads (and, for a writer, creates) the store's identity file before anything else.
/// A directory without one is a version-1 store, or a new one: a writer gives it an
/// identity now, flagged as holding version-1 files when it has any. A store with
/// version-2 files but no usable identity is refused: the identity is what tells its
/// own files from foreign ones.
fn prepare_identity(vfs: &dyn Vfs, dir: &Path, mode: Mode) -> Result<Option<Identity>> {
    let path = identity::path(dir);
    match identity::read(vfs, dir)? {
        IdentityFile::Valid(identity) => Ok(Some(identity)),
        IdentityFile::Damaged(reason) => Err(Error::Corruption {
            path,
            offset: 0,
            lsn: 0,
            detail: format!(
                "the store's identity file is unusable ({reason}); it names the store every other file must belong to"
            ),
        }),
        IdentityFile::Missing => {
            let files = store_file_versions(vfs, dir)?;
            if let Some(v2_file) = files.iter().find(|(_, version)| *version >= 2) {
                return Err(Error::Corruption {
                    path,
                    offset: 0,
                    lsn: 0,
                    detail: format!(
                        "the identity file is missing, but {} is a version-2 file that names a store: it was deleted, or these files were copied in",
                        v2_file.0.display()
                    ),
                });
            }
            if mode == Mode::ReadOnly {
                return Ok(None);
            }
            identity::create(vfs, dir, !files.is_empty()).map(Some)
        }
    }
}

/// The segment, checkpoint and restore files of `dir` with the format version their
/// header claims (0 when unreadable).
fn store_file_versions(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<(PathBuf, u32)>> {
    let names = vfs
        .read_dir(dir)
        .map_err(|err| Error::io("list directory", dir, err))?;
    let mut found = Vec::new();
    for name in names {
        let ours = format::parse_segment_file_name(&name).is_some()
            || format::parse_checkpoint_file_name(&name).is_some()
            || format::parse_restore_file_name(&name).is_some();
        if ours {
            let path = dir.join(&name);
            let version = version_of(vfs, &path);
            found.push((path, version));
        }
    }
    Ok(found)
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
        _ => Error::Codec(format!("restore file {}: {reason}", path.display())),
    })
}

/// The schema ids the used checkpoint and the scanned segments name, each once, the
/// checkpoint's first (0, "none recorded", left out).
fn schemas_named(vfs: &dyn Vfs, report: &RecoveryReport, outcome: &ScanOutcome) -> Vec<SchemaId> {
    let mut ids = Vec::new();
    let checkpoint_schema = report.checkpoint.as_ref().and_then(|used| {
        let bytes = vfs.read_file(&used.path, false).ok()?;
        format::decode_checkpoint(&bytes)
            .ok()
            .and_then(|(header, _)| SchemaId::new(header.schema_id))
    });
    let segment_schemas = outcome
        .segments
        .iter()
        .filter_map(|segment| segment.header.and_then(|h| SchemaId::new(h.schema_id)));
    for id in checkpoint_schema.into_iter().chain(segment_schemas) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The scan outcome with its defect moved to a record whose framing is valid but that
/// cannot be replayed (a restore record without its file): the segments after it count
/// as unscanned, as after any defect, so salvage keeps the log before that record.
fn defect_at_record(
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

fn unreplayable_defect(
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

fn remove_temp_files(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let snapshot_dir = dir.join(SNAPSHOT_DIR_NAME);
    for folder in [dir.to_path_buf(), snapshot_dir] {
        if vfs
            .entry_kind(&folder)
            .map_err(|err| Error::io("stat", &folder, err))?
            != Some(EntryKind::Dir)
        {
            continue;
        }
        let names = vfs
            .read_dir(&folder)
            .map_err(|err| Error::io("list directory", &folder, err))?;
        let mut any = false;
        for name in names.iter().filter(|n| n.ends_with(".tmp")) {
            let path = folder.join(name);
            vfs.remove_file(&path)
                .map_err(|err| Error::io("remove temp file", &path, err))?;
            removed.push(path);
            any = true;
        }
        if any {
            vfs.sync_dir(&folder)
                .map_err(|err| Error::io("fsync directory", &folder, err))?;
        }
    }
    Ok(removed)
}

/// Removes restore files no journal record refers to (a restore that crashed before
/// its record was durable). After salvage they may belong to restore records that went
/// to quarantine: then they are moved there too (returned), never deleted.
fn remove_orphan_restore_files(
    vfs: &dyn Vfs,
    dir: &Path,
    next_lsn: u64,
    salvaged: bool,
) -> Result<Vec<PathBuf>> {
    let names = vfs
        .read_dir(dir)
        .map_err(|err| Error::io("list directory", dir, err))?;
    let mut any = false;
    let mut moved = Vec::new();
    for name in names {
        if format::parse_restore_file_name(&name).is_some_and(|lsn| lsn >= next_lsn) {
            let path = dir.join(&name);
            if salvaged {
                moved.push(move_into_quarantine(vfs, dir, &path)?);
                continue;
            }
            vfs.remove_file(&path)
                .map_err(|err| Error::io("remove orphan restore file", &path, err))?;
            any = true;
        }
    }
    if any {
        vfs.sync_dir(dir)
            .map_err(|err| Error::io("fsync directory", dir, err))?;
    }
    Ok(moved)
}

/// Moves the damage out of the log into `quarantine/`, keeping the valid prefix. Never
/// deletes: a segment cut at the damage is first copied whole into quarantine.
fn quarantine(
    vfs: &dyn Vfs,
    dir: &Path,
    outcome: &ScanOutcome,
    defect: &Defect,
    checkpoint_lsn: u64,
) -> Result<SalvageAction> {
    let quarantine_dir = dir.join(QUARANTINE_DIR_NAME);
    vfs.create_dir_all(&quarantine_dir)
        .map_err(|err| Error::io("create quarantine directory", &quarantine_dir, err))?;
    vfs.sync_dir(dir)
        .map_err(|err| Error::io("fsync directory", dir, err))?;
    let index = defect.segment_index;
    let next_first_lsn = outcome
        .segments
        .get(index + 1)
        .map(|s| s.first_lsn)
        .or_else(|| {
            outcome.unscanned_segments.first().and_then(|path| {
                vfs.read_file(path, false)
                    .ok()
                    .and_then(|b| format::SegmentHeader::decode(&b).ok())
                    .map(|h| h.first_lsn)
            })
        });
    let mut quarantined = Vec::new();
    // Damage in a segment wholly covered by the checkpoint: quarantine it and everything
    // older; the rest of the log is intact and still needed.
    if defect.kind != DefectKind::LsnGap
        && next_first_lsn.is_some_and(|first| first <= checkpoint_lsn + 1)
    {
        let older: Vec<PathBuf> = outcome.segments[..=index]
            .iter()
            .map(|s| s.path.clone())
            .collect();
        for path in older {
            quarantined.push(move_to_quarantine(vfs, dir, &quarantine_dir, &path)?);
        }
        return Ok(SalvageAction {
            defect: defect.clone(),
            quarantined,
            lost_from_lsn: 0,
            lost_through_lsn: None,
        });
    }
    let mut lost_through = None;
    if defect.offset > 0 {
        // Keep the valid prefix in place; the whole damaged file goes to quarantine first.
        let bytes = vfs
            .read_file(&defect.path, false)
            .map_err(|err| Error::io("read damaged segment", &defect.path, err))?;
        lost_through = max_lsn_in(&bytes);
        let name = quarantine_name(vfs, &quarantine_dir, &defect.path)?;
        checkpoint::write_atomically(vfs, &quarantine_dir, &name, &bytes)
            .map_err(|failure| failure.error)?;
        let file = vfs
            .open(&defect.path, crate::io::OpenMode::ReadWrite)
            .map_err(|err| Error::io("open damaged segment", &defect.path, err))?;
        file.set_len(defect.offset)
            .map_err(|err| Error::io("cut damaged segment", &defect.path, err))?;
        file.sync_all()
            .map_err(|err| Error::io("fsync cut segment", &defect.path, err))?;
        quarantined.push(quarantine_dir.join(name));
    } else {
        let bytes = vfs.read_file(&defect.path, false).ok();
        lost_through = bytes.as_deref().and_then(max_lsn_in).max(lost_through);
        quarantined.push(move_to_quarantine(vfs, dir, &quarantine_dir, &defect.path)?);
    }
    // After a gap in segment numbers the defect's own file is also the first unscanned
    // one: it was moved above.
    for path in outcome
        .unscanned_segments
        .iter()
        .filter(|p| **p != defect.path)
    {
        if let Ok(bytes) = vfs.read_file(path, false) {
            lost_through = max_lsn_in(&bytes).max(lost_through);
        }
        quarantined.push(move_to_quarantine(vfs, dir, &quarantine_dir, path)?);
    }
    Ok(SalvageAction {
        defect: defect.clone(),
        quarantined,
        lost_from_lsn: defect.expected_lsn,
        lost_through_lsn: lost_through.filter(|&lsn| lsn >= defect.expected_lsn),
    })
}

/// Moves `path` into `dir/quarantine/` (created if missing), durably.
pub(crate) fn move_into_quarantine(vfs: &dyn Vfs, dir: &Path, path: &Path) -> Result<PathBuf> {
    let quarantine_dir = dir.join(QUARANTINE_DIR_NAME);
    vfs.create_dir_all(&quarantine_dir)
        .map_err(|err| Error::io("create quarantine directory", &quarantine_dir, err))?;
    vfs.sync_dir(dir)
        .map_err(|err| Error::io("fsync directory", dir, err))?;
    move_to_quarantine(vfs, dir, &quarantine_dir, path)
}

fn quarantine_name(vfs: &dyn Vfs, quarantine_dir: &Path, path: &Path) -> Result<String> {
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let store_dir = quarantine_dir.parent().unwrap_or(Path::new("."));
    journal::quarantine_file_name(vfs, store_dir, &base)
}

fn move_to_quarantine(
    vfs: &dyn Vfs,
    dir: &Path,
    quarantine_dir: &Path,
    path: &Path,
) -> Result<PathBuf> {
    let name = quarantine_name(vfs, quarantine_dir, path)?;
    let target = quarantine_dir.join(name);
    vfs.rename(path, &target)
        .map_err(|err| Error::io("move into quarantine", path, err))?;
    vfs.sync_dir(quarantine_dir)
        .map_err(|err| Error::io("fsync directory", quarantine_dir, err))?;
    vfs.sync_dir(dir)
        .map_err(|err| Error::io("fsync directory", dir, err))?;
    Ok(target)
}

fn max_lsn_in(bytes: &[u8]) -> Option<u64> {
    journal::scan::valid_prefix_last_lsn(bytes)
}
