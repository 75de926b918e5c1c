//! The bounded outbound queue of a server connection: sends that never block
//! the dispatch loop.
//!
//! `Connection::send` writes straight into the ring when the queue is empty and
//! the message fits; otherwise the message waits in the connection's queue and
//! the dispatch loop sends it as the peer frees ring space, in order. The queue
//! holds at most `Options::max_queued_bytes` (one message of any size when it is
//! empty); a send that would exceed it fails with WouldBlock and queues nothing
//! (the policy is the same in every language: the caller decides whether to
//! drop the message, retry later or close the connection).
//!
//! Backpressure: once the queue refused a send (it is full), the dispatch loop
//! stops reading that connection's messages until every queued reply has gone
//! out ([`Outbound::pauses_reading`]). A peer that sends without reading its
//! replies then fills its own ring and waits in its send, asleep, instead of
//! keeping the server busy reading messages whose replies can only be dropped.
//! Waiting for the whole queue, not for one reply, is the hysteresis that
//! keeps a peer taking its replies one by one from having the server read a
//! batch of its messages, and refuse most of their replies, at each one.
//! The refusal itself still reaches the caller first, so the policy above
//! (drop, retry or close) is unchanged.

use std::collections::VecDeque;
use std::time::Instant;

use rustix::event::PollFlags;

use crate::error::{Error, ErrorKind, Result};
use crate::platform;
use crate::stream::{SendProgress, Stream};

/// Messages waiting for ring space, oldest first.
#[derive(Default)]
pub(crate) struct Outbound {
    queue: VecDeque<Vec<u8>>,
    bytes: usize,
    /// A send was refused since the queue was last empty.
    refused: bool,
}

/// Sends as much of `message` as fits now without waiting (resuming a message
/// partly sent before); true when all of it is in the ring. A message larger
/// than the ring goes through in pieces as the peer frees space.
fn send_step(stream: &Stream, message: &[u8]) -> Result<bool> {
    match stream.send_resumable(message) {
        Ok(SendProgress::Complete) => Ok(true),
        Ok(SendProgress::Partial { .. }) => Ok(false),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

impl Outbound {
    /// Messages waiting.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the loop should leave this connection's messages unread for
    /// now: the queue refused a send and has not been emptied since.
    pub(crate) fn pauses_reading(&self) -> bool {
        self.refused
    }

    /// Sends `message` now or queues it behind the others. Ok(true): it is in
    /// the ring; Ok(false): queued (the queue was empty before when `Ok(false)`
    /// and [`is_empty`](Outbound::is_empty) was true: the loop must be told).
    pub(crate) fn send(&mut self, stream: &Stream, message: &[u8], limit: usize) -> Result<bool> {
        if self.queue.is_empty() {
            if send_step(stream, message)? {
                return Ok(true);
            }
        } else if self.bytes.saturating_add(message.len()) > limit {
            self.refused = true;
            return Err(Error::new(
                ErrorKind::WouldBlock,
                format!(
                    "the connection's outbound queue is full ({} bytes waiting, limit {limit}): the peer is not reading; nothing was queued",
                    self.bytes
                ),
            ));
        }
        self.bytes += message.len();
        self.queue.push_back(message.to_vec());
        Ok(false)
    }

    /// Sends queued messages while they fit, in order, without waiting.
    pub(crate) fn flush(&mut self, stream: &Stream) -> Result<()> {
        while let Some(front) = self.queue.front() {
            if !send_step(stream, front)? {
                return Ok(());
            }
            self.bytes -= front.len();
            self.queue.pop_front();
        }
        self.refused = false;
        Ok(())
    }

    /// Off the loop, before a close: sends what is queued, waiting for the
    /// peer until `deadline` at most.
    pub(crate) fn drain_until(&mut self, stream: &Stream, deadline: Instant) -> Result<()> {
        while let Some(front) = self.queue.front() {
            if !send_step(stream, front)? {
                // Armed for freed space: wait for it, or give up at the deadline.
                if !platform::wait_fd(stream.pollable_fd(), PollFlags::IN, Some(deadline))? {
                    return Err(Error::new(ErrorKind::Timeout, "the peer did not take the queued messages in time"));
                }
                continue;
            }
            self.bytes -= front.len();
            self.queue.pop_front();
        }
        Ok(())
    }
}
