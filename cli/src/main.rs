//! `shmsock`: keys, a netcat-style pipe over encrypted shared-memory sockets,
//! endpoint listing, and the benchmark.
//!
//! This file holds the command line (clap) and dispatches to one module per
//! command; errors and exit codes live in [`error`].

mod bench;
mod connect;
mod docs;
mod error;
mod events;
mod keygen;
mod keys;
mod list;
mod listen;
mod output;
mod pipe;
mod plot;
mod records;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::error::{code, CliError, EXIT_CODES_HELP};
use crate::records::Mode;

const ABOUT: &str = "Encrypted, authenticated message sockets over shared memory, from the shell";

const LONG_ABOUT: &str = "\
Encrypted, authenticated message sockets over shared memory, from the shell.

A server binds an endpoint NAME (private to this user); clients connect to it by
NAME and must pin the server's public key. Every connection is end-to-end
encrypted (Noise IK, then AEGIS-128L or ChaCha20-Poly1305) over a shared-memory
segment, so other users and other processes cannot read or forge messages.";

const MAIN_EXAMPLES: &str = "\
Examples:
  shmsock keygen -f server.key                      # a key that stays the same
  shmsock listen logs -i server.key > out.txt &     # serve 'logs', write what arrives
  printf 'a\\nb\\n' | shmsock connect logs --server-key server.key.pub --wait 5
  shmsock list --prune                              # remove stale endpoints
  shmsock bench --quick --plot bench.svg
  shmsock completions bash > ~/.local/share/bash-completion/completions/shmsock
  shmsock man | man -l -";

const KEYGEN_EXAMPLES: &str = "\
Examples:
  shmsock keygen                         # writes ./shmsock.key and ./shmsock.key.pub
  shmsock keygen -f server.key           # prints public-key: and fingerprint: lines
  shmsock keygen -f server.key --force   # replaces the key (the old one is lost)
  shmsock keygen -y -f server.key        # the public key of a key file
  shmsock keygen -l -f server.key.pub    # fingerprint and public key of any KEY
  shmsock keygen -q -f server.key        # no output but errors
  shmsock keygen --json -f server.key | jq -r .public_key

JSON fields (stable): public_key, fingerprint, and when a key was written,
file and public_file.

The key file holds the secret: it is written with mode 0600 and refused when
others can read it. FILE.pub holds the public key alone, for clients.";

const LISTEN_EXAMPLES: &str = "\
Messages:
  Every message received is written to stdout and flushed at once: in text mode
  followed by a newline; with --binary as a 4-byte little-endian length and then
  the bytes. Each stdin line (without its newline), or with --binary each such
  record, is sent to the connected client.

Ending:
  The command ends with status 0 when the client closes the connection (with
  --keep-open it waits for the next client instead). When stdin ends, listen
  stops sending but keeps receiving, so `shmsock listen x > out &` works in
  scripts, where a background job's stdin is empty; with --close-on-eof it
  closes the connection once stdin has ended and been sent, and ends. In an
  interactive shell, a background listen does not read the terminal.

