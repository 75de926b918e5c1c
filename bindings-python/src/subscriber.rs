//! `Subscriber`: the receiving end of the core's encrypted publish/subscribe,
//! with Python arguments, errors and threading. Receives release the GIL and
//! wait in slices so Ctrl-C interrupts them (see [`crate::receive`]).

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use shmsock::{ErrorKind, Subscriber};

use crate::connecting::PySubscribing;
use crate::errors;
use crate::keys::PyPublicKey;
use crate::options::{self, Entry, Given};
use crate::receive::{recv_bytes, recv_into};
use crate::stream::PyCredentials;
use crate::wait::{connect_waiting, Timeout};

/// The receiving end of a topic.
///
/// ``Subscriber.connect(name, server_key=...)`` pins the publisher's key (a
/// publisher with another key fails with ServerKeyMismatch) and starts with
/// the next message published. ``recv()`` returns each message as bytes;
/// iterating yields messages until the topic ends. On a latest topic, messages
/// overwritten before this subscriber read them are skipped and counted in
/// ``lost``; a torn or stale message is never returned. Use it as a context
/// manager or call ``close()``.
#[pyclass(module = "shmsock", name = "Subscriber", frozen, weakref)]
pub struct PySubscriber {
    inner: Mutex<Option<Arc<Subscriber>>>,
    recv_timeout: Option<Duration>,
}

impl PySubscriber {
    pub(crate) fn wrap(sub: Arc<Subscriber>, recv_timeout: Option<Duration>) -> PySubscriber {
        PySubscriber { inner: Mutex::new(Some(sub)), recv_timeout }
    }

    fn get(&self, py: Python<'_>) -> PyResult<Arc<Subscriber>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or_else(|| errors::closed(py, "subscriber"))
    }

    fn is_closed(&self) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    fn receive<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<Duration>,
        try_only: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let sub = self.get(py)?;
        recv_bytes(py, &*sub, timeout, try_only)
    }
}

#[pymethods]
impl PySubscriber {
    /// Subscribes to topic ``name``. ``server_key`` (a PublicKey, its text or
    /// its bytes) pins the publisher. ``keypair`` is this subscriber's identity
    /// (a fresh one when None; a publisher with ``allowed_clients`` checks it).
    /// ``recv_timeout`` is the default of ``recv()`` (None: wait forever).
    /// ``max_message_size`` is the largest message this side accepts (a topic
    /// carrying larger ones is refused with MessageTooLarge).
    /// ``handshake_timeout``, ``spin`` and ``require_chacha`` are as for
    /// ``Stream.connect``; ``wait`` (seconds) waits for a publisher to
    /// appear, as for ``Stream.connect``.
    #[staticmethod]
    #[pyo3(signature = (name, *, server_key, **options))]
    fn connect(
        py: Python<'_>,
        name: &str,
        server_key: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PySubscriber> {
        let given = Given::new(Entry::Subscribe, options)?;
        let built = options::client(server_key, &given)?;
        let name = name.to_owned();
        let sub = connect_waiting(py, &built.options, |options| Subscriber::connect(&name, options))?;
        Ok(PySubscriber::wrap(Arc::new(sub), built.recv_timeout))
    }

    /// For event loops (``shmsock.aio``): starts subscribing without waiting
    /// (options as for ``connect``); finish it with ``_advance()`` when its
    /// ``fileno()`` is readable.
    #[staticmethod]
    #[pyo3(signature = (name, *, server_key, **options))]
    fn _subscribe_start(
        py: Python<'_>,
        name: &str,
        server_key: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PySubscribing> {
        PySubscribing::start(py, name, server_key, options)
    }

    /// Receives the next message as bytes, waiting up to ``timeout`` seconds
    /// (None: forever; omitted: ``recv_timeout``), then raises Timeout (nothing
    /// is lost). Raises PeerClosed once the topic ended and every message
    /// published before was received, PeerGone if the publisher died, and the
    /// reason when this subscriber was removed or dropped for being too slow.
    #[pyo3(signature = (timeout=Timeout::Default))]
    fn recv<'py>(&self, py: Python<'py>, timeout: Timeout) -> PyResult<Bound<'py, PyBytes>> {
        self.receive(py, timeout.or(self.recv_timeout), false)
    }

