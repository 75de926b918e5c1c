//! Closing a stream: the CLOSE frame after every message sent before, then the
//! control socket's shutdown. [`Stream::close`] waits a bounded time for room
//! for the frame; [`Stream::try_close`] never waits, for event loops.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Stream, Tx, CLOSE_LINGER};
use crate::error::Result;
use crate::frame::FrameHeader;
use crate::platform;
use crate::ring::Reservation;
use crate::seats::Seat;

/// How long `close` waits for a thread that holds the send side (blocked in
/// a send) before it ends the connection without a CLOSE frame.
const SEND_LOCK_WAIT: Duration = Duration::from_millis(100);

impl Stream {
    /// Closes the stream: the peer receives every message sent before, then
    /// PeerClosed. Idempotent; later calls on this stream fail with Closed.
    /// When the ring is full, waits up to 2 s (or the send timeout, if shorter)
    /// for the peer to make room for the close; after that the peer sees
    /// PeerGone. Event loops use [`try_close`](Stream::try_close) instead.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) || self.forked_away() {
            // (A child of fork() closes only its copy: the connection is the parent's.)
            return Ok(());
        }
        if self.failure.get().is_none() {
            // A thread blocked in send holds the lock; it wakes from the shutdown
            // below and fails with Closed, and the peer sees PeerGone instead.
            if let Some(mut tx) = self.tx.try_lock_for(SEND_LOCK_WAIT) {
                let tx = &mut *tx;
                if !self.ends_mid_message(tx) {
                    let sealed = FrameHeader::CLOSE.sealed_len(tx.sealer.suite());
                    // With the ring full (a peer that reads slowly), giving up at
                    // once turned a clean close into PeerGone on the other side,
                    // although every message arrived. Wait for room a bounded
                    // time (the send timeout if shorter); a dead peer ends the
                    // wait at once.
                    let linger = self.send_timeout.map_or(CLOSE_LINGER, |t| t.min(CLOSE_LINGER));
                    let deadline = Some(Instant::now() + linger);
                    if let Ok(reservation) = self.reserve_waiting(&mut tx.ring, sealed, deadline, false) {
                        self.publish_close(tx, reservation);
                    }
                }
            }
        }
        self.end_connection();
        Ok(())
    }

    /// For event loops: closes as [`close`](Stream::close) does, without
    /// waiting. Ok(true): closed (the CLOSE frame is in the ring, or the
    /// connection ended without one: after a failure, with a message partly
    /// sent, with the peer gone, or while another thread was blocked in a
    /// send). Ok(false): the ring has no room for the CLOSE frame now, and
    /// nothing changed; the pollable fd becomes readable when the peer frees
    /// some (or dies): call again then. To stop waiting, call `close` (off the
    /// loop, since it waits for room up to 2 s).
    pub fn try_close(&self) -> Result<bool> {
        // (Closed already, a copy in a child of fork(), or failed: nothing to wait for.)
        if self.closed.load(Ordering::Acquire) || self.forked_away() || self.failure.get().is_some() {
            return self.close().map(|()| true);
        }
        let Some(mut tx) = self.tx.try_lock() else {
            // Another thread is in a send: as `close` does once it gave up on
            // the lock.
            return self.end_without_close_frame();
        };
        let tx = &mut *tx;
        if self.closed.load(Ordering::Acquire) {
            return Ok(true);
        }
        if self.ends_mid_message(tx) {
            return self.end_without_close_frame();
        }
        let sealed = FrameHeader::CLOSE.sealed_len(tx.sealer.suite());
        match self.reserve_now(&mut tx.ring, sealed) {
            Ok(Some(reservation)) => {
                self.closed.store(true, Ordering::Release);
                self.publish_close(tx, reservation);
                self.end_connection();
                Ok(true)
            }
            Ok(None) => Ok(false),
            // The peer is gone or the ring is corrupt: nothing to wait for.
            Err(_) => self.end_without_close_frame(),
        }
    }

    /// A message partly sent by `send_resumable`: the peer refuses a CLOSE in
    /// the middle of a message, and must not take the part for a whole, so the
    /// connection ends without CLOSE (PeerGone). True when so (the caller
    /// shuts the socket down).
    fn ends_mid_message(&self, tx: &mut Tx) -> bool {
        if tx.pending.take().is_none() {
            return false;
        }
        self.tx_idle.notify_all();
        true
    }

    /// Ends the connection without a CLOSE frame (the peer sees PeerGone).
    fn end_without_close_frame(&self) -> Result<bool> {
        self.closed.store(true, Ordering::Release);
        self.end_connection();
        Ok(true)
    }

    /// The last step of every close: shuts the control socket down (the peer
    /// sees the end), frees a message kept partly received, which no
    /// receive will take any more, and gives the listener's seat back.
    fn end_connection(&self) {
        platform::shutdown(self.socket());
        self.forget_partial();
        self.seat.lock().take();
    }

    /// Counts this accepted stream among its listener's open streams until
    /// it is closed (see `seats`).
    pub(crate) fn with_seat(mut self, seat: Seat) -> Stream {
        *self.seat.get_mut() = Some(seat);
        self
    }

    /// Seals the CLOSE frame into `reservation` and wakes the peer.
    fn publish_close(&self, tx: &mut Tx, reservation: Reservation) {
        let seg = &self.segment;
        if seg.seal_at(reservation.offset, &mut tx.sealer, &FrameHeader::CLOSE, &[]).is_ok() {
            // Wake unconditionally: the shutdown that follows ends the
            // connection, so a sleeping peer must look now.
            let _ = tx.ring.publish(seg, reservation, true);
            self.wake_peer();
        }
    }
}
