//! What every command shares: failures and their exit codes, opening stores, showing
//! bytes as text or JSON, and progress bars (only when stderr is a terminal).

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
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

/// Opens the key-value store for writing, creating it when `create` and DIR is missing
/// or empty. Background checkpoints are off (a CLI process is short-lived), and the
/// checkpoints and snapshots it writes on request are not paced: an operator waits.
pub(crate) fn open_kv_writer(dir: &Path, create: bool) -> Result<KvStore, Failure> {
    let options = Options::default()
        .create_if_missing(create)
        .checkpoint_after_bytes(None)
        .checkpoint_write_rate(None);
    let store = KvStore::open(dir, options).map_err(|err| kv_open_failure(dir, err))?;
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
    KvStore::open_read_only(dir, Options::default().create_if_missing(false))
        .map_err(|err| kv_open_failure(dir, err))
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

/// A progress bar over `total` units on stderr, or `None` when stderr is not a terminal.
pub(crate) fn progress_bar(total: u64, message: &str) -> Option<ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    Some(bar)
}

/// A spinner on stderr for work without a known size, or `None` when stderr is not a
/// terminal.
pub(crate) fn spinner(message: &str) -> Option<ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    Some(bar)
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
}