Ready line:
  With --json, listen prints one JSON line on stderr once it is serving, and no
  other informational lines: {\"event\": \"ready\", \"name\": ..., \"public_key\":
  \"shmsock-pk:...\", \"fingerprint\": ..., \"pid\": ...} (stable fields). stdout
  carries only messages, so scripts read the key from stderr.

Examples:
  shmsock listen logs > out.txt &                   # prints its key on stderr
  exec 3< <(shmsock listen logs --json 2>&1 >out.txt)
  read -r ready <&3; key=$(jq -r .public_key <<<\"$ready\")
  shmsock listen logs -i server.key --keep-open >> all.log
  shmsock listen jobs -i server.key --allow alice.key.pub --allow bob.key.pub
  printf 'hello\\n' | shmsock listen greet -N        # send, then close
  shmsock listen blobs --binary > records.bin

Exit codes: see `shmsock --help`.";

const CONNECT_EXAMPLES: &str = "\
Messages are as for `shmsock listen` (text lines, or --binary records).

Ending:
  When stdin ends, connect writes out every message that has already arrived,
  then closes the connection cleanly: the server receives everything sent before,
  then the close, and both sides end with status 0. Messages the server sends
  after that are not received; to only receive, use -d. When the server closes,
  connect ends with status 0 after flushing stdout.

Examples:
  printf 'a\\nb\\n' | shmsock connect logs --server-key shmsock-pk:AbC...
  tail -f app.log | shmsock connect logs -s server.key.pub -i client.key
  shmsock connect greet -s server.key.pub -d        # receive only
  shmsock connect jobs -s server.key.pub --wait 10 < requests.txt

Exit codes: see `shmsock --help`.";

const LIST_EXAMPLES: &str = "\
A stale endpoint was left by a server that died; the next `shmsock listen` on
its name reclaims it, and `--prune` removes it. Pruning takes the endpoint's
lock as a server would, so it never removes a live endpoint (nor one a new
server is binding at that moment), and touches only files of this user.

JSON fields (stable): name, pid (null if unknown), alive (bool), state
(\"alive\" or \"stale\"), socket (path).

Examples:
  shmsock list
  shmsock list --json | jq -r '.[] | select(.alive) | .name'
  shmsock list --prune                   # prints a `pruned NAME` line for each";

const BENCH_EXAMPLES: &str = "\
Measures shmsock (each cipher) against a plaintext Unix socket and a Unix socket
carrying the same AEAD, between two processes pinned to one core and to two
cores, and prints latency and throughput with their ratios. Figures are only
meaningful as ratios within one launch, on an idle machine.

Examples:
  shmsock bench --quick
  shmsock bench --plot bench.svg
  shmsock bench --json bench.json         # the table on stdout, the report in the file
  shmsock bench --json - | jq .ratios     # the report on stdout instead of the table";

#[derive(Parser)]
#[command(
    name = "shmsock",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = format!("{MAIN_EXAMPLES}\n\n{EXIT_CODES_HELP}"),
    arg_required_else_help = true,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a key file, or print the public key or fingerprint of one
    #[command(after_help = KEYGEN_EXAMPLES)]
    Keygen(KeygenArgs),
    /// Serve an endpoint: print what clients send, send them stdin (like `nc -l`)
    #[command(after_help = LISTEN_EXAMPLES)]
    Listen(ListenArgs),
    /// Connect to an endpoint: send stdin, print what the server sends (like `nc`)
    #[command(after_help = CONNECT_EXAMPLES)]
    Connect(ConnectArgs),
    /// List this user's endpoints: name, owner pid, alive or stale
    #[command(after_help = LIST_EXAMPLES)]
    List(ListArgs),
    /// Benchmark shmsock against Unix sockets in one launch
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(BenchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = docs::COMPLETIONS_EXAMPLES)]
    Completions(docs::CompletionsArgs),
    /// Print the manual page (roff), or write one per command to a directory
    #[command(after_help = docs::MAN_EXAMPLES)]
    Man(docs::ManArgs),
}

#[derive(Args)]
struct KeygenArgs {
    /// The key file [default: shmsock.key]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Replace an existing key file
    #[arg(long, conflicts_with_all = ["print_public", "fingerprint"])]
    force: bool,
    /// Print the public key of an existing key file
    #[arg(short = 'y', long = "print-public", conflicts_with = "fingerprint")]
    print_public: bool,
    /// Print the fingerprint and public key of a key file or .pub file
    #[arg(short = 'l', long = "fingerprint")]
    fingerprint: bool,
    /// Print nothing but errors (a new key's files are still written)
    #[arg(short = 'q', long, conflicts_with_all = ["print_public", "fingerprint", "json"])]
    quiet: bool,
    /// Print one JSON object (public_key, fingerprint; file and public_file when written)
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct IoArgs {
    /// Length-prefixed binary records instead of text lines
    #[arg(short = 'b', long)]
    binary: bool,
    /// Do not read stdin (only receive)
    #[arg(short = 'd', long = "no-stdin")]
    no_stdin: bool,
    /// No informational lines on stderr (errors are still reported)
    #[arg(short = 'q', long)]
    quiet: bool,
}

#[derive(Args)]
struct ListenArgs {
    /// The endpoint name: 1 to 100 characters from A-Z a-z 0-9 . _ -
    #[arg(value_name = "NAME", value_parser = endpoint_name)]
    name: String,
    /// This server's key file [default: a new key for this run]
    #[arg(short = 'i', long = "key", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Accept only clients with this key (`shmsock-pk:` text or a key or .pub file); repeatable
    #[arg(short = 'a', long = "allow", value_name = "KEY")]
    allow: Vec<String>,
    /// Serve one client after another instead of ending after the first
    #[arg(short = 'k', long = "keep-open")]
    keep_open: bool,
    /// Close the connection and end once stdin has ended and been sent
    #[arg(short = 'N', long = "close-on-eof", conflicts_with = "no_stdin")]
    close_on_eof: bool,
    /// Print a JSON ready line (with the public key) on stderr instead of the informational lines
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    io: IoArgs,
}

#[derive(Args)]
struct ConnectArgs {
    /// The endpoint name
    #[arg(value_name = "NAME", value_parser = endpoint_name)]
    name: String,
    /// The server's public key (`shmsock-pk:` text, or a key file or .pub file)
    #[arg(short = 's', long = "server-key", value_name = "KEY", required = true)]
    server_key: String,
    /// This client's key file [default: a new key for this connection]
    #[arg(short = 'i', long = "key", value_name = "FILE")]
    key: Option<PathBuf>,
    /// If no server is listening yet, keep trying for up to SECONDS
    #[arg(short = 'w', long = "wait", value_name = "SECONDS", value_parser = seconds)]
    wait: Option<Duration>,
    #[command(flatten)]
    io: IoArgs,
}

#[derive(Args)]
struct ListArgs {
    /// A JSON array of objects instead of the table
    #[arg(long)]
    json: bool,
    /// Remove this user's stale endpoints (never a live one)
    #[arg(long, conflicts_with = "json")]
    prune: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// The short run (about 10 s) instead of the full one (about 75 s)
    #[arg(long)]
    quick: bool,
    /// Also write an SVG plot of latency and throughput to FILE
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Also write the whole report as JSON to FILE (`-`: to stdout, instead of the table)
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Tiny runs that only check the machinery (for tests)
    #[arg(long, hide = true, conflicts_with = "quick")]
    smoke: bool,
}

fn endpoint_name(name: &str) -> Result<String, String> {
    shmsock::handshake::validate_endpoint_name(name).map(|()| name.to_string()).map_err(|e| e.message().to_string())
}

fn seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=1e6).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("'{text}' is not a number of seconds (0 to 1000000)")),
    }
}

