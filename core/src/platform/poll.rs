//! Waiting on epoll sets: a connection's [`Sleeper`] (its pollable fd), the
//! [`Poller`] of a set of descriptors, and a [`DeadlineTimer`] that makes a
//! deadline readable in such a set.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::process::os_error;
use super::wake::{wake_peer, OwnWake};
use crate::error::{Error, Result};

/// Waits on an epoll set for up to `timeout` (None: no limit; rounded up to
/// whole milliseconds, so a short wait does not become a spin) and returns the
/// tokens of the ready entries, in `events`. A signal is an empty result.
///
/// libc's epoll_wait rather than rustix's: rustix issues epoll_pwait without its
/// sigsetsize argument (unused with no mask), which valgrind reports as an
/// uninitialised system call parameter.
fn epoll_wait<'a>(
    epoll: BorrowedFd<'_>,
    events: &'a mut [libc::epoll_event],
    timeout: Option<std::time::Duration>,
) -> Result<impl Iterator<Item = u64> + 'a> {
    use std::os::fd::AsRawFd;
    let timeout_ms = match timeout {
        None => -1,
        Some(t) => i32::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
    };
    let capacity = i32::try_from(events.len()).unwrap_or(i32::MAX);
    // SAFETY: `events` is a writable array of at least `capacity` entries, the
    // count passed, and `epoll` is an open fd borrowed for the whole call.
    let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), capacity, timeout_ms) };
    let ready = match usize::try_from(n) {
        Ok(n) => n,
        Err(_) => {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io("waiting on an epoll set", err));
            }
            0
        }
    };
    // Read by value: the struct is packed on x86-64, so no reference to a field.
    Ok(events.iter().take(ready).map(|event| event.u64))
}

/// What a [`Sleeper`] saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Woken {
    /// The control socket is readable or hung up: call [`check_control`](super::check_control).
    pub control: bool,
}

/// Whether the own wake-up descriptor is watched edge-triggered: on Linux every
/// write to an eventfd signals its waiters, so each wake-up of the peer is one
/// event, reported once, and nothing needs to read the eventfd to reset it
/// (on one core that read cost about 0.6 µs of an 8.5 µs round trip). Its
/// counter then only grows, by 1 per wake-up: 2^64 is never reached by an
/// honest peer, and a peer that fills it only loses its own wake-ups. A pipe
/// (elsewhere) is watched level-triggered and drained.
const WAKE_EDGE: bool = cfg!(target_os = "linux");
const WAKE_TRIGGER: rustix::event::epoll::EventFlags =
    if WAKE_EDGE { rustix::event::epoll::EventFlags::ET } else { rustix::event::epoll::EventFlags::empty() };

/// Token of the own wake-up descriptor in a [`Sleeper`].
const SLEEP_WAKE: u64 = 0;
/// Token of the control socket in a [`Sleeper`].
const SLEEP_CONTROL: u64 = 1;

/// The connection's sleeping place: an epoll set holding this side's wake-up
/// descriptor and the control socket, so one wait ends on a wake-up from the
/// peer, a control record or the peer's death. Its fd is the connection's
/// pollable fd.
pub struct Sleeper {
    epoll: OwnedFd,
    own: OwnWake,
}

impl Sleeper {
    /// A sleeper on `own` and `control` (which must outlive it in the epoll set;
    /// the stream owns both).
    pub fn new(own: OwnWake, control: BorrowedFd<'_>) -> Result<Sleeper> {
        use rustix::event::epoll;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| os_error("creating an epoll set", e))?;
        epoll::add(&epoll, own.as_fd(), epoll::EventData::new_u64(SLEEP_WAKE), epoll::EventFlags::IN | WAKE_TRIGGER)
            .map_err(|e| os_error("adding the wake-up descriptor to an epoll set", e))?;
        epoll::add(&epoll, control, epoll::EventData::new_u64(SLEEP_CONTROL), epoll::EventFlags::IN)
            .map_err(|e| os_error("adding the control socket to an epoll set", e))?;
        Ok(Sleeper { epoll, own })
    }

    /// Waits until the peer wakes us, the control socket is readable or hung
    /// up, a signal arrives, or `timeout` passes (`Some(ZERO)`: just look), and
    /// consumes the wake-up (reporting the edge is enough on Linux; a pipe is
    /// drained), so the epoll fd is not readable for it any more. The caller
    /// re-checks what it waits for and its deadline, so a signal or timeout is
    /// just an empty [`Woken`].
    pub fn wait(&self, timeout: Option<std::time::Duration>) -> Result<Woken> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 2];
        let mut woken = Woken::default();
        for token in epoll_wait(self.epoll.as_fd(), &mut events, timeout)? {
            match token {
                SLEEP_WAKE if !WAKE_EDGE => self.own.drain(),
                SLEEP_WAKE => {}
                _ => woken.control = true,
            }
        }
        Ok(woken)
    }

    /// The epoll fd: readable when a wait would end at once.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    /// Signals the own wake-up descriptor, as the peer does: the epoll fd
    /// becomes readable again (for a wake-up a drain consumed on behalf of
    /// another direction).
    pub fn wake_self(&self) {
        wake_peer(self.own.for_peer());
    }

    /// The descriptor [`wake_self`](Sleeper::wake_self) signals, for a waker
    /// outside the stream (the budget of large messages being received).
    pub fn own_wake(&self) -> BorrowedFd<'_> {
        self.own.for_peer()
    }
}

