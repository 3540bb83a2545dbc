//! End-to-end tests of the `walstate` binary on real temp directories: every command's
//! happy path, damaged stores (truncation, a flipped bit, a deleted segment, garbage)
//! with the exit codes and reports operators rely on, and repair leaving a store that
//! opens with nothing acknowledged before the damage lost.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use walstate::format;
use walstate::{KvCommand, KvStore, Options, Writers};

mod common;
use common::records_in;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn walstate(args: &[&str]) -> Output {
    walstate_with_stdin(args, b"")
}

fn walstate_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_walstate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start walstate");
    let mut input = child.stdin.take().expect("stdin");
    // A command that never reads stdin may exit before we finish writing it.
    if let Err(err) = input.write_all(stdin) {
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::BrokenPipe,
            "write stdin: {err}"
        );
    }
    drop(input);
    child.wait_with_output().expect("run walstate")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited normally")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {}", stdout(output)))
}

/// Runs walstate and asserts its exit code, showing its output when it differs.
#[track_caller]
fn expect_code(args: &[&str], expected: i32) -> Output {
    let output = walstate(args);
    assert_eq!(
        code(&output),
        expected,
        "walstate {args:?}\nstdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    output
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn key(n: u64) -> String {
    format!("key{n:05}")
}

fn value(n: u64) -> String {
    format!("value {n} {}", "v".repeat(40))
}

/// A key-value store with `count` puts, `key(n)` at LSN n, in 4 KiB segments (so there
/// are several), without checkpoints. Returns the segment paths, oldest first.
fn build_store(dir: &Path, count: u64) -> Vec<PathBuf> {
    let options = Options::default()
        .segment_size_bytes(4096)
        .checkpoint_after_bytes(None);
    let store = KvStore::open(dir, options).expect("open");
    for n in 1..=count {
        store.put(key(n), value(n)).expect("put");
        assert_eq!(store.last_lsn(), n);
    }
    store.close().expect("close");
    segments(dir)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| format::parse_segment_file_name(n).is_some())
        })
        .collect();
    found.sort();
    found
}

/// The whole key-value state, opened read-only through the library.
fn state(dir: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let store = KvStore::open_read_only(dir, Options::default().create_if_missing(false))
        .expect("store opens");
    store
        .read(|s| {
            s.iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect::<BTreeMap<_, _>>()
        })
        .expect("read")
}

/// Asserts that every `key(n)` for n in `lsns` is present with its value.
#[track_caller]
fn assert_keys_present(dir: &Path, lsns: std::ops::RangeInclusive<u64>) {
    let state = state(dir);
    for n in lsns {
        assert_eq!(
            state.get(key(n).as_bytes()).map(Vec::as_slice),
            Some(value(n).as_bytes()),
            "{} (LSN {n}) lost",
            key(n)
        );
    }
}

fn truncate(path: &Path, len: usize) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    file.set_len(len as u64).expect("truncate");
}

fn verify_json(dir: &Path) -> (i32, Value) {
    let output = walstate(&["verify", arg(dir), "--json"]);
    (code(&output), json(&output))
}

/// Repair with --salvage, then check the store is clean and opens with every key below
/// `first_lost` present.
#[track_caller]
fn salvage_and_check(dir: &Path, first_lost: u64) {
    let repaired = expect_code(&["repair", arg(dir), "--salvage"], 0);
    assert!(
        stdout(&repaired).contains("after: clean"),
        "{}",
        stdout(&repaired)
    );
    expect_code(&["verify", arg(dir)], 0);
    assert_keys_present(dir, 1..=first_lost - 1);
    // The store opens for writing too, and takes new commits.
    expect_code(&["put", arg(dir), "after-repair", "yes"], 0);
}

// ---------------------------------------------------------------------------------------
// Key-value commands
// ---------------------------------------------------------------------------------------

#[test]
fn put_get_del_scan_round_trip_through_the_cli() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("store");
    let put = expect_code(&["put", arg(&dir), "config/port", "8080"], 0);
    assert!(stdout(&put).contains("LSN 1"), "{}", stdout(&put));
    expect_code(&["put", arg(&dir), "config/host", "example"], 0);
    expect_code(&["put", arg(&dir), "other", "x"], 0);
    let got = expect_code(&["get", arg(&dir), "config/port"], 0);
    assert_eq!(stdout(&got), "8080\n");
    let del = expect_code(&["del", arg(&dir), "other"], 0);
    assert!(stdout(&del).contains("LSN 4"), "{}", stdout(&del));
    let scan = expect_code(&["scan", arg(&dir), "--prefix", "config/"], 0);
    assert_eq!(
        stdout(&scan),
        "config/host\texample\nconfig/port\t8080\n",
        "scan must list the prefix in key order"
    );
    let all = expect_code(&["scan", arg(&dir), "--json"], 0);
    let all = json(&all);
    assert_eq!(all["lsn"], 4);
    assert_eq!(all["entries"].as_array().unwrap().len(), 2);
}

