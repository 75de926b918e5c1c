//! Listeners: bind an endpoint, accept streams.

use std::ffi::{c_char, c_int};
use std::os::fd::AsRawFd;

use shmsock::Listener;

use crate::boundary::boundary;
use crate::handle::{self, handle};
use crate::options::{options_arg, shmsock_options};
use crate::result::shmsock_result;
use crate::stream::shmsock_stream;
use crate::util::{self, Out};

/// A bound server endpoint, from shmsock_listener_bind().
///
/// Thread safety: every function except shmsock_listener_free() may be called
/// from several threads at once (each accept gets a different client).
/// shmsock_listener_close() from one thread wakes an accept blocked in
/// another, which then fails with SHMSOCK_CLOSED. Closing or freeing the
/// listener removes the endpoint; streams accepted before stay connected.
pub struct shmsock_listener {
    inner: Listener,
}

handle!(shmsock_listener, "listener" => inner: Listener);

/// Binds endpoint `name` (NUL-terminated, 1 to 100 characters of
/// `[A-Za-z0-9._-]`) in this user's runtime directory ($SHMSOCK_RUNTIME_DIR,
/// else $XDG_RUNTIME_DIR/shmsock, else `/tmp/shmsock-<uid>`; created 0700).
///
/// `options` must hold the server's keypair (shmsock_options_set_keypair());
/// it is copied. A socket file left by a dead server is reclaimed. Never
/// blocks for long. Thread-safe. On success `*out` receives a new listener,
/// owned by the caller, to be freed with shmsock_listener_free().
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_UTF8, SHMSOCK_INVALID_NAME,
/// SHMSOCK_INVALID_ARGUMENT (no keypair), SHMSOCK_ADDRESS_IN_USE (a live
/// process serves the name), SHMSOCK_PERMISSION_DENIED (unsafe runtime
/// directory), SHMSOCK_IO.
#[no_mangle]
pub unsafe extern "C" fn shmsock_listener_bind(
    name: *const c_char,
    options: *const shmsock_options,
    out: *mut *mut shmsock_listener,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: NUL-terminated string or NULL (caller's contract).
        let name = unsafe { util::string(name, "name") }?;
        // SAFETY: a live options object or NULL (caller's contract).
        let options = unsafe { options_arg(options) }?;
        // SAFETY: a writable pointer or NULL (caller's contract).
        let out = unsafe { Out::new(out, "out") }?;
        let listener = Listener::bind(name, &options)?;
        out.write(handle::into_raw(shmsock_listener { inner: listener }));
        Ok(())
    })
}

/// Waits up to `timeout_ms` milliseconds (SHMSOCK_FOREVER: no limit; 0: never
/// waits) for a client to complete its handshake. Handshakes run side by side
/// on the calling thread, each within the handshake timeout, so the deadline
/// holds whatever clients do; those still in progress at return continue at
/// the next call. Clients that fail the handshake (wrong key, not allowed,
/// garbage, silence) are refused with a REJECT and skipped; see
/// shmsock_listener_rejected_count().
///
/// On success `*out` receives a new stream, owned by the caller, to be freed
/// with shmsock_stream_free().
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_TIMEOUT, SHMSOCK_CLOSED (the listener
/// was closed, also while this call waited), SHMSOCK_RESOURCE_EXHAUSTED,
/// SHMSOCK_IO.
#[no_mangle]
pub unsafe extern "C" fn shmsock_listener_accept(
    listener: *const shmsock_listener,
    timeout_ms: u64,
    out: *mut *mut shmsock_stream,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live listener or NULL (caller's contract).
        let listener = unsafe { handle::arg(listener) }?;
        // SAFETY: a writable pointer or NULL (caller's contract).
        let out = unsafe { Out::new(out, "out") }?;
        let stream = listener.accept_timeout(util::timeout(timeout_ms))?;
        out.write(handle::into_raw(shmsock_stream { inner: stream }));
        Ok(())
    })
}

/// Copies the server's public key, which clients pin, into `out` of `out_len`
/// >= SHMSOCK_KEY_LEN bytes. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_listener_public_key(
    listener: *const shmsock_listener,
    out: *mut u8,
    out_len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live listener or NULL (caller's contract).
        let key = unsafe { handle::arg(listener) }?.public_key();
        // SAFETY: `out` holds `out_len` writable bytes (caller's contract).
        unsafe { util::write_key(key.as_bytes(), out, out_len, "out") }
    })
}

