//! `apply`: JSON-line commands from stdin, one flushed JSON ack line per durable line.
//!
//! A line is acknowledged exactly when its output line carries an `"lsn"`. Malformed
//! lines are reported and skipped (the others are independent); a store failure stops
//! everything, since nothing more can be acknowledged.

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use walstate::{KvApplied, KvCommand, KvOutput, Streamed};

use crate::output::{self, Failure, JsonBytes};
use crate::{CliResult, exit};

/// Apply JSON-line commands from stdin, printing one JSON ack line per durable line.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Applies commands read from stdin, one JSON object per line, and prints one \
        JSON line per input line to stdout, flushed as soon as that line is durable, so a \
        script knows exactly what was acknowledged.\n\n\
        Input lines (keys and values: a JSON string, or {\"hex\":\"..\"} for any bytes):\n  \
        {\"op\":\"put\",\"key\":\"k\",\"value\":\"v\"}\n  \
        {\"op\":\"del\",\"key\":\"k\"}\n  \
        {\"op\":\"cas\",\"key\":\"k\",\"expected\":null,\"value\":\"w\"}   (expected null/missing: \
        must be absent; value null/missing: delete)\n  \
        {\"op\":\"delete_prefix\",\"prefix\":\"p/\"}\n  \
        {\"op\":\"delete_range\",\"start\":\"a\",\"end\":\"m\"}\n  \
        {\"op\":\"batch\",\"ops\":[...]}   (all-or-nothing: one atomic group)\n\n\
        Output: a line is durable exactly when its output line has an \"lsn\" (for a batch, \
        the LSN of its last command, with \"first_lsn\"). A compare-and-set mismatch is \
        acknowledged too: {\"lsn\":N,\"ok\":false,\"mismatch\":{...}}. A malformed line gets \
        {\"line\":N,\"ok\":false,\"error\":\"...\"} and no \"lsn\"; processing CONTINUES with the \
        next line (lines are independent), and the exit code is 65 at the end. A store \
        failure (I/O, lock) stops at once with exit 3 (2 for corruption). Blank lines are \
        skipped.",
    after_help = "Example:\n  printf '%s\\n' '{\"op\":\"put\",\"key\":\"a\",\"value\":\"1\"}' \
        '{\"op\":\"del\",\"key\":\"b\"}' | walstate apply ./data\n\n\
        Exit codes: 0 every line applied; 65 some line was malformed (the others were \
        applied); 2/3 the store failed."
)]
pub(crate) struct Args {
    /// Store directory (created if it does not exist).
    pub(crate) dir: PathBuf,
}

/// Longest input line accepted (a batch line can be large: it may carry up to the 1 GiB
/// group limit, but a line this long is almost surely a mistake).
const LINE_BYTES_MAX: usize = 256 << 20;

/// One input line.
#[derive(Deserialize, Debug)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Op {
    Put {
        key: JsonBytes,
        value: JsonBytes,
    },
    #[serde(alias = "delete")]
    Del {
        key: JsonBytes,
    },
    Cas {
        key: JsonBytes,
        /// `null` or missing: the key must be absent.
        #[serde(default)]
        expected: Option<JsonBytes>,
        /// `null` or missing: delete the key.
        #[serde(default)]
        value: Option<JsonBytes>,
    },
    DeletePrefix {
        prefix: JsonBytes,
    },
    DeleteRange {
        start: JsonBytes,
        end: JsonBytes,
    },
    Batch {
        ops: Vec<Op>,
    },
}

/// What a parsed line asks for.
enum Request {
    Single(KvCommand),
    Batch(Vec<KvCommand>),
}

impl Op {
    fn into_command(self) -> Result<KvCommand, String> {
        Ok(match self {
            Op::Put { key, value } => KvCommand::put(key.0, value.0),
            Op::Del { key } => KvCommand::delete(key.0),
            Op::Cas {
                key,
                expected,
                value,
            } => KvCommand::CompareAndSet {
                key: key.0,
                expected: expected.map(|b| b.0),
                new: value.map(|b| b.0),
            },
            Op::DeletePrefix { prefix } => KvCommand::delete_prefix(prefix.0),
            Op::DeleteRange { start, end } => KvCommand::delete_range(start.0, end.0),
            Op::Batch { .. } => return Err("a batch cannot contain a batch".into()),
        })
    }
}

fn parse_line(line: &[u8]) -> Result<Request, String> {
    let op: Op = serde_json::from_slice(line).map_err(|err| format!("malformed line: {err}"))?;
    match op {
        Op::Batch { ops } if ops.is_empty() => Err("a batch needs at least one op".into()),
        Op::Batch { ops } => ops
            .into_iter()
            .map(Op::into_command)
            .collect::<Result<_, _>>()
            .map(Request::Batch),
        single => single.into_command().map(Request::Single),
    }
}

