// Options: the builder, copies, validation, and that each option takes effect.
#include <thread>

#include "support.hpp"

using namespace std::chrono_literals;
using shmsock::Backend;
using shmsock::ErrorCode;
using shmsock::Keypair;
using shmsock::Options;

TEST(Options, SettersChainAndCopiesAreIndependent) {
    auto kp = Keypair::generate();
    Options a;
    a.keypair(kp).ring_size(1 << 16).max_message_size(1 << 20).send_timeout(1s).recv_timeout(shmsock::forever)
        .handshake_timeout(2s).spin(10us).backend(Backend::Named).require_chacha().allow_any_client().allow_any_uid()
        .max_reassembly_bytes(1 << 20);
    Options b = a;
    b.ring_size(3);  // invalid, but only in b
    EXPECT_NO_THROW(a.validate());
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, b.validate());
    Options c;
    c = b;
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, c.validate());
    c = a;
    EXPECT_NO_THROW(c.validate());
}

TEST(Options, BadValuesAreInvalidArgument) {
    Options o;
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, o.send_timeout(-1ms));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, o.recv_timeout(std::chrono::nanoseconds(-5)));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, o.handshake_timeout(-1s));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, o.spin(-1us));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, o.backend(static_cast<Backend>(7)));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, o.max_message_size(0));
    o.handshake_timeout(0s);
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, o.validate());
    Options ring;
    ring.ring_size(1000);  // not a power of two
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, ring.validate());
}

// The server limits refuse what cannot work at their setter, with the core's
// message, and leave the options as they were.
TEST(Options, ServerLimitsRefuseBadValuesAtTheirSetter) {
    Options o;
    o.max_connections(1).max_connections_per_uid(0).max_pending_handshakes(1, 1).max_queued_bytes(0)
        .dispatch_threads(256);
    EXPECT_NO_THROW(o.validate());
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, o.max_connections(0));
    EXPECT_NE(std::string(e.what()).find("max_connections"), std::string::npos) << e.what();
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, o.max_pending_handshakes(0, 1));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, o.max_pending_handshakes(1, 0));
    e = EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, o.dispatch_threads(0));
    EXPECT_NE(std::string(e.what()).find("dispatch_threads"), std::string::npos) << e.what();
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, o.dispatch_threads(257));
    EXPECT_NO_THROW(o.validate()) << "a refused value changed nothing";
    // A server started with what is left uses the last good values.
    auto kp = Keypair::generate();
    auto name = support::unique_name("limits-left");
    auto server = shmsock::Server::start(name, o.keypair(kp), {});
    Options copts;
    copts.server_key(kp.public_key());
    auto first = shmsock::Stream::connect(name, copts);
    ASSERT_TRUE(support::eventually([&] { return server.connections().size() == 1; }));
    EXPECT_SHMSOCK_ERROR(ErrorCode::ResourceExhausted, shmsock::Stream::connect(name, copts));
}

TEST(Options, RingSizeAndMaxMessageSizeTakeEffect) {
    auto pair = support::connect_pair([](Options& o) { o.ring_size(1 << 16).max_message_size(4096); },
                                      [](Options& o) { o.max_message_size(8192); });
    EXPECT_EQ(pair.client.ring_size(), 1u << 16);
    EXPECT_EQ(pair.server.ring_size(), 1u << 16);
    EXPECT_EQ(pair.client.peer_max_message_size(), 4096u);
    EXPECT_EQ(pair.server.peer_max_message_size(), 8192u);
    std::vector<std::uint8_t> big(4097);
    EXPECT_SHMSOCK_ERROR(ErrorCode::MessageTooLarge, pair.client.send(big));
    big.resize(4096);
    pair.client.send(big);
    EXPECT_EQ(pair.server.recv(5s).size(), 4096u);
}

TEST(Options, ABudgetSmallerThanAMessageStillLetsItThrough) {
    // 4 KiB rings: 100 KiB takes many frames, gathered under a 1-byte bound
    // (one message always passes when no other is being gathered).
    auto pair = support::connect_pair([](Options& o) { o.ring_size(4096).max_reassembly_bytes(1); },
                                      [](Options&) {});
    std::vector<std::uint8_t> big(100 << 10, 0x5a);
    std::thread sender([&] { pair.client.send(big); });
    auto got = pair.server.recv(5s);
    sender.join();
    EXPECT_EQ(std::vector<std::uint8_t>(got.begin(), got.end()), big);
}

TEST(Options, NamedBackendAndChaCha) {
    auto pair = support::connect_pair([](Options& o) { o.backend(Backend::Named); },
                                      [](Options& o) { o.require_chacha(); });
    EXPECT_EQ(pair.client.backend(), Backend::Named);
    EXPECT_EQ(pair.server.backend(), Backend::Named);
    EXPECT_EQ(pair.client.cipher(), "chacha20-poly1305");
    EXPECT_EQ(pair.server.cipher(), "chacha20-poly1305");
    pair.client.send(std::string_view("over a named segment"));
    auto got = pair.server.recv(5s);
    EXPECT_EQ(std::string(got.begin(), got.end()), "over a named segment");
}

TEST(Options, DefaultBackendIsMemfd) {
    auto pair = support::connect_pair();
    EXPECT_EQ(pair.server.backend(), Backend::Memfd);
    auto cipher = pair.client.cipher();
    EXPECT_TRUE(cipher == "aegis-128l" || cipher == "chacha20-poly1305") << cipher;
}

TEST(Options, DefaultTimeoutsApply) {
    auto pair = support::connect_pair({}, [](Options& o) { o.recv_timeout(50ms); });
    auto start = std::chrono::steady_clock::now();
    EXPECT_SHMSOCK_ERROR(ErrorCode::Timeout, pair.client.recv());
    auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_GE(waited, 45ms);
    EXPECT_LT(waited, 5s);
    // An explicit timeout overrides the default.
    start = std::chrono::steady_clock::now();
    EXPECT_SHMSOCK_ERROR(ErrorCode::Timeout, pair.client.recv(1ms));
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

TEST(Options, AllowListAdmitsOnlyListedClients) {
    auto server_kp = Keypair::generate();
    auto good = Keypair::generate();
    auto name = support::unique_name("allow");
    Options server_opts;
    server_opts.keypair(server_kp).allow_clients({good.public_key()});
    auto listener = shmsock::Listener::bind(name, server_opts);
    std::thread acceptor([&] {
        try {
            auto s = listener.accept(10s);
            s.send(std::string_view("welcome"));
            (void)s.recv(10s);
        } catch (const shmsock::Error&) {
        }
    });
    Options bad_opts;
    bad_opts.server_key(server_kp.public_key()).keypair(Keypair::generate());
    EXPECT_SHMSOCK_ERROR(ErrorCode::HandshakeRejected, shmsock::Stream::connect(name, bad_opts));
    Options good_opts;
    good_opts.server_key(server_kp.public_key()).keypair(good);
    auto stream = shmsock::Stream::connect(name, good_opts);
    EXPECT_EQ(stream.local_public_key(), good.public_key());
    auto hello = stream.recv(5s);
    EXPECT_EQ(std::string(hello.begin(), hello.end()), "welcome");
    stream.close();
    acceptor.join();
    EXPECT_GE(listener.rejected_count(), 1u);
    auto why = listener.last_rejection();
    ASSERT_TRUE(why.has_value());
    EXPECT_EQ(why->code(), ErrorCode::HandshakeRejected);
}
