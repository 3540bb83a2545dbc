//! Repair of a store directory of any state type: what open does for a torn tail and
//! crash leftovers, plus (with salvage) keeping the valid prefix of a corrupted log and
//! moving damaged files into `quarantine/`. Never deletes damaged data.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::io::Vfs;
use crate::lock::lock_store;
use crate::plan_fs::PlanFs;
use crate::recovery::{self, Mode, RecoveryReport, SalvageAction, Untyped};
use crate::verify::{self, FileKind, FileStatus, Verdict};

/// What repair may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairOptions {
    /// Also handle corruption: keep the valid prefix, quarantine the rest.
    pub salvage: bool,
    /// Only say what would be done.
    pub dry_run: bool,
    /// Wait up to this long for writers to release the writer lock (`None`: fail at
    /// once if another process holds it). Shared writers hold it only while they commit.
    pub lock_timeout: Option<std::time::Duration>,
}

/// What repair did (or, on a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// The store directory.
    pub dir: PathBuf,
    /// True when nothing was changed.
    pub dry_run: bool,
    /// One line per change, in order.
    pub actions: Vec<String>,
    /// The verdict before repair.
    pub verdict_before: Verdict,
    /// The verdict after repair (`None` on a dry run).
    pub verdict_after: Option<Verdict>,
    /// The recovery that repair ran (`None` on a dry run).
    pub recovery: Option<RecoveryReport>,
}

/// Repairs the store in `dir` (taking the writer lock). Without `salvage`, corruption is
/// refused with the same error open gives. A dry run runs the very same repair against a
/// copy-on-write view of the directory (`plan_fs`) that keeps every change in
/// memory: its actions (and its refusals) are exactly those of the real run.
pub fn repair(vfs: &dyn Vfs, dir: &Path, options: RepairOptions) -> Result<RepairReport> {
    let before = verify::verify(vfs, dir)?.verdict;
    if !options.dry_run {
        return execute(vfs, dir, options, before);
    }
    let plan = PlanFs::new(vfs);
    let mut report = execute(&plan, dir, options, before)?;
    report.dry_run = true;
    report.verdict_after = None;
    report.recovery = None;
    Ok(report)
}

/// The repair itself, on the real file system or on a dry run's view.
fn execute(
    vfs: &dyn Vfs,
    dir: &Path,
    options: RepairOptions,
    before: Verdict,
) -> Result<RepairReport> {
    let salvage = options.salvage;
    let mut report = RepairReport {
        dir: dir.to_path_buf(),
        dry_run: false,
        actions: Vec::new(),
        verdict_before: before,
        verdict_after: None,
        recovery: None,
    };
    let _lock = lock_store(vfs, dir, options.lock_timeout)?;
    let recovered = recovery::recover_with::<Untyped>(vfs, dir, Mode::Writer { salvage })?;
    let recovery = recovered.report;
    for path in &recovery.temp_files_removed {
        report
            .actions
            .push(format!("removed leftover temp file {}", path.display()));
    }
    if let Some(torn) = &recovery.torn_tail {
        report.actions.push(format!(
            "truncated torn tail of {} at offset {} ({} bytes): {}",
            torn.path.display(),
            torn.offset,
            torn.bytes,
            torn.detail
        ));
    }
    for action in &recovery.salvaged {
        report.actions.push(salvage_line(action));
    }
    // Damaged checkpoints that open skipped: move them aside so the store is clean.
    for skipped in &recovery.checkpoints_skipped {
        let target = recovery::move_into_quarantine(vfs, dir, &skipped.path)?;
        report.actions.push(format!(
            "moved unusable checkpoint {} ({}) to {}",
            skipped.path.display(),
            skipped.reason,
            target.display()
        ));
    }
    // Damaged checkpoints older than the one used (open never reads them).
    for row in verify::verify(vfs, dir)?
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Checkpoint && f.status == FileStatus::Damaged)
    {
        let target = recovery::move_into_quarantine(vfs, dir, &row.path)?;
        report.actions.push(format!(
            "moved damaged older checkpoint {} ({}) to {}",
            row.path.display(),
            row.detail.as_deref().unwrap_or("unusable"),
            target.display()
        ));
    }
    report.recovery = Some(recovery);
    report.verdict_after = Some(verify::verify(vfs, dir)?.verdict);
    Ok(report)
}

/// One line saying what salvage did about a defect and what (if anything) was lost.
fn salvage_line(action: &SalvageAction) -> String {
    let moved = action
        .quarantined
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    // `quarantine` reports lost_from_lsn 0 when the checkpoint covers every record of
    // the files it moved.
    let lost = match (action.lost_from_lsn, action.lost_through_lsn) {
        (0, _) => "nothing lost (the checkpoint covers every record in them)".to_string(),
        (from, Some(through)) => format!("lost LSNs {from}..{through}"),
        (from, None) => format!("lost LSNs from {from} on (no valid record after it was readable)"),
    };
    format!(
        "salvaged {:?} in {} at offset {}: kept the valid prefix; {lost}; moved to quarantine: {moved}",
        action.defect.kind,
        action.defect.path.display(),
        action.defect.offset,
    )
}
