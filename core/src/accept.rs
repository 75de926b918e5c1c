//! The server side of the handshake as a non-blocking state machine.
//!
//! A [`Handshake`] owns one accepted control socket and advances only on what
//! is already there: [`Handshake::advance`] never waits. Whoever drives it (the
//! server's reactor, or `Listener::accept_timeout` polling several at once)
//! watches [`Handshake::fd`] for readability and calls `advance` when it is
//! readable or when [`Handshake::deadline`] has passed. So a silent or slow
//! client costs one socket and a few hundred bytes, never a thread and never
//! the time of the clients behind it.
//!
//! Every refusal before the REPLY is answered with a REJECT saying why (a
//! malformed first record gets reason 5, a full server reason 7); after the
//! REPLY the client has all it needs to notice a failure itself (end of stream).
//!
//! [`Limits`] bounds the handshakes in progress, by what each costs: one that
//! waits for its HELLO holds a descriptor, one past it a segment.

use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use crate::control::{self, RecordReader, HELLO, READY};
use crate::error::{Error, ErrorKind, Result};
use crate::handshake::{RejectReason, Session};
use crate::listener::{Listener, Pending};
use crate::options::Options;
use crate::platform::{self, Credentials, OwnWake};
use crate::segment::Segment;
use crate::stream::{Role, Stream};

/// What the handshake waits for.
enum Stage {
    /// The client's HELLO (Noise message 1).
    Hello,
    /// The client's READY, after our REPLY (sent at `replied`): it mapped the segment.
    Ready { segment: Segment, own_wake: OwnWake, session: Box<Session>, replied: Instant },
    /// Finished (established, refused or failed): nothing more to do.
    Over,
}

/// What one call to [`Handshake::advance`] achieved.
pub enum Progress {
    /// Waiting for the client: call again when [`Handshake::fd`] is readable.
    Waiting,
    /// The connection is established.
    Done(Box<Stream>),
}

/// One client's handshake in progress.
pub struct Handshake {
    socket: UnixStream,
    credentials: Credentials,
    deadline: Instant,
    stage: Stage,
    /// The record being read, and the descriptors that came with it.
    reader: RecordReader,
}

/// How many handshakes a server (or `Listener::accept`) keeps in progress at
/// once, overall and per uid, by what each one costs.
///
/// A client whose HELLO has not arrived whole costs a descriptor and a few
/// bytes. Those are bounded by `max_connections` (and
/// `max_connections_per_uid`), the number of descriptors the server is sized
/// for anyway; when they are full, the oldest is refused so that the newcomer
/// has its chance. A thousand silent connections therefore wait quietly for
/// their deadline instead of being refused and re-made in a loop.
///
/// A handshake past its HELLO has cost a key exchange and holds a new segment
/// until the client's READY. Those are bounded by `max_pending_handshakes`
/// (and `max_pending_handshakes_per_uid`); a HELLO beyond them is refused.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    awaiting_hello: usize,
    awaiting_hello_per_uid: usize,
    holding_segment: usize,
    holding_segment_per_uid: usize,
}

impl Limits {
    /// The limits `options` set.
    pub fn new(options: &Options) -> Limits {
        Limits {
            awaiting_hello: options.max_connections,
            awaiting_hello_per_uid: options.max_connections_per_uid.unwrap_or(options.max_connections),
            holding_segment: options.max_pending_handshakes,
            holding_segment_per_uid: options.max_pending_handshakes_per_uid,
        }
    }

    /// Whether a handshake of `uid` may create its segment now, beside `others`.
    pub fn room_for_segment<'a>(&self, uid: u32, others: impl IntoIterator<Item = &'a Handshake>) -> bool {
        let (mut total, mut of_uid) = (0, 0);
        for h in others.into_iter().filter(|h| h.holds_segment()) {
            total += 1;
            of_uid += usize::from(h.credentials.uid == uid);
        }
        total < self.holding_segment && of_uid < self.holding_segment_per_uid
    }

    /// Which handshake must give way (the oldest still awaiting its HELLO, of
    /// `uid` if that uid is at its own limit) before a new client of `uid` is
    /// taken in; None when there is room.
    pub fn to_evict<'a, K: Copy>(
        &self,
        uid: u32,
        handshakes: impl IntoIterator<Item = (K, &'a Handshake)>,
    ) -> Option<K> {
        let (mut total, mut of_uid) = (0, 0);
        // (deadline, key) of the oldest overall and of `uid`: handshakes start
        // with the same timeout, so the earliest deadline is the oldest.
        let mut oldest: Option<(Instant, K)> = None;
        let mut oldest_of_uid: Option<(Instant, K)> = None;
        let keep_older = |best: &mut Option<(Instant, K)>, deadline: Instant, key: K| {
            if best.is_none_or(|(d, _)| deadline < d) {
                *best = Some((deadline, key));
            }
        };
        for (key, h) in handshakes.into_iter().filter(|(_, h)| h.awaits_hello()) {
            total += 1;
            keep_older(&mut oldest, h.deadline, key);
            if h.credentials.uid == uid {
                of_uid += 1;
                keep_older(&mut oldest_of_uid, h.deadline, key);
            }
        }
        let victim = if of_uid >= self.awaiting_hello_per_uid {
            oldest_of_uid
        } else if total >= self.awaiting_hello {
            oldest
        } else {
            None
        };
        victim.map(|(_, key)| key)
    }
}

