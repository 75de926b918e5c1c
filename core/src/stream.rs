//! `Stream`: one established, encrypted connection over a shared segment.
//!
//! Sending seals each fragment of a message straight into the outbound ring and
//! publishes it; receiving copies each sealed frame out of the inbound ring into
//! private memory, then verifies and decrypts it into the caller's buffer. Both
//! directions are independent: one thread may send while another receives, and
//! concurrent senders (or receivers) take turns per whole message.
//!
//! Any authentication failure or protocol violation ends the connection: every
//! later call reports it, and the control socket is shut down so the peer knows.
//!
//! Each side wakes a sleeping peer by writing the peer's eventfd (passed during
//! the handshake); the stream's pollable fd is an epoll set of its own eventfd
//! and the control socket (see [`wait`](crate::wait)).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::cipher::CipherSuite;
use crate::control::{self, Record};
use crate::endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::frame::{FrameHeader, FrameKind, FrameOpener, FrameSealer, HEADER_LEN};
use crate::handshake::{Backend, Initiator, Session};
use crate::keys::{Keypair, PublicKey};
use crate::options::{Options, MAX_FRAGMENT};
use crate::platform::{self, Credentials, OwnWake};
use crate::ring::{Consumer, Producer};
use crate::segment::{self, Segment};
use crate::sodium;
use crate::wait::{Check, Waiter};

mod send;

use send::PendingSend;
pub use send::SendProgress;

/// Which end of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The side that connected.
    Client,
    /// The side that accepted.
    Server,
}

/// Message and byte counts of a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages sent.
    pub messages_sent: u64,
    /// Plaintext bytes sent.
    pub bytes_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Plaintext bytes received.
    pub bytes_received: u64,
}

#[derive(Default)]
struct Counters {
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
    messages_received: AtomicU64,
    bytes_received: AtomicU64,
}

struct Tx {
    sealer: FrameSealer,
    ring: Producer,
    /// A message `send_resumable` left partly in the ring: until it completes,
    /// no other message may start (the peer reassembles one at a time).
    pending: Option<PendingSend>,
}

/// A message partly received when a call had to return (timeout, WouldBlock).
struct Partial {
    message_len: u32,
    bytes: Vec<u8>,
}

struct Rx {
    opener: FrameOpener,
    ring: Consumer,
    /// Private copy of the frame being opened; grows to the largest frame once.
    scratch: Vec<u8>,
    partial: Option<Partial>,
}

/// Where a received message goes.
trait Sink {
    /// Makes room for a message of `len` bytes, or says it does not fit.
    fn prepare(&mut self, len: u32) -> Result<()>;
    /// The part of the message at `offset`.
    fn part(&mut self, offset: u32, len: u32) -> &mut [u8];
}

impl Sink for Vec<u8> {
    fn prepare(&mut self, len: u32) -> Result<()> {
        self.clear();
        self.resize(len as usize, 0);
        Ok(())
    }
    fn part(&mut self, offset: u32, len: u32) -> &mut [u8] {
        &mut self[offset as usize..(offset + len) as usize]
    }
}

struct SliceSink<'a>(&'a mut [u8]);

impl Sink for SliceSink<'_> {
    fn prepare(&mut self, len: u32) -> Result<()> {
        if len as usize > self.0.len() {
            return Err(Error::buffer_too_small(len as usize, self.0.len()));
        }
        Ok(())
    }
    fn part(&mut self, offset: u32, len: u32) -> &mut [u8] {
        &mut self.0[offset as usize..(offset + len) as usize]
    }
}

/// An encrypted, authenticated message stream to one peer.
pub struct Stream {
    control: UnixStream,
    /// The peer's wake-up eventfd (checked and made non-blocking).
    peer_wake: OwnedFd,
    segment: Segment,
    waiter: Waiter,
    tx: Mutex<Tx>,
    /// Signalled (with `tx`) when a partly sent message completes or is abandoned.
    tx_idle: Condvar,
    rx: Mutex<Rx>,
    closed: AtomicBool,
    peer_closed: AtomicBool,
    failure: OnceLock<Error>,
    counters: Counters,
    role: Role,
    endpoint: String,
    peer: PublicKey,
    local: PublicKey,
    credentials: Credentials,
    cipher: CipherSuite,
    peer_max_message: u32,
    fragment: u32,
    send_timeout: Option<Duration>,
    recv_timeout: Option<Duration>,
}

