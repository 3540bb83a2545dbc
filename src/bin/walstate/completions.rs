//! `completions`: a shell completion script, generated from the clap definition by
//! `clap_complete`, so it always matches the commands and options of this build.

use std::io::{self, Write};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::{CliResult, exit};

/// Print a shell completion script for walstate on stdout.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    walstate completions bash > ~/.local/share/bash-completion/completions/walstate\n  \
    walstate completions zsh > ~/.zfunc/_walstate    # with fpath+=(~/.zfunc) before compinit\n  \
    walstate completions fish > ~/.config/fish/completions/walstate.fish\n  \
    walstate completions powershell >> $PROFILE\n  \
    walstate completions elvish >> ~/.config/elvish/rc.elv")]
pub(crate) struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub(crate) shell: Shell,
}

/// `walstate completions SHELL`.
pub(crate) fn run(shell: Shell) -> CliResult {
    let mut command = visible_commands();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "walstate", &mut script);
    let mut out = io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(exit::OK)
}

/// The command line without its hidden subcommands (the demo's child process): the
/// generators of `clap_complete` offer hidden subcommands too. The top level has no
/// arguments of its own but `--help` and `--version`, so only its texts are copied.
fn visible_commands() -> clap::Command {
    let full = crate::Cli::command();
    let visible: Vec<clap::Command> = full
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .cloned()
        .collect();
    let mut command = clap::Command::new("walstate")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .subcommands(visible);
    if let Some(about) = full.get_about() {
        command = command.about(about.clone());
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hidden_subcommands_are_left_out() {
        let full = crate::Cli::command();
        let visible = visible_commands();
        let names = |c: &clap::Command| -> Vec<String> {
            c.get_subcommands()
                .map(|s| s.get_name().to_owned())
                .collect()
        };
        let expected: Vec<String> = full
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name().to_owned())
            .collect();
        assert!(names(&full).iter().any(|n| n.starts_with("__")));
        assert_eq!(names(&visible), expected);
        visible.debug_assert();
    }
}
