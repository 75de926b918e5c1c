//! `_Connecting`: a connect an event loop drives (for shmsock.aio), wrapping
//! the core's `Connecting`: started without waiting, advanced when its
//! descriptor is readable, so no executor thread waits for the server.

use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmsock::{ConnectProgress, Connecting, ErrorKind};

use crate::errors::{self, OrRaise};
use crate::options::{self, Entry, Given};
use crate::stream::PyStream;

/// A connect in progress (see ``Stream._connect_start``).
#[pyclass(module = "shmsock", name = "_Connecting", frozen)]
pub struct PyConnecting {
    /// None once finished, failed or closed.
    inner: Mutex<Option<Connecting>>,
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
            inner: Mutex::new(Some(connecting)),
            send_timeout: built.send_timeout,
            recv_timeout: built.recv_timeout,
        })
    }

    fn over(py: Python<'_>) -> PyErr {
        errors::new(py, ErrorKind::Closed, "this connect is over (finished, failed or closed)")
    }
}

#[pymethods]
impl PyConnecting {
    /// The descriptor to watch (the same for the whole connect): readable
    /// when ``_advance`` may make progress.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.as_ref().map(|c| c.fd().as_raw_fd()).ok_or_else(|| Self::over(py))
    }

    /// Seconds until the connect gives up (the handshake's timeout, or the end
    /// of ``wait``; 0 once past): call ``_advance`` then, if the descriptor
    /// said nothing before. Read it again after each ``_advance``.
    #[getter]
    fn time_left(&self, py: Python<'_>) -> PyResult<f64> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = inner.as_ref().map(Connecting::deadline).ok_or_else(|| Self::over(py))?;
        Ok(deadline.saturating_duration_since(Instant::now()).as_secs_f64())
    }

    /// Finishes the connect if the server answered: the Stream, or None while
    /// its answer has not come whole. Never waits (releases the GIL for the
    /// key exchange). Raises what the server's REJECT says, or Timeout past
    /// the deadline; the connect is over then.
    fn _advance(&self, py: Python<'_>) -> PyResult<Option<PyStream>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let connecting = inner.take().ok_or_else(|| Self::over(py))?;
        match py.detach(|| connecting.advance()).or_raise(py)? {
            ConnectProgress::Waiting(connecting) => {
                *inner = Some(connecting);
                Ok(None)
            }
            ConnectProgress::Done(stream) => Ok(Some(PyStream::wrap(stream, self.send_timeout, self.recv_timeout))),
        }
    }

    /// Gives up: closes the socket (the server sees the client leave).
    /// Idempotent.
    fn close(&self) {
        drop(self.inner.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
}
