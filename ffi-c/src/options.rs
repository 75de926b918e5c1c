//! Options of listeners, streams, servers and clients.

use std::time::Duration;

use parking_lot::Mutex;
use shmsock::{AllowedClients, Backend, Options};

use crate::boundary::boundary;
use crate::handle::{self, handle};
use crate::keys::{public_key_arg, shmsock_keypair};
use crate::result::{shmsock_result, FfiError, FfiResult};
use crate::util::{self, Out};

/// Which shared-memory backend a server uses (shmsock_options_set_backend()).
/// The values are the protocol's wire identifiers.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmsock_backend {
    /// An anonymous sealed memfd passed over the control socket (Linux default).
    SHMSOCK_BACKEND_MEMFD = 1,
    /// A POSIX shared-memory object with a random name, unlinked once mapped.
    SHMSOCK_BACKEND_NAMED = 2,
}

impl From<Backend> for shmsock_backend {
    fn from(b: Backend) -> shmsock_backend {
        match b {
            Backend::Memfd => shmsock_backend::SHMSOCK_BACKEND_MEMFD,
            Backend::Named => shmsock_backend::SHMSOCK_BACKEND_NAMED,
        }
    }
}

/// Everything configurable about a connection, with the core's defaults: no
/// keypair (a client then uses one generated once per process; a server must have
/// one), no pinned server key, any client key and uid allowed, ring size chosen
/// by the server (2 MiB), 16 MiB maximum message size, no send or receive
/// timeout, 5 s handshake timeout, 50 µs spin, memfd backend, cipher by hardware.
///
/// An options object is read when it is passed to a function that binds or
/// connects, and copied there: it may be changed or freed afterwards without
/// effect on what was made. The setters may be called from several threads at
/// once (each takes an internal lock). A setter that fails leaves the options
/// unchanged.
pub struct shmsock_options {
    pub(crate) inner: Mutex<Options>,
}

handle!(shmsock_options, "options");

pub(crate) unsafe fn options_arg(options: *const shmsock_options) -> FfiResult<Options> {
    // SAFETY: a live options object or NULL (caller's contract).
    let options = unsafe { handle::arg(options) }?;
    Ok(options.inner.lock().clone())
}

/// Applies `change` to a copy, validates it, and stores it only if valid.
unsafe fn update(options: *mut shmsock_options, change: impl FnOnce(&mut Options) -> FfiResult<()>) -> FfiResult<()> {
    // SAFETY: a live options object or NULL (caller's contract).
    let options = unsafe { handle::arg(options.cast_const()) }?;
    let mut guarded = options.inner.lock();
    let mut next = guarded.clone();
    change(&mut next)?;
    next.validate()?;
    *guarded = next;
    Ok(())
}

/// Makes an options object with the defaults.
///
/// On success `*out` receives it, owned by the caller, to be freed with
/// shmsock_options_free(). Never blocks. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_new(out: *mut *mut shmsock_options) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a writable pointer or NULL (caller's contract).
        let out = unsafe { Out::new(out, "out") }?;
        out.write(handle::into_raw(shmsock_options { inner: Mutex::new(Options::new()) }));
        Ok(())
    })
}

/// Frees an options object. NULL is a no-op. Freeing twice is undefined
/// behaviour, as with free(3).
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_free(options: *mut shmsock_options) {
    // SAFETY: an options object from this library or NULL, not freed before.
    boundary!(|| unsafe { handle::free(options) })
}

/// Sets this side's static keypair (copied; the caller keeps ownership of
/// `keypair`). A server must have one: clients pin its public key.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_set_keypair(
    options: *mut shmsock_options,
    keypair: *const shmsock_keypair,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live keypair or NULL (caller's contract).
        let keypair = unsafe { handle::arg(keypair) }?.inner.clone();
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                o.keypair = Some(keypair);
                Ok(())
            })
        }
    })
}

/// Pins the server's public key (clients; required to connect): `key` holds
/// `key_len` = SHMSOCK_KEY_LEN raw bytes. shmsock never trusts a key the
/// server sends.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_KEY (`key_len` is not 32).
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_set_server_key(
    options: *mut shmsock_options,
    key: *const u8,
    key_len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: `key` holds `key_len` bytes (caller's contract).
        let key = unsafe { public_key_arg(key, key_len, "key") }?;
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                o.server_key = Some(key);
                Ok(())
            })
        }
    })
}

