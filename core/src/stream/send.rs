//! Sending on a [`Stream`]: blocking, all-or-nothing (`try_send`), resumable
//! (`send_resumable`, for event loops) and interruptible (`send_interruptible`,
//! for bindings that must honour Ctrl-C) sends, all through one fragment writer.
//!
//! A message larger than one frame goes out as several fragments. Once its first
//! fragment is in the ring it cannot be taken back, so every way a send can stop
//! half-way (a timeout, an interruption, a peer that went away) either keeps the
//! progress to finish later (`send_resumable` only) or ends the connection, so
//! the peer never takes part of a message for a whole one: its receiver only
//! delivers a message whose last fragment verified.

use std::time::{Duration, Instant};

use parking_lot::MutexGuard;

use super::{deadline_after, Stream, Tx};
use crate::error::{Error, ErrorKind, Result};
use crate::frame::{fragments, sealed_len, FrameHeader};
use crate::platform;
use crate::ring::{Producer, Reservation};
use crate::wait::Check;

/// Longest single wait of an interruptible send (and of a blocking send that
/// waits for another call's partly sent message), so that the interrupt hook
/// and this stream's state are looked at this often.
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Progress of a non-blocking, resumable send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendProgress {
    /// The whole message is in the ring.
    Complete,
    /// `sent` bytes of the message are in the ring; call
    /// [`send_resumable`](Stream::send_resumable) again with the same message
    /// once the pollable fd is readable. With `sent == 0` nothing was written
    /// and nothing is held: the stream is as it was before the call.
    Partial {
        /// Bytes of the message already in the ring.
        sent: usize,
    },
}

/// A message `send_resumable` left partly in the ring.
#[derive(Clone, Copy, Debug)]
pub(super) struct PendingSend {
    /// Length of the message.
    len: u32,
    /// Offset of the next fragment to write (a multiple of the fragment size).
    next: u32,
}

/// How a send waits for ring space.
enum Mode<'a> {
    /// Not at all, and all of the message or nothing (`try_send`).
    AllOrNothing,
    /// Not at all: write what fits and keep the progress (`send_resumable`).
    Resumable,
    /// Until the deadline; with a hook, in slices of at most [`WAIT_SLICE`],
    /// calling the hook between them.
    Blocking {
        deadline: Option<Instant>,
        interrupted: Option<&'a mut dyn FnMut() -> Result<()>>,
        /// Set once the deadline or the hook stopped the send: its error is the
        /// caller's, and ends nothing unless part of the message is out.
        stopped: bool,
    },
}

impl Mode<'_> {
    fn waits(&self) -> bool {
        matches!(self, Mode::Blocking { .. })
    }

    /// True once the deadline or the interrupt hook stopped a blocking send.
    fn stopped(&self) -> bool {
        matches!(self, Mode::Blocking { stopped: true, .. })
    }

    /// For a blocking send: the end of the next wait, or Err when the overall
    /// deadline passed (Timeout) or the hook asked to stop (its error).
    fn next_wait_end(&mut self) -> Result<Option<Instant>> {
        let Mode::Blocking { deadline, interrupted, stopped } = self else { return Ok(None) };
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            *stopped = true;
            return Err(Error::new(ErrorKind::Timeout, "send timed out: the peer is not reading"));
        }
        match interrupted {
            None => Ok(*deadline),
            Some(hook) => {
                if let Err(e) = hook() {
                    *stopped = true;
                    return Err(e);
                }
                let slice = now + WAIT_SLICE;
                Ok(Some(deadline.map_or(slice, |d| d.min(slice))))
            }
        }
    }
}

impl Stream {
    /// Sends one message, waiting for ring space up to the stream's send timeout.
    pub fn send(&self, message: &[u8]) -> Result<()> {
        self.send_blocking(message, deadline_after(self.send_timeout), None)
    }

    /// Sends one message, waiting for ring space up to `timeout` (None: forever).
    pub fn send_timeout(&self, message: &[u8], timeout: Option<Duration>) -> Result<()> {
        self.send_blocking(message, deadline_after(timeout), None)
    }

