//! `Stream`, its `Stats` and the peer's `Credentials`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use shmsock::{Credentials, Error as CoreError, ErrorKind, Role, SendProgress, Stats, Stream};

use crate::buffer::Data;
use crate::connecting::PyConnecting;
use crate::errors::{self, OrRaise};
use crate::keys::PyPublicKey;
use crate::options::{self, Entry, Given};
use crate::receive::{recv_bytes, recv_bytes_unless, recv_into};
use crate::wait::{connect_waiting, Timeout};

/// Messages up to this size are copied with the GIL held by try_ calls (larger
/// ones release it: sealing a megabyte takes a while).
pub(crate) const KEEP_GIL_BELOW: usize = 64 * 1024;

/// Sends `data` on `stream`, waiting up to `timeout` for ring space with the
/// GIL released. The core's interruptible send looks at signals between waits
/// of at most 50 ms (`py.check_signals()`, with the GIL taken back), so Ctrl-C
/// raises KeyboardInterrupt promptly: before any part of the message went out
/// nothing was sent; after that, the core ends the connection cleanly (Closed
/// for later calls), so the peer never takes half a message for a whole one.
pub(crate) fn send_blocking(
    py: Python<'_>,
    stream: &Stream,
    data: &Bound<'_, PyAny>,
    timeout: Option<Duration>,
) -> PyResult<()> {
    let data = Data::from_py(data)?;
    let bytes = data.as_slice();
    let mut raised: Option<PyErr> = None;
    let result = py.detach(|| {
        let mut check = || {
            Python::attach(|py| py.check_signals()).map_err(|e| {
                raised = Some(e);
                CoreError::new(ErrorKind::Closed, "the send was interrupted by a signal")
            })
        };
        stream.send_interruptible(bytes, timeout, &mut check)
    });
    if let Some(e) = raised {
        return Err(e);
    }
    result.or_raise(py)
}

/// Sends `data` only if all of it fits in the ring now; else WouldBlock.
pub(crate) fn try_send(py: Python<'_>, stream: &Stream, data: &Bound<'_, PyAny>) -> PyResult<()> {
    let data = Data::from_py(data)?;
    let bytes = data.as_slice();
    let result =
        if bytes.len() < KEEP_GIL_BELOW { stream.try_send(bytes) } else { py.detach(|| stream.try_send(bytes)) };
    result.or_raise(py)
}

/// An encrypted, authenticated message stream to one peer.
///
/// Get one from ``Stream.connect(name, server_key=...)`` or
/// ``Listener.accept()``. Messages keep their boundaries (zero-length ones
/// included). Use it as a context manager, or call ``close()``; a stream that
/// is garbage-collected is closed. Iterating over a stream yields messages
/// until the peer closes. A stream may be shared between threads: one may send
/// while another receives.
#[pyclass(module = "shmsock", name = "Stream", frozen, weakref)]
pub struct PyStream {
    inner: Mutex<Option<Arc<Stream>>>,
    send_timeout: Option<Duration>,
    recv_timeout: Option<Duration>,
}

impl PyStream {
    pub(crate) fn wrap(stream: Stream, send_timeout: Option<Duration>, recv_timeout: Option<Duration>) -> PyStream {
        PyStream { inner: Mutex::new(Some(Arc::new(stream))), send_timeout, recv_timeout }
    }

    fn get(&self, py: Python<'_>) -> PyResult<Arc<Stream>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or_else(|| errors::closed(py, "stream"))
    }
}

pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Client => "client",
        Role::Server => "server",
    }
}

