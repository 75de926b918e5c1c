// Server: callbacks on_connect / on_data / on_error / on_close, connections,
// replies from callbacks and other threads, callbacks that throw, closing.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "support.hpp"

using namespace std::chrono_literals;
using shmsock::ByteView;
using shmsock::Connection;
using shmsock::Error;
using shmsock::ErrorCode;
using shmsock::Keypair;
using shmsock::Options;
using shmsock::Server;
using shmsock::Stream;

namespace {

// What the callbacks saw, guarded by a mutex.
struct Events {
    std::mutex mutex;
    std::vector<std::uint64_t> connected;
    std::vector<std::string> data;
    std::vector<std::pair<bool, Error>> errors;  // (had a connection, error)
    std::vector<std::pair<std::uint64_t, std::optional<ErrorCode>>> closed;

    template <class F>
    auto with(F&& f) {
        std::lock_guard<std::mutex> lock(mutex);
        return f();
    }
    std::size_t count_closed() {
        return with([&] { return closed.size(); });
    }
    std::size_t count_errors() {
        return with([&] { return errors.size(); });
    }
};

Server::Handlers recording_echo(Events& events) {
    Server::Handlers h;
    h.on_connect = [&events](Connection& c) { events.with([&] { events.connected.push_back(c.id()); }); };
    h.on_data = [&events](Connection& c, ByteView data) {
        std::string text(data.as_string_view());
        events.with([&] { events.data.push_back(text); });
        if (text == "throw") throw std::runtime_error("the callback failed on purpose");
        if (text == "throw-int") throw 42;
        if (text == "close-me") {
            c.close();
            return;
        }
        c.send(data);
    };
    h.on_error = [&events](Connection* c, const Error& e) { events.with([&] { events.errors.emplace_back(c != nullptr, e); }); };
    h.on_close = [&events](Connection& c, const Error* reason) {
        std::optional<ErrorCode> code;
        if (reason != nullptr) code = reason->code();
        events.with([&] { events.closed.emplace_back(c.id(), code); });
    };
    return h;
}

struct Fixture {
    Keypair keypair = Keypair::generate();
    std::string name = support::unique_name("server");
    Events events;
    Server server;
    Fixture() { server = Server::start(name, support::server_options(keypair), recording_echo(events)); }
    Stream connect() {
        Options opts;
        opts.server_key(keypair.public_key());
        return Stream::connect(name, opts);
    }
};

std::string text_of(const std::vector<std::uint8_t>& v) { return std::string(v.begin(), v.end()); }

}  // namespace

TEST(Server, EchoesThroughCallbacks) {
    Fixture f;
    EXPECT_EQ(f.server.name(), f.name);
    EXPECT_EQ(f.server.public_key(), f.keypair.public_key());
    auto client = f.connect();
    for (std::string m : {"one", "", "three"}) {
        client.send(m);
        EXPECT_EQ(text_of(client.recv(5s)), m);
    }
    auto big = support::pattern(3 << 20);
    client.send(big, 10s);
    EXPECT_TRUE(client.recv(10s) == big);
    ASSERT_TRUE(support::eventually([&] { return f.events.with([&] { return f.events.connected.size(); }) == 1; }));
    client.close();
    ASSERT_TRUE(support::eventually([&] { return f.events.count_closed() == 1; }));
    f.events.with([&] {
        EXPECT_EQ(f.events.closed[0].first, f.events.connected[0]);
        EXPECT_FALSE(f.events.closed[0].second.has_value()) << "a clean close has no reason";
        EXPECT_EQ(f.events.data.size(), 4u);
        EXPECT_TRUE(f.events.errors.empty());
    });
}

TEST(Server, ConnectionsAndRepliesFromAnotherThread) {
    Fixture f;
    std::vector<Stream> clients;
    for (int i = 0; i < 3; ++i) clients.push_back(f.connect());
    ASSERT_TRUE(support::eventually([&] { return f.server.connections().size() == 3; }));
    auto connections = f.server.connections();
    std::set<std::uint64_t> ids;
    for (auto& c : connections) {
        ids.insert(c.id());
        EXPECT_EQ(c.peer_credentials().pid, getpid());
        EXPECT_FALSE(c.is_closed());
    }
    EXPECT_EQ(ids.size(), 3u);
    // Push from this thread to every client.
    for (auto& c : connections) c.send(std::string_view("push"));
    std::set<shmsock::PublicKey> peers;
    for (auto& c : connections) peers.insert(c.peer_public_key());
    for (auto& client : clients) {
        EXPECT_EQ(text_of(client.recv(5s)), "push");
        EXPECT_EQ(peers.count(client.local_public_key()), 1u);
    }
    // Copies share the connection and outlive the list.
    Connection copy = connections[0];
    connections.clear();
    EXPECT_TRUE(copy.try_send(std::string_view("copy")));
    EXPECT_GE(copy.stats().messages_sent, 2u);
}

