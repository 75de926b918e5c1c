//! The event-driven client and its C callbacks.

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use shmsock::{Client, ClientHandler, Error};

use crate::boundary::boundary;
use crate::handle::{self, handle};
use crate::options::{options_arg, shmsock_options};
use crate::result::{c_string_lossy, result_of_kind, shmsock_result};
use crate::server::UserData;
use crate::stream::shmsock_stats;
use crate::util::{self, Out};

/// The callbacks of a shmsock_client. Each may be NULL (the event is then
/// ignored). They run on the client's reader thread (a thread of the library,
/// one per client), one at a time, and receive the `user_data` given to
/// shmsock_client_connect() as their first argument. They may call any
/// shmsock function, including shmsock_client_write() and
/// shmsock_client_close(). They must not longjmp out, nor let a C++ exception
/// escape (that aborts the process).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct shmsock_client_callbacks {
    /// A message arrived: `len` bytes at `data` (never NULL; `len` may be 0),
    /// valid until the callback returns. Copy what you keep.
    pub on_data: Option<unsafe extern "C-unwind" fn(user_data: *mut c_void, data: *const u8, len: usize)>,
    /// The connection failed (on_close follows). `message` is a NUL-terminated
    /// explanation valid until the callback returns.
    pub on_error:
        Option<unsafe extern "C-unwind" fn(user_data: *mut c_void, result: shmsock_result, message: *const c_char)>,
    /// The connection ended: `result` is SHMSOCK_OK and `message` NULL after a
    /// clean close by either side; else the failure and its explanation. Runs
    /// exactly once, and is the last callback.
    pub on_close:
        Option<unsafe extern "C-unwind" fn(user_data: *mut c_void, result: shmsock_result, message: *const c_char)>,
}

/// Whether on_close ran, for shmsock_client_close() to wait on.
#[derive(Default)]
struct Ended {
    done: Mutex<bool>,
    changed: Condvar,
}

thread_local! {
    /// The client whose callback runs on this thread (NULL: none).
    static IN_CALLBACK: Cell<*const Ended> = const { Cell::new(ptr::null()) };
}

struct Handler {
    callbacks: shmsock_client_callbacks,
    user_data: UserData,
    ended: Arc<Ended>,
}

impl Handler {
    /// Runs a callback with this client marked as "in a callback" on this thread.
    fn enter(&self, f: impl FnOnce()) {
        let previous = IN_CALLBACK.with(|c| c.replace(Arc::as_ptr(&self.ended)));
        /// Restores the mark even if `f` unwinds.
        struct Restore(*const Ended);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0;
                IN_CALLBACK.with(|c| c.set(previous));
            }
        }
        let _restore = Restore(previous);
        f();
    }
}

impl ClientHandler for Handler {
    fn on_data(&self, data: &[u8]) {
        if let Some(f) = self.callbacks.on_data {
            // SAFETY: calling the caller's callback with its user_data and a
            // buffer valid for the call, as documented.
            self.enter(|| unsafe { f(self.user_data.0, data.as_ptr(), data.len()) });
        }
    }

    fn on_error(&self, error: &Error) {
        if let Some(f) = self.callbacks.on_error {
            let message = c_string_lossy(error.message());
            // SAFETY: as in on_data; the message outlives the call.
            self.enter(|| unsafe { f(self.user_data.0, result_of_kind(error.kind()), message.as_ptr()) });
        }
    }

    fn on_close(&self, reason: Option<&Error>) {
        if let Some(f) = self.callbacks.on_close {
            let message = reason.map(|e| c_string_lossy(e.message()));
            let result = reason.map_or(shmsock_result::SHMSOCK_OK, |e| result_of_kind(e.kind()));
            let message_ptr = message.as_ref().map_or(ptr::null(), |m| m.as_ptr());
            // SAFETY: as in on_data; the message outlives the call.
            self.enter(|| unsafe { f(self.user_data.0, result, message_ptr) });
        }
        *self.ended.done.lock() = true;
        self.ended.changed.notify_all();
    }
}

/// An event-driven client of one endpoint, from shmsock_client_connect().
///
/// Thread safety: every function except shmsock_client_free() may be called
/// from several threads at once, and from inside the client's callbacks.
pub struct shmsock_client {
    client: Client,
    ended: Arc<Ended>,
}

handle!(shmsock_client, "client");

