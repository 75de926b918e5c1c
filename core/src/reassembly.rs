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

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::platform;

/// How long a blocking receive waiting for room sleeps before it looks
/// whether its own stream was closed meanwhile.
const LOOK_AT_STREAM_EVERY: Duration = Duration::from_millis(100);

/// Bytes of messages being received, shared by the connections of one listener.
pub(crate) struct ReassemblyBudget {
    limit: u64,
    state: Mutex<State>,
    /// Signalled when room is given back, for blocking receives.
    room: Condvar,
}

struct State {
    used: u64,
    /// Non-blocking receives that found no room: each share's key and a
    /// duplicate of its stream's wake-up descriptor, signalled (and dropped)
    /// when room is given back.
    watching: Vec<(u64, OwnedFd)>,
}

impl ReassemblyBudget {
    pub(crate) fn new(limit: u64) -> Arc<ReassemblyBudget> {
        Arc::new(ReassemblyBudget {
            limit,
            state: Mutex::new(State { used: 0, watching: Vec::new() }),
            room: Condvar::new(),
        })
    }

    /// A share for one new connection.
    pub(crate) fn share(self: &Arc<Self>) -> Share {
        static NEXT_KEY: AtomicU64 = AtomicU64::new(0);
        Share { budget: Arc::clone(self), key: NEXT_KEY.fetch_add(1, Ordering::Relaxed), held: 0 }
    }

    /// Bytes reserved now.
    #[cfg(test)]
    fn used(&self) -> u64 {
        self.state.lock().used
    }

    fn fits(&self, state: &State, len: u64) -> bool {
        state.used == 0 || state.used.saturating_add(len) <= self.limit
    }
}

/// One connection's part of a [`ReassemblyBudget`]: what it holds for the
/// message it is receiving (0 between messages).
pub(crate) struct Share {
    budget: Arc<ReassemblyBudget>,
    key: u64,
    held: u64,
}

impl Share {
    /// Reserves `len` bytes for the message at the head of the ring, unless
    /// this share holds them already (a receive that returned before taking
    /// the message, say BufferTooSmall, comes back for the same one). False
    /// when there is no room; then, with `wake`, that descriptor is signalled
    /// once room is given back.
    pub(crate) fn reserve(&mut self, len: u32, wake: Option<BorrowedFd<'_>>) -> bool {
        if self.held != 0 {
            return true;
        }
        let len = u64::from(len);
        let mut state = self.budget.state.lock();
        if self.budget.fits(&state, len) {
            state.used += len;
            self.held = len;
            return true;
        }
        if let Some(wake) = wake {
            if !state.watching.iter().any(|(key, _)| *key == self.key) {
                // Without a descriptor to signal (out of descriptors), the
                // stream is still served when its peer writes or hangs up.
                if let Ok(fd) = wake.try_clone_to_owned() {
                    state.watching.push((self.key, fd));
                }
            }
        }
        false
    }

    /// Waits until `len` bytes are reserved (true), `deadline` passes (false)
    /// or `still_wanted` says to stop waiting (its error).
    pub(crate) fn wait_reserve(
        &mut self,
        len: u32,
        deadline: Option<Instant>,
        still_wanted: impl Fn() -> crate::Result<()>,
    ) -> crate::Result<bool> {
        loop {
            if self.reserve(len, None) {
                return Ok(true);
            }
            let now = Instant::now();
            let nap = match deadline {
                Some(d) if d <= now => return Ok(false),
                Some(d) => (d - now).min(LOOK_AT_STREAM_EVERY),
                None => LOOK_AT_STREAM_EVERY,
            };
            let mut state = self.budget.state.lock();
            if !self.budget.fits(&state, u64::from(len)) {
                self.budget.room.wait_for(&mut state, nap);
            }
            drop(state);
            still_wanted()?;
        }
    }

    /// Gives back what this share holds (its message was delivered).
    pub(crate) fn release(&mut self) {
        if self.held == 0 {
            return;
        }
        let watching = {
            let mut state = self.budget.state.lock();
            state.used -= self.held;
            std::mem::take(&mut state.watching)
        };
        self.held = 0;
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

    #[test]
    fn reservations_stay_within_the_limit_and_come_back() {
        let budget = ReassemblyBudget::new(100);
        let (mut a, mut b) = (budget.share(), budget.share());
        assert!(a.reserve(60, None));
        assert!(a.reserve(60, None), "a share asked again for its message holds it already");
        assert_eq!(budget.used(), 60);
        assert!(!b.reserve(50, None));
        assert!(b.reserve(40, None));
        assert_eq!(budget.used(), 100);
        a.release();
        b.release();
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn one_message_larger_than_the_budget_still_passes_alone() {
        let budget = ReassemblyBudget::new(10);
        let (mut a, mut b) = (budget.share(), budget.share());
        assert!(a.reserve(1000, None));
        assert!(!b.reserve(1, None));
        drop(a);
        assert_eq!(budget.used(), 0, "a dropped share gives its bytes back");
        assert!(b.reserve(1, None));
    }

    #[test]
    fn room_given_back_signals_the_watching_descriptors_once() {
        let budget = ReassemblyBudget::new(10);
        let (mut holder, mut watcher) = (budget.share(), budget.share());
        assert!(holder.reserve(10, None));
        let wake = platform::OwnWake::new().unwrap();
        assert!(!watcher.reserve(5, Some(wake.for_peer())));
        assert!(!watcher.reserve(5, Some(wake.for_peer())), "registered once");
        assert_eq!(budget.state.lock().watching.len(), 1);
        holder.release();
        assert!(budget.state.lock().watching.is_empty());
        let mut count = [0u8; 8];
        assert_eq!(rustix::io::read(wake.for_peer(), &mut count).unwrap(), 8);
        assert_eq!(u64::from_ne_bytes(count), 1);
        assert!(watcher.reserve(5, None));
    }

    #[test]
    fn a_blocking_wait_ends_at_its_deadline_or_when_room_comes_back() {
        let budget = ReassemblyBudget::new(10);
        let mut holder = budget.share();
        assert!(holder.reserve(10, None));
        let mut waiter = budget.share();
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(!waiter.wait_reserve(5, Some(soon), || Ok(())).unwrap());
        let stop = crate::Error::new(crate::ErrorKind::Closed, "closed");
        let e = waiter.wait_reserve(5, None, || Err(stop.clone())).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Closed);
        let giver = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            holder.release();
        });
        assert!(waiter.wait_reserve(5, None, || Ok(())).unwrap());
        giver.join().unwrap();
        assert_eq!(budget.used(), 5);
    }
}
