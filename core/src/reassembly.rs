//! [`ReassemblyBudget`]: the bound on the memory a listener's connections hold
//! at once in messages they are receiving.
//!
//! A message longer than one frame is gathered across frames (PROTOCOL.md
//! §7.3), and a receive that returns before its last frame keeps what arrived.
//! A peer that sends all of a large message but its last frame, then stops,
//! leaves the receiver holding nearly the whole message: a server with
//! `max_connections` such peers would hold `max_connections ×
//! max_message_size` bytes (16 GiB with the defaults). So every connection a
//! listener (or a [`Server`](crate::Server)) accepts shares that listener's
//! budget (the field `max_reassembly_bytes` of [`Options`](crate::Options)):
//! before it takes the first frame of a message longer than one frame, it
//! reserves the message's length, and it gives it back once the message is
//! delivered or the connection is dropped.
//!
//! A connection that finds no room leaves the message in its ring, so its
//! peer's sends wait for space as they do for a slow reader, until another
//! connection gives room back: a blocking receive waits for it (up to its
//! deadline), a non-blocking one says WouldBlock and the connection's pollable
//! fd becomes readable when room is given back. Nothing is lost and no
//! connection is ended; messages that fit in one frame never wait, so
//! connections exchanging small messages are not slowed by those holding the
//! budget. One message is always let through when nothing is reserved, so a
//! budget smaller than `max_message_size` slows large messages down to one at
//! a time but never stops them. Clients have no budget: a client's memory is
//! bounded by the connections it opens itself.
//!
//! A message that holds room must keep moving while others wait for it: a
//! peer that sends part of a large message and stops (or trickles it a frame
//! at a time) would otherwise keep every other connection's large messages
//! waiting for as long as it likes. So while some receive waits for room, a
//! watchdog thread (started then, gone once nobody waits) ends the
//! connection of any holder that opened no frame for [`STALL_AFTER`], or
//! whose message is not complete [`STALL_AFTER`] plus one second per
//! [`SLOWEST_RATE`] bytes after it took room: its room is given back at
//! once, its stream is woken, and its next receive frees what it kept and
//! fails with ResourceExhausted (the stream is over; its peer sees the
//! connection end). Holders are never ended while nobody waits: the memory
//! is bounded by the budget either way. For [`PENALTY`] after one of its
//! connections was ended so, a peer process gathers one message at a time
//! at most (it gets room only while nothing else holds any): a process with
//! many connections waiting would otherwise take the room given back, stop
//! again, and keep the others' large messages waiting round after round.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::platform::{self, Origin};

/// How long a blocking receive waiting for room sleeps before it looks
/// whether its own stream was closed meanwhile.
const LOOK_AT_STREAM_EVERY: Duration = Duration::from_millis(100);

/// While others wait for room, a holder that opened no frame of its message
/// for this long is ended. Between processes on one machine a frame follows
/// the last within microseconds when both sides move: seconds without one
/// mean the peer stopped (or this side's application stopped reading that
/// connection while others wait behind it).
pub(crate) const STALL_AFTER: Duration = Duration::from_secs(3);

/// ...and one whose message is not complete [`STALL_AFTER`] plus one second
/// per this many bytes after it took room (a peer trickling a frame every few
/// seconds keeps moving, but at this rate a 16 MiB message may hold room for
/// 19 s; shmsock moves gigabytes per second).
pub(crate) const SLOWEST_RATE: u64 = 1 << 20;

/// How long a process one of whose connections was ended for a stalled
/// message gets room only while nothing else holds any.
pub(crate) const PENALTY: Duration = Duration::from_secs(30);

/// Bytes of messages being received, shared by the connections of one listener.
pub(crate) struct ReassemblyBudget {
    limit: u64,
    /// How long a holder may go without a frame while others wait
    /// ([`STALL_AFTER`]; shorter in tests).
    stall_after: Duration,
    /// Time zero of [`Flags::last_frame`].
    epoch: Instant,
    state: Mutex<State>,
    /// Signalled when room is given back, for blocking receives.
    room: Condvar,
    /// Signalled when a receive starts waiting, for the watchdog.
    waiting: Condvar,
}

