//! `walstate`: the recovery CLI. It tells an operator what is on disk (`verify`, `dump`,
//! `stats`), what recovery would do, and lets them fix it without losing anything
//! (`repair`, `checkpoint`, `snapshot`, `export`/`import`). Value-level commands work on
//! the built-in key-value state; the rest work on a store of any state type.
//!
//! One file per subcommand; this one only parses arguments, dispatches and turns
//! failures into messages and exit codes. It never touches bytes on disk itself.

mod apply;
mod checkpoint;
mod demo;
mod dump;
mod export;
mod kv_cmds;
mod output;
mod repair;
mod snapshot;
mod stats;
mod upgrade;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

use crate::output::Failure;

/// What a command returns on success: the exit code (some commands report findings,
/// such as damage, through it).
pub(crate) type CliResult = Result<u8, Failure>;

/// Exit codes, the same for every command.
pub(crate) mod exit {
    /// Success; for `verify`/`dump`: the store is clean.
    pub const OK: u8 = 0;
    /// Damage that opening the store repairs by itself without losing anything
    /// acknowledged (a torn tail); for `get`: the key is absent; for `demo`: an
    /// acknowledged commit was missing after recovery.
    pub const REPAIRED_BY_OPEN: u8 = 1;
    /// `get`: the key is absent.
    pub const KEY_ABSENT: u8 = 1;
    /// `demo`: an acknowledged commit was missing or wrong after recovery.
    pub const ACK_LOST: u8 = 1;
    /// Damage that needs `walstate repair --salvage` (corruption, a missing segment).
    pub const NEEDS_REPAIR: u8 = 2;
    /// Any other failure: not a store, locked by another writer, permission, I/O,
    /// unsupported format version, a `LOCK` that is not a regular file.
    pub const FAILURE: u8 = 3;
    /// Damage walstate does not repair and salvage does not help with: a damaged
    /// snapshot or restore file, a `LOCK` that is not a file (verify), no usable
    /// checkpoint with a journal that does not reach LSN 1. The message says what to do.
    pub const NEEDS_ATTENTION: u8 = 4;
    /// Bad command line (sysexits EX_USAGE).
    pub const USAGE: u8 = 64;
    /// Bad input data on stdin: a malformed `apply` line or `import` document (sysexits
    /// EX_DATAERR).
    pub const BAD_INPUT: u8 = 65;
    /// Stdout was closed by the reader (as a process killed by SIGPIPE would report).
    pub const BROKEN_PIPE: u8 = 141;
}

const MAIN_AFTER_HELP: &str = "\
Examples:
  walstate demo                      # crash a writer with SIGKILL, recover, check
  walstate verify ./data             # what is on disk, and what open would do
  walstate repair --salvage ./data   # keep the valid prefix, quarantine the rest

Exit codes (all commands):
  0   success; verify/dump: the store is clean
  1   torn tail that open repairs by itself; get: key absent; demo: commit lost
  2   damage that needs `walstate repair --salvage DIR`
  3   any other failure (not a store, locked, permission, I/O, version)
  4   damage that needs the operator, not salvage (a damaged snapshot, a LOCK
      that is not a file, no usable state left); the message says what to do
  64  bad command line     65  bad input on stdin
Run `walstate help COMMAND` for a command's manual.";

