//! Receiving from a stream: into the caller's buffer or into a new malloc'd
//! one, blocking, with a timeout or without waiting; and shmsock_buffer_free().

use std::ffi::c_void;
use std::time::Instant;

use shmsock::{ErrorKind, RecvBuf, Stream};

use super::shmsock_stream;
use crate::boundary::boundary;
use crate::handle;
use crate::result::{shmsock_result, FfiResult};
use crate::util::{self, Out};

/// How long a receive may wait.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all (the `try_` functions).
    No,
    /// Up to the stream's receive timeout.
    Default,
    /// Up to the deadline of a `timeout_ms` argument (None: forever).
    Until(Option<Instant>),
}

impl Wait {
    fn recv(self, stream: &Stream, buf: &mut (impl RecvBuf + ?Sized)) -> shmsock::Result<usize> {
        match self {
            Wait::No => stream.try_recv_with(buf),
            Wait::Default => stream.recv_with(buf, stream.default_recv_deadline()),
            Wait::Until(deadline) => stream.recv_with(buf, deadline),
        }
    }
}

/// Receives into the caller's buffer; on BUFFER_TOO_SMALL, `*out_len` is the size needed.
unsafe fn recv_into(
    stream: *mut shmsock_stream,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
    wait: Wait,
) -> FfiResult<()> {
    // SAFETY: a live stream or NULL (caller's contract).
    let stream = unsafe { handle::arg(stream) }?;
    // SAFETY: `buf` holds `len` writable bytes, or is NULL with len 0.
    let buf = unsafe { util::bytes_mut(buf, len, "buf") }?;
    // SAFETY: a writable size_t or NULL (caller's contract).
    let out_len = unsafe { Out::new(out_len, "out_len") }?;
    match wait.recv(stream, buf) {
        Ok(n) => {
            out_len.write(n);
            Ok(())
        }
        Err(e) => {
            if let (ErrorKind::BufferTooSmall, Some(needed)) = (e.kind(), e.needed()) {
                out_len.write(needed);
            }
            Err(e.into())
        }
    }
}

/// A message in memory from malloc(3), for shmsock_buffer_free(): allocated
/// by the core's receive once the message's length is known.
struct Malloced {
    /// NULL until `prepare`; then max(len, 1) bytes from calloc, so an empty
    /// message also has a non-NULL buffer.
    ptr: *mut u8,
    len: usize,
}

impl RecvBuf for Malloced {
    fn prepare(&mut self, len: usize) -> shmsock::Result<()> {
        if !self.ptr.is_null() && self.len == len {
            // Again for the same message, after a timeout: the same memory.
            return Ok(());
        }
        // calloc: the memory is initialised before Rust forms a slice over it.
        // SAFETY: plain allocation; NULL is checked.
        let ptr = unsafe { libc::calloc(len.max(1), 1) }.cast::<u8>();
        if ptr.is_null() {
            return Err(shmsock::Error::new(
                ErrorKind::ResourceExhausted,
                format!("out of memory allocating {len} bytes for a received message; it is kept for the next call"),
            ));
        }
        // SAFETY: NULL or from calloc, not handed out (free(NULL) is a no-op).
        unsafe { libc::free(self.ptr.cast::<c_void>()) };
        *self = Malloced { ptr, len };
        Ok(())
    }

    fn bytes(&mut self) -> &mut [u8] {
        if self.ptr.is_null() {
            return &mut [];
        }
        // SAFETY: `ptr` holds max(len, 1) zeroed bytes from calloc, owned here.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Malloced {
    fn drop(&mut self) {
        // SAFETY: NULL or from calloc, not handed out.
        unsafe { libc::free(self.ptr.cast::<c_void>()) }
    }
}

/// Receives a message into a new malloc'd buffer of exactly its size, in one
/// core call.
unsafe fn recv_alloc(
    stream: *mut shmsock_stream,
    out_buf: *mut *mut u8,
    out_len: *mut usize,
    wait: Wait,
) -> FfiResult<()> {
    // SAFETY: a live stream or NULL (caller's contract).
    let stream = unsafe { handle::arg(stream) }?;
    // SAFETY: writable pointers or NULL (caller's contract).
    let out_buf = unsafe { Out::new(out_buf, "out_buf") }?;
    // SAFETY: as above.
    let out_len = unsafe { Out::new(out_len, "out_len") }?;
    let mut buffer = Malloced { ptr: std::ptr::null_mut(), len: 0 };
    let n = wait.recv(stream, &mut buffer)?;
    if buffer.ptr.is_null() {
        // Every message is prepared; this keeps "never NULL" unconditional.
        buffer.prepare(0)?;
    }
    out_len.write(n);
    out_buf.write(std::mem::replace(&mut buffer.ptr, std::ptr::null_mut()));
    Ok(())
}

/// Receives the next message into the caller's buffer `buf` of `len` bytes,
/// waiting up to the stream's receive timeout (shmsock_options_set_recv_timeout();
/// forever by default).
///
/// On success `*out_len` receives the message's length (0 for an empty message;
/// `buf` may be NULL when `len` is 0). When the message is longer than `len`,
/// returns SHMSOCK_BUFFER_TOO_SMALL with `*out_len` = the length needed, and
/// keeps the message for the next call: retry with a buffer that large. The
/// decrypted message is written straight into `buf`: no allocation, no copy.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL, SHMSOCK_TIMEOUT,
/// SHMSOCK_CLOSED, SHMSOCK_PEER_CLOSED (every message the peer sent was
/// received), SHMSOCK_PEER_GONE, SHMSOCK_AUTHENTICATION_FAILED,
/// SHMSOCK_PROTOCOL_VIOLATION, SHMSOCK_MESSAGE_TOO_LARGE.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_recv_into(
    stream: *mut shmsock_stream,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { recv_into(stream, buf, len, out_len, Wait::Default) })
}

