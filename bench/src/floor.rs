//! The floor: the least a two-process encrypted ping-pong can cost on this
//! machine. Both processes spin on one shared cache line (a memfd mapped
//! MAP_SHARED by both); each way, the sender seals 64 B with the cipher under test
//! before it publishes, and the receiver opens 64 B after it sees the line change.
//! The sealed bytes themselves stay in private memory (each side opens a frame
//! sealed in advance with the other side's key), so the floor moves exactly one
//! cache line each way: it is a lower bound for any shared-memory transport that
//! seals and opens every message.
//!
//! A second variant, [`FloorKind::Frame`], also carries the sealed frame (16-byte
//! header, 64 B ciphertext, tag: 112 B with AEGIS-128L) through the shared page:
//! the sender copies it out after sealing, the receiver copies it in before
//! opening, as any shared-memory transport must. The difference between the two
//! floors is what moving the frame itself costs; what shmsock takes above the
//! frame floor is its own doing (ring bookkeeping, checks, extra cache lines).
//!
//! Layout of the 4 KiB mapping, all in the first cache line but the keys:
//! offset 0, a u32 sequence (odd: the parent's turn is done; even: the peer's);
//! offset 4, the quit flag; offset 8, the peer's "asleep" flag (an idle peer
//! sleeps on the sequence with a futex, so it does not disturb the transports
//! measured between the floor's runs); offset 128, the parent->peer key; offset
//! 160, the peer->parent key.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::fs::{ftruncate, memfd_create, MemfdFlags};
use rustix::thread::futex::{self, Timespec};
use shmsock::frame::{FrameHeader, HEADER_LEN};
use shmsock::sodium::Aead;

use crate::error::{last_os_error, BenchError, Result};
use crate::measure::{LatencyRun, SampleBuffer};
use crate::peer::PeerProcess;

const MAP_LEN: usize = 4096;
const KEY_P2C: usize = 128;
const KEY_C2P: usize = 160;
/// Where the parent->peer and peer->parent frames go (frame floor).
const FRAME_P2C: usize = 1024;
const FRAME_C2P: usize = 2048;
const SEQ: usize = 0;
const QUIT: usize = 4;
const ASLEEP: usize = 8;
/// Plaintext size of the floor's messages.
pub const FLOOR_SIZE: usize = 64;

/// What the floor moves through shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FloorKind {
    /// One cache line each way; the sealed bytes stay private.
    Line,
    /// The line, and the sealed frame copied through the shared page.
    Frame,
}

impl FloorKind {
    fn arg(self) -> &'static str {
        match self {
            FloorKind::Line => "line",
            FloorKind::Frame => "frame",
        }
    }
    /// A short description.
    pub fn describe(self) -> &'static str {
        match self {
            FloorKind::Line => "1 line",
            FloorKind::Frame => "1 line + frame",
        }
    }
}

struct Mapping {
    ptr: *mut u8,
}

impl Mapping {
    fn map(fd: RawFd) -> Result<Mapping> {
        // SAFETY: mapping a file we own; the result is checked.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), MAP_LEN, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        };
        if ptr == libc::MAP_FAILED {
            return Err(last_os_error("mapping the floor's shared page"));
        }
        Ok(Mapping { ptr: ptr.cast() })
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset % 4 == 0 && offset < 64);
        // SAFETY: an aligned offset inside a live page-aligned mapping, only ever
        // accessed atomically by both processes.
        unsafe { &*(self.ptr.add(offset) as *const AtomicU32) }
    }

    fn at(&self, offset: usize) -> *mut u8 {
        // SAFETY: callers pass offsets inside the mapping.
        unsafe { self.ptr.add(offset) }
    }

    fn seq(&self) -> &AtomicU32 {
        self.word(SEQ)
    }

    /// Wakes the peer if it sleeps on the sequence.
    fn wake_peer(&self) {
        if self.word(ASLEEP).load(Ordering::SeqCst) != 0 {
            futex_wake(self.seq());
        }
    }

    fn key(&self, offset: usize) -> [u8; 32] {
        let mut k = [0u8; 32];
        // SAFETY: offset + 32 <= MAP_LEN; written before the peer starts.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(offset), k.as_mut_ptr(), 32) };
        k
    }

    fn set_key(&self, offset: usize, k: &[u8; 32]) {
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(k.as_ptr(), self.ptr.add(offset), 32) };
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping what map() mapped.
        unsafe { libc::munmap(self.ptr.cast(), MAP_LEN) };
    }
}

/// One side's crypto work per message: seal a fresh 64 B frame, open one.
struct Crypto {
    aead: Aead,
    kind: FloorKind,
    seal_key: [u8; 32],
    seal_nonce: u64,
    open_key: [u8; 32],
    open_nonce: u64,
    /// The frame to open: sealed in advance by the other side's key at nonce 0
    /// (line floor), or copied in from the shared page (frame floor).
    incoming: Vec<u8>,
    sealed: Vec<u8>,
    plain: [u8; FLOOR_SIZE],
    opened: [u8; FLOOR_SIZE],
}

