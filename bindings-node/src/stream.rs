//! `StreamShared`: one connection driven from the JavaScript thread.
//!
//! Waiting: once a stream is used, a libuv poll handle ([`Poll`]) watches its
//! pollable fd for the stream's whole life, on the JavaScript thread's own
//! event loop. When the fd is readable, [`ready`](StreamShared::ready) runs
//! `try_recv` until WouldBlock and hands the messages to the pending receives
//! (or, on a Server's or Client's *flowing* stream, to the handler) in the same
//! turn: one thread wake-up per message, and no `epoll_ctl` per message. A
//! message that arrives while nobody waits is read ahead into a small bounded
//! queue (that consumes the wake-up, so the fd does not stay readable); when
//! the queue is full the fd is no longer watched until a receive takes some.
//! The handle keeps the process alive only while something is pending. A
//! receive first looks at the ring for a short, adaptive spin, and asks to be
//! woken (`try_recv`'s WouldBlock arms the ring) only when nothing came: a
//! reply that arrives within the spin costs no system call on either side.
//! `recvInto` decrypts straight into the caller's buffer.
//!
//! Sending: `send_resumable` on the JavaScript thread. What does not fit now
//! waits in order in `sends` and is resumed when the fd reports freed space.
//!
//! One fd carries both directions' wake-ups, and a WouldBlock from either
//! side consumes all pending wake-ups. So after the receive side consumed them,
//! waiting sends are retried, and after a send consumed them, the receive side
//! is looked at once more without consuming anything (`recv_timeout(0)`):
//! neither direction can sleep through the other's wake-up.
//!
//! Timeouts and aborts of receives are the JavaScript layer's timers, which
//! call [`cancel_recv`](StreamShared::cancel_recv): a receive is either
//! completed with a message or cancelled, never both, so none is lost.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::Buffer;
use shmsock::{Error as CoreError, ErrorKind, SendProgress, Stream};

use crate::dispatch::{lock, post, Event};
use crate::errors::closed;
use crate::inbox::{event_op, Inbox, RecvWaiter};
use crate::pool::Incoming;
use crate::uv::{deliver, Poll, Ready};

/// How long a receive looks at the ring before it sleeps on the fd.
const SPIN: Duration = Duration::from_micros(30);
/// Spins in a row that found nothing before receives stop spinning...
const SPIN_GIVE_UP: u32 = 8;
/// ...and how often one spins again after that.
const SPIN_RETRY_EVERY: u32 = 64;
/// Messages handed to a flowing stream's handler per turn of the event loop
/// before others get a turn (the fd stays readable, so libuv comes back).
const FLOW_BATCH: usize = 64;

static NEXT_ID: AtomicI64 = AtomicI64::new(1);
static LIVE_STREAMS: AtomicU64 = AtomicU64::new(0);

/// A new id for a stream or listener (unique in the process).
pub(crate) fn next_id() -> i64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// How many streams are alive in this process.
pub(crate) fn live_streams() -> u64 {
    LIVE_STREAMS.load(Ordering::Relaxed)
}

#[derive(Default)]
pub(crate) struct StreamState {
    pub(crate) closed: bool,
    /// Receives, read-ahead and the flowing handler.
    inbox: Inbox,
    /// Sends waiting for ring space, oldest first; the first may be partly sent.
    sends: VecDeque<(i64, Buffer)>,
    /// Bytes of the messages in `sends`.
    queued_bytes: usize,
    /// Spins in a row before a receive that found nothing, and spins skipped
    /// since (see `spin`).
    spin_failures: u32,
    spins_skipped: u32,
    poll: Option<Poll>,
}

/// The stream and its binding state, shared by the JavaScript object and the
/// poll handle (and, for a close, a short-lived thread).
pub(crate) struct StreamShared {
    pub(crate) id: i64,
    pub(crate) stream: Stream,
    pub(crate) recv_timeout: Option<Duration>,
    /// A Server connection's limit on `sends` (its handler does not await
    /// sends): the core's `Options::max_queued_bytes` policy of
    /// `Connection::send`. None: unbounded (a Stream's caller awaits each send).
    queue_limit: Option<usize>,
    pub(crate) st: Mutex<StreamState>,
}

