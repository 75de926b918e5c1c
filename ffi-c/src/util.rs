//! Checked conversions of C arguments: strings, buffers, C structs,
//! out-parameters and timeouts. Every dereference of a caller's pointer goes
//! through here, but for handles, which go through `handle`.

use std::ffi::{c_char, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::result::{shmsock_result, FfiError, FfiResult};

/// A timeout meaning "wait as long as it takes" (UINT64_MAX), for every `timeout_ms` argument
/// and every timeout setter of shmsock_options.
pub const SHMSOCK_FOREVER: u64 = 0xFFFF_FFFF_FFFF_FFFF;

/// A `timeout_ms` argument as the core's timeout (None: no limit).
pub(crate) fn timeout(ms: u64) -> Option<Duration> {
    if ms == SHMSOCK_FOREVER {
        None
    } else {
        Some(Duration::from_millis(ms))
    }
}

/// A `timeout_ms` argument as a deadline from now (None: no limit, also for a
/// timeout too long for an `Instant` to hold).
pub(crate) fn deadline(ms: u64) -> Option<Instant> {
    timeout(ms).and_then(|t| Instant::now().checked_add(t))
}

/// A pointer to a C struct the caller fills (callbacks, configuration), read
/// for the call. NULL is SHMSOCK_NULL_ARGUMENT. (Handles go through `handle`.)
///
/// # Safety
/// A non-NULL `p` must point to a valid, initialised T for the call.
pub(crate) unsafe fn struct_ref<'a, T>(p: *const T, what: &str) -> FfiResult<&'a T> {
    // SAFETY: per this function's contract, non-NULL means a valid T.
    unsafe { p.as_ref() }.ok_or_else(|| FfiError::null(what))
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// A non-NULL `p` must point to a NUL-terminated string that stays unchanged
/// for the call.
pub(crate) unsafe fn string<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|e| {
        FfiError::new(
            shmsock_result::SHMSOCK_INVALID_UTF8,
            format!("the argument '{what}' is not valid UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        )
    })
}

/// A NUL-terminated file path argument (any bytes but NUL, as the OS allows).
///
/// # Safety
/// As for [`string`].
pub(crate) unsafe fn path<'a>(p: *const c_char, what: &str) -> FfiResult<&'a Path> {
    if p.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if bytes.is_empty() {
        return Err(FfiError::invalid(format!("the argument '{what}' is an empty path")));
    }
    Ok(Path::new(OsStr::from_bytes(bytes)))
}

fn check_len(len: usize, what: &str) -> FfiResult<()> {
    if len > isize::MAX as usize {
        return Err(FfiError::invalid(format!("the length of '{what}' ({len}) is larger than any buffer can be")));
    }
    Ok(())
}

/// An input buffer `(p, len)`. NULL is allowed only with `len` 0.
///
/// # Safety
/// A non-NULL `p` must point to `len` readable bytes that stay unchanged for the call.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: usize, what: &str) -> FfiResult<&'a [u8]> {
    check_len(len, what)?;
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL, `len` readable bytes (contract), len <= isize::MAX (checked).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// An output buffer `(p, len)`. NULL is allowed only with `len` 0.
///
/// # Safety
/// A non-NULL `p` must point to `len` writable bytes that nothing else uses
/// during the call. Memory handed over by C counts as initialised bytes (as in
/// rustls-ffi): zeroing it first would put a memset of the whole buffer on the
/// receive path.
pub(crate) unsafe fn bytes_mut<'a>(p: *mut u8, len: usize, what: &str) -> FfiResult<&'a mut [u8]> {
    check_len(len, what)?;
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL, `len` writable bytes not used elsewhere (contract),
    // len <= isize::MAX (checked).
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// A required out-parameter, checked before any work and written on success only.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// # Safety
    /// A non-NULL `p` must be valid for writing one `T`, and stay so for the call.
    pub(crate) unsafe fn new(p: *mut T, what: &str) -> FfiResult<Out<T>> {
        NonNull::new(p).map(Out).ok_or_else(|| FfiError::null(what))
    }

    pub(crate) fn write(self, value: T) {
        // SAFETY: valid for one write per `new`'s contract; `write` does not
        // drop the (possibly uninitialised) old value.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// An optional out-parameter (NULL: the caller does not want the value).
pub(crate) struct OptOut<T>(Option<NonNull<T>>);

impl<T> OptOut<T> {
    /// # Safety
    /// As for [`Out::new`], when `p` is not NULL.
    pub(crate) unsafe fn new(p: *mut T) -> OptOut<T> {
        OptOut(NonNull::new(p))
    }

    pub(crate) fn write(&self, value: T) {
        if let Some(p) = self.0 {
            // SAFETY: as in `Out::write`.
            unsafe { p.as_ptr().write(value) }
        }
    }
}

/// Writes `text` and a NUL into `(buf, len)`; `out_len` (optional) gets the
/// text's length without the NUL, also when it does not fit. Text that does not
/// fit is not written at all (keys must never be cut): SHMSOCK_BUFFER_TOO_SMALL.
///
/// # Safety
/// As for [`bytes_mut`] and [`OptOut::new`].
pub(crate) unsafe fn write_text(
    text: &str,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
    what: &str,
) -> FfiResult<()> {
    check_len(len, what)?;
    if buf.is_null() && len != 0 {
        return Err(FfiError::null(what));
    }
    // SAFETY: forwarded contract.
    let out_len = unsafe { OptOut::new(out_len) };
    out_len.write(text.len());
    if text.len() >= len {
        return Err(FfiError::new(
            shmsock_result::SHMSOCK_BUFFER_TOO_SMALL,
            format!("'{what}' holds {len} bytes; the text needs {} (with its NUL)", text.len() + 1),
        ));
    }
    // SAFETY: `buf` is non-NULL (len > text.len() >= 0) and holds `len` bytes;
    // text.len() + 1 <= len.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        *buf.add(text.len()) = 0;
    }
    Ok(())
}

/// Copies a 32-byte key into `(out, out_len)`.
///
/// # Safety
/// As for [`bytes_mut`].
pub(crate) unsafe fn write_key(key: &[u8; 32], out: *mut u8, out_len: usize, what: &str) -> FfiResult<()> {
    if out.is_null() {
        return Err(FfiError::null(what));
    }
    if out_len < key.len() {
        return Err(FfiError::new(
            shmsock_result::SHMSOCK_BUFFER_TOO_SMALL,
            format!("'{what}' holds {out_len} bytes; a public key needs {} (SHMSOCK_KEY_LEN)", key.len()),
        ));
    }
    // SAFETY: forwarded contract; out_len >= 32 checked.
    let out = unsafe { bytes_mut(out, key.len(), what) }?;
    out.copy_from_slice(key);
    Ok(())
}
