// Reactor: one thread drives several streams, a listener and timers; wakes,
// foreign fds, removal, resumable sends larger than the ring, bad input and
// moved-from reactors.
#include <unistd.h>

#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using shmsock::ErrorCode;
using shmsock::Reactor;
using shmsock::Stream;
using namespace std::chrono_literals;

namespace {

constexpr shmsock::Token kListener = 1000;
constexpr shmsock::Token kTick = 2000;
constexpr shmsock::Token kDeadline = 2001;

}  // namespace

TEST(Reactor, OneThreadServesSeveralStreamsAndTimers) {
    auto kp = shmsock::Keypair::generate();
    auto name = support::unique_name("reactor");
    auto listener = shmsock::Listener::bind(name, support::server_options(kp));
    constexpr int kClients = 4;
    constexpr int kMessages = 100;
    std::vector<std::future<std::string>> clients;
    for (int c = 0; c < kClients; ++c) clients.push_back(support::echo_client(name, kp.public_key(), static_cast<unsigned>(c), kMessages));

    // This thread alone: accept, echo, and a repeating 5 ms timer.
    Reactor reactor;
    reactor.add(listener, kListener);
    reactor.add_timer(5ms, kTick);
    auto deadline = reactor.add_timer(60s, kDeadline);  // never fires: cancelled at the end
    std::map<shmsock::Token, Stream> streams;
    shmsock::Token next = 0;
    int ticks = 0;
    int finished = 0;
    std::vector<Reactor::Event> events;
    auto serve = [&](shmsock::Token token) {
        auto& stream = streams.at(token);
        try {
            while (auto message = stream.try_recv()) {
                ASSERT_TRUE(stream.try_send(*message));  // the client reads each echo before sending again
            }
        } catch (const shmsock::Error& e) {
            ASSERT_EQ(e.code(), ErrorCode::PeerClosed) << e.what();
            reactor.remove(stream);
            streams.erase(token);
            ++finished;
        }
    };
    while (finished < kClients || ticks < 3) {
        reactor.poll(events, 20s);
        ASSERT_FALSE(events.empty()) << "nothing happened in 20 s";
        for (const auto& event : events) {
            if (event.kind == Reactor::EventKind::Timer) {
                ASSERT_EQ(event.token, kTick);
                ++ticks;
                reactor.add_timer(5ms, kTick);
            } else if (event.token == kListener) {
                for (;;) {
                    try {
                        auto stream = listener.accept(0ns);
                        shmsock::Token token = next++;
                        reactor.add(stream, token);
                        streams.emplace(token, std::move(stream));
                        serve(token);  // arms its wake-up
                    } catch (const shmsock::Error& e) {
                        ASSERT_EQ(e.code(), ErrorCode::Timeout) << e.what();
                        break;
                    }
                }
            } else {
                ASSERT_EQ(event.kind, Reactor::EventKind::Readable);
                if (streams.count(event.token)) serve(event.token);
            }
        }
        reactor.note_activity();
    }
    for (auto& c : clients) EXPECT_EQ(c.get(), "ok");
    EXPECT_EQ(next, static_cast<shmsock::Token>(kClients));
    EXPECT_GE(ticks, 3);
    ASSERT_TRUE(reactor.next_timeout().has_value());
    reactor.cancel_timer(deadline);
    reactor.cancel_timer(deadline);  // again: nothing happens
    EXPECT_TRUE(reactor.next_timeout().has_value());  // the pending tick
}

TEST(Reactor, WakeForeignFdsAndRemoval) {
    Reactor reactor(0ns);
    EXPECT_TRUE(reactor.poll(0ns).empty());
    EXPECT_FALSE(reactor.next_timeout().has_value());
    // A wake from another thread ends a poll without limit.
    auto waking = std::async(std::launch::async, [&] {
        std::this_thread::sleep_for(10ms);
        reactor.wake();
    });
    auto events = reactor.poll();
    waking.get();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, Reactor::EventKind::Woken);

    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    reactor.add_fd(fds[0], 7);
    ASSERT_EQ(write(fds[1], "x", 1), 1);
    events = reactor.poll(10s);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].token, 7u);
    // Level-triggered: still readable until read; removed: no more events.
    EXPECT_EQ(reactor.poll(0ns).size(), 1u);
    reactor.remove_fd(fds[0]);
    EXPECT_TRUE(reactor.poll(0ns).empty());
    close(fds[0]);
    close(fds[1]);

    // Timers at a time point, in the past: due at once.
    reactor.add_timer(std::chrono::steady_clock::now() - 1s, 9);
    events = reactor.poll(0ns);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].kind, Reactor::EventKind::Timer);
    EXPECT_EQ(events[0].token, 9u);
    EXPECT_GE(reactor.native_handle(), 0);
}

