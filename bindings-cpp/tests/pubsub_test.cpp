// Publisher and Subscriber: delivery to several subscribers (threads and a
// child process), both slow-subscriber policies, keys, bad input, a publisher
// killed with SIGKILL, and moved-from or closed handles.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <future>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using shmsock::ErrorCode;
using shmsock::Options;
using shmsock::Publisher;
using shmsock::Subscriber;
using shmsock::TopicOptions;
using namespace std::chrono_literals;

namespace {

Options publisher_options(const shmsock::Keypair& kp) { return Options().keypair(kp); }

Options subscriber_options(const shmsock::PublicKey& key) { return Options().server_key(key); }

std::vector<std::uint8_t> message(std::size_t i) { return support::topic_message(i); }

/// A fresh topic: its publisher's keypair, name and publisher.
struct Topic {
    shmsock::Keypair kp = shmsock::Keypair::generate();
    std::string name;
    Publisher publisher;

    explicit Topic(const std::string& prefix, const TopicOptions& options = TopicOptions())
        : name(support::unique_name(prefix)), publisher(Publisher::bind(name, publisher_options(kp), options)) {}

    Subscriber subscribe() const { return Subscriber::connect(name, subscriber_options(kp.public_key())); }
};

}  // namespace

TEST(PubSub, TopicOptionsHaveTheCoreDefaultsAndChain) {
    TopicOptions t;
    EXPECT_EQ(t.slots(), 64u);
    EXPECT_EQ(t.max_message_size(), 64u * 1024);
    EXPECT_EQ(t.policy(), shmsock::SlowSubscribers::Reliable);
    EXPECT_EQ(t.reliable_timeout(), 5s);
    ASSERT_TRUE(t.rekey_interval().has_value());
    EXPECT_EQ(*t.rekey_interval(), 600s);
    EXPECT_EQ(t.max_subscribers(), 256u);
    t.slots(8).max_message_size(100).latest().rekey_interval(shmsock::forever).max_subscribers(2);
    EXPECT_EQ(t.policy(), shmsock::SlowSubscribers::Latest);
    EXPECT_FALSE(t.rekey_interval().has_value());
}

TEST(PubSub, BadTopicOptionsAndNamesAreRefused) {
    auto kp = shmsock::Keypair::generate();
    auto name = support::unique_name("ps-bad");
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, Publisher::bind(name, publisher_options(kp), TopicOptions().slots(3)));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument,
                         Publisher::bind(name, publisher_options(kp), TopicOptions().reliable(0ns)));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument,
                         Publisher::bind(name, publisher_options(kp), TopicOptions().max_subscribers(0)));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument,
                         Publisher::bind(name, publisher_options(kp), TopicOptions().rekey_interval(-1s)));
    // A publisher needs a keypair; a subscriber the publisher's key.
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, Publisher::bind(name, Options()));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, Subscriber::connect(name, Options()));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidName, Publisher::bind("bad name!", publisher_options(kp)));
    EXPECT_SHMSOCK_ERROR(ErrorCode::NotFound, Subscriber::connect(name, subscriber_options(kp.public_key())));
    auto p = Publisher::bind(name, publisher_options(kp));
    EXPECT_SHMSOCK_ERROR(ErrorCode::AddressInUse, Publisher::bind(name, publisher_options(kp)));
}

