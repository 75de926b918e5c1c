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
//! reply that arrives within the spin costs no system call on either side. A
//! flowing stream spins the same way after its handler ran (`flow_on`), for
//! the message that answers the handler's reply.
//! When the peer said it runs on this thread's CPU (two processes on one
//! core), where a spin would only delay it, a receive that found nothing
//! hands the CPU over to the peer instead (`hand_over`: `sched_yield`, with
//! nothing armed, so the answer wakes nobody), and if that finds nothing
//! either, waits for the answer in place (`wait_in_place`): it sleeps on the
//! fd beside libuv's own epoll fd, so any other work of the loop ends the
//! wait, and the answer completes the receive without a turn of the loop.
//! `recvInto` decrypts straight into the caller's buffer.
//!
//! A large message comes in fragments (a quarter of the ring at most), so a
//! receive of one is mostly waiting for its next fragment. While a message is
//! partly received and someone waits for it, the receive keeps looking at the
//! ring for as long as fragments keep coming within microseconds of each other
//! (`spin_partial`), and a send whose message is partly in a full ring keeps
//! trying (`send_spin`): between two cores that replaces a wake-up through the
//! kernel per ring's worth on both sides (an eventfd write, a sleep, a drain),
//! which cost more than the fragments themselves. Both are bounded (2 ms of the
//! event loop at most), adaptive, and stop when the peer shares this thread's
//! CPU (its placement hint says so, or this thread was preempted while it
//! spun), where spinning would only take turns with the peer.
//!
//! Sending: `send_resumable` on the JavaScript thread. What does not fit now
//! waits in order in the `Outbox` and is resumed when the fd reports freed space.
//!
//! One fd carries both directions' wake-ups, and a WouldBlock from either
//! side consumes all pending wake-ups. So after the receive side consumed them,
//! waiting sends are retried, and after a send consumed them, the core watches
//! the receive side again (`Stream::watch_receiving`: the fd reports a message
//! already there): neither direction can sleep through the other's wake-up.
//!
//! Timeouts and aborts of receives are the JavaScript layer's timers, which
//! call [`cancel_recv`](StreamShared::cancel_recv): a receive is either
//! completed with a message or cancelled, never both, so none is lost.

mod look;
mod send;

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::Buffer;
use shmsock::placement::{self, Hints};
use shmsock::{Error as CoreError, ErrorKind, RecvBuf, Role, Stream};

use crate::dispatch::{lock, post, Event};
use crate::errors::closed;
use crate::inbox::{event_op, Inbox, RecvWaiter};
use crate::outbox::Outbox;
use crate::pool::Incoming;
use crate::spin::Adaptive;
use crate::uv::{deliver, Poll, Ready};

/// How long a receive looks at the ring before it sleeps on the fd.
const SPIN: Duration = Duration::from_micros(30);
/// While a message is partly received and someone waits for it, how long the
/// receive looks at the ring for its next fragment before it sleeps on the fd
/// (the window starts again at each fragment)...
const PARTIAL_SPIN: Duration = Duration::from_micros(20);
/// ...and for how long in all, before it lets the event loop run other work.
const PARTIAL_SPIN_MAX: Duration = Duration::from_millis(2);
/// How long a receive whose peer shares this CPU may wait for it in place
/// (see `wait_in_place`).
const IN_PLACE: Duration = Duration::from_millis(5);

/// Messages handed to a flowing stream's handler per turn of the event loop
/// before others get a turn (the fd stays readable, so libuv comes back).
const FLOW_BATCH: usize = 64;
/// How long a flowing stream may keep the event loop for messages found by
/// spinning after its handler ran (see `flow_on`): other handles of the loop
/// wait at most this long (plus the handler's own time) for their turn.
const FLOW_SPIN_MAX: Duration = Duration::from_micros(250);

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
    /// Sends waiting for ring space.
    outbox: Outbox,
    /// When a receive looks at the ring before it asks to be woken (see `spin`).
    recv_spin: Adaptive,
    /// When a receive whose peer shares this CPU waits for it in place (see
    /// `wait_in_place`).
    in_place: Adaptive,
    /// The last receive found part of a message, not all of it.
    partial: bool,
    /// Fragments received so far (progress of a partly received message).
    fragments: u64,
    /// The last message received fits in one frame.
    single_frame: bool,
    /// When to spin for a partly received message's next fragment (see
    /// `spin_partial`).
    partial_spin: Adaptive,
    /// Likewise for a send that waits for ring space (see `send_spin`).
    send_spin: Adaptive,
    poll: Option<Poll>,
}