struct State {
    used: u64,
    /// The messages holding room, one per share at most.
    holding: Vec<Holding>,
    /// Non-blocking receives that found no room: each share's key and a
    /// duplicate of its stream's wake-up descriptor, signalled (and dropped)
    /// when room is given back.
    watching: Vec<(u64, OwnedFd)>,
    /// Blocking receives waiting for room.
    blocked: usize,
    /// The process whose watchdog thread runs, if one does: a process forked
    /// from this one inherits the record but not the thread, and starts its own.
    watchdog: Option<Origin>,
    /// Peer processes recently ended for a stalled message, and until when
    /// they gather one message at a time (few entries: one per process).
    penalized: Vec<(i32, Instant)>,
}

/// A message holding room.
struct Holding {
    key: u64,
    /// The peer process (0: unknown).
    pid: i32,
    len: u64,
    since: Instant,
    flags: Arc<Flags>,
    /// A duplicate of the holder stream's wake-up descriptor, signalled if it
    /// is ended (so that its event loop looks at it, and frees what it kept).
    wake: Option<OwnedFd>,
}

/// What a share and the watchdog both see, without the budget's lock.
#[derive(Default)]
struct Flags {
    /// Nanoseconds after the budget's epoch at which the held message last
    /// moved (room taken, or a frame opened).
    last_frame: AtomicU64,
    /// The watchdog ended this share's connection.
    evicted: AtomicBool,
}

impl Holding {
    /// When this holder is ended if someone waits for room meanwhile.
    fn deadline(&self, budget: &ReassemblyBudget) -> Instant {
        let last_frame = budget.epoch + Duration::from_nanos(self.flags.last_frame.load(Ordering::Relaxed));
        let whole = self.since + budget.stall_after + Duration::from_secs_f64(self.len as f64 / SLOWEST_RATE as f64);
        (last_frame + budget.stall_after).min(whole)
    }
}

impl ReassemblyBudget {
    pub(crate) fn new(limit: u64) -> Arc<ReassemblyBudget> {
        Self::with_stall(limit, STALL_AFTER)
    }

    fn with_stall(limit: u64, stall_after: Duration) -> Arc<ReassemblyBudget> {
        Arc::new(ReassemblyBudget {
            limit,
            stall_after,
            epoch: Instant::now(),
            state: Mutex::new(State {
                used: 0,
                holding: Vec::new(),
                watching: Vec::new(),
                blocked: 0,
                watchdog: None,
                penalized: Vec::new(),
            }),
            room: Condvar::new(),
            waiting: Condvar::new(),
        })
    }

