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
//   Publisher, Subscriber encrypted publish/subscribe
//   Reactor              one thread's wait over many streams and timers
// Each concept has its header under shmsock/ (error, bytes, keys, options,
// stream, listener, server, client, pubsub, reactor), which compiles on its
// own; this header includes them all.
//
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

#include <string>

// One header per concept (each compiles on its own).
#include "shmsock/bytes.hpp"
#include "shmsock/client.hpp"
#include "shmsock/error.hpp"
#include "shmsock/keys.hpp"
#include "shmsock/listener.hpp"
#include "shmsock/options.hpp"
#include "shmsock/pubsub.hpp"
#include "shmsock/reactor.hpp"
#include "shmsock/server.hpp"
#include "shmsock/stream.hpp"

namespace shmsock {

/// The version of shmsock (the workspace version, e.g. "0.1.0").
std::string version();

}  // namespace shmsock

#endif  // SHMSOCK_HPP
