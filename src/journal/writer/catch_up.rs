//! A shared writer catching up under the writer lock: before a round writes, whatever
//! other processes appended since this writer's last look is applied to the state (by
//! the store's [`CatchUpFn`]) and the segment writer is moved past it, so this writer's
//! records follow theirs and its commands are evaluated against everything before them.
//!
//! Checking costs two system calls when nothing is new: a read of a frame header's
//! first bytes at the write position (end of file, or zeros in a preallocated segment,
//! mean no frame) and a look for the next segment. Anything the follower cannot explain
//! while holding the lock (a segment deleted under it, bytes that are not a complete
//! group) is not a write in flight, since nobody else may write: it is a dead holder's
//! leftover or another process's checkpoint, and the store recovers again in writer mode
//! (the torn-tail rule, quarantine) and the writer resumes after what that found.

use std::path::Path;

use super::segment_writer::{LiveSegment, ResumedSegment, SegmentWriter};
use super::{Placement, Shared, journal_after, rewrite_as_read};
use crate::error::{Error, Result};
use crate::format::{self, SEGMENT_FLAG_PREALLOCATED, SEGMENT_HEADER_LEN, SegmentHeader};
use crate::io::OpenMode;
use crate::journal::follow::TailPosition;
use crate::journal::scan::ScanOutcome;

/// Where the store's catch-up left the journal.
pub(crate) enum CaughtUpTo {
    /// Every complete group up to this position was applied; nothing follows it.
    At(TailPosition),
    /// The store recovered again (as a writer) and holds the state this outcome
    /// describes.
    Recovered(ScanOutcome),
}

/// The store's catch-up: applies everything after the position to its state, in LSN
/// order, and says where that left the journal. Runs holding the writer lock, in the
/// round's hook turn (every earlier commit of this process is applied).
pub(crate) type CatchUpFn = Box<dyn Fn(TailPosition) -> Result<CaughtUpTo> + Send + Sync>;

/// Bytes of a frame's header read to see whether a frame starts at the write position:
/// every frame starts with its length and checksum, never all zeros.
const PROBE_BYTES: usize = 8;

impl Shared {
    /// Takes a shared writer's lease for round `round_number` if this process does not
    /// hold it, and catches up with what others appended meanwhile. An exclusive writer
    /// has nothing to do.
    pub(super) fn take_lease(&self, writer: &mut SegmentWriter, round_number: u64) -> Result<()> {
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        if !lease.acquire()? {
            return Ok(());
        }
        assert_eq!(
            writer.buffered(),
            0,
            "nothing is buffered while the writer lock is not held"
        );
        let caught_up = match self.foreign_appends(writer) {
            Ok(false) => Ok(()),
            Ok(true) => {
                // Foreign records go to the state after this process's earlier commits
                // (already durable, their hooks maybe still to run) and before this
                // round's.
                self.barrier.wait_until_turn(round_number);
                self.catch_up(writer)
            }
            Err(err) => Err(err),
        };
        if caught_up.is_err() {
            self.release_lease_if_idle(writer);
        }
        caught_up
    }

    /// Releases a shared writer's lease when nothing acknowledged waits in the buffer
    /// and no section pinned it; a poisoned writer lets go in any case.
    pub(super) fn release_lease_if_idle(&self, writer: &SegmentWriter) {
        if let Some(lease) = &self.lease {
            if self.health.is_poisoned() {
                lease.release();
            } else if let Some(until) = lease.after_round(writer.buffered()) {
                self.keeper.linger_started(until);
            }
        }
    }

    /// Whether anything was appended after this writer's position: a frame at the write
    /// position, or a next segment. Without an active segment, always (the follower
    /// judges).
    pub(super) fn foreign_appends(&self, writer: &SegmentWriter) -> Result<bool> {
        let Some(seq) = writer.last_seq() else {
            let first = self.dir.join(format::segment_file_name(1));
            return Ok(self
                .writer_vfs(writer)
                .entry_kind(&first)
                .map_err(|err| Error::io("stat", &first, err))?
                .is_some());
        };
        let Some(file) = writer.active_file() else {
            return Ok(true);
        };
        let mut probe = [0u8; PROBE_BYTES];
        let read = file
            .read_at(&mut probe, writer.offset())
            .map_err(|err| Error::io("read segment", writer.active_path(), err))?;
        if probe[..read].iter().any(|&byte| byte != 0) {
            return Ok(true);
        }
        let next = self.dir.join(format::segment_file_name(seq + 1));
        Ok(self
            .writer_vfs(writer)
            .entry_kind(&next)
            .map_err(|err| Error::io("stat", &next, err))?
            .is_some())
    }

