//! shmsock-bench: shmsock against Unix domain sockets, between two processes.
//!
//! One call to [`run`] measures, in one launch, for each placement (both
//! processes pinned to one core; pinned to two different cores):
//! - round-trip latency (p50, p99) of ping-pong with small messages (64 B, 1 KiB),
//! - one-way throughput with large messages (64 KiB, 1 MiB), acknowledged at the end,
//!
//! over shmsock with each cipher, a plaintext Unix socket and a Unix socket carrying
//! the same AEAD frames, plus the "floor": a spinning ping-pong over one shared cache
//! line with a 64 B seal and open each way (and a variant that also carries the
//! sealed frame through shared memory). Every figure is the median of several
//! runs, and the runs of all transports are interleaved so background load hits them
//! alike. [`Config::contended`] adds each placement again with a busy-looping
//! process on the measuring CPU. The measuring side also counts its heap
//! allocations while timed ([`set_allocation_counter`]) and single operations that
//! stall. Results are compared as ratios ([`Report::ratios`], [`Report::goals`]),
//! never as bare times: see DESIGN.md, "Performance rules".
//!
//! The peer process is the host binary re-executed with the hidden subcommand
//! [`PEER_SUBCOMMAND`]; a host binary (the `shmsock-bench` binary, or the CLI's
//! `shmsock bench`) must call [`maybe_run_peer`] first thing in `main`.

#![warn(missing_docs)]

pub mod affinity;
pub mod connect;
mod error;
pub mod floor;
pub mod measure;
mod peer;
pub mod report;
pub mod stats;
pub mod transport;
mod watchdog;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use shmsock::{CipherSuite, Keypair, Listener, Options};

pub use error::{BenchError, Result};
pub use measure::{set_allocation_counter, LatencyRun, ThroughputRun};
pub use peer::{peer_main, PeerProcess, PEER_SUBCOMMAND};
pub use report::{format_report, GoalCheck, Ratio};

pub use crate::floor::FloorKind;
use crate::floor::FloorSession;
use crate::measure::SampleBuffer;
use crate::transport::{ShmTransport, Transport, UnixAead, UnixPlain};

/// If this process was started as a bench peer (`<exe> __peer ...`), runs the
/// peer and returns its exit code; else returns None at once.
pub fn maybe_run_peer() -> Option<i32> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(|s| s.as_str()) != Some(PEER_SUBCOMMAND) {
        return None;
    }
    Some(match peer_main(&args[2..]) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shmsock-bench peer: {e}");
            1
        }
    })
}

/// What to measure and for how long.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Timed runs per figure; each figure is the median over runs.
    pub runs: usize,
    /// Untimed traffic on each transport before its first run.
    pub warmup: Duration,
    /// Untimed traffic at the start of every run (re-warms after the other
    /// transports ran in between).
    pub run_warmup: Duration,
    /// Length of one latency run.
    pub latency_run: Duration,
    /// Length of one throughput run.
    pub throughput_run: Duration,
    /// Ping-pong message sizes (each > 1 byte).
    pub latency_sizes: Vec<usize>,
    /// Streaming message sizes (each > 1 byte, at most 1 MiB).
    pub throughput_sizes: Vec<usize>,
    /// Ciphers for shmsock and the AEAD baseline; empty: AEGIS-128L (when the CPU
    /// has AES) and ChaCha20-Poly1305.
    #[serde(serialize_with = "serialize_suites")]
    pub ciphers: Vec<CipherSuite>,
    /// Measure with both processes pinned to one core.
    pub one_core: bool,
    /// Measure with the processes pinned to two different cores.
    pub two_cores: bool,
    /// The two CPUs used (the measuring process always runs on the first).
    pub cpus: [usize; 2],
    /// Measure the floor.
    pub floor: bool,
    /// shmsock spin budget (None: the library default).
    pub shm_spin: Option<Duration>,
    /// shmsock ring size (None: the library default).
    pub shm_ring_size: Option<u32>,
    /// Send and receive timeout of each shmsock call while streaming (throughput),
    /// on both sides. A timed-out call is retried, so a side that sleeps and is
    /// never woken (a lost wake-up) costs this long and shows up as a stall instead
    /// of hanging the bench. Ping-pong runs use no timeout, as a default stream
    /// does; the watchdog ends the bench if they hang.
    pub shm_timeout: Duration,
    /// Only these transports (ids as in [`TransportKind::id`], e.g. `shm-aegis-128l`,
    /// `unix-plain`); empty: all.
    pub only: Vec<String>,
    /// Also measure each placement with a busy-looping "hog" process pinned to
    /// the measuring process's CPU, as on a machine where other work competes
    /// for the cores (not part of the goals; doubles the run time).
    pub contended: bool,
    /// Per-call timeout of the measuring side's shmsock calls during ping-pong
    /// (None, the default, as a default stream: a deadline costs clock reads).
    pub ping_timeout: Option<Duration>,
    /// The bench fails (killing its peers) when no step completes for this long.
    pub watchdog: Duration,
    /// Most round trips kept per latency run.
    pub max_samples: usize,
    /// The binary to start as the peer (None: this executable). It must call
    /// [`maybe_run_peer`].
    #[serde(skip)]
    pub peer_exe: Option<PathBuf>,
}

