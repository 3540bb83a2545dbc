//! Damaged stores found by hand that once gave wrong answers: a directory named `LOCK`,
//! a bit-flipped snapshot or restore file, a deleted restore file. Each case runs the
//! `walstate` binary on a real temp directory and checks the verdict, the exit code and
//! that every message names the file and the next step.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;
use walstate::format::{self, SEGMENT_HEADER_LEN, SegmentHeader};

mod common;

fn walstate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_walstate"))
        .args(args)
        .output()
        .expect("run walstate")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs walstate and asserts its exit code, showing its output when it differs.
#[track_caller]
fn expect_code(args: &[&str], expected: i32) -> Output {
    let output = walstate(args);
    assert_eq!(
        output.status.code(),
        Some(expected),
        "walstate {args:?}\nstdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    output
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {}", stdout(output)))
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(path, &bytes).expect("write");
}

/// A store where k1..k3 are put (LSNs 1-3), snapshot `s` taken, k4 put (LSN 4), `s`
/// restored (the restore record is LSN 5, its state in restore-5.ckpt) and k5 put
/// (LSN 6). Returns the restore file.
fn store_with_a_restore(dir: &Path) -> PathBuf {
    let d = arg(dir);
    for n in 1..=3 {
        expect_code(&["put", d, &format!("k{n}"), &format!("v{n}")], 0);
    }
    expect_code(&["snapshot", "create", d, "s"], 0);
    expect_code(&["put", d, "k4", "v4"], 0);
    expect_code(&["snapshot", "restore", d, "s"], 0);
    expect_code(&["put", d, "k5", "v5"], 0);
    let restore = dir.join(format::restore_file_name(5));
    assert!(restore.exists(), "the restore record is not at LSN 5");
    restore
}

#[test]
fn lock_directory_is_a_verify_problem_and_put_refuses_it_naming_the_path_and_the_fix() {
    let tmp = TempDir::new().unwrap();
    let dir = arg(tmp.path());
    expect_code(&["put", dir, "k", "v"], 0);
    let lock = tmp.path().join("LOCK");
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();

    let verified = expect_code(&["verify", dir], 4);
    let text = stdout(&verified);
    assert!(text.contains("not a regular file"), "{text}");
    assert!(text.contains(arg(&lock)), "{text}");
    assert!(text.contains("needs_attention"), "{text}");
    let row = expect_code(&["verify", dir, "--json"], 4);
    let report = json(&row);
    let lock_row = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "lock")
        .expect("a lock row");
    assert_eq!(lock_row["status"], "damaged", "{report:#}");

    for args in [
        vec!["put", dir, "k", "w"],
        vec!["repair", dir],
        vec!["repair", dir, "--salvage", "--dry-run"],
    ] {
        let refused = expect_code(&args, 3);
        let message = stderr(&refused);
        assert!(message.contains(arg(&lock)), "{args:?}: {message}");
        assert!(
            message.contains("not a regular file"),
            "{args:?}: {message}"
        );
        assert!(message.contains("move it"), "{args:?}: {message}");
        assert!(!message.contains("os error"), "{args:?}: {message}");
    }
    // Reading still works, and nothing was changed.
    assert_eq!(stdout(&expect_code(&["get", dir, "k"], 0)), "v\n");
    assert!(lock.is_dir());
}