    /// A share for one new connection, to the peer process `pid` (0: unknown).
    pub(crate) fn share(self: &Arc<Self>, pid: i32) -> Share {
        static NEXT_KEY: AtomicU64 = AtomicU64::new(0);
        Share {
            budget: Arc::clone(self),
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            pid,
            holds: false,
            flags: Arc::new(Flags::default()),
        }
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Someone waits for room: makes sure the watchdog runs, and tells it.
    fn someone_waits(self: &Arc<Self>, state: &mut State) {
        if state.watchdog.is_none_or(Origin::forked) {
            let budget = Arc::clone(self);
            let started = std::thread::Builder::new().name("shmsock-reassembly".into()).spawn(move || budget.watch());
            // Without a thread (out of threads), holders are not ended: the
            // memory stays bounded, and waiters wait for the holders.
            state.watchdog = started.is_ok().then(Origin::here);
        }
        self.waiting.notify_all();
    }

    /// The watchdog: while some receive waits for room, ends the holders
    /// that stopped moving (see the module comment).
    fn watch(&self) {
        let mut state = self.state.lock();
        loop {
            if state.watching.is_empty() && state.blocked == 0 {
                state.watchdog = None;
                return;
            }
            let now = Instant::now();
            let (stalled, moving): (Vec<Holding>, Vec<Holding>) =
                std::mem::take(&mut state.holding).into_iter().partition(|h| h.deadline(self) <= now);
            state.holding = moving;
            if stalled.is_empty() {
                let next = state.holding.iter().map(|h| h.deadline(self)).min().unwrap_or(now + self.stall_after);
                self.waiting.wait_until(&mut state, next);
                continue;
            }
            state.penalized.retain(|(_, until)| *until > now);
            for holder in &stalled {
                state.used -= holder.len;
                holder.flags.evicted.store(true, Ordering::Release);
                if holder.pid != 0 {
                    state.penalized.retain(|(pid, _)| *pid != holder.pid);
                    state.penalized.push((holder.pid, now + PENALTY));
                }
            }
            let watching = std::mem::take(&mut state.watching);
            drop(state);
            self.room.notify_all();
            for fd in stalled.iter().filter_map(|h| h.wake.as_ref()).chain(watching.iter().map(|(_, fd)| fd)) {
                platform::wake_peer(fd.as_fd());
            }
            drop((stalled, watching));
            state = self.state.lock();
        }
    }

    /// Bytes reserved now.
    #[cfg(test)]
    fn used(&self) -> u64 {
        self.state.lock().used
    }

    fn fits(&self, state: &State, len: u64, pid: i32) -> bool {
        if state.used == 0 {
            return true;
        }
        let penalized = || state.penalized.iter().any(|(p, until)| *p == pid && *until > Instant::now());
        state.used.saturating_add(len) <= self.limit && (pid == 0 || !penalized())
    }
}

/// One connection's part of a [`ReassemblyBudget`]: whether it holds room
/// for the message it is receiving (the length is in the budget's
/// [`Holding`]).
pub(crate) struct Share {
    budget: Arc<ReassemblyBudget>,
    key: u64,
    /// The peer process (0: unknown).
    pid: i32,
    /// Holds room now (a look without the budget's lock).
    holds: bool,
    flags: Arc<Flags>,
}

impl Share {
    /// Reserves `len` bytes for the message at the head of the ring, unless
    /// this share holds them already (a receive that returned before taking
    /// the message, say BufferTooSmall, comes back for the same one). `own`
    /// is this stream's wake-up descriptor: signalled if the watchdog ends
    /// this holder and, when `watch` is set and there is no room (false),
    /// once room is given back.
    pub(crate) fn reserve(&mut self, len: u32, own: BorrowedFd<'_>, watch: bool) -> bool {
        if self.holds {
            return true;
        }
        let len = u64::from(len);
        let mut state = self.budget.state.lock();
        if self.budget.fits(&state, len, self.pid) {
            state.used += len;
            self.holds = true;
            self.flags.last_frame.store(self.budget.now_nanos(), Ordering::Relaxed);
            // Without a descriptor (out of descriptors), an ended holder
            // notices at its next receive.
            let wake = own.try_clone_to_owned().ok();
            state.holding.push(Holding {
                key: self.key,
                pid: self.pid,
                len,
                since: Instant::now(),
                flags: Arc::clone(&self.flags),
                wake,
            });
            return true;
        }
        if watch {
            if !state.watching.iter().any(|(key, _)| *key == self.key) {
                // Without a descriptor to signal (out of descriptors), the
                // stream is still served when its peer writes or hangs up.
                if let Ok(fd) = own.try_clone_to_owned() {
                    state.watching.push((self.key, fd));
                }
            }
            self.budget.someone_waits(&mut state);
        }
        false
    }

    /// The held message moved: a frame of it was opened.
    pub(crate) fn note_frame(&self) {
        if self.holds {
            self.flags.last_frame.store(self.budget.now_nanos(), Ordering::Relaxed);
        }
    }

