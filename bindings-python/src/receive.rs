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
    /// The next message's length if it is there now (a hint; None: unknown).
    fn next_message_len(&self) -> Option<usize>;
}

/// Whether a try should release the GIL: the message there now is large
/// enough that decrypting it (about 0.1 ms per MiB) is worth other threads'
/// time, and the hand-off (a few µs) is not paid for small ones.
fn large_message_waiting<R: Receive>(source: &R) -> bool {
    source.next_message_len().is_some_and(|len| len >= KEEP_GIL_BELOW)
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
    fn next_message_len(&self) -> Option<usize> {
        Stream::next_message_len(self)
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
    fn next_message_len(&self) -> Option<usize> {
        // Not known for a subscriber: its tries keep the GIL.
        None
    }
}

/// Messages up to this size are received into a buffer on the stack and
/// copied into their `bytes` afterwards: making a `bytes` object needs the GIL,
/// which a blocking receive has released, and taking it back inside the
/// receive costs more than copying a few KiB.
const SMALL: usize = 4096;

/// Where [`recv_bytes`] receives a message, made ready by the core once it
/// knows the length ([`RecvBuf`]): one core call whatever the size.
enum Storage {
    /// Nothing prepared yet.
    Empty,
    /// The first `len` bytes of `NewBytes::small`.
    Small,
    /// A `bytes` object of exactly `len` bytes the message is decrypted
    /// straight into, and its storage (taken with the GIL at `prepare`).
    Object(Py<PyBytes>, *mut u8),
}

struct NewBytes {
    small: [u8; SMALL],
    storage: Storage,
    len: usize,
}

// SAFETY: the pointer in `Storage::Object` points into the object kept alive
// beside it, which nothing else references before `recv_bytes` returns it; one
// thread at a time uses a NewBytes (the one running the receive, with or
// without the GIL).
unsafe impl Send for NewBytes {}

impl RecvBuf for NewBytes {
    fn prepare(&mut self, len: usize) -> Result<(), CoreError> {
        if len <= SMALL {
            (self.storage, self.len) = (Storage::Small, len);
            return Ok(());
        }
        if matches!(self.storage, Storage::Object(..)) && self.len == len {
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
                (self.storage, self.len) = (Storage::Object(bytes, ptr), len);
                Ok(())
            }
            _ => Err(CoreError::new(
                ErrorKind::ResourceExhausted,
                format!("out of memory making a bytes object of {len} bytes; the message is kept"),
            )),
        }
    }

    fn bytes(&mut self) -> &mut [u8] {
        match self.storage {
            Storage::Empty => &mut [],
            Storage::Small => &mut self.small[..self.len],
            // SAFETY: `ptr` is the storage of `len` initialised bytes of the
            // object kept alive beside it; nothing else references that object
            // before recv_bytes returns it, so writing into it is unobserved.
            Storage::Object(_, ptr) => unsafe { std::slice::from_raw_parts_mut(ptr, self.len) },
        }
    }
}

/// Receives the next message as `bytes`, waiting up to `timeout` (None:
/// forever; Some(0): try once). A try holds the GIL (the asyncio path: no GIL
/// hand-off) unless the message there is large; a wait releases it in slices
/// (see [`crate::wait`]).
pub(crate) fn recv_bytes<'py, R: Receive>(
    py: Python<'py>,
    source: &R,
    timeout: Option<Duration>,
    try_only: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let message = recv_bytes_unless(py, source, timeout, try_only, None)?;
    // Without a kind to answer None for, every outcome is a message or an error.
    Ok(message.unwrap_or_else(|| PyBytes::new(py, b"")))
}

/// As [`recv_bytes`], with None instead of an exception for an error of kind
/// `none_on`: event loops look at a stream many times in a row, and a raised
/// exception per miss costs about as much as the look itself.
pub(crate) fn recv_bytes_unless<'py, R: Receive>(
    py: Python<'py>,
    source: &R,
    timeout: Option<Duration>,
    try_only: bool,
    none_on: Option<ErrorKind>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let mut buf = NewBytes { small: [0; SMALL], storage: Storage::Empty, len: 0 };
    let result = if try_only {
        if large_message_waiting(source) {
            py.detach(|| source.try_recv_with(&mut buf))
        } else {
            source.try_recv_with(&mut buf)
        }
    } else if timeout == Some(Duration::ZERO) {
        // One look that never sleeps: as a try, with the GIL held (no hand-off).
        source.recv_with(&mut buf, Some(Instant::now()))
    } else {
        sliced(py, timeout, nothing, |slice| {
            source.recv_with(&mut buf, slice.and_then(|t| Instant::now().checked_add(t)))
        })?
    };
    let n = match result {
        Err(e) if Some(e.kind()) == none_on => return Ok(None),
        result => result.or_raise(py)?,
    };
    // Every message is prepared at its length (n == buf.len); `min` only keeps
    // a broken promise from panicking.
    let n = n.min(buf.len);
    Ok(Some(match std::mem::replace(&mut buf.storage, Storage::Empty) {
        Storage::Object(bytes, _) if n == buf.len => bytes.into_bound(py),
        Storage::Object(bytes, _) => PyBytes::new(py, &bytes.bind(py).as_bytes()[..n]),
        Storage::Small => PyBytes::new(py, &buf.small[..n]),
        Storage::Empty => PyBytes::new(py, b""),
    }))
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
        if large_message_waiting(source) {
            py.detach(|| source.try_recv_into(slice))
        } else {
            source.try_recv_into(slice)
        }
    } else {
        sliced(py, timeout, nothing, |t| source.recv_into_timeout(slice, t))?
    };
    result.or_raise(py)
}
