//! The Rust interop agent: keygen, pubkey, an echo server and a checking
//! client, on the `shmsock` crate only.
//!
//! The command line, the output lines and the exit codes are the contract in
//! tests/interop/README.md ("The agent command line"). Build it with
//! `./build.sh` next to this crate, run it with `./agent`.
//!
//! `serve` uses the event-driven `shmsock::Server` (its `Connection` gives the
//! stream, hence the cipher of the `connect` line); `client` uses `Stream`.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmsock::{
    Backend, CipherSuite, Connection, Error, ErrorKind, Keypair, Options, PublicKey, Server, ServerHandler, Stream,
};

const USAGE: &str = "\
usage: agent keygen FILE
       agent pubkey FILE
       agent serve --name NAME --key FILE [--allow PUBLIC]... [--backend memfd|named]
       agent client --name NAME --server-key PUBLIC [--key FILE]
                    [--cipher aegis-128l|chacha20-poly1305] [--ring-size BYTES]
                    [--sizes LIST] [--seconds S] [--timeout S]
(see tests/interop/README.md)";

const DEFAULT_SIZES: &str = "0,1,64,65536,262144";

/// Why the agent stops early; each maps to one exit code.
enum Failure {
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

type Outcome = Result<(), Failure>;

/// Prints one stdout line. Rust's stdout is line buffered, so it goes out at
/// once, also into a pipe. A closed stdout is not our problem to report.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints one diagnostic line on stderr.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::Usage(message.into())
}

// ------------------------------------------------------------------ arguments

/// The arguments after the command: `--option value` pairs.
struct OptionArgs {
    args: std::vec::IntoIter<String>,
}

impl OptionArgs {
    /// The next option name, or None at the end.
    fn next_option(&mut self) -> Result<Option<String>, Failure> {
        match self.args.next() {
            None => Ok(None),
            Some(arg) if arg.starts_with("--") => Ok(Some(arg)),
            Some(arg) => Err(usage(format!("unexpected argument '{arg}'"))),
        }
    }

    fn value(&mut self, option: &str) -> Result<String, Failure> {
        self.args.next().ok_or_else(|| usage(format!("{option} needs a value")))
    }
}

/// Sets a single-valued option once.
fn set_once(slot: &mut Option<String>, option: &str, value: String) -> Outcome {
    if slot.replace(value).is_some() {
        return Err(usage(format!("{option} given twice")));
    }
    Ok(())
}

fn required(slot: Option<String>, option: &str) -> Result<String, Failure> {
    slot.ok_or_else(|| usage(format!("{option} is required")))
}

/// Longer `--seconds` / `--timeout` values are refused (as in the C and C++
/// agents; the core's `Instant + timeout` would overflow near 2^63 seconds).
const MAX_SECONDS: f64 = 1e9;

/// A positive number of seconds, at most MAX_SECONDS.
fn seconds(text: &str, option: &str) -> Result<Duration, Failure> {
    let bad = || usage(format!("{option}: '{text}' is not a positive number of seconds (at most 1e9)"));
    let value: f64 = text.parse().map_err(|_| bad())?;
    if value.is_nan() || value <= 0.0 || value > MAX_SECONDS {
        return Err(bad());
    }
    Duration::try_from_secs_f64(value).map_err(|_| bad())
}

fn sizes(text: &str) -> Result<Vec<usize>, Failure> {
    text.split(',')
        .map(|part| {
            part.parse::<u32>()
                .map(|n| n as usize)
                .map_err(|_| usage(format!("--sizes: '{part}' is not a size in bytes (in '{text}')")))
        })
        .collect()
}

// ----------------------------------------------------------------- keys

fn keygen(path: &str) -> Outcome {
    let keypair = Keypair::generate();
    keypair.save(path)?;
    say(&format!("public {}", keypair.public().to_text()));
    Ok(())
}

fn pubkey(path: &str) -> Outcome {
    let keypair = Keypair::load(path)?;
    say(&format!("public {} {}", keypair.public().to_text(), keypair.public().fingerprint()));
    Ok(())
}

