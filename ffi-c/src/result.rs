//! Result codes and the thread-local last error.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use shmsock::{Error, ErrorKind};

/// The result of every fallible function: SHMSOCK_OK (0) or an error code.
///
/// Codes 1 to 99 are the core's error kinds and have the same numbers in every
/// shmsock package (the Node `code` strings are these names). Codes from 100 on
/// exist only in the C ABI. Values are stable and never reused; codes may be
/// added, so a `switch` over them needs a `default`.
///
/// shmsock_result_str() describes a code in a few words;
/// shmsock_last_error_message() says what exactly failed, on this thread.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmsock_result {
    /// Success.
    SHMSOCK_OK = 0,
    // BEGIN GENERATED: error kinds (from the core table; see the test `generated_copies_are_current`)
    /// A blocking call ran out of time. Nothing was lost; the call may be retried.
    SHMSOCK_TIMEOUT = 1,
    /// A `try_` call could not proceed without blocking. Nothing was lost.
    SHMSOCK_WOULD_BLOCK = 2,
    /// The object was closed by this process and cannot be used any more.
    SHMSOCK_CLOSED = 3,
    /// The peer closed the connection cleanly; every message it sent was delivered.
    SHMSOCK_PEER_CLOSED = 4,
    /// The peer process exited or was killed without closing the connection.
    SHMSOCK_PEER_GONE = 5,
    /// The server refused this client (its key is not on the allow-list, or its uid is not
    /// allowed).
    SHMSOCK_HANDSHAKE_REJECTED = 6,
    /// The server does not hold the key the client pinned (or the endpoint name differs).
    SHMSOCK_SERVER_KEY_MISMATCH = 7,
    /// A frame failed authentication: the shared memory was tampered with. The connection
    /// is over.
    SHMSOCK_AUTHENTICATION_FAILED = 8,
    /// The two sides share no protocol version.
    SHMSOCK_PROTOCOL_VERSION = 9,
    /// The two sides share no transport cipher.
    SHMSOCK_NO_COMMON_CIPHER = 10,
    /// The peer sent bytes that do not follow the protocol (malformed or truncated
    /// handshake, control message, frame or segment). The connection is over.
    SHMSOCK_PROTOCOL_VIOLATION = 11,
    /// A message is larger than the receiver's maximum message size. Nothing was sent.
    SHMSOCK_MESSAGE_TOO_LARGE = 12,
    /// The caller's buffer is too small for the next message; the size it needs is reported
    /// and nothing was lost (the message is kept for the next call).
    SHMSOCK_BUFFER_TOO_SMALL = 13,
    /// An endpoint name is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    SHMSOCK_INVALID_NAME = 14,
    /// Another live process already serves this endpoint name.
    SHMSOCK_ADDRESS_IN_USE = 15,
    /// No process serves this endpoint name, or a file (such as a key file) does not exist.
    SHMSOCK_NOT_FOUND = 16,
    /// A key (text, bytes or key file contents) is malformed or unusable.
    SHMSOCK_INVALID_KEY = 17,
    /// A key file is readable by other users; it is refused, as ssh does (chmod 600 it).
    SHMSOCK_INSECURE_KEY_FILE = 18,
    /// An argument is out of range or inconsistent (for example a zero ring size).
    SHMSOCK_INVALID_ARGUMENT = 19,
    /// The system refused a resource (memory for a segment, file descriptors).
    SHMSOCK_RESOURCE_EXHAUSTED = 20,
    /// The peer's uid is not allowed to connect, or the runtime directory is unsafe.
    SHMSOCK_PERMISSION_DENIED = 21,
    /// Any other operating-system error.
    SHMSOCK_IO = 22,
    // END GENERATED: error kinds
    /// A required pointer argument was NULL (or a buffer was NULL with a
    /// nonzero length). Nothing was done.
    SHMSOCK_NULL_ARGUMENT = 100,
    /// A string argument was not valid UTF-8. Nothing was done.
    SHMSOCK_INVALID_UTF8 = 101,
    /// An internal error (a Rust panic) was caught at the C boundary. Please
    /// report it, with shmsock_last_error_message().
    SHMSOCK_PANIC = 102,
}

use shmsock_result::*;

