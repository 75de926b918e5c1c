// Several threads at once: senders on one stream, full duplex, many clients
// of one server, writers on one client, and close while others send.
#include <atomic>
#include <cstring>
#include <future>
#include <map>
#include <thread>

#include "support.hpp"

using namespace std::chrono_literals;
using shmsock::ByteView;
using shmsock::Connection;
using shmsock::ErrorCode;
using shmsock::Options;
using shmsock::Stream;

namespace {

struct Tag {
    std::uint32_t thread;
    std::uint32_t seq;
};

std::vector<std::uint8_t> tagged(std::uint32_t thread, std::uint32_t seq, std::size_t size) {
    auto out = support::pattern(std::max(size, sizeof(Tag)), thread * 1000 + seq);
    Tag tag{thread, seq};
    std::memcpy(out.data(), &tag, sizeof tag);
    return out;
}

}  // namespace

TEST(Threads, SeveralSendersOnOneStream) {
    auto pair = support::connect_pair([](Options& o) { o.ring_size(1 << 16); });
    constexpr std::uint32_t kThreads = 4;
    constexpr std::uint32_t kMessages = 300;
    std::vector<std::thread> senders;
    for (std::uint32_t t = 0; t < kThreads; ++t) {
        senders.emplace_back([&, t] {
            for (std::uint32_t i = 0; i < kMessages; ++i) pair.client.send(tagged(t, i, 8 + (i * 37) % 20000), 30s);
        });
    }
    std::map<std::uint32_t, std::uint32_t> next;
    for (std::uint32_t n = 0; n < kThreads * kMessages; ++n) {
        auto message = pair.server.recv(30s);
        ASSERT_GE(message.size(), sizeof(Tag));
        Tag tag;
        std::memcpy(&tag, message.data(), sizeof tag);
        ASSERT_LT(tag.thread, kThreads);
        EXPECT_EQ(tag.seq, next[tag.thread]) << "per-thread order is kept";
        next[tag.thread] = tag.seq + 1;
        EXPECT_TRUE(message == tagged(tag.thread, tag.seq, message.size())) << "message intact";
    }
    for (auto& s : senders) s.join();
    EXPECT_EQ(pair.client.stats().messages_sent, kThreads * kMessages);
}

TEST(Threads, FullDuplexOnOneStream) {
    auto pair = support::connect_pair();
    constexpr int kMessages = 2000;
    auto server_side = std::async(std::launch::async, [&] {
        for (int i = 0; i < kMessages; ++i) pair.server.send(std::to_string(i), 30s);
        int got = 0;
        for (int i = 0; i < kMessages; ++i) got += pair.server.recv(30s).size() > 0;
        return got;
    });
    auto client_reader = std::async(std::launch::async, [&] {
        int ok = 0;
        for (int i = 0; i < kMessages; ++i) {
            auto m = pair.client.recv(30s);
            ok += std::string(m.begin(), m.end()) == std::to_string(i);
        }
        return ok;
    });
    for (int i = 0; i < kMessages; ++i) pair.client.send(std::to_string(i), 30s);
    EXPECT_EQ(client_reader.get(), kMessages);
    EXPECT_EQ(server_side.get(), kMessages);
}

TEST(Threads, ManyClientsOfOneServer) {
    auto kp = shmsock::Keypair::generate();
    auto name = support::unique_name("many");
    shmsock::Server::Handlers h;
    h.on_data = [](Connection& c, ByteView d) { c.send(d); };
    auto server = shmsock::Server::start(name, support::server_options(kp), std::move(h));
    constexpr int kClients = 6;
    constexpr int kMessages = 200;
    std::vector<std::future<int>> clients;
    for (int c = 0; c < kClients; ++c) {
        clients.push_back(std::async(std::launch::async, [&, c] {
            Options opts;
            opts.server_key(kp.public_key());
            auto stream = Stream::connect(name, opts);
            int ok = 0;
            for (int i = 0; i < kMessages; ++i) {
                auto m = tagged(static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(i), 100 + static_cast<std::size_t>(i));
                stream.send(m, 30s);
                ok += stream.recv(30s) == m;
            }
            return ok;
        }));
    }
    for (auto& c : clients) EXPECT_EQ(c.get(), kMessages);
}

TEST(Threads, SeveralWritersOnOneClient) {
    auto kp = shmsock::Keypair::generate();
    auto name = support::unique_name("writers");
    std::atomic<int> received{0};
    shmsock::Server::Handlers h;
    h.on_data = [&](Connection&, ByteView) { ++received; };
    auto server = shmsock::Server::start(name, support::server_options(kp), std::move(h));
    Options opts;
    opts.server_key(kp.public_key());
    auto client = shmsock::Client::connect(name, opts, {});
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t) {
        writers.emplace_back([&] {
            for (int i = 0; i < 250; ++i) client.write(std::string_view("message"), 30s);
        });
    }
    for (auto& w : writers) w.join();
    ASSERT_TRUE(support::eventually([&] { return received.load() == 1000; }, 20000ms));
}

TEST(Threads, CloseWhileOthersSendAndReceive) {
    auto pair = support::connect_pair([](Options& o) { o.ring_size(1 << 14); });
    std::atomic<bool> stop{false};
    std::vector<std::future<ErrorCode>> workers;
    for (int t = 0; t < 3; ++t) {
        workers.push_back(std::async(std::launch::async, [&] {
            try {
                while (!stop) pair.client.send(support::pattern(3000), 10s);
            } catch (const shmsock::Error& e) {
                return e.code();
            }
            return ErrorCode::Io;
        }));
    }
    auto reader = std::async(std::launch::async, [&] {
        try {
            for (;;) (void)pair.server.recv(10s);
        } catch (const shmsock::Error& e) {
            return e.code();
        }
    });
    std::this_thread::sleep_for(100ms);
    pair.client.close();
    for (auto& w : workers) {
        ASSERT_EQ(w.wait_for(10s), std::future_status::ready);
        EXPECT_EQ(w.get(), ErrorCode::Closed);
    }
    ASSERT_EQ(reader.wait_for(10s), std::future_status::ready);
    auto code = reader.get();
    EXPECT_TRUE(code == ErrorCode::PeerClosed || code == ErrorCode::PeerGone) << shmsock::to_string(code);
    stop = true;
}
