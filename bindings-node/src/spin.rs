//! When spinning pays: the adaptive rule every spin of this binding follows
//! (`Adaptive`), and how a spin under way notices that it only takes turns
//! with the peer (`SpinClock`).
//!
//! A spin looks at the ring without a system call instead of sleeping on the
//! fd: a peer on another core usually answers within microseconds, far sooner
//! than a wake-up through the kernel. It only delays a peer that shares this
//! thread's CPU, so a spin does not start when the peer's placement hint says
//! so, stops when this thread was preempted while it spun, and, after
//! SPIN_GIVE_UP spins in a row in vain, runs only every SPIN_RETRY_EVERY-th
//! time.

use std::time::{Duration, Instant};

use shmsock::placement::{self, Hints};

use crate::cpu::preemptions;

/// Spins in a row that found nothing before spinning stops...
pub(crate) const SPIN_GIVE_UP: u32 = 8;
/// ...and how often one spins again after that.
pub(crate) const SPIN_RETRY_EVERY: u32 = 64;
/// How often a spin that keeps seeing progress asks whether this thread was
/// preempted meanwhile (see `SpinClock`).
const PREEMPTION_LOOK_EVERY: Duration = Duration::from_micros(50);

/// When to spin: after SPIN_GIVE_UP spins in a row found nothing, only every
/// SPIN_RETRY_EVERY-th time.
#[derive(Default)]
pub(crate) struct Adaptive {
    failures: u32,
    skipped: u32,
}

impl Adaptive {
    /// A spin starting now, if it may: the peer did not say it last ran on
    /// this thread's CPU, the machine is not crowded, and spinning paid lately
    /// (or it is time to try again).
    pub(crate) fn start(&mut self, now: Instant, hints: Hints<'_>) -> Option<SpinClock> {
        if hints.peer_on(hints.publish()) || placement::crowded(now) {
            return None;
        }
        if self.failures >= SPIN_GIVE_UP {
            self.skipped += 1;
            if self.skipped < SPIN_RETRY_EVERY {
                return None;
            }
            self.skipped = 0;
        }
        Some(SpinClock { preemptions: preemptions(), next_look: now + PREEMPTION_LOOK_EVERY })
    }

    /// Notes how the spin that `clock` started ended: `paid` when what it
    /// waited for came, unless the thread was preempted meanwhile (most
    /// likely by the peer, sharing its core: what the peer did then came
    /// from taking turns, not from running alongside, so spinning stops for a
    /// while, as after SPIN_GIVE_UP spins in vain).
    pub(crate) fn end(&mut self, clock: SpinClock, paid: bool) {
        if clock.preempted() {
            self.failures = self.failures.max(SPIN_GIVE_UP);
        } else if paid {
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
        }
    }
}

/// A spin under way: this thread's preemptions when it started, and when
/// they may be looked at next while it goes on.
pub(crate) struct SpinClock {
    preemptions: Option<std::ffi::c_long>,
    next_look: Instant,
}

impl SpinClock {
    /// True when the kernel took this thread's CPU away since the spin started.
    pub(crate) fn preempted(&self) -> bool {
        matches!((self.preemptions, preemptions()), (Some(before), Some(after)) if after != before)
    }

    /// As `preempted`, during the spin: at most every PREEMPTION_LOOK_EVERY
    /// (each look is a system call), else false.
    pub(crate) fn preempted_by(&mut self, now: Instant) -> bool {
        if now < self.next_look {
            return false;
        }
        self.next_look = now + PREEMPTION_LOOK_EVERY;
        self.preempted()
    }
}
