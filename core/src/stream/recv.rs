//! Receiving on a [`Stream`]: frames are verified and decrypted into the
//! caller's buffer, and a message is delivered only once its last fragment
//! verified.
//!
//! AEGIS-128L frames are opened straight from the ring (libsodium reads each
//! ciphertext byte once: PROTOCOL.md §10); the header is copied to private
//! memory once, parsed and authenticated from that copy, and the frame's ring
//! space stays reserved until it is opened. ChaCha20-Poly1305 frames are copied
//! to private memory first, since its decryption reads the ciphertext twice.
//!
//! A message that arrives over several calls (a `try_recv` that found only part
//! of it, a timeout) is reassembled in place: the part received is kept (for a
//! `Vec` result, the very buffer, moved; for a caller's slice, one copy into a
//! private buffer that later calls decrypt into), so the work is linear in the
//! message size however finely it is fragmented.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{deadline_after, Stream};
use crate::cipher::CipherSuite;
use crate::error::{Error, ErrorKind, Result};
use crate::frame::{FrameHeader, FrameKind, FrameOpener, Opened, HEADER_LEN};
use crate::platform;
use crate::reassembly::Share;
use crate::recv_buf::{self, RecvBuf};
use crate::ring::Consumer;
use crate::wait::Check;

/// Why a stream was ended by its listener's bound on large messages being
/// received (see `reassembly`).
const EVICTED: &str = "the connection was ended: its large message stopped moving while other connections waited for room (Options::max_reassembly_bytes); what it had received was dropped";

/// A message partly received when a call had to return (timeout, WouldBlock).
struct Partial {
    message_len: u32,
    /// Bytes received so far (the start of `bytes`).
    received: u32,
    /// `message_len` bytes, the first `received` of them filled.
    bytes: Vec<u8>,
}

/// The receiving half of a stream.
pub(super) struct Rx {
    opener: FrameOpener,
    ring: Consumer,
    /// ChaCha20-Poly1305: private copy of the frame being opened; grows to the
    /// largest frame once.
    scratch: Vec<u8>,
    partial: Option<Partial>,
    /// Bytes copied to keep partial messages across calls and to hand them
    /// over (a test hook: it must stay linear in the bytes received).
    carried: u64,
    /// An accepted stream's share of its listener's bound on large messages
    /// being received (`reassembly`); None for a client.
    reassembly: Option<Share>,
}

impl Rx {
    pub(super) fn new(opener: FrameOpener, ring: Consumer) -> Rx {
        Rx { opener, ring, scratch: Vec::new(), partial: None, carried: 0, reassembly: None }
    }

    /// True once the listener's watchdog ended this stream's held message.
    fn evicted(&self) -> bool {
        self.reassembly.as_ref().is_some_and(Share::evicted)
    }
}

/// What one look at the ring found.
enum Received {
    /// A whole message of this length.
    Message(usize),
    /// No whole message yet (part of one may have been taken).
    Nothing,
    /// The first frame of a message of this length, left in the ring: the
    /// listener's bound on large messages being received has no room for it.
    NoRoom(u32),
}

/// Where a received message goes, inside the core: a caller's [`RecvBuf`]
/// ([`Given`]), or a `Vec` that can also take over a kept message's buffer
/// without copying.
trait Sink {
    /// Makes room for a message of `len` bytes, or says why not (the message
    /// is then kept).
    fn prepare(&mut self, len: u32) -> Result<()>;
    /// The part of the message at `offset`.
    fn part(&mut self, offset: u32, len: u32) -> Result<&mut [u8]>;
    /// Takes over a partly received message's buffer (a whole `message_len`
    /// bytes) without copying, if this sink can; false leaves `bytes` alone.
    fn adopt(&mut self, bytes: &mut Vec<u8>) -> bool;
    /// Gives up the message being received (`received` of `message_len` bytes
    /// filled) to keep it for a later call; returns it and the bytes copied.
    fn keep(&mut self, message_len: u32, received: u32) -> (Vec<u8>, u64);
}

