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

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use shmsock::{
    Backend, CipherSuite, Connection, Error, ErrorKind, Keypair, Options, PublicKey, Publisher, Server, ServerHandler,
    Stream, Subscriber,
};

const DEFAULT_SIZES: &str = "0,1,64,65536,262144";
/// A topic's slots hold 64 KiB by default: its largest message.
const DEFAULT_TOPIC_SIZES: &str = "0,1,64,4096,65536";

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

/// clap's message for a usage error on one line, without its `error: ` prefix
/// and its usage and help lines.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let lines: Vec<&str> =
        text.lines().map(str::trim).take_while(|l| !l.starts_with("Usage:")).filter(|l| !l.is_empty()).collect();
    let joined = lines.join(" ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_string()
}

// ------------------------------------------------------------------ arguments

/// The Rust interop agent (see tests/interop/README.md, "The agent command line").
#[derive(Parser)]
#[command(name = "agent", disable_version_flag = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a keypair, save it to FILE, print `public <key>`
    Keygen {
        /// The key file to write
        file: PathBuf,
    },
    /// Print `public <key> <fingerprint>` of the keypair in FILE
    Pubkey {
        /// The key file to read
        file: PathBuf,
    },
    /// An echo server on NAME until stdin ends or SIGTERM/SIGINT
    Serve(ServeArgs),
    /// Send messages to NAME and check each echo
    Client(ClientArgs),
    /// Publish messages on topic NAME to K subscribers, then close it
    Publish(PublishArgs),
    /// Subscribe to topic NAME and check every message
    Subscribe(SubscribeArgs),
}

#[derive(clap::Args)]
struct PublishArgs {
    /// The topic name
    #[arg(long)]
    name: String,
    /// The publisher's key file
    #[arg(long)]
    key: PathBuf,
    /// Messages to publish
    #[arg(long, default_value_t = 100)]
    count: u64,
    /// Comma-separated message sizes in bytes
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = DEFAULT_TOPIC_SIZES)]
    sizes: Vec<u32>,
    /// Subscribers to wait for before publishing
    #[arg(long, value_name = "K", default_value_t = 1)]
    subscribers: usize,
    /// Limit on the wait for subscribers, in seconds
    #[arg(long, value_name = "S", value_parser = seconds, default_value = "10")]
    timeout: Duration,
    /// The cipher to require
    #[arg(long, value_enum, default_value_t = CipherArg::Aegis128L)]
    cipher: CipherArg,
}

#[derive(clap::Args)]
struct SubscribeArgs {
    /// The topic name
    #[arg(long)]
    name: String,
    /// The publisher's public key (`shmsock-pk:` text)
    #[arg(long, value_name = "PUBLIC")]
    server_key: String,
    /// This subscriber's key file [default: a fresh key per run]
    #[arg(long)]
    key: Option<PathBuf>,
    /// Messages to receive
    #[arg(long, default_value_t = 100)]
    count: u64,
    /// Comma-separated message sizes in bytes
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = DEFAULT_TOPIC_SIZES)]
    sizes: Vec<u32>,
    /// The cipher to require
    #[arg(long, value_enum, default_value_t = CipherArg::Aegis128L)]
    cipher: CipherArg,
    /// Limit on each receive, in seconds
    #[arg(long, value_name = "S", value_parser = seconds, default_value = "10")]
    timeout: Duration,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The endpoint name
    #[arg(long)]
    name: String,
    /// The server's key file
    #[arg(long)]
    key: PathBuf,
    /// Accept only this client key (`shmsock-pk:` text); repeatable
    #[arg(long, value_name = "PUBLIC")]
    allow: Vec<String>,
    /// The segment backend
    #[arg(long, value_enum, default_value_t = BackendArg::Memfd)]
    backend: BackendArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Memfd,
    Named,
}

#[derive(Clone, Copy, ValueEnum)]
enum CipherArg {
    #[value(name = "aegis-128l")]
    Aegis128L,
    #[value(name = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

#[derive(clap::Args)]
struct ClientArgs {
    /// The endpoint name
    #[arg(long)]
    name: String,
    /// The server's public key (`shmsock-pk:` text)
    #[arg(long, value_name = "PUBLIC")]
    server_key: String,
    /// This client's key file [default: a fresh key per run]
    #[arg(long)]
    key: Option<PathBuf>,
    /// The cipher to require
    #[arg(long, value_enum, default_value_t = CipherArg::Aegis128L)]
    cipher: CipherArg,
    /// The ring size to ask the server for [default: the server's choice]
    #[arg(long, value_name = "BYTES")]
    ring_size: Option<u32>,
    /// Comma-separated message sizes in bytes
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = DEFAULT_SIZES)]
    sizes: Vec<u32>,
    /// Keep cycling through the sizes for S seconds, printing progress lines
    #[arg(long, value_name = "S", value_parser = seconds)]
    seconds: Option<Duration>,
    /// Limit on each receive, in seconds
    #[arg(long, value_name = "S", value_parser = seconds, default_value = "10")]
    timeout: Duration,
}

/// Longer `--seconds` / `--timeout` values are refused (as in the C and C++
/// agents; the core's `Instant + timeout` would overflow near 2^63 seconds).
const MAX_SECONDS: f64 = 1e9;

