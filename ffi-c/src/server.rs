//! The event-driven server, its C callbacks, and its connections.

use std::ffi::{c_char, c_void, CString};
use std::ptr;

use parking_lot::Mutex;
use shmsock::{Connection, Error, PublicKey, Server, ServerHandler};

use crate::boundary::boundary;
use crate::handle::{self, handle};
use crate::options::{options_arg, shmsock_options};
use crate::result::{c_string_lossy, result_of_kind, shmsock_result, FfiError};
use crate::stream::{shmsock_cipher, shmsock_credentials, shmsock_stats};
use crate::util::{self, Out};

/// One client of a shmsock_server.
///
/// Callbacks receive a borrowed connection, valid only until the callback
/// returns; shmsock_connection_free() on it does nothing. To use a connection
/// later or from another thread (to reply from a worker, say), keep a copy made
/// with shmsock_connection_clone() and free that copy with
/// shmsock_connection_free(). Copies stay valid after the connection ended:
/// calls on them then fail with SHMSOCK_CLOSED, SHMSOCK_PEER_CLOSED or
/// SHMSOCK_PEER_GONE.
///
/// Thread safety: every function except shmsock_connection_free() may be called
/// from several threads at once, and from inside the server's callbacks.
pub struct shmsock_connection {
    inner: Connection,
    /// False for the borrowed connections that callbacks receive.
    owned: bool,
}

/// The callbacks of a shmsock_server. Each may be NULL (the event is then
/// ignored). They run on the server's dispatch thread, one at a time, never
/// concurrently with each other (with several dispatch threads, see
/// shmsock_options_set_server_limits(), callbacks of different connections may
/// run at once), and receive the `user_data` given to shmsock_server_start()
/// as their first argument.
///
/// A callback should return quickly: while it runs, no other connection of its
/// dispatch thread is served. Reply with shmsock_connection_send(), which
/// never blocks. It may call any shmsock function, including sending on
/// any connection and shmsock_server_close(). It must not longjmp out, nor let
/// a C++ exception escape (that aborts the process).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct shmsock_server_callbacks {
    /// A client completed the handshake. `connection` is borrowed for the call.
    pub on_connect: Option<unsafe extern "C-unwind" fn(user_data: *mut c_void, connection: *mut shmsock_connection)>,
    /// A message arrived from `connection`: `len` bytes at `data` (never NULL;
    /// `len` may be 0), valid until the callback returns. Copy what you keep.
    pub on_data: Option<
        unsafe extern "C-unwind" fn(
            user_data: *mut c_void,
            connection: *mut shmsock_connection,
            data: *const u8,
            len: usize,
        ),
    >,
    /// Something failed: a connection (`connection` is then set, and on_close
    /// follows), or a client's handshake (`connection` is NULL). `message` is a
    /// NUL-terminated explanation valid until the callback returns.
    pub on_error: Option<
        unsafe extern "C-unwind" fn(
            user_data: *mut c_void,
            connection: *mut shmsock_connection,
            result: shmsock_result,
            message: *const c_char,
        ),
    >,
    /// A connection ended. `result` is SHMSOCK_OK and `message` NULL after a
    /// clean close by either side; else the failure and its explanation. The
    /// last callback of that connection.
    pub on_close: Option<
        unsafe extern "C-unwind" fn(
            user_data: *mut c_void,
            connection: *mut shmsock_connection,
            result: shmsock_result,
            message: *const c_char,
        ),
    >,
}

/// The caller's `void *user_data`, handed to callbacks on another thread.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub(crate) *mut c_void);

// SAFETY: shmsock never dereferences user_data; it only passes it back to the
// caller's callbacks, on the thread the header documents. Making that sound is
// the caller's part of the contract (documented at shmsock_server_start and
// shmsock_client_connect).
unsafe impl Send for UserData {}
// SAFETY: as above.
unsafe impl Sync for UserData {}

struct Handler {
    callbacks: shmsock_server_callbacks,
    user_data: UserData,
}

/// A borrowed handle for one callback.
fn borrowed(connection: &Connection) -> shmsock_connection {
    shmsock_connection { inner: connection.clone(), owned: false }
}

/// The (result, message) pair passed to C for an error: the message lives
/// until the returned CString is dropped.
fn error_parts(error: &Error) -> (shmsock_result, CString) {
    (result_of_kind(error.kind()), c_string_lossy(error.message()))
}

impl ServerHandler for Handler {
    fn on_connect(&self, connection: &Connection) {
        if let Some(f) = self.callbacks.on_connect {
            let mut c = borrowed(connection);
            // SAFETY: calling the caller's callback with its user_data and a
            // connection valid for the call, as documented.
            unsafe { f(self.user_data.0, &mut c) }
        }
    }

