//! Checkpoint and snapshot files: written atomically (temp file, fsync, rename,
//! directory fsync), listed, loaded with verification, pruned to the retained count.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{CodecFailure, DiskFullOp, Error, Result};
use crate::format;
use std::io;

use crate::io::{EntryKind, OpenMode, Vfs, VfsFile};
use crate::state::StateMachine;

/// Directory (inside the store) holding named snapshots.
pub const SNAPSHOT_DIR_NAME: &str = "snapshots";
/// Longest snapshot name.
pub const SNAPSHOT_NAME_MAX: usize = 64;

/// A checkpoint file in the store directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFile {
    /// LSN from the file name: the state includes every record up to it.
    pub lsn: u64,
    /// Full path.
    pub path: PathBuf,
}

/// A named snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    /// Its name.
    pub name: String,
    /// The LSN of the state it holds (0 when the file is damaged: nothing in it is trusted).
    pub lsn: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Full path.
    pub path: PathBuf,
    /// Why the file cannot be restored (bad checksum, header, length), or `None` when it
    /// is intact (checked like a checkpoint: the whole file's checksum and its header).
    pub damage: Option<String>,
}

/// Why an atomic write failed, and whether the store must be poisoned (a failed fsync).
pub(crate) struct WriteFailure {
    pub error: Error,
    pub poison: bool,
}

/// Writes `dir/name` atomically: `fill` writes the content into `name.tmp`, which is
/// then fsynced, renamed over `name`, and `dir` fsynced. A failed write or rename
/// removes the temp file and leaves the old file untouched; a failed fsync asks the
/// caller to poison. Returns the final path and what `fill` returned.
fn replace_atomically<T>(
    vfs: &dyn Vfs,
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&dyn VfsFile, &Path) -> Result<T>,
) -> std::result::Result<(PathBuf, T), WriteFailure> {
    let final_path = dir.join(name);
    let temp_path = dir.join(format!("{name}.tmp"));
    let _ = vfs.remove_file(&temp_path);
    let fail = |error, poison| WriteFailure { error, poison };
    let file = vfs
        .open(&temp_path, OpenMode::CreateNew)
        .map_err(|err| fail(Error::io("create temp file", &temp_path, err), false))?;
    // A failed write leaves nothing to distrust; a failed fsync does (rule 4): the
    // caller poisons. Told apart by where the failure happened, not by its text.
    let filled = match fill(file.as_ref(), &temp_path) {
        Ok(value) => file
            .sync_all()
            .map(|()| value)
            .map_err(|err| fail(Error::io("fsync", &temp_path, err), true)),
        Err(error) => Err(fail(error, false)),
    };
    drop(file);
    let value = match filled {
        Ok(value) => value,
        Err(failure) => {
            let _ = vfs.remove_file(&temp_path);
            return Err(failure);
        }
    };
    if let Err(err) = vfs.rename(&temp_path, &final_path) {
        let _ = vfs.remove_file(&temp_path);
        return Err(fail(Error::io("rename into place", &temp_path, err), false));
    }
    vfs.sync_dir(dir)
        .map_err(|err| fail(Error::io("fsync directory", dir, err), true))?;
    Ok((final_path, value))
}

/// Deletes snapshot `name` of the store in `dir`, durably. Works on a store of any state
/// type; the caller holds the writer lock.
pub fn delete_snapshot(vfs: &dyn Vfs, dir: &Path, name: &str) -> Result<()> {
    validate_snapshot_name(name)?;
    let snapshot_dir = dir.join(SNAPSHOT_DIR_NAME);
    let path = snapshot_dir.join(snapshot_file_name(name));
    match vfs.remove_file(&path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(Error::SnapshotNotFound {
                name: name.to_owned(),
                path: snapshot_dir,
            });
        }
        Err(err) => return Err(Error::io("delete snapshot", &path, err)),
    }
    vfs.sync_dir(&snapshot_dir)
        .map_err(|err| Error::io("fsync directory", &snapshot_dir, err))
}