/// How long `close` waits for room for its CLOSE frame when the ring is full.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// The instant `timeout` from now; None (wait forever) without a timeout, or
/// when the timeout is too long for an `Instant` to hold.
pub(crate) fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

impl Stream {
    /// Connects to the server of endpoint `name`, whose key `options.server_key`
    /// pins, and completes the handshake within `options.handshake_timeout`.
    pub fn connect(name: &str, options: &Options) -> Result<Stream> {
        sodium::init()?;
        options.validate()?;
        let server_key = options.server_key.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "connecting needs the server's public key: set Options::server_key (shmsock never trusts a key the server sends)",
            )
        })?;
        let keypair = options.keypair.clone().unwrap_or_else(Keypair::generate);
        let deadline = Instant::now() + options.handshake_timeout;
        let control = endpoint::connect(name)?;
        control.set_nonblocking(true).map_err(|e| Error::io("configuring the control socket", e))?;
        let socket = control.as_fd();
        let credentials = platform::peer_credentials(socket)?;
        let mut initiator = Initiator::new(&keypair, &server_key, name, options.client_offer())?;
        control::send(socket, &control::encode(control::HELLO, &initiator.write_hello()?), &[])?;
        let mut fds = Vec::new();
        let record = control::receive(socket, &mut fds, Some(deadline)).map_err(|e| match e.kind() {
            ErrorKind::Timeout => Error::new(
                ErrorKind::Timeout,
                format!("the server of '{name}' did not answer the handshake within {:?}", options.handshake_timeout),
            ),
            _ => e.context(&format!("connecting to '{name}'")),
        })?;
        let reply = match record {
            Record::Reply(reply) => reply,
            Record::Reject(reason, text) => return Err(reason.to_error(name, &text)),
            _ => {
                return Err(Error::new(
                    ErrorKind::ProtocolViolation,
                    "the server answered the hello with an unexpected record",
                ))
            }
        };
        let session = initiator.read_reply(&reply)?;
        let ring_size = session.choice.ring_size;
        // The REPLY carries, in order, the memfd (memfd backend only) and the
        // server's wake-up eventfd.
        let mut fds = fds.into_iter();
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
            None => Segment::open_named(&session.choice.segment_name, ring_size, credentials.uid)?,
        };
        let own_wake = OwnWake::new()?;
        control::send(socket, &control::encode(control::READY, &[]), &[own_wake.for_peer()])?;
        let wake = (own_wake, peer_wake);
        Stream::establish(control, wake, segment, session, Role::Client, options, credentials, name, *keypair.public())
    }

    /// Builds the stream once both sides hold the segment and each other's
    /// wake-up descriptor (`wake`: this side's, then the peer's, already checked).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn establish(
        control: UnixStream,
        wake: (OwnWake, OwnedFd),
        segment: Segment,
        session: Session,
        role: Role,
        options: &Options,
        credentials: Credentials,
        endpoint: &str,
        local: PublicKey,
    ) -> Result<Stream> {
        let (send_ring, recv_ring) = match role {
            Role::Client => (segment::CLIENT_TO_SERVER, segment::SERVER_TO_CLIENT),
            Role::Server => (segment::SERVER_TO_CLIENT, segment::CLIENT_TO_SERVER),
        };
        let (own_max, peer_max) = match role {
            Role::Client => (session.offer.max_message, session.choice.max_message),
            Role::Server => (session.choice.max_message, session.offer.max_message),
        };
        let ring_size = session.choice.ring_size;
        let cipher = session.choice.cipher;
        // A quarter of the ring per frame lets the producer fill one part while
        // the consumer opens another.
        let fragment = MAX_FRAGMENT.min(ring_size / 4 - (HEADER_LEN + cipher.tag_len() + 16) as u32);
        let (own_wake, peer_wake) = wake;
        let sleeper = platform::Sleeper::new(own_wake, control.as_fd())?;
        Ok(Stream {
            control,
            peer_wake,
            waiter: Waiter::new(options.spin, sleeper),
            tx: Mutex::new(Tx {
                sealer: FrameSealer::new(session.send),
                ring: Producer::new(send_ring, ring_size),
                pending: None,
            }),
            tx_idle: Condvar::new(),
            rx: Mutex::new(Rx {
                opener: FrameOpener::new(session.recv, own_max),
                ring: Consumer::new(recv_ring, ring_size),
                scratch: Vec::new(),
                partial: None,
            }),
            segment,
            closed: AtomicBool::new(false),
            peer_closed: AtomicBool::new(false),
            failure: OnceLock::new(),
            counters: Counters::default(),
            role,
            endpoint: endpoint.to_string(),
            peer: session.peer,
            local,
            credentials,
            cipher,
            peer_max_message: peer_max,
            fragment,
            send_timeout: options.send_timeout,
            recv_timeout: options.recv_timeout,
        })
    }

    fn socket(&self) -> BorrowedFd<'_> {
        self.control.as_fd()
    }

    /// Wakes the peer (after taking its waiting flag, or at close).
    fn wake_peer(&self) {
        platform::wake_peer(self.peer_wake.as_fd());
    }

    /// Ends the connection after a fatal error, remembering the error.
    fn fail(&self, err: Error) -> Error {
        if err.kind().ends_connection() && !matches!(err.kind(), ErrorKind::PeerClosed | ErrorKind::Closed) {
            let _ = self.failure.set(err.clone());
            platform::shutdown(self.socket());
        }
        err
    }

    fn check_usable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(ErrorKind::Closed, "the stream was closed"));
        }
        if let Some(err) = self.failure.get() {
            return Err(err.clone());
        }
        Ok(())
    }

    fn peer_closed_error(&self) -> Error {
        Error::new(ErrorKind::PeerClosed, format!("the peer closed the connection on '{}'", self.endpoint))
    }

    // -------------------------------------------------------------- receiving

    /// Receives the next message, waiting up to the stream's receive timeout.
    pub fn recv(&self) -> Result<Vec<u8>> {
        self.recv_timeout(self.recv_timeout)
    }

    /// Receives the next message, waiting up to `timeout` (None: forever).
    pub fn recv_timeout(&self, timeout: Option<Duration>) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.recv_until(&mut out, deadline_after(timeout), false)?;
        Ok(out)
    }

    /// Receives the next message if one is complete now; else WouldBlock (and
    /// the pollable fd becomes readable when one arrives).
    pub fn try_recv(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.recv_until(&mut out, None, true)?;
        Ok(out)
    }

    /// Receives the next message into `buf`, returning its length. A buffer too
    /// small gives BufferTooSmall with the size needed, and the message is kept.
    pub fn recv_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into_timeout(buf, self.recv_timeout)
    }

    /// As [`recv_into`](Stream::recv_into), waiting up to `timeout`.
    pub fn recv_into_timeout(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize> {
        self.recv_until(&mut SliceSink(buf), deadline_after(timeout), false)
    }

    /// As [`recv_into`](Stream::recv_into) without waiting.
    pub fn try_recv_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_until(&mut SliceSink(buf), None, true)
    }

    fn recv_until(&self, out: &mut dyn Sink, deadline: Option<Instant>, try_only: bool) -> Result<usize> {
        self.check_usable()?;
        let mut rx = if try_only {
            self.rx.try_lock().ok_or_else(|| Error::new(ErrorKind::WouldBlock, "another thread is receiving"))?
        } else {
            self.rx.lock()
        };
        let rx = &mut *rx;
        if self.peer_closed.load(Ordering::Acquire) {
            return Err(self.peer_closed_error());
        }
        // (message_len, bytes received) of the message being assembled in `out`.
        let mut progress: Option<(u32, u32)> = None;
        if let Some(partial) = rx.partial.take() {
            if let Err(e) = out.prepare(partial.message_len) {
                rx.partial = Some(partial);
                return Err(e);
            }
            let have = partial.bytes.len() as u32;
            out.part(0, have).copy_from_slice(&partial.bytes);
            progress = Some((partial.message_len, have));
        }
        let seg = &self.segment;
        loop {
            match self.receive_available(rx, out, &mut progress) {
                Ok(Some(len)) => {
                    self.counters.messages_received.fetch_add(1, Ordering::Relaxed);
                    self.counters.bytes_received.fetch_add(len as u64, Ordering::Relaxed);
                    return Ok(len);
                }
                Ok(None) => {}
                Err(e) => {
                    if e.kind() == ErrorKind::BufferTooSmall {
                        return Err(e);
                    }
                    return Err(self.fail(e));
                }
            }
            let waited = if try_only {
                // Make the pollable fd report the next message: drop stale
                // wake-ups, say we wait, and look once more.
                let drained = self.waiter.drain(self.socket());
                let hung_up = self.waiter.peer_hung_up();
                rx.ring.arm(seg);
                match drained.and_then(|()| rx.ring.has_data(seg)) {
                    Ok(true) => {
                        rx.ring.disarm(seg);
                        continue;
                    }
                    Ok(false) if hung_up => Err(Error::new(
                        ErrorKind::PeerGone,
                        "the peer process exited or was killed without closing the connection",
                    )),
                    Ok(false) => Err(Error::new(ErrorKind::WouldBlock, "no complete message yet")),
                    Err(e) => Err(e),
                }
            } else {
                let ring = &rx.ring;
                self.waiter.wait(self.socket(), deadline, |armed| {
                    self.check_usable()?;
                    if armed {
                        ring.arm(seg);
                    }
                    if ring.has_data(seg)? {
                        ring.disarm(seg);
                        Ok(Check::Ready(()))
                    } else {
                        Ok(Check::NotYet)
                    }
                })
            };
            if let Err(e) = waited {
                if let Some((message_len, received)) = progress {
                    rx.partial = Some(Partial { message_len, bytes: out.part(0, received).to_vec() });
                }
                return Err(match e.kind() {
                    ErrorKind::Timeout => {
                        Error::new(ErrorKind::Timeout, "recv timed out: no message arrived; nothing was lost")
                    }
                    _ => self.fail(e),
                });
            }
        }
    }

    /// Opens every frame already in the ring until a message completes. Never
    /// waits. Returns the message length when one completed.
    fn receive_available(
        &self,
        rx: &mut Rx,
        out: &mut dyn Sink,
        progress: &mut Option<(u32, u32)>,
    ) -> Result<Option<usize>> {
        let seg = &self.segment;
        loop {
            let peeked = rx.ring.peek(seg)?;
            // A PAD marker skipped by peek freed space a sleeping producer may wait for.
            if rx.ring.take_owed_wake() {
                self.wake_peer();
            }
            let Some(peeked) = peeked else { return Ok(None) };
            let header = rx.opener.check_header(&peeked.header)?;
            let sealed = header.sealed_len(rx.opener.suite());
            let record = rx.ring.check_record(&peeked, sealed)?;
            if header.kind == FrameKind::Data && header.offset == 0 {
                out.prepare(header.message_len)?;
                *progress = Some((header.message_len, 0));
            }
            if rx.scratch.len() < sealed {
                rx.scratch.resize(sealed, 0);
            }
            rx.scratch[..HEADER_LEN].copy_from_slice(&peeked.header);
            seg.copy_out(peeked.offset + HEADER_LEN, &mut rx.scratch[HEADER_LEN..sealed])?;
            // The frame is private now: free its ring space before decrypting.
            if rx.ring.advance(seg, record) {
                self.wake_peer();
            }
            match header.kind {
                FrameKind::Close => {
                    rx.opener.open(&header, &rx.scratch[..sealed], &mut [])?;
                    self.peer_closed.store(true, Ordering::Release);
                    return Err(self.peer_closed_error());
                }
                FrameKind::Data => {
                    rx.opener.open(&header, &rx.scratch[..sealed], out.part(header.offset, header.frame_len))?;
                    if header.is_last_fragment() {
                        *progress = None;
                        return Ok(Some(header.message_len as usize));
                    }
                    if let Some((_, received)) = progress {
                        *received += header.frame_len;
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- closing

    /// Closes the stream: the peer receives every message sent before, then
    /// PeerClosed. Idempotent; later calls on this stream fail with Closed.
    /// When the ring is full, waits up to 2 s (or the send timeout, if shorter)
    /// for the peer to make room for the close; after that the peer sees PeerGone.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if self.failure.get().is_none() {
            // A thread blocked in send holds the lock; it wakes from the shutdown
            // below and fails with Closed, and the peer sees PeerGone instead.
            if let Some(mut tx) = self.tx.try_lock_for(Duration::from_millis(100)) {
                let tx = &mut *tx;
                // A message partly sent by send_resumable: the peer refuses a
                // CLOSE in the middle of a message, and must not take the part
                // for a whole, so the connection ends without CLOSE (PeerGone).
                if tx.pending.take().is_some() {
                    platform::shutdown(self.socket());
                    self.tx_idle.notify_all();
                    return Ok(());
                }
                let seg = &self.segment;
                let sealed = FrameHeader::CLOSE.sealed_len(tx.sealer.suite());
                // With the ring full (a peer that reads slowly), giving up at once
                // turned a clean close into PeerGone on the other side, although
                // every message arrived. Wait for room a bounded time (the send
                // timeout if shorter); a dead peer ends the wait at once.
                let linger = self.send_timeout.map_or(CLOSE_LINGER, |t| t.min(CLOSE_LINGER));
                let reserved = self.reserve_waiting(&mut tx.ring, sealed, Some(Instant::now() + linger), false).ok();
                if let Some(reservation) = reserved {
                    if seg.seal_at(reservation.offset, &mut tx.sealer, &FrameHeader::CLOSE, &[]).is_ok() {
                        // Wake unconditionally: the shutdown below ends the
                        // connection, so a sleeping peer must look now.
                        let _ = tx.ring.publish(seg, reservation);
                        self.wake_peer();
                    }
                }
            }
        }
        platform::shutdown(self.socket());
        Ok(())
    }

    // ------------------------------------------------------------ information

    /// The peer's static public key, authenticated by the handshake.
    pub fn peer_public_key(&self) -> PublicKey {
        self.peer
    }

    /// This side's static public key.
    pub fn local_public_key(&self) -> PublicKey {
        self.local
    }

    /// The peer process's pid, uid and gid, from the kernel (SO_PEERCRED).
    pub fn peer_credentials(&self) -> Credentials {
        self.credentials
    }

    /// Message and byte counts.
    pub fn stats(&self) -> Stats {
        Stats {
            messages_sent: self.counters.messages_sent.load(Ordering::Relaxed),
            bytes_sent: self.counters.bytes_sent.load(Ordering::Relaxed),
            messages_received: self.counters.messages_received.load(Ordering::Relaxed),
            bytes_received: self.counters.bytes_received.load(Ordering::Relaxed),
        }
    }

    /// The transport cipher in use.
    pub fn cipher(&self) -> CipherSuite {
        self.cipher
    }

    /// The segment backend in use.
    pub fn backend(&self) -> Backend {
        self.segment.backend()
    }

    /// The capacity of each ring.
    pub fn ring_size(&self) -> u32 {
        self.segment.ring_size()
    }

    /// The most plaintext bytes this stream puts in one frame: messages up to
    /// this size are sealed as one frame.
    pub fn max_frame_payload(&self) -> u32 {
        self.fragment
    }

    /// The largest message the peer accepts.
    pub fn peer_max_message_size(&self) -> u32 {
        self.peer_max_message
    }

    /// The connection's shared segment, for tests that play a hostile process
    /// writing into it (not part of the supported API).
    #[doc(hidden)]
    pub fn shared_segment(&self) -> &Segment {
        &self.segment
    }

    /// The endpoint name.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// True once closed by this side.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The pollable fd: readable when, after a `try_recv` returned WouldBlock (or
    /// a blocking call slept), a message, a close or the peer's death is pending.
    /// Wait on it with epoll, asyncio's `add_reader` or libuv, then call
    /// `try_recv` until WouldBlock.
    ///
    /// It is an epoll set holding this side's wake-up eventfd and the control
    /// socket; wait on it for readability only.
    pub fn pollable_fd(&self) -> BorrowedFd<'_> {
        self.waiter.pollable_fd()
    }
}

/// The pollable fd (see [`Stream::pollable_fd`]).
impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.pollable_fd().as_raw_fd()
    }
}

/// The pollable fd (see [`Stream::pollable_fd`]).
impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pollable_fd()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("endpoint", &self.endpoint)
            .field("role", &self.role)
            .field("peer", &self.peer.fingerprint())
            .field("cipher", &self.cipher)
            .field("backend", &self.segment.backend())
            .finish()
    }
}
