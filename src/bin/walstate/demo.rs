//! `demo`: the main job in a few seconds. A child process commits from several threads
//! and prints every acknowledged commit; the parent kills it with SIGKILL mid-stream,
//! shows what the crash left on disk, reopens the store and checks that every
//! acknowledged commit is there with its value.
//!
//! The child is this same binary (`walstate __demo-writer DIR`), so the demo needs
//! nothing but the one executable.

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use walstate::error::ShowBytes;
use walstate::io::RealFs;
use walstate::{Error, KvStore, Options, SyncPolicy};

use crate::output::{self, Failure};
use crate::{CliResult, exit};

/// Crash a writer with SIGKILL mid-stream, recover, and check every acknowledged commit.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Shows what walstate is for, in a few seconds.\n\n\
        Creates a key-value store in DIR (default ./walstate-demo; an existing DIR is wiped \
        first, but only if it is a store an earlier demo made), starts a child process that \
        commits from several threads (sync on every commit, 4 KiB segments so they rotate, \
        checkpoints every 16 KiB) and prints each acknowledged commit, kills it with SIGKILL \
        after ~1.5 s, then shows what the crash left on disk (the verify table), reopens \
        the store (the recovery report) and checks that every acknowledged commit is there \
        with its value.",
    after_help = "Example:\n  walstate demo /tmp/walstate-demo\n\n\
        Exit codes: 0 every acknowledged commit was recovered; 1 one was missing or wrong;\n\
        3 the demo could not run (DIR is not an earlier demo store, I/O error)."
)]
pub(crate) struct Args {
    /// Store directory to create (wiped first only if an earlier demo made it).
    #[arg(default_value = "./walstate-demo")]
    pub(crate) dir: PathBuf,
}

/// The demo's child: commits until killed, printing `ack KEY LSN` per commit.
#[derive(clap::Args, Debug)]
pub(crate) struct WriterArgs {
    pub(crate) dir: PathBuf,
    #[arg(long, default_value_t = 4)]
    pub(crate) threads: usize,
}

/// A key every demo store holds: `demo` only ever deletes a directory that has it.
const MARKER_KEY: &str = "demo/marker";
const MARKER_VALUE: &str =
    "made by `walstate demo`; the next `walstate demo` deletes and recreates this store";
/// Prefix of the keys the writer commits: `demo/t<thread>/<n>`.
const KEY_PREFIX: &str = "demo/t";
/// The writer is killed this long after its first acknowledged commit...
const KILL_AFTER: Duration = Duration::from_millis(1500);
/// ... or after this many acknowledged commits, whichever comes first.
const KILL_AFTER_ACKS: usize = 50_000;
/// The writer must acknowledge its first commit within this time.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// The writer stops by itself after this long, should nobody kill it.
const WRITER_RUN_MAX: Duration = Duration::from_secs(60);
/// Acknowledged commits echoed at the start and at the end of the stream.
const ACKS_ECHOED: usize = 3;

/// The store options of the demo: a sync per commit group, tiny segments so they rotate,
/// frequent checkpoints so segments get deleted too.
fn demo_options() -> Options {
    Options::default()
        .sync_policy(SyncPolicy::Always)
        .segment_size_bytes(4096)
        .checkpoint_after_bytes(Some(16 * 1024))
}

/// The value the writer stores under `key` (so the parent can check it).
fn value_for(key: &str) -> String {
    format!("value of {key}, committed with fdatasync")
}

/// One line the writer printed: the commit of `key` was acknowledged when the store's
/// last applied LSN was `lsn`.
struct Ack {
    key: String,
    lsn: u64,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("ack"), Some(key), Some(lsn), None) => Some(Ack {
            key: key.to_owned(),
            lsn: lsn.parse().ok()?,
        }),
        _ => None,
    }
}

