//! `dump`: every record still in the journal, with where it lives and what it says.
//! Scans from the oldest segment (not the checkpoint), so records a checkpoint already
//! covers are shown too; stops at the first defect like open does.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use walstate::error::{SHOW_BYTES_MAX, ShowBytes, ShowValue};
use walstate::format::{RecordKind, RecordView, RestoreMarker, SEGMENT_HEADER_LEN, SegmentHeader};
use walstate::io::RealFs;
use walstate::journal::{self, Defect, DefectKind, ScanOptions};
use walstate::{Error, KvCommand, codec};

use crate::output;
use crate::{CliResult, exit};

/// Print every journal record: LSN, file, offset, length, kind, decoded command.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Prints every record still in the journal segments (including records a \
        checkpoint already covers): LSN, file, byte offset, frame length, kind, and the \
        decoded key-value command (other payloads as hex). Stops at the first defect and \
        reports it with the same wording as `verify`. Read-only; works on a store of any \
        state type and while a writer runs.",
    after_help = "Examples:\n  walstate dump ./data --from 100 --to 120\n  \
        walstate dump ./data --json | jq '.records[] | select(.command.op == \"del\")'\n\n\
        --json streams one document {\"records\":[...],\"defect\":...}; each decoded command \
        uses the `apply` input format.\n\n\
        Exit codes: 0 no defect; 1 a torn tail (open truncates it); 2 corruption or a gap \
        (run `walstate repair --salvage DIR`); 3 not a store / I/O."
)]
pub(crate) struct Args {
    /// Store directory.
    pub(crate) dir: PathBuf,
    /// First LSN to print.
    #[arg(long)]
    pub(crate) from: Option<u64>,
    /// Last LSN to print.
    #[arg(long)]
    pub(crate) to: Option<u64>,
}

/// `walstate dump DIR [--from LSN] [--to LSN] [--json]`.
pub(crate) fn run(dir: &Path, from: Option<u64>, to: Option<u64>, as_json: bool) -> CliResult {
    output::ensure_store(dir)?;
    let schema = walstate::schema::describe_store_schema(&RealFs, dir)?;
    let segments = journal::list_segments(&RealFs, dir)?;
    let scan_from = segments
        .first()
        .and_then(|segment| first_lsn_of(&segment.path))
        .unwrap_or(1)
        .max(1);
    let total_bytes: u64 = segments
        .iter()
        .filter_map(|s| std::fs::metadata(&s.path).ok())
        .map(|m| m.len())
        .sum();
    let from = from.unwrap_or(0);
    let to = to.unwrap_or(u64::MAX);

    // A bar would interleave with the records on a terminal: only when they go elsewhere.
    let bar = if io::stdout().is_terminal() {
        None
    } else {
        output::progress_bar(total_bytes, "dumping")
    };
    let mut out = BufWriter::new(io::stdout().lock());
    if as_json {
        write!(out, "{{\"dir\":{},\"records\":[", json!(dir))?;
    } else {
        writeln!(
            out,
            "{:>8}  {:<28}  {:>10}  {:>8}  {:<8}  RECORD",
            "LSN", "FILE", "OFFSET", "BYTES", "KIND"
        )?;
    }
    let mut printed: u64 = 0;
    let scanned = journal::scan(
        &RealFs,
        dir,
        ScanOptions {
            from_lsn: scan_from,
            may_map: false,
        },
        |group, position| {
            let mut offset = position.offset;
            let batch = (group.len() > 1).then(|| {
                (
                    group[0].lsn,
                    group[group.len() - 1].lsn, // ok: group.len() > 1
                )
            });
            for record in group {
                let frame_bytes = record.frame_len() as u64;
                if (from..=to).contains(&record.lsn) {
                    let shown = Shown {
                        file: output::short_path(dir, position.path),
                        offset,
                        record,
                        batch,
                    };
                    let written = if as_json {
                        let sep = if printed == 0 { "" } else { "," };
                        write!(out, "{sep}\n{}", shown.to_json())
                    } else {
                        writeln!(out, "{}", shown.to_text())
                    };
                    written.map_err(|err| Error::io("write to stdout", "-", err))?;
                    printed += 1;
                }
                offset += frame_bytes;
                if let Some(bar) = &bar {
                    bar.inc(frame_bytes);
                }
            }
            Ok(())
        },
    );
    output::finish(bar);
    let outcome = scanned?;
    let defect_text = outcome.defect.as_ref().map(|d| describe_defect(dir, d));
    if as_json {
        let defect = match (&outcome.defect, &defect_text) {
            (Some(defect), Some((row, message))) => json!({
                "kind": output::serde_name(&defect.kind),
                "path": defect.path,
                "offset": defect.offset,
                "expected_lsn": defect.expected_lsn,
                "detail": row,
                "message": message,
            }),
            _ => Value::Null,
        };
        writeln!(
            out,
            "\n],\"records_printed\":{printed},\"defect\":{defect},\"unscanned_segments\":{},\"schema\":{}}}",
            json!(outcome.unscanned_segments),
            json!(schema)
        )?;
    } else {
        writeln!(out, "{printed} record(s)")?;
        writeln!(out, "schema: {schema}")?;
        if let Some((row, message)) = &defect_text {
            writeln!(out, "defect: {row}")?;
            writeln!(out, "problem: {message}")?;
            for path in &outcome.unscanned_segments {
                writeln!(
                    out,
                    "not dumped (after the defect): {}",
                    output::short_path(dir, path)
                )?;
            }
        }
    }
    out.flush()?;
    Ok(match outcome.defect.map(|d| d.kind) {
        None => exit::OK,
        Some(DefectKind::TornTail) => exit::REPAIRED_BY_OPEN,
        Some(DefectKind::UnsupportedVersion) => exit::FAILURE,
        Some(_) => exit::NEEDS_REPAIR,
    })
}

