//! Read-only verification of a store directory of any state type: a per-file table and a
//! verdict that agrees with what open would do (it runs the same recovery, read-only).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checkpoint::SNAPSHOT_DIR_NAME;
use crate::error::{Error, Result};
use crate::format;
use crate::io::{EntryKind, Vfs};
use crate::journal::{self, DefectKind, ScanOptions};
use crate::lock::LOCK_FILE_NAME;
use crate::recovery::{self, Mode, RecoveryReport, Untyped};

/// What verification concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing to repair.
    Clean,
    /// Damage open repairs by itself, dropping only bytes never known durable: a torn tail,
    /// crash leftovers, a damaged checkpoint with a usable fallback.
    RepairedByOpen,
    /// Damage walstate does not fix by itself and `repair --salvage` does not help
    /// with; the problems say what the operator must do: a damaged snapshot or unneeded
    /// restore file (the store opens; that file is unusable), a `LOCK` that is not a
    /// regular file (open fails until it is moved away), or no usable checkpoint with a
    /// journal that does not reach back to LSN 1 (no state can be rebuilt).
    NeedsAttention,
    /// Damage open refuses: corruption, a missing segment, an LSN gap, an unusable
    /// checkpoint with no fallback. Needs `walstate repair --salvage`.
    NeedsRepair,
}

impl Verdict {
    /// The CLI exit code: 0 clean, 1 repaired by open, 2 needs repair, 4 needs attention.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Clean => 0,
            Verdict::RepairedByOpen => 1,
            Verdict::NeedsRepair => 2,
            Verdict::NeedsAttention => 4,
        }
    }

    /// How serious: the verdict of a store is that of its worst problem.
    fn severity(self) -> u8 {
        match self {
            Verdict::Clean => 0,
            Verdict::RepairedByOpen => 1,
            Verdict::NeedsAttention => 2,
            Verdict::NeedsRepair => 3,
        }
    }

    /// The worse of `self` and `other`.
    fn at_least(self, other: Verdict) -> Verdict {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A journal segment.
    Segment,
    /// A checkpoint.
    Checkpoint,
    /// The state a restore record switches to.
    Restore,
    /// A named snapshot.
    Snapshot,
    /// A temp file left by a crash.
    Temp,
    /// The writer lock file.
    Lock,
    /// The identity file (the store's id).
    Identity,
    /// A schema file (which types wrote the files naming it).
    Schema,
    /// The spare segment: zeros made ahead of need for the next segment.
    Spare,
    /// Anything else.
    Unknown,
}

/// The state of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Valid.
    Ok,
    /// Ends in a torn tail that open truncates.
    TornTail,
    /// Damaged.
    Damaged,
    /// Not checked record by record (after earlier damage).
    NotChecked,
    /// Left over by a crash; open removes it.
    Leftover,
    /// Not part of the store.
    Ignored,
}

/// One row of the verify table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileCheck {
    /// What the file is.
    pub kind: FileKind,
    /// The file.
    pub path: PathBuf,
    /// First LSN it holds (segments) or its state's LSN (checkpoints, snapshots).
    pub first_lsn: Option<u64>,
    /// Last LSN it holds.
    pub last_lsn: Option<u64>,
    /// Size in bytes.
    pub bytes: u64,
    /// Its state.
    pub status: FileStatus,
    /// Details (what is wrong, where).
    pub detail: Option<String>,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The store directory.
    pub dir: PathBuf,
    /// The verdict.
    pub verdict: Verdict,
    /// Every file, segments first, then checkpoints, restore files, snapshots, others.
    pub files: Vec<FileCheck>,
    /// Human-readable problems found (empty when clean).
    pub problems: Vec<String>,
    /// What a read-only recovery found, when it succeeded.
    pub recovery: Option<RecoveryReport>,
    /// The schema the store is written with now, described (state and command types).
    pub schema: String,
}

