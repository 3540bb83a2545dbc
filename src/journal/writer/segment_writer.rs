//! The segment writer: the journal's bottom layer, with no concurrency (LevelDB's
//! `log::Writer` is the model). It frames records into its encode buffer, writes the
//! buffer at the write position of the active segment (extending a preallocated segment
//! ahead of it), cuts the segment back after a failed write, starts new segments and
//! writes the seal of a clean close. It does no fdatasync of its own records and takes
//! no decision about poisoning: the layers above ([`super::syncer`], [`super::round`])
//! do, from the typed failures it returns.
//!
//! It lives behind the journal's writer mutex; everything here runs with that held.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::RecordToAppend;
use crate::error::Error;
use crate::format::{
    self, FLAG_GROUP_CONTINUES, RECORD_KIND_SEAL, SEGMENT_FLAG_PREALLOCATED, SEGMENT_HEADER_LEN,
    SegmentHeader, StoreId,
};
use crate::io::{VfsFile, VfsRef};
use crate::journal::options::JournalOptions;
use crate::journal::segment::{CreateFailure, create_segment};

use super::spare_maker::SpareMaker;

/// How far ahead of the write position a preallocated segment is extended with zeros at
/// a time (capped at the segment size): the size change reaches the disk with one
/// commit's fdatasync per step instead of with every commit.
pub const PREALLOCATE_STEP_BYTES: u64 = 4 << 20;

/// What every new segment is made of: where it goes and what its header says.
pub(super) struct SegmentPlan {
    pub(super) vfs: VfsRef,
    pub(super) dir: PathBuf,
    /// The store every segment this writer creates names.
    pub(super) store_id: StoreId,
    pub(super) segment_size_bytes: u64,
    pub(super) record_payload_max: u32,
    pub(super) schema_id: u64,
    pub(super) preallocate: bool,
    /// Makes and hands over the spare segment (see [`crate::journal::spare`]).
    pub(super) spare: Arc<SpareMaker>,
}

impl SegmentPlan {
    /// The length a new preallocated segment (or a spare) starts with: its header and one
    /// preallocation step, at most the segment size.
    pub(super) fn first_allocation(&self) -> u64 {
        (SEGMENT_HEADER_LEN as u64 + PREALLOCATE_STEP_BYTES).min(self.segment_size_bytes)
    }

    pub(super) fn new(
        vfs: VfsRef,
        dir: PathBuf,
        store_id: StoreId,
        options: &JournalOptions,
    ) -> Self {
        let spare = Arc::new(SpareMaker::new(
            Arc::clone(&vfs),
            dir.clone(),
            options.spare_segment,
            options.preallocate,
        ));
        SegmentPlan {
            vfs,
            dir,
            store_id,
            segment_size_bytes: options.segment_size_bytes,
            record_payload_max: options.record_payload_max,
            schema_id: options.schema_id,
            preallocate: options.preallocate,
            spare,
        }
    }
}

/// A live segment file.
pub(super) struct LiveSegment {
    pub(super) seq: u64,
    pub(super) first_lsn: u64,
    pub(super) path: PathBuf,
}

/// The active segment a reopened journal keeps appending to.
pub(super) struct ResumedSegment {
    pub(super) file: Arc<dyn VfsFile>,
    /// End of its last valid frame: the write position.
    pub(super) valid_end: u64,
    /// Length of the file (at least `valid_end`).
    pub(super) file_len: u64,
    pub(super) records: u64,
    pub(super) preallocated: bool,
    pub(super) sealed: bool,
}

/// A write of the buffer that failed. The buffer is empty afterwards; nothing of it is
/// known to be in the file.
pub(super) struct WriteFailure {
    pub(super) error: io::Error,
    /// The write position the buffer was to be written at.
    pub(super) offset: u64,
    /// Bytes of already acknowledged records (`SyncPolicy::Buffered`) that were in the
    /// buffer and are now lost: the in-memory state is ahead of the file.
    pub(super) acknowledged_lost: u64,
}

