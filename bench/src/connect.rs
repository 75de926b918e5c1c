//! The cost of a connection: sequential connect latency and rate against the
//! handshake's own X25519 work and a Unix socket connect, and what an idle
//! connection holds (committed shared memory, descriptors).
//!
//! Both ends run in this process (a listener thread accepts while the main
//! thread connects), so the figures are the set-up work itself, without a
//! process start; they are compared as ratios against baselines measured in the
//! same launch.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use shmsock::{Keypair, Listener, Options, Stream};

use crate::error::Result;

/// X25519 operations on the handshake's critical path (Noise IK): the client's
/// ephemeral key, `es` and `ss`; the server's `es`, `ss`, ephemeral key, `ee`
/// and `se`; the client's `ee` and `se`.
pub const HANDSHAKE_X25519_OPS: u32 = 10;

/// What one connection costs.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectReport {
    /// Sequential connections measured.
    pub connections: usize,
    /// Median time of `Stream::connect` (the listener accepting on another thread).
    pub connect_p50: Duration,
    /// 99th percentile of the same.
    pub connect_p99: Duration,
    /// Sequential connections per second (connect, then drop both ends).
    pub per_second: f64,
    /// Median time of one X25519 scalar multiplication.
    pub x25519: Duration,
    /// Median Unix socket connect + accept.
    pub unix_connect_p50: Duration,
    /// Ring size the connections used.
    pub ring_size: u32,
    /// Idle connections held open to measure what they hold.
    pub idle_connections: usize,
    /// Shared memory committed per idle connection (blocks allocated to its
    /// segment), in bytes.
    pub committed_per_connection: u64,
    /// Descriptors per idle connection and side.
    pub fds_per_side: f64,
}

impl ConnectReport {
    /// Connect p50 over the X25519 work on the handshake's critical path.
    pub fn vs_handshake_x25519(&self) -> f64 {
        self.connect_p50.as_secs_f64() / (self.x25519.as_secs_f64() * f64::from(HANDSHAKE_X25519_OPS))
    }

    /// Connect p50 over a Unix socket connect.
    pub fn vs_unix(&self) -> f64 {
        self.connect_p50.as_secs_f64() / self.unix_connect_p50.as_secs_f64()
    }

    /// The connection goals (issue 18), one line each.
    pub fn goals(&self) -> String {
        let line = |met: bool, what: &str, measured: String| {
            format!("[{}] {what}: measured {measured}", if met { "MET " } else { "MISS" })
        };
        [
            line(
                self.vs_handshake_x25519() <= 2.0,
                "connect p50 within 2x the handshake's own X25519 time",
                format!("{:.2}x", self.vs_handshake_x25519()),
            ),
            line(
                self.per_second >= 2000.0,
                "at least 2,000 sequential connections/s",
                format!("{:.0}/s", self.per_second),
            ),
            line(
                self.committed_per_connection <= 256 * 1024,
                "committed shared memory per idle connection at most 256 KiB",
                format!("{} KiB", self.committed_per_connection / 1024),
            ),
        ]
        .join("\n")
    }

