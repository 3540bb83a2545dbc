//! W7: several processes write one store.
//!
//! For each process count P, P child processes (re-executions of this binary with
//! `--child-w7`) open the same store, say `ready`, wait for the parent's `go` line on
//! stdin, then each does N durable single-put commits of its own keys and prints one
//! `W7RESULT` line. The parent's wall clock runs from `go` to the last result line;
//! afterwards it reopens the store and checks every key and value of every child, so a
//! run that loses a commit fails instead of reporting a number.
//!
//! Engines: walstate under `Writers::Shared` (the default options: `SyncPolicy::Always`,
//! the writer lock taken per commit group) and SQLite in WAL mode with
//! `synchronous=FULL`, each commit a `BEGIN IMMEDIATE` transaction. At P = 1 walstate
//! also runs under `Writers::Exclusive`: the cost of the per-commit lock with no one to
//! share it with.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::engines::{self, KEY_LEN, Kind, VALUE_LEN};
use crate::report::{Results, percentile};
use crate::{Config, Rng, engine_dir};

/// How long a writer waits for another process's write lock, for both engines:
/// walstate's default per-commit wait under `Writers::Shared`.
const LOCK_WAIT: Duration = walstate::SHARED_LOCK_WAIT_DEFAULT;

/// The label of the P-process rows (report.rs renders them as one table).
pub fn shared_label(procs: usize) -> String {
    let plural = if procs == 1 { "" } else { "es" };
    format!("W7 shared store, {procs} writer process{plural}")
}

/// The label of the single-process `Writers::Exclusive` row.
pub const EXCLUSIVE_LABEL: &str = "W7 exclusive store, 1 writer process";

/// What one W7 writer process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// walstate, `Options::default()` (`Writers::Shared`).
    Shared,
    /// walstate, `Options::default().writers(Writers::Exclusive)`.
    Exclusive,
    /// SQLite, WAL, `synchronous=FULL`, `BEGIN IMMEDIATE` per commit.
    Sqlite,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Shared => "walstate",
            Mode::Exclusive => "walstate-exclusive",
            Mode::Sqlite => "sqlite",
        }
    }

    fn parse(name: &str) -> Option<Mode> {
        [Mode::Shared, Mode::Exclusive, Mode::Sqlite]
            .into_iter()
            .find(|m| m.name() == name)
    }

    fn kind(self) -> Kind {
        match self {
            Mode::Shared | Mode::Exclusive => Kind::Walstate,
            Mode::Sqlite => Kind::Sqlite,
        }
    }

    fn walstate_options(self) -> walstate::Options {
        match self {
            Mode::Shared => walstate::Options::default(),
            Mode::Exclusive => walstate::Options::default().writers(walstate::Writers::Exclusive),
            Mode::Sqlite => unreachable!("not a walstate mode"),
        }
    }
}

/// Key `i` of writer process `index`: `p{index}-{i:013}`, 16 bytes for index < 10.
fn key(index: usize, i: u64) -> Vec<u8> {
    let key = format!("p{index}-{i:013}").into_bytes();
    debug_assert!(index >= 10 || key.len() == KEY_LEN);
    key
}

/// The values of writer process `index`, in commit order.
fn value_rng(seed: u64, index: usize) -> Rng {
    Rng::new(seed ^ ((index as u64 + 1) << 40))
}

fn next_value(rng: &mut Rng) -> [u8; VALUE_LEN] {
    let mut value = [0u8; VALUE_LEN];
    rng.fill(&mut value);
    value
}

/// One writer process's result, parsed from its `W7RESULT` line.
struct ChildResult {
    commits: u64,
    elapsed: Duration,
    /// fdatasyncs of this process during its commits (walstate only).
    syncs: Option<u64>,
    latencies_ns: Vec<u64>,
}

/// One run: P processes together.
struct Outcome {
    wall: Duration,
    children: Vec<ChildResult>,
}

impl Outcome {
    fn metrics(&self) -> Vec<(&'static str, f64)> {
        let commits: u64 = self.children.iter().map(|c| c.commits).sum();
        let syncs: Option<u64> = self.children.iter().map(|c| c.syncs).sum();
        let mut lat: Vec<u64> = self
            .children
            .iter()
            .flat_map(|c| c.latencies_ns.iter().copied())
            .collect();
        lat.sort_unstable();
        let elapsed = |pick: fn(Duration, Duration) -> Duration| {
            self.children
                .iter()
                .map(|c| c.elapsed)
                .reduce(pick)
                .unwrap_or_default()
                .as_secs_f64()
        };
        vec![
            ("commits/s", commits as f64 / self.wall.as_secs_f64()),
            ("p50 µs", percentile(&lat, 0.50) as f64 / 1e3),
            ("p99 µs", percentile(&lat, 0.99) as f64 / 1e3),
            (
                "commits/fdatasync",
                syncs.map_or(f64::NAN, |s| commits as f64 / s.max(1) as f64),
            ),
            // 1.0: every process finished together; larger: some got the lock more.
            (
                "slowest ÷ fastest process",
                elapsed(Duration::max) / elapsed(Duration::min),
            ),
        ]
    }
}

