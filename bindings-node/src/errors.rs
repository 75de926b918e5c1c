//! Core errors as JavaScript `Error`s with a stable `code`: `SHMSOCK_` followed
//! by the core's `ErrorKind::name()` (e.g. `SHMSOCK_PEER_GONE`).

use napi::Status;
use shmsock::{Error as CoreError, ErrorKind};

/// The `code` of a thrown error. napi-rs puts the status string of an
/// `Error<Code>` into the JavaScript error's `code` property.
pub struct Code(pub String);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Status> for Code {
    fn from(status: Status) -> Code {
        Code(status.as_ref().to_string())
    }
}

/// The stable code of a core error kind.
pub fn code_of(kind: ErrorKind) -> String {
    format!("SHMSOCK_{}", kind.name())
}

/// A core error as a thrown JavaScript error.
pub fn to_js(err: CoreError) -> napi::Error<Code> {
    napi::Error::new(Code(code_of(err.kind())), err.message().to_string())
}

/// A shmsock error of `kind` with `message`, thrown.
pub fn js_error(kind: ErrorKind, message: impl Into<String>) -> napi::Error<Code> {
    to_js(CoreError::new(kind, message))
}

/// The error every operation on a closed object fails with.
pub fn closed(what: &str) -> CoreError {
    CoreError::new(ErrorKind::Closed, format!("the {what} was closed"))
}
