//! Keypairs and public keys.

use std::ffi::c_char;

use shmsock::{Keypair, PublicKey};

use crate::boundary::boundary;
use crate::handle::{self, handle};
use crate::result::{shmsock_result, FfiError, FfiResult};
use crate::util::{self, Out};

/// Length in bytes of a raw public or secret key.
pub const SHMSOCK_KEY_LEN: usize = 32;
/// Size of a buffer holding the text form of a public key
/// (`shmsock-pk:` and 43 characters of base64url) with its NUL.
pub const SHMSOCK_PUBLIC_KEY_TEXT_SIZE: usize = 55;
/// Size of a buffer holding a key fingerprint (e.g. `3f2a:9c11:07be:55d0`)
/// with its NUL.
pub const SHMSOCK_FINGERPRINT_SIZE: usize = 20;

/// A static X25519 keypair: the identity of a server or a client.
///
/// Immutable once made: every function taking a `const shmsock_keypair *` may
/// run on several threads at once. The secret is zeroed when the keypair is
/// freed. Functions that store a keypair (shmsock_options_set_keypair) copy it,
/// so it may be freed right after.
pub struct shmsock_keypair {
    pub(crate) inner: Keypair,
}

handle!(shmsock_keypair, "keypair");

pub(crate) unsafe fn public_key_arg(key: *const u8, key_len: usize, what: &str) -> FfiResult<PublicKey> {
    if key.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: forwarded contract: `key` holds `key_len` readable bytes.
    let bytes = unsafe { util::bytes(key, key_len, what) }?;
    Ok(PublicKey::from_slice(bytes)?)
}

/// Makes a fresh random keypair.
///
/// On success `*out` receives a new keypair, owned by the caller, to be freed
/// with shmsock_keypair_free(). Never blocks. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_keypair_generate(out: *mut *mut shmsock_keypair) -> shmsock_result {
    boundary!(|| {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        let out = unsafe { Out::new(out, "out") }?;
        out.write(handle::into_raw(shmsock_keypair { inner: Keypair::generate() }));
        Ok(())
    })
}

/// Makes the keypair of a 32-byte secret (`secret`, `secret_len` bytes).
///
/// On success `*out` receives a new keypair, owned by the caller, to be freed
/// with shmsock_keypair_free(). The caller's copy of the secret is not touched:
/// wipe it when done. Never blocks. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_KEY (`secret_len` is not 32).
#[no_mangle]
pub unsafe extern "C" fn shmsock_keypair_from_secret(
    secret: *const u8,
    secret_len: usize,
    out: *mut *mut shmsock_keypair,
) -> shmsock_result {
    boundary!(|| {
        if secret.is_null() {
            return Err(FfiError::null("secret"));
        }
        // SAFETY: `secret` holds `secret_len` bytes (caller's contract).
        let bytes = unsafe { util::bytes(secret, secret_len, "secret") }?;
        // SAFETY: as in shmsock_keypair_generate.
        let out = unsafe { Out::new(out, "out") }?;
        let arr: [u8; SHMSOCK_KEY_LEN] = bytes.try_into().map_err(|_| {
            FfiError::new(
                shmsock_result::SHMSOCK_INVALID_KEY,
                format!("a secret key is {SHMSOCK_KEY_LEN} bytes long, not {secret_len}"),
            )
        })?;
        out.write(handle::into_raw(shmsock_keypair { inner: Keypair::from_secret_bytes(arr) }));
        Ok(())
    })
}

/// Loads a key file (as written by shmsock_keypair_save() or `shmsock keygen`).
///
/// `path` is a NUL-terminated file name. A key file that its group or others
/// can read or write is refused, as ssh does. On success `*out` receives a new
/// keypair, owned by the caller, to be freed with shmsock_keypair_free().
/// Blocks on file I/O. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_NOT_FOUND (no such file),
/// SHMSOCK_INSECURE_KEY_FILE (mode allows others), SHMSOCK_INVALID_KEY
/// (malformed contents), SHMSOCK_PERMISSION_DENIED, SHMSOCK_IO.
#[no_mangle]
pub unsafe extern "C" fn shmsock_keypair_load(path: *const c_char, out: *mut *mut shmsock_keypair) -> shmsock_result {
    boundary!(|| {
        // SAFETY: NUL-terminated string or NULL (caller's contract).
        let path = unsafe { util::path(path, "path") }?;
        // SAFETY: as in shmsock_keypair_generate.
        let out = unsafe { Out::new(out, "out") }?;
        let keypair = Keypair::load(path)?;
        out.write(handle::into_raw(shmsock_keypair { inner: keypair }));
        Ok(())
    })
}

/// Writes the keypair to a new key file with mode 0600.
///
/// Refuses to overwrite an existing file (SHMSOCK_INVALID_ARGUMENT), so an
/// identity is never lost by accident. Blocks on file I/O (and fsync).
/// Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_ARGUMENT (the file exists),
/// SHMSOCK_PERMISSION_DENIED, SHMSOCK_IO (for example a missing directory).
#[no_mangle]
pub unsafe extern "C" fn shmsock_keypair_save(keypair: *const shmsock_keypair, path: *const c_char) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live keypair or NULL (caller's contract).
        let keypair = unsafe { handle::arg(keypair) }?;
        // SAFETY: NUL-terminated string or NULL (caller's contract).
        let path = unsafe { util::path(path, "path") }?;
        keypair.inner.save(path)?;
        Ok(())
    })
}

