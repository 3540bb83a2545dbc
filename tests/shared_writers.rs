//! Several processes writing one store ([`Writers::Shared`], the default).
//!
//! The main test runs real processes: `WORKERS` children commit puts and a contended
//! compare-and-set counter through the real file system with `Always`, each reporting
//! every acknowledged commit with its LSN; the parent SIGKILLs a random child at random
//! moments (the lock holder among them: the OS releases its lock, the next writer finds
//! its torn group) and starts a new one in its place. Afterwards: every acknowledged
//! commit is present, no two acknowledgements share an LSN, each thread's LSNs rise in
//! its own order, and the counter's acknowledged steps are distinct and in LSN order
//! (compare-and-set never succeeded twice from one value).
//!
//! The child is this test binary, re-run with `WALSTATE_SHARED_CHILD_DIR` set.
//! `WALSTATE_SHARED_KILLS=N` sets the number of kills (default 24).
//!
//! The other tests open several shared writers in one process, where each step can be
//! placed exactly: falling behind a checkpoint that deleted segments, a restore made by
//! another writer, a writer that died holding the lock with a torn group; and, on the
//! simulated disk, building on another writer's bytes whose fdatasync failed and on a
//! segment whose creator's directory fsync failed (both must survive a power loss).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::Rng;
use walstate::io::sim::{CrashMode, Fault, FaultKind, OpClass};
use walstate::io::{RealFs, SimFs, VfsRef};
use walstate::verify::{self, Verdict};
use walstate::{Error, KvCommand, KvStore, Options, SyncPolicy, Writers};

const WORKERS: usize = 3;
const COUNTER: &[u8] = b"counter";

fn options() -> Options {
    Options::default()
        .sync_policy(SyncPolicy::Always)
        .segment_size_bytes(16 * 1024)
        .checkpoint_after_bytes(Some(64 * 1024))
}

fn put_key(run: u64, i: u64) -> String {
    format!("p{run:03}-{i:06}")
}

fn put_value(run: u64, i: u64) -> Vec<u8> {
    format!("v{run}-{i}-{}", "x".repeat((i % 40) as usize)).into_bytes()
}

/// Exits the child with a message: a worker that cannot commit is a failure the parent
/// reports (it expects every child to die by its SIGKILL).
fn die(what: &str, err: Error) -> ! {
    eprintln!("worker failed to {what}: {err}");
    std::process::exit(1)
}

/// The child: commits until killed. One thread puts `p<run>-<i>` and prints
/// `put <run> <i> <lsn>` once acknowledged; another moves the shared counter from `c`
/// to `c + 1` by compare-and-set and prints `cas <run> <c> <lsn>` for each success.
#[test]
fn shared_writer_child() {
    let Some(dir) = std::env::var_os("WALSTATE_SHARED_CHILD_DIR") else {
        return; // Not the child: nothing to do.
    };
    let run: u64 = std::env::var("WALSTATE_SHARED_RUN")
        .unwrap()
        .parse()
        .unwrap();
    let store = KvStore::open(Path::new(&dir), options())
        .unwrap_or_else(|err| die("open", err))
        .into_inner();
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    let print = move |line: String| {
        let mut out = stdout.lock().unwrap();
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    };
    let putter = {
        let store = store.clone();
        let print = print.clone();
        std::thread::spawn(move || {
            for i in 0u64.. {
                let (lsn, _) = store
                    .apply_with_lsn(KvCommand::put(put_key(run, i), put_value(run, i)))
                    .unwrap_or_else(|err| die("put", err));
                print(format!("put {run} {i} {lsn}"));
            }
        })
    };
    for attempt in 0u64.. {
        let current = store
            .read(|state| state.get(COUNTER).map(<[u8]>::to_vec))
            .unwrap_or_else(|err| die("read", err));
        let value: u64 = current.as_deref().map_or(0, |bytes| {
            std::str::from_utf8(bytes).unwrap().parse().unwrap()
        });
        let next = (value + 1).to_string();
        let (lsn, output) = store
            .apply_with_lsn(KvCommand::cas(
                COUNTER,
                current.as_deref(),
                Some(next.as_bytes()),
            ))
            .unwrap_or_else(|err| die("cas", err));
        if output.is_ok() {
            print(format!("cas {run} {value} {lsn}"));
        }
        if attempt % 16 == 0 {
            store.refresh().unwrap_or_else(|err| die("refresh", err));
        }
    }
    putter.join().unwrap();
}