fn mode(io: &IoArgs) -> Mode {
    if io.binary {
        Mode::Binary
    } else {
        Mode::Text
    }
}

/// Whether to read stdin: not with -d, nor when reading it would stop a
/// background job.
fn read_stdin(io: &IoArgs) -> bool {
    if io.no_stdin {
        return false;
    }
    if pipe::stdin_is_background_terminal() {
        pipe::info(io.quiet, format_args!("not reading stdin: it is the terminal of a background job (as with -d)"));
        return false;
    }
    true
}

fn run(command: Command) -> Result<u8, CliError> {
    match command {
        Command::Keygen(a) => {
            let action = if a.print_public {
                keygen::Action::PrintPublic
            } else if a.fingerprint {
                keygen::Action::Fingerprint
            } else {
                keygen::Action::Generate { force: a.force }
            };
            let output = if a.json {
                keygen::Output::Json
            } else if a.quiet {
                keygen::Output::Quiet
            } else {
                keygen::Output::Text
            };
            keygen::run(a.file.as_deref(), action, output)
        }
        Command::Listen(a) => {
            let key = a.key.as_deref().map(keys::load_identity).transpose()?;
            let allow = a.allow.iter().map(|k| keys::parse_public_key(k, "--allow")).collect::<Result<Vec<_>, _>>()?;
            listen::run(listen::Listen {
                name: a.name,
                key,
                allow,
                mode: mode(&a.io),
                read_stdin: read_stdin(&a.io),
                close_on_eof: a.close_on_eof,
                keep_open: a.keep_open,
                quiet: a.io.quiet || a.json,
                json: a.json,
            })
        }
        Command::Connect(a) => {
            let server_key = keys::parse_public_key(&a.server_key, "--server-key")?;
            let key = a.key.as_deref().map(keys::load_identity).transpose()?;
            connect::run(connect::Connect {
                name: a.name,
                server_key,
                key,
                mode: mode(&a.io),
                read_stdin: read_stdin(&a.io),
                wait: a.wait,
                quiet: a.io.quiet,
            })
        }
        Command::List(a) if a.prune => list::prune(),
        Command::List(a) => list::run(a.json),
        Command::Bench(a) => bench::run(bench::Bench { quick: a.quick, smoke: a.smoke, plot: a.plot, json: a.json }),
        Command::Completions(a) => docs::completions(&mut Cli::command(), a.shell),
        Command::Man(a) => docs::man(Cli::command(), a.dir.as_deref()),
    }
}

fn main() -> ExitCode {
    // The bench re-executes this binary as its peer process: that must be
    // handled before anything else looks at the arguments.
    if let Some(status) = shmsock_bench::maybe_run_peer() {
        return ExitCode::from(u8::try_from(status).unwrap_or(code::FAILED));
    }
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(status) => ExitCode::from(status),
        Err(err) => {
            error::eprint_line(&err.line());
            ExitCode::from(err.code())
        }
    }
}
