//! `Reactor`: one thread's wait over many streams, listeners, handshakes and timers.
//!
//! A reactor is an epoll set of sources, each registered with a caller-chosen
//! [`Token`], plus deadline timers and a cross-thread [`Waker`]. [`Reactor::poll`]
//! fills a list of [`Event`]s: the tokens whose source is readable, the timers
//! that expired, and whether a waker fired. Sources are level-triggered: a
//! stream's pollable fd stays readable until a `try_` call said WouldBlock (which
//! re-arms it), so an event not acted on is reported again.
//!
//! Spinning: after traffic (the caller says so with [`Reactor::note_activity`]),
//! `poll` looks without sleeping for up to the spin budget before it sleeps,
//! which saves the wake-up latency when the peers run on other cores. As in
//! [`wait`](crate::wait), spinning stops by itself when it keeps finding nothing
//! (peers on this core, or idle), and is tried again now and then; an idle
//! reactor sleeps in one `epoll_wait` and costs no CPU.
//!
//! The reactor's own fd ([`Reactor::as_fd`]) is readable whenever `poll` would
//! report something other than a timer, so a foreign event loop (libuv, asyncio,
//! a C program's epoll) can watch it and call `poll` with a zero timeout; it
//! asks [`Reactor::next_deadline`] for its own timer.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::epoll;

use crate::error::Result;
use crate::platform::os_error;
use crate::wait::SpinHistory;

/// A caller-chosen number naming a source or a timer in its events.
pub type Token = u64;

/// The token the reactor uses for its waker in the epoll set; callers may not use it.
const WAKER_TOKEN: Token = u64::MAX;
/// Events taken from the kernel per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;
/// Spinning is worth it only shortly after traffic.
const RECENT: Duration = Duration::from_millis(1);

/// Something that happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The source registered with this token is readable (or hung up).
    Readable(Token),
    /// The timer added with this token expired (it is removed).
    Timer(Token),
    /// A [`Waker`] of this reactor was called since the last poll.
    Woken,
}

/// Names a timer so it can be cancelled: a number unique within its reactor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub u64);

/// Registers and deregisters sources of a reactor from any thread (the
/// polling thread may be blocked in `poll` meanwhile). Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    epoll: Arc<OwnedFd>,
}

impl Registry {
    /// Watches `fd` (a stream's or listener's fd, a handshake's socket, any
    /// readable fd) for readability, reporting `token` (any value but
    /// `u64::MAX`). The fd must stay open until deregistered.
    pub fn register(&self, fd: BorrowedFd<'_>, token: Token) -> Result<()> {
        if token == WAKER_TOKEN {
            return Err(crate::Error::new(crate::ErrorKind::InvalidArgument, "token u64::MAX is reserved"));
        }
        epoll::add(&*self.epoll, fd, epoll::EventData::new_u64(token), epoll::EventFlags::IN)
            .map_err(|e| os_error("adding to an epoll set", e))
    }

    /// Stops watching `fd` (nothing happens if it was not watched).
    pub fn deregister(&self, fd: BorrowedFd<'_>) {
        let _ = epoll::delete(&*self.epoll, fd);
    }
}

/// Wakes a reactor from any thread. Cheap to clone.
#[derive(Clone)]
pub struct Waker {
    eventfd: Arc<OwnedFd>,
}

impl Waker {
    /// Makes the reactor's current or next `poll` return with [`Event::Woken`].
    pub fn wake(&self) {
        let _ = rustix::io::write(&*self.eventfd, &1u64.to_ne_bytes());
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waker")
    }
}

/// An event loop's wait over many sources. See the module documentation.
pub struct Reactor {
    registry: Registry,
    waker: Waker,
    /// Timers by (deadline, id), and each id's deadline (to cancel by id).
    timers: BTreeMap<(Instant, u64), Token>,
    deadlines: HashMap<u64, Instant>,
    next_timer: u64,
    spin: Duration,
    last_activity: Option<Instant>,
    spins: SpinHistory,
    buffer: Vec<libc::epoll_event>,
}

