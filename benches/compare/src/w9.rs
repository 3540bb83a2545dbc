//! W9: opening a store from a 1M-key checkpoint, and what its state costs in memory
//! (walstate only; issue 21's open and memory targets).
//!
//! The parent builds the store once per repetition (1,000,000 puts of 16-byte keys and
//! 100-byte values under `Buffered`, one checkpoint, close). Then, with the store's files
//! evicted from the page cache each time, a child process (`--child-w9`) first reads and
//! checksums every checkpoint file (the speed of the files), then opens the store as a
//! writer and reads its length, and reports both times and its VmRSS before and after
//! the open. Evicting before each of the two measurements keeps both cold.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use walstate::{KvStore, Options, SyncPolicy};

use crate::engines::{KEY_LEN, Kind, VALUE_LEN};
use crate::report::Results;
use crate::{Config, Rng, engine_dir, evict_dir, read_and_checksum, read_status_kb};

pub const LABEL: &str = "W9 open from a 1M-key checkpoint (cold cache)";
const KEYS: u64 = 1_000_000;

pub fn run(config: &Config, rep: usize, seed: u64, results: &mut Results) {
    let dir = engine_dir(config, Kind::Walstate, "w9");
    build(&dir, seed);
    let output = Command::new(std::env::current_exe().expect("current exe"))
        .args(["--child-w9", &dir.display().to_string()])
        .stderr(Stdio::inherit())
        .output()
        .expect("run W9 child");
    assert!(output.status.success(), "W9 child failed");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("W9RESULT"))
        .expect("W9 result line");
    let get = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let raw_bytes = (KEYS as usize * (KEY_LEN + VALUE_LEN)) as f64;
    results.add(
        LABEL,
        Kind::Walstate,
        rep,
        vec![
            ("read + checksum ms", get("scan_ms")),
            ("open ms", get("open_ms")),
            ("open ÷ read + checksum", get("open_ms") / get("scan_ms")),
            ("state MiB", get("state_kib") / 1024.0),
            (
                "state ÷ raw key and value bytes",
                get("state_kib") * 1024.0 / raw_bytes,
            ),
        ],
    );
}

fn build(dir: &Path, seed: u64) {
    let options = Options::default()
        .sync_policy(SyncPolicy::Buffered)
        .checkpoint_after_bytes(None);
    let store = KvStore::open(dir, options).expect("open W9 store");
    let mut rng = Rng::new(seed);
    for _ in 0..KEYS {
        let (key, value) = rng.item();
        store.put(key, value).expect("W9 put");
    }
    store.sync().expect("W9 sync");
    store.checkpoint().expect("W9 checkpoint");
    store.close().expect("W9 close");
}

/// The child: read + checksum the checkpoints cold, then open the store cold.
pub fn child(dir: &Path) {
    evict_dir(dir);
    let started = Instant::now();
    for entry in std::fs::read_dir(dir).expect("list W9 store") {
        let path = entry.expect("W9 entry").path();
        if path.extension().is_some_and(|e| e == "ckpt") {
            std::hint::black_box(read_and_checksum(&path));
        }
    }
    let scan = started.elapsed();
    evict_dir(dir);
    let before = read_status_kb("VmRSS:");
    let started = Instant::now();
    let store = KvStore::open(dir, Options::default()).expect("open W9 store");
    let len = store.len().expect("W9 len");
    let open = started.elapsed();
    let after = read_status_kb("VmRSS:");
    assert_eq!(len as u64, KEYS, "W9 store holds every key");
    println!(
        "W9RESULT scan_ms={} open_ms={} state_kib={}",
        scan.as_secs_f64() * 1e3,
        open.as_secs_f64() * 1e3,
        after.saturating_sub(before)
    );
    drop(store);
}
