//! `export` and `import`: the whole key-value state as one JSON document, and back as
//! one atomic batch.
//!
//! Format: `{"format":"walstate-export","version":1,"lsn":N,"entries":[{"key":K,"value":V}]}`
//! in key order; K and V are JSON strings when the bytes are valid UTF-8, otherwise
//! `{"hex":"..."}`, so any bytes round-trip.

use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;
use walstate::error::{ShowBytes, sized};
use walstate::{Error, KvApplied, KvCommand, Options, codec};

use crate::output::{self, Failure, JsonBytes};
use crate::{CliResult, checkpoint, exit};

/// Print the whole key-value state as JSON (bytes round-trip). Works while a writer runs.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  walstate export ./data > backup.json\n\n\
    Format: {\"format\":\"walstate-export\",\"version\":1,\"lsn\":N,\"entries\":[{\"key\":K,\"value\":V}]} \
    in key order, where K and V are JSON strings when the bytes are valid UTF-8 and \
    {\"hex\":\"...\"} otherwise. The output is always JSON; --json makes stderr JSON too.")]
pub(crate) struct ExportArgs {
    /// Store directory.
    pub(crate) dir: PathBuf,
}

/// Apply an `export` document from stdin as ONE atomic batch.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  walstate import ./restored < backup.json\n\n\
    Every entry becomes a put in one atomic group: after a crash either all are there or \
    none. With --replace the group first deletes every existing key, so the store ends up \
    holding exactly the exported state. Limits: each entry at most 4 MiB encoded, the whole \
    group at most 1 GiB. Creates the store if DIR does not exist.\n\n\
    Prints what was imported (--json: {\"entries\":N,\"removed\":N or null,\"first_lsn\":N or null,\
    \"lsn\":N}).\n\n\
    Exit codes: 0 imported; 65 malformed document (nothing applied); 2/3 store failure."
)]
pub(crate) struct ImportArgs {
    /// Store directory (created if it does not exist).
    pub(crate) dir: PathBuf,
    /// Delete every existing key first, in the same atomic batch.
    #[arg(long)]
    pub(crate) replace: bool,
}

