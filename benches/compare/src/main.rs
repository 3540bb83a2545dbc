//! walstate's KvStore next to embedded peers and two raw references, on the same machine
//! and file system, in the same run (see BENCHMARKS.md at the repository root).
//!
//! ```text
//! cargo run --release -- [--quick] [--workloads W1,W3,W7] [--reps N] [--dir PATH]
//!                        [--engines walstate,redb,...]
//! ```
//!
//! Engines run interleaved: each repetition runs every workload on every engine, the
//! starting engine rotated by one per repetition. Ratios to the raw references are taken
//! within the same repetition, and their median is printed.

mod engines;
mod report;
mod w7;
mod w8;
mod w9;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use engines::{Item, KEY_LEN, Kind, Purpose, VALUE_LEN};
use report::{Results, percentile};

/// splitmix64: small, fast, and good enough for keys and values.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
    pub fn item(&mut self) -> Item {
        let mut key = [0u8; KEY_LEN];
        let mut value = [0u8; VALUE_LEN];
        self.fill(&mut key);
        self.fill(&mut value);
        (key, value)
    }
}

/// `next_u64` calls per [`Rng::item`].
const DRAWS_PER_ITEM: u64 = (KEY_LEN.div_ceil(8) + VALUE_LEN.div_ceil(8)) as u64;

