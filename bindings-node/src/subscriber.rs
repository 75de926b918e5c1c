//! `NativeSubscriber`: the receiving end of a topic (wrapped by the JavaScript
//! `Subscriber` class), driven from the JavaScript thread as a stream's
//! receiving half is (see [`crate::stream`]).
//!
//! Waiting: a libuv poll handle watches the subscriber's pollable fd for its
//! whole life (created on first use). When it is readable,
//! [`ready`](SubShared::ready) runs `try_recv` until WouldBlock and hands the
//! messages to the pending receives or, in *flowing* mode, to the 'message'
//! handler, in the same turn: no helper thread, no timer, no thread pool. A
//! message that arrives while nobody waits is read ahead into the inbox's
//! bounded queue; when it is full the fd is no longer watched (on a latest
//! topic, what the publisher overwrites meanwhile is counted as lost by the
//! core). The handle keeps the process alive only while something is pending.
//! A receive first looks at the ring (the core's short adaptive spin, no
//! system call) and arms the fd only when nothing came.
//!
//! Subscribing (the handshake) runs on the JavaScript thread, as a connect
//! does (the core's `Subscribing`, see [`crate::connect`]).

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, Either};
use napi_derive::napi;
use shmsock::{Error as CoreError, ErrorKind, Subscriber, Subscribing};

use crate::connect::{client_options, drive, Handshake};
use crate::dispatch::{lock, Event, Message};
use crate::errors::{closed, to_js, Code};
use crate::inbox::{event_op, recv_result, Inbox, RecvWaiter};
use crate::keys::JsKeypair;
use crate::options::NativeOptions;
use crate::stream::next_id;
use crate::uv::{deliver, Poll, Ready};

/// Messages handed to a flowing subscriber's handler per turn of the event
/// loop before others get a turn (the fd stays readable, so libuv comes back).
const FLOW_BATCH: usize = 64;

#[derive(Default)]
pub(crate) struct SubState {
    closed: bool,
    inbox: Inbox,
    poll: Option<Poll>,
}

/// The subscriber and its binding state, shared by the JavaScript object and
/// the poll handle.
pub(crate) struct SubShared {
    id: i64,
    sub: Subscriber,
    recv_timeout: Option<Duration>,
    st: Mutex<SubState>,
}

impl Ready for SubShared {
    fn ready(self: Arc<Self>, events: &mut Vec<Event>) {
        let mut st = lock(&self.st);
        if st.closed {
            return;
        }
        self.pump(&mut st, events, true);
        self.update_poll(&mut st);
    }
}

impl SubShared {
    pub(crate) fn new(sub: Subscriber, recv_timeout: Option<Duration>) -> Arc<SubShared> {
        Arc::new(SubShared { id: next_id(), sub, recv_timeout, st: Mutex::new(SubState::default()) })
    }

    /// Receives what is there: the work of one readiness of the fd. `batch`:
    /// stop after FLOW_BATCH messages to a flowing handler (only in a
    /// readiness callback: the wake-up is consumed only by a WouldBlock, so
    /// the fd stays readable and libuv calls again).
    fn pump(&self, st: &mut SubState, events: &mut Vec<Event>, batch: bool) {
        st.inbox.serve_ahead(self.id, events);
        let mut delivered = 0;
        while st.inbox.ended.is_none() && st.inbox.has_room() {
            if batch && st.inbox.flowing && delivered >= FLOW_BATCH {
                break;
            }
            match self.receive_one(st, events, true) {
                Ok(true) => delivered += 1,
                Ok(false) => break,
                Err(e) => st.inbox.ended = Some(e),
            }
        }
        st.inbox.report_end(self.id, events);
    }