/// Creates the snapshot directory of the store in `dir` if missing and makes its entry
/// durable (every time, not only when just created: an earlier attempt may have created
/// it and failed to sync the store directory). A failed fsync asks the caller to poison.
pub(crate) fn prepare_snapshot_dir(
    vfs: &dyn Vfs,
    dir: &Path,
) -> std::result::Result<PathBuf, WriteFailure> {
    let snapshot_dir = dir.join(SNAPSHOT_DIR_NAME);
    let fail = |error, poison| WriteFailure { error, poison };
    if vfs
        .entry_kind(&snapshot_dir)
        .map_err(|err| fail(Error::io("stat", &snapshot_dir, err), false))?
        != Some(EntryKind::Dir)
    {
        vfs.create_dir_all(&snapshot_dir).map_err(|err| {
            fail(
                Error::io("create snapshot directory", &snapshot_dir, err),
                false,
            )
        })?;
    }
    vfs.sync_dir(dir)
        .map_err(|err| fail(Error::io("fsync directory", dir, err), true))?;
    Ok(snapshot_dir)
}

/// Writes `bytes` to `dir/name` atomically (see [`replace_atomically`]).
pub(crate) fn write_atomically(
    vfs: &dyn Vfs,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> std::result::Result<PathBuf, WriteFailure> {
    replace_atomically(vfs, dir, name, |file, path| {
        file.write_all_at(bytes, 0)
            .map_err(|err| write_error(path, err))
    })
    .map(|(path, ())| path)
}

/// A failed write: [`Error::DiskFull`] for ENOSPC, else [`Error::Io`].
fn write_error(path: &Path, err: io::Error) -> Error {
    if crate::error::is_enospc(&err) {
        Error::DiskFull {
            path: path.to_path_buf(),
            offset: 0,
            op: DiskFullOp::WriteFile,
        }
    } else {
        Error::io("write", path, err)
    }
}

/// Bytes buffered between writes to the file while a state streams out.
const STREAM_CHUNK_BYTES: usize = 1 << 20;

/// A state file's writeback is started every this many bytes, and the previous such
/// burst is waited for (see [`ChecksummedWriter::flush_buf`]), so the final fsync has at
/// most two bursts left to flush instead of the whole file. Measured on the 1M-key
/// benchmarks (a 112 MiB file, 2-core VM): the worst commit stall drops from 90–150 ms
/// (one fsync of the whole file) to 40–55 ms. With writes paced at 33.5 MB/s (see
/// [`Pacing`]), W6 of `benches/compare` measured commit p99 1.04–1.08× with 16 MiB
/// bursts and 3.3× with 1 MiB bursts: each burst reaching the disk delays the commits
/// that flush meanwhile, so fewer, larger bursts touch fewer commits.
const WRITEBACK_BURST_BYTES: u64 = 16 << 20;

/// Writes the state at `lsn` as a checkpoint-format file `dir/name`, atomically, without
/// ever holding the encoded state in memory: the encoding streams into the temp file
/// (checksummed on the way), is read back and checked with [`StateMachine::check_encoded`]
/// (so an undecodable state is never renamed into place), fsynced, renamed, and the
/// directory fsynced. An owned `state` (a snapshot) is consumed as it is encoded
/// ([`StateMachine::encode_owned`]) and gone before the read-back; a borrowed one is
/// encoded by reference. Returns the path and the file size.
pub(crate) fn write_state_file<S: StateMachine>(
    vfs: &dyn Vfs,
    dir: &Path,
    name: &str,
    lsn: u64,
    ids: FileIds,
    state: Cow<'_, S>,
    pacing: Pacing<'_>,
) -> std::result::Result<(PathBuf, u64), WriteFailure> {
    replace_atomically(vfs, dir, name, |file, path| {
        stream_state(file, path, lsn, ids, state, pacing)
    })
}

/// What a state file names in its header: the store it belongs to and the schema of
/// its state (whose schema file must exist before the file is written).
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileIds {
    pub(crate) store: format::StoreId,
    pub(crate) schema: format::SchemaId,
}

/// How fast a state file may be written (see `Options::checkpoint_write_rate`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pacing<'a> {
    /// At most this many bytes per second on average; `None`: no limit.
    pub(crate) bytes_per_second: Option<u64>,
    /// Once set (the store is closing), the rest is written without pauses.
    pub(crate) hurry: Option<&'a AtomicBool>,
}