/// One complete control record.
struct RawRecord {
    kind: u8,
    body: Vec<u8>,
}

impl Handshake {
    /// Starts the handshake of an accepted socket, which must end by `deadline`.
    pub fn new(pending: Pending, deadline: Instant) -> Handshake {
        let (socket, credentials) = pending.into_parts();
        Handshake { socket, credentials, deadline, stage: Stage::Hello, reader: RecordReader::default() }
    }

    /// The socket to watch for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// When this handshake must have finished.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Who connected, per the kernel.
    pub fn credentials(&self) -> Credentials {
        self.credentials
    }

    /// True while the client's HELLO has not been read whole (nothing of this
    /// handshake is committed yet but its socket).
    pub fn awaits_hello(&self) -> bool {
        matches!(self.stage, Stage::Hello)
    }

    /// True between the REPLY and the READY: this handshake holds a segment.
    pub fn holds_segment(&self) -> bool {
        matches!(self.stage, Stage::Ready { .. })
    }

    /// Between the REPLY and the READY, until when a waiting thread may look
    /// for the READY before it sleeps (see `wait::look_for_answer`): one
    /// `wait::ANSWER_LOOK` (300 µs) after the REPLY, so a client that stalls
    /// its READY costs that much looking once, not until its deadline.
    pub fn answer_looked_for_until(&self) -> Option<Instant> {
        match self.stage {
            Stage::Ready { replied, .. } => Some(replied + crate::wait::ANSWER_LOOK),
            _ => None,
        }
    }

    /// Refuses the client: sends a REJECT (never blocking; a client that does
    /// not read it loses it) and ends the handshake. Returns the error to report.
    pub fn refuse(&mut self, reason: RejectReason, err: Error) -> Error {
        if matches!(self.stage, Stage::Hello) {
            // Take what the client already sent (usually its HELLO), so that
            // closing does not discard unread bytes under its REJECT.
            let _ = self.read_record();
            self.send_reject(reason, err.message());
        }
        self.stage = Stage::Over;
        platform::shutdown(self.socket.as_fd());
        err
    }

    fn send_reject(&self, reason: RejectReason, text: &str) {
        let record = control::encode_reject(reason, text);
        // One non-blocking write: a REJECT is small and the socket buffer empty
        // at this stage, and a client that filled nothing cannot make it block.
        let _ = rustix::net::send(
            self.socket.as_fd(),
            &record,
            rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL,
        );
    }

    /// Advances with what the client sent so far, without waiting. A refusal
    /// or failure is an error (the client got a REJECT where one fits); the
    /// handshake is over then. Past its deadline, a handshake fails with Timeout.
    ///
    /// `room_for_segment` is asked when a whole HELLO is there, before any work
    /// is spent on it: false refuses the client (REJECT 7, the server is busy)
    /// instead of creating its segment (see [`Limits::room_for_segment`]).
    pub fn advance(&mut self, listener: &Listener, room_for_segment: impl FnOnce() -> bool) -> Result<Progress> {
        let mut room_for_segment = Some(room_for_segment);
        loop {
            let record = match self.read_record() {
                Ok(Some(record)) => record,
                Ok(None) if Instant::now() >= self.deadline => {
                    let err = Error::new(ErrorKind::Timeout, "the client did not complete the handshake in time");
                    return Err(self.refuse(RejectReason::ServerError, err));
                }
                Ok(None) => return Ok(Progress::Waiting),
                Err(e) => return Err(self.fail(e)),
            };
            match std::mem::replace(&mut self.stage, Stage::Over) {
                Stage::Hello => {
                    // Still answering the HELLO: a refusal or failure gets a REJECT.
                    self.stage = Stage::Hello;
                    if !room_for_segment.take().is_none_or(|room| room()) {
                        let err = Error::new(
                            ErrorKind::ResourceExhausted,
                            "too many handshakes in progress on the server; try again",
                        );
                        return Err(self.fail(err));
                    }
                    self.stage = self.on_hello(listener, record).map_err(|e| self.fail(e))?;
                }
                Stage::Ready { segment, own_wake, session, .. } => {
                    return match self.on_ready(listener, record, segment, own_wake, *session) {
                        Ok(stream) => Ok(Progress::Done(Box::new(stream))),
                        Err(e) => Err(self.fail(e)),
                    };
                }
                Stage::Over => return Err(Error::new(ErrorKind::Closed, "the handshake is over")),
            }
        }
    }

