//! `Outbox`: the sending half of a stream driven from the JavaScript thread:
//! the sends waiting for ring space, oldest first (the first may be partly
//! sent), and, on a Server connection, the bound on them and the
//! backpressure that follows a refusal.
//!
//! A Server connection's handler does not await its sends, so its queue holds
//! at most `maxQueuedBytes` (one message of any size when it is empty): the
//! core's `Options::max_queued_bytes` policy of `Connection::send`. A send
//! beyond it fails with WouldBlock and queues nothing. Once one was refused,
//! the stream reads no more of that peer's messages until every queued send
//! has gone out ([`pauses_reading`](Outbox::pauses_reading)), as the core's
//! dispatch loop does: a peer that sends without taking its replies then fills
//! its own ring and waits in its send, instead of keeping the server busy
//! reading messages whose replies can only be dropped. A Stream's caller awaits each send, so
//! its queue has no bound.
//!
//! It does no I/O, like [`Inbox`](crate::inbox::Inbox): its owner sends the
//! messages and tells it which went out.

use std::collections::VecDeque;

use napi::bindgen_prelude::Buffer;
use shmsock::{Error as CoreError, ErrorKind};

use crate::dispatch::Event;

#[derive(Default)]
pub(crate) struct Outbox {
    sends: VecDeque<(i64, Buffer)>,
    /// Bytes of the messages in `sends`.
    bytes: usize,
    /// The bound on `bytes` (None: unbounded).
    limit: Option<usize>,
    /// A send was refused since the queue was last empty.
    refused: bool,
}

impl Outbox {
    /// An outbox holding at most `limit` bytes of waiting sends (None: no bound).
    pub(crate) fn with_limit(limit: Option<usize>) -> Self {
        Outbox { limit, ..Outbox::default() }
    }

    /// True when no send waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.sends.is_empty()
    }

    /// The oldest waiting send: its op and message.
    pub(crate) fn front(&self) -> Option<(i64, &Buffer)> {
        self.sends.front().map(|(op, data)| (*op, data))
    }

    /// Queues send `op` behind the others, unless that would exceed the bound
    /// while others wait: then WouldBlock, nothing is queued, and reading
    /// pauses until the queue is empty.
    pub(crate) fn push(&mut self, op: i64, data: Buffer) -> Result<(), CoreError> {
        if let Some(limit) = self.limit {
            if !self.sends.is_empty() && self.bytes.saturating_add(data.len()) > limit {
                self.refused = true;
                return Err(CoreError::new(
                    ErrorKind::WouldBlock,
                    format!(
                        "the peer is not reading: {} bytes already wait to be sent (maxQueuedBytes {limit}); nothing was sent or queued",
                        self.bytes
                    ),
                ));
            }
        }
        self.bytes += data.len();
        self.sends.push_back((op, data));
        Ok(())
    }

    /// The oldest send went out (or failed). Reading resumes once none waits:
    /// a peer taking its replies one by one would otherwise have a batch of
    /// its messages read (and most of their replies refused) at each one.
    pub(crate) fn pop(&mut self) {
        if let Some((_, data)) = self.sends.pop_front() {
            self.bytes -= data.len();
        }
        if self.sends.is_empty() {
            self.refused = false;
        }
    }

    /// Fails every waiting send with `error`.
    pub(crate) fn fail_all(&mut self, error: &CoreError, events: &mut Vec<Event>) {
        self.bytes = 0;
        self.refused = false;
        for (op, _) in self.sends.drain(..) {
            events.push(Event::Failed { op, error: error.clone() });
        }
    }

    /// Whether the stream should leave the peer's messages unread for now: a
    /// send was refused and the queue has not been emptied since.
    pub(crate) fn pauses_reading(&self) -> bool {
        self.refused
    }
}
