//! Connecting a stream to a server: shmsock_stream_connect(), and the
//! non-blocking shmsock_connect_start() / shmsock_connecting_advance() for
//! event loops.

use std::ffi::{c_char, c_int};
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::Instant;

use shmsock::{ConnectProgress, Connecting, Error, ErrorKind, Stream};

use super::shmsock_stream;
use crate::boundary::boundary;
use crate::handle::{self, handle};
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

/// A connect in progress, for event loops: from shmsock_connect_start(),
/// finished with shmsock_connecting_advance() when its fd is readable, freed
/// with shmsock_connecting_free().
///
/// Thread safety: calls may come from several threads, but a connect is
/// meant to be driven by one event loop.
pub struct shmsock_connecting {
    /// None once finished or failed.
    inner: Mutex<Option<Connecting>>,
}

handle!(shmsock_connecting, "connecting");

impl shmsock_connecting {
    fn over() -> Error {
        Error::new(ErrorKind::Closed, "this connect is over (it finished or failed)")
    }
}

/// Starts connecting to the server of endpoint `name` without waiting: the
/// control socket is connected and the HELLO sent. `options` as for
/// shmsock_stream_connect().
///
/// Never blocks. No server is SHMSOCK_NOT_FOUND at once, unless a connect
/// wait is set (shmsock_options_set_connect_wait()): then the connect looks
/// for its server again whenever the runtime directory changes and after a
/// short backoff, through its fd, until the wait ends (then
/// shmsock_connecting_advance() gives SHMSOCK_NOT_FOUND). A server whose
/// queue of waiting connections is full is tried again the same way until
/// the handshake timeout (or the wait, if longer) ends (then SHMSOCK_TIMEOUT).
/// Watch shmsock_connecting_fd() for readability and call
/// shmsock_connecting_advance(). On success `*out` receives a new handle,
/// owned by the caller, to be freed with shmsock_connecting_free().
///
/// Errors: as shmsock_stream_connect().
#[no_mangle]
pub unsafe extern "C" fn shmsock_connect_start(
    name: *const c_char,
    options: *const shmsock_options,
    out: *mut *mut shmsock_connecting,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: NUL-terminated string or NULL (caller's contract).
        let name = unsafe { util::string(name, "name") }?;
        // SAFETY: a live options object or NULL (caller's contract).
        let options = unsafe { options_arg(options) }?;
        // SAFETY: a writable pointer or NULL (caller's contract).
        let out = unsafe { Out::new(out, "out") }?;
        let connecting = Connecting::start(name, &options)?;
        out.write(handle::into_raw(shmsock_connecting { inner: Mutex::new(Some(connecting)) }));
        Ok(())
    })
}

/// Writes the connect's file descriptor to `*out_fd`: readable when
/// shmsock_connecting_advance() may make progress; the same fd for the whole
/// connect. The fd belongs to the connect: do not close it, and stop watching
/// it once the connect is over (a connect that waited for its server closes
/// it then; otherwise it becomes the stream's control socket). Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_CLOSED (the connect is over).
#[no_mangle]
pub unsafe extern "C" fn shmsock_connecting_fd(
    connecting: *const shmsock_connecting,
    out_fd: *mut c_int,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live connect or NULL; a writable int or NULL.
        let (connecting, out) = unsafe { (handle::arg(connecting)?, Out::new(out_fd, "out_fd")?) };
        let inner = connecting.inner.lock().unwrap_or_else(|p| p.into_inner());
        let fd = inner.as_ref().map(|c| c.fd().as_raw_fd()).ok_or_else(shmsock_connecting::over)?;
        out.write(fd);
        Ok(())
    })
}

/// Writes to `*out_ms` the milliseconds left before the connect gives up
/// (the handshake's timeout, or the end of the wait for the server; 0 once
/// past): call shmsock_connecting_advance() then, if its fd said nothing
/// before. It may grow when the server takes a connect that waited (the
/// handshake's timeout starts then): read it again after each advance. Never
/// blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_CLOSED (the connect is over).
#[no_mangle]
pub unsafe extern "C" fn shmsock_connecting_time_left(
    connecting: *const shmsock_connecting,
    out_ms: *mut u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live connect or NULL; a writable u64 or NULL.
        let (connecting, out) = unsafe { (handle::arg(connecting)?, Out::new(out_ms, "out_ms")?) };
        let inner = connecting.inner.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = inner.as_ref().map(Connecting::deadline).ok_or_else(shmsock_connecting::over)?;
        let left = deadline.saturating_duration_since(Instant::now());
        // Rounded up, so that a loop sleeping this long finds the deadline passed.
        out.write(u64::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX));
        Ok(())
    })
}

/// Finishes the connect if the server answered, never waiting. On success
/// `*out` receives a new stream, owned by the caller, to be freed with
/// shmsock_stream_free(); stop watching the connect's fd then (it lives on as
/// the stream's control socket, or, for a connect that waited for its
/// server, is closed; watch shmsock_stream_pollable_fd() instead).
/// SHMSOCK_WOULD_BLOCK: not done yet; wait for the fd (or the time left) and
/// call again.
///
/// Any other error ends the connect (later calls give SHMSOCK_CLOSED): what
/// the server's REJECT says, or SHMSOCK_TIMEOUT past the handshake timeout.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_WOULD_BLOCK, SHMSOCK_CLOSED, and the
/// handshake's errors as for shmsock_stream_connect().
#[no_mangle]
pub unsafe extern "C" fn shmsock_connecting_advance(
    connecting: *const shmsock_connecting,
    out: *mut *mut shmsock_stream,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live connect or NULL; a writable pointer or NULL.
        let (connecting, out) = unsafe { (handle::arg(connecting)?, Out::new(out, "out")?) };
        let mut inner = connecting.inner.lock().unwrap_or_else(|p| p.into_inner());
        let pending = inner.take().ok_or_else(shmsock_connecting::over)?;
        match pending.advance()? {
            ConnectProgress::Waiting(pending) => {
                *inner = Some(pending);
                Err(Error::new(ErrorKind::WouldBlock, "the server has not answered yet").into())
            }
            ConnectProgress::Done(stream) => {
                out.write(handle::into_raw(shmsock_stream { inner: stream }));
                Ok(())
            }
        }
    })
}

/// Frees a connect (closing its socket if it is still in progress: the
/// server sees the client leave). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn shmsock_connecting_free(connecting: *mut shmsock_connecting) {
    // SAFETY: a connect from this library or NULL, not freed before.
    boundary!(|| unsafe { handle::free(connecting) })
}
