//! The client side of the handshake: [`Connecting`], a non-blocking state
//! machine for event loops, and the blocking [`Stream::connect`] built on it.
//!
//! [`Connecting::start`] connects the control socket and sends the HELLO
//! without waiting; [`Connecting::advance`] finishes once the server's REPLY
//! (or REJECT) is there, and never waits either. An event loop watches
//! [`Connecting::fd`] for readability, calls `advance`, and calls it once more
//! at [`Connecting::deadline`] (it then fails with Timeout). The client's
//! work after the REPLY (two X25519, mapping the segment, sending READY) runs
//! inside `advance`, on the loop's thread.
//!
//! `start` never waits, and neither does a connect that must wait for its
//! server: with [`Options::connect_wait`], a server that is not there yet is
//! looked for again whenever the runtime directory changes (the inotify watch
//! of [`connect_wait`]) and after a backoff (1 to 64 ms),
//! until the wait ends (then NotFound); a server whose queue of waiting
//! connections is full is tried again after a shorter backoff (1 to 8 ms)
//! until the later of the wait and the handshake timeout (then Timeout).
//! Such a connect's fd is an epoll set of the watch, a timer for the next
//! attempt and, once the server took the connection, its socket: one fd for
//! the whole connect. Without a wait, no server is NotFound at once. The
//! blocking [`Stream::connect`] waits in the kernel for room in a full queue
//! instead, then takes the same steps.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rustix::event::PollFlags;

use crate::connect_wait::{self, Watch, FIRST_PAUSE, MAX_PAUSE};
use crate::control::{self, Record, RecordReader};
use crate::error::{Error, ErrorKind, Result};
use crate::handshake::{Backend, Initiator};
use crate::keys::{Keypair, PublicKey};
use crate::options::Options;
use crate::platform::{self, Credentials, DeadlineTimer, OwnWake, PollSet};
use crate::segment::Segment;
use crate::sodium;
use crate::stream::{Role, Stream};

/// What one call to [`Connecting::advance`] achieved.
pub enum ConnectProgress {
    /// The server's answer has not come whole: wait for [`Connecting::fd`]
    /// (or the deadline) and advance again.
    Waiting(Connecting),
    /// The connection is established.
    Done(Stream),
}

/// Longest pause between two attempts on a server whose queue of waiting
/// connections is full (nothing says when it has room again).
const MAX_BUSY_PAUSE: Duration = Duration::from_millis(8);

/// A connect in progress: waiting for its server (see the module
/// documentation), or the HELLO sent and the REPLY awaited.
pub struct Connecting {
    name: String,
    options: Options,
    server_key: PublicKey,
    /// When `advance` fails at the latest (see [`Connecting::deadline`]).
    deadline: Instant,
    phase: Phase,
}

// The common state is the large one: boxing it would cost every connect an
// allocation, and a connect is moved only once per advance.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// Not connected yet: the server was not there, or its queue was full.
    Reaching(Reaching),
    /// The HELLO is sent.
    Hello(Hello),
}

struct Reaching {
    /// Until when a missing server is looked for again (None: it is not).
    wait_until: Option<Instant>,
    /// Until when a server with a full queue is tried again.
    busy_until: Instant,
    /// The next pause between two attempts.
    pause: Duration,
    /// The runtime directory, once a server was missing.
    watch: Option<Watch>,
    waiting: WaitSet,
}

struct Hello {
    local: PublicKey,
    control: UnixStream,
    credentials: Credentials,
    initiator: Initiator,
    reader: RecordReader,
    /// The fd of a connect that waited for its server.
    waiting: Option<WaitSet>,
}

/// The fd of a connect that waited for its server: an epoll set of a timer
/// (the next attempt, or the handshake's deadline), the watch of the runtime
/// directory while the server is missing, and the control socket once
/// connected.
struct WaitSet {
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
}

impl Reaching {
    /// Until when an attempt that failed with `kind` is tried again, and the
    /// longest pause between attempts; None when it is not tried again.
    fn retried(&self, kind: ErrorKind) -> Option<(Instant, Duration)> {
        match kind {
            ErrorKind::WouldBlock => Some((self.busy_until, MAX_BUSY_PAUSE)),
            kind if connect_wait::is_retried(kind) => self.wait_until.map(|until| (until, MAX_PAUSE)),
            _ => None,
        }
    }
}