TEST(PubSub, SeveralSubscribersInThreadsAndAProcessGetEveryMessageByteForByte) {
    auto kp = shmsock::Keypair::generate();
    auto name = support::unique_name("ps-many");
    constexpr std::size_t kMessages = 300;
    constexpr int kThreads = 3;
    auto p = Publisher::bind(name, publisher_options(kp));
    EXPECT_EQ(p.topic(), name);
    EXPECT_EQ(p.public_key(), kp.public_key());

    // Subscribers connect before anything is published: each reads from 0.
    std::vector<Subscriber> subs;
    for (int t = 0; t < kThreads; ++t) subs.push_back(Subscriber::connect(name, subscriber_options(kp.public_key())));
    support::Child child({"subscriber", name, kp.public_key_text(), std::to_string(kMessages)});
    ASSERT_EQ(child.read_line(), "subscribed");
    p.wait_for_subscribers(kThreads + 1, 10s);
    EXPECT_EQ(p.subscriber_count(), static_cast<std::size_t>(kThreads + 1));

    std::vector<std::future<std::string>> readers;
    for (int t = 0; t < kThreads; ++t) {
        readers.push_back(std::async(std::launch::async, [&subs, t] {
            auto& s = subs[static_cast<std::size_t>(t)];
            std::vector<std::uint8_t> buf(64 * 1024);
            for (std::size_t i = 0; i < kMessages; ++i) {
                // Alternate the three ways of receiving.
                std::vector<std::uint8_t> got;
                if (i % 3 == 0) {
                    got = s.recv(10s);
                } else if (i % 3 == 1) {
                    auto m = s.recv_message(10s);
                    if (m.sequence != i || m.lost != 0) return "message " + std::to_string(i) + ": bad sequence or loss";
                    got = m.data;
                } else {
                    auto n = s.recv_into(buf, 10s);
                    got.assign(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
                }
                if (got != message(i)) return "message " + std::to_string(i) + " differs";
            }
            return std::string("ok");
        }));
    }
    for (std::size_t i = 0; i < kMessages; ++i) p.publish(message(i));
    EXPECT_EQ(p.sequence(), kMessages);
    for (auto& r : readers) EXPECT_EQ(r.get(), "ok");
    for (auto& s : subs) {
        EXPECT_EQ(s.received(), kMessages);
        EXPECT_EQ(s.lost(), 0u);
        EXPECT_EQ(s.position(), kMessages);
        EXPECT_EQ(s.publisher_public_key(), kp.public_key());
        EXPECT_EQ(s.cipher(), p.cipher());
        EXPECT_EQ(s.max_message_size(), p.max_message_size());
        EXPECT_EQ(s.topic(), name);
    }
    EXPECT_EQ(child.read_line(), "ok " + std::to_string(kMessages));
    int status = child.wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_EQ(p.dropped_count(), 0u);
}

TEST(PubSub, SubscribersAreListedAndRemovedWithAKeyRotation) {
    Topic topic("ps-rm", TopicOptions().latest().slots(16));
    auto& p = topic.publisher;
    auto stays = topic.subscribe();
    auto removed = topic.subscribe();
    p.wait_for_subscribers(2, 10s);
    auto list = p.subscribers();
    ASSERT_EQ(list.size(), 2u);
    std::uint64_t removed_id = 0;
    bool found = false;
    for (const auto& info : list) {
        EXPECT_EQ(info.credentials.pid, getpid());
        if (info.public_key == removed.local_public_key()) {
            removed_id = info.id;
            found = true;
        }
    }
    ASSERT_TRUE(found);
    EXPECT_EQ(p.epoch(), 1u);
    p.remove(removed_id);
    EXPECT_EQ(p.epoch(), 2u);
    EXPECT_SHMSOCK_ERROR(ErrorCode::NotFound, p.remove(removed_id));
    p.publish(std::string_view("after"));
    auto got = stays.recv(10s);
    EXPECT_EQ(std::string(got.begin(), got.end()), "after");
    EXPECT_EQ(stays.epoch(), 2u);
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::PeerClosed, removed.recv(10s));
    EXPECT_NE(std::string(e.what()).find("removed"), std::string::npos) << e.what();
    // A rotation on demand: the subscriber follows.
    p.rotate_key();
    EXPECT_EQ(p.epoch(), 3u);
    p.publish(std::string_view("rotated"));
    got = stays.recv(10s);
    EXPECT_EQ(std::string(got.begin(), got.end()), "rotated");
    EXPECT_EQ(stays.epoch(), 3u);
}