    /// Blocking send that calls `interrupted()` between bounded waits (at most
    /// every 50 ms) while it waits for ring space (None: no time limit). If the
    /// hook returns an error before any fragment of the message is in the ring,
    /// nothing was sent and that error is returned; after that, the connection is
    /// ended (later calls fail with Closed, the peer sees the connection end
    /// without the message) and the error is returned: never a half message the
    /// peer could take as whole.
    pub fn send_interruptible(
        &self,
        message: &[u8],
        timeout: Option<Duration>,
        interrupted: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        self.send_blocking(message, deadline_after(timeout), Some(interrupted))
    }

    /// Sends one message only if all of it fits in the ring now; else
    /// WouldBlock, nothing is sent, and the pollable fd becomes readable when
    /// the peer frees space. A message larger than the ring's capacity never
    /// fits at once: send it with `send` or `send_resumable`. While a
    /// `send_resumable` message is partly sent, this says WouldBlock.
    pub fn try_send(&self, message: &[u8]) -> Result<()> {
        self.send_with(message, Mode::AllOrNothing).map(|_| ())
    }

    /// Non-blocking, resumable send: writes as many fragments of `message` as fit
    /// in the ring now and remembers how far it got.
    ///
    /// `Complete`: all of it is in the ring. `Partial { sent }`: call again with
    /// the same message (same length; the bytes from `sent` on are taken from the
    /// new call) once the pollable fd is readable: it is armed for freed space.
    /// Until the partial message completes, other sends on this stream get
    /// WouldBlock (`try_send`), wait (`send`, `send_timeout`,
    /// `send_interruptible`, within their timeout) or, for `send_resumable` with
    /// a message of another length, InvalidArgument. Closing the stream with a
    /// message partly sent ends the connection without the CLOSE frame (the peer
    /// sees PeerGone), as the peer must never take part of a message as whole.
    pub fn send_resumable(&self, message: &[u8]) -> Result<SendProgress> {
        self.send_with(message, Mode::Resumable)
    }

    fn send_blocking(
        &self,
        message: &[u8],
        deadline: Option<Instant>,
        interrupted: Option<&mut dyn FnMut() -> Result<()>>,
    ) -> Result<()> {
        self.send_with(message, Mode::Blocking { deadline, interrupted, stopped: false }).map(|_| ())
    }