/// A positive number of seconds, at most MAX_SECONDS.
fn seconds(text: &str) -> Result<Duration, String> {
    let bad = || format!("'{text}' is not a positive number of seconds (at most 1e9)");
    let value: f64 = text.parse().map_err(|_| bad())?;
    if value.is_nan() || value <= 0.0 || value > MAX_SECONDS {
        return Err(bad());
    }
    Duration::try_from_secs_f64(value).map_err(|_| bad())
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

fn serve(args: ServeArgs) -> Outcome {
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

impl CipherArg {
    fn suite(self) -> CipherSuite {
        match self {
            CipherArg::Aegis128L => CipherSuite::Aegis128L,
            CipherArg::ChaCha20Poly1305 => CipherSuite::ChaCha20Poly1305,
        }
    }
}

fn client(a: ClientArgs) -> Outcome {
    let cipher = a.cipher.suite();
    let sizes: Vec<usize> = a.sizes.iter().map(|&n| n as usize).collect();
    let server_key = PublicKey::from_text(&a.server_key)?;
    let mut options = Options::new()
        .server_key(server_key)
        .recv_timeout(Some(a.timeout))
        .require_chacha(cipher == CipherSuite::ChaCha20Poly1305);
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
    if stream.cipher() != cipher {
        return Err(Failure::Verify(format!("mismatch: cipher is {}, expected {}", stream.cipher(), cipher)));
    }

    let start = Instant::now();
    let mut next_progress = Duration::from_secs(1);
    let (mut i, mut total) = (0u64, 0u64);
    let mut message = Vec::new();
    // One byte more than the largest message, so a longer echo shows as such.
    let mut reply = vec![0u8; sizes.iter().copied().max().unwrap_or(0) + 1];
    loop {
        match a.seconds {
            None if i as usize == sizes.len() => break,
            Some(limit) if start.elapsed() >= limit => break,
            _ => {}
        }
        let n = sizes[(i % sizes.len() as u64) as usize];
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

// ----------------------------------------------------------------- topics

fn publish(a: PublishArgs) -> Outcome {
    let keypair = Keypair::load(&a.key)?;
    let options =
        Options::new().keypair(keypair.clone()).require_chacha(a.cipher.suite() == CipherSuite::ChaCha20Poly1305);
    let publisher = Publisher::bind(&a.name, &options)?;
    say(&format!("ready {} {} {}", a.name, keypair.public().to_text(), keypair.public().fingerprint()));
    publisher.wait_for_subscribers(a.subscribers, Some(a.timeout))?;
    let (mut message, mut total) = (Vec::new(), 0u64);
    for i in 0..a.count {
        let n = a.sizes[(i % a.sizes.len() as u64) as usize] as usize;
        fill_message(&mut message, i, n);
        publisher.publish(&message)?;
        total += n as u64;
    }
    say(&format!("published messages={} bytes={total}", a.count));
    publisher.close();
    Ok(())
}

fn subscribe(a: SubscribeArgs) -> Outcome {
    let cipher = a.cipher.suite();
    let publisher_key = PublicKey::from_text(&a.server_key)?;
    let mut options = Options::new()
        .server_key(publisher_key)
        .recv_timeout(Some(a.timeout))
        .require_chacha(cipher == CipherSuite::ChaCha20Poly1305);
    if let Some(path) = &a.key {
        options = options.keypair(Keypair::load(path)?);
    }
    let subscriber = Subscriber::connect(&a.name, &options)?;
    if subscriber.publisher_public_key() != publisher_key {
        return Err(Failure::Verify(format!(
            "mismatch: publisher key is {}, expected {}",
            subscriber.publisher_public_key().to_text(),
            publisher_key.to_text()
        )));
    }
    if subscriber.cipher() != cipher {
        return Err(Failure::Verify(format!("mismatch: cipher is {}, expected {}", subscriber.cipher(), cipher)));
    }
    say(&format!("subscribed {} {}", publisher_key.fingerprint(), cipher));
    let (mut expected, mut total) = (Vec::new(), 0u64);
    for i in 0..a.count {
        let n = a.sizes[(i % a.sizes.len() as u64) as usize] as usize;
        let got = subscriber.recv()?;
        if got.lost != 0 {
            return Err(Failure::Verify(format!("mismatch: lost {} messages", got.lost)));
        }
        fill_message(&mut expected, i, n);
        if got.data != expected {
            let what = difference(got.data.len(), &got.data, &expected);
            return Err(Failure::Verify(format!("mismatch: message {i} ({n} B): {what}")));
        }
        total += n as u64;
    }
    say(&format!(
        "ok cipher={cipher} publisher={} messages={} bytes={total} lost={}",
        publisher_key.fingerprint(),
        a.count,
        subscriber.lost()
    ));
    subscriber.close();
    Ok(())
}

// ----------------------------------------------------------------- main

fn run(command: Command) -> Outcome {
    match command {
        Command::Keygen { file } => keygen(&file),
        Command::Pubkey { file } => pubkey(&file),
        Command::Serve(args) => serve(args),
        Command::Client(args) => client(args),
        Command::Publish(args) => publish(args),
        Command::Subscribe(args) => subscribe(args),
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
