//! `Server` (event-driven, many clients, callbacks) and its `Connection`s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use pyo3::PyTraverseError;
use shmsock::{Connection, Error as CoreError, PublicKey, Server, ServerHandler};

use crate::buffer::Data;
use crate::callbacks::{drop_when_unique, Callbacks, Registry, Slot};
use crate::errors::{self, OrRaise};
use crate::keys::PyPublicKey;
use crate::options::{self, Entry, Given};
use crate::stream::{PyCredentials, PyStats, KEEP_GIL_BELOW};

/// Where a running core server lives; None once closed.
struct ServerSlot {
    server: Mutex<Option<Arc<Server>>>,
}

impl ServerSlot {
    /// Stops the server (without the GIL: it joins the dispatch thread, which
    /// may be waiting for the GIL to run a callback).
    fn close(&self, py: Python<'_>) {
        let taken = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(server) = taken {
            py.detach(move || drop_when_unique(server));
        }
    }
}

static SERVERS: Registry<ServerSlot> = Registry::new();

/// Closes every running server (at interpreter exit).
pub(crate) fn shutdown_all(py: Python<'_>) {
    for slot in SERVERS.live() {
        slot.close(py);
    }
}

/// State shared by the Python object and the core's handler.
struct Shared {
    callbacks: Callbacks,
    /// One Python object per connection, so every callback of a connection
    /// gets the same object (usable as a dict key).
    connections: Mutex<HashMap<u64, Py<PyConnection>>>,
}

impl Shared {
    fn connection<'py>(&self, py: Python<'py>, c: &Connection) -> Bound<'py, PyConnection> {
        let mut map = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = map.get(&c.id()) {
            return existing.bind(py).clone();
        }
        let created = Bound::new(py, PyConnection { connection: c.clone() }).expect("allocating a Connection");
        map.insert(c.id(), created.clone().unbind());
        created
    }
}

struct Handler {
    shared: Arc<Shared>,
}

impl Handler {
    fn call<'py>(
        &self,
        py: Python<'py>,
        slot: Slot,
        conn: Option<&Bound<'py, PyConnection>>,
        rest: Vec<Bound<'py, PyAny>>,
    ) {
        let conn_or_none = match conn {
            Some(c) => c.clone().into_any(),
            None => py.None().into_bound(py),
        };
        // Every server callback takes the connection (or None) first.
        let mut items = Vec::with_capacity(rest.len() + 1);
        items.push(conn_or_none.clone());
        items.extend(rest);
        match PyTuple::new(py, items) {
            Ok(args) => self.shared.callbacks.call(py, slot, args, &[conn_or_none]),
            Err(e) => e.write_unraisable(py, None),
        }
    }
}

impl ServerHandler for Handler {
    fn on_connect(&self, connection: &Connection) {
        Python::attach(|py| {
            let c = self.shared.connection(py, connection);
            self.call(py, Slot::Connect, Some(&c), vec![]);
        });
    }

    fn on_data(&self, connection: &Connection, data: &[u8]) {
        Python::attach(|py| {
            if !self.shared.callbacks.has(py, Slot::Data) {
                return;
            }
            let c = self.shared.connection(py, connection);
            let data = PyBytes::new(py, data).into_any();
            self.call(py, Slot::Data, Some(&c), vec![data]);
        });
    }

    fn on_error(&self, connection: Option<&Connection>, error: &CoreError) {
        Python::attach(|py| {
            let c = connection.map(|c| self.shared.connection(py, c));
            let exc = errors::instance(py, error);
            self.call(py, Slot::Error, c.as_ref(), vec![exc]);
        });
    }

    fn on_close(&self, connection: &Connection, reason: Option<&CoreError>) {
        Python::attach(|py| {
            let c = self.shared.connection(py, connection);
            let reason = match reason {
                Some(e) => errors::instance(py, e),
                None => py.None().into_bound(py),
            };
            self.call(py, Slot::Close, Some(&c), vec![reason]);
            self.shared.connections.lock().unwrap_or_else(|p| p.into_inner()).remove(&connection.id());
        });
    }
}

