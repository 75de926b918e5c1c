//! The Rust interop agent: keygen, pubkey, an echo server and a checking
//! client, on the `shmsock` crate only.
//!
//! The command line, the output lines and the exit codes are the contract in
//! tests/interop/README.md ("The agent command line"). Build it with
//! `./build.sh` next to this crate, run it with `./agent`.
//!
//! The command line is parsed by clap; a clap error is a usage error (exit 2).
//!
//! `serve` uses the event-driven `shmsock::Server` (its `Connection` gives the
//! stream, hence the cipher of the `connect` line); `client` uses `Stream`;
//! `publish` and `subscribe` use `Publisher` and `Subscriber`.
//!
//! One module per command: [`serve`], [`client`], [`topics`] (publish and
//! subscribe); [`cli`] is the command line and [`message`] the messages they
//! check; the key commands and the exit codes are here.

mod cli;
mod client;
mod message;
mod serve;
mod topics;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use shmsock::{Error, Keypair};

use cli::{Cli, Command};

/// Why the agent stops early; each maps to one exit code.
pub(crate) enum Failure {
    /// A check failed (exit 1); the text is the whole stderr line.
    Verify(String),
    /// Bad command line (exit 2).
    Usage(String),
    /// shmsock reported an error (exit 3).
    Shmsock(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Shmsock(e)
    }
}

pub(crate) type Outcome = Result<(), Failure>;

/// Prints one stdout line. Rust's stdout is line buffered, so it goes out at
/// once, also into a pipe. A closed stdout is not our problem to report.
pub(crate) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints one diagnostic line on stderr.
pub(crate) fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// clap's message for a usage error on one line, without its `error: ` prefix
/// and its usage and help lines.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let lines: Vec<&str> =
        text.lines().map(str::trim).take_while(|l| !l.starts_with("Usage:")).filter(|l| !l.is_empty()).collect();
    let joined = lines.join(" ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_string()
}

// ----------------------------------------------------------------- keys

fn keygen(path: &std::path::Path) -> Outcome {
    let keypair = Keypair::generate();
    keypair.save(path)?;
    say(&format!("public {}", keypair.public().to_text()));
    Ok(())
}

fn pubkey(path: &std::path::Path) -> Outcome {
    let keypair = Keypair::load(path)?;
    say(&format!("public {} {}", keypair.public().to_text(), keypair.public().fingerprint()));
    Ok(())
}

// ----------------------------------------------------------------- main

fn run(command: Command) -> Outcome {
    match command {
        Command::Keygen { file } => keygen(&file),
        Command::Pubkey { file } => pubkey(&file),
        Command::Serve(args) => serve::serve(args),
        Command::Client(args) => client::client(args),
        Command::Publish(args) => topics::publish(args),
        Command::Subscribe(args) => topics::subscribe(args),
    }
}

fn main() -> ExitCode {
    let outcome = match Cli::try_parse() {
        Ok(cli) => run(cli.command),
        // --help: the help on stdout, status 0.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => Err(Failure::Usage(clap_message(&e))),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Verify(line)) => {
            note(&line);
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            note(&format!("usage error: {message} (run 'agent --help' for the command line)"));
            ExitCode::from(2)
        }
        Err(Failure::Shmsock(e)) => {
            note(&format!("error {}: {}", e.kind().name(), e.message()));
            ExitCode::from(3)
        }
    }
}