#[test]
fn get_of_an_absent_key_exits_1_with_a_message_on_stderr() {
    let tmp = TempDir::new().unwrap();
    expect_code(&["put", arg(tmp.path()), "a", "1"], 0);
    let output = expect_code(&["get", arg(tmp.path()), "missing"], 1);
    assert!(stdout(&output).is_empty());
    assert!(
        stderr(&output).contains("\"missing\" is absent"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn read_commands_on_a_mistyped_path_fail_with_not_a_store_and_create_nothing() {
    let tmp = TempDir::new().unwrap();
    let typo = tmp.path().join("no-such-store");
    let typo_arg = arg(&typo);
    for args in [
        vec!["get", typo_arg, "k"],
        vec!["scan", typo_arg],
        vec!["verify", typo_arg],
        vec!["dump", typo_arg],
        vec!["stats", typo_arg],
        vec!["export", typo_arg],
        vec!["snapshot", "list", typo_arg],
        vec!["repair", typo_arg],
        vec!["checkpoint", typo_arg],
        vec!["del", typo_arg, "k"],
    ] {
        let output = expect_code(&args, 3);
        assert!(
            stderr(&output).contains("is not a walstate store"),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(!typo.exists(), "{args:?} created the directory");
    }
}

#[test]
fn scan_json_round_trips_non_utf8_keys_and_values() {
    let tmp = TempDir::new().unwrap();
    let store = KvStore::open(tmp.path(), Options::default()).unwrap();
    store.put(b"bin\xff", b"\x00\x01\xfe").unwrap();
    store.put("text", "t\u{e9}xt").unwrap();
    store.close().unwrap();
    let output = expect_code(&["scan", arg(tmp.path()), "--json"], 0);
    let doc = json(&output);
    let entries = doc["entries"].as_array().unwrap();
    assert_eq!(entries[0]["key"]["hex"], "62696eff");
    assert_eq!(entries[0]["value"]["hex"], "0001fe");
    assert_eq!(entries[1]["value"], "t\u{e9}xt");
    let text = expect_code(&["scan", arg(tmp.path())], 0);
    assert!(
        stdout(&text).contains("bin\\xff\t\\x00\\x01\\xfe"),
        "text mode must escape binary: {}",
        stdout(&text)
    );
}

// ---------------------------------------------------------------------------------------
// apply
// ---------------------------------------------------------------------------------------

#[test]
fn apply_acknowledges_every_line_and_every_ack_survives_reopen() {
    let tmp = TempDir::new().unwrap();
    let lines = [
        r#"{"op":"put","key":"a","value":"1"}"#,
        r#"{"op":"put","key":"b","value":{"hex":"ff00"}}"#,
        r#"{"op":"cas","key":"a","expected":"1","value":"2"}"#,
        r#"{"op":"cas","key":"a","expected":"nope","value":"3"}"#,
        r#"{"op":"del","key":"b"}"#,
        r#"{"op":"batch","ops":[{"op":"put","key":"c","value":"3"},{"op":"put","key":"d","value":"4"}]}"#,
        r#"{"op":"delete_prefix","prefix":"d"}"#,
    ];
    let input = lines.join("\n") + "\n";
    let output = walstate_with_stdin(&["apply", arg(tmp.path())], input.as_bytes());
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let acks: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("ack line is JSON"))
        .collect();
    assert_eq!(acks.len(), lines.len(), "one ack line per input line");
    let mut previous_lsn = 0;
    for (index, ack) in acks.iter().enumerate() {
        assert_eq!(ack["line"], index as u64 + 1);
        let lsn = ack["lsn"]
            .as_u64()
            .expect("every line acknowledged with an LSN");
        assert!(lsn > previous_lsn, "LSNs increase: {ack}");
        previous_lsn = lsn;
    }
    assert_eq!(acks[2]["ok"], true);
    assert_eq!(
        acks[3]["ok"], false,
        "a CAS mismatch is acknowledged, not ok"
    );
    assert_eq!(acks[3]["mismatch"]["actual"], "2");
    assert_eq!(acks[5]["first_lsn"], 6);
    assert_eq!(acks[5]["lsn"], 7);

    let store = KvStore::open(tmp.path(), Options::default().create_if_missing(false)).unwrap();
    assert!(
        store.last_lsn() >= previous_lsn,
        "an acknowledged LSN was lost"
    );
    assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(store.get(b"b").unwrap(), None);
    assert_eq!(store.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(store.get(b"d").unwrap(), None);
}

#[test]
fn apply_malformed_line_gets_an_error_line_and_exit_65_but_other_lines_commit() {
    let tmp = TempDir::new().unwrap();
    let input = concat!(
        "{\"op\":\"put\",\"key\":\"before\",\"value\":\"1\"}\n",
        "this is not json\n",
        "{\"op\":\"put\",\"key\":\"k\"}\n",
        "{\"op\":\"put\",\"key\":\"after\",\"value\":\"2\"}\n",
    );
    let output = walstate_with_stdin(&["apply", arg(tmp.path())], input.as_bytes());
    assert_eq!(code(&output), 65, "{}", stderr(&output));
    let lines: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0]["lsn"].is_u64());
    for bad in &lines[1..3] {
        assert_eq!(bad["ok"], false);
        assert!(bad["error"].is_string(), "{bad}");
        assert!(
            bad.get("lsn").is_none(),
            "a malformed line must not look acknowledged"
        );
    }
    assert!(lines[3]["lsn"].is_u64());
    let state = state(tmp.path());
    assert_eq!(
        state.get(&b"before"[..]).map(Vec::as_slice),
        Some(&b"1"[..])
    );
    assert_eq!(state.get(&b"after"[..]).map(Vec::as_slice), Some(&b"2"[..]));
    assert_eq!(state.len(), 2);
}

// ---------------------------------------------------------------------------------------
// verify and repair on damaged stores
// ---------------------------------------------------------------------------------------

#[test]
fn verify_of_a_clean_store_exits_0_with_a_row_per_file() {
    let tmp = TempDir::new().unwrap();
    let segs = build_store(tmp.path(), 200);
    assert!(segs.len() >= 3, "need several segments, got {}", segs.len());
    let output = expect_code(&["verify", arg(tmp.path())], 0);
    let text = stdout(&output);
    for seg in &segs {
        let name = seg.file_name().unwrap().to_str().unwrap();
        assert!(text.contains(name), "no row for {name}:\n{text}");
    }
    assert!(text.contains("verdict: clean"), "{text}");
    let (code, report) = verify_json(tmp.path());
    assert_eq!(code, 0);
    assert_eq!(report["verdict"], "clean");
    assert_eq!(report["recovery"]["last_lsn"], 200);
}

#[test]
fn torn_last_record_is_verify_exit_1_and_repair_keeps_everything_before_it() {
    let tmp = TempDir::new().unwrap();
    let segs = build_store(tmp.path(), 200);
    let last = segs.last().unwrap();
    let &(lsn, offset, len) = records_in(last).last().unwrap();
    assert_eq!(lsn, 200);
    truncate(last, offset + len / 2);

    let (code, report) = verify_json(tmp.path());
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["verdict"], "repaired_by_open");
    let row = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == arg(last))
        .expect("row of the last segment");
    assert_eq!(row["status"], "torn_tail");
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("offset {offset}"))
    );

    let repaired = expect_code(&["repair", arg(tmp.path())], 0);
    assert!(
        stdout(&repaired).contains("truncated torn tail"),
        "{}",
        stdout(&repaired)
    );
    expect_code(&["verify", arg(tmp.path())], 0);
    assert_keys_present(tmp.path(), 1..=199);
}

#[test]
fn truncation_at_several_offsets_gets_the_exit_code_of_its_damage_class() {
    // (which segment, where to cut, expected verify code, first LSN that may be lost)
    enum Cut {
        LastRecordHalf,
        LastRecordHeader,
        EarlierRecordOfLastSegment,
        SecondSegmentMidRecord,
        LastSegmentHeader,
    }
    for (cut, expected) in [
        (Cut::LastRecordHalf, 1),
        (Cut::LastRecordHeader, 1),
        (Cut::EarlierRecordOfLastSegment, 1),
        (Cut::SecondSegmentMidRecord, 2),
        (Cut::LastSegmentHeader, 2),
    ] {
        let tmp = TempDir::new().unwrap();
        let segs = build_store(tmp.path(), 200);
        let last = segs.last().unwrap();
        let last_records = records_in(last);
        let (path, len, first_lost) = match cut {
            Cut::LastRecordHalf => {
                let (lsn, off, len) = *last_records.last().unwrap();
                (last.clone(), off + len / 2, lsn)
            }
            Cut::LastRecordHeader => {
                let (lsn, off, _) = *last_records.last().unwrap();
                (last.clone(), off + 7, lsn)
            }
            Cut::EarlierRecordOfLastSegment => {
                let (lsn, off, len) = last_records[last_records.len() / 2];
                (last.clone(), off + len - 3, lsn)
            }
            Cut::SecondSegmentMidRecord => {
                let records = records_in(&segs[1]);
                let (lsn, off, len) = records[records.len() / 2];
                (segs[1].clone(), off + len / 2, lsn)
            }
            Cut::LastSegmentHeader => (last.clone(), 20, last_records[0].0),
        };
        truncate(&path, len);
        let (code, report) = verify_json(tmp.path());
        assert_eq!(
            code,
            expected,
            "cut {} at {len}: {report:#}",
            path.display()
        );
        if expected == 2 {
            // Refused without --salvage, and nothing changed.
            let before = std::fs::read(&path).unwrap();
            let refused = expect_code(&["repair", arg(tmp.path())], 2);
            assert!(
                stderr(&refused).contains("--salvage"),
                "{}",
                stderr(&refused)
            );
            assert_eq!(std::fs::read(&path).unwrap(), before);
        }
        salvage_and_check(tmp.path(), first_lost);
    }
}

#[test]
fn flipped_bit_in_an_old_segment_needs_repair_exit_2_and_salvage_keeps_the_prefix() {
    let tmp = TempDir::new().unwrap();
    let segs = build_store(tmp.path(), 300);
    assert!(segs.len() >= 4);
    let damaged = &segs[1];
    let records = records_in(damaged);
    let (lsn, offset, len) = records[records.len() / 2];
    let mut bytes = std::fs::read(damaged).unwrap();
    bytes[offset + len / 2] ^= 0x10;
    std::fs::write(damaged, &bytes).unwrap();

    let (code, report) = verify_json(tmp.path());
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["verdict"], "needs_repair");
    let problems = report["problems"].to_string();
    assert!(problems.contains("corruption"), "{problems}");
    assert!(problems.contains(&format!("offset {offset}")), "{problems}");
    let text = expect_code(&["verify", arg(tmp.path())], 2);
    assert!(
        stdout(&text).contains("repair --salvage"),
        "{}",
        stdout(&text)
    );

    // Without --salvage: refused, told what to run, nothing changed.
    let refused = expect_code(&["repair", arg(tmp.path())], 2);
    assert!(
        stderr(&refused).contains("rerun with --salvage"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(std::fs::read(damaged).unwrap(), bytes);
    // A dry run says what salvage would do and changes nothing.
    let dry = expect_code(&["repair", arg(tmp.path()), "--salvage", "--dry-run"], 0);
    assert!(stdout(&dry).contains("would"), "{}", stdout(&dry));
    assert_eq!(std::fs::read(damaged).unwrap(), bytes);
    assert_eq!(segments(tmp.path()).len(), segs.len());

    salvage_and_check(tmp.path(), lsn);
    let quarantine = tmp.path().join("quarantine");
    assert!(
        std::fs::read_dir(&quarantine).unwrap().count() >= 1,
        "damaged files must be kept in quarantine/"
    );
}

#[test]
fn deleted_middle_segment_needs_repair_exit_2_and_salvage_keeps_the_prefix() {
    let tmp = TempDir::new().unwrap();
    let segs = build_store(tmp.path(), 300);
    assert!(segs.len() >= 4);
    let missing_first_lsn = records_in(&segs[2])[0].0;
    std::fs::remove_file(&segs[2]).unwrap();

    let (code, report) = verify_json(tmp.path());
    assert_eq!(code, 2, "{report:#}");
    assert!(
        report["problems"].to_string().contains("missing"),
        "{report:#}"
    );
    expect_code(&["repair", arg(tmp.path())], 2);
    salvage_and_check(tmp.path(), missing_first_lsn);
}

#[test]
fn appended_garbage_is_a_torn_tail_verify_1_and_repair_drops_only_the_garbage() {
    let tmp = TempDir::new().unwrap();
    let segs = build_store(tmp.path(), 200);
    let last = segs.last().unwrap();
    let clean = std::fs::read(last).unwrap();
    let mut file = std::fs::OpenOptions::new().append(true).open(last).unwrap();
    file.write_all(b"\x13garbage that is not a record at all\xff")
        .unwrap();
    drop(file);

    let (code, report) = verify_json(tmp.path());
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["verdict"], "repaired_by_open");
    let dry = expect_code(&["repair", arg(tmp.path()), "--dry-run"], 0);
    assert!(
        stdout(&dry).contains("would: truncated torn tail"),
        "{}",
        stdout(&dry)
    );
    expect_code(&["repair", arg(tmp.path())], 0);
    // Only the garbage is gone: the records are untouched, and a preallocated segment
    // keeps its length with zeros (free space) where the garbage was.
    let repaired = std::fs::read(last).unwrap();
    assert!(repaired.len() >= clean.len());
    assert_eq!(&repaired[..clean.len()], &clean[..]);
    assert!(repaired[clean.len()..].iter().all(|&b| b == 0));
    expect_code(&["verify", arg(tmp.path())], 0);
    assert_keys_present(tmp.path(), 1..=200);
}

