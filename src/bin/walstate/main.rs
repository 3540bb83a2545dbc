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
use std::time::Duration;

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
    /// Bad command line (sysexits EX_USAGE), including an invalid snapshot name.
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
Every error ends with a `next:` line. --json (any command): JSON on stdout, and an
error as one JSON object on stderr: {\"error\",\"path\",\"next\",\"exit_code\"}.
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
    /// Print JSON: success output as JSON on stdout; an error as one JSON object on
    /// stderr, {"error":..,"path":..,"next":..,"exit_code":N} (exit codes unchanged).
    #[arg(long, global = true)]
    json: bool,
    /// How long a writing command waits for the writer lock, in seconds. Other writers
    /// (a daemon, another CLI) hold it only while they commit; a writer opened with
    /// `Writers::Exclusive` holds it until it closes, and then the command fails with
    /// exit 3 naming it.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 10.0,
          value_parser = output::parse_seconds)]
    lock_wait: f64,
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
        Err(err) => return usage_error(err),
    };
    output::set_json(cli.json);
    output::set_lock_wait(Duration::from_secs_f64(cli.lock_wait));
    if cli.json {
        output::disable_progress();
    }
    match run(cli.command) {
        Ok(code) => {
            output::print_notes();
            ExitCode::from(code)
        }
        Err(failure) => ExitCode::from(failure.report()),
    }
}

/// A command line clap refused (or `--help`/`--version`): clap's text, or in JSON mode
/// (`--json` anywhere on the line) one JSON error object on stderr.
fn usage_error(err: clap::Error) -> ExitCode {
    let code = match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => exit::OK,
        _ => exit::USAGE,
    };
    let json = std::env::args_os().skip(1).any(|arg| arg == "--json");
    if code == exit::OK {
        let _ = err.print();
        return ExitCode::from(code);
    }
    let next = "`walstate help` lists the commands; `walstate help COMMAND` shows one's arguments and examples";
    if !json {
        let _ = err.print();
        eprintln!("walstate: next: {next}");
        return ExitCode::from(code);
    }
    output::set_json(true);
    let text = err.render().to_string();
    // clap's first paragraph is the error ("error: ..." and any lines under it).
    let message = text
        .trim()
        .split("\n\n")
        .next()
        .unwrap_or("bad command line")
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let message = message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_owned();
    let failure = output::Failure::new(exit::USAGE, message).hint(next);
    ExitCode::from(failure.report())
}

/// The store directory a command works on, if any (hints name it).
fn store_dir(command: &Command) -> Option<&std::path::Path> {
    Some(match command {
        Command::Demo(a) => &a.dir,
        Command::DemoWriter(a) => &a.dir,
        Command::Put(a) => &a.dir,
        Command::Get(a) => &a.dir,
        Command::Del(a) => &a.dir,
        Command::Scan(a) => &a.dir,
        Command::Apply(a) => &a.dir,
        Command::Verify(a) => &a.dir,
        Command::Dump(a) => &a.dir,
        Command::Stats(a) => &a.dir,
        Command::Repair(a) => &a.dir,
        Command::Upgrade(a) => &a.dir,
        Command::Checkpoint(a) => &a.dir,
        Command::Export(a) => &a.dir,
        Command::Import(a) => &a.dir,
        Command::Snapshot(a) => a.command.dir(),
        Command::Completions(_) | Command::Man(_) => return None,
    })
}

fn run(command: Command) -> CliResult {
    if let Some(dir) = store_dir(&command) {
        output::set_store_dir(dir);
    }
    let json = output::json_mode();
    match command {
        Command::Demo(a) => demo::run(&a.dir, json),
        Command::DemoWriter(a) => demo::run_writer(&a.dir, a.threads),
        Command::Put(a) => kv_cmds::put(&a.dir, &a.key, &a.value, json),
        Command::Get(a) => kv_cmds::get(&a.dir, &a.key, json),
        Command::Del(a) => kv_cmds::del(&a.dir, &a.key, json),
        Command::Scan(a) => kv_cmds::scan(&a.dir, &a.prefix, json),
        // apply's output is JSON lines already; its errors follow --json through main.
        Command::Apply(a) => apply::run(&a.dir),
        Command::Verify(a) => verify::run(&a.dir, json),
        Command::Dump(a) => dump::run(&a.dir, a.from, a.to, json),
        Command::Stats(a) => stats::run(&a.dir, json),
        Command::Repair(a) => repair::run(&a.dir, a.salvage, a.dry_run, json),
        Command::Upgrade(a) => upgrade::run(&a.dir, a.dry_run, json),
        Command::Checkpoint(a) => checkpoint::run(&a.dir, json),
        Command::Export(a) => export::export(&a.dir),
        Command::Import(a) => export::import(&a.dir, a.replace, json),
        Command::Snapshot(a) => snapshot::run(a, json),
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