impl Pacing<'_> {
    /// Sleeps until writing `written` bytes since `began` is within the rate.
    fn pause(&self, began: Instant, written: u64) {
        let Some(rate) = self.bytes_per_second.filter(|&rate| rate > 0) else {
            return;
        };
        let due = Duration::from_secs_f64(written as f64 / rate as f64);
        loop {
            if self
                .hurry
                .is_some_and(|hurry| hurry.load(Ordering::Acquire))
            {
                return;
            }
            let elapsed = began.elapsed();
            if elapsed >= due {
                return;
            }
            // In short steps, so a close does not wait out a long pause.
            std::thread::sleep((due - elapsed).min(Duration::from_millis(50)));
        }
    }
}

/// Streams header, state and trailer into `file`, then reads the state back and checks
/// it decodes and matches its checksum. Returns the file length.
fn stream_state<S: StateMachine>(
    file: &dyn VfsFile,
    path: &Path,
    lsn: u64,
    ids: FileIds,
    state: Cow<'_, S>,
    pacing: Pacing<'_>,
) -> Result<u64> {
    let io_error = |op, err: io::Error| {
        if crate::error::is_enospc(&err) {
            Error::DiskFull {
                path: path.to_path_buf(),
                offset: 0,
                op: DiskFullOp::WriteFile,
            }
        } else {
            Error::io(op, path, err)
        }
    };
    let mut out = ChecksummedWriter {
        file,
        offset: format::CHECKPOINT_HEADER_LEN as u64,
        started_to: format::CHECKPOINT_HEADER_LEN as u64,
        waited_to: format::CHECKPOINT_HEADER_LEN as u64,
        buf: Vec::with_capacity(STREAM_CHUNK_BYTES),
        crc: crc32fast::Hasher::new(),
        failed: None,
        pacing,
        began: Instant::now(),
    };
    let encoded = match state {
        Cow::Owned(state) => state.encode_owned(&mut out),
        Cow::Borrowed(state) => S::CODEC.encode_into(state, &mut out).map(drop),
    };
    let flushed = out.flush_buf();
    // Not needed for the read-back, which has its own buffer.
    out.buf = Vec::new();
    if let Some((op, err)) = out.failed.take() {
        return Err(io_error(op, err));
    }
    flushed.map_err(|err| io_error("write", err))?;
    encoded?;
    let state_len = out.offset - format::CHECKPOINT_HEADER_LEN as u64;
    let header = format::encode_checkpoint_header(lsn, state_len, ids.store, ids.schema.get());
    let trailer = format::checkpoint_trailer(&header, &out.crc);
    file.write_all_at(&header, 0)
        .map_err(|err| io_error("write", err))?;
    file.write_all_at(&trailer, out.offset)
        .map_err(|err| io_error("write", err))?;

    // Read the state back from the file and check it: what is on disk must decode.
    let mut back = ChecksummedReader {
        file,
        offset: format::CHECKPOINT_HEADER_LEN as u64,
        end: out.offset,
        buf: Vec::new(),
        pos: 0,
        crc: crc32fast::Hasher::new(),
        failed: None,
    };
    let checked = S::check_encoded(&mut back, state_len);
    if let Some(err) = back.failed.take() {
        return Err(Error::io("read back checkpoint", path, err));
    }
    checked.map_err(|err| {
        Error::codec(
            CodecFailure::Unstorable,
            format!("the state cannot be checkpointed because it does not decode back: {err}"),
        )
    })?;
    if back.offset != back.end
        || back.pos != back.buf.len()
        || back.crc.clone().finalize() != out.crc.clone().finalize()
    {
        return Err(Error::codec(
            CodecFailure::ReadBackMismatch,
            "the checkpoint read back differs from what was written",
        ));
    }
    Ok(out.offset + format::CHECKPOINT_TRAILER_LEN as u64)
}