TEST(PubSub, LatestTopicReportsWhatASlowSubscriberLost) {
    Topic topic("ps-latest", TopicOptions().latest().slots(4));
    auto& p = topic.publisher;
    auto s = topic.subscribe();
    p.wait_for_subscribers(1, 10s);
    // 20 messages into 4 slots while nobody reads: the publisher never waits.
    for (std::size_t i = 0; i < 20; ++i) p.publish(message(i));
    std::uint64_t received = 0;
    std::uint64_t lost = 0;
    auto first = s.recv_message(10s);
    EXPECT_GT(first.lost, 0u);
    EXPECT_EQ(first.sequence, first.lost);
    EXPECT_EQ(first.data, message(first.sequence));
    received++;
    lost += first.lost;
    std::vector<std::uint8_t> buf(64 * 1024);
    while (auto d = s.try_recv_into(buf.data(), buf.size())) {
        EXPECT_EQ(d->lost, 0u);
        auto want = message(d->sequence);
        EXPECT_TRUE(std::equal(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(d->size), want.begin(), want.end()));
        received++;
    }
    EXPECT_EQ(received + lost, 20u);
    EXPECT_EQ(s.lost(), lost);
    EXPECT_EQ(s.received(), received);
    EXPECT_EQ(p.dropped_count(), 0u);
}

TEST(PubSub, ReliableTopicDropsASubscriberThatNeverReadsAfterItsTimeout) {
    Topic topic("ps-reliable", TopicOptions().reliable(1s).slots(2));
    auto& p = topic.publisher;
    auto reader = topic.subscribe();
    auto idle = topic.subscribe();
    p.wait_for_subscribers(2, 10s);
    // The reader keeps up in a thread; the idle one never reads, so the third
    // publish waits for it (at most 1 s), then drops it.
    constexpr std::size_t kMessages = 10;
    auto reading = std::async(std::launch::async, [&] {
        for (std::size_t i = 0; i < kMessages; ++i) {
            if (reader.recv(10s) != message(i)) return false;
        }
        return true;
    });
    for (std::size_t i = 0; i < kMessages; ++i) p.publish(message(i));
    EXPECT_TRUE(reading.get());
    EXPECT_EQ(p.dropped_count(), 1u);
    EXPECT_TRUE(support::eventually([&] { return p.subscriber_count() == 1; }));
    // The idle subscriber may still read what was published before it was
    // dropped, then learns it was dropped (never a hang, never a wrong message).
    std::size_t i = 0;
    try {
        for (; i < kMessages; ++i) EXPECT_EQ(idle.recv(10s), message(i));
        ADD_FAILURE() << "the dropped subscriber received every message";
    } catch (const shmsock::Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::PeerClosed) << e.what();
    }
    EXPECT_LE(i, 2u);
}

TEST(PubSub, WrongKeyIsRefused) {
    auto kp = shmsock::Keypair::generate();
    auto name = support::unique_name("ps-key");
    auto p = Publisher::bind(name, publisher_options(kp));
    auto other = shmsock::Keypair::generate();
    EXPECT_SHMSOCK_ERROR(ErrorCode::ServerKeyMismatch, Subscriber::connect(name, subscriber_options(other.public_key())));
    // A publisher that allows only some subscribers refuses the others.
    auto allowed = shmsock::Keypair::generate();
    auto name2 = support::unique_name("ps-allow");
    auto p2 = Publisher::bind(name2, publisher_options(kp).allow_clients({allowed.public_key()}));
    EXPECT_SHMSOCK_ERROR(ErrorCode::HandshakeRejected,
                         Subscriber::connect(name2, subscriber_options(kp.public_key()).keypair(other)));
    auto ok = Subscriber::connect(name2, subscriber_options(kp.public_key()).keypair(allowed));
    EXPECT_EQ(ok.local_public_key(), allowed.public_key());
    EXPECT_EQ(p.subscriber_count(), 0u);
}

