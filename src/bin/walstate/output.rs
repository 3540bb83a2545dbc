//! What every command shares: failures and their exit codes, opening stores, showing
//! bytes as text or JSON, and progress bars (only when stderr is a terminal, never with
//! `--json`).

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{HumanDuration, ProgressBar, ProgressState, ProgressStyle};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use walstate::{Error, KvStore, Options};

use crate::exit;

// ---------------------------------------------------------------------------------------
// Output mode, the store a command works on, notes
// ---------------------------------------------------------------------------------------

/// `--json` was given: success output is JSON, and stderr carries one JSON object.
static JSON: AtomicBool = AtomicBool::new(false);
/// The store directory the command works on, for hints that name it.
static STORE_DIR: OnceLock<PathBuf> = OnceLock::new();
/// Notes (what open repaired, what was created) kept in JSON mode for the one object
/// on stderr.
static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Sets JSON mode (the global `--json`).
pub(crate) fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// How long writing commands wait for the writer lock (`--lock-wait`).
static LOCK_WAIT: OnceLock<Duration> = OnceLock::new();

/// Records `--lock-wait`.
pub(crate) fn set_lock_wait(wait: Duration) {
    let _ = LOCK_WAIT.set(wait);
}

/// `--lock-wait`, or the library's default for shared writers.
pub(crate) fn lock_wait() -> Duration {
    LOCK_WAIT
        .get()
        .copied()
        .unwrap_or(walstate::SHARED_LOCK_WAIT_DEFAULT)
}

/// Parses `--lock-wait`: a finite, non-negative number of seconds.
pub(crate) fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && (0.0..=86_400.0).contains(&seconds) => Ok(seconds),
        _ => Err(format!(
            "{text:?} is not a number of seconds from 0 to 86400 (e.g. 0, 2.5, 30)"
        )),
    }
}

/// True when `--json` was given.
pub(crate) fn json_mode() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Records the store directory of the command, so hints can name it.
pub(crate) fn set_store_dir(dir: &Path) {
    let _ = STORE_DIR.set(dir.to_path_buf());
}

/// The store directory as hints show it (`DIR` when the command has none).
fn dir_arg() -> String {
    STORE_DIR
        .get()
        .map_or_else(|| "DIR".to_owned(), |dir| dir.display().to_string())
}

/// Tells the operator something on stderr (`walstate: ...`); in JSON mode it is kept for
/// the one JSON object stderr carries (see [`print_notes`]).
pub(crate) fn note(message: impl Into<String>) {
    let message = message.into();
    if json_mode() {
        if let Ok(mut notes) = NOTES.lock() {
            notes.push(message);
        }
    } else {
        eprintln!("walstate: {message}");
    }
}

fn take_notes() -> Vec<String> {
    NOTES
        .lock()
        .map(|mut notes| std::mem::take(&mut *notes))
        .unwrap_or_default()
}

/// In JSON mode after a success: the notes, if any, as `{"notes":[...]}` on stderr.
pub(crate) fn print_notes() {
    let notes = take_notes();
    if json_mode() && !notes.is_empty() {
        eprintln!("{}", json!({ "notes": notes }));
    }
}

// ---------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------

/// A command failed: what to print on stderr and the exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub code: u8,
    pub message: String,
    /// The file or directory the failure is about, when there is one.
    pub path: Option<PathBuf>,
    /// The next thing the operator should run or check, when the message does not say.
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            path: None,
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// A bad command line (exit 64): `message`, and where to read the usage.
    pub fn usage(message: impl Into<String>, command: &str) -> Self {
        Failure::new(exit::USAGE, message).hint(format!(
            "`walstate help {command}` shows the arguments and examples"
        ))
    }

    /// Prints the failure on stderr (one JSON object in JSON mode) and returns its exit
    /// code.
    pub fn report(self) -> u8 {
        if self.code == exit::BROKEN_PIPE {
            return self.code;
        }
        let notes = take_notes();
        if json_mode() {
            let mut object = json!({
                "error": self.message,
                "path": self.path.as_ref().map(|path| path.display().to_string()),
                "next": self.hint,
                "exit_code": self.code,
            });
            if !notes.is_empty() {
                object["notes"] = json!(notes);
            }
            eprintln!("{object}");
        } else {
            eprintln!("walstate: error: {}", self.message);
            if let Some(hint) = &self.hint {
                eprintln!("walstate: next: {hint}");
            }
        }
        self.code
    }
}

