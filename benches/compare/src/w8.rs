//! W8: what a segment rotation costs the commit that makes it (walstate only).
//!
//! One thread makes durable commits of 4 KiB values into a store of 64 MiB segments (the default)
//! until it has rotated `ROTATIONS` times, once with the spare segment
//! (`Options::spare_segment(true)`, the default: the next segment's file made in the
//! background once the active one is half full) and once without, alternating which
//! goes first. The commits that started a segment (seen by the segment count changing,
//! checked between commits, outside the timed part) are shown apart from the others.
//! The store is reopened afterwards and every commit counted.

use std::time::Instant;

use walstate::{KvStore, Options};

use crate::engines::Kind;
use crate::report::{Results, percentile};
use crate::{Config, Rng, engine_dir};

const SEGMENT_BYTES: u64 = 64 << 20;
const VALUE_BYTES: usize = 4 << 10;
const ROTATIONS: usize = 3;

pub const LABEL_SPARE: &str = "W8 rotation, spare segment on (default)";
pub const LABEL_NO_SPARE: &str = "W8 rotation, spare segment off";

pub fn run(config: &Config, rep: usize, seed: u64, results: &mut Results) {
    let order = if rep % 2 == 0 {
        [true, false]
    } else {
        [false, true]
    };
    for spare in order {
        let label = if spare { LABEL_SPARE } else { LABEL_NO_SPARE };
        results.add(label, Kind::Walstate, rep, one(config, spare, seed));
    }
}

fn one(config: &Config, spare: bool, seed: u64) -> Vec<(&'static str, f64)> {
    let dir = engine_dir(
        config,
        Kind::Walstate,
        if spare { "w8-spare" } else { "w8-nospare" },
    );
    let options = Options::default()
        .segment_size_bytes(SEGMENT_BYTES)
        .checkpoint_after_bytes(None)
        .spare_segment(spare);
    let store = KvStore::open(&dir, options.clone()).expect("open W8 store");
    let per_segment = (SEGMENT_BYTES as usize) / (VALUE_BYTES + 64);
    let commits = per_segment * ROTATIONS + per_segment / 2;
    let mut rng = Rng::new(seed);
    let mut value = vec![0u8; VALUE_BYTES];
    let mut lat = Vec::with_capacity(commits);
    // Latencies of the commits that started a segment (seen by the segment count
    // changing, checked outside the timed part).
    let mut rotating = Vec::new();
    let mut segments = count_segments(&dir);
    let mut timed = std::time::Duration::ZERO;
    for i in 0..commits as u64 {
        rng.fill(&mut value);
        let t0 = Instant::now();
        store.put(i.to_be_bytes(), &value).expect("W8 commit");
        let took = t0.elapsed();
        timed += took;
        let now = count_segments(&dir);
        if now != segments {
            rotating.push(took.as_nanos() as u64);
            segments = now;
        } else {
            lat.push(took.as_nanos() as u64);
        }
    }
    store.close().expect("close W8 store");
    assert_eq!(rotating.len(), ROTATIONS, "W8 rotations");
    // Every commit is there.
    let store = KvStore::open(&dir, options).expect("reopen W8 store");
    assert_eq!(store.len().expect("W8 len"), commits);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    lat.sort_unstable();
    let rotating_mean = rotating.iter().sum::<u64>() as f64 / rotating.len() as f64;
    vec![
        ("commits/s", commits as f64 / timed.as_secs_f64()),
        ("other commits p50 µs", percentile(&lat, 0.50) as f64 / 1e3),
        ("other commits p99 µs", percentile(&lat, 0.99) as f64 / 1e3),
        (
            "other commits max µs",
            *lat.last().expect("commits") as f64 / 1e3,
        ),
        ("rotating commit mean µs", rotating_mean / 1e3),
    ]
}

fn count_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .expect("list W8 store")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        })
        .count()
}
