//! Isolation and the server path's floors, in one launch per placement.
//!
//! Isolation: a bystander client's 64 B round trip (p50, p99) against a
//! `Server`, alone and then with every attack of `core/tests/attacks.rs` at
//! once (a peer flooding its control socket, 1,000 silent connections, peers
//! that never read, peers whose close stalls), and a new client's connect time
//! alone and under the same attack. The attackers are threads of this process:
//! they compete for the same CPUs as the server and the bystander, as attacking
//! processes on the same machine would.
//!
//! Floors: the server path's 64 B round trip (one client) against a futex
//! ping-pong between two threads (the least a sleeping hand-over costs, the
//! floor on one core) and against a plain Stream↔Stream echo (the floor on two
//! cores).
//!
//! Placement: the measuring thread is pinned before anything starts, and every
//! thread (server, clients, attackers) inherits its CPU set: one core, or two.

use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::thread::futex;
use shmsock::{Keypair, Options, PublicKey, Server, Stream};

use crate::affinity;
use crate::error::{BenchError, Result};
use crate::server::{drive, stream_pair, Echo, Row};

/// Silent connections of the attack.
const SILENT: usize = 1000;
/// Peers that never read, and peers whose close stalls.
const NO_READ: usize = 4;
const STALL_CLOSE: usize = 8;
/// Sequential connects timed per figure.
const CONNECTS: usize = 40;

/// The figures of one placement.
#[derive(Clone, Debug)]
pub struct Isolation {
    /// CPUs every thread ran on.
    pub cpus: Vec<usize>,
    /// The bystander alone (the server path with one client).
    pub quiet: Row,
    /// The bystander under every attack.
    pub attacked: Row,
    /// A new client's connect time (p50, p99), alone.
    pub connect_quiet: (Duration, Duration),
    /// The same under every attack.
    pub connect_attacked: (Duration, Duration),
    /// The futex ping-pong floor, against which the bystander alone (the
    /// server path with one client) is compared on one core...
    pub futex_floor: Row,
    /// ...and the Stream↔Stream echo, on two cores.
    pub stream_pair: Row,
}

/// Measures one placement: every thread on `cpus`, `time` per figure.
pub fn measure(cpus: &[usize], time: Duration) -> Result<Isolation> {
    affinity::pin(cpus)?;
    let _ = shmsock::platform::raise_open_files_limit();
    let keypair = Keypair::generate();
    let name = format!("bench-isolation-{}-{}", std::process::id(), cpus.len());
    let options = Options::new()
        .keypair(keypair.clone())
        .ring_size(1 << 16)
        .max_queued_bytes(256 << 10)
        .max_connections(SILENT + 256);
    let server = Server::start(&name, &options, Echo)?;
    let key = *keypair.public();
    let client = Options::new().server_key(key).handshake_timeout(Duration::from_secs(10));

    let quiet = drive("shmsock Server", 1, time, || bystander(&name, &client));
    let connect_quiet = connect_times(&name, &client)?;

    let attack = Attack::start(&name, key)?;
    let attacked = drive("under attack", 1, time, || bystander(&name, &client));
    let connect_attacked = connect_times(&name, &client);
    attack.stop();
    server.close();
    let connect_attacked = connect_attacked?;

    let futex_floor = futex_ping_pong(time);
    let stream_pair = stream_pair(time)?;
    Ok(Isolation { cpus: cpus.to_vec(), quiet, attacked, connect_quiet, connect_attacked, futex_floor, stream_pair })
}

/// A bystander's 64 B round trip on a fresh connection.
fn bystander(name: &str, options: &Options) -> Box<dyn FnMut() + Send> {
    let stream = Stream::connect(name, options).expect("the bystander connects");
    let message = [7u8; crate::server::MESSAGE];
    let mut buf = [0u8; crate::server::MESSAGE];
    Box::new(move || {
        stream.send(&message).expect("the bystander sends");
        stream.recv_into(&mut buf).expect("the bystander gets its echo");
    })
}

/// p50 and p99 of `CONNECTS` sequential connects (each closed at once).
fn connect_times(name: &str, options: &Options) -> Result<(Duration, Duration)> {
    let mut times = Vec::with_capacity(CONNECTS);
    for _ in 0..CONNECTS {
        let t = Instant::now();
        let stream = Stream::connect(name, options)?;
        times.push(t.elapsed());
        let _ = stream.close();
    }
    times.sort();
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    Ok((at(0.5), at(0.99)))
}

// ------------------------------------------------------------------ attacks

/// Every attack at once, until stopped.
struct Attack {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Connections held open until the attack stops.
    _streams: Vec<Stream>,
    _flood: UnixStream,
}

