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
//! server (with [`Options::connect_wait`], or a server whose queue of waiting
//! connections is full): it is looked for again through the same fd (see
//! `reaching.rs`), one fd for the whole connect. Without a wait, no server is
//! NotFound at once. The blocking [`Stream::connect`] waits in the kernel for
//! room in a full queue instead, then takes the same steps, and looks for the
//! server's answer for a moment before it sleeps (`wait::look_for_answer`).

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use rustix::event::PollFlags;

use crate::control::{self, Record, RecordReader};
use crate::error::{Error, ErrorKind, Result};
use crate::handshake::{Backend, Initiator};
use crate::keys::{Keypair, PublicKey};
use crate::options::Options;
use crate::platform::{self, Credentials, OwnWake};
use crate::reaching::{self, Reached, Reaching, WaitSet};
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

/// What the non-blocking client handshakes ([`Connecting`],
/// [`Subscribing`](crate::Subscribing)) offer an event loop, for code that
/// drives either: watch [`fd`](ClientHandshake::fd) for readability, call
/// [`step`](ClientHandshake::step) then and at the
/// [`deadline`](ClientHandshake::deadline) (read again after each step).
pub trait ClientHandshake: Sized {
    /// What the handshake makes: a stream, a subscriber.
    type Output;
    /// Readable when `step` may make progress; the same for the whole handshake.
    fn fd(&self) -> BorrowedFd<'_>;
    /// When `step` gives up at the latest.
    fn deadline(&self) -> Instant;
    /// Takes what steps it can without waiting: Ok(Ok(output)) once done,
    /// Ok(Err(self)) while it waits. After an error the handshake is over.
    fn step(self) -> Result<std::result::Result<Self::Output, Self>>;
}

impl ClientHandshake for Connecting {
    type Output = Stream;
    fn fd(&self) -> BorrowedFd<'_> {
        Connecting::fd(self)
    }
    fn deadline(&self) -> Instant {
        Connecting::deadline(self)
    }
    fn step(self) -> Result<std::result::Result<Stream, Connecting>> {
        Ok(match self.advance()? {
            ConnectProgress::Done(stream) => Ok(stream),
            ConnectProgress::Waiting(connecting) => Err(connecting),
        })
    }
}

/// A connect in progress: waiting for its server (see the module
/// documentation), or the HELLO sent and the REPLY awaited.
pub struct Connecting {
    name: String,
    options: Options,
    server_key: PublicKey,
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

struct Hello {
    local: PublicKey,
    control: UnixStream,
    credentials: Credentials,
    initiator: Initiator,
    reader: RecordReader,
    /// The fd of a connect that waited for its server.
    waiting: Option<WaitSet>,
    /// When the handshake times out.
    deadline: Instant,
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
        let phase = match reaching::start(name, options)? {
            Reached::Pending(reaching) => Phase::Reaching(reaching),
            Reached::Connected { control, waiting, deadline } => {
                Phase::Hello(Hello::send(name, options, &server_key, control, waiting, deadline)?)
            }
        };
        Ok(Connecting { name: name.to_string(), options: options.clone(), server_key, phase })
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
        let hello = Hello::send(name, options, &server_key, control, None, deadline)?;
        Ok(Connecting { name: name.to_string(), options: options.clone(), server_key, phase: Phase::Hello(hello) })
    }

    /// Readable when [`advance`](Connecting::advance) may make progress. The
    /// same fd for the whole connect.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.phase {
            Phase::Reaching(reaching) => reaching.fd(),
            Phase::Hello(hello) => hello.waiting.as_ref().map_or(hello.control.as_fd(), WaitSet::fd),
        }
    }

    /// When `advance` gives up at the latest (the handshake's timeout, or the
    /// end of the wait for the server): call it then, if the fd said nothing
    /// before. It moves when the server takes a connect that waited (the
    /// handshake's timeout starts then): read it again after each `advance`.
    pub fn deadline(&self) -> Instant {
        match &self.phase {
            Phase::Reaching(reaching) => reaching.deadline(),
            Phase::Hello(hello) => hello.deadline,
        }
    }

    /// While waiting for the server: tries to reach it again, and sends the
    /// HELLO once connected.
    fn reach(mut self) -> Result<Connecting> {
        if let Phase::Reaching(reaching) = self.phase {
            self.phase = match reaching.retry(&self.name, &self.options)? {
                Reached::Pending(reaching) => Phase::Reaching(reaching),
                Reached::Connected { control, waiting, deadline } => {
                    Phase::Hello(Hello::send(&self.name, &self.options, &self.server_key, control, waiting, deadline)?)
                }
            };
        }
        Ok(self)
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
            if Instant::now() >= hello.deadline {
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
        deadline: Instant,
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
            deadline,
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

/// Whether the blocking connects' looks for their server's answer pay (one
/// history for the process: a slow server makes every client of it sleep).
static ANSWER_LOOKS: crate::wait::SpinHistory = crate::wait::SpinHistory::new();

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
            if !crate::wait::look_for_answer(connecting.fd(), deadline, options.spin, &ANSWER_LOOKS)? {
                platform::wait_fd(connecting.fd(), PollFlags::IN, Some(deadline))?;
            }
        }
    }
}