impl Connecting {
    /// Connects to the server of endpoint `name`, whose key
    /// `options.server_key` pins, and sends the HELLO, without waiting (see
    /// the module documentation): with `options.connect_wait`, a server that
    /// is not there yet is waited for through [`fd`](Connecting::fd), like a
    /// server whose queue of waiting connections is full. The handshake must
    /// complete within `options.handshake_timeout` once the server took the
    /// connection.
    pub fn start(name: &str, options: &Options) -> Result<Connecting> {
        let server_key = check(options)?;
        let now = Instant::now();
        let handshake_deadline = now + options.handshake_timeout;
        let connecting = |phase| Connecting {
            name: name.to_string(),
            options: options.clone(),
            server_key,
            deadline: handshake_deadline,
            phase,
        };
        let err = match crate::endpoint::connect_now(name) {
            Ok(control) => {
                return Ok(connecting(Phase::Hello(Hello::send(name, options, &server_key, control, None)?)))
            }
            Err(err) => err,
        };
        // Options::validate bounds the wait to a day, which an Instant holds.
        let wait_until = Some(options.connect_wait).filter(|w| !w.is_zero()).and_then(|w| now.checked_add(w));
        let reaching = Reaching {
            wait_until,
            // As the blocking connect: a busy server is waited for until the
            // later deadline.
            busy_until: wait_until.map_or(handshake_deadline, |w| w.max(handshake_deadline)),
            pause: FIRST_PAUSE,
            watch: None,
            waiting: match wait_until {
                // Without a wait, a missing server is NotFound at once:
                // nothing to make.
                None if err.kind() != ErrorKind::WouldBlock => return Err(err),
                _ => WaitSet::new()?,
            },
        };
        connecting(Phase::Reaching(reaching)).retry_later(err)
    }

    /// Sends the HELLO on a control socket connected with a blocking connect
    /// (see [`Stream::connect`]).
    fn hello_on(
        name: &str,
        options: &Options,
        server_key: PublicKey,
        control: UnixStream,
        deadline: Instant,
    ) -> Result<Connecting> {
        let hello = Hello::send(name, options, &server_key, control, None)?;
        Ok(Connecting {
            name: name.to_string(),
            options: options.clone(),
            server_key,
            deadline,
            phase: Phase::Hello(hello),
        })
    }

    /// Readable when [`advance`](Connecting::advance) may make progress. The
    /// same fd for the whole connect.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.phase {
            Phase::Reaching(reaching) => reaching.waiting.set.as_fd(),
            Phase::Hello(hello) => match &hello.waiting {
                Some(waiting) => waiting.set.as_fd(),
                None => hello.control.as_fd(),
            },
        }
    }

    /// When `advance` gives up at the latest (the handshake's timeout, or the
    /// end of the wait for the server): call it then, if the fd said nothing
    /// before. It moves when the server takes a connect that waited (the
    /// handshake's timeout starts then): read it again after each `advance`.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// After an attempt to reach the server failed with `err`: this connect,
    /// to try again after a pause (or once the runtime directory changes), or
    /// the error when it may not.
    fn retry_later(mut self, err: Error) -> Result<Connecting> {
        let Phase::Reaching(reaching) = &mut self.phase else { return Err(err) };
        let Some((until, max_pause)) = reaching.retried(err.kind()) else { return Err(err) };
        let now = Instant::now();
        if now >= until {
            return Err(match err.kind() {
                ErrorKind::WouldBlock => Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the server of '{}' is busy: it did not take this connection in time (its queue of waiting \
                         connections stayed full)",
                        self.name
                    ),
                ),
                _ => err,
            });
        }
        if err.kind() != ErrorKind::WouldBlock && reaching.watch.is_none() {
            // Made after a failed attempt, so a socket that appears from now
            // on makes the fd readable. Without one, the backoff alone paces
            // the attempts.
            reaching.watch = Watch::new();
            if let Some(fd) = reaching.watch.as_ref().and_then(Watch::fd) {
                reaching.waiting.set.add(fd, 1)?;
            }
        }
        reaching.waiting.timer.set(Some((now + reaching.pause).min(until)));
        reaching.pause = (reaching.pause * 2).min(max_pause);
        self.deadline = until;
        Ok(self)
    }

    /// Tries to reach the server again; once it took the connection, sends
    /// the HELLO.
    fn reach(self) -> Result<Connecting> {
        let Connecting { name, options, server_key, deadline, phase } = self;
        let Phase::Reaching(reaching) = phase else {
            return Ok(Connecting { name, options, server_key, deadline, phase });
        };
        reaching.waiting.timer.clear();
        if let Some(watch) = &reaching.watch {
            watch.drain();
        }
        let control = match crate::endpoint::connect_now(&name) {
            Ok(control) => control,
            Err(e) => {
                let phase = Phase::Reaching(reaching);
                return Connecting { name, options, server_key, deadline, phase }.retry_later(e);
            }
        };
        let Reaching { waiting, watch, .. } = reaching;
        // Dropping the watch takes it out of the set.
        drop(watch);
        let deadline = Instant::now() + options.handshake_timeout;
        waiting.set.add(control.as_fd(), 2)?;
        waiting.timer.set(Some(deadline));
        let hello = Hello::send(&name, &options, &server_key, control, Some(waiting))?;
        Ok(Connecting { name, options, server_key, deadline, phase: Phase::Hello(hello) })
    }

    /// Finishes the connect if the server answered: the stream, or this
    /// connect back while the answer has not come whole. Never waits. A REJECT
    /// is the error it says; past the deadline, Timeout. After an error the
    /// connect is over, and its socket closed.
    pub fn advance(self) -> Result<ConnectProgress> {
        let mut connecting = self.reach()?;
        let Phase::Hello(hello) = &mut connecting.phase else { return Ok(ConnectProgress::Waiting(connecting)) };
        let name = &connecting.name;
        let context = |e: Error| e.context(&format!("connecting to '{name}'"));
        let Some((header, body)) = hello.reader.read(hello.control.as_fd(), "the server").map_err(context)? else {
            if Instant::now() >= connecting.deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the server of '{name}' did not answer the handshake within {:?}",
                        connecting.options.handshake_timeout
                    ),
                ));
            }
            return Ok(ConnectProgress::Waiting(connecting));
        };
        let reply = match control::parse(&header, body).map_err(context)? {
            Record::Reply(reply) => reply,
            Record::Reject(reason, text) => return Err(reason.to_error(name, &text)),
            _ => {
                return Err(Error::new(
                    ErrorKind::ProtocolViolation,
                    "the server answered the hello with an unexpected record",
                ))
            }
        };
        connecting.finish(&reply).map(ConnectProgress::Done)
    }

    /// After the REPLY: the session, the segment, the READY.
    fn finish(self, reply: &[u8]) -> Result<Stream> {
        let Connecting { name, options, phase, .. } = self;
        let Phase::Hello(mut hello) = phase else {
            return Err(Error::new(ErrorKind::InvalidArgument, "a connect finished before it sent its HELLO"));
        };
        let session = hello.initiator.read_reply(reply)?;
        let ring_size = session.choice.ring_size;
        // The REPLY carries, in order, the memfd (memfd backend only) and the
        // server's wake-up eventfd.
        let mut fds = std::mem::take(hello.reader.fds()).into_iter();
        let (memfd, peer_wake) = match (session.choice.backend, fds.next(), fds.next(), fds.next()) {
            (Backend::Memfd, Some(memfd), Some(wake), None) => (Some(memfd), wake),
            (Backend::Named, Some(wake), None, None) => (None, wake),
            (Backend::Memfd, ..) => return Err(Error::new(
                ErrorKind::ProtocolViolation,
                "the server's reply must carry exactly two descriptors (the segment's memfd, then its wake-up eventfd)",
            )),
            (Backend::Named, ..) => {
                return Err(Error::new(
                    ErrorKind::ProtocolViolation,
                    "the server's reply must carry exactly one descriptor (its wake-up eventfd) with a named segment",
                ))
            }
        };
        platform::check_peer_wake(peer_wake.as_fd())?;
        let segment = match memfd {
            Some(fd) => Segment::open_memfd(fd, ring_size)?,
            None => Segment::open_named(&session.choice.segment_name, ring_size, hello.credentials.uid)?,
        };
        let own_wake = OwnWake::new()?;
        control::send(hello.control.as_fd(), &control::encode(control::READY, &[]), &[own_wake.for_peer()])?;
        let wake = (own_wake, peer_wake);
        let Hello { control, credentials, local, .. } = hello;
        Stream::establish(control, wake, segment, session, Role::Client, &options, credentials, &name, local)
    }
}