#[test]
fn damaged_snapshot_is_named_by_verify_marked_by_list_and_refused_by_restore_without_salvage_advice()
 {
    let tmp = TempDir::new().unwrap();
    let dir = arg(tmp.path());
    expect_code(&["put", dir, "k", "1"], 0);
    expect_code(&["snapshot", "create", dir, "bad"], 0);
    expect_code(&["put", dir, "k", "2"], 0);
    expect_code(&["snapshot", "create", dir, "good"], 0);
    let bad = tmp.path().join("snapshots").join("bad.ckpt");
    flip_middle_byte(&bad);

    let verified = expect_code(&["verify", dir], 4);
    let text = stdout(&verified);
    assert!(text.contains("snapshot \"bad\""), "{text}");
    assert!(text.contains("cannot be restored"), "{text}");
    assert!(!text.contains("verdict: clean"), "{text}");
    let report = json(&expect_code(&["verify", dir, "--json"], 4));
    assert_eq!(report["verdict"], "needs_attention");
    let statuses: Vec<(String, String)> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "snapshot")
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    for (path, status) in &statuses {
        let expected = if path.ends_with("bad.ckpt") {
            "damaged"
        } else {
            "ok"
        };
        assert_eq!(status, expected, "{path}");
    }

    let list = json(&expect_code(&["snapshot", "list", dir, "--json"], 0));
    let list = list.as_array().unwrap();
    let bad_entry = list.iter().find(|s| s["name"] == "bad").unwrap();
    let good_entry = list.iter().find(|s| s["name"] == "good").unwrap();
    assert!(bad_entry["damage"].is_string(), "{bad_entry}");
    assert!(good_entry["damage"].is_null(), "{good_entry}");
    let text = stdout(&expect_code(&["snapshot", "list", dir], 0));
    let bad_line = text.lines().find(|l| l.starts_with("bad ")).unwrap();
    let good_line = text.lines().find(|l| l.starts_with("good ")).unwrap();
    assert!(bad_line.contains("DAMAGED"), "{text}");
    assert!(!good_line.contains("DAMAGED"), "{text}");

    let refused = expect_code(&["snapshot", "restore", dir, "bad"], 3);
    let message = stderr(&refused);
    assert!(message.contains("damaged"), "{message}");
    assert!(message.contains("snapshot list"), "{message}");
    assert!(!message.contains("salvage"), "{message}");
    // The store is unchanged, and an intact snapshot still restores.
    assert_eq!(stdout(&expect_code(&["get", dir, "k"], 0)), "2\n");
    expect_code(&["snapshot", "restore", dir, "good"], 0);
    assert_eq!(stdout(&expect_code(&["get", dir, "k"], 0)), "2\n");
}

#[test]
fn damaged_restore_file_the_journal_needs_is_store_damage_naming_the_file() {
    let tmp = TempDir::new().unwrap();
    let restore = store_with_a_restore(tmp.path());
    flip_middle_byte(&restore);
    let report = json(&expect_code(&["verify", arg(tmp.path()), "--json"], 2));
    assert_eq!(report["verdict"], "needs_repair");
    let problems = report["problems"].to_string();
    assert!(
        problems.contains(&format::restore_file_name(5)),
        "{problems}"
    );
    let row = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "restore")
        .expect("a restore row")
        .clone();
    assert_eq!(row["status"], "damaged", "{report:#}");
}

#[test]
fn missing_restore_file_is_corruption_at_the_restore_record_and_salvage_keeps_the_log_before_it() {
    let tmp = TempDir::new().unwrap();
    let dir = arg(tmp.path());
    let restore = store_with_a_restore(tmp.path());
    std::fs::remove_file(&restore).unwrap();
    let segment = tmp.path().join(format::segment_file_name(1));
    let (_, offset, _) = common::records_in(&segment)
        .into_iter()
        .find(|(lsn, _, _)| *lsn == 5)
        .expect("the restore record");

    let verified = expect_code(&["verify", dir], 2);
    let text = stdout(&verified);
    for needle in [
        format!("corruption in {}", arg(&segment)),
        format!("at offset {offset}"),
        "expected LSN 5".to_string(),
        "is missing".to_string(),
    ] {
        assert!(text.contains(&needle), "verify lacks {needle:?}:\n{text}");
    }
    let refused = expect_code(&["get", dir, "k1"], 2);
    assert!(
        stderr(&refused).contains("repair --salvage"),
        "{}",
        stderr(&refused)
    );

    let repaired = expect_code(&["repair", dir, "--salvage"], 0);
    assert!(
        stdout(&repaired).contains("lost LSNs 5..6"),
        "{}",
        stdout(&repaired)
    );
    expect_code(&["verify", dir], 0);
    // The journal before the restore record is kept; the restore and what followed it
    // are in quarantine/, not deleted.
    for n in 1..=4 {
        assert_eq!(
            stdout(&expect_code(&["get", dir, &format!("k{n}")], 0)),
            format!("v{n}\n")
        );
    }
    expect_code(&["get", dir, "k5"], 1);
    let copy = std::fs::read(
        tmp.path()
            .join("quarantine")
            .join(format::segment_file_name(1)),
    )
    .expect("the whole segment is kept in quarantine/");
    assert!(
        records_in_bytes(&copy).contains(&6),
        "LSN 6 is not in the copy"
    );
    expect_code(&["put", dir, "after", "repair"], 0);
}

