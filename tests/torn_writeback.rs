//! A sector of a commit group that was never acknowledged can land as an earlier version
//! of itself (`wal-format.md` section 7.3; found by the store_ops fuzz target). A
//! persistent short-write fault splits the group's buffer into several write calls, the
//! kernel writes a sector back between two of them, and the power fails before the later
//! calls' bytes in that sector reach the disk: the sector holds a prefix of what was
//! appended, then zeros, while later sectors hold the later calls' bytes. Open must cut
//! that group as a torn tail (copied to `quarantine/`) and keep every acknowledged
//! record. The same shape in acknowledged bytes stays corruption naming file, offset and
//! LSN: where a later frame's frontier proves them durable, and, without any later
//! frame, whenever one flipped bit explains the damage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use walstate::format::{self, RECORD_HEADER_LEN, RECORD_PAYLOAD_MAX_HARD, SECTOR_BYTES};
use walstate::io::sim::{CrashMode, Fault, FaultKind, OpClass};
use walstate::io::{SimFs, VfsRef};
use walstate::{Error, KvStore, Options, SyncPolicy};

const DIR: &str = "/srv/torn";

mod common;

use common::{Image, image_of};
type State = Vec<(Vec<u8>, Vec<u8>)>;

fn options(vfs: &VfsRef) -> Options {
    Options::default()
        .vfs(vfs.clone())
        .sync_policy(SyncPolicy::Always)
        .checkpoint_after_bytes(None)
        .preallocate_segments(false)
}

/// A valid frame of the segment: where it starts and ends, and its LSN.
#[derive(Debug, Clone, Copy)]
struct Frame {
    offset: usize,
    end: usize,
    lsn: u64,
}

/// The valid frames from the start of the segment up to the first bad one.
fn valid_frames(segment: &[u8]) -> Vec<Frame> {
    let mut offset = format::SEGMENT_HEADER_LEN;
    let mut found = Vec::new();
    while let Some(rest) = segment.get(offset..) {
        let Ok(record) = format::decode_record(rest, RECORD_PAYLOAD_MAX_HARD) else {
            break;
        };
        let end = offset + record.frame_len();
        found.push(Frame {
            offset,
            end,
            lsn: record.lsn,
        });
        offset = end;
    }
    found
}

fn segment_of(image: &Image) -> PathBuf {
    image
        .keys()
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a segment")
        .clone()
}

fn load(image: &Image) -> (Arc<SimFs>, VfsRef) {
    common::load_image(image, 11)
}

fn open(image: &Image) -> (Arc<SimFs>, walstate::Result<KvStore>) {
    let (sim, vfs) = load(image);
    let opened = KvStore::open(DIR, options(&vfs).create_if_missing(false));
    (sim, opened)
}

fn state(store: &KvStore) -> State {
    store.scan_prefix(b"").expect("scan")
}

fn set_bits(bytes: &[u8]) -> u32 {
    bytes.iter().map(|b| b.count_ones()).sum()
}

/// Where the write calls of a buffer of `len` bytes written at `start` end under the
/// simulator's persistent short write (each call writes half of what is left; the last
/// byte fails).
fn short_write_ends(start: usize, len: usize) -> Vec<usize> {
    let (mut at, mut left, mut ends) = (start, len, Vec::new());
    while left > 1 {
        at += left / 2;
        left -= left / 2;
        ends.push(at);
    }
    ends
}

/// A store with acknowledged puts whose last record straddles a sector boundary, then a
/// group of puts that was never acknowledged: its write was cut short by a failing disk,
/// the cleanup failed too (poisoned), and the power failed with every written byte kept.
struct CrashImage {
    image: Image,
    segment: PathBuf,
    /// The state of the acknowledged puts.
    acknowledged: State,
    /// The acknowledged records' frames.
    acknowledged_frames: Vec<Frame>,
    /// Where the unacknowledged group starts, and how long its buffer was.
    group_start: usize,
    group_len: usize,
}