impl Attack {
    fn start(name: &str, key: PublicKey) -> Result<Attack> {
        // SHMSOCK_BENCH_ATTACKS=flood,silent,noread,stallclose picks some (default: all).
        let chosen = std::env::var("SHMSOCK_BENCH_ATTACKS").unwrap_or_default();
        let on = |kind: &str| chosen.is_empty() || chosen.split(',').any(|k| k == kind);
        let stop = Arc::new(AtomicBool::new(false));
        let options = Options::new().server_key(key).send_timeout(Some(Duration::from_millis(100)));
        let mut threads = Vec::new();
        let mut streams = Vec::new();

        // A peer writing its control socket without pause.
        let (flooder, flood) = flooding_peer(name, &options)?;
        streams.push(flooder);
        if on("flood") {
            let (stop, mut socket) = (Arc::clone(&stop), flood.try_clone()?);
            threads.push(std::thread::spawn(move || {
                let junk = [0x5au8; 64 * 1024];
                while !stop.load(Ordering::Relaxed) && socket.write_all(&junk).is_ok() {}
            }));
        }

        // Silent connections, reconnected as soon as the server refuses them
        // (it makes room for real clients by refusing the oldest silent one),
        // watched with epoll so that the attacker itself costs little CPU.
        let path = shmsock::endpoint::EndpointPaths::of(name)?.socket;
        let watch = shmsock::platform::Poller::new()?;
        let mut silent = Vec::with_capacity(SILENT);
        for token in 0..if on("silent") { SILENT } else { 0 } {
            let socket = UnixStream::connect(&path)?;
            watch.add(socket.as_fd(), token as u64)?;
            silent.push(socket);
        }
        {
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || {
                let mut tokens = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if watch.wait(&mut tokens, Some(Duration::from_millis(50))).is_err() {
                        return;
                    }
                    for &token in &tokens {
                        let Some(socket) = silent.get_mut(token as usize) else { continue };
                        watch.remove(socket.as_fd());
                        if let Ok(fresh) = UnixStream::connect(&path) {
                            *socket = fresh;
                        }
                        let _ = watch.add(socket.as_fd(), token);
                    }
                }
            }));
        }

        // Peers that send without ever reading the echoes.
        for _ in 0..if on("noread") { NO_READ } else { 0 } {
            let stream = Stream::connect(name, &options)?;
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || {
                let message = vec![7u8; 1000];
                while !stop.load(Ordering::Relaxed) {
                    // Times out once the ring is full: the server's queue is full too.
                    let _ = stream.send(&message);
                }
            }));
        }

        // Peers that fill the server's ring towards them, ask it to close and
        // then keep their socket without reading: the close must not stall.
        for _ in 0..if on("stallclose") { STALL_CLOSE } else { 0 } {
            let stream = Stream::connect(name, &options)?;
            // 20 x 8000 B: the ring towards the peer (64 KiB) fills and the
            // rest waits in the server's queue without filling it (a refused
            // reply makes the server stop reading the peer: backpressure), so
            // the "bye" is read.
            let message = vec![9u8; 8000];
            for _ in 0..20 {
                let _ = stream.send(&message);
            }
            let _ = stream.send(b"bye");
            streams.push(stream);
        }
        Ok(Attack { stop, threads, _streams: streams, _flood: flood })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        // The flooder blocks in write until the server ends its connection or
        // the socket is shut down here.
        let _ = self._flood.shutdown(std::net::Shutdown::Both);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// A connected client and a blocking handle on its control socket (found as
/// the one new unnamed socket whose peer is the endpoint's listener; the
/// server's end, in this process too, is named after the endpoint), to flood it.
fn flooding_peer(name: &str, options: &Options) -> Result<(Stream, UnixStream)> {
    // Sockets are told apart by inode, not descriptor number: the server's
    // thread closes connections that ended earlier at its own pace, and the
    // new socket may get a number that was in `before` (the smoke test once
    // found none).
    let before: Vec<u64> = sockets().into_iter().map(|(_, inode)| inode).collect();
    let stream = Stream::connect(name, options)?;
    let new: Vec<OwnedFd> = sockets()
        .into_iter()
        .filter(|(_, inode)| !before.contains(inode))
        .filter_map(|(fd, inode)| {
            // SAFETY: `fd` was a socket of this process a moment ago (the
            // client's or the server's end); dup gives a descriptor this
            // handle owns, checked below to be that same socket.
            let dup = unsafe { libc::dup(fd) };
            // SAFETY: `dup` was just returned by dup and is owned by nobody else.
            let dup = (dup >= 0).then(|| unsafe { OwnedFd::from_raw_fd(dup) })?;
            rustix::fs::fstat(&dup).is_ok_and(|st| st.st_ino == inode).then_some(dup)
        })
        .filter(|fd| {
            // Other threads (another test in this binary) may open sockets
            // meanwhile: the client's end is unnamed and its peer is this
            // endpoint's listener (bound as `<name>.tmp`, then renamed).
            let Some(socket) = fd.try_clone().ok().map(UnixStream::from) else { return false };
            let unnamed = socket.local_addr().is_ok_and(|a| a.is_unnamed());
            let peer = socket.peer_addr().ok();
            let listener = peer.as_ref().and_then(|a| a.as_pathname()).and_then(|p| p.file_stem());
            unnamed && listener.is_some_and(|stem| stem == name)
        })
        .collect();
    let mut new = new.into_iter();
    let (Some(fd), None) = (new.next(), new.next()) else {
        return Err(BenchError::new("expected one new unnamed socket after connecting"));
    };
    let socket = UnixStream::from(fd);
    socket.set_nonblocking(false)?;
    Ok((stream, socket))
}

