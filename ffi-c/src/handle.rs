//! Handles: the opaque objects C holds by pointer (after rustls-ffi's
//! `Castable` and `try_ref_from_ptr!`). Every cast of a handle pointer — the
//! NULL check, the borrow, the `Box` round trip of `_new` and `_free` — goes
//! through the three functions here, so the safety argument is made once.
//!
//! # Safety argument (for every handle kind)
//! A handle pointer comes from [`into_raw`] (`Box::into_raw`: non-NULL, aligned,
//! pointing to a live `H`) and is released only by [`free`]. C's side of the
//! contract, stated in the header, is to pass back either NULL or such a
//! pointer that was not freed, and not to free it while another thread uses it.
//! Under that contract a non-NULL pointer is a live `H` for the whole call, so
//! a shared borrow of it is sound; nothing hands out `&mut H` (every handle
//! type is `Sync` and mutates through its own locks or atomics), so borrows on
//! several threads at once are sound too. NULL is checked at run time and is
//! SHMSOCK_NULL_ARGUMENT, never undefined behaviour.

use crate::result::{FfiError, FfiResult};

/// An opaque type C holds only by pointer.
pub(crate) trait Handle: Sized + Sync + 'static {
    /// The argument name errors use (e.g. "stream" in "the argument 'stream' is NULL").
    const ARG: &'static str;
    /// What the exports work with: the wrapped core object, or the handle itself.
    type Target;
    fn target(&self) -> &Self::Target;
}

/// Implements [`Handle`] for `$handle`, whose arguments are named `$arg`; with
/// `=> $field: $target`, the exports work with that field, else with the handle.
macro_rules! handle {
    ($handle:ty, $arg:literal) => {
        impl $crate::handle::Handle for $handle {
            const ARG: &'static str = $arg;
            type Target = $handle;
            fn target(&self) -> &$handle {
                self
            }
        }
    };
    ($handle:ty, $arg:literal => $field:ident: $target:ty) => {
        impl $crate::handle::Handle for $handle {
            const ARG: &'static str = $arg;
            type Target = $target;
            fn target(&self) -> &$target {
                &self.$field
            }
        }
    };
}
pub(crate) use handle;

/// A new handle for C: the pointer the matching `_free` takes back.
pub(crate) fn into_raw<H: Handle>(handle: H) -> *mut H {
    Box::into_raw(Box::new(handle))
}

/// A handle argument, borrowed for the call. NULL is SHMSOCK_NULL_ARGUMENT.
///
/// # Safety
/// `p` is NULL or a live handle from [`into_raw`] (see the module's argument).
pub(crate) unsafe fn arg<'a, H: Handle>(p: *const H) -> FfiResult<&'a H::Target> {
    // SAFETY: the module's argument: non-NULL is a live H.
    let handle = unsafe { p.as_ref() }.ok_or_else(|| FfiError::null(H::ARG))?;
    Ok(handle.target())
}

/// Frees a handle (the body of a `_free` function). NULL is a no-op.
///
/// # Safety
/// `p` is NULL or a live handle from [`into_raw`] that no other thread uses and
/// that is not freed again.
pub(crate) unsafe fn free<H: Handle>(p: *mut H) {
    if !p.is_null() {
        // SAFETY: the module's argument: a Box<H> given to C, taken back once.
        drop(unsafe { Box::from_raw(p) });
    }
}