/// `walstate demo [DIR] [--json]`: with `--json`, the story is not told and one JSON
/// summary is printed at the end.
pub(crate) fn run(dir: &Path, as_json: bool) -> CliResult {
    let mut out: Box<dyn Write> = if as_json {
        Box::new(io::sink())
    } else {
        Box::new(io::stdout().lock())
    };
    prepare_dir(dir, &mut out)?;
    let store = KvStore::open(dir, demo_options())?;
    store.put(MARKER_KEY, MARKER_VALUE)?;
    store.close()?;

    let exe = std::env::current_exe().map_err(|err| {
        Failure::new(
            exit::FAILURE,
            format!("cannot find this executable to start the writer: {err}"),
        )
    })?;
    let mut child = Command::new(exe)
        .arg("__demo-writer")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|err| {
            Failure::new(
                exit::FAILURE,
                format!("cannot start the writer process: {err}"),
            )
        })?;
    let pid = child.id();
    writeln!(
        out,
        "== a writer process (pid {pid}) commits to {} from 4 threads ==",
        dir.display()
    )?;
    writeln!(
        out,
        "   sync policy Always (a commit is acknowledged after fdatasync), 4 KiB segments, a checkpoint every 16 KiB"
    )?;
    writeln!(
        out,
        "   it prints `ack KEY LSN` per acknowledged commit (LSN: the commit's own log sequence number)"
    )?;
    out.flush()?;

    let Some(child_stdout) = child.stdout.take() else {
        let _ = child.kill();
        return Err(Failure::new(exit::FAILURE, "the writer has no stdout pipe"));
    };
    let (sender, receiver) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        for line in BufReader::new(child_stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });

    let spinner = output::spinner("waiting for acknowledgements");
    let spawned = Instant::now();
    let mut first_ack_at: Option<Instant> = None;
    let mut acks: Vec<Ack> = Vec::new();
    let mut garbled = 0u64;
    let mut take = |line: String, acks: &mut Vec<Ack>, out: &mut dyn Write| -> io::Result<()> {
        match parse_ack(&line) {
            Some(ack) => {
                if acks.len() < ACKS_ECHOED {
                    writeln!(out, "   {line}")?;
                }
                acks.push(ack);
            }
            None => garbled += 1,
        }
        Ok(())
    };
    loop {
        match first_ack_at {
            Some(at) if at.elapsed() >= KILL_AFTER || acks.len() >= KILL_AFTER_ACKS => break,
            None if spawned.elapsed() >= FIRST_ACK_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                output::finish(spinner);
                return Err(Failure::new(
                    exit::FAILURE,
                    format!(
                        "the writer acknowledged nothing within {} s",
                        FIRST_ACK_TIMEOUT.as_secs()
                    ),
                ));
            }
            _ => {}
        }
        match receiver.recv_timeout(Duration::from_millis(20)) {
            Ok(line) => {
                take(line, &mut acks, &mut out)?;
                first_ack_at.get_or_insert_with(Instant::now);
                if let Some(bar) = &spinner {
                    bar.set_message(format!("{} commits acknowledged", acks.len()));
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                output::finish(spinner);
                let status = child.wait().map_or("unknown".into(), |s| s.to_string());
                return Err(Failure::new(
                    exit::FAILURE,
                    format!(
                        "the writer exited by itself ({status}) before it was killed; its error is above"
                    ),
                ));
            }
        }
    }
    // std's Child::kill sends SIGKILL on Unix: no chance to flush or clean up.
    child.kill().map_err(|err| {
        Failure::new(
            exit::FAILURE,
            format!("cannot kill the writer (pid {pid}): {err}"),
        )
    })?;
    let killed_after = first_ack_at.map_or(Duration::ZERO, |at| at.elapsed());
    let status = child.wait().map_or("unknown".into(), |s| s.to_string());
    // Every line the writer printed before it died is still in the pipe.
    for line in receiver.iter() {
        take(line, &mut acks, &mut out)?;
    }
    let _ = reader.join();
    output::finish(spinner);
    if acks.len() > ACKS_ECHOED {
        writeln!(out, "   ...")?;
        let tail_from = acks.len().saturating_sub(ACKS_ECHOED).max(ACKS_ECHOED);
        for ack in &acks[tail_from..] {
            writeln!(out, "   ack {} {}", ack.key, ack.lsn)?;
        }
    }
    writeln!(
        out,
        "== killed the writer with SIGKILL {:.2} s after its first acknowledgement ({status}): {} commits acknowledged ==",
        killed_after.as_secs_f64(),
        acks.len()
    )?;
    if garbled > 0 {
        writeln!(
            out,
            "   ({garbled} line(s) from the writer were not acknowledgements)"
        )?;
    }

    writeln!(
        out,
        "\n== what the crash left on disk: walstate verify {} ==",
        dir.display()
    )?;
    let before = walstate::verify::verify(&RealFs, dir)?;
    crate::verify::print_report(&mut out, &before)?;

    writeln!(out, "\n== reopening the store: the recovery report ==")?;
    out.flush()?;
    let store = KvStore::open(dir, demo_options().create_if_missing(false))?;
    let report = store.recovery_report();
    if !as_json {
        drop(out);
        output::print_json(&report)?;
        out = Box::new(io::stdout().lock());
    }
    let check = check_acks(&store, &acks)?;
    let last_lsn = store.last_lsn();
    store.close()?;

    writeln!(out, "\n== checking every acknowledged commit ==")?;
    writeln!(out, "   acknowledged commits:  {}", acks.len())?;
    let unacked = check.recovered.saturating_sub(acks.len());
    writeln!(
        out,
        "   recovered commits:     {} (includes {unacked} made durable just before the kill, whose ack line was never printed)",
        check.recovered
    )?;
    writeln!(
        out,
        "   recovered up to LSN:   {last_lsn} (highest LSN reported with an ack: {})",
        check.max_ack_lsn
    )?;
    if last_lsn == 1 + check.recovered as u64 {
        writeln!(
            out,
            "   why LSN {last_lsn} after {} acks: LSN 1 is the demo's marker key (committed before the writer started), then {} acknowledged + {unacked} in flight at the kill",
            acks.len(),
            acks.len()
        )?;
    } else {
        writeln!(
            out,
            "   why more than the acks: LSN 1 is the demo's marker key (committed before the writer started), and {unacked} commit(s) were in flight at the kill"
        )?;
    }
    writeln!(
        out,
        "   (in flight: durable on disk but not yet acknowledged when the writer died; recovery keeps every durable commit, so a commit nobody was told about may survive, and an acknowledged one always does)"
    )?;
    for problem in check.problems.iter().take(10) {
        writeln!(out, "   LOST: {problem}")?;
    }
    let ok = check.problems.is_empty() && last_lsn >= check.max_ack_lsn;
    if ok {
        writeln!(
            out,
            "   OK: every one of the {} acknowledged commits is present with its value",
            acks.len()
        )?;
    } else {
        writeln!(
            out,
            "   FAILED: {} acknowledged commit(s) missing or wrong; recovered LSN {last_lsn} vs acknowledged {}",
            check.problems.len(),
            check.max_ack_lsn
        )?;
    }
    let after = walstate::verify::verify(&RealFs, dir)?;
    if as_json {
        output::print_json(&serde_json::json!({
            "dir": dir,
            "acknowledged": acks.len(),
            "max_acknowledged_lsn": check.max_ack_lsn,
            "recovered_commits": check.recovered,
            "durable_not_acknowledged": unacked,
            "marker_lsn": 1,
            "recovered_lsn": last_lsn,
            "lost": check.problems,
            "ok": ok,
            "verify_before": before.verdict,
            "recovery": report,
            "verify_after": after.verdict,
        }))?;
        return Ok(if ok { exit::OK } else { exit::ACK_LOST });
    }
    writeln!(
        out,
        "\n== after recovery, verify says: {} ==",
        crate::verify::verdict_line(dir, after.verdict)
    )?;
    let dir = dir.display();
    writeln!(
        out,
        "next: `walstate stats {dir}`, `walstate dump {dir} --from {}`, `walstate scan {dir} --prefix demo/t0/`",
        last_lsn.saturating_sub(5).max(1)
    )?;
    out.flush()?;
    Ok(if ok { exit::OK } else { exit::ACK_LOST })
}

