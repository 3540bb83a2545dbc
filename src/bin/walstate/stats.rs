//! `stats`: how big the store is, what it holds, and how long opening it would take.
//!
//! The replay estimate is measured, not assumed: stats loads the newest checkpoint and
//! scans the whole journal, decoding and applying key-value commands to a scratch state
//! (what open does), then scales that speed to the journal bytes after the checkpoint.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use walstate::checkpoint::{SnapshotInfo, list_checkpoints, list_snapshots};
use walstate::error::human_bytes;
use walstate::format::RECORD_KIND_COMMAND;
use walstate::io::RealFs;
use walstate::journal::{self, ScanOptions};
use walstate::recovery::QUARANTINE_DIR_NAME;
use walstate::writer_stats::{self, WRITER_STATS_FILE_NAME};
use walstate::{KvCommand, KvState, StateMachine, codec, format};

use crate::output::{self, Failure};
use crate::{CliResult, exit};

/// Sizes, record counts, LSN range, checkpoints, snapshots, estimated replay time.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  walstate stats ./data\n\n\
    The replay estimate is measured: stats scans the whole journal (checksums and command \
    decoding, what open does) and loads the newest checkpoint, then scales the measured \
    speed to the journal bytes after that checkpoint. Read-only; works while a writer runs.\n\n\
    It also compares the journal bytes after the newest checkpoint with the checkpoint \
    trigger (32 MiB, the library default, which put, del, import and apply evaluate before they \
    exit) and says \"checkpoint overdue: run `walstate checkpoint DIR`\" once past it \
    (--json: checkpoint_trigger_bytes, checkpoint_overdue).")]
pub(crate) struct Args {
    /// Store directory.
    pub(crate) dir: PathBuf,
}

