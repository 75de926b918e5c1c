//! `Listener`: a bound endpoint that accepts clients and runs the server side of
//! the handshake (uid check, allow-list, negotiation, segment creation, and the
//! exchange of wake-up eventfds) through the non-blocking driver in
//! [`accept`](crate::accept), several clients at once.

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustix::event::PollFlags;

use crate::accept::{Handshake, Limits, Progress};
use crate::endpoint::{self, Bound};
use crate::error::{Error, ErrorKind, Result};
use crate::handshake::{RejectReason, ServerPolicy};
use crate::handshake_cache::HandshakeCache;
use crate::keys::{Keypair, PublicKey};
use crate::options::Options;
use crate::platform::{self, Credentials, DeadlineTimer, Poller};
use crate::reassembly::{ReassemblyBudget, Share};
use crate::seats::Seats;
use crate::sodium;
use crate::stream::Stream;
use crate::wait::SpinHistory;

/// How long accepting rests after running out of file descriptors.
const FD_BACKOFF: Duration = Duration::from_millis(100);

/// Tokens in the pollable set: the listening socket, the deadline timer, and
/// each handshake by its id (from [`FIRST_HANDSHAKE`] up).
const LISTENING: u64 = 0;
const DEADLINE: u64 = 1;
const FIRST_HANDSHAKE: u64 = 16;

