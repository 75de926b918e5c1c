//! Waiting for a ring: a short bounded spin, then sleep on the connection's
//! control socket until the peer writes a wake-up byte or goes away.
//!
//! The wake protocol (PROTOCOL.md, "Waking and liveness"): before sleeping, a side
//! sets its waiting flag in the segment and checks the ring again; after
//! publishing, the other side checks that flag and, only if it is set, clears it
//! and writes one byte on the control socket. So the hot path makes no system
//! call, and a sleeping side wakes from the kernel when data, space, a close or
//! the peer's death (end of stream on the socket) arrives.
//!
//! Several threads of one process may wait on the same connection (one sending,
//! one receiving). Only one of them polls the socket at a time; the others wait
//! on a condition variable, and every drain of the socket bumps a generation
//! counter so that no thread sleeps through a wake-up another thread consumed.
//!
//! An event loop that watches the pollable fd itself (after `try_recv` said
//! WouldBlock) must not share a stream with a thread blocked in `send` or `recv`
//! on it: that thread drains the wake-up bytes the event loop waits for. Event
//! loops use the `try_` calls for both directions.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rustix::event::PollFlags;

use crate::error::{Error, ErrorKind, Result};
use crate::platform;

/// How often a spinning waiter gives its core away, so two processes sharing one
/// core still make progress.
const YIELD_EVERY: u32 = 32;

#[derive(Default)]
struct PollState {
    polling: bool,
    generation: u64,
}

/// The sleeping side of one connection.
pub struct Waiter {
    state: Mutex<PollState>,
    cond: Condvar,
    peer_hung_up: AtomicBool,
    spin: Duration,
}

/// What a waiter checks each round.
pub enum Check<T> {
    /// The condition holds; stop waiting with this value.
    Ready(T),
    /// Not yet.
    NotYet,
}

impl Waiter {
    /// A waiter that spins for `spin` before sleeping.
    pub fn new(spin: Duration) -> Waiter {
        Waiter { state: Mutex::new(PollState::default()), cond: Condvar::new(), peer_hung_up: AtomicBool::new(false), spin }
    }

    /// True once the peer's end of the control socket was seen closed.
    pub fn peer_hung_up(&self) -> bool {
        self.peer_hung_up.load(Ordering::Acquire)
    }

    /// Reads pending wake-ups without blocking (so the socket does not stay
    /// readable for a wake-up already acted on), noting a hang-up.
    /// Counts as a wake-up for the other waiting threads of this process. While
    /// another thread sleeps in `poll` on the socket, nothing is drained: the
    /// bytes may be that thread's wake-up, and it drains them itself when it
    /// wakes.
    pub fn drain(&self, socket: BorrowedFd<'_>) {
        let mut state = self.state.lock();
        if state.polling {
            return;
        }
        self.drain_socket(socket);
        state.generation += 1;
        self.cond.notify_all();
    }

    fn drain_socket(&self, socket: BorrowedFd<'_>) {
        if platform::drain_wakes(socket) {
            self.peer_hung_up.store(true, Ordering::Release);
        }
    }

    /// Waits until `check` is ready, the deadline passes (Timeout) or the peer
    /// hangs up with nothing left to deliver (PeerGone).
    ///
    /// `check(armed)` is called with `armed = false` while spinning; with
    /// `armed = true` it must set its waiting flag in the segment before looking,
    /// so that the peer wakes this side if it looks too early.
    pub fn wait<T>(&self, socket: BorrowedFd<'_>, deadline: Option<Instant>, mut check: impl FnMut(bool) -> Result<Check<T>>) -> Result<T> {
        let spin_until = Instant::now() + self.spin;
        let mut rounds = 0u32;
        loop {
            if let Check::Ready(v) = check(false)? {
                return Ok(v);
            }
            rounds += 1;
            if rounds % YIELD_EVERY == 0 {
                let now = Instant::now();
                if now >= spin_until || deadline.is_some_and(|d| now >= d) {
                    break;
                }
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
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
                return Err(Error::new(
                    ErrorKind::PeerGone,
                    "the peer process exited or was killed without closing the connection",
                ));
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
            let waited = platform::wait_fd(socket, PollFlags::IN, deadline);
            let mut state = self.state.lock();
            self.drain_socket(socket);
            state.polling = false;
            state.generation += 1;
            self.cond.notify_all();
            drop(state);
            waited?;
        }
    }
}