/// Checks every checkpoint, segment and snapshot of the store in `dir` without changing
/// anything. Errors only when `dir` is not a store, a file has another format version,
/// or I/O fails; damage is reported in the verdict.
pub fn verify(vfs: &dyn Vfs, dir: &Path) -> Result<VerifyReport> {
    let names = match vfs
        .entry_kind(dir)
        .map_err(|err| Error::io("stat", dir, err))?
    {
        Some(EntryKind::Dir) => vfs
            .read_dir(dir)
            .map_err(|err| Error::io("list directory", dir, err))?,
        _ => {
            return Err(Error::NotAStore {
                path: dir.to_path_buf(),
            });
        }
    };
    if !recovery::looks_like_store(&names) {
        return Err(Error::NotAStore {
            path: dir.to_path_buf(),
        });
    }
    let mut problems = Vec::new();
    let (mut verdict, recovery) = match recovery::recover_with::<Untyped>(vfs, dir, Mode::ReadOnly)
    {
        Ok(recovered) => {
            let report = recovered.report;
            let mut verdict = Verdict::Clean;
            if let Some(torn) = &report.torn_tail {
                problems.push(format!(
                    "torn tail in {} at offset {}: {}; open truncates it",
                    torn.path.display(),
                    torn.offset,
                    torn.detail
                ));
                verdict = Verdict::RepairedByOpen;
            }
            for skipped in &report.checkpoints_skipped {
                problems.push(format!(
                    "checkpoint {} is unusable ({}); open falls back to an older one",
                    skipped.path.display(),
                    skipped.reason
                ));
                verdict = Verdict::RepairedByOpen;
            }
            (verdict, Some(report))
        }
        Err(
            err @ (Error::UnsupportedVersion { .. }
            | Error::Io { .. }
            | Error::PermissionDenied { .. }),
        ) => {
            return Err(err);
        }
        Err(err @ Error::NoStateBase { .. }) => {
            problems.push(err.to_string());
            (Verdict::NeedsAttention, None)
        }
        Err(err) => {
            problems.push(err.to_string());
            (Verdict::NeedsRepair, None)
        }
    };

    let mut files = Vec::new();
    let checkpoint_from = check_checkpoints(vfs, dir, &names, &mut files);
    if let Some(report) = &recovery {
        // Damaged checkpoints open never tried (older than the one it uses): not needed
        // now, but no fallback either.
        for row in files
            .iter()
            .filter(|f| f.status == FileStatus::Damaged)
            .filter(|f| !report.checkpoints_skipped.iter().any(|s| s.path == f.path))
        {
            problems.push(format!(
                "checkpoint {} is damaged ({}); open uses a newer one, but this one is no fallback: `walstate repair DIR` moves it to quarantine/",
                row.path.display(),
                row.detail.as_deref().unwrap_or("unusable")
            ));
            verdict = verdict.at_least(Verdict::NeedsAttention);
        }
    }
    check_segments(vfs, dir, checkpoint_from, &mut files)?;
    for name in &names {
        let path = dir.join(name);
        if let Some(lsn) = format::parse_restore_file_name(name) {
            let row = check_checkpoint_file(vfs, &path, FileKind::Restore, lsn);
            if row.status == FileStatus::Damaged {
                verdict = verdict.at_least(restore_file_problem(
                    &row,
                    lsn,
                    recovery.as_ref(),
                    &mut problems,
                ));
            }
            files.push(row);
        } else if name.ends_with(".tmp") {
            problems.push(format!(
                "leftover temp file {}; open removes it",
                path.display()
            ));
            if verdict == Verdict::Clean {
                verdict = Verdict::RepairedByOpen;
            }
            files.push(plain_row(vfs, &path, FileKind::Temp, FileStatus::Leftover));
        } else if name == LOCK_FILE_NAME {
            let mut row = plain_row(vfs, &path, FileKind::Lock, FileStatus::Ok);
            if let Err(err) = crate::lock::check_lock_entry(vfs, dir) {
                row.status = FileStatus::Damaged;
                row.detail = Some("not a regular file (a directory)".into());
                problems.push(err.to_string());
                verdict = verdict.at_least(Verdict::NeedsAttention);
            }
            files.push(row);
        } else if name == format::IDENTITY_FILE_NAME {
            let mut row = plain_row(vfs, &path, FileKind::Identity, FileStatus::Ok);
            match crate::journal::identity::read(vfs, dir)? {
                crate::journal::identity::IdentityFile::Valid(identity) => {
                    row.detail = Some(if identity.legacy_v1() {
                        format!(
                            "store {}; may still hold format-version-1 files: `walstate upgrade {}` rewrites them",
                            identity.store_id,
                            dir.display()
                        )
                    } else {
                        format!("store {}", identity.store_id)
                    });
                }
                crate::journal::identity::IdentityFile::Damaged(reason) => {
                    row.status = FileStatus::Damaged;
                    row.detail = Some(reason);
                }
                crate::journal::identity::IdentityFile::Missing => {}
            }
            files.push(row);
        } else if let Some(id) = format::parse_schema_file_name(name) {
            let row = check_schema_file(vfs, dir, &path, id)?;
            if row.status == FileStatus::Damaged {
                problems.push(format!(
                    "schema file {} is unusable ({}); the store opens with its own types (whose open writes it again, moving this one to quarantine/), but a schema error could not say what changed",
                    path.display(),
                    row.detail.as_deref().unwrap_or("unusable")
                ));
                verdict = verdict.at_least(Verdict::NeedsAttention);
            }
            files.push(row);
        } else if name == format::SPARE_SEGMENT_FILE_NAME {
            files.push(plain_row(vfs, &path, FileKind::Spare, FileStatus::Ok));
        } else if format::parse_segment_file_name(name).is_none()
            && format::parse_checkpoint_file_name(name).is_none()
            && name != SNAPSHOT_DIR_NAME
            && name != recovery::QUARANTINE_DIR_NAME
        {
            files.push(plain_row(
                vfs,
                &path,
                FileKind::Unknown,
                FileStatus::Ignored,
            ));
        }
    }
    for snapshot in crate::checkpoint::list_snapshots(vfs, dir)? {
        let row = check_checkpoint_file(vfs, &snapshot.path, FileKind::Snapshot, snapshot.lsn);
        if row.status == FileStatus::Damaged {
            problems.push(format!(
                "snapshot {:?} ({}) is damaged: {}; the store opens, but this snapshot cannot be restored: move the file out of {SNAPSHOT_DIR_NAME}/ or `walstate snapshot delete` it",
                snapshot.name,
                snapshot.path.display(),
                row.detail.as_deref().unwrap_or("unusable")
            ));
            verdict = verdict.at_least(Verdict::NeedsAttention);
        }
        files.push(row);
    }
    if let Some(report) = &recovery {
        for id in &report.schemas {
            let named = dir.join(format::schema_file_name(*id));
            if vfs
                .entry_kind(&named)
                .map_err(|err| Error::io("stat", &named, err))?
                .is_none()
            {
                problems.push(format!(
                    "schema file {} is missing; the store opens with its own types (whose open writes it again), but a schema error could not say what changed",
                    named.display()
                ));
                verdict = verdict.at_least(Verdict::NeedsAttention);
            }
        }
    }
    let schema = crate::schema::describe_store_schema(vfs, dir)?;
    Ok(VerifyReport {
        dir: dir.to_path_buf(),
        verdict,
        files,
        problems,
        recovery,
        schema,
    })
}