/// An epoll set of file descriptors, each with a token, watched for
/// readability: one fd that an outer event loop can watch for all of them.
pub struct PollSet {
    epoll: OwnedFd,
}

impl PollSet {
    /// A new, empty set.
    pub fn new() -> Result<PollSet> {
        use rustix::event::epoll;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| os_error("creating an epoll set", e))?;
        Ok(PollSet { epoll })
    }

    /// Watches `fd` for readability, reporting `token`.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> Result<()> {
        use rustix::event::epoll;
        epoll::add(&self.epoll, fd, epoll::EventData::new_u64(token), epoll::EventFlags::IN)
            .map_err(|e| os_error("adding to an epoll set", e))
    }

    /// Stops watching `fd`.
    pub fn remove(&self, fd: BorrowedFd<'_>) {
        let _ = rustix::event::epoll::delete(&self.epoll, fd);
    }

    /// The epoll fd: readable while a watched fd is.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

/// A [`PollSet`] plus a wake-up of its own (an eventfd) so another thread can
/// interrupt a wait.
pub struct Poller {
    set: PollSet,
    wake: OwnedFd,
}

/// The token a [`Poller`] reports for its own wake-up.
pub const WAKE_TOKEN: u64 = u64::MAX;

impl Poller {
    /// A new, empty poller.
    pub fn new() -> Result<Poller> {
        use rustix::event::{eventfd, EventfdFlags};
        let set = PollSet::new()?;
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| os_error("creating an eventfd", e))?;
        let poller = Poller { set, wake };
        poller.add(poller.wake.as_fd(), WAKE_TOKEN)?;
        Ok(poller)
    }

    /// Watches `fd` for readability, reporting `token`.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> Result<()> {
        self.set.add(fd, token)
    }

    /// Stops watching `fd`.
    pub fn remove(&self, fd: BorrowedFd<'_>) {
        self.set.remove(fd)
    }

    /// Waits until a watched fd is readable or `notify` was called, up to
    /// `timeout` (None: no limit), and puts the ready tokens in `tokens`. The
    /// wake-up is reported as [`WAKE_TOKEN`] and reset.
    pub fn wait(&self, tokens: &mut Vec<u64>, timeout: Option<std::time::Duration>) -> Result<()> {
        tokens.clear();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        for token in epoll_wait(self.set.as_fd(), &mut events, timeout)? {
            if token == WAKE_TOKEN {
                let mut buf = [0u8; 8];
                let _ = rustix::io::read(&self.wake, &mut buf);
            }
            tokens.push(token);
        }
        Ok(())
    }

    /// The epoll fd itself: readable when `wait` would report something, so an
    /// outer event loop (libuv, asyncio) can watch a whole set at once.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.set.as_fd()
    }

    /// Wakes a thread blocked in `wait`.
    pub fn notify(&self) {
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }
}

/// A timerfd armed for one deadline at a time: readable once the deadline
/// passed, until [`clear`](DeadlineTimer::clear). Put in an epoll set, it lets
/// an event loop that watches only that set's fd learn about deadlines too.
pub struct DeadlineTimer {
    fd: OwnedFd,
    /// The deadline the timer is armed for, so that re-arming for the same one
    /// costs no system call.
    armed: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl DeadlineTimer {
    /// A new, disarmed timer.
    pub fn new() -> Result<DeadlineTimer> {
        use rustix::time::{timerfd_create, TimerfdClockId, TimerfdFlags};
        let fd = timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK)
            .map_err(|e| os_error("creating a timerfd", e))?;
        Ok(DeadlineTimer { fd, armed: parking_lot::Mutex::new(None) })
    }

    /// Arms the timer for `deadline` (None disarms it). A deadline already
    /// passed makes the timer readable at once.
    pub fn set(&self, deadline: Option<std::time::Instant>) {
        use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags, Timespec};
        let mut armed = self.armed.lock();
        if *armed == deadline {
            return;
        }
        let value = match deadline {
            // A zero value disarms: a deadline already passed fires in 1 ns.
            Some(at) => at.saturating_duration_since(std::time::Instant::now()).max(std::time::Duration::from_nanos(1)),
            None => std::time::Duration::ZERO,
        };
        let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
        let spec = Itimerspec {
            it_interval: zero,
            it_value: Timespec { tv_sec: value.as_secs() as i64, tv_nsec: value.subsec_nanos() as _ },
        };
        // Relative to now, on the monotonic clock that `Instant` reads. A
        // failure (impossible with these arguments) leaves the old setting:
        // callers re-check deadlines whenever they are called anyway.
        if timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &spec).is_ok() {
            *armed = deadline;
        }
    }

    /// Makes the timer unreadable again after it fired (it stays armed for
    /// nothing until the next [`set`](DeadlineTimer::set)).
    pub fn clear(&self) {
        let mut expirations = [0u8; 8];
        if rustix::io::read(&self.fd, &mut expirations).is_ok() {
            *self.armed.lock() = None;
        }
    }

    /// The timerfd, to add to an epoll set.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Waits on an epoll set (see `epoll_wait` above) and returns the tokens of the
/// ready entries.
pub fn epoll_wait_tokens<'a>(
    epoll: BorrowedFd<'_>,
    events: &'a mut [libc::epoll_event],
    timeout: Option<std::time::Duration>,
) -> Result<impl Iterator<Item = u64> + 'a> {
    epoll_wait(epoll, events, timeout)
}
