//! Following the journal's tail: reads only what was appended since a known position
//! (O(new bytes), never a whole scan) and hands over every complete record or atomic
//! group after it, in LSN order, under the same frame rules as a scan (checksums,
//! consecutive LSNs, seals, durable frontiers, the store's identity).
//!
//! A follower never classifies damage and never writes. Whatever it cannot explain as
//! "nothing more yet" it answers with [`Followed::Reload`], and the caller runs a full
//! recovery, which classifies exactly as `wal-format.md` says: the segment it stood in
//! was deleted (a checkpoint covered it), the last frame it read changed (a writer cut
//! back a write that failed and wrote again), the next segment does not start where this
//! one ended, or bytes that do not decode lie before a later segment. An incomplete frame
//! or group at the very end is a write in flight: it stops before it and tries again next
//! time.

use std::io;
use std::path::Path;

use super::scan::{RecordPosition, ScanOutcome, frame_problem};
use crate::error::{Error, Result};
use crate::format::{
    self, FrameError, RecordView, SEGMENT_FLAG_PREALLOCATED, SEGMENT_HEADER_LEN, SegmentHeader, v1,
};
use crate::io::{OpenMode, Vfs, VfsFile};

/// The last frame a follower read: re-checked before it reads on, so bytes rewritten
/// under it are never built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameMark {
    /// Offset of the frame in its segment.
    pub(crate) offset: u64,
    /// Length of its header.
    pub(crate) header_len: u64,
    /// CRC-32C of its header bytes (which carry its LSN, length and payload checksum).
    pub(crate) header_crc: u32,
    /// The durable frontier it records: the offset up to which its writer knew the
    /// segment synced. A writer appending after it claims no more until it syncs.
    pub(crate) synced_end: u64,
}

impl FrameMark {
    /// The mark of `record`, decoded from `frame` (bytes starting with it) found at
    /// `offset` of its segment.
    pub(crate) fn of(frame: &[u8], offset: u64, record: &RecordView<'_>) -> FrameMark {
        FrameMark {
            offset,
            header_len: record.header_len as u64,
            header_crc: format::crc(&[&frame[..record.header_len]]),
            synced_end: record.synced_end,
        }
    }
}

/// Where a follower stands: the next byte to read and the LSN expected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TailPosition {
    /// The segment read next.
    seq: u64,
    /// The offset in it; `None` before its header was read (it may not exist yet).
    offset: Option<u64>,
    /// The LSN the next record must have.
    next_lsn: u64,
    /// The last frame read in this segment, if any.
    last_frame: Option<FrameMark>,
}

impl TailPosition {
    /// Just after what `outcome` (a scan, or a recovery's) delivered: after the last
    /// complete group or seal of its last segment.
    pub(crate) fn after(outcome: &ScanOutcome) -> TailPosition {
        let last = outcome.segments.last();
        // A last segment without a readable header is read again from its header; with
        // no segment at all, the writer's first one is waited for.
        let readable = last.filter(|segment| segment.header.is_some());
        TailPosition {
            seq: last.map_or(1, |segment| segment.seq),
            offset: readable.map(|segment| segment.valid_end),
            next_lsn: outcome.next_lsn.max(1),
            last_frame: readable.and_then(|segment| segment.last_frame),
        }
    }

    /// A writer's own position: the end of what it wrote (`offset` of segment `seq`),
    /// where records from `next_lsn` go. Its own frames need no re-check.
    pub(crate) fn at_writer(seq: u64, offset: u64, next_lsn: u64) -> TailPosition {
        TailPosition {
            seq,
            offset: Some(offset),
            next_lsn,
            last_frame: None,
        }
    }

    /// Before segment `seq`'s header (it may not exist yet), expecting `next_lsn`.
    pub(crate) fn before_segment(seq: u64, next_lsn: u64) -> TailPosition {
        TailPosition {
            seq,
            offset: None,
            next_lsn,
            last_frame: None,
        }
    }

