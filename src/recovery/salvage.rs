//! Salvage: moving the damaged part of the journal (and what depends on it) into
//! `quarantine/`, never deleting it.

use std::path::{Path, PathBuf};

use super::report::SalvageAction;
use crate::checkpoint::{self};
use crate::error::{DiskFullOp, Error, Result};
use crate::format::{self};
use crate::io::Vfs;
use crate::journal::QUARANTINE_DIR_NAME;
use crate::journal::{self, Defect, DefectKind, ScanOutcome};

/// Moves the damage out of the log into `quarantine/`, keeping the valid prefix. Never
/// deletes: a segment cut at the damage is first copied whole into quarantine.
pub(crate) fn quarantine(
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
        // Nothing is cut before the whole file is safe in quarantine, so a full disk
        // here leaves the store as it was.
        checkpoint::write_atomically(vfs, &quarantine_dir, &name, &bytes)
            .map_err(|failure| failure.error.during(DiskFullOp::Salvage))?;
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

pub(crate) fn quarantine_name(vfs: &dyn Vfs, quarantine_dir: &Path, path: &Path) -> Result<String> {
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let store_dir = quarantine_dir.parent().unwrap_or(Path::new("."));
    journal::quarantine_file_name(vfs, store_dir, &base)
}

pub(crate) fn move_to_quarantine(
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

pub(crate) fn max_lsn_in(bytes: &[u8]) -> Option<u64> {
    journal::scan::valid_prefix_last_lsn(bytes)
}