/// An event-driven server: many clients served from one dispatch thread.
///
/// ``Server(name, keypair=..., on_connect=..., on_data=..., on_error=...,
/// on_close=...)`` binds the endpoint and starts serving at once. Callbacks
/// run on the server's dispatch thread, one at a time:
///
/// - ``on_connect(connection)``: a client completed its handshake;
/// - ``on_data(connection, data: bytes)``: a message arrived;
/// - ``on_error(connection_or_None, error)``: a connection failed (on_close
///   follows), a client was refused (connection None), or a callback raised
///   (a ``CallbackError`` whose ``__cause__`` is the exception);
/// - ``on_close(connection, reason_or_None)``: a connection ended; reason is
///   None after a clean close by either side.
///
/// Reply with ``connection.send(...)`` from a callback or any thread: it never
/// waits (a client that does not read fills its bounded queue and the send
/// raises WouldBlock), so one slow client cannot stall the others. Use it as a
/// context manager or call ``close()``.
#[pyclass(module = "shmsock", name = "Server", frozen, weakref)]
pub struct PyServer {
    slot: Arc<ServerSlot>,
    shared: Arc<Shared>,
    name: String,
    public_key: PublicKey,
}

impl PyServer {
    fn get(&self, py: Python<'_>) -> PyResult<Arc<Server>> {
        self.slot.server.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or_else(|| errors::closed(py, "server"))
    }
}

#[pymethods]
impl PyServer {
    /// Binds endpoint ``name`` and starts serving. Options are as for
    /// ``Listener.bind``; callbacks are described in the class documentation.
    /// ``max_queued_bytes`` bounds each connection's outbound queue (see
    /// ``Connection.send``, which never waits). ``max_connections`` (default
    /// 1024) and ``max_connections_per_uid`` (default None: no bound of its
    /// own) bound the connections kept at once: a client beyond them is
    /// refused (its connect raises ``ResourceExhausted``, "the server is
    /// full"). ``dispatch_threads`` (default 1, at most 256) spreads the
    /// connections over that many threads.
    #[new]
    #[pyo3(signature = (name, *, keypair, on_connect=None, on_data=None, on_error=None, on_close=None, **options))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: &str,
        keypair: &Bound<'_, PyAny>,
        on_connect: Option<Bound<'_, PyAny>>,
        on_data: Option<Bound<'_, PyAny>>,
        on_error: Option<Bound<'_, PyAny>>,
        on_close: Option<Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyServer> {
        let given = Given::new(Entry::Server, options)?;
        let mut built = options::server(keypair, &given)?;
        if let Some(bytes) = given.int::<usize>("max_queued_bytes")? {
            built.options = built.options.max_queued_bytes(bytes);
        }
        if let Some(threads) = given.int::<usize>("dispatch_threads")? {
            built.options = built.options.dispatch_threads(threads);
        }
        let callbacks = Callbacks::new([
            (Slot::Connect, on_connect),
            (Slot::Data, on_data),
            (Slot::Error, on_error),
            (Slot::Close, on_close),
        ])?;
        let shared = Arc::new(Shared { callbacks, connections: Mutex::new(HashMap::new()) });
        let handler = Handler { shared: Arc::clone(&shared) };
        let name = name.to_owned();
        let server = py.detach(|| Server::start(&name, &built.options, handler)).or_raise(py)?;
        let slot = Arc::new(ServerSlot { server: Mutex::new(None) });
        let public_key = server.public_key();
        *slot.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(server));
        SERVERS.add(&slot);
        Ok(PyServer { slot, shared, name, public_key })
    }

    /// Stops serving: closes every connection (each gets on_close), releases
    /// the endpoint and stops the dispatch thread. Idempotent; may be called
    /// from a callback.
    fn close(&self, py: Python<'_>) {
        self.slot.close(py);
    }

    /// True once ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.slot.server.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// The endpoint name.
    #[getter]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// The server's public key, which clients pin.
    #[getter]
    fn public_key(&self) -> PyPublicKey {
        PyPublicKey { key: self.public_key }
    }

    /// The connected clients.
    #[getter]
    fn connections<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyConnection>>> {
        let server = self.get(py)?;
        let list = server.connections();
        drop(server);
        let mut out: Vec<Bound<'py, PyConnection>> = list.iter().map(|c| self.shared.connection(py, c)).collect();
        out.sort_by_key(|c| c.get().connection.id());
        Ok(out)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.shared.callbacks.traverse(&visit)
    }

    fn __clear__(&self) {
        self.shared.callbacks.clear();
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " closed" } else { "" };
        format!("<shmsock.Server name='{}' key={}{}>", self.name, self.public_key.fingerprint(), state)
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        Python::attach(|py| self.slot.close(py));
    }
}

