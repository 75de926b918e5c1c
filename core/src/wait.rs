//! Waiting for a ring: a short bounded spin, then sleep until the peer writes
//! this side's wake-up eventfd or goes away. (And, apart, a blocking handshake
//! step's brief look for the peer's next record: `look_for_answer`.)
//!
//! The spin never yields the CPU. Instead a side that spun in vain several
//! times in a row (its peer is slow or shares its core, where spinning only
//! delays the peer) stops spinning, trying a spin again every so often. When
//! the peer said it runs on this very CPU, the side then hands the CPU over to
//! it ([`HAND_OVERS`] `sched_yield`s, each followed by a look, without setting
//! its waiting flag): the peer, which this side's message has just made
//! runnable, answers at once and wakes nobody, so two processes on one core
//! take turns with one system call and one context switch per message instead
//! of an eventfd write, a sleep and a drain. A yield also hands the core to
//! any other runnable task, possibly for a whole time slice, so a hand-over
//! that kept this thread away longer than [`HAND_OVER_SLOW`] stops them, and
//! the side sleeps until the peer's wake-up, as it does when hand-overs find
//! nothing. Two on different cores meet in the spin without any system call.
//!
//! The wake protocol (PROTOCOL.md, "Waking and liveness"): before sleeping, a side
//! sets its waiting flag in the segment and checks the ring again; after
//! publishing, the other side checks that flag and, only if it is set, clears it
//! and writes the value 1 to this side's eventfd. So the hot path makes no system
//! call. For a message in pieces the other side may defer that wake-up until it
//! pays (`ring::Producer::publish`, `ring::Consumer::advance`: half the ring in,
//! or the message's end, for a sleeping receiver; three quarters of it free for
//! a sleeping sender), and pays it at the latest when it stops (to wait itself,
//! or to return), so a wake-up is late, never lost. A side sleeps in the
//! connection's [`Sleeper`](platform::Sleeper), an epoll set of its own
//! eventfd (edge-triggered, so a wake-up is one system call for each side: the
//! peer's write and our `epoll_wait`) and the control
//! socket, so it wakes from the kernel when data, space or a close is
//! signalled, and at once when the peer dies (end of stream on the socket). On
//! one core this matters: an eventfd wake-up costs about half of a byte through
//! a Unix socket.
//!
//! Several threads of one process may wait on the same connection (one sending,
//! one receiving). Only one of them sleeps in the epoll set at a time; the others
//! wait on a condition variable, and every drain of the wake-ups bumps a
//! generation counter so that no thread sleeps through a wake-up another thread
//! consumed.
//!
//! Placement (see [`placement`]): before sleeping, a waiter
//! publishes its CPU; when spinning has been given up and the peer last ran on
//! this same CPU, it spins for a longer probe at most every
//! [`PLACEMENT_PROBE_EVERY`] (never when pinned to one CPU), so that an idle
//! core's load balancer can pull one of the two over.
//!
//! Both directions share the one eventfd. A `try_` call that finds nothing
//! drains it ([`Waiter::drain`]), which may consume a wake-up the other
//! direction's earlier `try_` call waits for (data arrived for a `try_recv`
//! while a `try_send` drains). The stream keeps each direction's wish as a
//! [`ring::Interest`](crate::ring::Interest) outside the ring locks, and after
//! every drain re-arms the other direction's waiting flag and, if its wish is
//! met already, signals the eventfd again (`Stream::drain_wakeups`), so no
//! wake-up is lost and the pollable fd stays readable while either direction
//! can proceed.
//!
//! A `try_recv` that returns a message keeps its direction's wish too (the
//! loop comes back for the next message on the wake-up it got for this one),
//! and a blocking wait re-arms the other direction's wish once it returns, so an
//! event loop may reply with a blocking `send` from the loop's own thread. It
//! must still not share a stream with *another* thread blocked in `send` or
//! `recv` on it: that thread drains the wake-ups the event loop waits for while
//! the loop sleeps.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, ErrorKind, Result};
use crate::placement::{self, Hints};
use crate::platform::{self, ControlAfterSetUp};

