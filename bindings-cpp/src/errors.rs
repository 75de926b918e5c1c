//! The panic boundary and the error channel to C++.
//!
//! Every function of the bridge runs its body in [`guard`]: a core error becomes
//! an `Err` (which cxx throws in C++ as `rust::Error` with our message), and a
//! panic becomes an error too, so no panic ever unwinds into C++ (through cxx
//! it would abort the process). The stable code of the error (and, for
//! BufferTooSmall, the size needed) goes beside the message in a thread-local
//! that the C++ side reads right after catching, on the same thread, to throw
//! `shmsock::Error` with the right `code()`; the message stays clean.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};

use shmsock::{Error, ErrorKind};

thread_local! {
    /// (code, needed) of the last error handed to C++ on this thread.
    static LAST: Cell<(u32, usize)> = const { Cell::new((0, 0)) };
}

/// The error type of every bridge function: its `Display` is the message that
/// cxx copies into the C++ exception.
#[derive(Debug)]
pub struct BridgeError(String);

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The result type of every bridge function.
pub type BridgeResult<T> = Result<T, BridgeError>;

fn record(err: &Error) -> BridgeError {
    let _ = LAST.try_with(|c| c.set((err.code(), err.needed().unwrap_or(0))));
    BridgeError(err.message().to_string())
}

fn panic_error(payload: Box<dyn Any + Send>) -> Error {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Error::new(
        ErrorKind::Io,
        format!("internal error in shmsock (a Rust panic was stopped at the C++ boundary): {text}"),
    )
}

/// Runs `f`, turning its error or its panic into a [`BridgeError`].
pub fn guard<T>(f: impl FnOnce() -> shmsock::Result<T>) -> BridgeResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(record(&err)),
        Err(payload) => Err(record(&panic_error(payload))),
    }
}

/// The stable code of the last error thrown to C++ on this thread (cannot fail).
pub fn last_error_code() -> u32 {
    LAST.try_with(|c| c.get().0).unwrap_or(0)
}

/// The size the next message needs, after a BufferTooSmall (cannot fail).
pub fn last_error_needed() -> usize {
    LAST.try_with(|c| c.get().1).unwrap_or(0)
}

/// The stable name (`TIMEOUT`, ...) of a code, or "" for an unknown one.
pub fn error_name(code: u32) -> BridgeResult<String> {
    guard(|| Ok(ErrorKind::from_code(code).map(|k| k.name().to_string()).unwrap_or_default()))
}

/// For the tests of the error mapping: fails with the core error of `code`.
pub fn testing_raise(code: u32, message: &[u8]) -> BridgeResult<()> {
    guard(|| {
        let kind = ErrorKind::from_code(code)
            .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, format!("there is no error code {code}")))?;
        let message = String::from_utf8_lossy(message).into_owned();
        if kind == ErrorKind::BufferTooSmall {
            let needed: usize = message.parse().unwrap_or(1);
            return Err(Error::buffer_too_small(needed, 0));
        }
        Err(Error::new(kind, message))
    })
}

/// For the tests of the panic boundary: panics inside the guard.
pub fn testing_panic(message: &[u8]) -> BridgeResult<()> {
    let message = String::from_utf8_lossy(message).into_owned();
    guard(|| -> shmsock::Result<()> { std::panic::panic_any(message) })
}

/// The crate version (the workspace version).
pub fn version() -> BridgeResult<String> {
    guard(|| Ok(shmsock::VERSION.to_string()))
}

/// A value whose drop runs inside the panic boundary too (C++ destructors drop
/// the boxes of the bridge, and a panic there would abort).
pub struct Guarded<T>(ManuallyDrop<T>);

impl<T> Guarded<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Guarded<T> {
        Guarded(ManuallyDrop::new(value))
    }
}

impl<T> Deref for Guarded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Drop for Guarded<T> {
    fn drop(&mut self) {
        let inner = &mut self.0;
        // SAFETY: dropped exactly once, here; never used afterwards.
        let _ = catch_unwind(AssertUnwindSafe(|| unsafe { ManuallyDrop::drop(inner) }));
    }
}

/// The UTF-8 text of an endpoint name given as bytes.
pub fn name_from_bytes(name: &[u8]) -> shmsock::Result<&str> {
    std::str::from_utf8(name).map_err(|_| {
        Error::new(ErrorKind::InvalidName, "an endpoint name must be UTF-8 text of the characters [A-Za-z0-9._-]")
    })
}

/// A timeout from the C++ side: nanoseconds >= 0, [`FOREVER`], or [`DEFAULT`].
pub enum Timeout {
    /// The object's configured timeout.
    Default,
    /// This limit (None: forever).
    Limit(Option<std::time::Duration>),
}

