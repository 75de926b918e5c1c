//! Shared machinery of the multi-process integration tests (`transport.rs`,
//! `tamper.rs`, `liveness.rs`).
//!
//! # Processes
//!
//! Every test binary has a `#[test] fn child()` that calls [`child_main`]. The
//! parent test re-runs its own binary (`std::env::current_exe()`) with
//! `--exact child --nocapture --test-threads=1` and `SHMSOCK_TEST_ROLE` (plus
//! `SHMSOCK_TEST_*` settings: endpoint name, keys in text form, options); without
//! that variable `child` returns at once, so in the parent it is a no-op test.
//!
//! A child reports events on stdout as lines `@@EV <event>` and takes commands
//! on stdin, one per line. The parent's [`Child`] reads the events on a thread
//! and lets a test wait for a matching one with a generous timeout. A child's
//! lifetime is bounded three ways: the parent's [`Child`] kills it on drop, it
//! exits when its stdin closes (the parent died), and a watchdog ends it after
//! [`CHILD_MAX_LIFETIME`].
//!
//! # Connection commands
//!
//! The `server` and `client` roles run a small command language per connection
//! (`<conn id> <command> <args>`; a client's connection is 0, a server numbers
//! the connections it accepts 0, 1, 2...). See [`run_command`].
//!
//! # Isolation and residue
//!
//! [`init`] points `SHMSOCK_RUNTIME_DIR` of the test process at a fresh private
//! temporary directory once, before any endpoint is used; children inherit it.
//! Each test uses names from [`unique_name`]. [`assert_no_endpoint_files`] and
//! [`ShmWatch`] check that nothing is left behind.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use shmsock::{Backend, CipherSuite, Error, ErrorKind, Keypair, Listener, Options, PublicKey, Stream};

/// The variable that makes `child` do something.
pub const ROLE_ENV: &str = "SHMSOCK_TEST_ROLE";
/// Prefix of every other setting passed to a child.
pub const ENV_PREFIX: &str = "SHMSOCK_TEST_";
/// Marker of event lines on a child's stdout.
const EVENT_MARK: &str = "@@EV ";
/// A child ends itself after this long, whatever happens.
pub const CHILD_MAX_LIFETIME: Duration = Duration::from_secs(120);
/// The generous bound on any single expected event. Nothing in the tests waits
/// this long when things work; it only turns a hang into a failure.
pub const WAIT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------ process setup

static RUNTIME_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_runtime_dir() {
    if let Some(dir) = RUNTIME_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Sets up this process once: a fresh private `SHMSOCK_RUNTIME_DIR` in the
/// parent (removed at exit), the inherited one in a child. Every test calls it
/// first, so the variable is set before any endpoint is used and before any
/// other test thread reads it.
pub fn init() -> &'static Path {
    RUNTIME_DIR.get_or_init(|| {
        if std::env::var_os(ROLE_ENV).is_some() {
            let dir = std::env::var_os("SHMSOCK_RUNTIME_DIR").expect("a child inherits SHMSOCK_RUNTIME_DIR");
            return PathBuf::from(dir);
        }
        // Short path under /tmp: Unix socket paths are limited to 107 bytes.
        let dir = tempfile::Builder::new().prefix("shmsock-it-").tempdir_in("/tmp").expect("temp dir").keep();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod 700");
        std::env::set_var("SHMSOCK_RUNTIME_DIR", &dir);
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe { libc::atexit(remove_runtime_dir) };
        dir
    })
}

/// A fresh endpoint name: unique in this process and across processes.
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{tag}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A small random-number generator for test choices (delays, offsets).
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and pid; the seed is printed so a failure can be replayed
    /// with `SHMSOCK_TEST_SEED`.
    pub fn from_env_or_time(what: &str) -> Rng {
        let seed = std::env::var("SHMSOCK_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
        });
        eprintln!("[{what}] random seed {seed} (set SHMSOCK_TEST_SEED to replay)");
        Rng(seed)
    }
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.0)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------- messages