pub(super) struct SegmentWriter {
    pub(super) plan: SegmentPlan,
    /// The active segment, or `None` when the next append must create one. Shared with
    /// the background syncer, which fdatasyncs it outside the writer's mutex.
    file: Option<Arc<dyn VfsFile>>,
    /// Write position in the active segment.
    offset: u64,
    /// Records in the active segment.
    segment_records: u64,
    /// LSN of the next record.
    next_lsn: u64,
    /// Bytes written to segments since the journal was opened (never reset). The bytes
    /// not yet covered by a completed fdatasync are this minus the syncer's synced bytes.
    written_bytes: u64,
    /// Segment files in order; the last is the active one (when `file` is `Some`).
    segments: Vec<LiveSegment>,
    /// Encode buffer. Between rounds it is empty, except under `SyncPolicy::Buffered`,
    /// where it holds the `buffered_acked` bytes of acknowledged records not yet written.
    buf: Vec<u8>,
    /// Bytes at the start of `buf` whose records are acknowledged (`Buffered` only).
    buffered_acked: u64,
    /// The active segment has the `PREALLOCATED` flag: zeros after its last frame are
    /// free space, so it may be extended with zeros ahead of the write position.
    preallocated: bool,
    /// Length of the active segment file: never below the write position.
    allocated_end: u64,
    /// The active segment's last frame is a seal: a clean close has nothing to add.
    sealed: bool,
    /// The spare segment was asked for since the active segment became active.
    spare_requested: bool,
    /// Set when the writer moved onto bytes another process wrote (a shared writer
    /// catching up): the durable frontier that writer recorded last, and the bytes this
    /// one had written then. Until an fdatasync of this writer covers a byte written
    /// after the move, frames claim no more than that frontier: the other writer's
    /// bytes may not be durable yet.
    foreign_frontier: Option<(u64, u64)>,
}

impl SegmentWriter {
    /// A writer with `segments` on disk, appending next at `next_lsn`: into `resumed`,
    /// or, without one, into a segment the first append creates.
    pub(super) fn new(
        plan: SegmentPlan,
        segments: Vec<LiveSegment>,
        next_lsn: u64,
        resumed: Option<ResumedSegment>,
    ) -> Self {
        let mut writer = SegmentWriter {
            plan,
            file: None,
            offset: 0,
            segment_records: 0,
            next_lsn,
            written_bytes: 0,
            segments,
            buf: Vec::new(),
            buffered_acked: 0,
            preallocated: false,
            allocated_end: 0,
            sealed: false,
            spare_requested: false,
            foreign_frontier: None,
        };
        if let Some(resumed) = resumed {
            assert!(
                resumed.valid_end <= resumed.file_len,
                "a resumed segment's valid end lies inside the file"
            );
            writer.file = Some(resumed.file);
            writer.offset = resumed.valid_end;
            writer.allocated_end = resumed.file_len;
            writer.segment_records = resumed.records;
            writer.preallocated = resumed.preallocated;
            writer.sealed = resumed.sealed;
        }
        writer
    }