/// The stream and its binding state, shared by the JavaScript object and the
/// poll handle (and, for a close, a short-lived thread).
pub(crate) struct StreamShared {
    pub(crate) id: i64,
    pub(crate) stream: Stream,
    pub(crate) recv_timeout: Option<Duration>,
    pub(crate) st: Mutex<StreamState>,
    /// The peer is a stream of this very process (it may be this thread,
    /// which could only answer once a wait returns). Found once: asking
    /// the kernel for our pid costs a system call per receive.
    peer_in_this_process: bool,
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
        self.pump(&mut st, events, true, true);
        self.update_poll(&mut st);
        let handed = st.inbox.flowing && events.iter().any(|e| matches!(e, Event::Data { .. }));
        drop(st);
        if handed {
            self.flow_on(events);
        }
    }
}

impl StreamShared {
    pub(crate) fn new(stream: Stream, recv_timeout: Option<Duration>) -> Arc<StreamShared> {
        StreamShared::with_queue_limit(stream, recv_timeout, None)
    }

    /// As `new`, with a limit on the bytes of waiting sends (a Server
    /// connection's `maxQueuedBytes`: see [`Outbox`]).
    pub(crate) fn with_queue_limit(
        stream: Stream,
        recv_timeout: Option<Duration>,
        queue_limit: Option<usize>,
    ) -> Arc<StreamShared> {
        LIVE_STREAMS.fetch_add(1, Ordering::Relaxed);
        let peer_in_this_process = u32::try_from(stream.peer_credentials().pid) == Ok(std::process::id());
        Arc::new(StreamShared {
            id: next_id(),
            peer_in_this_process,
            stream,
            recv_timeout,
            st: Mutex::new(StreamState { outbox: Outbox::with_limit(queue_limit), ..StreamState::default() }),
        })
    }

