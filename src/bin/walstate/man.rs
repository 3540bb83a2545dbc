//! `man`: manual pages in roff, generated from the clap definition by `clap_mangen`
//! (the same text as `--help`), so they always match this build.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::Man;

use crate::output::Failure;
use crate::{CliResult, exit};

/// Print the walstate(1) manual page, or write one page per command into a directory.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    walstate man | man -l -\n  \
    walstate man --out ~/.local/share/man/man1    # walstate.1, walstate-put.1, ...\n\n\
    Without --out, prints walstate.1 (the main page: every command, the exit codes) on \
    stdout. With --out, writes walstate.1 and walstate-COMMAND.1 for every command (and \
    walstate-snapshot-create.1 etc.) into DIR, creating it, and lists the files on stderr.")]
pub(crate) struct Args {
    /// Write every page into this directory instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
}

/// `walstate man [--out DIR]`.
pub(crate) fn run(out: Option<&Path>) -> CliResult {
    let mut command = crate::Cli::command().disable_help_subcommand(true);
    command.build();
    let Some(dir) = out else {
        let mut page = Vec::new();
        Man::new(command).render(&mut page)?;
        let mut stdout = io::stdout().lock();
        stdout.write_all(&page)?;
        stdout.flush()?;
        return Ok(exit::OK);
    };
    let failed = |what: &str, path: &Path, err: io::Error| {
        Failure::new(exit::FAILURE, format!("{what} {}: {err}", path.display()))
    };
    std::fs::create_dir_all(dir).map_err(|err| failed("creating", dir, err))?;
    let mut written = Vec::new();
    write_pages(command, dir, &mut written).map_err(|err| failed("writing a page in", dir, err))?;
    for path in &written {
        eprintln!("walstate: wrote {}", path.display());
    }
    Ok(exit::OK)
}

/// The page of `command`, then those of its visible subcommands, depth first.
fn write_pages(command: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, written)?;
    }
    written.push(Man::new(command).generate_to(dir)?);
    Ok(())
}
