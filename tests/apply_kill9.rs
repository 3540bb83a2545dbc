//! `walstate apply` keeps many lines in flight, so an ack printed too early would be a
//! lost commit: a real `walstate apply` process is fed put lines as fast as it reads them
//! and SIGKILLed mid-stream; every line it acknowledged must be in the store, with the
//! LSN its ack named, and the acks must be lines 1..=n in order.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::Value;
use walstate::{KvStore, Options};

const LINES: usize = 200_000;

/// `walstate apply DIR` with stdin and stdout piped.
fn spawn_apply(dir: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_walstate"))
        .arg("apply")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn walstate apply")
}

/// The put line of input line `line`.
fn put_line(line: usize) -> String {
    format!(
        "{{\"op\":\"put\",\"key\":\"{}\",\"value\":\"{}\"}}\n",
        key(line),
        value(line)
    )
}

fn key(line: usize) -> String {
    format!("line/{line:07}")
}

fn value(line: usize) -> String {
    format!("value-{line}-{}", "x".repeat(line % 40))
}

#[test]
fn no_ack_is_printed_before_its_line_is_durable() {
    for (run, acks_before_kill) in [50usize, 700, 3_000, 9_000].into_iter().enumerate() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        let mut child = spawn_apply(&dir);
        let mut stdin = child.stdin.take().expect("stdin");
        let feeder = std::thread::spawn(move || {
            for line in 1..=LINES {
                let text = put_line(line);
                // The pipe closes when the child is killed.
                if stdin.write_all(text.as_bytes()).is_err() {
                    return;
                }
            }
        });
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut acks: Vec<(usize, u64)> = Vec::new();
        let mut lines = stdout.lines();
        for line in lines.by_ref() {
            let line = line.expect("read ack");
            let ack: Value = serde_json::from_str(&line).expect("ack is JSON");
            acks.push((
                ack["line"].as_u64().expect("line") as usize,
                ack["lsn"].as_u64().expect("every ack has an LSN"),
            ));
            if acks.len() == acks_before_kill {
                child.kill().expect("SIGKILL");
                break;
            }
        }
        // Acks already in the pipe when the process died count too.
        for line in lines {
            let Ok(line) = line else { break };
            let Ok(ack) = serde_json::from_str::<Value>(&line) else {
                break; // A line cut by the kill is no ack.
            };
            if let (Some(number), Some(lsn)) = (ack["line"].as_u64(), ack["lsn"].as_u64()) {
                acks.push((number as usize, lsn));
            }
        }
        let _ = child.wait();
        let _ = feeder.join();
        assert!(acks.len() >= acks_before_kill, "run {run}: too few acks");
        for (index, (line, lsn)) in acks.iter().enumerate() {
            assert_eq!(*line, index + 1, "run {run}: acks in input order");
            assert_eq!(*lsn, *line as u64, "run {run}: line {line}'s LSN");
        }
        let store = KvStore::open(&dir, Options::default().create_if_missing(false))
            .expect("reopen after SIGKILL");
        for (line, _) in &acks {
            assert_eq!(
                store.get(key(*line).as_bytes()).expect("get"),
                Some(value(*line).into_bytes()),
                "run {run}: acknowledged line {line} lost ({} acks)",
                acks.len()
            );
        }
        assert!(store.last_lsn() >= acks.len() as u64);
    }
}

#[test]
fn when_acks_can_no_longer_be_printed_no_more_lines_are_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let input: String = (1..=LINES).map(put_line).collect();
    let mut child = spawn_apply(&dir);
    let mut stdin = child.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    // Like `walstate apply DIR < lines | head -1`: one ack read, then stdout is closed.
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first ack");
    drop(stdout);
    let status = child.wait().expect("wait");
    let _ = feeder.join();
    assert!(
        !status.success(),
        "a closed stdout is a failure: {status:?}"
    );
    let store = KvStore::open(&dir, Options::default().create_if_missing(false)).expect("reopen");
    assert!(
        store.last_lsn() < (LINES / 4) as u64,
        "{} of {LINES} lines were applied after stdout was closed",
        store.last_lsn()
    );
}
