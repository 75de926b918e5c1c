//! `Reactor`: the core's reactor for C++, so one thread can drive many
//! streams, listeners, subscribers, foreign fds and timers.
//!
//! As in the C ABI: registering, deregistering and waking go through the
//! reactor's `Registry` and `Waker` and work from any thread, also while
//! another thread polls; polling and the timers take the reactor's lock.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use shmsock::{Error, ErrorKind, Event, Reactor, Registry, TimerId, Waker};

use crate::errors::{guard, BridgeResult, Timeout};
use crate::ffi::EventData;
use crate::listener::ListenerBox;
use crate::pubsub::SubscriberBox;
use crate::stream::StreamBox;

/// Event kinds as the C++ `Reactor::EventKind` numbers them.
const READABLE: u8 = 1;
const TIMER: u8 = 2;
const WOKEN: u8 = 3;

/// A reactor, shared by the C++ threads that register sources or wake it.
pub struct ReactorBox {
    reactor: Mutex<Reactor>,
    registry: Registry,
    waker: Waker,
    fd: i32,
}

/// A new reactor that spins up to `spin_ns` after traffic (0: never).
pub fn reactor_new(spin_ns: i64) -> BridgeResult<Box<ReactorBox>> {
    guard(|| {
        let spin = match Timeout::from_ns(spin_ns)? {
            Timeout::Limit(Some(spin)) => spin,
            _ => return Err(Error::new(ErrorKind::InvalidArgument, "the spin budget needs a value")),
        };
        if spin > shmsock::options::MAX_SPIN {
            return Err(Error::new(ErrorKind::InvalidArgument, "the spin budget must be at most 1 s"));
        }
        let reactor = Reactor::new(spin)?;
        let (registry, waker, fd) = (reactor.registry(), reactor.waker(), reactor.as_fd().as_raw_fd());
        Ok(Box::new(ReactorBox { reactor: Mutex::new(reactor), registry, waker, fd }))
    })
}

fn event_data(event: Event) -> EventData {
    match event {
        Event::Readable(token) => EventData { kind: READABLE, token },
        Event::Timer(token) => EventData { kind: TIMER, token },
        Event::Woken => EventData { kind: WOKEN, token: 0 },
    }
}

/// A caller's fd as a borrowed one, refusing what cannot be an fd.
fn foreign_fd(fd: i32) -> shmsock::Result<BorrowedFd<'static>> {
    if fd < 0 {
        return Err(Error::new(ErrorKind::InvalidArgument, format!("{fd} is not a file descriptor")));
    }
    // SAFETY: only used for the epoll_ctl call that follows (the epoll set
    // keeps no reference to the descriptor); a closed or foreign number makes
    // that call fail with EBADF, reported as an error, never undefined
    // behaviour. The 'static lifetime never escapes the calling function.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

impl ReactorBox {
    /// The reactor. A panic inside the core while polling (caught by the
    /// guard) leaves it usable: its state is a set of timers and counters.
    fn locked(&self) -> MutexGuard<'_, Reactor> {
        self.reactor.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Watches a stream's pollable fd.
    pub fn add_stream(&self, stream: &StreamBox, token: u64) -> BridgeResult<()> {
        guard(|| self.registry.register(stream.0.pollable_fd(), token))
    }

    /// Stops watching a stream.
    pub fn remove_stream(&self, stream: &StreamBox) -> BridgeResult<()> {
        guard(|| {
            self.registry.deregister(stream.0.pollable_fd());
            Ok(())
        })
    }

    /// Watches a listener (readable when `accept` with a zero timeout may make progress).
    pub fn add_listener(&self, listener: &ListenerBox, token: u64) -> BridgeResult<()> {
        guard(|| self.registry.register(listener.pollable_fd()?, token))
    }

    /// Stops watching a listener.
    pub fn remove_listener(&self, listener: &ListenerBox) -> BridgeResult<()> {
        guard(|| {
            self.registry.deregister(listener.pollable_fd()?);
            Ok(())
        })
    }

    /// Watches a subscriber's pollable fd.
    pub fn add_subscriber(&self, subscriber: &SubscriberBox, token: u64) -> BridgeResult<()> {
        guard(|| self.registry.register(subscriber.pollable_fd()?, token))
    }

    /// Stops watching a subscriber.
    pub fn remove_subscriber(&self, subscriber: &SubscriberBox) -> BridgeResult<()> {
        guard(|| {
            self.registry.deregister(subscriber.pollable_fd()?);
            Ok(())
        })
    }

    /// Watches any readable fd of the caller's.
    pub fn add_fd(&self, fd: i32, token: u64) -> BridgeResult<()> {
        guard(|| self.registry.register(foreign_fd(fd)?, token))
    }

    /// Stops watching a caller's fd.
    pub fn remove_fd(&self, fd: i32) -> BridgeResult<()> {
        guard(|| {
            self.registry.deregister(foreign_fd(fd)?);
            Ok(())
        })
    }

    /// A timer that reports `token` once `after_ns` passed; returns its id.
    pub fn add_timer(&self, after_ns: i64, token: u64) -> BridgeResult<u64> {
        guard(|| {
            let after = u64::try_from(after_ns)
                .map_err(|_| Error::new(ErrorKind::InvalidArgument, "a timer cannot be in the past"))?;
            let at = Instant::now()
                .checked_add(Duration::from_nanos(after))
                .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "a timer that far away cannot be represented"))?;
            Ok(self.locked().add_timer(at, token).0)
        })
    }

    /// Cancels a timer (nothing if it fired already).
    pub fn cancel_timer(&self, id: u64) -> BridgeResult<()> {
        guard(|| {
            self.locked().cancel_timer(TimerId(id));
            Ok(())
        })
    }

    /// Nanoseconds until the earliest timer, or -1 without one.
    pub fn next_timeout(&self) -> BridgeResult<i64> {
        guard(|| {
            Ok(self.locked().next_deadline().map_or(-1, |at| {
                let left = at.saturating_duration_since(Instant::now());
                i64::try_from(left.as_nanos()).unwrap_or(i64::MAX)
            }))
        })
    }

    /// Says traffic happened, so the next polls may spin.
    pub fn note_activity(&self) -> BridgeResult<()> {
        guard(|| {
            self.locked().note_activity();
            Ok(())
        })
    }

    /// Waits for events (up to `timeout_ns`; -1: no limit) into `events`.
    pub fn poll(&self, events: &mut Vec<EventData>, timeout_ns: i64) -> BridgeResult<()> {
        guard(|| {
            let timeout = match Timeout::from_ns(timeout_ns)? {
                Timeout::Limit(limit) => limit,
                Timeout::Default => return Err(Error::new(ErrorKind::InvalidArgument, "poll needs a timeout")),
            };
            let mut found = Vec::new();
            self.locked().poll(&mut found, timeout)?;
            events.clear();
            events.extend(found.into_iter().map(event_data));
            Ok(())
        })
    }

    /// Makes the current or next poll return with a Woken event.
    pub fn wake(&self) -> BridgeResult<()> {
        guard(|| {
            self.waker.wake();
            Ok(())
        })
    }

    /// The reactor's epoll fd (owned by the reactor).
    pub fn fd(&self) -> BridgeResult<i32> {
        guard(|| Ok(self.fd))
    }
}
