//! `shmsock listen`: the server side of the pipe.

use std::os::fd::AsFd;
use std::sync::Arc;

use shmsock::{ErrorKind, Keypair, Listener, Options, PublicKey, Stream};

use crate::error::{code, CliError};
use crate::events::{signal_exit_code, Events};
use crate::output::json_line;
use crate::pipe::{self, End, Outbox};
use crate::records::Mode;

/// What `listen` was asked to do.
pub struct Listen {
    /// The endpoint name to bind.
    pub name: String,
    /// Our identity (None: a fresh key for this run).
    pub key: Option<Keypair>,
    /// Client keys allowed (empty: any).
    pub allow: Vec<PublicKey>,
    /// Text or binary records.
    pub mode: Mode,
    /// Send stdin to the clients.
    pub read_stdin: bool,
    /// Close the connection (and stop) once stdin has ended.
    pub close_on_eof: bool,
    /// Serve one client after another instead of one.
    pub keep_open: bool,
    /// No informational lines on stderr.
    pub quiet: bool,
    /// Print the JSON ready line on stderr once serving.
    pub json: bool,
}

/// The `--json` ready line. The field names are stable.
#[derive(serde::Serialize)]
struct Ready<'a> {
    /// Always "ready".
    event: &'static str,
    name: &'a str,
    public_key: String,
    fingerprint: String,
    pid: u32,
}

/// Runs `listen`; returns the exit code.
pub fn run(args: Listen) -> Result<u8, CliError> {
    let events = Events::new()?;
    let keypair = args.key.clone().unwrap_or_else(Keypair::generate);
    let public = *keypair.public();
    let mut options = Options::new().keypair(keypair);
    if !args.allow.is_empty() {
        options = options.allow_clients(args.allow.iter().copied());
    }
    let listener = Listener::bind(&args.name, &options).map_err(|e| bind_error(&args.name, &e))?;
    let name = &args.name;
    if args.json {
        let ready = Ready {
            event: "ready",
            name,
            public_key: public.to_string(),
            fingerprint: public.fingerprint(),
            pid: std::process::id(),
        };
        crate::error::eprint_line(json_line(&ready)?.trim_end());
    }
    pipe::info(
        args.quiet,
        format_args!("listening on '{name}' with key {public} (fingerprint {})", public.fingerprint()),
    );
    pipe::info(args.quiet, format_args!("clients connect with: shmsock connect {name} --server-key {public}"));
    let outbox = Arc::new(Outbox::default());
    if args.read_stdin {
        pipe::spawn_stdin_sender(args.mode, outbox.clone(), events.clone())?;
    }
    let mut out = pipe::stdout_writer(args.mode);
    loop {
        let stream = match accept(&listener, &events, &args)? {
            Accepted::Client(stream) => Arc::new(*stream),
            Accepted::Done(exit) => return Ok(exit),
        };
        let peer = stream.peer_public_key();
        pipe::info(
            args.quiet,
            format_args!(
                "client connected: pid {}, key {peer} (fingerprint {})",
                stream.peer_credentials().pid,
                peer.fingerprint()
            ),
        );
        outbox.set(stream.clone());
        let end = pipe::receive(&stream, &events, &mut out, args.close_on_eof);
        outbox.clear();
        let exit = match end? {
            End::PeerClosed => {
                let stats = stream.stats();
                pipe::info(
                    args.quiet,
                    format_args!(
                        "the client closed the connection ({} messages received, {} sent)",
                        stats.messages_received, stats.messages_sent
                    ),
                );
                code::OK
            }
            End::StdinDone | End::StdoutClosed => code::OK,
            End::Signal(signal) => {
                let _ = stream.close();
                return Ok(signal_exit_code(signal));
            }
            End::Broken(err) if args.keep_open => {
                crate::error::eprint_line(&format!("{}; waiting for the next client", err.line()));
                continue;
            }
            End::Broken(err) => return Err(err),
        };
        let _ = stream.close();
        if !args.keep_open || stdin_ended(args.close_on_eof, &events) {
            return Ok(exit);
        }
    }
}

/// True when stdin has ended and that stops the listener (`--close-on-eof`).
fn stdin_ended(close_on_eof: bool, events: &Events) -> bool {
    close_on_eof && events.eof()
}

enum Accepted {
    Client(Box<Stream>),
    Done(u8),
}

/// Waits for a client that completes the handshake, reporting refused ones.
fn accept(listener: &Listener, events: &Events, args: &Listen) -> Result<Accepted, CliError> {
    loop {
        events.drain();
        if let Some(err) = events.failure() {
            return Err(err);
        }
        if let Some(signal) = events.signal() {
            return Ok(Accepted::Done(signal_exit_code(signal)));
        }
        if stdin_ended(args.close_on_eof, events) {
            return Ok(Accepted::Done(code::OK));
        }
        pipe::wait_readable(&[listener.as_fd(), events.fd()])?;
        // Handshakes advance side by side (a silent client delays no other).
        let mut refused =
            |e: &shmsock::Error| crate::error::eprint_line(&format!("shmsock: refused a client: {}", e.message()));
        match listener.try_accept_reporting(&mut refused) {
            Ok(Some(stream)) => return Ok(Accepted::Client(Box::new(stream))),
            Ok(None) => {}
            Err(e) => return Err(CliError::core(format!("accepting clients on '{}'", args.name), &e)),
        }
    }
}

fn bind_error(name: &str, err: &shmsock::Error) -> CliError {
    let what = format!("listening on '{name}'");
    match err.kind() {
        ErrorKind::AddressInUse => {
            let owner = shmsock::endpoint::list()
                .ok()
                .and_then(|all| all.into_iter().find(|e| e.name == name))
                .and_then(|e| e.pid)
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default();
            CliError::new(
                code::IN_USE,
                what,
                format!("another live process{owner} already serves '{name}'"),
                "Choose another name, or stop that process",
            )
        }
        _ => CliError::core(what, err),
    }
}
