//! `Inbox`: the receiving half of anything the JavaScript thread reads
//! messages from (a stream, a subscriber): the pending receives, the bounded
//! read-ahead queue, the *flowing* mode that hands every message to an event
//! handler, and how the end of the messages is reported to each of them.
//!
//! It does no I/O: its owner reads messages from the core and hands them to
//! [`take`](Inbox::take); the inbox decides who gets them, as events.

use std::collections::VecDeque;

use napi::bindgen_prelude::{Buffer, Either};
use shmsock::{Error as CoreError, ErrorKind};

use crate::dispatch::{Event, Message};
use crate::errors::{to_js, Code};
use crate::pool;

/// Messages read ahead while nobody waits, at most...
const AHEAD_MESSAGES: usize = 64;
/// ...and bytes (one message of any size is always taken).
const AHEAD_BYTES: usize = 1 << 20;

/// A pending receive: `into` for `recvInto`.
pub(crate) struct RecvWaiter {
    pub(crate) op: i64,
    pub(crate) into: Option<Buffer>,
}

#[derive(Default)]
pub(crate) struct Inbox {
    pub(crate) waiters: VecDeque<RecvWaiter>,
    ahead: VecDeque<Vec<u8>>,
    ahead_bytes: usize,
    /// Why the receive side ended (reported once `ahead` is empty).
    pub(crate) ended: Option<CoreError>,
    pub(crate) flowing: bool,
    /// A flowing owner's END event was sent.
    pub(crate) flow_ended: bool,
}

impl Inbox {
    /// Room for a message just received: someone waits for it, or the
    /// read-ahead queue is not full.
    pub(crate) fn has_room(&self) -> bool {
        self.flowing
            || !self.waiters.is_empty()
            || (self.ahead.len() < AHEAD_MESSAGES && self.ahead_bytes < AHEAD_BYTES)
    }

    /// Someone is waiting for messages (a receive, or a flowing handler).
    pub(crate) fn pending(&self) -> bool {
        !self.waiters.is_empty() || (self.flowing && !self.flow_ended)
    }

    /// Messages read ahead and not delivered yet.
    pub(crate) fn ahead_len(&self) -> usize {
        self.ahead.len()
    }

    /// Hands `message` to the oldest waiter, the handler (as a DATA event of
    /// owner `id`), or the queue.
    pub(crate) fn take(&mut self, id: i64, message: Vec<u8>, events: &mut Vec<Event>) {
        if self.flowing {
            events.push(Event::Data { id, data: message });
            return;
        }
        match self.waiters.pop_front() {
            Some(RecvWaiter { op, into: None }) => events.push(Event::Recv { op, data: message }),
            Some(RecvWaiter { op, into: Some(mut buffer) }) => {
                if message.len() <= buffer.len() {
                    buffer[..message.len()].copy_from_slice(&message);
                    events.push(Event::RecvInto { op, len: message.len() as u32 });
                    // A message read ahead into a pool block: the block is
                    // free again for the next one.
                    pool::give_back(message);
                } else {
                    // The message stays first in line for the next receive.
                    let error = CoreError::buffer_too_small(message.len(), buffer.len());
                    events.push(Event::Failed { op, error });
                    self.ahead_bytes += message.len();
                    self.ahead.push_front(message);
                }
            }
            None => {
                self.ahead_bytes += message.len();
                self.ahead.push_back(message);
            }
        }
    }

    /// The buffer of the receive at the head of the line if it is a
    /// `recvInto` (and messages are not flowing): its owner decrypts the next
    /// message straight into it, then calls [`complete_into`](Inbox::complete_into).
    pub(crate) fn head_buffer(&mut self) -> Option<&mut Buffer> {
        if self.flowing || !self.ahead.is_empty() {
            return None;
        }
        self.waiters.front_mut().and_then(|w| w.into.as_mut())
    }