impl Sink for Vec<u8> {
    fn prepare(&mut self, len: u32) -> Result<()> {
        RecvBuf::prepare(self, len as usize)
    }
    fn part(&mut self, offset: u32, len: u32) -> Result<&mut [u8]> {
        recv_buf::part(self, offset as usize, len as usize)
    }
    fn adopt(&mut self, bytes: &mut Vec<u8>) -> bool {
        std::mem::swap(self, bytes);
        true
    }
    fn keep(&mut self, _message_len: u32, _received: u32) -> (Vec<u8>, u64) {
        (std::mem::take(self), 0)
    }
}

/// A caller's [`RecvBuf`].
struct Given<'a, B: RecvBuf + ?Sized>(&'a mut B);

impl<B: RecvBuf + ?Sized> Sink for Given<'_, B> {
    fn prepare(&mut self, len: u32) -> Result<()> {
        self.0.prepare(len as usize)?;
        // Checked here, before any of the message is taken from the ring, so a
        // short buffer keeps the message.
        recv_buf::part(self.0, 0, len as usize).map(|_| ())
    }
    fn part(&mut self, offset: u32, len: u32) -> Result<&mut [u8]> {
        recv_buf::part(self.0, offset as usize, len as usize)
    }
    fn adopt(&mut self, bytes: &mut Vec<u8>) -> bool {
        self.0.take_back(bytes)
    }
    fn keep(&mut self, message_len: u32, received: u32) -> (Vec<u8>, u64) {
        let detached = match self.0.detach(message_len as usize) {
            Some(bytes) if bytes.len() == message_len as usize => return (bytes, 0),
            other => other,
        };
        let mut bytes = vec![0u8; message_len as usize];
        // `prepare` checked the length; a buffer that shrank since keeps zeros.
        let source = match detached.as_deref() {
            Some(d) => d.get(..received as usize),
            None => recv_buf::part(self.0, 0, received as usize).ok().map(|p| &*p),
        };
        if let Some(part) = source {
            bytes[..received as usize].copy_from_slice(part);
        }
        (bytes, u64::from(received))
    }
}

