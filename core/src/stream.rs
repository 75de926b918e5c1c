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
use crate::error::{Error, ErrorKind, Result};
use crate::frame::{FrameOpener, FrameSealer, HEADER_LEN};
use crate::handshake::{Backend, Session};
use crate::keys::PublicKey;
use crate::options::{Options, MAX_FRAGMENT};
use crate::placement::{self, Hints};
use crate::platform::{self, Credentials, OwnWake};
use crate::ring::{Consumer, Interest, Producer};
use crate::seats::Seat;
use crate::segment::{self, Segment};
use crate::wait::Waiter;

mod close;
mod recv;
mod send;

use recv::Rx;
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

impl Counters {
    /// Adds `n` to a counter that only the holder of its direction's lock
    /// writes: a load and a store rather than a locked read-modify-write,
    /// which cost about 7 ns each on every message's path (`stats` reads
    /// them with relaxed loads, from any thread).
    fn add(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// A message of `len` bytes was sent (call with the send lock held).
    fn sent(&self, len: u64) {
        Counters::add(&self.messages_sent, 1);
        Counters::add(&self.bytes_sent, len);
    }

    /// A message of `len` bytes was received (call with the receive lock held).
    fn received(&self, len: u64) {
        Counters::add(&self.messages_received, 1);
        Counters::add(&self.bytes_received, len);
    }
}

struct Tx {
    sealer: FrameSealer,
    ring: Producer,
    /// A message `send_resumable` left partly in the ring: until it completes,
    /// no other message may start (the peer reassembles one at a time).
    pending: Option<PendingSend>,
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
    /// What a `try_recv` that found nothing waits for, and what a non-blocking
    /// send that found no room waits for: re-armed after every drain of the
    /// shared wake-up (see [`drain_wakeups`](Stream::drain_wakeups)).
    rx_interest: Interest,
    tx_interest: Interest,
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
    /// The process that made this stream (see [`platform::Origin`]).
    origin: platform::Origin,
    /// A listener's count of its open streams, held until the stream is
    /// closed (see `seats`); None for a client's or a Server's stream.
    seat: Mutex<Option<Seat>>,
}

/// How long `close` waits for room for its CLOSE frame when the ring is full.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// The instant `timeout` from now; None (wait forever) without a timeout, or
/// when the timeout is too long for an `Instant` to hold.
pub(crate) fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

impl Stream {
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
        let producer = Producer::new(send_ring, ring_size);
        let consumer = Consumer::new(recv_ring, ring_size);
        let (rx_interest, tx_interest) = (consumer.interest(), producer.interest());
        Ok(Stream {
            control,
            peer_wake,
            waiter: Waiter::new(options.spin, sleeper),
            tx: Mutex::new(Tx { sealer: FrameSealer::new(session.send), ring: producer, pending: None }),
            tx_idle: Condvar::new(),
            rx_interest,
            tx_interest,
            rx: Mutex::new(Rx::new(FrameOpener::new(session.recv, own_max), consumer)),
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
            origin: platform::Origin::here(),
            seat: Mutex::new(None),
            send_timeout: options.send_timeout,
            recv_timeout: options.recv_timeout,
        })
    }

    fn socket(&self) -> BorrowedFd<'_> {
        self.control.as_fd()
    }

    /// This side's and the peer's CPU hints in the segment.
    fn hints(&self) -> Option<Hints<'_>> {
        let (own, peer) = match self.role {
            Role::Client => (placement::CLIENT_CPU_HINT, placement::SERVER_CPU_HINT),
            Role::Server => (placement::SERVER_CPU_HINT, placement::CLIENT_CPU_HINT),
        };
        Some(Hints { own: self.segment.atomic_u32(own), peer: self.segment.atomic_u32(peer) })
    }

    /// Drains the wake-ups of both directions (before a `try_` call arms its
    /// own), then re-arms the other direction's wish, if any: its waiting flag
    /// is set again, and if it is met already the wake-up is signalled again,
    /// so the pollable fd stays readable for it. The caller has cleared its own
    /// direction's wish.
    fn drain_wakeups(&self) -> Result<()> {
        let drained = self.waiter.drain(self.socket());
        let seg = &self.segment;
        // Both, unconditionally: `|` rather than `||`, each re-arms its flag.
        if self.rx_interest.rearm(seg) | self.tx_interest.rearm(seg) {
            self.waiter.wake_self();
        }
        drained
    }

    /// After a blocking wait of one direction, which may have slept and so
    /// consumed the shared wake-up: re-arms the other direction's wish, if an
    /// event loop left one (as `drain_wakeups` does), so that its pollable fd
    /// becomes readable again when that wish is met, now or later.
    fn rearm_after_wait(&self, other: &Interest) {
        if other.rearm(&self.segment) {
            self.waiter.wake_self();
        }
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

    /// True in a child of `fork()` made after this stream: it holds a copy of
    /// the stream, not the connection, and sends, receives and closes nothing.
    pub(crate) fn forked_away(&self) -> bool {
        self.origin.forked()
    }

    /// Err in a child of `fork()` (see [`forked_away`](Stream::forked_away)).
    fn check_this_process(&self) -> Result<()> {
        if self.forked_away() {
            return Err(platform::Origin::forked_error("stream"));
        }
        Ok(())
    }

    fn check_usable(&self) -> Result<()> {
        self.check_this_process()?;
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

    // ---------------------------------------------------------------- closing

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

    /// For an event loop that stops reading this stream for a while (to push
    /// back on a peer that does not take its replies): withdraws the wish for
    /// incoming messages and consumes pending wake-ups, so that the pollable fd
    /// becomes readable again only for what the loop still waits for (ring
    /// space a `try_send` or `send_resumable` found missing, or the peer's
    /// death), not for messages it leaves unread. The next `try_recv` wishes
    /// for messages again.
    pub fn pause_receiving(&self) -> Result<()> {
        self.check_this_process()?;
        self.rx_interest.clear();
        self.drain_wakeups()
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
