//! `agent serve`: an echo server on the event-driven `shmsock::Server` (its
//! `Connection` gives the stream, hence the cipher of the `connect` line),
//! until stdin ends or SIGTERM / SIGINT comes.

use std::io::Read;
use std::sync::mpsc;

use shmsock::{Backend, Connection, Error, Keypair, Options, PublicKey, Server, ServerHandler};

use crate::cli::{BackendArg, ServeArgs};
use crate::{note, say, Failure, Outcome};

/// Sends every message back on its connection and reports each event.
struct Echo;

impl ServerHandler for Echo {
    fn on_connect(&self, c: &Connection) {
        say(&format!("connect {} {}", c.peer_public_key().fingerprint(), c.stream().cipher().name()));
    }

    fn on_data(&self, c: &Connection, data: &[u8]) {
        if let Err(e) = c.send(data) {
            note(&format!("echo to {} failed: {}: {e}", c.peer_public_key().fingerprint(), e.kind().name()));
        }
    }

    fn on_error(&self, c: Option<&Connection>, e: &Error) {
        match c {
            Some(c) => note(&format!("client {}: {}: {e}", c.peer_public_key().fingerprint(), e.kind().name())),
            None => {
                // Without a connection it is a client's failed handshake.
                say(&format!("reject {}", e.kind().name()));
                note(&format!("rejected a client: {}: {e}", e.kind().name()));
            }
        }
    }

    fn on_close(&self, c: &Connection, _reason: Option<&Error>) {
        let stats = c.stats();
        say(&format!(
            "close {} {} {}",
            c.peer_public_key().fingerprint(),
            stats.messages_received,
            stats.bytes_received
        ));
    }
}

/// The signals that stop the server.
fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

/// Blocks SIGTERM and SIGINT in this thread, and so in every thread started
/// after (the server's included), and starts a thread that waits for them with
/// sigwait(3) and sends their name on `stop`. std has no signal API, and this
/// needs no handler (nothing async-signal-unsafe can run) and no extra crate:
/// only `libc`, which the core already depends on.
fn watch_signals(stop: mpsc::Sender<&'static str>) -> Outcome {
    let set = stop_signals();
    // SAFETY: `set` is initialised; a null old-mask pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        let err = std::io::Error::from_raw_os_error(rc);
        return Err(Failure::Shmsock(Error::io("blocking SIGTERM and SIGINT", err)));
    }
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut signal: libc::c_int = 0;
            // SAFETY: `set` is initialised and `signal` is a valid out-pointer.
            // sigwait fails only for an invalid set, which this one is not.
            if unsafe { libc::sigwait(&set, &mut signal) } == 0 {
                let _ = stop.send(if signal == libc::SIGINT { "SIGINT" } else { "SIGTERM" });
            }
        })
        .map_err(|e| Failure::Shmsock(Error::io("starting the signal thread", e)))?;
    Ok(())
}

/// Reads stdin to its end on a thread, then sends on `stop`.
fn watch_stdin(stop: mpsc::Sender<&'static str>) -> Outcome {
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 4096];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break, // an unreadable stdin counts as its end
                }
            }
            let _ = stop.send("end of input");
        })
        .map_err(|e| Failure::Shmsock(Error::io("starting the stdin thread", e)))?;
    Ok(())
}

pub(crate) fn serve(args: ServeArgs) -> Outcome {
    let ServeArgs { name, key, allow, backend } = args;
    let backend = match backend {
        BackendArg::Memfd => Backend::Memfd,
        BackendArg::Named => Backend::Named,
    };

    // Before any thread starts, so that every thread inherits the mask.
    let (stop_tx, stop_rx) = mpsc::channel();
    watch_signals(stop_tx.clone())?;

    let keypair = Keypair::load(&key)?;
    let mut options = Options::new().keypair(keypair.clone()).backend(backend);
    if !allow.is_empty() {
        let keys = allow.iter().map(|text| PublicKey::from_text(text)).collect::<Result<Vec<_>, _>>()?;
        options = options.allow_clients(keys);
    }
    let server = Server::start(&name, &options, Echo)?;
    say(&format!("ready {name} {} {}", keypair.public().to_text(), keypair.public().fingerprint()));

    watch_stdin(stop_tx)?;
    let why = stop_rx.recv().unwrap_or("no more stop sources");
    note(&format!("stopping ({why})"));
    server.close(); // closes every connection (close lines) and removes the endpoint
    Ok(())
}