/// What the parent learned from one child's stdout.
#[derive(Default)]
struct Acks {
    /// (run, i, lsn) in the order printed.
    puts: Vec<(u64, u64, u64)>,
    /// (run, counter value moved from, lsn) in the order printed.
    cases: Vec<(u64, u64, u64)>,
}

struct Worker {
    run: u64,
    child: Child,
    reader: JoinHandle<Acks>,
    stderr_path: std::path::PathBuf,
}

fn spawn_worker(store_dir: &Path, logs: &Path, run: u64) -> Worker {
    let stderr_path = logs.join(format!("worker-{run}.stderr"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "shared_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WALSTATE_SHARED_CHILD_DIR", store_dir)
        .env("WALSTATE_SHARED_RUN", run.to_string())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acks = Acks::default();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let fields: Vec<&str> = line.split(' ').collect();
            let numbers =
                || -> Vec<u64> { fields[1..].iter().map(|f| f.parse().unwrap()).collect() };
            match fields[0] {
                "put" => {
                    let n = numbers();
                    acks.puts.push((n[0], n[1], n[2]));
                }
                "cas" => {
                    let n = numbers();
                    acks.cases.push((n[0], n[1], n[2]));
                }
                _ => {} // the test harness's own lines
            }
        }
        acks
    });
    Worker {
        run,
        child,
        reader,
        stderr_path,
    }
}

/// SIGKILLs the worker and collects its acknowledgements; fails if it had died by itself.
fn kill(mut worker: Worker, all: &mut Acks) {
    let early_exit = worker.child.try_wait().unwrap();
    worker.child.kill().unwrap(); // SIGKILL on Unix
    let status = worker.child.wait().unwrap();
    let acks = worker.reader.join().unwrap();
    let stderr = std::fs::read_to_string(&worker.stderr_path).unwrap_or_default();
    assert!(
        early_exit.is_none() && status.signal() == Some(9),
        "worker run {} ended by itself ({status:?}) instead of by SIGKILL:\n{stderr}",
        worker.run
    );
    all.puts.extend(acks.puts);
    all.cases.extend(acks.cases);
}