impl Stream {
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
        self.recv_with(buf, self.default_recv_deadline())
    }

    /// As [`recv_into`](Stream::recv_into), waiting up to `timeout`.
    pub fn recv_into_timeout(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize> {
        self.recv_with(buf, deadline_after(timeout))
    }

    /// As [`recv_into`](Stream::recv_into) without waiting.
    pub fn try_recv_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.try_recv_with(buf)
    }

    /// The length of the next message, if its first frame is in the ring now
    /// or it is partly received; None when nothing is there (or another
    /// thread is receiving). It changes nothing. The length is the one the
    /// peer wrote in the frame header, not yet verified: use it to choose how
    /// to receive (a binding releases its interpreter lock for a large one),
    /// never as a promise.
    pub fn next_message_len(&self) -> Option<usize> {
        let mut rx = self.rx.try_lock()?;
        if let Some(partial) = &rx.partial {
            return Some(partial.message_len as usize);
        }
        let header = FrameHeader::decode(&rx.ring.next_header(&self.segment)?).ok()?;
        (header.kind == FrameKind::Data).then_some(header.message_len as usize)
    }

    /// For an event loop about to sleep until the next message: when the peer
    /// said it last ran on this thread's CPU (two processes on one core),
    /// hands the CPU over to it as a blocking receive does
    /// ([`wait::HAND_OVERS`](crate::wait::HAND_OVERS) `sched_yield`s at
    /// most, each followed by a look; adaptive; stopped by one slower than
    /// [`wait::HAND_OVER_SLOW`](crate::wait::HAND_OVER_SLOW)), and returns
    /// true as soon as a message is there ([`next_message_len`](Self::next_message_len):
    /// its first frame, for one larger than a frame).
    /// False at once when the peer runs elsewhere, the stream spins not at
    /// all, the machine is crowded or hand-overs have stopped paying. It
    /// arms nothing, receives nothing and never blocks longer than the peer
    /// takes to answer: follow it with a `try_recv`. Publishes this side's
    /// CPU hint, which lets the peer hand over in turn. One core of a 2-vCPU
    /// EPYC, a Python asyncio client against a blocking echo: see the
    /// CHANGELOG.
    ///
    /// Errors: Closed after [`close`](Stream::close), or the error that ended
    /// the connection, as a receive would report them.
    pub fn hand_over(&self) -> Result<bool> {
        self.check_usable()?;
        let Some(hints) = self.hints() else { return Ok(false) };
        let mut look =
            |_armed: bool| Ok(if self.next_message_len().is_some() { Check::Ready(()) } else { Check::NotYet });
        Ok(self.waiter.hand_over(hints, None, &mut look)?.is_some())
    }

    /// For an event loop that wants messages but will not read them now (a
    /// send that found no room just consumed the wake-ups both directions
    /// share, and reading on at once would run the peer's messages past the
    /// loop's own bounds): records the wish for messages and makes the
    /// pollable fd readable when one is there or comes, as a `try_recv` that
    /// returned WouldBlock would, without taking anything. A no-op while
    /// another thread is receiving (it watches for itself). An error (the
    /// ring's counters were tampered with) ends the connection, and the fd
    /// reports that too.
    pub fn watch_receiving(&self) -> Result<()> {
        self.check_usable()?;
        let Some(rx) = self.rx.try_lock() else { return Ok(()) };
        let seg = &self.segment;
        // The wish first, as in `try_recv`: a drain by the other direction
        // from now on re-arms it.
        rx.ring.want(&self.rx_interest);
        rx.ring.arm(seg);
        if rx.ring.has_data(seg).map_err(|e| self.fail(e))? || self.peer_closed.load(Ordering::Acquire) {
            // The peer may have published before the flag was set and woken
            // nobody: signal the fd now.
            self.waiter.wake_self();
        }
        Ok(())
    }

    /// Receives the next message into `buf`, which [`RecvBuf::prepare`] makes
    /// ready once the message's length is known, waiting until `deadline`
    /// (None: no limit; a deadline passed already: only what has arrived).
    /// Returns the message's length: it is in the first that many bytes of
    /// `buf.bytes()`.
    ///
    /// A timeout keeps a partly received message for the next call, and an
    /// error from `prepare` keeps the whole message: nothing is lost. One call
    /// receives a message of any size into storage of exactly its size, so a
    /// binding allocates once per message and never copies it.
    ///
    /// ```no_run
    /// # fn demo(stream: &shmsock::Stream) -> shmsock::Result<()> {
    /// use std::time::{Duration, Instant};
    ///
    /// let mut message = Vec::new(); // resized to each message
    /// let len = stream.recv_with(&mut message, Some(Instant::now() + Duration::from_secs(1)))?;
    /// assert_eq!(len, message.len());
    /// # Ok(())
    /// # }
    /// ```
    pub fn recv_with<B: RecvBuf + ?Sized>(&self, buf: &mut B, deadline: Option<Instant>) -> Result<usize> {
        self.recv_until(&mut Given(buf), deadline, false)
    }

    /// As [`recv_with`](Stream::recv_with) without waiting: WouldBlock when no
    /// complete message is there (and the pollable fd becomes readable when
    /// one arrives).
    pub fn try_recv_with<B: RecvBuf + ?Sized>(&self, buf: &mut B) -> Result<usize> {
        self.recv_until(&mut Given(buf), None, true)
    }

    /// The deadline the stream's receive timeout
    /// ([`Options::recv_timeout`](crate::Options::recv_timeout)) sets for a
    /// receive starting now (None: no limit), for [`recv_with`](Stream::recv_with).
    pub fn default_recv_deadline(&self) -> Option<Instant> {
        deadline_after(self.recv_timeout)
    }

    /// Puts an accepted stream under its listener's bound on large messages
    /// being received.
    pub(crate) fn with_reassembly_share(mut self, share: Share) -> Stream {
        self.rx.get_mut().reassembly = Some(share);
        self
    }

    /// After a close, which no receive follows: frees a message kept partly
    /// received, and gives its room back to the listener's bound at once
    /// rather than when the stream is dropped. Skipped while another thread
    /// is receiving (it fails with Closed, and the stream's drop frees both).
    pub(super) fn forget_partial(&self) {
        if let Some(mut rx) = self.rx.try_lock() {
            rx.partial = None;
            if let Some(share) = rx.reassembly.as_mut() {
                share.release();
            }
        }
    }

    /// Bytes this stream copied to carry partly received messages across calls
    /// (a test hook, not part of the supported API: it stays linear in the bytes
    /// received however finely messages are fragmented).
    #[doc(hidden)]
    pub fn reassembly_bytes_copied(&self) -> u64 {
        self.rx.lock().carried
    }

    fn recv_until(&self, out: &mut dyn Sink, deadline: Option<Instant>, try_only: bool) -> Result<usize> {
        self.check_usable()?;
        let mut rx = if try_only {
            self.rx.try_lock().ok_or_else(|| Error::new(ErrorKind::WouldBlock, "another thread is receiving"))?
        } else {
            self.rx.lock()
        };
        let rx = &mut *rx;
        // This direction is served now: a drain elsewhere need not re-arm it.
        self.rx_interest.clear();
        if rx.evicted() {
            return Err(self.end_evicted(rx));
        }
        if self.peer_closed.load(Ordering::Acquire) {
            return Err(self.peer_closed_error());
        }
        // (message_len, bytes received) of the message being assembled.
        let mut progress: Option<(u32, u32)> = None;
        // A kept message the caller's buffer cannot adopt: later fragments are
        // decrypted into it, and it is copied to the caller's buffer once whole.
        let mut kept: Option<Vec<u8>> = None;
        if let Some(mut partial) = rx.partial.take() {
            if !out.adopt(&mut partial.bytes) {
                if let Err(e) = out.prepare(partial.message_len) {
                    rx.partial = Some(partial);
                    return Err(e);
                }
                kept = Some(std::mem::take(&mut partial.bytes));
            }
            progress = Some((partial.message_len, partial.received));
        }
        let seg = &self.segment;
        loop {
            let target: &mut dyn Sink = match kept.as_mut() {
                Some(bytes) => bytes,
                None => &mut *out,
            };
            match self.receive_available(rx, target, &mut progress) {
                Ok(Received::Message(len)) => {
                    if let Some(bytes) = kept.take() {
                        let part = out.part(0, len as u32).map_err(|e| self.fail_buffer(e))?;
                        part.copy_from_slice(&bytes[..len]);
                        rx.carried += len as u64;
                    }
                    self.counters.received(len as u64);
                    if try_only {
                        // An event loop comes back for the next message on the
                        // wake-up it got for this one (the peer found the flag
                        // taken and wakes nobody for the next): keep the wish,
                        // so a drain or a sleep of the other direction, which
                        // consumes that wake-up, re-arms it (`drain_wakeups`,
                        // `rearm_after_wait`).
                        rx.ring.want(&self.rx_interest);
                    }
                    return Ok(len);
                }
                Ok(Received::Nothing) => {}
                Ok(Received::NoRoom(len)) => {
                    self.wait_for_reassembly_room(rx, len, deadline, try_only)?;
                    continue;
                }
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
                // The wish is recorded before arming, so that a drain by the
                // other direction from now on re-arms it.
                let drained = self.drain_wakeups();
                let hung_up = self.waiter.peer_hung_up();
                rx.ring.want(&self.rx_interest);
                rx.ring.arm(seg);
                match drained.and_then(|()| rx.ring.has_data(seg)) {
                    Ok(true) => {
                        // Data arrived before the flag was set, so the peer woke
                        // nobody, and the drain above consumed the wake-up the
                        // pollable fd had: signal it again, so the fd stays
                        // readable until a try_ call says WouldBlock (the event
                        // loop that gets this message comes back for the next
                        // one on that readability alone).
                        self.rx_interest.clear();
                        rx.ring.disarm(seg);
                        self.waiter.wake_self();
                        continue;
                    }
                    Ok(false) if hung_up => Err(self.waiter.peer_gone_error()),
                    Ok(false) => Err(Error::new(ErrorKind::WouldBlock, "no complete message yet")),
                    Err(e) => Err(e),
                }
            } else {
                let (ring, share) = (&rx.ring, rx.reassembly.as_ref());
                let waited = self.waiter.wait(self.socket(), deadline, self.hints(), |armed| {
                    self.check_usable()?;
                    if share.is_some_and(Share::evicted) {
                        return Err(Error::new(ErrorKind::ResourceExhausted, EVICTED));
                    }
                    if armed {
                        ring.arm(seg);
                    }
                    if ring.has_data(seg)? {
                        ring.disarm(seg);
                        Ok(Check::Ready(()))
                    } else {
                        Ok(Check::NotYet)
                    }
                });
                self.rearm_after_wait(&self.tx_interest);
                waited
            };
            if let Err(e) = waited {
                if rx.evicted() {
                    return Err(self.end_evicted(rx));
                }
                if let Some((message_len, received)) = progress {
                    let bytes = match kept.take() {
                        Some(bytes) => bytes,
                        None => {
                            let (bytes, copied) = out.keep(message_len, received);
                            rx.carried += copied;
                            bytes
                        }
                    };
                    rx.partial = Some(Partial { message_len, received, bytes });
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

    /// Waits until the listener's bound on large messages being received has
    /// room for the `len` bytes of the message at the head of the ring (none
    /// of it taken yet, so nothing is kept meanwhile): a blocking receive up
    /// to `deadline`; a non-blocking one not at all, saying WouldBlock and
    /// having the pollable fd signalled once room is given back.
    fn wait_for_reassembly_room(&self, rx: &mut Rx, len: u32, deadline: Option<Instant>, try_only: bool) -> Result<()> {
        let Some(share) = rx.reassembly.as_mut() else { return Ok(()) };
        if try_only {
            // Stale wake-ups go first, so that the fd stays quiet until room
            // is given back (registered below, after the drain) or the peer
            // hangs up. Data wake-ups are not armed: the frames are there.
            self.drain_wakeups()?;
            if self.waiter.peer_hung_up() {
                return Err(self.waiter.peer_gone_error());
            }
            if share.reserve(len, self.waiter.own_wake(), true) {
                return Ok(());
            }
            return Err(Error::new(
                ErrorKind::WouldBlock,
                "no complete message yet: the next one waits for room among the large messages this server's connections are receiving (Options::max_reassembly_bytes)",
            ));
        }
        if share.wait_reserve(len, self.waiter.own_wake(), deadline, || self.check_usable())? {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Timeout,
            "recv timed out: the next message waited for room among the large messages this server's connections are receiving (Options::max_reassembly_bytes); nothing was lost",
        ))
    }

    /// Ends the stream after the listener's watchdog ended the message it was
    /// gathering (`reassembly`: it stopped moving while others waited for
    /// room, which was given back then): frees what was kept, and says why.
    /// Later calls say Closed, with the same words.
    fn end_evicted(&self, rx: &mut Rx) -> Error {
        rx.partial = None;
        let _ = self.failure.set(Error::new(ErrorKind::Closed, EVICTED));
        platform::shutdown(self.socket());
        Error::new(ErrorKind::ResourceExhausted, EVICTED)
    }

    /// Ends the stream after a caller's [`RecvBuf`] gave less storage than its
    /// `prepare` promised, with part of a message consumed: going on would
    /// deliver a partial message.
    fn fail_buffer(&self, e: Error) -> Error {
        let _ = self.failure.set(e.clone());
        platform::shutdown(self.socket());
        e
    }

    /// Opens every frame already in the ring until a message completes. Never
    /// waits. Returns the message length when one completed.
    fn receive_available(
        &self,
        rx: &mut Rx,
        out: &mut dyn Sink,
        progress: &mut Option<(u32, u32)>,
    ) -> Result<Received> {
        let received = self.open_available(rx, out, progress);
        // This side stops reading now (to wait, or to hand over a message): a
        // wake-up `advance` deferred for the producer is owed.
        if rx.ring.take_deferred_wake(&self.segment) {
            self.wake_peer();
        }
        received
    }

    /// The loop of [`receive_available`](Stream::receive_available).
    fn open_available(&self, rx: &mut Rx, out: &mut dyn Sink, progress: &mut Option<(u32, u32)>) -> Result<Received> {
        let seg = &self.segment;
        loop {
            let peeked = rx.ring.peek(seg)?;
            // A PAD marker skipped by peek freed space a sleeping producer may wait for.
            if rx.ring.take_owed_wake() {
                self.wake_peer();
            }
            let Some(peeked) = peeked else { return Ok(Received::Nothing) };
            let header = rx.opener.check_header(&peeked.header)?;
            let sealed = header.sealed_len(rx.opener.suite());
            let record = rx.ring.check_record(seg, &peeked, sealed)?;
            if header.kind == FrameKind::Data && header.offset == 0 {
                // A message of several frames may have to be kept between
                // calls: it needs room in the listener's bound first.
                let several_frames = header.message_len > header.frame_len;
                if let Some(share) = rx.reassembly.as_mut().filter(|_| several_frames) {
                    if !share.reserve(header.message_len, self.waiter.own_wake(), false) {
                        return Ok(Received::NoRoom(header.message_len));
                    }
                }
                out.prepare(header.message_len)?;
                *progress = Some((header.message_len, 0));
            }
            let plaintext: &mut [u8] = match header.kind {
                FrameKind::Close => &mut [],
                FrameKind::Data => out.part(header.offset, header.frame_len).map_err(|e| self.fail_buffer(e))?,
            };
            let opened = match rx.opener.suite() {
                CipherSuite::Aegis128L => {
                    // One pass: straight from the ring, whose space stays
                    // reserved until the frame is opened.
                    let opened = seg.open_at(peeked.offset, &mut rx.opener, &header, &peeked.header, plaintext)?;
                    if rx.ring.advance(seg, record) {
                        self.wake_peer();
                    }
                    opened
                }
                CipherSuite::ChaCha20Poly1305 => {
                    if rx.scratch.len() < sealed {
                        rx.scratch.resize(sealed, 0);
                    }
                    rx.scratch[..HEADER_LEN].copy_from_slice(&peeked.header);
                    seg.copy_out(peeked.offset + HEADER_LEN, &mut rx.scratch[HEADER_LEN..sealed])?;
                    // The frame is private now: free its ring space before decrypting.
                    if rx.ring.advance(seg, record) {
                        self.wake_peer();
                    }
                    rx.opener.open(&header, &rx.scratch[..sealed], plaintext)?
                }
            };
            match opened {
                Opened::Close => {
                    self.peer_closed.store(true, Ordering::Release);
                    return Err(self.peer_closed_error());
                }
                Opened::Fragment { last: true, message_len, .. } => {
                    *progress = None;
                    if let Some(share) = rx.reassembly.as_mut() {
                        share.release();
                    }
                    return Ok(Received::Message(message_len as usize));
                }
                Opened::Fragment { len, .. } => {
                    if let Some((_, received)) = progress {
                        *received += len;
                    }
                    if let Some(share) = rx.reassembly.as_ref() {
                        share.note_frame();
                    }
                }
            }
        }
    }
}
