//! Reaching a server's control socket without waiting: the first step of the
//! non-blocking client handshakes ([`Connecting`](crate::connecting::Connecting)
//! and [`Subscribing`](crate::pubsub::Subscribing)).
//!
//! An attempt connects the socket at once. When the server is not there yet
//! and [`Options::connect_wait`] asks to wait for it, the attempt is made
//! again whenever the runtime directory changes (the inotify watch of
//! [`connect_wait`]) and after a backoff of 1 to 64 ms, until the wait ends
//! (then NotFound). A server whose queue of waiting connections is full is
//! tried again after 1 to 8 ms (nothing says when it has room) until the later
//! of the wait and the handshake timeout (then Timeout, saying it is busy).
//! Without a wait, a missing server is NotFound at once.
//!
//! A client that has to wait gets a [`WaitSet`]: an epoll set of the watch,
//! a timer for the next attempt and, once connected, the control socket (the
//! timer then counts down the handshake), so the caller watches one fd for
//! the whole handshake.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::connect_wait::{self, Watch, FIRST_PAUSE, MAX_PAUSE};
use crate::endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::platform::{DeadlineTimer, PollSet};

/// Longest pause between two attempts on a server whose queue of waiting
/// connections is full.
const MAX_BUSY_PAUSE: Duration = Duration::from_millis(8);

/// What an attempt to reach the server achieved.
pub(crate) enum Reached {
    /// The control socket is connected. `waiting`: the set of a client that
    /// had to wait, holding the socket now, its timer armed for `deadline`.
    Connected { control: UnixStream, waiting: Option<WaitSet>, deadline: Instant },
    /// Not yet: watch [`Reaching::fd`], and try again when it is readable or
    /// at [`Reaching::deadline`].
    Pending(Reaching),
}

/// A client waiting for its server (see the module documentation).
pub(crate) struct Reaching {
    /// Until when a missing server is looked for again (None: it is not).
    wait_until: Option<Instant>,
    /// Until when a server with a full queue is tried again.
    busy_until: Instant,
    /// When the next attempt gives up (one of the two above).
    until: Instant,
    /// The next pause between two attempts.
    pause: Duration,
    /// The runtime directory, once the server was missing.
    watch: Option<Watch>,
    waiting: WaitSet,
}

/// The fd of a client that waited for its server: an epoll set of a timer,
/// the watch of the runtime directory while the server is missing, and the
/// control socket once connected.
pub(crate) struct WaitSet {
    set: PollSet,
    timer: DeadlineTimer,
}

impl WaitSet {
    fn new() -> Result<WaitSet> {
        let set = PollSet::new()?;
        let timer = DeadlineTimer::new()?;
        set.add(timer.as_fd(), 0)?;
        Ok(WaitSet { set, timer })
    }

    /// The one fd to watch.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.set.as_fd()
    }
}

/// Connects the control socket of endpoint `name` without waiting, or starts
/// waiting for its server as `options.connect_wait` says.
pub(crate) fn start(name: &str, options: &Options) -> Result<Reached> {
    let now = Instant::now();
    let handshake_deadline = now + options.handshake_timeout;
    let err = match endpoint::connect_now(name) {
        Ok(control) => return Ok(Reached::Connected { control, waiting: None, deadline: handshake_deadline }),
        Err(err) => err,
    };
    // Options::validate bounds the wait to a day, which an Instant holds.
    let wait_until = Some(options.connect_wait).filter(|w| !w.is_zero()).and_then(|w| now.checked_add(w));
    if wait_until.is_none() && err.kind() != ErrorKind::WouldBlock {
        return Err(err);
    }
    let reaching = Reaching {
        wait_until,
        // As the blocking connect: a busy server is waited for until the
        // later deadline.
        busy_until: wait_until.map_or(handshake_deadline, |w| w.max(handshake_deadline)),
        until: handshake_deadline,
        pause: FIRST_PAUSE,
        watch: None,
        waiting: WaitSet::new()?,
    };
    reaching.retry_later(name, err)
}

impl Reaching {
    /// Readable when the next attempt is due (or may succeed).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.waiting.fd()
    }

    /// When the client gives up at the latest.
    pub(crate) fn deadline(&self) -> Instant {
        self.until
    }

    /// Tries to reach the server again; once connected, the socket joins the
    /// wait set and its timer counts down `options.handshake_timeout`.
    pub(crate) fn retry(self, name: &str, options: &Options) -> Result<Reached> {
        self.waiting.timer.clear();
        if let Some(watch) = &self.watch {
            watch.drain();
        }
        let control = match endpoint::connect_now(name) {
            Ok(control) => control,
            Err(e) => return self.retry_later(name, e),
        };
        // Dropping the watch takes it out of the set.
        let Reaching { waiting, .. } = self;
        let deadline = Instant::now() + options.handshake_timeout;
        waiting.set.add(control.as_fd(), 2)?;
        waiting.timer.set(Some(deadline));
        Ok(Reached::Connected { control, waiting: Some(waiting), deadline })
    }

    /// Until when an attempt that failed with `kind` is tried again, and the
    /// longest pause between attempts; None when it is not tried again.
    fn retried(&self, kind: ErrorKind) -> Option<(Instant, Duration)> {
        match kind {
            ErrorKind::WouldBlock => Some((self.busy_until, MAX_BUSY_PAUSE)),
            kind if connect_wait::is_retried(kind) => self.wait_until.map(|until| (until, MAX_PAUSE)),
            _ => None,
        }
    }

    /// After an attempt failed with `err`: this client, to try again after a
    /// pause (or once the runtime directory changes), or the error when it
    /// may not.
    fn retry_later(mut self, name: &str, err: Error) -> Result<Reached> {
        let Some((until, max_pause)) = self.retried(err.kind()) else { return Err(err) };
        let now = Instant::now();
        if now >= until {
            return Err(match err.kind() {
                ErrorKind::WouldBlock => Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the server of '{name}' is busy: it did not take this connection in time (its queue of \
                         waiting connections stayed full)"
                    ),
                ),
                _ => err,
            });
        }
        if err.kind() != ErrorKind::WouldBlock && self.watch.is_none() {
            // Made after a failed attempt, so a socket that appears from now
            // on makes the fd readable. Without one, the backoff alone paces
            // the attempts.
            self.watch = Watch::new();
            if let Some(fd) = self.watch.as_ref().and_then(Watch::fd) {
                self.waiting.set.add(fd, 1)?;
            }
        }
        self.waiting.timer.set(Some((now + self.pause).min(until)));
        self.pause = (self.pause * 2).min(max_pause);
        self.until = until;
        Ok(Reached::Pending(self))
    }
}