#[test]
fn processes_killed_at_random_lose_no_acknowledged_commit_and_cas_never_double_succeeds() {
    if std::env::var_os("WALSTATE_SHARED_CHILD_DIR").is_some() {
        return;
    }
    let kills: u64 = std::env::var("WALSTATE_SHARED_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let tmp = tempfile::tempdir().unwrap();
    let store_dir = tmp.path().join("store");
    // Create the store before the workers race to.
    KvStore::open(&store_dir, options())
        .unwrap()
        .close()
        .unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut next_run = 0;
    let mut workers: Vec<Option<Worker>> = (0..WORKERS)
        .map(|_| {
            next_run += 1;
            Some(spawn_worker(&store_dir, tmp.path(), next_run))
        })
        .collect();
    let mut acked = Acks::default();
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(40 + rng.below(160)));
        let slot = rng.below(WORKERS as u64) as usize;
        kill(workers[slot].take().unwrap(), &mut acked);
        next_run += 1;
        workers[slot] = Some(spawn_worker(&store_dir, tmp.path(), next_run));
    }
    std::thread::sleep(Duration::from_millis(300));
    for worker in workers.iter_mut() {
        kill(worker.take().unwrap(), &mut acked);
    }

    // No two acknowledgements share an LSN; each thread's LSNs rise in its own order.
    let mut lsns = BTreeSet::new();
    for &(_, _, lsn) in acked.puts.iter().chain(&acked.cases) {
        assert!(lsns.insert(lsn), "LSN {lsn} was acknowledged twice");
    }
    let mut last_put: BTreeMap<u64, u64> = BTreeMap::new();
    for &(run, i, lsn) in &acked.puts {
        if let Some(before) = last_put.insert(run, lsn) {
            assert!(
                before < lsn,
                "run {run}: put {i} at LSN {lsn} after LSN {before}"
            );
        }
    }
    let mut last_cas: BTreeMap<u64, u64> = BTreeMap::new();
    for &(run, from, lsn) in &acked.cases {
        if let Some(before) = last_cas.insert(run, lsn) {
            assert!(
                before < lsn,
                "run {run}: cas from {from} at LSN {lsn} after LSN {before}"
            );
        }
    }
    // Compare-and-set: each value was moved on at most once, and in LSN order.
    let mut steps: BTreeMap<u64, u64> = BTreeMap::new();
    for &(run, from, lsn) in &acked.cases {
        if let Some(other) = steps.insert(from, lsn) {
            panic!("cas from {from} succeeded twice (LSNs {other} and {lsn}, run {run})");
        }
    }
    let step_lsns: Vec<u64> = steps.values().copied().collect();
    assert!(
        step_lsns.windows(2).all(|pair| pair[0] < pair[1]),
        "counter steps out of LSN order: {steps:?}"
    );

    // Every acknowledged commit is in the store; each run's puts have no hole.
    let store = KvStore::open(&store_dir, options()).unwrap();
    for &(run, i, _) in &acked.puts {
        assert_eq!(
            store.get(put_key(run, i).as_bytes()).unwrap(),
            Some(put_value(run, i)),
            "acknowledged put {} lost",
            put_key(run, i)
        );
    }
    for run in 1..=next_run {
        let present = store.scan_prefix(format!("p{run:03}-").as_bytes()).unwrap();
        for (n, (key, _)) in present.iter().enumerate() {
            assert_eq!(
                key,
                put_key(run, n as u64).as_bytes(),
                "run {run} has a hole"
            );
        }
    }
    let counter: u64 = String::from_utf8(store.get(COUNTER).unwrap().unwrap())
        .unwrap()
        .parse()
        .unwrap();
    if let Some((&highest, _)) = steps.last_key_value() {
        assert!(
            counter > highest,
            "counter {counter} behind acknowledged step {highest}"
        );
    }
    drop(store);

    // The work crossed checkpoints (segments deleted) and stayed sound on disk.
    let first_segment_gone = !store_dir.join("wal-00000000000000000001.seg").exists();
    assert!(first_segment_gone, "no checkpoint ever deleted a segment");
    let verdict = verify::verify(&RealFs, &store_dir).unwrap().verdict;
    assert!(
        matches!(verdict, Verdict::Clean | Verdict::RepairedByOpen),
        "{verdict:?}"
    );
    let runs_with_cas = last_cas.len();
    assert!(
        acked.puts.len() > 200 && steps.len() > 50 && runs_with_cas > WORKERS,
        "too little was acknowledged to show anything: {} puts, {} counter steps over {runs_with_cas} runs",
        acked.puts.len(),
        steps.len()
    );
}

// ---------------------------------------------------------------------------------------
// Several shared writers in one process
// ---------------------------------------------------------------------------------------

fn quiet_options() -> Options {
    Options::default()
        .segment_size_bytes(4096)
        .checkpoint_after_bytes(None)
        .background_checkpoints(false)
}