/// Adds a client public key (`key`, `key_len` = 32 bytes) to the server's
/// allow-list. Once a key was added, only listed clients may connect; others
/// get SHMSOCK_HANDSHAKE_REJECTED.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_KEY.
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_allow_client(
    options: *mut shmsock_options,
    key: *const u8,
    key_len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: `key` holds `key_len` bytes (caller's contract).
        let key = unsafe { public_key_arg(key, key_len, "key") }?;
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                match &mut o.allowed_clients {
                    AllowedClients::Only(keys) => {
                        if !keys.contains(&key) {
                            keys.push(key)
                        }
                    }
                    any => *any = AllowedClients::Only(vec![key]),
                }
                Ok(())
            })
        }
    })
}

/// Empties the client allow-list: any client key may connect again (the default).
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_allow_any_client(options: *mut shmsock_options) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                o.allowed_clients = AllowedClients::Any;
                Ok(())
            })
        }
    })
}

/// Adds a user id to the server's list of allowed peer uids. Once one was
/// added, clients of other uids are refused (the server reports
/// SHMSOCK_PERMISSION_DENIED; the client sees SHMSOCK_HANDSHAKE_REJECTED).
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_allow_uid(options: *mut shmsock_options, uid: u32) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                let uids = o.allowed_uids.get_or_insert_with(Vec::new);
                if !uids.contains(&uid) {
                    uids.push(uid);
                }
                Ok(())
            })
        }
    })
}

/// Empties the uid list: any uid that can reach the socket may connect (the
/// default; the runtime directory already keeps other users out).
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_allow_any_uid(options: *mut shmsock_options) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                o.allowed_uids = None;
                Ok(())
            })
        }
    })
}

/// Sets the capacity of each ring in bytes: a power of two from 4 KiB to 1 GiB,
/// or 0 for the default (a server uses 2 MiB; a client lets the server decide).
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_set_ring_size(options: *mut shmsock_options, bytes: u32) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                o.ring_size = if bytes == 0 { None } else { Some(bytes) };
                Ok(())
            })
        }
    })
}

/// Sets the largest message this side accepts to receive, in bytes (default
/// 16 MiB). A peer sending more gets SHMSOCK_MESSAGE_TOO_LARGE.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_set_max_message_size(
    options: *mut shmsock_options,
    bytes: u32,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                o.max_message_size = bytes;
                Ok(())
            })
        }
    })
}

/// Sets the limit on shmsock_stream_send() (and Client writes, Connection
/// sends) in milliseconds; SHMSOCK_FOREVER (the default) waits as long as it
/// takes, 0 fails at once when the ring is full.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_set_send_timeout(
    options: *mut shmsock_options,
    timeout_ms: u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                o.send_timeout = util::timeout(timeout_ms);
                Ok(())
            })
        }
    })
}

/// Sets the limit on shmsock_stream_recv() and shmsock_stream_recv_into() in
/// milliseconds; SHMSOCK_FOREVER (the default) waits as long as it takes.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_set_recv_timeout(
    options: *mut shmsock_options,
    timeout_ms: u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                o.recv_timeout = util::timeout(timeout_ms);
                Ok(())
            })
        }
    })
}

/// Sets the limit on connecting, and on each handshake a server runs, in
/// milliseconds (default 5000). Must be positive; SHMSOCK_FOREVER means no
/// practical limit.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_ARGUMENT (0).
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_set_handshake_timeout(
    options: *mut shmsock_options,
    timeout_ms: u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                o.handshake_timeout = Duration::from_millis(timeout_ms);
                Ok(())
            })
        }
    })
}

/// Makes connecting (shmsock_stream_connect, shmsock_client_connect,
/// shmsock_subscriber_connect) wait up to `wait_ms` milliseconds for the
/// server to appear, like the command line's `--wait` (default 0: fail at once
/// with SHMSOCK_NOT_FOUND). While no server listens on the name the connect
/// tries again as soon as one appears; a busy server is waited for as long.
/// When the wait ends, the connect fails with the last error (SHMSOCK_NOT_FOUND,
/// or SHMSOCK_TIMEOUT for a server that stayed busy); other errors (a wrong key,
/// a rejection) are returned at once. At most a day (86400000);
/// SHMSOCK_FOREVER means a day.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_ARGUMENT (over a day).
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_set_connect_wait(
    options: *mut shmsock_options,
    wait_ms: u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                o.connect_wait = util::timeout(wait_ms).unwrap_or(shmsock::options::MAX_CONNECT_WAIT);
                Ok(())
            })
        }
    })
}