    fn writer_vfs<'a>(&self, writer: &'a SegmentWriter) -> &'a dyn crate::io::Vfs {
        writer.plan.vfs.as_ref()
    }

    /// Has the store apply what follows this writer's position and moves the writer past
    /// it.
    fn catch_up(&self, writer: &mut SegmentWriter) -> Result<()> {
        let Some(catch_up) = self.catch_up.get() else {
            unreachable!("a shared journal's store installs its catch-up at open")
        };
        let from = match writer.last_seq() {
            Some(seq) => TailPosition::at_writer(seq, writer.offset(), writer.next_lsn()),
            None => TailPosition::before_segment(1, writer.next_lsn()),
        };
        // Once the store installed the caught-up state, the writer must stand after
        // what it applied: failing to move it there leaves the two apart, which only a
        // reopen mends (poisoned).
        let moved = match catch_up(from)? {
            CaughtUpTo::At(to) => self.move_to(writer, from, to),
            CaughtUpTo::Recovered(outcome) => {
                journal_after(&writer.plan.vfs, &self.options, &outcome, self.store_id)
                    .map(|placement| writer.replace_journal(placement, None))
            }
        };
        moved.map_err(|err| match err {
            poisoned @ Error::Poisoned { .. } => poisoned,
            other => self.health.poison_with(other),
        })
    }

    /// Moves the writer from `from` to `to`, in its active segment or into a later one.
    fn move_to(&self, writer: &mut SegmentWriter, from: TailPosition, to: TailPosition) -> Result<()> {
        if to == from {
            return Ok(());
        }
        let Some(offset) = to.offset() else {
            // No segment yet: nothing was read, and the next append creates the first.
            return Ok(());
        };
        let frontier = to
            .last_frame()
            .map_or(SEGMENT_HEADER_LEN as u64, |mark| mark.synced_end)
            .max(SEGMENT_HEADER_LEN as u64);
        // The other process's bytes after the frontier its last frame recorded were
        // written by a round whose fdatasync this process cannot see: if it failed, the
        // page cache shows them but the kernel will never write them, and whatever is
        // appended after them would follow a hole after a crash. Written again here, the
        // fdatasync that makes this writer's next records durable covers them too.
        let redirty_from = frontier.min(offset);
        if Some(to.seq()) == writer.last_seq()
            && let Some(file) = writer.active_file()
        {
            let path = writer.active_path();
            rewrite_as_read(file.as_ref(), &path, redirty_from, offset)?;
            let file_len = file
                .len()
                .map_err(|err| Error::io("read segment length", &path, err))?;
            writer.move_past_foreign(offset, to.next_lsn(), file_len, frontier);
            return Ok(());
        }
        // Another process started segments since: learn each one's first LSN, and go on
        // in the last if its header suits this writer.
        let vfs = writer.plan.vfs.clone();
        let mut segments: Vec<LiveSegment> = Vec::new();
        let first_new = writer.last_seq().map_or(1, |seq| seq + 1);
        let mut active = None;
        for seq in first_new..=to.seq() {
            let path = self.dir.join(format::segment_file_name(seq));
            let file = vfs
                .open(&path, OpenMode::ReadWrite)
                .map_err(|err| Error::io("open segment", &path, err))?;
            let header = read_header(file.as_ref(), &path)?;
            segments.push(LiveSegment {
                seq,
                first_lsn: header.first_lsn,
                path: path.clone(),
            });
            if seq == to.seq() {
                rewrite_as_read(file.as_ref(), &path, redirty_from, offset)?;
            }
            if seq == to.seq() && !self.suits(&header) {
                // This writer starts a segment of its own after it: the rewritten
                // bytes must be durable before that one exists.
                file.sync_data().map_err(|err| {
                    self.health
                        .poison_with(Error::io("fdatasync segment", &path, err))
                })?;
            }
            if seq == to.seq() && self.suits(&header) {
                let file_len = file
                    .len()
                    .map_err(|err| Error::io("read segment length", &path, err))?;
                if file_len < offset {
                    return Err(changed_under_lock(&path, offset, to.next_lsn()));
                }
                active = Some(ResumedSegment {
                    file: std::sync::Arc::from(file),
                    valid_end: offset,
                    file_len,
                    records: to.next_lsn() - header.first_lsn,
                    preallocated: header.flags & SEGMENT_FLAG_PREALLOCATED != 0,
                    sealed: false,
                });
            }
        }
        // The process that created these segments may have failed its directory
        // fsync: make their names durable before building on them.
        vfs.sync_dir(&self.dir).map_err(|err| {
            self.health
                .poison_with(Error::io("fsync directory", &self.dir, err))
        })?;
        let mut all = writer.take_segments();
        all.extend(segments);
        let placement = Placement {
            segments: all,
            next_lsn: to.next_lsn(),
            resumed: active,
            tail_offset: offset,
        };
        writer.replace_journal(placement, Some(frontier));
        Ok(())
    }

    /// Whether this writer may append to a segment with `header` (its limits and schema
    /// are this writer's, and it names this store).
    fn suits(&self, header: &SegmentHeader) -> bool {
        !header.is_v1()
            && header.store_id == self.store_id.get()
            && header.schema_id == self.options.schema_id
            && header.record_payload_max == self.options.record_payload_max
    }
}

/// The header of a segment another process created, read under the writer lock.
pub(super) fn read_header(file: &dyn crate::io::VfsFile, path: &Path) -> Result<SegmentHeader> {
    let mut bytes = vec![0u8; SEGMENT_HEADER_LEN];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|err| Error::io("read segment header", path, err))?;
    SegmentHeader::decode(&bytes).map_err(|err| Error::Corruption {
        path: path.to_path_buf(),
        offset: 0,
        lsn: 0,
        detail: format!("the segment header does not decode ({err:?}); run `walstate verify`"),
    })
}

fn changed_under_lock(path: &Path, offset: u64, lsn: u64) -> Error {
    Error::Corruption {
        path: path.to_path_buf(),
        offset,
        lsn,
        detail: "the segment is shorter than the records just read from it, while this \
                 process holds the writer lock: something outside walstate changed it; \
                 run `walstate verify` on the store"
            .into(),
    }
}