#[test]
fn a_writer_behind_a_checkpoint_that_deleted_its_unread_segments_reloads_from_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let early = KvStore::open(tmp.path(), quiet_options()).unwrap();
    early.put("first", "1").unwrap();
    let busy = KvStore::open(tmp.path(), quiet_options()).unwrap();
    for i in 0..400 {
        busy.put(format!("k{i:04}"), vec![b'v'; 64]).unwrap();
    }
    busy.checkpoint().unwrap();
    assert!(
        !tmp.path().join("wal-00000000000000000001.seg").exists(),
        "the checkpoint must have deleted the segments the early writer has not read"
    );
    let refreshed = early.refresh().unwrap();
    assert!(
        refreshed.reloaded.is_some(),
        "falling behind a deleted segment is a reload: {refreshed:?}"
    );
    assert_eq!(refreshed.last_lsn, busy.into_inner().last_lsn());
    assert_eq!(early.len().unwrap(), 401);
    assert_eq!(early.get(b"k0399").unwrap(), Some(vec![b'v'; 64]));
    // And it goes on writing after the reload.
    early.put("after", "reload").unwrap();
    drop(early);
    let reopened = KvStore::open(tmp.path(), quiet_options()).unwrap();
    assert_eq!(reopened.len().unwrap(), 402);
}

#[test]
fn a_writer_that_falls_behind_within_a_segment_reads_only_the_new_records() {
    let tmp = tempfile::tempdir().unwrap();
    let a = KvStore::open(tmp.path(), Options::default()).unwrap();
    let b = KvStore::open(tmp.path(), Options::default()).unwrap();
    a.put("x", "1").unwrap();
    a.put("y", "2").unwrap();
    let refreshed = b.refresh().unwrap();
    assert_eq!(refreshed.reloaded, None, "a tail read, not a recovery");
    assert_eq!(refreshed.records, 2);
    // b's own commit comes after a's, and a sees it before its next command's result.
    b.put("x", "from b").unwrap();
    assert_eq!(
        a.put("x", "from a").unwrap().as_deref(),
        Some(&b"from b"[..]),
        "a's put must replace b's value, the one committed before it"
    );
}

#[test]
fn a_restore_by_one_writer_is_seen_by_the_other_at_its_next_look() {
    let tmp = tempfile::tempdir().unwrap();
    let a = KvStore::open(tmp.path(), quiet_options()).unwrap();
    let b = KvStore::open(tmp.path(), quiet_options()).unwrap();
    a.put("config", "good").unwrap();
    a.snapshot("known-good").unwrap();
    b.put("config", "bad").unwrap();
    b.put("extra", "bad").unwrap();
    assert_eq!(a.refresh().unwrap().records, 2);
    assert_eq!(a.get(b"config").unwrap().as_deref(), Some(&b"bad"[..]));
    // b restores what a saved; a sees the restored state.
    b.restore_snapshot("known-good").unwrap();
    // The restore is one record naming the restored state's file: read incrementally.
    let refreshed = a.refresh().unwrap();
    assert_eq!((refreshed.records, refreshed.reloaded), (1, None));
    assert_eq!(a.get(b"config").unwrap().as_deref(), Some(&b"good"[..]));
    assert_eq!(a.get(b"extra").unwrap(), None);
    a.put("after", "restore").unwrap();
    b.refresh().unwrap();
    assert_eq!(b.get(b"after").unwrap().as_deref(), Some(&b"restore"[..]));
    drop((a, b));
    let reopened = KvStore::open(tmp.path(), quiet_options()).unwrap();
    assert_eq!(
        reopened.get(b"config").unwrap().as_deref(),
        Some(&b"good"[..])
    );
    assert_eq!(
        reopened.get(b"after").unwrap().as_deref(),
        Some(&b"restore"[..])
    );
    assert_eq!(reopened.get(b"extra").unwrap(), None);
}