// ---------------------------------------------------------------------------------------
// dump, stats, checkpoint
// ---------------------------------------------------------------------------------------

#[test]
fn dump_lists_every_record_at_its_true_offset() {
    let tmp = TempDir::new().unwrap();
    build_store(tmp.path(), 150);
    let store = KvStore::open(tmp.path(), Options::default().segment_size_bytes(4096)).unwrap();
    store
        .apply_batch(vec![
            KvCommand::put("batch/a", "1"),
            KvCommand::put(b"batch/\xff".to_vec(), b"\xfe".to_vec()),
            KvCommand::delete("key00001"),
        ])
        .unwrap();
    store.close().unwrap();

    let output = expect_code(&["dump", arg(tmp.path()), "--json"], 0);
    let doc = json(&output);
    let records = doc["records"].as_array().unwrap();
    assert_eq!(records.len(), 153);
    for (index, record) in records.iter().enumerate() {
        let lsn = record["lsn"].as_u64().unwrap();
        assert_eq!(lsn, index as u64 + 1);
        let path = tmp.path().join(record["file"].as_str().unwrap());
        let offset = record["offset"].as_u64().unwrap() as usize;
        let on_disk = records_in(&path)
            .into_iter()
            .find(|&(_, off, _)| off == offset)
            .unwrap_or_else(|| panic!("no record starts at offset {offset}: {record}"));
        assert_eq!(on_disk.0, lsn, "{record}");
        assert_eq!(on_disk.2 as u64, record["frame_bytes"].as_u64().unwrap());
    }
    assert_eq!(records[0]["command"]["op"], "put");
    assert_eq!(records[0]["command"]["key"], "key00001");
    assert_eq!(records[151]["command"]["key"]["hex"], "62617463682fff"); // "batch/\xff"
    assert_eq!(records[151]["batch"], serde_json::json!([151, 153]));
    assert_eq!(records[152]["command"]["op"], "del");

    let ranged = expect_code(&["dump", arg(tmp.path()), "--from", "10", "--to", "12"], 0);
    let text = stdout(&ranged);
    assert!(text.contains("put \"key00010\""), "{text}");
    assert!(!text.contains("key00013"), "{text}");
}

#[test]
fn dump_of_a_corrupt_store_reports_the_defect_like_verify_and_exits_2() {
    let tmp = TempDir::new().unwrap();
    let segs = build_store(tmp.path(), 200);
    let records = records_in(&segs[0]);
    let (lsn, offset, _) = records[3];
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    bytes[offset + 25] ^= 1;
    std::fs::write(&segs[0], &bytes).unwrap();

    let output = expect_code(&["dump", arg(tmp.path())], 2);
    let text = stdout(&output);
    assert!(text.contains(&format!("{} record(s)", lsn - 1)), "{text}");
    let (_, report) = verify_json(tmp.path());
    let verify_problem = report["problems"][0].as_str().unwrap();
    assert!(
        text.contains(verify_problem),
        "dump must word the defect as verify does:\n{verify_problem}\n---\n{text}"
    );
}

#[test]
fn stats_counts_segments_records_and_checkpoints() {
    let tmp = TempDir::new().unwrap();
    let segs = build_store(tmp.path(), 120);
    let output = expect_code(&["stats", arg(tmp.path()), "--json"], 0);
    let stats = json(&output);
    assert_eq!(stats["segments"]["count"], segs.len() as u64);
    assert_eq!(stats["segments"]["records"], 120);
    assert_eq!(stats["segments"]["kv_commands"], 120);
    assert_eq!(stats["segments"]["first_lsn"], 1);
    assert_eq!(stats["segments"]["last_lsn"], 120);
    assert_eq!(stats["records_since_checkpoint"], 120);
    assert!(stats["replay"]["estimated_replay_ms"].is_number());

    expect_code(&["checkpoint", arg(tmp.path())], 0);
    let stats = json(&expect_code(&["stats", arg(tmp.path()), "--json"], 0));
    assert_eq!(stats["checkpoints"][0]["lsn"], 120);
    assert_eq!(stats["newest_checkpoint_lsn"], 120);
    assert_eq!(stats["records_since_checkpoint"], 0);
    let text = expect_code(&["stats", arg(tmp.path())], 0);
    assert!(
        stdout(&text).contains("replay estimate"),
        "{}",
        stdout(&text)
    );
}

