//! The one error type of shmsock.
//!
//! Every failure in the core is an [`Error`]: a stable [`ErrorKind`] (which every
//! binding maps to its own idiom: C result codes, Python exception classes, Node
//! `code` strings, a C++ exception) and a message for humans that says what happened
//! and, where there is something to do, what to do.

use std::fmt;

/// What went wrong, as a stable category.
///
/// The numeric [`code`](ErrorKind::code) of each kind is part of the C ABI: it is
/// never changed and never reused.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A blocking call ran out of time. Nothing was lost; the call may be retried.
    Timeout,
    /// A `try_` call could not proceed without blocking. Nothing was lost.
    WouldBlock,
    /// The object was closed by this process and cannot be used any more.
    Closed,
    /// The peer closed the connection cleanly; every message it sent was delivered.
    PeerClosed,
    /// The peer process exited or was killed without closing.
    PeerGone,
    /// The server refused this client (key not on the allow-list, uid not allowed).
    HandshakeRejected,
    /// The server does not hold the key the client pinned (or the endpoint name differs).
    ServerKeyMismatch,
    /// A frame failed authentication: the shared memory was tampered with. The
    /// connection is over.
    AuthenticationFailed,
    /// The two sides share no protocol version.
    ProtocolVersion,
    /// The two sides share no transport cipher.
    NoCommonCipher,
    /// The peer sent bytes that do not follow the protocol (malformed or truncated
    /// handshake, control message, frame or segment). The connection is over.
    ProtocolViolation,
    /// A message is larger than the receiver's maximum message size.
    MessageTooLarge,
    /// The caller's buffer is too small for the next message; the message is kept.
    BufferTooSmall,
    /// An endpoint name is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    InvalidName,
    /// Another live process already serves this endpoint name.
    AddressInUse,
    /// No process serves this endpoint name.
    NotFound,
    /// A key (text, bytes or file contents) is malformed or unusable.
    InvalidKey,
    /// A key file is readable by other users; it is refused, as ssh does.
    InsecureKeyFile,
    /// An argument is out of range or inconsistent (for example a zero ring size).
    InvalidArgument,
    /// The system refused a resource (memory for a segment, file descriptors).
    ResourceExhausted,
    /// The peer's uid is not allowed to connect, or the runtime directory is unsafe.
    PermissionDenied,
    /// Any other operating-system error.
    Io,
}

impl ErrorKind {
    /// Every kind, in code order.
    pub const ALL: [ErrorKind; 22] = [
        ErrorKind::Timeout,
        ErrorKind::WouldBlock,
        ErrorKind::Closed,
        ErrorKind::PeerClosed,
        ErrorKind::PeerGone,
        ErrorKind::HandshakeRejected,
        ErrorKind::ServerKeyMismatch,
        ErrorKind::AuthenticationFailed,
        ErrorKind::ProtocolVersion,
        ErrorKind::NoCommonCipher,
        ErrorKind::ProtocolViolation,
        ErrorKind::MessageTooLarge,
        ErrorKind::BufferTooSmall,
        ErrorKind::InvalidName,
        ErrorKind::AddressInUse,
        ErrorKind::NotFound,
        ErrorKind::InvalidKey,
        ErrorKind::InsecureKeyFile,
        ErrorKind::InvalidArgument,
        ErrorKind::ResourceExhausted,
        ErrorKind::PermissionDenied,
        ErrorKind::Io,
    ];

    /// The stable numeric code (1-based; 0 means success in the C ABI).
    pub fn code(self) -> u32 {
        match self {
            ErrorKind::Timeout => 1,
            ErrorKind::WouldBlock => 2,
            ErrorKind::Closed => 3,
            ErrorKind::PeerClosed => 4,
            ErrorKind::PeerGone => 5,
            ErrorKind::HandshakeRejected => 6,
            ErrorKind::ServerKeyMismatch => 7,
            ErrorKind::AuthenticationFailed => 8,
            ErrorKind::ProtocolVersion => 9,
            ErrorKind::NoCommonCipher => 10,
            ErrorKind::ProtocolViolation => 11,
            ErrorKind::MessageTooLarge => 12,
            ErrorKind::BufferTooSmall => 13,
            ErrorKind::InvalidName => 14,
            ErrorKind::AddressInUse => 15,
            ErrorKind::NotFound => 16,
            ErrorKind::InvalidKey => 17,
            ErrorKind::InsecureKeyFile => 18,
            ErrorKind::InvalidArgument => 19,
            ErrorKind::ResourceExhausted => 20,
            ErrorKind::PermissionDenied => 21,
            ErrorKind::Io => 22,
        }
    }