/// The row of a schema file: what it describes, or why it is unusable.
fn check_schema_file(
    vfs: &dyn Vfs,
    dir: &Path,
    path: &Path,
    id: crate::schema::SchemaId,
) -> Result<FileCheck> {
    let mut row = plain_row(vfs, path, FileKind::Schema, FileStatus::Ok);
    let store_id = crate::journal::identity::read(vfs, dir)?
        .valid()
        .map(|identity| identity.store_id);
    match crate::schema::files::read(vfs, dir, id, store_id)? {
        crate::schema::files::SchemaFile::Valid(schema) => row.detail = Some(schema.describe()),
        crate::schema::files::SchemaFile::Damaged(reason) => {
            row.status = FileStatus::Damaged;
            row.detail = Some(reason);
        }
        crate::schema::files::SchemaFile::Missing => {}
    }
    Ok(row)
}

/// Reports a damaged restore file; returns the verdict it calls for. One the journal
/// needs makes recovery fail (already `NeedsRepair`); one past the journal's end is an
/// orphan open removes; one a checkpoint covers is not needed now, but a fallback to an
/// older checkpoint would need it.
fn restore_file_problem(
    row: &FileCheck,
    lsn: u64,
    recovery: Option<&RecoveryReport>,
    problems: &mut Vec<String>,
) -> Verdict {
    let detail = row.detail.as_deref().unwrap_or("unusable");
    let path = row.path.display();
    let Some(recovery) = recovery else {
        problems.push(format!("restore file {path} is damaged: {detail}"));
        return Verdict::NeedsRepair;
    };
    if lsn > recovery.last_lsn {
        problems.push(format!(
            "restore file {path} is damaged ({detail}) but no journal record refers to it; open removes it"
        ));
        return Verdict::RepairedByOpen;
    }
    problems.push(format!(
        "restore file {path} is damaged ({detail}); the checkpoint open uses covers its restore record, so it is not needed now, but a fallback to an older checkpoint would fail: move it out of the store after writing a fresh checkpoint (`walstate checkpoint DIR`)"
    ));
    Verdict::NeedsAttention
}

