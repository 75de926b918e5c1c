//! The shmsock demo: one server, several client processes, messages flowing
//! between them, each peer's key fingerprint, counts and rates. Finishes by
//! itself in about ten seconds.
//!
//! `demo [SECONDS]` runs everything. Client processes are this same program run
//! as `demo __client NAME SERVER_KEY LABEL SECONDS`; programs in other languages
//! that speak the same wire format can be listed as clients the same way.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmsock::{Connection, Error, Keypair, Options, PublicKey, Server, ServerHandler, Stream};
use shmsock_examples::die;

#[derive(Default)]
struct Counts {
    messages: AtomicU64,
    bytes: AtomicU64,
}

struct DemoServer {
    counts: Arc<Counts>,
}

impl ServerHandler for DemoServer {
    fn on_connect(&self, c: &Connection) {
        let creds = c.peer_credentials();
        println!(
            "  server: client {} connected: pid {}, key {}, cipher {}",
            c.id(),
            creds.pid,
            c.peer_public_key().fingerprint(),
            c.stream().cipher()
        );
    }
    fn on_data(&self, c: &Connection, data: &[u8]) {
        self.counts.messages.fetch_add(1, Ordering::Relaxed);
        self.counts.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        if let Err(e) = c.send(data) {
            eprintln!("  server: echo to client {} failed: {e}", c.id());
        }
    }
    fn on_error(&self, c: Option<&Connection>, e: &Error) {
        eprintln!("  server: error ({}): {e}", c.map_or("handshake".into(), |c| format!("client {}", c.id())));
    }
    fn on_close(&self, c: &Connection, reason: Option<&Error>) {
        let s = c.stats();
        println!(
            "  server: client {} closed{} after {} messages in, {} out",
            c.id(),
            reason.map_or(String::new(), |e| format!(" ({e})")),
            s.messages_received,
            s.messages_sent
        );
    }
}

/// Kills a client process that is still running when the demo ends.
struct Reaper(Vec<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run_client(name: &str, server_key: &str, label: &str, seconds: u64) {
    let key = PublicKey::from_text(server_key).unwrap_or_else(|e| die("server key", e));
    let keypair = Keypair::generate();
    let options = Options::new().server_key(key).keypair(keypair.clone()).recv_timeout(Some(Duration::from_secs(10)));
    let stream = Stream::connect(name, &options).unwrap_or_else(|e| die("connect", e));
    let sizes = [64usize, 1024, 64 * 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let (mut messages, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    let mut last_report = start;
    while start.elapsed() < Duration::from_secs(seconds) {
        let size = sizes[messages as usize % sizes.len()];
        let fill = (messages % 251) as u8;
        let message = vec![fill; size];
        stream.send(&message).unwrap_or_else(|e| die("send", e));
        let n = stream.recv_into(&mut buf).unwrap_or_else(|e| die("recv", e));
        if buf[..n] != message[..] {
            die("verify", "the echo differs from the message sent");
        }
        messages += 1;
        bytes += 2 * size as u64;
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            println!(
                "REPORT {label} {} {messages} {:.0} {:.1}",
                keypair.public().fingerprint(),
                messages as f64 / secs,
                bytes as f64 / secs / 1e6
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "DONE {label} {} {messages} {:.0} {:.1} {:.1}",
        keypair.public().fingerprint(),
        messages as f64 / secs,
        bytes as f64 / secs / 1e6,
        secs * 1e6 / messages.max(1) as f64
    );
    stream.close().unwrap_or_else(|e| die("close", e));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__client") {
        let [_, _, name, key, label, seconds] = &args[..] else { die("usage", "demo __client NAME KEY LABEL SECONDS") };
        run_client(name, key, label, seconds.parse().unwrap_or(5));
        return;
    }
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(6);
    let name = format!("demo-{}", std::process::id());
    let server_keypair = Keypair::generate();
    let counts = Arc::new(Counts::default());
    println!("shmsock demo: server 'rust' on endpoint '{name}', key {}", server_keypair.public().fingerprint());
    let server = Server::start(
        &name,
        &Options::new().keypair(server_keypair.clone()),
        DemoServer { counts: Arc::clone(&counts) },
    )
    .unwrap_or_else(|e| die("start the server", e));

    let exe = std::env::current_exe().unwrap_or_else(|e| die("find this program", e));
    let key_text = server_keypair.public().to_text();
    let clients: Vec<(&str, Command)> = (1..=3)
        .map(|i| {
            let mut cmd = Command::new(&exe);
            cmd.args(["__client", &name, &key_text, &format!("rust-{i}"), &seconds.to_string()]);
            ("rust", cmd)
        })
        .collect();
    let mut reaper = Reaper(Vec::new());
    let mut outputs = Vec::new();
    for (language, mut cmd) in clients {
        let mut child =
            cmd.stdout(Stdio::piped()).spawn().unwrap_or_else(|e| die(&format!("start a {language} client"), e));
        let stdout = child.stdout.take();
        reaper.0.push(child);
        outputs.push(std::thread::spawn(move || {
            let mut done = None;
            for line in BufReader::new(stdout.expect("piped stdout")).lines().map_while(Result::ok) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                match fields.as_slice() {
                    ["REPORT", label, fp, n, rate, mbps] => {
                        println!("  client {label:<8} ({language}, key {fp}): {n:>8} round trips, {rate:>7} msg/s, {mbps:>7} MB/s")
                    }
                    ["DONE", ..] => done = Some(line.clone()),
                    _ => println!("  {line}"),
                }
            }
            done
        }));
    }
    let mut ok = true;
    let mut summary = Vec::new();
    for output in outputs {
        match output.join().ok().flatten() {
            Some(line) => summary.push(line),
            None => ok = false,
        }
    }
    for child in &mut reaper.0 {
        ok &= child.wait().map(|s| s.success()).unwrap_or(false);
    }
    server.close();
    println!("\nsummary (every echo verified byte for byte):");
    for line in &summary {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let ["DONE", label, fp, n, rate, mbps, rtt] = f.as_slice() {
            println!("  {label:<8} key {fp}  {n:>8} round trips  {rate:>7} msg/s  {mbps:>7} MB/s  {rtt:>6} µs per round trip");
        }
    }
    println!(
        "  server received {} messages, {:.1} MB",
        counts.messages.load(Ordering::Relaxed),
        counts.bytes.load(Ordering::Relaxed) as f64 / 1e6
    );
    if !ok {
        die("demo", "a client failed (see above)");
    }
    println!("demo finished cleanly");
}