fn records_in_bytes(bytes: &[u8]) -> Vec<u64> {
    let header = SegmentHeader::decode(bytes).expect("segment header");
    let mut offset = SEGMENT_HEADER_LEN;
    let mut lsns = Vec::new();
    while let Ok(record) = format::decode_record(&bytes[offset..], header.record_payload_max) {
        if !record.is_seal() {
            lsns.push(record.lsn);
        }
        offset += record.frame_len();
    }
    lsns
}

// ---------------------------------------------------------------------------------------
// repair --salvage --dry-run predicts the real run
// ---------------------------------------------------------------------------------------

use std::collections::BTreeMap;

use walstate::io::RealFs;
use walstate::repair::{RepairOptions, RepairReport, repair};
use walstate::{Error, KvStore, Options};

fn kv_options() -> Options {
    Options::default()
        .segment_size_bytes(4096)
        .checkpoint_after_bytes(None)
}

fn put_range(store: &KvStore, lsns: std::ops::RangeInclusive<u64>) {
    for n in lsns {
        store
            .put(
                format!("key{n:05}"),
                format!("value {n} {}", "v".repeat(40)),
            )
            .expect("put");
    }
}

fn files_of(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    found
}

/// Every file under `dir` (recursively) with its bytes: the dry run must change none.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if !path.ends_with("LOCK") {
                found.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

/// Flips a bit in the middle of the middle record of a segment.
fn flip_a_record(segment: &Path) {
    let records = common::records_in(segment);
    let (_, offset, _) = records[records.len() / 2];
    let mut bytes = std::fs::read(segment).unwrap();
    bytes[offset + 20] ^= 0x04;
    std::fs::write(segment, &bytes).unwrap();
}

/// 300 puts in 4 KiB segments, no checkpoint.
fn journal_only(dir: &Path) {
    let store = KvStore::open(dir, kv_options()).unwrap();
    put_range(&store, 1..=300);
    store.close().unwrap();
}

/// 300 puts with checkpoints at LSN 100 and 200; the segments they cover are deleted,
/// so the journal no longer reaches back to LSN 1.
fn with_two_checkpoints(dir: &Path) {
    let store = KvStore::open(dir, kv_options()).unwrap();
    put_range(&store, 1..=100);
    store.checkpoint().unwrap();
    put_range(&store, 101..=200);
    store.checkpoint().unwrap();
    put_range(&store, 201..=300);
    store.close().unwrap();
    assert_eq!(files_of(dir, ".ckpt").len(), 2);
    assert!(
        !dir.join(format::segment_file_name(1)).exists(),
        "the checkpoints should have deleted the first segment"
    );
}

/// Old segments a checkpoint covers are back (a crash while deleting them), and one of
/// them has a flipped bit: salvage moves them aside and loses nothing.
fn covered_segment_flipped(dir: &Path) {
    let store = KvStore::open(dir, kv_options()).unwrap();
    put_range(&store, 1..=200);
    store.sync().unwrap();
    let saved: Vec<(PathBuf, Vec<u8>)> = files_of(dir, ".seg")
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    store.checkpoint().unwrap();
    put_range(&store, 201..=300);
    store.close().unwrap();
    for (path, bytes) in &saved {
        if !path.exists() {
            std::fs::write(path, bytes).unwrap();
        }
    }
    flip_a_record(&saved[0].0);
}