    fn on_data(&self, connection: &Connection, data: &[u8]) {
        if let Some(f) = self.callbacks.on_data {
            let mut c = borrowed(connection);
            // SAFETY: as in on_connect; `data` is valid for the call.
            unsafe { f(self.user_data.0, &mut c, data.as_ptr(), data.len()) }
        }
    }

    fn on_error(&self, connection: Option<&Connection>, error: &Error) {
        if let Some(f) = self.callbacks.on_error {
            let mut c = connection.map(borrowed);
            let c_ptr = c.as_mut().map_or(ptr::null_mut(), |c| c as *mut shmsock_connection);
            let (result, message) = error_parts(error);
            // SAFETY: as in on_connect; the message outlives the call.
            unsafe { f(self.user_data.0, c_ptr, result, message.as_ptr()) }
        }
    }

    fn on_close(&self, connection: &Connection, reason: Option<&Error>) {
        if let Some(f) = self.callbacks.on_close {
            let mut c = borrowed(connection);
            let parts = reason.map(error_parts);
            let (result, message) = match &parts {
                Some((r, m)) => (*r, m.as_ptr()),
                None => (shmsock_result::SHMSOCK_OK, ptr::null()),
            };
            // SAFETY: as in on_connect; the message outlives the call.
            unsafe { f(self.user_data.0, &mut c, result, message) }
        }
    }
}

/// An event-driven server on one endpoint, from shmsock_server_start().
///
/// Thread safety: every function except shmsock_server_free() may be called
/// from several threads at once, and from inside the server's callbacks.
pub struct shmsock_server {
    /// None once closed. Taken out under the lock and closed outside it, so a
    /// callback may call into the server while another thread closes it.
    server: Mutex<Option<Server>>,
    public_key: PublicKey,
}

handle!(shmsock_server, "server");

/// Binds endpoint `name` (as shmsock_listener_bind(); `options` must hold the
/// server's keypair and is copied) and starts serving clients on a dispatch
/// thread of the library.
///
/// `callbacks` is copied. Every callback runs on that dispatch thread (see
/// shmsock_server_callbacks) with `user_data` as its first argument; the
/// library never touches `user_data` otherwise. It must stay valid until
/// shmsock_server_close() or shmsock_server_free() returned. Handshakes run on
/// short-lived threads of the library, so a slow client cannot stall others.
///
/// Never blocks for long. Thread-safe. On success `*out` receives a new server,
/// owned by the caller, to be freed with shmsock_server_free().
///
/// Errors: as shmsock_listener_bind(), and SHMSOCK_IO when no thread can be
/// started.
#[no_mangle]
pub unsafe extern "C" fn shmsock_server_start(
    name: *const c_char,
    options: *const shmsock_options,
    callbacks: *const shmsock_server_callbacks,
    user_data: *mut c_void,
    out: *mut *mut shmsock_server,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: NUL-terminated string or NULL (caller's contract).
        let name = unsafe { util::string(name, "name") }?;
        // SAFETY: a live options object or NULL (caller's contract).
        let options = unsafe { options_arg(options) }?;
        // SAFETY: a readable callbacks struct or NULL (caller's contract).
        let callbacks = *unsafe { util::struct_ref(callbacks, "callbacks") }?;
        // SAFETY: a writable pointer or NULL (caller's contract).
        let out = unsafe { Out::new(out, "out") }?;
        let handler = Handler { callbacks, user_data: UserData(user_data) };
        let server = Server::start(name, &options, handler)?;
        let public_key = server.public_key();
        out.write(handle::into_raw(shmsock_server { server: Mutex::new(Some(server)), public_key }));
        Ok(())
    })
}

/// Stops serving: closes every connection (each gets on_close), waits for the
/// dispatch thread, so no callback runs after this returns, and gives up the
/// endpoint name (a client handshake that was still running on a library
/// thread may hold the name a moment longer). From inside a callback it does the same without waiting for the
/// dispatch thread (which is the caller); later callbacks do not come.
/// Idempotent: closing again returns SHMSOCK_OK. Later calls on the server but
/// shmsock_server_public_key() fail with SHMSOCK_CLOSED.
///
/// Blocks until the running callback (if any) returned.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_server_close(server: *mut shmsock_server) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live server or NULL (caller's contract).
        let server = unsafe { handle::arg(server) }?;
        let taken = server.server.lock().take();
        if let Some(running) = taken {
            running.close();
        }
        Ok(())
    })
}

/// Frees a server, closing it first if needed (see shmsock_server_close()).
/// NULL is a no-op. The server must not be in use on another thread; freeing
/// twice is undefined behaviour, as with free(3). Connections kept with
/// shmsock_connection_clone() stay valid (closed) until freed.
#[no_mangle]
pub unsafe extern "C" fn shmsock_server_free(server: *mut shmsock_server) {
    // SAFETY: a server from this library or NULL, not freed before.
    boundary!(|| unsafe { handle::free(server) })
}

