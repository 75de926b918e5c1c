//! `NativeListener`: accepting without blocking the event loop, and without
//! a thread per handshake.
//!
//! The core listener's pollable fd (an epoll set of the listening socket, the
//! sockets of the handshakes in progress and a timerfd of their earliest
//! deadline) is watched by a libuv poll handle on the JavaScript thread. On
//! readiness, `try_accept_reporting` runs until it returns None: it advances
//! every handshake side by side (a silent or slow client never delays the
//! others; the core bounds how many are in progress), refuses those past
//! their deadline, and takes the clients waiting. Each completed stream
//! completes the oldest pending accept, waits in `ready` for the next one, or
//! is a CONNECTION event of a Server; each refused client is a REJECTED event
//! of a Server (accept() skips it, as the core's accept does). No JavaScript
//! timer is needed for handshakes: the timerfd makes the fd readable when a
//! deadline passes. Accept timeouts are the JavaScript layer's timers
//! ([`NativeListener::cancel_accept`]).
//!
//! Watching and keep-alive: handshakes advance only when `try_accept` runs,
//! so the fd is watched from `bind` until `close`, whether or not an accept
//! is pending: a client that connects between two accepts goes through its
//! handshake at once (its stream waits in `ready` for the next accept), and
//! a silent one is refused at its deadline. Two exceptions, for a plain
//! listener (not a Server) with no accept pending: with `max_connections`
//! streams in `ready` it stops watching until the next accept, so that a
//! listener nobody accepts from holds no more connections than it is sized
//! for (later clients wait in their handshake or in the kernel's backlog);
//! and after accepting failed (e.g. out of descriptors, when the listening
//! socket stays readable) it rests until the next accept rather than spin
//! the loop (a Server reports each failure as an 'error', as before). The
//! handle keeps Node's event loop alive only while accepts are pending: an
//! idle listener lets the process exit, and a Server keeps the process
//! alive on its own while it is open (the JavaScript layer's `retain`).

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use napi_derive::napi;
use shmsock::{Error as CoreError, ErrorKind, Listener, Stream};

use crate::dispatch::{lock, Event};
use crate::errors::{closed, js_error, to_js, Code};
use crate::keys::JsKeypair;
use crate::options::{to_core, NativeOptions};
use crate::stream::{next_id, StreamShared};
use crate::uv::{deliver, Poll, Ready};

static LIVE_LISTENERS: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
struct ListenerState {
    closed: bool,
    serving: bool,
    /// Pending accepts, oldest first.
    waiters: VecDeque<i64>,
    /// Completed handshakes no accept took yet.
    ready: VecDeque<Stream>,
    /// Accepting failed with no accept pending to report it to: a plain
    /// listener stops watching until the next accept (out of descriptors,
    /// the listening socket stays readable and would spin the loop).
    resting: bool,
    poll: Option<Poll>,
}

pub(crate) struct ListenerShared {
    pub(crate) id: i64,
    listener: Mutex<Option<Arc<Listener>>>,
    recv_timeout: Option<Duration>,
    /// The limit on a Server connection's waiting sends (`maxQueuedBytes`).
    max_queued: usize,
    /// How many streams `ready` holds before the listener stops watching
    /// (`max_connections`).
    max_ready: usize,
    st: Mutex<ListenerState>,
}

