// The error type and codes, the version, and the test hooks of the error mapping.

#include "internal.hpp"
#include "testing.hpp"

namespace shmsock {

using namespace internal;

std::string version() {
    return std::string(call([] { return bridge::version(); }));
}

// ------------------------------------------------------------------ errors

const char* to_string(ErrorCode code) noexcept {
    switch (code) {
        // BEGIN GENERATED: error names (from the core table; see bindings-cpp/src/errors.rs)
        case ErrorCode::Timeout: return "TIMEOUT";
        case ErrorCode::WouldBlock: return "WOULD_BLOCK";
        case ErrorCode::Closed: return "CLOSED";
        case ErrorCode::PeerClosed: return "PEER_CLOSED";
        case ErrorCode::PeerGone: return "PEER_GONE";
        case ErrorCode::HandshakeRejected: return "HANDSHAKE_REJECTED";
        case ErrorCode::ServerKeyMismatch: return "SERVER_KEY_MISMATCH";
        case ErrorCode::AuthenticationFailed: return "AUTHENTICATION_FAILED";
        case ErrorCode::ProtocolVersion: return "PROTOCOL_VERSION";
        case ErrorCode::NoCommonCipher: return "NO_COMMON_CIPHER";
        case ErrorCode::ProtocolViolation: return "PROTOCOL_VIOLATION";
        case ErrorCode::MessageTooLarge: return "MESSAGE_TOO_LARGE";
        case ErrorCode::BufferTooSmall: return "BUFFER_TOO_SMALL";
        case ErrorCode::InvalidName: return "INVALID_NAME";
        case ErrorCode::AddressInUse: return "ADDRESS_IN_USE";
        case ErrorCode::NotFound: return "NOT_FOUND";
        case ErrorCode::InvalidKey: return "INVALID_KEY";
        case ErrorCode::InsecureKeyFile: return "INSECURE_KEY_FILE";
        case ErrorCode::InvalidArgument: return "INVALID_ARGUMENT";
        case ErrorCode::ResourceExhausted: return "RESOURCE_EXHAUSTED";
        case ErrorCode::PermissionDenied: return "PERMISSION_DENIED";
        case ErrorCode::Io: return "IO";
        // END GENERATED: error names
    }
    return "UNKNOWN";
}

Error::Error(ErrorCode code, const std::string& message, std::size_t needed)
    : std::runtime_error(message), code_(code), needed_(needed) {}

bool Error::ends_connection() const noexcept {
    switch (code_) {
        // BEGIN GENERATED: errors that end the connection (from the core table; see bindings-cpp/src/errors.rs)
        case ErrorCode::Closed:
        case ErrorCode::PeerClosed:
        case ErrorCode::PeerGone:
        case ErrorCode::AuthenticationFailed:
        case ErrorCode::ProtocolViolation:
        // END GENERATED: errors that end the connection
            return true;
        default:
            return false;
    }
}

namespace testing {

void raise_core_error(std::uint32_t code, std::string_view message) {
    call([&] { bridge::testing_raise(code, text_bytes(message)); });
    throw Error(ErrorCode::Io, "testing_raise returned without an error");
}

void panic_in_rust(std::string_view message) {
    call([&] { bridge::testing_panic(text_bytes(message)); });
}

std::string core_error_name(std::uint32_t code) {
    return std::string(call([&] { return bridge::error_name(code); }));
}

}  // namespace testing

}  // namespace shmsock