TEST(Server, ACallbackThatThrowsIsReportedAndServingGoesOn) {
    Fixture f;
    auto client = f.connect();
    client.send(std::string_view("throw"));
    ASSERT_TRUE(support::eventually([&] { return f.events.count_errors() == 1; }));
    client.send(std::string_view("throw-int"));
    ASSERT_TRUE(support::eventually([&] { return f.events.count_errors() == 2; }));
    f.events.with([&] {
        EXPECT_TRUE(f.events.errors[0].first) << "the error names the connection";
        EXPECT_EQ(f.events.errors[0].second.code(), ErrorCode::Io);
        std::string what = f.events.errors[0].second.what();
        EXPECT_NE(what.find("on_data"), std::string::npos) << what;
        EXPECT_NE(what.find("failed on purpose"), std::string::npos) << what;
        EXPECT_EQ(f.events.errors[1].second.code(), ErrorCode::Io);
    });
    // Still serving the same connection.
    client.send(std::string_view("after"));
    EXPECT_EQ(text_of(client.recv(5s)), "after");
    EXPECT_EQ(f.events.count_closed(), 0u);
}

TEST(Server, OnErrorThatThrowsIsDropped) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("throwing-on-error");
    std::atomic<int> errors{0};
    Server::Handlers h;
    h.on_data = [](Connection& c, ByteView d) {
        if (d.as_string_view() == "throw") throw std::runtime_error("data");
        c.send(d);
    };
    h.on_error = [&](Connection*, const Error&) {
        ++errors;
        throw std::logic_error("on_error throws too");
    };
    auto server = Server::start(name, support::server_options(kp), std::move(h));
    Options opts;
    opts.server_key(kp.public_key());
    auto client = Stream::connect(name, opts);
    client.send(std::string_view("throw"));
    ASSERT_TRUE(support::eventually([&] { return errors.load() == 1; }));
    client.send(std::string_view("ok"));
    EXPECT_EQ(text_of(client.recv(5s)), "ok");
}

TEST(Server, RefusedHandshakeIsReportedWithoutAConnection) {
    Fixture f;
    Options wrong;
    wrong.server_key(Keypair::generate().public_key());
    EXPECT_SHMSOCK_ERROR(ErrorCode::ServerKeyMismatch, Stream::connect(f.name, wrong));
    ASSERT_TRUE(support::eventually([&] { return f.events.count_errors() == 1; }));
    f.events.with([&] {
        EXPECT_FALSE(f.events.errors[0].first);
        EXPECT_EQ(f.events.errors[0].second.code(), ErrorCode::ServerKeyMismatch);
        EXPECT_TRUE(f.events.connected.empty());
    });
}

TEST(Server, ConnectionCloseFromACallback) {
    Fixture f;
    auto client = f.connect();
    client.send(std::string_view("close-me"));
    EXPECT_SHMSOCK_ERROR(ErrorCode::PeerClosed, client.recv(5s));
    ASSERT_TRUE(support::eventually([&] { return f.events.count_closed() == 1; }));
}

TEST(Server, CloseEndsEveryConnectionAndIsIdempotent) {
    Fixture f;
    auto a = f.connect();
    auto b = f.connect();
    ASSERT_TRUE(support::eventually([&] { return f.server.connections().size() == 2; }));
    f.server.close();
    EXPECT_EQ(f.events.count_closed(), 2u) << "on_close ran for each before close() returned";
    EXPECT_TRUE(f.server.is_closed());
    f.server.close();
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, f.server.connections());
    EXPECT_EQ(f.server.name(), f.name);
    EXPECT_SHMSOCK_ERROR(ErrorCode::PeerClosed, a.recv(5s));
    EXPECT_SHMSOCK_ERROR(ErrorCode::PeerClosed, b.recv(5s));
    // The endpoint is gone.
    Options opts;
    opts.server_key(f.keypair.public_key());
    EXPECT_SHMSOCK_ERROR(ErrorCode::NotFound, Stream::connect(f.name, opts));
}

TEST(Server, CloseFromInsideACallback) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("self-close");
    Server server;
    std::atomic<bool> closed_inside{false};
    Server::Handlers h;
    h.on_data = [&](Connection&, ByteView) {
        server.close();
        closed_inside = true;
    };
    server = Server::start(name, support::server_options(kp), std::move(h));
    Options opts;
    opts.server_key(kp.public_key());
    auto client = Stream::connect(name, opts);
    client.send(std::string_view("stop"));
    ASSERT_TRUE(support::eventually([&] { return closed_inside.load(); }));
    EXPECT_SHMSOCK_ERROR(ErrorCode::PeerClosed, client.recv(5s));
    EXPECT_TRUE(server.is_closed());
}