#[derive(Serialize)]
struct Stats {
    dir: PathBuf,
    /// The schema the store is written with now, described.
    schema: String,
    /// Every file under the directory (snapshots and quarantine included).
    total_files: u64,
    total_bytes: u64,
    segments: SegmentStats,
    checkpoints: Vec<CheckpointStats>,
    snapshots: Vec<SnapshotInfo>,
    quarantine_files: u64,
    quarantine_bytes: u64,
    /// LSN of the newest valid checkpoint (0: none; replay starts from the empty state).
    newest_checkpoint_lsn: u64,
    records_since_checkpoint: u64,
    journal_bytes_since_checkpoint: u64,
    /// The checkpoint trigger the CLI's writing commands use (`Options::checkpoint_after_bytes`,
    /// the library default): journal bytes since the last checkpoint past which one is
    /// due. An application may open the store with another.
    checkpoint_trigger_bytes: Option<u64>,
    /// `journal_bytes_since_checkpoint` has reached the trigger: run `walstate checkpoint DIR`.
    checkpoint_overdue: bool,
    replay: ReplayEstimate,
    /// The first journal defect, worded as `verify` words it.
    defect: Option<String>,
    /// What the last writer that recorded its journal counters saw (`WRITER-STATS`;
    /// services record them after each checkpoint and at close, the CLI's short commands
    /// do not). `None` when no writer recorded any.
    last_writer: Option<LastWriter>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum LastWriter {
    Recorded(Box<RecordedWriter>),
    Unreadable { unreadable: String },
}

#[derive(Serialize)]
struct RecordedWriter {
    pid: u32,
    written_unix_ms: u64,
    /// Seconds between the recording and this `stats` run.
    seconds_ago: u64,
    /// Counters since that writer opened the store.
    records: u64,
    bytes: u64,
    fdatasyncs: u64,
    batches: u64,
    /// fdatasync latency percentiles, microseconds (upper bounds of power-of-two
    /// buckets).
    fsync_p50_micros: Option<u64>,
    fsync_p99_micros: Option<u64>,
    fsync_max_micros: Option<u64>,
    /// Records made durable together by one group commit.
    group_p50_records: Option<u64>,
    group_p99_records: Option<u64>,
}

fn last_writer(dir: &Path) -> Option<LastWriter> {
    let store_id = walstate::journal::identity::read(&RealFs, dir)
        .ok()
        .and_then(|identity| identity.valid())
        .map(|identity| identity.store_id);
    let recorded = match writer_stats::read(&RealFs, dir, store_id)? {
        Ok(recorded) => recorded,
        Err(why) => {
            return Some(LastWriter::Unreadable {
                unreadable: format!("{WRITER_STATS_FILE_NAME} {why}"),
            });
        }
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let journal = recorded.journal;
    Some(LastWriter::Recorded(Box::new(RecordedWriter {
        pid: recorded.pid,
        written_unix_ms: recorded.written_unix_ms,
        seconds_ago: now_ms.saturating_sub(recorded.written_unix_ms) / 1000,
        records: journal.records,
        bytes: journal.bytes,
        fdatasyncs: journal.syncs,
        batches: journal.batches,
        fsync_p50_micros: journal.fsync_micros.percentile(0.5),
        fsync_p99_micros: journal.fsync_micros.percentile(0.99),
        fsync_max_micros: journal.fsync_micros.percentile(1.0),
        group_p50_records: journal.records_per_group.percentile(0.5),
        group_p99_records: journal.records_per_group.percentile(0.99),
    })))
}

#[derive(Serialize)]
struct SegmentStats {
    count: u64,
    bytes: u64,
    records: u64,
    /// Records whose payload decodes as a key-value command.
    kv_commands: u64,
    first_lsn: Option<u64>,
    last_lsn: Option<u64>,
}

#[derive(Serialize)]
struct CheckpointStats {
    path: PathBuf,
    lsn: u64,
    bytes: u64,
    valid: bool,
}

#[derive(Serialize)]
struct ReplayEstimate {
    checkpoint_load_ms: f64,
    /// Scan + decode + apply speed measured over `measured_bytes` of journal.
    measured_mib_per_s: f64,
    measured_bytes: u64,
    estimated_replay_ms: f64,
}

/// `walstate stats DIR [--json]`.
pub(crate) fn run(dir: &Path, as_json: bool) -> CliResult {
    output::ensure_store(dir)?;
    let stats = collect(dir)?;
    if as_json {
        output::print_json(&stats)?;
    } else {
        print_text(&stats)?;
    }
    Ok(exit::OK)
}

fn collect(dir: &Path) -> Result<Stats, Failure> {
    let (total_files, total_bytes) = tree_size(dir);
    let (quarantine_files, quarantine_bytes) = tree_size(&dir.join(QUARANTINE_DIR_NAME));

    let mut checkpoints = Vec::new();
    let mut newest_valid: Option<(u64, PathBuf)> = None;
    for file in list_checkpoints(&RealFs, dir)? {
        let bytes = std::fs::read(&file.path).unwrap_or_default();
        let valid = format::decode_checkpoint(&bytes).is_ok_and(|(h, _)| h.lsn == file.lsn);
        if valid {
            newest_valid = Some((file.lsn, file.path.clone()));
        }
        checkpoints.push(CheckpointStats {
            path: file.path,
            lsn: file.lsn,
            bytes: bytes.len() as u64,
            valid,
        });
    }
    let newest_checkpoint_lsn = newest_valid.as_ref().map_or(0, |(lsn, _)| *lsn);
    let spinner = output::spinner("loading the newest checkpoint");
    let checkpoint_load_ms = newest_valid
        .as_ref()
        .map_or(0.0, |(_, path)| time_checkpoint_load(path));
    output::finish(spinner);

    let segment_files = journal::list_segments(&RealFs, dir)?;
    let scan_from = segment_files
        .first()
        .and_then(|s| std::fs::read(&s.path).ok())
        .and_then(|bytes| format::SegmentHeader::decode(&bytes).ok())
        .map_or(1, |h| h.first_lsn.max(1));
    let mut segments = SegmentStats {
        count: segment_files.len() as u64,
        bytes: segment_files
            .iter()
            .filter_map(|s| std::fs::metadata(&s.path).ok())
            .map(|m| m.len())
            .sum(),
        records: 0,
        kv_commands: 0,
        first_lsn: None,
        last_lsn: None,
    };
    let mut records_since_checkpoint = 0;
    let mut journal_bytes_since_checkpoint = 0;
    let mut scanned_bytes = 0;
    let mut scratch = KvState::new();
    let bar = output::progress_bar(segments.bytes, "measuring the journal");
    let started = Instant::now();
    let outcome = journal::scan(
        &RealFs,
        dir,
        ScanOptions {
            from_lsn: scan_from,
            may_map: false,
        },
        |group, _| {
            for record in group {
                let frame = record.frame_len() as u64;
                segments.records += 1;
                segments.first_lsn.get_or_insert(record.lsn);
                segments.last_lsn = Some(record.lsn);
                scanned_bytes += frame;
                if let Some(bar) = &bar {
                    bar.inc(frame);
                }
                if record.lsn > newest_checkpoint_lsn {
                    records_since_checkpoint += 1;
                    journal_bytes_since_checkpoint += frame;
                }
                if record.kind == RECORD_KIND_COMMAND
                    && let Ok(command) = codec::decode::<KvCommand>(record.payload)
                {
                    segments.kv_commands += 1;
                    let _ = scratch.apply(&command);
                }
            }
            Ok(())
        },
    );
    let scan_secs = started.elapsed().as_secs_f64();
    output::finish(bar);
    let outcome = outcome?;
    let measured_mib_per_s = if scan_secs > 0.0 {
        scanned_bytes as f64 / (1024.0 * 1024.0) / scan_secs
    } else {
        0.0
    };
    let replay_journal_ms = if measured_mib_per_s > 0.0 {
        journal_bytes_since_checkpoint as f64 / (1024.0 * 1024.0) / measured_mib_per_s * 1000.0
    } else {
        0.0
    };
    let checkpoint_trigger_bytes = output::cli_options().checkpoint_trigger_bytes();
    let defect = outcome.defect.as_ref().map(|d| {
        format!(
            "{} at offset {} of {} (expected LSN {}): {}",
            d.kind.describe(),
            d.offset,
            d.path.display(),
            d.expected_lsn,
            d.detail
        )
    });
    Ok(Stats {
        dir: dir.to_path_buf(),
        schema: walstate::schema::describe_store_schema(&RealFs, dir)?,
        total_files,
        total_bytes,
        segments,
        checkpoints,
        snapshots: list_snapshots(&RealFs, dir)?,
        quarantine_files,
        quarantine_bytes,
        newest_checkpoint_lsn,
        records_since_checkpoint,
        journal_bytes_since_checkpoint,
        checkpoint_trigger_bytes,
        checkpoint_overdue: checkpoint_trigger_bytes
            .is_some_and(|trigger| journal_bytes_since_checkpoint >= trigger),
        replay: ReplayEstimate {
            checkpoint_load_ms,
            measured_mib_per_s,
            measured_bytes: scanned_bytes,
            estimated_replay_ms: checkpoint_load_ms + replay_journal_ms,
        },
        defect,
        last_writer: last_writer(dir),
    })
}

/// Milliseconds to read, verify and decode a checkpoint (as a key-value state; a
/// failed decode still shows the read + checksum cost).
fn time_checkpoint_load(path: &Path) -> f64 {
    let started = Instant::now();
    if let Ok(bytes) = std::fs::read(path)
        && let Ok((_, state)) = format::decode_checkpoint(&bytes)
    {
        let _ = codec::decode::<KvState>(state);
    }
    started.elapsed().as_secs_f64() * 1000.0
}

/// (files, bytes) of everything under `dir`; 0 when it does not exist.
fn tree_size(dir: &Path) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let mut files = 0;
    let mut bytes = 0;
    for entry in entries.flatten() {
        match entry.metadata() {
            Ok(meta) if meta.is_dir() => {
                let (f, b) = tree_size(&entry.path());
                files += f;
                bytes += b;
            }
            Ok(meta) => {
                files += 1;
                bytes += meta.len();
            }
            Err(_) => {}
        }
    }
    (files, bytes)
}

fn print_text(stats: &Stats) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    let dir = &stats.dir;
    let lsns = match (stats.segments.first_lsn, stats.segments.last_lsn) {
        (Some(a), Some(b)) => format!("LSNs {a}..{b}"),
        _ => "no records".into(),
    };
    writeln!(out, "store {}", dir.display())?;
    writeln!(out, "  schema           {}", stats.schema)?;
    writeln!(
        out,
        "  files            {} file(s), {} in total",
        stats.total_files,
        human_bytes(stats.total_bytes)
    )?;
    writeln!(
        out,
        "  segments         {} ({}), {} record(s) ({} key-value command(s)), {lsns}",
        stats.segments.count,
        human_bytes(stats.segments.bytes),
        stats.segments.records,
        stats.segments.kv_commands
    )?;
    if stats.checkpoints.is_empty() {
        writeln!(out, "  checkpoints      none")?;
    }
    for checkpoint in &stats.checkpoints {
        writeln!(
            out,
            "  checkpoint       {}  LSN {}  {}{}",
            output::short_path(dir, &checkpoint.path),
            checkpoint.lsn,
            human_bytes(checkpoint.bytes),
            if checkpoint.valid { "" } else { "  (DAMAGED)" }
        )?;
    }
    if stats.snapshots.is_empty() {
        writeln!(out, "  snapshots        none")?;
    }
    for snapshot in &stats.snapshots {
        writeln!(
            out,
            "  snapshot         {}  LSN {}  {}",
            snapshot.name,
            snapshot.lsn,
            human_bytes(snapshot.bytes)
        )?;
    }
    if stats.quarantine_files > 0 {
        writeln!(
            out,
            "  quarantine       {} file(s), {} (set aside by repair --salvage)",
            stats.quarantine_files,
            human_bytes(stats.quarantine_bytes)
        )?;
    }
    writeln!(
        out,
        "  since checkpoint {} record(s), {} of journal after LSN {}",
        stats.records_since_checkpoint,
        human_bytes(stats.journal_bytes_since_checkpoint),
        stats.newest_checkpoint_lsn
    )?;
    match stats.checkpoint_trigger_bytes {
        Some(trigger) if stats.checkpoint_overdue => writeln!(
            out,
            "  checkpoint overdue: run `walstate checkpoint {}` ({} of journal since the last, trigger {})",
            dir.display(),
            human_bytes(stats.journal_bytes_since_checkpoint),
            human_bytes(trigger)
        )?,
        Some(trigger) => writeln!(
            out,
            "  checkpoint due   after {} of journal (the default trigger; {} so far, {:.0}%)",
            human_bytes(trigger),
            human_bytes(stats.journal_bytes_since_checkpoint),
            stats.journal_bytes_since_checkpoint as f64 * 100.0 / trigger as f64
        )?,
        None => writeln!(out, "  checkpoint due   never (no trigger)")?,
    }
    let replay = &stats.replay;
    writeln!(
        out,
        "  replay estimate  {:.1} ms (checkpoint load {:.1} ms + journal at {:.1} MiB/s, measured over {})",
        replay.estimated_replay_ms,
        replay.checkpoint_load_ms,
        replay.measured_mib_per_s,
        human_bytes(replay.measured_bytes)
    )?;
    if let Some(defect) = &stats.defect {
        writeln!(
            out,
            "  defect           {defect}; run `walstate verify {}`",
            dir.display()
        )?;
    }
    print_last_writer(&mut out, stats.last_writer.as_ref())?;
    out.flush()?;
    Ok(())
}

