//! Store benchmarks (`KvStore`, 16-byte random keys, 100-byte random values):
//! - apply throughput with `SyncPolicy::Always` at 1, 4 and 16 threads, `Never` at 1 thread,
//!   and `apply_batch` of 100 puts;
//! - recovery: reopen of 1M records by replay only (checkpointing disabled), and from a
//!   checkpoint plus a short tail;
//! - writing a checkpoint of a 1M-key state;
//! - the state alone: 200k puts applied to a fresh `KvState` in memory, next to the same
//!   inserts into a `std` `BTreeMap` (the floor of an ordered in-memory map) and to 200k
//!   `Buffered` puts through the whole store (W3 of the comparison, without its flush);
//! - commit latency while checkpoints of a 1M-key state run back to back, next to the same
//!   without (p50/p99/p99.9/max, the p99 ratio and the load average are printed to
//!   stderr; the target is ≤ 2×).
//!
//! Run: `cargo bench --bench store` (a filter works as usual, e.g.
//! `cargo bench --bench store -- recovery`). The 1M-record stores are built once per
//! process, only when a benchmark that needs them runs. Set `WALSTATE_BENCH_DIR` to
//! benchmark on another file system (the default is the system temp directory).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use std::collections::BTreeMap;

use walstate::{KvCommand, KvState, KvStore, Options, StateMachine, SyncPolicy};

const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 100;
const LARGE: u64 = 1_000_000;
const TAIL: u64 = 10_000;

/// splitmix64, for reproducible keys and values.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn pair(&mut self) -> (Vec<u8>, Vec<u8>) {
        (self.bytes(KEY_LEN), self.bytes(VALUE_LEN))
    }
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("WALSTATE_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(PathBuf::from(base)).expect("bench dir"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

fn open(dir: &Path, policy: SyncPolicy) -> KvStore {
    KvStore::open(
        dir,
        Options::default()
            .sync_policy(policy)
            .checkpoint_after_bytes(None),
    )
    .expect("open store")
}

/// Runs `total` puts spread over `threads` threads and returns the elapsed time, scaled
/// to exactly `total` puts.
fn timed_puts(store: &KvStore, threads: u64, total: u64, seed: u64) -> Duration {
    let per_thread = total.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                let mut rng = Rng(seed ^ (t << 48));
                for _ in 0..per_thread {
                    let (key, value) = rng.pair();
                    store.put(key, value).expect("put");
                }
            });
        }
    });
    start
        .elapsed()
        .mul_f64(total as f64 / (per_thread * threads) as f64)
}

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_apply");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(1));
    for threads in [1u64, 4, 16] {
        group.bench_function(format!("always_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let dir = bench_dir();
                let store = open(dir.path(), SyncPolicy::Always);
                timed_puts(&store, threads, iters.max(threads), iters)
            })
        });
    }
    group.bench_function("never_1_thread", |b| {
        b.iter_custom(|iters| {
            let dir = bench_dir();
            let store = open(dir.path(), SyncPolicy::Never);
            timed_puts(&store, 1, iters, iters)
        })
    });
    group.bench_function("buffered_1_thread", |b| {
        b.iter_custom(|iters| {
            let dir = bench_dir();
            let store = open(dir.path(), SyncPolicy::Buffered);
            timed_puts(&store, 1, iters, iters)
        })
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("always_apply_batch_100", |b| {
        b.iter_custom(|iters| {
            timed_batches(
                iters,
                |rng| {
                    let (k, v) = rng.pair();
                    KvCommand::put(k, v)
                },
                |store, batch| {
                    store.apply_batch(batch).expect("apply_batch");
                },
            )
        })
    });
    // The same batches from borrowed bytes: no commands built, each key and value copied
    // once, into the state.
    group.bench_function("always_put_batch_100", |b| {
        b.iter_custom(|iters| {
            timed_batches(
                iters,
                |rng| rng.pair(),
                |store, batch| {
                    store
                        .put_batch(batch.iter().map(|(k, v)| (k, v)))
                        .expect("put_batch");
                },
            )
        })
    });
    group.finish();
}

/// Times `iters` durable batches of 100 items on a fresh `Always` store; the items are
/// made (seeded by `iters`) before the timer starts.
fn timed_batches<T>(
    iters: u64,
    mut item: impl FnMut(&mut Rng) -> T,
    apply: impl Fn(&KvStore, Vec<T>),
) -> Duration {
    let dir = bench_dir();
    let store = open(dir.path(), SyncPolicy::Always);
    let mut rng = Rng(iters);
    let batches: Vec<Vec<T>> = (0..iters)
        .map(|_| (0..100).map(|_| item(&mut rng)).collect())
        .collect();
    let start = Instant::now();
    for batch in batches {
        apply(&store, batch);
    }
    start.elapsed()
}

/// Writes `count` puts fast (Never policy, batches of 1000), then syncs.
fn fill(store: &KvStore, count: u64, seed: u64) {
    let mut rng = Rng(seed);
    let mut left = count;
    while left > 0 {
        let n = left.min(1000);
        let batch = (0..n)
            .map(|_| {
                let (k, v) = rng.pair();
                KvCommand::put(k, v)
            })
            .collect();
        store.apply_batch(batch).expect("fill");
        left -= n;
    }
    store.sync().expect("sync");
}

/// A closed store of 1M records, journal only.
fn replay_fixture() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = bench_dir();
        let started = Instant::now();
        let store = open(dir.path(), SyncPolicy::Never);
        fill(&store, LARGE, 1);
        store.close().expect("close");
        eprintln!(
            "built the 1M-record journal-only store in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        dir
    })
    .path()
}