fn serialize_suites<S: serde::Serializer>(suites: &[CipherSuite], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(suites.iter().map(|c| c.name()))
}

impl Default for Config {
    /// The full run: about 75 seconds.
    fn default() -> Config {
        Config {
            runs: 5,
            warmup: Duration::from_millis(200),
            run_warmup: Duration::from_millis(25),
            latency_run: Duration::from_millis(250),
            throughput_run: Duration::from_millis(300),
            latency_sizes: vec![64, 1024],
            throughput_sizes: vec![64 * 1024, 1 << 20],
            ciphers: Vec::new(),
            one_core: true,
            two_cores: true,
            cpus: [0, 1],
            floor: true,
            shm_spin: None,
            shm_ring_size: None,
            shm_timeout: Duration::from_secs(2),
            only: Vec::new(),
            watchdog: Duration::from_secs(30),
            ping_timeout: None,
            contended: false,
            max_samples: 1 << 21,
            peer_exe: None,
        }
    }
}

impl Config {
    /// A smoke run of about 10 seconds.
    pub fn quick() -> Config {
        Config {
            runs: 3,
            warmup: Duration::from_millis(50),
            run_warmup: Duration::from_millis(10),
            latency_run: Duration::from_millis(50),
            throughput_run: Duration::from_millis(60),
            ..Config::default()
        }
    }

    /// Runs far too short to mean anything, for tests of the machinery.
    pub fn smoke() -> Config {
        Config {
            runs: 1,
            warmup: Duration::from_millis(5),
            run_warmup: Duration::from_millis(1),
            latency_run: Duration::from_millis(5),
            throughput_run: Duration::from_millis(5),
            max_samples: 10_000,
            ..Config::default()
        }
    }

    /// The ciphers to measure, in order.
    pub fn suites(&self) -> Vec<CipherSuite> {
        if !self.ciphers.is_empty() {
            return self.ciphers.clone();
        }
        let mut v = Vec::new();
        if shmsock::sodium::has_aes_hardware() {
            v.push(CipherSuite::Aegis128L);
        }
        v.push(CipherSuite::ChaCha20Poly1305);
        v
    }

    /// The cipher shmsock picks by default on this machine (the goals are judged on it).
    pub fn default_suite() -> CipherSuite {
        if shmsock::sodium::has_aes_hardware() {
            CipherSuite::Aegis128L
        } else {
            CipherSuite::ChaCha20Poly1305
        }
    }
}

/// One of the compared transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// shmsock with this cipher.
    Shm(CipherSuite),
    /// A plaintext Unix socket.
    UnixPlain,
    /// A Unix socket carrying frames sealed with this cipher.
    UnixAead(CipherSuite),
}