    /// Completes the head `recvInto` with the owner's receive into its
    /// buffer: its length, or BufferTooSmall (the core keeps the message first
    /// in line). Any other error is given back, the receive still waiting.
    pub(crate) fn complete_into(
        &mut self,
        result: Result<usize, CoreError>,
        events: &mut Vec<Event>,
    ) -> Result<(), CoreError> {
        match result {
            Err(e) if e.kind() != ErrorKind::BufferTooSmall => Err(e),
            result => {
                let Some(w) = self.waiters.pop_front() else { return Ok(()) };
                events.push(match result {
                    // A message is at most u32::MAX bytes (frame lengths are u32).
                    Ok(len) => Event::RecvInto { op: w.op, len: u32::try_from(len).unwrap_or(u32::MAX) },
                    Err(error) => Event::Failed { op: w.op, error },
                });
                Ok(())
            }
        }
    }

    /// Serves waiters (and a flowing handler) from the read-ahead queue.
    pub(crate) fn serve_ahead(&mut self, id: i64, events: &mut Vec<Event>) {
        while (self.flowing || !self.waiters.is_empty()) && !self.ahead.is_empty() {
            let Some(message) = self.ahead.pop_front() else { break };
            self.ahead_bytes -= message.len();
            self.take(id, message, events);
        }
    }

    /// Reports the end of the messages to whoever waits, once the messages
    /// before it were delivered (a flowing handler's END carries no error for
    /// a clean close).
    pub(crate) fn report_end(&mut self, id: i64, events: &mut Vec<Event>) {
        let Some(error) = self.ended.clone() else { return };
        if !self.ahead.is_empty() {
            return;
        }
        for w in self.waiters.drain(..) {
            events.push(Event::Failed { op: w.op, error: error.clone() });
        }
        if self.flowing && !self.flow_ended {
            self.flow_ended = true;
            let error = (error.kind() != ErrorKind::PeerClosed).then_some(error);
            events.push(Event::End { id, error });
        }
    }

    /// Cancels a pending receive (timeout, abort); false if it completed.
    pub(crate) fn cancel(&mut self, op: i64) -> bool {
        let before = self.waiters.len();
        self.waiters.retain(|w| w.op != op);
        self.waiters.len() != before
    }

    /// This side closed: pending receives fail with `error`, a flowing
    /// handler gets a clean END, and what was read ahead is dropped.
    pub(crate) fn close(&mut self, id: i64, error: &CoreError, events: &mut Vec<Event>) {
        for w in self.waiters.drain(..) {
            events.push(Event::Failed { op: w.op, error: error.clone() });
        }
        if self.flowing && !self.flow_ended {
            self.flow_ended = true;
            events.push(Event::End { id, error: None });
        }
        self.ahead.clear();
        self.ahead_bytes = 0;
    }

    /// Refuses a receive call on a flowing owner.
    pub(crate) fn check_not_flowing(&self) -> Result<(), CoreError> {
        if self.flowing {
            return Err(CoreError::new(
                ErrorKind::InvalidArgument,
                "this object delivers its messages as events; use them instead",
            ));
        }
        Ok(())
    }
}

/// The op an event completes, if it completes one.
pub(crate) fn event_op(event: &Event) -> Option<i64> {
    match event {
        Event::Recv { op, .. } | Event::RecvInto { op, .. } | Event::Failed { op, .. } => Some(*op),
        _ => None,
    }
}

/// A receive's own completion as its native call returns it to JavaScript:
/// the message, the length copied (`recvInto`, or a plain receive's small
/// message copied to the landing buffer, `uv::land`), or null (it waits).
pub(crate) fn recv_result(event: Option<Event>) -> napi::Result<Option<Either<Message, u32>>, Code> {
    match event {
        Some(Event::Recv { data, .. }) if crate::uv::land(&data) => Ok(Some(Either::B(data.len() as u32))),
        Some(Event::Recv { data, .. }) => Ok(Some(Either::A(Message(data)))),
        Some(Event::RecvInto { len, .. }) => Ok(Some(Either::B(len))),
        Some(Event::Failed { error, .. }) => Err(to_js(error)),
        _ => Ok(None),
    }
}