    /// The LSN the next record must have.
    pub(crate) fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// The segment read next.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// The offset read next in [`TailPosition::seq`], once its header was read.
    pub(crate) fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The last frame read in the current segment, if any.
    pub(crate) fn last_frame(&self) -> Option<FrameMark> {
        self.last_frame
    }
}

/// What following found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Followed {
    /// Everything complete was delivered; the new position, with nothing after it.
    At(TailPosition),
    /// Everything complete was delivered; the new position, and after it bytes that do
    /// not (yet) form a complete frame or group (why): a write in flight for a reader,
    /// a dead writer's torn tail for a writer holding the lock.
    Unfinished(TailPosition, String),
    /// The journal changed in a way only a full recovery can judge (why).
    Reload(String),
}

/// Reads the journal in `dir` from `from`, delivering every complete record or group
/// (as [`super::scan`] does, with its segment's position). `store_id` is the store's
/// identity, when it has one: a segment naming another store is not followed.
pub(crate) fn follow(
    vfs: &dyn Vfs,
    dir: &Path,
    from: TailPosition,
    store_id: Option<u64>,
    mut deliver: impl FnMut(&[RecordView<'_>], RecordPosition<'_>) -> Result<()>,
) -> Result<Followed> {
    let mut position = from;
    loop {
        let path = dir.join(format::segment_file_name(position.seq));
        let file = match vfs.open(&path, OpenMode::Read) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Ok(match position.offset {
                    // The segment the writer creates next: not there yet.
                    None => Followed::At(position),
                    Some(_) => Followed::Reload(format!(
                        "{} was deleted (a checkpoint covers it)",
                        path.display()
                    )),
                });
            }
            Err(err) => return Err(Error::io("open segment to follow", &path, err)),
        };
        let file_len = file
            .len()
            .map_err(|err| Error::io("read segment length", &path, err))?;
        let header = match read_header(file.as_ref(), &path, file_len)? {
            Ok(header) => header,
            Err(why) => return Ok(Followed::Reload(why)),
        };
        if let Some(id) = store_id
            && !header.is_v1()
            && header.store_id != id
        {
            return Ok(Followed::Reload(format!(
                "{} names another store",
                path.display()
            )));
        }
        let offset = match position.offset {
            Some(offset) => offset,
            None if header.first_lsn == position.next_lsn => header.data_start() as u64,
            None => {
                return Ok(Followed::Reload(format!(
                    "{} starts at LSN {}, where LSN {} belongs",
                    path.display(),
                    header.first_lsn,
                    position.next_lsn
                )));
            }
        };
        if file_len < offset {
            return Ok(Followed::Reload(format!(
                "{} is shorter than when it was last read",
                path.display()
            )));
        }
        if let Some(mark) = position.last_frame
            && !mark_holds(file.as_ref(), &path, mark)?
        {
            return Ok(Followed::Reload(format!(
                "the frame at offset {} of {} was rewritten since it was read",
                mark.offset,
                path.display()
            )));
        }
        // Read from the position on, a little first and more while a frame or a group
        // runs past what was read: a refresh reads what is new, not the zero-filled room
        // of a preallocated segment.
        let mut start = offset;
        let mut want = TAIL_READ_BYTES.min(file_len - start);
        let read = loop {
            let mut tail = vec![0u8; want as usize];
            file.read_exact_at(&mut tail, start)
                .map_err(|err| Error::io("read segment tail", &path, err))?;
            let read = read_tail(&header, &tail, start, position.next_lsn, |group, at| {
                deliver(
                    group,
                    RecordPosition {
                        path: &path,
                        schema_id: header.schema_id,
                        offset: at,
                    },
                )
            })?;
            position = TailPosition {
                seq: position.seq,
                offset: Some(read.end),
                next_lsn: read.next_lsn,
                last_frame: read.last_frame.or(position.last_frame),
            };
            if !read.ran_out || start + want == file_len {
                break read;
            }
            // Read on from the end of the last complete group: nothing is delivered twice.
            want = (want * 2).min(file_len - read.end);
            start = read.end;
        };
        let next_path = dir.join(format::segment_file_name(position.seq + 1));
        let successor = vfs
            .entry_kind(&next_path)
            .map_err(|err| Error::io("stat", &next_path, err))?
            .is_some();
        if !successor {
            // Whatever did not decode at the end may be a write in flight.
            return Ok(match read.unexplained {
                None => Followed::At(position),
                Some(why) => Followed::Unfinished(position, why),
            });
        }
        let unexplained = match read.unexplained {
            Some(why) => Some(why),
            // Moving on: the room after the last frame must really be empty.
            None if !zeros_to_end(file.as_ref(), &path, read.end, file_len)? => {
                Some("bytes after the zero-filled room".to_string())
            }
            None => None,
        };
        if let Some(why) = unexplained {
            return Ok(Followed::Reload(format!(
                "{} at offset {} of {}, and a later segment exists",
                why,
                read.end,
                path.display()
            )));
        }
        position = TailPosition {
            seq: position.seq + 1,
            offset: None,
            next_lsn: position.next_lsn,
            last_frame: None,
        };
    }
}

