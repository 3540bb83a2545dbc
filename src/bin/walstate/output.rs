//! What every command shares: failures and their exit codes, opening stores, showing
//! bytes as text or JSON, and progress bars (only when stderr is a terminal, never with
//! `--json`).

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{HumanDuration, ProgressBar, ProgressState, ProgressStyle};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use walstate::{Error, KvStore, Options};

use crate::exit;

/// A command failed: what to print on stderr and the exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub code: u8,
    pub message: String,
    /// The next thing the operator should run or check, when the message does not say.
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prints the failure on stderr and returns its exit code.
    pub fn report(self) -> u8 {
        if self.code != exit::BROKEN_PIPE {
            eprintln!("walstate: error: {}", self.message);
            if let Some(hint) = &self.hint {
                eprintln!("walstate: next: {hint}");
            }
        }
        self.code
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::Corruption { .. } => Failure::new(exit::NEEDS_REPAIR, message),
            Error::Locked { .. } => Failure::new(exit::FAILURE, message).hint(
                "read-only commands (get, scan, verify, dump, stats, export, snapshot list) work while that writer runs",
            ),
            Error::NotAStore { path } => Failure::new(
                exit::FAILURE,
                format!(
                    "{} is not a walstate store (no segments, checkpoints or lock file)",
                    path.display()
                ),
            )
            .hint("check the path; `walstate put DIR KEY VALUE`, `walstate apply DIR` and `walstate import DIR` create a new store"),
            Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe => {
                Failure::new(exit::BROKEN_PIPE, message)
            }
            Error::NoStateBase { .. } => Failure::new(exit::NEEDS_ATTENTION, message),
            Error::SchemaMismatch { .. } => Failure::new(exit::FAILURE, message),
            Error::Poisoned { .. } => Failure::new(exit::FAILURE, message)
                .hint("`walstate verify DIR` shows what is on disk now"),
            _ => Failure::new(exit::FAILURE, message),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::BrokenPipe {
            return Failure::new(exit::BROKEN_PIPE, "stdout closed");
        }
        Failure::new(exit::FAILURE, format!("writing to stdout: {err}"))
    }
}

