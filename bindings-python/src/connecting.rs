//! `_Connecting` and `_Subscribing`: client handshakes an event loop drives
//! (for shmsock.aio), wrapping the core's `Connecting` and `Subscribing`:
//! started without waiting, advanced when their descriptor (the same for the
//! whole handshake) is readable, so no executor thread waits for the server,
//! not even one that is not there yet (``wait``).

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmsock::{ClientHandshake, Connecting, ErrorKind, Subscribing};

use crate::errors::{self, OrRaise};
use crate::options::{self, Entry, Given};
use crate::stream::PyStream;
use crate::subscriber::PySubscriber;

/// A handshake until it is over (finished, failed or closed: None).
struct Pending<H>(Mutex<Option<H>>);

impl<H: ClientHandshake + Send> Pending<H>
where
    H::Output: Send,
{
    fn new(handshake: H) -> Self {
        Pending(Mutex::new(Some(handshake)))
    }

    fn over(py: Python<'_>) -> PyErr {
        errors::new(py, ErrorKind::Closed, "this handshake is over (finished, failed or closed)")
    }

    fn with<T>(&self, py: Python<'_>, f: impl FnOnce(&H) -> T) -> PyResult<T> {
        let inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        inner.as_ref().map(f).ok_or_else(|| Self::over(py))
    }

    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        self.with(py, |h| h.fd().as_raw_fd())
    }

    fn time_left(&self, py: Python<'_>) -> PyResult<f64> {
        self.with(py, |h| h.deadline().saturating_duration_since(Instant::now()).as_secs_f64())
    }

    /// One step, without the GIL (the key exchange): what it made, or None.
    fn advance(&self, py: Python<'_>) -> PyResult<Option<H::Output>> {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let handshake = inner.take().ok_or_else(|| Self::over(py))?;
        match py.detach(|| handshake.step()).or_raise(py)? {
            Err(handshake) => {
                *inner = Some(handshake);
                Ok(None)
            }
            Ok(done) => Ok(Some(done)),
        }
    }

    fn close(&self) {
        drop(self.0.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
}

/// A connect in progress (see ``Stream._connect_start``).
#[pyclass(module = "shmsock", name = "_Connecting", frozen)]
pub struct PyConnecting {
    pending: Pending<Connecting>,
    send_timeout: Option<Duration>,
    recv_timeout: Option<Duration>,
}

impl PyConnecting {
    /// Starts connecting to `name` (options as for ``Stream.connect``), never
    /// waiting (see the core's `Connecting::start`: with ``wait``, a missing
    /// server is looked for again through the descriptor).
    pub(crate) fn start(
        py: Python<'_>,
        name: &str,
        server_key: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyConnecting> {
        let given = Given::new(Entry::Connect, options)?;
        let built = options::client(server_key, &given)?;
        let connecting = py.detach(|| Connecting::start(name, &built.options)).or_raise(py)?;
        Ok(PyConnecting {
            pending: Pending::new(connecting),
            send_timeout: built.send_timeout,
            recv_timeout: built.recv_timeout,
        })
    }
}

#[pymethods]
impl PyConnecting {
    /// The descriptor to watch (the same for the whole connect): readable
    /// when ``_advance`` may make progress.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        self.pending.fileno(py)
    }

    /// Seconds until the connect gives up (the handshake's timeout, or the end
    /// of ``wait``; 0 once past): call ``_advance`` then, if the descriptor
    /// said nothing before. Read it again after each ``_advance``.
    #[getter]
    fn time_left(&self, py: Python<'_>) -> PyResult<f64> {
        self.pending.time_left(py)
    }

    /// Finishes the connect if the server answered: the Stream, or None while
    /// its answer has not come whole. Never waits (releases the GIL for the
    /// key exchange). Raises what the server's REJECT says, or Timeout past
    /// the deadline; the connect is over then.
    fn _advance(&self, py: Python<'_>) -> PyResult<Option<PyStream>> {
        let done = self.pending.advance(py)?;
        Ok(done.map(|stream| PyStream::wrap(stream, self.send_timeout, self.recv_timeout)))
    }

    /// Gives up: closes the socket (the server sees the client leave).
    /// Idempotent.
    fn close(&self) {
        self.pending.close();
    }
}

/// A subscription in progress (see ``Subscriber._subscribe_start``).
#[pyclass(module = "shmsock", name = "_Subscribing", frozen)]
pub struct PySubscribing {
    pending: Pending<Subscribing>,
    recv_timeout: Option<Duration>,
}

impl PySubscribing {
    /// Starts subscribing to `name` (options as for ``Subscriber.connect``),
    /// never waiting.
    pub(crate) fn start(
        py: Python<'_>,
        name: &str,
        server_key: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PySubscribing> {
        let given = Given::new(Entry::Subscribe, options)?;
        let built = options::client(server_key, &given)?;
        let subscribing = py.detach(|| Subscribing::start(name, &built.options)).or_raise(py)?;
        Ok(PySubscribing { pending: Pending::new(subscribing), recv_timeout: built.recv_timeout })
    }
}

#[pymethods]
impl PySubscribing {
    /// The descriptor to watch (the same for the whole handshake): readable
    /// when ``_advance`` may make progress.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        self.pending.fileno(py)
    }

    /// Seconds until the subscription gives up (0 once past). Read it again
    /// after each ``_advance``.
    #[getter]
    fn time_left(&self, py: Python<'_>) -> PyResult<f64> {
        self.pending.time_left(py)
    }

    /// Takes the steps whose input is there: the Subscriber, or None while it
    /// waits for the publisher. Never waits. Raises what the publisher's
    /// REJECT says, or Timeout past the deadline; it is over then.
    fn _advance(&self, py: Python<'_>) -> PyResult<Option<PySubscriber>> {
        let done = self.pending.advance(py)?;
        Ok(done.map(|sub| PySubscriber::wrap(Arc::new(sub), self.recv_timeout)))
    }

    /// Gives up: closes the socket. Idempotent.
    fn close(&self) {
        self.pending.close();
    }
}