/// The test message of `tag` and `len`: pseudo-random bytes, and when it has at
/// least 16 bytes it starts with its tag and length (u64le each), so a receiver
/// can check it on its own (see [`check_message`]).
pub fn message(tag: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut x = tag ^ (len as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    for chunk in out.chunks_mut(8) {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let v = splitmix(x).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    if len >= 16 {
        out[..8].copy_from_slice(&tag.to_le_bytes());
        out[8..16].copy_from_slice(&(len as u64).to_le_bytes());
    }
    out
}

/// The tag of a self-describing message, if every byte is what [`message`]
/// makes for that tag and length.
pub fn check_message(m: &[u8]) -> Option<u64> {
    if m.len() < 16 {
        return None;
    }
    let tag = u64::from_le_bytes(m[..8].try_into().unwrap());
    let len = u64::from_le_bytes(m[8..16].try_into().unwrap());
    if len != m.len() as u64 {
        return None;
    }
    (message(tag, m.len()) == m).then_some(tag)
}

/// FNV-1a, to report a received message in one line.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `"<len> <fnv>"` of a message, as a `GOT` event reports it.
pub fn digest(m: &[u8]) -> String {
    format!("{} {:016x}", m.len(), fnv(m))
}

/// The length of the message a burst thread `t` sends as its `seq`-th (larger
/// than small rings, varied so fragments of two senders would not line up).
pub fn burst_len(t: u64, seq: u64) -> usize {
    4000 + ((seq * 1237 + t * 511) % 12000) as usize
}

/// The cipher a connection must get: ChaCha20-Poly1305 when required, else
/// AEGIS-128L on AES hardware.
pub fn expected_cipher(require_chacha: bool) -> CipherSuite {
    if require_chacha || !shmsock::sodium::has_aes_hardware() {
        CipherSuite::ChaCha20Poly1305
    } else {
        CipherSuite::Aegis128L
    }
}

// ------------------------------------------------------------------- the parent

/// A child process running one role. Killed (SIGKILL) and reaped on drop.
pub struct Child {
    proc: std::process::Child,
    pub pid: u32,
    pub label: String,
    stdin: Option<ChildStdin>,
    events: Receiver<String>,
    pending: VecDeque<String>,
    stderr: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

/// Settings for a child: `(NAME, value)` becomes `SHMSOCK_TEST_NAME=value`.
pub type Settings<'a> = &'a [(&'a str, String)];

impl Child {
    /// Starts this test binary again as a child playing `role`.
    pub fn spawn(label: &str, role: &str, settings: Settings<'_>) -> Child {
        init();
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", "child", "--nocapture", "--test-threads=1", "--color", "never"])
            .env(ROLE_ENV, role)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in settings {
            cmd.env(format!("{ENV_PREFIX}{k}"), v);
        }
        let mut proc = cmd.spawn().expect("spawning a child test process");
        let pid = proc.id();
        let label = format!("{label}[{pid}]");
        let (tx, events) = mpsc::channel();
        let stdout = proc.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness prints "test child ... " without a newline, so
                // the first event may follow it on the same line.
                if let Some(at) = line.find(EVENT_MARK) {
                    if tx.send(line[at + EVENT_MARK.len()..].to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = proc.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match err_pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });
        let stdin = proc.stdin.take();
        Child { proc, pid, label, stdin, events, pending: VecDeque::new(), stderr, status: None }
    }

    /// What the child wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn fail(&self, why: &str) -> ! {
        panic!(
            "{}: {why}\n  unconsumed events: {:?}\n  ---- stderr of {} ----\n{}\n  ----",
            self.label,
            self.pending,
            self.label,
            self.stderr()
        );
    }

    /// Sends one command line.
    pub fn cmd(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        if let Err(e) = writeln!(stdin, "{line}").and_then(|_| stdin.flush()) {
            self.fail(&format!("cannot send command {line:?}: {e}"));
        }
    }

    /// Waits up to `timeout` for an event `pred` accepts, keeping others for
    /// later calls. None on timeout.
    pub fn try_take(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(i) = self.pending.iter().position(|e| pred(e)) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) => {
                    if ev.starts_with("PANIC") {
                        self.fail(&format!("the child panicked: {ev}"));
                    }
                    if pred(&ev) {
                        return Some(ev);
                    }
                    self.pending.push_back(ev);
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => {
                    // The child's stdout closed: it exited. Give the stderr
                    // reader a moment to collect its last words.
                    std::thread::sleep(Duration::from_millis(100));
                    return None;
                }
            }
        }
    }

    /// Waits for an event `pred` accepts; fails the test after [`WAIT`].
    pub fn take(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        match self.try_take(WAIT, pred) {
            Some(ev) => ev,
            None => self.fail(&format!("no {what} event within {WAIT:?} (or the child exited)")),
        }
    }

    /// Waits for the next event starting with `prefix`; returns the words after it.
    pub fn expect(&mut self, prefix: &str) -> Vec<String> {
        let p = format!("{prefix} ");
        let ev = self.take(prefix, |e| e == prefix || e.starts_with(&p));
        ev[prefix.len()..].split_whitespace().map(str::to_string).collect()
    }

    /// Waits for the next event of connection `conn` that is one of `names`
    /// (e.g. `["GOT", "ERR"]`); returns (name, words after it).
    pub fn expect_conn(&mut self, conn: usize, names: &[&str]) -> (String, Vec<String>) {
        let ev = self.take(&format!("{conn} {names:?}"), |e| {
            let mut w = e.split_whitespace();
            w.next() == Some(&conn.to_string()) && w.next().is_some_and(|n| names.contains(&n))
        });
        let mut w = ev.split_whitespace().skip(1).map(str::to_string);
        let name = w.next().unwrap();
        (name, w.collect())
    }

    /// Runs `recv <timeout>` on a connection and returns Ok(digest) or Err(kind).
    pub fn recv(&mut self, conn: usize, timeout: Duration) -> Result<String, String> {
        self.cmd(&format!("{conn} recv {}", timeout.as_millis()));
        self.result(conn)
    }

    /// Waits for a GOT/SENT/.../ERR answer of a connection; Ok(words) or Err(kind).
    pub fn result(&mut self, conn: usize) -> Result<String, String> {
        let (name, words) = self.expect_conn(conn, &["GOT", "SENT", "SENTN", "ERR", "CLOSED", "RT_OK", "BAD"]);
        match name.as_str() {
            "ERR" => Err(words[0].clone()),
            "BAD" => self.fail(&format!("connection {conn} received a wrong message: {words:?}")),
            _ => Ok(words.join(" ")),
        }
    }

    /// Waits for the END event of a long-running loop on `conn`; returns
    /// (error kind that ended it, count).
    pub fn expect_end(&mut self, conn: usize) -> (String, u64) {
        let (name, words) = self.expect_conn(conn, &["END", "BAD"]);
        if name == "BAD" {
            self.fail(&format!("connection {conn} received a wrong message: {words:?}"));
        }
        (words[0].clone(), words[1].parse().unwrap())
    }

    /// True if the process is still running.
    pub fn is_running(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.proc.try_wait() {
            Ok(Some(status)) => {
                self.status = Some(status);
                false
            }
            _ => true,
        }
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.proc.kill();
            self.status = self.proc.wait().ok();
        }
    }

    /// Waits (bounded) for the child to exit on its own.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        while self.is_running() {
            if Instant::now() > deadline {
                self.fail("did not exit in time");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.status.unwrap()
    }

    /// Asks the child to quit and checks that it exited cleanly: status 0 and
    /// no panic on any thread.
    pub fn quit(&mut self) {
        self.cmd("quit");
        let status = self.wait_exit();
        self.assert_no_panic();
        if !status.success() {
            self.fail(&format!("exited with {status}"));
        }
    }

    /// Checks that no thread of the child panicked (so far).
    pub fn assert_no_panic(&mut self) {
        if self.pending.iter().any(|e| e.starts_with("PANIC")) || self.stderr().contains("panicked") {
            self.fail("a thread of the child panicked");
        }
        while let Ok(ev) = self.events.try_recv() {
            if ev.starts_with("PANIC") {
                self.fail(&format!("the child panicked: {ev}"));
            }
            self.pending.push_back(ev);
        }
    }

    /// Every `SEG <name>` event seen so far (named segments the child mapped).
    pub fn segment_names(&mut self) -> Vec<String> {
        while let Ok(ev) = self.events.try_recv() {
            self.pending.push_back(ev);
        }
        self.pending.iter().filter_map(|e| e.strip_prefix("SEG ").map(str::to_string)).collect()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Settings of a server child.
pub fn server_settings(name: &str, keypair: &Keypair) -> Vec<(&'static str, String)> {
    vec![("NAME", name.to_string()), ("KEY", keypair.to_file_text())]
}

/// Settings of a client child.
pub fn client_settings(name: &str, server: &PublicKey) -> Vec<(&'static str, String)> {
    vec![("NAME", name.to_string()), ("KEY", server.to_text())]
}

/// Starts a server child and waits until it is bound.
pub fn spawn_server(label: &str, name: &str, keypair: &Keypair, extra: Settings<'_>) -> Child {
    let mut settings = server_settings(name, keypair);
    settings.extend(extra.iter().cloned());
    let mut child = Child::spawn(label, "server", &settings);
    let ev = child.take("BOUND", |e| e == "BOUND" || e.starts_with("BIND_ERR"));
    if ev != "BOUND" {
        std::thread::sleep(Duration::from_millis(100));
        child.fail(&format!("could not bind: {ev}"));
    }
    child
}

/// Starts a client child and waits until it is connected; returns it and the
/// words of its CONNECTED event (cipher, backend, ring size, peer max message).
pub fn spawn_client(label: &str, name: &str, server: &PublicKey, extra: Settings<'_>) -> (Child, Vec<String>) {
    let mut settings = client_settings(name, server);
    settings.extend(extra.iter().cloned());
    let mut child = Child::spawn(label, "client", &settings);
    let ev = child.take("CONNECTED", |e| e.starts_with("0 CONNECTED") || e.starts_with("CONNECT_ERR"));
    if ev.starts_with("CONNECT_ERR") {
        child.fail(&format!("could not connect: {ev}"));
    }
    let words = ev.split_whitespace().skip(2).map(str::to_string).collect();
    (child, words)
}

/// Waits (bounded) until `cond` holds, polling.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ------------------------------------------------------------------- residue

/// Asserts that the runtime directory holds no socket or lock file of `name`.
pub fn assert_no_endpoint_files(name: &str) {
    let dir = init();
    for ext in ["sock", "lock"] {
        let path = dir.join(format!("{name}.{ext}"));
        assert!(!path.exists(), "residue: {} is left behind", path.display());
    }
}

/// True when the runtime directory holds the socket file of `name`.
pub fn endpoint_socket_exists(name: &str) -> bool {
    init().join(format!("{name}.sock")).exists()
}

/// Binds and drops `name` in this process: reclaims the files a SIGKILLed
/// server left, then checks that nothing is left.
pub fn reclaim_and_check(name: &str) {
    let listener = Listener::bind(name, &Options::new().keypair(Keypair::generate()))
        .unwrap_or_else(|e| panic!("reclaiming '{name}' after its server died: {e}"));
    drop(listener);
    assert_no_endpoint_files(name);
}

/// The `shmsock-*` objects in /dev/shm now.
pub fn shm_objects() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("shmsock-"))
                .collect()
        })
        .unwrap_or_default()
}