/// A closed store of 1M records covered by a checkpoint, plus a 10k-record tail.
fn checkpoint_fixture() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = bench_dir();
        let started = Instant::now();
        let store = open(dir.path(), SyncPolicy::Never);
        fill(&store, LARGE, 2);
        store.checkpoint().expect("checkpoint");
        fill(&store, TAIL, 3);
        store.close().expect("close");
        eprintln!(
            "built the checkpoint + tail store in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        dir
    })
    .path()
}

/// A group of slow samples: 10 of them, each timed as a whole (flat sampling), after a
/// 1 s warm-up, within `measurement` in total.
fn flat_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    measurement: Duration,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(measurement)
        .warm_up_time(Duration::from_secs(1));
    group
}

fn recovery(c: &mut Criterion) {
    let mut group = flat_group(c, "store_recovery", Duration::from_secs(10));
    group.throughput(Throughput::Elements(LARGE));
    group.bench_function("reopen_1m_records_replay_only", |b| {
        let dir = replay_fixture();
        b.iter_custom(|iters| time_reopens(dir, iters, LARGE))
    });
    group.throughput(Throughput::Elements(LARGE + TAIL));
    group.bench_function("reopen_1m_checkpoint_plus_10k_tail", |b| {
        let dir = checkpoint_fixture();
        b.iter_custom(|iters| time_reopens(dir, iters, LARGE + TAIL))
    });
    group.finish();
}

/// Opens the store in `dir` `iters` times and sums the opens' times (each must recover
/// through `last_lsn`). Between opens, the dropped store's memory is handed back to the
/// allocator untimed: a freed 1M-key state leaves millions of chunks in glibc's fast
/// bins, and the next open's first large allocation (its `read_dir`) would consolidate
/// them all — about a fifth of the "open" time in a profile, and nothing a process
/// opening its store at startup pays.
fn time_reopens(dir: &Path, iters: u64, last_lsn: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let store = open(dir, SyncPolicy::Always);
        total += start.elapsed();
        assert_eq!(store.last_lsn(), last_lsn);
        drop(store);
        release_freed_memory();
    }
    total
}