TEST(Server, StartFailures) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("start");
    auto first = Server::start(name, support::server_options(kp), {});
    EXPECT_SHMSOCK_ERROR(ErrorCode::AddressInUse, Server::start(name, support::server_options(kp), {}));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, Server::start(support::unique_name("nokey"), Options(), {}));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidName, Server::start("bad name", support::server_options(kp), {}));
}

TEST(Server, MovedFromServerThrowsClosed) {
    Fixture f;
    Server moved = std::move(f.server);
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, f.server.connections());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, f.server.close());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, f.server.name());
    auto client = f.connect();
    client.send(std::string_view("still served"));
    EXPECT_EQ(text_of(client.recv(5s)), "still served");
}

TEST(Server, NoHandlersAtAll) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("nohandlers");
    auto server = Server::start(name, support::server_options(kp), {});
    Options opts;
    opts.server_key(kp.public_key());
    auto client = Stream::connect(name, opts);
    client.send(std::string_view("into the void"));
    ASSERT_TRUE(support::eventually([&] { return server.connections().size() == 1; }));
    ASSERT_TRUE(support::eventually([&] { return server.connections()[0].stats().messages_received == 1; }));
}

// Connection::cipher() and local_public_key(), read inside on_connect and from
// this thread, match what the client's Stream reports, with the default cipher
// choice and with a server that requires ChaCha20-Poly1305.
TEST(Server, ConnectionReportsTheCipherAndLocalKeyOfItsStream) {
    for (bool chacha : {false, true}) {
        SCOPED_TRACE(chacha ? "require_chacha" : "default");
        auto kp = Keypair::generate();
        auto name = support::unique_name("cipher");
        std::mutex mutex;
        std::vector<std::string> seen_ciphers;
        std::vector<shmsock::PublicKey> seen_keys;
        Server::Handlers h;
        h.on_connect = [&](Connection& c) {
            auto cipher = c.cipher();
            auto key = c.local_public_key();
            std::lock_guard<std::mutex> lock(mutex);
            seen_ciphers.push_back(cipher);
            seen_keys.push_back(key);
        };
        auto opts = support::server_options(kp);
        if (chacha) opts.require_chacha();
        auto server = Server::start(name, opts, std::move(h));
        Options copts;
        copts.server_key(kp.public_key());
        auto client = Stream::connect(name, copts);
        ASSERT_TRUE(support::eventually([&] {
            std::lock_guard<std::mutex> lock(mutex);
            return seen_ciphers.size() == 1;
        }));
        auto client_cipher = client.cipher();
        if (chacha) {
            EXPECT_EQ(client_cipher, "chacha20-poly1305");
        }
        {
            std::lock_guard<std::mutex> lock(mutex);
            EXPECT_EQ(seen_ciphers[0], client_cipher);
            EXPECT_EQ(seen_keys[0], kp.public_key());
            EXPECT_EQ(seen_keys[0], client.peer_public_key());
        }
        auto connections = server.connections();
        ASSERT_EQ(connections.size(), 1u);
        Connection copy = connections[0];
        EXPECT_EQ(copy.cipher(), client_cipher);
        EXPECT_EQ(copy.local_public_key(), kp.public_key());
        // Still answered after the connection ended.
        client.close();
        ASSERT_TRUE(support::eventually([&] { return copy.is_closed() || server.connections().empty(); }));
        EXPECT_EQ(copy.cipher(), client_cipher);
    }
    // An empty Connection throws Closed, as its other methods do.
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, Connection().cipher());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, Connection().local_public_key());
}

namespace {

// Connects to `name` pinning `key`, retrying (a bounded number of times) while
// the server refuses with ResourceExhausted: it notices a close asynchronously.
Stream connect_when_room(const std::string& name, const shmsock::PublicKey& key) {
    Options opts;
    opts.server_key(key);
    for (int attempt = 0;; ++attempt) {
        try {
            return Stream::connect(name, opts);
        } catch (const Error& e) {
            if (e.code() != ErrorCode::ResourceExhausted || attempt >= 500) throw;
        }
        std::this_thread::sleep_for(10ms);
    }
}

void round_trip(Stream& client, const std::string& text) {
    client.send(text);
    EXPECT_EQ(text_of(client.recv(5s)), text);
}

}  // namespace

// Past max_connections a client's connect throws ResourceExhausted, saying the
// server is full; once a client leaves, another gets in.
TEST(Server, MaxConnectionsRefusesTheClientPastTheLimit) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("max-conn");
    Events events;
    auto server = Server::start(name, support::server_options(kp).max_connections(2), recording_echo(events));
    Options opts;
    opts.server_key(kp.public_key());
    auto a = Stream::connect(name, opts);
    auto b = Stream::connect(name, opts);
    round_trip(a, "a");
    round_trip(b, "b");
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::ResourceExhausted, Stream::connect(name, opts));
    EXPECT_NE(std::string(e.what()).find("full"), std::string::npos) << e.what();
    EXPECT_EQ(server.connections().size(), 2u);
    // The two connected clients are still served.
    round_trip(a, "a again");
    a.close();
    auto c = connect_when_room(name, kp.public_key());
    round_trip(c, "c");
    round_trip(b, "b again");
    EXPECT_EQ(server.connections().size(), 2u);
}