/// Timeout code: wait as long as it takes.
pub const FOREVER: i64 = -1;
/// Timeout code: the configured timeout of the object.
pub const DEFAULT: i64 = -2;

impl Timeout {
    /// Decodes the C++ side's timeout.
    pub fn from_ns(ns: i64) -> shmsock::Result<Timeout> {
        match ns {
            DEFAULT => Ok(Timeout::Default),
            FOREVER => Ok(Timeout::Limit(None)),
            ns if ns >= 0 => Ok(Timeout::Limit(Some(std::time::Duration::from_nanos(ns as u64)))),
            _ => Err(Error::new(ErrorKind::InvalidArgument, "a timeout cannot be negative")),
        }
    }
}

/// A 32-byte key from bytes, or InvalidKey.
pub fn key_from_bytes(bytes: &[u8]) -> shmsock::Result<shmsock::PublicKey> {
    shmsock::PublicKey::from_slice(bytes)
}

/// Copies a 32-byte key into `out`.
pub fn key_into(key: &shmsock::PublicKey, out: &mut [u8]) -> shmsock::Result<()> {
    if out.len() != shmsock::keys::KEY_LEN {
        return Err(Error::new(ErrorKind::InvalidArgument, "a public key needs a 32-byte buffer"));
    }
    out.copy_from_slice(key.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_code_and_message() {
        let err = guard(|| -> shmsock::Result<()> { Err(Error::new(ErrorKind::AddressInUse, "taken")) }).unwrap_err();
        assert_eq!(err.to_string(), "taken");
        assert_eq!(last_error_code(), ErrorKind::AddressInUse.code());
        assert_eq!(last_error_needed(), 0);
        let err = guard(|| -> shmsock::Result<()> { Err(Error::buffer_too_small(99, 1)) }).unwrap_err();
        assert!(err.to_string().contains("99"));
        assert_eq!(last_error_code(), ErrorKind::BufferTooSmall.code());
        assert_eq!(last_error_needed(), 99);
    }

    #[test]
    fn a_panic_becomes_an_io_error() {
        let err = testing_panic(b"kaboom").unwrap_err();
        assert!(err.to_string().contains("kaboom"), "{err}");
        assert_eq!(last_error_code(), ErrorKind::Io.code());
    }

    #[test]
    fn a_panicking_drop_is_contained() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("drop panics");
            }
        }
        drop(Guarded::new(Bomb));
    }

    #[test]
    fn timeouts_decode() {
        assert!(matches!(Timeout::from_ns(DEFAULT), Ok(Timeout::Default)));
        assert!(matches!(Timeout::from_ns(FOREVER), Ok(Timeout::Limit(None))));
        assert!(matches!(Timeout::from_ns(0), Ok(Timeout::Limit(Some(d))) if d.is_zero()));
        assert!(matches!(Timeout::from_ns(1_500), Ok(Timeout::Limit(Some(d))) if d.as_nanos() == 1_500));
        assert_eq!(Timeout::from_ns(-3).err().map(|e| e.kind()), Some(ErrorKind::InvalidArgument));
    }

    mod generated_region {
        include!(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/support/generated_region.rs"));
    }

    /// The C++ copies of the core's error table (the `ErrorCode` enum, `to_string`,
    /// `Error::ends_connection`), rendered from the core: fails when they are stale
    /// (SHMSOCK_REGENERATE=1 rewrites them).
    #[test]
    fn generated_copies_are_current() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let (mut codes, mut names, mut ending) = (String::new(), String::new(), String::new());
        for kind in ErrorKind::ALL {
            codes.push_str(&generated_region::wrap(kind.doc(), "    /// ", 112));
            codes.push_str(&format!("    {} = {},\n", kind.type_name(), kind.code()));
            names.push_str(&format!("        case ErrorCode::{}: return \"{}\";\n", kind.type_name(), kind.name()));
            if kind.ends_connection() {
                ending.push_str(&format!("        case ErrorCode::{}:\n", kind.type_name()));
            }
        }
        generated_region::check(&root.join("include/shmsock/error.hpp"), "error codes", &codes);
        generated_region::check(&root.join("src/errors.cpp"), "error names", &names);
        generated_region::check(&root.join("src/errors.cpp"), "errors that end the connection", &ending);
    }

    #[test]
    fn names_must_be_utf8() {
        assert_eq!(name_from_bytes(b"ok-name").unwrap(), "ok-name");
        assert_eq!(name_from_bytes(b"\xff").unwrap_err().kind(), ErrorKind::InvalidName);
    }
}
