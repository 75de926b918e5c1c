//! `NativeListener` and `connect`: accepting and connecting without blocking
//! the event loop.
//!
//! The reactor watches a listener's fd while an `accept` is pending (or, for a
//! Server, always), takes queued client sockets without waiting, and runs each
//! handshake on a short-lived thread (a handshake waits for the client, up to
//! the handshake timeout; a slow or hostile client must not stall the others,
//! nor hold a thread of libuv's pool). Finished handshakes come back to the
//! reactor, which completes the oldest pending accept, or emits a CONNECTION
//! event for a Server.

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use napi_derive::napi;
use shmsock::{Error as CoreError, ErrorKind, Listener, Stream};

use crate::errors::{closed, js_error, to_js, Code};
use crate::keys::JsKeypair;
use crate::options::{millis, to_core, NativeOptions};
use crate::reactor::{lock, post, reactor, Entity, Event, Interest};
use crate::stream::{next_id, StreamShared};

/// Handshakes that may run at once per listener; more clients wait in the
/// kernel's backlog.
const MAX_HANDSHAKES: usize = 64;

static LIVE_LISTENERS: AtomicU64 = AtomicU64::new(0);

struct AcceptWaiter {
    op: i64,
    deadline: Option<Instant>,
}

#[derive(Default)]
struct ListenerState {
    closed: bool,
    serving: bool,
    waiters: VecDeque<AcceptWaiter>,
    ready: VecDeque<Result<Stream, CoreError>>,
    handshakes: usize,
    interest: Interest,
}

pub(crate) struct ListenerShared {
    pub(crate) id: i64,
    listener: Mutex<Option<Arc<Listener>>>,
    recv_timeout: Option<Duration>,
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

    fn refresh(self: &Arc<Self>, st: &mut ListenerState) {
        let (Ok(reactor), Some(listener)) = (reactor(), self.listener()) else {
            return;
        };
        let watch = Self::wants_accept(st);
        let wake_at = st.waiters.iter().filter_map(|w| w.deadline).min();
        let entity = Entity::Listener(Arc::clone(self));
        reactor.set_interest(&entity, listener.as_fd(), &mut st.interest, watch, wake_at);
    }

    fn stream_of(&self, stream: Stream) -> Arc<StreamShared> {
        StreamShared::new(stream, self.recv_timeout)
    }

    /// Called by the reactor when the fd fired, a deadline passed, or a
    /// handshake finished.
    pub(crate) fn service(self: &Arc<Self>, now: Instant, _ready: bool, events: &mut Vec<Event>) {
        let mut st = lock(&self.st);
        let mut i = 0;
        while i < st.waiters.len() {
            if st.waiters[i].deadline.is_some_and(|d| d <= now) {
                let w = st.waiters.remove(i).expect("index in range");
                let error = CoreError::new(ErrorKind::Timeout, "accept timed out: no client connected");
                events.push(Event::Failed { op: w.op, error });
            } else {
                i += 1;
            }
        }
        // Deliver finished handshakes.
        while let Some(result) = st.ready.pop_front() {
            match result {
                Ok(stream) => {
                    if st.closed {
                        continue;
                    }
                    if st.serving {
                        events.push(Event::Connection { listener: self.id, stream: self.stream_of(stream) });
                    } else if let Some(w) = st.waiters.pop_front() {
                        events.push(Event::Stream { op: w.op, stream: self.stream_of(stream) });
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
        // Take new clients while someone waits for them.
        if let Some(listener) = self.listener() {
            while Self::wants_accept(&st) {
                match listener.accept_pending(Some(Instant::now())) {
                    Ok(pending) => {
                        st.handshakes += 1;
                        let shared = Arc::clone(self);
                        let listener = Arc::clone(&listener);
                        let spawned = std::thread::Builder::new().name("shmsock-handshake".into()).spawn(move || {
                            let result = listener.handshake(pending);
                            drop(listener);
                            let mut st = lock(&shared.st);
                            st.handshakes -= 1;
                            st.ready.push_back(result);
                            drop(st);
                            if let Ok(reactor) = reactor() {
                                reactor.kick(Entity::Listener(shared));
                            }
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
                        } else if let Some(w) = st.waiters.pop_front() {
                            events.push(Event::Failed { op: w.op, error });
                        }
                        break;
                    }
                }
            }
        }
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
        for w in st.waiters.drain(..) {
            events.push(Event::Failed { op: w.op, error: closed("listener") });
        }
        st.ready.clear();
        s.refresh(&mut st);
        // Removing it from the epoll set needs the fd: drop the listener last.
        let listener = lock(&s.listener).take();
        drop(st);
        drop(listener);
        post(events);
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

    /// Accepts the next client that completes the handshake; completes `op`
    /// (`timeout` in ms, null: no limit).
    #[napi]
    pub fn accept(&self, op: i64, timeout: Option<f64>) -> napi::Result<(), Code> {
        let s = &self.inner;
        let reactor = reactor().map_err(to_js)?;
        let timeout = timeout.map(|ms| millis(ms, "timeout")).transpose()?;
        let mut st = lock(&s.st);
        if st.closed {
            return Err(to_js(closed("listener")));
        }
        if st.serving {
            return Err(js_error(ErrorKind::InvalidArgument, "this listener is serving a Server; it has no accept()"));
        }
        st.waiters.push_back(AcceptWaiter { op, deadline: timeout.map(|t| Instant::now() + t) });
        drop(st);
        reactor.kick(Entity::Listener(Arc::clone(s)));
        Ok(())
    }

    /// Accepts every client from now on, as CONNECTION / REJECTED events (Server).
    #[napi]
    pub fn serve(&self) -> napi::Result<(), Code> {
        let s = &self.inner;
        let reactor = reactor().map_err(to_js)?;
        let mut st = lock(&s.st);
        if st.closed {
            return Err(to_js(closed("listener")));
        }
        st.serving = true;
        drop(st);
        reactor.kick(Entity::Listener(Arc::clone(s)));
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

/// Connects to endpoint `name` on a short-lived thread (the handshake waits for
/// the server, up to the handshake timeout) and completes `op` with the stream.
#[napi]
pub fn connect(
    op: i64,
    name: String,
    keypair: Option<&JsKeypair>,
    options: Option<NativeOptions>,
) -> napi::Result<(), Code> {
    let (options, recv_timeout) = to_core(keypair, options)?;
    std::thread::Builder::new()
        .name("shmsock-connect".into())
        .spawn(move || {
            let event = match Stream::connect(&name, &options) {
                Ok(stream) => Event::Stream { op, stream: StreamShared::new(stream, recv_timeout) },
                Err(error) => Event::Failed { op, error },
            };
            post(vec![event]);
        })
        .map_err(|e| to_js(CoreError::io("starting a connect thread", e)))?;
    Ok(())
}

/// How many listeners are alive in this process (for tests).
#[napi]
pub fn live_listeners() -> u32 {
    LIVE_LISTENERS.load(Ordering::Relaxed) as u32
}
