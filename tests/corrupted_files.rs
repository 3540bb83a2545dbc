//! Damaged store files: every case either opens with a correct prefix of what was
//! written and an accurate report, or fails with a clear error naming the file (and the
//! offset) — never returns data that was not written, never panics — and `verify`
//! agrees with `open` on every case.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use walstate::format::{self, SEGMENT_HEADER_LEN};
use walstate::io::{RealFs, SimFs, VfsRef};
use walstate::verify::{self, Verdict};
use walstate::{Error, KvStore, Options};

const DIR: &str = "/store";
const PUTS: usize = 90;

type Image = BTreeMap<PathBuf, Vec<u8>>;
type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Segments without preallocation: every byte of a file is a record or header, so
/// truncating, zeroing and appending hit records (preallocated zero room is covered by
/// the crash sweeps in `journal_sim.rs` and `crash_sim.rs`).
fn options(vfs: &VfsRef) -> Options {
    Options::default()
        .vfs(vfs.clone())
        .preallocate_segments(false)
        .segment_size_bytes(4096)
        .unsynced_bytes_max(4096)
        .record_payload_max(1024)
        .checkpoint_after_bytes(None)
        .create_if_missing(false)
}

fn key(i: usize) -> Vec<u8> {
    format!("key{:02}", i % 25).into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    vec![b'a' + (i % 26) as u8; 40 + i]
}

/// Builds a small store (several segments, two checkpoints) and returns its files and
/// the model state after each number of puts.
fn build() -> (Image, Vec<Model>) {
    let sim = SimFs::new(1);
    let vfs: VfsRef = sim.clone();
    let store = KvStore::open(DIR, options(&vfs).create_if_missing(true)).unwrap();
    let mut models = vec![Model::new()];
    for i in 0..PUTS {
        store.put(key(i), value(i)).unwrap();
        let mut next = models.last().unwrap().clone();
        next.insert(key(i), value(i));
        models.push(next);
        if i == 20 || i == 40 {
            store.checkpoint().unwrap();
        }
    }
    store.close().unwrap();
    let image = sim
        .list_files()
        .into_iter()
        .filter(|p| !p.ends_with("LOCK"))
        .map(|p| {
            let bytes = sim.file_bytes(&p).unwrap();
            (p, bytes)
        })
        .collect();
    (image, models)
}

fn segments(image: &Image) -> Vec<PathBuf> {
    image
        .keys()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .cloned()
        .collect()
}

