//! `put`, `get`, `del` and `scan`: single key-value operations on the built-in state.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::json;
use walstate::error::{ShowBytes, sized};

use crate::output::{self, Failure};
use crate::{CliResult, checkpoint, exit};

/// Set KEY to VALUE (creates the store if DIR does not exist).
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  walstate put ./data config/port 8080\n\n\
    Prints the LSN of the commit once it is durable (--json: \
    {\"key\":..,\"lsn\":N,\"replaced_bytes\":N or null,\"created\":bool}). Exit 3 if another \
    process holds the writer lock.")]
pub(crate) struct PutArgs {
    /// Store directory.
    pub(crate) dir: PathBuf,
    /// Key (UTF-8).
    pub(crate) key: String,
    /// Value (UTF-8; use `apply` with {\"hex\": ...} for binary values).
    pub(crate) value: String,
}

/// Print the value of KEY (exit 1 when absent). Works while a writer runs.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  walstate get ./data config/port\n\n\
    Prints the raw value followed by a newline (--json: {\"key\":..,\"value\":..,\"lsn\":N}, \
    bytes as in scan). Exit 1 and a message on stderr when the key is absent.")]
pub(crate) struct GetArgs {
    /// Store directory.
    pub(crate) dir: PathBuf,
    /// Key (UTF-8).
    pub(crate) key: String,
}

/// Delete KEY (a no-op, still logged, when absent).
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  walstate del ./data config/port\n\n\
    Prints the LSN of the commit once it is durable (--json: \
    {\"key\":..,\"lsn\":N,\"removed_bytes\":N or null}).")]
pub(crate) struct DelArgs {
    /// Store directory.
    pub(crate) dir: PathBuf,
    /// Key (UTF-8).
    pub(crate) key: String,
}

/// List keys and values in key order. Works while a writer runs.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  walstate scan ./data --prefix config/\n  \
    walstate scan ./data --json | jq '.entries[].key'\n\n\
    Text mode prints KEY<TAB>VALUE per line; keys or values that are not printable UTF-8 \
    are shown escaped (\\xNN). --json prints {\"lsn\":N,\"entries\":[{\"key\":..,\"value\":..}]} \
    where each key/value is a JSON string when it is valid UTF-8 and {\"hex\":\"..\"} \
    otherwise, so any bytes round-trip.")]
pub(crate) struct ScanArgs {
    /// Store directory.
    pub(crate) dir: PathBuf,
    /// Only keys starting with this prefix.
    #[arg(long, default_value = "")]
    pub(crate) prefix: String,
}

/// `walstate put DIR KEY VALUE [--json]`: durable before it prints.
pub(crate) fn put(dir: &Path, key: &str, value: &str, as_json: bool) -> CliResult {
    let store = output::open_kv_writer(dir, true)?;
    let created = store.recovery_report().created;
    let previous = store.put(key, value)?;
    let lsn = store.last_lsn();
    checkpoint::if_due(&store, dir);
    store.close()?;
    if as_json {
        output::print_json(&json!({
            "key": key,
            "lsn": lsn,
            "replaced_bytes": previous.as_ref().map(|old| old.len()),
            "created": created,
        }))?;
        return Ok(exit::OK);
    }
    let replaced = match previous {
        Some(old) => format!("replaced {} value", sized(old.len() as u64)),
        None => "new key".into(),
    };
    writeln!(
        io::stdout(),
        "put {} at LSN {lsn} ({replaced})",
        ShowBytes::quoted(key.as_bytes())
    )?;
    Ok(exit::OK)
}

/// `walstate get DIR KEY [--json]`: the raw value and a newline; exit 1 when absent.
pub(crate) fn get(dir: &Path, key: &str, as_json: bool) -> CliResult {
    let store = output::open_kv_reader(dir)?;
    let lsn = store.last_lsn();
    match store.get(key.as_bytes())? {
        Some(value) if as_json => {
            output::print_json(&json!({
                "key": key,
                "value": output::bytes_json(&value),
                "lsn": lsn,
            }))?;
            Ok(exit::OK)
        }
        Some(value) => {
            let mut out = io::stdout().lock();
            out.write_all(&value)?;
            out.write_all(b"\n")?;
            out.flush()?;
            Ok(exit::OK)
        }
        None => Err(Failure::new(
            exit::KEY_ABSENT,
            format!(
                "key {} is absent in {} (store at LSN {lsn})",
                ShowBytes::quoted(key.as_bytes()),
                dir.display()
            ),
        )
        .path(dir)
        .hint(format!(
            "`walstate scan {} --prefix PREFIX` lists the keys there are",
            dir.display()
        ))),
    }
}

/// `walstate del DIR KEY [--json]`.
pub(crate) fn del(dir: &Path, key: &str, as_json: bool) -> CliResult {
    let store = output::open_kv_writer(dir, false)?;
    let previous = store.delete(key)?;
    let lsn = store.last_lsn();
    checkpoint::if_due(&store, dir);
    store.close()?;
    if as_json {
        output::print_json(&json!({
            "key": key,
            "lsn": lsn,
            "removed_bytes": previous.as_ref().map(|old| old.len()),
        }))?;
        return Ok(exit::OK);
    }
    let what = match previous {
        Some(old) => format!("removed {} value", sized(old.len() as u64)),
        None => "it was absent".into(),
    };
    writeln!(
        io::stdout(),
        "deleted {} at LSN {lsn} ({what})",
        ShowBytes::quoted(key.as_bytes())
    )?;
    Ok(exit::OK)
}

/// `walstate scan DIR [--prefix P] [--json]`.
pub(crate) fn scan(dir: &Path, prefix: &str, as_json: bool) -> CliResult {
    let store = output::open_kv_reader(dir)?;
    let lsn = store.last_lsn();
    // The whole state: a bar over its keys; a prefix: a count (its size is not known).
    let bar = if output::progress_beside_stdout() {
        let total = prefix.is_empty().then(|| store.len()).transpose()?;
        output::counter(
            total.map(|n| n as u64),
            output::Units::Items("keys"),
            "scanning",
        )
    } else {
        None
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let written: Result<(), Failure> = store.read(|state| {
        let entries = state.scan_prefix(prefix.as_bytes());
        if as_json {
            // Streamed: a large store never sits in memory twice.
            write!(out, "{{\"lsn\":{lsn},\"entries\":[")?;
            for (index, (key, value)) in entries.enumerate() {
                let sep = if index == 0 { "" } else { "," };
                let entry =
                    json!({"key": output::bytes_json(key), "value": output::bytes_json(value)});
                write!(out, "{sep}\n{entry}")?;
                output::tick(&bar, index);
            }
            writeln!(out, "\n]}}")?;
        } else {
            for (index, (key, value)) in entries.enumerate() {
                writeln!(
                    out,
                    "{}\t{}",
                    ShowBytes::plain(key),
                    ShowBytes::plain(value)
                )?;
                output::tick(&bar, index);
            }
        }
        Ok(())
    })?;
    output::finish(bar);
    written?;
    out.flush()?;
    Ok(exit::OK)
}