impl From<serde_json::Error> for Failure {
    fn from(err: serde_json::Error) -> Self {
        match err.io_error_kind() {
            Some(kind) => io::Error::from(kind).into(),
            None => Failure::new(exit::FAILURE, format!("encoding JSON: {err}")),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Opening stores
// ---------------------------------------------------------------------------------------

/// The options every CLI open starts from: the library's default checkpoint trigger
/// (what `stats` measures against and `checkpoint::if_due` evaluates), but no background
/// checkpoints (a CLI process is short-lived and exits before one would finish; writing
/// commands call `checkpoint::if_due` before they close instead), and checkpoints and
/// snapshots written on request are not paced: an operator waits.
pub(crate) fn cli_options() -> Options {
    Options::default()
        .background_checkpoints(false)
        .checkpoint_write_rate(None)
}

/// Opens the key-value store for writing, creating it when `create` and DIR is missing
/// or empty, with [`cli_options`].
pub(crate) fn open_kv_writer(dir: &Path, create: bool) -> Result<KvStore, Failure> {
    let options = cli_options().create_if_missing(create);
    // Recovery replays the journal since the newest checkpoint: seconds for a long one.
    let spinner = spinner(&format!("opening {} (recovery)", dir.display()));
    let opened = KvStore::open(dir, options);
    finish(spinner);
    let store = opened.map_err(|err| kv_open_failure(dir, err))?;
    note_recovery(&store);
    Ok(store)
}

/// A failed key-value open: a store of other types is not damage, it is someone
/// else's store.
fn kv_open_failure(dir: &Path, err: Error) -> Failure {
    match &err {
        Error::SchemaMismatch { stored, .. } => Failure::new(
            exit::FAILURE,
            format!(
                "{} holds {stored}, not the key-value state this command works on; use its application (nothing was changed)",
                dir.display()
            ),
        )
        .hint("`walstate verify DIR`, `dump DIR`, `stats DIR` and `snapshot list DIR` work on a store of any types"),
        _ => err.into(),
    }
}

/// Opens the key-value store read-only (no lock; works while a writer runs). Never
/// creates anything.
pub(crate) fn open_kv_reader(dir: &Path) -> Result<KvStore, Failure> {
    let spinner = spinner(&format!("opening {} (recovery)", dir.display()));
    let opened = KvStore::open_read_only(dir, cli_options().create_if_missing(false));
    finish(spinner);
    opened.map_err(|err| kv_open_failure(dir, err))
}

/// Tells the operator on stderr when opening changed something on disk.
fn note_recovery(store: &KvStore) {
    let report = store.recovery_report();
    if report.created {
        eprintln!("walstate: created a new store in {}", report.dir.display());
    }
    if let Some(torn) = &report.torn_tail {
        eprintln!(
            "walstate: open truncated a torn tail of {} at offset {} ({} bytes): {}",
            torn.path.display(),
            torn.offset,
            torn.bytes,
            torn.detail
        );
    }
    for path in &report.temp_files_removed {
        eprintln!(
            "walstate: open removed leftover temp file {}",
            path.display()
        );
    }
    for skipped in &report.checkpoints_skipped {
        eprintln!(
            "walstate: open skipped unusable checkpoint {} ({})",
            skipped.path.display(),
            skipped.reason
        );
    }
}

/// Fails with `NotAStore` unless `dir` is a directory holding a walstate store, by the
/// rule open uses (`walstate::recovery::is_store_file_name`).
pub(crate) fn ensure_store(dir: &Path) -> Result<(), Failure> {
    let not_a_store = || {
        Failure::from(Error::NotAStore {
            path: dir.to_path_buf(),
        })
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(not_a_store()),
        Err(err) => return Err(Error::io("list directory", dir, err).into()),
    };
    for entry in entries {
        let entry = entry.map_err(|err| Error::io("list directory", dir, err))?;
        if walstate::recovery::is_store_file_name(&entry.file_name().to_string_lossy()) {
            return Ok(());
        }
    }
    Err(not_a_store())
}

/// `path` relative to `dir` when inside it (table cells stay short).
pub(crate) fn short_path(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

// ---------------------------------------------------------------------------------------
// Bytes as text and JSON
// ---------------------------------------------------------------------------------------

/// Bytes as JSON: a string when valid UTF-8, else `{"hex": "..."}`. Round-trips through
/// [`bytes_from_json`].
pub(crate) fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => json!({ "hex": hex(bytes) }),
    }
}

/// Optional bytes as JSON (`null` when absent).
pub(crate) fn opt_bytes_json(bytes: Option<&[u8]>) -> Value {
    bytes.map_or(Value::Null, bytes_json)
}

/// Reads bytes written by [`bytes_json`]: a JSON string (its UTF-8 bytes) or
/// `{"hex": "..."}`.
pub(crate) fn bytes_from_json(value: &Value) -> Result<Vec<u8>, String> {
    match value {
        Value::String(text) => Ok(text.as_bytes().to_vec()),
        Value::Object(map) if map.len() == 1 => match map.get("hex") {
            Some(Value::String(digits)) => unhex(digits),
            _ => Err(format!(
                "expected a string or {{\"hex\":\"..\"}}, got {value}"
            )),
        },
        _ => Err(format!(
            "expected a string or {{\"hex\":\"..\"}}, got {value}"
        )),
    }
}

/// Bytes read from JSON by [`bytes_from_json`], for serde-derived input types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonBytes(pub Vec<u8>);

impl<'de> Deserialize<'de> for JsonBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        bytes_from_json(&value)
            .map(JsonBytes)
            .map_err(serde::de::Error::custom)
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}"); // ok: writing to a String cannot fail
    }
    out
}

