//! Connecting with a wait ([`Options::connect_wait`]): the first step of every
//! client-side connect (streams, clients, subscribers), which reaches the
//! endpoint's control socket and, when asked, waits for its server to appear.
//!
//! A client started together with its server would otherwise fail with
//! NotFound. Under a wait, NotFound (no socket file yet, or a dead server's
//! file that refuses) is retried until the deadline, and a busy server (its
//! listen backlog full) is waited for in the kernel until the deadline too.
//! Between attempts the client sleeps on an inotify watch of the runtime
//! directory (a server renames its socket into place, so the watch fires the
//! moment it can be reached), bounded by a short backoff in case the watch
//! cannot be made or misses; no attempt loop spins.
//! [`Connecting`](crate::connecting::Connecting) waits the same way without
//! blocking: an event loop watches the same inotify watch and a timer for the
//! backoff.

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::endpoint;
use crate::error::{ErrorKind, Result};
use crate::options::Options;

/// First pause between two attempts; it doubles up to [`MAX_PAUSE`].
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// Longest pause between two attempts (the watch usually ends it earlier).
pub(crate) const MAX_PAUSE: Duration = Duration::from_millis(64);

/// True for the errors a connect under [`Options::connect_wait`] retries until
/// its deadline: NotFound, i.e. no server listens on the name yet. Anything
/// else (a wrong key, a rejection, a handshake timeout) is returned at once.
/// Bindings that wait in slices (to look at signals between them) ask this.
pub fn is_retried(kind: ErrorKind) -> bool {
    kind == ErrorKind::NotFound
}

/// Connects the control socket of `name`, waiting as `options.connect_wait`
/// says, and returns it with the deadline of the handshake that follows:
/// `options.handshake_timeout` after the attempt started (or after the socket
/// connected, when a busy server kept it waiting past that).
pub(crate) fn control_socket(name: &str, options: &Options) -> Result<(UnixStream, Instant)> {
    // Options::validate bounds the wait to a day, which an Instant holds.
    let wait_deadline = Some(options.connect_wait).filter(|w| !w.is_zero()).and_then(|w| Instant::now().checked_add(w));
    let mut watch: Option<Watch> = None;
    let mut pause = FIRST_PAUSE;
    loop {
        let started = Instant::now();
        let handshake_deadline = started + options.handshake_timeout;
        // A busy server's backlog is waited for until the later deadline.
        let socket_deadline = wait_deadline.map_or(handshake_deadline, |wait| wait.max(handshake_deadline));
        let err = match endpoint::connect_until(name, Some(socket_deadline)) {
            Ok(socket) => {
                let now = Instant::now();
                let deadline =
                    if now > handshake_deadline { now + options.handshake_timeout } else { handshake_deadline };
                return Ok((socket, deadline));
            }
            Err(err) => err,
        };
        let Some(wait) = wait_deadline else { return Err(err) };
        let left = wait.saturating_duration_since(Instant::now());
        if !is_retried(err.kind()) || left.is_zero() {
            return Err(err);
        }
        if watch.is_none() {
            // Made after a failed attempt and before the next one, so a
            // socket that appears in between still wakes the pause after it.
            watch = Watch::new();
            if watch.is_some() {
                continue;
            }
        }
        match &watch {
            Some(w) => w.wait(pause.min(left)),
            None => std::thread::sleep(pause.min(left)),
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// An inotify watch on the runtime directory: readable once an entry was
/// created or moved in (a server renames its socket into place).
#[cfg(target_os = "linux")]
pub(crate) struct Watch {
    fd: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl Watch {
    /// None when the watch cannot be made (no inotify instances or watches
    /// left): the caller then sleeps its backoff instead.
    pub(crate) fn new() -> Option<Watch> {
        use rustix::fs::inotify;
        let dir = crate::platform::runtime_dir().ok()?;
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
        inotify::add_watch(&fd, &dir, inotify::WatchFlags::CREATE | inotify::WatchFlags::MOVED_TO).ok()?;
        Some(Watch { fd })
    }

    /// Sleeps until the directory changed or `timeout` passed, then empties
    /// the event queue (which entry changed does not matter: the next attempt
    /// tells).
    fn wait(&self, timeout: Duration) {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let timeout = Timespec::try_from(timeout).ok();
        // A signal or an error ends the pause early: the next attempt decides.
        let _ = poll(&mut fds, timeout.as_ref());
        self.drain();
    }

    /// Empties the event queue, so the fd is not readable until the next change.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 4096];
        while matches!(rustix::io::read(&self.fd, &mut buf), Ok(n) if n > 0) {}
    }

    /// The inotify fd: readable once the directory changed.
    pub(crate) fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(self.fd.as_fd())
    }
}

/// Elsewhere the backoff alone paces the attempts.
#[cfg(not(target_os = "linux"))]
pub(crate) struct Watch;

#[cfg(not(target_os = "linux"))]
impl Watch {
    pub(crate) fn new() -> Option<Watch> {
        None
    }
    fn wait(&self, timeout: Duration) {
        std::thread::sleep(timeout);
    }
    pub(crate) fn drain(&self) {}
    pub(crate) fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}