#[pymethods]
impl PyStream {
    /// Connects to the server of endpoint ``name`` and completes the handshake.
    ///
    /// ``server_key`` (a PublicKey, its text or its bytes) pins the server:
    /// a server holding another key fails with ServerKeyMismatch. ``keypair`` is
    /// this client's identity (a fresh one when None). ``send_timeout`` and
    /// ``recv_timeout`` are the defaults of ``send()`` and ``recv()`` (None:
    /// wait forever). ``ring_size`` asks for a ring capacity (a power of two);
    /// ``max_message_size`` is the largest message this side accepts;
    /// ``handshake_timeout`` limits the connection set-up; ``spin`` is how long
    /// a blocking call spins before it sleeps; ``require_chacha`` insists on
    /// ChaCha20-Poly1305.
    #[staticmethod]
    ///
    /// ``wait`` (seconds, at most a day) waits for a server to appear while
    /// none listens on the name, like the command line's ``--wait``, then
    /// raises NotFound; other errors are raised at once. Ctrl-C interrupts it.
    #[pyo3(signature = (name, *, server_key, **options))]
    fn connect(
        py: Python<'_>,
        name: &str,
        server_key: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyStream> {
        let given = Given::new(Entry::Connect, options)?;
        let built = options::client(server_key, &given)?;
        let name = name.to_owned();
        let stream = connect_waiting(py, &built.options, |options| Stream::connect(&name, options))?;
        Ok(PyStream::wrap(stream, built.send_timeout, built.recv_timeout))
    }

    /// For event loops (``shmsock.aio``): starts connecting without waiting
    /// (options as for ``connect``): NotFound at once when no server listens
    /// and no ``wait`` was given; a server to wait for, or one whose queue of
    /// waiting connections is full, is looked for again through the
    /// descriptor. Finish it with ``_advance()`` when its ``fileno()`` is
    /// readable.
    #[staticmethod]
    #[pyo3(signature = (name, *, server_key, **options))]
    fn _connect_start(
        py: Python<'_>,
        name: &str,
        server_key: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyConnecting> {
        PyConnecting::start(py, name, server_key, options)
    }

    /// The default timeout of ``recv()`` in seconds (None: wait forever).
    #[getter]
    fn recv_timeout(&self) -> Option<f64> {
        self.recv_timeout.map(|t| t.as_secs_f64())
    }

    /// For event loops (``shmsock.aio``): sends as much of ``data`` as fits in
    /// the ring now, remembering how far it got. True: all of it is in the
    /// ring. False: call again with the same message once ``fileno()`` is
    /// readable; other sends raise WouldBlock until it completes.
    fn _send_resumable(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<bool> {
        let stream = self.get(py)?;
        let data = Data::from_py(data)?;
        let bytes = data.as_slice();
        let result = if bytes.len() < KEEP_GIL_BELOW {
            stream.send_resumable(bytes)
        } else {
            py.detach(|| stream.send_resumable(bytes))
        };
        Ok(result.or_raise(py)? == SendProgress::Complete)
    }

    /// Sends one message: bytes, bytearray, memoryview or any object with the
    /// buffer protocol (not copied). Waits while the peer's ring is full, up to
    /// ``timeout`` seconds (None: forever; omitted: the stream's send_timeout),
    /// then raises Timeout having sent nothing. Raises MessageTooLarge when the
    /// message exceeds the peer's max_message_size.
    #[pyo3(signature = (data, timeout=Timeout::Default))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Timeout) -> PyResult<()> {
        let stream = self.get(py)?;
        send_blocking(py, &stream, data, timeout.or(self.send_timeout))
    }

    /// Sends one message only if all of it fits in the ring now; otherwise
    /// raises WouldBlock and sends nothing.
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let stream = self.get(py)?;
        try_send(py, &stream, data)
    }

    /// Receives the next message as bytes, waiting up to ``timeout`` seconds
    /// (None: forever; omitted: the stream's recv_timeout). Raises Timeout
    /// (nothing is lost), PeerClosed once the peer closed and every message it
    /// sent was received, or PeerGone if the peer died.
    #[pyo3(signature = (timeout=Timeout::Default))]
    fn recv<'py>(&self, py: Python<'py>, timeout: Timeout) -> PyResult<Bound<'py, PyBytes>> {
        let stream = self.get(py)?;
        recv_bytes(py, &*stream, timeout.or(self.recv_timeout), false)
    }

    /// Receives the next message into ``buffer`` (a writable buffer such as a
    /// bytearray or memoryview) and returns its length. A buffer too small
    /// raises BufferTooSmall (with ``needed``) and keeps the message.
    #[pyo3(signature = (buffer, timeout=Timeout::Default))]
    fn recv_into(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>, timeout: Timeout) -> PyResult<usize> {
        let stream = self.get(py)?;
        recv_into(py, &*stream, buffer, timeout.or(self.recv_timeout), false)
    }

    /// Receives the next message if one is complete now; otherwise raises
    /// WouldBlock, and ``fileno()`` becomes readable when one arrives (or the
    /// peer closes or dies).
    fn try_recv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let stream = self.get(py)?;
        recv_bytes(py, &*stream, None, true)
    }

    /// For event loops (``shmsock.aio``): ``recv(timeout=0)`` that returns
    /// None instead of raising Timeout when no message is complete (a spin
    /// looks many times in a row; an exception per miss doubled its cost).
    /// Like ``recv(timeout=0)`` it consumes none of ``fileno()``'s wake-ups.
    fn _recv_now<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let stream = self.get(py)?;
        recv_bytes_unless(py, &*stream, Some(Duration::ZERO), false, Some(ErrorKind::Timeout))
    }

    /// For event loops (``shmsock.aio``) about to sleep for a message: when
    /// the peer runs on this CPU, hands the CPU over to it as a blocking
    /// receive does (the core's ``Stream::hand_over``), without the GIL.
    /// True when a message is there now; it arms and receives nothing.
    fn _hand_over(&self, py: Python<'_>) -> PyResult<bool> {
        let stream = self.get(py)?;
        py.detach(|| stream.hand_over()).or_raise(py)
    }

    /// As ``recv_into`` without waiting: WouldBlock when no message is complete.
    fn try_recv_into(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let stream = self.get(py)?;
        recv_into(py, &*stream, buffer, None, true)
    }

    /// Closes the stream: the peer receives every message sent before, then
    /// PeerClosed. Idempotent. Later calls raise Closed; a thread blocked on
    /// this stream wakes with Closed.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(stream) = taken {
            // Close and unmap without the GIL: close may wait briefly for a
            // sender, and the last reference unmaps the segment.
            py.detach(move || {
                let _ = stream.close();
                drop(stream);
            });
        }
        Ok(())
    }

    /// For event loops (``shmsock.aio``): closes as ``close()`` does, without
    /// waiting. When the ring has no room for the CLOSE frame now (a peer
    /// that does not read), a short-lived thread waits for it (up to 2 s) so
    /// that the loop does not; returns False then. Idempotent.
    fn _close_nowait(&self) -> bool {
        let Some(stream) = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take() else { return true };
        if !matches!(stream.try_close(), Ok(false)) {
            // Closed (or failed: `close` only shuts it down).
            let _ = stream.close();
            return true;
        }
        let lingering = Arc::clone(&stream);
        let spawned = std::thread::Builder::new().name("shmsock-close".into()).spawn(move || {
            let _ = lingering.close();
        });
        if spawned.is_err() {
            // No thread to be had: close here, as a blocking close does (it
            // waits for room up to 2 s).
            let _ = stream.close();
            return true;
        }
        false
    }

    /// True once ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// The file descriptor that becomes readable when, after ``try_recv``
    /// raised WouldBlock, a message, a close or the peer's death is pending
    /// (for select, selectors, asyncio's add_reader). Do not read it yourself.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        use std::os::fd::AsRawFd;
        Ok(self.get(py)?.as_raw_fd())
    }

    /// The peer's public key, authenticated by the handshake.
    #[getter]
    fn peer_public_key(&self, py: Python<'_>) -> PyResult<PyPublicKey> {
        Ok(PyPublicKey { key: self.get(py)?.peer_public_key() })
    }

    /// This side's public key.
    #[getter]
    fn local_public_key(&self, py: Python<'_>) -> PyResult<PyPublicKey> {
        Ok(PyPublicKey { key: self.get(py)?.local_public_key() })
    }

    /// The peer process's pid, uid and gid, from the kernel.
    #[getter]
    fn peer_credentials(&self, py: Python<'_>) -> PyResult<PyCredentials> {
        Ok(PyCredentials::from(self.get(py)?.peer_credentials()))
    }

    /// Message and byte counts of this stream.
    #[getter]
    fn stats(&self, py: Python<'_>) -> PyResult<PyStats> {
        Ok(PyStats::from(self.get(py)?.stats()))
    }

    /// The transport cipher: ``"aegis-128l"`` or ``"chacha20-poly1305"``.
    #[getter]
    fn cipher(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(self.get(py)?.cipher().name())
    }

    /// The shared-memory backend: ``"memfd"`` or ``"named"``.
    #[getter]
    fn backend(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(self.get(py)?.backend().name())
    }

    /// The capacity of each ring in bytes.
    #[getter]
    fn ring_size(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.get(py)?.ring_size())
    }

    /// The largest message the peer accepts.
    #[getter]
    fn peer_max_message_size(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.get(py)?.peer_max_message_size())
    }

    /// The endpoint name.
    #[getter]
    fn endpoint(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.get(py)?.endpoint().to_owned())
    }

    /// ``"client"`` (connected) or ``"server"`` (accepted).
    #[getter]
    fn role(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(role_name(self.get(py)?.role()))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let stream = self.get(py)?;
        match recv_bytes(py, &*stream, self.recv_timeout, false) {
            Err(e) if errors::is_kind(py, &e, ErrorKind::PeerClosed) => Err(PyStopIteration::new_err(())),
            other => other,
        }
    }

    fn __repr__(&self) -> String {
        match self.inner.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            None => "<shmsock.Stream closed>".into(),
            Some(s) => format!(
                "<shmsock.Stream endpoint='{}' role={} peer={} cipher={}>",
                s.endpoint(),
                role_name(s.role()),
                s.peer_public_key().fingerprint(),
                s.cipher().name()
            ),
        }
    }
}