impl TransportKind {
    /// A stable identifier (`shm-aegis-128l`, `unix-plain`, `unix-chacha20-poly1305`, ...).
    pub fn id(&self) -> String {
        match self {
            TransportKind::Shm(c) => format!("shm-{}", c.name()),
            TransportKind::UnixPlain => "unix-plain".into(),
            TransportKind::UnixAead(c) => format!("unix-{}", c.name()),
        }
    }
    /// A human label.
    pub fn label(&self) -> String {
        match self {
            TransportKind::Shm(c) => format!("shmsock {}", c.name()),
            TransportKind::UnixPlain => "unix socket, plaintext".into(),
            TransportKind::UnixAead(c) => format!("unix socket + {}", c.name()),
        }
    }
}

impl Serialize for TransportKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.id())
    }
}

/// Where the two processes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// CPU of the measuring process.
    pub parent_cpu: usize,
    /// CPU of the peer process.
    pub peer_cpu: usize,
    /// A busy-looping process pinned to the measuring process's CPU (a machine
    /// where other work competes for the cores).
    pub hog: bool,
}

impl Placement {
    /// True when both share one core.
    pub fn shared(&self) -> bool {
        self.parent_cpu == self.peer_cpu
    }
    /// "one core", "two cores", "one core + hog" or "two cores + hog".
    pub fn name(&self) -> &'static str {
        match (self.shared(), self.hog) {
            (true, false) => "one core",
            (false, false) => "two cores",
            (true, true) => "one core + hog",
            (false, true) => "two cores + hog",
        }
    }
}

/// Round-trip figures of one message size.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyStat {
    /// Message size in bytes.
    pub size: usize,
    /// Median over runs of each run's p50, in ns.
    pub p50_ns: f64,
    /// Median over runs of each run's p99, in ns.
    pub p99_ns: f64,
    /// The runs.
    pub runs: Vec<LatencyRun>,
}

impl LatencyStat {
    fn new(size: usize) -> LatencyStat {
        LatencyStat { size, p50_ns: f64::NAN, p99_ns: f64::NAN, runs: Vec::new() }
    }
    fn finish(&mut self) {
        self.p50_ns = stats::median(&self.runs.iter().map(|r| r.p50_ns as f64).collect::<Vec<_>>());
        self.p99_ns = stats::median(&self.runs.iter().map(|r| r.p99_ns as f64).collect::<Vec<_>>());
    }
}

/// Throughput of one message size.
#[derive(Clone, Debug, Serialize)]
pub struct ThroughputStat {
    /// Message size in bytes.
    pub size: usize,
    /// Median over runs, in GB/s (10^9 bytes per second delivered).
    pub gb_per_s: f64,
    /// Stalled operations over all runs (see [`measure::STALL`]).
    pub stalls: u32,
    /// The runs.
    pub runs: Vec<ThroughputRun>,
}

impl ThroughputStat {
    /// Runs that had at least one stall.
    pub fn stalled_runs(&self) -> usize {
        self.runs.iter().filter(|r| r.stalls > 0).count()
    }
    /// Median GB/s of the runs without a stall (NaN if none).
    pub fn gb_per_s_without_stalls(&self) -> f64 {
        stats::median(&self.runs.iter().filter(|r| r.stalls == 0).map(|r| r.gb_per_s).collect::<Vec<_>>())
    }
}

/// Everything measured on one transport in one placement.
#[derive(Clone, Debug, Serialize)]
pub struct TransportReport {
    /// Which transport.
    pub transport: TransportKind,
    /// Its label.
    pub label: String,
    /// Per ping-pong size.
    pub latency: Vec<LatencyStat>,
    /// Per streaming size.
    pub throughput: Vec<ThroughputStat>,
}

impl TransportReport {
    /// The latency figures of one size.
    pub fn latency_of(&self, size: usize) -> Option<&LatencyStat> {
        self.latency.iter().find(|l| l.size == size)
    }
    /// The throughput figures of one size.
    pub fn throughput_of(&self, size: usize) -> Option<&ThroughputStat> {
        self.throughput.iter().find(|l| l.size == size)
    }
}

