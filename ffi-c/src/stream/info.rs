//! What a stream knows about itself: keys, peer credentials, counters, the
//! pollable fd, cipher, backend, role, ring and message sizes, endpoint name.

use std::ffi::{c_char, c_int, CString};
use std::os::fd::AsRawFd;
use std::sync::OnceLock;

use shmsock::{CipherSuite, Role};

use super::{shmsock_cipher, shmsock_credentials, shmsock_role, shmsock_stats, shmsock_stream};
use crate::boundary::boundary;
use crate::handle;
use crate::options::shmsock_backend;
use crate::result::{c_string_lossy, shmsock_result};
use crate::util::{self, Out};

/// Copies the peer's static public key (authenticated by the handshake: for a
/// client, the pinned server key) into `out` of `out_len` >= SHMSOCK_KEY_LEN
/// bytes. Works after close too. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_peer_public_key(
    stream: *const shmsock_stream,
    out: *mut u8,
    out_len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL (caller's contract).
        let key = unsafe { handle::arg(stream) }?.peer_public_key();
        // SAFETY: `out` holds `out_len` writable bytes (caller's contract).
        unsafe { util::write_key(key.as_bytes(), out, out_len, "out") }
    })
}

/// Copies this side's static public key into `out` of `out_len` >=
/// SHMSOCK_KEY_LEN bytes. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_local_public_key(
    stream: *const shmsock_stream,
    out: *mut u8,
    out_len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL (caller's contract).
        let key = unsafe { handle::arg(stream) }?.local_public_key();
        // SAFETY: `out` holds `out_len` writable bytes (caller's contract).
        unsafe { util::write_key(key.as_bytes(), out, out_len, "out") }
    })
}

/// Writes the peer process's pid, uid and gid (from the kernel, SO_PEERCRED)
/// to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_peer_credentials(
    stream: *const shmsock_stream,
    out: *mut shmsock_credentials,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable struct or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out, "out")?) };
        out.write(stream.peer_credentials().into());
        Ok(())
    })
}

/// Writes the stream's message and byte counts to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_stats(
    stream: *const shmsock_stream,
    out: *mut shmsock_stats,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable struct or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out, "out")?) };
        out.write(stream.stats().into());
        Ok(())
    })
}

/// Writes the stream's pollable file descriptor to `*out_fd`: it becomes
/// readable when, after a `try_` receive returned SHMSOCK_WOULD_BLOCK, a
/// message, a close or the peer's death is pending. Add it to poll/epoll/select
/// for reading, then call shmsock_stream_try_recv_into() until
/// SHMSOCK_WOULD_BLOCK. The fd belongs to the stream: do not read, write or
/// close it; it is valid until shmsock_stream_free(). Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_pollable_fd(
    stream: *const shmsock_stream,
    out_fd: *mut c_int,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable int or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out_fd, "out_fd")?) };
        out.write(stream.pollable_fd().as_raw_fd());
        Ok(())
    })
}

/// Writes the transport cipher in use (a shmsock_cipher) to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_cipher(
    stream: *const shmsock_stream,
    out: *mut shmsock_cipher,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable value or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out, "out")?) };
        out.write(stream.cipher().into());
        Ok(())
    })
}

/// The name of a shmsock_cipher value ("chacha20-poly1305", "aegis-128l"), or
/// "unknown": a static string, never NULL. Never blocks. Thread-safe.
#[no_mangle]
pub extern "C" fn shmsock_cipher_name(cipher: u32) -> *const c_char {
    // The core's names as C strings, made once: (wire id, name).
    static NAMES: OnceLock<Vec<(u32, CString)>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (1..=u8::MAX).filter_map(CipherSuite::from_id).map(|c| (u32::from(c.id()), c_string_lossy(c.name()))).collect()
    });
    names.iter().find(|(id, _)| *id == cipher).map_or(c"unknown", |(_, name)| name.as_c_str()).as_ptr()
}

/// Writes the segment backend in use (a shmsock_backend) to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_backend(
    stream: *const shmsock_stream,
    out: *mut shmsock_backend,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable value or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out, "out")?) };
        out.write(stream.backend().into());
        Ok(())
    })
}

/// Writes which end of the connection this is (a shmsock_role) to `*out`.
/// Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_role(stream: *const shmsock_stream, out: *mut shmsock_role) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable value or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out, "out")?) };
        out.write(match stream.role() {
            Role::Client => shmsock_role::SHMSOCK_ROLE_CLIENT,
            Role::Server => shmsock_role::SHMSOCK_ROLE_SERVER,
        });
        Ok(())
    })
}

/// Writes the capacity of each ring, in bytes, to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_ring_size(stream: *const shmsock_stream, out: *mut u32) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable value or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out, "out")?) };
        out.write(stream.ring_size());
        Ok(())
    })
}

/// Writes the largest message the peer accepts, in bytes, to `*out`: sending
/// more fails with SHMSOCK_MESSAGE_TOO_LARGE. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_peer_max_message_size(
    stream: *const shmsock_stream,
    out: *mut u32,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable value or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out, "out")?) };
        out.write(stream.peer_max_message_size());
        Ok(())
    })
}

/// Writes the endpoint name and a NUL into `buf` of `len` bytes (101 is
/// always enough). `out_len` (may be NULL) receives the name's length without
/// the NUL, also on SHMSOCK_BUFFER_TOO_SMALL (when nothing is written). Never
/// blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_endpoint(
    stream: *const shmsock_stream,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL (caller's contract).
        let stream = unsafe { handle::arg(stream) }?;
        // SAFETY: `buf` holds `len` bytes; `out_len` is NULL or writable.
        unsafe { util::write_text(stream.endpoint(), buf, len, out_len, "buf") }
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    #[test]
    fn cipher_values_and_names_are_the_core_ones() {
        for cipher in [CipherSuite::ChaCha20Poly1305, CipherSuite::Aegis128L] {
            let value = shmsock_cipher::from(cipher) as u32;
            assert_eq!(value, u32::from(cipher.id()), "{cipher:?}");
            // SAFETY: a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(shmsock_cipher_name(value)) };
            assert_eq!(name.to_str().unwrap(), cipher.name());
        }
        for unknown in [0, 3, 256 + 1, u32::MAX] {
            // SAFETY: as above.
            assert_eq!(unsafe { CStr::from_ptr(shmsock_cipher_name(unknown)) }, c"unknown");
        }
    }
}