fn crash_image(seed: u64) -> CrashImage {
    let sim = SimFs::new(seed);
    let vfs: VfsRef = sim.clone();
    let store = KvStore::open(DIR, options(&vfs)).expect("create");
    let mut acknowledged_frames = Vec::new();
    for i in 0.. {
        assert!(
            i < 200,
            "no acknowledged record straddles a sector boundary"
        );
        store
            .put(
                format!("ack-{i:03}"),
                format!("value-{i}-{}", "a".repeat(i % 23)),
            )
            .expect("put");
        let segment = segment_of(&image_of(&sim));
        acknowledged_frames = valid_frames(&sim.file_bytes(&segment).unwrap());
        let last = *acknowledged_frames.last().unwrap();
        let boundary = last.end / SECTOR_BYTES * SECTOR_BYTES;
        if boundary >= last.offset + 8 && boundary < last.end {
            break;
        }
    }
    let acknowledged = state(&store);
    sim.inject(Fault {
        persistent: true,
        ..Fault::once(OpClass::Write, FaultKind::ShortWrite)
    });
    sim.inject(Fault {
        persistent: true,
        ..Fault::once(OpClass::SetLen, FaultKind::Eio)
    });
    let group = (0..10).map(|i| (format!("group-{i}"), "g".repeat(90 + i)));
    store
        .put_batch(group)
        .expect_err("the group's write fails: never acknowledged");
    drop(store);
    sim.clear_faults();
    sim.crash(CrashMode::KeepAll);
    let image = image_of(&sim);
    let segment = segment_of(&image);
    let group_start = acknowledged_frames.last().unwrap().end;
    let bytes = &image[&segment];
    // The group's frames as written; the last lacks its final byte.
    let mut group_len = 0;
    while group_start + group_len + RECORD_HEADER_LEN <= bytes.len() {
        let header = &bytes[group_start + group_len..];
        let payload_len = u32::from_le_bytes([header[3], header[4], header[5], header[6]]);
        group_len += RECORD_HEADER_LEN + payload_len as usize;
    }
    assert_eq!(
        bytes.len(),
        group_start + group_len - 1,
        "the group was written up to its last byte"
    );
    CrashImage {
        image,
        segment,
        acknowledged,
        acknowledged_frames,
        group_start,
        group_len,
    }
}

/// Turns one sector of the unacknowledged group into an earlier version of itself: as
/// it was after a write call that ended inside a frame (not at a frame's start), with
/// that sector's later bytes lost and every later sector kept. Returns the offset where
/// the lost bytes begin.
fn land_a_group_sector_as_an_earlier_version(crash: &mut CrashImage) -> usize {
    let bytes = crash.image.get_mut(&crash.segment).unwrap();
    let written_end = bytes.len();
    let frame_starts = frame_starts(bytes, crash.group_start, written_end);
    let candidate = short_write_ends(crash.group_start, crash.group_len)
        .into_iter()
        .filter(|&end| end % SECTOR_BYTES != 0 && !frame_starts.contains(&end))
        .map(|end| (end, (end / SECTOR_BYTES + 1) * SECTOR_BYTES))
        .find(|&(end, sector_end)| {
            // The frame holding `end` must be complete in the image, so only the
            // earlier version damages it, and some bytes must be lost.
            let frame_end = frame_starts.iter().copied().find(|&s| s > end);
            frame_end.is_some_and(|f| f <= written_end)
                && sector_end < written_end
                && set_bits(&bytes[end..sector_end]) >= 2
        });
    let (lost_from, sector_end) =
        candidate.expect("a write call ends inside a frame before a sector boundary");
    bytes[lost_from..sector_end].fill(0);
    lost_from
}

/// The starts of the frames from `start` (and where the next would start), read from
/// their length fields, up to `end`.
fn frame_starts(bytes: &[u8], start: usize, end: usize) -> Vec<usize> {
    let mut starts = vec![start];
    let mut at = start;
    while at + RECORD_HEADER_LEN <= end {
        let len = u32::from_le_bytes([bytes[at + 3], bytes[at + 4], bytes[at + 5], bytes[at + 6]]);
        at += RECORD_HEADER_LEN + len as usize;
        starts.push(at);
    }
    starts
}

fn expect_corruption(opened: walstate::Result<KvStore>, segment: &Path, frame: Frame) -> String {
    let Err(err) = opened else {
        panic!("damage to acknowledged bytes must be refused");
    };
    let text = err.to_string();
    match err {
        Error::Corruption {
            path, offset, lsn, ..
        } => {
            assert_eq!(path, segment, "{text}");
            assert_eq!(offset, frame.offset as u64, "{text}");
            assert_eq!(lsn, frame.lsn, "{text}");
        }
        other => panic!("refused with a non-corruption error: {other}"),
    }
    text
}

#[test]
fn a_sector_of_an_unacknowledged_group_landing_as_an_earlier_version_is_a_torn_tail() {
    let mut crash = crash_image(1);
    let lost_from = land_a_group_sector_as_an_earlier_version(&mut crash);
    assert!(lost_from > crash.group_start);
    let image = crash.image.clone();
    let (sim, opened) = open(&image);
    let store = opened.expect("a crash image opens");
    assert_eq!(
        state(&store),
        crash.acknowledged,
        "exactly the acknowledged puts"
    );
    let last_acknowledged = crash.acknowledged_frames.last().unwrap().lsn;
    assert_eq!(store.last_lsn(), last_acknowledged);
    let torn = store.recovery_report().torn_tail.expect("reported");
    assert_eq!(torn.path, crash.segment);
    assert_eq!(
        torn.offset, crash.group_start as u64,
        "the whole group is cut"
    );
    assert_eq!(torn.first_lsn, last_acknowledged + 1);
    let copy = torn.quarantined.expect("copied before the cut");
    let written = &image[&crash.segment];
    let last_non_zero = written.iter().rposition(|&b| b != 0).unwrap();
    assert_eq!(
        sim.file_bytes(&copy).unwrap(),
        written[crash.group_start..=last_non_zero].to_vec(),
        "the copy holds the cut bytes"
    );
    assert_eq!(
        sim.file_bytes(&crash.segment).unwrap().len(),
        crash.group_start
    );
    // And it stays open: the next commit continues the journal.
    store.put("after", "x").unwrap();
    assert_eq!(store.last_lsn(), last_acknowledged + 1);
}

