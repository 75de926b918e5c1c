//! The two measurements every transport goes through: ping-pong round trips
//! (latency percentiles) and one-way streaming (throughput, acknowledged).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{BenchError, Result};
use crate::stats::quantile_sorted;
use crate::transport::Transport;

static ALLOCATION_COUNTER: OnceLock<fn() -> u64> = OnceLock::new();

/// Installs a function returning how many heap allocations this process made so
/// far (a host binary's counting global allocator). The runs then report the
/// allocations made by the measuring side during their timed part: the DESIGN
/// rule is none in steady state.
pub fn set_allocation_counter(counter: fn() -> u64) {
    let _ = ALLOCATION_COUNTER.set(counter);
}

/// Allocations so far, if a counter is installed.
pub(crate) fn allocations() -> Option<u64> {
    ALLOCATION_COUNTER.get().map(|f| f())
}

/// Round-trip samples of one run, in nanoseconds, in a buffer allocated once
/// (so the timed loop never allocates).
pub struct SampleBuffer {
    ns: Vec<u32>,
}

impl SampleBuffer {
    /// A buffer holding at most `capacity` samples per run.
    pub fn new(capacity: usize) -> SampleBuffer {
        SampleBuffer { ns: Vec::with_capacity(capacity) }
    }

    /// Forgets the previous run.
    pub fn clear(&mut self) {
        self.ns.clear();
    }

    /// Adds a sample; true when the buffer is now full.
    #[inline]
    pub fn push(&mut self, d: Duration) -> bool {
        self.ns.push(d.as_nanos().min(u32::MAX as u128) as u32);
        self.ns.len() == self.ns.capacity()
    }

    /// Sorts and summarizes the run; `allocations` were made while it was timed.
    pub fn summarize(&mut self, allocations: Option<u64>) -> LatencyRun {
        self.ns.sort_unstable();
        LatencyRun {
            allocations,
            samples: self.ns.len(),
            p50_ns: quantile_sorted(&self.ns, 0.50).unwrap_or(0),
            p90_ns: quantile_sorted(&self.ns, 0.90).unwrap_or(0),
            p99_ns: quantile_sorted(&self.ns, 0.99).unwrap_or(0),
            p999_ns: quantile_sorted(&self.ns, 0.999).unwrap_or(0),
            min_ns: self.ns.first().copied().unwrap_or(0),
            max_ns: self.ns.last().copied().unwrap_or(0),
        }
    }
}

/// Percentiles of one run of round trips.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LatencyRun {
    /// Heap allocations by the measuring process during the timed round trips
    /// (None: no counter installed; see [`set_allocation_counter`]).
    pub allocations: Option<u64>,
    /// Round trips timed.
    pub samples: usize,
    /// Median round trip.
    pub p50_ns: u32,
    /// 90th percentile round trip.
    pub p90_ns: u32,
    /// 99th percentile round trip.
    pub p99_ns: u32,
    /// 99.9th percentile round trip.
    pub p999_ns: u32,
    /// Fastest round trip.
    pub min_ns: u32,
    /// Slowest round trip.
    pub max_ns: u32,
}

/// One throughput run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ThroughputRun {
    /// Heap allocations by the measuring process while streaming (None: no
    /// counter installed).
    pub allocations: Option<u64>,
    /// Messages sent.
    pub messages: u64,
    /// 10^9 bytes per second delivered.
    pub gb_per_s: f64,
    /// Bytes delivered.
    pub bytes: u64,
    /// Seconds from the first send to the ack.
    pub seconds: f64,
    /// The slowest single operation (one send, or the wait for the ack), in µs.
    pub max_op_us: f64,
    /// Operations slower than [`STALL`]: the transport stopped moving (e.g. a
    /// side slept and was not woken).
    pub stalls: u32,
}

/// A single send (or the ack) taking longer than this is a stall: no working
/// transport needs 50 ms to move one 1 MiB message on an idle path.
pub const STALL: Duration = Duration::from_millis(50);

/// How many times in a row a call may time out (each after the configured
/// operation timeout) before the bench gives up.
const MAX_RETRIES: u32 = 15;

/// Sends, retrying when the call timed out with nothing sent.
pub(crate) fn send_retry(t: &mut dyn Transport, msg: &[u8]) -> Result<()> {
    let mut tries = 0;
    loop {
        match t.send(msg) {
            Err(e) if e.is_timeout() && tries < MAX_RETRIES => tries += 1,
            r => return r,
        }
    }
}

