//! `Server`: many clients served from one dispatch thread, with callbacks.
//!
//! The dispatch thread waits on the listener and on every connection's pollable
//! fd with one epoll set, and calls the handler: `on_connect` when a client
//! completed its handshake, `on_data` for each message, `on_error` for failures
//! (a refused handshake, a broken connection, a panicking callback) and
//! `on_close` when a connection ends. Handshakes run on short-lived threads so a
//! slow or hostile client cannot stall the others. A [`Connection`] can reply from
//! inside a callback or from any other thread.

use std::collections::{HashMap, VecDeque};
use std::os::fd::AsFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, ErrorKind, Result};
use crate::keys::PublicKey;
use crate::listener::Listener;
use crate::options::Options;
use crate::platform::{Credentials, Poller, WAKE_TOKEN};
use crate::stream::{Stats, Stream};

/// Token of the listener in the server's epoll set.
const LISTENER_TOKEN: u64 = u64::MAX - 1;
/// Messages delivered from one connection before others get a turn.
const FAIR_SHARE: usize = 64;
/// Handshakes that may run at once; further clients are refused.
const MAX_PENDING_HANDSHAKES: usize = 64;

/// What a server does on its events. Every method has a default that does
/// nothing; callbacks run on the server's dispatch thread, one at a time.
pub trait ServerHandler: Send + Sync + 'static {
    /// A client completed the handshake.
    fn on_connect(&self, _connection: &Connection) {}
    /// A message arrived.
    fn on_data(&self, _connection: &Connection, _data: &[u8]) {}
    /// Something failed: a connection (then `on_close` follows), a client's
    /// handshake (no connection), or a callback that panicked.
    fn on_error(&self, _connection: Option<&Connection>, _error: &Error) {}
    /// A connection ended: `reason` is None after a clean close by either side.
    fn on_close(&self, _connection: &Connection, _reason: Option<&Error>) {}
}

/// One client of a [`Server`]. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct Connection {
    id: u64,
    stream: Arc<Stream>,
}

impl Connection {
    /// A number unique within the server.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Sends a message to this client (blocks while its ring is full, up to the
    /// send timeout).
    pub fn send(&self, data: &[u8]) -> Result<()> {
        self.stream.send(data)
    }
    /// Sends only if the message fits now.
    pub fn try_send(&self, data: &[u8]) -> Result<()> {
        self.stream.try_send(data)
    }
    /// Closes this connection; `on_close` follows.
    pub fn close(&self) -> Result<()> {
        self.stream.close()
    }
    /// The client's public key.
    pub fn peer_public_key(&self) -> PublicKey {
        self.stream.peer_public_key()
    }
    /// The client process's credentials.
    pub fn peer_credentials(&self) -> Credentials {
        self.stream.peer_credentials()
    }
    /// Message and byte counts.
    pub fn stats(&self) -> Stats {
        self.stream.stats()
    }
    /// The underlying stream.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({}, {})", self.id, self.stream.peer_public_key().fingerprint())
    }
}

struct Shared {
    listener: Listener,
    handler: Box<dyn ServerHandler>,
    poller: Poller,
    connections: Mutex<HashMap<u64, Connection>>,
    established: Mutex<Vec<Result<Stream>>>,
    pending_handshakes: AtomicUsize,
    stopping: AtomicBool,
    next_id: AtomicU64,
}

/// An event-driven server on one endpoint.
pub struct Server {
    shared: Arc<Shared>,
    dispatch: Mutex<Option<JoinHandle<()>>>,
}

fn panic_error(what: &str, payload: Box<dyn std::any::Any + Send>) -> Error {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Error::new(ErrorKind::Io, format!("the {what} callback panicked: {text}"))
}

