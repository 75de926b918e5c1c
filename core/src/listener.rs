//! `Listener`: a bound endpoint that accepts clients and runs the server side of
//! the handshake (uid check, allow-list, negotiation, segment creation, and the
//! exchange of wake-up eventfds) through the non-blocking driver in
//! [`accept`](crate::accept), several clients at once.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustix::event::{PollFd, PollFlags};

use crate::accept::{Handshake, Limits, Progress};
use crate::endpoint::{self, Bound};
use crate::error::{Error, ErrorKind, Result};
use crate::handshake::{RejectReason, ServerPolicy};
use crate::handshake_cache::HandshakeCache;
use crate::keys::{Keypair, PublicKey};
use crate::options::Options;
use crate::platform::{self, Credentials, DeadlineTimer, Poller};
use crate::sodium;
use crate::stream::Stream;

/// How long accepting rests after running out of file descriptors.
const FD_BACKOFF: Duration = Duration::from_millis(100);

/// Tokens of the pollable set (only its readability is used).
const LISTENING: u64 = 0;
const HANDSHAKE: u64 = 1;
const DEADLINE: u64 = 2;

/// What one round of accepting achieved.
enum Round {
    Established(Box<Stream>),
    /// Nothing established; `starved`: out of descriptors with handshakes
    /// to finish, so the listening socket should rest.
    Waiting {
        starved: bool,
    },
}

/// A client socket accepted but not yet through the handshake.
pub struct Pending {
    socket: UnixStream,
    credentials: Credentials,
}

impl Pending {
    /// Who connected, per the kernel.
    pub fn credentials(&self) -> Credentials {
        self.credentials
    }

    pub(crate) fn into_parts(self) -> (UnixStream, Credentials) {
        (self.socket, self.credentials)
    }
}

/// A server endpoint. Dropping it removes its socket; streams already accepted
/// stay connected.
pub struct Listener {
    bound: Bound,
    keypair: Keypair,
    options: Options,
    policy: ServerPolicy,
    rejected: AtomicU64,
    last_rejection: Mutex<Option<Error>>,
    /// Handshakes that `accept` started and that have not finished yet.
    in_progress: Mutex<Vec<Handshake>>,
    /// The listening socket, the sockets of `in_progress` and the deadline
    /// timer: the pollable fd.
    watch: Poller,
    /// Readable once the earliest deadline of `in_progress` passed.
    deadline_timer: DeadlineTimer,
    /// The listening socket is out of `watch` for a while: `try_accept` ran
    /// out of descriptors.
    listening_rests: AtomicBool,
    /// The next handshake's responder and the static-static X25519 results.
    cache: HandshakeCache,
}

