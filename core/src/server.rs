//! `Server`: many clients served by one or more dispatch threads, with callbacks.
//!
//! Each dispatch thread runs a [`Reactor`](crate::reactor::Reactor) over its
//! connections (see the private `dispatch` module); the first one also accepts
//! clients and drives their handshakes, non-blocking, each with its own
//! deadline. The handler is called with `on_connect` when a client completed
//! its handshake, `on_data` for each message, `on_error` for failures (a
//! refused handshake, a broken connection, a panicking callback) and `on_close`
//! when a connection ends.
//!
//! Nothing a peer does blocks a dispatch thread: a connection gets one message
//! per turn, [`Connection::send`] queues (bounded) instead of waiting for a peer
//! that does not read, and closing (which may wait for ring space) happens on a
//! separate closer thread. A [`Connection`] can reply from inside a callback or
//! from any other thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::dispatch::{Mailbox, Shard};
use crate::error::{Error, ErrorKind, Result};
use crate::keys::PublicKey;
use crate::listener::Listener;
use crate::options::Options;
use crate::outbound::Outbound;
use crate::platform::{Credentials, Origin};
use crate::stream::{Stats, Stream};

/// How long closing a connection may wait for a peer to take its queued
/// messages and the close (on the closer thread, never on a dispatch thread).
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// How long `Server::close` waits for the closer thread to finish.
const CLOSER_JOIN: Duration = Duration::from_secs(5);

/// What a server does on its events. Every method has a default that does
/// nothing; callbacks of one connection run on its dispatch thread, one at a
/// time (with several dispatch threads, callbacks of different connections may
/// run at once).
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

pub(crate) struct ConnectionInner {
    pub(crate) id: u64,
    pub(crate) stream: Stream,
    pub(crate) outbound: Mutex<Outbound>,
    max_queued: usize,
    /// Set when the connection left its dispatch thread: sends fail with Closed.
    pub(crate) removed: AtomicBool,
    /// Set by `close`: the dispatch thread removes the connection.
    pub(crate) close_requested: AtomicBool,
    pub(crate) mailbox: Arc<Mailbox>,
}

/// One client of a [`Server`]. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct Connection {
    pub(crate) inner: Arc<ConnectionInner>,
}

impl Connection {
    pub(crate) fn new(id: u64, stream: Stream, max_queued: usize, mailbox: Arc<Mailbox>) -> Connection {
        Connection {
            inner: Arc::new(ConnectionInner {
                id,
                stream,
                outbound: Mutex::new(Outbound::default()),
                max_queued,
                removed: AtomicBool::new(false),
                close_requested: AtomicBool::new(false),
                mailbox,
            }),
        }
    }

    /// A number unique within the server.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Sends a message to this client without ever blocking: into the ring if
    /// it fits now, else into the connection's outbound queue, which the
    /// dispatch thread sends, in order, as the client frees space. When the
    /// queue already holds `Options::max_queued_bytes`, fails with WouldBlock
    /// and queues nothing (a client that does not read cannot grow the
    /// server's memory or stall it); the caller may drop the message, retry
    /// later or close the connection. After such a refusal the server reads
    /// no more messages from this client until every queued reply has gone
    /// out (so a client that does not read its replies waits in its own
    /// sends). Safe from callbacks and other threads.
    pub fn send(&self, data: &[u8]) -> Result<()> {
        let inner = &*self.inner;
        if inner.removed.load(Ordering::Acquire) {
            return Err(Error::new(ErrorKind::Closed, "the connection was closed"));
        }
        let mut outbound = inner.outbound.lock();
        let was_empty = outbound.is_empty();
        if !outbound.send(&inner.stream, data, inner.max_queued)? && was_empty {
            // The dispatch thread must look after this connection's queue.
            inner.mailbox.post_backlog(inner.id);
        }
        Ok(())
    }

