// shmsock options: the backend of a connection's shared memory and Options,
// the builder of everything configurable.
// Included by <shmsock.hpp>; compiles on its own.
#ifndef SHMSOCK_OPTIONS_HPP
#define SHMSOCK_OPTIONS_HPP

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bytes.hpp"
#include "error.hpp"
#include "keys.hpp"

namespace shmsock {

namespace bridge {
// The Rust objects behind the handles (opaque here; defined by the cxx bridge).
struct OptionsBox;
}  // namespace bridge

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
    /// Clients: how long a connect waits for its server to appear (default 0:
    /// NotFound at once), like the command line's `--wait`. It tries again
    /// whenever an endpoint appears in the runtime directory (at least every
    /// 64 ms); a busy server's full queue is waited for as long. At most a day.
    Options& connect_wait(std::chrono::nanoseconds wait);
    /// How long a blocking call spins before sleeping (default 50 µs).
    Options& spin(std::chrono::nanoseconds spin);
    /// Servers: how segments are created.
    Options& backend(Backend backend);
    /// Use ChaCha20-Poly1305 even where AEGIS-128L is available.
    Options& require_chacha(bool require = true);
    /// Listeners and servers: the most bytes of messages longer than one 64 KiB
    /// frame that all their connections gather at once (default 64 MiB). A
    /// connection without room leaves its message in its ring (its peer's
    /// sends wait) until room comes back, so peers that stop half way through
    /// giant messages cannot exhaust the server's memory; nothing is lost.
    /// While others wait for room, a connection whose message stopped moving
    /// (no frame for 3 s, or slower than 1 MiB/s) is ended: its receive
    /// throws ResourceExhausted.
    Options& max_reassembly_bytes(std::size_t bytes);
    /// Checks the values that do not depend on the side (throws InvalidArgument).
    void validate() const;

private:
    friend class Listener;
    friend class Stream;
    friend class Connecting;
    friend class Server;
    friend class Client;
    friend class Publisher;
    friend class Subscriber;
    friend class Subscribing;
    const bridge::OptionsBox& get() const;
    bridge::OptionsBox& get_mut();
    bridge::OptionsBox* impl_ = nullptr;
};

}  // namespace shmsock

#endif  // SHMSOCK_OPTIONS_HPP
