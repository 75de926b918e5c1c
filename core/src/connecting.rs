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
//! `start` never waits: no server is NotFound at once, and a server whose
//! queue of waiting connections is full is WouldBlock. The blocking
//! [`Stream::connect`] waits in both cases instead (for the server to appear,
//! with [`Options::connect_wait`], and for room in the queue), then takes the
//! same steps.

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

/// A connect in progress: the HELLO is sent, the REPLY awaited.
pub struct Connecting {
    name: String,
    options: Options,
    local: PublicKey,
    control: UnixStream,
    credentials: Credentials,
    initiator: Initiator,
    deadline: Instant,
    reader: RecordReader,
}

impl Connecting {
    /// Connects to the server of endpoint `name`, whose key
    /// `options.server_key` pins, and sends the HELLO, without waiting (see
    /// the module documentation; `options.connect_wait` is for
    /// [`Stream::connect`] and is not used here). The handshake must complete
    /// within `options.handshake_timeout`.
    pub fn start(name: &str, options: &Options) -> Result<Connecting> {
        let server_key = check(options)?;
        let control = crate::endpoint::connect_now(name)?;
        Connecting::send_hello(name, options, server_key, control, Instant::now() + options.handshake_timeout)
    }

    /// Sends the HELLO on a connected control socket.
    fn send_hello(
        name: &str,
        options: &Options,
        server_key: PublicKey,
        control: UnixStream,
        deadline: Instant,
    ) -> Result<Connecting> {
        let keypair = options.keypair.clone().unwrap_or_else(Keypair::process_default);
        control.set_nonblocking(true).map_err(|e| Error::io("configuring the control socket", e))?;
        let socket = control.as_fd();
        let credentials = platform::peer_credentials(socket)?;
        let mut initiator = Initiator::new(&keypair, &server_key, name, options.client_offer())?;
        control::send_first(socket, &control::encode(control::HELLO, &initiator.write_hello()?), name)?;
        // While the server works on the HELLO: the next connect's ephemeral key.
        crate::handshake_cache::prepare_client_spare(&server_key);
        Ok(Connecting {
            name: name.to_string(),
            options: options.clone(),
            local: *keypair.public(),
            control,
            credentials,
            initiator,
            deadline,
            reader: RecordReader::default(),
        })
    }

    /// Readable when [`advance`](Connecting::advance) may make progress.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.control.as_fd()
    }

    /// When the handshake times out: call `advance` then, if not before.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Finishes the connect if the server answered: the stream, or this
    /// connect back while the answer has not come whole. Never waits. A REJECT
    /// is the error it says; past the deadline, Timeout. After an error the
    /// connect is over, and its socket closed.
    pub fn advance(mut self) -> Result<ConnectProgress> {
        let context = |e: Error| e.context(&format!("connecting to '{}'", self.name));
        let Some((header, body)) = self.reader.read(self.control.as_fd(), "the server").map_err(context)? else {
            if Instant::now() >= self.deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the server of '{}' did not answer the handshake within {:?}",
                        self.name, self.options.handshake_timeout
                    ),
                ));
            }
            return Ok(ConnectProgress::Waiting(self));
        };
        let reply = match control::parse(&header, body).map_err(context)? {
            Record::Reply(reply) => reply,
            Record::Reject(reason, text) => return Err(reason.to_error(&self.name, &text)),
            _ => {
                return Err(Error::new(
                    ErrorKind::ProtocolViolation,
                    "the server answered the hello with an unexpected record",
                ))
            }
        };
        self.finish(&reply).map(ConnectProgress::Done)
    }

    /// After the REPLY: the session, the segment, the READY.
    fn finish(mut self, reply: &[u8]) -> Result<Stream> {
        let session = self.initiator.read_reply(reply)?;
        let ring_size = session.choice.ring_size;
        // The REPLY carries, in order, the memfd (memfd backend only) and the
        // server's wake-up eventfd.
        let mut fds = std::mem::take(self.reader.fds()).into_iter();
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
            None => Segment::open_named(&session.choice.segment_name, ring_size, self.credentials.uid)?,
        };
        let own_wake = OwnWake::new()?;
        control::send(self.control.as_fd(), &control::encode(control::READY, &[]), &[own_wake.for_peer()])?;
        let wake = (own_wake, peer_wake);
        let Connecting { control, options, credentials, name, local, .. } = self;
        Stream::establish(control, wake, segment, session, Role::Client, &options, credentials, &name, local)
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
        let mut connecting = Connecting::send_hello(name, options, server_key, control, deadline)?;
        loop {
            connecting = match connecting.advance()? {
                ConnectProgress::Done(stream) => return Ok(stream),
                ConnectProgress::Waiting(connecting) => connecting,
            };
            platform::wait_fd(connecting.fd(), PollFlags::IN, Some(deadline))?;
        }
    }
}