/// The file or directory an error is about.
fn error_path(err: &Error) -> Option<PathBuf> {
    match err {
        Error::Io { path, .. }
        | Error::PermissionDenied { path, .. }
        | Error::DiskFull { path, .. }
        | Error::Corruption { path, .. }
        | Error::UnsupportedVersion { path, .. }
        | Error::NotAStore { path }
        | Error::Locked { path, .. }
        | Error::LockNotAFile { path }
        | Error::SnapshotDamaged { path, .. }
        | Error::NoStateBase { path, .. }
        | Error::SchemaMismatch { path, .. }
        | Error::SnapshotNotFound { path, .. } => Some(path.clone()),
        _ => STORE_DIR.get().cloned(),
    }
}

/// What to do after an I/O error, by its kind: every one names the file and an action.
fn io_hint(path: &Path, source: &io::Error) -> String {
    let path = path.display();
    let dir = dir_arg();
    match source.kind() {
        io::ErrorKind::IsADirectory => format!(
            "{path} is a directory where walstate expects a file: move it out of the store (after checking nothing in it is needed), then `walstate verify {dir}`"
        ),
        io::ErrorKind::NotADirectory => format!(
            "part of {path} is a file, not a directory: check the path and give the store's directory as DIR"
        ),
        io::ErrorKind::NotFound => {
            format!(
                "{path} does not exist (any more): check the path, then `walstate verify {dir}`"
            )
        }
        io::ErrorKind::AlreadyExists => format!(
            "{path} exists but is not what walstate expects there: move it aside, then retry"
        ),
        io::ErrorKind::ReadOnlyFilesystem => format!(
            "the file system holding {path} is mounted read-only: remount it read-write to change the store; the read-only commands (get, scan, verify, dump, stats, export, snapshot list) work as it is"
        ),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => format!(
            "free disk space on the file system holding {path} (`df {dir}`), then retry; nothing was changed"
        ),
        _ => format!(
            "check {path} and the disk under it (`dmesg` shows I/O errors), then `walstate verify {dir}` to see what is on disk"
        ),
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        let path = error_path(&err);
        let dir = dir_arg();
        let failure = match err {
            Error::Corruption { .. } => Failure::new(exit::NEEDS_REPAIR, message).hint(format!(
                "`walstate verify {dir}` shows the damage; `walstate repair --salvage {dir}` keeps the valid prefix"
            )),
            Error::Locked { .. } => Failure::new(exit::FAILURE, message).hint(
                "wait for that writer to finish (or stop it) and retry; read-only commands (get, scan, verify, dump, stats, export, snapshot list) work while it runs",
            ),
            Error::NotAStore { path } => not_a_store(&path),
            Error::Io { ref source, .. } if source.kind() == io::ErrorKind::BrokenPipe => {
                Failure::new(exit::BROKEN_PIPE, message)
            }
            Error::Io {
                ref path,
                ref source,
                ..
            } => {
                let hint = io_hint(path, source);
                Failure::new(exit::FAILURE, message).hint(hint)
            }
            Error::PermissionDenied { .. } => Failure::new(exit::FAILURE, message).hint(format!(
                "`ls -ld {dir} {dir}/*` shows owners and modes: run walstate as the store's owner, or fix the modes"
            )),
            Error::DiskFull { .. } => Failure::new(exit::FAILURE, message).hint(format!(
                "free disk space on the file system holding {dir} (`df {dir}`), then run the command again"
            )),
            Error::NoStateBase { .. } => Failure::new(exit::NEEDS_ATTENTION, message).hint(format!(
                "`walstate verify {dir}` lists the unusable checkpoints; put back a checkpoint from a backup"
            )),
            Error::SchemaMismatch { .. } => Failure::new(exit::FAILURE, message).hint(format!(
                "`walstate verify {dir}` shows the store's schema; open it with the application that wrote it"
            )),
            Error::UnsupportedVersion { .. } => Failure::new(exit::FAILURE, message).hint(format!(
                "`walstate upgrade --dry-run {dir}` says whether this build can upgrade the store; otherwise use the walstate version that wrote it"
            )),
            Error::LockNotAFile { .. } => Failure::new(exit::FAILURE, message).hint(format!(
                "`walstate verify {dir}` lists the store's files; move {dir}/LOCK aside, then retry"
            )),
            Error::SnapshotDamaged { .. } | Error::SnapshotNotFound { .. } => {
                Failure::new(exit::FAILURE, message).hint(format!(
                    "`walstate snapshot list {dir}` shows the snapshots and which are damaged"
                ))
            }
            Error::Poisoned { .. } => Failure::new(exit::FAILURE, message)
                .hint(format!("`walstate verify {dir}` shows what is on disk now")),
            Error::InvalidArgument(_) => Failure::new(exit::FAILURE, message)
                .hint("`walstate help COMMAND` shows the command's arguments and limits"),
            _ => Failure::new(exit::FAILURE, message)
                .hint(format!("`walstate verify {dir}` shows what is on disk")),
        };
        Failure { path, ..failure }
    }
}