TEST(PubSub, OversizedPublishThrowsAndTheTopicGoesOn) {
    Topic topic("ps-big", TopicOptions().max_message_size(1000));
    auto& p = topic.publisher;
    EXPECT_EQ(p.max_message_size(), 1000u);
    auto s = topic.subscribe();
    p.wait_for_subscribers(1, 10s);
    std::vector<std::uint8_t> big(1001, 7);
    EXPECT_SHMSOCK_ERROR(ErrorCode::MessageTooLarge, p.publish(big));
    EXPECT_EQ(p.sequence(), 0u);
    p.publish(std::string_view("fits"));
    // A buffer too small keeps the message.
    std::uint8_t small[2];
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::BufferTooSmall, s.recv_into(small, sizeof small, 10s));
    EXPECT_EQ(e.needed(), 4u);
    auto got = s.recv(10s);
    EXPECT_EQ(std::string(got.begin(), got.end()), "fits");
    // A subscriber that accepts less than the topic carries is refused.
    EXPECT_SHMSOCK_ERROR(ErrorCode::MessageTooLarge,
                         Subscriber::connect(topic.name, subscriber_options(topic.kp.public_key()).max_message_size(999)));
}

TEST(PubSub, TryRecvAndThePollableFd) {
    Topic topic("ps-poll");
    auto& p = topic.publisher;
    auto s = topic.subscribe();
    p.wait_for_subscribers(1, 10s);
    EXPECT_FALSE(s.try_recv().has_value());
    auto publishing = std::async(std::launch::async, [&] {
        std::this_thread::sleep_for(20ms);
        p.publish(std::string_view("wake"));
    });
    pollfd pfd{s.pollable_fd(), POLLIN, 0};
    ASSERT_EQ(poll(&pfd, 1, 10000), 1);
    publishing.get();
    auto got = s.try_recv();
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(std::string(got->begin(), got->end()), "wake");
}

TEST(PubSub, TryPublishWaitsOnThePollableFdWithoutBlocking) {
    Topic topic("ps-try", TopicOptions().slots(2).reliable(3600s));
    auto& p = topic.publisher;
    auto s = topic.subscribe();
    p.wait_for_subscribers(1, 10s);
    EXPECT_TRUE(p.try_publish(std::string_view("a")));
    EXPECT_TRUE(p.try_publish(std::string_view("b")));
    EXPECT_FALSE(p.publish_deadline().has_value());
    EXPECT_FALSE(p.try_publish(std::string_view("c")));  // the ring is full
    EXPECT_EQ(p.sequence(), 2u);
    ASSERT_TRUE(p.publish_deadline().has_value());
    EXPECT_LE(*p.publish_deadline(), std::chrono::nanoseconds(3600s));
    pollfd pfd{p.pollable_fd(), POLLIN, 0};
    EXPECT_EQ(poll(&pfd, 1, 0), 0);
    auto got = s.recv(10s);  // the subscriber moves on: the publisher's fd says so
    EXPECT_EQ(std::string(got.begin(), got.end()), "a");
    ASSERT_EQ(poll(&pfd, 1, 10000), 1);
    EXPECT_TRUE(p.try_publish(std::string_view("c")));
    EXPECT_FALSE(p.publish_deadline().has_value());
}

TEST(PubSub, PublisherKilledWithSigkillEndsTheSubscription) {
    auto kp = shmsock::Keypair::generate();
    auto key_file = support::scratch_dir() + "/" + support::unique_name("pub") + ".key";
    kp.save(key_file);
    auto name = support::unique_name("ps-kill");
    support::Child child({"publisher", name, key_file});
    ASSERT_EQ(child.read_line(), "ready");
    auto s = Subscriber::connect(name, subscriber_options(kp.public_key()));
    EXPECT_EQ(s.publisher_credentials().pid, child.pid());
    auto first = s.recv(10s);
    EXPECT_EQ(std::string(first.begin(), first.end()), "first");
    child.kill(SIGKILL);
    child.wait();
    // PeerGone, not a hang (and not a Timeout: the limit is far away).
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::PeerGone, s.recv(30s));
    EXPECT_TRUE(e.ends_connection());
    EXPECT_SHMSOCK_ERROR(ErrorCode::PeerGone, s.try_recv());
}