// max_connections_per_uid(1): a second client of this process's uid is refused
// while the first is connected, though the server has room.
TEST(Server, MaxConnectionsPerUidRefusesASecondClientOfOneUid) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("per-uid");
    Events events;
    auto server = Server::start(name, support::server_options(kp).max_connections_per_uid(1), recording_echo(events));
    Options opts;
    opts.server_key(kp.public_key());
    auto first = Stream::connect(name, opts);
    round_trip(first, "first");
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::ResourceExhausted, Stream::connect(name, opts));
    EXPECT_NE(std::string(e.what()).find("uid"), std::string::npos) << e.what();
    round_trip(first, "still served");
    first.close();
    auto second = connect_when_room(name, kp.public_key());
    round_trip(second, "second");
}

// A client that never reads: with a 4 KiB ring and max_queued_bytes(8192),
// Connection::send soon throws WouldBlock and queues nothing (the default
// 1 MiB queue would take hundreds of these messages); every accepted message
// then arrives in order once the client reads, and sending works again.
TEST(Server, MaxQueuedBytesBoundsTheQueueOfAClientThatNeverReads) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("queued");
    std::mutex mutex;
    std::optional<Connection> held;
    Server::Handlers h;
    h.on_connect = [&](Connection& c) {
        std::lock_guard<std::mutex> lock(mutex);
        held = c;
    };
    auto server = Server::start(name, support::server_options(kp).ring_size(4096).max_queued_bytes(8192), std::move(h));
    Options opts;
    opts.server_key(kp.public_key());
    auto client = Stream::connect(name, opts);
    ASSERT_TRUE(support::eventually([&] {
        std::lock_guard<std::mutex> lock(mutex);
        return held.has_value();
    }));
    Connection connection = [&] {
        std::lock_guard<std::mutex> lock(mutex);
        return *held;
    }();
    EXPECT_EQ(client.ring_size(), 4096u);
    std::size_t accepted = 0;
    std::optional<Error> refused;
    for (std::size_t i = 0; i < 10000 && !refused; ++i) {
        auto message = support::pattern(1024, static_cast<unsigned>(i));
        try {
            connection.send(message);
            ++accepted;
        } catch (const Error& e) {
            refused = e;
        }
    }
    ASSERT_TRUE(refused.has_value()) << accepted << " messages were all accepted";
    EXPECT_EQ(refused->code(), ErrorCode::WouldBlock) << refused->what();
    EXPECT_NE(std::string(refused->what()).find("queue"), std::string::npos) << refused->what();
    EXPECT_GE(accepted, 8u) << "the queue holds 8 KiB besides the ring";
    EXPECT_LT(accepted, 32u) << "a 4 KiB ring and an 8 KiB queue cannot hold 32 KiB";
    EXPECT_SHMSOCK_ERROR(ErrorCode::WouldBlock, connection.send(support::pattern(1024)));
    for (std::size_t i = 0; i < accepted; ++i) {
        EXPECT_TRUE(client.recv(5s) == support::pattern(1024, static_cast<unsigned>(i))) << "message " << i;
    }
    // The queue drained: the connection takes messages again.
    ASSERT_TRUE(support::eventually([&] {
        try {
            connection.send(std::string_view("after"));
            return true;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::WouldBlock) << e.what();
            return false;
        }
    }));
    EXPECT_EQ(text_of(client.recv(5s)), "after");
    EXPECT_FALSE(connection.is_closed());
}

// dispatch_threads(2): several clients at once are served, and their
// connections are spread over two dispatch threads.
TEST(Server, TwoDispatchThreadsServeSeveralClients) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("dispatch");
    std::mutex mutex;
    std::set<std::thread::id> threads;
    Server::Handlers h;
    h.on_data = [&](Connection& c, ByteView data) {
        {
            std::lock_guard<std::mutex> lock(mutex);
            threads.insert(std::this_thread::get_id());
        }
        c.send(data);
    };
    auto server = Server::start(name, support::server_options(kp).dispatch_threads(2), std::move(h));
    std::vector<std::future<std::string>> clients;
    for (unsigned i = 0; i < 6; ++i) clients.push_back(support::echo_client(name, kp.public_key(), i, 20));
    for (auto& client : clients) EXPECT_EQ(client.get(), "ok");
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_EQ(threads.size(), 2u) << "six connections on two dispatch threads";
    EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
}
