//! `repair`: the library's repair, saying exactly what it changed (or would change).

use std::io::{self, Write};
use std::path::Path;

use walstate::Error;
use walstate::io::RealFs;
use walstate::repair::{RepairOptions, repair};
use walstate::verify::Verdict;

use crate::output::{self, Failure};
use crate::verify::verdict_line;
use crate::{CliResult, exit};

/// `walstate repair DIR [--salvage] [--dry-run] [--json]`.
pub(crate) fn run(dir: &Path, salvage: bool, dry_run: bool, as_json: bool) -> CliResult {
    let spinner = output::spinner(if dry_run { "checking" } else { "repairing" });
    let result = repair(&RealFs, dir, RepairOptions { salvage, dry_run });
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
