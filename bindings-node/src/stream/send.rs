//! The sending side of [`StreamShared`]: sends from JavaScript, the sends
//! that wait in its [`Outbox`](crate::outbox::Outbox) for ring space, and the
//! spin that keeps a partly sent message going.
//!
//! A send goes straight into the ring (`send_resumable`) from the JavaScript
//! thread; what does not fit waits in order and is resumed when the fd
//! reports freed space. Such a WouldBlock consumes every pending wake-up of
//! the fd, the receive side's too, so each send that left something waiting
//! has the core watch the receive side again (`Stream::watch_receiving`):
//! the messages are read at the fd's next readiness, a batch at a time, not
//! inside the send.

use std::sync::Arc;
use std::time::{Duration, Instant};

use napi::bindgen_prelude::Buffer;
use shmsock::{Error as CoreError, ErrorKind, SendProgress};

use super::{would_block, StreamShared, StreamState, PARTIAL_SPIN, PARTIAL_SPIN_MAX};
use crate::dispatch::{lock, Event};
use crate::spin::Adaptive;

/// While a message is partly sent and the ring is full, how often a send
/// looks again for freed space (each look that finds none costs a system
/// call: the core drains the fd and arms it).
const SEND_SPIN_EVERY: Duration = Duration::from_micros(2);

impl StreamShared {
    /// A send from JavaScript: true when the message is in the ring now, else
    /// it completes as `op` once it is (in order with earlier sends): `keep`
    /// then holds on to the caller's buffer. On a Server connection whose
    /// queue is full: WouldBlock, nothing queued.
    pub(crate) fn send(
        self: &Arc<Self>,
        op: i64,
        data: &[u8],
        keep: impl FnOnce() -> Result<Buffer, CoreError>,
    ) -> Result<bool, CoreError> {
        let mut st = lock(&self.st);
        self.check_open(&st)?;
        // Behind a waiting send this one only queues: no ring operation, so
        // no wake-up consumed and nothing to watch again.
        let tried = st.outbox.is_empty();
        if tried {
            match self.send_spin(&st.send_spin, data)? {
                SendProgress::Complete => return Ok(true),
                SendProgress::Partial { .. } => {}
            }
        }
        st.outbox.push(op, keep()?)?;
        if tried {
            self.watch_receive_side(&mut st);
        }
        self.update_poll(&mut st);
        Ok(false)
    }

    /// Sends only if the whole message fits now and no send waits.
    pub(crate) fn try_send(self: &Arc<Self>, data: &[u8]) -> Result<bool, CoreError> {
        let mut st = lock(&self.st);
        self.check_open(&st)?;
        if !st.outbox.is_empty() {
            return Ok(false);
        }
        match self.stream.try_send(data) {
            Ok(()) => Ok(true),
            Err(e) if would_block(&e) => {
                self.watch_receive_side(&mut st);
                self.update_poll(&mut st);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// After a send consumed the fd's wake-ups: if anyone wants messages, the
    /// fd reports the next one (or one already there) again. Nothing is read
    /// here: a send from a Server connection's handler that read on at once
    /// would read the peer's messages until the ring is empty, handing each to
    /// the handler, whose replies then mostly find the queue full; read at the
    /// fd's readiness, a batch goes to the handler and its first refused reply
    /// pauses reading (`Outbox::pauses_reading`).
    pub(super) fn watch_receive_side(&self, st: &mut StreamState) {
        if !Self::wants_messages(st) || st.outbox.pauses_reading() {
            return;
        }
        // An error ended the connection: the fd reports that as well, and the
        // pump then fails what waits.
        let _ = self.stream.watch_receiving();
    }

    /// Resumes the waiting sends in order; true when none is left waiting.
    pub(super) fn resume_sends(&self, st: &mut StreamState, events: &mut Vec<Event>, spin: bool) -> bool {
        while let Some((op, data)) = st.outbox.front() {
            let resumed = if spin { self.send_spin(&st.send_spin, data) } else { self.stream.send_resumable(data) };
            match resumed {
                Ok(SendProgress::Complete) => {
                    st.outbox.pop();
                    events.push(Event::Done { op });
                }
                Ok(SendProgress::Partial { .. }) => return false,
                Err(error) => {
                    st.outbox.pop();
                    events.push(Event::Failed { op, error: error.clone() });
                    if error.kind().ends_connection() || error.kind() == ErrorKind::Closed {
                        st.outbox.fail_all(&error, events);
                    }
                }
            }
        }
        true
    }

    /// `send_resumable`, and while it leaves the message partly sent and the
    /// ring fills up, tries again every SEND_SPIN_EVERY for as long as the
    /// receiver frees space within PARTIAL_SPIN of the last try that made
    /// progress, up to PARTIAL_SPIN_MAX: a receiver on another core frees a
    /// fragment's space within microseconds, far sooner than a wake-up of this
    /// thread through the kernel would come. Adaptive as `spin_partial`.
    fn send_spin(&self, adapt: &Adaptive, data: &[u8]) -> Result<SendProgress, CoreError> {
        let mut progress = self.stream.send_resumable(data)?;
        let SendProgress::Partial { sent } = progress else { return Ok(progress) };
        if sent == 0 {
            // Nothing of it went out: the ring is full of earlier messages
            // (the peer is not reading now), not of this one's fragments.
            return Ok(progress);
        }
        let start = Instant::now();
        let Some(mut clock) = adapt.start(start, self.placement_hints(), PARTIAL_SPIN) else { return Ok(progress) };
        let end = start + PARTIAL_SPIN_MAX;
        let mut until = start + clock.budget;
        let mut last = sent;
        let mut next_try = start + SEND_SPIN_EVERY;
        let result = loop {
            std::hint::spin_loop();
            let now = Instant::now();
            if now < next_try {
                continue;
            }
            next_try = now + SEND_SPIN_EVERY;
            progress = match self.stream.send_resumable(data) {
                Ok(progress) => progress,
                Err(e) => break Err(e),
            };
            match progress {
                SendProgress::Complete => break Ok(progress),
                SendProgress::Partial { sent } if sent != last => {
                    last = sent;
                    until = now + PARTIAL_SPIN;
                    // As in `spin_partial`.
                    if clock.preempted_by(now) {
                        break Ok(progress);
                    }
                }
                SendProgress::Partial { .. } => {}
            }
            if now >= until || now >= end {
                break Ok(progress);
            }
        };
        adapt.end(clock, last != sent || matches!(result, Ok(SendProgress::Complete)));
        result
    }
}
