//! Open-time orchestration: find or create the store, load the newest valid checkpoint,
//! replay the journal after it, truncate a torn tail, refuse (or, when asked, salvage)
//! corruption, and say exactly what was done in a [`RecoveryReport`].

mod cleanup;
mod follow;
mod identity_check;
mod replay;
mod report;
mod salvage;

use std::path::Path;
use std::time::Instant;

use crate::error::Result;
use crate::format::{self, SchemaId};
use crate::io::Vfs;
use crate::journal::{self, DefectKind, ScanOutcome, TornTailTruncation};
use crate::lock::LOCK_FILE_NAME;
use crate::schema::gate::SchemaGate;
use crate::state::StateMachine;

// Re-exported from their home in `format`, where the byte layouts are.
#[cfg(feature = "internals")]
#[doc(no_inline)]
pub use crate::format::{RECORD_KIND_COMMAND, RECORD_KIND_RESTORE, RestoreMarker};
pub use crate::journal::QUARANTINE_DIR_NAME;
use cleanup::{remove_orphan_restore_files, remove_temp_files};
pub(crate) use follow::{CaughtUp, catch_up};
pub(crate) use identity_check::foreign_file;
use identity_check::prepare_identity;
use replay::replay;
pub(crate) use replay::{Replayer, Typed, Untyped, load_checkpoint_with};
pub use report::{CheckpointUsed, RecoveryReport, SalvageAction, SkippedCheckpoint};
pub(crate) use salvage::move_into_quarantine;
use salvage::quarantine;

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

/// Bound on salvage rounds (each quarantines at least one file).
const SALVAGE_ROUNDS_MAX: usize = 64;

/// True when `names` (a directory's entries) make it a walstate store: see
/// [`is_store_file_name`].
pub(crate) fn looks_like_store(names: &[String]) -> bool {
    names.iter().any(|name| is_store_file_name(name))
}

/// True for a name that makes its directory a walstate store: the identity file, a
/// segment, checkpoint, restore or schema file, or the temp file of one (a crash while
/// the store was being created). The one rule open, verify and the CLI use.
///
/// The lock file alone does not count: it is the first file creation makes, so a
/// directory holding only `LOCK` is a creation that did not finish (a crash, a full
/// disk), with nothing ever committed to it. Read commands call it not a store, and
/// creating a store there works as in an empty directory. See [`is_creation_leftover`].
pub fn is_store_file_name(name: &str) -> bool {
    let stem = name.strip_suffix(".tmp").unwrap_or(name);
    stem == format::IDENTITY_FILE_NAME
        || format::parse_segment_file_name(stem).is_some()
        || format::parse_checkpoint_file_name(stem).is_some()
        || format::parse_restore_file_name(stem).is_some()
        || format::parse_schema_file_name(stem).is_some()
}

/// True for the name of the lock file (or its temp file): what a store creation that
/// did not finish leaves behind. A directory holding only these is not a store, but a
/// store can be created in it.
pub fn is_creation_leftover(name: &str) -> bool {
    name.strip_suffix(".tmp").unwrap_or(name) == LOCK_FILE_NAME
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
    // The state's LSN and the journal's next LSN agree: the writer appends right after
    // what the state holds, and a reader follows from there.
    debug_assert_eq!(recovered.outcome.next_lsn.max(1), recovered.lsn + 1);
    report.last_lsn = recovered.lsn;
    report.segments_scanned = recovered.outcome.segments.len();
    report.read_format_v1 |= recovered
        .outcome
        .segments
        .iter()
        .any(|s| s.version == format::v1::FORMAT_VERSION_V1);
    report.schemas = schemas_named(&report, &recovered.outcome);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    trace_recovery(&report);
    recovered.report = report;
    Ok(recovered)
}

/// The `tracing` events of a recovery: one summary, and a warning for each thing it
/// found damaged and handled (a torn tail cut, a range salvaged, a checkpoint skipped).
fn trace_recovery(report: &RecoveryReport) {
    tracing::info!(
        target: "walstate",
        dir = %report.dir.display(),
        read_only = report.read_only,
        checkpoint_lsn = report.checkpoint.as_ref().map_or(0, |used| used.lsn),
        records_replayed = report.records_replayed,
        bytes_replayed = report.bytes_replayed,
        last_lsn = report.last_lsn,
        segments = report.segments_scanned,
        temp_files_removed = report.temp_files_removed.len(),
        elapsed_ms = report.elapsed_ms,
        "store recovered"
    );
    if let Some(torn) = &report.torn_tail {
        tracing::warn!(
            target: "walstate",
            segment = %torn.path.display(),
            offset = torn.offset,
            bytes = torn.bytes,
            quarantined = %torn.quarantined.as_deref().map_or_else(String::new, |p| p.display().to_string()),
            detail = %torn.detail,
            "torn tail"
        );
    }
    for skipped in &report.checkpoints_skipped {
        tracing::warn!(
            target: "walstate",
            checkpoint = %skipped.path.display(),
            reason = %skipped.reason,
            "checkpoint skipped"
        );
    }
    for action in &report.salvaged {
        tracing::warn!(
            target: "walstate",
            lost_from_lsn = action.lost_from_lsn,
            quarantined = action.quarantined.len(),
            segment = %action.defect.path.display(),
            offset = action.defect.offset,
            lsn = action.defect.expected_lsn,
            defect = %action.defect.detail,
            "salvaged past damage"
        );
    }
}

/// The schema ids the used checkpoint and the scanned segments name, each once, the
/// checkpoint's first (0, "none recorded", left out).
fn schemas_named(report: &RecoveryReport, outcome: &ScanOutcome) -> Vec<SchemaId> {
    let mut ids = Vec::new();
    let checkpoint_schema = report
        .checkpoint
        .as_ref()
        .and_then(|used| SchemaId::new(used.schema_id));
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