/// The handshakes in progress and what goes with them.
struct Accepting {
    /// By id. Ids grow and every handshake gets the same timeout, so the
    /// first entry is the oldest, with the earliest deadline.
    handshakes: BTreeMap<u64, Handshake>,
    next_id: u64,
    /// Handshakes that completed while room was being made for a newcomer,
    /// handed out first by the next calls.
    established: VecDeque<Stream>,
    /// While this process is out of descriptors, the listening socket rests
    /// out of the pollable set until then (it stays readable: watching it
    /// would spin an event loop).
    resting_until: Option<Instant>,
    /// The ready tokens of one look at the pollable set (kept to reuse).
    tokens: Vec<u64>,
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
///
/// Processes forked after `bind` may each accept on it (a pre-fork server):
/// every process serves its clients on segments of its own, as what one
/// process prepares ahead of its next handshake is never used by another.
pub struct Listener {
    bound: Bound,
    keypair: Keypair,
    options: Options,
    policy: ServerPolicy,
    rejected: AtomicU64,
    last_rejection: Mutex<Option<Error>>,
    /// Handshakes that accepting started and that have not finished yet.
    accepting: Mutex<Accepting>,
    limits: Limits,
    /// The listening socket, the sockets of the handshakes in progress and
    /// the deadline timer: the pollable fd.
    watch: Poller,
    /// Readable once the earliest deadline of the handshakes passed.
    deadline_timer: DeadlineTimer,
    /// The next handshake's responder and the static-static X25519 results.
    cache: HandshakeCache,
    /// Whether a blocking accept's looks for a READY pay (see `accept_timeout`).
    answer_looks: SpinHistory,
    /// Bytes of large messages the accepted streams gather at once (`reassembly`).
    reassembly: Arc<ReassemblyBudget>,
    /// The accepted streams still open, for `max_connections` (`seats`).
    seats: Arc<Seats>,
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
            limits: Limits::new(options),
            answer_looks: SpinHistory::default(),
            reassembly: ReassemblyBudget::new(options.max_reassembly_bytes as u64),
            seats: Seats::new(options),
            bound,
            keypair,
            policy: options.server_policy(),
            options: options.clone(),
            rejected: AtomicU64::new(0),
            last_rejection: Mutex::new(None),
            accepting: Mutex::new(Accepting {
                handshakes: BTreeMap::new(),
                next_id: FIRST_HANDSHAKE,
                established: VecDeque::new(),
                resting_until: None,
                tokens: Vec::new(),
            }),
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
        let deadline = crate::stream::deadline_after(timeout);
        loop {
            if let Some(stream) = self.try_accept()? {
                return Ok(stream);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::new(ErrorKind::Timeout, "accept timed out: no client completed a handshake"));
            }
            // A client that has our REPLY sends its READY after its own
            // X25519 work: look for it a moment before sleeping.
            if let Some(until) = self.answer_looked_for_until() {
                let until = deadline.map_or(until, |d| d.min(until));
                if crate::wait::look_for_answer(self.watch.as_fd(), until, self.options.spin, &self.answer_looks)? {
                    continue;
                }
            }
            // The pollable fd reports everything try_accept acts on, handshake
            // deadlines included; closing the listener makes it readable too.
            platform::wait_fd(self.watch.as_fd(), PollFlags::IN, deadline)?;
        }
    }

    /// Until when a blocking accept may look for a READY before it sleeps:
    /// the latest [`Handshake::answer_looked_for_until`]; None when no
    /// handshake awaits one.
    fn answer_looked_for_until(&self) -> Option<Instant> {
        self.accepting.lock().handshakes.values().filter_map(Handshake::answer_looked_for_until).max()
    }

    /// Accepts without waiting, for event loops: advances the handshakes
    /// whose client sent something or whose deadline passed, takes the clients
    /// waiting now, and returns a stream if one completed its handshake (None
    /// otherwise). Call it whenever [`pollable_fd`](Listener::pollable_fd) is
    /// readable, until it returns None; that fd also becomes readable when a
    /// handshake's deadline passes, so an event loop needs no timer of its
    /// own. The work is proportional to what happened, not to the handshakes
    /// in progress: a thousand silent clients cost nothing until their
    /// deadline. Clients that fail the handshake are refused and skipped, as
    /// in `accept`.
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
        let mut st = self.accepting.lock();
        let result = self.accept_round(&mut st, on_refused);
        // Every way out: the timer follows the earliest deadline, or the end
        // of the listening socket's rest.
        let earliest = st.handshakes.first_key_value().map(|(_, h)| h.deadline());
        self.deadline_timer.set(earliest.into_iter().chain(st.resting_until).min());
        result
    }

    /// One look at the pollable set, acting on what it reports.
    fn accept_round(&self, st: &mut Accepting, on_refused: &mut dyn FnMut(&Error)) -> Result<Option<Stream>> {
        if let Some(stream) = st.established.pop_front() {
            return Ok(Some(stream));
        }
        let mut tokens = std::mem::take(&mut st.tokens);
        let looked = self.watch.wait(&mut tokens, Some(Duration::ZERO));
        let mut take_new = false;
        let mut found = None;
        for &token in &tokens {
            match token {
                LISTENING => take_new = true,
                DEADLINE => self.deadline_timer.clear(),
                platform::WAKE_TOKEN => {}
                id => {
                    if let Some(stream) = self.advance(st, id, on_refused) {
                        // The others stay readable for the next call.
                        found = Some(stream);
                        break;
                    }
                }
            }
        }
        st.tokens = tokens;
        looked?;
        if found.is_some() {
            return Ok(found);
        }
        // Past their deadline: the oldest first, which are the first entries.
        let now = Instant::now();
        while let Some((&id, handshake)) = st.handshakes.first_key_value() {
            if handshake.deadline() > now {
                break;
            }
            if let Some(stream) = self.advance(st, id, on_refused) {
                return Ok(Some(stream));
            }
        }
        if st.resting_until.is_some_and(|until| now >= until) {
            st.resting_until = None;
            let _ = self.watch.add(self.bound.listener.as_fd(), LISTENING);
            take_new = true;
        }
        if take_new {
            if let Some(stream) = self.take_new_clients(st, on_refused)? {
                return Ok(Some(stream));
            }
        }
        Ok(st.established.pop_front())
    }

    /// Advances handshake `id` with what its client sent; the stream if it
    /// completed. A failure refuses the client (counted and reported).
    fn advance(&self, st: &mut Accepting, id: u64, on_refused: &mut dyn FnMut(&Error)) -> Option<Stream> {
        // Out of the map while it advances, so that the limits see the others.
        let mut handshake = st.handshakes.remove(&id)?;
        let uid = handshake.credentials().uid;
        if handshake.awaits_hello() && !self.limits.room_for_segment(uid, st.handshakes.values()) {
            self.finish_answered(st, on_refused);
        }
        let (limits, others) = (self.limits, &st.handshakes);
        let room = || limits.room_for_segment(uid, others.values());
        match handshake.advance(self, room) {
            Ok(Progress::Waiting) => {
                st.handshakes.insert(id, handshake);
                None
            }
            // The stream's socket is a duplicate of the handshake's: the epoll
            // entry would outlive the handshake's descriptor, so it is removed.
            Ok(Progress::Done(stream)) => {
                self.watch.remove(handshake.fd());
                Some(self.seated(*stream))
            }
            Err(e) => {
                self.watch.remove(handshake.fd());
                on_refused(&e);
                self.note_rejection(e);
                None
            }
        }
    }

    /// Takes the clients queued now (within [`Limits`]), advancing each at
    /// once (its HELLO is often there already); the stream of one that
    /// completed. Out of descriptors: the listening socket rests, and with no
    /// handshake to finish the error is returned.
    fn take_new_clients(&self, st: &mut Accepting, on_refused: &mut dyn FnMut(&Error)) -> Result<Option<Stream>> {
        loop {
            let pending = match self.try_accept_pending() {
                Ok(Some(pending)) => pending,
                Ok(None) => return Ok(None),
                Err(e) if e.kind() == ErrorKind::ResourceExhausted => {
                    self.watch.remove(self.bound.listener.as_fd());
                    st.resting_until = Some(Instant::now() + FD_BACKOFF);
                    return if st.handshakes.is_empty() { Err(e) } else { Ok(None) };
                }
                Err(e) => return Err(e),
            };
            let handshake = Handshake::new(pending, Instant::now() + self.options.handshake_timeout);
            self.make_room(st, handshake.credentials().uid, on_refused);
            let id = st.next_id;
            st.next_id += 1;
            if let Err(e) = self.watch.add(handshake.fd(), id) {
                let mut handshake = handshake;
                let e = handshake.refuse(RejectReason::ServerError, e);
                on_refused(&e);
                self.note_rejection(e);
                continue;
            }
            st.handshakes.insert(id, handshake);
            if let Some(stream) = self.advance(st, id, on_refused) {
                return Ok(Some(stream));
            }
        }
    }

    /// Advances the handshakes that hold a segment (their READY may be
    /// there), keeping the streams that complete for the next accepts: a
    /// client that sent its READY must not take the place a newcomer needs,
    /// whichever socket the poller reported first.
    fn finish_answered(&self, st: &mut Accepting, on_refused: &mut dyn FnMut(&Error)) {
        let holding: Vec<u64> = st.handshakes.iter().filter(|(_, h)| h.holds_segment()).map(|(id, _)| *id).collect();
        for id in holding {
            if let Some(stream) = self.advance(st, id, on_refused) {
                st.established.push_back(stream);
            }
        }
    }

    /// Makes room for one more client of `uid` among the handshakes awaiting
    /// their HELLO (see [`Limits`]): while one must give way, the oldest is
    /// looked at first (its HELLO may be there) and refused if it still sent
    /// none.
    fn make_room(&self, st: &mut Accepting, uid: u32, on_refused: &mut dyn FnMut(&Error)) {
        // Bounded: each look refuses, finishes or moves past its HELLO the
        // handshake it looked at.
        for _ in 0..=st.handshakes.len() {
            let Some(id) = self.limits.to_evict(uid, st.handshakes.iter().map(|(id, h)| (*id, h))) else { return };
            if let Some(stream) = self.advance(st, id, on_refused) {
                st.established.push_back(stream);
                continue;
            }
            if !st.handshakes.get(&id).is_some_and(Handshake::awaits_hello) {
                continue;
            }
            if let Some(mut victim) = st.handshakes.remove(&id) {
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
                Ok(Progress::Done(stream)) => return Ok(self.seated(*stream)),
                Ok(Progress::Waiting) => {
                    let looked = match handshake.answer_looked_for_until() {
                        Some(until) => {
                            crate::wait::look_for_answer(handshake.fd(), until, self.options.spin, &self.answer_looks)?
                        }
                        None => false,
                    };
                    if !looked {
                        platform::wait_fd(handshake.fd(), PollFlags::IN, Some(handshake.deadline()))?;
                    }
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

    /// Refuses a client of a uid that `allowed_uids` does not list, or one
    /// beyond `max_connections` (or `max_connections_per_uid`) while the
    /// streams this listener accepted are still open (a `Server` counts its
    /// connections itself: it takes no seats here).
    pub(crate) fn check_admission(&self, uid: u32) -> Result<()> {
        if let Some(uids) = &self.options.allowed_uids {
            if !uids.contains(&uid) {
                return Err(Error::new(ErrorKind::PermissionDenied, format!("uid {uid} is not allowed to connect")));
            }
        }
        match self.seats.refusal(uid) {
            Some(why) => Err(Error::new(ErrorKind::ResourceExhausted, why)),
            None => Ok(()),
        }
    }

    /// An accepted stream, holding its seat until it is closed or dropped.
    fn seated(&self, stream: Stream) -> Stream {
        let uid = stream.peer_credentials().uid;
        stream.with_seat(self.seats.take(uid))
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

    /// A new accepted stream's share of the bound on large messages being received.
    pub(crate) fn reassembly_share(&self, peer_pid: i32) -> Share {
        self.reassembly.share(peer_pid)
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

    /// Changes how many accepted streams this listener keeps open at once
    /// (`Options::max_connections`, and `max_connections_per_uid`: None for
    /// no bound of its own). Streams beyond a lowered bound stay connected;
    /// new clients are refused until enough of them closed. Zero is
    /// InvalidArgument.
    pub fn set_max_connections(&self, max: usize, per_uid: Option<usize>) -> Result<()> {
        // The options' own rule for these bounds.
        Options::new().max_connections(max).max_connections_per_uid(per_uid).validate()?;
        self.seats.resize(max, per_uid);
        Ok(())
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
