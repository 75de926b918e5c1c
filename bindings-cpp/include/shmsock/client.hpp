// shmsock event-driven clients: Client (a reader thread calls the callbacks).
// Included by <shmsock.hpp>; compiles on its own.
#ifndef SHMSOCK_CLIENT_HPP
#define SHMSOCK_CLIENT_HPP

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
struct ClientBox;
}  // namespace bridge

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

#endif  // SHMSOCK_CLIENT_HPP