struct AckCheck {
    recovered: usize,
    max_ack_lsn: u64,
    /// One line per acknowledged commit that is missing or has the wrong value.
    problems: Vec<String>,
}

fn check_acks(store: &KvStore, acks: &[Ack]) -> Result<AckCheck, Failure> {
    Ok(store.read(|state| {
        let mut problems = Vec::new();
        for ack in acks {
            match state.get(ack.key.as_bytes()) {
                Some(value) if value == value_for(&ack.key).as_bytes() => {}
                Some(value) => problems.push(format!(
                    "{} (acked at LSN {}) has the wrong value {}",
                    ack.key,
                    ack.lsn,
                    ShowBytes::quoted(value)
                )),
                None => problems.push(format!("{} (acked at LSN {}) is missing", ack.key, ack.lsn)),
            }
        }
        AckCheck {
            recovered: state.scan_prefix(KEY_PREFIX.as_bytes()).count(),
            max_ack_lsn: acks.iter().map(|a| a.lsn).max().unwrap_or(0),
            problems,
        }
    })?)
}

/// Makes sure `dir` can hold a fresh demo store: missing, empty, or a demo store from an
/// earlier run (which is deleted). Anything else is refused, never deleted.
fn prepare_dir(dir: &Path, out: &mut impl Write) -> Result<(), Failure> {
    let refuse = |why: &str| {
        Failure::new(
            exit::FAILURE,
            format!("{} {why}; refusing to delete it", dir.display()),
        )
        .hint("pass another directory: `walstate demo /tmp/walstate-demo`")
        .path(dir)
    };
    match std::fs::symlink_metadata(dir) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(Error::io("stat", dir, err).into()),
        Ok(meta) if !meta.is_dir() => return Err(refuse("exists and is not a directory")),
        Ok(_) => {}
    }
    let mut entries =
        std::fs::read_dir(dir).map_err(|err| Error::io("list directory", dir, err))?;
    if entries.next().is_none() {
        return Ok(());
    }
    if output::ensure_store(dir).is_err() {
        return Err(refuse("exists and is not a walstate store"));
    }
    let marker = KvStore::open_read_only(dir, Options::default().create_if_missing(false))
        .and_then(|store| store.get(MARKER_KEY.as_bytes()));
    if !matches!(marker, Ok(Some(value)) if value == MARKER_VALUE.as_bytes()) {
        return Err(refuse(
            "is a walstate store but not one an earlier `walstate demo` made (no demo marker key)",
        ));
    }
    // Holding the writer lock while deleting: a writer still running fails the demo
    // instead of losing its directory.
    let lock = walstate::lock::lock_store(&RealFs, dir, None)?;
    std::fs::remove_dir_all(dir).map_err(|err| Error::io("delete old demo store", dir, err))?;
    drop(lock);
    writeln!(
        out,
        "deleted the demo store of an earlier run in {}",
        dir.display()
    )?;
    Ok(())
}