#[test]
fn beside_an_exclusive_writer_a_shared_one_fails_its_commits_cleanly_until_it_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let impatient = Options::default().lock_timeout(Some(Duration::from_millis(100)));
    let shared = KvStore::open(tmp.path(), impatient.clone()).unwrap();
    shared.put("k", "shared").unwrap();
    // The shared writer lets go of the lock when nobody commits, or at once for a
    // waiter: an exclusive writer that waits a little opens.
    let exclusive = KvStore::open(
        tmp.path(),
        Options::default()
            .writers(Writers::Exclusive)
            .lock_timeout(Some(Duration::from_secs(2))),
    )
    .unwrap();
    assert_eq!(
        exclusive.get(b"k").unwrap().as_deref(),
        Some(&b"shared"[..])
    );
    match shared.put("k", "late") {
        Err(Error::Locked { holder, .. }) => {
            assert_eq!(holder, format!("pid {}", std::process::id()))
        }
        other => panic!("a commit beside an exclusive writer must fail with Locked: {other:?}"),
    }
    assert!(matches!(
        KvStore::open(tmp.path(), impatient.clone()),
        Err(Error::Locked { .. })
    ));
    exclusive.put("k", "exclusive").unwrap();
    drop(exclusive);
    // The failed commit left nothing behind and did not poison the shared writer.
    assert_eq!(
        shared.put("k", "again").unwrap().as_deref(),
        Some(&b"exclusive"[..])
    );
    drop(shared);
    let reopened = KvStore::open(tmp.path(), impatient).unwrap();
    assert_eq!(reopened.get(b"k").unwrap().as_deref(), Some(&b"again"[..]));
    assert_eq!(reopened.into_inner().last_lsn(), 3);
}