impl Crypto {
    fn new(aead: Aead, kind: FloorKind, seal_key: [u8; 32], open_key: [u8; 32]) -> Crypto {
        let header = FrameHeader::data(FLOOR_SIZE as u32, FLOOR_SIZE as u32, 0).encode();
        let sealed_len = HEADER_LEN + FLOOR_SIZE + aead.tag_len();
        let mut incoming = vec![0u8; sealed_len];
        incoming[..HEADER_LEN].copy_from_slice(&header);
        {
            let (ct, tag) = incoming[HEADER_LEN..].split_at_mut(FLOOR_SIZE);
            aead.seal(&open_key, 0, &header, &[0x5a; FLOOR_SIZE], ct, tag);
        }
        Crypto {
            aead,
            kind,
            seal_key,
            seal_nonce: 0,
            open_key,
            open_nonce: 0,
            incoming,
            sealed: vec![0u8; sealed_len],
            plain: [0xa5; FLOOR_SIZE],
            opened: [0; FLOOR_SIZE],
        }
    }

    /// Seals the next message; the frame floor then copies it to `out`.
    #[inline]
    fn seal(&mut self, out: *mut u8) {
        let header = FrameHeader::data(FLOOR_SIZE as u32, FLOOR_SIZE as u32, 0).encode();
        self.sealed[..HEADER_LEN].copy_from_slice(&header);
        let (ct, tag) = self.sealed[HEADER_LEN..].split_at_mut(FLOOR_SIZE);
        self.aead.seal(&self.seal_key, self.seal_nonce, &header, &self.plain, ct, tag);
        self.seal_nonce += 1;
        if self.kind == FloorKind::Frame {
            // SAFETY: out is a frame slot of the shared page with room for the
            // sealed frame (at most 112 bytes at a 1 KiB boundary).
            unsafe { std::ptr::copy_nonoverlapping(self.sealed.as_ptr(), out, self.sealed.len()) };
        }
    }

    /// Opens a message; the frame floor first copies it in from `src`.
    #[inline]
    fn open(&mut self, src: *const u8) -> Result<()> {
        let nonce = match self.kind {
            FloorKind::Line => 0,
            FloorKind::Frame => {
                // SAFETY: src is the other side's frame slot, complete once the
                // sequence said so (acquire); copied before it is verified.
                unsafe { std::ptr::copy_nonoverlapping(src, self.incoming.as_mut_ptr(), self.incoming.len()) };
                self.open_nonce += 1;
                self.open_nonce - 1
            }
        };
        let (ad, rest) = self.incoming.split_at(HEADER_LEN);
        let (ct, tag) = rest.split_at(FLOOR_SIZE);
        if !self.aead.open(&self.open_key, nonce, ad, ct, tag, &mut self.opened) {
            return Err(BenchError::new("floor: a frame failed to open"));
        }
        Ok(())
    }
}

/// Wakes one waiter on `word` (a shared, not process-private, futex).
fn futex_wake(word: &AtomicU32) {
    let _ = futex::wake(word, futex::Flags::empty(), 1);
}

/// Sleeps while `word` holds `val`, for at most `timeout` (a shared futex).
/// Spurious and timed-out returns are fine: the caller checks `word` again.
fn futex_wait(word: &AtomicU32, val: u32, timeout: Duration) {
    let ts = Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: i64::from(timeout.subsec_nanos()) };
    let _ = futex::wait(word, futex::Flags::empty(), val, Some(&ts));
}

#[inline]
fn pause(spin: bool) {
    if spin {
        std::hint::spin_loop();
    } else {
        rustix::thread::sched_yield();
    }
}

/// The measuring side of the floor.
pub struct FloorSession {
    map: Mapping,
    peer: PeerProcess,
    crypto: Crypto,
    spin: bool,
    value: u32,
}

impl FloorSession {
    /// Creates the shared page and the keys, and starts the peer on `cpu`.
    /// `spin`: busy-wait (two cores) or yield at each check (one core).
    pub fn start(
        exe: &Path,
        cpu: usize,
        suite: shmsock::CipherSuite,
        kind: FloorKind,
        spin: bool,
    ) -> Result<FloorSession> {
        let fd: OwnedFd = memfd_create("shmsock-bench-floor", MemfdFlags::CLOEXEC)
            .map_err(|e| BenchError::new(format!("memfd_create: {e}")))?;
        ftruncate(&fd, MAP_LEN as u64).map_err(|e| BenchError::new(format!("sizing the floor's memfd: {e}")))?;
        let map = Mapping::map(fd.as_raw_fd())?;
        let mut p2c = [0u8; 32];
        let mut c2p = [0u8; 32];
        shmsock::sodium::random_bytes(&mut p2c);
        shmsock::sodium::random_bytes(&mut c2p);
        map.set_key(KEY_P2C, &p2c);
        map.set_key(KEY_C2P, &c2p);
        map.seq().store(0, Ordering::SeqCst);
        map.word(QUIT).store(0, Ordering::SeqCst);
        map.word(ASLEEP).store(0, Ordering::SeqCst);
        let args = vec![
            "floor".to_string(),
            fd.as_raw_fd().to_string(),
            suite.name().to_string(),
            if spin { "spin" } else { "yield" }.to_string(),
            kind.arg().to_string(),
        ];
        let peer = PeerProcess::spawn(exe, cpu, &args, Some(fd.as_raw_fd()))?;
        drop(fd);
        let aead = crate::peer::aead_of(suite);
        Ok(FloorSession { map, peer, crypto: Crypto::new(aead, kind, p2c, c2p), spin, value: 0 })
    }

