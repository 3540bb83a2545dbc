//! One leader round: the requests the barrier handed over are placed (rotating and
//! syncing where the segment or the unsynced bound requires), framed, written and synced
//! as the strategy decides, and returned as made durable or failed. This is where the
//! failure rules live: a failed write leaves no partial record (the segment is cut back
//! to the start of the oldest incomplete request) and fails only the requests not yet
//! durable; a failure that cannot be undone poisons.

use std::io;
use std::sync::atomic::Ordering;

use super::barrier::{Outcome, Request, Requests};
use super::health::retell;
use super::segment_writer::{SegmentWriter, WriteFailure};
use super::{RECORD_HEADER_LEN, Shared};
use crate::error::{DiskFullOp, Error, Result, is_enospc};
use crate::journal::segment::CreateFailure;

/// What one leader round produced: requests made durable (hooks not yet run) and
/// requests that failed.
#[derive(Default)]
pub(super) struct Round {
    pub(super) durable: Requests<Staged>,
    pub(super) failed: Requests<Outcome>,
}

impl Round {
    /// Fails `request` with `err`; a stream it belongs to stops.
    fn fail(&mut self, request: &Request, err: &Error) {
        self.fail_with(request, retell(err));
    }

    fn fail_with(&mut self, request: &Request, err: Error) {
        if let Some(stopped) = &request.stream {
            stopped.store(true, Ordering::Release);
        }
        self.failed.push(Outcome {
            id: request.id,
            waker: request.waker.clone(),
            result: Err(err),
        });
    }

    /// Fails every request of `batch` with `err`: the first gets it as it is (whatever
    /// its kind: a corruption or schema error found catching up stays one), the others
    /// an equivalent.
    fn fail_all(&mut self, batch: Requests<Request>, err: Error) {
        let mut requests = batch.into_iter();
        let Some(first) = requests.next() else {
            return;
        };
        for request in requests {
            self.fail(&request, &err);
        }
        self.fail_with(&first, err);
    }
}

/// A request whose records are framed but not yet durable.
pub(super) struct Staged {
    pub(super) request: Request,
    pub(super) first_lsn: u64,
}

impl Shared {
    /// Leader work for round `number`: writes and syncs one batch; returns the requests
    /// made durable (their hooks not run yet) and the failed ones. A shared writer takes
    /// the writer lock first (and catches up), and releases it at the end unless
    /// acknowledged records stay in the buffer. A request without records only does
    /// that (a catch-up).
    pub(super) fn lead(&self, batch: Requests<Request>, number: u64) -> Round {
        let mut results = Round::default();
        if let Err(err) = self.health.check_usable() {
            for request in batch {
                results.fail(&request, &err);
            }
            return results;
        }
        let mut writer = self.writer.lock();
        if let Err(err) = self.take_lease(&mut writer, number) {
            results.fail_all(batch, err);
            return results;
        }
        self.counters.round_started();
        let mut staged: Requests<Staged> = Requests::new();
        // Offset where the first staged (incomplete) request starts: where a failed
        // write truncates back to. The buffer holds acknowledged records only.
        check_buffer_acknowledged(&writer);
        let mut staged_offset = writer.end_of_buffer();
        let mut failure: Option<Error> = None;

        for request in batch {
            if let Some(err) = &failure {
                results.fail(&request, err);
                continue;
            }
            if request.stream_stopped() {
                results.fail(&request, &Error::StreamStopped);
                continue;
            }
            if request.records.is_empty() {
                // A catch-up: done once the lock is held.
                let first_lsn = writer.next_lsn();
                staged.push(Staged { request, first_lsn });
                continue;
            }
            let step = self.place(
                &mut writer,
                &mut staged,
                &mut staged_offset,
                &mut results.durable,
                &request,
            );
            if let Err(err) = step {
                results.fail(&request, &err);
                failure = Some(err);
                continue;
            }
            if staged.is_empty() {
                staged_offset = writer.end_of_buffer();
            }
            let first_lsn = writer.next_lsn();
            if let Err(err) =
                self.encode_request(&mut writer, &request, first_lsn, &staged, staged_offset)
            {
                results.fail(&request, &err);
                failure = Some(err);
                continue;
            }
            staged.push(Staged { request, first_lsn });
        }
        if failure.is_none() {
            let flushed = if self.strategy.writes_round(writer.buffered()) {
                self.flush(&mut writer, staged_offset)
            } else {
                Ok(())
            };
            let synced = flushed.and_then(|()| {
                if self.strategy.syncs_round(self.syncer.unsynced(&writer)) {
                    self.syncer.sync_active(&writer)
                } else {
                    // A background fdatasync may have failed meanwhile: then nothing
                    // more is acknowledged.
                    self.health.check_usable()
                }
            });
            match synced {
                Ok(()) => {
                    writer.acknowledge_buffered();
                    self.complete(&mut staged, &mut results.durable);
                }
                Err(err) => failure = Some(err),
            }
        }
        if let Some(err) = failure {
            // Nothing of a failed request stays behind to be written by a later round, and
            // its LSNs go to the next request (a failed write or encode stops the round).
            writer.discard_unacknowledged();
            if let Some(first) = staged.first() {
                writer.rewind_lsn(first.first_lsn);
            }
            for staged in staged.drain(..) {
                results.fail(&staged.request, &err);
            }
        }
        self.check_round_end(&writer, results.failed.is_empty());
        self.release_lease_if_idle(&writer);
        results
    }

