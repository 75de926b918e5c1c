//! The receive side's looks at the ring of [`StreamShared`]: what a receive
//! (or a flowing stream after its handler) does before it asks to be woken
//! through the kernel. `recheck` looks once without consuming a wake-up;
//! `spin` looks for a few microseconds for a peer on another core;
//! `spin_partial` keeps a message in fragments coming; `hand_over` gives the
//! CPU to a peer on this one; `wait_in_place` sleeps for the answer beside
//! libuv's own epoll fd. Each is adaptive and bounded (see the module comment
//! of [`stream`](super)).

use std::os::fd::AsRawFd;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use super::{StreamShared, StreamState, PARTIAL_SPIN, PARTIAL_SPIN_MAX, SPIN};
use crate::dispatch::{lock, Event};
use crate::inbox::event_op;
use crate::uv::{self, InPlace};

impl StreamShared {
    /// With a message partly received and someone waiting for it: looks at
    /// the ring for its next fragments (without a system call, consuming no
    /// wake-up) for as long as they keep coming within PARTIAL_SPIN of each
    /// other, up to PARTIAL_SPIN_MAX. A sender on another core is usually
    /// sealing the next fragment right now: waiting for it here spares both
    /// sides a wake-up through the kernel (the sender's eventfd write, this
    /// side's sleep and drain), which cost more than the fragment itself.
    /// Adaptive as `spin` (`crate::spin`): a sender that is slow, or shares
    /// this core, where spinning only delays it, soon stops it. True when a
    /// fragment came (the caller receives on).
    pub(super) fn spin_partial(&self, st: &mut StreamState, events: &mut Vec<Event>) -> bool {
        let waited_for = st.inbox.flowing || !st.inbox.waiters.is_empty();
        if !st.partial || !waited_for || st.inbox.ended.is_some() {
            return false;
        }
        let start = Instant::now();
        let Some(mut clock) = st.partial_spin.start(start, self.placement_hints(), PARTIAL_SPIN) else {
            return false;
        };
        let end = start + PARTIAL_SPIN_MAX;
        let mut until = start + clock.budget;
        let before = st.fragments;
        let came = loop {
            let seen = st.fragments;
            let delivered = self.recheck(st, events);
            let now = Instant::now();
            if delivered || st.fragments != seen {
                // A fragment came: had this thread been preempted meanwhile,
                // spinning on would only take turns with the peer.
                if delivered || !st.partial || now >= end || clock.preempted_by(now) {
                    break true;
                }
                until = now + PARTIAL_SPIN;
            } else if st.inbox.ended.is_some() || now >= until || now >= end {
                break st.fragments != before;
            }
        };
        st.partial_spin.end(clock, came);
        came
    }

    /// One look at the receive side that consumes no wake-up: true when a
    /// message was handed on. When nothing is there it changes nothing
    /// (`next_message_len`): a receive that finds nothing sets the waiting
    /// flag, and the peer then writes the eventfd for its next message even
    /// when this side takes it by looking (a system call on each side per
    /// message: measured, a one-core round trip between two node processes
    /// took 10.8-11.7 µs against 9.6-9.9 µs). Whoever goes on waiting arms
    /// through `try_recv`'s WouldBlock (`pump`), as before. A message partly
    /// received is looked at in full, which arms when it is still not whole.
    pub(super) fn recheck(&self, st: &mut StreamState, events: &mut Vec<Event>) -> bool {
        if self.stream.next_message_len().is_none() {
            return false;
        }
        match self.receive_one(st, events, false) {
            Ok(found) => found,
            Err(e) => {
                st.inbox.ended = Some(e);
                false
            }
        }
    }

    /// Before a receive asks to be woken: looks at the ring for up to SPIN,
    /// without a system call and without consuming any wake-up (a reply
    /// from a peer on another core usually comes within microseconds, far
    /// sooner than a wake-up through the kernel). Adaptive (`crate::spin`):
    /// a peer that is slow, or shares this core, where spinning only delays
    /// it, soon stops it; never when the peer shares this CPU. Without a
    /// preemption count (`Adaptive::budget`, not `start`): that is a system
    /// call, and this spin is on every small message's path.
    pub(super) fn spin(&self, st: &mut StreamState, events: &mut Vec<Event>) -> bool {
        let now = Instant::now();
        let Some(budget) = st.recv_spin.budget(now, self.placement_hints(), SPIN) else { return false };
        let until = now + budget;
        loop {
            if self.recheck(st, events) {
                st.recv_spin.ended(true);
                return true;
            }
            if st.inbox.ended.is_some() || Instant::now() >= until {
                st.recv_spin.ended(false);
                return false;
            }
        }
    }