#[test]
fn stats_shows_the_fdatasync_latencies_and_group_sizes_the_last_service_recorded() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("store");
    let stats = || json(&expect_code(&["stats", arg(&dir), "--json"], 0));
    // A service: 4 threads of 50 durable puts each, then a clean close.
    let store = KvStore::open(&dir, Options::default()).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let store = &store;
            scope.spawn(move || {
                for i in 0..50 {
                    store.put(format!("t{t}-{i}"), "v").unwrap();
                }
            });
        }
    });
    store.close().unwrap();
    let last = &stats()["last_writer"];
    assert_eq!(last["pid"], u64::from(std::process::id()), "{last}");
    assert_eq!(last["records"], 200);
    let fdatasyncs = last["fdatasyncs"].as_u64().unwrap();
    assert!((1..=200).contains(&fdatasyncs), "{last}");
    assert!(
        last["fsync_p99_micros"].as_u64().unwrap() >= last["fsync_p50_micros"].as_u64().unwrap()
    );
    assert!(last["group_p50_records"].as_u64().unwrap() >= 1);
    let text = stdout(&expect_code(&["stats", arg(&dir)], 0));
    assert!(
        text.contains(&format!("last writer      pid {}", std::process::id())),
        "{text}"
    );
    assert!(text.contains("fdatasync        p50 ≤ "), "{text}");

    // The CLI's own short commands do not replace the service's numbers.
    expect_code(&["put", arg(&dir), "k", "v"], 0);
    assert_eq!(stats()["last_writer"]["pid"], u64::from(std::process::id()));

    // A file copied from another store is not shown as this store's.
    let other = tmp.path().join("other");
    KvStore::open(&other, Options::default())
        .unwrap()
        .close()
        .unwrap();
    std::fs::copy(other.join("WRITER-STATS"), dir.join("WRITER-STATS")).unwrap();
    let unreadable = stats()["last_writer"]["unreadable"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(unreadable.contains("names store"), "{unreadable}");
    // Damage is reported, and changes nothing else.
    std::fs::write(dir.join("WRITER-STATS"), "garbage").unwrap();
    let unreadable = stats()["last_writer"]["unreadable"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(unreadable.contains("first line"), "{unreadable}");
    expect_code(&["verify", arg(&dir)], 0);
    assert_eq!(stdout(&expect_code(&["get", arg(&dir), "t3-49"], 0)), "v\n");
}

#[test]
fn checkpoint_writes_a_checkpoint_and_deletes_the_segments_it_covers() {
    let tmp = TempDir::new().unwrap();
    let segs = build_store(tmp.path(), 200);
    let output = expect_code(&["checkpoint", arg(tmp.path()), "--json"], 0);
    let info = json(&output);
    assert_eq!(info["lsn"], 200);
    let deleted = info["segments_deleted"].as_array().unwrap();
    assert_eq!(
        deleted.len(),
        segs.len() - 1,
        "all but the active segment: {info:#}"
    );
    assert!(Path::new(info["path"].as_str().unwrap()).exists());
    let text = expect_code(&["checkpoint", arg(tmp.path())], 0);
    assert!(
        stdout(&text).contains("wrote checkpoint-"),
        "{}",
        stdout(&text)
    );
    expect_code(&["verify", arg(tmp.path())], 0);
    assert_keys_present(tmp.path(), 1..=200);
}

// ---------------------------------------------------------------------------------------
// export / import, snapshots
// ---------------------------------------------------------------------------------------

#[test]
fn export_import_round_trips_non_utf8_keys_and_values_in_one_batch() {
    let tmp = TempDir::new().unwrap();
    let source = tmp.path().join("source");
    let store = KvStore::open(&source, Options::default()).unwrap();
    let mut expected = BTreeMap::new();
    for n in 0u8..40 {
        let key = vec![b'k', n, 0xff, 0x80 + n];
        let value = vec![n, 0, 0xc3, 0x28, n.wrapping_mul(7)];
        store.put(key.clone(), value.clone()).unwrap();
        expected.insert(key, value);
    }
    store.put("plain", "h\u{e9}llo").unwrap();
    expected.insert(b"plain".to_vec(), "h\u{e9}llo".as_bytes().to_vec());
    store.put("", "empty key").unwrap();
    expected.insert(Vec::new(), b"empty key".to_vec());
    store.close().unwrap();

    let exported = expect_code(&["export", arg(&source)], 0);
    let doc = json(&exported);
    assert_eq!(doc["format"], "walstate-export");
    assert_eq!(doc["version"], 1);

    let target = tmp.path().join("target");
    let imported = walstate_with_stdin(&["import", arg(&target)], &exported.stdout);
    assert_eq!(code(&imported), 0, "{}", stderr(&imported));
    assert_eq!(state(&target), expected);
    // ONE atomic group: every record in a single batch.
    let dump = json(&expect_code(&["dump", arg(&target), "--json"], 0));
    let count = expected.len() as u64;
    for record in dump["records"].as_array().unwrap() {
        assert_eq!(record["batch"], serde_json::json!([1, count]), "{record}");
    }

    // --replace makes the target exactly the export, removing keys it does not have.
    expect_code(&["put", arg(&target), "stray", "x"], 0);
    let replaced = walstate_with_stdin(&["import", arg(&target), "--replace"], &exported.stdout);
    assert_eq!(code(&replaced), 0, "{}", stderr(&replaced));
    assert_eq!(state(&target), expected);
}

#[test]
fn import_of_a_malformed_document_exits_65_and_changes_nothing() {
    let tmp = TempDir::new().unwrap();
    expect_code(&["put", arg(tmp.path()), "keep", "1"], 0);
    for bad in [
        &b"{not json"[..],
        br#"{"format":"other","version":1,"entries":[]}"#,
        br#"{"format":"walstate-export","version":1,"entries":[{"key":{"hex":"zz"},"value":"v"}]}"#,
    ] {
        let output = walstate_with_stdin(&["import", arg(tmp.path())], bad);
        assert_eq!(code(&output), 65, "{}", stderr(&output));
        assert!(stderr(&output).contains("nothing was imported"));
    }
    assert_eq!(state(tmp.path()).len(), 1);
}

#[test]
fn snapshot_create_list_restore_delete() {
    let tmp = TempDir::new().unwrap();
    let dir = arg(tmp.path());
    expect_code(&["put", dir, "k", "before"], 0);
    expect_code(&["snapshot", "create", dir, "snap-1"], 0);
    expect_code(&["put", dir, "k", "after"], 0);
    expect_code(&["put", dir, "new", "x"], 0);

    let list = json(&expect_code(&["snapshot", "list", dir, "--json"], 0));
    assert_eq!(list[0]["name"], "snap-1");
    assert_eq!(list[0]["lsn"], 1);
    let text = expect_code(&["snapshot", "list", dir], 0);
    assert!(stdout(&text).contains("snap-1"));

    let restored = expect_code(&["snapshot", "restore", dir, "snap-1"], 0);
    assert!(
        stdout(&restored).contains("pre-restore-"),
        "{}",
        stdout(&restored)
    );
    assert_eq!(stdout(&expect_code(&["get", dir, "k"], 0)), "before\n");
    expect_code(&["get", dir, "new"], 1);

    expect_code(&["snapshot", "delete", dir, "snap-1"], 0);
    let list = json(&expect_code(&["snapshot", "list", dir, "--json"], 0));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"snap-1"), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("pre-restore-")),
        "{names:?}"
    );
    let missing = expect_code(&["snapshot", "restore", dir, "snap-1"], 3);
    assert!(
        stderr(&missing).contains("snapshot list"),
        "{}",
        stderr(&missing)
    );
    expect_code(&["verify", dir], 0);
}

// ---------------------------------------------------------------------------------------
// demo, locking, help
// ---------------------------------------------------------------------------------------

#[test]
fn demo_kills_the_writer_and_recovers_every_acknowledged_commit() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("demo");
    for run in 0..2 {
        // The second run deletes the first run's store and starts afresh.
        let started = Instant::now();
        let output = expect_code(&["demo", arg(&dir)], 0);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "demo took {:?}",
            started.elapsed()
        );
        let text = stdout(&output);
        assert!(text.contains("SIGKILL"), "{text}");
        assert!(
            text.contains("acknowledged commits is present with its value"),
            "{text}"
        );
        assert!(
            text.contains("\"records_replayed\""),
            "no recovery report:\n{text}"
        );
        assert!(text.contains("KIND"), "no verify table:\n{text}");
        if run == 1 {
            assert!(
                text.contains("deleted the demo store of an earlier run"),
                "{text}"
            );
        }
    }
    expect_code(&["verify", arg(&dir)], 0);
}

