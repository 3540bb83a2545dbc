//! `verify`: the library's read-only verification as a table and a verdict; the exit
//! code is the verdict's.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use walstate::io::RealFs;
use walstate::verify::{FileCheck, Verdict, VerifyReport, verify};

use crate::CliResult;
use crate::output::{self, Failure};

/// Check every file of a store, read-only: a table per file and a verdict.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Checks every checkpoint, segment and snapshot of the store in DIR without \
        changing anything (it never takes the writer lock, so it works while a writer \
        runs), and prints a table per file (kind, LSN range, bytes, status, detail), the \
        problems found and a verdict that agrees with what opening the store would do. \
        Works on a store of any state type.",
    after_help = "Example:\n  walstate verify ./data && echo clean\n\n\
        Exit codes:\n  \
        0  clean: nothing to repair\n  \
        1  damage that opening the store repairs by itself without losing anything\n     \
        acknowledged (a torn tail, crash leftovers, an unusable checkpoint with a\n     \
        fallback); `walstate repair DIR` does the same now\n  \
        2  damage open refuses (corruption, a missing segment, an LSN gap): run\n     \
        `walstate repair --salvage DIR` (damaged files go to DIR/quarantine/)\n  \
        4  damage that needs the operator and that salvage does not help with: a\n     \
        damaged snapshot (the store opens; that snapshot cannot be restored), a\n     \
        damaged restore file the journal does not need, a LOCK that is not a\n     \
        regular file (open fails until it is moved away), no usable checkpoint\n     \
        with a journal that does not reach LSN 1; each problem says what to do\n  \
        3  could not verify: not a store, permission, I/O error, unsupported version\n  \
        64 bad command line"
)]
pub(crate) struct Args {
    /// Store directory.
    pub(crate) dir: PathBuf,
}

/// `walstate verify DIR [--json]`.
pub(crate) fn run(dir: &Path, as_json: bool) -> CliResult {
    let spinner = output::spinner("verifying");
    let report = verify(&RealFs, dir);
    output::finish(spinner);
    let report = report?;
    if as_json {
        output::print_json(&report)?;
    } else {
        let mut out = io::stdout().lock();
        print_report(&mut out, &report)?;
        out.flush()?;
    }
    Ok(exit_code(report.verdict))
}

pub(crate) fn exit_code(verdict: Verdict) -> u8 {
    // The library defines the codes (0, 1, 2); they fit a u8.
    u8::try_from(verdict.exit_code()).unwrap_or(crate::exit::FAILURE)
}

/// One line saying what the verdict means and what to run next.
pub(crate) fn verdict_line(dir: &Path, verdict: Verdict) -> String {
    let dir = dir.display();
    match verdict {
        Verdict::Clean => "clean (exit 0): nothing to repair".into(),
        Verdict::RepairedByOpen => format!(
            "repaired_by_open (exit 1): opening the store fixes this, dropping only what is listed above; `walstate repair {dir}` does it now"
        ),
        Verdict::NeedsAttention => "needs_attention (exit 4): walstate does not fix this by itself and `repair --salvage` does not help; each problem above says what to do".into(),
        Verdict::NeedsRepair => format!(
            "needs_repair (exit 2): open refuses this store; `walstate repair --salvage {dir}` keeps the valid prefix and moves the damage to {dir}/quarantine/ (run with --dry-run first to see what it would do)"
        ),
    }
}

/// The verify table, problems and verdict.
pub(crate) fn print_report(out: &mut impl Write, report: &VerifyReport) -> Result<(), Failure> {
    let header = ["KIND", "FILE", "LSNS", "BYTES", "STATUS", "DETAIL"];
    let rows: Vec<[String; 6]> = report
        .files
        .iter()
        .map(|file| row(&report.dir, file))
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    writeln!(out, "store {}", report.dir.display())?;
    writeln!(out, "schema {}", report.schema)?;
    let print_row = |out: &mut dyn Write, cells: [&str; 6]| -> io::Result<()> {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else if i == 3 {
                line.push_str(&format!("{cell:>w$}  ", w = widths[i]));
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())
    };
    print_row(out, header)?;
    for row in &rows {
        print_row(out, row.each_ref().map(String::as_str))?;
    }
    if report.files.is_empty() {
        writeln!(out, "(no files)")?;
    }
    for problem in &report.problems {
        writeln!(out, "problem: {problem}")?;
    }
    if let Some(recovery) = &report.recovery {
        let from = recovery
            .checkpoint
            .as_ref()
            .map_or("the empty state".to_string(), |c| {
                format!("checkpoint at LSN {}", c.lsn)
            });
        writeln!(
            out,
            "open would recover LSN {} from {from} + {} journal record(s)",
            recovery.last_lsn, recovery.records_replayed
        )?;
        if let Some(torn) = &recovery.torn_tail {
            let lsns = match torn.last_lsn {
                Some(last) if torn.frames > 0 => format!(
                    "LSNs {}..={last} ({} complete frame(s))",
                    torn.first_lsn, torn.frames
                ),
                _ => format!(
                    "no complete record (LSN {} never fully arrived)",
                    torn.first_lsn
                ),
            };
            writeln!(
                out,
                "open would cut {} at offset {}: {lsns}, bytes no record proves were ever durable (the groups in flight when the writer stopped: never acknowledged under SyncPolicy::Always); it copies them to quarantine/ first",
                output::short_path(&report.dir, &torn.path),
                torn.offset
            )?;
        }
        if recovery.read_format_v1 {
            writeln!(
                out,
                "this store holds format-version-1 files, read by the old torn-window rule: `walstate upgrade {}` rewrites them in version 2",
                report.dir.display()
            )?;
        }
    }
    writeln!(
        out,
        "verdict: {}",
        verdict_line(&report.dir, report.verdict)
    )?;
    Ok(())
}

fn row(dir: &Path, file: &FileCheck) -> [String; 6] {
    let lsns = match (file.first_lsn, file.last_lsn) {
        (Some(first), Some(last)) if first == last => first.to_string(),
        (Some(first), Some(last)) => format!("{first}..{last}"),
        (Some(first), None) => format!("{first}.. (empty)"),
        (None, Some(last)) => format!("..{last}"),
        (None, None) => "-".into(),
    };
    [
        output::serde_name(&file.kind),
        output::short_path(dir, &file.path),
        lsns,
        file.bytes.to_string(),
        output::serde_name(&file.status),
        file.detail.clone().unwrap_or_default(),
    ]
}