/// The floor of one cipher in one placement.
#[derive(Clone, Debug, Serialize)]
pub struct FloorReport {
    /// The cipher sealing and opening 64 B each way.
    #[serde(serialize_with = "serialize_suite")]
    pub cipher: CipherSuite,
    /// One line only (the goal's floor), or the line and the frame.
    pub kind: FloorKind,
    /// How both sides wait: spinning (two cores) or yielding at each check (one core).
    pub wait: &'static str,
    /// Round trips of 64 B.
    pub latency: LatencyStat,
}

fn serialize_suite<S: serde::Serializer>(suite: &CipherSuite, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(suite.name())
}

/// The results of one placement.
#[derive(Clone, Debug, Serialize)]
pub struct PlacementReport {
    /// Where the processes ran.
    pub placement: Placement,
    /// One name: "one core" or "two cores".
    pub name: &'static str,
    /// Per transport.
    pub transports: Vec<TransportReport>,
    /// Per cipher.
    pub floors: Vec<FloorReport>,
}

impl PlacementReport {
    /// The report of one transport.
    pub fn transport(&self, kind: TransportKind) -> Option<&TransportReport> {
        self.transports.iter().find(|t| t.transport == kind)
    }
    /// The floor (one line: the goal's) of one cipher.
    pub fn floor(&self, cipher: CipherSuite) -> Option<&FloorReport> {
        self.floor_of(cipher, FloorKind::Line)
    }
    /// A floor of one cipher.
    pub fn floor_of(&self, cipher: CipherSuite, kind: FloorKind) -> Option<&FloorReport> {
        self.floors.iter().find(|f| f.cipher == cipher && f.kind == kind)
    }
}

/// Everything one launch measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// shmsock's version.
    pub shmsock_version: &'static str,
    /// The CPU, from /proc/cpuinfo.
    pub cpu_model: String,
    /// CPUs available to the bench.
    pub cpus_available: usize,
    /// Whether the CPU has AES instructions (AEGIS-128L is the default then).
    pub aes_hardware: bool,
    /// The cipher shmsock uses by default here; the goals are judged on it.
    #[serde(serialize_with = "serialize_suite")]
    pub default_cipher: CipherSuite,
    /// What was run.
    pub config: Config,
    /// Per placement.
    pub placements: Vec<PlacementReport>,
    /// shmsock against the baselines, per metric and placement.
    pub ratios: Vec<Ratio>,
    /// The performance goals and whether this launch met them.
    pub goals: Vec<GoalCheck>,
    /// The 1-minute load average when the run started and when it ended (other
    /// work on the machine: above the CPU count, figures are noisy and the
    /// two-core placement is not two idle cores).
    pub load_average: [f64; 2],
    /// Anything skipped and why.
    pub notes: Vec<String>,
}

/// The 1-minute load average (NaN if unknown).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// A transport under test in one placement: its peer, and our end.
struct Session {
    kind: TransportKind,
    transport: Box<dyn Transport>,
    peer: PeerProcess,
}

