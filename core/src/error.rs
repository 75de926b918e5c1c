//! The one error type of shmsock, and the one table of its kinds.
//!
//! Every failure in the core is an [`Error`]: a stable [`ErrorKind`] (which every
//! binding maps to its own idiom: C result codes, Python exception classes, Node
//! `code` strings, a C++ exception) and a message for humans that says what happened
//! and, where there is something to do, what to do.
//!
//! The kinds are declared once, in the `error_kinds!` table below: name, stable
//! code, stable identifier, a few words and the doc comment. The bindings build
//! their own tables from it at run time ([`ErrorKind::ALL`]) or generate their
//! committed copies from it (the C and C++ enums, the Python stubs, the
//! TypeScript `codes`), each checked by a test that fails when the copy drifts.
//!
//! Adding a kind means adding one entry here, choosing its Python built-in bases
//! (`bindings-python/src/errors.rs`), and regenerating the copies:
//! `SHMSOCK_REGENERATE=1 cargo test -p shmsock-ffi -p shmsock-cxx generated_copies`
//! then `scripts/gen-c-header.sh`; `python bindings-python/tools/gen_error_stubs.py`
//! with the new package installed; `npm run gen-dts` in `bindings-node`.

use std::fmt;

/// Declares [`ErrorKind`] and its table from one list: for each kind its doc
/// comment, `Kind = code, "IDENTIFIER", "a few words";`.
macro_rules! error_kinds {
    (
        $(#[$meta:meta])*
        pub enum ErrorKind {
            $(
                $(#[doc = $doc:literal])+
                $kind:ident = $code:literal, $name:literal, $description:literal;
            )+
        }
    ) => {
        $(#[$meta])*
        pub enum ErrorKind {
            $(
                $(#[doc = $doc])+
                $kind = $code,
            )+
        }

        impl ErrorKind {
            /// Every kind, in code order.
            pub const ALL: [ErrorKind; [$($code),+].len()] = [$(ErrorKind::$kind),+];

            /// The stable identifier used by bindings (`SHMSOCK_<NAME>` in Node and C,
            /// the Python exception's `code`), e.g. `PEER_GONE`.
            pub fn name(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $name,)+
                }
            }

            /// The kind's name in CamelCase, as in Rust (`PeerGone`): the Python
            /// exception class and the C++ `ErrorCode` enumerator.
            pub fn type_name(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => stringify!($kind),)+
                }
            }

            /// A few words for humans, e.g. "the peer process is gone" (C's
            /// `shmsock_result_str`).
            pub fn description(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $description,)+
                }
            }

            /// The documentation of the kind, in one paragraph of plain sentences
            /// (the same words in every language's documentation).
            pub fn doc(self) -> &'static str {
                // Each doc-comment line keeps the space after `///`, which is the
                // space between the lines once they are joined.
                match self {
                    $(ErrorKind::$kind => concat!($($doc),+),)+
                }
                .trim_start()
            }
        }
    };
}

