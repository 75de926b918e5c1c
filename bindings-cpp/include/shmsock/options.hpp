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
    /// Servers: the most connections a Server (or Listener: the streams it
    /// accepted that are not closed yet) keeps at once (default 1024);
    /// further clients get a REJECT (reason 7) and their connect throws
    /// ResourceExhausted ("the server is full"). With the ring size it bounds
    /// the shared memory a server commits (about 2 × ring_size × n). It also
    /// bounds the accepted clients that have not sent their HELLO yet (servers
    /// and Listener::accept): when full, the oldest gives way to a newcomer.
    /// Throws InvalidArgument for 0 (the options are then unchanged).
    Options& max_connections(std::size_t n);
    /// Servers: the most connections a Server keeps at once for one peer uid
    /// (default 0: no limit of its own, only max_connections). A client of a
    /// uid at its limit is refused as when the server is full (REJECT 7,
    /// ResourceExhausted); it bounds that uid's clients yet to send their
    /// HELLO too.
    Options& max_connections_per_uid(std::size_t n);
    /// Servers, listeners and publishers: the most handshakes in progress at
    /// once, overall and for one peer uid (default 64 and 64). For a Server and
    /// Listener::accept these are the handshakes past the client's HELLO, each
    /// holding a new segment until the client's READY; a HELLO beyond them gets
    /// a REJECT (reason 7: ResourceExhausted). A Publisher bounds all its
    /// subscriber handshakes in progress by them: when full, the oldest client
    /// that has not sent its SUBSCRIBE gives way, else the newcomer gets the
    /// REJECT. A per-uid bound below the overall one keeps one uid's stalled
    /// clients from holding every place. Throws InvalidArgument when either is
    /// 0 (the options are then unchanged).
    Options& max_pending_handshakes(std::size_t overall, std::size_t per_uid);
    /// Servers: the most bytes a Connection queues while its ring is full
    /// (default 1 MiB). A Connection::send beyond it throws WouldBlock and
    /// queues nothing; a single message larger than this is still queued when
    /// the queue is empty. Once a send was refused, the server reads no more of
    /// that client's messages until it has taken every queued reply.
    Options& max_queued_bytes(std::size_t bytes);
    /// Servers: the number of dispatch threads (default 1, at most 256);
    /// connections are spread over them, so callbacks of connections on
    /// different threads may run at once. Throws InvalidArgument outside 1 to
    /// 256 (the options are then unchanged).
    Options& dispatch_threads(std::size_t n);
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