/// W7 for one repetition: every process count, every engine of `order` that W7 runs.
pub fn run(config: &Config, order: &[Kind], rep: usize, seed: u64, results: &mut Results) {
    let modes: Vec<Mode> = order
        .iter()
        .filter_map(|kind| match kind {
            Kind::Walstate => Some(Mode::Shared),
            Kind::Sqlite => Some(Mode::Sqlite),
            _ => None,
        })
        .collect();
    let n = config.w7_commits;
    for &procs in &config.w7_procs {
        for &mode in &modes {
            let outcome = run_once(config, mode, procs, n, seed + procs as u64);
            results.add(&shared_label(procs), mode.kind(), rep, outcome.metrics());
            // Right after the shared single writer, so both see the same disk.
            if procs == 1 && mode == Mode::Shared {
                let outcome = run_once(config, Mode::Exclusive, 1, n, seed + 1);
                results.add(EXCLUSIVE_LABEL, Kind::Walstate, rep, outcome.metrics());
            }
        }
    }
}

/// Creates the store, runs `procs` writer processes together, checks every commit.
fn run_once(config: &Config, mode: Mode, procs: usize, n: u64, seed: u64) -> Outcome {
    assert!(procs >= 1 && n >= 1);
    assert!(
        mode != Mode::Exclusive || procs == 1,
        "one exclusive writer"
    );
    let dir = engine_dir(config, mode.kind(), &format!("w7-{}-{procs}", mode.name()));
    create_store(mode, &dir);
    let mut children: Vec<(Child, BufReader<ChildStdout>)> = (0..procs)
        .map(|index| spawn_child(mode, &dir, index, n, seed))
        .collect();
    for (_, stdout) in &mut children {
        assert_eq!(
            read_line(stdout),
            "ready",
            "W7 child did not open the store"
        );
    }
    let stdins: Vec<ChildStdin> = children
        .iter_mut()
        .map(|(child, _)| child.stdin.take().expect("child stdin"))
        .collect();
    let start = Instant::now();
    for mut stdin in stdins {
        writeln!(stdin, "go").expect("start a W7 child");
    }
    let results: Vec<ChildResult> = children
        .iter_mut()
        .map(|(_, stdout)| parse_result(&read_line(stdout)))
        .collect();
    let wall = start.elapsed();
    for (mut child, _) in children {
        let status = child.wait().expect("wait for a W7 child");
        assert!(status.success(), "W7 child failed: {status}");
    }
    for result in &results {
        assert_eq!(result.commits, n, "W7 child commits");
    }
    verify(mode, &dir, procs, n, seed);
    let _ = std::fs::remove_dir_all(&dir);
    Outcome {
        wall,
        children: results,
    }
}

fn spawn_child(
    mode: Mode,
    dir: &Path,
    index: usize,
    n: u64,
    seed: u64,
) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .args([
            "--child-w7",
            mode.name(),
            &dir.display().to_string(),
            &index.to_string(),
            &n.to_string(),
            &seed.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn W7 child");
    let stdout = BufReader::new(child.stdout.take().expect("child stdout"));
    (child, stdout)
}

fn read_line(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    let bytes = reader.read_line(&mut line).expect("read W7 child output");
    assert!(bytes > 0, "W7 child exited without a line");
    line.trim_end().to_owned()
}

fn parse_result(line: &str) -> ChildResult {
    let fields = line
        .strip_prefix("W7RESULT ")
        .unwrap_or_else(|| panic!("not a W7 result line: {line:?}"));
    let get = |name: &str| -> &str {
        fields
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("W7 result without {name}: {line:?}"))
    };
    ChildResult {
        commits: get("commits").parse().expect("commits"),
        elapsed: Duration::from_nanos(get("elapsed_ns").parse().expect("elapsed_ns")),
        syncs: match get("syncs") {
            "-" => None,
            s => Some(s.parse().expect("syncs")),
        },
        latencies_ns: get("lat_ns")
            .split(',')
            .map(|v| v.parse().expect("latency"))
            .collect(),
    }
}

/// A fresh store, created before the writers start so none of them times its creation.
fn create_store(mode: Mode, dir: &Path) {
    std::fs::create_dir_all(dir).expect("create W7 dir");
    match mode {
        Mode::Shared | Mode::Exclusive => {
            let store = walstate::KvStore::open(dir, walstate::Options::default())
                .expect("walstate create");
            store.close().expect("close");
        }
        Mode::Sqlite => {
            let conn = engines::sqlite_connection(dir);
            conn.execute_batch(engines::SQLITE_CREATE_TABLE)
                .expect("create table");
            conn.close().map_err(|(_, err)| err).expect("close");
        }
    }
}

