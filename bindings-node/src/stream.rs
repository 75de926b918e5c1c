//! `NativeStream`: one connection, driven without blocking the event loop.
//!
//! Receiving: a `recv` first tries `try_recv` on the JavaScript thread (a
//! message already in the ring is returned at once); otherwise it becomes a
//! pending receive that the reactor completes when the pollable fd fires.
//! A *flowing* stream (a Server's connection, a Client) is received from
//! continuously by the reactor, with at most [`CREDITS`] messages handed to
//! JavaScript and not yet delivered, so a slow handler slows the peer down
//! (the ring fills) instead of growing memory.
//!
//! Sending: `try_send` on the JavaScript thread when nothing is queued. When
//! the ring is full the message is queued and sent by the stream's writer
//! thread with a blocking `send` (see the README, "Threads": the core has no
//! resumable non-blocking send that signals ring space on the pollable fd).
//! While a writer sleeps in `send` it owns the connection's wake-ups, so the
//! reactor then polls the stream's receive side every 0.5 ms instead of
//! draining the fd (draining could swallow the writer's wake-up).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use shmsock::{Error as CoreError, ErrorKind, Role, Stream};

use crate::errors::{closed, js_error, to_js, Code};
use crate::options::millis;
use crate::reactor::{lock, post, reactor, Entity, Event, Interest, POLL_INTERVAL};

/// Messages of a flowing stream handed to JavaScript and not yet delivered.
const CREDITS: u32 = 64;

static NEXT_ID: AtomicI64 = AtomicI64::new(1);
static LIVE_STREAMS: AtomicU64 = AtomicU64::new(0);

/// A new id for a stream or listener (also its reactor token).
pub(crate) fn next_id() -> i64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

struct RecvWaiter {
    op: i64,
    deadline: Option<Instant>,
}

#[derive(Default)]
struct StreamState {
    closed: bool,
    waiters: VecDeque<RecvWaiter>,
    flowing: bool,
    ended: bool,
    credits: u32,
    queue: VecDeque<(i64, Buffer)>,
    /// A writer thread sends the queue (and owns the connection's wake-ups).
    writer: bool,
    /// A writer thread that emptied the queue waits a little for more.
    writer_idle: bool,
    interest: Interest,
}

/// The stream and its binding state, shared by the JavaScript object, the
/// reactor and the writer thread.
pub(crate) struct StreamShared {
    pub(crate) id: i64,
    stream: Stream,
    recv_timeout: Option<Duration>,
    st: Mutex<StreamState>,
    more_to_write: Condvar,
}

/// How long a writer thread that emptied its queue waits for more before it
/// exits (a sender awaiting each large message hands it the next one).
const WRITER_LINGER: Duration = Duration::from_millis(5);

impl Drop for StreamShared {
    fn drop(&mut self) {
        LIVE_STREAMS.fetch_sub(1, Ordering::Relaxed);
    }
}

fn would_block(e: &CoreError) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock)
}

impl StreamShared {
    pub(crate) fn new(stream: Stream, recv_timeout: Option<Duration>) -> Arc<StreamShared> {
        LIVE_STREAMS.fetch_add(1, Ordering::Relaxed);
        Arc::new(StreamShared {
            id: next_id(),
            stream,
            recv_timeout,
            st: Mutex::new(StreamState::default()),
            more_to_write: Condvar::new(),
        })
    }

    /// One message if one is complete now; WouldBlock otherwise.
    fn recv_now(&self, writer: bool) -> Result<Vec<u8>, CoreError> {
        if writer {
            // A writer thread sleeps in `send` and drains the wake-ups itself:
            // look at the ring without touching the socket.
            self.stream.recv_timeout(Some(Duration::ZERO)).map_err(|e| match e.kind() {
                ErrorKind::Timeout => CoreError::new(ErrorKind::WouldBlock, "no complete message yet"),
                _ => e,
            })
        } else {
            self.stream.try_recv()
        }
    }

    fn wants_recv(st: &StreamState) -> bool {
        !st.closed && (!st.waiters.is_empty() || (st.flowing && !st.ended && st.credits > 0))
    }

    /// Receives what is there for the waiting receivers / the flowing handler.
    fn pump(self: &Arc<Self>, st: &mut StreamState, events: &mut Vec<Event>) {
        while Self::wants_recv(st) {
            match self.recv_now(st.writer) {
                Ok(data) => match st.waiters.pop_front() {
                    Some(w) => events.push(Event::Recv { op: w.op, data }),
                    None => {
                        st.credits -= 1;
                        events.push(Event::Data { stream: Arc::clone(self), data });
                    }
                },
                Err(e) if would_block(&e) => break,
                Err(e) => {
                    for w in st.waiters.drain(..) {
                        events.push(Event::Failed { op: w.op, error: e.clone() });
                    }
                    if st.flowing && !st.ended {
                        st.ended = true;
                        let error = (e.kind() != ErrorKind::PeerClosed).then_some(e);
                        events.push(Event::End { id: self.id, error });
                    }
                    break;
                }
            }
        }
    }

