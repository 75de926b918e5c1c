//! Sending on a stream: blocking, with a timeout, and without waiting.

use shmsock::Stream;

use super::shmsock_stream;
use crate::boundary::boundary;
use crate::handle;
use crate::result::{shmsock_result, FfiResult};
use crate::util;

unsafe fn send(
    stream: *mut shmsock_stream,
    data: *const u8,
    len: usize,
    how: impl FnOnce(&Stream, &[u8]) -> shmsock::Result<()>,
) -> FfiResult<()> {
    // SAFETY: a live stream or NULL (caller's contract).
    let stream = unsafe { handle::arg(stream) }?;
    // SAFETY: `data` holds `len` readable bytes, or is NULL with len 0.
    let data = unsafe { util::bytes(data, len, "data") }?;
    how(stream, data)?;
    Ok(())
}

/// Sends one message of `len` bytes (0 is allowed; `data` may then be NULL).
///
/// Blocks while the ring is full, up to the stream's send timeout
/// (shmsock_options_set_send_timeout(); forever by default). The message is
/// sent whole or not at all. The data is encrypted straight into shared memory
/// and not kept: the buffer may be reused when this returns.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_MESSAGE_TOO_LARGE (over the peer's
/// maximum), SHMSOCK_TIMEOUT (nothing was sent), SHMSOCK_CLOSED,
/// SHMSOCK_PEER_CLOSED, SHMSOCK_PEER_GONE, SHMSOCK_PROTOCOL_VIOLATION.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_send(
    stream: *mut shmsock_stream,
    data: *const u8,
    len: usize,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { send(stream, data, len, |s, d| s.send(d)) })
}

/// As shmsock_stream_send(), waiting for ring space up to `timeout_ms`
/// milliseconds (SHMSOCK_FOREVER: no limit) instead of the stream's timeout.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_send_timeout(
    stream: *mut shmsock_stream,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { send(stream, data, len, |s, d| s.send_timeout(d, util::timeout(timeout_ms))) })
}

/// Sends one message only if all of it fits in the ring now; else
/// SHMSOCK_WOULD_BLOCK and nothing is sent. Never blocks.
///
/// Errors: as shmsock_stream_send(), with SHMSOCK_WOULD_BLOCK instead of
/// SHMSOCK_TIMEOUT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_try_send(
    stream: *mut shmsock_stream,
    data: *const u8,
    len: usize,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { send(stream, data, len, |s, d| s.try_send(d)) })
}