/// Reopens the store and checks that it holds exactly every child's keys and values.
fn verify(mode: Mode, dir: &Path, procs: usize, n: u64, seed: u64) {
    let expected = procs as u64 * n;
    match mode {
        Mode::Shared | Mode::Exclusive => {
            let store = walstate::KvStore::open(dir, walstate::Options::default())
                .expect("walstate reopen");
            assert_eq!(
                store.len().expect("len") as u64,
                expected,
                "W7 walstate keys"
            );
            for index in 0..procs {
                let mut values = value_rng(seed, index);
                for i in 0..n {
                    let got = store.get(&key(index, i)).expect("get");
                    let want = next_value(&mut values);
                    assert_eq!(got.as_deref(), Some(&want[..]), "W7 walstate p{index}-{i}");
                }
            }
            store.close().expect("close");
        }
        Mode::Sqlite => {
            let conn = engines::sqlite_connection(dir);
            let count: i64 = conn
                .query_row("SELECT count(*) FROM kv", [], |row| row.get(0))
                .expect("count");
            assert_eq!(count as u64, expected, "W7 sqlite rows");
            let mut stmt = conn
                .prepare("SELECT v FROM kv WHERE k = ?1")
                .expect("prepare");
            for index in 0..procs {
                let mut values = value_rng(seed, index);
                for i in 0..n {
                    let got: Vec<u8> = stmt
                        .query_row([key(index, i)], |row| row.get(0))
                        .unwrap_or_else(|err| panic!("W7 sqlite p{index}-{i}: {err}"));
                    assert_eq!(got, next_value(&mut values), "W7 sqlite p{index}-{i}");
                }
            }
        }
    }
}

/// One W7 writer process: `--child-w7 MODE DIR INDEX N SEED`.
pub fn child(args: &[String]) {
    let mode = Mode::parse(&args[0]).expect("W7 mode");
    let dir = PathBuf::from(&args[1]);
    let index: usize = args[2].parse().expect("index");
    let n: u64 = args[3].parse().expect("n");
    let seed: u64 = args[4].parse().expect("seed");
    let mut writer = ChildWriter::open(mode, &dir);
    let mut out = std::io::stdout();
    writeln!(out, "ready").expect("stdout");
    out.flush().expect("flush stdout");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).expect("stdin");
    assert_eq!(go.trim_end(), "go", "W7 child: no start line");
    let syncs_before = writer.syncs();
    let mut values = value_rng(seed, index);
    let mut lat = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for i in 0..n {
        let key = key(index, i);
        let value = next_value(&mut values);
        let t0 = Instant::now();
        writer.put(&key, &value);
        lat.push(t0.elapsed().as_nanos() as u64);
    }
    let elapsed = start.elapsed();
    let syncs = writer
        .syncs()
        .zip(syncs_before)
        .map_or("-".to_owned(), |(a, b)| (a - b).to_string());
    let lat: Vec<String> = lat.iter().map(u64::to_string).collect();
    writeln!(
        out,
        "W7RESULT commits={n} elapsed_ns={} syncs={syncs} lat_ns={}",
        elapsed.as_nanos(),
        lat.join(",")
    )
    .expect("stdout");
    out.flush().expect("flush stdout");
    writer.close();
}

enum ChildWriter {
    Walstate(walstate::KvStore),
    Sqlite(rusqlite::Connection),
}

impl ChildWriter {
    fn open(mode: Mode, dir: &Path) -> ChildWriter {
        match mode {
            Mode::Shared | Mode::Exclusive => ChildWriter::Walstate(
                walstate::KvStore::open(dir, mode.walstate_options()).expect("walstate open"),
            ),
            Mode::Sqlite => {
                let conn = engines::sqlite_connection(dir);
                conn.busy_timeout(LOCK_WAIT).expect("busy_timeout");
                ChildWriter::Sqlite(conn)
            }
        }
    }

    /// One durable commit of one put.
    fn put(&mut self, key: &[u8], value: &[u8]) {
        match self {
            ChildWriter::Walstate(store) => {
                store.put(key, value).expect("walstate put");
            }
            ChildWriter::Sqlite(conn) => {
                conn.execute_batch("BEGIN IMMEDIATE")
                    .expect("begin immediate");
                conn.prepare_cached(engines::SQLITE_PUT)
                    .expect("prepare")
                    .execute((key, value))
                    .expect("insert");
                conn.execute_batch("COMMIT").expect("commit");
            }
        }
    }

    fn syncs(&self) -> Option<u64> {
        match self {
            ChildWriter::Walstate(store) => store.journal_stats().map(|s| s.syncs),
            ChildWriter::Sqlite(_) => None,
        }
    }

    fn close(self) {
        match self {
            ChildWriter::Walstate(store) => store.close().expect("walstate close"),
            ChildWriter::Sqlite(conn) => conn.close().map_err(|(_, err)| err).expect("close"),
        }
    }
}