    /// Tells the reactor what this stream needs now. A stream that stops
    /// wanting its fd stays in the epoll set until the fd fires with nothing
    /// pending (`spurious`): a request/response loop then costs no epoll_ctl
    /// per message.
    fn refresh(self: &Arc<Self>, st: &mut StreamState, spurious: bool) {
        let Ok(reactor) = reactor() else { return };
        let wants = Self::wants_recv(st);
        let keep = st.interest.is_watched() && !wants && !spurious && !st.closed && !st.writer;
        let mut wake_at = st.waiters.iter().filter_map(|w| w.deadline).min();
        if wants && st.writer {
            let poll = Instant::now() + POLL_INTERVAL;
            wake_at = Some(wake_at.map_or(poll, |w| w.min(poll)));
        }
        let entity = Entity::Stream(Arc::clone(self));
        reactor.set_interest(
            &entity,
            self.stream.pollable_fd(),
            &mut st.interest,
            keep || (wants && !st.writer),
            wake_at,
        );
    }

    /// Called by the reactor when the fd fired, a deadline passed or it was kicked.
    pub(crate) fn service(self: &Arc<Self>, now: Instant, ready: bool, events: &mut Vec<Event>) {
        let mut st = lock(&self.st);
        let spurious = ready && !Self::wants_recv(&st);
        let mut i = 0;
        while i < st.waiters.len() {
            if st.waiters[i].deadline.is_some_and(|d| d <= now) {
                let w = st.waiters.remove(i).expect("index in range");
                let error = CoreError::new(ErrorKind::Timeout, "recv timed out: no message arrived; nothing was lost");
                events.push(Event::Failed { op: w.op, error });
            } else {
                i += 1;
            }
        }
        self.pump(&mut st, events);
        self.refresh(&mut st, spurious);
    }

    /// A message of this flowing stream reached JavaScript (JavaScript thread).
    pub(crate) fn return_credit(self: &Arc<Self>) {
        let mut st = lock(&self.st);
        st.credits += 1;
        if st.credits == 1 && Self::wants_recv(&st) {
            drop(st);
            if let Ok(reactor) = reactor() {
                reactor.kick(Entity::Stream(Arc::clone(self)));
            }
        }
    }

    /// Sends the queued messages with blocking sends, in order; when the queue
    /// is empty, gives the wake-ups back to the reactor and waits briefly for
    /// more before it exits.
    fn write_queue(self: Arc<Self>) {
        loop {
            let (op, data) = {
                let mut st = lock(&self.st);
                let mut linger_until = None;
                loop {
                    if st.writer {
                        if let Some(item) = st.queue.pop_front() {
                            break item;
                        }
                    }
                    let until = *linger_until.get_or_insert_with(|| {
                        // Back to waiting on the fd: the reactor looks once
                        // (that drains and re-arms the wake-up).
                        st.writer = false;
                        st.writer_idle = true;
                        if let Ok(reactor) = reactor() {
                            reactor.kick(Entity::Stream(Arc::clone(&self)));
                        }
                        Instant::now() + WRITER_LINGER
                    });
                    let now = Instant::now();
                    if st.closed || now >= until {
                        st.writer_idle = false;
                        return;
                    }
                    st = self.more_to_write.wait_timeout(st, until - now).unwrap_or_else(|p| p.into_inner()).0;
                }
            };
            let result = self.stream.send(&data);
            drop(data);
            match result {
                Ok(()) => post(vec![Event::Done { op }]),
                Err(e) => {
                    let mut events = vec![Event::Failed { op, error: e.clone() }];
                    if e.kind().ends_connection() {
                        let mut st = lock(&self.st);
                        for (op, _) in st.queue.drain(..) {
                            events.push(Event::Failed { op, error: e.clone() });
                        }
                    }
                    post(events);
                }
            }
        }
    }