impl Listener {
    /// Binds endpoint `name`. `options.keypair` is required: it is the server's
    /// identity, which clients pin.
    pub fn bind(name: &str, options: &Options) -> Result<Listener> {
        sodium::init()?;
        options.validate()?;
        let keypair = options.keypair.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "a server needs a keypair (Options::keypair): clients pin its public key",
            )
        })?;
        let bound = endpoint::bind(name)?;
        let watch = Poller::new()?;
        watch.add(bound.listener.as_fd(), LISTENING)?;
        let deadline_timer = DeadlineTimer::new()?;
        watch.add(deadline_timer.as_fd(), DEADLINE)?;
        let cache = HandshakeCache::default();
        cache.prepare(&keypair, name);
        Ok(Listener {
            cache,
            watch,
            deadline_timer,
            listening_rests: AtomicBool::new(false),
            bound,
            keypair,
            policy: options.server_policy(),
            options: options.clone(),
            rejected: AtomicU64::new(0),
            last_rejection: Mutex::new(None),
            in_progress: Mutex::new(Vec::new()),
        })
    }

    /// The endpoint name.
    pub fn name(&self) -> &str {
        &self.bound.paths().name
    }

    /// The server's public key, which clients pin.
    pub fn public_key(&self) -> PublicKey {
        *self.keypair.public()
    }

    /// Waits for a client and completes its handshake. Clients that fail the
    /// handshake (wrong key, not allowed, garbage, silence) are refused and
    /// skipped; see [`rejected_count`](Listener::rejected_count).
    pub fn accept(&self) -> Result<Stream> {
        self.accept_timeout(None)
    }

    /// As [`accept`](Listener::accept), giving up with Timeout after `timeout`.
    ///
    /// Handshakes run side by side, each within the handshake timeout, on the
    /// calling thread: a silent or slow client never delays the others, and
    /// the deadline holds whatever clients do. Handshakes still in progress
    /// when this returns continue at the next call. A zero timeout is
    /// [`try_accept`](Listener::try_accept), with Timeout for None.
    pub fn accept_timeout(&self, timeout: Option<Duration>) -> Result<Stream> {
        if timeout == Some(Duration::ZERO) {
            return self
                .try_accept()?
                .ok_or_else(|| Error::new(ErrorKind::Timeout, "accept timed out: no client completed a handshake"));
        }
        let deadline = crate::stream::deadline_after(timeout);
        // Whether the listening socket may hold a client: at first, and then
        // when the last wait said so (a round woken by a handshake's socket
        // skips the accept that would only say EAGAIN).
        let mut listener_ready = true;
        loop {
            if self.bound.is_released() {
                return Err(self.closed_error());
            }
            // Take the handshakes in progress: another thread accepting at the
            // same time starts its own.
            let mut handshakes = std::mem::take(&mut *self.in_progress.lock());
            let outcome = match self.advance_all(&mut handshakes, listener_ready, &mut |_| {}) {
                Ok(Round::Established(stream)) => Some(Ok(*stream)),
                Ok(Round::Waiting { .. }) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    Some(Err(Error::new(ErrorKind::Timeout, "accept timed out: no client completed a handshake")))
                }
                Ok(Round::Waiting { starved }) => {
                    listener_ready = self.wait_for_progress(&handshakes, deadline, starved);
                    None
                }
                Err(e) => Some(Err(e)),
            };
            // The deadline timer is for event loops: set when returning only,
            // so a blocking accept pays no timerfd call per client.
            self.put_back(handshakes, outcome.is_some().then_some(false));
            if let Some(outcome) = outcome {
                return outcome;
            }
        }
    }

    /// Accepts without waiting, for event loops: advances every handshake in
    /// progress with what its client sent, takes the clients waiting now, and
    /// returns a stream if one completed its handshake (None otherwise). Call
    /// it whenever [`pollable_fd`](Listener::pollable_fd) is readable, until
    /// it returns None; that fd also becomes readable when a handshake's
    /// deadline passes, so an event loop needs no timer of its own. Clients
    /// that fail the handshake are refused and skipped, as in `accept`.
    pub fn try_accept(&self) -> Result<Option<Stream>> {
        self.try_accept_reporting(&mut |_| {})
    }

    /// As [`try_accept`](Listener::try_accept), calling `on_refused` with
    /// the error of each client refused meanwhile (for a server that reports
    /// them; `rejected_count` counts them either way).
    pub fn try_accept_reporting(&self, on_refused: &mut dyn FnMut(&Error)) -> Result<Option<Stream>> {
        if self.bound.is_released() {
            return Err(self.closed_error());
        }
        self.deadline_timer.clear();
        if self.listening_rests.swap(false, Ordering::Relaxed) {
            let _ = self.watch.add(self.bound.listener.as_fd(), LISTENING);
        }
        let mut handshakes = std::mem::take(&mut *self.in_progress.lock());
        let round = self.advance_all(&mut handshakes, true, on_refused);
        let starved = matches!(round, Ok(Round::Waiting { starved: true }));
        if starved {
            // Out of descriptors: the listening socket stays readable, so an
            // event loop watching it would spin. It rests out of the set, and
            // the timer brings the loop back to look at it again.
            self.watch.remove(self.bound.listener.as_fd());
            self.listening_rests.store(true, Ordering::Relaxed);
        }
        self.put_back(handshakes, Some(starved));
        match round? {
            Round::Established(stream) => Ok(Some(*stream)),
            Round::Waiting { .. } => Ok(None),
        }
    }

    /// Returns handshakes taken out of `in_progress`. With `arm =
    /// Some(starved)`, also arms the deadline timer for the earliest of all (or
    /// for the end of a rest from accepting, when `starved`), under the lock,
    /// so the last to arm saw every handshake.
    fn put_back(&self, mut handshakes: Vec<Handshake>, arm: Option<bool>) {
        let mut in_progress = self.in_progress.lock();
        in_progress.append(&mut handshakes);
        let Some(starved) = arm else { return };
        let rest_over = starved.then(|| Instant::now() + FD_BACKOFF);
        let earliest = in_progress.iter().map(Handshake::deadline).chain(rest_over).min();
        self.deadline_timer.set(earliest);
    }

    /// One round of accepting without waiting: advances every handshake that
    /// can move, then takes new clients (within [`Limits`]) if `take_new`.
    /// Returns a stream as soon as one is established.
    fn advance_all(
        &self,
        handshakes: &mut Vec<Handshake>,
        take_new: bool,
        on_refused: &mut dyn FnMut(&Error),
    ) -> Result<Round> {
        let limits = Limits::new(&self.options);
        let mut i = 0;
        while i < handshakes.len() {
            let (before, rest) = handshakes.split_at_mut(i);
            let Some((current, after)) = rest.split_first_mut() else { break };
            let uid = current.credentials().uid;
            let room = || limits.room_for_segment(uid, before.iter().chain(after.iter()));
            match current.advance(self, room) {
                Ok(Progress::Waiting) => i += 1,
                Ok(Progress::Done(stream)) => {
                    self.watch.remove(handshakes.swap_remove(i).fd());
                    return Ok(Round::Established(stream));
                }
                Err(e) => {
                    self.watch.remove(handshakes.swap_remove(i).fd());
                    on_refused(&e);
                    self.note_rejection(e);
                }
            }
        }
        // After advancing the others, so that a client that gives way to a
        // newcomer surely did not send its HELLO.
        let starved = take_new && self.take_new_clients(handshakes, on_refused)?;
        Ok(Round::Waiting { starved })
    }

    /// Waits until a client may be waiting, a handshake's client sent
    /// something, or the earliest deadline (the caller's or a handshake's)
    /// passed. Returns whether the listening socket became readable. Out of
    /// descriptors with handshakes to finish (`starved`): finish those first,
    /// and leave the (still readable) listening socket out of this wait.
    fn wait_for_progress(&self, handshakes: &[Handshake], deadline: Option<Instant>, starved: bool) -> bool {
        let mut until = handshakes.iter().map(Handshake::deadline).chain(deadline).min();
        if starved {
            // Look at the listening socket again soon: descriptors may be free by then.
            let rest_over = Instant::now() + FD_BACKOFF;
            until = Some(until.map_or(rest_over, |u| u.min(rest_over)));
        }
        let listening = (!starved).then(|| self.bound.listener.as_fd());
        let mut fds: Vec<PollFd<'_>> = listening
            .into_iter()
            .chain(handshakes.iter().map(Handshake::fd))
            .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
            .collect();
        // A failed wait is retried by the caller's loop, which re-checks everything.
        let _ = platform::poll_until(&mut fds, until);
        // Starved: the listening socket was not watched; look at it next round.
        starved || fds.first().is_some_and(|fd| !fd.revents().is_empty())
    }

    /// Accepts every client queued now into `handshakes` (within [`Limits`]).
    /// True when this process ran out of descriptors with handshakes to finish
    /// ("starved").
    fn take_new_clients(&self, handshakes: &mut Vec<Handshake>, on_refused: &mut dyn FnMut(&Error)) -> Result<bool> {
        loop {
            let pending = match self.try_accept_pending() {
                Ok(Some(pending)) => pending,
                Ok(None) => return Ok(false),
                Err(e) if e.kind() == ErrorKind::ResourceExhausted && !handshakes.is_empty() => {
                    return Ok(true);
                }
                Err(e) => return Err(e),
            };
            let handshake = Handshake::new(pending, Instant::now() + self.options.handshake_timeout);
            self.make_room(handshakes, handshake.credentials().uid, on_refused);
            // Watched so that an event loop polling `pollable_fd` sees the
            // client's next record; a failure only costs that (accept polls
            // the socket itself).
            let _ = self.watch.add(handshake.fd(), HANDSHAKE);
            handshakes.push(handshake);
        }
    }

    /// Makes room for one more client of `uid` among the handshakes awaiting
    /// their HELLO (see [`Limits`]): the oldest gives way. Every handshake was
    /// advanced just before, so one still awaiting its HELLO did not send it.
    fn make_room(&self, handshakes: &mut Vec<Handshake>, uid: u32, on_refused: &mut dyn FnMut(&Error)) {
        let limits = Limits::new(&self.options);
        while let Some(i) = limits.to_evict(uid, handshakes.iter().enumerate()) {
            let mut victim = handshakes.swap_remove(i);
            self.watch.remove(victim.fd());
            let err = Error::new(
                ErrorKind::ResourceExhausted,
                "the server is busy and this client had not sent its HELLO; try again",
            );
            let err = victim.refuse(RejectReason::ServerError, err);
            on_refused(&err);
            self.note_rejection(err);
        }
    }

    fn closed_error(&self) -> Error {
        Error::new(ErrorKind::Closed, format!("the listener of '{}' was closed", self.name()))
    }

    /// Accepts the next client socket without the handshake (for servers that run
    /// handshakes off their dispatch thread), waiting until `deadline`.
    pub fn accept_pending(&self, deadline: Option<Instant>) -> Result<Pending> {
        loop {
            if let Some(pending) = self.try_accept_pending()? {
                return Ok(pending);
            }
            if !platform::wait_fd(self.bound.listener.as_fd(), PollFlags::IN, deadline)? {
                return Err(Error::new(ErrorKind::Timeout, "accept timed out: no client connected"));
            }
        }
    }

    /// Accepts a client socket queued now, if any, without waiting.
    pub(crate) fn try_accept_pending(&self) -> Result<Option<Pending>> {
        loop {
            if self.bound.is_released() {
                return Err(self.closed_error());
            }
            match self.bound.listener.accept() {
                Ok((socket, _)) => {
                    socket.set_nonblocking(true).map_err(|e| Error::io("configuring an accepted socket", e))?;
                    let credentials = platform::peer_credentials(socket.as_fd())?;
                    return Ok(Some(Pending { socket, credentials }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                    return Err(Error::new(
                        ErrorKind::ResourceExhausted,
                        "cannot accept a client: this process is out of file descriptors (raise RLIMIT_NOFILE, e.g. ulimit -n, or lower max_connections)",
                    ));
                }
                Err(e) => return Err(Error::io("accepting a client", e)),
            }
        }
    }

    /// Runs the server side of the handshake on an accepted socket, within the
    /// handshake timeout, blocking the calling thread. A refused client gets a
    /// REJECT saying why.
    pub fn handshake(&self, pending: Pending) -> Result<Stream> {
        let mut handshake = Handshake::new(pending, Instant::now() + self.options.handshake_timeout);
        loop {
            // A lone handshake: nothing else holds a segment.
            match handshake.advance(self, || true) {
                Ok(Progress::Done(stream)) => return Ok(*stream),
                Ok(Progress::Waiting) => {
                    platform::wait_fd(handshake.fd(), PollFlags::IN, Some(handshake.deadline()))?;
                }
                Err(e) => {
                    self.note_rejection(e.clone());
                    return Err(e);
                }
            }
        }
    }

    /// Counts a client that failed the handshake.
    pub(crate) fn note_rejection(&self, err: Error) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        *self.last_rejection.lock() = Some(err);
    }

    /// Refuses a uid that `allowed_uids` does not list.
    pub(crate) fn check_uid(&self, uid: u32) -> Result<()> {
        match &self.options.allowed_uids {
            Some(uids) if !uids.contains(&uid) => {
                Err(Error::new(ErrorKind::PermissionDenied, format!("uid {uid} is not allowed to connect")))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    pub(crate) fn handshake_cache(&self) -> &HandshakeCache {
        &self.cache
    }

    pub(crate) fn policy(&self) -> &ServerPolicy {
        &self.policy
    }

    pub(crate) fn options(&self) -> &Options {
        &self.options
    }

    /// A file descriptor that is readable when
    /// [`try_accept`](Listener::try_accept) may make progress: a client is
    /// waiting, a handshake in progress got its client's next record, or a
    /// handshake's deadline passed. For event loops (libuv, asyncio, a
    /// [`Reactor`](crate::reactor::Reactor)): watch it, and call `try_accept`
    /// until it returns None.
    pub fn pollable_fd(&self) -> BorrowedFd<'_> {
        self.watch.as_fd()
    }

    /// The listening socket itself: readable when a client waits to be accepted.
    pub(crate) fn socket_fd(&self) -> BorrowedFd<'_> {
        self.bound.listener.as_fd()
    }

    /// Stops listening: the endpoint's files are removed and its name can be
    /// bound again at once; a thread blocked in `accept` fails with Closed.
    /// Streams already accepted stay connected. Idempotent; dropping the
    /// listener does the same.
    pub fn close(&self) {
        self.bound.release();
    }

    /// True once [`close`](Listener::close) was called.
    pub fn is_closed(&self) -> bool {
        self.bound.is_released()
    }

    /// How many clients failed the handshake so far.
    pub fn rejected_count(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Why the last client failed the handshake.
    pub fn last_rejection(&self) -> Option<Error> {
        self.last_rejection.lock().clone()
    }

    /// Accepted streams, forever (each item is the result of one `accept`).
    pub fn incoming(&self) -> impl Iterator<Item = Result<Stream>> + '_ {
        std::iter::repeat_with(move || self.accept())
    }
}

/// The pollable fd (see [`Listener::pollable_fd`]): readable when an `accept`
/// with a zero timeout may make progress.
impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.watch.as_fd().as_raw_fd()
    }
}

/// The pollable fd (see [`Listener::pollable_fd`]).
impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.watch.as_fd()
    }
}