/// Writes the listener's pollable file descriptor to `*out_fd`: it becomes
/// readable when a client is waiting, a handshake in progress received its
/// client's next record, or a handshake's deadline passed, so an event loop
/// (which needs no timer of its own for handshakes) can call
/// shmsock_listener_accept() with timeout 0 then, until it returns
/// SHMSOCK_TIMEOUT. That call never waits: it accepts waiting clients and
/// advances every handshake in progress (several run side by side, so a silent
/// client delays no other), returning a stream when one completed, else
/// SHMSOCK_TIMEOUT. The fd belongs to the listener: do not close it. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_listener_fd(listener: *const shmsock_listener, out_fd: *mut c_int) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live listener or NULL; a writable int or NULL.
        let (listener, out) = unsafe { (handle::arg(listener)?, Out::new(out_fd, "out_fd")?) };
        out.write(listener.as_raw_fd());
        Ok(())
    })
}

/// Writes the endpoint name and a NUL into `buf` of `len` bytes (101 is
/// always enough). `out_len` (may be NULL) receives the name's length without
/// the NUL, also on SHMSOCK_BUFFER_TOO_SMALL (when nothing is written).
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_listener_name(
    listener: *const shmsock_listener,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live listener or NULL (caller's contract).
        let listener = unsafe { handle::arg(listener) }?;
        // SAFETY: `buf` holds `len` bytes; `out_len` is NULL or writable.
        unsafe { util::write_text(listener.name(), buf, len, out_len, "buf") }
    })
}

/// Writes how many clients failed the handshake so far to `*out`. The last
/// failure's reason can be read with shmsock_listener_last_rejection().
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_listener_rejected_count(
    listener: *const shmsock_listener,
    out: *mut u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live listener or NULL; a writable value or NULL.
        let (listener, out) = unsafe { (handle::arg(listener)?, Out::new(out, "out")?) };
        out.write(listener.rejected_count());
        Ok(())
    })
}

/// Changes how many accepted streams the listener keeps open at once (what
/// `max_connections` and `max_connections_per_uid` of
/// shmsock_options_set_server_limits() set at bind; `max_per_uid` 0: no bound
/// of its own). A client beyond them is refused at its handshake (REJECT 7:
/// its connect fails with SHMSOCK_RESOURCE_EXHAUSTED); an accepted stream
/// counts until it is closed or freed. Streams beyond a lowered bound stay
/// connected. Never blocks; safe beside a thread in accept.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_ARGUMENT (`max` 0).
#[no_mangle]
pub unsafe extern "C" fn shmsock_listener_set_max_connections(
    listener: *const shmsock_listener,
    max: usize,
    max_per_uid: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live listener or NULL (caller's contract).
        let listener = unsafe { handle::arg(listener) }?;
        listener.set_max_connections(max, (max_per_uid > 0).then_some(max_per_uid))?;
        Ok(())
    })
}

/// Writes the result code of the last client that failed the handshake to
/// `*out_code` (SHMSOCK_OK if none did yet), and makes its message this
/// thread's last error message (shmsock_last_error_message()) when there is one.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_listener_last_rejection(
    listener: *const shmsock_listener,
    out_code: *mut u32,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live listener or NULL; a writable value or NULL.
        let (listener, out) = unsafe { (handle::arg(listener)?, Out::new(out_code, "out_code")?) };
        match listener.last_rejection() {
            Some(e) => {
                crate::result::set_last_error(e.message());
                out.write(crate::result::result_of_kind(e.kind()) as u32);
            }
            None => out.write(shmsock_result::SHMSOCK_OK as u32),
        }
        Ok(())
    })
}

/// Stops listening: removes the endpoint's files, so no new client can connect
/// and the name can be bound again at once. An accept blocked in another thread
/// returns SHMSOCK_CLOSED, and so does every later accept (a client whose
/// handshake was already running may still be accepted). Accepted streams stay
/// connected; the queries (public key, fd, name, rejections) keep working.
/// Idempotent: closing again returns SHMSOCK_OK. The handle stays valid until
/// shmsock_listener_free(). Never blocks. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_listener_close(listener: *mut shmsock_listener) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live listener or NULL (caller's contract).
        unsafe { handle::arg(listener) }?.close();
        Ok(())
    })
}

/// Frees a listener, closing it first if needed (see shmsock_listener_close()):
/// removes the endpoint's socket, so no new client can connect; accepted
/// streams stay connected. NULL is a no-op. The listener must not be in use on
/// another thread (to stop an accept blocked there, call
/// shmsock_listener_close() and let that accept return first); freeing twice is
/// undefined behaviour, as with free(3) (closing twice is fine).
#[no_mangle]
pub unsafe extern "C" fn shmsock_listener_free(listener: *mut shmsock_listener) {
    // SAFETY: a listener from this library or NULL, not freed before.
    boundary!(|| unsafe { handle::free(listener) })
}
