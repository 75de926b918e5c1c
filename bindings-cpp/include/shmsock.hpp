// shmsock: encrypted, authenticated message sockets over shared memory.
//
// The C++17 API of shmsock, in namespace `shmsock`. Link the CMake target
// `shmsock::shmsock_cpp` (find_package(shmsock_cpp)); see bindings-cpp/README.md.
//
// Classes mirror the core's concepts:
//   Keypair, PublicKey   static identities (X25519)
//   Options              the builder of everything configurable
//   Listener, Stream     bind/accept, connect, send/recv (blocking, with timeouts, or try_)
//   Server, Client       the event-driven pair, with std::function callbacks
//   Publisher, Subscriber encrypted publish/subscribe (shmsock/pubsub.hpp)
//   Reactor              one thread's wait over many streams and timers (shmsock/reactor.hpp)
// Every failure throws shmsock::Error, whose code() is the core's stable error
// code. Keypair, Listener, Stream, Server, Client, Publisher, Subscriber and
// Reactor are move-only RAII handles;
// using a moved-from or closed one throws Error (code Closed), never aborts.
//
// Threads: every method of Stream, Listener, Server, Client and Connection may
// be called from any thread, also at once (one thread may send while another
// receives; concurrent senders take turns per whole message). close() from
// another thread wakes blocked calls, which then throw Error(Closed). As for any
// C++ object, do not destroy one while another thread is still inside a call on
// it: close() it, join that thread, then let it go.
#ifndef SHMSOCK_HPP
#define SHMSOCK_HPP

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace shmsock {

namespace bridge {
// The Rust objects behind the handles (opaque here; defined by the cxx bridge).
struct KeypairBox;
struct OptionsBox;
struct StreamBox;
struct ListenerBox;
struct ServerBox;
struct ConnectionBox;
struct ClientBox;
}  // namespace bridge

/// The version of shmsock (the workspace version, e.g. "0.1.0").
std::string version();

// ------------------------------------------------------------------ errors

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

// -------------------------------------------------------- bytes, timeouts

/// A read-only view of bytes (C++17 has no std::span), valid during a callback.
class ByteView {
public:
    constexpr ByteView() noexcept = default;
    constexpr ByteView(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

    constexpr const std::uint8_t* data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr const std::uint8_t* begin() const noexcept { return data_; }
    constexpr const std::uint8_t* end() const noexcept { return data_ + size_; }
    constexpr std::uint8_t operator[](std::size_t i) const noexcept { return data_[i]; }
    /// A copy.
    std::vector<std::uint8_t> to_vector() const { return std::vector<std::uint8_t>(begin(), end()); }
    /// The bytes as characters (no copy).
    std::string_view as_string_view() const noexcept {
        return std::string_view(reinterpret_cast<const char*>(data_), size_);
    }

private:
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
};

/// A time limit: any std::chrono duration (converted to nanoseconds), or
/// `shmsock::forever` (std::nullopt) to wait as long as it takes. Negative
/// durations are refused with InvalidArgument.
using Timeout = std::optional<std::chrono::nanoseconds>;
/// Wait as long as it takes.
inline constexpr std::nullopt_t forever = std::nullopt;

namespace detail {
template <class T>
struct is_byte : std::bool_constant<std::is_same_v<T, char> || std::is_same_v<T, unsigned char> ||
                                    std::is_same_v<T, signed char> || std::is_same_v<T, std::byte>> {};

template <class C, class = void>
struct byte_range : std::false_type {};
// A contiguous container of bytes: data() and size() (std::string, std::vector,
// std::array, ByteView, a span of C++20, ...), or an array of unsigned bytes.
// Arrays of char are left out on purpose: "text" must not send its final NUL;
// it goes to the std::string_view overload.
template <class C>
struct byte_range<C, std::void_t<decltype(std::data(std::declval<C&>())), decltype(std::size(std::declval<C&>()))>>
    : std::bool_constant<is_byte<std::remove_cv_t<std::remove_pointer_t<decltype(std::data(std::declval<C&>()))>>>::value &&
                         !(std::is_array_v<std::remove_reference_t<C>> &&
                           std::is_same_v<std::remove_cv_t<std::remove_extent_t<std::remove_reference_t<C>>>, char>)> {};

template <class C, class = void>
struct mutable_byte_range : std::false_type {};
template <class C>
struct mutable_byte_range<C, std::void_t<decltype(std::data(std::declval<C&>())), decltype(std::size(std::declval<C&>()))>>
    : std::bool_constant<is_byte<std::remove_pointer_t<decltype(std::data(std::declval<C&>()))>>::value> {};

template <class C>
inline constexpr bool byte_range_v = byte_range<const C>::value;
template <class C>
inline constexpr bool mutable_byte_range_v = mutable_byte_range<C>::value;
}  // namespace detail

// -------------------------------------------------------------------- keys

/// A static X25519 public key: who a peer is. A plain value (copyable).
class PublicKey {
public:
    static constexpr std::size_t size = 32;

    /// All zero bytes (not a usable key).
    PublicKey() noexcept = default;
    explicit PublicKey(const std::array<std::uint8_t, size>& bytes) noexcept : bytes_(bytes) {}
    /// The key from exactly 32 bytes (else InvalidKey).
    static PublicKey from_bytes(const void* data, std::size_t size);
    /// Parses the text form `shmsock-pk:<base64url>` (surrounding white space ignored).
    static PublicKey from_text(std::string_view text);

    /// The 32 raw bytes.
    const std::array<std::uint8_t, size>& bytes() const noexcept { return bytes_; }
    /// The text form, `shmsock-pk:<base64url>`.
    std::string to_text() const;
    /// A short fingerprint for display, e.g. `3f2a:9c11:07be:55d0`.
    std::string fingerprint() const;

    friend bool operator==(const PublicKey& a, const PublicKey& b) noexcept { return a.bytes_ == b.bytes_; }
    friend bool operator!=(const PublicKey& a, const PublicKey& b) noexcept { return a.bytes_ != b.bytes_; }
    friend bool operator<(const PublicKey& a, const PublicKey& b) noexcept { return a.bytes_ < b.bytes_; }

private:
    std::array<std::uint8_t, size> bytes_{};
};

/// A static keypair: this side's identity. The secret stays in the library and
/// is zeroed when the keypair is destroyed. Move-only; `clone()` copies.
class Keypair {
public:
    /// An empty handle (as if moved from).
    Keypair() noexcept = default;
    Keypair(Keypair&& other) noexcept;
    Keypair& operator=(Keypair&& other) noexcept;
    Keypair(const Keypair&) = delete;
    Keypair& operator=(const Keypair&) = delete;
    ~Keypair();

    /// A fresh random keypair.
    static Keypair generate();
    /// Loads a key file; refuses one that group or others can read (InsecureKeyFile).
    static Keypair load(std::string_view path);
    /// The keypair of a 32-byte secret.
    static Keypair from_secret(const void* secret, std::size_t size);

    /// Writes a new key file with mode 0600; never overwrites (InvalidArgument).
    void save(std::string_view path) const;
    /// A copy (the secret is copied inside the library).
    Keypair clone() const;

    PublicKey public_key() const;
    std::array<std::uint8_t, PublicKey::size> public_key_bytes() const { return public_key().bytes(); }
    std::string public_key_text() const { return public_key().to_text(); }
    std::string fingerprint() const { return public_key().fingerprint(); }

    /// False for an empty (moved-from) handle.
    bool valid() const noexcept { return impl_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

private:
    friend class Options;
    explicit Keypair(bridge::KeypairBox* impl) noexcept : impl_(impl) {}
    const bridge::KeypairBox& get() const;
    bridge::KeypairBox* impl_ = nullptr;
};

// ----------------------------------------------------------------- options

/// How a server creates a connection's shared memory (the client accepts either).
enum class Backend : std::uint8_t {
    Memfd = 1,  ///< an anonymous sealed memfd passed over the control socket (Linux default)
    Named = 2,  ///< a POSIX shared-memory object with a random name, unlinked once mapped
};

/// Everything configurable about a connection. A copyable value; setters chain:
///
///     auto opts = shmsock::Options().server_key(key).recv_timeout(std::chrono::seconds(2));
class Options {
public:
    Options();
    Options(const Options& other);
    Options& operator=(const Options& other);
    Options(Options&& other) noexcept;
    Options& operator=(Options&& other) noexcept;
    ~Options();

    /// This side's keypair (required by servers; clients get a fresh one when unset). Copied.
    Options& keypair(const Keypair& keypair);
    /// Pins the server's public key (required to connect).
    Options& server_key(const PublicKey& key);
    /// Servers: accept only these client keys.
    Options& allow_clients(const std::vector<PublicKey>& keys);
    /// Servers: accept any client key (the default).
    Options& allow_any_client();
    /// Servers: accept only these peer uids.
    Options& allow_uids(const std::vector<std::uint32_t>& uids);
    /// Servers: accept any uid that can reach the socket (the default).
    Options& allow_any_uid();
    /// Capacity of each ring in bytes: a power of two, 4 KiB to 1 GiB (0: the default).
    Options& ring_size(std::uint32_t bytes);
    /// The largest message this side accepts to receive (default 16 MiB).
    Options& max_message_size(std::uint32_t bytes);
    /// Default limit of send (default: forever).
    Options& send_timeout(Timeout timeout);
    /// Default limit of recv (default: forever).
    Options& recv_timeout(Timeout timeout);
    /// Limit of connecting and of each server-side handshake (default 5 s).
    Options& handshake_timeout(std::chrono::nanoseconds timeout);
    /// How long a blocking call spins before sleeping (default 50 µs).
    Options& spin(std::chrono::nanoseconds spin);
    /// Servers: how segments are created.
    Options& backend(Backend backend);
    /// Use ChaCha20-Poly1305 even where AEGIS-128L is available.
    Options& require_chacha(bool require = true);
    /// Checks the values that do not depend on the side (throws InvalidArgument).
    void validate() const;

private:
    friend class Listener;
    friend class Stream;
    friend class Server;
    friend class Client;
    friend class Publisher;
    friend class Subscriber;
    const bridge::OptionsBox& get() const;
    bridge::OptionsBox& get_mut();
    bridge::OptionsBox* impl_ = nullptr;
};

// ----------------------------------------------------------------- streams

/// Message and byte counts.
struct Stats {
    std::uint64_t messages_sent = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t messages_received = 0;
    std::uint64_t bytes_received = 0;
};

/// The peer process, per the kernel (SO_PEERCRED).
struct Credentials {
    std::int32_t pid = 0;
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
};

/// An encrypted, authenticated message stream to one peer. Move-only.
///
/// Messages keep their boundaries; zero-length messages are allowed. Blocking
/// calls take an optional Timeout; without one they use the stream's default
/// (Options::send_timeout / recv_timeout). Any authentication failure or
/// protocol violation ends the connection: later calls throw that error.
class Stream {
public:
    /// An empty handle (as if moved from).
    Stream() noexcept = default;
    Stream(Stream&& other) noexcept;
    Stream& operator=(Stream&& other) noexcept;
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    /// Closes the stream.
    ~Stream();

    /// Connects to the server of endpoint `name`, whose key `options.server_key` pins.
    static Stream connect(std::string_view name, const Options& options);

    // ---- sending: one whole message per call
    void send(const void* data, std::size_t size);
    void send(const void* data, std::size_t size, Timeout timeout);
    void send(std::string_view text) { send(text.data(), text.size()); }
    void send(std::string_view text, Timeout timeout) { send(text.data(), text.size(), timeout); }
    template <class C, std::enable_if_t<detail::byte_range_v<C>, int> = 0>
    void send(const C& bytes) { send(std::data(bytes), std::size(bytes)); }
    template <class C, std::enable_if_t<detail::byte_range_v<C>, int> = 0>
    void send(const C& bytes, Timeout timeout) { send(std::data(bytes), std::size(bytes), timeout); }

    /// Sends only if the whole message fits in the ring now; false: nothing was sent.
    bool try_send(const void* data, std::size_t size);
    bool try_send(std::string_view text) { return try_send(text.data(), text.size()); }
    template <class C, std::enable_if_t<detail::byte_range_v<C>, int> = 0>
    bool try_send(const C& bytes) { return try_send(std::data(bytes), std::size(bytes)); }

    /// How far send_resumable() got.
    struct SendProgress {
        /// The whole message is in the ring.
        bool complete = false;
        /// Bytes of the message in the ring (the whole size when complete).
        std::size_t sent = 0;
    };
    /// Never blocks: writes as much of the message as fits in the ring now
    /// and keeps the progress. Not complete: call again with the same message
    /// (same size) once the pollable fd is readable. Meanwhile other sends on
    /// this stream say no (try_send) or wait (send). Messages larger than the
    /// ring go through in parts this way; the peer never sees half a message
    /// (closing with one partly sent ends the connection: PeerGone for it).
    SendProgress send_resumable(const void* data, std::size_t size);
    SendProgress send_resumable(std::string_view text) { return send_resumable(text.data(), text.size()); }
    template <class C, std::enable_if_t<detail::byte_range_v<C>, int> = 0>
    SendProgress send_resumable(const C& bytes) { return send_resumable(std::data(bytes), std::size(bytes)); }

    // ---- receiving
    /// The next message.
    std::vector<std::uint8_t> recv();
    std::vector<std::uint8_t> recv(Timeout timeout);
    /// The next message into `buffer`; returns its length. A buffer too small
    /// throws BufferTooSmall (Error::needed() says how much) and keeps the message.
    std::size_t recv_into(void* buffer, std::size_t capacity);
    std::size_t recv_into(void* buffer, std::size_t capacity, Timeout timeout);
    template <class C, std::enable_if_t<detail::mutable_byte_range_v<C>, int> = 0>
    std::size_t recv_into(C& buffer) { return recv_into(std::data(buffer), std::size(buffer)); }
    template <class C, std::enable_if_t<detail::mutable_byte_range_v<C>, int> = 0>
    std::size_t recv_into(C& buffer, Timeout timeout) { return recv_into(std::data(buffer), std::size(buffer), timeout); }
    /// The next message if one is complete now; nullopt otherwise (the pollable
    /// fd then becomes readable when one arrives).
    std::optional<std::vector<std::uint8_t>> try_recv();
    std::optional<std::size_t> try_recv_into(void* buffer, std::size_t capacity);
    template <class C, std::enable_if_t<detail::mutable_byte_range_v<C>, int> = 0>
    std::optional<std::size_t> try_recv_into(C& buffer) { return try_recv_into(std::data(buffer), std::size(buffer)); }

    // ---- closing
    /// Closes: the peer receives every message sent before, then PeerClosed.
    /// Idempotent; later calls throw Closed; blocked calls on other threads wake with Closed.
    void close();
    /// True once closed by this side (or moved from).
    bool is_closed() const;

    // ---- information
    PublicKey peer_public_key() const;
    PublicKey local_public_key() const;
    Credentials peer_credentials() const;
    Stats stats() const;
    /// The transport cipher: "aegis-128l" or "chacha20-poly1305".
    std::string cipher() const;
    Backend backend() const;
    std::uint32_t ring_size() const;
    std::uint32_t peer_max_message_size() const;
    std::string endpoint() const;
    /// True on the side that accepted.
    bool is_server_side() const;
    /// The pollable fd: readable when, after try_recv returned nullopt, a message,
    /// a close or the peer's death is pending. Owned by the stream: do not close it.
    int native_handle() const;
    int fd() const { return native_handle(); }

    bool valid() const noexcept { return impl_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

private:
    friend class Listener;
    friend class Reactor;
    explicit Stream(bridge::StreamBox* impl) noexcept : impl_(impl) {}
    const bridge::StreamBox& get() const;
    bridge::StreamBox* impl_ = nullptr;
};

/// A bound endpoint that accepts clients. Move-only; destroying it removes the
/// endpoint (accepted streams stay connected).
class Listener {
public:
    Listener() noexcept = default;
    Listener(Listener&& other) noexcept;
    Listener& operator=(Listener&& other) noexcept;
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;
    ~Listener();

    /// Binds endpoint `name` ([A-Za-z0-9._-], at most 100 bytes); `options.keypair` is required.
    static Listener bind(std::string_view name, const Options& options);

    /// Waits for a client and completes its handshake (clients that fail it are
    /// skipped; see rejected_count()). Default: forever.
    Stream accept(Timeout timeout = forever);
    /// Stops listening and removes the endpoint; a thread blocked in accept
    /// throws Closed at once. Idempotent. rejected_count() and last_rejection()
    /// stay available.
    void close();
    bool is_closed() const;

    std::string name() const;
    PublicKey public_key() const;
    /// The listening socket: readable when a client is waiting.
    int native_handle() const;
    int fd() const { return native_handle(); }
    /// How many clients failed the handshake so far.
    std::uint64_t rejected_count() const;
    /// Why the last client failed the handshake, if one did.
    std::optional<Error> last_rejection() const;

    bool valid() const noexcept { return impl_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

private:
    friend class Reactor;
    explicit Listener(bridge::ListenerBox* impl) noexcept : impl_(impl) {}
    const bridge::ListenerBox& get() const;
    bridge::ListenerBox* impl_ = nullptr;
};

// ------------------------------------------------------------ event-driven

/// One client of a Server. Copyable (copies share the connection); usable from
/// any thread, also after the callback that handed it over returned.
class Connection {
public:
    Connection() noexcept = default;
    Connection(const Connection& other);
    Connection& operator=(const Connection& other);
    Connection(Connection&& other) noexcept;
    Connection& operator=(Connection&& other) noexcept;
    ~Connection();

    /// A number unique within the server.
    std::uint64_t id() const;
    /// Sends without ever blocking: into the ring if it fits now, else into the
    /// connection's bounded outbound queue (Options max_queued_bytes), which
    /// the dispatch thread sends in order. A full queue throws WouldBlock and
    /// queues nothing (drop, retry later or close: the same policy in every
    /// language). Safe from callbacks.
    void send(const void* data, std::size_t size);
    /// Sends straight into the ring, waiting up to `timeout`: blocks, so not
    /// from a callback.
    void send(const void* data, std::size_t size, Timeout timeout);
    void send(std::string_view text) { send(text.data(), text.size()); }
    void send(std::string_view text, Timeout timeout) { send(text.data(), text.size(), timeout); }
    template <class C, std::enable_if_t<detail::byte_range_v<C>, int> = 0>
    void send(const C& bytes) { send(std::data(bytes), std::size(bytes)); }
    template <class C, std::enable_if_t<detail::byte_range_v<C>, int> = 0>
    void send(const C& bytes, Timeout timeout) { send(std::data(bytes), std::size(bytes), timeout); }
    bool try_send(const void* data, std::size_t size);
    bool try_send(std::string_view text) { return try_send(text.data(), text.size()); }
    template <class C, std::enable_if_t<detail::byte_range_v<C>, int> = 0>
    bool try_send(const C& bytes) { return try_send(std::data(bytes), std::size(bytes)); }
    /// Closes this connection; on_close follows on the dispatch thread.
    void close();
    bool is_closed() const;
    PublicKey peer_public_key() const;
    /// This side's public key: the server's.
    PublicKey local_public_key() const;
    Credentials peer_credentials() const;
    Stats stats() const;
    /// The transport cipher: "aegis-128l" or "chacha20-poly1305" (as the client's Stream::cipher()).
    std::string cipher() const;

    bool valid() const noexcept { return impl_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

private:
    friend struct ConnectionAccess;
    Connection(const bridge::ConnectionBox* impl, bool owned) noexcept : impl_(impl), owned_(owned) {}
    const bridge::ConnectionBox& get() const;
    const bridge::ConnectionBox* impl_ = nullptr;
    bool owned_ = false;  // false: borrowed from the core for the length of a callback
};

/// An event-driven server: many clients served from one dispatch thread.
/// Callbacks run on that thread, one at a time (on_close also on the thread
/// that calls close()). A callback that throws is reported to on_error with
/// code Io, and serving goes on; an exception thrown by on_error is dropped.
class Server {
public:
    struct Handlers {
        /// A client completed the handshake.
        std::function<void(Connection&)> on_connect;
        /// A message arrived (the bytes are valid during the call).
        std::function<void(Connection&, ByteView)> on_data;
        /// Something failed: a connection (on_close follows; connection != nullptr),
        /// a client's handshake (connection == nullptr), or a callback that threw.
        std::function<void(Connection*, const Error&)> on_error;
        /// A connection ended: reason is nullptr after a clean close by either side.
        std::function<void(Connection&, const Error* reason)> on_close;
    };

    Server() noexcept = default;
    Server(Server&& other) noexcept;
    Server& operator=(Server&& other) noexcept;
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    /// close()s.
    ~Server();

    /// Binds endpoint `name` (see Listener::bind) and starts serving.
    static Server start(std::string_view name, const Options& options, Handlers handlers);

    /// Stops serving: closes every connection (each gets on_close), removes the
    /// endpoint and joins the dispatch thread. Idempotent.
    void close();
    bool is_closed() const;
    std::string name() const;
    PublicKey public_key() const;
    /// The connected clients now.
    std::vector<Connection> connections() const;

    bool valid() const noexcept { return impl_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

private:
    explicit Server(bridge::ServerBox* impl) noexcept : impl_(impl) {}
    const bridge::ServerBox& get() const;
    bridge::ServerBox* impl_ = nullptr;
};

/// An event-driven client of one endpoint: a reader thread calls the callbacks.
class Client {
public:
    struct Handlers {
        /// A message arrived (the bytes are valid during the call).
        std::function<void(ByteView)> on_data;
        /// The connection failed (on_close follows), or a callback threw.
        std::function<void(const Error&)> on_error;
        /// The connection ended: reason is nullptr after a clean close by either side.
        std::function<void(const Error* reason)> on_close;
    };

    Client() noexcept = default;
    Client(Client&& other) noexcept;
    Client& operator=(Client&& other) noexcept;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    /// close()s.
    ~Client();

    /// Connects (see Stream::connect) and starts the reader thread.
    static Client connect(std::string_view name, const Options& options, Handlers handlers);

    void write(const void* data, std::size_t size);
    void write(const void* data, std::size_t size, Timeout timeout);
    void write(std::string_view text) { write(text.data(), text.size()); }
    void write(std::string_view text, Timeout timeout) { write(text.data(), text.size(), timeout); }
    template <class C, std::enable_if_t<detail::byte_range_v<C>, int> = 0>
    void write(const C& bytes) { write(std::data(bytes), std::size(bytes)); }
    template <class C, std::enable_if_t<detail::byte_range_v<C>, int> = 0>
    void write(const C& bytes, Timeout timeout) { write(std::data(bytes), std::size(bytes), timeout); }
    bool try_write(const void* data, std::size_t size);
    bool try_write(std::string_view text) { return try_write(text.data(), text.size()); }
    template <class C, std::enable_if_t<detail::byte_range_v<C>, int> = 0>
    bool try_write(const C& bytes) { return try_write(std::data(bytes), std::size(bytes)); }

    /// Closes the connection and waits for the reader thread: on_close has run
    /// when it returns (unless called from a callback). Idempotent.
    void close();
    bool is_closed() const;
    PublicKey server_public_key() const;
    Stats stats() const;

    bool valid() const noexcept { return impl_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

private:
    explicit Client(bridge::ClientBox* impl) noexcept : impl_(impl) {}
    const bridge::ClientBox& get() const;
    bridge::ClientBox* impl_ = nullptr;
};

}  // namespace shmsock

namespace std {
template <>
struct hash<shmsock::PublicKey> {
    size_t operator()(const shmsock::PublicKey& key) const noexcept {
        // The keys are uniformly random: their first bytes are a good hash.
        size_t h = 0;
        for (size_t i = 0; i < sizeof(size_t); ++i) h = (h << 8) | key.bytes()[i];
        return h;
    }
};
}  // namespace std

// The concepts with a header of their own (they include this one).
#include "shmsock/pubsub.hpp"
#include "shmsock/reactor.hpp"

#endif  // SHMSOCK_HPP