impl PyConnection {
    /// Closed once the connection was closed or ended (before on_close runs),
    /// even while the server still sends its queue and close off the loop.
    fn check_open(&self, py: Python<'_>) -> PyResult<()> {
        if self.connection.is_closed() {
            return Err(errors::closed(py, "connection"));
        }
        Ok(())
    }
}

/// One client of a Server, as passed to its callbacks. Usable from any thread;
/// after on_close every call raises Closed.
#[pyclass(module = "shmsock", name = "Connection", frozen, weakref)]
pub struct PyConnection {
    connection: Connection,
}

#[pymethods]
impl PyConnection {
    /// A number unique within the server.
    #[getter]
    fn id(&self) -> u64 {
        self.connection.id()
    }

    /// Sends a message to this client (any bytes-like object) without ever
    /// waiting: into its ring if it fits now, else into the connection's
    /// outbound queue, which the server sends in order as the client frees
    /// space. When the queue already holds ``max_queued_bytes`` (a client that
    /// does not read), raises WouldBlock and queues nothing: drop the message,
    /// retry later or close the connection. Safe in callbacks (the dispatch
    /// thread never blocks on a client) and from any thread.
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.check_open(py)?;
        let data = Data::from_py(data)?;
        let bytes = data.as_slice();
        let result = if bytes.len() < KEEP_GIL_BELOW {
            self.connection.send(bytes)
        } else {
            py.detach(|| self.connection.send(bytes))
        };
        result.or_raise(py)
    }

    /// Sends only if the message fits in the ring now and nothing is queued;
    /// otherwise raises WouldBlock and sends and queues nothing.
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.check_open(py)?;
        let data = Data::from_py(data)?;
        let bytes = data.as_slice();
        let result = if bytes.len() < KEEP_GIL_BELOW {
            self.connection.try_send(bytes)
        } else {
            py.detach(|| self.connection.try_send(bytes))
        };
        result.or_raise(py)
    }

    /// Messages waiting in the outbound queue (sent as the client reads).
    #[getter]
    fn queued_messages(&self) -> usize {
        self.connection.queued_messages()
    }

    /// Closes this connection; on_close follows.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.connection.close()).or_raise(py)
    }

    /// The client's public key, authenticated by the handshake.
    #[getter]
    fn peer_public_key(&self) -> PyPublicKey {
        PyPublicKey { key: self.connection.peer_public_key() }
    }

    /// This side's public key: the server's.
    #[getter]
    fn local_public_key(&self) -> PyPublicKey {
        PyPublicKey { key: self.connection.stream().local_public_key() }
    }

    /// The client process's pid, uid and gid, from the kernel.
    #[getter]
    fn peer_credentials(&self) -> PyCredentials {
        PyCredentials::from(self.connection.peer_credentials())
    }

    /// Message and byte counts.
    #[getter]
    fn stats(&self) -> PyStats {
        PyStats::from(self.connection.stats())
    }

    /// The transport cipher: ``"aegis-128l"`` or ``"chacha20-poly1305"``
    /// (what the client's ``Stream.cipher`` says).
    #[getter]
    fn cipher(&self) -> &'static str {
        self.connection.stream().cipher().name()
    }

    /// True once this connection was closed by either side.
    #[getter]
    fn closed(&self) -> bool {
        self.connection.is_closed()
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmsock.Connection id={} peer={}>",
            self.connection.id(),
            self.connection.peer_public_key().fingerprint()
        )
    }
}