impl Drop for ListenerShared {
    fn drop(&mut self) {
        LIVE_LISTENERS.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ListenerShared {
    fn listener(&self) -> Option<Arc<Listener>> {
        lock(&self.listener).clone()
    }

    /// Watches the fd while the listener is open, unless `ready` is full and
    /// nobody accepts; keeps the process alive while accepts are pending (see
    /// the module comment).
    fn refresh(&self, st: &mut ListenerState) {
        let waiting = !st.waiters.is_empty();
        let watch = !st.closed && !st.resting && (st.serving || waiting || st.ready.len() < self.max_ready);
        if let Some(poll) = st.poll.as_mut() {
            poll.set(watch, watch && waiting);
        }
    }

    /// An accepted stream; a Server's (`serving`) bounds its waiting sends.
    fn stream_of(&self, stream: Stream, serving: bool) -> Arc<StreamShared> {
        StreamShared::with_queue_limit(stream, self.recv_timeout, serving.then_some(self.max_queued))
    }

    /// Hands a completed stream to the Server, the oldest pending accept, or
    /// `ready` for the next accept.
    fn completed(&self, st: &mut ListenerState, stream: Stream, events: &mut Vec<Event>) {
        if st.serving {
            events.push(Event::Connection { listener: self.id, stream: self.stream_of(stream, true) });
        } else if let Some(op) = st.waiters.pop_front() {
            events.push(Event::Stream { op, stream: self.stream_of(stream, false) });
        } else {
            st.ready.push_back(stream);
        }
    }

    /// Hands the streams in `ready` to the pending accepts (or the Server).
    fn deliver_ready(&self, st: &mut ListenerState, events: &mut Vec<Event>) {
        while st.serving || !st.waiters.is_empty() {
            let Some(stream) = st.ready.pop_front() else { break };
            self.completed(st, stream, events);
        }
    }

    /// Runs `try_accept` until it has nothing more: every handshake in
    /// progress advanced, every waiting client taken in.
    fn drive(&self, st: &mut ListenerState, events: &mut Vec<Event>) {
        let Some(listener) = self.listener() else { return };
        let (id, serving) = (self.id, st.serving);
        loop {
            let mut on_refused = |error: &CoreError| {
                // accept() skips clients that fail the handshake (as the
                // core's accept does); a Server reports them.
                if serving {
                    events.push(Event::Rejected { listener: id, error: error.clone() });
                }
            };
            match listener.try_accept_reporting(&mut on_refused) {
                Ok(Some(stream)) => self.completed(st, stream, events),
                Ok(None) => break,
                Err(error) => {
                    if serving {
                        events.push(Event::Rejected { listener: id, error });
                    } else {
                        if let Some(op) = st.waiters.pop_front() {
                            events.push(Event::Failed { op, error });
                        }
                        st.resting = st.waiters.is_empty();
                    }
                    break;
                }
            }
        }
    }

    /// Cancels a pending accept (timeout, abort); false if it completed.
    fn cancel(&self, op: i64) -> bool {
        let mut st = lock(&self.st);
        let before = st.waiters.len();
        st.waiters.retain(|w| *w != op);
        let cancelled = st.waiters.len() != before;
        self.refresh(&mut st);
        cancelled
    }

    /// After a new accept or `serve`: hands out what `ready` holds, and looks
    /// at the listener at once (it may have stopped watching while `ready` was
    /// full). The results may complete an accept before its call returns.
    fn resume(&self, mut st: MutexGuard<'_, ListenerState>) {
        let mut events = Vec::new();
        st.resting = false;
        self.deliver_ready(&mut st, &mut events);
        self.drive(&mut st, &mut events);
        self.refresh(&mut st);
        drop(st);
        deliver(events);
    }
}

impl Ready for ListenerShared {
    fn ready(self: Arc<Self>, events: &mut Vec<Event>) {
        let mut st = lock(&self.st);
        if st.closed {
            return;
        }
        self.drive(&mut st, events);
        self.refresh(&mut st);
    }
}

/// Internal: a bound endpoint (wrapped by the JavaScript `Listener` class).
#[napi]
pub struct NativeListener {
    inner: Arc<ListenerShared>,
    name: String,
    public_key: Vec<u8>,
}

impl Drop for NativeListener {
    fn drop(&mut self) {
        self.close_now();
    }
}

impl NativeListener {
    fn close_now(&self) {
        let s = &self.inner;
        let mut st = lock(&s.st);
        if st.closed {
            return;
        }
        st.closed = true;
        let mut events = Vec::new();
        for op in st.waiters.drain(..) {
            events.push(Event::Failed { op, error: closed("listener") });
        }
        st.ready.clear();
        // Stop watching before the fd is closed: drop the listener last.
        if let Some(poll) = st.poll.take() {
            poll.close();
        }
        let listener = lock(&s.listener).take();
        drop(st);
        drop(listener);
        deliver(events);
    }
}

#[napi]
impl NativeListener {
    /// Binds endpoint `name` with `keypair` as the server's identity.
    #[napi(factory)]
    pub fn bind(
        name: String,
        keypair: &JsKeypair,
        options: Option<NativeOptions>,
    ) -> napi::Result<NativeListener, Code> {
        let (options, recv_timeout) = to_core(Some(keypair), options)?;
        let listener = Listener::bind(&name, &options).map_err(to_js)?;
        let public_key = listener.public_key().as_bytes().to_vec();
        let name = listener.name().to_string();
        let fd = listener.as_fd().as_raw_fd();
        LIVE_LISTENERS.fetch_add(1, Ordering::Relaxed);
        let inner = Arc::new(ListenerShared {
            id: next_id(),
            listener: Mutex::new(Some(Arc::new(listener))),
            recv_timeout,
            max_queued: options.max_queued_bytes,
            max_ready: options.max_connections,
            st: Mutex::new(ListenerState::default()),
        });
        // Watched from now on (see the module comment). The fd outlives the
        // handle: `close_now` closes the handle before dropping the listener,
        // and the handle holds `inner` until closed.
        let poll = Poll::new(fd, Arc::clone(&inner) as Arc<dyn Ready>)
            .map_err(|e| napi::Error::new(Code::from(e.status), e.reason.clone()))?;
        {
            let mut st = lock(&inner.st);
            st.poll = Some(poll);
            inner.refresh(&mut st);
        }
        Ok(NativeListener { inner, name, public_key })
    }

    /// The listener's id.
    #[napi(getter)]
    pub fn id(&self) -> i64 {
        self.inner.id
    }

    /// The endpoint name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// The server's public key (32 bytes), which clients pin.
    #[napi(getter)]
    pub fn public_key(&self) -> napi::bindgen_prelude::Buffer {
        self.public_key.clone().into()
    }

    /// How many clients failed the handshake so far.
    #[napi(getter)]
    pub fn rejected_count(&self) -> f64 {
        self.inner.listener().map_or(0.0, |l| l.rejected_count() as f64)
    }

    /// Accepts the next client that completes the handshake; completes `op`.
    #[napi]
    pub fn accept(&self, op: i64) -> napi::Result<(), Code> {
        let s = &self.inner;
        let mut st = lock(&s.st);
        if st.closed {
            return Err(to_js(closed("listener")));
        }
        if st.serving {
            return Err(js_error(ErrorKind::InvalidArgument, "this listener is serving a Server; it has no accept()"));
        }
        st.waiters.push_back(op);
        s.resume(st);
        Ok(())
    }

    /// Cancels a pending accept (timeout, abort); false if it completed.
    #[napi]
    pub fn cancel_accept(&self, op: i64) -> bool {
        self.inner.cancel(op)
    }

    /// Accepts every client from now on, as CONNECTION / REJECTED events (Server).
    #[napi]
    pub fn serve(&self) -> napi::Result<(), Code> {
        let s = &self.inner;
        let mut st = lock(&s.st);
        if st.closed {
            return Err(to_js(closed("listener")));
        }
        st.serving = true;
        s.resume(st);
        Ok(())
    }

    /// How many accepted streams stay open at once (the core's
    /// `Listener::set_max_connections`; `u32::MAX`: in effect no bound):
    /// a client beyond it gets a REJECT at its handshake. 0 is
    /// SHMSOCK_INVALID_ARGUMENT; a closed listener ignores it.
    #[napi]
    pub fn set_max_connections(&self, max: u32) -> napi::Result<(), Code> {
        match self.inner.listener() {
            Some(listener) => listener.set_max_connections(max as usize, None).map_err(to_js),
            None => Ok(()),
        }
    }

    /// Closes the listener: removes the endpoint, fails pending accepts with
    /// SHMSOCK_CLOSED. Streams already accepted stay connected. Idempotent.
    #[napi]
    pub fn close(&self) {
        self.close_now();
    }

    /// True once closed.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        lock(&self.inner.st).closed
    }
}

/// How many listeners are alive in this process (for tests).
#[napi]
pub fn live_listeners() -> u32 {
    LIVE_LISTENERS.load(Ordering::Relaxed) as u32
}
