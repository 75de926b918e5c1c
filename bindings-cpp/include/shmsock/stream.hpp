// shmsock streams: Stream (connect, send, receive, close, introspection) and
// the values it reports (Stats, Credentials).
// Included by <shmsock.hpp>; compiles on its own.
#ifndef SHMSOCK_STREAM_HPP
#define SHMSOCK_STREAM_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bytes.hpp"
#include "error.hpp"
#include "keys.hpp"
#include "options.hpp"

namespace shmsock {

namespace bridge {
// The Rust objects behind the handles (opaque here; defined by the cxx bridge).
struct StreamBox;
struct ConnectingBox;
}  // namespace bridge

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
    /// For an event loop about to wait on pollable_fd() after try_recv found
    /// nothing: when the peer runs on this thread's CPU (two processes on one
    /// core), hands the CPU over to it as a blocking receive does (sched_yield
    /// and a look, twice at most; adaptive) and returns true as soon as a
    /// message (its first frame, for a large one) is there; false at once
    /// otherwise. Receives nothing: after true, call try_recv again (a large
    /// message may still be incomplete); after false, wait on the fd.
    bool hand_over();

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
    friend class Connecting;
    explicit Stream(bridge::StreamBox* impl) noexcept : impl_(impl) {}
    const bridge::StreamBox& get() const;
    bridge::StreamBox* impl_ = nullptr;
};

/// A connect that an event loop drives. Move-only; destroying it while it is
/// pending closes its socket (the server sees the client leave).
///
///     auto c = shmsock::Connecting::start("orders", opts);   // sends the HELLO, never waits
///     // when c.fd() is readable (or c.time_left() has passed):
///     if (auto stream = c.advance()) { ... }                   // nullopt: not yet
class Connecting {
public:
    /// An empty handle (as if moved from).
    Connecting() noexcept = default;
    Connecting(Connecting&& other) noexcept;
    Connecting& operator=(Connecting&& other) noexcept;
    Connecting(const Connecting&) = delete;
    Connecting& operator=(const Connecting&) = delete;
    ~Connecting();

    /// Connects the control socket and sends the HELLO without waiting. Throws
    /// NotFound when no server listens, unless Options::connect_wait is set:
    /// then the connect looks for its server again through fd() (when the
    /// runtime directory changes, and after a short backoff) until the wait
    /// ends, and advance() throws NotFound then. A server whose queue of
    /// waiting connections is full is tried again the same way until the
    /// handshake timeout (advance() throws Timeout then). Throws the errors of
    /// Stream::connect.
    static Connecting start(std::string_view name, const Options& options);
    /// Finishes if the server answered: the Stream, or nullopt while its answer
    /// has not come whole. Never waits. Throws what the server's REJECT says,
    /// or Timeout once time_left() is zero; the connect is over then (later
    /// calls throw Closed), as it is once the Stream was returned.
    std::optional<Stream> advance();
    /// The fd to watch for reading while the connect is pending (the same for
    /// the whole connect). Owned by the connect: do not close it, and stop
    /// watching it once advance() returned the Stream (a connect that waited
    /// for its server closes it then; otherwise it becomes the stream's
    /// control socket).
    int fd() const;
    /// How long until the connect gives up (the handshake's timeout, or the
    /// end of the wait for its server; zero once past). It may grow when the
    /// server takes a connect that waited: read it again after each advance().
    std::chrono::nanoseconds time_left() const;

    bool valid() const noexcept { return impl_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

private:
    explicit Connecting(bridge::ConnectingBox* impl) noexcept : impl_(impl) {}
    const bridge::ConnectingBox& get() const;
    bridge::ConnectingBox* impl_ = nullptr;
};

}  // namespace shmsock

#endif  // SHMSOCK_STREAM_HPP