/// True when the named object `name` (as in a `SEG` event, "/shmsock-...")
/// exists in /dev/shm.
pub fn shm_exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name.trim_start_matches('/')).exists()
}

/// Watches /dev/shm for named segments left behind by a test.
///
/// Two checks: every name the test's children reported (`SEG` events: the named
/// segments they mapped) must be gone; and no `shmsock-*` object of one of the
/// test's segment sizes may appear during the test and stay (objects of other
/// tests running at the same time come and go within a handshake, so new ones
/// get a grace period to disappear before they count).
pub struct ShmWatch {
    before: BTreeSet<String>,
    sizes: Vec<u64>,
    names: BTreeSet<String>,
}

impl ShmWatch {
    /// Starts watching; `ring_sizes` are the ring sizes this test's named
    /// segments use.
    pub fn start(ring_sizes: &[u32]) -> ShmWatch {
        ShmWatch {
            before: shm_objects(),
            sizes: ring_sizes.iter().map(|r| shmsock::segment::segment_size(*r)).collect(),
            names: BTreeSet::new(),
        }
    }

    /// Adds the segment names a child reported.
    pub fn collect(&mut self, child: &mut Child) {
        self.names.extend(child.segment_names());
    }

    /// Number of distinct segment names seen.
    pub fn seen(&self) -> usize {
        self.names.len()
    }

