//! `snapshot create|list|restore|delete`: named snapshots of the key-value state.

use std::io::{self, Write};
use std::path::Path;

use walstate::checkpoint::list_snapshots;
use walstate::io::RealFs;

use crate::output;
use crate::{CliResult, exit};

/// `walstate snapshot create DIR NAME`.
pub(crate) fn create(dir: &Path, name: &str) -> CliResult {
    let store = output::open_kv_writer(dir, false)?;
    let info = store.snapshot(name)?;
    store.close()?;
    writeln!(
        io::stdout(),
        "created snapshot {} (state at LSN {}, {}) in {}",
        info.name,
        info.lsn,
        output::human_bytes(info.bytes),
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

/// `walstate snapshot restore DIR NAME`.
pub(crate) fn restore(dir: &Path, name: &str) -> CliResult {
    let store = output::open_kv_writer(dir, false)?;
    let info = store.restore_snapshot(name)?;
    let keys = store.len()?;
    store.close()?;
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

/// `walstate snapshot delete DIR NAME`: works on a store of any state type (it only
/// removes a file, holding the writer lock).
pub(crate) fn delete(dir: &Path, name: &str) -> CliResult {
    output::ensure_store(dir)?;
    walstate::checkpoint::validate_snapshot_name(name)?;
    let _lock = walstate::lock::lock_store(&RealFs, dir, None)?;
    walstate::checkpoint::delete_snapshot(&RealFs, dir, name)?;
    writeln!(io::stdout(), "deleted snapshot {name}")?;
    Ok(exit::OK)
}
