//! Upgrading a store of format version 1 to version 2 in place (`wal-format.md`,
//! appendix A), for a store of any state type: the state and command bytes do not
//! change between the versions, only their framing, so every version-1 file is
//! re-framed byte for byte and replaced atomically. Crash-safe at every step: segments
//! are rewritten newest first (a version-1 segment may precede version-2 ones, never
//! follow them), each file goes through temp file + fsync + rename + dir fsync, and the
//! identity's `LEGACY_V1` flag is cleared only once no version-1 file is left. A crash
//! leaves a readable mixed store; running the upgrade again finishes it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checkpoint::{self, SNAPSHOT_DIR_NAME};
use crate::error::{Error, Result};
use crate::format::{self, Identity, RECORD_KIND_SEAL, SegmentHeader, StoreId, v1};
use crate::io::{EntryKind, Vfs};
use crate::journal::identity;
use crate::lock::lock_store;
use crate::recovery::{self, Mode, Untyped};

/// What an upgrade did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpgradeReport {
    /// The store directory.
    pub dir: PathBuf,
    /// True when nothing was changed.
    pub dry_run: bool,
    /// The store's id.
    pub store_id: Option<StoreId>,
    /// Version-1 files rewritten (or to be rewritten) in version 2, in order.
    pub rewritten: Vec<PathBuf>,
    /// True when the identity's `LEGACY_V1` flag was (or would be) cleared.
    pub legacy_flag_cleared: bool,
}

/// Rewrites every version-1 file of the store in `dir` in version 2, taking the writer
/// lock. First runs a writer recovery (which creates the identity file and handles a
/// torn tail exactly as open does; corruption is refused). A dry run lists the same
/// files in the same order and changes nothing.
pub fn upgrade(vfs: &dyn Vfs, dir: &Path, dry_run: bool) -> Result<UpgradeReport> {
    let _lock = lock_store(vfs, dir, None)?;
    let mode = if dry_run {
        Mode::ReadOnly
    } else {
        Mode::Writer { salvage: false }
    };
    let recovered = recovery::recover_with::<Untyped>(vfs, dir, mode)?;
    let mut report = UpgradeReport {
        dir: dir.to_path_buf(),
        dry_run,
        store_id: recovered.report.store_id,
        ..UpgradeReport::default()
    };
    let plan = plan(vfs, dir)?;
    let identity = identity::read(vfs, dir)?.valid();
    report.legacy_flag_cleared = identity.is_none_or(|id| id.legacy_v1());
    report.rewritten = plan.iter().map(|file| file.path.clone()).collect();
    if dry_run {
        return Ok(report);
    }
    let Some(identity) = identity else {
        return Err(Error::InvalidArgument(format!(
            "{}: the writer open did not leave an identity file; run `walstate verify` on the directory",
            dir.display()
        )));
    };
    for file in &plan {
        rewrite(vfs, file, identity.store_id)?;
    }
    if identity.legacy_v1() {
        let cleared = Identity {
            flags: identity.flags & !format::IDENTITY_FLAG_LEGACY_V1,
            ..identity
        };
        identity::write(vfs, dir, cleared)?;
    }
    Ok(report)
}

/// A version-1 file to rewrite.
#[derive(Debug, Clone)]
struct Planned {
    path: PathBuf,
    segment: bool,
}

/// The version-1 files of `dir`: segments newest first, then checkpoints, restore files
/// and snapshots.
fn plan(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<Planned>> {
    let mut segments = Vec::new();
    for segment in crate::journal::list_segments(vfs, dir)?.into_iter().rev() {
        if is_v1(vfs, &segment.path)? {
            segments.push(Planned {
                path: segment.path,
                segment: true,
            });
        }
    }
    let mut others = Vec::new();
    let mut candidates: Vec<PathBuf> = vfs
        .read_dir(dir)
        .map_err(|err| Error::io("list directory", dir, err))?
        .into_iter()
        .filter(|name| {
            format::parse_checkpoint_file_name(name).is_some()
                || format::parse_restore_file_name(name).is_some()
        })
        .map(|name| dir.join(name))
        .collect();
    let snapshot_dir = dir.join(SNAPSHOT_DIR_NAME);
    if vfs
        .entry_kind(&snapshot_dir)
        .map_err(|err| Error::io("stat", &snapshot_dir, err))?
        == Some(EntryKind::Dir)
    {
        candidates.extend(
            checkpoint::list_snapshots(vfs, dir)?
                .into_iter()
                .map(|snapshot| snapshot.path),
        );
    }
    candidates.sort();
    for path in candidates {
        if is_v1(vfs, &path)? {
            others.push(Planned {
                path,
                segment: false,
            });
        }
    }
    segments.extend(others);
    Ok(segments)
}

fn is_v1(vfs: &dyn Vfs, path: &Path) -> Result<bool> {
    let bytes = vfs
        .read_file(path, false)
        .map_err(|err| Error::io("read", path, err))?;
    Ok(format::claimed_version(&bytes) == Some(v1::FORMAT_VERSION_V1))
}

fn rewrite(vfs: &dyn Vfs, file: &Planned, store_id: StoreId) -> Result<()> {
    let bytes = vfs
        .read_file(&file.path, false)
        .map_err(|err| Error::io("read", &file.path, err))?;
    let damaged = |detail: String| Error::Corruption {
        path: file.path.clone(),
        offset: 0,
        lsn: 0,
        detail: format!(
            "{detail}; the upgrade rewrites only intact files: run `walstate repair --salvage` first"
        ),
    };
    let rewritten = if file.segment {
        reframe_segment(&bytes, store_id).map_err(damaged)?
    } else {
        let (header, state) =
            format::decode_checkpoint(&bytes).map_err(|err| damaged(err.describe()))?;
        format::encode_checkpoint(header.lsn, store_id, 0, state)
    };
    let dir = file.path.parent().unwrap_or(Path::new("."));
    let name = file
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    checkpoint::write_atomically(vfs, dir, &name, &rewritten)
        .map(drop)
        .map_err(|failure| failure.error)
}

/// The version-2 image of a version-1 segment: the same sequence number, first LSN and
/// records (LSNs, kinds, flags, payloads), each frame's frontier its own offset (the new
/// file is synced whole before it replaces the old), and a seal after the last record.
fn reframe_segment(bytes: &[u8], store_id: StoreId) -> std::result::Result<Vec<u8>, String> {
    let header = SegmentHeader::decode(bytes).map_err(|err| format!("{err:?}"))?;
    let mut out = SegmentHeader::new(
        header.segment_seq,
        header.first_lsn,
        header.record_payload_max,
        0,
        store_id,
        0,
    )
    .encode()
    .to_vec();
    let mut offset = header.data_start();
    let mut next_lsn = header.first_lsn;
    while offset < bytes.len() {
        if bytes[offset..].iter().all(|&b| b == 0) {
            break;
        }
        let record = v1::decode_record(&bytes[offset..], header.record_payload_max)
            .map_err(|err| format!("{} at offset {offset}", err.describe()))?;
        let frontier = out.len() as u64;
        format::encode_record(
            &mut out,
            record.lsn,
            record.kind,
            record.flags,
            frontier,
            record.payload,
        );
        next_lsn = record.lsn + 1;
        offset += record.frame_len();
    }
    let frontier = out.len() as u64;
    format::encode_record(&mut out, next_lsn, RECORD_KIND_SEAL, 0, frontier, b"");
    Ok(out)
}