    /// Asserts that nothing of this test is left in /dev/shm.
    pub fn assert_clean(&self) {
        for name in &self.names {
            assert!(!shm_exists(name), "residue: the named segment {name} is still in /dev/shm");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left: Vec<String> = shm_objects()
                .difference(&self.before)
                .filter(|n| {
                    let size = std::fs::metadata(Path::new("/dev/shm").join(n)).map(|m| m.len()).unwrap_or(0);
                    self.sizes.contains(&size)
                })
                .cloned()
                .collect();
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "residue: new shared-memory objects stay in /dev/shm: {left:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ------------------------------------------------------------ /proc inspection

/// Waits until every thread of `pid` is stopped (after SIGSTOP, which takes
/// effect asynchronously: a busy machine can delay it noticeably).
pub fn wait_stopped(pid: u32) {
    let start = std::time::Instant::now();
    loop {
        let all_stopped = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks.filter_map(|t| t.ok()).all(|t| {
                    std::fs::read_to_string(t.path().join("stat"))
                        .ok()
                        .and_then(|stat| stat.rfind(')').map(|i| stat[i + 2..].starts_with(['T', 't'])))
                        .unwrap_or(true)
                })
            })
            .unwrap_or(false);
        if all_stopped {
            return;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "process {pid} did not stop");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading /proc/<pid>/stat");
    // The command name is in parentheses and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf is a pure query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

/// The named segments (`/shmsock-...`) mapped by this process.
fn own_named_segments() -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut out: Vec<String> = maps
        .lines()
        .filter_map(|l| {
            l.find("/dev/shm/shmsock-")
                .map(|i| l[i + "/dev/shm".len()..].split_whitespace().next().unwrap().to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A third party's mapping of a live connection's memfd segment, found through
/// `/proc/<pid>/fd` of a process that holds it. The tests write garbage through
/// it, as a hostile process with access to the segment could.
pub struct PeerMapping {
    ptr: *mut u8,
    len: usize,
    _file: std::fs::File,
}

// SAFETY: a plain shared mapping; all access below is through raw pointers and atomics.
unsafe impl Send for PeerMapping {}
unsafe impl Sync for PeerMapping {}

impl PeerMapping {
    /// Maps the one shmsock memfd that process `pid` holds.
    pub fn of_process(pid: u32) -> PeerMapping {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("reading /proc/<pid>/fd") {
            let path = entry.unwrap().path();
            if let Ok(target) = std::fs::read_link(&path) {
                if target.to_string_lossy().starts_with("/memfd:shmsock") {
                    found.push(path);
                }
            }
        }
        assert_eq!(found.len(), 1, "expected exactly one shmsock memfd in process {pid}, found {found:?}");
        let file =
            std::fs::OpenOptions::new().read(true).write(true).open(&found[0]).expect("opening the peer's memfd");
        let len = file.metadata().unwrap().len() as usize;
        // SAFETY: a new shared mapping of a whole file we hold open.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap of the peer's memfd");
        PeerMapping { ptr: ptr.cast(), len, _file: file }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn at(&self, offset: usize, n: usize) -> *mut u8 {
        assert!(offset + n <= self.len, "offset {offset}+{n} outside the segment of {} bytes", self.len);
        // SAFETY: in bounds (checked).
        unsafe { self.ptr.add(offset) }
    }

    pub fn load_u64(&self, offset: usize) -> u64 {
        // SAFETY: in bounds, 8-aligned offsets of the layout; atomics are sound on shared memory.
        unsafe { std::sync::atomic::AtomicU64::from_ptr(self.at(offset, 8).cast()) }.load(Ordering::SeqCst)
    }

    pub fn store_u64(&self, offset: usize, v: u64) {
        // SAFETY: as above.
        unsafe { std::sync::atomic::AtomicU64::from_ptr(self.at(offset, 8).cast()) }.store(v, Ordering::SeqCst)
    }

    pub fn store_u32(&self, offset: usize, v: u32) {
        // SAFETY: as above (4-aligned).
        unsafe { std::sync::atomic::AtomicU32::from_ptr(self.at(offset, 4).cast()) }.store(v, Ordering::SeqCst)
    }

    pub fn load_u32(&self, offset: usize) -> u32 {
        // SAFETY: as above (4-aligned).
        unsafe { std::sync::atomic::AtomicU32::from_ptr(self.at(offset, 4).cast()) }.load(Ordering::SeqCst)
    }

    pub fn write(&self, offset: usize, bytes: &[u8]) {
        let p = self.at(offset, bytes.len());
        for (i, b) in bytes.iter().enumerate() {
            // SAFETY: in bounds; volatile so every write happens.
            unsafe { p.add(i).write_volatile(*b) };
        }
    }

    pub fn read(&self, offset: usize, n: usize) -> Vec<u8> {
        let p = self.at(offset, n);
        // SAFETY: in bounds; volatile reads of bytes others may write.
        (0..n).map(|i| unsafe { p.add(i).read_volatile() }).collect()
    }
}

impl Drop for PeerMapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in of_process.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

// --------------------------------------------------------------------- the child

/// Prints one event for the parent.
pub fn emit(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{EVENT_MARK}{}", line.as_ref());
    let _ = out.flush();
}

fn setting(key: &str) -> Option<String> {
    std::env::var(format!("{ENV_PREFIX}{key}")).ok().filter(|v| !v.is_empty())
}

fn setting_num<T: std::str::FromStr>(key: &str) -> Option<T> {
    setting(key).map(|v| v.parse().unwrap_or_else(|_| panic!("bad {key}: {v}")))
}

/// The options a server or client child builds from its settings.
fn options_from_settings(server: bool) -> Options {
    let mut o = Options::new();
    let key = setting("KEY").expect("SHMSOCK_TEST_KEY");
    if server {
        o = o.keypair(Keypair::from_file_text(&key, "SHMSOCK_TEST_KEY").expect("server keypair"));
    } else {
        o = o.server_key(PublicKey::from_text(&key).expect("server public key"));
        if let Some(own) = setting("CLIENT_KEY") {
            o = o.keypair(Keypair::from_file_text(&own, "SHMSOCK_TEST_CLIENT_KEY").expect("client keypair"));
        }
    }
    if let Some(allow) = setting("ALLOW") {
        o = o.allow_clients(allow.split(',').map(|k| PublicKey::from_text(k).expect("allowed key")));
    }
    if let Some(uids) = setting("ALLOW_UIDS") {
        o = o.allow_uids(uids.split(',').map(|u| u.parse().expect("uid")));
    }
    if let Some(b) = setting("BACKEND") {
        o = o.backend(Backend::from_name(&b).expect("backend name"));
    }
    if setting("CHACHA").as_deref() == Some("1") {
        o = o.require_chacha(true);
    }
    if let Some(r) = setting_num("RING") {
        o = o.ring_size(r);
    }
    if let Some(m) = setting_num("MAXMSG") {
        o = o.max_message_size(m);
    }
    if let Some(ms) = setting_num("HS_MS") {
        o = o.handshake_timeout(Duration::from_millis(ms));
    }
    if let Some(us) = setting_num("SPIN_US") {
        o = o.spin(Duration::from_micros(us));
    }
    o
}

/// The entry point of every role; a no-op unless `SHMSOCK_TEST_ROLE` is set.
pub fn child_main() {
    let Ok(role) = std::env::var(ROLE_ENV) else { return };
    init();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        emit(format!("PANIC {}", info.to_string().replace('\n', " | ")));
        default_hook(info);
    }));
    std::thread::spawn(|| {
        std::thread::sleep(CHILD_MAX_LIFETIME);
        emit("WATCHDOG");
        eprintln!("child watchdog: exiting after {CHILD_MAX_LIFETIME:?}");
        std::process::exit(70);
    });
    let (tx, commands) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                return;
            }
        }
        // The parent is gone (or closed our stdin): do not outlive it (after a
        // grace period for a quit that is under way).
        std::thread::sleep(Duration::from_secs(5));
        std::process::exit(71);
    });
    match role.as_str() {
        "server" => run_server(commands),
        "client" => run_client(commands),
        "silent_server" => run_silent_server(commands),
        "half_hello" => run_half_hello(commands),
        "evil_segment_server" => run_evil_segment_server(commands),
        "evil_ready_client" => run_evil_ready_client(commands),
        "connect_loop" => run_connect_loop(),
        other => panic!("unknown role {other}"),
    }
}

/// Reports (once each) the named segments this process has mapped, so the
/// parent can check that none is left in /dev/shm.
fn emit_segments(seen: &Mutex<BTreeSet<String>>) {
    let mut seen = seen.lock().unwrap();
    for name in own_named_segments() {
        if seen.insert(name.clone()) {
            emit(format!("SEG {name}"));
        }
    }
}