/// How much of a segment's tail is read first; doubled while a frame or group runs past
/// what was read.
const TAIL_READ_BYTES: u64 = 64 << 10;

/// Whether the bytes of `file` from `start` to `end` are all zero (read in pieces).
fn zeros_to_end(file: &dyn VfsFile, path: &Path, start: u64, end: u64) -> Result<bool> {
    let mut piece = vec![0u8; TAIL_READ_BYTES as usize];
    let mut at = start;
    while at < end {
        let len = (end - at).min(TAIL_READ_BYTES) as usize;
        file.read_exact_at(&mut piece[..len], at)
            .map_err(|err| Error::io("read segment", path, err))?;
        if piece[..len].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += len as u64;
    }
    Ok(true)
}

/// The header of a segment being followed, or why it cannot be followed.
fn read_header(
    file: &dyn VfsFile,
    path: &Path,
    file_len: u64,
) -> Result<std::result::Result<SegmentHeader, String>> {
    let mut bytes = vec![0u8; SEGMENT_HEADER_LEN.min(file_len as usize)];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|err| Error::io("read segment header", path, err))?;
    Ok(SegmentHeader::decode(&bytes)
        .map_err(|err| format!("{} has no valid header ({err:?})", path.display())))
}

/// Whether the frame `mark` describes is still in the file as it was read.
fn mark_holds(file: &dyn VfsFile, path: &Path, mark: FrameMark) -> Result<bool> {
    let mut header = vec![0u8; mark.header_len as usize];
    match file.read_exact_at(&mut header, mark.offset) {
        Ok(()) => Ok(format::crc(&[&header]) == mark.header_crc),
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(err) => Err(Error::io("read segment", path, err)),
    }
}

/// What reading a segment's tail found.
struct TailRead {
    /// Offset just past the last complete group or seal.
    end: u64,
    next_lsn: u64,
    /// The last frame of the last complete group or seal, if any was read.
    last_frame: Option<FrameMark>,
    /// Why reading stopped before the end of the file, when that is not clean
    /// (zero-filled room of a preallocated segment, or the end): a frame that does not
    /// decode or cannot stand there, or a group that never completed.
    unexplained: Option<String>,
    /// Reading stopped because a frame or a group runs past the bytes given: with more
    /// bytes of the file, read on.
    ran_out: bool,
}

