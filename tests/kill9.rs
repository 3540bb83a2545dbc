//! Real processes: a child commits through the real file system with `Always` from
//! several threads, reporting each acknowledged commit through a pipe; the parent kills
//! it with SIGKILL at random moments (across checkpoints and segment rotations), reopens
//! and checks every acknowledged commit is there.
//!
//! The child is this same test binary, re-run with `WALSTATE_KILL9_CHILD_DIR` set.
//! `WALSTATE_KILLS=N` sets the number of kills (default 50).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use walstate::{KvStore, Options, SyncPolicy};

const THREADS: usize = 4;

fn options() -> Options {
    Options::default()
        .sync_policy(SyncPolicy::Always)
        .segment_size_bytes(16 * 1024)
        .checkpoint_after_bytes(Some(48 * 1024))
}

/// The child: commits forever until killed, printing `ack <run> <thread> <i>` after each
/// commit is acknowledged.
#[test]
fn kill9_child_writer() {
    let Some(dir) = std::env::var_os("WALSTATE_KILL9_CHILD_DIR") else {
        return; // Not the child: nothing to do.
    };
    let run: u64 = std::env::var("WALSTATE_KILL9_RUN")
        .unwrap()
        .parse()
        .unwrap();
    let store = KvStore::open(Path::new(&dir), options()).unwrap();
    let stdout = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let stdout = stdout.clone();
            std::thread::spawn(move || {
                for i in 0u64.. {
                    store
                        .put(format!("r{run}-t{t}-{i:06}"), value(run, t, i))
                        .unwrap();
                    let mut out = stdout.lock().unwrap();
                    writeln!(out, "ack {run} {t} {i}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

fn value(run: u64, thread: usize, i: u64) -> Vec<u8> {
    format!("value-{run}-{thread}-{i}-{}", "x".repeat((i % 50) as usize)).into_bytes()
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    if std::env::var_os("WALSTATE_KILL9_CHILD_DIR").is_some() {
        return;
    }
    let kills: u64 = std::env::var("WALSTATE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<(u64, usize, u64)> = Vec::new();
    let mut rng = 0x1234_5678u64;
    let mut checkpoints_seen = 0;
    for run in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "kill9_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("WALSTATE_KILL9_CHILD_DIR", &store_dir)
            .env("WALSTATE_KILL9_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ack ") {
                    let parts: Vec<u64> = rest.split(' ').map(|p| p.parse().unwrap()).collect();
                    lines.push((parts[0], parts[1] as usize, parts[2]));
                }
            }
            lines
        });
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(20 + rng % 120));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let this_run = reader.join().unwrap();
        acked.extend(this_run);

        let store = KvStore::open(&store_dir, options()).unwrap();
        if store.recovery_report().checkpoint.is_some() {
            checkpoints_seen += 1;
        }
        for &(r, t, i) in &acked {
            let got = store.get(format!("r{r}-t{t}-{i:06}").as_bytes()).unwrap();
            assert_eq!(
                got,
                Some(value(r, t, i)),
                "run {run}: acknowledged commit r{r}-t{t}-{i} lost"
            );
        }
        // Per thread, commits are sequential: what survived is a prefix.
        for t in 0..THREADS {
            let prefix = format!("r{run}-t{t}-");
            let present = store.scan_prefix(prefix.as_bytes()).unwrap();
            for (n, (k, _)) in present.iter().enumerate() {
                assert_eq!(
                    k,
                    format!("{prefix}{n:06}").as_bytes(),
                    "run {run}: thread {t} has a hole"
                );
            }
        }
        drop(store);
    }
    let segments_deleted = std::fs::read_dir(&store_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("wal-").map(str::to_owned))
        })
        .min()
        .is_some_and(|first| first != "00000000000000000001.seg");
    assert!(
        acked.len() as u64 > kills * 5,
        "too few commits were acknowledged ({})",
        acked.len()
    );
    assert!(
        checkpoints_seen > 0,
        "no run recovered from a checkpoint: the kills never crossed one"
    );
    assert!(
        segments_deleted,
        "no segment was ever rotated out and deleted"
    );
}
