//! Connecting a stream to a server: shmsock_stream_connect().

use std::ffi::c_char;

use shmsock::Stream;

use super::shmsock_stream;
use crate::boundary::boundary;
use crate::handle;
use crate::options::{options_arg, shmsock_options};
use crate::result::shmsock_result;
use crate::util::{self, Out};

/// Connects to the server of endpoint `name` and completes the handshake.
///
/// `name` is a NUL-terminated endpoint name (1 to 100 characters of
/// `[A-Za-z0-9._-]`). `options` must pin the server's key
/// (shmsock_options_set_server_key()); its keypair, if any, is this client's
/// identity (else a fresh one is made). The options are copied.
///
/// Blocks up to the handshake timeout. Thread-safe. On success `*out` receives
/// a new stream, owned by the caller, to be freed with shmsock_stream_free().
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_UTF8, SHMSOCK_INVALID_NAME,
/// SHMSOCK_INVALID_ARGUMENT (no server key pinned), SHMSOCK_NOT_FOUND (no
/// server), SHMSOCK_SERVER_KEY_MISMATCH, SHMSOCK_HANDSHAKE_REJECTED,
/// SHMSOCK_PROTOCOL_VERSION, SHMSOCK_NO_COMMON_CIPHER,
/// SHMSOCK_PROTOCOL_VIOLATION, SHMSOCK_TIMEOUT, SHMSOCK_PEER_GONE,
/// SHMSOCK_RESOURCE_EXHAUSTED, SHMSOCK_PERMISSION_DENIED, SHMSOCK_IO.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_connect(
    name: *const c_char,
    options: *const shmsock_options,
    out: *mut *mut shmsock_stream,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: NUL-terminated string or NULL (caller's contract).
        let name = unsafe { util::string(name, "name") }?;
        // SAFETY: a live options object or NULL (caller's contract).
        let options = unsafe { options_arg(options) }?;
        // SAFETY: a writable pointer or NULL (caller's contract).
        let out = unsafe { Out::new(out, "out") }?;
        let stream = Stream::connect(name, &options)?;
        out.write(handle::into_raw(shmsock_stream { inner: stream }));
        Ok(())
    })
}
