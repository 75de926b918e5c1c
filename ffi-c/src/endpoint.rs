//! The endpoints of this user (what `shmsock list` shows).

use std::ffi::{c_char, CString};

use crate::boundary::boundary;
use crate::handle::{self, handle};
use crate::result::{c_string_lossy, shmsock_result, FfiError};
use crate::util::Out;

/// A snapshot of the endpoints in this user's runtime directory, from
/// shmsock_endpoint_list_new(). Immutable: may be read from several threads.
pub struct shmsock_endpoint_list {
    items: Vec<(CString, i64, bool)>,
}

/// One endpoint of a shmsock_endpoint_list.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmsock_endpoint_info {
    /// The endpoint name, NUL-terminated, owned by the list (valid until
    /// shmsock_endpoint_list_free()).
    pub name: *const c_char,
    /// The pid written by the server that bound it, or -1 when unknown.
    pub pid: i64,
    /// True when a live process holds the endpoint (false: files left by a
    /// server that died, reclaimed by the next bind).
    pub alive: bool,
}

handle!(shmsock_endpoint_list, "list");

/// Lists the endpoints of this user: every endpoint socket or lock file in the
/// runtime directory, sorted by name. On success `*out` receives a new list,
/// owned by the caller, to be freed with shmsock_endpoint_list_free(). Blocks
/// on directory I/O. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_PERMISSION_DENIED (unsafe runtime
/// directory), SHMSOCK_IO.
#[no_mangle]
pub unsafe extern "C" fn shmsock_endpoint_list_new(out: *mut *mut shmsock_endpoint_list) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a writable pointer or NULL (caller's contract).
        let out = unsafe { Out::new(out, "out") }?;
        let items = shmsock::endpoint::list()?
            .into_iter()
            .map(|e| (c_string_lossy(&e.name), e.pid.map_or(-1, i64::from), e.alive))
            .collect();
        out.write(handle::into_raw(shmsock_endpoint_list { items }));
        Ok(())
    })
}

/// Writes the number of endpoints in the list to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_endpoint_list_len(
    list: *const shmsock_endpoint_list,
    out: *mut usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live list or NULL; a writable value or NULL.
        let (list, out) = unsafe { (handle::arg(list)?, Out::new(out, "out")?) };
        out.write(list.items.len());
        Ok(())
    })
}

/// Writes endpoint number `index` (from 0) to `*out`; its name is owned by
/// the list. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_ARGUMENT (`index` out of range).
#[no_mangle]
pub unsafe extern "C" fn shmsock_endpoint_list_get(
    list: *const shmsock_endpoint_list,
    index: usize,
    out: *mut shmsock_endpoint_info,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live list or NULL; a writable struct or NULL.
        let (list, out) = unsafe { (handle::arg(list)?, Out::new(out, "out")?) };
        let (name, pid, alive) = list.items.get(index).ok_or_else(|| {
            FfiError::invalid(format!("index {index} is out of range: the list has {} endpoints", list.items.len()))
        })?;
        out.write(shmsock_endpoint_info { name: name.as_ptr(), pid: *pid, alive: *alive });
        Ok(())
    })
}

/// Frees a list and the names it owns. NULL is a no-op. Freeing twice is
/// undefined behaviour, as with free(3).
#[no_mangle]
pub unsafe extern "C" fn shmsock_endpoint_list_free(list: *mut shmsock_endpoint_list) {
    // SAFETY: a list from this library or NULL, not freed before.
    boundary!(|| unsafe { handle::free(list) })
}
