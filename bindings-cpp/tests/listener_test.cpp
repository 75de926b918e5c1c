// Listener: bind, accept with timeouts, names, close, and the pollable fd.
#include <poll.h>

#include <algorithm>
#include <future>
#include <thread>

#include "support.hpp"

using namespace std::chrono_literals;
using shmsock::ErrorCode;
using shmsock::Keypair;
using shmsock::Listener;
using shmsock::Options;
using shmsock::Stream;

TEST(Listener, AcceptTimesOut) {
    auto kp = Keypair::generate();
    auto listener = Listener::bind(support::unique_name("accept-timeout"), support::server_options(kp));
    auto start = std::chrono::steady_clock::now();
    EXPECT_SHMSOCK_ERROR(ErrorCode::Timeout, listener.accept(50ms));
    auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_GE(waited, 45ms);
    EXPECT_LT(waited, 2s);
    EXPECT_SHMSOCK_ERROR(ErrorCode::Timeout, listener.accept(0ms));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, listener.accept(-1ms));
}

TEST(Listener, NameKeyAndFd) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("info");
    auto listener = Listener::bind(name, support::server_options(kp));
    EXPECT_EQ(listener.name(), name);
    EXPECT_EQ(listener.public_key(), kp.public_key());
    int fd = listener.native_handle();
    EXPECT_GE(fd, 0);
    pollfd p{fd, POLLIN, 0};
    EXPECT_EQ(poll(&p, 1, 0), 0);
    Options opts;
    opts.server_key(kp.public_key());
    auto connecting = std::async(std::launch::async, [&] { return Stream::connect(name, opts); });
    EXPECT_EQ(poll(&p, 1, 5000), 1);  // a client is waiting
    auto server = listener.accept(5s);
    auto client = connecting.get();
    EXPECT_EQ(listener.rejected_count(), 0u);
    EXPECT_FALSE(listener.last_rejection().has_value());
}

TEST(Listener, BindingATakenNameIsAddressInUse) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("taken");
    auto first = Listener::bind(name, support::server_options(kp));
    EXPECT_SHMSOCK_ERROR(ErrorCode::AddressInUse, Listener::bind(name, support::server_options(kp)));
    first.close();
    // Once closed, the name is free again.
    auto second = Listener::bind(name, support::server_options(kp));
    EXPECT_EQ(second.name(), name);
}

TEST(Listener, InvalidNames) {
    auto opts = support::server_options(Keypair::generate());
    for (std::string bad : {std::string(""), std::string("has space"), std::string("slash/name"), std::string("ü"),
                            std::string(101, 'a'), std::string("nul\0byte", 8), std::string("\xff\xfe")}) {
        SCOPED_TRACE("name '" + bad + "'");
        EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidName, Listener::bind(bad, opts));
        Options client;
        client.server_key(Keypair::generate().public_key());
        EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidName, Stream::connect(bad, client));
    }
}

TEST(Listener, ConnectingToNobodyIsNotFound) {
    Options opts;
    opts.server_key(Keypair::generate().public_key());
    EXPECT_SHMSOCK_ERROR(ErrorCode::NotFound, Stream::connect(support::unique_name("nobody"), opts));
}

TEST(Listener, ServerNeedsAKeypairClientNeedsTheServerKey) {
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, Listener::bind(support::unique_name("nokey"), Options()));
    auto kp = Keypair::generate();
    auto name = support::unique_name("pin");
    auto listener = Listener::bind(name, support::server_options(kp));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, Stream::connect(name, Options()));
}

TEST(Listener, WrongPinnedKeyIsServerKeyMismatch) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("mismatch");
    auto listener = Listener::bind(name, support::server_options(kp));
    std::thread acceptor([&] {
        try {
            (void)listener.accept(10s);
        } catch (const shmsock::Error&) {
        }
    });
    Options opts;
    opts.server_key(Keypair::generate().public_key());
    EXPECT_SHMSOCK_ERROR(ErrorCode::ServerKeyMismatch, Stream::connect(name, opts));
    listener.close();  // wakes the acceptor at once
    acceptor.join();
    EXPECT_GE(listener.rejected_count(), 1u);
    auto why = listener.last_rejection();
    ASSERT_TRUE(why.has_value());
    EXPECT_EQ(why->code(), ErrorCode::ServerKeyMismatch);
}

TEST(Listener, CloseWakesABlockedAccept) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("close-accept");
    auto listener = Listener::bind(name, support::server_options(kp));
    std::promise<shmsock::ErrorCode> result;
    std::thread acceptor([&] {
        try {
            (void)listener.accept();  // forever
            result.set_value(ErrorCode::Io);
        } catch (const shmsock::Error& e) {
            result.set_value(e.code());
        }
    });
    std::this_thread::sleep_for(50ms);
    auto start = std::chrono::steady_clock::now();
    listener.close();
    auto future = result.get_future();
    ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(future.get(), ErrorCode::Closed);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    acceptor.join();
    EXPECT_TRUE(listener.is_closed());
    // The endpoint is gone.
    Options opts;
    opts.server_key(kp.public_key());
    EXPECT_SHMSOCK_ERROR(ErrorCode::NotFound, Stream::connect(name, opts));
}

TEST(Listener, AcceptedStreamsOutliveTheListener) {
    auto pair = support::connect_pair();
    pair.listener.close();
    pair.client.send(std::string_view("still here"));
    auto got = pair.server.recv(5s);
    EXPECT_EQ(std::string(got.begin(), got.end()), "still here");
}

