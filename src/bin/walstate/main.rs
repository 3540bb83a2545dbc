//! `walstate`: the recovery CLI. It tells an operator what is on disk (`verify`, `dump`,
//! `stats`), what recovery would do, and lets them fix it without losing anything
//! (`repair`, `checkpoint`, `snapshot`, `export`/`import`). Value-level commands work on
//! the built-in key-value state; the rest work on a store of any state type.
//!
//! One file per subcommand, holding its clap arguments and help text (doc comments and
//! `#[command(...)]` attributes on its `Args` struct) next to its code; this one only
//! lists the subcommands, dispatches and turns failures into messages and exit codes.
//! It never touches bytes on disk itself.

mod apply;
mod checkpoint;
mod completions;
mod demo;
mod dump;
mod export;
mod kv_cmds;
mod man;
mod output;
mod repair;
mod snapshot;
mod stats;
mod upgrade;
mod verify;

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
  walstate completions bash          # shell completions (also zsh, fish, ...)
  walstate man | man -l -            # this manual as a man page

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
    Demo(demo::Args),
    #[command(name = "__demo-writer", hide = true)]
    DemoWriter(demo::WriterArgs),
    Put(kv_cmds::PutArgs),
    Get(kv_cmds::GetArgs),
    Del(kv_cmds::DelArgs),
    Scan(kv_cmds::ScanArgs),
    Apply(apply::Args),
    Verify(verify::Args),
    Dump(dump::Args),
    Stats(stats::Args),
    Repair(repair::Args),
    Upgrade(upgrade::Args),
    Checkpoint(checkpoint::Args),
    Export(export::ExportArgs),
    Import(export::ImportArgs),
    Snapshot(snapshot::Args),
    Completions(completions::Args),
    Man(man::Args),
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
    if cli.command.json() {
        output::disable_progress();
    }
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => ExitCode::from(failure.report()),
    }
}

impl Command {
    /// The command line asks for `--json`: no progress bars then, even on a terminal.
    /// A command that gains a `--json` flag belongs here.
    fn json(&self) -> bool {
        match self {
            Command::Scan(a) => a.json,
            Command::Verify(a) => a.json,
            Command::Dump(a) => a.json,
            Command::Stats(a) => a.json,
            Command::Repair(a) => a.json,
            Command::Upgrade(a) => a.json,
            Command::Checkpoint(a) => a.json,
            // Its output is always JSON, but that is the data; progress goes to stderr.
            Command::Export(a) => a.json,
            Command::Snapshot(a) => a.json(),
            Command::Apply(_)
            | Command::Demo(_)
            | Command::DemoWriter(_)
            | Command::Put(_)
            | Command::Get(_)
            | Command::Del(_)
            | Command::Import(_)
            | Command::Completions(_)
            | Command::Man(_) => false,
        }
    }
}

fn run(command: Command) -> CliResult {
    match command {
        Command::Demo(a) => demo::run(&a.dir),
        Command::DemoWriter(a) => demo::run_writer(&a.dir, a.threads),
        Command::Put(a) => kv_cmds::put(&a.dir, &a.key, &a.value),
        Command::Get(a) => kv_cmds::get(&a.dir, &a.key),
        Command::Del(a) => kv_cmds::del(&a.dir, &a.key),
        Command::Scan(a) => kv_cmds::scan(&a.dir, &a.prefix, a.json),
        Command::Apply(a) => apply::run(&a.dir),
        Command::Verify(a) => verify::run(&a.dir, a.json),
        Command::Dump(a) => dump::run(&a.dir, a.from, a.to, a.json),
        Command::Stats(a) => stats::run(&a.dir, a.json),
        Command::Repair(a) => repair::run(&a.dir, a.salvage, a.dry_run, a.json),
        Command::Upgrade(a) => upgrade::run(&a.dir, a.dry_run, a.json),
        Command::Checkpoint(a) => checkpoint::run(&a.dir, a.json),
        Command::Export(a) => export::export(&a.dir),
        Command::Import(a) => export::import(&a.dir, a.replace),
        Command::Snapshot(a) => snapshot::run(a),
        Command::Completions(a) => completions::run(a.shell),
        Command::Man(a) => man::run(a.out.as_deref()),
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