    /// The LSN the next record gets.
    pub(super) fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Gives LSNs from `lsn` on back to the next request (a failed request's).
    pub(super) fn rewind_lsn(&mut self, lsn: u64) {
        assert!(lsn <= self.next_lsn, "LSNs are only rewound, never skipped");
        self.next_lsn = lsn;
    }

    /// Bytes written since the journal was opened.
    pub(super) fn written_bytes(&self) -> u64 {
        self.written_bytes
    }

    /// Bytes in the encode buffer (acknowledged ones first).
    pub(super) fn buffered(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Bytes at the start of the buffer whose records are acknowledged.
    pub(super) fn buffered_acknowledged(&self) -> u64 {
        self.buffered_acked
    }

    /// The records now in the buffer are acknowledged.
    pub(super) fn acknowledge_buffered(&mut self) {
        self.buffered_acked = self.buffered();
    }

    /// Drops what the buffer holds past its acknowledged records (a failed request's
    /// frames: nothing of it is written by a later round).
    pub(super) fn discard_unacknowledged(&mut self) {
        self.buf.truncate(self.buffered_acked as usize);
    }

    /// Where the buffer's next byte will be written: the write position plus the buffer.
    pub(super) fn end_of_buffer(&self) -> u64 {
        self.offset + self.buffered()
    }

    /// The write position in the active segment.
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    /// The active segment, if one is open.
    pub(super) fn active_file(&self) -> Option<&Arc<dyn VfsFile>> {
        self.file.as_ref()
    }

    pub(super) fn has_active_segment(&self) -> bool {
        self.file.is_some()
    }

    pub(super) fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// The active segment's path (the directory when there is none), for errors.
    pub(super) fn active_path(&self) -> PathBuf {
        self.segments
            .last()
            .map(|s| s.path.clone())
            .unwrap_or_else(|| self.plan.dir.clone())
    }

    /// Paths of the live segments, oldest first.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub(super) fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// The oldest segment, if all of its records have LSN <= `lsn` and it is not the
    /// active one: it may be deleted.
    pub(super) fn oldest_deletable(&self, lsn: u64) -> Option<PathBuf> {
        match self.segments.as_slice() {
            [oldest, next, ..] if next.first_lsn <= lsn.saturating_add(1) => {
                Some(oldest.path.clone())
            }
            _ => None,
        }
    }

    /// Forgets the oldest segment (deleted by the caller).
    pub(super) fn forget_oldest(&mut self) {
        assert!(
            self.segments.len() >= 2,
            "the active segment is never deleted"
        );
        self.segments.remove(0);
    }

    /// Whether a new segment is needed before `frame_bytes` more can be buffered: there
    /// is none, or the buffer plus `frame_bytes` would run past the end of a segment
    /// that already holds something.
    pub(super) fn needs_rotation(&self, frame_bytes: u64) -> bool {
        let holds_something = self.segment_records > 0 || !self.buf.is_empty();
        self.file.is_none() || (holds_something && self.overflows_segment(frame_bytes))
    }

    /// Whether the buffer plus `frame_bytes` more would run past the end of the segment.
    pub(super) fn overflows_segment(&self, frame_bytes: u64) -> bool {
        self.end_of_buffer() + frame_bytes > self.plan.segment_size_bytes
    }

    /// Whether `count` more records from the next LSN stay within the LSN space.
    pub(super) fn has_lsns_for(&self, count: u64) -> bool {
        self.next_lsn.saturating_add(count) <= format::LSN_MAX
    }

    /// The durable frontier a frame encoded now records, given that the first
    /// `synced_bytes` bytes written are covered by a completed fdatasync: the offset in
    /// the active segment up to which it is known synced.
    pub(super) fn durable_frontier(&self, synced_bytes: u64) -> u64 {
        let mut frontier = self.offset.saturating_sub(self.unsynced(synced_bytes));
        if let Some((cap, written_then)) = self.foreign_frontier
            && synced_bytes <= written_then
        {
            frontier = frontier.min(cap);
        }
        debug_assert!(self.file.is_none() || frontier >= SEGMENT_HEADER_LEN as u64);
        frontier
    }

    /// The sequence number of the last segment this writer knows (the active one when
    /// there is one), if any.
    pub(super) fn last_seq(&self) -> Option<u64> {
        self.segments.last().map(|segment| segment.seq)
    }

    /// Moves the write position to `offset` of the active segment, now `file_len` bytes
    /// long, where records from `next_lsn` go: another process appended up to there.
    /// `frontier` is the durable frontier its last frame recorded (see
    /// `foreign_frontier`). The buffer is empty (nothing of this writer is unwritten).
    pub(super) fn move_past_foreign(
        &mut self,
        offset: u64,
        next_lsn: u64,
        file_len: u64,
        frontier: u64,
    ) {
        assert!(self.buf.is_empty(), "a writer moves only with nothing buffered");
        assert!(
            offset >= self.offset && next_lsn >= self.next_lsn,
            "a writer moves forward only"
        );
        assert!(offset <= file_len, "the new position lies inside the file");
        if next_lsn > self.next_lsn {
            self.sealed = false;
            self.segment_records += next_lsn - self.next_lsn;
        }
        self.offset = offset;
        self.next_lsn = next_lsn;
        self.allocated_end = file_len;
        self.foreign_frontier = Some((
            frontier.max(SEGMENT_HEADER_LEN as u64),
            self.written_bytes,
        ));
        self.check_positions();
    }

    /// Replaces what the writer knows of the journal after another process changed it
    /// (rotated, deleted, or left a tail a recovery cut back) with `placement`. Like a
    /// new writer, but the count of bytes written stays (the syncer's accounting builds
    /// on it). `frontier`: as for [`SegmentWriter::move_past_foreign`], when the writer
    /// now stands after another process's frames.
    pub(super) fn replace_journal(&mut self, placement: super::Placement, frontier: Option<u64>) {
        assert!(self.buf.is_empty(), "a writer moves only with nothing buffered");
        let written_bytes = self.written_bytes;
        let plan = SegmentPlan {
            vfs: self.plan.vfs.clone(),
            dir: self.plan.dir.clone(),
            spare: Arc::clone(&self.plan.spare),
            ..self.plan
        };
        *self = placement.writer(plan);
        self.written_bytes = written_bytes;
        self.foreign_frontier =
            frontier.map(|frontier| (frontier.max(SEGMENT_HEADER_LEN as u64), written_bytes));
    }

    /// Without an active segment: the end of the last segment's records, where a shared
    /// writer looks for what others append after them.
    pub(super) fn set_tail_offset(&mut self, offset: u64) {
        assert!(self.file.is_none(), "the tail of an active segment is its write position");
        self.offset = offset;
        self.allocated_end = offset;
    }

    /// Takes the list of live segments (the caller puts a new one in place).
    pub(super) fn take_segments(&mut self) -> Vec<LiveSegment> {
        std::mem::take(&mut self.segments)
    }

    /// Forgets the segments numbered up to `deleted_through_seq` (removed from the
    /// directory, by this process or another); never the active one.
    pub(super) fn forget_deleted(&mut self, deleted_through_seq: u64) {
        let active = self.file.is_some().then(|| self.last_seq()).flatten();
        self.segments.retain(|segment| {
            segment.seq > deleted_through_seq || Some(segment.seq) == active
        });
    }

    /// Bytes written and not covered by the first `synced_bytes` bytes a completed
    /// fdatasync covered.
    pub(super) fn unsynced(&self, synced_bytes: u64) -> u64 {
        assert!(
            synced_bytes <= self.written_bytes,
            "synced ({synced_bytes}) <= written ({})",
            self.written_bytes
        );
        self.written_bytes - synced_bytes
    }

    /// Frames record `index` of a group of `count` at LSN `lsn` into the buffer.
    pub(super) fn push_frame(
        &mut self,
        record: &RecordToAppend,
        lsn: u64,
        index: usize,
        count: usize,
        frontier: u64,
    ) {
        let flags = if index + 1 < count {
            FLAG_GROUP_CONTINUES
        } else {
            0
        };
        format::encode_record(
            &mut self.buf,
            lsn,
            record.kind,
            flags,
            frontier,
            &record.payload,
        );
    }

    /// The `count` records just framed took the next LSNs.
    pub(super) fn advance(&mut self, count: u64) {
        self.sealed = false;
        self.next_lsn += count;
        self.segment_records += count;
    }

    /// Frames `records` as one group at the next LSNs, every frame recording `frontier`.
    pub(super) fn push_group(&mut self, records: &[RecordToAppend], frontier: u64) -> u64 {
        let first_lsn = self.next_lsn;
        for (index, record) in records.iter().enumerate() {
            self.push_frame(
                record,
                first_lsn + index as u64,
                index,
                records.len(),
                frontier,
            );
        }
        self.advance(records.len() as u64);
        first_lsn
    }

    /// Frames a seal at the write position (a clean close): its frontier is its own
    /// offset, so recovery knows every byte before it was durable. The caller has
    /// written and synced everything before.
    pub(super) fn push_seal(&mut self) {
        assert!(self.buf.is_empty(), "a seal follows everything written");
        format::encode_record(
            &mut self.buf,
            self.next_lsn,
            RECORD_KIND_SEAL,
            0,
            self.offset,
            b"",
        );
    }

    /// The seal just written is the segment's last frame.
    pub(super) fn mark_sealed(&mut self) {
        self.sealed = true;
    }

    /// Writes the buffer at the write position, extending a preallocated segment with
    /// zeros ahead of it first. On success the buffer is empty and the write position
    /// past it; on failure the buffer is empty too and [`WriteFailure`] says what was
    /// lost (the caller cuts the file back).
    pub(super) fn write_buffer(&mut self) -> Result<(), WriteFailure> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(file) = self.file.as_ref() else {
            unreachable!("records are only buffered with an active segment")
        };
        let offset = self.offset;
        let end = offset + self.buffered();
        let extended = if self.preallocated && end > self.allocated_end {
            let target = end.max((end + PREALLOCATE_STEP_BYTES).min(self.plan.segment_size_bytes));
            file.allocate(target).map(|()| self.allocated_end = target)
        } else {
            Ok(())
        };
        match extended.and_then(|()| file.write_all_at(&self.buf, offset)) {
            Ok(()) => {
                let written = self.buffered();
                self.offset += written;
                self.written_bytes += written;
                self.allocated_end = self.allocated_end.max(self.offset);
                self.buf.clear();
                self.buffered_acked = 0;
                self.check_positions();
                self.ask_for_spare_when_half_full();
                Ok(())
            }
            Err(error) => {
                self.buf.clear();
                Err(WriteFailure {
                    error,
                    offset,
                    acknowledged_lost: std::mem::take(&mut self.buffered_acked),
                })
            }
        }
    }

    /// Once the active segment is half full, asks for the next one's file (once per
    /// segment), so it is ready before the rotation needs it.
    fn ask_for_spare_when_half_full(&mut self) {
        if !self.spare_requested && self.offset >= self.plan.segment_size_bytes / 2 {
            self.spare_requested = true;
            self.plan.spare.request(self.plan.first_allocation());
        }
    }

    /// Cuts the active segment back to `len` bytes and makes that durable (one
    /// fdatasync); checks the length really is `len` afterwards. The caller has made
    /// sure no background fdatasync of the segment is running.
    pub(super) fn truncate_back(&mut self, len: u64) -> io::Result<()> {
        assert!(
            len >= SEGMENT_HEADER_LEN as u64,
            "a segment is never cut into its header"
        );
        let Some(file) = self.file.as_ref() else {
            return Ok(());
        };
        file.set_len(len)?;
        file.sync_data()?;
        let actual = file.len()?;
        if actual != len {
            return Err(io::Error::other(format!(
                "segment is {actual} bytes after truncating to {len}"
            )));
        }
        self.offset = len;
        self.allocated_end = len;
        self.check_positions();
        Ok(())
    }

    /// Starts a new segment whose first LSN is the next LSN (its header fsynced, renamed
    /// into place, the directory fsynced). The caller has written and synced the
    /// previous segment, so every segment but the last is fully durable.
    pub(super) fn start_segment(&mut self) -> Result<(), CreateFailure> {
        assert!(self.buf.is_empty(), "the previous segment was written out");
        let seq = self.segments.last().map_or(1, |s| s.seq + 1);
        if seq > format::LSN_MAX {
            return Err(CreateFailure::NothingChanged(Error::InvalidArgument(
                "segment numbers (2^62) are exhausted: export the state and import it into a new store"
                    .into(),
            )));
        }
        let plan = &self.plan;
        let flags = if plan.preallocate {
            SEGMENT_FLAG_PREALLOCATED
        } else {
            0
        };
        let header = SegmentHeader::new(
            seq,
            self.next_lsn,
            plan.record_payload_max,
            flags,
            plan.store_id,
            plan.schema_id,
        );
        let preallocate = plan.preallocate.then(|| plan.first_allocation());
        let (file, path) = create_segment(
            plan.vfs.as_ref(),
            &plan.dir,
            &header,
            preallocate,
            Some(&plan.spare),
        )?;
        tracing::debug!(
            target: "walstate",
            segment = %path.display(),
            seq,
            first_lsn = self.next_lsn,
            "segment created"
        );
        self.file = Some(Arc::from(file));
        self.offset = SEGMENT_HEADER_LEN as u64;
        self.preallocated = plan.preallocate;
        self.allocated_end = preallocate.unwrap_or(SEGMENT_HEADER_LEN as u64);
        self.segment_records = 0;
        self.sealed = false;
        self.spare_requested = false;
        self.segments.push(LiveSegment {
            seq,
            first_lsn: self.next_lsn,
            path,
        });
        self.check_positions();
        Ok(())
    }

    /// The write position never passes the end of the file; the acknowledged bytes are
    /// a prefix of the buffer. Paired with the round's check after every round.
    pub(super) fn check_positions(&self) {
        assert!(
            self.offset <= self.allocated_end,
            "write position {} <= allocated end {}",
            self.offset,
            self.allocated_end
        );
        assert!(self.buffered_acked <= self.buffered());
    }
}