    /// The stable identifier used by bindings (`SHMSOCK_<NAME>` in Node and C).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "TIMEOUT",
            ErrorKind::WouldBlock => "WOULD_BLOCK",
            ErrorKind::Closed => "CLOSED",
            ErrorKind::PeerClosed => "PEER_CLOSED",
            ErrorKind::PeerGone => "PEER_GONE",
            ErrorKind::HandshakeRejected => "HANDSHAKE_REJECTED",
            ErrorKind::ServerKeyMismatch => "SERVER_KEY_MISMATCH",
            ErrorKind::AuthenticationFailed => "AUTHENTICATION_FAILED",
            ErrorKind::ProtocolVersion => "PROTOCOL_VERSION",
            ErrorKind::NoCommonCipher => "NO_COMMON_CIPHER",
            ErrorKind::ProtocolViolation => "PROTOCOL_VIOLATION",
            ErrorKind::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorKind::BufferTooSmall => "BUFFER_TOO_SMALL",
            ErrorKind::InvalidName => "INVALID_NAME",
            ErrorKind::AddressInUse => "ADDRESS_IN_USE",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::InvalidKey => "INVALID_KEY",
            ErrorKind::InsecureKeyFile => "INSECURE_KEY_FILE",
            ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
            ErrorKind::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorKind::PermissionDenied => "PERMISSION_DENIED",
            ErrorKind::Io => "IO",
        }
    }

    /// The kind with this stable code, if any.
    pub fn from_code(code: u32) -> Option<ErrorKind> {
        ErrorKind::ALL.iter().copied().find(|k| k.code() == code)
    }

    /// True when the connection this error happened on cannot be used any more.
    pub fn ends_connection(self) -> bool {
        matches!(
            self,
            ErrorKind::Closed
                | ErrorKind::PeerClosed
                | ErrorKind::PeerGone
                | ErrorKind::AuthenticationFailed
                | ErrorKind::ProtocolViolation
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A shmsock error: a stable kind and a message for humans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    needed: Option<usize>,
}

impl Error {
    /// An error of `kind` with a message saying what happened and what to do.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), needed: None }
    }

    /// A [`BufferTooSmall`](ErrorKind::BufferTooSmall) error saying how many bytes
    /// the next message needs.
    pub fn buffer_too_small(needed: usize, have: usize) -> Error {
        Error {
            kind: ErrorKind::BufferTooSmall,
            message: format!("the next message has {needed} bytes but the buffer holds {have}; nothing was lost, retry with a larger buffer"),
            needed: Some(needed),
        }
    }

    /// For [`BufferTooSmall`](ErrorKind::BufferTooSmall): the size the next message needs.
    pub fn needed(&self) -> Option<usize> {
        self.needed
    }

    /// The same error with `context: ` before its message.
    pub fn context(mut self, context: &str) -> Error {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// An operating-system error, with what we were doing when it happened.
    pub fn io(context: &str, err: std::io::Error) -> Error {
        let kind = match err.raw_os_error() {
            Some(libc::ENOMEM) | Some(libc::ENOSPC) | Some(libc::EMFILE) | Some(libc::ENFILE) => {
                ErrorKind::ResourceExhausted
            }
            Some(libc::EACCES) | Some(libc::EPERM) => ErrorKind::PermissionDenied,
            _ => ErrorKind::Io,
        };
        Error::new(kind, format!("{context}: {err}"))
    }

    /// The stable category.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable numeric code of the kind.
    pub fn code(&self) -> u32 {
        self.kind.code()
    }

    /// The message for humans.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The result type of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            assert!(seen.insert(kind.code()), "duplicate code {}", kind.code());
            assert_eq!(ErrorKind::from_code(kind.code()), Some(kind));
            assert!(!kind.name().is_empty());
        }
        assert_eq!(ErrorKind::from_code(0), None);
        assert_eq!(ErrorKind::from_code(9999), None);
    }

    #[test]
    fn io_errors_are_classified() {
        let e = Error::io("reserving", std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(e.kind(), ErrorKind::ResourceExhausted);
        assert!(e.message().starts_with("reserving: "));
    }
}