// A listener keeps at most max_connections streams open: one more client is
// refused with ResourceExhausted; set_max_connections changes the bound while
// it serves, and 0 is InvalidArgument.
TEST(Listener, SetMaxConnectionsBoundsTheOpenStreams) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("seats");
    auto listener = Listener::bind(name, support::server_options(kp).max_connections(1));
    auto accepted = std::async(std::launch::async, [&] {
        std::vector<Stream> kept;
        for (int i = 0; i < 2; i++) kept.push_back(listener.accept(10s));
        return kept;
    });
    Options opts;
    opts.server_key(kp.public_key());
    auto first = Stream::connect(name, opts);
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::ResourceExhausted, Stream::connect(name, opts));
    EXPECT_NE(std::string(e.what()).find("full"), std::string::npos) << e.what();
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, listener.set_max_connections(0));
    listener.set_max_connections(2, 2);
    auto second = Stream::connect(name, opts);
    auto kept = accepted.get();
    ASSERT_EQ(kept.size(), 2u);
    second.send(std::string_view("seated"));
    auto got = kept[1].recv(5s);
    EXPECT_EQ(std::string(got.begin(), got.end()), "seated");
}

// One thread drives a listener and two connects to it with poll(): no call
// waits (Connecting and accept(0ns) advance on readiness).
TEST(Connecting, OneThreadDrivesAListenerAndItsClients) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("connecting");
    auto listener = Listener::bind(name, support::server_options(kp));
    Options opts;
    opts.server_key(kp.public_key());
    std::vector<shmsock::Connecting> pending;
    pending.push_back(shmsock::Connecting::start(name, opts));
    pending.push_back(shmsock::Connecting::start(name, opts));
    EXPECT_GT(pending[0].time_left(), 0ns);
    std::vector<Stream> clients, served;
    auto until = std::chrono::steady_clock::now() + 30s;
    while (clients.size() < 2 || served.size() < 2) {
        ASSERT_LT(std::chrono::steady_clock::now(), until);
        std::vector<pollfd> fds{{listener.fd(), POLLIN, 0}};
        for (auto& c : pending) fds.push_back({c ? c.fd() : -1, POLLIN, 0});
        ASSERT_GE(poll(fds.data(), fds.size(), 1000), 0);
        for (;;) {
            try {
                served.push_back(listener.accept(0ns));
            } catch (const shmsock::Error& e) {
                ASSERT_EQ(e.code(), ErrorCode::Timeout) << e.what();
                break;
            }
        }
        for (auto& c : pending) {
            if (!c) continue;
            if (auto stream = c.advance()) {
                clients.push_back(std::move(*stream));
                EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, c.advance());
                c = shmsock::Connecting();
            }
        }
    }
    clients[0].send("one");
    clients[1].send("two");
    std::vector<std::string> got;
    for (auto& s : served) {
        auto m = s.recv(5s);
        got.emplace_back(m.begin(), m.end());
    }
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<std::string>{"one", "two"}));
}

// With a connect wait, a connect started before its server binds finds it
// through fd() (the same fd throughout); a wait that ends first is NotFound.
TEST(Connecting, AConnectWaitFindsAServerThatBindsLater) {
    auto kp = Keypair::generate();
    auto name = support::unique_name("later");
    Options opts;
    opts.server_key(kp.public_key()).connect_wait(20s);
    auto c = shmsock::Connecting::start(name, opts);
    const int fd = c.fd();
    EXPECT_FALSE(c.advance().has_value());
    auto listener = Listener::bind(name, support::server_options(kp));
    std::optional<Stream> client, served;
    auto until = std::chrono::steady_clock::now() + 30s;
    while (!client || !served) {
        ASSERT_LT(std::chrono::steady_clock::now(), until);
        std::vector<pollfd> fds{{listener.fd(), POLLIN, 0}, {client ? -1 : c.fd(), POLLIN, 0}};
        ASSERT_GE(poll(fds.data(), fds.size(), 1000), 0);
        if (!served) {
            try {
                served = listener.accept(0ns);
            } catch (const shmsock::Error& e) {
                ASSERT_EQ(e.code(), ErrorCode::Timeout) << e.what();
            }
        }
        if (!client) {
            ASSERT_EQ(c.fd(), fd);
            client = c.advance();
        }
    }
    client->send("later");
    auto m = served->recv(5s);
    EXPECT_EQ(std::string(m.begin(), m.end()), "later");

    Options brief;
    brief.server_key(kp.public_key()).connect_wait(100ms);
    auto never = shmsock::Connecting::start(support::unique_name("never"), brief);
    for (;;) {
        pollfd p{never.fd(), POLLIN, 0};
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(never.time_left()).count();
        ASSERT_GE(poll(&p, 1, static_cast<int>(left) + 1), 0);
        try {
            ASSERT_FALSE(never.advance().has_value());
        } catch (const shmsock::Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::NotFound) << e.what();
            break;
        }
    }
}

TEST(Connecting, NoServerIsNotFoundAndASilentOneTimesOut) {
    auto kp = Keypair::generate();
    Options opts;
    opts.server_key(kp.public_key());
    EXPECT_SHMSOCK_ERROR(ErrorCode::NotFound, shmsock::Connecting::start(support::unique_name("nobody"), opts));
    auto name = support::unique_name("silent-server");
    auto listener = Listener::bind(name, support::server_options(kp));  // never accepts
    opts.handshake_timeout(200ms);
    auto c = shmsock::Connecting::start(name, opts);
    EXPECT_FALSE(c.advance().has_value());
    std::this_thread::sleep_for(c.time_left() + 10ms);
    EXPECT_EQ(c.time_left(), 0ns);
    EXPECT_SHMSOCK_ERROR(ErrorCode::Timeout, c.advance());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, c.advance());
    shmsock::Connecting empty;
    EXPECT_FALSE(empty.valid());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, empty.advance());
}