/// The defect as `verify` words it: (the detail of its table row, the problem line).
fn describe_defect(dir: &Path, defect: &Defect) -> (String, String) {
    let row = defect.row_detail();
    let message = if defect.kind.is_torn_tail() {
        format!(
            "torn tail in {} at offset {}: {}; open truncates it (`walstate repair {}` does it now)",
            defect.path.display(),
            defect.offset,
            defect.detail,
            dir.display()
        )
    } else {
        defect.to_error().to_string()
    };
    (row, message)
}

/// The first LSN in a segment header, if the header is readable.
fn first_lsn_of(path: &Path) -> Option<u64> {
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    File::open(path).ok()?.read_exact(&mut header).ok()?;
    SegmentHeader::decode(&header).ok().map(|h| h.first_lsn)
}

/// One record and where it lives.
struct Shown<'a> {
    file: String,
    offset: u64,
    record: &'a RecordView<'a>,
    /// First and last LSN of its atomic group, when the group has several records.
    batch: Option<(u64, u64)>,
}

impl Shown<'_> {
    fn kind_name(&self) -> String {
        match self.record.record_kind() {
            Some(kind @ (RecordKind::Command | RecordKind::Restore)) => kind.name().into(),
            // The scan consumes version-2 seals; a kind-3 record it delivers is of a
            // version-1 segment, where 3 was never assigned.
            Some(RecordKind::Seal) | None => format!("kind-{}", self.record.kind),
        }
    }

    fn to_text(&self) -> String {
        let body = match self.record.record_kind() {
            Some(RecordKind::Command) => match codec::decode::<KvCommand>(self.record.payload) {
                Ok(command) => command_text(&command),
                Err(_) => hex_text(self.record.payload),
            },
            Some(RecordKind::Restore) => {
                match codec::decode::<RestoreMarker>(self.record.payload) {
                    Ok(marker) => format!(
                        "restore snapshot {:?} (its state is of LSN {})",
                        marker.snapshot, marker.snapshot_lsn
                    ),
                    Err(_) => hex_text(self.record.payload),
                }
            }
            _ => hex_text(self.record.payload),
        };
        let batch = self
            .batch
            .map_or(String::new(), |(a, b)| format!("  [batch {a}..{b}]"));
        format!(
            "{:>8}  {:<28}  {:>10}  {:>8}  {:<8}  {body}{batch}",
            self.record.lsn,
            self.file,
            self.offset,
            self.record.frame_len(),
            self.kind_name()
        )
    }

    fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("lsn".into(), self.record.lsn.into());
        map.insert("file".into(), self.file.clone().into());
        map.insert("offset".into(), self.offset.into());
        map.insert(
            "frame_bytes".into(),
            (self.record.frame_len() as u64).into(),
        );
        map.insert(
            "payload_bytes".into(),
            (self.record.payload.len() as u64).into(),
        );
        map.insert("kind".into(), self.kind_name().into());
        map.insert(
            "batch".into(),
            self.batch.map_or(Value::Null, |(a, b)| json!([a, b])),
        );
        let decoded = match self.record.record_kind() {
            Some(RecordKind::Command) => codec::decode::<KvCommand>(self.record.payload)
                .ok()
                .map(|c| ("command", command_json(&c))),
            Some(RecordKind::Restore) => codec::decode::<RestoreMarker>(self.record.payload)
                .ok()
                .map(|m| {
                    (
                        "restore",
                        json!({"snapshot": m.snapshot, "snapshot_lsn": m.snapshot_lsn}),
                    )
                }),
            _ => None,
        };
        match decoded {
            Some((name, value)) => map.insert(name.into(), value),
            None => map.insert(
                "payload_hex".into(),
                output::hex(self.record.payload).into(),
            ),
        };
        Value::Object(map)
    }
}