    /// The report as text lines.
    pub fn format(&self) -> String {
        format!(
            "connect (in one process, ring {} B): p50 {:.1} us, p99 {:.1} us, {:.0} sequential connections/s\n\
             \x20 = {:.2}x the handshake's {} X25519 operations ({:.1} us each), {:.1}x a Unix socket connect ({:.1} us)\n\
             idle connection ({} held): {} KiB of committed shared memory, {:.1} descriptors per side",
            self.ring_size,
            us(self.connect_p50),
            us(self.connect_p99),
            self.per_second,
            self.vs_handshake_x25519(),
            HANDSHAKE_X25519_OPS,
            us(self.x25519),
            self.vs_unix(),
            us(self.unix_connect_p50),
            self.idle_connections,
            self.committed_per_connection / 1024,
            self.fds_per_side,
        )
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Measures `connections` sequential connects and holds `idle` connections
/// open to measure them. `ring_size`: None for the library default.
pub fn measure_connect(connections: usize, idle: usize, ring_size: Option<u32>) -> Result<ConnectReport> {
    shmsock::sodium::init()?;
    let name = format!("bench-connect-{}", std::process::id());
    let kp = Keypair::generate();
    let mut server_options = Options::new().keypair(kp.clone());
    let mut client_options = Options::new().server_key(*kp.public());
    if let Some(ring) = ring_size {
        server_options = server_options.ring_size(ring);
        client_options = client_options.ring_size(ring);
    }
    let listener = Listener::bind(&name, &server_options)?;
    let total = connections + idle;
    let (accepted_tx, accepted_rx) = mpsc::channel();
    let acceptor = std::thread::spawn(move || {
        for _ in 0..total {
            match listener.accept_timeout(Some(Duration::from_secs(10))) {
                Ok(stream) => {
                    if accepted_tx.send(stream).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    eprintln!("bench connect: accept failed: {e}");
                    return;
                }
            }
        }
    });
    let mut times = Vec::with_capacity(connections);
    let started = Instant::now();
    for _ in 0..connections {
        let t = Instant::now();
        let client = Stream::connect(&name, &client_options)?;
        times.push(t.elapsed());
        let server = accepted_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| crate::BenchError::new("the acceptor stopped"))?;
        drop(client);
        drop(server);
    }
    let per_second = connections as f64 / started.elapsed().as_secs_f64();
    times.sort();

    let fds_before = open_fds();
    let mut held = Vec::with_capacity(idle);
    for _ in 0..idle {
        let client = Stream::connect(&name, &client_options)?;
        let server = accepted_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| crate::BenchError::new("the acceptor stopped"))?;
        held.push((client, server));
    }
    let fds_per_side = (open_fds() as f64 - fds_before as f64) / (2.0 * idle.max(1) as f64);
    let committed = committed_memfd_bytes() / idle.max(1) as u64;
    let ring = held.first().map_or(0, |(c, _)| c.ring_size());
    drop(held);
    let _ = acceptor.join();

    Ok(ConnectReport {
        connections,
        connect_p50: percentile(&times, 0.5),
        connect_p99: percentile(&times, 0.99),
        per_second,
        x25519: x25519_time(),
        unix_connect_p50: unix_connect_time(200)?,
        ring_size: ring,
        idle_connections: idle,
        committed_per_connection: committed,
        fds_per_side,
    })
}

/// Median time of one X25519 scalar multiplication.
fn x25519_time() -> Duration {
    let a = Keypair::generate();
    let b = Keypair::generate();
    let mut times: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            let _ = std::hint::black_box(shmsock::sodium::x25519(a.secret_bytes(), b.public().as_bytes()));
            t.elapsed()
        })
        .collect();
    times.sort();
    percentile(&times, 0.5)
}

/// Median Unix socket connect + accept.
fn unix_connect_time(n: usize) -> Result<Duration> {
    let dir = std::env::temp_dir().join(format!("shmsock-bench-unix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("s");
    let listener = UnixListener::bind(&path)?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let client = UnixStream::connect(&path)?;
        let (server, _) = listener.accept()?;
        times.push(t.elapsed());
        drop((client, server));
    }
    let _ = std::fs::remove_dir_all(&dir);
    times.sort();
    Ok(percentile(&times, 0.5))
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Bytes allocated to the memfd segments this process holds (each counted once).
fn committed_memfd_bytes() -> u64 {
    let mut seen = BTreeSet::new();
    let mut bytes = 0;
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return 0 };
    for entry in dir.flatten() {
        let path = entry.path();
        let is_segment = std::fs::read_link(&path).is_ok_and(|t| t.to_string_lossy().starts_with("/memfd:shmsock"));
        if !is_segment {
            continue;
        }
        if let Ok(meta) = std::fs::metadata(&path) {
            if seen.insert(meta.ino()) {
                bytes += meta.blocks() * 512;
            }
        }
    }
    bytes
}