/// The recovery tool for walstate stores.
#[derive(Parser, Debug)]
#[command(
    name = "walstate",
    version,
    about = "Inspect, verify and repair walstate stores",
    long_about = "Inspect, verify and repair walstate stores.\n\n\
        Tells you exactly what is on disk (verify, dump, stats), what recovery would do, and \
        lets you fix it without losing anything (repair moves damaged files to quarantine/, \
        never deletes them). Read-only commands (get, scan, verify, dump, stats, export, \
        snapshot list) work while another process writes the store; writing commands fail \
        with exit 3 naming the writer's pid.",
    after_help = MAIN_AFTER_HELP,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Crash a writer with SIGKILL mid-stream, recover, and check every acknowledged commit.
    #[command(
        long_about = "Shows what walstate is for, in a few seconds.\n\n\
            Creates a key-value store in DIR (default ./walstate-demo; an existing DIR is wiped \
            first, but only if it is a store an earlier demo made), starts a child process that \
            commits from several threads (sync on every commit, 4 KiB segments so they rotate, \
            checkpoints every 16 KiB) and prints each acknowledged commit, kills it with SIGKILL \
            after ~1.5 s, then shows what the crash left on disk (the verify table), reopens \
            the store (the recovery report) and checks that every acknowledged commit is there \
            with its value.",
        after_help = "Example:\n  walstate demo /tmp/walstate-demo\n\n\
            Exit codes: 0 every acknowledged commit was recovered; 1 one was missing or wrong;\n\
            3 the demo could not run (DIR is not an earlier demo store, I/O error)."
    )]
    Demo {
        /// Store directory to create (wiped first only if an earlier demo made it).
        #[arg(default_value = "./walstate-demo")]
        dir: PathBuf,
    },

    /// The demo's child: commits until killed, printing `ack KEY LSN` per commit.
    #[command(name = "__demo-writer", hide = true)]
    DemoWriter {
        dir: PathBuf,
        #[arg(long, default_value_t = 4)]
        threads: usize,
    },

    /// Set KEY to VALUE (creates the store if DIR does not exist).
    #[command(after_help = "Example:\n  walstate put ./data config/port 8080\n\n\
        Prints the LSN of the commit once it is durable. Exit 3 if another process holds the \
        writer lock.")]
    Put {
        /// Store directory.
        dir: PathBuf,
        /// Key (UTF-8).
        key: String,
        /// Value (UTF-8; use `apply` with {\"hex\": ...} for binary values).
        value: String,
    },

    /// Print the value of KEY (exit 1 when absent). Works while a writer runs.
    #[command(after_help = "Example:\n  walstate get ./data config/port\n\n\
        Prints the raw value followed by a newline. Exit 1 and a message on stderr when the key \
        is absent.")]
    Get {
        /// Store directory.
        dir: PathBuf,
        /// Key (UTF-8).
        key: String,
    },

    /// Delete KEY (a no-op, still logged, when absent).
    #[command(after_help = "Example:\n  walstate del ./data config/port")]
    Del {
        /// Store directory.
        dir: PathBuf,
        /// Key (UTF-8).
        key: String,
    },

    /// List keys and values in key order. Works while a writer runs.
    #[command(after_help = "Examples:\n  walstate scan ./data --prefix config/\n  \
        walstate scan ./data --json | jq '.entries[].key'\n\n\
        Text mode prints KEY<TAB>VALUE per line; keys or values that are not printable UTF-8 \
        are shown escaped (\\xNN). --json prints {\"lsn\":N,\"entries\":[{\"key\":..,\"value\":..}]} \
        where each key/value is a JSON string when it is valid UTF-8 and {\"hex\":\"..\"} \
        otherwise, so any bytes round-trip.")]
    Scan {
        /// Store directory.
        dir: PathBuf,
        /// Only keys starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Print JSON (bytes round-trip) instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Apply JSON-line commands from stdin, printing one JSON ack line per durable line.
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
    Apply {
        /// Store directory (created if it does not exist).
        dir: PathBuf,
    },

    /// Check every file of a store, read-only: a table per file and a verdict.
    #[command(
        long_about = "Checks every checkpoint, segment and snapshot of the store in DIR without \
            changing anything (it never takes the writer lock, so it works while a writer \
            runs), and prints a table per file (kind, LSN range, bytes, status, detail), the \
            problems found and a verdict that agrees with what opening the store would do. \
            Works on a store of any state type.",
        after_help = "Example:\n  walstate verify ./data && echo clean\n\n\
            Exit codes:\n  \
            0  clean: nothing to repair\n  \
            1  damage that opening the store repairs by itself without losing anything\n     \
            acknowledged (a torn tail, crash leftovers, an unusable checkpoint with a\n     \
            fallback); `walstate repair DIR` does the same now\n  \
            2  damage open refuses (corruption, a missing segment, an LSN gap): run\n     \
            `walstate repair --salvage DIR` (damaged files go to DIR/quarantine/)\n  \
            4  damage that needs the operator and that salvage does not help with: a\n     \
            damaged snapshot (the store opens; that snapshot cannot be restored), a\n     \
            damaged restore file the journal does not need, a LOCK that is not a\n     \
            regular file (open fails until it is moved away), no usable checkpoint\n     \
            with a journal that does not reach LSN 1; each problem says what to do\n  \
            3  could not verify: not a store, permission, I/O error, unsupported version\n  \
            64 bad command line"
    )]
    Verify {
        /// Store directory.
        dir: PathBuf,
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },

    /// Print every journal record: LSN, file, offset, length, kind, decoded command.
    #[command(
        long_about = "Prints every record still in the journal segments (including records a \
            checkpoint already covers): LSN, file, byte offset, frame length, kind, and the \
            decoded key-value command (other payloads as hex). Stops at the first defect and \
            reports it with the same wording as `verify`. Read-only; works on a store of any \
            state type and while a writer runs.",
        after_help = "Examples:\n  walstate dump ./data --from 100 --to 120\n  \
            walstate dump ./data --json | jq '.records[] | select(.command.op == \"del\")'\n\n\
            --json streams one document {\"records\":[...],\"defect\":...}; each decoded command \
            uses the `apply` input format.\n\n\
            Exit codes: 0 no defect; 1 a torn tail (open truncates it); 2 corruption or a gap \
            (run `walstate repair --salvage DIR`); 3 not a store / I/O."
    )]
    Dump {
        /// Store directory.
        dir: PathBuf,
        /// First LSN to print.
        #[arg(long)]
        from: Option<u64>,
        /// Last LSN to print.
        #[arg(long)]
        to: Option<u64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },

    /// Sizes, record counts, LSN range, checkpoints, snapshots, estimated replay time.
    #[command(after_help = "Example:\n  walstate stats ./data\n\n\
        The replay estimate is measured: stats scans the whole journal (checksums and command \
        decoding, what open does) and loads the newest checkpoint, then scales the measured \
        speed to the journal bytes after that checkpoint. Read-only; works while a writer runs.")]
    Stats {
        /// Store directory.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// Repair a store: truncate a torn tail, remove leftovers; with --salvage, quarantine damage.
    #[command(
        long_about = "Does what open does for damage a crash can cause (truncate a torn tail, \
            remove temp files, set aside an unusable checkpoint) and prints exactly what it \
            changed. Corruption (a flipped bit in synced data, a missing segment) is refused \
            unless --salvage is given: then the valid prefix of the log is kept, and the damaged \
            segment and everything after it are moved to DIR/quarantine/ (never deleted); the \
            lost LSN range is printed. Takes the writer lock. Works on a store of any state type.\n\n\
            --dry-run runs the very same repair against an in-memory view of the directory (reads \
            from disk, changes kept in memory), so it lists exactly the steps, files and order of \
            the real run, and refuses what the real run would refuse (with the same message); it \
            does not take the writer lock, so a writer running meanwhile can change the outcome.",
        after_help = "Examples:\n  walstate repair ./data --dry-run\n  \
            walstate repair ./data --salvage\n\n\
            Exit codes: 0 repaired (`walstate verify DIR` now exits 0); 4 repaired, but damage \
            repair does not touch remains (a damaged snapshot: see `walstate verify DIR`), or no \
            state can be rebuilt (nothing changed); 2 corruption found and \
            --salvage not given (nothing changed); 3 failure (locked, I/O, not a store)."
    )]
    Repair {
        /// Store directory.
        dir: PathBuf,
        /// Keep the valid prefix of a corrupted log; move the rest to quarantine/.
        #[arg(long)]
        salvage: bool,
        /// Only print what would be changed.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },

    /// Rewrite a store of format version 1 in version 2 (crash-safe; any state type)
    #[command(
        long_about = "Rewrites every format-version-1 file of the store (segments, checkpoints, \
            restore files, snapshots) in version 2, byte for byte the same records and states in \
            the new framing, each file replaced atomically, segments newest first; then marks the \
            store as holding no version-1 files. Version 1 tells torn tails from corruption by a \
            4 MiB window, which in small stores cannot tell them apart; version 2 can. A crash \
            midway leaves a readable store: run the command again. Takes the writer lock.",
        after_help = "Examples:\n  walstate upgrade ./data --dry-run\n  walstate upgrade ./data\n\n\
            Exit codes: 0 upgraded (or nothing to do); 2 damage found (run `walstate repair \
            --salvage` first); 3 failure (locked, I/O, not a store)."
    )]
    Upgrade {
        /// Store directory.
        dir: PathBuf,
        /// Only print what would be rewritten.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },

    /// Write a checkpoint now and drop the segments and old checkpoints it makes redundant.
    #[command(after_help = "Example:\n  walstate checkpoint ./data\n\n\
        Opens the key-value store (taking the writer lock), writes checkpoint-<LSN>.ckpt, \
        keeps the newest 2 checkpoints and deletes the segments the oldest kept one covers. \
        Exit 3 if another process holds the writer lock.")]
    Checkpoint {
        /// Store directory.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// Print the whole key-value state as JSON (bytes round-trip). Works while a writer runs.
    #[command(after_help = "Example:\n  walstate export ./data > backup.json\n\n\
        Format: {\"format\":\"walstate-export\",\"version\":1,\"lsn\":N,\"entries\":[{\"key\":K,\"value\":V}]} \
        in key order, where K and V are JSON strings when the bytes are valid UTF-8 and \
        {\"hex\":\"...\"} otherwise. JSON is the only format (--json is accepted for symmetry).")]
    Export {
        /// Store directory.
        dir: PathBuf,
        /// Accepted for symmetry with the other commands; the output is always JSON.
        #[arg(long)]
        json: bool,
    },

    /// Apply an `export` document from stdin as ONE atomic batch.
    #[command(
        after_help = "Example:\n  walstate import ./restored < backup.json\n\n\
        Every entry becomes a put in one atomic group: after a crash either all are there or \
        none. With --replace the group first deletes every existing key, so the store ends up \
        holding exactly the exported state. Limits: each entry at most 4 MiB encoded, the whole \
        group at most 1 GiB. Creates the store if DIR does not exist.\n\n\
        Exit codes: 0 imported; 65 malformed document (nothing applied); 2/3 store failure."
    )]
    Import {
        /// Store directory (created if it does not exist).
        dir: PathBuf,
        /// Delete every existing key first, in the same atomic batch.
        #[arg(long)]
        replace: bool,
    },

    /// Create, list, restore or delete named snapshots.
    #[command(
        subcommand,
        after_help = "Examples:\n  walstate snapshot create ./data before-migration\n  \
            walstate snapshot list ./data\n  \
            walstate snapshot restore ./data before-migration\n  \
            walstate snapshot delete ./data before-migration\n\n\
            Snapshots live in DIR/snapshots/ and are kept until deleted. `list` works while a \
            writer runs; the others take the writer lock (exit 3 if it is held)."
    )]
    Snapshot(SnapshotCommand),
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
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
        /// Print JSON.
        #[arg(long)]
        json: bool,
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

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => exit::OK,
                _ => exit::USAGE,
            };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => ExitCode::from(failure.report()),
    }
}

