//! `shmsock completions` and `shmsock man`: shell completion scripts
//! (clap_complete) and manual pages (clap_mangen), both generated from the
//! clap command line itself, so they never drift from `--help`. The man page
//! is printed at run time rather than by a build step: a build script would
//! need the command line in a second crate, and `cargo install` does not
//! install man pages anyway.

use std::path::{Path, PathBuf};

use clap::Args;
use clap_complete::Shell;

use crate::error::{code, CliError};
use crate::output::write_stdout;

pub const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  shmsock completions bash > ~/.local/share/bash-completion/completions/shmsock
  shmsock completions zsh > ~/.zfunc/_shmsock      # with fpath+=(~/.zfunc)
  shmsock completions fish > ~/.config/fish/completions/shmsock.fish";

pub const MAN_EXAMPLES: &str = "\
Examples:
  shmsock man | man -l -                   # read it now
  shmsock man > ~/.local/share/man/man1/shmsock.1
  shmsock man --dir ~/.local/share/man/man1  # shmsock.1 and shmsock-<command>.1";

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

#[derive(Args)]
pub struct ManArgs {
    /// Write shmsock.1 and one page per command (shmsock-listen.1, ...) into DIR
    /// instead of printing shmsock.1
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script of `shell` for `command`.
pub fn completions(command: &mut clap::Command, shell: Shell) -> Result<u8, CliError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, command, "shmsock", &mut script);
    write_stdout(&script)
}

/// Prints the man page of `command`, or writes every page into `dir`.
pub fn man(command: clap::Command, dir: Option<&Path>) -> Result<u8, CliError> {
    let Some(dir) = dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page).map_err(|e| CliError::io("rendering the man page", &e))?;
        return write_stdout(&page);
    };
    let what = format!("writing man pages to {}", dir.display());
    if !dir.is_dir() {
        return Err(CliError::new(
            code::FAILED,
            what,
            "not a directory",
            "Create it first, or name another with --dir",
        ));
    }
    clap_mangen::generate_to(command, dir).map_err(|e| CliError::io(what, &e))?;
    Ok(code::OK)
}