    /// Closes for this binding: fails what is pending, then closes the core
    /// stream on a short-lived thread (a close may wait up to 2 s for ring
    /// space for its CLOSE frame) and posts `Done { op }` when it is done.
    fn close(self: &Arc<Self>, op: Option<i64>) -> bool {
        let mut st = lock(&self.st);
        if st.closed {
            return true;
        }
        st.closed = true;
        let mut events = Vec::new();
        for w in st.waiters.drain(..) {
            events.push(Event::Failed { op: w.op, error: closed("stream") });
        }
        for (op, _) in st.queue.drain(..) {
            events.push(Event::Failed { op, error: closed("stream") });
        }
        if st.flowing && !st.ended {
            st.ended = true;
            events.push(Event::End { id: self.id, error: None });
        }
        self.refresh(&mut st, false);
        self.more_to_write.notify_all();
        drop(st);
        post(events);
        let shared = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("shmsock-close".into()).spawn(move || {
            let _ = shared.stream.close();
            if let Some(op) = op {
                post(vec![Event::Done { op }]);
            }
        });
        match spawned {
            Ok(_) => false,
            Err(_) => {
                // No thread to be had: close here (blocks only with a full ring).
                let _ = self.stream.close();
                true
            }
        }
    }
}

/// Message and byte counts of a stream.
#[napi(object)]
pub struct StreamStats {
    /// Messages sent.
    pub messages_sent: f64,
    /// Plaintext bytes sent.
    pub bytes_sent: f64,
    /// Messages received.
    pub messages_received: f64,
    /// Plaintext bytes received.
    pub bytes_received: f64,
}

/// The peer process, per the kernel.
#[napi(object)]
pub struct PeerCredentials {
    /// Process id (0 if outside our pid namespace).
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Internal: one connection (wrapped by the JavaScript `Stream` class).
#[napi]
pub struct NativeStream {
    inner: Arc<StreamShared>,
}

impl NativeStream {
    pub(crate) fn wrap(inner: Arc<StreamShared>) -> NativeStream {
        NativeStream { inner }
    }
}

impl Drop for NativeStream {
    /// Garbage-collected without `close()`: close it (off this thread) so the
    /// fd, the mapping and the peer are released. Pending operations keep the
    /// JavaScript object reachable, so none is pending here.
    fn drop(&mut self) {
        self.inner.close(None);
    }
}

#[napi]
impl NativeStream {
    /// The stream's id (its token in the reactor; unique in the process).
    #[napi(getter)]
    pub fn id(&self) -> i64 {
        self.inner.id
    }

    /// Receives a message: returns it if one is complete now, else returns
    /// null and completes `op` later (`timeout` in ms; null: the stream's default).
    #[napi]
    pub fn recv(&self, op: i64, timeout: Option<f64>) -> napi::Result<Option<Buffer>, Code> {
        let s = &self.inner;
        reactor().map_err(to_js)?;
        let timeout = match timeout {
            Some(ms) => Some(millis(ms, "timeout")?),
            None => s.recv_timeout,
        };
        let mut st = lock(&s.st);
        if st.closed {
            return Err(to_js(closed("stream")));
        }
        if st.flowing {
            return Err(js_error(
                ErrorKind::InvalidArgument,
                "this stream delivers its messages as events (Server/Client); it has no recv()",
            ));
        }
        if st.waiters.is_empty() {
            match s.recv_now(st.writer) {
                Ok(data) => return Ok(Some(Buffer::from(data))),
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(to_js(e)),
            }
            if timeout == Some(Duration::ZERO) {
                return Err(js_error(ErrorKind::Timeout, "recv timed out: no message arrived; nothing was lost"));
            }
        }
        st.waiters.push_back(RecvWaiter { op, deadline: timeout.map(|t| Instant::now() + t) });
        s.refresh(&mut st, false);
        Ok(None)
    }

    /// Receives a message if one is complete now, else returns null. Never waits.
    #[napi]
    pub fn try_recv(&self) -> napi::Result<Option<Buffer>, Code> {
        let s = &self.inner;
        let st = lock(&s.st);
        if st.closed {
            return Err(to_js(closed("stream")));
        }
        if !st.waiters.is_empty() || st.flowing {
            return Ok(None);
        }
        match s.recv_now(st.writer) {
            Ok(data) => Ok(Some(Buffer::from(data))),
            Err(e) if would_block(&e) => Ok(None),
            Err(e) => Err(to_js(e)),
        }
    }

    /// Sends a message: returns true if it was sent now, else false and
    /// completes `op` once it is sent (in order with earlier sends).
    #[napi]
    pub fn send(&self, op: i64, data: Buffer) -> napi::Result<bool, Code> {
        let s = &self.inner;
        let mut st = lock(&s.st);
        if st.closed {
            return Err(to_js(closed("stream")));
        }
        if st.queue.is_empty() && !st.writer {
            match s.stream.try_send(&data) {
                Ok(()) => return Ok(true),
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(to_js(e)),
            }
        }
        st.queue.push_back((op, data));
        if !st.writer {
            st.writer = true;
            // The writer owns the wake-ups from now on: stop draining the fd.
            s.refresh(&mut st, false);
            if st.writer_idle {
                st.writer_idle = false;
                s.more_to_write.notify_one();
                return Ok(false);
            }
            let shared = Arc::clone(s);
            let spawned = std::thread::Builder::new().name("shmsock-writer".into()).spawn(move || shared.write_queue());
            if let Err(e) = spawned {
                st.writer = false;
                st.queue.pop_back();
                s.refresh(&mut st, false);
                return Err(to_js(CoreError::io("starting a writer thread", e)));
            }
        }
        Ok(false)
    }