/// Receives, retrying when the call timed out with nothing received.
pub(crate) fn recv_retry(t: &mut dyn Transport, buf: &mut [u8]) -> Result<usize> {
    let mut tries = 0;
    loop {
        match t.recv_into(buf) {
            Err(e) if e.is_timeout() && tries < MAX_RETRIES => tries += 1,
            r => return r,
        }
    }
}

/// One ping-pong run: the peer echoes `size`-byte messages; `warmup` of round
/// trips first, untimed, then round trips for `duration`, each one timed. The
/// transport's timeout stays as set (none, for a default stream).
pub fn latency_run(
    t: &mut dyn Transport,
    size: usize,
    warmup: Duration,
    duration: Duration,
    samples: &mut SampleBuffer,
    scratch: &mut [u8],
) -> Result<LatencyRun> {
    assert!(size > 1, "1-byte messages are the command channel");
    let msg = vec![0xa5u8; size];
    t.send(b"E")?;
    let mut one = |t: &mut dyn Transport| -> Result<()> {
        t.send(&msg)?;
        let n = t.recv_into(scratch)?;
        if n != size {
            return Err(BenchError::new(format!("echo of {size} bytes came back as {n} bytes")));
        }
        Ok(())
    };
    let end = Instant::now() + warmup;
    while Instant::now() < end {
        one(t)?;
    }
    samples.clear();
    let allocs = allocations();
    let start = Instant::now();
    let mut t0 = start;
    loop {
        one(t)?;
        let t1 = Instant::now();
        let full = samples.push(t1 - t0);
        t0 = t1;
        if full || t1 - start >= duration {
            break;
        }
    }
    let allocs = allocs.and_then(|a| allocations().map(|b| b - a));
    t.send(b"x")?;
    Ok(samples.summarize(allocs))
}

/// One streaming session: `size`-byte messages for `duration`, then the end
/// marker and the peer's ack.
fn stream_for(t: &mut dyn Transport, msg: &[u8], duration: Duration, ack: &mut [u8]) -> Result<ThroughputRun> {
    send_retry(t, b"S")?;
    let allocs = allocations();
    let start = Instant::now();
    let mut bytes = 0u64;
    let mut max_op = Duration::ZERO;
    let mut stalls = 0u32;
    let mut t0 = start;
    let mut note = |t0: &mut Instant| {
        let t1 = Instant::now();
        let d = t1 - *t0;
        *t0 = t1;
        if d > max_op {
            max_op = d;
        }
        if d > STALL {
            stalls += 1;
        }
        t1
    };
    loop {
        send_retry(t, msg)?;
        bytes += msg.len() as u64;
        if note(&mut t0) - start >= duration {
            break;
        }
    }
    send_retry(t, b"x")?;
    let n = recv_retry(t, ack)?;
    note(&mut t0);
    let seconds = start.elapsed().as_secs_f64();
    if n != 1 {
        return Err(BenchError::new("the peer's ack is not 1 byte"));
    }
    let allocations = allocs.and_then(|a| allocations().map(|b| b - a));
    Ok(ThroughputRun {
        allocations,
        messages: bytes / msg.len() as u64,
        gb_per_s: bytes as f64 / seconds / 1e9,
        bytes,
        seconds,
        max_op_us: max_op.as_secs_f64() * 1e6,
        stalls,
    })
}

/// One throughput run: an untimed streaming session of `warmup`, then a timed
/// one of `duration`.
/// `timeout` limits each call (retried on expiry; see [`Transport::set_timeout`]).
pub fn throughput_run(
    t: &mut dyn Transport,
    size: usize,
    warmup: Duration,
    duration: Duration,
    timeout: Option<Duration>,
    scratch: &mut [u8],
) -> Result<ThroughputRun> {
    assert!(size > 1);
    t.set_timeout(timeout);
    let result = stream_all(t, size, warmup, duration, scratch);
    t.set_timeout(None);
    result
}

fn stream_all(
    t: &mut dyn Transport,
    size: usize,
    warmup: Duration,
    duration: Duration,
    scratch: &mut [u8],
) -> Result<ThroughputRun> {
    let msg = vec![0x5au8; size];
    if !warmup.is_zero() {
        stream_for(t, &msg, warmup, scratch)?;
    }
    stream_for(t, &msg, duration, scratch)
}
