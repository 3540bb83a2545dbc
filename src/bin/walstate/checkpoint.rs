//! `checkpoint`: write a checkpoint of the key-value state now and say what it wrote and
//! what it made redundant (segments, older checkpoints).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use walstate::KvStore;
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

/// What a writing command (`put`, `del`, `import`; `apply` should too) calls before it closes the
/// store: writes a checkpoint when the trigger says one is due
/// ([`walstate::Store::checkpoint_if_due`]), as the background checkpointer of a
/// long-running process would, and says so on stderr. The command's own write is durable
/// already, so a failed checkpoint is a warning, not a failure of the command (a failed
/// fsync poisons the store, and closing it then fails the command anyway).
pub(crate) fn if_due(store: &KvStore, dir: &Path) {
    let since = store.journal_bytes_since_checkpoint();
    let trigger = output::cli_options().checkpoint_trigger_bytes();
    if trigger.is_none_or(|trigger| since < trigger) {
        return;
    }
    let spinner = output::spinner("writing the checkpoint that is due");
    let result = store.checkpoint_if_due();
    output::finish(spinner);
    match result {
        Ok(Some(info)) => eprintln!(
            "walstate: {} of journal since the last checkpoint (trigger {}): wrote {} (state at LSN {}, {}; {} segment(s) deleted)",
            human_bytes(since),
            human_bytes(trigger.unwrap_or_default()),
            output::short_path(dir, &info.path),
            info.lsn,
            human_bytes(info.bytes),
            info.segments_deleted.len()
        ),
        Ok(None) => {}
        Err(err) => eprintln!(
            "walstate: warning: the write is durable, but the checkpoint that was due failed: {err}; run `walstate checkpoint {}`",
            dir.display()
        ),
    }
}