fn start_session(
    kind: TransportKind,
    exe: &std::path::Path,
    cpu: usize,
    config: &Config,
    ordinal: usize,
) -> Result<Session> {
    const TIMEOUT: Duration = Duration::from_secs(60);
    match kind {
        TransportKind::Shm(suite) => {
            let endpoint = format!("shmsock-bench-{}-{ordinal}", std::process::id());
            let keypair = Keypair::generate();
            let public = *keypair.public();
            let mut options = Options::new().keypair(keypair).require_chacha(suite == CipherSuite::ChaCha20Poly1305);
            if let Some(spin) = config.shm_spin {
                options = options.spin(spin);
            }
            if let Some(ring) = config.shm_ring_size {
                options = options.ring_size(ring);
            }
            let listener = Listener::bind(&endpoint, &options)?;
            let args = vec![
                "shm".to_string(),
                endpoint.clone(),
                public.to_text(),
                suite.name().to_string(),
                options.spin.as_nanos().to_string(),
                config.shm_ring_size.unwrap_or(0).to_string(),
                config.shm_timeout.as_millis().to_string(),
            ];
            let mut peer = PeerProcess::spawn(exe, cpu, &args, None)?;
            let stream = listener.accept_timeout(Some(Duration::from_secs(15))).map_err(|e| {
                let alive = peer.check_alive().err().map(|e| format!(" ({e})")).unwrap_or_default();
                BenchError::from(e).context(&format!("accepting the peer on '{endpoint}'{alive}"))
            })?;
            if stream.cipher() != suite {
                return Err(BenchError::new(format!(
                    "negotiated {} instead of {}",
                    stream.cipher().name(),
                    suite.name()
                )));
            }
            Ok(Session { kind, transport: Box::new(ShmTransport::new(stream)), peer })
        }
        TransportKind::UnixPlain | TransportKind::UnixAead(_) => {
            let (mut ours, theirs) = peer::socket_pair()?;
            ours.set_read_timeout(Some(TIMEOUT))?;
            ours.set_write_timeout(Some(TIMEOUT))?;
            use std::os::fd::AsRawFd;
            let mut args = match kind {
                TransportKind::UnixPlain => vec!["unix-plain".to_string()],
                _ => vec!["unix-aead".to_string()],
            };
            args.push(theirs.as_raw_fd().to_string());
            if let TransportKind::UnixAead(suite) = kind {
                args.push(suite.name().to_string());
            }
            let peer = PeerProcess::spawn(exe, cpu, &args, Some(theirs.as_raw_fd()))?;
            drop(theirs);
            let transport: Box<dyn Transport> = match kind {
                TransportKind::UnixAead(suite) => {
                    let mut p2c = [0u8; 32];
                    let mut c2p = [0u8; 32];
                    shmsock::sodium::random_bytes(&mut p2c);
                    shmsock::sodium::random_bytes(&mut c2p);
                    let mut keys = [0u8; 64];
                    keys[..32].copy_from_slice(&p2c);
                    keys[32..].copy_from_slice(&c2p);
                    std::io::Write::write_all(&mut ours, &keys)?;
                    Box::new(UnixAead::new(ours, peer::aead_of(suite), p2c, c2p))
                }
                _ => Box::new(UnixPlain::new(ours)),
            };
            Ok(Session { kind, transport, peer })
        }
    }
}

/// Picks the placements to measure from the config and the CPUs we may use.
fn placements(config: &Config, notes: &mut Vec<String>) -> Result<Vec<Placement>> {
    let allowed = affinity::current()?;
    let [a, b] = config.cpus;
    let (a, b) = if allowed.contains(&a) && allowed.contains(&b) && a != b {
        (a, b)
    } else if allowed.len() >= 2 {
        notes.push(format!("CPUs {a} and {b} are not both available; using {} and {}", allowed[0], allowed[1]));
        (allowed[0], allowed[1])
    } else {
        (allowed[0], allowed[0])
    };
    let mut v = Vec::new();
    let hogs: &[bool] = if config.contended { &[false, true] } else { &[false] };
    for &hog in hogs {
        if config.one_core {
            v.push(Placement { parent_cpu: a, peer_cpu: a, hog });
        }
        if config.two_cores {
            if a != b {
                v.push(Placement { parent_cpu: a, peer_cpu: b, hog });
            } else if !hog {
                notes.push("only one CPU is available: the two-core placement was skipped".into());
            }
        }
    }
    Ok(v)
}

