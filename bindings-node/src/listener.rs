//! `NativeListener` and `connect`: accepting and connecting without blocking
//! the event loop.
//!
//! A libuv poll handle on the JavaScript thread watches a listener's fd while
//! an `accept` is pending (or, for a Server, always); on readiness it takes
//! queued client sockets without waiting and runs each handshake on a
//! short-lived thread (a handshake waits for the client, up to the handshake
//! timeout; a slow or hostile client must not stall the others, nor hold a
//! thread of libuv's pool). A finished handshake comes back to the JavaScript
//! thread as a job, which completes the oldest pending accept, or emits a
//! CONNECTION event for a Server. Accept timeouts are the JavaScript layer's
//! timers ([`NativeListener::cancel_accept`]).

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use napi_derive::napi;
use shmsock::{Error as CoreError, ErrorKind, Listener, Stream};

use crate::dispatch::{lock, post, Event};
use crate::errors::{closed, js_error, to_js, Code};
use crate::keys::JsKeypair;
use crate::options::{to_core, NativeOptions};
use crate::stream::{next_id, StreamShared};
use crate::uv::{deliver, Poll, Ready};

/// Handshakes that may run at once per listener; more clients wait in the
/// kernel's backlog.
const MAX_HANDSHAKES: usize = 64;

static LIVE_LISTENERS: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
struct ListenerState {
    closed: bool,
    serving: bool,
    /// Pending accepts, oldest first.
    waiters: VecDeque<i64>,
    /// Finished handshakes no accept took yet.
    ready: VecDeque<Result<Stream, CoreError>>,
    handshakes: usize,
    poll: Option<Poll>,
}

pub(crate) struct ListenerShared {
    pub(crate) id: i64,
    listener: Mutex<Option<Arc<Listener>>>,
    recv_timeout: Option<Duration>,
    /// The limit on a Server connection's waiting sends (`maxQueuedBytes`).
    max_queued: usize,
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

    /// True when the reactor should take another client now: a Server takes
    /// up to MAX_HANDSHAKES at once, accept() one per pending call.
    fn wants_accept(st: &ListenerState) -> bool {
        let limit = if st.serving { MAX_HANDSHAKES } else { st.waiters.len().min(MAX_HANDSHAKES) };
        !st.closed && st.handshakes < limit
    }

    /// Watches the fd while clients are wanted (and keeps the process alive
    /// then; a Server's own reference does that while it is open).
    fn refresh(self: &Arc<Self>, st: &mut ListenerState) {
        if st.closed {
            return;
        }
        let watch = Self::wants_accept(st);
        if st.poll.is_none() {
            if !watch {
                return;
            }
            let Some(listener) = self.listener() else { return };
            match Poll::new(listener.as_fd().as_raw_fd(), Arc::clone(self) as Arc<dyn Ready>) {
                Ok(poll) => st.poll = Some(poll),
                Err(_) => return,
            }
        }
        if let Some(poll) = st.poll.as_mut() {
            poll.set(watch, watch && !st.waiters.is_empty());
        }
    }

    /// An accepted stream; a Server's (`serving`) bounds its waiting sends.
    fn stream_of(&self, stream: Stream, serving: bool) -> Arc<StreamShared> {
        StreamShared::with_queue_limit(stream, self.recv_timeout, serving.then_some(self.max_queued))
    }

    /// Hands finished handshakes to the pending accepts (or the Server).
    fn deliver_ready(&self, st: &mut ListenerState, events: &mut Vec<Event>) {
        while let Some(result) = st.ready.pop_front() {
            match result {
                Ok(stream) => {
                    if st.closed {
                        continue;
                    }
                    if st.serving {
                        events.push(Event::Connection { listener: self.id, stream: self.stream_of(stream, true) });
                    } else if let Some(op) = st.waiters.pop_front() {
                        events.push(Event::Stream { op, stream: self.stream_of(stream, false) });
                    } else {
                        st.ready.push_front(Ok(stream));
                        break;
                    }
                }
                Err(error) => {
                    // accept() skips clients that fail the handshake (as the
                    // core's accept does); a Server reports them.
                    if st.serving && !st.closed {
                        events.push(Event::Rejected { listener: self.id, error });
                    }
                }
            }
        }
    }

    /// Takes the clients queued on the socket while someone wants them, each
    /// handshake on its own short-lived thread.
    fn take_clients(self: &Arc<Self>, st: &mut ListenerState, events: &mut Vec<Event>) {
        let Some(listener) = self.listener() else { return };
        while Self::wants_accept(st) {
            match listener.accept_pending(Some(Instant::now())) {
                Ok(pending) => {
                    st.handshakes += 1;
                    let shared = Arc::clone(self);
                    let listener = Arc::clone(&listener);
                    let spawned = std::thread::Builder::new().name("shmsock-handshake".into()).spawn(move || {
                        let result = listener.handshake(pending);
                        drop(listener);
                        post(Box::new(move |events: &mut Vec<Event>| shared.handshake_done(result, events)));
                    });
                    if spawned.is_err() {
                        // Dropping the client's socket refuses it.
                        st.handshakes -= 1;
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Timeout => break,
                Err(error) => {
                    if st.serving {
                        events.push(Event::Rejected { listener: self.id, error });
                    } else if let Some(op) = st.waiters.pop_front() {
                        events.push(Event::Failed { op, error });
                    }
                    break;
                }
            }
        }
    }

    /// A handshake thread finished (on the JavaScript thread).
    fn handshake_done(self: &Arc<Self>, result: Result<Stream, CoreError>, events: &mut Vec<Event>) {
        let mut st = lock(&self.st);
        st.handshakes -= 1;
        st.ready.push_back(result);
        self.deliver_ready(&mut st, events);
        if !st.closed {
            self.take_clients(&mut st, events);
            self.refresh(&mut st);
        }
    }

    /// Cancels a pending accept (timeout, abort); false if it completed.
    fn cancel(self: &Arc<Self>, op: i64) -> bool {
        let mut st = lock(&self.st);
        let before = st.waiters.len();
        st.waiters.retain(|w| *w != op);
        let cancelled = st.waiters.len() != before;
        self.refresh(&mut st);
        cancelled
    }
}

impl Ready for ListenerShared {
    fn ready(self: Arc<Self>, events: &mut Vec<Event>) {
        let mut st = lock(&self.st);
        if st.closed {
            return;
        }
        self.take_clients(&mut st, events);
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
        LIVE_LISTENERS.fetch_add(1, Ordering::Relaxed);
        let inner = Arc::new(ListenerShared {
            id: next_id(),
            listener: Mutex::new(Some(Arc::new(listener))),
            recv_timeout,
            max_queued: options.max_queued_bytes,
            st: Mutex::new(ListenerState::default()),
        });
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
        let mut events = Vec::new();
        s.deliver_ready(&mut st, &mut events);
        s.take_clients(&mut st, &mut events);
        s.refresh(&mut st);
        drop(st);
        deliver(events);
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
        let mut events = Vec::new();
        s.deliver_ready(&mut st, &mut events);
        s.take_clients(&mut st, &mut events);
        s.refresh(&mut st);
        drop(st);
        deliver(events);
        Ok(())
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