/// The socket descriptors this process holds, with each socket's inode.
fn sockets() -> Vec<(i32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            let inode = target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()?;
            Some((e.file_name().to_str()?.parse().ok()?, inode))
        })
        .collect()
}

// ------------------------------------------------------------ futex floor

/// Two threads handing a turn to each other through a futex word, sleeping
/// in between: what a round trip between two sleeping sides costs at least.
pub fn futex_ping_pong(time: Duration) -> Row {
    let word = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let peer = {
        let (word, stop) = (Arc::clone(&word), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut expect = 1u32;
            while !stop.load(Ordering::Relaxed) {
                if word.load(Ordering::Acquire) != expect {
                    let _ = futex::wait(&word, futex::Flags::PRIVATE, expect - 1, Some(&short()));
                    continue;
                }
                word.store(expect + 1, Ordering::Release);
                let _ = futex::wake(&word, futex::Flags::PRIVATE, 1);
                expect += 2;
            }
        })
    };
    let mut next = 0u32;
    let row = drive("futex ping-pong", 1, time, || {
        let word = Arc::clone(&word);
        Box::new(move || {
            next += 1;
            word.store(next, Ordering::Release);
            let _ = futex::wake(&word, futex::Flags::PRIVATE, 1);
            while word.load(Ordering::Acquire) == next {
                let _ = futex::wait(&word, futex::Flags::PRIVATE, next, Some(&short()));
            }
            next += 1;
        })
    });
    stop.store(true, Ordering::Relaxed);
    word.fetch_add(1 << 30, Ordering::Release);
    let _ = futex::wake(&word, futex::Flags::PRIVATE, 1);
    let _ = peer.join();
    row
}

/// A wait bound, so that a lost race never hangs the floor.
fn short() -> futex::Timespec {
    futex::Timespec { tv_sec: 0, tv_nsec: 10_000_000 }
}

// ------------------------------------------------------------------ report

/// The figures and the ratios the goals name, as text.
pub fn format(r: &Isolation) -> String {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mut out = format!("placement: every thread on CPUs {:?}\n", r.cpus);
    out += &format!(
        "  bystander 64 B round trip: p50 {:.1} µs, p99 {:.1} µs alone; p50 {:.1} µs, p99 {:.1} µs under every attack \
         (p99 {:.2}x, goal < 2x)\n",
        r.quiet.p50_us,
        r.quiet.p99_us,
        r.attacked.p50_us,
        r.attacked.p99_us,
        r.attacked.p99_us / r.quiet.p99_us.max(1e-9)
    );
    out += &format!(
        "  new client connect: p50 {:.0} µs, p99 {:.0} µs alone; p50 {:.0} µs, p99 {:.0} µs under attack \
         (p50 {:.2}x, goal within 2x)\n",
        us(r.connect_quiet.0),
        us(r.connect_quiet.1),
        us(r.connect_attacked.0),
        us(r.connect_attacked.1),
        us(r.connect_attacked.0) / us(r.connect_quiet.0).max(1e-9)
    );
    out += &format!(
        "  server path p50 {:.2} µs = {:.2}x the futex ping-pong ({:.2} µs; goal on one core <= 1.3x), \
         {:.2}x Stream<->Stream ({:.2} µs; goal on two cores <= 1.5x)\n",
        r.quiet.p50_us,
        r.quiet.p50_us / r.futex_floor.p50_us.max(1e-9),
        r.futex_floor.p50_us,
        r.quiet.p50_us / r.stream_pair.p50_us.max(1e-9),
        r.stream_pair.p50_us
    );
    out
}
