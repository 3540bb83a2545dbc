//! `checkpoint`: write a checkpoint of the key-value state now and say what it wrote and
//! what it made redundant (segments, older checkpoints).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use walstate::error::human_bytes;

use crate::output;
use crate::{CliResult, exit};

/// Write a checkpoint now and drop the segments and old checkpoints it makes redundant.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  walstate checkpoint ./data\n\n\
    Opens the key-value store (taking the writer lock), writes checkpoint-<LSN>.ckpt, \
    keeps the newest 2 checkpoints and deletes the segments the oldest kept one covers. \
    Exit 3 if another process holds the writer lock.")]
pub(crate) struct Args {
    /// Store directory.
    pub(crate) dir: PathBuf,
}

/// `walstate checkpoint DIR [--json]`.
pub(crate) fn run(dir: &Path, as_json: bool) -> CliResult {
    let store = output::open_kv_writer(dir, false)?;
    let spinner = output::spinner("writing checkpoint");
    let info = store.checkpoint();
    output::finish(spinner);
    let info = info?;
    store.close()?;
    if as_json {
        output::print_json(&info)?;
        return Ok(exit::OK);
    }
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "wrote {} (state at LSN {}, {})",
        output::short_path(dir, &info.path),
        info.lsn,
        human_bytes(info.bytes)
    )?;
    if info.segments_deleted.is_empty() {
        writeln!(
            out,
            "no segment deleted (the oldest retained checkpoint still needs them, or the active segment holds them)"
        )?;
    }
    for path in &info.segments_deleted {
        writeln!(
            out,
            "deleted segment {} (covered by a retained checkpoint)",
            output::short_path(dir, path)
        )?;
    }
    for path in &info.checkpoints_deleted {
        writeln!(
            out,
            "deleted old checkpoint {} (beyond the retained count)",
            output::short_path(dir, path)
        )?;
    }
    out.flush()?;
    Ok(exit::OK)
}
