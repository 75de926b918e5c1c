//! When spinning pays, for this binding's spins (a receive, a partly
//! received message's next fragments, a partly sent message's room): the
//! core's one rule, `shmsock::wait::SpinHistory`, the same as every blocking
//! wait, reactor and subscriber follows, plus two things an event loop's
//! spin can see: the peer's placement hint and this thread's preemptions
//! (`SpinClock`).
//!
//! A spin looks at the ring without a system call instead of asking libuv to
//! wake this thread: a peer on another core usually answers within
//! microseconds, far sooner than a wake-up through the kernel. It only delays
//! a peer that shares this thread's CPU, so a spin does not start when the
//! peer's placement hint says so, and one that finds this thread was
//! preempted while it spun stops spinning for a while (`SpinHistory::give_up`).

use std::time::{Duration, Instant};

use shmsock::placement::{self, Hints};
use shmsock::wait::SpinHistory;

use crate::cpu::preemptions;

/// How often a spin that keeps seeing progress asks whether this thread was
/// preempted meanwhile (see `SpinClock`).
const PREEMPTION_LOOK_EVERY: Duration = Duration::from_micros(50);

/// The history of one kind of spin on one stream.
#[derive(Default)]
pub(crate) struct Adaptive {
    history: SpinHistory,
}

impl Adaptive {
    /// How long a spin starting now may last, of a full `spin`, if it may
    /// start at all: the peer did not say it last ran on this thread's CPU
    /// (on one core it could only answer once this thread stops), the
    /// machine is not crowded, and the core's rule says spinning pays lately
    /// (or that it is time for a short probe).
    pub(crate) fn budget(&self, now: Instant, hints: Hints<'_>, spin: Duration) -> Option<Duration> {
        if hints.peer_on(hints.publish()) || placement::crowded(now) {
            return None;
        }
        self.history.budget(spin)
    }

    /// How long a receive may wait in place (`StreamShared::wait_in_place`),
    /// of `limit`, if at all: only when the peer said it last ran on this
    /// thread's CPU (the opposite of a spin), and while such waits pay.
    pub(crate) fn in_place_budget(&self, hints: Hints<'_>, limit: Duration) -> Option<Duration> {
        if !hints.peer_on(hints.publish()) {
            return None;
        }
        self.history.budget(limit)
    }

    /// As `budget`, for a spin that may go on while it sees progress, and so
    /// watches for preemption: its clock.
    pub(crate) fn start(&self, now: Instant, hints: Hints<'_>, spin: Duration) -> Option<SpinClock> {
        let budget = self.budget(now, hints, spin)?;
        Some(SpinClock { budget, preemptions: preemptions(), next_look: now + PREEMPTION_LOOK_EVERY })
    }

    /// Notes how the spin that `clock` started ended: `paid` when what it
    /// waited for came, unless the thread was preempted meanwhile (most
    /// likely by the peer, sharing its core: what the peer did then came
    /// from taking turns, not from running alongside, so spinning stops).
    pub(crate) fn end(&self, clock: SpinClock, paid: bool) {
        if clock.preempted() {
            self.history.give_up();
        } else {
            self.ended(paid);
        }
    }

    /// Notes how a spin started by `budget` ended.
    pub(crate) fn ended(&self, paid: bool) {
        if paid {
            self.history.found();
        } else {
            self.history.missed();
        }
    }
}

/// A spin under way: how long it may wait for its first sign of progress,
/// this thread's preemptions when it started, and when they may be looked
/// at next while it goes on.
pub(crate) struct SpinClock {
    pub(crate) budget: Duration,
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