/// Buffers sequential writes to a file, checksums everything written, and paces the
/// file's writeback.
struct ChecksummedWriter<'a> {
    file: &'a dyn VfsFile,
    offset: u64,
    /// Everything before this offset has been through [`VfsFile::start_writeback`].
    started_to: u64,
    /// Everything before this offset has been through [`VfsFile::wait_writeback`].
    waited_to: u64,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    /// The first I/O error and the call that failed (bincode reports it without the
    /// errno).
    failed: Option<(&'static str, io::Error)>,
    pacing: Pacing<'a>,
    began: Instant,
}

impl ChecksummedWriter<'_> {
    /// Checksums and writes the buffered chunk. Every [`WRITEBACK_BURST_BYTES`], waits
    /// for the writeback of the previous burst and starts that of the new one: the page
    /// cache never holds much of the file dirty, so the final fsync does not hold the
    /// disk for long in front of the journal's fdatasyncs. The hints promise nothing
    /// (the final fsync still decides durability), but a failed one fails the file: the
    /// kernel may report a writeback error only once, to the hint and not to the fsync.
    fn flush_buf(&mut self) -> io::Result<()> {
        if let Some((_, err)) = &self.failed {
            // Never retried: the file is failed already.
            return Err(copy_of(err));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        // One checksum pass over the whole chunk: far cheaper than over the small
        // pieces the encoder writes.
        self.crc.update(&self.buf);
        let start = self.offset;
        let len = self.buf.len() as u64;
        let written = self.file.write_all_at(&self.buf, start);
        self.check("write", written)?;
        self.offset += len;
        self.buf.clear();
        self.pacing.pause(self.began, self.offset);
        if self.offset - self.started_to < WRITEBACK_BURST_BYTES {
            return Ok(());
        }
        if self.started_to > self.waited_to {
            let waited = self
                .file
                .wait_writeback(self.waited_to, self.started_to - self.waited_to);
            self.check("wait for writeback", waited)?;
            self.waited_to = self.started_to;
        }
        let started = self
            .file
            .start_writeback(self.started_to, self.offset - self.started_to);
        self.check("start writeback", started)?;
        self.started_to = self.offset;
        Ok(())
    }

    /// Passes `result` on; a failure is recorded first (the first one, with the name of
    /// the call) and the encoder gets a copy.
    fn check(&mut self, op: &'static str, result: io::Result<()>) -> io::Result<()> {
        result.map_err(|err| {
            let copy = copy_of(&err);
            self.failed.get_or_insert((op, err));
            copy
        })
    }
}

impl io::Write for ChecksummedWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= STREAM_CHUNK_BYTES {
            self.flush_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()
    }
}

/// Reads a byte range of a file in chunks, checksumming every chunk it reads.
struct ChecksummedReader<'a> {
    file: &'a dyn VfsFile,
    offset: u64,
    end: u64,
    buf: Vec<u8>,
    pos: usize,
    crc: crc32fast::Hasher,
    /// The first I/O error (the decoder reports it as a decode error).
    failed: Option<io::Error>,
}

impl ChecksummedReader<'_> {
    /// Loads the next chunk when the current one is used up. Returns false at the end.
    fn fill(&mut self) -> io::Result<bool> {
        if self.pos < self.buf.len() {
            return Ok(true);
        }
        let want = (self.end - self.offset).min(STREAM_CHUNK_BYTES as u64) as usize;
        if want == 0 {
            return Ok(false);
        }
        self.buf.resize(want, 0);
        if let Err(err) = self.file.read_exact_at(&mut self.buf, self.offset) {
            let copy = copy_of(&err);
            self.failed.get_or_insert(err);
            return Err(copy);
        }
        // Checksummed whole, as it arrives: the caller must consume all of it, which
        // `stream_state` checks at the end.
        self.crc.update(&self.buf);
        self.offset += want as u64;
        self.pos = 0;
        Ok(true)
    }
}