/// Sets how long a blocking call spins before it sleeps, in microseconds
/// (default 50; 0 sleeps at once). Spinning trades CPU for latency.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_set_spin(options: *mut shmsock_options, spin_us: u64) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                o.spin = Duration::from_micros(spin_us);
                Ok(())
            })
        }
    })
}

/// Sets how a server creates each connection's segment: a shmsock_backend
/// value. A client accepts either.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_ARGUMENT (not a shmsock_backend).
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_set_backend(options: *mut shmsock_options, backend: u32) -> shmsock_result {
    boundary!(|| {
        // The C values are the core's backend ids (the test `backend_values_are_the_core_ids`).
        let backend = u8::try_from(backend).ok().and_then(Backend::from_id).ok_or_else(|| {
            FfiError::invalid(format!(
                "backend {backend} is not a shmsock_backend (SHMSOCK_BACKEND_MEMFD = 1, SHMSOCK_BACKEND_NAMED = 2)"
            ))
        })?;
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                o.backend = backend;
                Ok(())
            })
        }
    })
}

/// Requires ChaCha20-Poly1305 even where AEGIS-128L is available (`require`
/// true), or lets the hardware decide (false, the default).
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_set_require_chacha(
    options: *mut shmsock_options,
    require: bool,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                o.require_chacha = require;
                Ok(())
            })
        }
    })
}

/// Sets, for a listener or server, the most bytes of messages longer than one
/// 64 KiB frame that all its connections gather at once (default 64 MiB). A
/// connection without room leaves its message in its ring (its peer's sends
/// wait, as for a slow reader) until room comes back: a blocking receive
/// waits for it, a non-blocking one returns SHMSOCK_WOULD_BLOCK and the
/// stream's pollable fd becomes readable when room comes back. Nothing is
/// lost; messages of one frame never wait; one message always passes when
/// no other is being gathered. While some connection waits for room, one
/// whose message stopped moving (no frame for 3 s, or not complete 3 s plus
/// 1 s per MiB after it took room) is ended: its receive fails with
/// SHMSOCK_RESOURCE_EXHAUSTED, and its room goes to those waiting. Clients
/// ignore it.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_options_set_max_reassembly_bytes(
    options: *mut shmsock_options,
    bytes: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live options object or NULL (caller's contract).
        unsafe {
            update(options, |o| {
                o.max_reassembly_bytes = bytes;
                Ok(())
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_setter_leaves_options_unchanged() {
        let mut p = std::ptr::null_mut();
        unsafe {
            assert_eq!(shmsock_options_new(&mut p), shmsock_result::SHMSOCK_OK);
            assert_eq!(shmsock_options_set_ring_size(p, 1 << 16), shmsock_result::SHMSOCK_OK);
            assert_eq!(shmsock_options_set_ring_size(p, 12345), shmsock_result::SHMSOCK_INVALID_ARGUMENT);
            assert_eq!((*p).inner.lock().ring_size, Some(1 << 16));
            assert_eq!(shmsock_options_set_handshake_timeout(p, 0), shmsock_result::SHMSOCK_INVALID_ARGUMENT);
            assert_eq!(shmsock_options_set_connect_wait(p, 86_400_001), shmsock_result::SHMSOCK_INVALID_ARGUMENT);
            assert_eq!(shmsock_options_set_connect_wait(p, util::SHMSOCK_FOREVER), shmsock_result::SHMSOCK_OK);
            assert_eq!((*p).inner.lock().connect_wait, shmsock::options::MAX_CONNECT_WAIT);
            assert_eq!(shmsock_options_set_backend(p, 7), shmsock_result::SHMSOCK_INVALID_ARGUMENT);
            assert_eq!(shmsock_options_set_backend(p, 256 + 2), shmsock_result::SHMSOCK_INVALID_ARGUMENT);
            assert_eq!(shmsock_options_set_backend(p, 2), shmsock_result::SHMSOCK_OK);
            assert_eq!((*p).inner.lock().backend, Backend::Named);
            shmsock_options_free(p);
        }
    }

    #[test]
    fn backend_values_are_the_core_ids() {
        for backend in [Backend::Memfd, Backend::Named] {
            assert_eq!(shmsock_backend::from(backend) as u32, backend as u32, "{backend:?}");
            assert_eq!(Backend::from_id(backend as u8), Some(backend));
        }
    }
}