fn checkpoints(image: &Image) -> Vec<PathBuf> {
    image
        .keys()
        .filter(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .cloned()
        .collect()
}

/// Opens a damaged image with the store and with verify and checks the rules.
fn check(image: &Image, models: &[Model], case: &str) -> Result<usize, String> {
    let sim = SimFs::new(2);
    for (path, bytes) in image {
        sim.write_durable(path, bytes);
    }
    let vfs: VfsRef = sim.clone();
    let verdict = verify::verify(sim.as_ref(), Path::new(DIR)).map(|r| r.verdict);
    let opened = KvStore::open(DIR, options(&vfs));
    match (&opened, &verdict) {
        (Ok(store), Ok(verdict)) => {
            assert_ne!(
                *verdict,
                Verdict::NeedsRepair,
                "{case}: open succeeded but verify says repair is needed"
            );
            let state: Model = store
                .read(|s| s.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect())
                .unwrap();
            let prefix = models.iter().position(|m| *m == state).unwrap_or_else(|| {
                panic!("{case}: open returned a state that is no prefix of what was written")
            });
            assert_eq!(
                store.last_lsn(),
                prefix as u64,
                "{case}: LSN does not match the prefix"
            );
            let report = store.recovery_report();
            if *verdict == Verdict::Clean {
                assert!(
                    report.torn_tail.is_none() && report.checkpoints_skipped.is_empty(),
                    "{case}: clean verdict but open repaired: {report:?}"
                );
            }
            Ok(prefix)
        }
        (Err(err), Ok(verdict)) => {
            assert_eq!(
                *verdict,
                Verdict::NeedsRepair,
                "{case}: open failed ({err}) but verify says {verdict:?}"
            );
            match err {
                Error::Corruption { path, .. } => {
                    assert!(
                        err.to_string().contains(&path.display().to_string()),
                        "{case}: {err}"
                    );
                    assert!(err.to_string().contains("offset"), "{case}: {err}");
                }
                other => panic!("{case}: open failed with an unexpected error: {other}"),
            }
            Err(err.to_string())
        }
        (
            Err(open_err @ Error::UnsupportedVersion { path, .. }),
            Err(Error::UnsupportedVersion { .. }),
        ) => {
            assert!(open_err.to_string().contains(&path.display().to_string()));
            Err(open_err.to_string())
        }
        (Err(Error::NotAStore { .. }), Err(Error::NotAStore { .. })) => Err("not a store".into()),
        (opened, verdict) => panic!(
            "{case}: open and verify disagree: open {:?}, verify {:?}",
            opened.as_ref().map(|_| "ok"),
            verdict
        ),
    }
}

#[test]
fn truncating_the_newest_segment_at_every_offset() {
    let (image, models) = build();
    let newest = segments(&image).pop().unwrap();
    let len = image[&newest].len();
    // Where the records the checkpoint at 41 covers end in the newest segment: a cut
    // before that removes synced, checkpointed records, which no crash can.
    let bytes = &image[&newest];
    let header = format::SegmentHeader::decode(bytes).unwrap();
    let mut covered_end = header.data_start();
    let mut lsn = header.first_lsn;
    while lsn <= 41 {
        let record =
            format::decode_record(&bytes[covered_end..], header.record_payload_max).unwrap();
        covered_end += record.frame_len();
        lsn += 1;
    }
    let mut refused = 0;
    for cut in 0..len {
        let mut damaged = image.clone();
        damaged.get_mut(&newest).unwrap().truncate(cut);
        match check(
            &damaged,
            &models,
            &format!("truncate {} at {cut}", newest.display()),
        ) {
            Ok(prefix) => assert!(
                prefix >= 41,
                "cut {cut}: lost records the checkpoint at 41 holds"
            ),
            Err(err) => {
                assert!(
                    cut < SEGMENT_HEADER_LEN
                        || (cut < covered_end && err.contains("covered by the checkpoint")),
                    "cut {cut}: a truncated record tail is a torn tail, not corruption: {err}"
                );
                refused += 1;
            }
        }
    }
    assert!(
        refused >= SEGMENT_HEADER_LEN,
        "a segment without a whole header is refused ({refused} refusals)"
    );
}

#[test]
fn truncating_the_newest_checkpoint_at_every_offset_falls_back_to_the_older_one() {
    let (image, models) = build();
    let newest = checkpoints(&image).pop().unwrap();
    for cut in 0..image[&newest].len() {
        let mut damaged = image.clone();
        damaged.get_mut(&newest).unwrap().truncate(cut);
        let prefix = check(
            &damaged,
            &models,
            &format!("truncate {} at {cut}", newest.display()),
        )
        .unwrap_or_else(|err| panic!("cut {cut}: {err}"));
        assert_eq!(
            prefix, PUTS,
            "cut {cut}: the older checkpoint plus the journal has everything"
        );
    }
}

#[test]
fn flipping_every_bit_of_a_record_in_the_middle_is_detected() {
    let (image, models) = build();
    let newest = segments(&image).pop().unwrap();
    let bytes = &image[&newest];
    let header = format::SegmentHeader::decode(bytes).unwrap();
    // The first record of the newest segment: far from the end when the segment is long,
    // else inside the torn window (then a torn tail is the right answer).
    let record =
        format::decode_record(&bytes[SEGMENT_HEADER_LEN..], header.record_payload_max).unwrap();
    let frame = record.frame_len();
    for bit in 0..frame * 8 {
        let mut damaged = image.clone();
        damaged.get_mut(&newest).unwrap()[SEGMENT_HEADER_LEN + bit / 8] ^= 1 << (bit % 8);
        let case = format!("bit {bit} of LSN {} in {}", record.lsn, newest.display());
        if let Ok(prefix) = check(&damaged, &models, &case) {
            assert!(
                prefix < record.lsn as usize,
                "{case}: the damaged record was accepted"
            );
        }
    }
    // A record in an older segment (fully synced): always corruption.
    let older = segments(&image)[segments(&image).len() - 2].clone();
    for bit in (0..frame * 8).step_by(7) {
        let mut damaged = image.clone();
        damaged.get_mut(&older).unwrap()[SEGMENT_HEADER_LEN + bit / 8] ^= 1 << (bit % 8);
        let result = check(
            &damaged,
            &models,
            &format!("bit {bit} in older {}", older.display()),
        );
        assert!(
            result.is_err(),
            "bit {bit}: damage in an older segment must be refused"
        );
    }
}

#[test]
fn zeroed_ranges_garbage_swaps_and_versions() {
    let (image, models) = build();
    let all_segments = segments(&image);
    let newest = all_segments.last().unwrap().clone();
    // Zero 64 bytes at several places of every segment.
    for segment in &all_segments {
        let len = image[segment].len();
        for start in (SEGMENT_HEADER_LEN..len).step_by(97) {
            let mut damaged = image.clone();
            let bytes = damaged.get_mut(segment).unwrap();
            let end = (start + 64).min(len);
            bytes[start..end].fill(0);
            let _ = check(
                &damaged,
                &models,
                &format!("zero {start}..{end} of {}", segment.display()),
            );
        }
    }
    // Garbage appended to the newest segment is not what a crash leaves (lost sectors
    // come back as zeros, never as other bytes), whatever its length: refused. Zeros
    // appended are (a size that reached the disk before its data): nothing lost.
    for garbage_len in [1usize, 19, 20, 31, 32, 100, 4096, 4097] {
        let mut damaged = image.clone();
        damaged
            .get_mut(&newest)
            .unwrap()
            .extend((0..garbage_len).map(|i| (i * 7 + 3) as u8));
        let err = check(&damaged, &models, &format!("{garbage_len} garbage bytes")).unwrap_err();
        assert!(err.contains("shape"), "garbage {garbage_len}: {err}");
        let mut zeroed = image.clone();
        zeroed
            .get_mut(&newest)
            .unwrap()
            .extend(std::iter::repeat_n(0u8, garbage_len));
        let prefix = check(&zeroed, &models, &format!("{garbage_len} zero bytes"))
            .unwrap_or_else(|err| panic!("zeros {garbage_len}: {err}"));
        assert_eq!(prefix, PUTS);
    }
    // Garbage appended to an older segment: corruption.
    let mut damaged = image.clone();
    damaged
        .get_mut(&all_segments[all_segments.len() - 2])
        .unwrap()
        .extend([0xAB; 30]);
    assert!(check(&damaged, &models, "garbage in older segment").is_err());
    // Two segments swapped.
    let mut damaged = image.clone();
    let (a, b) = (
        &all_segments[all_segments.len() - 2],
        &all_segments[all_segments.len() - 1],
    );
    let (bytes_a, bytes_b) = (image[a].clone(), image[b].clone());
    damaged.insert(a.clone(), bytes_b);
    damaged.insert(b.clone(), bytes_a);
    assert!(check(&damaged, &models, "swapped segments").is_err());
    // A middle segment deleted.
    let mut damaged = image.clone();
    damaged.remove(&all_segments[all_segments.len() - 2]);
    assert!(check(&damaged, &models, "deleted segment").is_err());
    // A format version this build does not read, with a valid checksum.
    let mut damaged = image.clone();
    let mut header = damaged[&newest][..SEGMENT_HEADER_LEN].to_vec();
    header[8..12].copy_from_slice(&9u32.to_le_bytes());
    let crc = crc32(&header[..44]);
    header[44..48].copy_from_slice(&crc.to_le_bytes());
    damaged.get_mut(&newest).unwrap()[..SEGMENT_HEADER_LEN].copy_from_slice(&header);
    let err = check(&damaged, &models, "segment version 9").unwrap_err();
    assert!(err.contains("format version 9"), "{err}");
    let checkpoint = checkpoints(&image).pop().unwrap();
    let mut damaged = image.clone();
    let bytes = damaged.get_mut(&checkpoint).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    let body = bytes.len() - 4;
    let crc = crc32(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    let err = check(&damaged, &models, "checkpoint version 7").unwrap_err();
    assert!(err.contains("format version 7"), "{err}");
}

#[test]
fn verify_and_open_agree_on_the_real_file_system_too() {
    let dir = tempfile::tempdir().unwrap();
    let vfs: VfsRef = Arc::new(RealFs);
    let path = dir.path().join("s");
    {
        let store = KvStore::open(&path, options(&vfs).create_if_missing(true)).unwrap();
        for i in 0..PUTS {
            store.put(key(i), value(i)).unwrap();
        }
    }
    let newest = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes.truncate(bytes.len() - 5);
    std::fs::write(&newest, bytes).unwrap();
    assert_eq!(
        verify::verify(&RealFs, &path).unwrap().verdict,
        Verdict::RepairedByOpen
    );
    let store = KvStore::open(&path, options(&vfs)).unwrap();
    assert_eq!(store.last_lsn(), PUTS as u64 - 1);
    drop(store);
    assert_eq!(
        verify::verify(&RealFs, &path).unwrap().verdict,
        Verdict::Clean
    );
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