#[test]
fn demo_refuses_to_delete_a_directory_it_did_not_make() {
    let tmp = TempDir::new().unwrap();
    let precious = tmp.path().join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    let output = expect_code(&["demo", arg(tmp.path())], 3);
    assert!(
        stderr(&output).contains("refusing to delete"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");

    // A real store that is not a demo store is refused too.
    let store_dir = tmp.path().join("store");
    expect_code(&["put", arg(&store_dir), "k", "v"], 0);
    expect_code(&["demo", arg(&store_dir)], 3);
    assert_eq!(state(&store_dir).len(), 1);
}

#[test]
fn writing_commands_work_beside_a_process_that_has_the_store_open_for_writing() {
    let tmp = TempDir::new().unwrap();
    let dir = arg(tmp.path());
    // A daemon: the store open for writing (the default, shared) for the whole test.
    let daemon = KvStore::open(tmp.path(), Options::default()).unwrap();
    daemon.put("held", "yes").unwrap();

    expect_code(&["put", dir, "k", "v"], 0);
    expect_code(&["put", dir, "gone", "soon"], 0);
    expect_code(&["del", dir, "gone"], 0);
    expect_code(&["checkpoint", dir], 0);
    expect_code(&["snapshot", "create", dir, "s"], 0);
    let applied = walstate_with_stdin(
        &["apply", dir],
        br#"{"op":"put","key":"applied","value":"1"}"#,
    );
    assert_eq!(code(&applied), 0, "{}", stderr(&applied));
    expect_code(&["repair", dir], 0);
    assert_eq!(stdout(&expect_code(&["get", dir, "held"], 0)), "yes\n");

    // The daemon sees every CLI write at its next look, and keeps writing.
    daemon.refresh().unwrap();
    assert_eq!(daemon.get(b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(daemon.get(b"gone").unwrap(), None);
    assert_eq!(daemon.get(b"applied").unwrap(), Some(b"1".to_vec()));
    daemon.put("daemon", "still serving").unwrap();
    assert_eq!(
        stdout(&expect_code(&["get", dir, "daemon"], 0)),
        "still serving\n"
    );
    let names: Vec<String> = daemon
        .list_snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(names.contains(&"s".to_string()), "{names:?}");
    drop(daemon);
    expect_code(&["verify", dir], 0);
}

#[test]
fn beside_an_exclusive_writer_writes_are_refused_with_the_holders_pid_and_exit_3_while_reads_still_work()
 {
    let tmp = TempDir::new().unwrap();
    let dir = arg(tmp.path());
    let store = KvStore::open(tmp.path(), Options::default().writers(Writers::Exclusive)).unwrap();
    store.put("held", "yes").unwrap();

    let started = std::time::Instant::now();
    let refused = expect_code(&["--lock-wait", "0.3", "put", dir, "k", "v"], 3);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "--lock-wait must be waited out before giving up"
    );
    let message = stderr(&refused);
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "the error must name the holder: {message}"
    );
    for args in [
        vec!["del", dir, "held"],
        vec!["checkpoint", dir],
        vec!["repair", dir],
        vec!["snapshot", "create", dir, "s"],
    ] {
        let mut with_wait = vec!["--lock-wait", "0"];
        with_wait.extend(args);
        expect_code(&with_wait, 3);
    }
    let refused_apply = walstate_with_stdin(
        &["--lock-wait", "0", "apply", dir],
        br#"{"op":"put","key":"k","value":"v"}"#,
    );
    assert_eq!(code(&refused_apply), 3);
    expect_code(&["--lock-wait", "-1", "put", dir, "k", "v"], 64);

    assert_eq!(stdout(&expect_code(&["get", dir, "held"], 0)), "yes\n");
    expect_code(&["scan", dir], 0);
    expect_code(&["verify", dir], 0);
    expect_code(&["dump", dir], 0);
    expect_code(&["stats", dir], 0);
    expect_code(&["export", dir], 0);
    expect_code(&["snapshot", "list", dir], 0);
    assert_eq!(
        store.get(b"k").unwrap(),
        None,
        "the refused put must not land"
    );
    drop(store);
}

#[test]
fn verify_help_documents_the_exit_codes() {
    let output = expect_code(&["verify", "--help"], 0);
    let help = stdout(&output);
    for needle in [
        "Exit codes",
        "0  clean",
        "1  damage",
        "2  damage",
        "3  could not",
        "repair --salvage",
    ] {
        assert!(
            help.contains(needle),
            "verify --help lacks {needle:?}:\n{help}"
        );
    }
    for command in [
        "demo",
        "put",
        "get",
        "del",
        "scan",
        "apply",
        "dump",
        "stats",
        "repair",
        "checkpoint",
        "export",
        "import",
        "snapshot",
    ] {
        let output = expect_code(&[command, "--help"], 0);
        assert!(
            stdout(&output).contains("xample"),
            "{command} --help has no example"
        );
    }
}

#[test]
fn usage_errors_exit_64_not_2_and_help_and_version_exit_0() {
    for args in [
        vec!["verify"],
        vec!["no-such-command"],
        vec!["verify", "/tmp", "--no-such-flag"],
        vec!["dump", "/tmp", "--from", "not-a-number"],
        vec![],
    ] {
        let output = expect_code(&args, 64);
        assert!(
            !stderr(&output).is_empty(),
            "{args:?} printed no usage error"
        );
    }
    expect_code(&["--help"], 0);
    expect_code(&["--version"], 0);
}

/// A store of application types other than the CLI's key-value state.
mod typed {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    pub struct Config {
        pub listen: String,
        pub workers: u16,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub enum Command {
        SetWorkers(u16),
    }

    impl walstate::StateMachine for Config {
        type Command = Command;
        type Output = ();
        const SCHEMA: Option<walstate::state::SchemaName> =
            Some(walstate::state::SchemaName::new("service-config", 3));
        fn apply(&mut self, Command::SetWorkers(workers): &Command) {
            self.workers = *workers;
        }
    }
}

#[test]
fn kv_commands_on_a_typed_store_name_its_schema_instead_of_advising_salvage() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("store");
    let store = walstate::Store::<typed::Config>::open(&dir, Options::default()).unwrap();
    store.apply(typed::Command::SetWorkers(8)).unwrap();
    store.snapshot("release-3").unwrap();
    store.close().unwrap();
    let before = segments(&dir)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect::<Vec<_>>();
    for args in [
        vec!["get", arg(&dir), "k"],
        vec!["put", arg(&dir), "k", "v"],
        vec!["del", arg(&dir), "k"],
        vec!["scan", arg(&dir)],
        vec!["checkpoint", arg(&dir)],
    ] {
        let output = expect_code(&args, 3);
        let err = stderr(&output);
        assert!(
            err.contains("holds service-config v3") && err.contains("use its application"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("salvage"), "{args:?}: {err}");
        assert!(err.contains("next: "), "{args:?}: {err}");
    }
    let after = segments(&dir)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(before, after, "nothing was changed");
    // The tools that read any store show the schema.
    let output = expect_code(&["verify", arg(&dir)], 0);
    assert!(
        stdout(&output).contains("schema service-config v3 (compact codec"),
        "{}",
        stdout(&output)
    );
    let (_, report) = verify_json(&dir);
    assert!(
        report["schema"]
            .as_str()
            .unwrap()
            .starts_with("service-config v3"),
        "{report}"
    );
    let output = expect_code(&["stats", arg(&dir)], 0);
    assert!(
        stdout(&output).contains("service-config v3"),
        "{}",
        stdout(&output)
    );
    let output = expect_code(&["dump", arg(&dir)], 0);
    assert!(
        stdout(&output).contains("schema: service-config v3"),
        "{}",
        stdout(&output)
    );
}

/// The CLI's "is this a store?" is open's: a directory holding only an identity file and a
/// schema file (no lock, no segment) is a store to every command, as it is to open.
#[test]
fn the_cli_and_open_agree_on_what_a_store_is() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("store");
    KvStore::open(&dir, Options::default())
        .unwrap()
        .close()
        .unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "LOCK" || format::parse_segment_file_name(&name).is_some() {
            std::fs::remove_file(&path).unwrap();
        }
    }
    assert!(walstate::verify::verify(&walstate::io::RealFs, &dir).is_ok());
    for args in [
        vec!["dump", arg(&dir)],
        vec!["stats", arg(&dir)],
        vec!["verify", arg(&dir)],
    ] {
        let output = walstate(&args);
        assert!(
            !stderr(&output).contains("not a walstate store"),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(code(&output), 0, "{args:?}: {}", stderr(&output));
    }
}

// ---------------------------------------------------------------------------------------
// The operator's tool: completions, man pages, checkpoints when due, no progress on pipes
// ---------------------------------------------------------------------------------------

/// Every visible subcommand, as `walstate --help` lists them.
const SUBCOMMANDS: &[&str] = &[
    "demo",
    "put",
    "get",
    "del",
    "scan",
    "apply",
    "verify",
    "dump",
    "stats",
    "repair",
    "upgrade",
    "checkpoint",
    "export",
    "import",
    "snapshot",
    "completions",
    "man",
];

#[test]
fn the_subcommand_list_of_these_tests_is_the_one_help_shows() {
    let help = stdout(&expect_code(&["--help"], 0));
    let listed: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .expect("a Commands: section")
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    assert_eq!(listed, SUBCOMMANDS, "{help}");
}

#[test]
fn completions_for_bash_zsh_and_fish_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let output = expect_code(&["completions", shell], 0);
        let script = stdout(&output);
        assert!(output.stderr.is_empty(), "{shell}: {}", stderr(&output));
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} completions lack {sub}");
        }
        // Nested subcommands too, and never the hidden demo helper.
        assert!(script.contains("restore"), "{shell}: snapshot restore");
        assert!(!script.contains("__demo-writer"), "{shell}: hidden command");
    }
    for shell in ["elvish", "powershell"] {
        assert!(!expect_code(&["completions", shell], 0).stdout.is_empty());
    }
    expect_code(&["completions", "tcsh"], 64);
}

/// Checks roff with groff when it is installed (warnings are errors), else its shape.
fn assert_valid_roff(page: &str, what: &str) {
    assert!(
        page.starts_with(".ie") || page.starts_with(".TH"),
        "{what}: {page}"
    );
    assert!(page.contains("\n.TH "), "{what}: no .TH");
    assert!(page.contains(".SH NAME"), "{what}: no NAME section");
    assert!(page.contains(".SH SYNOPSIS"), "{what}: no SYNOPSIS section");
    let groff = Command::new("groff")
        .args(["-man", "-ww", "-z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut groff) = groff else {
        return; // no groff here: the shape checks above
    };
    groff
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let checked = groff.wait_with_output().unwrap();
    assert!(
        checked.status.success() && checked.stderr.is_empty(),
        "{what}: groff: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn the_man_page_is_valid_roff_naming_every_subcommand() {
    let output = expect_code(&["man"], 0);
    let page = stdout(&output);
    assert_valid_roff(&page, "walstate.1");
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!("walstate\\-{sub}")) || page.contains(&format!("\n{sub}")),
            "walstate.1 does not name {sub}:\n{page}"
        );
    }
    assert!(!page.contains("__demo"), "hidden command in the man page");

    let tmp = TempDir::new().unwrap();
    let out = tmp.path().join("man1");
    let output = expect_code(&["man", "--out", arg(&out)], 0);
    assert!(output.stdout.is_empty());
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for sub in SUBCOMMANDS {
        assert!(names.contains(&format!("walstate-{sub}.1")), "{names:?}");
    }
    assert!(names.contains(&"walstate.1".to_string()), "{names:?}");
    assert!(names.contains(&"walstate-snapshot-restore.1".to_string()));
    for name in &names {
        let page = std::fs::read_to_string(out.join(name)).unwrap();
        assert_valid_roff(&page, name);
        assert!(
            stderr(&output).contains(name.as_str()),
            "{}",
            stderr(&output)
        );
    }
}

