//! `Client`: one connection with callbacks, the counterpart of `Server`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use pyo3::PyTraverseError;
use shmsock::{Client, ClientHandler, Error as CoreError, PublicKey};

use crate::callbacks::{drop_when_unique, Callbacks, Registry, Slot};
use crate::errors;
use crate::keys::PyPublicKey;
use crate::options::{self, Entry, Given};
use crate::stream::{self, PyStats};
use crate::wait::{connect_waiting, Timeout};

struct ClientSlot {
    client: Mutex<Option<Arc<Client>>>,
}

impl ClientSlot {
    /// Closes the connection and waits for the reader thread (without the GIL:
    /// the reader may be waiting for it to run a callback).
    fn close(&self, py: Python<'_>) {
        let taken = self.client.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(client) = taken {
            py.detach(move || {
                // Wakes any thread blocked sending, so it lets go of its reference.
                let _ = client.stream().close();
                drop_when_unique(client);
            });
        }
    }
}

static CLIENTS: Registry<ClientSlot> = Registry::new();

/// Closes every connected client (at interpreter exit).
pub(crate) fn shutdown_all(py: Python<'_>) {
    for slot in CLIENTS.live() {
        slot.close(py);
    }
}

struct Handler {
    callbacks: Arc<Callbacks>,
}

impl Handler {
    fn call<'py>(&self, py: Python<'py>, slot: Slot, args: Vec<Bound<'py, PyAny>>) {
        match PyTuple::new(py, args) {
            Ok(args) => self.callbacks.call(py, slot, args, &[]),
            Err(e) => e.write_unraisable(py, None),
        }
    }
}

impl ClientHandler for Handler {
    fn on_data(&self, data: &[u8]) {
        Python::attach(|py| {
            if self.callbacks.has(py, Slot::Data) {
                let data = PyBytes::new(py, data).into_any();
                self.call(py, Slot::Data, vec![data]);
            }
        });
    }

    fn on_error(&self, error: &CoreError) {
        Python::attach(|py| {
            let exc = errors::instance(py, error);
            self.call(py, Slot::Error, vec![exc]);
        });
    }

    fn on_close(&self, reason: Option<&CoreError>) {
        Python::attach(|py| {
            let reason = match reason {
                Some(e) => errors::instance(py, e),
                None => py.None().into_bound(py),
            };
            self.call(py, Slot::Close, vec![reason]);
        });
    }
}

/// An event-driven client of one endpoint.
///
/// ``Client(name, server_key=..., on_data=..., on_error=..., on_close=...)``
/// connects at once; a reader thread then calls:
///
/// - ``on_data(data: bytes)`` for each message;
/// - ``on_error(error)`` when the connection fails (on_close follows) or a
///   callback raised (a ``CallbackError`` whose ``__cause__`` is the exception);
/// - ``on_close(reason_or_None)`` once when the connection ends; reason is None
///   after a clean close by either side.
///
/// Send with ``send()`` (or ``write()``) from any thread. Use it as a context
/// manager or call ``close()``.
#[pyclass(module = "shmsock", name = "Client", frozen, weakref)]
pub struct PyClient {
    slot: Arc<ClientSlot>,
    callbacks: Arc<Callbacks>,
    server_key: PublicKey,
    send_timeout: Option<Duration>,
}

impl PyClient {
    fn get(&self, py: Python<'_>) -> PyResult<Arc<Client>> {
        self.slot.client.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or_else(|| errors::closed(py, "client"))
    }
}

#[pymethods]
impl PyClient {
    /// Connects to endpoint ``name`` (options as for ``Stream.connect``) and
    /// starts the reader thread.
    #[new]
    #[pyo3(signature = (name, *, server_key, on_data=None, on_error=None, on_close=None, **options))]
    fn new(
        py: Python<'_>,
        name: &str,
        server_key: &Bound<'_, PyAny>,
        on_data: Option<Bound<'_, PyAny>>,
        on_error: Option<Bound<'_, PyAny>>,
        on_close: Option<Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyClient> {
        let given = Given::new(Entry::Client, options)?;
        let built = options::client(server_key, &given)?;
        let callbacks = Arc::new(Callbacks::new([
            (Slot::Connect, None),
            (Slot::Data, on_data),
            (Slot::Error, on_error),
            (Slot::Close, on_close),
        ])?);
        let name = name.to_owned();
        let connect = |options: &_| Client::connect(&name, options, Handler { callbacks: Arc::clone(&callbacks) });
        let client = connect_waiting(py, &built.options, connect)?;
        let server_key = client.server_public_key();
        let slot = Arc::new(ClientSlot { client: Mutex::new(Some(Arc::new(client))) });
        CLIENTS.add(&slot);
        Ok(PyClient { slot, callbacks, server_key, send_timeout: built.send_timeout })
    }

    /// Sends a message (any bytes-like object), waiting while the ring is full
    /// up to ``timeout`` seconds (None: forever; omitted: send_timeout).
    #[pyo3(signature = (data, timeout=Timeout::Default))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Timeout) -> PyResult<()> {
        let client = self.get(py)?;
        stream::send_blocking(py, client.stream(), data, timeout.or(self.send_timeout))
    }

    /// The same as ``send`` (the name of the original ClientSocket sketch).
    #[pyo3(signature = (data, timeout=Timeout::Default))]
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Timeout) -> PyResult<()> {
        self.send(py, data, timeout)
    }

    /// Sends only if the whole message fits now; otherwise raises WouldBlock.
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let client = self.get(py)?;
        stream::try_send(py, client.stream(), data)
    }

    /// Closes the connection; on_close has run when this returns (unless
    /// called from a callback). Idempotent.
    fn close(&self, py: Python<'_>) {
        self.slot.close(py);
    }

    /// True once ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.slot.client.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// The server's public key (the pinned one, proven by the handshake).
    #[getter]
    fn server_public_key(&self) -> PyPublicKey {
        PyPublicKey { key: self.server_key }
    }

    /// Message and byte counts.
    #[getter]
    fn stats(&self, py: Python<'_>) -> PyResult<PyStats> {
        Ok(PyStats::from(self.get(py)?.stats()))
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
        self.callbacks.traverse(&visit)
    }

    fn __clear__(&self) {
        self.callbacks.clear();
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " closed" } else { "" };
        format!("<shmsock.Client server={}{}>", self.server_key.fingerprint(), state)
    }
}

impl Drop for PyClient {
    fn drop(&mut self) {
        Python::attach(|py| self.slot.close(py));
    }
}