    /// Receives the next message if one is there now; otherwise raises
    /// WouldBlock, and ``fileno()`` becomes readable when one arrives (or the
    /// topic ends).
    fn try_recv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.receive(py, None, true)
    }

    /// Receives the next message into ``buffer`` (a writable buffer) and
    /// returns its length. A buffer too small raises BufferTooSmall (with
    /// ``needed``) and keeps the message (on a latest topic it may be
    /// overwritten meanwhile, and then counts as lost).
    #[pyo3(signature = (buffer, timeout=Timeout::Default))]
    fn recv_into(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>, timeout: Timeout) -> PyResult<usize> {
        let sub = self.get(py)?;
        recv_into(py, &*sub, buffer, timeout.or(self.recv_timeout), false)
    }

    /// As ``recv_into`` without waiting: WouldBlock when no message is there.
    fn try_recv_into(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let sub = self.get(py)?;
        recv_into(py, &*sub, buffer, None, true)
    }

    /// The default timeout of ``recv()`` in seconds (None: wait forever).
    #[getter]
    fn recv_timeout(&self) -> Option<f64> {
        self.recv_timeout.map(|t| t.as_secs_f64())
    }

    /// Messages lost to lag so far (latest topics; always 0 on reliable ones).
    #[getter]
    fn lost(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.lost())
    }

    /// Messages received so far.
    #[getter]
    fn received(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.received())
    }

    /// The sequence number of the next message this subscriber reads.
    #[getter]
    fn position(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.position())
    }

    /// The newest group-key epoch received.
    #[getter]
    fn epoch(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.epoch())
    }

    /// The topic name.
    #[getter]
    fn topic(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.get(py)?.topic().to_owned())
    }

    /// The publisher's public key (the pinned one, proven by the handshake).
    #[getter]
    fn publisher_public_key(&self, py: Python<'_>) -> PyResult<PyPublicKey> {
        Ok(PyPublicKey { key: self.get(py)?.publisher_public_key() })
    }

    /// This subscriber's public key.
    #[getter]
    fn local_public_key(&self, py: Python<'_>) -> PyResult<PyPublicKey> {
        Ok(PyPublicKey { key: self.get(py)?.local_public_key() })
    }

    /// The publisher process's pid, uid and gid, from the kernel.
    #[getter]
    fn publisher_credentials(&self, py: Python<'_>) -> PyResult<PyCredentials> {
        Ok(PyCredentials::from(self.get(py)?.publisher_credentials()))
    }

    /// The topic's AEAD: ``"aegis-128l"`` or ``"chacha20-poly1305"``.
    #[getter]
    fn cipher(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(self.get(py)?.cipher().name())
    }

    /// The largest message the topic carries.
    #[getter]
    fn max_message_size(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.get(py)?.max_message_size())
    }

    /// The descriptor that becomes readable when, after ``try_recv`` raised
    /// WouldBlock, a message, a key, the end of the topic or the publisher's
    /// death is pending (for select, selectors, asyncio's add_reader). Do not
    /// read it yourself.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(self.get(py)?.pollable_fd().as_raw_fd())
    }

    /// Leaves the topic (the publisher rotates its key). Idempotent; later
    /// calls raise Closed, and a thread blocked in ``recv`` wakes with Closed.
    fn close(&self, py: Python<'_>) {
        let taken = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(sub) = taken {
            py.detach(move || {
                sub.close();
                drop(sub);
            });
        }
    }

    /// True once ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.is_closed()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next message; StopIteration at the end of the topic (PeerClosed).
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        match self.receive(py, self.recv_timeout, false) {
            Err(e) if errors::is_kind(py, &e, ErrorKind::PeerClosed) => Err(PyStopIteration::new_err(())),
            other => other,
        }
    }

    fn __repr__(&self) -> String {
        match self.inner.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            None => "<shmsock.Subscriber closed>".into(),
            Some(s) => format!(
                "<shmsock.Subscriber topic='{}' publisher={} cipher={} received={} lost={}>",
                s.topic(),
                s.publisher_public_key().fingerprint(),
                s.cipher().name(),
                s.received(),
                s.lost()
            ),
        }
    }
}
