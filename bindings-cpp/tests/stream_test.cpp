// Stream: echo of 0 B to several MiB, recv_into, try_ calls, the pollable fd,
// closing, and a peer in another process.
#include <poll.h>
#include <sys/epoll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <future>
#include <map>
#include <thread>

#include "support.hpp"

using namespace std::chrono_literals;
using shmsock::ErrorCode;
using shmsock::Stream;

namespace {

// Echoes every message on `stream` until the peer closes.
std::thread echo_thread(Stream& stream) {
    return std::thread([&stream] {
        try {
            for (;;) stream.send(stream.recv(30s));
        } catch (const shmsock::Error&) {
        }
    });
}

}  // namespace

TEST(Stream, EchoFromZeroBytesToSeveralMiB) {
    auto pair = support::connect_pair();
    auto echo = echo_thread(pair.server);
    const std::size_t sizes[] = {0, 1, 15, 16, 17, 1000, 4096, 65535, 65536, 65537, 1 << 20, (3 << 20) + 7, 8 << 20};
    unsigned seed = 0;
    for (std::size_t size : sizes) {
        auto message = support::pattern(size, ++seed);
        pair.client.send(message, 30s);
        auto back = pair.client.recv(30s);
        ASSERT_EQ(back.size(), size);
        EXPECT_TRUE(back == message) << "echo of " << size << " bytes differs";
    }
    auto stats = pair.client.stats();
    EXPECT_EQ(stats.messages_sent, std::size(sizes));
    EXPECT_EQ(stats.messages_received, std::size(sizes));
    EXPECT_EQ(stats.bytes_sent, stats.bytes_received);
    pair.client.close();
    echo.join();
}

TEST(Stream, SendOverloads) {
    auto pair = support::connect_pair();
    const std::uint8_t raw[3] = {1, 2, 3};
    std::array<std::uint8_t, 2> arr{{4, 5}};
    std::vector<std::byte> bytes{std::byte{6}};
    std::string text = "text";
    pair.client.send(raw, sizeof raw);
    pair.client.send(raw);                       // an array of bytes: all 3
    pair.client.send(arr);
    pair.client.send(bytes);
    pair.client.send(text);
    pair.client.send("literal");                 // no trailing NUL
    pair.client.send(std::string_view("view"), 1s);
    pair.client.send(shmsock::ByteView(raw, 2));
    pair.client.send(nullptr, 0);                // an empty message
    std::vector<std::vector<std::uint8_t>> expected = {
        {1, 2, 3}, {1, 2, 3}, {4, 5}, {6}, {'t', 'e', 'x', 't'},
        {'l', 'i', 't', 'e', 'r', 'a', 'l'}, {'v', 'i', 'e', 'w'}, {1, 2}, {}};
    for (const auto& want : expected) EXPECT_EQ(pair.server.recv(5s), want);
}

TEST(Stream, RecvIntoAndBufferTooSmallKeepsTheMessage) {
    auto pair = support::connect_pair();
    auto message = support::pattern(1000);
    pair.client.send(message);
    std::vector<std::uint8_t> small(10);
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::BufferTooSmall, pair.server.recv_into(small, 5s));
    EXPECT_EQ(e.needed(), 1000u);
    std::vector<std::uint8_t> big(e.needed());
    EXPECT_EQ(pair.server.recv_into(big, 5s), 1000u);
    EXPECT_EQ(big, message);
    // Into a raw buffer, a std::string and a C array.
    pair.client.send(std::string_view("abc"));
    char raw[8];
    EXPECT_EQ(pair.server.recv_into(raw, sizeof raw), 3u);
    EXPECT_EQ(std::string(raw, 3), "abc");
    pair.client.send(std::string_view("xyz"));
    std::string s(16, '\0');
    s.resize(pair.server.recv_into(s));
    EXPECT_EQ(s, "xyz");
    pair.client.send(nullptr, 0);
    EXPECT_EQ(pair.server.recv_into(nullptr, 0, 5s), 0u);
}

TEST(Stream, TryCallsNeverBlock) {
    auto pair = support::connect_pair([](shmsock::Options& o) { o.ring_size(4096); });
    EXPECT_FALSE(pair.server.try_recv().has_value());
    std::array<std::uint8_t, 16> buf{};
    EXPECT_FALSE(pair.server.try_recv_into(buf).has_value());
    // Fill the 4 KiB ring: try_send says false, and nothing partial is sent.
    auto chunk = support::pattern(500);
    int sent = 0;
    while (pair.client.try_send(chunk)) ++sent;
    EXPECT_GT(sent, 0);
    EXPECT_LT(sent, 10);
    for (int i = 0; i < sent; ++i) {
        auto got = pair.server.try_recv();
        if (!got) got = pair.server.recv(5s);
        EXPECT_EQ(*got, chunk);
    }
    EXPECT_TRUE(pair.client.try_send(std::string_view("fits again")));
    ASSERT_TRUE(support::eventually([&] { return pair.server.try_recv_into(buf).has_value(); }));
    EXPECT_EQ(std::string(buf.begin(), buf.begin() + 10), "fits again");
}

