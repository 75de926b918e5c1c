//! What to measure: the [`Config`] (with its full, quick and smoke presets), the
//! compared transports ([`TransportKind`]) and where the two processes run
//! ([`Placement`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use shmsock::CipherSuite;

/// What to measure and for how long.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Which preset it started from: "full", "quick" or "smoke" (shown in the
    /// table and the plot, since a quick run's figures are rougher).
    pub preset: &'static str,
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
    /// [`maybe_run_peer`](crate::maybe_run_peer).
    #[serde(skip)]
    pub peer_exe: Option<PathBuf>,
}

/// Serializes ciphers by name.
pub(crate) fn serialize_suites<S: serde::Serializer>(
    suites: &[CipherSuite],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(suites.iter().map(|c| c.name()))
}

/// Serializes one cipher by name.
pub(crate) fn serialize_suite<S: serde::Serializer>(suite: &CipherSuite, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(suite.name())
}

impl Default for Config {
    /// The full run: about 75 seconds.
    fn default() -> Config {
        Config {
            preset: "full",
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
            preset: "quick",
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
            preset: "smoke",
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
    /// Every transport with these ciphers, in report order: shmsock, the
    /// plaintext Unix socket, the Unix socket with the same AEAD.
    pub fn all(suites: &[CipherSuite]) -> Vec<TransportKind> {
        let mut kinds: Vec<TransportKind> = suites.iter().map(|&c| TransportKind::Shm(c)).collect();
        kinds.push(TransportKind::UnixPlain);
        kinds.extend(suites.iter().map(|&c| TransportKind::UnixAead(c)));
        kinds
    }
    /// The ids of every transport the bench knows (with either cipher).
    pub fn all_ids() -> Vec<String> {
        Self::all(&[CipherSuite::Aegis128L, CipherSuite::ChaCha20Poly1305]).iter().map(TransportKind::id).collect()
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