/// The result code of each core kind, in the order of `ErrorKind::ALL`.
#[rustfmt::skip]
const CORE_RESULTS: &[shmsock_result] = &[
    // BEGIN GENERATED: core results
    SHMSOCK_TIMEOUT,
    SHMSOCK_WOULD_BLOCK,
    SHMSOCK_CLOSED,
    SHMSOCK_PEER_CLOSED,
    SHMSOCK_PEER_GONE,
    SHMSOCK_HANDSHAKE_REJECTED,
    SHMSOCK_SERVER_KEY_MISMATCH,
    SHMSOCK_AUTHENTICATION_FAILED,
    SHMSOCK_PROTOCOL_VERSION,
    SHMSOCK_NO_COMMON_CIPHER,
    SHMSOCK_PROTOCOL_VIOLATION,
    SHMSOCK_MESSAGE_TOO_LARGE,
    SHMSOCK_BUFFER_TOO_SMALL,
    SHMSOCK_INVALID_NAME,
    SHMSOCK_ADDRESS_IN_USE,
    SHMSOCK_NOT_FOUND,
    SHMSOCK_INVALID_KEY,
    SHMSOCK_INSECURE_KEY_FILE,
    SHMSOCK_INVALID_ARGUMENT,
    SHMSOCK_RESOURCE_EXHAUSTED,
    SHMSOCK_PERMISSION_DENIED,
    SHMSOCK_IO,
    // END GENERATED: core results
];

/// The codes of the C ABI alone, with their names and descriptions (those of the
/// core's kinds come from the core table).
const C_ONLY: [(shmsock_result, &CStr, &CStr); 4] = [
    (SHMSOCK_OK, c"SHMSOCK_OK", c"success"),
    (SHMSOCK_NULL_ARGUMENT, c"SHMSOCK_NULL_ARGUMENT", c"NULL argument"),
    (SHMSOCK_INVALID_UTF8, c"SHMSOCK_INVALID_UTF8", c"string is not valid UTF-8"),
    (SHMSOCK_PANIC, c"SHMSOCK_PANIC", c"internal error (panic caught at the C boundary)"),
];

/// The result code of a core error kind: the same number as `ErrorKind::code()`.
pub(crate) fn result_of_kind(kind: ErrorKind) -> shmsock_result {
    // A kind the enum lacks (the test `generated_copies_are_current` prevents it)
    // is reported as SHMSOCK_IO.
    CORE_RESULTS.iter().copied().find(|r| *r as u32 == kind.code()).unwrap_or(SHMSOCK_IO)
}

/// (`SHMSOCK_<NAME>`, description) of each core kind as C strings, in the order of
/// `ErrorKind::ALL`: made once from the core table, then static.
fn core_strings() -> &'static [(CString, CString)] {
    static STRINGS: OnceLock<Vec<(CString, CString)>> = OnceLock::new();
    STRINGS.get_or_init(|| {
        ErrorKind::ALL
            .iter()
            .map(|k| (c_string_lossy(&format!("SHMSOCK_{}", k.name())), c_string_lossy(k.description())))
            .collect()
    })
}

impl shmsock_result {
    /// The name of the C constant and a few words for humans.
    fn strings(self) -> (&'static CStr, &'static CStr) {
        if let Some((_, name, description)) = C_ONLY.iter().find(|c| c.0 == self) {
            return (name, description);
        }
        ErrorKind::ALL
            .iter()
            .position(|k| k.code() == self as u32)
            .and_then(|i| core_strings().get(i))
            .map_or((c"SHMSOCK_UNKNOWN", c"unknown result code"), |(n, d)| (n.as_c_str(), d.as_c_str()))
    }

    /// The name of the C constant, e.g. `SHMSOCK_TIMEOUT`.
    pub(crate) fn name(self) -> &'static CStr {
        self.strings().0
    }

    /// A few words for humans.
    pub(crate) fn description(self) -> &'static CStr {
        self.strings().1
    }

    fn from_code(code: u32) -> Option<shmsock_result> {
        CORE_RESULTS.iter().chain(C_ONLY.iter().map(|c| &c.0)).copied().find(|r| *r as u32 == code)
    }
}

/// A failure on its way to C: a result code and the message for the last error.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub(crate) code: shmsock_result,
    pub(crate) message: String,
}

impl FfiError {
    pub(crate) fn new(code: shmsock_result, message: impl Into<String>) -> FfiError {
        FfiError { code, message: message.into() }
    }