/// How long a blocking handshake step looks for the peer's next record before
/// it sleeps ([`look_for_answer`]): a client waiting for the REPLY (the
/// server's X25519 work, about 100 µs), a blocking accept waiting for a READY
/// (the client's), at most this long after the REPLY
/// (`Handshake::answer_looked_for_until`). A thread that sleeps meanwhile pays
/// a wake-up on top, which on a VM whose idle CPU halts takes tens of µs. On a
/// 2-vCPU EPYC, sequential connects in one process (`shmsock-bench --connect`,
/// a `Listener` accepting on one thread), six alternating pairs: p50 257-293
/// µs against 282-354 µs sleeping at once, 1.06-1.27x the connections/s
/// (median 1.19x; 2,200-2,532 against 1,876-2,265 per second); the client's
/// look alone gave median 1.075x. A `Server`'s dispatch thread does not look:
/// there it gained 3-4% (connect p50 278 against 290 µs, median of ten
/// launches each), too little for a loop that serves every connection.
pub(crate) const ANSWER_LOOK: Duration = Duration::from_micros(300);

/// Looks for `fd` to become readable for up to [`ANSWER_LOOK`] (never past
/// `deadline`), yielding the CPU between looks; true once it is. Unlike a
/// ring's spin (see the module comment) this look yields: it runs once per
/// handshake step, and the thread it waits for may share this CPU, where the
/// yield lets it work. False at once, without looking, when spinning is off
/// (`spin` zero, the options' spin), when `deadline` has passed, when this
/// thread is pinned to one CPU (the looks cost 2% of the connect rate there),
/// when the machine is crowded (the look would take a CPU that other threads
/// want), or while `looks` says such looks keep running out (a peer that
/// stalls its handshake must not have us burn a CPU on it until its deadline).
pub(crate) fn look_for_answer(
    fd: BorrowedFd<'_>,
    deadline: Instant,
    spin: Duration,
    looks: &SpinHistory,
) -> Result<bool> {
    let now = Instant::now();
    if spin.is_zero() || deadline <= now || !placement::may_run_elsewhere() || placement::crowded(now) {
        return Ok(false);
    }
    let Some(budget) = looks.budget(ANSWER_LOOK) else { return Ok(false) };
    let until = deadline.min(now + budget);
    loop {
        let now = Instant::now();
        if platform::wait_fd(fd, rustix::event::PollFlags::IN, Some(now))? {
            looks.found();
            return Ok(true);
        }
        if now >= until {
            looks.missed();
            return Ok(false);
        }
        std::thread::yield_now();
    }
}

/// The peer is connected, as far as this side knows.
const PEER_PRESENT: u8 = 0;
/// The peer's end of the control socket was seen closed.
const PEER_HUNG_UP: u8 = 1;
/// The peer wrote on its control socket after set-up; this side ended the connection.
const PEER_WROTE_CONTROL: u8 = 2;

/// Spin rounds between two readings of the clock.
const CLOCK_EVERY: u32 = 64;
/// How far the misses of recent spins may outweigh their finds before a
/// waiter stops spinning (a reactor's polls and a subscriber's waits too)...
const SPIN_GIVE_UP: u32 = 8;
/// ...a spin that finds nothing counting this many times as much as one that
/// finds the message, so spinning goes on while at least two waits in three
/// end in the spin...
const SPIN_MISS_WEIGHT: u32 = 2;
/// ...and how often it probes with a short spin after that...
const SPIN_RETRY_EVERY: u32 = 64;
/// ...of this length: a few round trips between two cores (a whole spin
/// budget every 64 sleeps would cost a peer that shares this core 0.8 µs a
/// wake-up: 50 µs / 64, about what the wake-up itself costs there).
const SPIN_PROBE: Duration = Duration::from_micros(3);
/// A waiter whose peer shares its CPU stays runnable this long (about one
/// scheduler tick, when an idle core's balancer looks for work)...
const PLACEMENT_PROBE: Duration = Duration::from_millis(4);
/// ...at most this often: at most 1.6% of a core while no core is free; each
/// probe that ends still sharing a core doubles the interval, up to
/// [`PLACEMENT_PROBE_MAX_EVERY`], so a machine with no idle core pays little.
pub const PLACEMENT_PROBE_EVERY: Duration = Duration::from_millis(250);
/// Longest interval between placement probes.
pub const PLACEMENT_PROBE_MAX_EVERY: Duration = Duration::from_secs(8);

/// How many times a waiter whose peer shares its CPU hands the CPU over to it
/// (`sched_yield`) and looks again before it sleeps (see [`Waiter::wait`]).
/// Between two processes on one core the peer, which this side's send has
/// just made runnable, then answers at once, and since this side did not set
/// its waiting flag, it writes no eventfd: no wake-up, no sleep, no drain.
pub const HAND_OVERS: u32 = 2;
/// A hand-over that kept the thread off its CPU longer than this gave the
/// core to some other task as well, which may keep it for a whole time slice:
/// hand-overs stop at once (until a probe finds them paying), since a sleeper
/// that the peer wakes gets the CPU back sooner.
pub const HAND_OVER_SLOW: Duration = Duration::from_micros(200);

