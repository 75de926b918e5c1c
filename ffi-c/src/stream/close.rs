//! The end of a stream: closing it, freeing it, and asking whether it is closed.

use super::shmsock_stream;
use crate::boundary::boundary;
use crate::handle;
use crate::result::shmsock_result;
use crate::util::Out;

/// Closes the stream: the peer receives every message sent before, then
/// SHMSOCK_PEER_CLOSED. Idempotent: closing again returns SHMSOCK_OK. Every
/// later call on the stream (but the queries of its keys, credentials, stats
/// and cipher) fails with SHMSOCK_CLOSED, and calls blocked in other threads
/// return SHMSOCK_CLOSED. The handle stays valid until shmsock_stream_free().
/// Never blocks for long (waits up to 100 ms for a sender in another thread).
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_close(stream: *mut shmsock_stream) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL (caller's contract).
        unsafe { handle::arg(stream) }?.close()?;
        Ok(())
    })
}

/// Frees a stream, closing it first if needed. NULL is a no-op. The stream
/// must not be in use on another thread; freeing twice is undefined
/// behaviour, as with free(3) (closing twice is fine).
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_free(stream: *mut shmsock_stream) {
    // SAFETY: a stream from this library or NULL, not freed before.
    boundary!(|| unsafe { handle::free(stream) })
}

/// Sets `*out_closed` to true once shmsock_stream_close() was called on this
/// stream. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_is_closed(
    stream: *const shmsock_stream,
    out_closed: *mut bool,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable bool or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out_closed, "out_closed")?) };
        out.write(stream.is_closed());
        Ok(())
    })
}