/// `walstate __demo-writer DIR`: commits from `threads` threads until killed, printing
/// `ack KEY LSN` after each acknowledged commit.
pub(crate) fn run_writer(dir: &Path, threads: usize) -> CliResult {
    let store = KvStore::open(dir, demo_options().create_if_missing(false))?;
    let deadline = Instant::now() + WRITER_RUN_MAX;
    let failures: Vec<Error> = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|thread_no| {
                let store = &store;
                scope.spawn(move || write_until_killed(store, thread_no, deadline))
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|worker| worker.join().ok().and_then(Result::err))
            .collect()
    });
    store.close()?;
    match failures.into_iter().next() {
        Some(err) => Err(err.into()),
        None => Ok(exit::OK),
    }
}

fn write_until_killed(
    store: &KvStore,
    thread_no: usize,
    deadline: Instant,
) -> walstate::Result<()> {
    for n in 0u64.. {
        if Instant::now() >= deadline {
            break;
        }
        let key = format!("{KEY_PREFIX}{thread_no}/{n:07}");
        // Acknowledged means durable; the LSN is this commit's own.
        let (lsn, _) =
            store.apply_with_lsn(walstate::KvCommand::put(key.as_str(), value_for(&key)))?;
        let mut out = io::stdout().lock();
        if writeln!(out, "ack {key} {lsn}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break; // the parent is gone
        }
    }
    Ok(())
}