    /// True once the watchdog ended this share's connection (its message
    /// stopped moving while others waited for room).
    pub(crate) fn evicted(&self) -> bool {
        self.flags.evicted.load(Ordering::Acquire)
    }

    /// Waits until `len` bytes are reserved (true), `deadline` passes (false)
    /// or `still_wanted` says to stop waiting (its error). `own` as for
    /// [`reserve`](Share::reserve).
    pub(crate) fn wait_reserve(
        &mut self,
        len: u32,
        own: BorrowedFd<'_>,
        deadline: Option<Instant>,
        still_wanted: impl Fn() -> crate::Result<()>,
    ) -> crate::Result<bool> {
        loop {
            if self.reserve(len, own, false) {
                return Ok(true);
            }
            let now = Instant::now();
            let nap = match deadline {
                Some(d) if d <= now => return Ok(false),
                Some(d) => (d - now).min(LOOK_AT_STREAM_EVERY),
                None => LOOK_AT_STREAM_EVERY,
            };
            let mut state = self.budget.state.lock();
            if !self.budget.fits(&state, u64::from(len), self.pid) {
                state.blocked += 1;
                self.budget.someone_waits(&mut state);
                self.budget.room.wait_for(&mut state, nap);
                state.blocked -= 1;
            }
            drop(state);
            still_wanted()?;
        }
    }

    /// Gives back what this share holds (its message was delivered).
    pub(crate) fn release(&mut self) {
        if !self.holds {
            return;
        }
        // The holding goes out with the lock released: dropping it closes a descriptor.
        let (watching, _holding) = {
            let mut state = self.budget.state.lock();
            // Not there when the watchdog ended this holder: it gave the room back.
            let holding = state.holding.iter().position(|h| h.key == self.key).map(|i| state.holding.swap_remove(i));
            if let Some(holding) = &holding {
                state.used -= holding.len;
            }
            (std::mem::take(&mut state.watching), holding)
        };
        self.holds = false;
        self.budget.room.notify_all();
        for (_, fd) in watching {
            platform::wake_peer(fd.as_fd());
        }
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.release();
        self.budget.state.lock().watching.retain(|(key, _)| *key != self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wake-up descriptor standing for a stream's.
    fn own() -> platform::OwnWake {
        platform::OwnWake::new().unwrap()
    }

    fn signalled(wake: &platform::OwnWake) -> u64 {
        let mut count = [0u8; 8];
        match rustix::io::read(wake.for_peer(), &mut count) {
            Ok(8) => u64::from_ne_bytes(count),
            _ => 0,
        }
    }

    #[test]
    fn reservations_stay_within_the_limit_and_come_back() {
        let budget = ReassemblyBudget::new(100);
        let (mut a, mut b, wake) = (budget.share(0), budget.share(0), own());
        assert!(a.reserve(60, wake.for_peer(), false));
        assert!(a.reserve(60, wake.for_peer(), false), "a share asked again for its message holds it already");
        assert_eq!(budget.used(), 60);
        assert!(!b.reserve(50, wake.for_peer(), false));
        assert!(b.reserve(40, wake.for_peer(), false));
        assert_eq!(budget.used(), 100);
        a.release();
        b.release();
        assert_eq!(budget.used(), 0);
        assert!(budget.state.lock().holding.is_empty());
    }

    #[test]
    fn one_message_larger_than_the_budget_still_passes_alone() {
        let budget = ReassemblyBudget::new(10);
        let (mut a, mut b, wake) = (budget.share(0), budget.share(0), own());
        assert!(a.reserve(1000, wake.for_peer(), false));
        assert!(!b.reserve(1, wake.for_peer(), false));
        drop(a);
        assert_eq!(budget.used(), 0, "a dropped share gives its bytes back");
        assert!(b.reserve(1, wake.for_peer(), false));
    }

    #[test]
    fn room_given_back_signals_the_watching_descriptors_once() {
        let budget = ReassemblyBudget::new(10);
        let (mut holder, mut watcher) = (budget.share(0), budget.share(0));
        let (holder_wake, wake) = (own(), own());
        assert!(holder.reserve(10, holder_wake.for_peer(), false));
        assert!(!watcher.reserve(5, wake.for_peer(), true));
        assert!(!watcher.reserve(5, wake.for_peer(), true), "registered once");
        assert_eq!(budget.state.lock().watching.len(), 1);
        holder.release();
        assert!(budget.state.lock().watching.is_empty());
        assert_eq!(signalled(&wake), 1);
        assert_eq!(signalled(&holder_wake), 0, "a holder that gave its room back is not woken");
        assert!(watcher.reserve(5, wake.for_peer(), false));
    }

    #[test]
    fn a_blocking_wait_ends_at_its_deadline_or_when_room_comes_back() {
        let budget = ReassemblyBudget::new(10);
        let mut holder = budget.share(0);
        let wake = own();
        assert!(holder.reserve(10, wake.for_peer(), false));
        let mut waiter = budget.share(0);
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(!waiter.wait_reserve(5, wake.for_peer(), Some(soon), || Ok(())).unwrap());
        let stop = crate::Error::new(crate::ErrorKind::Closed, "closed");
        let e = waiter.wait_reserve(5, wake.for_peer(), None, || Err(stop.clone())).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Closed);
        let giver = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            holder.release();
        });
        assert!(waiter.wait_reserve(5, wake.for_peer(), None, || Ok(())).unwrap());
        giver.join().unwrap();
        assert_eq!(budget.used(), 5);
    }