/// A store with more than the default checkpoint trigger (32 MiB) of journal and no
/// checkpoint: 40 puts of 1 MiB.
fn build_long_journal(dir: &Path) {
    let store = KvStore::open(dir, Options::default().checkpoint_after_bytes(None)).unwrap();
    for n in 0..40 {
        store.put(key(n), vec![b'x'; 1 << 20]).unwrap();
    }
    store.close().unwrap();
}

#[test]
fn stats_says_when_a_checkpoint_is_overdue_and_put_writes_it_before_exiting() {
    let tmp = TempDir::new().unwrap();
    let dir = arg(tmp.path());
    expect_code(&["put", dir, "small", "value"], 0);
    let stats = json(&expect_code(&["stats", dir, "--json"], 0));
    assert_eq!(stats["checkpoint_trigger_bytes"], 32 << 20);
    assert_eq!(stats["checkpoint_overdue"], false);
    let text = stdout(&expect_code(&["stats", dir], 0));
    assert!(text.contains("checkpoint due   after 32"), "{text}");
    assert!(!text.contains("overdue"), "{text}");
    assert!(!std::fs::read_dir(tmp.path()).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("checkpoint-")
    }));

    let tmp = TempDir::new().unwrap();
    let dir = arg(tmp.path());
    build_long_journal(tmp.path());
    let stats = json(&expect_code(&["stats", dir, "--json"], 0));
    assert_eq!(stats["checkpoint_overdue"], true);
    assert!(stats["journal_bytes_since_checkpoint"].as_u64().unwrap() > 32 << 20);
    let text = stdout(&expect_code(&["stats", dir], 0));
    assert!(
        text.contains(&format!(
            "checkpoint overdue: run `walstate checkpoint {dir}`"
        )),
        "{text}"
    );
    // A put does not leave it overdue: it checkpoints before it exits, and says so.
    let output = expect_code(&["put", dir, "one-more", "value"], 0);
    assert!(
        stderr(&output).contains("wrote checkpoint-"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).contains("at LSN 41"), "{}", stdout(&output));
    let stats = json(&expect_code(&["stats", dir, "--json"], 0));
    assert_eq!(stats["checkpoint_overdue"], false);
    assert_eq!(stats["newest_checkpoint_lsn"], 41);
    assert_eq!(stats["records_since_checkpoint"], 0);
    // Not due any more: the next put writes none.
    let output = expect_code(&["del", dir, "one-more"], 0);
    assert!(
        !stderr(&output).contains("checkpoint"),
        "{}",
        stderr(&output)
    );
    assert_eq!(state(tmp.path()).len(), 40);
}

#[test]
fn import_checkpoints_when_the_trigger_says_so() {
    let tmp = TempDir::new().unwrap();
    let dir = arg(tmp.path());
    build_long_journal(tmp.path());
    let document =
        br#"{"format":"walstate-export","version":1,"entries":[{"key":"a","value":"1"}]}"#;
    let output = walstate_with_stdin(&["import", dir], document);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("wrote checkpoint-"),
        "{}",
        stderr(&output)
    );
    let stats = json(&expect_code(&["stats", dir, "--json"], 0));
    assert_eq!(stats["newest_checkpoint_lsn"], 41);
}