    /// Sends a message only if it fits in the ring now and nothing is queued
    /// before it; returns false otherwise (nothing was sent).
    #[napi]
    pub fn try_send(&self, data: Buffer) -> napi::Result<bool, Code> {
        let s = &self.inner;
        let st = lock(&s.st);
        if st.closed {
            return Err(to_js(closed("stream")));
        }
        if !st.queue.is_empty() || st.writer {
            return Ok(false);
        }
        match s.stream.try_send(&data) {
            Ok(()) => Ok(true),
            Err(e) if would_block(&e) => Ok(false),
            Err(e) => Err(to_js(e)),
        }
    }

    /// Delivers every message as a DATA event from now on (Server/Client).
    #[napi]
    pub fn start_flowing(&self) -> napi::Result<(), Code> {
        let s = &self.inner;
        reactor().map_err(to_js)?;
        let mut st = lock(&s.st);
        if st.closed {
            return Err(to_js(closed("stream")));
        }
        if !st.waiters.is_empty() {
            return Err(js_error(ErrorKind::InvalidArgument, "a recv() is pending on this stream"));
        }
        if !st.flowing {
            st.flowing = true;
            st.credits = CREDITS;
            drop(st);
            // The reactor looks at once: messages may already wait.
            if let Ok(reactor) = reactor() {
                reactor.kick(Entity::Stream(Arc::clone(s)));
            }
        }
        Ok(())
    }

    /// Closes the stream: pending receives and queued sends fail with
    /// SHMSOCK_CLOSED, the peer gets every message sent before and then a
    /// clean close. Returns true when already done, else completes `op`.
    #[napi]
    pub fn close(&self, op: i64) -> bool {
        self.inner.close(Some(op))
    }

    /// True once closed by this side.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        lock(&self.inner.st).closed
    }

    /// The peer's public key (32 bytes), proven by the handshake.
    #[napi(getter)]
    pub fn peer_public_key(&self) -> Buffer {
        Buffer::from(self.inner.stream.peer_public_key().as_bytes().to_vec())
    }

    /// This side's public key (32 bytes).
    #[napi(getter)]
    pub fn local_public_key(&self) -> Buffer {
        Buffer::from(self.inner.stream.local_public_key().as_bytes().to_vec())
    }

    /// The peer process's pid, uid and gid, from the kernel.
    #[napi(getter)]
    pub fn peer_credentials(&self) -> PeerCredentials {
        let c = self.inner.stream.peer_credentials();
        PeerCredentials { pid: c.pid, uid: c.uid, gid: c.gid }
    }

    /// Message and byte counts.
    #[napi(getter)]
    pub fn stats(&self) -> StreamStats {
        let s = self.inner.stream.stats();
        StreamStats {
            messages_sent: s.messages_sent as f64,
            bytes_sent: s.bytes_sent as f64,
            messages_received: s.messages_received as f64,
            bytes_received: s.bytes_received as f64,
        }
    }

    /// The transport cipher: `aegis-128l` or `chacha20-poly1305`.
    #[napi(getter)]
    pub fn cipher(&self) -> String {
        self.inner.stream.cipher().name().to_string()
    }

    /// The segment backend: `memfd` or `named`.
    #[napi(getter)]
    pub fn backend(&self) -> String {
        self.inner.stream.backend().name().to_string()
    }

    /// The capacity of each ring in bytes.
    #[napi(getter)]
    pub fn ring_size(&self) -> u32 {
        self.inner.stream.ring_size()
    }

    /// The largest message the peer accepts.
    #[napi(getter)]
    pub fn peer_max_message_size(&self) -> u32 {
        self.inner.stream.peer_max_message_size()
    }

    /// The endpoint name.
    #[napi(getter)]
    pub fn endpoint(&self) -> String {
        self.inner.stream.endpoint().to_string()
    }

    /// `client` (connected) or `server` (accepted).
    #[napi(getter)]
    pub fn role(&self) -> String {
        match self.inner.stream.role() {
            Role::Client => "client".into(),
            Role::Server => "server".into(),
        }
    }
}

/// How many streams are alive in this process (for tests of resource release).
#[napi]
pub fn live_streams() -> u32 {
    LIVE_STREAMS.load(Ordering::Relaxed) as u32
}