TEST(PubSub, ClosingTheTopicDeliversEverythingThenPeerClosed) {
    Topic topic("ps-close");
    auto& p = topic.publisher;
    auto s = topic.subscribe();
    p.wait_for_subscribers(1, 10s);
    p.publish(std::string_view("one"));
    p.publish(std::string_view("two"));
    p.close();
    p.close();  // idempotent
    EXPECT_TRUE(p.is_closed());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, p.publish(std::string_view("late")));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, p.wait_for_subscribers(1, 0s));
    EXPECT_EQ(s.recv(10s).size(), 3u);
    EXPECT_EQ(s.recv(10s).size(), 3u);
    EXPECT_SHMSOCK_ERROR(ErrorCode::PeerClosed, s.recv(10s));
    // The name is free at once.
    auto again = Publisher::bind(topic.name, publisher_options(topic.kp));
    s.close();
    EXPECT_TRUE(s.is_closed());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, s.recv(1s));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, s.pollable_fd());
}

TEST(PubSub, MovedFromHandlesThrowClosed) {
    Topic topic("ps-move");
    auto& p = topic.publisher;
    auto s = topic.subscribe();
    Publisher p2 = std::move(p);
    Subscriber s2;
    s2 = std::move(s);
    EXPECT_FALSE(p.valid());
    EXPECT_FALSE(s.valid());
    EXPECT_TRUE(p.is_closed());
    EXPECT_TRUE(s.is_closed());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, p.publish(std::string_view("x")));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, p.subscriber_count());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, p.close());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, s.recv(1s));
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, s.lost());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, s.close());
    Publisher empty;
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, empty.epoch());
    // The moved-to handles work.
    p2.wait_for_subscribers(1, 10s);
    p2.publish(std::string_view("moved"));
    EXPECT_EQ(s2.recv(10s).size(), 5u);
    // Null data with a size is bad input, not a crash.
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, p2.publish(nullptr, 3));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, s2.recv_into(nullptr, 3, 1s));
}

// Subscribing: started before the topic is bound (a connect wait), it finds
// the topic through fd() (the same fd throughout) with poll(); no topic and
// no wait: NotFound at once.
TEST(PubSub, SubscribingAnEventLoopDrivesFindsATopicBoundLater) {
    auto kp = shmsock::Keypair::generate();
    auto name = support::unique_name("subscribing");
    EXPECT_SHMSOCK_ERROR(ErrorCode::NotFound,
                         shmsock::Subscribing::start(name, subscriber_options(kp.public_key())));
    auto s = shmsock::Subscribing::start(name, subscriber_options(kp.public_key()).connect_wait(20s));
    const int fd = s.fd();
    EXPECT_FALSE(s.advance().has_value());
    auto publisher = Publisher::bind(name, publisher_options(kp));
    std::optional<Subscriber> sub;
    auto until = std::chrono::steady_clock::now() + 30s;
    while (!sub) {
        ASSERT_LT(std::chrono::steady_clock::now(), until);
        ASSERT_EQ(s.fd(), fd);
        pollfd p{s.fd(), POLLIN, 0};
        ASSERT_GE(poll(&p, 1, 1000), 0);
        sub = s.advance();
    }
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, s.advance());
    // The publisher's side, as a loop waits: try, then poll the membership fd.
    while (!publisher.try_wait_for_subscribers(1)) {
        ASSERT_LT(std::chrono::steady_clock::now(), until);
        pollfd m{publisher.membership_fd(), POLLIN, 0};
        ASSERT_GE(poll(&m, 1, 1000), 0);
    }
    EXPECT_FALSE(publisher.try_wait_for_subscribers(2));
    publisher.publish(message(7));
    EXPECT_EQ(sub->recv(30s), message(7));
    shmsock::Subscribing empty;
    EXPECT_FALSE(empty.valid());
    EXPECT_SHMSOCK_ERROR(ErrorCode::Closed, empty.advance());
}