    /// A NULL pointer where one is required; `what` names the argument.
    pub(crate) fn null(what: &str) -> FfiError {
        FfiError::new(SHMSOCK_NULL_ARGUMENT, format!("the argument '{what}' is NULL"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> FfiError {
        FfiError::new(SHMSOCK_INVALID_ARGUMENT, message)
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> FfiError {
        FfiError { code: result_of_kind(e.kind()), message: e.message().to_string() }
    }
}

pub(crate) type FfiResult<T> = Result<T, FfiError>;

/// `text` as a C string; a NUL inside (from a peer's words, say) is shown as `\0`.
pub(crate) fn c_string_lossy(text: &str) -> CString {
    let text = if text.contains('\0') { text.replace('\0', "\\0") } else { text.to_string() };
    CString::new(text).unwrap_or_default()
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records the message of this thread's most recent failure.
pub(crate) fn set_last_error(message: &str) {
    let message = c_string_lossy(message);
    // try_with/try_borrow_mut: never panic, even while the thread is exiting.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = message;
        }
    });
}

/// A short description of a result code, e.g. "timed out".
///
/// Returns a static, NUL-terminated string (never NULL, never to be freed);
/// an unknown code gives "unknown result code". Thread-safe, never blocks, and
/// leaves the last error unchanged.
#[no_mangle]
pub extern "C" fn shmsock_result_str(result: u32) -> *const c_char {
    shmsock_result::from_code(result).map_or(c"unknown result code", |r| r.description()).as_ptr()
}

/// The name of a result code's constant, e.g. "SHMSOCK_TIMEOUT".
///
/// Returns a static, NUL-terminated string (never NULL, never to be freed);
/// an unknown code gives "SHMSOCK_UNKNOWN". Thread-safe, never blocks, and
/// leaves the last error unchanged.
#[no_mangle]
pub extern "C" fn shmsock_result_name(result: u32) -> *const c_char {
    shmsock_result::from_code(result).map_or(c"SHMSOCK_UNKNOWN", |r| r.name()).as_ptr()
}

/// Copies the message of this thread's most recent failure into `buf`.
///
/// Every function that returns an error code other than SHMSOCK_OK records a
/// message saying what failed and, where there is something to do, what to do.
/// Successful calls leave it unchanged (as with errno), so read it right after
/// the failing call. It is empty on a thread where nothing failed yet. This
/// function and shmsock_last_error() never change it.
///
/// `buf` (may be NULL when `len` is 0) receives as much of the message as fits
/// in `len - 1` bytes, cut at a UTF-8 character boundary, and a terminating NUL
/// (when `len` > 0). Unlike every other function, a message that does not fit
/// is still written, shortened, so that a fixed buffer always holds a readable
/// message.
///
/// `out_len` (may be NULL) receives the length of the whole message in bytes,
/// without the NUL.
///
/// Returns SHMSOCK_OK when the whole message fit, SHMSOCK_BUFFER_TOO_SMALL when
/// it was shortened, SHMSOCK_NULL_ARGUMENT when `buf` is NULL and `len` is not 0.
/// Never blocks.
#[no_mangle]
pub unsafe extern "C" fn shmsock_last_error_message(
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> shmsock_result {
    let run = || {
        if buf.is_null() && len != 0 {
            return SHMSOCK_NULL_ARGUMENT;
        }
        let copied = LAST_ERROR.try_with(|slot| {
            let Ok(message) = slot.try_borrow() else {
                return (0, true);
            };
            let bytes = message.to_bytes();
            let mut cut = bytes.len().min(len.saturating_sub(1));
            // Never cut inside a UTF-8 sequence (continuation bytes are 10xxxxxx).
            while cut > 0 && cut < bytes.len() && bytes[cut] & 0xC0 == 0x80 {
                cut -= 1;
            }
            if len > 0 {
                // SAFETY: `buf` is non-NULL (checked above) and the caller
                // promises it holds `len` bytes; cut + 1 <= len.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), cut);
                    *buf.add(cut) = 0;
                }
            }
            (bytes.len(), cut == bytes.len())
        });
        let (full, fit) = copied.unwrap_or((0, true));
        if !out_len.is_null() {
            // SAFETY: non-NULL, and the caller promises it points to a size_t.
            unsafe { out_len.write(full) };
        }
        if fit && (len > 0 || full == 0) {
            SHMSOCK_OK
        } else {
            SHMSOCK_BUFFER_TOO_SMALL
        }
    };
    catch_unwind(AssertUnwindSafe(run)).unwrap_or(SHMSOCK_PANIC)
}

/// The message of this thread's most recent failure, as a NUL-terminated string
/// owned by the library.
///
/// The pointer stays valid until the next call into shmsock on this thread that
/// fails (or until the thread exits); copy the text to keep it. Never NULL
/// (empty when nothing failed yet on this thread). See
/// shmsock_last_error_message() for when the message is set. Never blocks.
#[no_mangle]
pub extern "C" fn shmsock_last_error() -> *const c_char {
    let run = || {
        LAST_ERROR
            .try_with(|slot| match slot.try_borrow() {
                // The CString's heap buffer does not move until it is replaced.
                Ok(message) => message.as_ptr(),
                Err(_) => c"".as_ptr(),
            })
            .unwrap_or(c"".as_ptr())
    };
    catch_unwind(run).unwrap_or(c"".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    mod generated_region {
        include!(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/support/generated_region.rs"));
    }

    /// The enum's part for the core's kinds and `CORE_RESULTS`, rendered from the
    /// core table: fails when result.rs is stale (SHMSOCK_REGENERATE=1 rewrites it;
    /// then run scripts/gen-c-header.sh for the header).
    #[test]
    fn generated_copies_are_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/result.rs");
        let mut variants = String::new();
        let mut results = String::new();
        for kind in ErrorKind::ALL {
            variants.push_str(&generated_region::wrap(kind.doc(), "    /// ", 92));
            variants.push_str(&format!("    SHMSOCK_{} = {},\n", kind.name(), kind.code()));
            results.push_str(&format!("    SHMSOCK_{},\n", kind.name()));
        }
        generated_region::check(&path, "error kinds", &variants);
        generated_region::check(&path, "core results", &results);
    }

    #[test]
    fn every_core_kind_has_its_code_name_and_description() {
        for kind in ErrorKind::ALL {
            let result = result_of_kind(kind);
            assert_eq!(result as u32, kind.code(), "{kind:?}");
            assert_eq!(shmsock_result::from_code(kind.code()), Some(result));
            assert_eq!(result.name().to_str().unwrap(), format!("SHMSOCK_{}", kind.name()));
            assert_eq!(format!("{result:?}"), format!("SHMSOCK_{}", kind.name()));
            assert_eq!(result.description().to_str().unwrap(), kind.description());
        }
    }

    #[test]
    fn c_only_codes_start_at_100_and_are_named_as_their_constants() {
        for (result, name, description) in C_ONLY {
            let code = result as u32;
            assert!(code == 0 || code >= 100, "{result:?}");
            assert_eq!(ErrorKind::from_code(code), None, "{result:?}");
            assert_eq!(shmsock_result::from_code(code), Some(result));
            assert_eq!(name.to_str().unwrap(), format!("{result:?}"));
            assert_eq!(result.strings(), (name, description));
        }
        let texts =
            |code| unsafe { (CStr::from_ptr(shmsock_result_name(code)), CStr::from_ptr(shmsock_result_str(code))) };
        assert_eq!(texts(1), (c"SHMSOCK_TIMEOUT", c"timed out"));
        assert_eq!(texts(102), (c"SHMSOCK_PANIC", c"internal error (panic caught at the C boundary)"));
        assert_eq!(texts(99), (c"SHMSOCK_UNKNOWN", c"unknown result code"));
    }

    #[test]
    fn last_error_is_cut_at_a_character_boundary() {
        set_last_error("aé");
        let mut buf = [0x55 as c_char; 3];
        let mut n = 0;
        let r = unsafe { shmsock_last_error_message(buf.as_mut_ptr(), buf.len(), &mut n) };
        assert_eq!(r, SHMSOCK_BUFFER_TOO_SMALL);
        assert_eq!(n, 3);
        assert_eq!(buf[0] as u8, b'a');
        assert_eq!(buf[1], 0);
        let r = unsafe { shmsock_last_error_message(std::ptr::null_mut(), 0, &mut n) };
        assert_eq!(r, SHMSOCK_BUFFER_TOO_SMALL);
        set_last_error("with\0nul");
        let msg = unsafe { CStr::from_ptr(shmsock_last_error()) }.to_str().unwrap().to_string();
        assert_eq!(msg, "with\\0nul");
    }
}