    /// Receives the next message for the inbox: a `recvInto` at the head of
    /// the line gets it decrypted straight into its buffer, anyone else a new
    /// buffer. `consume`: on nothing, consume the fd's wake-ups and arm it
    /// (`try_recv`, WouldBlock); else only look, after the core's own short
    /// adaptive spin, with no system call (a zero timeout). Ok(true) when a
    /// message was handed on, Ok(false) when none is there, Err when the
    /// subscription ended.
    fn receive_one(&self, st: &mut SubState, events: &mut Vec<Event>, consume: bool) -> Result<bool, CoreError> {
        let now = Some(Duration::ZERO);
        let result = match st.inbox.head_buffer() {
            Some(buffer) => {
                let result =
                    if consume { self.sub.try_recv_into(buffer) } else { self.sub.recv_into_timeout(buffer, now) };
                st.inbox.complete_into(result.map(|d| d.len), events)
            }
            None => {
                let result = if consume { self.sub.try_recv() } else { self.sub.recv_timeout(now) };
                result.map(|message| st.inbox.take(self.id, message.data, events))
            }
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == if consume { ErrorKind::WouldBlock } else { ErrorKind::Timeout } => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Watches the fd while a message could be taken, and keeps the process
    /// alive while something is pending. Creates the poll handle on first use.
    fn update_poll(self: &Arc<Self>, st: &mut SubState) {
        if st.closed {
            return;
        }
        let watch = st.inbox.ended.is_none() && st.inbox.has_room();
        if st.poll.is_none() {
            if !watch {
                return;
            }
            // The fd outlives the handle: `close` stops it before the
            // subscriber can be dropped, and the handle holds it until closed.
            match Poll::new(self.sub.pollable_fd().as_raw_fd(), Arc::clone(self) as Arc<dyn Ready>) {
                Ok(poll) => st.poll = Some(poll),
                Err(_) => return,
            }
        }
        let pending = st.inbox.pending();
        if let Some(poll) = st.poll.as_mut() {
            poll.set(watch, pending && watch);
        }
    }

    fn check_recv(&self, st: &SubState) -> Result<(), CoreError> {
        if st.closed {
            return Err(closed("subscriber"));
        }
        st.inbox.check_not_flowing()
    }

    /// A receive from JavaScript: the message now if there is one, else it
    /// waits as `op`.
    fn recv(self: &Arc<Self>, op: i64, into: Option<Buffer>) -> Result<Option<Event>, CoreError> {
        let mut st = lock(&self.st);
        self.check_recv(&st)?;
        st.inbox.waiters.push_back(RecvWaiter { op, into });
        let mut events = Vec::new();
        if st.inbox.waiters.len() == 1 {
            // Look for the message before asking to be woken, as a stream's
            // receive does: `try_recv`'s WouldBlock drains the fd and arms
            // the subscriber, so the publisher then writes to the fd for its
            // next message (two system calls and a readiness callback per
            // message). A message that is there, or comes within the core's
            // adaptive spin, is taken with none of that; when none came, the
            // pump arms the fd, race-free.
            if st.inbox.ahead_len() == 0 && st.inbox.ended.is_none() {
                if let Err(e) = self.receive_one(&mut st, &mut events, false) {
                    st.inbox.ended = Some(e);
                }
            }
            if !st.inbox.waiters.is_empty() || st.inbox.ended.is_some() {
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

    fn cancel_recv(self: &Arc<Self>, op: i64) -> bool {
        let mut st = lock(&self.st);
        let cancelled = st.inbox.cancel(op);
        self.update_poll(&mut st);
        cancelled
    }

    fn start_flowing(self: &Arc<Self>) -> Result<(), CoreError> {
        let mut st = lock(&self.st);
        self.check_recv(&st)?;
        if !st.inbox.waiters.is_empty() {
            return Err(CoreError::new(ErrorKind::InvalidArgument, "a recv() is pending on this subscriber"));
        }
        st.inbox.flowing = true;
        let mut events = Vec::new();
        // Not in a readiness of the fd: run until WouldBlock.
        self.pump(&mut st, &mut events, false);
        self.update_poll(&mut st);
        drop(st);
        deliver(events);
        Ok(())
    }

    /// Leaves the topic: what is pending fails with CLOSED (a flowing handler
    /// gets a clean end), the poll handle is released, and the core
    /// subscriber closes (it does not wait). Idempotent.
    fn close(self: &Arc<Self>) {
        let mut st = lock(&self.st);
        if st.closed {
            return;
        }
        st.closed = true;
        let mut events = Vec::new();
        st.inbox.close(self.id, &closed("subscriber"), &mut events);
        if let Some(poll) = st.poll.take() {
            poll.close();
        }
        drop(st);
        self.sub.close();
        deliver(events);
    }
}

/// Subscribes to topic `name` on the JavaScript thread (see
/// [`crate::connect`]) and completes `op` with a `NativeSubscriber`; `wait`
/// (ms): how long to keep trying while no publisher has bound the topic.
#[napi]
pub fn subscribe(
    op: i64,
    name: String,
    keypair: Option<&JsKeypair>,
    options: Option<NativeOptions>,
    wait: Option<f64>,
) -> napi::Result<(), Code> {
    let (options, recv_timeout) = client_options(keypair, options, wait)?;
    let subscribing = Subscribing::start(&name, &options).map_err(to_js)?;
    drive(op, Handshake::Subscribe(subscribing, recv_timeout))
}

/// Internal: the receiving end of a topic (wrapped by the JavaScript `Subscriber`).
#[napi]
pub struct NativeSubscriber {
    inner: Arc<SubShared>,
}

impl NativeSubscriber {
    pub(crate) fn wrap(inner: Arc<SubShared>) -> NativeSubscriber {
        NativeSubscriber { inner }
    }
}

impl Drop for NativeSubscriber {
    /// Garbage-collected without `close()`: leave the topic. Pending receives
    /// keep the JavaScript object reachable, so none is pending.
    fn drop(&mut self) {
        self.inner.close();
    }
}

#[napi]
impl NativeSubscriber {
    /// The subscriber's id (unique in the process, shared with streams).
    #[napi(getter)]
    pub fn id(&self) -> i64 {
        self.inner.id
    }

    /// Receives a message: returns it if one is there now, else returns null
    /// and completes `op` later. With `into`, the message is copied into it
    /// and its length returned (BufferTooSmall keeps the message).
    #[napi(ts_return_type = "Buffer | number | null")]
    pub fn recv(&self, op: i64, into: Option<Buffer>) -> napi::Result<Option<Either<Message, u32>>, Code> {
        recv_result(self.inner.recv(op, into).map_err(to_js)?)
    }

    /// Cancels a pending receive; false if it already completed.
    #[napi]
    pub fn cancel_recv(&self, op: i64) -> bool {
        self.inner.cancel_recv(op)
    }

    /// Delivers every message as a DATA event from now on ('message' events).
    #[napi]
    pub fn start_flowing(&self) -> napi::Result<(), Code> {
        self.inner.start_flowing().map_err(to_js)
    }

    /// Leaves the topic; pending receives fail with SHMSOCK_CLOSED. Idempotent.
    #[napi]
    pub fn close(&self) {
        self.inner.close();
    }

    /// True once closed by this side.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        lock(&self.inner.st).closed
    }

    /// The default receive timeout in milliseconds (null: none).
    #[napi(getter)]
    pub fn recv_timeout(&self) -> Option<f64> {
        self.inner.recv_timeout.map(|t| t.as_secs_f64() * 1000.0)
    }

    /// Messages lost to lag so far (latest topics).
    #[napi(getter)]
    pub fn lost(&self) -> f64 {
        self.inner.sub.lost() as f64
    }

    /// Messages received and handed to JavaScript so far (not those read ahead).
    #[napi(getter)]
    pub fn received(&self) -> f64 {
        let ahead = lock(&self.inner.st).inbox.ahead_len() as u64;
        self.inner.sub.received().saturating_sub(ahead) as f64
    }

    /// The newest key epoch received.
    #[napi(getter)]
    pub fn epoch(&self) -> f64 {
        self.inner.sub.epoch() as f64
    }

    /// The topic name.
    #[napi(getter)]
    pub fn topic(&self) -> String {
        self.inner.sub.topic().to_string()
    }

    /// The publisher's public key (32 bytes), the pinned one.
    #[napi(getter)]
    pub fn publisher_public_key(&self) -> Buffer {
        Buffer::from(self.inner.sub.publisher_public_key().as_bytes().to_vec())
    }

    /// This side's public key (32 bytes).
    #[napi(getter)]
    pub fn local_public_key(&self) -> Buffer {
        Buffer::from(self.inner.sub.local_public_key().as_bytes().to_vec())
    }

    /// The topic's AEAD: `aegis-128l` or `chacha20-poly1305`.
    #[napi(getter)]
    pub fn cipher(&self) -> String {
        self.inner.sub.cipher().name().to_string()
    }

    /// The topic's largest message.
    #[napi(getter)]
    pub fn max_message_size(&self) -> u32 {
        self.inner.sub.max_message_size()
    }
}