#[test]
fn the_earlier_version_shape_in_the_last_acknowledged_record_is_corruption() {
    let crash = crash_image(2);
    let last = *crash.acknowledged_frames.last().unwrap();
    let sector_end = last.end / SECTOR_BYTES * SECTOR_BYTES;
    // Zero runs from inside the record to its sector's end, as an earlier version of
    // that sector would look; and a single flipped bit before the boundary.
    for lost_from in [sector_end - 1, sector_end - 4, last.offset + 1] {
        let mut image = crash.image.clone();
        let bytes = image.get_mut(&crash.segment).unwrap();
        if set_bits(&bytes[lost_from..sector_end]) == 0 {
            continue;
        }
        bytes[lost_from..sector_end].fill(0);
        let text = expect_corruption(open(&image).1, &crash.segment, last);
        assert!(text.contains("synced through"), "{text}");
    }
    let mut image = crash.image.clone();
    image.get_mut(&crash.segment).unwrap()[sector_end - 2] ^= 0x10;
    expect_corruption(open(&image).1, &crash.segment, last);
}

#[test]
fn the_earlier_version_shape_in_the_acknowledged_part_of_the_last_segment_is_corruption() {
    let mut crash = crash_image(3);
    // Also with the unacknowledged group's sector landing early: the evidence still
    // comes from the group's frames that did land.
    land_a_group_sector_as_an_earlier_version(&mut crash);
    let first = crash.acknowledged_frames[0];
    let sector_end = (first.offset / SECTOR_BYTES + 1) * SECTOR_BYTES;
    let mut image = crash.image.clone();
    image.get_mut(&crash.segment).unwrap()[first.offset + 5..sector_end].fill(0);
    let text = expect_corruption(open(&image).1, &crash.segment, first);
    assert!(text.contains("synced through"), "{text}");
}

/// With no later frame at all (the writer stopped right after its last acknowledgement,
/// no seal), nothing proves the last record durable. Its sector piece before a boundary
/// ends in zeros that belong to its value, so damage elsewhere in it looks like an
/// earlier version of that sector; one flipped bit is still refused, since a single bit
/// explains it and no crash flips bits.
#[test]
fn a_flipped_bit_in_a_last_record_that_looks_like_an_earlier_sector_version_is_corruption() {
    let sim = SimFs::new(4);
    let vfs: VfsRef = sim.clone();
    let store = KvStore::open(DIR, options(&vfs)).expect("create");
    for i in 0.. {
        let segment_len = image_of(&sim)
            .iter()
            .find(|(p, _)| p.extension().is_some_and(|e| e == "seg"))
            .map_or(0, |(_, b)| b.len());
        if segment_len % SECTOR_BYTES >= SECTOR_BYTES - 200
            && segment_len % SECTOR_BYTES <= SECTOR_BYTES - 100
        {
            break;
        }
        assert!(i < 200, "never reached the place before a sector boundary");
        store.put(format!("k{i}"), "v").expect("put");
    }
    // 20 'x', 300 zeros (covering the boundary 100..200 bytes ahead), 20 'y'.
    let value = [vec![b'x'; 20], vec![0u8; 300], vec![b'y'; 20]].concat();
    store.put("zeros", &value).expect("put");
    let baseline = state(&store);
    drop(store);
    sim.crash(CrashMode::DropUnsynced);
    let image = image_of(&sim);
    let segment = segment_of(&image);
    let last = *valid_frames(&image[&segment]).last().unwrap();
    let boundary = (last.offset / SECTOR_BYTES + 1) * SECTOR_BYTES;
    assert!(image[&segment][boundary - 1] == 0 && boundary < last.end);
    let (_, opened) = open(&image);
    assert_eq!(state(&opened.expect("undamaged")), baseline);

    let payload_start = last.offset + RECORD_HEADER_LEN;
    // Flips that leave the zeros before the boundary in place: the damage has the
    // earlier-version shape, and one flipped bit explains it.
    for byte in [
        payload_start + 3,
        boundary + 50,
        last.end - 10,
        last.end - 1,
    ] {
        for bit in 0..8 {
            let mut damaged = image.clone();
            damaged.get_mut(&segment).unwrap()[byte] ^= 1 << bit;
            let text = expect_corruption(open(&damaged).1, &segment, last);
            assert!(text.contains("single bit"), "byte {byte} bit {bit}: {text}");
        }
    }
    // A flip in the zeros before the boundary leaves no shape a crash leaves at all.
    let mut damaged = image.clone();
    damaged.get_mut(&segment).unwrap()[boundary - 1] ^= 1;
    expect_corruption(open(&damaged).1, &segment, last);
}
