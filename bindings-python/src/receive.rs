//! Receiving into Python objects, shared by `Stream` and `Subscriber`: a
//! message as a `bytes` of its exact size (no intermediate copy), or into a
//! caller's writable buffer, waiting in slices (see [`crate::wait`]).

use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shmsock::{Error as CoreError, ErrorKind, RecvBuf, Stream, Subscriber};

use crate::buffer::WritableBuffer;
use crate::errors::OrRaise;
use crate::stream::KEEP_GIL_BELOW;
use crate::wait::{nothing, sliced};

/// A core object that receives whole messages into a buffer, keeping a message
/// that does not fit (BufferTooSmall with the size needed).
pub(crate) trait Receive: Sync {
    /// Receives the next message if one is there now (else WouldBlock).
    fn try_recv_into(&self, buf: &mut [u8]) -> Result<usize, CoreError>;
    /// Receives the next message, waiting up to `timeout`.
    fn recv_into_timeout(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, CoreError>;
    /// Receives the next message into storage `buf` makes ready for its
    /// length, waiting until `deadline`.
    fn recv_with<B: RecvBuf + ?Sized>(&self, buf: &mut B, deadline: Option<Instant>) -> Result<usize, CoreError>;
    /// As `recv_with`, if a message is there now (else WouldBlock).
    fn try_recv_with<B: RecvBuf + ?Sized>(&self, buf: &mut B) -> Result<usize, CoreError>;
}

impl Receive for Stream {
    fn try_recv_into(&self, buf: &mut [u8]) -> Result<usize, CoreError> {
        Stream::try_recv_into(self, buf)
    }
    fn recv_into_timeout(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, CoreError> {
        Stream::recv_into_timeout(self, buf, timeout)
    }
    fn recv_with<B: RecvBuf + ?Sized>(&self, buf: &mut B, deadline: Option<Instant>) -> Result<usize, CoreError> {
        Stream::recv_with(self, buf, deadline)
    }
    fn try_recv_with<B: RecvBuf + ?Sized>(&self, buf: &mut B) -> Result<usize, CoreError> {
        Stream::try_recv_with(self, buf)
    }
}

impl Receive for Subscriber {
    fn try_recv_into(&self, buf: &mut [u8]) -> Result<usize, CoreError> {
        Subscriber::try_recv_into(self, buf).map(|d| d.len)
    }
    fn recv_into_timeout(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, CoreError> {
        Subscriber::recv_into_timeout(self, buf, timeout).map(|d| d.len)
    }
    fn recv_with<B: RecvBuf + ?Sized>(&self, buf: &mut B, deadline: Option<Instant>) -> Result<usize, CoreError> {
        Subscriber::recv_with(self, buf, deadline).map(|d| d.len)
    }
    fn try_recv_with<B: RecvBuf + ?Sized>(&self, buf: &mut B) -> Result<usize, CoreError> {
        Subscriber::try_recv_with(self, buf).map(|d| d.len)
    }
}

/// A `bytes` object of exactly the message's size, made by the core's receive
/// once it knows the length ([`RecvBuf`]): the message is decrypted straight
/// into it, in one core call whatever its size.
struct NewBytes {
    bytes: Option<Py<PyBytes>>,
    /// The object's storage (`len` bytes), taken with the GIL at `prepare`.
    ptr: *mut u8,
    len: usize,
}

// SAFETY: `ptr` points into the object `bytes` keeps alive, and the object is
// used by one thread at a time: the one that runs the receive (which may be
// the thread holding the GIL, or the same thread with the GIL released).
unsafe impl Send for NewBytes {}

impl RecvBuf for NewBytes {
    fn prepare(&mut self, len: usize) -> Result<(), CoreError> {
        if self.bytes.is_some() && self.len == len {
            // Again for the same message, after a timed-out slice.
            return Ok(());
        }
        let made = Python::attach(|py| {
            // Zero-filled by pyo3, so the storage is initialised before a slice is formed over it.
            let bytes = PyBytes::new_with(py, len, |_| Ok(()))?;
            // SAFETY: `bytes` is a live bytes object; PyBytes_AsString returns
            // its storage of `len` bytes (plus a NUL), which lives as long as it.
            let ptr = unsafe { pyo3::ffi::PyBytes_AsString(bytes.as_ptr()) }.cast::<u8>();
            PyResult::Ok((bytes.unbind(), ptr))
        });
        match made {
            Ok((bytes, ptr)) if !ptr.is_null() => {
                *self = NewBytes { bytes: Some(bytes), ptr, len };
                Ok(())
            }
            _ => Err(CoreError::new(
                ErrorKind::ResourceExhausted,
                format!("out of memory making a bytes object of {len} bytes; the message is kept"),
            )),
        }
    }

    fn bytes(&mut self) -> &mut [u8] {
        if self.bytes.is_none() {
            return &mut [];
        }
        // SAFETY: `ptr` is the storage of `len` initialised bytes of the object
        // `self.bytes` keeps alive; nothing else references that object before
        // recv_bytes returns it, so writing into it is unobserved.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// Receives the next message as `bytes`, waiting up to `timeout` (None:
/// forever; Some(0): try once). A try holds the GIL throughout (the asyncio
/// path: small messages, no GIL hand-off); a wait releases it in slices (see
/// [`crate::wait`]).
pub(crate) fn recv_bytes<'py, R: Receive>(
    py: Python<'py>,
    source: &R,
    timeout: Option<Duration>,
    try_only: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut buf = NewBytes { bytes: None, ptr: std::ptr::null_mut(), len: 0 };
    let result = if try_only {
        source.try_recv_with(&mut buf)
    } else {
        sliced(py, timeout, nothing, |slice| {
            source.recv_with(&mut buf, slice.and_then(|t| Instant::now().checked_add(t)))
        })?
    };
    let n = result.or_raise(py)?;
    // Every message is prepared at its length, so `n == buf.len`; the other
    // cases only keep the contract without a panic.
    let Some(bytes) = buf.bytes.take() else {
        return Ok(PyBytes::new(py, b""));
    };
    let bytes = bytes.into_bound(py);
    if n == buf.len {
        Ok(bytes)
    } else {
        Ok(PyBytes::new(py, &bytes.as_bytes()[..n.min(buf.len)]))
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