    /// A receive that found nothing, before it asks to be woken, whose peer
    /// last ran on this thread's CPU (two processes on one core): hands the
    /// CPU over to the peer, which this side's send has just made runnable,
    /// by the core's rule for a blocking wait (`shmsock::Stream::hand_over`:
    /// `sched_yield` and a look, twice at most, adaptive, never on a crowded
    /// machine). Nothing is armed meanwhile, so the peer's answer wakes
    /// nobody: neither side writes an eventfd, sleeps or drains a wake-up,
    /// and a message costs one `sched_yield` and one context switch. On one
    /// core of a 2-vCPU EPYC, a 64 B round trip between two node processes
    /// took 9.6-9.9 µs against 14.3-14.7 µs sleeping (alternating launches).
    /// Never for a peer in this process. The lock is not held while the peer
    /// runs. Returns whether a message (or, flowing, a DATA event) came.
    pub(super) fn hand_over<'a>(
        self: &'a Arc<Self>,
        st: MutexGuard<'a, StreamState>,
        events: &mut Vec<Event>,
    ) -> (MutexGuard<'a, StreamState>, bool) {
        let eligible = (st.inbox.waiters.len() == 1 || st.inbox.flowing)
            && st.inbox.ended.is_none()
            && st.outbox.is_empty()
            && !self.peer_in_this_process;
        if !eligible {
            return (st, false);
        }
        drop(st);
        // An error (a close, the end of the connection) is for the look below
        // to report, as any receive's is.
        let came = self.stream.hand_over().unwrap_or(true);
        let mut st = lock(&self.st);
        if !came || st.closed {
            return (st, false);
        }
        let found = self.recheck(&mut st, events);
        (st, found)
    }

    /// A receive that found nothing, armed, whose peer last ran on this
    /// thread's CPU (two processes pinned to one core): sleeps for the peer's
    /// answer right here, for up to `limit` (`uv::wait_in_place`: never past
    /// the event loop's next timer, and only while no fd the loop watches is
    /// readable). The peer then runs at once, and its answer completes this
    /// receive when the thread wakes, without a turn of the event loop, a
    /// readiness callback and a callback into JavaScript for the result:
    /// measured on one core of a 2-vCPU EPYC, a 64 B round trip between two
    /// node processes took about 7% less (21.8 against 23.5 µs, medians of 6
    /// interleaved launches; 15.9-16.4 against 16.5-17.3 µs in another
    /// launch). Adaptive as a spin: waits that run out, or end at once
    /// because the loop has other work, stop it for a while.
    /// Never for a peer in this process (it may be this very thread, which
    /// could only answer once this call returns). The lock is not held while
    /// it sleeps.
    pub(super) fn wait_in_place<'a>(
        self: &'a Arc<Self>,
        mut st: MutexGuard<'a, StreamState>,
        events: &mut Vec<Event>,
        op: i64,
        limit: Duration,
    ) -> MutexGuard<'a, StreamState> {
        let eligible = st.inbox.waiters.len() == 1
            && st.inbox.ended.is_none()
            && st.outbox.is_empty()
            && !self.peer_in_this_process;
        let Some(limit) = eligible.then(|| st.in_place.in_place_budget(self.placement_hints(), limit)).flatten() else {
            return st;
        };
        // The poll handle keeps the loop alive while the receive waits:
        // without it the loop has nothing to wait for, and no wait happens.
        self.update_poll(&mut st);
        drop(st);
        let ended = uv::wait_in_place(self.id, self.stream.pollable_fd().as_raw_fd(), limit);
        let mut st = lock(&self.st);
        match ended {
            // A loop with other work (a busy server's other connections, a
            // timer) gains nothing from waits that end at once: they stop too.
            InPlace::TimedOut | InPlace::LoopBusy => st.in_place.ended(false),
            InPlace::Readable if !st.closed => {
                self.pump(&mut st, events, false, true);
                let came = events.iter().any(|e| event_op(e) == Some(op));
                st.in_place.ended(came);
            }
            InPlace::Readable => {}
        }
        st
    }
}