    /// Sends only if the message fits in the ring now and nothing is queued;
    /// else WouldBlock and nothing is sent or queued.
    pub fn try_send(&self, data: &[u8]) -> Result<()> {
        let outbound = self.inner.outbound.lock();
        if !outbound.is_empty() {
            return Err(Error::new(ErrorKind::WouldBlock, "earlier messages are still queued; nothing was sent"));
        }
        self.inner.stream.try_send(data)
    }

    /// Messages waiting in the outbound queue.
    pub fn queued_messages(&self) -> usize {
        self.inner.outbound.lock().len()
    }

    /// Closes this connection: queued messages and the close are sent off the
    /// dispatch thread (waiting up to 2 s for a slow client), and `on_close`
    /// follows on the dispatch thread. Never blocks. Idempotent.
    pub fn close(&self) -> Result<()> {
        if !self.inner.close_requested.swap(true, Ordering::AcqRel) {
            self.inner.mailbox.post_close(self.inner.id);
        }
        Ok(())
    }

    /// True once this connection was closed by either side or ended (from the
    /// moment `close` is called, or `on_close` is about to run).
    pub fn is_closed(&self) -> bool {
        self.inner.close_requested.load(Ordering::Acquire)
            || self.inner.removed.load(Ordering::Acquire)
            || self.inner.stream.is_closed()
    }

    /// The client's public key.
    pub fn peer_public_key(&self) -> PublicKey {
        self.inner.stream.peer_public_key()
    }

    /// The client process's credentials.
    pub fn peer_credentials(&self) -> Credentials {
        self.inner.stream.peer_credentials()
    }

    /// Message and byte counts.
    pub fn stats(&self) -> Stats {
        self.inner.stream.stats()
    }

    /// The underlying stream. Do not call its blocking `send`/`recv` on a
    /// dispatch thread.
    pub fn stream(&self) -> &Stream {
        &self.inner.stream
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({}, {})", self.inner.id, self.inner.stream.peer_public_key().fingerprint())
    }
}

/// Closes removed connections off the dispatch threads.
pub(crate) struct Closer {
    jobs: Mutex<Option<Sender<Connection>>>,
    done: Mutex<Option<Receiver<()>>>,
}

impl Closer {
    fn start() -> Result<Closer> {
        let (jobs, queue) = std::sync::mpsc::channel::<Connection>();
        let (finished, done) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("shmsock-closer".into())
            .spawn(move || {
                for connection in queue {
                    let inner = &connection.inner;
                    let deadline = Instant::now() + CLOSE_LINGER;
                    let _ = inner.outbound.lock().drain_until(&inner.stream, deadline);
                    let _ = inner.stream.close();
                }
                let _ = finished.send(());
            })
            .map_err(|e| Error::io("starting the closer thread", e))?;
        Ok(Closer { jobs: Mutex::new(Some(jobs)), done: Mutex::new(Some(done)) })
    }

    /// Hands a removed connection over for closing.
    pub(crate) fn close(&self, connection: Connection) {
        match &*self.jobs.lock() {
            Some(jobs) => {
                if let Err(returned) = jobs.send(connection) {
                    // The closer is gone (shutting down): close here, without linger.
                    let _ = returned.0.inner.stream.close();
                }
            }
            None => {
                let _ = connection.inner.stream.close();
            }
        }
    }

    /// Lets the closer finish what it has, waiting a bounded time.
    fn finish(&self) {
        drop(self.jobs.lock().take());
        if let Some(done) = self.done.lock().take() {
            let _ = done.recv_timeout(CLOSER_JOIN);
        }
    }
}

/// State shared by the dispatch threads.
pub(crate) struct Shared {
    pub(crate) listener: Listener,
    pub(crate) handler: Box<dyn ServerHandler>,
    pub(crate) options: Options,
    pub(crate) connections: Mutex<Registry>,
    pub(crate) stopping: AtomicBool,
    pub(crate) next_id: AtomicU64,
    pub(crate) closer: Closer,
    pub(crate) mailboxes: Vec<Arc<Mailbox>>,
}