impl Drop for StreamShared {
    fn drop(&mut self) {
        LIVE_STREAMS.fetch_sub(1, Ordering::Relaxed);
    }
}

fn would_block(e: &CoreError) -> bool {
    e.kind() == ErrorKind::WouldBlock
}

impl Ready for StreamShared {
    fn ready(self: Arc<Self>, events: &mut Vec<Event>) {
        let mut st = lock(&self.st);
        if st.closed {
            return;
        }
        self.pump(&mut st, events, true);
        self.update_poll(&mut st);
    }
}

impl StreamShared {
    pub(crate) fn new(stream: Stream, recv_timeout: Option<Duration>) -> Arc<StreamShared> {
        StreamShared::with_queue_limit(stream, recv_timeout, None)
    }

    /// As `new`, with a limit on the bytes of waiting sends (see `queue_limit`).
    pub(crate) fn with_queue_limit(
        stream: Stream,
        recv_timeout: Option<Duration>,
        queue_limit: Option<usize>,
    ) -> Arc<StreamShared> {
        LIVE_STREAMS.fetch_add(1, Ordering::Relaxed);
        Arc::new(StreamShared {
            id: next_id(),
            stream,
            recv_timeout,
            queue_limit,
            st: Mutex::new(StreamState::default()),
        })
    }

    /// Room for a message just received: someone waits for it, or the
    /// read-ahead queue is not full (while sends wait, always: the fd must be
    /// drained for their wake-ups to be seen).
    fn has_room(st: &StreamState) -> bool {
        !st.sends.is_empty() || st.inbox.has_room()
    }

    /// Receives what is there (and resumes waiting sends): the work of one
    /// readiness of the fd. `batch`: stop after FLOW_BATCH messages to a
    /// flowing handler; only in a readiness callback, where the fd stays
    /// readable until this side consumes the wake-up (so libuv calls again).
    fn pump(&self, st: &mut StreamState, events: &mut Vec<Event>, batch: bool) {
        st.inbox.serve_ahead(self.id, events);
        let mut delivered = 0;
        // True once this call consumed the fd's wake-ups: from then on it must
        // run until WouldBlock, since libuv will not call again without one.
        let mut drained = false;
        while st.inbox.ended.is_none() && Self::has_room(st) {
            if batch && !drained && st.inbox.flowing && delivered >= FLOW_BATCH {
                break;
            }
            match self.receive_one(st, events, true) {
                Ok(true) => delivered += 1,
                Ok(false) => {
                    drained = true;
                    // The receive side consumed every wake-up: the waiting
                    // sends look again (their freed space may be among them).
                    if st.sends.is_empty() || self.resume_sends(st, events) {
                        break;
                    }
                    // A send consumed the wake-ups in turn: look at the
                    // receive side once more without consuming any.
                    if !self.recheck(st, events) {
                        break;
                    }
                }
                Err(e) => st.inbox.ended = Some(e),
            }
        }
        // The connection ended (the peer died or closed, or the stream
        // failed): sends still waiting for room will never get it. Without
        // this they would keep the fd watched while it stays readable (the
        // control socket's hang-up), and the loop would spin.
        if let Some(e) = &st.inbox.ended {
            if !st.sends.is_empty() && e.kind().ends_connection() {
                let error = e.clone();
                st.queued_bytes = 0;
                for (op, _) in st.sends.drain(..) {
                    events.push(Event::Failed { op, error: error.clone() });
                }
            }
        }
        st.inbox.report_end(self.id, events);
    }

