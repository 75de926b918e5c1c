// shmsock errors: the stable error codes of the core and the exception every
// failure throws.
// Included by <shmsock.hpp>; compiles on its own.
#ifndef SHMSOCK_ERROR_HPP
#define SHMSOCK_ERROR_HPP

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace shmsock {

/// The stable error codes of the core (`ErrorKind::code()`); never changed, never reused.
///
/// In C++ also: `try_` methods report WouldBlock as false / nullopt; a moved-from
/// object fails with Closed; a callback that threw is reported as Io; after
/// BufferTooSmall, Error::needed() is the size the next message needs.
enum class ErrorCode : std::uint32_t {
    // BEGIN GENERATED: error codes (from the core table; see bindings-cpp/src/errors.rs)
    /// A blocking call ran out of time. Nothing was lost; the call may be retried.
    Timeout = 1,
    /// A `try_` call could not proceed without blocking. Nothing was lost.
    WouldBlock = 2,
    /// The object was closed by this process and cannot be used any more.
    Closed = 3,
    /// The peer closed the connection cleanly; every message it sent was delivered.
    PeerClosed = 4,
    /// The peer process exited or was killed without closing the connection.
    PeerGone = 5,
    /// The server refused this client (its key is not on the allow-list, or its uid is not allowed).
    HandshakeRejected = 6,
    /// The server does not hold the key the client pinned (or the endpoint name differs).
    ServerKeyMismatch = 7,
    /// A frame failed authentication: the shared memory was tampered with. The connection is over.
    AuthenticationFailed = 8,
    /// The two sides share no protocol version.
    ProtocolVersion = 9,
    /// The two sides share no transport cipher.
    NoCommonCipher = 10,
    /// The peer sent bytes that do not follow the protocol (malformed or truncated handshake, control message,
    /// frame or segment). The connection is over.
    ProtocolViolation = 11,
    /// A message is larger than the receiver's maximum message size. Nothing was sent.
    MessageTooLarge = 12,
    /// The caller's buffer is too small for the next message; the size it needs is reported and nothing was
    /// lost (the message is kept for the next call).
    BufferTooSmall = 13,
    /// An endpoint name is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    InvalidName = 14,
    /// Another live process already serves this endpoint name.
    AddressInUse = 15,
    /// No process serves this endpoint name, or a file (such as a key file) does not exist.
    NotFound = 16,
    /// A key (text, bytes or key file contents) is malformed or unusable.
    InvalidKey = 17,
    /// A key file is readable by other users; it is refused, as ssh does (chmod 600 it).
    InsecureKeyFile = 18,
    /// An argument is out of range or inconsistent (for example a zero ring size).
    InvalidArgument = 19,
    /// The system refused a resource (memory for a segment, file descriptors).
    ResourceExhausted = 20,
    /// The peer's uid is not allowed to connect, or the runtime directory is unsafe.
    PermissionDenied = 21,
    /// Any other operating-system error.
    Io = 22,
    // END GENERATED: error codes
};

/// The stable name of a code, as in the other languages ("TIMEOUT", "PEER_CLOSED", ...).
const char* to_string(ErrorCode code) noexcept;

/// Every failure of shmsock. `what()` is the message for humans.
class Error : public std::runtime_error {
public:
    Error(ErrorCode code, const std::string& message, std::size_t needed = 0);

    /// The stable code.
    ErrorCode code() const noexcept { return code_; }
    /// The stable name of the code, e.g. "TIMEOUT".
    const char* name() const noexcept { return to_string(code_); }
    /// For BufferTooSmall: the size the next message needs (else 0).
    std::size_t needed() const noexcept { return needed_; }
    /// True when the connection it happened on cannot be used any more.
    bool ends_connection() const noexcept;

private:
    ErrorCode code_;
    std::size_t needed_;
};

}  // namespace shmsock

#endif  // SHMSOCK_ERROR_HPP
