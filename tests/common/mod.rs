//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod kv_model;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use walstate::io::{SimFs, VfsRef};
use walstate::journal::{self, Journal, JournalOptions, ScanOptions, ScanOutcome};

/// The seeded random numbers of the simulation tests (splitmix64): a seed replays a case.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A record as read back: (LSN, kind, payload).
pub type ReadRecord = (u64, u8, Vec<u8>);

/// Scans `dir` from LSN 1 and returns the outcome and every delivered record.
pub fn read_all(vfs: &VfsRef, dir: &Path) -> (ScanOutcome, Vec<ReadRecord>) {
    let mut records = Vec::new();
    let outcome = journal::scan(
        vfs.as_ref(),
        dir,
        ScanOptions {
            from_lsn: 1,
            may_map: false,
        },
        |group, _pos| {
            for r in group {
                records.push((r.lsn, r.kind, r.payload.to_vec()));
            }
            Ok(())
        },
    )
    .expect("scan");
    (outcome, records)
}

/// Scans, truncates a torn tail, and resumes a journal for appending.
pub fn reopen(
    vfs: &VfsRef,
    dir: &Path,
    options: JournalOptions,
) -> walstate::Result<(Journal, ScanOutcome, Vec<ReadRecord>)> {
    let (outcome, records) = read_all(vfs, dir);
    journal::truncate_torn_tail(vfs.as_ref(), &outcome)?;
    let journal = Journal::resume(vfs.clone(), dir, options, &outcome)?;
    Ok((journal, outcome, records))
}

/// Small limits so tests rotate segments and hit the torn window quickly. Segments are
/// not preallocated, so file lengths end at the last record; tests of preallocated
/// segments set `preallocate: true` over these.
pub fn small_options() -> JournalOptions {
    JournalOptions {
        segment_size_bytes: 8 * 1024,
        preallocate: false,
        record_payload_max: 1024,
        unsynced_bytes_max: 4096,
        ..JournalOptions::default()
    }
}

/// A deterministic payload for record number `n`.
pub fn payload(n: u64) -> Vec<u8> {
    let len = (n * 37 % 200) as usize + 1;
    (0..len).map(|i| (n as usize * 31 + i) as u8).collect()
}

/// (LSN, offset, frame length) of every valid record at the start of a segment file
/// (seals, which take no LSN, are skipped).
pub fn records_in(path: &Path) -> Vec<(u64, usize, usize)> {
    let bytes = std::fs::read(path).expect("read segment");
    let header = walstate::format::SegmentHeader::decode(&bytes).expect("segment header");
    let mut offset = header.data_start();
    let mut found = Vec::new();
    while let Ok(record) =
        walstate::format::decode_record(&bytes[offset..], header.record_payload_max)
    {
        if !record.is_seal() {
            found.push((record.lsn, offset, record.frame_len()));
        }
        offset += record.frame_len();
    }
    found
}

/// The files of a simulated file system but `LOCK`, by path: a store's image to damage
/// and load again.
pub type Image = BTreeMap<PathBuf, Vec<u8>>;

/// The current content of every file of `sim` but `LOCK`.
pub fn image_of(sim: &SimFs) -> Image {
    sim.list_files()
        .into_iter()
        .filter(|p| !p.ends_with("LOCK"))
        .filter_map(|p| sim.file_bytes(&p).map(|bytes| (p, bytes)))
        .collect()
}

/// A new simulated file system (seeded with `seed`) holding `image`, all durable.
pub fn load_image(image: &Image, seed: u64) -> (Arc<SimFs>, VfsRef) {
    let sim = SimFs::new(seed);
    for (path, bytes) in image {
        sim.write_durable(path, bytes);
    }
    let vfs: VfsRef = sim.clone();
    (sim, vfs)
}
