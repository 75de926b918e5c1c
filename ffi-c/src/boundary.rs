//! The panic boundary every export runs inside (after rustls-ffi's
//! `ffi_panic_boundary!`): a panic never unwinds into C; it becomes
//! SHMSOCK_PANIC (or nothing, for the functions that return nothing) with a last
//! error message naming the export.
//!
//! An export's body is `boundary!(|| { ... })`. The macro takes the export's
//! name from the function it expands in, so no export repeats its own name.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::result::{set_last_error, shmsock_result, FfiResult};

/// Runs `$body` (a closure) inside the panic boundary, naming the enclosing
/// function in the message of a caught panic. The closure returns
/// `FfiResult<()>` (the export returns a `shmsock_result`) or `()` (the export
/// returns nothing: the `_free` functions).
macro_rules! boundary {
    ($body:expr) => {{
        // A local item's type name is its path: `crate::module::export::here`.
        fn here() {}
        $crate::boundary::guard(::std::any::type_name_of_val(&here), $body)
    }};
}
pub(crate) use boundary;

/// What an export's body returns, and what C gets for it.
pub(crate) trait Outcome {
    /// The export's C return type.
    type C;
    /// The value for C; records the last error on failure.
    fn into_c(self) -> Self::C;
    /// The value for C after a caught panic (whose message is recorded).
    fn panicked() -> Self::C;
}

impl Outcome for FfiResult<()> {
    type C = shmsock_result;
    fn into_c(self) -> shmsock_result {
        match self {
            Ok(()) => shmsock_result::SHMSOCK_OK,
            Err(e) => {
                set_last_error(&e.message);
                e.code
            }
        }
    }
    fn panicked() -> shmsock_result {
        shmsock_result::SHMSOCK_PANIC
    }
}

impl Outcome for () {
    type C = ();
    fn into_c(self) {}
    fn panicked() {}
}

/// The export named by `here`'s path (see [`boundary!`]): its second-to-last segment.
fn export_name(here: &str) -> &str {
    let path = here.strip_suffix("::here").unwrap_or(here);
    path.rsplit("::").next().unwrap_or(path)
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Runs the body of an export (through [`boundary!`]): catches panics, records
/// the last error, and turns the outcome into the export's return value.
pub(crate) fn guard<R: Outcome>(here: &str, body: impl FnOnce() -> R) -> R::C {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(outcome) => outcome.into_c(),
        Err(payload) => {
            set_last_error(&format!(
                "internal error in {}: a panic was caught at the C boundary ({}); please report this bug",
                export_name(here),
                panic_text(&*payload)
            ));
            R::panicked()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;
    use crate::result::shmsock_last_error;

    fn last_error() -> String {
        // SAFETY: shmsock_last_error returns a NUL-terminated string, valid until the next failure.
        unsafe { CStr::from_ptr(shmsock_last_error()) }.to_string_lossy().into_owned()
    }

    extern "C" fn shmsock_test_export_that_panics() -> shmsock_result {
        boundary!(|| -> FfiResult<()> { panic!("boom") })
    }

    extern "C" fn shmsock_test_free_that_panics() {
        boundary!(|| -> () { panic!("bang {}", 7) })
    }

    #[test]
    fn a_panic_becomes_shmsock_panic_naming_the_export() {
        assert_eq!(shmsock_test_export_that_panics(), shmsock_result::SHMSOCK_PANIC);
        let message = last_error();
        assert!(message.contains("internal error in shmsock_test_export_that_panics:"), "{message}");
        assert!(message.contains("boom"), "{message}");
    }

    #[test]
    fn a_panic_in_a_function_returning_nothing_is_caught_and_recorded() {
        shmsock_test_free_that_panics();
        let message = last_error();
        assert!(message.contains("internal error in shmsock_test_free_that_panics:"), "{message}");
        assert!(message.contains("bang 7"), "{message}");
    }

    #[test]
    fn an_error_sets_its_code_and_message() {
        let r = boundary!(|| Err(crate::result::FfiError::invalid("bad thing")));
        assert_eq!(r, shmsock_result::SHMSOCK_INVALID_ARGUMENT);
        assert_eq!(last_error(), "bad thing");
    }

    #[test]
    fn the_export_name_is_the_last_segment_before_here() {
        assert_eq!(export_name("shmsock::stream::shmsock_stream_send::here"), "shmsock_stream_send");
        assert_eq!(export_name("x"), "x");
    }
}