error_kinds! {
    /// What went wrong, as a stable category.
    ///
    /// The numeric [`code`](ErrorKind::code) of each kind is part of the C ABI: it is
    /// never changed and never reused. Codes 1 to 99 are the core's; the C ABI's own
    /// codes start at 100.
    #[non_exhaustive]
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum ErrorKind {
        /// A blocking call ran out of time. Nothing was lost; the call may be retried.
        Timeout = 1, "TIMEOUT", "timed out";
        /// A `try_` call could not proceed without blocking. Nothing was lost.
        WouldBlock = 2, "WOULD_BLOCK", "would block";
        /// The object was closed by this process and cannot be used any more.
        Closed = 3, "CLOSED", "closed by this process";
        /// The peer closed the connection cleanly; every message it sent was delivered.
        PeerClosed = 4, "PEER_CLOSED", "the peer closed the connection";
        /// The peer process exited or was killed without closing the connection.
        PeerGone = 5, "PEER_GONE", "the peer process is gone";
        /// The server refused this client (its key is not on the allow-list, or its
        /// uid is not allowed).
        HandshakeRejected = 6, "HANDSHAKE_REJECTED", "the server rejected this client";
        /// The server does not hold the key the client pinned (or the endpoint name differs).
        ServerKeyMismatch = 7, "SERVER_KEY_MISMATCH", "the server does not hold the pinned key";
        /// A frame failed authentication: the shared memory was tampered with. The
        /// connection is over.
        AuthenticationFailed = 8, "AUTHENTICATION_FAILED", "a frame failed authentication";
        /// The two sides share no protocol version.
        ProtocolVersion = 9, "PROTOCOL_VERSION", "no common protocol version";
        /// The two sides share no transport cipher.
        NoCommonCipher = 10, "NO_COMMON_CIPHER", "no common cipher";
        /// The peer sent bytes that do not follow the protocol (malformed or truncated
        /// handshake, control message, frame or segment). The connection is over.
        ProtocolViolation = 11, "PROTOCOL_VIOLATION", "protocol violation";
        /// A message is larger than the receiver's maximum message size. Nothing was sent.
        MessageTooLarge = 12, "MESSAGE_TOO_LARGE", "message too large";
        /// The caller's buffer is too small for the next message; the size it needs is
        /// reported and nothing was lost (the message is kept for the next call).
        BufferTooSmall = 13, "BUFFER_TOO_SMALL", "buffer too small";
        /// An endpoint name is empty, too long or has characters outside `[A-Za-z0-9._-]`.
        InvalidName = 14, "INVALID_NAME", "invalid endpoint name";
        /// Another live process already serves this endpoint name.
        AddressInUse = 15, "ADDRESS_IN_USE", "endpoint name in use";
        /// No process serves this endpoint name, or a file (such as a key file) does not
        /// exist.
        NotFound = 16, "NOT_FOUND", "not found";
        /// A key (text, bytes or key file contents) is malformed or unusable.
        InvalidKey = 17, "INVALID_KEY", "invalid key";
        /// A key file is readable by other users; it is refused, as ssh does (chmod 600 it).
        InsecureKeyFile = 18, "INSECURE_KEY_FILE", "key file readable by others";
        /// An argument is out of range or inconsistent (for example a zero ring size).
        InvalidArgument = 19, "INVALID_ARGUMENT", "invalid argument";
        /// The system refused a resource (memory for a segment, file descriptors).
        ResourceExhausted = 20, "RESOURCE_EXHAUSTED", "resource exhausted";
        /// The peer's uid is not allowed to connect, or the runtime directory is unsafe.
        PermissionDenied = 21, "PERMISSION_DENIED", "permission denied";
        /// Any other operating-system error.
        Io = 22, "IO", "operating-system error";
    }
}

impl ErrorKind {
    /// The stable numeric code (1-based; 0 means success in the C ABI).
    pub fn code(self) -> u32 {
        self as u32
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
    fn codes_ascend_below_the_c_abi_range() {
        let codes: Vec<u32> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "ALL is in code order: {codes:?}");
        assert!(codes.iter().all(|c| (1..100).contains(c)), "codes from 100 on belong to the C ABI: {codes:?}");
    }

    #[test]
    fn names_are_the_type_names_in_upper_snake_case() {
        for kind in ErrorKind::ALL {
            let mut snake = String::new();
            for (i, c) in kind.type_name().chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.push(c.to_ascii_uppercase());
            }
            assert_eq!(kind.name(), snake, "{kind:?}");
            assert_eq!(format!("{kind:?}"), kind.type_name());
        }
    }

    #[test]
    fn docs_are_one_plain_paragraph() {
        // The bindings copy these words into C, C++, Python and TypeScript docs.
        for kind in ErrorKind::ALL {
            let doc = kind.doc();
            assert!(doc.ends_with('.') && !doc.starts_with(' '), "{kind:?}: {doc:?}");
            assert!(!doc.contains('\n') && !doc.contains("  ") && !doc.contains("]("), "{kind:?}: {doc:?}");
            assert!(!kind.description().is_empty(), "{kind:?}");
        }
        assert_eq!(ErrorKind::PeerGone.doc(), "The peer process exited or was killed without closing the connection.");
        assert_eq!(
            ErrorKind::AuthenticationFailed.doc(),
            "A frame failed authentication: the shared memory was tampered with. The connection is over."
        );
    }

    #[test]
    fn io_errors_are_classified() {
        let e = Error::io("reserving", std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(e.kind(), ErrorKind::ResourceExhausted);
        assert!(e.message().starts_with("reserving: "));
    }
}
