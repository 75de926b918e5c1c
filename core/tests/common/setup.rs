//! Process setup shared by every test: the private runtime directory, unique
//! names, a seeded random generator, self-checking messages, and a connected
//! pair of streams in this process.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

use shmsock::{CipherSuite, Keypair, Listener, Options, Stream};

use super::*;

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