impl io::Read for ChecksummedReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || !self.fill()? {
            return Ok(0);
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    /// The decoder asks for every field (often a single byte) with `read_exact`: serve
    /// it straight from the chunk, without the default's loop or a `memcpy` call per
    /// byte. This is most of the CPU time of a checkpoint's read-back check.
    fn read_exact(&mut self, out: &mut [u8]) -> io::Result<()> {
        let end = self.pos + out.len();
        if let Some(src) = self.buf.get(self.pos..end) {
            if let ([byte], [value]) = (&mut *out, src) {
                *byte = *value;
            } else {
                out.copy_from_slice(src);
            }
            self.pos = end;
            return Ok(());
        }
        let mut rest = out;
        while !rest.is_empty() {
            match self.read(rest)? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the checkpoint ends early",
                    ));
                }
                n => rest = &mut rest[n..],
            }
        }
        Ok(())
    }
}

/// A copy of `err` to hand to the encoder or decoder, while the original (with its errno:
/// they keep only the message of what they are given) is recorded by the caller.
fn copy_of(err: &io::Error) -> io::Error {
    io::Error::new(err.kind(), err.to_string())
}

/// Lists the checkpoints of `dir`, oldest first.
pub fn list_checkpoints(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<CheckpointFile>> {
    let names = vfs
        .read_dir(dir)
        .map_err(|err| Error::io("list directory", dir, err))?;
    let mut found: Vec<CheckpointFile> = names
        .iter()
        .filter_map(|name| {
            format::parse_checkpoint_file_name(name).map(|lsn| CheckpointFile {
                lsn,
                path: dir.join(name),
            })
        })
        .collect();
    found.sort_by_key(|c| c.lsn);
    Ok(found)
}

/// Deletes all but the newest `retained` checkpoints, fsyncing the directory after each.
/// Returns the deleted paths.
pub(crate) fn prune_checkpoints(
    vfs: &dyn Vfs,
    dir: &Path,
    retained: usize,
) -> Result<Vec<PathBuf>> {
    let all = list_checkpoints(vfs, dir)?;
    let excess = all.len().saturating_sub(retained);
    let mut deleted = Vec::new();
    for old in &all[..excess] {
        vfs.remove_file(&old.path)
            .map_err(|err| Error::io("delete old checkpoint", &old.path, err))?;
        vfs.sync_dir(dir)
            .map_err(|err| Error::io("fsync directory", dir, err))?;
        deleted.push(old.path.clone());
    }
    Ok(deleted)
}

/// Checks a snapshot name: 1..=64 characters of `A-Z a-z 0-9 . _ -`, not starting with `.`.
pub fn validate_snapshot_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= SNAPSHOT_NAME_MAX
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "snapshot name {name:?} must be 1..={SNAPSHOT_NAME_MAX} characters of A-Z a-z 0-9 . _ - and not start with '.'"
        )))
    }
}

/// File name of snapshot `name`.
pub fn snapshot_file_name(name: &str) -> String {
    format!("{name}.ckpt")
}

/// Lists the named snapshots of the store in `dir`, by name.
pub fn list_snapshots(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<SnapshotInfo>> {
    let snapshot_dir = dir.join(SNAPSHOT_DIR_NAME);
    if vfs
        .entry_kind(&snapshot_dir)
        .map_err(|err| Error::io("stat", &snapshot_dir, err))?
        != Some(EntryKind::Dir)
    {
        return Ok(Vec::new());
    }
    let identity = crate::journal::identity::read(vfs, dir)?.valid();
    let mut found = Vec::new();
    for name in vfs
        .read_dir(&snapshot_dir)
        .map_err(|err| Error::io("list directory", &snapshot_dir, err))?
    {
        let Some(stem) = name.strip_suffix(".ckpt") else {
            continue;
        };
        if validate_snapshot_name(stem).is_err() {
            continue;
        }
        let path = snapshot_dir.join(&name);
        let bytes = vfs
            .read_file(&path, false)
            .map_err(|err| Error::io("read snapshot", &path, err))?;
        let (lsn, damage) = match format::decode_checkpoint(&bytes) {
            Ok((header, _)) => (header.lsn, crate::recovery::foreign_file(&header, identity)),
            Err(err) => (0, Some(err.describe())),
        };
        found.push(SnapshotInfo {
            name: stem.to_owned(),
            lsn,
            bytes: bytes.len() as u64,
            path,
            damage,
        });
    }
    Ok(found)
}
