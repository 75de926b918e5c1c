//! Receiving into Python objects, shared by `Stream` and `Subscriber`: a
//! message as a `bytes` of its exact size (no intermediate copy), or into a
//! caller's writable buffer, waiting in slices (see [`crate::wait`]).

use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shmsock::{Error as CoreError, ErrorKind, Stream, Subscriber};

use crate::buffer::WritableBuffer;
use crate::errors::{self, OrRaise};
use crate::stream::KEEP_GIL_BELOW;
use crate::wait::{nothing, sliced};

/// Receives up to this size land on the stack first; larger messages go
/// straight into a `bytes` of the right size.
const SMALL: usize = 4096;

/// A core object that receives whole messages into a buffer, keeping a message
/// that does not fit (BufferTooSmall with the size needed).
pub(crate) trait Receive: Sync {
    /// Receives the next message if one is there now (else WouldBlock).
    fn try_recv_into(&self, buf: &mut [u8]) -> Result<usize, CoreError>;
    /// Receives the next message, waiting up to `timeout`.
    fn recv_into_timeout(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, CoreError>;
}

impl Receive for Stream {
    fn try_recv_into(&self, buf: &mut [u8]) -> Result<usize, CoreError> {
        Stream::try_recv_into(self, buf)
    }
    fn recv_into_timeout(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, CoreError> {
        Stream::recv_into_timeout(self, buf, timeout)
    }
}

impl Receive for Subscriber {
    fn try_recv_into(&self, buf: &mut [u8]) -> Result<usize, CoreError> {
        Subscriber::try_recv_into(self, buf).map(|d| d.len)
    }
    fn recv_into_timeout(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, CoreError> {
        Subscriber::recv_into_timeout(self, buf, timeout).map(|d| d.len)
    }
}

/// Receives the next message as `bytes`, waiting up to `timeout` (None:
/// forever; Some(0): try once).
pub(crate) fn recv_bytes<'py, R: Receive>(
    py: Python<'py>,
    source: &R,
    timeout: Option<Duration>,
    try_only: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut small = [0u8; SMALL];
    let call = |py: Python<'_>, buf: &mut [u8]| -> PyResult<Result<usize, CoreError>> {
        if try_only {
            if buf.len() < KEEP_GIL_BELOW {
                Ok(source.try_recv_into(buf))
            } else {
                Ok(py.detach(|| source.try_recv_into(buf)))
            }
        } else {
            // One deadline for both calls of a large message (measure, then
            // receive into a bytes object of its size).
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            sliced(py, left, nothing, |t| source.recv_into_timeout(buf, t))
        }
    };
    loop {
        let needed = match call(py, &mut small)? {
            Ok(n) => return Ok(PyBytes::new(py, &small[..n])),
            Err(e) if e.kind() == ErrorKind::BufferTooSmall => e.needed().unwrap_or(SMALL * 2),
            Err(e) => return Err(errors::to_py(py, e)),
        };
        // The message is kept by the core: receive it straight into a bytes
        // object of its size.
        let mut outcome: Option<Result<usize, CoreError>> = None;
        let bytes = PyBytes::new_with(py, needed, |buf| {
            outcome = Some(call(py, buf)?);
            Ok(())
        })?;
        match outcome.expect("set by new_with") {
            Ok(n) if n == needed => return Ok(bytes),
            // Another thread took the message we measured; this one is smaller.
            Ok(n) => return Ok(PyBytes::new(py, &bytes.as_bytes()[..n])),
            Err(e) if e.kind() == ErrorKind::BufferTooSmall => continue,
            Err(e) => return Err(errors::to_py(py, e)),
        }
    }
}

/// Receives the next message into a writable buffer.
pub(crate) fn recv_into<R: Receive>(
    py: Python<'_>,
    source: &R,
    buffer: &Bound<'_, PyAny>,
    timeout: Option<Duration>,
    try_only: bool,
) -> PyResult<usize> {
    let mut buf = WritableBuffer::from_py(buffer)?;
    let slice = buf.as_mut_slice();
    let result = if try_only {
        if slice.len() < KEEP_GIL_BELOW {
            source.try_recv_into(slice)
        } else {
            py.detach(|| source.try_recv_into(slice))
        }
    } else {
        sliced(py, timeout, nothing, |t| source.recv_into_timeout(slice, t))?
    };
    result.or_raise(py)
}