    /// Ends the handshake on an error, with a REJECT if the client still waits
    /// for an answer to its HELLO.
    fn fail(&mut self, err: Error) -> Error {
        if matches!(self.stage, Stage::Hello) && err.kind() != ErrorKind::PeerGone {
            let reason = RejectReason::for_error(err.kind());
            self.send_reject(reason, err.message());
        }
        self.stage = Stage::Over;
        platform::shutdown(self.socket.as_fd());
        err
    }

    fn on_hello(&mut self, listener: &Listener, record: RawRecord) -> Result<Stage> {
        // The admission check comes after reading the HELLO: refusing at once closed the
        // socket while the client was still sending it, so the client got EPIPE
        // or a reset (PeerGone) instead of reading the REJECT.
        listener.check_admission(self.credentials.uid)?;
        if record.kind != HELLO || !self.reader.fds().is_empty() {
            return Err(Error::new(ErrorKind::ProtocolViolation, "expected a HELLO record without descriptors"));
        }
        let cache = listener.handshake_cache();
        let mut responder = cache.responder(listener.keypair(), listener.name())?;
        let accepted =
            responder.read_hello_with(&record.body, listener.policy(), |rs| cache.static_dh(listener.keypair(), rs))?;
        let segment = cache.segment(accepted.choice.backend, accepted.choice.ring_size)?;
        let own_wake = OwnWake::new()?;
        let mut choice = accepted.choice;
        choice.segment_name = segment.name().to_string();
        let (reply, session) = responder.write_reply(&choice)?;
        // The READY brings the client's wake-up descriptor: a server at its fd
        // limit refuses now (REJECT 7) rather than hand out a dead connection.
        platform::ensure_descriptor_room(self.socket.as_fd(), 1)?;
        // The REPLY carries, in order, the memfd (memfd backend only) and this
        // side's wake-up eventfd. It is small and the socket's buffer is empty,
        // so this write completes at once.
        let reply_fds: Vec<BorrowedFd<'_>> = segment.memfd().into_iter().chain([own_wake.for_peer()]).collect();
        control::send(self.socket.as_fd(), &control::encode(control::REPLY, &reply), &reply_fds)?;
        let replied = Instant::now();
        // While the client works on the REPLY: the next handshake's responder
        // and segment.
        cache.prepare(listener.keypair(), listener.name());
        cache.prepare_segment(choice.backend, choice.ring_size);
        Ok(Stage::Ready { segment, own_wake, session: Box::new(session), replied })
    }

    fn on_ready(
        &mut self,
        listener: &Listener,
        record: RawRecord,
        mut segment: Segment,
        own_wake: OwnWake,
        session: Session,
    ) -> Result<Stream> {
        if record.kind != READY || !record.body.is_empty() {
            return Err(Error::new(ErrorKind::ProtocolViolation, "expected a READY record"));
        }
        // The READY carries exactly the client's wake-up eventfd.
        let fds = self.reader.fds();
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
        let socket = self.socket.try_clone().map_err(|e| Error::io("keeping the control socket", e))?;
        Stream::establish(
            socket,
            (own_wake, peer_wake),
            segment,
            session,
            Role::Server,
            listener.options(),
            self.credentials,
            listener.name(),
            listener.public_key(),
        )
        .map(|stream| stream.with_reassembly_share(listener.reassembly_share(self.credentials.pid)))
    }

    /// Reads what is there of the current record without waiting: Some when it
    /// is complete (descriptors in the reader), None when more must come.
    fn read_record(&mut self) -> Result<Option<RawRecord>> {
        Ok(self
            .reader
            .read(self.socket.as_fd(), "the client")?
            .map(|(header, body)| RawRecord { kind: header[0], body }))
    }
}