/// The `last writer` lines: whose counters, how old, fdatasync latency and group sizes.
fn print_last_writer(out: &mut impl Write, last: Option<&LastWriter>) -> std::io::Result<()> {
    let micros = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| format!("{v} µs"));
    let count = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| v.to_string());
    match last {
        None => writeln!(
            out,
            "  last writer      none recorded (a service records its fdatasync latencies after each checkpoint and at close)"
        ),
        Some(LastWriter::Unreadable { unreadable }) => {
            writeln!(out, "  last writer      not shown: {unreadable}")
        }
        Some(LastWriter::Recorded(w)) => {
            writeln!(
                out,
                "  last writer      pid {}, recorded {} s ago: {} record(s), {} in {} fdatasync(s), {} group commit(s)",
                w.pid,
                w.seconds_ago,
                w.records,
                human_bytes(w.bytes),
                w.fdatasyncs,
                w.batches
            )?;
            writeln!(
                out,
                "  fdatasync        p50 ≤ {}, p99 ≤ {}, max ≤ {}",
                micros(w.fsync_p50_micros),
                micros(w.fsync_p99_micros),
                micros(w.fsync_max_micros)
            )?;
            writeln!(
                out,
                "  group size       p50 ≤ {} record(s), p99 ≤ {}",
                count(w.group_p50_records),
                count(w.group_p99_records)
            )
        }
    }
}