/// When the last placement probe started and how long until the next may.
#[derive(Default)]
struct ProbeState {
    last: Option<Instant>,
    interval: Duration,
}

/// Whether spinning has paid off lately, and so how long to spin now. One per
/// waiting place: a connection's [`Waiter`], a
/// [`Reactor`](crate::reactor::Reactor), a subscriber, and each place where a
/// binding looks at a ring before it asks its event loop to wake it (Node's
/// and Python asyncio's receives and partly sent messages), so that every
/// spin of every language follows this one rule.
///
/// A spin that finds nothing burns its whole budget; one that finds the
/// message saves a sleep and a wake-up. So a miss weighs twice a find, and
/// spinning goes on while at least two spins in three find. One find does
/// not wipe out the misses before it: sixteen clients of one server each
/// found their reply in the spin now and then, so a history reset by every
/// find kept all of them spinning for most of the 70 µs they waited, on the
/// two CPUs the server needed (client p99 1.5 to 1.9× that of clients that
/// never spin, same aggregate).
///
/// ```
/// use std::time::{Duration, Instant};
/// use shmsock::wait::SpinHistory;
///
/// let spins = SpinHistory::default();
/// let arrived = || true; // a look at the ring that makes no system call
/// if let Some(budget) = spins.budget(Duration::from_micros(30)) {
///     let until = Instant::now() + budget;
///     loop {
///         if arrived() {
///             spins.found();
///             break;
///         }
///         if Instant::now() >= until {
///             spins.missed(); // then ask the event loop to wake this side
///             break;
///         }
///         std::hint::spin_loop();
///     }
/// }
/// ```
#[derive(Debug, Default)]
pub struct SpinHistory {
    /// Misses (weighted) less finds, at most [`SPIN_GIVE_UP`].
    score: AtomicU32,
    /// Waits that skipped spinning since the last probe.
    skipped: AtomicU32,
}

impl SpinHistory {
    /// A history in which spinning pays (as `default()`, usable in a `static`).
    pub const fn new() -> SpinHistory {
        SpinHistory { score: AtomicU32::new(0), skipped: AtomicU32::new(0) }
    }

    /// How long to spin now, given a full budget of `spin`: all of it while
    /// spinning pays, else nothing, but a short probe (3 µs) every 64th
    /// wait, since the peer may have moved to another core or sped up (a
    /// probe that finds the message resumes spinning).
    pub fn budget(&self, spin: Duration) -> Option<Duration> {
        if spin.is_zero() {
            return None;
        }
        if self.score.load(Ordering::Relaxed) < SPIN_GIVE_UP {
            return Some(spin);
        }
        let skipped = self.skipped.fetch_add(1, Ordering::Relaxed) + 1;
        if skipped < SPIN_RETRY_EVERY {
            return None;
        }
        self.skipped.store(0, Ordering::Relaxed);
        Some(spin.min(SPIN_PROBE))
    }

    /// The spin found what it waited for.
    pub fn found(&self) {
        let score = self.score.load(Ordering::Relaxed);
        self.score.store(score.saturating_sub(1), Ordering::Relaxed);
    }

    /// The spin ran out without finding it.
    pub fn missed(&self) {
        let score = self.score.load(Ordering::Relaxed);
        self.score.store((score + SPIN_MISS_WEIGHT).min(SPIN_GIVE_UP), Ordering::Relaxed);
    }