/// The name a command has in the input format.
fn op_name(command: &KvCommand) -> &'static str {
    match command {
        KvCommand::Put { .. } => "put",
        KvCommand::Delete { .. } => "del",
        KvCommand::CompareAndSet { .. } => "cas",
        KvCommand::DeletePrefix { .. } => "delete_prefix",
        KvCommand::DeleteRange { .. } => "delete_range",
    }
}

/// The outcome of one applied command (op `op`), without line or LSN.
fn outcome_json(op: &str, output: &KvOutput) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("op".into(), op.into());
    map.insert("ok".into(), output.is_ok().into());
    match output {
        Ok(KvApplied::Put { previous }) | Ok(KvApplied::Deleted { previous }) => {
            map.insert(
                "previous".into(),
                output::opt_bytes_json(previous.as_deref()),
            );
        }
        Ok(KvApplied::DeletedRange { removed }) => {
            map.insert("removed".into(), (*removed).into());
        }
        Ok(KvApplied::Swapped) => {}
        Err(mismatch) => {
            map.insert(
                "mismatch".into(),
                json!({
                    "key": output::bytes_json(&mismatch.key),
                    "expected": output::opt_bytes_json(mismatch.expected.as_deref()),
                    "actual": output::opt_bytes_json(mismatch.actual.as_deref()),
                }),
            );
        }
    }
    map
}

enum LineRead {
    Eof,
    Line,
    TooLong,
}

/// Reads one line (without a limit-breaking allocation) into `buf`.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<LineRead> {
    buf.clear();
    let read = input
        .by_ref()
        .take(LINE_BYTES_MAX as u64 + 1)
        .read_until(b'\n', buf)?;
    if read == 0 {
        return Ok(LineRead::Eof);
    }
    if buf.len() > LINE_BYTES_MAX && !buf.ends_with(b"\n") {
        // Skip the rest of the over-long line.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let n = input.by_ref().take(1 << 20).read_until(b'\n', &mut rest)?;
            if n == 0 || rest.ends_with(b"\n") {
                break;
            }
        }
        return Ok(LineRead::TooLong);
    }
    Ok(LineRead::Line)
}

fn emit(out: &mut impl Write, line: Map<String, Value>) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")?;
    out.flush()
}

fn error_line(line_no: u64, message: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("line".into(), line_no.into());
    map.insert("ok".into(), false.into());
    map.insert("error".into(), message.into());
    map
}

/// What the output line of an applied input line needs to know about it.
struct LineContext {
    line_no: u64,
    /// The op name of each command.
    ops: Vec<&'static str>,
    batch: bool,
}

/// An input line that is not applied.
enum NotApplied {
    /// Malformed: reported, and the next line is read.
    Bad { line_no: u64, message: String },
    /// Reading stdin failed: the last item.
    Unreadable(String),
}

/// The input lines as stream items, read on the stream's own thread (so later lines are
/// read and queued while earlier ones are being made durable).
/// Reading stops once `stop` is set.
fn input_items(
    mut input: impl BufRead + Send,
    stop: Arc<AtomicBool>,
) -> impl Iterator<Item = Result<(LineContext, Vec<KvCommand>), NotApplied>> + Send {
    let mut buf = Vec::new();
    let mut line_no: u64 = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        loop {
            if done || stop.load(Ordering::Relaxed) {
                return None;
            }
            let read = match read_line(&mut input, &mut buf) {
                Ok(read) => read,
                Err(err) => {
                    done = true;
                    return Some(Err(NotApplied::Unreadable(format!("reading stdin: {err}"))));
                }
            };
            line_no += 1;
            let request = match read {
                LineRead::Eof => return None,
                LineRead::TooLong => Err(format!("line is longer than {LINE_BYTES_MAX} bytes")),
                LineRead::Line if buf.trim_ascii().is_empty() => continue,
                LineRead::Line => parse_line(&buf),
            };
            return Some(match request {
                Err(message) => Err(NotApplied::Bad { line_no, message }),
                Ok(Request::Single(command)) => Ok((
                    LineContext {
                        line_no,
                        ops: vec![op_name(&command)],
                        batch: false,
                    },
                    vec![command],
                )),
                Ok(Request::Batch(commands)) => Ok((
                    LineContext {
                        line_no,
                        ops: commands.iter().map(op_name).collect(),
                        batch: true,
                    },
                    commands,
                )),
            });
        }
    })
}

/// The ack of an applied line.
fn ack_json(context: &LineContext, first_lsn: u64, outputs: &[KvOutput]) -> Map<String, Value> {
    let mut map = if context.batch {
        let results: Vec<Value> = context
            .ops
            .iter()
            .zip(outputs)
            .enumerate()
            .map(|(i, (op, output))| {
                let mut map = outcome_json(op, output);
                map.insert("lsn".into(), (first_lsn + i as u64).into());
                Value::Object(map)
            })
            .collect();
        let mut map = Map::new();
        map.insert("op".into(), "batch".into());
        map.insert("ok".into(), outputs.iter().all(Result::is_ok).into());
        map.insert("first_lsn".into(), first_lsn.into());
        map.insert("lsn".into(), (first_lsn + outputs.len() as u64 - 1).into());
        map.insert("results".into(), results.into());
        map
    } else {
        let mut map = outcome_json(context.ops[0], &outputs[0]);
        map.insert("lsn".into(), first_lsn.into());
        map
    };
    map.insert("line".into(), context.line_no.into());
    map
}