/// The connected clients, with counts per uid (for the limits).
#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) by_id: HashMap<u64, Connection>,
    pub(crate) per_uid: HashMap<u32, usize>,
}

impl Registry {
    pub(crate) fn insert(&mut self, connection: Connection) {
        *self.per_uid.entry(connection.peer_credentials().uid).or_default() += 1;
        self.by_id.insert(connection.id(), connection);
    }

    pub(crate) fn remove(&mut self, id: u64) {
        if let Some(connection) = self.by_id.remove(&id) {
            let uid = connection.peer_credentials().uid;
            if let Some(count) = self.per_uid.get_mut(&uid) {
                *count -= 1;
                if *count == 0 {
                    self.per_uid.remove(&uid);
                }
            }
        }
    }

    /// Why a new connection of `uid` would exceed the limits, if it would.
    pub(crate) fn refusal(&self, uid: u32, options: &Options) -> Option<String> {
        let of_uid = self.per_uid.get(&uid).copied().unwrap_or(0);
        crate::seats::refusal(self.by_id.len(), of_uid, uid, options.max_connections, options.max_connections_per_uid)
    }
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
    pub(crate) fn call(&self, what: &str, connection: Option<&Connection>, f: impl FnOnce(&dyn ServerHandler)) {
        use std::panic::{catch_unwind, AssertUnwindSafe};
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(&*self.handler))) {
            let err = panic_error(what, payload);
            let _ = catch_unwind(AssertUnwindSafe(|| self.handler.on_error(connection, &err)));
        }
    }
}

/// An event-driven server on one endpoint.
pub struct Server {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The process that started the server (see [`Origin`]).
    origin: Origin,
}

impl Server {
    /// Binds endpoint `name` (see [`Listener::bind`]) and starts serving on
    /// `options.dispatch_threads` dispatch threads.
    pub fn start(name: &str, options: &Options, handler: impl ServerHandler) -> Result<Server> {
        let listener = Listener::bind(name, options)?;
        let mut shards = Vec::new();
        let mut mailboxes = Vec::new();
        for index in 0..options.dispatch_threads {
            let shard = Shard::new(index, options)?;
            mailboxes.push(shard.mailbox());
            shards.push(shard);
        }
        let shared = Arc::new(Shared {
            listener,
            handler: Box::new(handler),
            options: options.clone(),
            connections: Mutex::new(Registry::default()),
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            closer: Closer::start()?,
            mailboxes,
        });
        let mut threads = Vec::new();
        for shard in shards {
            let runner = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("shmsock-server-{name}-{}", shard.index()))
                .spawn(move || shard.run(&runner));
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    let server = Server { shared, threads: Mutex::new(threads), origin: Origin::here() };
                    server.close();
                    return Err(Error::io("starting a dispatch thread", e));
                }
            }
        }
        Ok(Server { shared, threads: Mutex::new(threads), origin: Origin::here() })
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
        self.shared.connections.lock().by_id.values().cloned().collect()
    }

    /// How many clients failed the handshake or were refused so far.
    pub fn rejected_count(&self) -> u64 {
        self.shared.listener.rejected_count()
    }

    /// Stops serving: closes every connection (each gets `on_close`), removes
    /// the endpoint and joins the dispatch threads. Idempotent.
    pub fn close(&self) {
        let threads = std::mem::take(&mut *self.threads.lock());
        if self.origin.forked() {
            // A child of fork() has a copy of the server but none of its
            // threads (joining them would never return), and its connections
            // and endpoint are the parent's: it leaves them alone.
            std::mem::forget(threads);
            self.shared.stopping.store(true, Ordering::Release);
            return;
        }
        if self.shared.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.listener.close();
        for mailbox in &self.shared.mailboxes {
            mailbox.wake();
        }
        let me = std::thread::current().id();
        for thread in threads {
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
        self.shared.closer.finish();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}
