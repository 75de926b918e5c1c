// shmsock event-driven servers: Server (many clients served from one dispatch
// thread, or Options::dispatch_threads of them, through callbacks) and
// Connection (one of its clients).
// Included by <shmsock.hpp>; compiles on its own.
#ifndef SHMSOCK_SERVER_HPP
#define SHMSOCK_SERVER_HPP

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "bytes.hpp"
#include "error.hpp"
#include "keys.hpp"
#include "options.hpp"
#include "stream.hpp"

namespace shmsock {

namespace bridge {
// The Rust objects behind the handles (opaque here; defined by the cxx bridge).
struct ConnectionBox;
struct ServerBox;
}  // namespace bridge

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
    /// connection's bounded outbound queue (Options::max_queued_bytes), which
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
/// that calls close()). With Options::dispatch_threads(n), connections are
/// spread over n threads, and callbacks of connections on different threads
/// may run at once. Options::max_connections, max_connections_per_uid,
/// max_pending_handshakes and max_queued_bytes bound what clients can make it
/// hold. A callback that throws is reported to on_error with
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

}  // namespace shmsock

#endif  // SHMSOCK_SERVER_HPP