/// Copies the server's public key, which clients pin, into `out` of `out_len`
/// >= SHMSOCK_KEY_LEN bytes. Works after close too. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_server_public_key(
    server: *const shmsock_server,
    out: *mut u8,
    out_len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live server or NULL (caller's contract).
        let server = unsafe { handle::arg(server) }?;
        // SAFETY: `out` holds `out_len` writable bytes (caller's contract).
        unsafe { util::write_key(server.public_key.as_bytes(), out, out_len, "out") }
    })
}

/// Writes the number of connected clients to `*out`. Never blocks for long.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_CLOSED.
#[no_mangle]
pub unsafe extern "C" fn shmsock_server_connection_count(
    server: *const shmsock_server,
    out: *mut usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live server or NULL; a writable value or NULL.
        let (server, out) = unsafe { (handle::arg(server)?, Out::new(out, "out")?) };
        let guarded = server.server.lock();
        let running =
            guarded.as_ref().ok_or_else(|| FfiError::new(shmsock_result::SHMSOCK_CLOSED, "the server was closed"))?;
        out.write(running.connections().len());
        Ok(())
    })
}

// ---------------------------------------------------------------- connections

handle!(shmsock_connection, "connection" => inner: Connection);

/// Makes an owned copy of a connection (for example of the borrowed one a
/// callback received), usable from any thread until freed with
/// shmsock_connection_free(). Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_connection_clone(
    connection: *const shmsock_connection,
    out: *mut *mut shmsock_connection,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live connection or NULL; a writable pointer or NULL.
        let (connection, out) = unsafe { (handle::arg(connection)?, Out::new(out, "out")?) };
        out.write(handle::into_raw(shmsock_connection { inner: connection.clone(), owned: true }));
        Ok(())
    })
}

/// Frees a copy made by shmsock_connection_clone(); does not close the
/// connection. NULL, and the borrowed connections callbacks receive, are
/// no-ops. Freeing a copy twice is undefined behaviour, as with free(3).
#[no_mangle]
pub unsafe extern "C" fn shmsock_connection_free(connection: *mut shmsock_connection) {
    boundary!(|| {
        // SAFETY: NULL, a borrowed connection (alive during its callback), or
        // an owned copy not freed before (caller's contract).
        let owned = unsafe { connection.as_ref() }.is_some_and(|c| c.owned);
        if owned {
            // SAFETY: owned copies come from handle::into_raw (see `handle`).
            unsafe { handle::free(connection) }
        }
    })
}

/// Writes the connection's id, unique within its server, to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_connection_id(connection: *const shmsock_connection, out: *mut u64) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live connection or NULL; a writable value or NULL.
        let (connection, out) = unsafe { (handle::arg(connection)?, Out::new(out, "out")?) };
        out.write(connection.id());
        Ok(())
    })
}

/// Sends a message of `len` bytes to this client without ever blocking: into
/// the ring if it fits now, else into the connection's outbound queue, which
/// the dispatch thread sends, in order, as the client frees space. When the
/// queue already holds the server's max_queued_bytes
/// (shmsock_options_set_server_limits()), fails with SHMSOCK_WOULD_BLOCK and
/// queues nothing: the caller may drop the message, retry later or close the
/// connection (the same policy in every language). Callable from callbacks and
/// from any thread.
///
/// Errors: as shmsock_stream_try_send(), and SHMSOCK_WOULD_BLOCK for a full queue.
#[no_mangle]
pub unsafe extern "C" fn shmsock_connection_send(
    connection: *mut shmsock_connection,
    data: *const u8,
    len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live connection or NULL; `data` holds `len` bytes.
        let (connection, data) = unsafe { (handle::arg(connection)?, util::bytes(data, len, "data")?) };
        connection.send(data)?;
        Ok(())
    })
}

/// Sends straight into the ring, waiting while it is full up to `timeout_ms`
/// milliseconds (SHMSOCK_FOREVER: no limit), past the outbound queue. Blocks:
/// do not call it from a callback (that would stall the dispatch thread);
/// prefer shmsock_connection_send().
#[no_mangle]
pub unsafe extern "C" fn shmsock_connection_send_timeout(
    connection: *mut shmsock_connection,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live connection or NULL; `data` holds `len` bytes.
        let (connection, data) = unsafe { (handle::arg(connection)?, util::bytes(data, len, "data")?) };
        connection.stream().send_timeout(data, util::timeout(timeout_ms))?;
        Ok(())
    })
}