impl Hello {
    /// Sends the HELLO on a connected control socket.
    fn send(
        name: &str,
        options: &Options,
        server_key: &PublicKey,
        control: UnixStream,
        waiting: Option<WaitSet>,
    ) -> Result<Hello> {
        let keypair = options.keypair.clone().unwrap_or_else(Keypair::process_default);
        control.set_nonblocking(true).map_err(|e| Error::io("configuring the control socket", e))?;
        let socket = control.as_fd();
        let credentials = platform::peer_credentials(socket)?;
        let mut initiator = Initiator::new(&keypair, server_key, name, options.client_offer())?;
        control::send_first(socket, &control::encode(control::HELLO, &initiator.write_hello()?), name)?;
        // While the server works on the HELLO: the next connect's ephemeral key.
        crate::handshake_cache::prepare_client_spare(server_key);
        Ok(Hello {
            local: *keypair.public(),
            control,
            credentials,
            initiator,
            reader: RecordReader::default(),
            waiting,
        })
    }
}

/// Checks what every connect needs; the pinned server key.
fn check(options: &Options) -> Result<PublicKey> {
    sodium::init()?;
    options.validate()?;
    options.server_key.ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            "connecting needs the server's public key: set Options::server_key (shmsock never trusts a key the server sends)",
        )
    })
}

impl Stream {
    /// Connects to the server of endpoint `name`, whose key `options.server_key`
    /// pins, and completes the handshake within `options.handshake_timeout`
    /// (waiting first for the server to appear: [`Options::connect_wait`]).
    /// Event loops use [`Connecting`] instead.
    pub fn connect(name: &str, options: &Options) -> Result<Stream> {
        let server_key = check(options)?;
        let (control, deadline) = crate::connect_wait::control_socket(name, options)?;
        let mut connecting = Connecting::hello_on(name, options, server_key, control, deadline)?;
        loop {
            connecting = match connecting.advance()? {
                ConnectProgress::Done(stream) => return Ok(stream),
                ConnectProgress::Waiting(connecting) => connecting,
            };
            platform::wait_fd(connecting.fd(), PollFlags::IN, Some(deadline))?;
        }
    }
}