    /// Receives the next message for the inbox: a `recvInto` at the head of
    /// the line gets it decrypted straight into its buffer (no allocation, no
    /// copy), anyone else as a new buffer. `consume`: on nothing, consume the
    /// fd's wake-ups (`try_recv`) or leave them armed (a zero timeout). Ok(true)
    /// when a message was handed on (or a `recvInto` failed with
    /// BufferTooSmall, the message staying first in line), Ok(false) when none
    /// is complete now, Err when the receive side ended.
    fn receive_one(&self, st: &mut StreamState, events: &mut Vec<Event>, consume: bool) -> Result<bool, CoreError> {
        let nothing = |e: &CoreError| if consume { would_block(e) } else { e.kind() == ErrorKind::Timeout };
        if let Some(buffer) = st.inbox.head_buffer() {
            let result = if consume {
                self.stream.try_recv_into(buffer)
            } else {
                self.stream.recv_into_timeout(buffer, Some(Duration::ZERO))
            };
            return match st.inbox.complete_into(result, events) {
                Ok(()) => Ok(true),
                Err(e) if nothing(&e) => Ok(false),
                Err(e) => Err(e),
            };
        }
        let mut message = Incoming::default();
        let result = if consume {
            self.stream.try_recv_with(&mut message)
        } else {
            self.stream.recv_with(&mut message, Some(Instant::now()))
        };
        match result {
            Ok(_) => {
                st.inbox.take(self.id, message.into_vec(), events);
                Ok(true)
            }
            Err(e) if nothing(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One look at the receive side that consumes no wake-up (and leaves it
    /// armed): true when a message was handed on.
    fn recheck(&self, st: &mut StreamState, events: &mut Vec<Event>) -> bool {
        match self.receive_one(st, events, false) {
            Ok(found) => found,
            Err(e) => {
                st.inbox.ended = Some(e);
                false
            }
        }
    }

    /// Before a receive asks to be woken: looks at the ring for up to SPIN,
    /// without a system call and without consuming any wake-up (a reply
    /// from a peer on another core usually comes within microseconds, far
    /// sooner than a wake-up through the kernel). Adaptive, as the core's own
    /// waiting: after SPIN_GIVE_UP spins in a row found nothing (the peer is
    /// slow, or shares this core, where spinning only delays it), it spins only
    /// every SPIN_RETRY_EVERY-th time.
    fn spin(&self, st: &mut StreamState, events: &mut Vec<Event>) {
        if st.spin_failures >= SPIN_GIVE_UP {
            st.spins_skipped += 1;
            if st.spins_skipped < SPIN_RETRY_EVERY {
                return;
            }
            st.spins_skipped = 0;
        }
        let until = Instant::now() + SPIN;
        loop {
            if self.recheck(st, events) {
                st.spin_failures = 0;
                return;
            }
            if st.inbox.ended.is_some() || Instant::now() >= until {
                st.spin_failures = st.spin_failures.saturating_add(1);
                return;
            }
        }
    }

    fn pop_send(st: &mut StreamState) {
        if let Some((_, data)) = st.sends.pop_front() {
            st.queued_bytes -= data.len();
        }
    }

    /// Resumes the waiting sends in order; true when none is left waiting.
    fn resume_sends(&self, st: &mut StreamState, events: &mut Vec<Event>) -> bool {
        while let Some((op, data)) = st.sends.front() {
            let op = *op;
            match self.stream.send_resumable(data) {
                Ok(SendProgress::Complete) => {
                    Self::pop_send(st);
                    events.push(Event::Done { op });
                }
                Ok(SendProgress::Partial { .. }) => return false,
                Err(error) => {
                    Self::pop_send(st);
                    let ends = error.kind().ends_connection() || error.kind() == ErrorKind::Closed;
                    events.push(Event::Failed { op, error: error.clone() });
                    if ends {
                        st.queued_bytes = 0;
                        for (op, _) in st.sends.drain(..) {
                            events.push(Event::Failed { op, error: error.clone() });
                        }
                    }
                }
            }
        }
        true
    }

    /// Watches the fd while anything could come of it, and keeps the process
    /// alive while something is pending. Creates the poll handle on first use.
    pub(crate) fn update_poll(self: &Arc<Self>, st: &mut StreamState) {
        if st.closed {
            return;
        }
        let pending = st.inbox.pending() || !st.sends.is_empty();
        let watch = (st.inbox.ended.is_none() && Self::has_room(st)) || !st.sends.is_empty();
        if st.poll.is_none() {
            if !watch {
                return;
            }
            // The fd outlives the handle: `close` stops it before the stream
            // can be dropped, and the handle holds the stream until closed.
            match Poll::new(self.stream.pollable_fd().as_raw_fd(), Arc::clone(self) as Arc<dyn Ready>) {
                Ok(poll) => st.poll = Some(poll),
                Err(_) => return,
            }
        }
        if let Some(poll) = st.poll.as_mut() {
            poll.set(watch, pending && watch);
        }
    }

    // ------------------------------------------------------------ operations

    /// A receive from JavaScript: the message now if there is one (Ok(Some)),
    /// else it waits as `op` (Ok(None)).
    pub(crate) fn recv(self: &Arc<Self>, op: i64, into: Option<Buffer>) -> Result<Option<Event>, CoreError> {
        let mut st = lock(&self.st);
        self.check_recv(&st)?;
        st.inbox.waiters.push_back(RecvWaiter { op, into });
        let mut events = Vec::new();
        if st.inbox.waiters.len() == 1 {
            // Look for the message before asking to be woken: `try_recv`'s
            // WouldBlock arms the ring, and an armed ring makes the peer write
            // to the fd for its next message, which this side then consumes
            // (two system calls and a readiness callback per message). A
            // message found by the spin needs none of that; one that is not
            // there is still armed for below, race-free, by `pump`.
            // A message already there is taken without counting as a spin
            // that succeeded: on one core the reply is often complete before
            // the receive (the peer ran when woken), which says nothing
            // about whether spinning for it pays.
            if st.inbox.ahead_len() == 0
                && st.sends.is_empty()
                && st.inbox.ended.is_none()
                && !self.recheck(&mut st, &mut events)
            {
                self.spin(&mut st, &mut events);
            }
            if !st.inbox.waiters.is_empty() {
                self.pump(&mut st, &mut events, false);
            }
        }
        self.update_poll(&mut st);
        drop(st);
        // The completion of this receive is returned, not dispatched.
        let mine = events.iter().position(|e| event_op(e) == Some(op)).map(|i| events.remove(i));
        deliver(events);
        Ok(mine)
    }

    /// A message if one is complete now and no receive waits; never waits.
    pub(crate) fn try_recv(self: &Arc<Self>) -> Result<Option<Vec<u8>>, CoreError> {
        let mut st = lock(&self.st);
        self.check_recv(&st)?;
        if !st.inbox.waiters.is_empty() {
            return Ok(None);
        }
        let mut events = Vec::new();
        // A waiter of our own makes the pump stop after one message.
        let op = 0;
        st.inbox.waiters.push_back(RecvWaiter { op, into: None });
        self.pump(&mut st, &mut events, false);
        let mut result = Ok(None);
        if let Some(i) = events.iter().position(|e| event_op(e) == Some(op)) {
            match events.remove(i) {
                Event::Recv { data, .. } => result = Ok(Some(data)),
                Event::Failed { error, .. } => result = Err(error),
                _ => {}
            }
        } else {
            st.inbox.waiters.retain(|w| w.op != op);
        }
        self.update_poll(&mut st);
        drop(st);
        deliver(events);
        result
    }

    /// Cancels a pending receive (timeout, abort); false if it completed.
    pub(crate) fn cancel_recv(self: &Arc<Self>, op: i64) -> bool {
        let mut st = lock(&self.st);
        let cancelled = st.inbox.cancel(op);
        self.update_poll(&mut st);
        cancelled
    }

    /// A send from JavaScript: true when the message is in the ring now, else
    /// it completes as `op` once it is (in order with earlier sends).
    pub(crate) fn send(self: &Arc<Self>, op: i64, data: Buffer) -> Result<bool, CoreError> {
        let mut st = lock(&self.st);
        self.check_open(&st)?;
        if st.sends.is_empty() {
            match self.stream.send_resumable(&data)? {
                SendProgress::Complete => return Ok(true),
                SendProgress::Partial { .. } => {}
            }
        } else if let Some(limit) = self.queue_limit {
            if st.queued_bytes.saturating_add(data.len()) > limit {
                return Err(CoreError::new(
                    ErrorKind::WouldBlock,
                    format!(
                        "the peer is not reading: {} bytes already wait to be sent (maxQueuedBytes {limit}); nothing was sent or queued",
                        st.queued_bytes
                    ),
                ));
            }
        }
        st.queued_bytes += data.len();
        st.sends.push_back((op, data));
        // The send consumed the fd's wake-ups: look at the receive side.
        let mut events = Vec::new();
        if Self::wants_messages(&st) {
            if self.recheck(&mut st, &mut events) {
                self.pump(&mut st, &mut events, false);
            }
            st.inbox.report_end(self.id, &mut events);
        }
        self.update_poll(&mut st);
        drop(st);
        // The pump may have completed this very send (resumed after a receive
        // consumed the wake-ups): that is returned, not dispatched, since
        // JavaScript tracks the op only once this returns.
        let mine =
            events.iter().position(|e| matches!(e, Event::Done { op: o } | Event::Failed { op: o, .. } if *o == op));
        let mine = mine.map(|i| events.remove(i));
        deliver(events);
        match mine {
            Some(Event::Failed { error, .. }) => Err(error),
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    /// Sends only if the whole message fits now and no send waits.
    pub(crate) fn try_send(self: &Arc<Self>, data: &[u8]) -> Result<bool, CoreError> {
        let mut st = lock(&self.st);
        self.check_open(&st)?;
        if !st.sends.is_empty() {
            return Ok(false);
        }
        match self.stream.try_send(data) {
            Ok(()) => Ok(true),
            Err(e) if would_block(&e) => {
                let mut events = Vec::new();
                if Self::wants_messages(&st) {
                    if self.recheck(&mut st, &mut events) {
                        self.pump(&mut st, &mut events, false);
                    }
                    st.inbox.report_end(self.id, &mut events);
                }
                self.update_poll(&mut st);
                drop(st);
                deliver(events);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn wants_messages(st: &StreamState) -> bool {
        st.inbox.ended.is_none() && (st.inbox.flowing || !st.inbox.waiters.is_empty())
    }

    /// Delivers every message as a DATA event from now on (Server/Client).
    pub(crate) fn start_flowing(self: &Arc<Self>) -> Result<(), CoreError> {
        let mut st = lock(&self.st);
        self.check_recv(&st)?;
        if !st.inbox.waiters.is_empty() {
            return Err(CoreError::new(ErrorKind::InvalidArgument, "a recv() is pending on this stream"));
        }
        let mut events = Vec::new();
        if !st.inbox.flowing {
            st.inbox.flowing = true;
            // Not in a readiness of the fd: run until WouldBlock (a batch
            // limit would rely on a readiness that may never come).
            self.pump(&mut st, &mut events, false);
        }
        self.update_poll(&mut st);
        drop(st);
        deliver(events);
        Ok(())
    }

    fn check_open(&self, st: &StreamState) -> Result<(), CoreError> {
        if st.closed {
            return Err(closed("stream"));
        }
        Ok(())
    }

    fn check_recv(&self, st: &StreamState) -> Result<(), CoreError> {
        self.check_open(st)?;
        if st.inbox.flowing {
            return Err(CoreError::new(
                ErrorKind::InvalidArgument,
                "this stream delivers its messages as events (Server/Client); use them instead",
            ));
        }
        Ok(())
    }

    /// Closes for this binding: fails what is pending with `code` CLOSED,
    /// stops the poll handle, then closes the core stream on a short-lived
    /// thread (a close may wait up to 2 s for ring space for its CLOSE frame)
    /// and completes `op`. Returns true when nothing is left to wait for.
    pub(crate) fn close(self: &Arc<Self>, op: Option<i64>) -> bool {
        let mut st = lock(&self.st);
        if st.closed {
            return true;
        }
        st.closed = true;
        let mut events = Vec::new();
        st.inbox.close(self.id, &closed("stream"), &mut events);
        st.queued_bytes = 0;
        for (op, _) in st.sends.drain(..) {
            events.push(Event::Failed { op, error: closed("stream") });
        }
        if let Some(poll) = st.poll.take() {
            poll.close();
        }
        drop(st);
        deliver(events);
        let shared = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("shmsock-close".into()).spawn(move || {
            let _ = shared.stream.close();
            if let Some(op) = op {
                post(Box::new(move |events: &mut Vec<Event>| events.push(Event::Done { op })));
            }
        });
        match spawned {
            Ok(_) => op.is_none(),
            Err(_) => {
                // No thread to be had: close here (blocks only with a full ring).
                let _ = self.stream.close();
                true
            }
        }
    }
}