/// Sends only if the whole message fits in the ring now and nothing is
/// queued; else SHMSOCK_WOULD_BLOCK and nothing is sent or queued. Never blocks.
///
/// Errors: as shmsock_stream_try_send().
#[no_mangle]
pub unsafe extern "C" fn shmsock_connection_try_send(
    connection: *mut shmsock_connection,
    data: *const u8,
    len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live connection or NULL; `data` holds `len` bytes.
        let (connection, data) = unsafe { (handle::arg(connection)?, util::bytes(data, len, "data")?) };
        connection.try_send(data)?;
        Ok(())
    })
}

/// Closes this connection: queued messages and the close are sent off the
/// dispatch thread (waiting up to 2 s for a slow client), and the server's
/// on_close follows on the dispatch thread. Idempotent. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_connection_close(connection: *mut shmsock_connection) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live connection or NULL (caller's contract).
        unsafe { handle::arg(connection) }?.close()?;
        Ok(())
    })
}

/// Copies the client's public key into `out` of `out_len` >= SHMSOCK_KEY_LEN
/// bytes. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_connection_peer_public_key(
    connection: *const shmsock_connection,
    out: *mut u8,
    out_len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live connection or NULL (caller's contract).
        let key = unsafe { handle::arg(connection) }?.peer_public_key();
        // SAFETY: `out` holds `out_len` writable bytes (caller's contract).
        unsafe { util::write_key(key.as_bytes(), out, out_len, "out") }
    })
}

/// Copies this side's static public key (the server's) into `out` of
/// `out_len` >= SHMSOCK_KEY_LEN bytes. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_connection_local_public_key(
    connection: *const shmsock_connection,
    out: *mut u8,
    out_len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live connection or NULL (caller's contract).
        let key = unsafe { handle::arg(connection) }?.stream().local_public_key();
        // SAFETY: `out` holds `out_len` writable bytes (caller's contract).
        unsafe { util::write_key(key.as_bytes(), out, out_len, "out") }
    })
}

/// Writes the client process's pid, uid and gid to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_connection_peer_credentials(
    connection: *const shmsock_connection,
    out: *mut shmsock_credentials,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live connection or NULL; a writable struct or NULL.
        let (connection, out) = unsafe { (handle::arg(connection)?, Out::new(out, "out")?) };
        out.write(connection.peer_credentials().into());
        Ok(())
    })
}

/// Writes the connection's message and byte counts to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_connection_stats(
    connection: *const shmsock_connection,
    out: *mut shmsock_stats,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live connection or NULL; a writable struct or NULL.
        let (connection, out) = unsafe { (handle::arg(connection)?, Out::new(out, "out")?) };
        out.write(connection.stats().into());
        Ok(())
    })
}

/// Writes the connection's transport cipher (a shmsock_cipher; the client's
/// shmsock_stream_cipher() reports the same) to `*out`. Works after the
/// connection ended too. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_connection_cipher(
    connection: *const shmsock_connection,
    out: *mut shmsock_cipher,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live connection or NULL; a writable value or NULL.
        let (connection, out) = unsafe { (handle::arg(connection)?, Out::new(out, "out")?) };
        out.write(connection.stream().cipher().into());
        Ok(())
    })
}

/// Sets a server's limits on `options`: the most connections at once
/// (`max_connections`, default 1024; a listener counts each stream it accepted
/// until that stream is closed) and per peer uid
/// (`max_connections_per_uid`, 0: no limit of its own), the most handshakes
/// past the client's HELLO overall and per uid, each holding a segment until
/// the client's READY (`max_pending`, `max_pending_per_uid`, default 64 each;
/// clients that have not sent their HELLO are bounded by the connection limits,
/// the oldest giving way to a newcomer), the most bytes a connection queues
/// (`max_queued_bytes`, default 1 MiB), and the number of dispatch threads
/// (`dispatch_threads`, default 1). A publisher bound with these options
/// bounds its subscriber handshakes in progress by `max_pending` and
/// `max_pending_per_uid`.
/// Refused clients get a REJECT (reason 7). Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_ARGUMENT (a zero connection
/// or handshake limit (max_queued_bytes 0 queues one message at a time), or
/// dispatch_threads outside 1..=256); the options are then unchanged.
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_set_server_limits(
    options: *mut shmsock_options,
    max_connections: usize,
    max_connections_per_uid: usize,
    max_pending: usize,
    max_pending_per_uid: usize,
    max_queued_bytes: usize,
    dispatch_threads: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live options object or NULL (caller's contract).
        let options = unsafe { handle::arg(options.cast_const()) }?;
        let mut guarded = options.inner.lock();
        let next = guarded
            .clone()
            .max_connections(max_connections)
            .max_connections_per_uid((max_connections_per_uid > 0).then_some(max_connections_per_uid))
            .max_pending_handshakes(max_pending, max_pending_per_uid)
            .max_queued_bytes(max_queued_bytes)
            .dispatch_threads(dispatch_threads);
        next.validate()?;
        *guarded = next;
        Ok(())
    })
}