    /// The spin saw that it only takes turns with the peer: this thread lost
    /// its CPU while it spun (most likely to the peer, sharing its core), so
    /// what it found came from the two running in turn, not side by side.
    /// Spinning stops at once, as after enough misses, and resumes only when
    /// a probe finds the peer's work.
    pub fn give_up(&self) {
        self.score.store(SPIN_GIVE_UP, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct PollState {
    polling: bool,
    generation: u64,
}

/// The sleeping side of one connection.
pub struct Waiter {
    sleeper: platform::Sleeper,
    state: Mutex<PollState>,
    cond: Condvar,
    /// Why the connection is over from the peer's side, if it is (`PEER_*`).
    peer_gone: AtomicU8,
    spin: Duration,
    /// Whether spinning finds the peer's message (it does not when the peer is
    /// slow or shares our core, where spinning only delays it).
    spins: SpinHistory,
    /// Whether handing the CPU over to a peer on this CPU finds its answer.
    hand_overs: SpinHistory,
    /// When the last placement probe started (None: never).
    placement_probe: Mutex<ProbeState>,
}

/// What a waiter checks each round.
pub enum Check<T> {
    /// The condition holds; stop waiting with this value.
    Ready(T),
    /// Not yet.
    NotYet,
}

impl Waiter {
    /// A waiter that spins for `spin` before sleeping in `sleeper`.
    pub fn new(spin: Duration, sleeper: platform::Sleeper) -> Waiter {
        Waiter {
            sleeper,
            state: Mutex::new(PollState::default()),
            cond: Condvar::new(),
            peer_gone: AtomicU8::new(PEER_PRESENT),
            spin,
            spins: SpinHistory::default(),
            hand_overs: SpinHistory::default(),
            placement_probe: Mutex::new(ProbeState { last: None, interval: PLACEMENT_PROBE_EVERY }),
        }
    }

    /// How long to spin now ([`SpinHistory::budget`]); not at all while the
    /// machine is crowded.
    fn spin_budget(&self, now: Instant) -> Option<Duration> {
        self.spins.budget(self.spin).filter(|_| !placement::crowded(now))
    }

    /// With spinning given up: a longer spin when the peer last ran on this
    /// CPU, this thread may run on another, and no probe ran lately.
    fn placement_probe(&self, hints: Option<Hints<'_>>, now: Instant) -> Option<Duration> {
        let hints = hints?;
        if self.spin.is_zero() || !hints.peer_on(hints.publish()) || placement::crowded(now) {
            return None;
        }
        let mut probe = self.placement_probe.lock();
        if probe.last.is_some_and(|t| now.duration_since(t) < probe.interval) || !placement::may_run_elsewhere() {
            return None;
        }
        match probe.last {
            // Long ago: a new episode of sharing a core.
            Some(t) if now.duration_since(t) > 2 * PLACEMENT_PROBE_MAX_EVERY => probe.interval = PLACEMENT_PROBE_EVERY,
            // The previous probe did not keep the two apart: look less often.
            Some(_) => probe.interval = (probe.interval * 2).min(PLACEMENT_PROBE_MAX_EVERY),
            None => {}
        }
        probe.last = Some(now);
        Some(PLACEMENT_PROBE)
    }

    /// When the peer said it last ran on this thread's CPU (two processes on
    /// one core), where a spin only delays it: hands the CPU over to it
    /// ([`HAND_OVERS`] times at most) and looks after each, without setting
    /// the waiting flag. Not when spinning is off (`spin` zero), on a crowded
    /// machine, or while hand-overs keep finding nothing (the same rule as a
    /// spin's, [`SpinHistory`]); a hand-over slower than [`HAND_OVER_SLOW`]
    /// stops them at once. Measured on one core of a 2-vCPU EPYC
    /// (`shmsock-bench --one-core-only`): see the CHANGELOG.
    pub(crate) fn hand_over<T>(
        &self,
        hints: Hints<'_>,
        deadline: Option<Instant>,
        check: &mut impl FnMut(bool) -> Result<Check<T>>,
    ) -> Result<Option<T>> {
        let start = Instant::now();
        if self.spin.is_zero()
            || !hints.peer_on(hints.publish())
            || placement::crowded(start)
            || self.hand_overs.budget(self.spin).is_none()
        {
            return Ok(None);
        }
        for _ in 0..HAND_OVERS {
            std::thread::yield_now();
            let ready = check(false)?;
            let now = Instant::now();
            let slow = now.duration_since(start) > HAND_OVER_SLOW;
            if slow {
                self.hand_overs.give_up();
            }
            if let Check::Ready(v) = ready {
                if !slow {
                    self.hand_overs.found();
                }
                return Ok(Some(v));
            }
            if slow || deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
        }
        self.hand_overs.missed();
        Ok(None)
    }

    /// True once the peer's end of the control socket was seen closed, or the
    /// peer wrote there and this side ended the connection.
    pub fn peer_hung_up(&self) -> bool {
        self.peer_gone.load(Ordering::Acquire) != PEER_PRESENT
    }

    /// The pollable fd: the epoll set of the own eventfd and the control socket.
    pub fn pollable_fd(&self) -> BorrowedFd<'_> {
        self.sleeper.as_fd()
    }

    /// Consumes pending wake-ups without blocking (so the pollable fd does not
    /// stay readable for a wake-up already acted on), noting a hang-up of
    /// `socket`. Counts as a wake-up for the other waiting threads of this
    /// process. While another thread sleeps in the epoll set, nothing is
    /// drained: the wake-up may be that thread's, and it drains it itself when
    /// it wakes.
    pub fn drain(&self, socket: BorrowedFd<'_>) -> Result<()> {
        let mut state = self.state.lock();
        if state.polling {
            return Ok(());
        }
        let woken = self.sleeper.wait(Some(Duration::ZERO));
        if let Ok(woken) = woken {
            self.note_control(socket, woken);
        }
        state.generation += 1;
        self.cond.notify_all();
        woken.map(|_| ())
    }

    /// Makes the pollable fd readable again, for a wake-up a drain consumed
    /// that another direction still waits for.
    pub fn wake_self(&self) {
        self.sleeper.wake_self();
    }

    /// The descriptor [`wake_self`](Waiter::wake_self) signals: signalling it
    /// from elsewhere makes the pollable fd readable.
    pub fn own_wake(&self) -> BorrowedFd<'_> {
        self.sleeper.own_wake()
    }

    /// After the control socket was seen readable: note a hang-up, or end the
    /// connection of a peer that wrote there (nothing is written after set-up,
    /// PROTOCOL.md §9): shut down, its writes fail at once, so a flood costs
    /// the flooder its connection instead of costing this side a read per
    /// wake-up.
    fn note_control(&self, socket: BorrowedFd<'_>, woken: platform::Woken) {
        if !woken.control {
            return;
        }
        let gone = match platform::check_control(socket) {
            ControlAfterSetUp::Quiet => return,
            ControlAfterSetUp::Closed => PEER_HUNG_UP,
            ControlAfterSetUp::Written => {
                platform::shutdown(socket);
                PEER_WROTE_CONTROL
            }
        };
        let _ = self.peer_gone.compare_exchange(PEER_PRESENT, gone, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The error for a connection whose peer is gone (see [`peer_hung_up`](Waiter::peer_hung_up)).
    pub fn peer_gone_error(&self) -> Error {
        let why = match self.peer_gone.load(Ordering::Acquire) {
            PEER_WROTE_CONTROL => {
                "the peer wrote on its control socket after set-up (a protocol violation): the connection was ended"
            }
            _ => "the peer process exited or was killed without closing the connection",
        };
        Error::new(ErrorKind::PeerGone, why)
    }

    /// Waits until `check` is ready, the deadline passes (Timeout) or the peer
    /// hangs up with nothing left to deliver (PeerGone).
    ///
    /// `check(armed)` is called with `armed = false` while spinning; with
    /// `armed = true` it must set its waiting flag in the segment before looking,
    /// so that the peer wakes this side if it looks too early. `hints`: where
    /// the two sides run, if known (see [`placement`]).
    ///
    /// A deadline that has passed already makes it one armed look (no spin,
    /// no hand-over): event loops rely on it to leave the waiting flag set
    /// when nothing was there. To look without arming, use
    /// [`Stream::next_message_len`](crate::Stream::next_message_len).
    pub fn wait<T>(
        &self,
        socket: BorrowedFd<'_>,
        deadline: Option<Instant>,
        hints: Option<Hints<'_>>,
        mut check: impl FnMut(bool) -> Result<Check<T>>,
    ) -> Result<T> {
        if let Check::Ready(v) = check(false)? {
            return Ok(v);
        }
        // One reading of the clock for the spin's choices and its end.
        let now = Instant::now();
        // A deadline passed already: one armed look below, no spin, no hand-over.
        let expired = deadline.is_some_and(|d| now >= d);
        let spin = if expired { None } else { self.spin_budget(now).or_else(|| self.placement_probe(hints, now)) };
        if let Some(budget) = spin {
            let spin_until = now + budget;
            let mut rounds = 0u32;
            loop {
                std::hint::spin_loop();
                if let Check::Ready(v) = check(false)? {
                    self.spins.found();
                    return Ok(v);
                }
                rounds += 1;
                if rounds % CLOCK_EVERY == 0 {
                    let now = Instant::now();
                    if now >= spin_until || deadline.is_some_and(|d| now >= d) {
                        break;
                    }
                }
            }
            self.spins.missed();
        }
        if let Some(hints) = hints {
            if !expired {
                if let Some(v) = self.hand_over(hints, deadline, &mut check)? {
                    return Ok(v);
                }
            }
            hints.publish();
        }
        loop {
            let generation = self.state.lock().generation;
            // Read the hang-up before looking at the ring: what the peer wrote
            // before it died is still delivered.
            let hung_up = self.peer_hung_up();
            if let Check::Ready(v) = check(true)? {
                return Ok(v);
            }
            if hung_up {
                return Err(self.peer_gone_error());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::new(ErrorKind::Timeout, "timed out"));
            }
            let mut state = self.state.lock();
            if state.generation != generation {
                continue;
            }
            if state.polling {
                match deadline {
                    Some(d) => {
                        self.cond.wait_until(&mut state, d);
                    }
                    None => self.cond.wait(&mut state),
                }
                continue;
            }
            state.polling = true;
            drop(state);
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let waited = self.sleeper.wait(timeout);
            let mut state = self.state.lock();
            if let Ok(woken) = waited {
                self.note_control(socket, woken);
            }
            state.polling = false;
            state.generation += 1;
            self.cond.notify_all();
            drop(state);
            waited?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPIN: Duration = Duration::from_micros(50);

    #[test]
    fn spinning_goes_on_while_two_waits_in_three_end_in_the_spin() {
        let history = SpinHistory::default();
        for _ in 0..100 {
            assert_eq!(history.budget(SPIN), Some(SPIN));
            history.missed();
            history.found();
            history.found();
        }
    }

    #[test]
    fn one_find_among_misses_does_not_keep_a_waiter_spinning() {
        let history = SpinHistory::default();
        let mut full_spins = 0;
        for _ in 0..100 {
            if history.budget(SPIN) == Some(SPIN) {
                full_spins += 1;
                // One wait in two ends in the spin: not enough.
                if full_spins % 2 == 0 {
                    history.found();
                } else {
                    history.missed();
                }
            }
        }
        assert!(full_spins < 20, "{full_spins} full spins in 100 waits");
    }

    #[test]
    fn a_waiter_that_gave_up_probes_now_and_then_and_a_find_resumes_spinning() {
        let history = SpinHistory::default();
        for _ in 0..SPIN_GIVE_UP / SPIN_MISS_WEIGHT {
            assert_eq!(history.budget(SPIN), Some(SPIN));
            history.missed();
        }
        for _ in 1..SPIN_RETRY_EVERY {
            assert_eq!(history.budget(SPIN), None);
        }
        assert_eq!(history.budget(SPIN), Some(SPIN_PROBE));
        history.found();
        assert_eq!(history.budget(SPIN), Some(SPIN));
        assert_eq!(SpinHistory::default().budget(Duration::ZERO), None, "a zero spin never spins");
    }

    #[test]
    fn a_spin_that_only_took_turns_with_the_peer_stops_spinning_at_once() {
        let history = SpinHistory::default();
        history.found();
        history.give_up();
        for _ in 1..SPIN_RETRY_EVERY {
            assert_eq!(history.budget(SPIN), None);
        }
        assert_eq!(history.budget(SPIN), Some(SPIN_PROBE), "it still probes now and then");
        history.found();
        assert_eq!(history.budget(SPIN), Some(SPIN));
    }

    /// A handshake's look finds a record already there (when this thread may
    /// look at all), ends on silence, and stops looking once looks keep
    /// running out, as they would for a peer that stalls its handshakes.
    #[test]
    fn a_look_for_an_answer_finds_it_ends_by_its_deadline_and_gives_up_on_silence() {
        use std::io::Write;
        use std::os::fd::AsFd;
        let may_look = || placement::may_run_elsewhere() && !placement::crowded(Instant::now());
        let (mut client, server) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = server.as_fd();
        let looks = SpinHistory::new();
        let soon = || Instant::now() + Duration::from_millis(1);
        // Silence: false (at the deadline at the latest).
        for _ in 0..8 {
            assert!(!look_for_answer(fd, soon(), ANSWER_LOOK, &looks).unwrap());
        }
        if may_look() {
            // Eight misses in a row: the looks stopped (but for rare probes).
            assert!(looks.budget(ANSWER_LOOK).is_none_or(|b| b < ANSWER_LOOK));
        }
        let fresh = SpinHistory::new();
        client.write_all(b"x").unwrap();
        // Spinning off, or the window already past: no look, even at a record.
        assert!(!look_for_answer(fd, soon(), Duration::ZERO, &fresh).unwrap());
        assert!(!look_for_answer(fd, Instant::now(), ANSWER_LOOK, &fresh).unwrap());
        let found = look_for_answer(fd, soon(), ANSWER_LOOK, &fresh).unwrap();
        assert!(found || !may_look(), "a record already there was not found");
    }
}