/// `walstate apply DIR`.
///
/// Lines are read and queued while earlier ones are being made durable (many in flight,
/// one group commit for them); each ack is printed once its line is durable, in input
/// order.
pub(crate) fn run(dir: &Path) -> CliResult {
    let store = output::open_kv_writer_recording_stats(dir)?;
    let mut out = io::stdout().lock();
    let mut bad_lines: u64 = 0;
    let mut unreadable: Option<String> = None;
    let mut emitted: io::Result<()> = Ok(());
    // When acks can no longer be printed (stdout closed), no more lines are read: only
    // those already queued are still applied, unacknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let items = input_items(io::BufReader::new(io::stdin()), Arc::clone(&stop));
    let streamed = store.apply_stream(items, |done| {
        let line = match done {
            Streamed::Applied {
                context,
                first_lsn,
                outputs,
            } => ack_json(&context, first_lsn, &outputs),
            // Refused before anything was written (the command does not encode, or is
            // over the size limit): the line is bad, the store is fine.
            Streamed::Refused { context, error } => {
                bad_lines += 1;
                error_line(context.line_no, &error.to_string())
            }
            Streamed::Skipped(NotApplied::Bad { line_no, message }) => {
                bad_lines += 1;
                error_line(line_no, &message)
            }
            Streamed::Skipped(NotApplied::Unreadable(message)) => {
                unreadable = Some(message);
                return;
            }
        };
        if emitted.is_ok() {
            emitted = emit(&mut out, line);
            if emitted.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
        }
    });
    emitted?;
    if let Err(stopped) = streamed {
        let line_no = stopped.context.as_ref().map(|context| context.line_no);
        if let Some(line_no) = line_no {
            let mut line = error_line(line_no, &stopped.error.to_string());
            line.insert("fatal".into(), true.into());
            emit(&mut out, line)?;
        }
        let before = line_no.map_or("no line".to_string(), |n| format!("lines before line {n}"));
        return Err(Failure::from(stopped.error).hint(format!(
            "{before} are durable and nothing after it was applied; `walstate verify {}` shows the state of the store",
            dir.display()
        )));
    }
    if let Some(message) = unreadable {
        return Err(Failure::new(exit::FAILURE, message).hint(format!(
            "the lines read before are applied (their acks say so); give the rest on stdin again: `walstate apply {}`",
            dir.display()
        )));
    }
    // A long apply may pass the store's checkpoint trigger; the CLI runs no background
    // checkpointer, so it writes the checkpoint that is due before it exits.
    crate::checkpoint::if_due(&store, dir);
    store.close()?;
    if bad_lines > 0 {
        output::note(format!(
            "{bad_lines} line(s) were not applied (see their \"error\"); every other line was"
        ));
        return Ok(exit::BAD_INPUT);
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_op() {
        let lines = [
            r#"{"op":"put","key":"k","value":"v"}"#,
            r#"{"op":"del","key":"k"}"#,
            r#"{"op":"delete","key":{"hex":"ff00"}}"#,
            r#"{"op":"cas","key":"k","expected":null,"value":"w"}"#,
            r#"{"op":"cas","key":"k","expected":"w"}"#,
            r#"{"op":"delete_prefix","prefix":"p/"}"#,
            r#"{"op":"delete_range","start":"a","end":"b"}"#,
            r#"{"op":"batch","ops":[{"op":"put","key":"a","value":"1"},{"op":"del","key":"b"}]}"#,
        ];
        for line in lines {
            assert!(parse_line(line.as_bytes()).is_ok(), "{line}");
        }
        match parse_line(br#"{"op":"cas","key":"k","expected":"w"}"#) {
            Ok(Request::Single(KvCommand::CompareAndSet { expected, new, .. })) => {
                assert_eq!(expected, Some(b"w".to_vec()));
                assert_eq!(new, None);
            }
            _ => panic!("cas did not parse"),
        }
    }

    #[test]
    fn rejects_malformed_lines() {
        for line in [
            "not json",
            r#"{"op":"put","key":"k"}"#,
            r#"{"op":"nope","key":"k"}"#,
            r#"{"op":"put","key":"k","value":"v","extra":1}"#,
            r#"{"op":"put","key":{"hex":"zz"},"value":"v"}"#,
            r#"{"op":"batch","ops":[]}"#,
            r#"{"op":"batch","ops":[{"op":"batch","ops":[]}]}"#,
        ] {
            assert!(parse_line(line.as_bytes()).is_err(), "{line}");
        }
    }
}