/// `dir` is not a store: say why (a file, a lock file alone, nothing of a store) and how
/// to make one.
pub(crate) fn not_a_store(dir: &Path) -> Failure {
    let shown = dir.display();
    let create = format!(
        "`walstate put {shown} KEY VALUE`, `walstate apply {shown}` and `walstate import {shown}` create a new store"
    );
    let failure = match std::fs::symlink_metadata(dir) {
        Ok(meta) if !meta.is_dir() => Failure::new(
            exit::FAILURE,
            format!("{shown} is not a walstate store: it is a file, and a store is a directory"),
        )
        .hint("check the path: give the store's directory"),
        Ok(_) if std::fs::symlink_metadata(dir.join(walstate::lock::LOCK_FILE_NAME)).is_ok() => {
            Failure::new(
                exit::FAILURE,
                format!(
                    "{shown} is not a walstate store: it holds a lock file but no identity, segment, checkpoint or schema file, so the creation of a store there did not finish (a crash or a full disk) and nothing was ever committed to it"
                ),
            )
            .hint(format!(
                "{create} there; or delete {shown} if it is not meant to be a store"
            ))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Failure::new(
            exit::FAILURE,
            format!("{shown} is not a walstate store: it does not exist"),
        )
        .hint(format!("check the path; {create}")),
        _ => Failure::new(
            exit::FAILURE,
            format!(
                "{shown} is not a walstate store (no identity, segment, checkpoint or schema file)"
            ),
        )
        .hint(format!("check the path; {create}")),
    };
    failure.path(dir)
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::BrokenPipe {
            return Failure::new(exit::BROKEN_PIPE, "stdout closed");
        }
        Failure::new(exit::FAILURE, format!("writing to stdout: {err}"))
            .hint("check where stdout goes (a full disk, a closed pipe?) and run the command again")
    }
}

impl From<serde_json::Error> for Failure {
    fn from(err: serde_json::Error) -> Self {
        match err.io_error_kind() {
            Some(kind) => io::Error::from(kind).into(),
            None => Failure::new(exit::FAILURE, format!("encoding JSON: {err}"))
                .hint("this is a bug in walstate: please report it with the command line"),
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
/// snapshots written on request are not paced: an operator waits. Writers share the
/// store with other processes (a daemon), waiting `--lock-wait` for the lock.
pub(crate) fn cli_options() -> Options {
    Options::default()
        .lock_timeout(Some(lock_wait()))
        .background_checkpoints(false)
        .checkpoint_write_rate(None)
        // A command's few numbers would replace those of the service writing the store.
        .record_writer_stats(false)
}

/// Opens the key-value store for writing, creating it when `create` and DIR is missing
/// or empty, with [`cli_options`].
pub(crate) fn open_kv_writer(dir: &Path, create: bool) -> Result<KvStore, Failure> {
    open_kv_writer_with(dir, cli_options().create_if_missing(create))
}

/// [`open_kv_writer`] for a long-running command (`apply`): it leaves its journal
/// counters for `walstate stats`, as a service does.
pub(crate) fn open_kv_writer_recording_stats(dir: &Path) -> Result<KvStore, Failure> {
    open_kv_writer_with(dir, cli_options().record_writer_stats(true))
}

fn open_kv_writer_with(dir: &Path, options: Options) -> Result<KvStore, Failure> {
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
        .path(dir)
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
        note(format!("created a new store in {}", report.dir.display()));
    }
    if let Some(torn) = &report.torn_tail {
        note(format!(
            "open truncated a torn tail of {} at offset {} ({} bytes): {}",
            torn.path.display(),
            torn.offset,
            torn.bytes,
            torn.detail
        ));
    }
    for path in &report.temp_files_removed {
        note(format!(
            "open removed leftover temp file {}",
            path.display()
        ));
    }
    for skipped in &report.checkpoints_skipped {
        note(format!(
            "open skipped unusable checkpoint {} ({})",
            skipped.path.display(),
            skipped.reason
        ));
    }
}

/// Fails with `NotAStore` unless `dir` is a directory holding a walstate store, by the
/// rule open uses (`walstate::recovery::is_store_file_name`).
pub(crate) fn ensure_store(dir: &Path) -> Result<(), Failure> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(not_a_store(dir));
        }
        Err(err) => return Err(Error::io("list directory", dir, err).into()),
    };
    for entry in entries {
        let entry = entry.map_err(|err| Error::io("list directory", dir, err))?;
        if walstate::recovery::is_store_file_name(&entry.file_name().to_string_lossy()) {
            return Ok(());
        }
    }
    Err(not_a_store(dir))
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