    /// Makes room for `request`: rotates the segment when it would overflow, and syncs
    /// when the unsynced bound would be exceeded. Completes staged requests made durable.
    fn place(
        &self,
        writer: &mut SegmentWriter,
        staged: &mut Requests<Staged>,
        staged_offset: &mut u64,
        durable: &mut Requests<Staged>,
        request: &Request,
    ) -> Result<()> {
        if writer.needs_rotation(request.frame_bytes) {
            self.flush(writer, *staged_offset)?;
            self.syncer.sync_active(writer)?;
            self.complete(staged, durable);
            self.rotate(writer)?;
            *staged_offset = writer.offset();
        } else if self.over_bound(writer, request.frame_bytes) {
            // A background fdatasync already running may make the room.
            self.syncer.wait_idle();
            if self.over_bound(writer, request.frame_bytes) {
                self.flush(writer, *staged_offset)?;
                self.syncer.sync_active(writer)?;
                self.complete(staged, durable);
                *staged_offset = writer.offset();
            }
        }
        Ok(())
    }

    /// Whether writing the buffer plus `frame_bytes` more would take the unsynced bytes
    /// past the bound.
    fn over_bound(&self, writer: &SegmentWriter, frame_bytes: u64) -> bool {
        self.strategy
            .over_bound(self.syncer.unsynced(writer), writer.buffered(), frame_bytes)
    }

    /// Frames a request into the buffer. A group larger than the unsynced bound is
    /// written and synced in parts (it stays incomplete, and so invisible to a reader,
    /// until its last record is written).
    fn encode_request(
        &self,
        writer: &mut SegmentWriter,
        request: &Request,
        first_lsn: u64,
        staged: &[Staged],
        staged_offset: u64,
    ) -> Result<()> {
        let count = request.records.len();
        if !writer.has_lsns_for(count as u64) {
            return Err(Error::InvalidArgument(
                "the LSN space (2^62) is exhausted: export the state and import it into a new store"
                    .into(),
            ));
        }
        for (index, record) in request.records.iter().enumerate() {
            let frame = (RECORD_HEADER_LEN + record.payload.len()) as u64;
            if self.over_bound(writer, frame) {
                let result = self
                    .flush(writer, staged_offset)
                    .and_then(|()| self.syncer.sync_active(writer));
                if let Err(err) = result {
                    writer.rewind_lsn(staged.first().map_or(first_lsn, |s| s.first_lsn));
                    return Err(err);
                }
            }
            let frontier = self.syncer.durable_frontier(writer);
            writer.push_frame(record, first_lsn + index as u64, index, count, frontier);
        }
        writer.advance(count as u64);
        Ok(())
    }

    /// Writes the buffer at the write position. On failure, cuts the segment back to
    /// `truncate_to` (the start of the oldest incomplete request), makes that durable and
    /// returns the error (the caller rewinds the LSN counter); if the cleanup fails,
    /// poisons. If the buffer held acknowledged records (`SyncPolicy::Buffered`), a
    /// failure poisons: those commits cannot be failed any more, and the state is ahead
    /// of the file.
    pub(super) fn flush(&self, writer: &mut SegmentWriter, truncate_to: u64) -> Result<()> {
        if writer.buffered() == 0 {
            return Ok(());
        }
        self.health.check_usable()?;
        let WriteFailure {
            error: err,
            offset,
            acknowledged_lost,
        } = match writer.write_buffer() {
            Ok(()) => {
                self.syncer.hand_off_if_due(writer);
                return Ok(());
            }
            Err(failure) => failure,
        };
        let path = writer.active_path();
        if acknowledged_lost > 0 {
            // Best effort: leave no partial record behind for the next open.
            let _ = self.truncate_back(writer, offset);
            return Err(self.health.poison_with(Error::io(
                "write records acknowledged under SyncPolicy::Buffered",
                &path,
                io::Error::new(
                    err.kind(),
                    format!(
                        "{err}; {acknowledged_lost} bytes of acknowledged commits at offset \
                         {offset} were not written, so the in-memory state is ahead of the \
                         file: reopen the store to continue from what is on disk"
                    ),
                ),
            )));
        }
        let error = if is_enospc(&err) {
            Error::DiskFull {
                path: path.clone(),
                offset,
                op: DiskFullOp::Commit,
            }
        } else {
            Error::io("write", &path, err)
        };
        tracing::warn!(
            target: "walstate",
            segment = %path.display(),
            offset,
            error = %error,
            "write failed: the commits of this round fail and nothing of them is left on disk"
        );
        if let Err(cleanup) = self.truncate_back(writer, truncate_to) {
            return Err(self.health.poison_with(Error::io(
                "remove partial record after failed write",
                &path,
                io::Error::other(format!("{cleanup} (after: {error})")),
            )));
        }
        Err(error)
    }