/// Consolidates what the allocator holds freed (glibc's `malloc_trim`; elsewhere a no-op).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks and trims glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// An open store holding 1M keys, opened with `Options::default()` as users run it (the
/// background checkpointer armed at its default threshold, which the benchmarks' own
/// writes stay under: every checkpoint here is an explicit `checkpoint()`).
fn large_store() -> &'static KvStore {
    static STORE: OnceLock<(tempfile::TempDir, KvStore)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = bench_dir();
            {
                let store = open(dir.path(), SyncPolicy::Never);
                fill(&store, LARGE, 4);
                let info = store.checkpoint().expect("checkpoint");
                eprintln!(
                    "1M-key checkpoint file: {:.1} MiB",
                    info.bytes as f64 / 1048576.0
                );
                store.close().expect("close");
            }
            let store = KvStore::open(dir.path(), Options::default()).expect("open store");
            // Write back everything building the store left dirty (the journal of 1M
            // records, the deleted segments' metadata) before anything is timed, so it
            // does not land in whichever benchmark runs first.
            // SAFETY: `sync` takes no arguments and cannot fail.
            unsafe { libc::sync() };
            (dir, store)
        })
        .1
}

fn checkpoint(c: &mut Criterion) {
    let mut group = flat_group(c, "store_checkpoint", Duration::from_secs(10));
    group.throughput(Throughput::Elements(LARGE));
    group.bench_function("write_1m_keys", |b| {
        let store = large_store();
        b.iter(|| store.checkpoint().expect("checkpoint"))
    });
    group.finish();
}

/// Commit latencies (ns) of one writer loop, with and without checkpoints running.
static LATENCIES: Mutex<[Vec<u64>; 2]> = Mutex::new([Vec::new(), Vec::new()]);

fn timed_commits(store: &KvStore, iters: u64, seed: u64, slot: usize) -> Duration {
    let mut rng = Rng(seed);
    let mut lat = Vec::with_capacity(iters as usize);
    let start = Instant::now();
    for _ in 0..iters {
        let (key, value) = rng.pair();
        let t0 = Instant::now();
        store.put(key, value).expect("put");
        lat.push(t0.elapsed().as_nanos() as u64);
    }
    let elapsed = start.elapsed();
    LATENCIES.lock().expect("latencies")[slot].extend(lat);
    elapsed
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e3
}