/// Runs the whole benchmark. `progress(what, fraction_done)` is called before
/// each step.
pub fn run(config: &Config, progress: &mut dyn FnMut(&str, f64)) -> Result<Report> {
    shmsock::sodium::init()?;
    for &s in config.latency_sizes.iter().chain(&config.throughput_sizes) {
        if !(2..=(1 << 20)).contains(&s) {
            return Err(BenchError::new(format!("message size {s} is out of range (2 B to 1 MiB)")));
        }
    }
    let exe = match &config.peer_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let mut notes = Vec::new();
    let suites = config.suites();
    let mut kinds: Vec<TransportKind> = suites.iter().map(|&c| TransportKind::Shm(c)).collect();
    kinds.push(TransportKind::UnixPlain);
    kinds.extend(suites.iter().map(|&c| TransportKind::UnixAead(c)));
    if !config.only.is_empty() {
        kinds.retain(|k| config.only.contains(&k.id()));
    }
    let placements = placements(config, &mut notes)?;
    let load_before = load_average();
    let original_affinity = affinity::current()?;

    let floors = if config.floor { 2 * suites.len() } else { 0 };
    let steps_per_placement = 2 * kinds.len()
        + config.runs * ((config.latency_sizes.len() + config.throughput_sizes.len()) * kinds.len() + floors)
        + floors;
    let hog_steps = placements.iter().filter(|p| p.hog).count();
    let total = (steps_per_placement * placements.len() + hog_steps).max(1) as f64;
    let mut done = 0usize;
    let watchdog = watchdog::Watchdog::start(config.watchdog);
    let mut step = |what: &str, progress: &mut dyn FnMut(&str, f64)| {
        watchdog.beat();
        progress(what, done as f64 / total);
        done += 1;
    };

    let mut samples = SampleBuffer::new(config.max_samples.max(16));
    let mut scratch = vec![0u8; peer::PEER_BUFFER];
    let mut results = Vec::new();
    let mut ordinal = 0usize;
    let outcome = (|| -> Result<()> {
        for &placement in &placements {
            affinity::pin(&[placement.parent_cpu])?;
            let pname = placement.name();
            let hog = if placement.hog {
                step(&format!("{pname}: starting the hog on CPU {}", placement.parent_cpu), progress);
                Some(PeerProcess::spawn(&exe, placement.parent_cpu, &["hog".to_string()], None)?)
            } else {
                None
            };
            let mut sessions = Vec::new();
            for &kind in &kinds {
                step(&format!("{pname}: starting {}", kind.label()), progress);
                ordinal += 1;
                let s = start_session(kind, &exe, placement.peer_cpu, config, ordinal)
                    .map_err(|e| e.context(&format!("{pname}, {}", kind.label())))?;
                watchdog.watch(s.peer.id());
                sessions.push(s);
            }
            for s in &mut sessions {
                step(&format!("{pname}: warming up {}", s.kind.label()), progress);
                let t = s.transport.as_mut();
                let lat = *config.latency_sizes.first().unwrap_or(&64);
                measure::latency_run(t, lat, config.warmup / 2, Duration::ZERO, &mut samples, &mut scratch)?;
                let thr = *config.throughput_sizes.last().unwrap_or(&(1 << 20));
                measure::throughput_run(
                    t,
                    thr,
                    Duration::ZERO,
                    config.warmup / 2,
                    Some(config.shm_timeout),
                    &mut scratch,
                )?;
            }
            let mut floor_sessions = Vec::new();
            if config.floor {
                for &suite in &suites {
                    for kind in [FloorKind::Line, FloorKind::Frame] {
                        step(
                            &format!("{pname}: starting the floor ({}) with {}", kind.describe(), suite.name()),
                            progress,
                        );
                        let mut f = FloorSession::start(&exe, placement.peer_cpu, suite, kind, !placement.shared())?;
                        watchdog.watch(f.peer_id());
                        f.run(config.warmup, Duration::ZERO, &mut samples)?;
                        floor_sessions.push(((suite, kind), f));
                    }
                }
            }
            let mut floor_reports: Vec<FloorReport> = floor_sessions
                .iter()
                .map(|((suite, kind), _)| FloorReport {
                    cipher: *suite,
                    kind: *kind,
                    wait: if placement.shared() { "yield" } else { "spin" },
                    latency: LatencyStat::new(floor::FLOOR_SIZE),
                })
                .collect();
            let mut reports: Vec<TransportReport> = kinds
                .iter()
                .map(|&k| TransportReport {
                    transport: k,
                    label: k.label(),
                    latency: config.latency_sizes.iter().map(|&s| LatencyStat::new(s)).collect(),
                    throughput: config
                        .throughput_sizes
                        .iter()
                        .map(|&s| ThroughputStat { size: s, gb_per_s: f64::NAN, stalls: 0, runs: Vec::new() })
                        .collect(),
                })
                .collect();
            for round in 0..config.runs {
                let r = format!("run {}/{}", round + 1, config.runs);
                for (li, &size) in config.latency_sizes.iter().enumerate() {
                    for (s, rep) in sessions.iter_mut().zip(&mut reports) {
                        step(
                            &format!("{pname}: {} round trip {} ({r})", s.kind.label(), report::size_name(size)),
                            progress,
                        );
                        s.transport.set_timeout(config.ping_timeout);
                        let run = measure::latency_run(
                            s.transport.as_mut(),
                            size,
                            config.run_warmup,
                            config.latency_run,
                            &mut samples,
                            &mut scratch,
                        )
                        .map_err(|e| e.context(&format!("{pname}, {}", s.kind.label())))?;
                        rep.latency[li].runs.push(run);
                    }
                }
                for (((suite, kind), f), rep) in floor_sessions.iter_mut().zip(&mut floor_reports) {
                    step(&format!("{pname}: floor ({}) with {} ({r})", kind.describe(), suite.name()), progress);
                    rep.latency.runs.push(f.run(config.run_warmup, config.latency_run, &mut samples)?);
                }
                for (ti, &size) in config.throughput_sizes.iter().enumerate() {
                    for (s, rep) in sessions.iter_mut().zip(&mut reports) {
                        step(
                            &format!("{pname}: {} throughput {} ({r})", s.kind.label(), report::size_name(size)),
                            progress,
                        );
                        let run = measure::throughput_run(
                            s.transport.as_mut(),
                            size,
                            config.run_warmup,
                            config.throughput_run,
                            Some(config.shm_timeout),
                            &mut scratch,
                        )
                        .map_err(|e| e.context(&format!("{pname}, {}", s.kind.label())))?;
                        rep.throughput[ti].runs.push(run);
                    }
                }
            }
            watchdog.unwatch_all();
            for s in sessions {
                let Session { mut transport, peer, .. } = s;
                let _ = transport.send(b"Q");
                drop(transport);
                peer.finish(Duration::from_millis(500));
            }
            for (_, f) in floor_sessions {
                f.finish();
            }
            drop(hog);
            for rep in &mut reports {
                rep.latency.iter_mut().for_each(LatencyStat::finish);
                for t in &mut rep.throughput {
                    t.gb_per_s = stats::median(&t.runs.iter().map(|r| r.gb_per_s).collect::<Vec<_>>());
                    t.stalls = t.runs.iter().map(|r| r.stalls).sum();
                }
            }
            floor_reports.iter_mut().for_each(|f| f.latency.finish());
            results.push(PlacementReport { placement, name: pname, transports: reports, floors: floor_reports });
        }
        Ok(())
    })();
    let _ = affinity::pin(&original_affinity);
    if watchdog.fired() {
        let e = outcome.err().map(|e| format!(": {e}")).unwrap_or_default();
        return Err(BenchError::new(format!(
            "no progress for {:?}: a transport hung (a side asleep and never woken?); the peers were killed{e}",
            config.watchdog
        )));
    }
    drop(watchdog);
    outcome?;
    progress("done", 1.0);

    let mut report = Report {
        shmsock_version: shmsock::VERSION,
        cpu_model: cpu_model(),
        cpus_available: affinity::available_cpus(),
        aes_hardware: shmsock::sodium::has_aes_hardware(),
        default_cipher: Config::default_suite(),
        config: config.clone(),
        placements: results,
        load_average: [load_before, load_average()],
        ratios: Vec::new(),
        goals: Vec::new(),
        notes,
    };
    report.ratios = report::ratios(&report);
    report.goals = report::goals(&report);
    let busy = report.load_average.iter().copied().fold(f64::NAN, f64::max);
    if busy > report.cpus_available as f64 * 0.75 {
        report.notes.push(format!(
            "the machine was busy (load average {:.1} -> {:.1} on {} CPUs): other processes shared the cores, \
             so the figures are noisy, and spinning transports lose most (run again on an idle machine)",
            report.load_average[0], report.load_average[1], report.cpus_available
        ));
    }
    Ok(report)
}
