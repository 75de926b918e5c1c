// shmsock listeners: Listener binds an endpoint and accepts Streams.
// Included by <shmsock.hpp>; compiles on its own.
#ifndef SHMSOCK_LISTENER_HPP
#define SHMSOCK_LISTENER_HPP

#include <string>
#include <string_view>

#include "bytes.hpp"
#include "keys.hpp"
#include "options.hpp"
#include "stream.hpp"

namespace shmsock {

namespace bridge {
// The Rust objects behind the handles (opaque here; defined by the cxx bridge).
struct ListenerBox;
}  // namespace bridge

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
    /// The pollable fd: readable when accept(0ns) may make progress (a client
    /// waits, a handshake got its client's next record, or a handshake's
    /// deadline passed); call accept(0ns) until it throws Timeout.
    int native_handle() const;
    int fd() const { return native_handle(); }
    /// How many clients failed the handshake so far.
    std::uint64_t rejected_count() const;
    /// Why the last client failed the handshake, if one did.
    std::optional<Error> last_rejection() const;
    /// Changes how many accepted streams stay open at once (Options
    /// max_connections and max_connections_per_uid at bind; max_per_uid 0: no
    /// bound of its own). A client beyond them is refused at its handshake
    /// (its connect throws ResourceExhausted); a stream counts until it is
    /// closed or destroyed; streams beyond a lowered bound stay connected.
    /// Throws InvalidArgument for max 0. Safe beside a thread in accept.
    void set_max_connections(std::size_t max, std::size_t max_per_uid = 0);

    bool valid() const noexcept { return impl_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

private:
    friend class Reactor;
    explicit Listener(bridge::ListenerBox* impl) noexcept : impl_(impl) {}
    const bridge::ListenerBox& get() const;
    bridge::ListenerBox* impl_ = nullptr;
};

}  // namespace shmsock

#endif  // SHMSOCK_LISTENER_HPP