/// The key of item `index` of `Rng::new(seed)`'s sequence of items, without drawing the
/// items before it (splitmix64's state after `n` draws is `seed + n × γ`).
fn item_key(seed: u64, index: u64) -> [u8; KEY_LEN] {
    let draws = index.wrapping_mul(DRAWS_PER_ITEM);
    let mut rng = Rng::new(seed.wrapping_add(draws.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let mut key = [0u8; KEY_LEN];
    rng.fill(&mut key);
    key
}

pub fn items(seed: u64, count: usize) -> Vec<Item> {
    let mut rng = Rng::new(seed);
    (0..count).map(|_| rng.item()).collect()
}

#[derive(Clone)]
struct Config {
    quick: bool,
    reps: usize,
    workloads: Vec<String>,
    engines: Vec<Kind>,
    dir: PathBuf,
    /// W1 commits per run.
    w1_commits: u64,
    /// W2 commits per thread, per thread count.
    w2: Vec<(usize, u64)>,
    /// Time cap of one durable-commit run.
    cap: Duration,
    w3_records: usize,
    w5_batches: u64,
    w6_keys: u64,
    w6_secs: f64,
    /// W7 writer process counts.
    w7_procs: Vec<usize>,
    /// W7 durable commits per writer process.
    w7_commits: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: walstate-compare [--quick] [--workloads W1,W2,W3,W4,W5,W6,W7,W8,W9] [--reps N] [--dir PATH] [--engines a,b]"
    );
    std::process::exit(2)
}

fn parse_args() -> Config {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut quick = false;
    let mut reps = None;
    let mut workloads = vec!["W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    let mut engines = Kind::ALL.to_vec();
    let mut dir = None;
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| args.get(i + 1).cloned().unwrap_or_else(|| usage());
        match args[i].as_str() {
            "--quick" => quick = true,
            "--reps" => {
                reps = Some(value(i).parse().unwrap_or_else(|_| usage()));
                i += 1;
            }
            "--workloads" => {
                workloads = value(i)
                    .split(',')
                    .map(|w| w.trim().to_ascii_uppercase())
                    .collect();
                i += 1;
            }
            "--engines" => {
                engines = value(i)
                    .split(',')
                    .map(|e| Kind::parse(e.trim()).unwrap_or_else(|| usage()))
                    .collect();
                i += 1;
            }
            "--dir" => {
                dir = Some(PathBuf::from(value(i)));
                i += 1;
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
        i += 1;
    }
    let base = dir.unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("walstate-compare-{}", std::process::id()));
    if quick {
        Config {
            quick,
            reps: reps.unwrap_or(1),
            workloads,
            engines,
            dir,
            w1_commits: 300,
            w2: vec![(4, 100), (16, 40)],
            cap: Duration::from_secs(2),
            w3_records: 20_000,
            w5_batches: 30,
            w6_keys: 100_000,
            w6_secs: 1.5,
            w7_procs: vec![1, 2, 4],
            w7_commits: 200,
        }
    } else {
        Config {
            quick,
            reps: reps.unwrap_or(5),
            workloads,
            engines,
            dir,
            w1_commits: 5_000,
            w2: vec![(4, 1_000), (16, 500)],
            cap: Duration::from_secs(4),
            w3_records: 200_000,
            w5_batches: 300,
            w6_keys: 1_000_000,
            w6_secs: 5.0,
            w7_procs: vec![1, 2, 4],
            w7_commits: 2_000,
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child-w3") {
        child_w3(&args[2..]);
        return;
    }
    if args.get(1).map(String::as_str) == Some("--child-w6") {
        child_w6(&args[2..]);
        return;
    }
    if args.get(1).map(String::as_str) == Some("--child-w9") {
        w9::child(Path::new(&args[2]));
        return;
    }
    if args.get(1).map(String::as_str) == Some("--child-w7") {
        w7::child(&args[2..]);
        return;
    }
    let config = parse_args();
    std::fs::create_dir_all(&config.dir).expect("create bench dir");
    let started = Instant::now();
    eprintln!(
        "walstate-compare: {} run, {} repetition(s), workloads {:?}, dir {}",
        if config.quick { "quick" } else { "full" },
        config.reps,
        config.workloads,
        config.dir.display()
    );
    let mut results = Results::default();
    let engines = config.engines.clone();
    let wants = |w: &str| config.workloads.iter().any(|x| x == w);
    for rep in 0..config.reps {
        let mut order = engines.clone();
        order.rotate_left(rep % engines.len().max(1));
        let seed = 0x5EED_0000 + rep as u64 * 1_000;
        eprintln!(
            "repetition {}/{} (order: {})",
            rep + 1,
            config.reps,
            order
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        // Bulk-only rows (walstate-never) join W3 and W4 only.
        let durable: Vec<Kind> = order.iter().copied().filter(|k| !k.bulk_only()).collect();
        if wants("W1") {
            for (kind, run) in w1_interleaved(&config, &durable, seed + 1) {
                results.add("W1 durable commits, 1 thread", kind, rep, run.metrics());
            }
        }
        if wants("W2") {
            for &(threads, per_thread) in &config.w2 {
                for &kind in &durable {
                    let run = durable_run(&config, kind, threads, per_thread, seed + 2, config.cap);
                    results.add(
                        &format!("W2 durable commits, {threads} threads"),
                        kind,
                        rep,
                        run.metrics(),
                    );
                }
            }
        }
        if wants("W3") || wants("W4") {
            for &kind in &order {
                w3_w4(&config, kind, rep, seed + 3, &mut results, wants("W4"));
            }
        }
        if wants("W5") {
            for &kind in &durable {
                w5(&config, kind, rep, seed + 5, &mut results);
            }
        }
        if wants("W6") {
            w6(&config, &order, rep, seed + 6, &mut results);
        }
        if wants("W7") {
            w7::run(&config, &order, rep, seed + 7, &mut results);
        }
        if wants("W8") && engines.contains(&Kind::Walstate) {
            w8::run(&config, rep, seed + 8, &mut results);
        }
        if wants("W9") && engines.contains(&Kind::Walstate) {
            w9::run(&config, rep, seed + 9, &mut results);
        }
    }
    let _ = std::fs::remove_dir_all(&config.dir);
    let elapsed = started.elapsed();
    let out = report::render(&results, &config.engines);
    println!("{out}");
    println!(
        "_Run time: {:.0} s ({} repetition(s), {} mode)._",
        elapsed.as_secs_f64(),
        config.reps,
        if config.quick { "quick" } else { "full" }
    );
    eprintln!("done in {:.1} s", elapsed.as_secs_f64());
}

fn engine_dir(config: &Config, kind: Kind, tag: &str) -> PathBuf {
    let dir = config.dir.join(format!("{}-{tag}", kind.name()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

struct Run {
    commits: u64,
    elapsed: Duration,
    latencies: Vec<u64>,
    /// fdatasync calls during the run, where the engine counts them.
    syncs: Option<u64>,
}

impl Run {
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        let mut lat = self.latencies.clone();
        lat.sort_unstable();
        vec![
            (
                "commits/s",
                self.commits as f64 / self.elapsed.as_secs_f64(),
            ),
            ("p50 µs", percentile(&lat, 0.50) as f64 / 1e3),
            ("p99 µs", percentile(&lat, 0.99) as f64 / 1e3),
            (
                "commits/fdatasync",
                self.syncs
                    .map_or(f64::NAN, |s| self.commits as f64 / s.max(1) as f64),
            ),
        ]
    }
}

/// `threads` writers, each doing up to `per_thread` durable single-put commits (stopping
/// early at `cap`); per-commit latencies in nanoseconds.
fn durable_threads(
    engine: &dyn engines::Engine,
    threads: usize,
    per_thread: u64,
    seed: u64,
    cap: Duration,
) -> Run {
    let syncs_before = engine.syncs();
    let start = Instant::now();
    let results: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut rng = Rng::new(seed ^ ((t as u64 + 1) << 32));
                    let mut writer = engine.writer();
                    let mut lat = Vec::with_capacity(per_thread.min(1 << 16) as usize);
                    for _ in 0..per_thread {
                        let item = rng.item();
                        let t0 = Instant::now();
                        writer.put(&item);
                        lat.push(t0.elapsed().as_nanos() as u64);
                        if start.elapsed() > cap {
                            break;
                        }
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect()
    });
    let elapsed = start.elapsed();
    let latencies: Vec<u64> = results.into_iter().flatten().collect();
    let syncs = engine.syncs().zip(syncs_before).map(|(a, b)| a - b);
    Run {
        commits: latencies.len() as u64,
        elapsed,
        latencies,
        syncs,
    }
}

/// Commits per engine per slice of the interleaved W1.
const W1_SLICE_COMMITS: u64 = 250;

/// W1 with every engine open at once, taking turns in slices of [`W1_SLICE_COMMITS`]
/// single-thread durable commits (round-robin in `order`), so a drift of the disk's
/// latency over the seconds of a repetition lands on every engine alike instead of on
/// whichever engine's turn it was. Each engine commits the same items as on its own,
/// stopping at `w1_commits` or when its own time reaches the cap.
fn w1_interleaved(config: &Config, order: &[Kind], seed: u64) -> Vec<(Kind, Run)> {
    let engines: Vec<(Kind, PathBuf, Box<dyn engines::Engine>)> = order
        .iter()
        .map(|&kind| {
            let dir = engine_dir(config, kind, "durable-1");
            let engine = engines::open(
                kind,
                &dir,
                Purpose::Commits {
                    records: config.w1_commits,
                },
            );
            (kind, dir, engine)
        })
        .collect();
    let mut runs: Vec<Run> = engines
        .iter()
        .map(|(_, _, engine)| Run {
            commits: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::with_capacity(config.w1_commits as usize),
            syncs: engine.syncs(),
        })
        .collect();
    {
        let mut writers: Vec<_> = engines.iter().map(|(_, _, e)| e.writer()).collect();
        let mut rngs: Vec<Rng> = engines
            .iter()
            .map(|_| Rng::new(seed ^ (1u64 << 32)))
            .collect();
        loop {
            let mut progressed = false;
            for (index, writer) in writers.iter_mut().enumerate() {
                let run = &mut runs[index];
                if run.commits >= config.w1_commits || run.elapsed > config.cap {
                    continue;
                }
                progressed = true;
                let slice = W1_SLICE_COMMITS.min(config.w1_commits - run.commits);
                let start = Instant::now();
                for _ in 0..slice {
                    let item = rngs[index].item();
                    let t0 = Instant::now();
                    writer.put(&item);
                    run.latencies.push(t0.elapsed().as_nanos() as u64);
                }
                run.elapsed += start.elapsed();
                run.commits += slice;
            }
            if !progressed {
                break;
            }
        }
    }
    let mut out = Vec::new();
    for ((kind, dir, engine), mut run) in engines.into_iter().zip(runs) {
        run.syncs = engine.syncs().zip(run.syncs).map(|(a, b)| a - b);
        engine.close();
        let _ = std::fs::remove_dir_all(&dir);
        out.push((kind, run));
    }
    out
}

fn durable_run(
    config: &Config,
    kind: Kind,
    threads: usize,
    per_thread: u64,
    seed: u64,
    cap: Duration,
) -> Run {
    let dir = engine_dir(config, kind, &format!("durable-{threads}"));
    let engine = engines::open(
        kind,
        &dir,
        Purpose::Commits {
            records: threads as u64 * per_thread,
        },
    );
    let run = durable_threads(engine.as_ref(), threads, per_thread, seed, cap);
    engine.close();
    let _ = std::fs::remove_dir_all(&dir);
    run
}

fn w5(config: &Config, kind: Kind, rep: usize, seed: u64, results: &mut Results) {
    let dir = engine_dir(config, kind, "batch");
    let batches = config.w5_batches;
    let engine = engines::open(
        kind,
        &dir,
        Purpose::Commits {
            records: batches * 100,
        },
    );
    let data = items(seed, (batches * 100) as usize);
    let mut writer = engine.writer();
    let mut lat = Vec::with_capacity(batches as usize);
    let start = Instant::now();
    let mut done = 0u64;
    for chunk in data.chunks(100) {
        let t0 = Instant::now();
        writer.batch(chunk);
        lat.push(t0.elapsed().as_nanos() as u64);
        done += chunk.len() as u64;
        if start.elapsed() > config.cap * 2 {
            break;
        }
    }
    let elapsed = start.elapsed();
    drop(writer);
    engine.close();
    let _ = std::fs::remove_dir_all(&dir);
    lat.sort_unstable();
    results.add(
        "W5 durable batches of 100 puts",
        kind,
        rep,
        vec![
            ("records/s", done as f64 / elapsed.as_secs_f64()),
            ("batch p99 µs", percentile(&lat, 0.99) as f64 / 1e3),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// W3 + W4

fn w3_w4(config: &Config, kind: Kind, rep: usize, seed: u64, results: &mut Results, w4: bool) {
    let n = config.w3_records;
    let data = items(seed, n);
    let last = *data.last().expect("items");
    let dir = engine_dir(config, kind, "bulk");
    let engine = engines::open(kind, &dir, Purpose::Bulk { records: n as u64 });
    let start = Instant::now();
    engine.bulk_unsynced(&data);
    let elapsed = start.elapsed();
    engine.close();
    let disk = disk_bytes(&dir);
    results.add(
        "W3 unsynced puts + one durable flush",
        kind,
        rep,
        vec![
            ("puts/s", n as f64 / elapsed.as_secs_f64()),
            ("disk MiB", disk as f64 / (1 << 20) as f64),
        ],
    );
    drop(data);
    if !w4 {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    // The speed of the files: read and checksum every file of the store, cold.
    let scan = scan_files_cold(&dir);
    // Clean close (above), evicted from the page cache, reopened.
    evict_dir(&dir);
    let clean = engines::reopen_ready(kind, &dir, n as u64, &last);
    let _ = std::fs::remove_dir_all(&dir);
    results.add(
        "W4 reopen after clean close (cold cache)",
        kind,
        rep,
        vec![
            ("seconds", clean.as_secs_f64()),
            ("read + checksum of its files, s", scan.as_secs_f64()),
            (
                "reopen ÷ read + checksum",
                clean.as_secs_f64() / scan.as_secs_f64(),
            ),
        ],
    );
    // A child process does W3 and is SIGKILLed after its flush.
    let dir = engine_dir(config, kind, "killed");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .args([
            "--child-w3",
            kind.name(),
            &dir.display().to_string(),
            &n.to_string(),
            &seed.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("child output");
    assert_eq!(line.trim(), "flushed", "child W3 for {}", kind.name());
    child.kill().expect("SIGKILL child"); // Child::kill sends SIGKILL on Unix
    let status = child.wait().expect("wait child");
    assert!(!status.success(), "child was not killed");
    evict_dir(&dir);
    let killed = engines::reopen_ready(kind, &dir, n as u64, &last);
    let _ = std::fs::remove_dir_all(&dir);
    results.add(
        "W4 reopen after SIGKILL (cold cache)",
        kind,
        rep,
        vec![("seconds", killed.as_secs_f64())],
    );
}

/// Reads every file under `dir` from a cold cache and checksums it (crc32fast), as a
/// reference for what reopening them must at least cost.
fn scan_files_cold(dir: &Path) -> Duration {
    evict_dir(dir);
    let mut files = Vec::new();
    walk_files(dir, &mut files);
    let started = Instant::now();
    for file in &files {
        std::hint::black_box(read_and_checksum(file));
    }
    started.elapsed()
}

/// Reads `path` in 1 MiB chunks into one reused buffer and checksums it: the speed of
/// the file (no allocation growing with it, no page faults of fresh memory).
pub(crate) fn read_and_checksum(path: &Path) -> u32 {
    use std::io::Read;
    let mut file = std::fs::File::open(path).expect("open store file");
    let mut buf = vec![0u8; 1 << 20];
    let mut hasher = crc32fast::Hasher::new();
    loop {
        let n = file.read(&mut buf).expect("read store file");
        if n == 0 {
            return hasher.finalize();
        }
        hasher.update(&buf[..n]);
    }
}

/// The W3 writer process for W4's kill case: writes, flushes, says so, waits to be killed.
fn child_w3(args: &[String]) {
    let kind = Kind::parse(&args[0]).expect("engine");
    let dir = PathBuf::from(&args[1]);
    let n: usize = args[2].parse().expect("n");
    let seed: u64 = args[3].parse().expect("seed");
    let data = items(seed, n);
    let engine = engines::open(kind, &dir, Purpose::Bulk { records: n as u64 });
    engine.bulk_unsynced(&data);
    let mut out = std::io::stdout();
    writeln!(out, "flushed").expect("stdout");
    out.flush().expect("flush stdout");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk_files(&path, out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// Allocated bytes (st_blocks * 512) of every file under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut files = Vec::new();
    walk_files(dir, &mut files);
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.blocks() * 512)
        .sum()
}

/// fsync + posix_fadvise(POSIX_FADV_DONTNEED) on every file under `dir`: drops exactly
/// these files from the page cache (no global drop_caches, which would disturb others).
fn evict_dir(dir: &Path) {
    use std::os::fd::AsRawFd;
    let mut files = Vec::new();
    walk_files(dir, &mut files);
    for path in files {
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        let _ = file.sync_all();
        // SAFETY: plain syscall on an open descriptor.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "posix_fadvise on {}", path.display());
    }
}

// ---------------------------------------------------------------------------------------
// W6

fn w6(config: &Config, order: &[Kind], rep: usize, seed: u64, results: &mut Results) {
    // walstate with a large state, in a fresh child process (clean memory accounting),
    // once with the default options (the background checkpointer armed, as users run it)
    // and once with checkpoint_after_bytes(None) (checkpoints only on demand).
    // A third run overwrites keys of the loaded million instead of inserting new ones:
    // the state stays the same size, so its memory ratio is the checkpoint's own cost.
    for (mode, writes, label, threads_doing) in [
        ("auto", "insert", "W6 walstate Options::default()", ""),
        (
            "manual",
            "insert",
            "W6 walstate checkpoint_after_bytes(None)",
            "",
        ),
        (
            "manual",
            "overwrite",
            "W6 overwrites: walstate checkpoint_after_bytes(None)",
            " overwriting loaded keys",
        ),
    ] {
        if !order.contains(&Kind::Walstate) {
            break;
        }
        let dir = engine_dir(config, Kind::Walstate, &format!("w6-{mode}-{writes}"));
        let output = Command::new(std::env::current_exe().expect("current exe"))
            .args([
                "--child-w6",
                &dir.display().to_string(),
                &config.w6_keys.to_string(),
                &config.w6_secs.to_string(),
                &seed.to_string(),
                mode,
                writes,
            ])
            .stderr(Stdio::inherit())
            .output()
            .expect("run W6 child");
        assert!(output.status.success(), "W6 child failed");
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("W6RESULT"))
            .expect("W6 result line");
        let get = |name: &str| -> f64 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN)
        };
        results.add(
            &format!(
                "{label}, {} keys, 4 threads{threads_doing}: checkpoints running vs not",
                config.w6_keys
            ),
            Kind::Walstate,
            rep,
            vec![
                ("p99 µs no ckpt", get("p99_a")),
                ("p99 µs during ckpt", get("p99_b")),
                ("p99 ratio", get("p99_b") / get("p99_a")),
                ("p50 µs no ckpt", get("p50_a")),
                ("p50 µs during ckpt", get("p50_b")),
                ("max ms no ckpt", get("max_a") / 1e3),
                ("max ms during ckpt", get("max_b") / 1e3),
                ("RSS MiB before", get("rss_a") / 1024.0),
                ("peak RSS MiB during", get("peak_b") / 1024.0),
                ("mem ratio", get("peak_b") / get("rss_a")),
                ("checkpoints", get("checkpoints")),
                ("s/checkpoint", get("ckpt_secs")),
            ],
        );
        results.note(format!(
            "W6 memory: peak = max(VmRSS sampled every 2 ms, VmHWM after reset via /proc/self/clear_refs: {}).",
            if get("hwm_reset") == 1.0 { "allowed" } else { "not allowed, sampling only" }
        ));
    }
    // Context: every engine alone, 4 threads, small store (3 s each in a full run).
    let secs = Duration::from_secs_f64(config.w6_secs.min(3.0));
    for &kind in order {
        let dir = engine_dir(config, kind, "w6ctx");
        let engine = engines::open(kind, &dir, Purpose::Commits { records: 200_000 });
        let run = durable_threads(engine.as_ref(), 4, u64::MAX, seed, secs);
        engine.close();
        let _ = std::fs::remove_dir_all(&dir);
        results.add(
            "W6 context: 4 threads, small store, no checkpoint",
            kind,
            rep,
            run.metrics(),
        );
    }
}

fn read_status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn child_w6(args: &[String]) {
    let dir = PathBuf::from(&args[0]);
    let keys: u64 = args[1].parse().expect("keys");
    let secs: f64 = args[2].parse().expect("secs");
    let seed: u64 = args[3].parse().expect("seed");
    // "auto": Options::default() (background checkpoints armed at the default threshold;
    // the writes of one phase stay under it, so phase A runs without a checkpoint);
    // "manual": checkpoint_after_bytes(None).
    let auto = args.get(4).is_none_or(|m| m == "auto");
    // "insert" (the default): writers put new random keys, so the state grows during
    // both phases; "overwrite": writers put new values under keys loaded below.
    let overwrite = args.get(5).is_some_and(|w| w == "overwrite");
    let mut options = walstate::Options::default();
    if !auto {
        options = options.checkpoint_after_bytes(None);
    }
    let store = walstate::KvStore::open(&dir, options).expect("open");
    let load = Instant::now();
    let mut rng = Rng::new(seed);
    let mut left = keys;
    while left > 0 {
        let n = left.min(10_000);
        let batch = (0..n)
            .map(|_| {
                let (k, v) = rng.item();
                walstate::KvCommand::put(k.to_vec(), v.to_vec())
            })
            .collect();
        store.apply_batch(batch).expect("load");
        left -= n;
    }
    for index in [0, keys / 2, keys - 1] {
        let key = item_key(seed, index);
        assert!(store.get(&key).expect("get").is_some(), "item_key({index})");
    }
    // Start both phases from the same shape: a checkpoint exists, the journal is short.
    store.checkpoint().expect("first checkpoint");
    eprintln!(
        "  W6: loaded {keys} keys + first checkpoint in {:.1} s",
        load.elapsed().as_secs_f64()
    );
    let duration = Duration::from_secs_f64(secs);
    let peak = Arc::new(AtomicU64::new(0));
    let stop_sampler = Arc::new(AtomicBool::new(false));
    let sampler = {
        let peak = Arc::clone(&peak);
        let stop = Arc::clone(&stop_sampler);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(read_status_kb("VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let load_seed = seed;
    let writers = |seed: u64| -> Vec<u64> {
        let start = Instant::now();
        let lat: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4u64)
                .map(|t| {
                    let store = &store;
                    scope.spawn(move || {
                        let mut rng = Rng::new(seed ^ ((t + 1) << 40));
                        let mut lat = Vec::new();
                        while start.elapsed() < duration {
                            let (mut k, v) = rng.item();
                            if overwrite {
                                k = item_key(load_seed, rng.next_u64() % keys);
                            }
                            let t0 = Instant::now();
                            store.put(k, v).expect("put");
                            lat.push(t0.elapsed().as_nanos() as u64);
                        }
                        lat
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("writer"))
                .collect()
        });
        let mut all: Vec<u64> = lat.into_iter().flatten().collect();
        all.sort_unstable();
        all
    };
    // Phase A: no checkpoint.
    peak.store(0, Ordering::Relaxed);
    let lat_a = writers(seed + 1);
    let rss_a = peak.load(Ordering::Relaxed);
    // Phase B: checkpoints back to back.
    let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    peak.store(0, Ordering::Relaxed);
    let stop_ckpt = AtomicBool::new(false);
    let (lat_b, checkpoints, ckpt_time) = std::thread::scope(|scope| {
        let ckpt = scope.spawn(|| {
            let mut count = 0u32;
            let mut total = Duration::ZERO;
            while !stop_ckpt.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                store.checkpoint().expect("checkpoint");
                total += t0.elapsed();
                count += 1;
            }
            (count, total)
        });
        let lat = writers(seed + 2);
        stop_ckpt.store(true, Ordering::Relaxed);
        let (count, total) = ckpt.join().expect("checkpointer");
        (lat, count, total)
    });
    let peak_sampled = peak.load(Ordering::Relaxed);
    let hwm = if hwm_reset {
        read_status_kb("VmHWM:")
    } else {
        0
    };
    stop_sampler.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    println!(
        "W6RESULT max_a={} max_b={} p50_a={} p99_a={} p50_b={} p99_b={} rss_a={} peak_b={} hwm_reset={} checkpoints={} ckpt_secs={} commits_a={} commits_b={}",
        lat_a.last().copied().unwrap_or(0) as f64 / 1e3,
        lat_b.last().copied().unwrap_or(0) as f64 / 1e3,
        percentile(&lat_a, 0.5) as f64 / 1e3,
        percentile(&lat_a, 0.99) as f64 / 1e3,
        percentile(&lat_b, 0.5) as f64 / 1e3,
        percentile(&lat_b, 0.99) as f64 / 1e3,
        rss_a,
        peak_sampled.max(hwm),
        u8::from(hwm_reset),
        checkpoints,
        ckpt_time.as_secs_f64() / f64::from(checkpoints.max(1)),
        lat_a.len(),
        lat_b.len(),
    );
    store.close().expect("close");
}
