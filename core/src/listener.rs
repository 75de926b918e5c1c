//! `Listener`: a bound endpoint that accepts clients and runs the server side of
//! the handshake (uid check, allow-list, negotiation, segment creation, and the
//! exchange of wake-up eventfds).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustix::event::PollFlags;

use crate::control::{self, Record};
use crate::endpoint::{self, Bound};
use crate::error::{Error, ErrorKind, Result};
use crate::handshake::{RejectReason, Responder, ServerPolicy, Session};
use crate::keys::{Keypair, PublicKey};
use crate::options::Options;
use crate::platform::{self, Credentials, OwnWake};
use crate::segment::Segment;
use crate::sodium;
use crate::stream::{Role, Stream};

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
        Ok(Listener {
            bound,
            keypair,
            policy: options.server_policy(),
            options: options.clone(),
            rejected: AtomicU64::new(0),
            last_rejection: Mutex::new(None),
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
    /// handshake (wrong key, not allowed, garbage) are refused and skipped; see
    /// [`rejected_count`](Listener::rejected_count).
    pub fn accept(&self) -> Result<Stream> {
        self.accept_timeout(None)
    }

    /// As [`accept`](Listener::accept), giving up with Timeout after `timeout`.
    pub fn accept_timeout(&self, timeout: Option<Duration>) -> Result<Stream> {
        let deadline = crate::stream::deadline_after(timeout);
        loop {
            let pending = self.accept_pending(deadline)?;
            match self.handshake(pending) {
                Ok(stream) => return Ok(stream),
                Err(_) => continue,
            }
        }
    }

    /// Accepts the next client socket without the handshake (for servers that run
    /// handshakes off their dispatch thread).
    pub fn accept_pending(&self, deadline: Option<Instant>) -> Result<Pending> {
        loop {
            if self.bound.is_released() {
                return Err(Error::new(ErrorKind::Closed, format!("the listener of '{}' was closed", self.name())));
            }
            match self.bound.listener.accept() {
                Ok((socket, _)) => {
                    socket.set_nonblocking(true).map_err(|e| Error::io("configuring an accepted socket", e))?;
                    let credentials = platform::peer_credentials(socket.as_fd())?;
                    return Ok(Pending { socket, credentials });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !platform::wait_fd(self.bound.listener.as_fd(), PollFlags::IN, deadline)? {
                        return Err(Error::new(ErrorKind::Timeout, "accept timed out: no client connected"));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
                Err(e) => return Err(Error::io("accepting a client", e)),
            }
        }
    }

    /// Runs the server side of the handshake on an accepted socket, within the
    /// handshake timeout. A refused client gets a REJECT saying why.
    pub fn handshake(&self, pending: Pending) -> Result<Stream> {
        let established = self.try_handshake(&pending).and_then(|(wake, segment, session)| {
            Stream::establish(
                pending.socket,
                wake,
                segment,
                session,
                Role::Server,
                &self.options,
                pending.credentials,
                self.name(),
                *self.keypair.public(),
            )
        });
        match established {
            Ok(stream) => Ok(stream),
            Err(e) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                *self.last_rejection.lock() = Some(e.clone());
                Err(e)
            }
        }
    }

    fn try_handshake(&self, pending: &Pending) -> Result<((OwnWake, OwnedFd), Segment, Session)> {
        let socket = pending.socket.as_fd();
        let deadline = Instant::now() + self.options.handshake_timeout;
        let reject = |err: Error| {
            let reason = RejectReason::for_error(err.kind());
            let _ = control::send(socket, &control::encode_reject(reason, err.message()), &[]);
            err
        };
        let mut fds = Vec::new();
        let hello = control::receive(socket, &mut fds, Some(deadline));
        // The uid check comes after reading the HELLO: refusing at once closed the
        // socket while the client was still sending it, so the client got EPIPE
        // or a reset (PeerGone) instead of reading the REJECT.
        if let Some(uids) = &self.options.allowed_uids {
            if !uids.contains(&pending.credentials.uid) {
                return Err(reject(Error::new(
                    ErrorKind::PermissionDenied,
                    format!("uid {} is not allowed to connect", pending.credentials.uid),
                )));
            }
        }
        let hello = match hello? {
            Record::Hello(hello) if fds.is_empty() => hello,
            _ => return Err(reject(Error::new(ErrorKind::ProtocolViolation, "expected a HELLO record"))),
        };
        let mut responder = Responder::new(&self.keypair, self.name())?;
        let accepted = responder.read_hello(&hello, &self.policy).map_err(reject)?;
        let mut segment = Segment::create(accepted.choice.backend, accepted.choice.ring_size).map_err(reject)?;
        let own_wake = OwnWake::new().map_err(reject)?;
        let mut choice = accepted.choice;
        choice.segment_name = segment.name().to_string();
        let (reply, session) = responder.write_reply(&choice)?;
        // The REPLY carries, in order, the memfd (memfd backend only) and this
        // side's wake-up eventfd.
        let reply_fds: Vec<BorrowedFd<'_>> = segment.memfd().into_iter().chain([own_wake.for_peer()]).collect();
        control::send(socket, &control::encode(control::REPLY, &reply), &reply_fds)?;
        match control::receive(socket, &mut fds, Some(deadline))? {
            Record::Ready => {}
            _ => return Err(Error::new(ErrorKind::ProtocolViolation, "expected a READY record")),
        }
        // The READY carries exactly the client's wake-up eventfd.
        let peer_wake = match (fds.pop(), fds.is_empty()) {
            (Some(fd), true) => fd,
            _ => {
                return Err(Error::new(
                    ErrorKind::ProtocolViolation,
                    "the client's READY must carry exactly one descriptor (its wake-up eventfd)",
                ))
            }
        };
        platform::check_peer_wake(peer_wake.as_fd())?;
        // The client has mapped the segment: nothing needs its name any more.
        segment.unlink();
        Ok(((own_wake, peer_wake), segment, session))
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

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.bound.listener.as_raw_fd()
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.bound.listener.as_fd()
    }
}