impl Reactor {
    /// An empty reactor that spins up to `spin` after traffic (zero: never).
    pub fn new(spin: Duration) -> Result<Reactor> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| os_error("creating an epoll set", e))?;
        let eventfd =
            rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK)
                .map_err(|e| os_error("creating an eventfd", e))?;
        let reactor = Reactor {
            registry: Registry { epoll: Arc::new(epoll) },
            waker: Waker { eventfd: Arc::new(eventfd) },
            timers: BTreeMap::new(),
            deadlines: HashMap::new(),
            next_timer: 0,
            spin,
            last_activity: None,
            spins: SpinHistory::default(),
            buffer: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT],
        };
        epoll::add(
            &*reactor.registry.epoll,
            reactor.waker.eventfd.as_fd(),
            epoll::EventData::new_u64(WAKER_TOKEN),
            epoll::EventFlags::IN,
        )
        .map_err(|e| os_error("adding the waker to an epoll set", e))?;
        Ok(reactor)
    }

    /// Watches `fd` (a stream's or listener's fd, a handshake's socket, any
    /// readable fd) for readability, reporting `token`. The fd must stay open
    /// until [`deregister`](Reactor::deregister)ed. Thread-safe: another thread
    /// may register while this one polls.
    pub fn register(&self, fd: BorrowedFd<'_>, token: Token) -> Result<()> {
        self.registry.register(fd, token)
    }

    /// Stops watching `fd`.
    pub fn deregister(&self, fd: BorrowedFd<'_>) {
        self.registry.deregister(fd)
    }

    /// A handle to register and deregister sources from other threads.
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// A handle that wakes this reactor from any thread.
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Adds a timer that reports `Event::Timer(token)` once `at` has passed.
    pub fn add_timer(&mut self, at: Instant, token: Token) -> TimerId {
        self.next_timer += 1;
        self.timers.insert((at, self.next_timer), token);
        self.deadlines.insert(self.next_timer, at);
        TimerId(self.next_timer)
    }

    /// Cancels a timer (nothing happens if it already fired or never existed).
    pub fn cancel_timer(&mut self, id: TimerId) {
        if let Some(at) = self.deadlines.remove(&id.0) {
            self.timers.remove(&(at, id.0));
        }
    }

    /// The earliest timer's deadline (for a foreign loop that watches [`as_fd`](Reactor::as_fd)).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    /// Says that a source had traffic, so spinning may pay in the next polls.
    pub fn note_activity(&mut self) {
        self.last_activity = Some(Instant::now());
    }

    /// The epoll fd: readable when `poll` has a source or waker event to report.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.registry.epoll.as_fd()
    }

    /// Waits until something happens or `timeout` passes (None: no limit;
    /// zero: just look) and puts what happened in `events` (cleared first).
    pub fn poll(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> Result<()> {
        events.clear();
        let start = Instant::now();
        let until = timeout.and_then(|t| start.checked_add(t));
        self.expire_timers(start, events);
        let spin = if events.is_empty() && timeout != Some(Duration::ZERO) { self.spin_budget(start) } else { None };
        if let Some(budget) = spin {
            let spin_until = until.map_or(start + budget, |u| u.min(start + budget));
            loop {
                self.wait_kernel(events, Some(Duration::ZERO))?;
                if !events.is_empty() {
                    self.spins.found();
                    return Ok(());
                }
                std::hint::spin_loop();
                if Instant::now() >= spin_until {
                    break;
                }
            }
            self.spins.missed();
        }
        if events.is_empty() {
            let wait = match (until, self.next_deadline()) {
                (Some(u), Some(d)) => Some(u.min(d)),
                (u, d) => u.or(d),
            }
            .map(|d| d.saturating_duration_since(Instant::now()));
            self.wait_kernel(events, if events.is_empty() { wait } else { Some(Duration::ZERO) })?;
            self.expire_timers(Instant::now(), events);
        }
        Ok(())
    }

    /// How long to spin now, if at all.
    fn spin_budget(&mut self, now: Instant) -> Option<Duration> {
        let recent = self.last_activity.is_some_and(|t| now.duration_since(t) < RECENT);
        // Crowded: spinning would take a CPU from the peers it waits for.
        if self.spin.is_zero() || !recent || crate::placement::crowded(now) {
            return None;
        }
        self.spins.budget(self.spin)
    }

    fn expire_timers(&mut self, now: Instant, events: &mut Vec<Event>) {
        while let Some(entry) = self.timers.first_entry() {
            let (at, id) = *entry.key();
            if at > now {
                break;
            }
            events.push(Event::Timer(entry.remove()));
            self.deadlines.remove(&id);
        }
    }

    fn wait_kernel(&mut self, events: &mut Vec<Event>, timeout: Option<Duration>) -> Result<()> {
        let tokens = crate::platform::epoll_wait_tokens(self.registry.epoll.as_fd(), &mut self.buffer, timeout)?;
        let mut woken = false;
        for token in tokens {
            if token == WAKER_TOKEN {
                woken = true;
            } else {
                events.push(Event::Readable(token));
            }
        }
        if woken {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(&*self.waker.eventfd, &mut buf);
            events.push(Event::Woken);
        }
        Ok(())
    }
}

impl AsFd for Reactor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.registry.epoll.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn readiness_timers_and_wakes() {
        let mut reactor = Reactor::new(Duration::from_micros(20)).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        reactor.register(a.as_fd(), 7).unwrap();
        assert!(reactor.register(a.as_fd(), WAKER_TOKEN).is_err());
        let mut events = Vec::new();
        reactor.poll(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(events.is_empty());
        b.write_all(b"x").unwrap();
        reactor.poll(&mut events, None).unwrap();
        assert_eq!(events, vec![Event::Readable(7)]);
        // Level-triggered: still readable.
        reactor.poll(&mut events, Some(Duration::ZERO)).unwrap();
        assert_eq!(events, vec![Event::Readable(7)]);
        reactor.deregister(a.as_fd());
        reactor.poll(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(events.is_empty());

        let now = Instant::now();
        let cancelled = reactor.add_timer(now, 1);
        reactor.add_timer(now + Duration::from_millis(5), 2);
        reactor.cancel_timer(cancelled);
        assert_eq!(reactor.next_deadline(), Some(now + Duration::from_millis(5)));
        reactor.poll(&mut events, None).unwrap();
        assert_eq!(events, vec![Event::Timer(2)]);
        assert_eq!(reactor.next_deadline(), None);

        let waker = reactor.waker();
        std::thread::spawn(move || waker.wake()).join().unwrap();
        reactor.note_activity();
        reactor.poll(&mut events, None).unwrap();
        assert_eq!(events, vec![Event::Woken]);
        reactor.poll(&mut events, Some(Duration::from_millis(1))).unwrap();
        assert!(events.is_empty());
    }
}
