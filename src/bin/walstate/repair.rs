//! `repair`: the library's repair, saying exactly what it changed (or would change).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use walstate::Error;
use walstate::io::RealFs;
use walstate::repair::{RepairOptions, repair};
use walstate::verify::Verdict;

use crate::output::{self, Failure};
use crate::verify::verdict_line;
use crate::{CliResult, exit};

/// Repair a store: truncate a torn tail, remove leftovers; with --salvage, quarantine damage.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Does what open does for damage a crash can cause (truncate a torn tail, \
        remove temp files, set aside an unusable checkpoint) and prints exactly what it \
        changed. Corruption (a flipped bit in synced data, a missing segment) is refused \
        unless --salvage is given: then the valid prefix of the log is kept, and the damaged \
        segment and everything after it are moved to DIR/quarantine/ (never deleted); the \
        lost LSN range is printed. Takes the writer lock. Works on a store of any state type.\n\n\
        --dry-run runs the very same repair against an in-memory view of the directory (reads \
        from disk, changes kept in memory), so it lists exactly the steps, files and order of \
        the real run, and refuses what the real run would refuse (with the same message); it \
        does not take the writer lock, so a writer running meanwhile can change the outcome.",
    after_help = "Examples:\n  walstate repair ./data --dry-run\n  \
        walstate repair ./data --salvage\n\n\
        Exit codes: 0 repaired (`walstate verify DIR` now exits 0); 4 repaired, but damage \
        repair does not touch remains (a damaged snapshot: see `walstate verify DIR`), or no \
        state can be rebuilt (nothing changed); 2 corruption found and \
        --salvage not given (nothing changed); 3 failure (locked, I/O, not a store)."
)]
pub(crate) struct Args {
    /// Store directory.
    pub(crate) dir: PathBuf,
    /// Keep the valid prefix of a corrupted log; move the rest to quarantine/.
    #[arg(long)]
    pub(crate) salvage: bool,
    /// Only print what would be changed.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `walstate repair DIR [--salvage] [--dry-run] [--json]`.
pub(crate) fn run(dir: &Path, salvage: bool, dry_run: bool, as_json: bool) -> CliResult {
    let spinner = output::spinner(if dry_run { "checking" } else { "repairing" });
    let result = repair(
        &RealFs,
        dir,
        RepairOptions {
            salvage,
            dry_run,
            lock_timeout: Some(output::lock_wait()),
        },
    );
    output::finish(spinner);
    let report = match result {
        Ok(report) => report,
        Err(err @ Error::Corruption { .. }) if !salvage => {
            return Err(Failure::new(
                exit::NEEDS_REPAIR,
                format!("nothing was changed: {err}"),
            )
            .hint(format!(
                "rerun with --salvage to keep the valid prefix: `walstate repair --salvage --dry-run {0}` shows what it would do, `walstate repair --salvage {0}` does it (damaged files are moved to {0}/quarantine/, never deleted; the lost LSN range is printed)",
                dir.display()
            )));
        }
        Err(err) => return Err(err.into()),
    };
    let needs_salvage = report.verdict_before == Verdict::NeedsRepair && !salvage;
    let code = match report.verdict_after {
        _ if report.dry_run && needs_salvage => exit::NEEDS_REPAIR,
        None | Some(Verdict::Clean) => exit::OK,
        Some(Verdict::NeedsAttention) => exit::NEEDS_ATTENTION,
        Some(_) => exit::NEEDS_REPAIR,
    };
    if as_json {
        output::print_json(&report)?;
        return Ok(code);
    }
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "{} {} (salvage: {})",
        if report.dry_run {
            "dry run of repair of"
        } else {
            "repair of"
        },
        dir.display(),
        if salvage { "yes" } else { "no" }
    )?;
    writeln!(
        out,
        "before: {}",
        output::serde_name(&report.verdict_before)
    )?;
    if report.actions.is_empty() {
        writeln!(out, "nothing to change")?;
    } else if report.dry_run {
        writeln!(
            out,
            "the real run would do exactly this, in this order (the dry run runs the same repair, keeping its changes in memory):"
        )?;
    }
    for action in &report.actions {
        if report.dry_run {
            writeln!(out, "  - would: {action}")?;
        } else {
            writeln!(out, "  - {action}")?;
        }
    }
    if let Some(recovery) = &report.recovery {
        writeln!(
            out,
            "the store now holds LSNs up to {} ({} journal record(s) after {})",
            recovery.last_lsn,
            recovery.records_replayed,
            recovery
                .checkpoint
                .as_ref()
                .map_or("the empty state".to_string(), |c| format!(
                    "the checkpoint at LSN {}",
                    c.lsn
                ))
        )?;
    }
    match report.verdict_after {
        Some(verdict) => writeln!(out, "after: {}", verdict_line(dir, verdict))?,
        None if needs_salvage => writeln!(
            out,
            "nothing changed (dry run); this damage needs --salvage: `walstate repair --salvage {}`",
            dir.display()
        )?,
        None => writeln!(
            out,
            "nothing changed (dry run); run without --dry-run to do it"
        )?,
    }
    out.flush()?;
    Ok(code)
}
