//! `Listener`: a bound endpoint that accepts clients, blocking or (for
//! shmsock.aio) without waiting.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmsock::{ErrorKind, Listener, PublicKey};

use crate::errors::{self, OrRaise};
use crate::keys::PyPublicKey;
use crate::options::{self, Entry, Given};
use crate::stream::PyStream;
use crate::wait::{sliced, Timeout};

/// A bound endpoint that accepts clients.
///
/// ``Listener.bind(name, keypair=...)`` claims the endpoint name (the socket
/// lives in a private per-user directory); ``accept()`` waits for a client and
/// completes its handshake. Clients that fail the handshake (wrong key, not on
/// the allow-list) are refused and skipped: see ``rejected_count`` and
/// ``last_rejection``. Use it as a context manager or call ``close()``; the
/// endpoint is released when the listener is closed or garbage-collected.
/// Iterating yields accepted streams until the listener is closed.
#[pyclass(module = "shmsock", name = "Listener", frozen, weakref)]
pub struct PyListener {
    inner: Mutex<Option<Arc<Listener>>>,
    name: String,
    public_key: PublicKey,
    send_timeout: Option<Duration>,
    recv_timeout: Option<Duration>,
}

impl PyListener {
    fn get(&self, py: Python<'_>) -> PyResult<Arc<Listener>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or_else(|| errors::closed(py, "listener"))
    }

    fn is_closed(&self) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    fn wrap_stream(&self, stream: shmsock::Stream) -> PyStream {
        PyStream::wrap(stream, self.send_timeout, self.recv_timeout)
    }
}

#[pymethods]
impl PyListener {
    /// Binds endpoint ``name`` with this server's ``keypair`` (which clients
    /// pin). ``allowed_clients``: only these public keys may connect (default:
    /// any). ``allowed_uids``: only these uids. ``backend``: ``"memfd"``
    /// (default on Linux) or ``"named"``. ``max_pending_handshakes`` and
    /// ``max_pending_handshakes_per_uid`` (64 each by default) bound the
    /// handshakes past the client's HELLO at once (each holds new shared
    /// memory until the client's READY; a client beyond them is refused);
    /// ``max_connections`` (1024) and ``max_connections_per_uid`` bound the
    /// accepted streams still open (one more client is refused with
    /// ResourceExhausted, "the server is full"; a stream counts until it is
    /// closed) and the accepted clients that have not sent their HELLO yet
    /// (the oldest gives way to a newcomer). The other options are as for
    /// ``Stream.connect`` and apply to every accepted stream. Raises
    /// AddressInUse when a live process serves the name.
    #[staticmethod]
    #[pyo3(signature = (name, *, keypair, **options))]
    fn bind(
        py: Python<'_>,
        name: &str,
        keypair: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyListener> {
        let built = options::server(keypair, &Given::new(Entry::Listen, options)?)?;
        let listener = Listener::bind(name, &built.options).or_raise(py)?;
        Ok(PyListener {
            name: listener.name().to_owned(),
            public_key: listener.public_key(),
            inner: Mutex::new(Some(Arc::new(listener))),
            send_timeout: built.send_timeout,
            recv_timeout: built.recv_timeout,
        })
    }

    /// Waits for a client and completes its handshake, up to ``timeout``
    /// seconds (None: forever), then raises Timeout. Ctrl-C interrupts the
    /// wait; ``close()`` from another thread ends it with Closed.
    #[pyo3(signature = (timeout=None))]
    fn accept(&self, py: Python<'_>, timeout: Option<Timeout>) -> PyResult<PyStream> {
        let listener = self.get(py)?;
        let timeout = timeout.and_then(|t| t.or(None));
        let between = |py: Python<'_>| {
            if self.is_closed() {
                Err(errors::closed(py, "listener"))
            } else {
                Ok(())
            }
        };
        let stream = sliced(py, timeout, between, |t| listener.accept_timeout(t))?.or_raise(py)?;
        Ok(self.wrap_stream(stream))
    }

    /// Accepts without waiting, for event loops: advances every handshake in
    /// progress with what its client sent, takes the clients waiting now, and
    /// returns a stream if one completed its handshake, else None. Call it
    /// whenever ``fileno()`` is readable (which includes a handshake's
    /// deadline passing), until it returns None. Refused clients are skipped.
    /// Used by shmsock.aio; releases the GIL (a HELLO costs key exchanges).
    fn _try_accept(&self, py: Python<'_>) -> PyResult<Option<PyStream>> {
        let listener = self.get(py)?;
        let stream = py.detach(|| listener.try_accept()).or_raise(py)?;
        Ok(stream.map(|s| self.wrap_stream(s)))
    }

    /// Stops listening and releases the endpoint name (its socket file is
    /// removed). Streams already accepted stay connected. Idempotent.
    fn close(&self, py: Python<'_>) {
        let taken = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        py.detach(move || drop(taken));
    }

    /// True once ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.is_closed()
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

    /// How many clients failed the handshake so far.
    #[getter]
    fn rejected_count(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.rejected_count())
    }

    /// Changes how many accepted streams stay open at once (what
    /// ``max_connections`` and ``max_connections_per_uid`` set at bind;
    /// ``per_uid=None``: no bound of its own). A client beyond them is refused
    /// at its handshake (its connect raises ResourceExhausted); a stream
    /// counts until it is closed; streams beyond a lowered bound stay
    /// connected. ``max=0`` raises ValueError.
    #[pyo3(signature = (max, per_uid=None))]
    fn set_max_connections(&self, py: Python<'_>, max: usize, per_uid: Option<usize>) -> PyResult<()> {
        self.get(py)?.set_max_connections(max, per_uid).or_raise(py)
    }

    /// Why the last client failed the handshake, as an exception (or None).
    #[getter]
    fn last_rejection<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(self.get(py)?.last_rejection().map(|e| errors::instance(py, &e)))
    }

    /// The listener's pollable file descriptor: readable when ``accept`` with
    /// a zero timeout may make progress (a client waits, a handshake in
    /// progress got its client's next record, or a handshake's deadline
    /// passed), for select, selectors and asyncio's add_reader.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(self.get(py)?.as_raw_fd())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<PyStream> {
        match self.accept(py, None) {
            Err(e) if errors::is_kind(py, &e, ErrorKind::Closed) => Err(PyStopIteration::new_err(())),
            other => other,
        }
    }

    fn __repr__(&self) -> String {
        let state = if self.is_closed() { " closed" } else { "" };
        format!("<shmsock.Listener name='{}' key={}{}>", self.name, self.public_key.fingerprint(), state)
    }
}
