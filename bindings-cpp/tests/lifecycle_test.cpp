// Handles: move semantics, empty (moved-from) handles, use after close, double
// close, bad arguments, and close() from another thread. Never an abort.
#include <future>
#include <thread>
#include <type_traits>

#include "support.hpp"

using namespace std::chrono_literals;
using shmsock::ErrorCode;
using shmsock::Keypair;
using shmsock::Listener;
using shmsock::Options;
using shmsock::Stream;

static_assert(!std::is_copy_constructible_v<Keypair> && std::is_nothrow_move_constructible_v<Keypair>);
static_assert(!std::is_copy_constructible_v<Listener> && std::is_nothrow_move_constructible_v<Listener>);
static_assert(!std::is_copy_constructible_v<Stream> && std::is_nothrow_move_constructible_v<Stream>);
static_assert(!std::is_copy_constructible_v<shmsock::Server> && std::is_nothrow_move_constructible_v<shmsock::Server>);
static_assert(!std::is_copy_constructible_v<shmsock::Client> && std::is_nothrow_move_constructible_v<shmsock::Client>);
static_assert(!std::is_copy_assignable_v<Stream> && std::is_nothrow_move_assignable_v<Stream>);
static_assert(std::is_copy_constructible_v<Options> && std::is_copy_constructible_v<shmsock::Connection>);

TEST(Lifecycle, MovedFromStreamThrowsClosed) {
    auto pair = support::connect_pair();
    Stream moved = std::move(pair.client);
    EXPECT_FALSE(pair.client.valid());
    EXPECT_FALSE(static_cast<bool>(pair.client));
    EXPECT_TRUE(pair.client.is_closed());
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.send(std::string_view("x")));
    EXPECT_NE(std::string(e.what()).find("moved from"), std::string::npos) << e.what();
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.recv());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.recv(1ms));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.try_recv());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.try_send(std::string_view("x")));
    char buf[4];
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.recv_into(buf, sizeof buf));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.close());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.stats());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.peer_public_key());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.native_handle());
    // The moved-to stream works.
    moved.send(std::string_view("moved"));
    EXPECT_EQ(pair.server.recv(5s).size(), 5u);
    // Move assignment closes what the target held.
    Stream other;
    other = std::move(moved);
    Stream& alias = other;
    other = std::move(alias);  // self-move leaves it usable
    other.send(std::string_view("again"));
    EXPECT_EQ(pair.server.recv(5s).size(), 5u);
    other = Stream();
    EXPECT_SHMSOCK_ERROR(ErrorCode::PeerClosed, pair.server.recv(5s));
}

TEST(Lifecycle, DefaultConstructedHandlesThrowClosed) {
    Keypair kp;
    Listener listener;
    Stream stream;
    shmsock::Server server;
    shmsock::Client client;
    shmsock::Connection connection;
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, kp.public_key());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, kp.save(support::scratch_dir() + "/never.key"));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, Options().keypair(kp));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, listener.accept(1ms));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, listener.name());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, stream.send(std::string_view("x")));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, server.connections());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, client.write(std::string_view("x")));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, connection.send(std::string_view("x")));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, connection.id());
    EXPECT_TRUE(stream.is_closed());
    EXPECT_TRUE(listener.is_closed());
    EXPECT_TRUE(server.is_closed());
    EXPECT_TRUE(client.is_closed());
    EXPECT_TRUE(connection.is_closed());
}

TEST(Lifecycle, MovedFromKeypairAndOptions) {
    auto kp = Keypair::generate();
    auto key = kp.public_key();
    Keypair other = std::move(kp);
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, kp.public_key());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, kp.clone());
    EXPECT_EQ(other.public_key(), key);
    kp = std::move(other);  // a moved-from handle can be assigned again
    EXPECT_EQ(kp.public_key(), key);

    Options a;
    Options b = std::move(a);
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, a.ring_size(4096));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, a.validate());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, Stream::connect("x", a));
    Options copy_of_moved(a);  // copying an empty Options gives an empty one
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, copy_of_moved.validate());
    a = b;  // and assigning brings it back
    EXPECT_NO_THROW(a.validate());
}

TEST(Lifecycle, MovedFromListener) {
    auto kp = Keypair::generate();
    auto listener = Listener::bind(support::unique_name("move-listener"), support::server_options(kp));
    Listener moved(std::move(listener));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, listener.accept(1ms));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, listener.close());
    EXPECT_EQ(moved.public_key(), kp.public_key());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Timeout, moved.accept(1ms));
}

TEST(Lifecycle, UseAfterCloseThrowsClosedAndCloseIsIdempotent) {
    auto pair = support::connect_pair();
    pair.client.close();
    pair.client.close();
    EXPECT_TRUE(pair.client.is_closed());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.send(std::string_view("x")));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.try_send(std::string_view("x")));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.recv(1s));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.try_recv());
    char buf[1];
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.try_recv_into(buf, 1));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.client.hand_over());
    // Information stays available after close.
    EXPECT_EQ(pair.client.peer_public_key(), pair.server_keypair.public_key());
    EXPECT_NO_THROW(pair.client.stats());

    pair.listener.close();
    pair.listener.close();
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.listener.accept(1ms));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, pair.listener.native_handle());
    EXPECT_EQ(pair.listener.rejected_count(), 0u);  // still known after close
    EXPECT_EQ(pair.listener.public_key(), pair.server_keypair.public_key());
}

TEST(Lifecycle, CloseFromAnotherThreadWakesABlockedRecv) {
    auto pair = support::connect_pair();
    auto blocked = std::async(std::launch::async, [&]() -> ErrorCode {
        try {
            (void)pair.server.recv();  // forever
            return ErrorCode::Io;
        } catch (const shmsock::Error& e) {
            return e.code();
        }
    });
    std::this_thread::sleep_for(50ms);
    pair.server.close();
    ASSERT_EQ(blocked.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(blocked.get(), ErrorCode::Closed);
}

TEST(Lifecycle, CloseFromAnotherThreadWakesABlockedSend) {
    auto pair = support::connect_pair([](Options& o) { o.ring_size(4096); });
    auto chunk = support::pattern(500);
    while (pair.client.try_send(chunk)) {
    }
    auto blocked = std::async(std::launch::async, [&]() -> ErrorCode {
        try {
            pair.client.send(chunk);  // forever: the server does not read
            return ErrorCode::Io;
        } catch (const shmsock::Error& e) {
            return e.code();
        }
    });
    std::this_thread::sleep_for(50ms);
    pair.client.close();
    ASSERT_EQ(blocked.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(blocked.get(), ErrorCode::Closed);
}

TEST(Lifecycle, BadArguments) {
    auto pair = support::connect_pair();
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, pair.client.send(nullptr, 5));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, pair.client.try_send(nullptr, 1));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, pair.client.recv_into(nullptr, 5));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, pair.client.try_recv_into(nullptr, 5));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, pair.client.recv(-1ms));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, pair.client.send(std::string_view("x"), -1ms));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, shmsock::PublicKey::from_bytes(nullptr, 3));
    // None of that broke the stream.
    pair.client.send(std::string_view("fine"));
    EXPECT_EQ(pair.server.recv(5s).size(), 4u);
}