// An event loop's hand-over before it waits on the pollable fd: false with
// nothing sent, and it never takes a message, whatever it returns (whether it
// yields depends on where the peer runs).
TEST(Stream, HandOverLooksWithoutTaking) {
    auto pair = support::connect_pair();
    EXPECT_FALSE(pair.server.hand_over());
    for (int i = 0; i < 4; ++i) {
        auto message = support::pattern(100 + i);
        pair.client.send(message);
        (void)pair.server.hand_over();
        EXPECT_EQ(pair.server.recv(5s), message);
    }
    EXPECT_FALSE(pair.server.hand_over());
}

TEST(Stream, SendTimesOutWhenThePeerDoesNotRead) {
    auto pair = support::connect_pair([](shmsock::Options& o) { o.ring_size(4096); });
    // One fragment per message (a quarter of the ring at most), so a timed-out
    // send has sent nothing at all.
    auto chunk = support::pattern(500);
    while (pair.client.try_send(chunk)) {
    }
    auto start = std::chrono::steady_clock::now();
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::Timeout, pair.client.send(chunk, 50ms));
    EXPECT_GE(std::chrono::steady_clock::now() - start, 45ms);
    EXPECT_FALSE(e.ends_connection());
    // Nothing was lost: the stream still works.
    while (pair.server.try_recv()) {
    }
    pair.client.send(std::string_view("after"), 5s);
    auto got = pair.server.recv(5s);
    EXPECT_EQ(std::string(got.begin(), got.end()), "after");
}

TEST(Stream, RecvTimesOut) {
    auto pair = support::connect_pair();
    auto start = std::chrono::steady_clock::now();
    EXPECT_SHMSOCK_ERROR(ErrorCode::Timeout, pair.client.recv(30ms));
    EXPECT_GE(std::chrono::steady_clock::now() - start, 25ms);
    char buf[4];
    EXPECT_SHMSOCK_ERROR(ErrorCode::Timeout, pair.client.recv_into(buf, sizeof buf, 0ms));
    // Still usable.
    pair.server.send(std::string_view("late"));
    EXPECT_EQ(pair.client.recv(5s).size(), 4u);
}

TEST(Stream, PollableFdBecomesReadable) {
    auto pair = support::connect_pair();
    int fd = pair.server.native_handle();
    EXPECT_GE(fd, 0);
    EXPECT_EQ(fd, pair.server.fd());
    EXPECT_FALSE(pair.server.try_recv().has_value());  // arms the wake-up
    pollfd p{fd, POLLIN, 0};
    EXPECT_EQ(poll(&p, 1, 0), 0);
    std::thread sender([&] {
        std::this_thread::sleep_for(20ms);
        pair.client.send(std::string_view("wake"));
    });
    EXPECT_EQ(poll(&p, 1, 5000), 1);
    sender.join();
    auto got = pair.server.try_recv();
    if (!got) got = pair.server.recv(5s);
    EXPECT_EQ(std::string(got->begin(), got->end()), "wake");
}

TEST(Stream, PeerCloseIsCleanAndDeliversEverything) {
    auto pair = support::connect_pair();
    for (int i = 0; i < 5; ++i) pair.client.send(std::to_string(i));
    pair.client.close();
    for (int i = 0; i < 5; ++i) {
        auto got = pair.server.recv(5s);
        EXPECT_EQ(std::string(got.begin(), got.end()), std::to_string(i));
    }
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::PeerClosed, pair.server.recv(5s));
    EXPECT_TRUE(e.ends_connection());
    EXPECT_SHMSOCK_ERROR(ErrorCode::PeerClosed, pair.server.send(std::string_view("x")));
    EXPECT_SHMSOCK_ERROR(ErrorCode::PeerClosed, pair.server.recv(5s));
}