/// Progress goes to a terminal only: a piped stderr (as here) gets none of it, on any
/// command that shows progress, in text and in JSON mode.
#[test]
fn piped_runs_print_no_progress() {
    let tmp = TempDir::new().unwrap();
    let dir = arg(tmp.path());
    build_store(tmp.path(), 3000);
    let export = expect_code(&["export", dir], 0);
    let runs: Vec<(Vec<&str>, Output)> = vec![
        (vec!["scan", dir], expect_code(&["scan", dir], 0)),
        (
            vec!["scan", dir, "--json"],
            expect_code(&["scan", dir, "--json"], 0),
        ),
        (
            vec!["scan", dir, "--prefix", "key0"],
            expect_code(&["scan", dir, "--prefix", "key0"], 0),
        ),
        (vec!["dump", dir], expect_code(&["dump", dir], 0)),
        (
            vec!["dump", dir, "--json"],
            expect_code(&["dump", dir, "--json"], 0),
        ),
        (vec!["stats", dir], expect_code(&["stats", dir], 0)),
        (
            vec!["stats", dir, "--json"],
            expect_code(&["stats", dir, "--json"], 0),
        ),
        (vec!["verify", dir], expect_code(&["verify", dir], 0)),
        (
            vec!["checkpoint", dir],
            expect_code(&["checkpoint", dir], 0),
        ),
        (
            vec!["snapshot", "create", dir, "s1"],
            expect_code(&["snapshot", "create", dir, "s1"], 0),
        ),
        (
            vec!["put", dir, "k", "v"],
            expect_code(&["put", dir, "k", "v"], 0),
        ),
        (
            vec!["import"],
            walstate_with_stdin(&["import", arg(&tmp.path().join("copy"))], &export.stdout),
        ),
    ];
    for (args, output) in std::iter::once((vec!["export", dir], export)).chain(runs) {
        assert_eq!(code(&output), 0, "{args:?}: {}", stderr(&output));
        let err = stderr(&output);
        // Only whole lines of walstate's own messages: no bar, spinner, \r or escape.
        assert!(
            !err.contains('\r') && !err.contains('\x1b'),
            "{args:?} drew progress on a pipe: {err:?}"
        );
        for line in err.lines() {
            assert!(line.starts_with("walstate: "), "{args:?}: {err:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// --json everywhere, and messages that say what to do next (issue 20)
// ---------------------------------------------------------------------------------------

/// Stderr of a command run with --json that failed: exactly one JSON object with the
/// error, the path, the next step and the exit code (the process's own).
#[track_caller]
fn json_error(output: &Output) -> Value {
    let text = stderr(output);
    let value: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|err| panic!("stderr is not one JSON object ({err}): {text}"));
    assert!(value["error"].is_string(), "{value}");
    assert!(
        value["path"].is_string() || value["path"].is_null(),
        "{value}"
    );
    assert!(
        value["next"].is_string(),
        "an error has a next step: {value}"
    );
    assert_eq!(value["exit_code"], code(output), "{value}");
    value
}

/// Runs walstate with --json (and stdin) and asserts the exit code.
#[track_caller]
fn expect_json_code(args: &[&str], stdin: &[u8], expected: i32) -> Output {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let output = walstate_with_stdin(&with_json, stdin);
    assert_eq!(
        code(&output),
        expected,
        "walstate {with_json:?}\nstdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    output
}

/// The `walstate: next: ...` line of a failed text-mode command.
#[track_caller]
fn next_line(output: &Output) -> String {
    let text = stderr(output);
    text.lines()
        .find_map(|line| line.strip_prefix("walstate: next: "))
        .unwrap_or_else(|| panic!("no next: line in\n{text}"))
        .to_owned()
}

/// A next step names a command (in backticks) or an action to take.
fn names_command_or_action(next: &str) -> bool {
    next.contains("`walstate ")
        || next.contains('`')
        || [
            "free disk space",
            "wait for",
            "move ",
            "check the path",
            "remount",
            "run walstate as",
            "put back",
        ]
        .iter()
        .any(|action| next.contains(action))
}

const EXPORT_DOC: &[u8] =
    br#"{"format":"walstate-export","version":1,"entries":[{"key":"i","value":"1"}]}"#;

#[test]
fn every_command_takes_json_and_prints_json_on_success() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("store");
    let d = arg(&dir);
    let put = json(&expect_json_code(&["put", d, "k", "v"], b"", 0));
    assert_eq!(put["lsn"], 1, "{put}");
    assert_eq!(put["created"], true, "{put}");
    let put = json(&expect_json_code(&["put", d, "k2", "v2"], b"", 0));
    assert_eq!(put["lsn"], 2, "{put}");
    let got = json(&expect_json_code(&["get", d, "k"], b"", 0));
    assert_eq!(got["value"], "v", "{got}");
    let del = json(&expect_json_code(&["del", d, "k2"], b"", 0));
    assert_eq!(del["removed_bytes"], 2, "{del}");
    let imported = json(&expect_json_code(&["import", d], EXPORT_DOC, 0));
    assert_eq!(imported["entries"], 1, "{imported}");
    let applied = expect_json_code(&["apply", d], br#"{"op":"put","key":"a","value":"1"}"#, 0);
    for line in stdout(&applied).lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|err| panic!("{err}: {line}"));
    }
    for args in [
        vec!["scan", d],
        vec!["verify", d],
        vec!["dump", d],
        vec!["stats", d],
        vec!["repair", d],
        vec!["upgrade", d, "--dry-run"],
        vec!["checkpoint", d],
        vec!["export", d],
        vec!["snapshot", "list", d],
    ] {
        let output = expect_json_code(&args, b"", 0);
        json(&output);
    }
    let created = json(&expect_json_code(&["snapshot", "create", d, "s1"], b"", 0));
    assert_eq!(created["name"], "s1", "{created}");
    let restored = json(&expect_json_code(&["snapshot", "restore", d, "s1"], b"", 0));
    assert_eq!(restored["snapshot"], "s1", "{restored}");
    let deleted = json(&expect_json_code(&["snapshot", "delete", d, "s1"], b"", 0));
    assert_eq!(deleted["deleted"], "s1", "{deleted}");
    // The flag is global: before the command too.
    let output = walstate(&["--json", "get", d, "k"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(json(&output)["value"], "v");
}

#[test]
fn every_command_with_json_reports_an_error_as_one_json_object_on_stderr() {
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("regular-file");
    std::fs::write(&file, "not a store").unwrap();
    let f = arg(&file);
    let cases: Vec<(Vec<&str>, &[u8], i32)> = vec![
        (vec!["put", f, "k", "v"], b"", 3),
        (vec!["get", f, "k"], b"", 3),
        (vec!["del", f, "k"], b"", 3),
        (vec!["scan", f], b"", 3),
        (
            vec!["apply", f],
            br#"{"op":"put","key":"a","value":"1"}"#,
            3,
        ),
        (vec!["verify", f], b"", 3),
        (vec!["dump", f], b"", 3),
        (vec!["stats", f], b"", 3),
        (vec!["repair", f], b"", 3),
        (vec!["upgrade", f], b"", 3),
        (vec!["checkpoint", f], b"", 3),
        (vec!["export", f], b"", 3),
        (vec!["import", f], EXPORT_DOC, 3),
        (vec!["import", f], b"not json", 65),
        (vec!["snapshot", "create", f, "s"], b"", 3),
        (vec!["snapshot", "list", f], b"", 3),
        (vec!["snapshot", "restore", f, "s"], b"", 3),
        (vec!["snapshot", "delete", f, "s"], b"", 3),
        (vec!["snapshot", "create", f, "../bad"], b"", 64),
        (vec!["demo", f], b"", 3),
        (vec!["put", f], b"", 64),
    ];
    for (args, stdin, expected) in cases {
        let output = expect_json_code(&args, stdin, expected);
        let error = json_error(&output);
        assert!(stdout(&output).is_empty(), "{args:?}: {}", stdout(&output));
        if expected == 3 {
            assert_eq!(error["path"], f, "{args:?}: {error}");
        }
    }
    // A missing key is exit 1, as before, and a JSON error too.
    let dir = tmp.path().join("store");
    expect_code(&["put", arg(&dir), "k", "v"], 0);
    let absent = expect_json_code(&["get", arg(&dir), "missing"], b"", 1);
    let error = json_error(&absent);
    assert!(
        error["error"].as_str().unwrap().contains("absent"),
        "{error}"
    );
}

#[test]
fn demo_with_json_prints_one_summary_and_says_why_it_recovers_past_the_acks() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("demo");
    let output = expect_json_code(&["demo", arg(&dir)], b"", 0);
    let summary = json(&output);
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["marker_lsn"], 1, "{summary}");
    let acked = summary["acknowledged"].as_u64().unwrap();
    let in_flight = summary["durable_not_acknowledged"].as_u64().unwrap();
    assert_eq!(
        summary["recovered_lsn"].as_u64().unwrap(),
        1 + acked + in_flight,
        "{summary}"
    );
    // The text demo explains the difference between acks and the recovered LSN.
    let text = expect_code(&["demo", arg(&dir)], 0);
    let text = stdout(&text);
    assert!(text.contains("LSN 1 is the demo's marker key"), "{text}");
    assert!(text.contains("in flight at the kill"), "{text}");
    assert!(
        text.contains("durable on disk but not yet acknowledged"),
        "{text}"
    );
}

#[test]
fn os_errors_name_the_file_and_say_what_to_do_next() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("store");
    let segs = build_store(&dir, 3);
    // A directory where a segment belongs: was "Is a directory (os error 21)" alone.
    std::fs::remove_file(&segs[0]).unwrap();
    std::fs::create_dir(&segs[0]).unwrap();
    for args in [
        vec!["get", arg(&dir), "k"],
        vec!["verify", arg(&dir)],
        vec!["dump", arg(&dir)],
        vec!["stats", arg(&dir)],
        vec!["put", arg(&dir), "k", "v"],
    ] {
        let output = expect_code(&args, 3);
        let text = stderr(&output);
        assert!(text.contains(arg(&segs[0])), "{args:?}: {text}");
        let next = next_line(&output);
        assert!(names_command_or_action(&next), "{args:?}: {next}");
    }
    let next = next_line(&walstate(&["get", arg(&dir), "k"]));
    assert!(
        next.contains("is a directory where walstate expects a file"),
        "{next}"
    );

    // A path through a regular file, and a regular file given as DIR.
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let through = file.join("store");
    for args in [
        vec!["put", arg(&through), "k", "v"],
        vec!["dump", arg(&file)],
        vec!["stats", arg(&file)],
        vec!["snapshot", "list", arg(&file)],
    ] {
        let output = expect_code(&args, 3);
        let text = stderr(&output);
        assert!(
            text.contains(arg(&through)) || text.contains(arg(&file)),
            "{args:?}: {text}"
        );
        assert!(
            names_command_or_action(&next_line(&output)),
            "{args:?}: {text}"
        );
    }

    // snapshots/ is a file: creating a snapshot names it and what to do.
    let other = tmp.path().join("other");
    build_store(&other, 2);
    std::fs::write(other.join("snapshots"), "x").unwrap();
    let output = expect_code(&["snapshot", "create", arg(&other), "s"], 3);
    assert!(stderr(&output).contains("snapshots"), "{}", stderr(&output));
    assert!(names_command_or_action(&next_line(&output)));

    // stdin is a directory for import.
    let output = Command::new(env!("CARGO_BIN_EXE_walstate"))
        .args(["import", arg(&other)])
        .stdin(std::fs::File::open(tmp.path()).unwrap())
        .output()
        .unwrap();
    assert_eq!(code(&output), 3, "{}", stderr(&output));
    assert!(
        next_line(&output).contains("walstate import"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn verify_and_dump_name_defect_kinds_in_words_not_rust_variants() {
    let variants = [
        "TornTail",
        "Corruption at",
        "StaleRecord",
        "LsnGap",
        "UnsupportedVersion",
        "ForeignFile",
    ];
    let check = |dir: &Path, code: i32, words: &str| {
        for command in ["verify", "dump"] {
            let output = expect_code(&[command, arg(dir)], code);
            let text = format!("{}{}", stdout(&output), stderr(&output));
            assert!(text.contains(words), "{command}: {text}");
            for variant in variants {
                assert!(!text.contains(variant), "{command} shows {variant}: {text}");
            }
        }
    };
    let tmp = TempDir::new().unwrap();
    let torn = tmp.path().join("torn");
    let segs = build_store(&torn, 20);
    let last = segs.last().unwrap();
    let (_, offset, len) = *records_in(last).last().unwrap();
    truncate(last, offset + len - 3);
    check(&torn, 1, "torn tail at offset");

    let corrupt = tmp.path().join("corrupt");
    let segs = build_store(&corrupt, 300);
    let records = records_in(&segs[1]);
    let (_, offset, len) = records[records.len() / 2];
    let mut bytes = std::fs::read(&segs[1]).unwrap();
    bytes[offset + len / 2] ^= 0x10;
    std::fs::write(&segs[1], &bytes).unwrap();
    check(&corrupt, 2, "corruption at offset");
}

#[test]
fn an_invalid_snapshot_name_is_bad_usage_exit_64_and_touches_nothing() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("store");
    build_store(&dir, 2);
    for command in ["create", "restore", "delete"] {
        for name in ["../escape", ".hidden", "with space", ""] {
            let output = expect_code(&["snapshot", command, arg(&dir), name], 64);
            let next = next_line(&output);
            assert!(next.contains("walstate help snapshot"), "{next}");
        }
    }
    assert!(!dir.join("snapshots").exists());
}

#[test]
fn a_directory_holding_only_a_lock_file_is_not_a_store_until_one_is_created_there() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("half-made");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("LOCK"), "pid 1").unwrap();
    let d = arg(&dir);
    for args in [
        vec!["get", d, "k"],
        vec!["scan", d],
        vec!["verify", d],
        vec!["dump", d],
        vec!["stats", d],
        vec!["export", d],
        vec!["snapshot", "list", d],
        vec!["del", d, "k"],
        vec!["checkpoint", d],
    ] {
        let output = expect_code(&args, 3);
        let text = stderr(&output);
        assert!(text.contains("did not finish"), "{args:?}: {text}");
        assert!(
            next_line(&output).contains("walstate put"),
            "{args:?}: {text}"
        );
    }
    // Creating a store there works as in an empty directory.
    let put = expect_code(&["put", d, "k", "v"], 0);
    assert!(
        stderr(&put).contains("created a new store"),
        "{}",
        stderr(&put)
    );
    assert_eq!(stdout(&expect_code(&["get", d, "k"], 0)), "v\n");
}

/// A tmpfs of `size` mounted on a temp directory, unmounted on drop; `None` (with the
/// reason printed) when mounting is not possible here.
struct SmallFs {
    mount_point: TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let mount_point = TempDir::new().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(mount_point.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(SmallFs { mount_point }),
            Ok(output) => {
                println!(
                    "skipped: cannot mount a small tmpfs: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(err) => {
                println!("skipped: cannot run mount: {err}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.mount_point.path()
    }

    /// Fills the file system: a file that grows until ENOSPC.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.write_all(&[0]);
        filler
    }

    fn remount(&self, option: &str) -> bool {
        Command::new("mount")
            .args(["-o", &format!("remount,{option}")])
            .arg(self.path())
            .status()
            .is_ok_and(|status| status.success())
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mount_point.path()).status();
    }
}

#[test]
fn a_store_creation_on_a_full_real_disk_leaves_no_store_and_get_says_so() {
    let Some(fs) = SmallFs::mount("64k") else {
        return;
    };
    let dir = fs.path().join("store");
    let output = expect_code(&["put", arg(&dir), "k", "v"], 3);
    let text = stderr(&output);
    assert!(text.contains("the store was not created"), "{text}");
    assert!(names_command_or_action(&next_line(&output)), "{text}");
    let left: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.iter().all(|name| name == "LOCK"),
        "the failed creation left {left:?}"
    );
    // Was: "key "k" is absent (store at LSN 0)", exit 1.
    let got = expect_code(&["get", arg(&dir), "k"], 3);
    assert!(
        stderr(&got).contains("not a walstate store"),
        "{}",
        stderr(&got)
    );
    expect_code(&["verify", arg(&dir)], 3);
}

#[test]
fn a_full_disk_during_checkpoint_and_snapshot_says_what_was_not_done() {
    let Some(fs) = SmallFs::mount("6m") else {
        return;
    };
    let dir = fs.path().join("store");
    for n in 0..20 {
        expect_code(&["put", arg(&dir), &key(n), &value(n)], 0);
    }
    let filler = fs.fill();
    let checkpoint = expect_code(&["checkpoint", arg(&dir)], 3);
    let text = stderr(&checkpoint);
    assert!(text.contains("the checkpoint was not written"), "{text}");
    assert!(text.contains("the store is unchanged"), "{text}");
    assert!(!text.contains("commit was not made"), "{text}");
    assert!(next_line(&checkpoint).contains("free disk space"), "{text}");
    let snapshot = expect_code(&["snapshot", "create", arg(&dir), "s"], 3);
    let text = stderr(&snapshot);
    assert!(text.contains("the snapshot was not created"), "{text}");
    assert!(!text.contains("commit was not made"), "{text}");
    let json = json_error(&expect_json_code(&["checkpoint", arg(&dir)], b"", 3));
    assert!(
        json["next"].as_str().unwrap().contains("free disk space"),
        "{json}"
    );
    std::fs::remove_file(filler).unwrap();
    expect_code(&["checkpoint", arg(&dir)], 0);
    expect_code(&["snapshot", "create", arg(&dir), "s"], 0);
    assert_eq!(
        stdout(&expect_code(&["get", arg(&dir), &key(7)], 0)),
        format!("{}\n", value(7))
    );
}

#[test]
fn every_error_class_has_a_next_line_naming_a_command_or_action() {
    let tmp = TempDir::new().unwrap();
    let mut classes: Vec<(&str, Output)> = Vec::new();

    let store = tmp.path().join("store");
    build_store(&store, 5);
    let s = arg(&store);
    classes.push((
        "not a store",
        walstate(&["get", arg(&tmp.path().join("typo")), "k"]),
    ));
    classes.push(("missing key", walstate(&["get", s, "no-such-key"])));
    classes.push((
        "bad usage (name)",
        walstate(&["snapshot", "create", s, "../x"]),
    ));
    classes.push(("bad usage (clap)", walstate(&["put", s])));
    classes.push((
        "snapshot not found",
        walstate(&["snapshot", "restore", s, "nope"]),
    ));
    {
        let held = KvStore::open(&store, Options::default().writers(Writers::Exclusive)).unwrap();
        classes.push((
            "locked",
            walstate(&["--lock-wait", "0.2", "put", s, "k", "v"]),
        ));
        drop(held);
    }

    let corrupt = tmp.path().join("corrupt");
    let segs = build_store(&corrupt, 300);
    let records = records_in(&segs[1]);
    let (_, offset, len) = records[records.len() / 2];
    let mut bytes = std::fs::read(&segs[1]).unwrap();
    bytes[offset + len / 2] ^= 0x10;
    std::fs::write(&segs[1], &bytes).unwrap();
    classes.push(("corruption", walstate(&["get", arg(&corrupt), "k"])));

    let typed_dir = tmp.path().join("typed");
    let typed = walstate::Store::<typed::Config>::open(&typed_dir, Options::default()).unwrap();
    typed.apply(typed::Command::SetWorkers(2)).unwrap();
    typed.close().unwrap();
    classes.push((
        "schema mismatch",
        walstate(&["put", arg(&typed_dir), "k", "v"]),
    ));

    let lock_dir = tmp.path().join("lockdir");
    build_store(&lock_dir, 1);
    std::fs::remove_file(lock_dir.join("LOCK")).unwrap();
    std::fs::create_dir(lock_dir.join("LOCK")).unwrap();
    classes.push((
        "lock not a file",
        walstate(&["put", arg(&lock_dir), "k", "v"]),
    ));

    // Permission denied: as root, run walstate as nobody (root ignores modes).
    let private = tmp.path().join("private");
    build_store(&private, 1);
    let denied = if unsafe { libc::geteuid() } == 0 {
        use std::os::unix::process::CommandExt;
        Command::new(env!("CARGO_BIN_EXE_walstate"))
            .args(["put", arg(&private), "k", "v"])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o500)).unwrap();
        let output = walstate(&["put", arg(&private), "k", "v"]);
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        output
    };
    assert!(
        stderr(&denied).contains("permission denied"),
        "{}",
        stderr(&denied)
    );
    classes.push(("permission denied", denied));

    let small = SmallFs::mount("6m");
    if let Some(fs) = &small {
        let dir = fs.path().join("store");
        expect_code(&["put", arg(&dir), "k", "v"], 0);
        let filler = fs.fill();
        classes.push(("disk full", walstate(&["checkpoint", arg(&dir)])));
        std::fs::remove_file(filler).unwrap();
        if fs.remount("ro") {
            let output = walstate(&["put", arg(&dir), "k", "w"]);
            assert!(
                stderr(&output).to_lowercase().contains("read-only"),
                "{}",
                stderr(&output)
            );
            classes.push(("read-only store", output));
        } else {
            println!("skipped the read-only class: cannot remount the tmpfs read-only");
        }
    }

    for (class, output) in &classes {
        assert_ne!(code(output), 0, "{class}: {}", stderr(output));
        let next = next_line(output);
        assert!(names_command_or_action(&next), "{class}: next: {next}");
    }
}