TEST(Reactor, StreamsAndSubscribersReportReadiness) {
    auto pair = support::connect_pair();
    Reactor reactor;
    reactor.add(pair.server, 1);
    EXPECT_FALSE(pair.server.try_recv().has_value());  // arms the wake-up
    pair.client.send(std::string_view("ping"));
    auto events = reactor.poll(10s);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].token, 1u);
    EXPECT_EQ(pair.server.try_recv()->size(), 4u);
    reactor.remove(pair.server);
    EXPECT_FALSE(pair.server.try_recv().has_value());
    pair.client.send(std::string_view("unwatched"));
    EXPECT_TRUE(reactor.poll(50ms).empty());

    auto kp = shmsock::Keypair::generate();
    auto topic = support::unique_name("reactor-topic");
    auto publisher = shmsock::Publisher::bind(topic, shmsock::Options().keypair(kp));
    auto subscriber = shmsock::Subscriber::connect(topic, shmsock::Options().server_key(kp.public_key()));
    publisher.wait_for_subscribers(1, 10s);
    reactor.add(subscriber, 2);
    EXPECT_FALSE(subscriber.try_recv().has_value());
    publisher.publish(std::string_view("news"));
    events = reactor.poll(10s);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].token, 2u);
    EXPECT_EQ(subscriber.try_recv()->size(), 4u);
    reactor.remove(subscriber);
}

TEST(Reactor, ResumableSendCarriesAMessageLargerThanTheRingWithoutBlocking) {
    auto pair = support::connect_pair([](shmsock::Options& o) { o.ring_size(4096); },
                                      [](shmsock::Options& o) { o.ring_size(4096); });
    auto big = support::pattern(100000, 5);
    // try_send can never fit it; send_resumable goes in parts.
    EXPECT_FALSE(pair.server.try_send(big));
    auto reading = std::async(std::launch::async, [&] { return pair.client.recv(20s); });
    Reactor reactor;
    reactor.add(pair.server, 1);
    auto progress = pair.server.send_resumable(big);
    std::size_t rounds = 0;
    while (!progress.complete) {
        EXPECT_LT(progress.sent, big.size());
        reactor.poll(10s);  // readable once the reader freed space
        progress = pair.server.send_resumable(big);
        ++rounds;
    }
    EXPECT_EQ(progress.sent, big.size());
    EXPECT_GT(rounds, 0u);
    EXPECT_EQ(reading.get(), big);
    // A zero-length message completes at once.
    auto empty = pair.server.send_resumable(std::string_view());
    EXPECT_TRUE(empty.complete);
    EXPECT_EQ(empty.sent, 0u);
    EXPECT_TRUE(pair.client.recv(10s).empty());
}

TEST(Reactor, BadInputAndMovedFromReactorsThrow) {
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, Reactor(-1ns));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, Reactor(2s));
    Reactor reactor;
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, reactor.add_fd(-1, 1));
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, reactor.add_fd(fds[0], UINT64_MAX));  // reserved token
    reactor.add_fd(fds[0], 1);
    close(fds[0]);
    close(fds[1]);
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, reactor.poll(-1s));
    Stream empty;
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, reactor.add(empty, 1));
    auto pair = support::connect_pair();
    pair.listener.close();
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, reactor.add(pair.listener, 1));

    Reactor moved = std::move(reactor);
    EXPECT_FALSE(reactor.valid());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, reactor.poll(0ns));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, reactor.wake());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, reactor.add(pair.client, 1));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, reactor.native_handle());
    moved.wake();
    EXPECT_EQ(moved.poll(0ns).size(), 1u);
}