fn hex_text(payload: &[u8]) -> String {
    let shown = &payload[..payload.len().min(SHOW_BYTES_MAX)];
    let cut = if shown.len() < payload.len() {
        format!("... ({} bytes)", payload.len())
    } else {
        String::new()
    };
    format!("hex {}{cut}", output::hex(shown))
}

fn opt_text(bytes: Option<&[u8]>) -> String {
    ShowValue(bytes).to_string()
}

fn command_text(command: &KvCommand) -> String {
    fn show(bytes: &[u8]) -> ShowBytes<'_> {
        ShowBytes::quoted(bytes)
    }
    match command {
        KvCommand::Put { key, value } => format!("put {} = {}", show(key), show(value)),
        KvCommand::Delete { key } => format!("del {}", show(key)),
        KvCommand::DeleteRange { start, end } => {
            format!("delete_range [{}, {})", show(start), show(end))
        }
        KvCommand::DeletePrefix { prefix } => format!("delete_prefix {}", show(prefix)),
        KvCommand::CompareAndSet { key, expected, new } => format!(
            "cas {} expected {} -> {}",
            show(key),
            opt_text(expected.as_deref()),
            opt_text(new.as_deref())
        ),
    }
}

/// The command in `apply`'s input format.
fn command_json(command: &KvCommand) -> Value {
    use output::{bytes_json as b, opt_bytes_json as ob};
    match command {
        KvCommand::Put { key, value } => json!({"op": "put", "key": b(key), "value": b(value)}),
        KvCommand::Delete { key } => json!({"op": "del", "key": b(key)}),
        KvCommand::DeleteRange { start, end } => {
            json!({"op": "delete_range", "start": b(start), "end": b(end)})
        }
        KvCommand::DeletePrefix { prefix } => json!({"op": "delete_prefix", "prefix": b(prefix)}),
        KvCommand::CompareAndSet { key, expected, new } => json!({
            "op": "cas",
            "key": b(key),
            "expected": ob(expected.as_deref()),
            "value": ob(new.as_deref()),
        }),
    }
}