fn describe(stream: &Stream) -> String {
    format!("{:?} {:?} {} {}", stream.cipher(), stream.backend(), stream.ring_size(), stream.peer_max_message_size())
}

/// A server's connections by id: the stream and its command queue.
type Connections = HashMap<usize, (Arc<Stream>, Sender<String>)>;

/// A server: binds, accepts connections on a thread (numbering them from 0),
/// runs each connection's commands on its own thread. With `AUTO=echo` each new
/// connection starts echoing at once. `quit` closes everything and returns (so
/// the listener's files are removed).
fn run_server(commands: Receiver<String>) {
    let name = setting("NAME").expect("NAME");
    let options = options_from_settings(true);
    let listener = match Listener::bind(&name, &options) {
        Ok(l) => l,
        Err(e) => {
            emit(format!("BIND_ERR {:?}", e.kind()));
            eprintln!("bind error: {e}");
            // Wait for quit so the parent can read the event.
            let _ = commands.recv_timeout(WAIT);
            return;
        }
    };
    emit("BOUND");
    let auto = setting("AUTO");
    let conns: Arc<Mutex<Connections>> = Arc::default();
    let stop = AtomicBool::new(false);
    let seen = Mutex::new(BTreeSet::new());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut next = 0usize;
            let mut rejected = 0;
            while !stop.load(Ordering::Acquire) {
                let result = listener.accept_timeout(Some(Duration::from_millis(100)));
                if listener.rejected_count() != rejected {
                    rejected = listener.rejected_count();
                    let why = listener.last_rejection().map(|e| format!("{:?}", e.kind())).unwrap_or_default();
                    emit(format!("REJECTED {rejected} {why}"));
                }
                match result {
                    Ok(stream) => {
                        let id = next;
                        next += 1;
                        let described = describe(&stream);
                        let stream = Arc::new(stream);
                        let (tx, rx) = mpsc::channel::<String>();
                        if let Some(cmd) = &auto {
                            tx.send(cmd.clone()).unwrap();
                        }
                        conns.lock().unwrap().insert(id, (stream.clone(), tx));
                        // Announce only once the connection takes commands.
                        emit_segments(&seen);
                        emit(format!("{id} ACCEPTED {described}"));
                        std::thread::spawn(move || {
                            for line in rx {
                                run_command(id, &stream, &line);
                            }
                        });
                    }
                    Err(e) if e.kind() == ErrorKind::Timeout => {}
                    Err(e) => {
                        emit(format!("ACCEPT_ERR {:?} {}", e.kind(), e.message().replace('\n', " ")));
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        });
        for line in commands {
            if line == "quit" {
                break;
            }
            let (id, rest) = line.split_once(' ').expect("command: <conn> <words>");
            let id: usize = id.parse().expect("connection id");
            match conns.lock().unwrap().get(&id) {
                Some((_, tx)) => tx.send(rest.to_string()).unwrap(),
                None => emit(format!("NOCONN {id}")),
            }
        }
        stop.store(true, Ordering::Release);
    });
    for (stream, _) in conns.lock().unwrap().values() {
        let _ = stream.close();
    }
    drop(listener);
    emit("QUIT");
}

/// A client: connects once (connection 0) and runs commands; `quit` closes.
fn run_client(commands: Receiver<String>) {
    let name = setting("NAME").expect("NAME");
    let options = options_from_settings(false);
    let start = Instant::now();
    let stream = match Stream::connect(&name, &options) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            emit(format!("CONNECT_ERR {:?} {}", e.kind(), start.elapsed().as_millis()));
            eprintln!("connect error: {e}");
            let _ = commands.recv_timeout(WAIT);
            return;
        }
    };
    emit_segments(&Mutex::new(BTreeSet::new()));
    emit(format!("0 CONNECTED {}", describe(&stream)));
    for line in commands {
        if line == "quit" {
            break;
        }
        let rest = line.strip_prefix("0 ").expect("a client has connection 0 only");
        run_command(0, &stream, rest);
    }
    let _ = stream.close();
    emit("QUIT");
}

fn ms(word: Option<&str>) -> Option<Duration> {
    word.map(|w| Duration::from_millis(w.parse().expect("milliseconds")))
}

fn num<T: std::str::FromStr>(word: Option<&str>) -> T {
    word.and_then(|w| w.parse().ok()).expect("numeric argument")
}

fn err_words(e: &Error) -> String {
    match e.needed() {
        Some(n) => format!("{:?} {n}", e.kind()),
        None => format!("{:?}", e.kind()),
    }
}