/// As shmsock_stream_recv_into(), waiting up to `timeout_ms` milliseconds
/// (SHMSOCK_FOREVER: no limit; 0: only what has arrived) instead of the
/// stream's timeout.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_recv_into_timeout(
    stream: *mut shmsock_stream,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
    timeout_ms: u64,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { recv_into(stream, buf, len, out_len, Wait::Until(util::deadline(timeout_ms))) })
}

/// As shmsock_stream_recv_into() without waiting: SHMSOCK_WOULD_BLOCK when no
/// complete message is there (also when another thread is receiving). After
/// SHMSOCK_WOULD_BLOCK the stream's pollable fd (shmsock_stream_pollable_fd())
/// becomes readable when a message, a close or the peer's death is pending:
/// wait on it with poll/epoll, then call this until SHMSOCK_WOULD_BLOCK again.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_try_recv_into(
    stream: *mut shmsock_stream,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { recv_into(stream, buf, len, out_len, Wait::No) })
}

/// For an event loop about to wait on the pollable fd after
/// SHMSOCK_WOULD_BLOCK: when the peer says it runs on this thread's CPU (two
/// processes on one core, where the loop's sleep and the peer's wake-up cost
/// more than the message), hands the CPU over to it as a blocking receive
/// does (sched_yield(2) and a look, twice at most; adaptive: hand-overs that
/// find nothing stop for a while) and sets `*out_ready` to true as soon as a
/// message is there (its first frame, for one larger than a frame). Sets it
/// to false at once when the peer runs elsewhere, the stream's spin is 0 or
/// the machine is crowded. It receives nothing and changes nothing a later
/// wait relies on: after true, call shmsock_stream_try_recv_into() again (for
/// a large message it may still say SHMSOCK_WOULD_BLOCK); after false, wait
/// on the fd as usual.
///
/// Errors: SHMSOCK_NULL_ARGUMENT; SHMSOCK_CLOSED after shmsock_stream_close(),
/// or the error that ended the connection, as a receive would return them.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_hand_over(
    stream: *const shmsock_stream,
    out_ready: *mut bool,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable bool or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out_ready, "out_ready")?) };
        out.write(stream.hand_over()?);
        Ok(())
    })
}

/// Receives the next message into a new buffer owned by the caller, waiting up
/// to the stream's receive timeout.
///
/// On success `*out_buf` receives the message (never NULL, also for an empty
/// message) and `*out_len` its length; free the buffer with
/// shmsock_buffer_free(). Prefer shmsock_stream_recv_into() on hot paths: it
/// allocates nothing.
///
/// Errors: as shmsock_stream_recv_into() (but never SHMSOCK_BUFFER_TOO_SMALL),
/// and SHMSOCK_RESOURCE_EXHAUSTED when the buffer cannot be allocated (the
/// message is kept for the next call).
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_recv(
    stream: *mut shmsock_stream,
    out_buf: *mut *mut u8,
    out_len: *mut usize,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { recv_alloc(stream, out_buf, out_len, Wait::Default) })
}

/// As shmsock_stream_recv(), waiting up to `timeout_ms` milliseconds
/// (SHMSOCK_FOREVER: no limit; 0: only what has arrived).
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_recv_timeout(
    stream: *mut shmsock_stream,
    timeout_ms: u64,
    out_buf: *mut *mut u8,
    out_len: *mut usize,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { recv_alloc(stream, out_buf, out_len, Wait::Until(util::deadline(timeout_ms))) })
}

/// As shmsock_stream_recv() without waiting: SHMSOCK_WOULD_BLOCK when no
/// complete message is there (see shmsock_stream_try_recv_into() for the
/// pollable fd).
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_try_recv(
    stream: *mut shmsock_stream,
    out_buf: *mut *mut u8,
    out_len: *mut usize,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { recv_alloc(stream, out_buf, out_len, Wait::No) })
}

/// Frees a buffer returned by shmsock_stream_recv(), shmsock_stream_recv_timeout()
/// or shmsock_stream_try_recv(). NULL is a no-op. The buffer comes from
/// malloc(3), so free(3) may be used as well.
#[no_mangle]
pub unsafe extern "C" fn shmsock_buffer_free(buf: *mut u8) {
    boundary!(|| {
        // SAFETY: NULL or a buffer from calloc handed out by this library, not
        // freed before (caller's contract); free(NULL) is a no-op.
        unsafe { libc::free(buf.cast::<c_void>()) }
    })
}