    /// Checks that the stream can send a message of this length.
    fn check_sendable(&self, message: &[u8]) -> Result<u32> {
        self.check_usable()?;
        if self.peer_closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(self.peer_closed_error());
        }
        u32::try_from(message.len()).ok().filter(|l| *l <= self.peer_max_message).ok_or_else(|| {
            Error::new(
                ErrorKind::MessageTooLarge,
                format!(
                    "a message of {} bytes is larger than the {} bytes the peer accepts (its max_message_size); nothing was sent",
                    message.len(),
                    self.peer_max_message
                ),
            )
        })
    }

    /// Takes the sending lock as the mode allows: at once or WouldBlock for the
    /// non-blocking modes; for blocking ones, waiting in slices when there is a
    /// hook to call or a deadline to keep.
    fn lock_tx(&self, mode: &mut Mode<'_>) -> Result<MutexGuard<'_, Tx>> {
        // The usual case, before any reading of the clock: each costs about
        // 20 ns on these virtual machines, and a blocking send used to read it
        // twice here (two-core 64 B round trip 1.07-1.15 us with the readings,
        // 0.92-0.99 us without).
        if let Some(tx) = self.tx.try_lock() {
            return Ok(tx);
        }
        if !mode.waits() {
            return Err(Error::new(ErrorKind::WouldBlock, "another thread is sending"));
        }
        loop {
            let end = mode.next_wait_end().map_err(nothing_sent)?;
            let slice_end = end.map_or(Instant::now() + WAIT_SLICE, |e| e.min(Instant::now() + WAIT_SLICE));
            if let Some(tx) = self.tx.try_lock_until(slice_end) {
                return Ok(tx);
            }
            self.check_usable()?;
        }
    }

    /// The offset to start `message` at, waiting (blocking modes) for a message
    /// that `send_resumable` left partly sent to be finished first.
    fn start_offset(&self, tx: &mut MutexGuard<'_, Tx>, len: u32, mode: &mut Mode<'_>) -> Result<u32> {
        loop {
            let Some(pending) = tx.pending else { return Ok(0) };
            match mode {
                Mode::Resumable if pending.len == len => return Ok(pending.next),
                Mode::Resumable => {
                    return Err(Error::new(
                        ErrorKind::InvalidArgument,
                        format!(
                            "a message of {} bytes is partly sent ({} bytes in the ring): call send_resumable again \
                             with that message until it completes; nothing of this one was sent",
                            pending.len, pending.next
                        ),
                    ))
                }
                Mode::AllOrNothing => {
                    return Err(Error::new(
                        ErrorKind::WouldBlock,
                        "a message partly sent by send_resumable must complete first; nothing was sent",
                    ))
                }
                Mode::Blocking { .. } => {
                    let end = mode.next_wait_end().map_err(nothing_sent)?;
                    let slice_end = end.map_or(Instant::now() + WAIT_SLICE, |e| e.min(Instant::now() + WAIT_SLICE));
                    self.tx_idle.wait_until(tx, slice_end);
                    self.check_usable()?;
                }
            }
        }
    }

    fn send_with(&self, message: &[u8], mut mode: Mode<'_>) -> Result<SendProgress> {
        let len = self.check_sendable(message)?;
        let mut tx = self.lock_tx(&mut mode)?;
        // This direction is served now: a drain elsewhere need not re-arm it.
        self.tx_interest.clear();
        let start = self.start_offset(&mut tx, len, &mut mode)?;
        // Checked again under the lock: a message partly sent may have failed the
        // stream meanwhile.
        self.check_usable()?;
        let tx = &mut *tx;
        if start == 0 {
            let suite = tx.sealer.suite();
            let sealed_lens = fragments(len, self.fragment).map(|(_, l)| sealed_len(l as usize, suite));
            tx.ring.begin_message(&self.segment, sealed_lens).map_err(|e| self.fail(e))?;
        }
        if matches!(mode, Mode::AllOrNothing) && !self.fits_now(tx, len)? {
            return Err(Error::new(
                ErrorKind::WouldBlock,
                "the ring has no room for this message now; nothing was sent",
            ));
        }
        let suite = tx.sealer.suite();
        let seg = &self.segment;
        let skip = if start == 0 { 0 } else { (start / self.fragment) as usize };
        for (offset, frame_len) in fragments(len, self.fragment).skip(skip) {
            let sealed = sealed_len(frame_len as usize, suite);
            let reservation = match self.reserve_for(&mut tx.ring, sealed, &mut mode) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    // Resumable (or all-or-nothing after a race): keep what is sent.
                    if offset > 0 {
                        tx.pending = Some(PendingSend { len, next: offset });
                    }
                    return Ok(SendProgress::Partial { sent: offset as usize });
                }
                Err(e) if offset > 0 => return Err(self.end_mid_message(tx, e, mode.stopped())),
                Err(e) if mode.stopped() => return Err(nothing_sent(e)),
                Err(e) => return Err(self.fail(e)),
            };
            let header = FrameHeader::data(frame_len, len, offset);
            let piece = &message[offset as usize..(offset + frame_len) as usize];
            if let Err(e) = seg.seal_at(reservation.offset, &mut tx.sealer, &header, piece) {
                return Err(self.end_mid_message(tx, self.fail(e), false));
            }
            if tx.ring.publish(seg, reservation, offset + frame_len >= len) {
                self.wake_peer();
            }
        }
        if tx.pending.take().is_some() {
            self.tx_idle.notify_all();
        }
        self.counters.sent(u64::from(len));
        Ok(SendProgress::Complete)
    }

    /// For `try_send`: true when every fragment fits now; else arms the pollable
    /// fd for freed space (and looks once more, in case space was freed meanwhile).
    fn fits_now(&self, tx: &mut Tx, len: u32) -> Result<bool> {
        let seg = &self.segment;
        let suite = tx.sealer.suite();
        let sealed_lens = || fragments(len, self.fragment).map(|(_, l)| sealed_len(l as usize, suite));
        if tx.ring.fits_all(seg, sealed_lens()).map_err(|e| self.fail(e))? {
            return Ok(true);
        }
        self.drain_wakeups().map_err(|e| self.fail(e))?;
        tx.ring.want(&self.tx_interest, sealed_lens());
        tx.ring.arm(seg);
        let fits = tx.ring.fits_all(seg, sealed_lens()).map_err(|e| self.fail(e))?;
        if fits {
            self.tx_interest.clear();
            tx.ring.disarm(seg);
        }
        Ok(fits)
    }

    /// Room for a frame of `sealed` bytes as the mode allows: waiting (blocking
    /// modes), or None at once when the ring is full, after arming the pollable
    /// fd for freed space.
    fn reserve_for(&self, ring: &mut Producer, sealed: usize, mode: &mut Mode<'_>) -> Result<Option<Reservation>> {
        if !mode.waits() {
            return self.reserve_now(ring, sealed);
        }
        if let Some(reservation) = ring.reserve(&self.segment, sealed)? {
            return Ok(Some(reservation));
        }
        loop {
            let end = mode.next_wait_end()?;
            match self.reserve_waiting(ring, sealed, end, true) {
                Err(e) if e.kind() == ErrorKind::Timeout => continue,
                other => return other.map(Some),
            }
        }
    }

    /// Room for a frame of `sealed` bytes now, or None after arming the
    /// pollable fd for freed space (PeerGone when the peer hung up).
    pub(super) fn reserve_now(&self, ring: &mut Producer, sealed: usize) -> Result<Option<Reservation>> {
        let seg = &self.segment;
        if let Some(reservation) = ring.reserve(seg, sealed)? {
            return Ok(Some(reservation));
        }
        // A wake-up deferred for this message's earlier fragments is owed
        // now: the consumer must free the room this side waits for.
        if ring.take_deferred_wake(seg) {
            self.wake_peer();
        }
        // As try_recv does: drop stale wake-ups, say we wait for space, and
        // look once more in case the consumer freed some meanwhile.
        self.drain_wakeups()?;
        let hung_up = self.waiter.peer_hung_up();
        ring.want(&self.tx_interest, std::iter::once(sealed));
        ring.arm(seg);
        let reserved = ring.reserve(seg, sealed)?;
        if reserved.is_some() {
            self.tx_interest.clear();
            ring.disarm(seg);
        } else if hung_up {
            return Err(self.waiter.peer_gone_error());
        }
        Ok(reserved)
    }

    /// Reserves room for a frame of `sealed` bytes in the outbound ring, waiting
    /// until `deadline`. `while_open`: give up with Closed if this side closes
    /// meanwhile (false for the CLOSE frame itself).
    pub(super) fn reserve_waiting(
        &self,
        ring: &mut Producer,
        sealed: usize,
        deadline: Option<Instant>,
        while_open: bool,
    ) -> Result<Reservation> {
        let seg = &self.segment;
        if let Some(reservation) = ring.reserve(seg, sealed)? {
            return Ok(reservation);
        }
        // A wake-up deferred for earlier fragments is owed before waiting: the
        // consumer must free the room this side waits for.
        if ring.take_deferred_wake(seg) {
            self.wake_peer();
        }
        let waited = self.waiter.wait(self.socket(), deadline, self.hints(), |armed| {
            if while_open {
                self.check_usable()?;
            }
            if armed {
                ring.arm(seg);
            }
            match ring.reserve(seg, sealed)? {
                Some(reservation) => {
                    ring.disarm(seg);
                    Ok(Check::Ready(reservation))
                }
                None => Ok(Check::NotYet),
            }
        });
        self.rearm_after_wait(&self.rx_interest);
        waited
    }

    /// Part of a message is in the ring and cannot be taken back: the stream
    /// cannot continue. Ends the connection (without a CLOSE frame, which the
    /// peer would refuse in the middle of a message) and returns `e`, saying so.
    /// `stopped`: the caller's deadline or interrupt hook stopped the send.
    fn end_mid_message(&self, tx: &mut Tx, e: Error, stopped: bool) -> Error {
        tx.pending = None;
        let e = Error::new(
            e.kind(),
            format!(
                "{} while sending a message in fragments; part of it was sent, so the connection is closed",
                e.message()
            ),
        );
        // Later calls must not report Timeout or an interruption (which say a
        // retry may work, and end no connection): the stream is over, as if this
        // side had closed it.
        let ended =
            if !stopped && e.kind().ends_connection() { e.clone() } else { Error::new(ErrorKind::Closed, e.message()) };
        let _ = self.failure.set(ended);
        platform::shutdown(self.socket());
        self.tx_idle.notify_all();
        e
    }
}

/// A timeout or an interruption before the message's first fragment was written.
fn nothing_sent(e: Error) -> Error {
    match e.kind() {
        ErrorKind::Timeout => {
            Error::new(ErrorKind::Timeout, "send timed out: the peer is not reading; nothing was sent")
        }
        _ => e,
    }
}
