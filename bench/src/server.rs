//! The event-driven `Server` under N echo clients, beside an epoll Unix-socket
//! echo server in the same launch, and the server path against a plain
//! Stream↔Stream echo.
//!
//! Every client is a thread in this process doing 64 B ping-pong for a fixed
//! time (unpinned: the OS places the threads; the machine is shared, so read the
//! figures as ratios within one launch). Per N it reports the aggregate round
//! trips per second, p50 and p99 of the round trip, and the slowest and fastest
//! client's rate (their ratio is the fairness figure).

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::epoll;
use shmsock::{Connection, Keypair, Options, Server, ServerHandler, Stream};

/// Size of each message.
pub const MESSAGE: usize = 64;

/// One row: N clients against one server.
#[derive(Clone, Debug)]
pub struct Row {
    /// Which server.
    pub server: &'static str,
    /// Number of clients.
    pub clients: usize,
    /// Round trips per second, all clients together.
    pub aggregate: f64,
    /// Median round trip, µs.
    pub p50_us: f64,
    /// 99th percentile round trip, µs.
    pub p99_us: f64,
    /// Slowest client's round trips per second.
    pub min_rate: f64,
    /// Fastest client's round trips per second.
    pub max_rate: f64,
}

/// Echoes without ever blocking (a full outbound queue drops the reply).
pub(crate) struct Echo;

impl ServerHandler for Echo {
    fn on_data(&self, c: &Connection, data: &[u8]) {
        let _ = c.send(data);
    }
}

/// Runs `round_trip` on `clients` threads for `time`, each recording its latencies.
pub(crate) fn drive(
    server: &'static str,
    clients: usize,
    time: Duration,
    connect: impl Fn() -> Box<dyn FnMut() + Send> + Sync,
) -> Row {
    let start = Arc::new(std::sync::Barrier::new(clients));
    let results: Vec<(usize, Vec<u32>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let mut round_trip = connect();
                let start = Arc::clone(&start);
                scope.spawn(move || {
                    start.wait();
                    let mut samples = Vec::with_capacity(1 << 16);
                    let end = Instant::now() + time;
                    let mut count = 0usize;
                    loop {
                        let t = Instant::now();
                        if t >= end {
                            break;
                        }
                        round_trip();
                        count += 1;
                        // Keep every 4th sample: enough for p99, little memory.
                        if count % 4 == 0 {
                            samples.push(t.elapsed().as_nanos().min(u32::MAX as u128) as u32);
                        }
                    }
                    (count, samples)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or((0, Vec::new()))).collect()
    });
    let secs = time.as_secs_f64();
    let rates: Vec<f64> = results.iter().map(|(n, _)| *n as f64 / secs).collect();
    let mut all: Vec<u32> = results.into_iter().flat_map(|(_, s)| s).collect();
    all.sort_unstable();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied();
    Row {
        server,
        clients,
        aggregate: rates.iter().sum(),
        p50_us: pct(0.50).unwrap_or(0) as f64 / 1000.0,
        p99_us: pct(0.99).unwrap_or(0) as f64 / 1000.0,
        min_rate: rates.iter().copied().fold(f64::INFINITY, f64::min),
        max_rate: rates.iter().copied().fold(0.0, f64::max),
    }
}

/// A shmsock client's 64 B round trip.
fn stream_client(name: &str, options: &Options) -> Box<dyn FnMut() + Send> {
    let stream = Stream::connect(name, options).expect("connect to the bench server");
    let message = [7u8; MESSAGE];
    let mut buf = [0u8; MESSAGE];
    Box::new(move || {
        stream.send(&message).expect("send");
        stream.recv_into(&mut buf).expect("recv");
    })
}

/// The shmsock `Server` with `clients` echo clients.
pub fn shmsock_server(clients: usize, time: Duration, dispatch_threads: usize) -> shmsock::Result<Row> {
    let keypair = Keypair::generate();
    let name = format!("bench-server-{}-{clients}", std::process::id());
    let options = Options::new()
        .keypair(keypair.clone())
        .ring_size(1 << 16)
        .max_connections(clients + 8)
        .dispatch_threads(dispatch_threads);
    let server = Server::start(&name, &options, Echo)?;
    let client_options = Options::new().server_key(*keypair.public());
    let row = drive("shmsock Server", clients, time, || stream_client(&name, &client_options));
    server.close();
    Ok(row)
}

