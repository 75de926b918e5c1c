//! Where the two sides of a connection run, as advisory hints in the segment,
//! so a waiter can tell when the kernel put both on one core.
//!
//! A sleeping peer is woken onto the waker's core (the wake-up is "affine") and
//! tends to stay there: the two then hand the core to each other through the
//! kernel, at several microseconds per hop, although another core may be idle,
//! because one of them is always asleep and the core never looks overloaded.
//! Each side therefore publishes the CPU it last ran on before it sleeps; a
//! waiter that sees the peer on its own CPU, and may itself run elsewhere,
//! now and then stays runnable (spins) for a few milliseconds instead of
//! sleeping. The core then has two runnable tasks, and the load balancer of an
//! idle core pulls one of them over; from then on the two meet in the spin.
//! No CPU affinity is ever changed.
//!
//! The hints are untrusted like everything in the segment: a wrong value only
//! makes a waiter spin (bounded) or sleep when it need not.

use std::sync::atomic::{AtomicU32, Ordering};

/// Segment offset of the client's CPU hint (u32: CPU + 1, 0 = unknown), on a
/// 128-byte line of its own in the header's reserved area.
pub const CLIENT_CPU_HINT: usize = 0x480;
/// Segment offset of the server's CPU hint.
pub const SERVER_CPU_HINT: usize = 0x500;

/// The CPU hints of one connection: this side's and the peer's words in the
/// segment (PROTOCOL.md §10: CPU + 1, 0 when unknown).
#[derive(Clone, Copy)]
pub struct Hints<'a> {
    /// Written by this side.
    pub own: &'a AtomicU32,
    /// Written by the peer.
    pub peer: &'a AtomicU32,
}

impl Hints<'_> {
    /// Publishes the CPU this thread runs on; returns it (+1; 0 if unknown).
    pub fn publish(&self) -> u32 {
        let cpu = crate::platform::current_cpu().map_or(0, |c| c + 1);
        if self.own.load(Ordering::Relaxed) != cpu {
            self.own.store(cpu, Ordering::Relaxed);
        }
        cpu
    }

    /// True when the peer said it last ran on `own` (a value from `publish`).
    pub fn peer_on(&self, own: u32) -> bool {
        own != 0 && self.peer.load(Ordering::Relaxed) == own
    }
}

/// How long this thread's answer to [`may_run_elsewhere`] is kept: affinity
/// rarely changes, and asking the kernel on every wait cost a system call per
/// message to a thread pinned to one CPU (which asks each time it sleeps).
#[cfg(target_os = "linux")]
const AFFINITY_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// True when this thread's affinity allows more than one CPU (a thread pinned
/// to one CPU gains nothing by staying runnable: it would only delay its peer).
/// Looked up at most once per `AFFINITY_RECHECK` (1 s) per thread.
#[cfg(target_os = "linux")]
pub fn may_run_elsewhere() -> bool {
    use std::cell::Cell;
    use std::time::Instant;
    thread_local! {
        static KNOWN: Cell<Option<(Instant, bool)>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    KNOWN.with(|known| match known.get() {
        Some((at, answer)) if now.duration_since(at) < AFFINITY_RECHECK => answer,
        _ => {
            let answer = rustix::thread::sched_getaffinity(None).is_ok_and(|set| set.count() > 1);
            known.set(Some((now, answer)));
            answer
        }
    })
}

#[cfg(not(target_os = "linux"))]
pub fn may_run_elsewhere() -> bool {
    false
}

/// How long this thread's answer to [`crowded`] is kept.
const CROWD_RECHECK: std::time::Duration = std::time::Duration::from_millis(20);
/// Runnable threads allowed beyond twice the CPUs before [`crowded`] says so:
/// a two-core ping-pong counts 2 (both spinning) and short-lived kernel or
/// shell work often 1 or 2 more, which must not turn spinning off.
const CROWD_SLACK: u32 = 2;

/// True when more than twice as many threads are runnable as the machine has
/// CPUs (plus `CROWD_SLACK`). A waiter then sleeps at once instead of
/// spinning: its spin would only take a CPU from the thread it waits for, or
/// from another with work to do. Dozens of clients of one server, each
/// spinning for its reply, slowed the server and favoured whichever clients
/// happened to spin at the right time: per-client rates at N = 16 and 64
/// spread 1.3–2.3× (max/min) without this check, 1.0–1.5× with it. Looked up
/// at most once per `CROWD_RECHECK` (20 ms) per thread, without allocating;
/// false when the kernel does not say. `now`: the caller's reading of the
/// clock (a waiter has one anyway; another reading cost about 26 ns a wait).
pub fn crowded(now: std::time::Instant) -> bool {
    use std::cell::Cell;
    use std::time::Instant;
    thread_local! {
        static KNOWN: Cell<Option<(Instant, bool)>> = const { Cell::new(None) };
    }
    KNOWN.with(|known| match known.get() {
        Some((at, answer)) if now.duration_since(at) < CROWD_RECHECK => answer,
        _ => {
            let answer = crate::platform::runnable_and_cpus()
                .is_some_and(|(running, cpus)| running > cpus.saturating_mul(2).saturating_add(CROWD_SLACK));
            known.set(Some((now, answer)));
            answer
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_compare_cpus() {
        let (a, b) = (AtomicU32::new(0), AtomicU32::new(0));
        let mine = Hints { own: &a, peer: &b };
        let cpu = mine.publish();
        assert_eq!(a.load(Ordering::Relaxed), cpu);
        assert!(!mine.peer_on(cpu), "an unknown peer CPU is never ours");
        b.store(cpu, Ordering::Relaxed);
        assert_eq!(mine.peer_on(cpu), cpu != 0);
        assert!(!mine.peer_on(0));
    }

    /// The kernel's count is read (this thread at least is running) and the
    /// answer is a plain comparison with it.
    #[cfg(target_os = "linux")]
    #[test]
    fn runnable_threads_are_counted() {
        let (running, cpus) = crate::platform::runnable_and_cpus().expect("/proc/loadavg and sysconf answer");
        assert!(running >= 1 && cpus >= 1, "{running} runnable, {cpus} CPUs");
        let _ = crowded(std::time::Instant::now());
    }

    /// The answer follows this thread's affinity, after the recheck interval.
    #[cfg(target_os = "linux")]
    #[test]
    fn may_run_elsewhere_follows_affinity_and_is_cached() {
        use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
        let original = sched_getaffinity(None).unwrap();
        std::thread::spawn(move || {
            let expected = original.count() > 1;
            assert_eq!(may_run_elsewhere(), expected);
            let mut one = CpuSet::new();
            let cpu = (0..CpuSet::MAX_CPU).find(|&c| original.is_set(c)).unwrap();
            one.set(cpu);
            sched_setaffinity(None, &one).unwrap();
            // Kept for the interval (not asserted: a slow machine may pass
            // it at any moment), then the new affinity.
            std::thread::sleep(AFFINITY_RECHECK + std::time::Duration::from_millis(50));
            assert!(!may_run_elsewhere());
        })
        .join()
        .unwrap();
    }
}