    /// The CPU hints of this connection (`shmsock::placement`): each side
    /// writes the CPU it runs on there (the core before it sleeps; this
    /// binding before it spins), so a spin can tell that the peer shares its
    /// CPU, where spinning only delays the peer (two processes pinned to one
    /// core). Advisory, like everything in the segment: a wrong value only
    /// costs a bounded spin, and preempted spins stop (`SpinClock`).
    fn placement_hints(&self) -> Hints<'_> {
        let (own, peer) = match self.stream.role() {
            Role::Client => (placement::CLIENT_CPU_HINT, placement::SERVER_CPU_HINT),
            Role::Server => (placement::SERVER_CPU_HINT, placement::CLIENT_CPU_HINT),
        };
        let segment = self.stream.shared_segment();
        Hints { own: segment.atomic_u32(own), peer: segment.atomic_u32(peer) }
    }

    /// Room for a message just received: someone waits for it, or the
    /// read-ahead queue is not full (while sends wait, always: the fd must be
    /// drained for their wake-ups to be seen).
    fn has_room(st: &StreamState) -> bool {
        !st.outbox.is_empty() || st.inbox.has_room()
    }

    /// Receives what is there (and resumes waiting sends): the work of one
    /// readiness of the fd. `batch`: stop after FLOW_BATCH messages to a
    /// flowing handler; only in a readiness callback, where the fd stays
    /// readable until this side consumes the wake-up (so libuv calls again).
    fn pump(&self, st: &mut StreamState, events: &mut Vec<Event>, batch: bool, spin: bool) {
        st.inbox.serve_ahead(self.id, events);
        if st.outbox.pauses_reading() && !self.resume_paused(st, events, spin) {
            return;
        }
        let mut delivered = 0;
        // True once this call consumed the fd's wake-ups: from then on it must
        // run until WouldBlock, since libuv will not call again without one.
        let mut drained = false;
        while st.inbox.ended.is_none() && Self::has_room(st) {
            if batch && !drained && st.inbox.flowing && delivered >= FLOW_BATCH {
                break;
            }
            // The receives that waited have their (one-frame) messages: read
            // no further ahead now. Their continuations run as this callback
            // returns and usually receive again at once, which then finds the
            // next message or arms the fd itself (one drain of the wake-up per
            // message instead of two); if none does, the fd is still readable
            // (this call consumed nothing) and the next turn reads ahead. Not
            // after a message in fragments: the next one is most likely coming
            // in already, and reading it on at once keeps its sender going
            // (measured: 1 MiB messages between two cores lost half their rate).
            if !drained
                && delivered > 0
                && st.single_frame
                && st.inbox.waiters.is_empty()
                && !st.inbox.flowing
                && st.outbox.is_empty()
            {
                break;
            }
            match self.receive_one(st, events, true) {
                Ok(true) => delivered += 1,
                Ok(false) => {
                    if spin && self.spin_partial(st, events) {
                        continue;
                    }
                    drained = true;
                    // The receive side consumed every wake-up: the waiting
                    // sends look again (their freed space may be among them).
                    if st.outbox.is_empty() || self.resume_sends(st, events, spin) {
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
            if e.kind().ends_connection() {
                let error = e.clone();
                st.outbox.fail_all(&error, events);
            }
        }
        st.inbox.report_end(self.id, events);
    }

    /// Backpressure (see [`Outbox`]): the queue of this Server connection
    /// refused a reply, so the peer's messages stay unread until the queue
    /// moves. Resumes the waiting sends; true when one went out (reading goes
    /// on). Else withdraws the wish for messages, so the fd becomes readable
    /// only for freed ring space or the peer's end, not for the messages the
    /// peer keeps sending: the peer's ring fills and its sends wait.
    fn resume_paused(&self, st: &mut StreamState, events: &mut Vec<Event>, spin: bool) -> bool {
        self.resume_sends(st, events, spin);
        if !st.outbox.pauses_reading() {
            return true;
        }
        if let Err(e) = self.stream.pause_receiving() {
            st.inbox.ended = Some(e.clone());
            st.outbox.fail_all(&e, events);
            st.inbox.report_end(self.id, events);
        }
        false
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
        let receive = |buf: &mut dyn RecvBuf| {
            if consume {
                self.stream.try_recv_with(buf)
            } else {
                self.stream.recv_with(buf, Some(Instant::now()))
            }
        };
        if let Some(buffer) = st.inbox.head_buffer() {
            let mut watched = Watched::new(&mut **buffer);
            let result = receive(&mut watched);
            let (started, fragments) = (watched.started, watched.fragments);
            st.fragments += fragments;
            st.partial = started && result.as_ref().is_err_and(nothing);
            if let Ok(len) = result {
                st.single_frame = len <= self.stream.max_frame_payload() as usize;
            }
            return match st.inbox.complete_into(result, events) {
                Ok(()) => Ok(true),
                Err(e) if nothing(&e) => Ok(false),
                Err(e) => Err(e),
            };
        }
        let mut message = Incoming::default();
        let mut watched = Watched::new(&mut message);
        let result = receive(&mut watched);
        let (started, fragments) = (watched.started, watched.fragments);
        st.fragments += fragments;
        st.partial = started && result.as_ref().is_err_and(nothing);
        match result {
            Ok(len) => {
                st.single_frame = len <= self.stream.max_frame_payload() as usize;
                st.inbox.take(self.id, message.into_vec(), events);
                Ok(true)
            }
            Err(e) if nothing(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A flowing stream whose handler is about to get messages: hands them
    /// over, and then, while the handler's reply is most likely crossing to
    /// the peer, looks at the ring for the peer's next message for up to SPIN
    /// and hands that over too, up to FLOW_BATCH messages and FLOW_SPIN_MAX
    /// in one readiness of the fd. Between two cores the next message then
    /// costs no sleep and no wake-up through the kernel (a `Server`'s or
    /// `Client`'s 'data' handler otherwise paid one per message, and ran at
    /// the speed of a Unix socket). The spin is a receive's (`spin`):
    /// adaptive, and never when the peer shares this CPU; there the CPU is
    /// handed over to the peer instead, as a receive does (`hand_over`).
    fn flow_on(self: &Arc<Self>, events: &mut Vec<Event>) {
        let end = Instant::now() + FLOW_SPIN_MAX;
        let mut found = false;
        for _ in 0..FLOW_BATCH {
            // The lock is not held while JavaScript runs: the handler sends.
            deliver(std::mem::take(events));
            let mut st = lock(&self.st);
            if st.closed {
                return;
            }
            let go_on = st.inbox.flowing && st.inbox.ended.is_none() && st.outbox.is_empty() && Instant::now() < end;
            let mut more = go_on && self.spin(&mut st, events);
            if go_on && !more {
                // A peer on this CPU: let it answer the reply now (`hand_over`).
                (st, more) = self.hand_over(st, events);
            }
            if !more {
                if found {
                    self.rearm(&mut st, events);
                }
                return;
            }
            found = true;
        }
        let mut st = lock(&self.st);
        if !st.closed {
            self.rearm(&mut st, events);
        }
    }

    /// After messages found by spinning (looks that ask for no wake-up):
    /// receives until WouldBlock, which asks to be woken for the next one, as
    /// a receive does when its spin finds nothing. Without it the fd would
    /// stay quiet while the peer's next message sits in the ring. Not while
    /// a reply waits for room: reading until WouldBlock would then hand the
    /// handler every message in the ring, past the backpressure of a Server
    /// connection's queue; the core watches the receive side instead, as
    /// after the send that left the reply waiting.
    fn rearm(self: &Arc<Self>, st: &mut StreamState, events: &mut Vec<Event>) {
        if st.outbox.is_empty() {
            self.pump(st, events, false, false);
        } else {
            self.watch_receive_side(st);
        }
        self.update_poll(st);
    }

    /// Watches the fd while anything could come of it, and keeps the process
    /// alive while something is pending. Creates the poll handle on first use.
    pub(crate) fn update_poll(self: &Arc<Self>, st: &mut StreamState) {
        if st.closed {
            return;
        }
        let pending = st.inbox.pending() || !st.outbox.is_empty();
        let watch = (st.inbox.ended.is_none() && Self::has_room(st)) || !st.outbox.is_empty();
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
    /// `timeout`: the receive's own, if it has one (a wait in place does not
    /// outlast it).
    pub(crate) fn recv(
        self: &Arc<Self>,
        op: i64,
        into: Option<Buffer>,
        timeout: Option<Duration>,
    ) -> Result<Option<Event>, CoreError> {
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
                && st.outbox.is_empty()
                && st.inbox.ended.is_none()
                && !self.recheck(&mut st, &mut events)
                && !self.spin(&mut st, &mut events)
            {
                st = self.hand_over(st, &mut events).0;
            }
            if !st.inbox.waiters.is_empty() {
                self.pump(&mut st, &mut events, false, true);
            }
            if !events.iter().any(|e| event_op(e) == Some(op)) {
                let limit = timeout.map_or(IN_PLACE, |t| t.min(IN_PLACE));
                st = self.wait_in_place(st, &mut events, op, limit);
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
        self.pump(&mut st, &mut events, false, false);
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
            self.pump(&mut st, &mut events, false, false);
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
    /// stops the poll handle, then closes the core stream: at once on this
    /// thread when its ring has room for the CLOSE frame (`try_close`, the
    /// usual case), else on a short-lived thread (a close waits up to 2 s for
    /// a peer that does not read to make room) that completes `op`. Returns
    /// true when nothing is left to wait for.
    pub(crate) fn close(self: &Arc<Self>, op: Option<i64>) -> bool {
        let mut st = lock(&self.st);
        if st.closed {
            return true;
        }
        st.closed = true;
        let mut events = Vec::new();
        st.inbox.close(self.id, &closed("stream"), &mut events);
        st.outbox.fail_all(&closed("stream"), &mut events);
        if let Some(poll) = st.poll.take() {
            poll.close();
        }
        drop(st);
        deliver(events);
        // Err: the stream failed; the core's close only shuts it down then.
        if !matches!(self.stream.try_close(), Ok(false)) {
            let _ = self.stream.close();
            return true;
        }
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

/// A receive's storage, noting whether a message was started in it and how
/// many fragments were opened into it (the core asks for the bytes once per
/// fragment).
struct Watched<'a, B: RecvBuf + ?Sized> {
    inner: &'a mut B,
    started: bool,
    fragments: u64,
}

impl<'a, B: RecvBuf + ?Sized> Watched<'a, B> {
    fn new(inner: &'a mut B) -> Self {
        Watched { inner, started: false, fragments: 0 }
    }
}

impl<B: RecvBuf + ?Sized> RecvBuf for Watched<'_, B> {
    fn prepare(&mut self, len: usize) -> shmsock::Result<()> {
        let prepared = self.inner.prepare(len);
        self.started |= prepared.is_ok();
        prepared
    }

    fn bytes(&mut self) -> &mut [u8] {
        self.fragments += 1;
        self.inner.bytes()
    }

    fn detach(&mut self, len: usize) -> Option<Vec<u8>> {
        self.inner.detach(len)
    }

    fn take_back(&mut self, bytes: &mut Vec<u8>) -> bool {
        let taken = self.inner.take_back(bytes);
        self.started |= taken;
        taken
    }
}