/// A named way to damage a store.
type DamageCase = (&'static str, fn(&Path));

fn damaged_cases() -> Vec<DamageCase> {
    vec![
        ("a bit flip in a segment that is not last", |dir| {
            journal_only(dir);
            flip_a_record(&files_of(dir, ".seg")[1]);
        }),
        ("a missing segment in the middle", |dir| {
            journal_only(dir);
            std::fs::remove_file(&files_of(dir, ".seg")[2]).unwrap();
        }),
        ("a bit flip in the newest checkpoint", |dir| {
            with_two_checkpoints(dir);
            flip_middle_byte(&files_of(dir, ".ckpt")[1]);
        }),
        ("a bit flip in the oldest checkpoint", |dir| {
            with_two_checkpoints(dir);
            flip_middle_byte(&files_of(dir, ".ckpt")[0]);
        }),
        (
            "both checkpoints flipped, journal not reaching LSN 1",
            |dir| {
                with_two_checkpoints(dir);
                for checkpoint in files_of(dir, ".ckpt") {
                    flip_middle_byte(&checkpoint);
                }
            },
        ),
        (
            "a flipped bit in a segment the checkpoint covers",
            covered_segment_flipped,
        ),
        ("a deleted restore file", |dir| {
            store_with_a_restore(dir);
            std::fs::remove_file(dir.join(format::restore_file_name(5))).unwrap();
        }),
    ]
}

fn run(dir: &Path, dry_run: bool) -> Result<RepairReport, Error> {
    repair(
        &RealFs,
        dir,
        RepairOptions {
            salvage: true,
            dry_run,
            lock_timeout: None,
        },
    )
}

#[test]
fn salvage_dry_run_lists_exactly_what_the_real_run_then_does_and_refuses_what_it_refuses() {
    for (name, damage) in damaged_cases() {
        let tmp = TempDir::new().unwrap();
        damage(tmp.path());
        let before = tree(tmp.path());
        let dry = run(tmp.path(), true);
        assert_eq!(
            tree(tmp.path()),
            before,
            "{name}: the dry run changed files"
        );
        let real = run(tmp.path(), false);
        match (dry, real) {
            (Ok(dry), Ok(real)) => {
                assert!(dry.dry_run && !real.dry_run);
                assert!(!real.actions.is_empty(), "{name}: nothing was repaired");
                assert_eq!(dry.actions, real.actions, "{name}");
                for action in &real.actions {
                    assert!(
                        !action.contains("(unknown)") && !action.contains("lost LSNs 0.."),
                        "{name}: {action}"
                    );
                }
                let after = walstate::verify::verify(&RealFs, tmp.path()).unwrap();
                assert_eq!(
                    after.verdict,
                    walstate::verify::Verdict::Clean,
                    "{name}: {:?}",
                    after.problems
                );
            }
            (Err(dry), Err(real)) => {
                assert_eq!(dry.to_string(), real.to_string(), "{name}");
                assert_eq!(
                    tree(tmp.path()),
                    before,
                    "{name}: a refused run changed files"
                );
            }
            (dry, real) => panic!(
                "{name}: the dry run and the real run disagree:\ndry: {dry:?}\nreal: {real:?}"
            ),
        }
    }
}

#[test]
fn salvage_without_a_state_base_is_refused_by_dry_and_real_run_saying_salvage_cannot_help() {
    let tmp = TempDir::new().unwrap();
    with_two_checkpoints(tmp.path());
    for checkpoint in files_of(tmp.path(), ".ckpt") {
        flip_middle_byte(&checkpoint);
    }
    for dry_run in [true, false] {
        let err = run(tmp.path(), dry_run).expect_err("no state can be rebuilt");
        assert!(matches!(err, Error::NoStateBase { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("cannot help"), "{message}");
        assert!(message.contains("checkpoint-"), "{message}");
    }
    let verified = expect_code(&["verify", arg(tmp.path())], 4);
    assert!(
        !stdout(&verified).contains("needs_repair"),
        "{}",
        stdout(&verified)
    );
    expect_code(&["repair", arg(tmp.path()), "--salvage", "--dry-run"], 4);
    expect_code(&["repair", arg(tmp.path()), "--salvage"], 4);
}

#[test]
fn salvage_of_segments_a_checkpoint_covers_reports_nothing_lost() {
    let tmp = TempDir::new().unwrap();
    covered_segment_flipped(tmp.path());
    let report = run(tmp.path(), false).expect("salvage");
    let salvaged: Vec<&String> = report
        .actions
        .iter()
        .filter(|a| a.starts_with("salvaged"))
        .collect();
    assert!(!salvaged.is_empty(), "{:?}", report.actions);
    for action in salvaged {
        assert!(action.contains("nothing lost"), "{action}");
        assert!(!action.contains("lost LSNs"), "{action}");
    }
}