const EXPORT_FORMAT: &str = "walstate-export";
const EXPORT_VERSION: u32 = 1;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportDocument {
    format: String,
    version: u32,
    /// The LSN the export was taken at (informational).
    #[serde(default, rename = "lsn")]
    _lsn: Option<u64>,
    entries: Vec<ExportEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportEntry {
    key: JsonBytes,
    value: JsonBytes,
}

/// `walstate export DIR`: read-only, so it works while a writer runs.
pub(crate) fn export(dir: &Path) -> CliResult {
    let store = output::open_kv_reader(dir)?;
    let lsn = store.last_lsn();
    let bar = if output::progress_beside_stdout() {
        output::counter(
            Some(store.len()? as u64),
            output::Units::Items("keys"),
            "exporting",
        )
    } else {
        None
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let written: Result<(), Failure> = store.read(|state| {
        write!(
            out,
            "{{\"format\":\"{EXPORT_FORMAT}\",\"version\":{EXPORT_VERSION},\"lsn\":{lsn},\"entries\":["
        )?;
        for (index, (key, value)) in state.iter().enumerate() {
            let sep = if index == 0 { "" } else { "," };
            let entry = json!({"key": output::bytes_json(key), "value": output::bytes_json(value)});
            write!(out, "{sep}\n{entry}")?;
            output::tick(&bar, index);
        }
        writeln!(out, "\n]}}")?;
        Ok(())
    })?;
    output::finish(bar);
    written?;
    out.flush()?;
    output::note(format!(
        "exported the state at LSN {lsn} ({} keys)",
        store.len()?
    ));
    Ok(exit::OK)
}

/// `walstate import DIR [--replace]`: every entry in ONE atomic batch.
pub(crate) fn import(dir: &Path, replace: bool, as_json: bool) -> CliResult {
    let mut input = Vec::new();
    // Not while a person may be typing the document in.
    let bar = if io::stdin().is_terminal() {
        None
    } else {
        output::counter(
            None,
            output::Units::Bytes,
            "reading the document from stdin",
        )
    };
    let read = read_counting(&mut io::stdin().lock(), &mut input, bar.as_ref());
    output::finish(bar);
    read.map_err(|err| {
        Failure::new(
            exit::FAILURE,
            format!("reading stdin: {err}; nothing was imported"),
        )
        .hint(format!(
            "give the export document on stdin: `walstate import {} < backup.json`",
            dir.display()
        ))
    })?;
    let spinner = output::spinner(&format!("parsing {}", sized(input.len() as u64)));
    let parsed = serde_json::from_slice::<ExportDocument>(&input);
    output::finish(spinner);
    let document = parsed.map_err(|err| {
        Failure::new(
            exit::BAD_INPUT,
            format!("stdin is not a walstate export document: {err}; nothing was imported"),
        )
        .hint("`walstate export DIR > backup.json` writes a document import reads; `walstate help import` shows the format")
    })?;
    drop(input);
    if document.format != EXPORT_FORMAT || document.version != EXPORT_VERSION {
        return Err(Failure::new(
            exit::BAD_INPUT,
            format!(
                "unsupported export: format {:?} version {}, this build reads format {EXPORT_FORMAT:?} version {EXPORT_VERSION}; nothing was imported",
                document.format, document.version
            ),
        )
        .hint("import it with the walstate version that exported it"));
    }
    let commands = to_commands(document.entries, replace)?;
    if commands.is_empty() {
        output::note("the document has no entries; nothing to import");
        if as_json {
            output::print_json(
                &json!({"entries": 0, "removed": null, "first_lsn": null, "lsn": null}),
            )?;
        }
        return Ok(exit::OK);
    }
    let count = commands.len();
    let store = output::open_kv_writer(dir, true)?;
    let spinner = output::spinner(&format!("importing {count} command(s) as one batch"));
    let applied = store.apply_batch(commands);
    output::finish(spinner);
    let outputs = match applied {
        Ok(outputs) => outputs,
        Err(err @ Error::InvalidArgument(_)) => {
            return Err(
                Failure::new(exit::BAD_INPUT, format!("{err}; nothing was imported"))
                    .hint("`walstate help import` shows the limits; split the document"),
            );
        }
        Err(err) => return Err(err.into()),
    };
    let last = store.last_lsn();
    let first = last + 1 - outputs.len() as u64;
    checkpoint::if_due(&store, dir);
    store.close()?;
    let removed = match outputs.first() {
        Some(Ok(KvApplied::DeletedRange { removed })) if replace => Some(*removed),
        _ => None,
    };
    let puts = count - usize::from(removed.is_some());
    if as_json {
        output::print_json(&json!({
            "entries": puts,
            "removed": removed,
            "first_lsn": first,
            "lsn": last,
        }))?;
        return Ok(exit::OK);
    }
    let mut out = io::stdout().lock();
    if let Some(removed) = removed {
        writeln!(
            out,
            "removed {removed} existing key(s) first (--replace), in the same batch"
        )?;
    }
    writeln!(
        out,
        "imported {puts} entries as one atomic batch at LSNs {first}..{last}"
    )?;
    Ok(exit::OK)
}

/// `read_to_end`, counting the bytes on `bar`.
fn read_counting(
    input: &mut impl Read,
    into: &mut Vec<u8>,
    bar: Option<&indicatif::ProgressBar>,
) -> io::Result<()> {
    let mut chunk = vec![0; 1 << 20];
    loop {
        match input.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                into.extend_from_slice(&chunk[..n]);
                if let Some(bar) = bar {
                    bar.inc(n as u64);
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// The batch: an optional delete-everything, then one put per entry. Each put is checked
/// against the record limit here so the error can name the entry.
fn to_commands(entries: Vec<ExportEntry>, replace: bool) -> Result<Vec<KvCommand>, Failure> {
    let record_max = Options::default().journal_options().record_payload_max as usize;
    let mut commands = Vec::with_capacity(entries.len() + 1);
    if replace {
        commands.push(KvCommand::delete_prefix(""));
    }
    for (index, entry) in entries.into_iter().enumerate() {
        let command = KvCommand::put(entry.key.0, entry.value.0);
        let encoded = codec::encode(&command).map_err(Failure::from)?.len();
        if encoded > record_max {
            let key = match &command {
                KvCommand::Put { key, .. } => ShowBytes::quoted(key).to_string(),
                _ => String::new(),
            };
            return Err(Failure::new(
                exit::BAD_INPUT,
                format!(
                    "entry {index} (key {key}) encodes to {encoded} bytes, over the {record_max}-byte record limit; nothing was imported"
                ),
            )
            .hint("store a value that large outside walstate, and its name in the store"));
        }
        commands.push(command);
    }
    Ok(commands)
}