/// Message and byte counts of a stream (a snapshot).
#[pyclass(module = "shmsock", name = "Stats", frozen, eq)]
#[derive(PartialEq, Eq)]
pub struct PyStats {
    /// Messages sent.
    #[pyo3(get)]
    messages_sent: u64,
    /// Payload bytes sent.
    #[pyo3(get)]
    bytes_sent: u64,
    /// Messages received.
    #[pyo3(get)]
    messages_received: u64,
    /// Payload bytes received.
    #[pyo3(get)]
    bytes_received: u64,
}

impl From<Stats> for PyStats {
    fn from(s: Stats) -> PyStats {
        PyStats {
            messages_sent: s.messages_sent,
            bytes_sent: s.bytes_sent,
            messages_received: s.messages_received,
            bytes_received: s.bytes_received,
        }
    }
}

#[pymethods]
impl PyStats {
    fn __repr__(&self) -> String {
        format!(
            "Stats(messages_sent={}, bytes_sent={}, messages_received={}, bytes_received={})",
            self.messages_sent, self.bytes_sent, self.messages_received, self.bytes_received
        )
    }
}

/// Who is at the other end of a connection, per the kernel (SO_PEERCRED).
#[pyclass(module = "shmsock", name = "Credentials", frozen, eq)]
#[derive(PartialEq, Eq)]
pub struct PyCredentials {
    /// Process id (0 if the peer is in another pid namespace).
    #[pyo3(get)]
    pid: i32,
    /// User id.
    #[pyo3(get)]
    uid: u32,
    /// Group id.
    #[pyo3(get)]
    gid: u32,
}

impl From<Credentials> for PyCredentials {
    fn from(c: Credentials) -> PyCredentials {
        PyCredentials { pid: c.pid, uid: c.uid, gid: c.gid }
    }
}

#[pymethods]
impl PyCredentials {
    fn __repr__(&self) -> String {
        format!("Credentials(pid={}, uid={}, gid={})", self.pid, self.uid, self.gid)
    }
}