/// Parses hex (either case); an odd length or a non-hex digit is an error.
pub(crate) fn unhex(digits: &str) -> Result<Vec<u8>, String> {
    if !digits.len().is_multiple_of(2) {
        return Err(format!("hex string has odd length {}", digits.len()));
    }
    let nibble = |c: u8| -> Result<u8, String> {
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("{:?} is not a hex digit", c as char))
    };
    digits
        .as_bytes()
        .chunks(2)
        .map(|pair| Ok(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// The snake_case name serde gives a unit enum variant (the same words as the JSON).
pub(crate) fn serde_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        _ => "?".into(),
    }
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------------------

/// Set once by `main` for a `--json` run: no progress then, even on a terminal (a tool
/// reading the JSON may well show stderr to a person, mixed with it).
static PROGRESS_OFF: AtomicBool = AtomicBool::new(false);

/// Turns progress off for the rest of the process (`--json`).
pub(crate) fn disable_progress() {
    PROGRESS_OFF.store(true, Ordering::Relaxed);
}

/// Progress is drawn only on a terminal, and never in `--json` mode: a piped or
/// redirected stderr gets no bytes from it.
fn progress_wanted() -> bool {
    !PROGRESS_OFF.load(Ordering::Relaxed) && io::stderr().is_terminal()
}

/// Progress for output written to stdout as the work goes (records, entries): only when
/// stdout is not the same terminal, where a bar would interleave with the output (which
/// is progress enough there).
pub(crate) fn progress_beside_stdout() -> bool {
    progress_wanted() && !io::stdout().is_terminal()
}

/// What a bar counts.
#[derive(Clone, Copy)]
pub(crate) enum Units {
    Bytes,
    /// Things, by this (plural) name.
    Items(&'static str),
}

/// No estimate before this much of the work is done, or this much time has passed:
/// the first moments (opening files, a cold cache) say nothing about the rest, and an
/// estimate from them reads "2d".
const ETA_MIN_FRACTION: f32 = 0.02;
const ETA_MIN_ELAPSED: Duration = Duration::from_secs(1);

/// The `{eta}` of our bars: the average rate since the start, not indicatif's
/// short-window estimator, and nothing until [`ETA_MIN_FRACTION`] and [`ETA_MIN_ELAPSED`].
fn eta(state: &ProgressState, out: &mut dyn fmt::Write) {
    let text = eta_text(state.fraction(), state.elapsed());
    let _ = out.write_str(&text); // ok: writing into indicatif's buffer
}

/// The text of [`eta`] at `fraction` done after `elapsed`.
fn eta_text(fraction: f32, elapsed: Duration) -> String {
    if fraction >= 1.0 {
        return "done".into();
    }
    if fraction < ETA_MIN_FRACTION || elapsed < ETA_MIN_ELAPSED {
        return "estimating".into();
    }
    let fraction = f64::from(fraction);
    let remaining = elapsed.mul_f64((1.0 - fraction) / fraction);
    format!("{} left", HumanDuration(remaining))
}

/// A progress bar over `total` bytes on stderr, or `None` when progress is not wanted
/// (stderr is not a terminal, or `--json`).
pub(crate) fn progress_bar(total: u64, message: &str) -> Option<ProgressBar> {
    counter(Some(total), Units::Bytes, message)
}

/// A bar over `total` units when the total is known, else a spinner counting them;
/// `None` when progress is not wanted.
pub(crate) fn counter(total: Option<u64>, units: Units, message: &str) -> Option<ProgressBar> {
    if !progress_wanted() {
        return None;
    }
    let template = match (total, units) {
        (Some(_), Units::Bytes) => "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})".to_owned(),
        (Some(_), Units::Items(name)) => {
            format!("{{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {name} ({{eta}})")
        }
        (None, Units::Bytes) => "{spinner} {msg} {bytes}".to_owned(),
        (None, Units::Items(name)) => format!("{{spinner}} {{msg}} {{human_pos}} {name}"),
    };
    let bar = match total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.with_key("eta", eta).progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    if total.is_none() {
        bar.enable_steady_tick(Duration::from_millis(100));
    }
    Some(bar)
}

/// A spinner on stderr for work without a known size, or `None` when progress is not
/// wanted.
pub(crate) fn spinner(message: &str) -> Option<ProgressBar> {
    if !progress_wanted() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    Some(bar)
}

/// Counts the item at `index` (0-based) on `bar`, if any, in steps of 1024 items.
pub(crate) fn tick(bar: &Option<ProgressBar>, index: usize) {
    const STEP: usize = 1024;
    if let Some(bar) = bar
        && (index + 1).is_multiple_of(STEP)
    {
        bar.inc(STEP as u64);
    }
}

/// Removes a progress bar or spinner, if any.
pub(crate) fn finish(bar: Option<ProgressBar>) {
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_json_round_trips_any_bytes() {
        for bytes in [
            &b""[..],
            b"plain",
            b"tab\tand newline\n",
            b"\xff\xfe\x00binary",
            "h\u{e9}llo".as_bytes(),
        ] {
            assert_eq!(bytes_from_json(&bytes_json(bytes)).unwrap(), bytes);
        }
        assert!(bytes_from_json(&json!({"hex": "abc"})).is_err());
        assert!(bytes_from_json(&json!({"hex": "zz"})).is_err());
        assert!(bytes_from_json(&json!(5)).is_err());
    }

    #[test]
    fn no_eta_until_enough_is_done_then_the_average_rate() {
        // The first ETA of a dump once read "2d".
        assert_eq!(eta_text(0.001, Duration::from_millis(300)), "estimating");
        assert_eq!(eta_text(0.5, Duration::from_millis(300)), "estimating");
        assert_eq!(eta_text(0.01, Duration::from_secs(30)), "estimating");
        assert_eq!(eta_text(0.25, Duration::from_secs(10)), "30 seconds left");
        assert_eq!(eta_text(1.0, Duration::from_secs(10)), "done");
    }
}
