//! `upgrade`: rewrite a format-version-1 store in version 2, saying which files.

use std::io::{self, Write};
use std::path::Path;

use walstate::io::RealFs;

use crate::output;
use crate::{CliResult, exit};

/// `walstate upgrade DIR [--dry-run] [--json]`.
pub(crate) fn run(dir: &Path, dry_run: bool, as_json: bool) -> CliResult {
    let spinner = output::spinner(if dry_run { "checking" } else { "upgrading" });
    let report = walstate::upgrade::upgrade(&RealFs, dir, dry_run);
    output::finish(spinner);
    let report = report?;
    if as_json {
        output::print_json(&report)?;
        return Ok(exit::OK);
    }
    let mut out = io::stdout().lock();
    let verb = if dry_run { "would rewrite" } else { "rewrote" };
    for path in &report.rewritten {
        writeln!(
            out,
            "{verb} {} in format version 2",
            output::short_path(dir, path)
        )?;
    }
    if report.rewritten.is_empty() && !report.legacy_flag_cleared {
        writeln!(out, "nothing to do: every file is already format version 2")?;
    } else if dry_run {
        writeln!(
            out,
            "dry run: nothing was changed; run without --dry-run to upgrade"
        )?;
    } else {
        writeln!(out, "upgraded: the store holds format version 2 files only")?;
    }
    out.flush()?;
    Ok(exit::OK)
}