fn run(command: Command) -> CliResult {
    match command {
        Command::Demo { dir } => demo::run(&dir),
        Command::DemoWriter { dir, threads } => demo::run_writer(&dir, threads),
        Command::Put { dir, key, value } => kv_cmds::put(&dir, &key, &value),
        Command::Get { dir, key } => kv_cmds::get(&dir, &key),
        Command::Del { dir, key } => kv_cmds::del(&dir, &key),
        Command::Scan { dir, prefix, json } => kv_cmds::scan(&dir, &prefix, json),
        Command::Apply { dir } => apply::run(&dir),
        Command::Verify { dir, json } => verify::run(&dir, json),
        Command::Dump {
            dir,
            from,
            to,
            json,
        } => dump::run(&dir, from, to, json),
        Command::Stats { dir, json } => stats::run(&dir, json),
        Command::Repair {
            dir,
            salvage,
            dry_run,
            json,
        } => repair::run(&dir, salvage, dry_run, json),
        Command::Checkpoint { dir, json } => checkpoint::run(&dir, json),
        Command::Upgrade { dir, dry_run, json } => upgrade::run(&dir, dry_run, json),
        Command::Export { dir, json: _ } => export::export(&dir),
        Command::Import { dir, replace } => export::import(&dir, replace),
        Command::Snapshot(SnapshotCommand::Create { dir, name }) => snapshot::create(&dir, &name),
        Command::Snapshot(SnapshotCommand::List { dir, json }) => snapshot::list(&dir, json),
        Command::Snapshot(SnapshotCommand::Restore { dir, name }) => snapshot::restore(&dir, &name),
        Command::Snapshot(SnapshotCommand::Delete { dir, name }) => snapshot::delete(&dir, &name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