impl Shared {
    /// Runs a callback, turning a panic into `on_error`.
    fn call(&self, what: &str, connection: Option<&Connection>, f: impl FnOnce(&dyn ServerHandler)) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(&*self.handler))) {
            let err = panic_error(what, payload);
            let _ = catch_unwind(AssertUnwindSafe(|| self.handler.on_error(connection, &err)));
        }
    }

    fn accept_clients(self: &Arc<Self>) {
        loop {
            // Deadline "now": take what is queued without waiting.
            let pending = match self.listener.accept_pending(Some(std::time::Instant::now())) {
                Ok(p) => p,
                Err(e) if matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Closed) => return,
                Err(e) => {
                    self.call("on_error", None, |h| h.on_error(None, &e));
                    return;
                }
            };
            if self.pending_handshakes.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_HANDSHAKES {
                self.pending_handshakes.fetch_sub(1, Ordering::AcqRel);
                continue; // dropping `pending` closes the socket: the client sees PeerGone
            }
            let shared = Arc::clone(self);
            let spawned = std::thread::Builder::new().name("shmsock-handshake".into()).spawn(move || {
                let result = shared.listener.handshake(pending);
                shared.established.lock().push(result);
                shared.pending_handshakes.fetch_sub(1, Ordering::AcqRel);
                shared.poller.notify();
            });
            if spawned.is_err() {
                self.pending_handshakes.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    fn add_established(&self, ready: &mut VecDeque<u64>) {
        let results = std::mem::take(&mut *self.established.lock());
        for result in results {
            match result {
                Ok(stream) => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let connection = Connection { id, stream: Arc::new(stream) };
                    if let Err(e) = self.poller.add(connection.stream.pollable_fd(), id) {
                        self.call("on_error", Some(&connection), |h| h.on_error(Some(&connection), &e));
                        continue;
                    }
                    self.connections.lock().insert(id, connection.clone());
                    self.call("on_connect", Some(&connection), |h| h.on_connect(&connection));
                    // Messages may already wait, and try_recv arms the wake-up.
                    ready.push_back(id);
                }
                Err(e) => self.call("on_error", None, |h| h.on_error(None, &e)),
            }
        }
    }

    /// Delivers up to a fair share of messages; true when more may be waiting.
    fn serve(&self, id: u64, buf: &mut Vec<u8>) -> bool {
        let Some(connection) = self.connections.lock().get(&id).cloned() else { return false };
        for _ in 0..FAIR_SHARE {
            match connection.stream.try_recv_into(buf) {
                Ok(n) => self.call("on_data", Some(&connection), |h| h.on_data(&connection, &buf[..n])),
                Err(e) if e.kind() == ErrorKind::BufferTooSmall => {
                    buf.resize(e.needed().unwrap_or(buf.len() * 2), 0);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if matches!(e.kind(), ErrorKind::PeerClosed | ErrorKind::Closed) => {
                    self.remove(&connection, None);
                    return false;
                }
                Err(e) => {
                    self.call("on_error", Some(&connection), |h| h.on_error(Some(&connection), &e));
                    self.remove(&connection, Some(&e));
                    return false;
                }
            }
        }
        true
    }

    fn remove(&self, connection: &Connection, reason: Option<&Error>) {
        self.poller.remove(connection.stream.pollable_fd());
        self.connections.lock().remove(&connection.id);
        let _ = connection.stream.close();
        self.call("on_close", Some(connection), |h| h.on_close(connection, reason));
    }

    fn dispatch(self: Arc<Self>) {
        let mut tokens = Vec::new();
        let mut ready: VecDeque<u64> = VecDeque::new();
        let mut buf = vec![0u8; 64 * 1024];
        while !self.stopping.load(Ordering::Acquire) {
            let timeout = if ready.is_empty() { None } else { Some(Duration::ZERO) };
            if let Err(e) = self.poller.wait(&mut tokens, timeout) {
                self.call("on_error", None, |h| h.on_error(None, &e));
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            for &token in &tokens {
                match token {
                    LISTENER_TOKEN => self.accept_clients(),
                    WAKE_TOKEN => self.add_established(&mut ready),
                    id => {
                        if !ready.contains(&id) {
                            ready.push_back(id);
                        }
                    }
                }
            }
            for _ in 0..ready.len() {
                let Some(id) = ready.pop_front() else { break };
                if self.serve(id, &mut buf) {
                    ready.push_back(id);
                }
            }
        }
    }
}

impl Server {
    /// Binds endpoint `name` (see [`Listener::bind`]) and starts serving on a
    /// dispatch thread.
    pub fn start(name: &str, options: &Options, handler: impl ServerHandler) -> Result<Server> {
        let listener = Listener::bind(name, options)?;
        let poller = Poller::new()?;
        poller.add(listener.as_fd(), LISTENER_TOKEN)?;
        let shared = Arc::new(Shared {
            listener,
            handler: Box::new(handler),
            poller,
            connections: Mutex::new(HashMap::new()),
            established: Mutex::new(Vec::new()),
            pending_handshakes: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
        });
        let runner = Arc::clone(&shared);
        let dispatch = std::thread::Builder::new()
            .name(format!("shmsock-server-{name}"))
            .spawn(move || runner.dispatch())
            .map_err(|e| Error::io("starting the dispatch thread", e))?;
        Ok(Server { shared, dispatch: Mutex::new(Some(dispatch)) })
    }

    /// The endpoint name.
    pub fn name(&self) -> &str {
        self.shared.listener.name()
    }

    /// The server's public key, which clients pin.
    pub fn public_key(&self) -> PublicKey {
        self.shared.listener.public_key()
    }

    /// The connected clients.
    pub fn connections(&self) -> Vec<Connection> {
        self.shared.connections.lock().values().cloned().collect()
    }

    /// Stops serving: closes every connection (each gets `on_close`), removes
    /// the endpoint and joins the dispatch thread. Idempotent.
    pub fn close(&self) {
        let Some(dispatch) = self.dispatch.lock().take() else { return };
        self.shared.stopping.store(true, Ordering::Release);
        // Free the name now: handshake threads may hold the listener a while longer.
        self.shared.listener.close();
        self.shared.poller.notify();
        if dispatch.thread().id() != std::thread::current().id() {
            let _ = dispatch.join();
        }
        let connections: Vec<Connection> = self.shared.connections.lock().values().cloned().collect();
        for connection in connections {
            self.shared.remove(&connection, None);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}