/// Runs one command on a connection, reporting as `<id> <EVENT> ...`:
///
/// - `bg <command>`: run the command on a new thread;
/// - `recv [ms]`, `try_recv`, `recv_into <buflen> [ms]`, `try_recv_into <buflen>`:
///   `GOT <len> <fnv>` or `ERR <kind> [needed]`;
/// - `send <len> <tag> [ms]`, `try_send <len> <tag>`: `SENT <len>` or `ERR <kind>`;
/// - `sendn <count> <len> <tag>`: messages tag, tag+1...: `SENTN <count>` or `ERR <kind> <i>`;
/// - `echo [quiet]`: echo until an error; `ECHO <len> <fnv>` per message (unless
///   quiet), `BAD` for a self-describing message that is not intact, `END <kind> <count>`;
/// - `drain [ms]`: receive until an error: `GOT` per message, then `END <kind> <count>`;
/// - `flood <len> <tag>`: send messages tag, tag+1... until an error:
///   `FLOODING` after the first, then `END <kind> <count>`;
/// - `verify`: receive until an error, checking each message and that tags
///   increase by one: `BAD` or `END <kind> <count>`;
/// - `burst <threads> <count>`: threads send `count` messages each at once,
///   tag = thread << 32 | seq, length [`burst_len`]: `BURST_DONE <total>` or `ERR`;
/// - `recv_check <count>`: receive `count` burst messages, check each and the
///   order per thread: `CHECKED <count>`, `BAD` or `ERR`;
/// - `roundtrip <count> <tag> <sizes,...>`: send, receive the echo, compare:
///   `RT_OK <count>`, `BAD` or `ERR <kind> <i>`;
/// - `close`: `CLOSED`; `after_close`: the kinds of send, try_send, recv,
///   try_recv, recv_into: `AFTER <k1> .. <k5>`; `stats`: `STATS <ms> <bs> <mr> <br>`.
pub fn run_command(id: usize, stream: &Arc<Stream>, line: &str) {
    let mut w = line.split_whitespace();
    let cmd = w.next().unwrap_or("");
    let ev = |s: String| emit(format!("{id} {s}"));
    let got = |r: Result<Vec<u8>, Error>| match r {
        Ok(m) => ev(format!("GOT {}", digest(&m))),
        Err(e) => ev(format!("ERR {}", err_words(&e))),
    };
    match cmd {
        "bg" => {
            let rest: String = line["bg".len()..].trim().to_string();
            let s = stream.clone();
            std::thread::spawn(move || run_command(id, &s, &rest));
        }
        "recv" => got(stream.recv_timeout(ms(w.next()))),
        "try_recv" => got(stream.try_recv()),
        "recv_into" | "try_recv_into" => {
            let mut buf = vec![0u8; num(w.next())];
            let r = if cmd == "recv_into" {
                stream.recv_into_timeout(&mut buf, ms(w.next()))
            } else {
                stream.try_recv_into(&mut buf)
            };
            got(r.map(|n| buf[..n].to_vec()))
        }
        "send" | "try_send" => {
            let len: usize = num(w.next());
            let m = message(num(w.next()), len);
            let r = if cmd == "send" { stream.send_timeout(&m, ms(w.next())) } else { stream.try_send(&m) };
            match r {
                Ok(()) => ev(format!("SENT {len}")),
                Err(e) => ev(format!("ERR {}", err_words(&e))),
            }
        }
        "sendn" => {
            let count: u64 = num(w.next());
            let len: usize = num(w.next());
            let tag: u64 = num(w.next());
            for i in 0..count {
                if let Err(e) = stream.send(&message(tag + i, len)) {
                    ev(format!("ERR {} {i}", err_words(&e)));
                    return;
                }
            }
            ev(format!("SENTN {count}"));
        }
        "echo" => {
            let quiet = w.next() == Some("quiet");
            let mut count = 0u64;
            let end = loop {
                let m = match stream.recv() {
                    Ok(m) => m,
                    Err(e) => break e,
                };
                if m.len() >= 16 && check_message(&m).is_none() {
                    ev(format!("BAD echo {}", digest(&m)));
                }
                if !quiet {
                    ev(format!("ECHO {}", digest(&m)));
                }
                count += 1;
                if let Err(e) = stream.send(&m) {
                    break e;
                }
            };
            ev(format!("END {:?} {count}", end.kind()));
        }
        "drain" => {
            let timeout = ms(w.next());
            let mut count = 0u64;
            let end = loop {
                match stream.recv_timeout(timeout) {
                    Ok(m) => {
                        count += 1;
                        ev(format!("GOT {}", digest(&m)));
                    }
                    Err(e) => break e,
                }
            };
            ev(format!("END {:?} {count}", end.kind()));
        }
        "flood" => {
            let len: usize = num(w.next());
            let tag: u64 = num(w.next());
            let mut count = 0u64;
            let end = loop {
                if let Err(e) = stream.send(&message(tag + count, len)) {
                    break e;
                }
                count += 1;
                if count == 1 {
                    ev("FLOODING".into());
                }
            };
            ev(format!("END {:?} {count}", end.kind()));
        }
        "verify" => {
            let mut count = 0u64;
            let mut expect: Option<u64> = None;
            let end = loop {
                match stream.recv() {
                    Ok(m) => {
                        let Some(tag) = check_message(&m) else {
                            ev(format!("BAD not-intact {} after {count}", digest(&m)));
                            continue;
                        };
                        if expect.is_some_and(|e| e != tag) {
                            ev(format!("BAD out-of-order tag {tag} expected {}", expect.unwrap()));
                        }
                        expect = Some(tag + 1);
                        count += 1;
                        if count == 1 {
                            ev("VERIFYING".into());
                        }
                    }
                    Err(e) => break e,
                }
            };
            ev(format!("END {:?} {count}", end.kind()));
        }
        "burst" => {
            let threads: u64 = num(w.next());
            let count: u64 = num(w.next());
            let failed = Arc::new(Mutex::new(None));
            std::thread::scope(|scope| {
                for t in 0..threads {
                    let failed = failed.clone();
                    scope.spawn(move || {
                        for seq in 0..count {
                            if let Err(e) = stream.send(&message(t << 32 | seq, burst_len(t, seq))) {
                                *failed.lock().unwrap() = Some(e);
                                return;
                            }
                        }
                    });
                }
            });
            let failure = failed.lock().unwrap().take();
            match failure {
                None => ev(format!("BURST_DONE {}", threads * count)),
                Some(e) => ev(format!("ERR {}", err_words(&e))),
            }
        }
        "recv_check" => {
            let count: u64 = num(w.next());
            let mut next_seq: HashMap<u64, u64> = HashMap::new();
            for i in 0..count {
                let m = match stream.recv_timeout(Some(WAIT)) {
                    Ok(m) => m,
                    Err(e) => {
                        ev(format!("ERR {} {i}", err_words(&e)));
                        return;
                    }
                };
                let Some(tag) = check_message(&m) else {
                    ev(format!("BAD not-intact message {i}: {}", digest(&m)));
                    return;
                };
                let (t, seq) = (tag >> 32, tag & 0xffff_ffff);
                let want = next_seq.entry(t).or_insert(0);
                if seq != *want || m.len() != burst_len(t, seq) {
                    ev(format!("BAD thread {t} sent seq {seq}, expected {want}"));
                    return;
                }
                *want += 1;
            }
            ev(format!("CHECKED {count}"));
        }
        "roundtrip" => {
            let count: u64 = num(w.next());
            let tag: u64 = num(w.next());
            let sizes: Vec<usize> = w.next().unwrap().split(',').map(|s| s.parse().unwrap()).collect();
            for i in 0..count {
                let m = message(tag + i, sizes[i as usize % sizes.len()]);
                if let Err(e) = stream.send(&m) {
                    ev(format!("ERR {} {i}", err_words(&e)));
                    return;
                }
                match stream.recv_timeout(Some(WAIT)) {
                    Ok(back) if back == m => {}
                    Ok(back) => {
                        ev(format!("BAD echo of message {i} differs: sent {} got {}", digest(&m), digest(&back)));
                        return;
                    }
                    Err(e) => {
                        ev(format!("ERR {} {i}", err_words(&e)));
                        return;
                    }
                }
            }
            ev(format!("RT_OK {count}"));
        }
        "close" => {
            let _ = stream.close();
            ev("CLOSED".into());
        }
        "after_close" => {
            let k = |r: Result<(), Error>| r.err().map(|e| format!("{:?}", e.kind())).unwrap_or_else(|| "Ok".into());
            let mut buf = [0u8; 64];
            let kinds = [
                k(stream.send(b"x")),
                k(stream.try_send(b"x")),
                k(stream.recv_timeout(Some(Duration::from_millis(10))).map(|_| ())),
                k(stream.try_recv().map(|_| ())),
                k(stream.recv_into_timeout(&mut buf, Some(Duration::from_millis(10))).map(|_| ())),
            ];
            ev(format!("AFTER {}", kinds.join(" ")));
        }
        "stats" => {
            let s = stream.stats();
            ev(format!("STATS {} {} {} {}", s.messages_sent, s.bytes_sent, s.messages_received, s.bytes_received));
        }
        other => panic!("unknown command {other:?}"),
    }
}

