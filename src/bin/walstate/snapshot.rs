//! `snapshot create|list|restore|delete`: named snapshots of the key-value state.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use walstate::checkpoint::list_snapshots;
use walstate::error::human_bytes;
use walstate::io::RealFs;

use serde_json::json;

use crate::output::{self, Failure};
use crate::{CliResult, exit};

/// Create, list, restore or delete named snapshots.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  walstate snapshot create ./data before-migration\n  \
        walstate snapshot list ./data\n  \
        walstate snapshot restore ./data before-migration\n  \
        walstate snapshot delete ./data before-migration\n\n\
        Snapshots live in DIR/snapshots/ and are kept until deleted. `list` works while a \
        writer runs; the others take the writer lock (exit 3 if it is held). A name that \
        breaks the rules is a bad command line (exit 64)."
)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Keep the current state under NAME.
    #[command(after_help = "Example:\n  walstate snapshot create ./data before-migration")]
    Create {
        /// Store directory.
        dir: PathBuf,
        /// 1..=64 characters of A-Z a-z 0-9 . _ - (not starting with '.').
        name: String,
    },
    /// List the snapshots, marking damaged ones. Works while a writer runs.
    #[command(after_help = "Example:\n  walstate snapshot list ./data --json\n\n\
        Each snapshot file is checked (checksum and header); a damaged one is listed with \
        STATUS DAMAGED (JSON: \"damage\" is a string, null when intact) and cannot be restored.")]
    List {
        /// Store directory.
        dir: PathBuf,
    },
    /// Roll the store back to snapshot NAME (atomic; the replaced state is kept as a snapshot).
    #[command(
        after_help = "Example:\n  walstate snapshot restore ./data before-migration\n\n\
        The state being replaced is first saved as snapshot pre-restore-<LSN>; restore that \
        one to undo."
    )]
    Restore {
        /// Store directory.
        dir: PathBuf,
        /// Snapshot name.
        name: String,
    },
    /// Delete snapshot NAME.
    #[command(after_help = "Example:\n  walstate snapshot delete ./data before-migration")]
    Delete {
        /// Store directory.
        dir: PathBuf,
        /// Snapshot name.
        name: String,
    },
}

impl Command {
    /// The store directory the subcommand works on.
    pub(crate) fn dir(&self) -> &Path {
        match self {
            Command::Create { dir, .. }
            | Command::List { dir }
            | Command::Restore { dir, .. }
            | Command::Delete { dir, .. } => dir,
        }
    }
}

/// Runs the `snapshot` subcommand given.
pub(crate) fn run(args: Args, as_json: bool) -> CliResult {
    match args.command {
        Command::Create { dir, name } => create(&dir, &name, as_json),
        Command::List { dir } => list(&dir, as_json),
        Command::Restore { dir, name } => restore(&dir, &name, as_json),
        Command::Delete { dir, name } => delete(&dir, &name, as_json),
    }
}

/// A snapshot name that breaks the rules is a bad command line (exit 64), checked before
/// the store is touched.
fn check_name(name: &str, command: &str) -> Result<(), Failure> {
    walstate::checkpoint::validate_snapshot_name(name)
        .map_err(|err| Failure::usage(err.to_string(), command))
}

/// `walstate snapshot create DIR NAME [--json]`.
pub(crate) fn create(dir: &Path, name: &str, as_json: bool) -> CliResult {
    check_name(name, "snapshot create")?;
    let store = output::open_kv_writer(dir, false)?;
    let spinner = output::spinner(&format!("writing snapshot {name}"));
    let info = store.snapshot(name);
    output::finish(spinner);
    let info = info?;
    store.close()?;
    if as_json {
        output::print_json(&info)?;
        return Ok(exit::OK);
    }
    writeln!(
        io::stdout(),
        "created snapshot {} (state at LSN {}, {}) in {}",
        info.name,
        info.lsn,
        human_bytes(info.bytes),
        output::short_path(dir, &info.path)
    )?;
    Ok(exit::OK)
}

/// `walstate snapshot list DIR [--json]`: reads the files only, so it works on a store
/// of any state type and while a writer runs.
pub(crate) fn list(dir: &Path, as_json: bool) -> CliResult {
    output::ensure_store(dir)?;
    let snapshots = list_snapshots(&RealFs, dir)?;
    if as_json {
        output::print_json(&snapshots)?;
        return Ok(exit::OK);
    }
    let mut out = io::stdout().lock();
    if snapshots.is_empty() {
        writeln!(out, "no snapshots in {}", dir.display())?;
        return Ok(exit::OK);
    }
    let width = snapshots.iter().map(|s| s.name.len()).max().unwrap_or(0);
    writeln!(
        out,
        "{:<width$}  {:>10}  {:>10}  STATUS",
        "NAME", "LSN", "BYTES"
    )?;
    for snapshot in &snapshots {
        let (lsn, status) = match &snapshot.damage {
            None => (snapshot.lsn.to_string(), "ok".to_string()),
            Some(damage) => (
                "?".to_string(),
                format!("DAMAGED ({damage}): cannot be restored"),
            ),
        };
        writeln!(
            out,
            "{:<width$}  {:>10}  {:>10}  {status}",
            snapshot.name, lsn, snapshot.bytes
        )?;
    }
    out.flush()?;
    Ok(exit::OK)
}

/// `walstate snapshot restore DIR NAME [--json]`.
pub(crate) fn restore(dir: &Path, name: &str, as_json: bool) -> CliResult {
    check_name(name, "snapshot restore")?;
    let store = output::open_kv_writer(dir, false)?;
    let spinner = output::spinner(&format!("restoring snapshot {name}"));
    let info = store.restore_snapshot(name);
    output::finish(spinner);
    let info = info?;
    let keys = store.len()?;
    store.close()?;
    if as_json {
        output::print_json(&json!({
            "snapshot": info.snapshot,
            "lsn": info.lsn,
            "keys": keys,
            "previous_state_snapshot": info.previous_state_snapshot,
        }))?;
        return Ok(exit::OK);
    }
    writeln!(
        io::stdout(),
        "restored snapshot {} at LSN {} ({keys} keys); the replaced state is kept as snapshot {:?}: `walstate snapshot restore {} {}` undoes this",
        info.snapshot,
        info.lsn,
        info.previous_state_snapshot,
        dir.display(),
        info.previous_state_snapshot
    )?;
    Ok(exit::OK)
}

/// `walstate snapshot delete DIR NAME [--json]`: works on a store of any state type (it
/// only removes a file, holding the writer lock).
pub(crate) fn delete(dir: &Path, name: &str, as_json: bool) -> CliResult {
    check_name(name, "snapshot delete")?;
    output::ensure_store(dir)?;
    let _lock = walstate::lock::lock_store(&RealFs, dir, None)?;
    walstate::checkpoint::delete_snapshot(&RealFs, dir, name)?;
    if as_json {
        output::print_json(&json!({ "deleted": name }))?;
        return Ok(exit::OK);
    }
    writeln!(io::stdout(), "deleted snapshot {name}")?;
    Ok(exit::OK)
}