// ----------------------------------------------------------------- server

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

fn serve(mut args: OptionArgs) -> Outcome {
    let (mut name, mut key, mut backend) = (None, None, None);
    let mut allow = Vec::new();
    while let Some(option) = args.next_option()? {
        match option.as_str() {
            "--name" => set_once(&mut name, &option, args.value(&option)?)?,
            "--key" => set_once(&mut key, &option, args.value(&option)?)?,
            "--allow" => allow.push(args.value(&option)?),
            "--backend" => set_once(&mut backend, &option, args.value(&option)?)?,
            _ => return Err(usage(format!("unknown option '{option}' for serve"))),
        }
    }
    let name = required(name, "--name")?;
    let key = required(key, "--key")?;
    let backend = match backend.as_deref() {
        None | Some("memfd") => Backend::Memfd,
        Some("named") => Backend::Named,
        Some(other) => return Err(usage(format!("--backend: '{other}' is not memfd or named"))),
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

// ----------------------------------------------------------------- client

/// Message `i` of size `n`: byte `j` is `(i + 31 * j + n) mod 256`.
fn fill_message(buf: &mut Vec<u8>, i: u64, n: usize) {
    buf.clear();
    let mut byte = (i as u8).wrapping_add(n as u8);
    buf.extend((0..n).map(|_| {
        let b = byte;
        byte = byte.wrapping_add(31);
        b
    }));
}

/// What differs between an echo of `len` bytes, starting with `got`, and the
/// message sent.
fn difference(len: usize, got: &[u8], expected: &[u8]) -> String {
    if len != expected.len() {
        return format!("received {len} bytes");
    }
    match got.iter().zip(expected).position(|(a, b)| a != b) {
        Some(j) => format!("byte {j} is {}, expected {}", got[j], expected[j]),
        None => "no difference".into(),
    }
}

struct ClientArgs {
    name: String,
    server_key: String,
    key: Option<String>,
    cipher: CipherSuite,
    ring_size: Option<u32>,
    sizes: Vec<usize>,
    seconds: Option<Duration>,
    timeout: Duration,
}

fn parse_client(mut args: OptionArgs) -> Result<ClientArgs, Failure> {
    let (mut name, mut server_key, mut key, mut cipher, mut ring_size) = (None, None, None, None, None);
    let (mut sizes_text, mut seconds_text, mut timeout_text) = (None, None, None);
    while let Some(option) = args.next_option()? {
        let slot = match option.as_str() {
            "--name" => &mut name,
            "--server-key" => &mut server_key,
            "--key" => &mut key,
            "--cipher" => &mut cipher,
            "--ring-size" => &mut ring_size,
            "--sizes" => &mut sizes_text,
            "--seconds" => &mut seconds_text,
            "--timeout" => &mut timeout_text,
            _ => return Err(usage(format!("unknown option '{option}' for client"))),
        };
        let value = args.value(&option)?;
        set_once(slot, &option, value)?;
    }
    let cipher = match cipher.as_deref() {
        None | Some("aegis-128l") => CipherSuite::Aegis128L,
        Some("chacha20-poly1305") => CipherSuite::ChaCha20Poly1305,
        Some(other) => return Err(usage(format!("--cipher: '{other}' is not aegis-128l or chacha20-poly1305"))),
    };
    let ring_size = match ring_size {
        None => None,
        Some(text) => {
            Some(text.parse::<u32>().map_err(|_| usage(format!("--ring-size: '{text}' is not a size in bytes")))?)
        }
    };
    Ok(ClientArgs {
        name: required(name, "--name")?,
        server_key: required(server_key, "--server-key")?,
        key,
        cipher,
        ring_size,
        sizes: sizes(sizes_text.as_deref().unwrap_or(DEFAULT_SIZES))?,
        seconds: seconds_text.map(|t| seconds(&t, "--seconds")).transpose()?,
        timeout: timeout_text.map(|t| seconds(&t, "--timeout")).transpose()?.unwrap_or(Duration::from_secs(10)),
    })
}

fn client(args: OptionArgs) -> Outcome {
    let a = parse_client(args)?;
    let server_key = PublicKey::from_text(&a.server_key)?;
    let mut options = Options::new()
        .server_key(server_key)
        .recv_timeout(Some(a.timeout))
        .require_chacha(a.cipher == CipherSuite::ChaCha20Poly1305);
    if let Some(path) = &a.key {
        options = options.keypair(Keypair::load(path)?);
    }
    if let Some(bytes) = a.ring_size {
        options = options.ring_size(bytes);
    }
    let stream = Stream::connect(&a.name, &options)?;
    if stream.peer_public_key() != server_key {
        return Err(Failure::Verify(format!(
            "mismatch: server key is {}, expected {}",
            stream.peer_public_key().to_text(),
            server_key.to_text()
        )));
    }
    if stream.cipher() != a.cipher {
        return Err(Failure::Verify(format!("mismatch: cipher is {}, expected {}", stream.cipher(), a.cipher)));
    }

    let start = Instant::now();
    let mut next_progress = Duration::from_secs(1);
    let (mut i, mut total) = (0u64, 0u64);
    let mut message = Vec::new();
    // One byte more than the largest message, so a longer echo shows as such.
    let mut reply = vec![0u8; a.sizes.iter().copied().max().unwrap_or(0) + 1];
    loop {
        match a.seconds {
            None if i as usize == a.sizes.len() => break,
            Some(limit) if start.elapsed() >= limit => break,
            _ => {}
        }
        let n = a.sizes[(i % a.sizes.len() as u64) as usize];
        fill_message(&mut message, i, n);
        stream.send(&message)?;
        let len = match stream.recv_into_timeout(&mut reply, Some(a.timeout)) {
            Ok(len) => len,
            Err(e) if e.kind() == ErrorKind::BufferTooSmall => e.needed().unwrap_or(reply.len() + 1),
            Err(e) => return Err(e.into()),
        };
        if len != n || reply[..n] != message[..] {
            let got = &reply[..len.min(reply.len())];
            return Err(Failure::Verify(format!("mismatch: message {i} ({n} B): {}", difference(len, got, &message))));
        }
        i += 1;
        total += n as u64;
        if a.seconds.is_some() && start.elapsed() >= next_progress {
            next_progress += Duration::from_secs(1);
            say(&format!("progress {i} {total} {:.3}", start.elapsed().as_secs_f64()));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    stream.close()?;
    say(&format!(
        "ok cipher={} server={} client={} messages={i} bytes={total} seconds={elapsed:.3}",
        stream.cipher(),
        server_key.fingerprint(),
        stream.local_public_key().fingerprint()
    ));
    Ok(())
}

// ----------------------------------------------------------------- main

fn run(args: Vec<String>) -> Outcome {
    let mut args = args.into_iter();
    let command = args.next().ok_or_else(|| usage("no command"))?;
    let mut file_arg = |command: &str| -> Result<String, Failure> {
        let file = args.next().ok_or_else(|| usage(format!("{command} needs a FILE")))?;
        match args.next() {
            Some(extra) => Err(usage(format!("unexpected argument '{extra}'"))),
            None => Ok(file),
        }
    };
    match command.as_str() {
        "keygen" => keygen(&file_arg("keygen")?),
        "pubkey" => pubkey(&file_arg("pubkey")?),
        "serve" => serve(OptionArgs { args }),
        "client" => client(OptionArgs { args }),
        "-h" | "--help" | "help" => {
            say(USAGE);
            Ok(())
        }
        other => Err(usage(format!("unknown command '{other}'"))),
    }
}

fn main() -> ExitCode {
    let args: Result<Vec<String>, _> = std::env::args_os().skip(1).map(|a| a.into_string()).collect();
    let outcome = match args {
        Ok(args) => run(args),
        Err(arg) => Err(usage(format!("argument {arg:?} is not UTF-8"))),
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