/// Copies the 32 raw bytes of the keypair's public key into `out`, which holds
/// `out_len` bytes (at least SHMSOCK_KEY_LEN). Never blocks. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL (`out_len` < 32;
/// nothing is written).
#[no_mangle]
pub unsafe extern "C" fn shmsock_keypair_public_key(
    keypair: *const shmsock_keypair,
    out: *mut u8,
    out_len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live keypair or NULL (caller's contract).
        let keypair = unsafe { handle::arg(keypair) }?;
        // SAFETY: `out` holds `out_len` writable bytes (caller's contract).
        unsafe { util::write_key(keypair.inner.public().as_bytes(), out, out_len, "out") }
    })
}

/// Writes the text form of the keypair's public key (`shmsock-pk:...`, what a
/// client pins) and a NUL into `buf`, which holds `len` bytes
/// (SHMSOCK_PUBLIC_KEY_TEXT_SIZE is enough).
///
/// `out_len` (may be NULL) receives the text's length without the NUL, also on
/// SHMSOCK_BUFFER_TOO_SMALL (when nothing is written). Never blocks. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_keypair_public_key_text(
    keypair: *const shmsock_keypair,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live keypair or NULL (caller's contract).
        let keypair = unsafe { handle::arg(keypair) }?;
        // SAFETY: `buf` holds `len` bytes; `out_len` is NULL or writable.
        unsafe { util::write_text(&keypair.inner.public().to_text(), buf, len, out_len, "buf") }
    })
}

/// Writes the short fingerprint of the keypair's public key (e.g.
/// `3f2a:9c11:07be:55d0`, for display) and a NUL into `buf` of `len` bytes
/// (SHMSOCK_FINGERPRINT_SIZE is enough). `out_len` as in
/// shmsock_keypair_public_key_text(). Never blocks. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_keypair_fingerprint(
    keypair: *const shmsock_keypair,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live keypair or NULL (caller's contract).
        let keypair = unsafe { handle::arg(keypair) }?;
        // SAFETY: `buf` holds `len` bytes; `out_len` is NULL or writable.
        unsafe { util::write_text(&keypair.inner.public().fingerprint(), buf, len, out_len, "buf") }
    })
}

/// Frees a keypair and zeroes its secret. NULL is a no-op.
///
/// The keypair must not be used afterwards, and not be in use on another
/// thread; freeing it twice is undefined behaviour, as with free(3).
#[no_mangle]
pub unsafe extern "C" fn shmsock_keypair_free(keypair: *mut shmsock_keypair) {
    // SAFETY: a keypair from this library or NULL, not freed before (contract).
    boundary!(|| unsafe { handle::free(keypair) })
}

/// Parses the text form of a public key (`shmsock-pk:` and 43 characters of
/// base64url; surrounding white space is ignored) into its 32 raw bytes, written
/// to `out` of `out_len` bytes (at least SHMSOCK_KEY_LEN). Never blocks.
/// Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_UTF8, SHMSOCK_INVALID_KEY
/// (malformed text, or a secret key's text), SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_public_key_from_text(
    text: *const c_char,
    out: *mut u8,
    out_len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: NUL-terminated string or NULL (caller's contract).
        let text = unsafe { util::string(text, "text") }?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        let key = PublicKey::from_text(text)?;
        // SAFETY: `out` holds `out_len` writable bytes (caller's contract).
        unsafe { util::write_key(key.as_bytes(), out, out_len, "out") }
    })
}

/// Writes the text form of a raw public key (`key`, `key_len` = 32 bytes) and
/// a NUL into `buf` of `len` bytes (SHMSOCK_PUBLIC_KEY_TEXT_SIZE is enough).
/// `out_len` as in shmsock_keypair_public_key_text(). Never blocks. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_KEY (`key_len` is not 32),
/// SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_public_key_to_text(
    key: *const u8,
    key_len: usize,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: `key` holds `key_len` bytes (caller's contract).
        let key = unsafe { public_key_arg(key, key_len, "key") }?;
        // SAFETY: `buf` holds `len` bytes; `out_len` is NULL or writable.
        unsafe { util::write_text(&key.to_text(), buf, len, out_len, "buf") }
    })
}

/// Writes the fingerprint of a raw public key (`key`, `key_len` = 32 bytes)
/// and a NUL into `buf` of `len` bytes (SHMSOCK_FINGERPRINT_SIZE is enough).
/// `out_len` as in shmsock_keypair_public_key_text(). Never blocks. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_KEY, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_public_key_fingerprint(
    key: *const u8,
    key_len: usize,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: `key` holds `key_len` bytes (caller's contract).
        let key = unsafe { public_key_arg(key, key_len, "key") }?;
        // SAFETY: `buf` holds `len` bytes; `out_len` is NULL or writable.
        unsafe { util::write_text(&key.fingerprint(), buf, len, out_len, "buf") }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_sizes_match_the_core() {
        let kp = Keypair::generate();
        assert_eq!(kp.public().to_text().len() + 1, SHMSOCK_PUBLIC_KEY_TEXT_SIZE);
        assert_eq!(kp.public().fingerprint().len() + 1, SHMSOCK_FINGERPRINT_SIZE);
        assert_eq!(shmsock::keys::KEY_LEN, SHMSOCK_KEY_LEN);
    }
}