/// A plain Stream↔Stream echo (one server thread per client): the path without the Server.
pub fn stream_pair(time: Duration) -> shmsock::Result<Row> {
    let keypair = Keypair::generate();
    let name = format!("bench-pair-{}", std::process::id());
    let listener = shmsock::Listener::bind(&name, &Options::new().keypair(keypair.clone()).ring_size(1 << 16))?;
    let stop = Arc::new(AtomicBool::new(false));
    let echo_stop = Arc::clone(&stop);
    let echo = std::thread::spawn(move || {
        let Ok(stream) = listener.accept() else { return };
        let mut buf = [0u8; MESSAGE];
        while !echo_stop.load(Ordering::Relaxed) {
            match stream.recv_into(&mut buf) {
                Ok(n) => {
                    let _ = stream.send(&buf[..n]);
                }
                Err(_) => return,
            }
        }
    });
    let client_options = Options::new().server_key(*keypair.public());
    let row = drive("Stream<->Stream", 1, time, || stream_client(&name, &client_options));
    stop.store(true, Ordering::Relaxed);
    let _ = echo.join();
    Ok(row)
}

/// An epoll echo server over Unix sockets (one thread), with `clients` clients.
pub fn unix_server(clients: usize, time: Duration) -> std::io::Result<Row> {
    let dir = std::env::temp_dir().join(format!("shmsock-bench-unix-{}-{clients}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let listener = UnixListener::bind(&dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    let server_stop = Arc::clone(&stop);
    let server = std::thread::spawn(move || unix_echo_loop(listener, clients, &server_stop));
    let row = drive("epoll Unix socket", clients, time, || {
        let mut socket = UnixStream::connect(&dir).expect("connect to the Unix echo server");
        let message = [7u8; MESSAGE];
        let mut buf = [0u8; MESSAGE];
        Box::new(move || {
            socket.write_all(&message).expect("write");
            socket.read_exact(&mut buf).expect("read");
        })
    });
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
    let _ = std::fs::remove_file(&dir);
    Ok(row)
}

fn unix_echo_loop(listener: UnixListener, clients: usize, stop: &AtomicBool) {
    let Ok(ep) = epoll::create(epoll::CreateFlags::CLOEXEC) else { return };
    let mut sockets = Vec::new();
    for _ in 0..clients {
        let Ok((socket, _)) = listener.accept() else { return };
        let _ = socket.set_nonblocking(true);
        let token = sockets.len() as u64;
        if epoll::add(&ep, socket.as_fd(), epoll::EventData::new_u64(token), epoll::EventFlags::IN).is_err() {
            return;
        }
        sockets.push(socket);
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = [0u8; 4096];
    let mut ready = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        ready.clear();
        match shmsock::platform::epoll_wait_tokens(ep.as_fd(), &mut events, Some(Duration::from_millis(100))) {
            Ok(tokens) => ready.extend(tokens),
            Err(_) => continue,
        }
        for &token in &ready {
            let Some(mut socket) = sockets.get(token as usize) else { continue };
            if let Ok(n) = socket.read(&mut buf) {
                if n > 0 {
                    let _ = socket.write_all(&buf[..n]);
                }
            }
        }
    }
}

/// CPU time (user + system) this process used so far, from /proc/self/stat.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at ")".
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel reports clock ticks, 100 per second on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// `connections` idle connections to one Server (both ends in this process):
/// the CPU time the whole process uses over `idle`, which should be nothing.
pub fn idle_cpu(connections: usize, idle: Duration) -> shmsock::Result<Duration> {
    let keypair = Keypair::generate();
    let name = format!("bench-idle-{}", std::process::id());
    let options = Options::new().keypair(keypair.clone()).ring_size(4096).max_connections(connections + 8);
    let server = Server::start(&name, &options, Echo)?;
    let client_options = Options::new().server_key(*keypair.public());
    let streams: Vec<Stream> =
        (0..connections).map(|_| Stream::connect(&name, &client_options)).collect::<shmsock::Result<_>>()?;
    std::thread::sleep(Duration::from_millis(200)); // let the server settle
    let before = process_cpu().unwrap_or_default();
    std::thread::sleep(idle);
    let used = process_cpu().unwrap_or_default().saturating_sub(before);
    drop(streams);
    server.close();
    Ok(used)
}

/// Every row of the comparison, in one launch.
pub fn compare(counts: &[usize], time: Duration, dispatch_threads: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    if let Ok(row) = stream_pair(time) {
        rows.push(row);
    }
    for &n in counts {
        if let Ok(row) = shmsock_server(n, time, dispatch_threads) {
            rows.push(row);
        }
        if let Ok(row) = unix_server(n, time) {
            rows.push(row);
        }
    }
    rows
}

/// The rows as a text table with the ratios the goals name.
pub fn format_rows(rows: &[Row]) -> String {
    let mut out =
        String::from("server               N   aggregate/s   p50 µs   p99 µs   min/s     max/s     max/min\n");
    for r in rows {
        out.push_str(&format!(
            "{:<20} {:>3} {:>12.0} {:>8.2} {:>8.2} {:>9.0} {:>9.0} {:>7.2}\n",
            r.server,
            r.clients,
            r.aggregate,
            r.p50_us,
            r.p99_us,
            r.min_rate,
            r.max_rate,
            r.max_rate / r.min_rate.max(1.0)
        ));
    }
    out
}