/// A fake server: claims the endpoint (lock and socket, like a real one),
/// accepts connections and never answers. `quit` ends it.
fn run_silent_server(commands: Receiver<String>) {
    let name = setting("NAME").expect("NAME");
    let bound = shmsock::endpoint::bind(&name).expect("binding the endpoint");
    bound.listener.set_nonblocking(false).unwrap();
    emit("BOUND");
    let listener = bound.listener.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        let mut n = 0;
        while let Ok((socket, _)) = listener.accept() {
            n += 1;
            emit(format!("ACCEPTED_RAW {n}"));
            held.push(socket);
        }
    });
    for line in commands {
        if line == "quit" {
            break;
        }
    }
    drop(bound);
    emit("QUIT");
}

/// A fake client: connects to the endpoint's socket, sends part of a HELLO
/// (`MODE=half`: a header promising 100 bytes, then 50; `MODE=garbage`: a whole
/// HELLO of random bytes; `MODE=nothing`: no bytes), reports `STALLED`, and
/// waits for `quit`.
fn run_half_hello(commands: Receiver<String>) {
    let name = setting("NAME").expect("NAME");
    let mode = setting("MODE").unwrap_or_else(|| "half".into());
    let path = init().join(format!("{name}.sock"));
    let mut socket = std::os::unix::net::UnixStream::connect(&path).expect("connecting to the control socket");
    let mut junk = [0u8; 200];
    shmsock::sodium::random_bytes(&mut junk);
    match mode.as_str() {
        "half" => {
            socket.write_all(&[shmsock::control::HELLO, 0, 100, 0]).unwrap();
            socket.write_all(&junk[..50]).unwrap();
        }
        "garbage" => {
            socket.write_all(&shmsock::control::encode(shmsock::control::HELLO, &junk)).unwrap();
        }
        "nothing" => {}
        other => panic!("unknown MODE {other}"),
    }
    emit("STALLED");
    for line in commands {
        if line == "quit" {
            break;
        }
    }
    drop(socket);
    emit("QUIT");
}

/// A hostile server: runs a correct handshake but hands the client a memfd it
/// should refuse (`MODE=unsealed`: no seals; `MODE=short`: sealed but smaller
/// than agreed; `MODE=badheader`: sealed, right size, no segment header; each
/// with a real eventfd as its wake-up descriptor), or a good segment with a
/// wake-up descriptor it should refuse (see [`bad_wake_fds`]: `MODE=wake-pipe`,
/// `wake-file`, `wake-none`, `wake-two`), and reports what became of the client.
/// `quit` ends it.
fn run_evil_segment_server(commands: Receiver<String>) {
    use shmsock::control::{self, Record};
    use shmsock::handshake::{AllowedClients, Responder, ServerPolicy, SUPPORTED_VERSIONS};
    let name = setting("NAME").expect("NAME");
    let mode = setting("MODE").expect("MODE");
    let keypair = Keypair::from_file_text(&setting("KEY").unwrap(), "KEY").unwrap();
    let bound = shmsock::endpoint::bind(&name).expect("binding the endpoint");
    bound.listener.set_nonblocking(false).unwrap();
    emit("BOUND");
    let (socket, _) = bound.listener.accept().unwrap();
    let fd = std::os::fd::AsFd::as_fd(&socket);
    let mut fds = Vec::new();
    let Record::Hello(hello) = control::receive(fd, &mut fds, None).unwrap() else { panic!("expected HELLO") };
    let policy = ServerPolicy {
        versions: SUPPORTED_VERSIONS.to_vec(),
        ciphers: CipherSuite::local_offer(false),
        max_message: 1 << 20,
        ring_size: 4096,
        allowed: AllowedClients::Any,
        backend: Backend::Memfd,
    };
    let mut responder = Responder::new(&keypair, &name).unwrap();
    let accepted = responder.read_hello(&hello, &policy).unwrap();
    let size = shmsock::segment::segment_size(accepted.choice.ring_size);
    let memfd = rustix::fs::memfd_create(
        "shmsock-evil",
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )
    .unwrap();
    let seals = rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW | rustix::fs::SealFlags::SEAL;
    let good = shmsock::segment::Segment::create(Backend::Memfd, accepted.choice.ring_size).unwrap();
    let mut wake = bad_wake_fds("wake-eventfd");
    let memfd = match mode.as_str() {
        "unsealed" => {
            rustix::fs::ftruncate(&memfd, size).unwrap();
            memfd
        }
        "short" => {
            rustix::fs::ftruncate(&memfd, size / 2).unwrap();
            rustix::fs::fcntl_add_seals(&memfd, seals).unwrap();
            memfd
        }
        "badheader" => {
            rustix::fs::ftruncate(&memfd, size).unwrap();
            rustix::fs::fcntl_add_seals(&memfd, seals).unwrap();
            memfd
        }
        wake_mode if wake_mode.starts_with("wake-") => {
            wake = bad_wake_fds(wake_mode);
            good.memfd().unwrap().try_clone_to_owned().unwrap()
        }
        other => panic!("unknown MODE {other}"),
    };
    let (reply, _session) = responder.write_reply(&accepted.choice).unwrap();
    let mut passed = vec![std::os::fd::AsFd::as_fd(&memfd)];
    passed.extend(wake.iter().map(std::os::fd::AsFd::as_fd));
    send_with_any_fds(fd, &control::encode(control::REPLY, &reply), &passed);
    // The client must not send READY: it refuses the segment and hangs up.
    match control::receive(fd, &mut fds, Some(Instant::now() + WAIT)) {
        Ok(r) => emit(format!("CLIENT_SAID {r:?}")),
        Err(e) => emit(format!("CLIENT_ENDED {:?}", e.kind())),
    }
    for line in commands {
        if line == "quit" {
            break;
        }
    }
    drop(bound);
    emit("QUIT");
}