#[test]
fn a_writer_that_stopped_committing_lets_go_of_the_lock_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let idle = KvStore::open(tmp.path(), Options::default()).unwrap();
    idle.put("k", "1").unwrap();
    // It may keep the lock a moment after its commit; then it must let go without
    // another call (the lease keeper), or every other writer would wait for ever.
    let other = KvStore::open(
        tmp.path(),
        Options::default().lock_timeout(Some(Duration::from_secs(2))),
    )
    .unwrap();
    assert_eq!(other.put("k", "2").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(idle.put("k", "3").unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn a_writer_committing_without_pause_does_not_keep_a_waiting_writer_out() {
    // The busy writer would keep the lock between its commits if nobody waited; the
    // waiter's mark makes it let go at the end of each commit group instead.
    let tmp = tempfile::tempdir().unwrap();
    let busy = KvStore::open(tmp.path(), Options::default()).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let started = std::sync::atomic::AtomicU64::new(0);
    let patient = Options::default().lock_timeout(Some(Duration::from_secs(5)));
    let (busy_commits, waiter_lsns) = std::thread::scope(|scope| {
        let busy_thread = scope.spawn(|| {
            let mut commits = 0u64;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                busy.put(format!("busy-{commits}"), "v").unwrap();
                commits += 1;
                started.store(commits, std::sync::atomic::Ordering::Release);
            }
            commits
        });
        while started.load(std::sync::atomic::Ordering::Acquire) < 50 {
            std::thread::yield_now();
        }
        let waiter = KvStore::open(tmp.path(), patient).unwrap().into_inner();
        let mut lsns = Vec::new();
        for i in 0..20 {
            let (lsn, _) = waiter
                .apply_with_lsn(KvCommand::put(format!("waiter-{i}"), "w"))
                .expect("a waiter gets the lock while the other keeps committing");
            lsns.push(lsn);
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        (busy_thread.join().unwrap(), lsns)
    });
    assert!(busy_commits >= 50);
    assert!(
        waiter_lsns.windows(2).all(|w| w[0] < w[1]),
        "{waiter_lsns:?}"
    );
    drop(busy);
    let reopened = KvStore::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(reopened.len().unwrap() as u64, busy_commits + 20);
}

// ---------------------------------------------------------------------------------------
// Building on what another writer could not make durable (simulated disk)
// ---------------------------------------------------------------------------------------

fn sim_options(vfs: &VfsRef) -> Options {
    quiet_options().vfs(vfs.clone())
}

const SIM_DIR: &str = "/srv/shared";

#[test]
fn records_after_another_writers_failed_fdatasync_are_made_durable_before_building_on_them() {
    let sim = SimFs::new(52);
    let vfs: VfsRef = sim.clone();
    let a = KvStore::open(SIM_DIR, sim_options(&vfs)).unwrap();
    let b = KvStore::open(SIM_DIR, sim_options(&vfs)).unwrap();
    a.put("a1", "durable").unwrap();
    // a's next fdatasync fails: its record stays in the page cache, never to be written.
    sim.inject(Fault::once(OpClass::Sync, FaultKind::Eio));
    assert!(a.put("a2", "never acknowledged").unwrap_err().is_poisoned());
    // b catches up past a's record and appends after it.
    b.put("b1", "acknowledged").unwrap();
    drop((a, b));
    sim.crash(CrashMode::DropUnsynced);
    let reopened = KvStore::open(SIM_DIR, sim_options(&vfs))
        .expect("b's acknowledged record must not follow a hole after the power loss");
    assert_eq!(
        reopened.get(b"b1").unwrap().as_deref(),
        Some(&b"acknowledged"[..])
    );
    assert_eq!(
        reopened.get(b"a1").unwrap().as_deref(),
        Some(&b"durable"[..])
    );
}

#[test]
fn a_segment_whose_creator_failed_its_directory_fsync_is_made_durable_by_the_next_writer() {
    // The rotation creating its segment, and the rotation claiming the spare segment.
    for spare in [false, true] {
        segment_whose_directory_fsync_failed_is_made_durable(spare);
    }
}

fn segment_whose_directory_fsync_failed_is_made_durable(spare: bool) {
    let sim = SimFs::new(53);
    let vfs: VfsRef = sim.clone();
    let options = || sim_options(&vfs).spare_segment(spare);
    let a = KvStore::open(SIM_DIR, options()).unwrap();
    let b = KvStore::open(SIM_DIR, options()).unwrap();
    a.put("first", "1").unwrap();
    b.refresh().unwrap();
    let has_spare = || {
        sim.list_files()
            .iter()
            .any(|p| p.ends_with(walstate::format::SPARE_SEGMENT_FILE_NAME))
    };
    if spare {
        // Half a segment: the spare is made (its directory fsync is not the one below).
        let mut i = 0;
        while !has_spare() {
            a.put(format!("pre{i:03}"), vec![b'p'; 200]).unwrap();
            i += 1;
        }
    }
    // The next directory fsync is a's rotation into a new segment: it fails.
    sim.inject(Fault::once(OpClass::SyncDir, FaultKind::Eio));
    let mut failed_at = None;
    for i in 0..100 {
        if a.put(format!("a{i:03}"), vec![b'a'; 200]).is_err() {
            failed_at = Some(i);
            break;
        }
    }
    let failed_at = failed_at.expect("a rotated, and its directory fsync failed");
    let segments = || {
        sim.list_files()
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".seg"))
            .count()
    };
    assert_eq!(segments(), 2, "a's new segment is visible");
    // b goes on in the segment a created.
    b.put("b", "acknowledged").unwrap();
    drop((a, b));
    sim.crash(CrashMode::DropUnsynced);
    let reopened = KvStore::open(SIM_DIR, options()).unwrap();
    assert_eq!(
        reopened.get(b"b").unwrap().as_deref(),
        Some(&b"acknowledged"[..]),
        "spare {spare}: b's acknowledged put went to a segment whose name was never made durable"
    );
    for i in 0..failed_at {
        assert!(
            reopened
                .get(format!("a{i:03}").as_bytes())
                .unwrap()
                .is_some()
        );
    }
}

#[test]
fn a_failed_read_while_looking_for_other_writers_at_close_leaves_the_journal_unsealed_not_the_close_failed()
 {
    // Found by fuzz/fuzz_targets/store_ops.rs (corpus: regression-close-probe-read-fails).
    let sim = SimFs::new(54);
    let vfs: VfsRef = sim.clone();
    let store = KvStore::open(SIM_DIR, sim_options(&vfs)).unwrap();
    store.put("k", "durable").unwrap();
    sim.inject(Fault {
        persistent: true,
        ..Fault::once(OpClass::Read, FaultKind::Eio)
    });
    store
        .close()
        .expect("everything was durable: an optional seal that cannot be checked is skipped");
    sim.clear_faults();
    sim.crash(CrashMode::DropUnsynced);
    let reopened = KvStore::open(SIM_DIR, sim_options(&vfs)).unwrap();
    assert_eq!(
        reopened.get(b"k").unwrap().as_deref(),
        Some(&b"durable"[..])
    );
}