fn plain_row(vfs: &dyn Vfs, path: &Path, kind: FileKind, status: FileStatus) -> FileCheck {
    let bytes = vfs
        .open(path, crate::io::OpenMode::Read)
        .and_then(|f| f.len())
        .unwrap_or(0);
    FileCheck {
        kind,
        path: path.to_path_buf(),
        first_lsn: None,
        last_lsn: None,
        bytes,
        status,
        detail: None,
    }
}

fn check_checkpoint_file(vfs: &dyn Vfs, path: &Path, kind: FileKind, name_lsn: u64) -> FileCheck {
    let mut row = FileCheck {
        kind,
        path: path.to_path_buf(),
        first_lsn: Some(name_lsn),
        last_lsn: Some(name_lsn),
        bytes: 0,
        status: FileStatus::Ok,
        detail: None,
    };
    match vfs.read_file(path, false) {
        Ok(bytes) => {
            row.bytes = bytes.len() as u64;
            let identity = path
                .parent()
                .map(|parent| {
                    if kind == FileKind::Snapshot {
                        parent.parent().unwrap_or(parent)
                    } else {
                        parent
                    }
                })
                .and_then(|store| crate::journal::identity::read(vfs, store).ok())
                .and_then(|file| file.valid());
            match format::decode_checkpoint(&bytes) {
                Ok((header, _)) if let Some(reason) = recovery::foreign_file(&header, identity) => {
                    row.status = FileStatus::Damaged;
                    row.detail = Some(reason);
                }
                Ok((header, _)) if kind == FileKind::Snapshot || header.lsn == name_lsn => {
                    row.first_lsn = Some(header.lsn);
                    row.last_lsn = Some(header.lsn);
                }
                Ok((header, _)) => {
                    row.status = FileStatus::Damaged;
                    row.detail = Some(format!("header says LSN {}", header.lsn));
                }
                Err(err) => {
                    row.status = FileStatus::Damaged;
                    row.detail = Some(err.describe());
                }
            }
        }
        Err(err) => {
            row.status = FileStatus::Damaged;
            row.detail = Some(format!("unreadable: {err}"));
        }
    }
    row
}

/// Adds checkpoint rows; returns the LSN of the newest valid checkpoint (0 if none).
fn check_checkpoints(
    vfs: &dyn Vfs,
    dir: &Path,
    names: &[String],
    files: &mut Vec<FileCheck>,
) -> u64 {
    let mut newest_valid = 0;
    for name in names {
        if let Some(lsn) = format::parse_checkpoint_file_name(name) {
            let row = check_checkpoint_file(vfs, &dir.join(name), FileKind::Checkpoint, lsn);
            if row.status == FileStatus::Ok {
                newest_valid = newest_valid.max(lsn);
            }
            files.push(row);
        }
    }
    newest_valid
}

fn check_segments(
    vfs: &dyn Vfs,
    dir: &Path,
    checkpoint_lsn: u64,
    files: &mut Vec<FileCheck>,
) -> Result<()> {
    let outcome = journal::scan(
        vfs,
        dir,
        ScanOptions {
            from_lsn: checkpoint_lsn + 1,
            may_map: false,
        },
        |_, _| Ok(()),
    )?;
    for (index, segment) in outcome.segments.iter().enumerate() {
        let mut row = FileCheck {
            kind: FileKind::Segment,
            path: segment.path.clone(),
            first_lsn: (segment.first_lsn > 0).then_some(segment.first_lsn),
            last_lsn: segment.last_lsn,
            bytes: segment.file_len,
            status: FileStatus::Ok,
            detail: None,
        };
        if let Some(defect) = outcome.defect.as_ref().filter(|d| d.segment_index == index) {
            row.status = if defect.kind == DefectKind::TornTail {
                FileStatus::TornTail
            } else {
                FileStatus::Damaged
            };
            row.detail = Some(defect.row_detail());
        }
        files.push(row);
    }
    for path in &outcome.unscanned_segments {
        let mut row = plain_row(vfs, path, FileKind::Segment, FileStatus::NotChecked);
        if let Ok(bytes) = vfs.read_file(path, false)
            && let Ok(header) = format::SegmentHeader::decode(&bytes)
        {
            row.first_lsn = Some(header.first_lsn);
            row.last_lsn = crate::journal::scan::valid_prefix_last_lsn(&bytes);
        }
        row.detail = Some("after the first defect; not replayable until repaired".into());
        files.push(row);
    }
    Ok(())
}