/// Connects to endpoint `name` (as shmsock_stream_connect(); `options` must pin
/// the server's key and is copied) and starts the client's reader thread,
/// which delivers messages to on_data.
///
/// `callbacks` is copied. Every callback runs on the reader thread (see
/// shmsock_client_callbacks) with `user_data` as its first argument; the
/// library never touches `user_data` otherwise. It must stay valid until
/// shmsock_client_close() or shmsock_client_free() returned.
///
/// Blocks up to the handshake timeout. Thread-safe. On success `*out` receives
/// a new client, owned by the caller, to be freed with shmsock_client_free().
///
/// Errors: as shmsock_stream_connect().
#[no_mangle]
pub unsafe extern "C" fn shmsock_client_connect(
    name: *const c_char,
    options: *const shmsock_options,
    callbacks: *const shmsock_client_callbacks,
    user_data: *mut c_void,
    out: *mut *mut shmsock_client,
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
        let ended = Arc::new(Ended::default());
        let handler = Handler { callbacks, user_data: UserData(user_data), ended: Arc::clone(&ended) };
        let client = Client::connect(name, &options, handler)?;
        out.write(handle::into_raw(shmsock_client { client, ended }));
        Ok(())
    })
}

/// Sends a message of `len` bytes (0 is allowed; `data` may then be NULL),
/// waiting while the ring is full up to the send timeout of the options
/// (forever by default).
///
/// Errors: as shmsock_stream_send().
#[no_mangle]
pub unsafe extern "C" fn shmsock_client_write(
    client: *mut shmsock_client,
    data: *const u8,
    len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live client or NULL; `data` holds `len` bytes.
        let (client, data) = unsafe { (handle::arg(client)?, util::bytes(data, len, "data")?) };
        client.client.write(data)?;
        Ok(())
    })
}

/// As shmsock_client_write(), waiting up to `timeout_ms` milliseconds
/// (SHMSOCK_FOREVER: no limit).
#[no_mangle]
pub unsafe extern "C" fn shmsock_client_write_timeout(
    client: *mut shmsock_client,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live client or NULL; `data` holds `len` bytes.
        let (client, data) = unsafe { (handle::arg(client)?, util::bytes(data, len, "data")?) };
        client.client.stream().send_timeout(data, util::timeout(timeout_ms))?;
        Ok(())
    })
}

/// Sends only if the whole message fits in the ring now; else
/// SHMSOCK_WOULD_BLOCK and nothing is sent. Never blocks.
///
/// Errors: as shmsock_stream_try_send().
#[no_mangle]
pub unsafe extern "C" fn shmsock_client_try_write(
    client: *mut shmsock_client,
    data: *const u8,
    len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live client or NULL; `data` holds `len` bytes.
        let (client, data) = unsafe { (handle::arg(client)?, util::bytes(data, len, "data")?) };
        client.client.try_write(data)?;
        Ok(())
    })
}

/// Closes the connection (the server sees a clean close) and waits until
/// on_close ran, so no callback runs after this returns. From inside one of
/// this client's callbacks it closes without waiting (on_close then runs right
/// after the current callback). Idempotent: closing again returns SHMSOCK_OK;
/// later writes fail with SHMSOCK_CLOSED.
///
/// Blocks until the running callback (if any) returned.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_client_close(client: *mut shmsock_client) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live client or NULL (caller's contract).
        let client = unsafe { handle::arg(client) }?;
        client.client.stream().close()?;
        let ended = &client.ended;
        if IN_CALLBACK.with(|c| c.get()) == Arc::as_ptr(ended) {
            return Ok(());
        }
        let mut done = ended.done.lock();
        while !*done {
            ended.changed.wait(&mut done);
        }
        Ok(())
    })
}

/// Frees a client, closing it first if needed (see shmsock_client_close()).
/// NULL is a no-op. The client must not be in use on another thread; freeing
/// twice is undefined behaviour, as with free(3).
#[no_mangle]
pub unsafe extern "C" fn shmsock_client_free(client: *mut shmsock_client) {
    // SAFETY: a client from this library or NULL, not freed before.
    boundary!(|| unsafe { handle::free(client) })
}

/// Copies the server's public key (the pinned one, proven by the handshake)
/// into `out` of `out_len` >= SHMSOCK_KEY_LEN bytes. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_client_server_public_key(
    client: *const shmsock_client,
    out: *mut u8,
    out_len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live client or NULL (caller's contract).
        let key = unsafe { handle::arg(client) }?.client.server_public_key();
        // SAFETY: `out` holds `out_len` writable bytes (caller's contract).
        unsafe { util::write_key(key.as_bytes(), out, out_len, "out") }
    })
}

/// Writes the client's message and byte counts to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_client_stats(
    client: *const shmsock_client,
    out: *mut shmsock_stats,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live client or NULL; a writable struct or NULL.
        let (client, out) = unsafe { (handle::arg(client)?, Out::new(out, "out")?) };
        out.write(client.client.stats().into());
        Ok(())
    })
}
