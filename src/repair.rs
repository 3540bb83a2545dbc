//! Repair of a store directory of any state type: what open does for a torn tail and
//! crash leftovers, plus (with salvage) keeping the valid prefix of a corrupted log and
//! moving damaged files into `quarantine/`. Never deletes damaged data.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::io::Vfs;
use crate::lock::lock_store;
use crate::recovery::{self, Mode, QUARANTINE_DIR_NAME, RecoveryReport, Untyped};
use crate::verify::{self, FileKind, FileStatus, Verdict, VerifyReport};

/// What repair may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairOptions {
    /// Also handle corruption: keep the valid prefix, quarantine the rest.
    pub salvage: bool,
    /// Only say what would be done.
    pub dry_run: bool,
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
/// refused with the same error open gives.
pub fn repair(vfs: &dyn Vfs, dir: &Path, options: RepairOptions) -> Result<RepairReport> {
    let before = verify::verify(vfs, dir)?;
    let mut report = RepairReport {
        dir: dir.to_path_buf(),
        dry_run: options.dry_run,
        actions: Vec::new(),
        verdict_before: before.verdict,
        verdict_after: None,
        recovery: None,
    };
    if options.dry_run {
        // The real run takes the writer lock first: predict its refusal.
        crate::lock::check_lock_entry(vfs, dir)?;
        report.actions = planned_actions(&before, options.salvage);
        return Ok(report);
    }
    let _lock = lock_store(vfs, dir, None)?;
    let recovered = recovery::recover_with::<Untyped>(
        vfs,
        dir,
        Mode::Writer {
            salvage: options.salvage,
        },
    )?;
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
        report.actions.push(format!(
            "salvaged {:?} in {} at offset {}: kept the valid prefix; lost LSNs {}..{}; moved to quarantine: {}",
            action.defect.kind,
            action.defect.path.display(),
            action.defect.offset,
            action.lost_from_lsn,
            action
                .lost_through_lsn
                .map_or("(unknown)".to_string(), |l| l.to_string()),
            action
                .quarantined
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // Damaged checkpoints that open skipped: move them aside so the store is clean.
    for skipped in &recovery.checkpoints_skipped {
        let target = quarantine_file(vfs, dir, &skipped.path)?;
        report.actions.push(format!(
            "moved unusable checkpoint {} ({}) to {}",
            skipped.path.display(),
            skipped.reason,
            target.display()
        ));
    }
    report.recovery = Some(recovery);
    report.verdict_after = Some(verify::verify(vfs, dir)?.verdict);
    Ok(report)
}

fn planned_actions(before: &VerifyReport, salvage: bool) -> Vec<String> {
    let mut actions = Vec::new();
    for file in &before.files {
        let detail = file.detail.clone().unwrap_or_default();
        match (file.kind, file.status) {
            (FileKind::Temp, FileStatus::Leftover) => {
                actions.push(format!("would remove leftover temp file {}", file.path.display()))
            }
            (FileKind::Segment, FileStatus::TornTail) => {
                actions.push(format!("would truncate the torn tail of {}: {detail}", file.path.display()))
            }
            (FileKind::Checkpoint, FileStatus::Damaged) => actions.push(format!(
                "would move unusable checkpoint {} to {QUARANTINE_DIR_NAME}/: {detail}",
                file.path.display()
            )),
            (FileKind::Segment, FileStatus::Damaged) if salvage => actions.push(format!(
                "would keep the valid prefix of {} and copy the whole file to {QUARANTINE_DIR_NAME}/: {detail}",
                file.path.display()
            )),
            (FileKind::Segment, FileStatus::NotChecked) if salvage => actions.push(format!(
                "would move {} (LSNs {}..{}) to {QUARANTINE_DIR_NAME}/",
                file.path.display(),
                file.first_lsn.map_or("?".into(), |l| l.to_string()),
                file.last_lsn.map_or("?".into(), |l| l.to_string())
            )),
            (FileKind::Segment, FileStatus::Damaged) => actions.push(format!(
                "cannot repair {} without --salvage: {detail}",
                file.path.display()
            )),
            _ => {}
        }
    }
    if before.verdict == Verdict::NeedsRepair && !before.problems.is_empty() && actions.is_empty() {
        actions.extend(before.problems.iter().map(|p| format!("problem: {p}")));
    }
    actions
}

fn quarantine_file(vfs: &dyn Vfs, dir: &Path, path: &Path) -> Result<PathBuf> {
    recovery::move_into_quarantine(vfs, dir, path)
}
