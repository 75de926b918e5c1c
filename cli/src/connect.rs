//! `shmsock connect`: the client side of the pipe.

use std::sync::Arc;
use std::time::Duration;

use shmsock::{ErrorKind, Keypair, Options, PublicKey, Stream};

use crate::error::{code, CliError};
use crate::events::{signal_exit_code, Events};
use crate::pipe::{self, End, Outbox};
use crate::records::Mode;

/// What `connect` was asked to do.
pub struct Connect {
    /// The endpoint name.
    pub name: String,
    /// The server's pinned key.
    pub server_key: PublicKey,
    /// Our identity (None: a fresh key for this connection).
    pub key: Option<Keypair>,
    /// Text or binary records.
    pub mode: Mode,
    /// Send stdin to the server (and close when it ends).
    pub read_stdin: bool,
    /// How long to wait for a server to appear.
    pub wait: Option<Duration>,
    /// No informational lines on stderr.
    pub quiet: bool,
}

/// Runs `connect`; returns the exit code.
pub fn run(args: Connect) -> Result<u8, CliError> {
    let keypair = args.key.clone().unwrap_or_else(Keypair::generate);
    let client_key = *keypair.public();
    let options =
        Options::new().server_key(args.server_key).keypair(keypair).connect_wait(args.wait.unwrap_or_default());
    // Connected (waiting up to --wait for the server) before the signals are
    // taken over: a Ctrl-C while waiting ends the command at once, as there
    // is no connection to close yet.
    let stream = Stream::connect(&args.name, &options).map_err(|e| connect_error(&args, &options, &client_key, &e))?;
    let events = Events::new()?;
    let stream = Arc::new(stream);
    pipe::info(
        args.quiet,
        format_args!("connected to '{}' (server {}), as {}", args.name, args.server_key.fingerprint(), client_key),
    );
    let outbox = Arc::new(Outbox::default());
    outbox.set(stream.clone());
    if args.read_stdin {
        pipe::spawn_stdin_sender(args.mode, outbox, events.clone())?;
    }
    let mut out = pipe::stdout_writer(args.mode);
    let end = pipe::receive(&stream, &events, &mut out, true)?;
    let exit = match end {
        End::PeerClosed => {
            pipe::info(args.quiet, format_args!("the server closed the connection"));
            code::OK
        }
        End::StdinDone | End::StdoutClosed => code::OK,
        End::Signal(signal) => signal_exit_code(signal),
        End::Broken(err) => return Err(err),
    };
    let _ = stream.close();
    Ok(exit)
}

fn connect_error(args: &Connect, options: &Options, client_key: &PublicKey, err: &shmsock::Error) -> CliError {
    let name = &args.name;
    let what = format!("connecting to '{name}'");
    match err.kind() {
        ErrorKind::NotFound => CliError::new(
            code::NOT_FOUND,
            what,
            format!("no server is listening on '{name}'"),
            format!("Start one with `shmsock listen {name}`, or give --wait SECONDS to wait for it"),
        ),
        ErrorKind::ServerKeyMismatch => CliError::new(
            code::KEY_MISMATCH,
            what,
            format!(
                "the server of '{name}' does not hold the key given with --server-key (fingerprint {})",
                args.server_key.fingerprint()
            ),
            "Use the key the server printed when it started (`shmsock keygen -y -f FILE` prints it from the server's key file)",
        ),
        ErrorKind::HandshakeRejected => CliError::new(
            code::REJECTED,
            what,
            format!("the server refused this client: our key {client_key} is not on its allow-list, or our uid is not allowed"),
            format!(
                "Ask its operator to allow our key (`shmsock listen {name} --allow {client_key}`); use --key FILE to connect with a key that stays the same"
            ),
        ),
        ErrorKind::Timeout => CliError::new(
            code::TIMEOUT,
            what,
            format!("the server did not complete the handshake within {} s", options.handshake_timeout.as_secs_f64()),
            "A `shmsock listen` serves one client at a time, so retry when the current client is done; else check that the server process is not stopped",
        ),
        _ => CliError::core(what, err),
    }
}