/// Decodes the frames of `tail` (the bytes from `base` in a segment with `header`),
/// delivering each complete group with the offset of its first record.
fn read_tail(
    header: &SegmentHeader,
    tail: &[u8],
    base: u64,
    next_lsn: u64,
    mut deliver: impl FnMut(&[RecordView<'_>], u64) -> Result<()>,
) -> Result<TailRead> {
    let decode: fn(&[u8], u32) -> std::result::Result<RecordView<'_>, FrameError> =
        if header.is_v1() {
            v1::decode_record
        } else {
            format::decode_record
        };
    let preallocated = header.flags & SEGMENT_FLAG_PREALLOCATED != 0;
    let mut read = TailRead {
        end: base,
        next_lsn,
        last_frame: None,
        unexplained: None,
        ran_out: false,
    };
    let mut group: Vec<RecordView<'_>> = Vec::new();
    let mut group_start = 0usize;
    let mut at = 0usize;
    while at < tail.len() {
        let record = match decode(&tail[at..], header.record_payload_max) {
            Ok(record) => record,
            Err(FrameError::ZeroHeader) if preallocated && tail[at..].iter().all(|&b| b == 0) => {
                break;
            }
            Err(err) => {
                read.ran_out = matches!(
                    err,
                    FrameError::TruncatedHeader | FrameError::TruncatedPayload(_)
                );
                read.unexplained = Some(err.describe());
                break;
            }
        };
        let offset = base as usize + at;
        let expected = read.next_lsn + group.len() as u64;
        if let Some(problem) = frame_problem(header, &record, offset, expected, group.is_empty()) {
            read.unexplained = Some(problem);
            break;
        }
        let mark = FrameMark::of(&tail[at..], offset as u64, &record);
        at += record.frame_len();
        if record.is_seal() && !header.is_v1() {
            read.end = base + at as u64;
            read.last_frame = Some(mark);
            continue;
        }
        if group.is_empty() {
            group_start = offset;
        }
        group.push(record);
        if record.group_continues() {
            continue;
        }
        deliver(&group, group_start as u64)?;
        read.next_lsn += group.len() as u64;
        read.end = base + at as u64;
        read.last_frame = Some(mark);
        group.clear();
    }
    if !group.is_empty() && read.unexplained.is_none() {
        read.ran_out = true;
        read.unexplained = Some(format!(
            "an atomic group from LSN {} is not complete",
            read.next_lsn
        ));
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{FLAG_GROUP_CONTINUES, RECORD_KIND_COMMAND, StoreId};

    fn header(first_lsn: u64, flags: u32) -> SegmentHeader {
        SegmentHeader::new(
            1,
            first_lsn,
            1 << 20,
            flags,
            StoreId::new(7).expect("non-zero"),
            0,
        )
    }

    fn frames(first_lsn: u64, payloads: &[&[u8]], grouped: bool, frontier: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for (index, payload) in payloads.iter().enumerate() {
            let flags = if grouped && index + 1 < payloads.len() {
                FLAG_GROUP_CONTINUES
            } else {
                0
            };
            format::encode_record(
                &mut out,
                first_lsn + index as u64,
                RECORD_KIND_COMMAND,
                flags,
                frontier,
                payload,
            );
        }
        out
    }

    fn delivered(header: &SegmentHeader, tail: &[u8], next_lsn: u64) -> (Vec<Vec<u64>>, TailRead) {
        let mut groups = Vec::new();
        let read = read_tail(
            header,
            tail,
            SEGMENT_HEADER_LEN as u64,
            next_lsn,
            |group, _| {
                groups.push(group.iter().map(|r| r.lsn).collect());
                Ok(())
            },
        )
        .expect("no delivery error");
        (groups, read)
    }

    #[test]
    fn complete_groups_are_delivered_and_an_incomplete_one_waits() {
        let header = header(5, 0);
        let start = SEGMENT_HEADER_LEN as u64;
        let mut tail = frames(5, &[b"a"], false, start);
        tail.extend(frames(6, &[b"b", b"c"], true, start));
        let complete = tail.len();
        // The first record of a group of two, whose second is still in flight.
        let mut in_flight = frames(8, &[b"d", b"e"], true, start);
        in_flight.truncate(in_flight.len() / 2 + 5);
        tail.extend(&in_flight);
        let (groups, read) = delivered(&header, &tail, 5);
        assert_eq!(groups, vec![vec![5], vec![6, 7]]);
        assert_eq!(read.next_lsn, 8);
        assert_eq!(read.end, start + complete as u64);
        assert!(read.unexplained.is_some());
    }

    #[test]
    fn zero_filled_room_of_a_preallocated_segment_is_a_clean_end() {
        let header = header(1, SEGMENT_FLAG_PREALLOCATED);
        let mut tail = frames(1, &[b"x"], false, SEGMENT_HEADER_LEN as u64);
        let end = tail.len();
        tail.extend(vec![0u8; 4096]);
        let (groups, read) = delivered(&header, &tail, 1);
        assert_eq!(groups, vec![vec![1]]);
        assert_eq!(read.end, SEGMENT_HEADER_LEN as u64 + end as u64);
        assert_eq!(read.unexplained, None);
    }

    #[test]
    fn zeros_in_a_segment_that_was_not_preallocated_are_not_a_clean_end() {
        let header = header(1, 0);
        let mut tail = frames(1, &[b"x"], false, SEGMENT_HEADER_LEN as u64);
        tail.extend(vec![0u8; 64]);
        let (_, read) = delivered(&header, &tail, 1);
        assert!(read.unexplained.is_some());
    }

    #[test]
    fn a_frame_with_the_wrong_lsn_stops_the_read_unexplained() {
        let header = header(1, 0);
        let mut tail = frames(1, &[b"x"], false, SEGMENT_HEADER_LEN as u64);
        tail.extend(frames(9, &[b"y"], false, SEGMENT_HEADER_LEN as u64));
        let (groups, read) = delivered(&header, &tail, 1);
        assert_eq!(groups, vec![vec![1]]);
        assert_eq!(read.next_lsn, 2);
        assert!(
            read.unexplained
                .as_deref()
                .is_some_and(|why| why.contains("LSN 9"))
        );
    }

    mod files {
        use std::path::{Path, PathBuf};

        use super::*;
        use crate::io::SimFs;

        const DIR: &str = "/store";

        fn segment(seq: u64, first_lsn: u64, records: &[(u64, &[u8])]) -> Vec<u8> {
            let header = SegmentHeader::new(
                seq,
                first_lsn,
                1 << 20,
                0,
                StoreId::new(7).expect("non-zero"),
                0,
            );
            let mut bytes = header.encode().to_vec();
            for (lsn, payload) in records {
                format::encode_record(
                    &mut bytes,
                    *lsn,
                    RECORD_KIND_COMMAND,
                    0,
                    SEGMENT_HEADER_LEN as u64,
                    payload,
                );
            }
            bytes
        }

        fn write(vfs: &dyn Vfs, seq: u64, bytes: &[u8]) -> PathBuf {
            let path = Path::new(DIR).join(format::segment_file_name(seq));
            let _ = vfs.remove_file(&path);
            let file = vfs.open(&path, OpenMode::CreateNew).expect("create");
            file.write_all_at(bytes, 0).expect("write");
            path
        }

        /// Follows from `from`, returning what it delivered (LSN, payload) and the outcome.
        fn follow_from(vfs: &dyn Vfs, from: TailPosition) -> (Vec<(u64, Vec<u8>)>, Followed) {
            let mut seen = Vec::new();
            let followed = follow(vfs, Path::new(DIR), from, Some(7), |group, _| {
                seen.extend(group.iter().map(|r| (r.lsn, r.payload.to_vec())));
                Ok(())
            })
            .expect("follow");
            (seen, followed)
        }

        fn start() -> TailPosition {
            TailPosition {
                seq: 1,
                offset: None,
                next_lsn: 1,
                last_frame: None,
            }
        }

        fn at(followed: Followed) -> TailPosition {
            match followed {
                Followed::At(position) | Followed::Unfinished(position, _) => position,
                Followed::Reload(why) => panic!("unexpected reload: {why}"),
            }
        }

        fn sim() -> std::sync::Arc<SimFs> {
            let sim = SimFs::new(1);
            sim.create_dir_all(Path::new(DIR)).expect("dir");
            sim
        }

        #[test]
        fn a_segment_not_created_yet_is_waited_for_then_followed_into_its_successor() {
            let sim = sim();
            let (seen, followed) = follow_from(sim.as_ref(), start());
            assert!(seen.is_empty());
            let position = at(followed);
            write(sim.as_ref(), 1, &segment(1, 1, &[(1, b"a"), (2, b"b")]));
            write(sim.as_ref(), 2, &segment(2, 3, &[(3, b"c")]));
            let (seen, followed) = follow_from(sim.as_ref(), position);
            assert_eq!(
                seen,
                vec![(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"c".to_vec())]
            );
            assert_eq!(at(followed).next_lsn, 4);
        }

        #[test]
        fn a_frame_rewritten_under_the_follower_is_never_built_on() {
            let sim = sim();
            write(sim.as_ref(), 1, &segment(1, 1, &[(1, b"a"), (2, b"b")]));
            let (_, followed) = follow_from(sim.as_ref(), start());
            let position = at(followed);
            // The writer cut LSN 2 back after a failed write and wrote another command of
            // the same length there, then LSN 3 after it.
            write(
                sim.as_ref(),
                1,
                &segment(1, 1, &[(1, b"a"), (2, b"B"), (3, b"c")]),
            );
            let (seen, followed) = follow_from(sim.as_ref(), position);
            assert!(seen.is_empty(), "{seen:?}");
            assert!(
                matches!(&followed, Followed::Reload(why) if why.contains("rewritten")),
                "{followed:?}"
            );
        }

        #[test]
        fn a_deleted_segment_or_a_successor_out_of_place_needs_a_reload() {
            let sim = sim();
            let path = write(sim.as_ref(), 1, &segment(1, 1, &[(1, b"a")]));
            let position = at(follow_from(sim.as_ref(), start()).1);
            write(sim.as_ref(), 2, &segment(2, 5, &[(5, b"e")]));
            let (seen, followed) = follow_from(sim.as_ref(), position);
            assert!(seen.is_empty());
            assert!(
                matches!(&followed, Followed::Reload(why) if why.contains("where LSN 2 belongs")),
                "{followed:?}"
            );
            sim.remove_file(&path).expect("remove");
            let (_, followed) = follow_from(sim.as_ref(), position);
            assert!(
                matches!(&followed, Followed::Reload(why) if why.contains("was deleted")),
                "{followed:?}"
            );
        }

        #[test]
        fn garbage_before_a_later_segment_needs_a_reload_but_at_the_end_it_waits() {
            let sim = sim();
            let mut bytes = segment(1, 1, &[(1, b"a")]);
            bytes.extend(b"not a frame, and a writer never wrote it");
            write(sim.as_ref(), 1, &bytes);
            let (seen, followed) = follow_from(sim.as_ref(), start());
            assert_eq!(seen, vec![(1, b"a".to_vec())]);
            let position = at(followed);
            write(sim.as_ref(), 2, &segment(2, 2, &[(2, b"b")]));
            let (seen, followed) = follow_from(sim.as_ref(), position);
            assert!(seen.is_empty());
            assert!(matches!(followed, Followed::Reload(_)), "{followed:?}");
        }

        #[test]
        fn a_segment_of_another_store_is_not_followed() {
            let sim = sim();
            let header =
                SegmentHeader::new(1, 1, 1 << 20, 0, StoreId::new(8).expect("non-zero"), 0);
            write(sim.as_ref(), 1, &header.encode());
            let (_, followed) = follow_from(sim.as_ref(), start());
            assert!(
                matches!(&followed, Followed::Reload(why) if why.contains("another store")),
                "{followed:?}"
            );
        }
    }
}