TEST(Stream, InformationAboutBothEnds) {
    auto pair = support::connect_pair();
    EXPECT_EQ(pair.client.peer_public_key(), pair.server_keypair.public_key());
    EXPECT_EQ(pair.server.peer_public_key(), pair.client.local_public_key());
    EXPECT_EQ(pair.server.local_public_key(), pair.server_keypair.public_key());
    EXPECT_TRUE(pair.server.is_server_side());
    EXPECT_FALSE(pair.client.is_server_side());
    EXPECT_EQ(pair.client.endpoint(), pair.listener.name());
    auto cred = pair.server.peer_credentials();
    EXPECT_EQ(cred.pid, getpid());
    EXPECT_EQ(cred.uid, getuid());
    EXPECT_EQ(cred.gid, getgid());
    EXPECT_FALSE(pair.client.is_closed());
}

TEST(Stream, EchoWithAServerInAnotherProcess) {
    auto server_kp = shmsock::Keypair::generate();
    auto key_file = support::scratch_dir() + "/child-server-" + std::to_string(getpid()) + ".key";
    server_kp.save(key_file);
    auto name = support::unique_name("child-echo");
    support::Child child({"echo-server", name, key_file});
    ASSERT_EQ(child.read_line(), "ready");
    shmsock::Options opts;
    opts.server_key(server_kp.public_key());
    auto stream = Stream::connect(name, opts);
    EXPECT_EQ(stream.peer_credentials().pid, child.pid());
    for (std::size_t size : {std::size_t{0}, std::size_t{100}, std::size_t{70000}, std::size_t{2} << 20}) {
        auto message = support::pattern(size, 3);
        stream.send(message, 10s);
        EXPECT_TRUE(stream.recv(10s) == message) << size;
    }
    stream.close();
    EXPECT_EQ(child.read_line(), "done");
    int status = child.wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(Stream, PeerProcessDeathIsPeerGone) {
    auto server_kp = shmsock::Keypair::generate();
    auto name = support::unique_name("gone");
    auto listener = shmsock::Listener::bind(name, support::server_options(server_kp));
    support::Child child({"connect-and-die", name, server_kp.public_key_text()});
    auto stream = listener.accept(10s);
    ASSERT_EQ(child.read_line(), "sent");
    auto hi = stream.recv(5s);
    EXPECT_EQ(std::string(hi.begin(), hi.end()), "hi");
    child.kill(SIGKILL);
    child.wait();
    auto start = std::chrono::steady_clock::now();
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::PeerGone, stream.recv(10s));
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    EXPECT_TRUE(e.ends_connection());
}

TEST(Stream, EpollLoopServesSeveralStreamsThroughTheirFds) {
    // One thread serves every connection: epoll on the pollable fds, then
    // try_recv until nullopt (which re-arms the wake-up), echoing each message.
    auto kp = shmsock::Keypair::generate();
    auto name = support::unique_name("epoll");
    auto listener = shmsock::Listener::bind(name, support::server_options(kp));
    constexpr int kClients = 4;
    constexpr int kMessages = 100;
    std::vector<std::future<std::string>> clients;
    for (int c = 0; c < kClients; ++c) clients.push_back(support::echo_client(name, kp.public_key(), static_cast<unsigned>(c), kMessages));
    std::vector<Stream> served;
    for (int c = 0; c < kClients; ++c) served.push_back(listener.accept(10s));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    ASSERT_GE(ep, 0);
    for (std::size_t i = 0; i < served.size(); ++i) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, served[i].native_handle(), &ev), 0);
    }
    int echoed = 0;
    int open = kClients;
    std::vector<bool> done(served.size(), false);
    auto deadline = std::chrono::steady_clock::now() + 30s;
    // Start with a pass over every stream: messages may already be waiting.
    std::vector<std::size_t> ready;
    for (std::size_t i = 0; i < served.size(); ++i) ready.push_back(i);
    while (open > 0 && std::chrono::steady_clock::now() < deadline) {
        for (std::size_t i : ready) {
            if (done[i]) continue;
            try {
                while (auto message = served[i].try_recv()) {
                    served[i].send(*message, 10s);
                    ++echoed;
                }
            } catch (const shmsock::Error& e) {
                EXPECT_EQ(e.code(), ErrorCode::PeerClosed) << e.what();
                epoll_ctl(ep, EPOLL_CTL_DEL, served[i].native_handle(), nullptr);
                done[i] = true;
                --open;
            }
        }
        ready.clear();
        if (open == 0) break;
        epoll_event events[8];
        int n = epoll_wait(ep, events, 8, 1000);
        for (int k = 0; k < n; ++k) ready.push_back(static_cast<std::size_t>(events[k].data.u64));
    }
    close(ep);
    for (auto& c : clients) EXPECT_EQ(c.get(), "ok");
    EXPECT_EQ(echoed, kClients * kMessages);
}