    #[inline]
    fn round_trip(&mut self) -> Result<()> {
        self.crypto.seal(self.map.at(FRAME_P2C));
        let seq = self.map.seq();
        seq.store(self.value.wrapping_add(1), Ordering::Release);
        let want = self.value.wrapping_add(2);
        let mut n = 0u32;
        while seq.load(Ordering::Acquire) != want {
            pause(self.spin);
            n = n.wrapping_add(1);
            if n % 256 == 0 {
                // The peer went to sleep between two runs (or we were away long).
                self.map.wake_peer();
            }
            if n % (1 << 22) == 0 {
                self.peer.check_alive()?;
            }
        }
        self.value = want;
        self.crypto.open(self.map.at(FRAME_C2P))
    }

    /// One timed run: `warmup` untimed, then round trips for `duration`.
    pub fn run(&mut self, warmup: Duration, duration: Duration, samples: &mut SampleBuffer) -> Result<LatencyRun> {
        let end = Instant::now() + warmup;
        while Instant::now() < end {
            self.round_trip()?;
        }
        samples.clear();
        let allocs = crate::measure::allocations();
        let start = Instant::now();
        let mut t0 = start;
        loop {
            self.round_trip()?;
            let t1 = Instant::now();
            let full = samples.push(t1 - t0);
            t0 = t1;
            if full || t1 - start >= duration {
                break;
            }
        }
        Ok(samples.summarize(allocs.and_then(|a| crate::measure::allocations().map(|b| b - a))))
    }

    /// Process id of the peer.
    pub fn peer_id(&self) -> u32 {
        self.peer.id()
    }

    /// Stops the peer.
    pub fn finish(self) {
        self.map.word(QUIT).store(1, Ordering::SeqCst);
        futex_wake(self.map.seq());
        let FloorSession { map, peer, .. } = self;
        peer.finish(Duration::from_millis(500));
        drop(map);
    }
}

/// The peer side: answer every odd value with the next even one; when idle for
/// a few milliseconds, sleep on the sequence (futex) until the parent wakes it.
pub(crate) fn serve(fd: RawFd, aead: Aead, kind: FloorKind, spin: bool) -> Result<()> {
    let map = Mapping::map(fd)?;
    let mut crypto = Crypto::new(aead, kind, map.key(KEY_C2P), map.key(KEY_P2C));
    let seq = map.seq();
    let quit = map.word(QUIT);
    let asleep = map.word(ASLEEP);
    let mut idle_since = Instant::now();
    let mut n = 0u32;
    loop {
        let v = seq.load(Ordering::Acquire);
        if v & 1 == 1 {
            crypto.open(map.at(FRAME_P2C))?;
            crypto.seal(map.at(FRAME_C2P));
            seq.store(v.wrapping_add(1), Ordering::Release);
            n = 0;
            continue;
        }
        if quit.load(Ordering::Relaxed) != 0 {
            return Ok(());
        }
        pause(spin);
        n = n.wrapping_add(1);
        if n == 1024 {
            idle_since = Instant::now();
        } else if n == u32::MAX {
            n = 1025;
        } else if n > 1024 && n % 64 == 0 && idle_since.elapsed() > Duration::from_millis(2) {
            // Say we sleep, then look once more (pairs with the parent's store of
            // the sequence, then load of the flag, in wake_peer). Sleep until the
            // parent's turn comes or it quits, across timeouts: a peer that woke
            // at each timeout and yielded until its next check ran on the
            // measuring CPU during the other transports' runs (one core:
            // shmsock's 64 B round trip read 3.9 us beside such peers, 2.8 us
            // without; a Unix socket's 3.6 against 4.2 us).
            asleep.store(1, Ordering::SeqCst);
            loop {
                let v = seq.load(Ordering::SeqCst);
                if v & 1 == 1 || quit.load(Ordering::SeqCst) != 0 {
                    break;
                }
                futex_wait(seq, v, Duration::from_millis(100));
            }
            asleep.store(0, Ordering::SeqCst);
        }
    }
}