/// Sends a whole control record with any number of descriptors (up to 8)
/// attached, as a hostile peer may (the library refuses to send more than a
/// record carries).
pub fn send_with_any_fds(socket: std::os::fd::BorrowedFd<'_>, record: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(8))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    }
    let sent = sendmsg(socket, &[std::io::IoSlice::new(record)], &mut control, SendFlags::NOSIGNAL).unwrap();
    assert_eq!(sent, record.len(), "a short send of a control record");
}

/// Wake-up descriptors a hostile peer may pass instead of one eventfd, by mode:
/// `wake-eventfd` (the correct one), `wake-full` (an eventfd, blocking, with its
/// counter at the limit, so that a blocking write would hang), `wake-pipe` (a pipe's write end),
/// `wake-file` (a regular file), `wake-epoll` (another anonymous-inode file,
/// an epoll set), `wake-none`, `wake-two` (two eventfds).
pub fn bad_wake_fds(mode: &str) -> Vec<std::os::fd::OwnedFd> {
    let eventfd = || rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
    match mode {
        "wake-eventfd" => vec![eventfd()],
        "wake-full" => {
            // A blocking eventfd whose counter is at its limit: a write of 1
            // would block (or, non-blocking, fail with EAGAIN).
            let fd = eventfd();
            rustix::io::write(&fd, &(u64::MAX - 1).to_ne_bytes()).unwrap();
            vec![fd]
        }
        "wake-pipe" => vec![rustix::pipe::pipe().unwrap().1],
        "wake-file" => vec![tempfile::tempfile().unwrap().into()],
        "wake-epoll" => vec![rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC).unwrap()],
        "wake-none" => vec![],
        "wake-two" => vec![eventfd(), eventfd()],
        other => panic!("unknown wake MODE {other}"),
    }
}

/// A hostile client: runs a correct handshake (backend `BACKEND`, memfd unless
/// `named`), maps nothing, and sends READY with the wake-up descriptors of
/// `MODE` (see [`bad_wake_fds`]). Reports `SEGMENT <name>` for a named segment,
/// then what the server did: `SERVER_ENDED <kind>` or `SERVER_SAID <record>`.
/// `quit` ends it.
fn run_evil_ready_client(commands: Receiver<String>) {
    use shmsock::control::{self, Record};
    use shmsock::handshake::{ClientOffer, Initiator};
    let name = setting("NAME").expect("NAME");
    let mode = setting("MODE").expect("MODE");
    let server = PublicKey::from_text(&setting("KEY").expect("KEY")).unwrap();
    let path = init().join(format!("{name}.sock"));
    let socket = std::os::unix::net::UnixStream::connect(&path).expect("connecting to the control socket");
    let fd = std::os::fd::AsFd::as_fd(&socket);
    let offer = ClientOffer::local(false, 1 << 20, 0, Backend::Memfd.bit() | Backend::Named.bit());
    let mut initiator = Initiator::new(&Keypair::generate(), &server, &name, offer).unwrap();
    control::send(fd, &control::encode(control::HELLO, &initiator.write_hello().unwrap()), &[]).unwrap();
    let mut fds = Vec::new();
    let Record::Reply(reply) = control::receive(fd, &mut fds, Some(Instant::now() + WAIT)).unwrap() else {
        panic!("expected REPLY")
    };
    let session = initiator.read_reply(&reply).unwrap();
    if !session.choice.segment_name.is_empty() {
        emit(format!("SEGMENT {}", session.choice.segment_name));
    }
    emit(format!("REPLY_FDS {}", fds.len()));
    let wake = bad_wake_fds(&mode);
    let passed: Vec<_> = wake.iter().map(std::os::fd::AsFd::as_fd).collect();
    send_with_any_fds(fd, &control::encode(control::READY, &[]), &passed);
    match control::receive(fd, &mut fds, Some(Instant::now() + WAIT)) {
        Ok(r) => emit(format!("SERVER_SAID {r:?}")),
        Err(e) => emit(format!("SERVER_ENDED {:?}", e.kind())),
    }
    for line in commands {
        if line == "quit" {
            break;
        }
    }
    emit("QUIT");
}

/// Connects up to `COUNT` times in a row (each: connect, one round trip,
/// close), stopping early after 3 NotFound in a row (the server is gone), and
/// reports each outcome as `TRY <i> <Ok|kind>`, then `DONE`.
fn run_connect_loop() {
    let name = setting("NAME").expect("NAME");
    let options = options_from_settings(false);
    let count: u64 = setting_num("COUNT").unwrap_or(50);
    let mut not_found = 0;
    for i in 0..count {
        if not_found == 3 {
            break;
        }
        let outcome = Stream::connect(&name, &options).and_then(|s| {
            let m = message(i, 3000);
            s.send(&m)?;
            let back = s.recv_timeout(Some(WAIT))?;
            assert!(back == m, "the echo of attempt {i} differs");
            s.close()
        });
        match &outcome {
            Ok(()) => emit(format!("TRY {i} Ok")),
            Err(e) => emit(format!("TRY {i} {:?}", e.kind())),
        }
        not_found = match outcome {
            Err(e) if e.kind() == ErrorKind::NotFound => not_found + 1,
            _ => 0,
        };
    }
    emit("DONE");
}

/// Counter for tags that must not collide within a test.
pub fn next_tag() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1000, Ordering::Relaxed)
}

/// A connected (client, server) pair in this process, with rings of `ring` bytes.
pub fn pair_in_process(tag: &str, ring: u32) -> (Stream, Stream) {
    init();
    let name = unique_name(tag);
    let kp = Keypair::generate();
    let listener = Listener::bind(&name, &Options::new().keypair(kp.clone()).ring_size(ring)).unwrap();
    let options = Options::new().server_key(*kp.public()).ring_size(ring);
    let client = std::thread::spawn(move || Stream::connect(&name, &options).unwrap());
    let server = listener.accept_timeout(Some(WAIT)).unwrap();
    (client.join().unwrap(), server)
}