    /// Waits (bounded) until `done` holds.
    fn eventually(what: &str, done: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < until, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_holder_that_stops_moving_while_others_wait_is_ended_and_gives_its_room_back() {
        const MIB: u32 = 1 << 20;
        let budget = ReassemblyBudget::with_stall(3 << 20, Duration::from_millis(50));
        let (mut stalled, mut moving, mut watcher) = (budget.share(0), budget.share(0), budget.share(0));
        let (stalled_wake, moving_wake, wake) = (own(), own(), own());
        assert!(stalled.reserve(MIB, stalled_wake.for_peer(), false));
        // Nobody waits: a holder may rest as long as it likes.
        std::thread::sleep(Duration::from_millis(120));
        assert!(!stalled.evicted() && budget.state.lock().watchdog.is_none());
        // (2 MiB: two seconds at the slowest rate, so only its frames count here.)
        assert!(moving.reserve(2 * MIB, moving_wake.for_peer(), false));
        // Someone waits: the one that does not move is ended, the other kept.
        assert!(!watcher.reserve(MIB, wake.for_peer(), true));
        let keep_moving = std::thread::spawn(move || {
            for _ in 0..40 {
                moving.note_frame();
                std::thread::sleep(Duration::from_millis(5));
            }
            moving
        });
        eventually("the stalled holder was not ended", || stalled.evicted());
        assert_eq!(signalled(&stalled_wake), 1, "the ended holder's stream is woken");
        assert_eq!(signalled(&wake), 1, "the waiter is woken for the room given back");
        assert_eq!(budget.used(), 2 << 20);
        let mut moving = keep_moving.join().unwrap();
        assert!(!moving.evicted(), "a holder whose message moves is kept");
        assert_eq!(signalled(&moving_wake), 0);
        assert!(watcher.reserve(MIB, wake.for_peer(), false));
        // The ended share's release changes nothing more.
        stalled.release();
        assert_eq!(budget.used(), 3 << 20);
        moving.release();
        watcher.release();
        assert_eq!(budget.used(), 0);
        eventually("the watchdog did not stop once nobody waited", || budget.state.lock().watchdog.is_none());
    }

    #[test]
    fn a_message_that_moves_too_slowly_for_its_size_is_ended_too() {
        // 4 MiB at 1 MiB/s: four seconds after 20 ms, though a frame comes every 5 ms.
        let budget = ReassemblyBudget::with_stall(1 << 22, Duration::from_millis(20));
        let (mut slow, wake) = (budget.share(0), own());
        assert!(slow.reserve(1 << 22, wake.for_peer(), false));
        let deadline_and_since = || {
            let state = budget.state.lock();
            (state.holding[0].deadline(&budget), state.holding[0].since)
        };
        let (deadline, since) = deadline_and_since();
        assert!(deadline <= since + Duration::from_millis(25), "no frame for the stall time");
        // A message that keeps moving reaches the deadline of its size.
        budget.state.lock().holding[0].flags.last_frame.store(u64::MAX / 2, Ordering::Relaxed);
        let (deadline, since) = deadline_and_since();
        assert_eq!(deadline, since + Duration::from_millis(20) + Duration::from_secs(4));
        slow.release();
    }

    #[test]
    fn a_blocking_waiter_gets_the_room_of_a_stalled_holder() {
        let budget = ReassemblyBudget::with_stall(10, Duration::from_millis(30));
        let (mut stalled, mut waiter, wake) = (budget.share(0), budget.share(0), own());
        assert!(stalled.reserve(10, wake.for_peer(), false));
        let soon = Instant::now() + Duration::from_secs(20);
        assert!(waiter.wait_reserve(5, wake.for_peer(), Some(soon), || Ok(())).unwrap());
        assert!(stalled.evicted());
        assert_eq!(budget.used(), 5);
    }

    #[test]
    fn a_process_ended_for_a_stalled_message_then_gathers_one_message_at_a_time() {
        const KIB: u32 = 1 << 10;
        let budget = ReassemblyBudget::with_stall(2 << 20, Duration::from_millis(30));
        let wake = own();
        let mut stalled = budget.share(7);
        assert!(stalled.reserve(1024 * KIB, wake.for_peer(), false));
        let mut waiter = budget.share(8);
        assert!(!waiter.reserve(1536 * KIB, wake.for_peer(), true));
        eventually("the stalled holder was not ended", || stalled.evicted());
        assert!(waiter.reserve(1536 * KIB, wake.for_peer(), false));
        // Room for 512 KiB more, but not for process 7 while anything is held.
        let (mut same_process, mut other_process) = (budget.share(7), budget.share(9));
        assert!(!same_process.reserve(256 * KIB, wake.for_peer(), false));
        assert!(other_process.reserve(256 * KIB, wake.for_peer(), false));
        waiter.release();
        other_process.release();
        assert!(same_process.reserve(256 * KIB, wake.for_peer(), false), "one message at a time still passes");
        let mut second = budget.share(7);
        assert!(!second.reserve(KIB, wake.for_peer(), false));
        // Unknown processes (pid 0) are never held back.
        assert!(budget.share(0).reserve(KIB, wake.for_peer(), false));
    }

    #[test]
    fn a_forked_process_starts_its_own_watchdog() {
        // A child of fork() inherits the record of its parent's watchdog but
        // not the thread: the record names the parent, so the child starts one.
        let budget = ReassemblyBudget::with_stall(10, Duration::from_millis(30));
        budget.state.lock().watchdog = Some(Origin::elsewhere());
        let (mut stalled, mut waiter, wake) = (budget.share(0), budget.share(0), own());
        assert!(stalled.reserve(10, wake.for_peer(), false));
        assert!(!waiter.reserve(5, wake.for_peer(), true));
        eventually("no watchdog ended the stalled holder", || stalled.evicted());
        assert!(waiter.reserve(5, wake.for_peer(), false));
        waiter.release();
        eventually("the watchdog did not stop once nobody waited", || budget.state.lock().watchdog.is_none());
    }
}