    /// Cuts the active segment back to `len` bytes, durably, once no background
    /// fdatasync is running; everything left is then synced.
    fn truncate_back(&self, writer: &mut SegmentWriter, len: u64) -> io::Result<()> {
        self.syncer.wait_idle();
        if !writer.has_active_segment() {
            return Ok(());
        }
        writer.truncate_back(len)?;
        self.syncer.count_sync();
        self.syncer.mark_synced(writer);
        Ok(())
    }

    /// Writes out the acknowledged records `SyncPolicy::Buffered` holds (a failure
    /// poisons, see [`Shared::flush`]).
    pub(super) fn write_buffered(&self, writer: &mut SegmentWriter) -> Result<()> {
        let start = writer.offset();
        self.flush(writer, start)
    }

    /// [`Shared::write_buffered`], then an fdatasync of the active segment.
    pub(super) fn write_and_sync(&self, writer: &mut SegmentWriter) -> Result<()> {
        self.write_buffered(writer)?;
        self.syncer.sync_active(writer)
    }

    /// Writes a seal after the last record and fdatasyncs it (a clean close). The caller
    /// has synced everything before. Nothing to do without an active segment or when
    /// the segment already ends with a seal.
    pub(super) fn seal(&self, writer: &mut SegmentWriter) -> Result<()> {
        if !writer.has_active_segment() || writer.is_sealed() {
            return Ok(());
        }
        assert_eq!(self.syncer.unsynced(writer), 0, "a seal follows a sync");
        let offset = writer.offset();
        writer.push_seal();
        if self.flush(writer, offset).is_err() {
            // Everything acknowledged is durable already: a seal that cannot be written
            // (a full disk) only leaves the store unsealed. `flush` cut back what it
            // wrote; if even that failed (the journal is poisoned now), the prefix of a
            // seal left behind is a write cut short, which the next open drops as a torn
            // tail (wal-format.md section 7.3). No commit is affected either way.
            return Ok(());
        }
        self.syncer.sync_active(writer)?;
        writer.mark_sealed();
        Ok(())
    }

    /// Moves every staged request, now durable, to `durable` (in LSN order) and counts
    /// them; their hooks run later, in the round's turn.
    fn complete(&self, staged: &mut Requests<Staged>, durable: &mut Requests<Staged>) {
        let mut records = 0;
        for done in staged.drain(..) {
            records += done.request.records.len() as u64;
            self.counters
                .completed(done.request.records.len() as u64, done.request.frame_bytes);
            durable.push(done);
        }
        self.counters.group_completed(records);
    }

    /// Starts a new segment whose first LSN is the next LSN (the previous one has been
    /// synced). A new segment whose name may not be durable poisons.
    pub(super) fn rotate(&self, writer: &mut SegmentWriter) -> Result<()> {
        match writer.start_segment() {
            Ok(()) => {
                self.syncer.count_sync();
                self.syncer.mark_synced(writer);
                Ok(())
            }
            Err(CreateFailure::NothingChanged(err)) => Err(err),
            Err(CreateFailure::NameNotDurable(err)) => Err(self.health.poison_with(err)),
        }
    }
}

impl Shared {
    /// What holds after every round: the segment writer's positions (which it also checks
    /// after each write, cut-back and new segment), the buffer holding exactly the
    /// acknowledged-but-unwritten bytes, synced <= written, and, where the strategy syncs
    /// every round, nothing written left unsynced by a round that failed no request.
    fn check_round_end(&self, writer: &SegmentWriter, all_durable: bool) {
        writer.check_positions();
        check_buffer_acknowledged(writer);
        let unsynced = self.syncer.unsynced(writer);
        if all_durable && self.strategy.syncs_every_round() {
            assert_eq!(
                unsynced, 0,
                "a round the strategy syncs leaves nothing unsynced"
            );
        }
    }
}

/// Between rounds the buffer holds exactly the acknowledged-but-unwritten bytes (none
/// unless `Buffered`). Checked when a round starts and when it ends.
fn check_buffer_acknowledged(writer: &SegmentWriter) {
    assert_eq!(
        writer.buffered(),
        writer.buffered_acknowledged(),
        "buffered bytes == acknowledged-but-unwritten bytes between rounds"
    );
}