fn latency_under_checkpoint(c: &mut Criterion) {
    let mut group = flat_group(c, "store_commit_latency_1m_keys", Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    group.bench_function("no_checkpoint", |b| {
        let store = large_store();
        b.iter_custom(|iters| timed_commits(store, iters, iters ^ 0xA, 0))
    });
    // One checkpointer thread runs for the whole benchmark (started on first use, so a
    // filter that skips this benchmark starts nothing): every timed commit overlaps a
    // checkpoint of the 1M-key state.
    let background: Mutex<Option<(Arc<AtomicBool>, std::thread::JoinHandle<u32>)>> =
        Mutex::new(None);
    group.bench_function("checkpoints_running", |b| {
        let store = large_store();
        {
            let mut background = background.lock().expect("background");
            if background.is_none() {
                let stop = Arc::new(AtomicBool::new(false));
                let flag = Arc::clone(&stop);
                let handle = std::thread::spawn(move || {
                    let mut count = 0;
                    while !flag.load(Ordering::Relaxed) {
                        store.checkpoint().expect("checkpoint");
                        count += 1;
                    }
                    count
                });
                // Let the first checkpoint get going (its snapshot is taken at its start).
                std::thread::sleep(Duration::from_millis(20));
                *background = Some((stop, handle));
            }
        }
        b.iter_custom(|iters| timed_commits(store, iters, iters ^ 0xB, 1))
    });
    if let Some((stop, handle)) = background.lock().expect("background").take() {
        stop.store(true, Ordering::Relaxed);
        let count = handle.join().expect("checkpointer");
        eprintln!("{count} checkpoints of the 1M-key state ran during the measurement");
    }
    group.finish();
    let mut lat = LATENCIES.lock().expect("latencies");
    if lat[0].is_empty() || lat[1].is_empty() {
        return;
    }
    for v in lat.iter_mut() {
        v.sort_unstable();
    }
    let summary = |v: &[u64]| {
        format!(
            "p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs max {:.0} µs ({} commits)",
            percentile(v, 0.5),
            percentile(v, 0.99),
            percentile(v, 0.999),
            percentile(v, 1.0),
            v.len()
        )
    };
    eprintln!(
        "commit latency, 1M-key state, 1 writer: without checkpoint {}; checkpoints running {}; \
         p99 ratio {:.2}× (target ≤ 2×), max ratio {:.1}×; load average at the end {}",
        summary(&lat[0]),
        summary(&lat[1]),
        percentile(&lat[1], 0.99) / percentile(&lat[0], 0.99),
        percentile(&lat[1], 1.0) / percentile(&lat[0], 1.0),
        load_average()
    );
}

/// The 1-minute load average (Linux), or "?": the ratio above means little on a busy
/// machine.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

criterion_group!(
    benches,
    apply,
    state_apply,
    recovery,
    checkpoint,
    latency_under_checkpoint
);
criterion_main!(benches);

/// Puts per sample of the `state_apply` group: W3's count.
const BULK: u64 = 200_000;

/// Runs `load` on `iters` fresh sets of [`BULK`] pairs (seeded by the iteration) and
/// sums the times it reports: each load times only its own loop, not its setup, and
/// what it dropped is released before the next one (as in [`time_reopens`]).
fn time_bulk_loads(
    iters: u64,
    mut load: impl FnMut(Vec<(Vec<u8>, Vec<u8>)>) -> Duration,
) -> Duration {
    (0..iters)
        .map(|seed| {
            let mut rng = Rng(seed);
            let elapsed = load((0..BULK).map(|_| rng.pair()).collect());
            release_freed_memory();
            elapsed
        })
        .sum()
}

/// Where a bulk load's time goes: the state alone against an ordered-map floor and the
/// whole store, each on its own fresh map or store per sample and the same 200k pairs.
fn state_apply(c: &mut Criterion) {
    let mut group = flat_group(c, "state_apply", Duration::from_secs(10));
    group.throughput(Throughput::Elements(BULK));
    group.bench_function("kv_state_200k_puts", |b| {
        b.iter_custom(|iters| {
            time_bulk_loads(iters, |pairs| {
                let commands: Vec<KvCommand> = pairs
                    .into_iter()
                    .map(|(k, v)| KvCommand::put(k, v))
                    .collect();
                let mut state = KvState::default();
                let start = Instant::now();
                for command in commands {
                    state.apply_owned(command).expect("put");
                }
                let elapsed = start.elapsed();
                assert_eq!(state.len() as u64, BULK);
                elapsed
            })
        })
    });
    group.bench_function("btreemap_200k_inserts", |b| {
        b.iter_custom(|iters| {
            time_bulk_loads(iters, |pairs| {
                let mut map = BTreeMap::new();
                let start = Instant::now();
                for (k, v) in pairs {
                    map.insert(k, v);
                }
                let elapsed = start.elapsed();
                assert_eq!(map.len() as u64, BULK);
                elapsed
            })
        })
    });
    group.bench_function("kv_store_buffered_200k_puts", |b| {
        b.iter_custom(|iters| {
            time_bulk_loads(iters, |pairs| {
                let dir = bench_dir();
                let store = open(dir.path(), SyncPolicy::Buffered);
                let start = Instant::now();
                for (k, v) in pairs {
                    store.put(k, v).expect("put");
                }
                let elapsed = start.elapsed();
                store.close().expect("close");
                elapsed
            })
        })
    });
    group.finish();
}
