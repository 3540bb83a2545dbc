//! `upgrade`: rewrite a format-version-1 store in version 2, saying which files.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use walstate::io::RealFs;

use crate::output;
use crate::{CliResult, exit};

/// Rewrite a store of format version 1 in version 2 (crash-safe; any state type)
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Rewrites every format-version-1 file of the store (segments, checkpoints, \
        restore files, snapshots) in version 2, byte for byte the same records and states in \
        the new framing, each file replaced atomically, segments newest first; then marks the \
        store as holding no version-1 files. Version 1 tells torn tails from corruption by a \
        4 MiB window, which in small stores cannot tell them apart; version 2 can. A crash \
        midway leaves a readable store: run the command again. Takes the writer lock.",
    after_help = "Examples:\n  walstate upgrade ./data --dry-run\n  walstate upgrade ./data\n\n\
        Exit codes: 0 upgraded (or nothing to do); 2 damage found (run `walstate repair \
        --salvage` first); 3 failure (locked, I/O, not a store)."
)]
pub(crate) struct Args {
    /// Store directory.
    pub(crate) dir: PathBuf,
    /// Only print what would be rewritten.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `walstate upgrade DIR [--dry-run] [--json]`.
pub(crate) fn run(dir: &Path, dry_run: bool, as_json: bool) -> CliResult {
    output::ensure_store(dir)?;
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
