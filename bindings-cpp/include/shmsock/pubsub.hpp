// shmsock publish/subscribe: one publisher, many subscribers, each message
// sealed once (PROTOCOL.md section 14). Included by <shmsock.hpp>; compiles on
// its own.
//
//   Publisher    binds a topic; publish() seals each message once for all
//   Subscriber   connects with the publisher's pinned key; recv() opens them
//   TopicOptions the ring's shape and the slow-subscriber policy
//
// A subscriber maps the topic's ring read-only (the kernel refuses it any
// writable mapping) and gets the group key over its own Noise session; the key
// is rotated whenever a subscriber leaves or is removed, and on a schedule.
// Both classes are move-only RAII handles, usable from any thread; a moved-from
// or closed one throws Error(Closed).
#ifndef SHMSOCK_PUBSUB_HPP
#define SHMSOCK_PUBSUB_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bytes.hpp"
#include "error.hpp"
#include "keys.hpp"
#include "options.hpp"
#include "stream.hpp"

namespace shmsock {

namespace bridge {
struct PublisherBox;
struct SubscriberBox;
struct SubscribingBox;
}  // namespace bridge

/// What a topic does with a subscriber that falls a whole ring behind.
enum class SlowSubscribers {
    /// The publisher waits for it, up to the reliable timeout, then drops it
    /// (its recv throws). Every subscriber that keeps up gets every message.
    Reliable,
    /// The ring overwrites the oldest slot; the publisher never waits, and the
    /// subscriber is told how many messages it lost (never a torn message).
    Latest,
};

/// The shape and policy of a topic, chosen by the publisher. A plain value;
/// setters chain. The defaults are the core's: 64 slots of 64 KiB, reliable
/// with a 5 s timeout, a new key every 10 minutes and on every departure,
/// at most 256 subscribers.
class TopicOptions {
public:
    TopicOptions();

    /// Slots in the ring (a power of two, 2 to 65536).
    TopicOptions& slots(std::uint32_t n) { slots_ = n; return *this; }
    /// The largest message (each slot holds one whole message).
    TopicOptions& max_message_size(std::uint32_t bytes) { max_message_size_ = bytes; return *this; }
    /// Reliable: the publisher waits up to `timeout` for a slow subscriber, then drops it.
    TopicOptions& reliable(std::chrono::nanoseconds timeout) {
        policy_ = SlowSubscribers::Reliable;
        reliable_timeout_ = timeout;
        return *this;
    }
    /// Latest: overwrite, never wait; subscribers that fell behind see lost().
    TopicOptions& latest() { policy_ = SlowSubscribers::Latest; return *this; }
    /// Rotate the group key this often as well (`forever`: only on departures).
    TopicOptions& rekey_interval(Timeout interval) { rekey_interval_ = interval; return *this; }
    /// Most subscribers at once.
    TopicOptions& max_subscribers(std::size_t n) { max_subscribers_ = n; return *this; }

    std::uint32_t slots() const noexcept { return slots_; }
    std::uint32_t max_message_size() const noexcept { return max_message_size_; }
    SlowSubscribers policy() const noexcept { return policy_; }
    std::chrono::nanoseconds reliable_timeout() const noexcept { return reliable_timeout_; }
    Timeout rekey_interval() const noexcept { return rekey_interval_; }
    std::size_t max_subscribers() const noexcept { return max_subscribers_; }

private:
    std::uint32_t slots_ = 0;
    std::uint32_t max_message_size_ = 0;
    SlowSubscribers policy_ = SlowSubscribers::Reliable;
    std::chrono::nanoseconds reliable_timeout_{0};
    Timeout rekey_interval_;
    std::size_t max_subscribers_ = 0;
};

/// A subscriber as its publisher sees it.
struct SubscriberInfo {
    /// The publisher's number for it (for Publisher::remove).
    std::uint64_t id = 0;
    /// Its static public key, authenticated by the handshake.
    PublicKey public_key;
    /// Its process, per the kernel.
    Credentials credentials;
    /// The sequence number it started at.
    std::uint64_t joined_at = 0;
};

/// The publishing end of a topic. Move-only; destroying it closes the topic.
class Publisher {
public:
    Publisher() noexcept = default;
    Publisher(Publisher&& other) noexcept;
    Publisher& operator=(Publisher&& other) noexcept;
    Publisher(const Publisher&) = delete;
    Publisher& operator=(const Publisher&) = delete;
    /// Closes the topic.
    ~Publisher();

    /// Binds topic `name` (the namespace of endpoints). `options.keypair` is
    /// required (subscribers pin its public key); the allow-lists, the
    /// handshake timeout, spin and require_chacha apply as for a Listener.
    static Publisher bind(std::string_view name, const Options& options,
                          const TopicOptions& topic = TopicOptions());

    /// Seals one message for every subscriber. Reliable topics wait for room
    /// (at most their timeout, then drop the subscribers in the way); latest
    /// topics never wait. Larger than max_message_size(): MessageTooLarge,
    /// nothing published, the topic goes on.
    void publish(const void* data, std::size_t size);
    void publish(std::string_view text) { publish(text.data(), text.size()); }
    template <class C, std::enable_if_t<detail::byte_range_v<C>, int> = 0>
    void publish(const C& bytes) { publish(std::data(bytes), std::size(bytes)); }

    /// Publishes without waiting, for event loops: false (nothing published)
    /// while a reliable topic's slowest subscriber holds the oldest slot; then
    /// wait for pollable_fd() (a subscriber moved on or left), at most
    /// publish_deadline(), and call again: past that deadline the call drops
    /// the subscribers in the way and publishes. Latest topics never block.
    /// Do not mix with publish() on another thread.
    bool try_publish(const void* data, std::size_t size);
    bool try_publish(std::string_view text) { return try_publish(text.data(), text.size()); }
    template <class C, std::enable_if_t<detail::byte_range_v<C>, int> = 0>
    bool try_publish(const C& bytes) { return try_publish(std::data(bytes), std::size(bytes)); }
    /// How long until a blocked try_publish drops the subscribers in its way;
    /// nullopt when no publish is blocked.
    std::optional<std::chrono::nanoseconds> publish_deadline() const;
    /// Readable when a blocked try_publish may succeed (poll it; never read
    /// or close it). Also for shmsock::Reactor::add_fd.
    int pollable_fd() const;

    /// Waits until at least `n` subscribers are connected (Timeout otherwise).
    void wait_for_subscribers(std::size_t n, Timeout timeout = forever);
    /// For event loops, wait_for_subscribers without waiting: true when at
    /// least `n` subscribers are connected; else false, and membership_fd()
    /// becomes readable at the next join or departure (call again then).
    /// Throws Closed once the topic was closed.
    bool try_wait_for_subscribers(std::size_t n);
    /// Readable when a subscriber joined or left (poll it; never read or
    /// close it).
    int membership_fd() const;
    std::size_t subscriber_count() const;
    std::vector<SubscriberInfo> subscribers() const;
    /// Removes a subscriber (it gets an error) and rotates the key before
    /// returning: it cannot read anything published afterwards. NotFound if
    /// there is no such subscriber.
    void remove(std::uint64_t id);
    /// Rotates the group key now.
    void rotate_key();
    /// The current key epoch (1, then +1 per rotation).
    std::uint64_t epoch() const;
    /// The number of messages published.
    std::uint64_t sequence() const;
    /// Subscribers dropped for falling behind a reliable topic (or a bad cursor).
    std::uint64_t dropped_count() const;
    std::string topic() const;
    PublicKey public_key() const;
    /// The topic's AEAD: "aegis-128l" or "chacha20-poly1305".
    std::string cipher() const;
    std::uint32_t max_message_size() const;

    /// Closes the topic: subscribers receive everything published so far, then
    /// PeerClosed; the name is free at once. Idempotent.
    void close();
    bool is_closed() const;

    bool valid() const noexcept { return impl_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

private:
    explicit Publisher(bridge::PublisherBox* impl) noexcept : impl_(impl) {}
    const bridge::PublisherBox& get() const;
    bridge::PublisherBox* impl_ = nullptr;
};

/// One received topic message.
struct Message {
    std::vector<std::uint8_t> data;
    /// Its sequence number on the topic.
    std::uint64_t sequence = 0;
    /// Messages lost to lag just before this one (latest topics).
    std::uint64_t lost = 0;
};

/// Where recv_into() put a message.
struct Delivery {
    std::size_t size = 0;
    std::uint64_t sequence = 0;
    std::uint64_t lost = 0;
};

/// The receiving end of a topic. Move-only; destroying it leaves the topic.
///
/// Reading starts with the next message published after connect(). After the
/// publisher closes the topic, recv delivers what was published, then throws
/// PeerClosed; if the publisher dies, recv throws PeerGone.
class Subscriber {
public:
    Subscriber() noexcept = default;
    Subscriber(Subscriber&& other) noexcept;
    Subscriber& operator=(Subscriber&& other) noexcept;
    Subscriber(const Subscriber&) = delete;
    Subscriber& operator=(const Subscriber&) = delete;
    /// Leaves the topic.
    ~Subscriber();

    /// Subscribes to topic `name`, whose publisher's key `options.server_key`
    /// pins (a publisher holding another key: ServerKeyMismatch).
    static Subscriber connect(std::string_view name, const Options& options);

    /// The next message (default: the Options::recv_timeout).
    std::vector<std::uint8_t> recv();
    std::vector<std::uint8_t> recv(Timeout timeout);
    /// The next message with its sequence number and how many were lost before it.
    Message recv_message(Timeout timeout = forever);
    /// The next message if one is there now; nullopt otherwise (the pollable fd
    /// then becomes readable when one arrives).
    std::optional<std::vector<std::uint8_t>> try_recv();
    /// The next message into `buffer`; returns its size. A buffer too small
    /// throws BufferTooSmall (Error::needed()) and keeps the message.
    std::size_t recv_into(void* buffer, std::size_t capacity);
    std::size_t recv_into(void* buffer, std::size_t capacity, Timeout timeout);
    template <class C, std::enable_if_t<detail::mutable_byte_range_v<C>, int> = 0>
    std::size_t recv_into(C& buffer) { return recv_into(std::data(buffer), std::size(buffer)); }
    template <class C, std::enable_if_t<detail::mutable_byte_range_v<C>, int> = 0>
    std::size_t recv_into(C& buffer, Timeout timeout) { return recv_into(std::data(buffer), std::size(buffer), timeout); }
    /// As recv_into, also saying the message's sequence number and losses.
    Delivery receive_into(void* buffer, std::size_t capacity, Timeout timeout = forever);
    /// As recv_into without waiting.
    std::optional<Delivery> try_recv_into(void* buffer, std::size_t capacity);

    /// Messages lost to lag so far (latest topics).
    std::uint64_t lost() const;
    /// Messages received so far.
    std::uint64_t received() const;
    /// The sequence number of the next message to read.
    std::uint64_t position() const;
    /// The newest key epoch received.
    std::uint64_t epoch() const;
    std::string topic() const;
    /// The publisher's key (the pinned one).
    PublicKey publisher_public_key() const;
    PublicKey local_public_key() const;
    Credentials publisher_credentials() const;
    /// The topic's AEAD: "aegis-128l" or "chacha20-poly1305".
    std::string cipher() const;
    std::uint32_t max_message_size() const;
    /// Readable when, after try_recv returned nullopt, a message, a key, the
    /// end of the topic or the publisher's death is pending. Owned by the
    /// subscriber: do not close it.
    int pollable_fd() const;
    int native_handle() const { return pollable_fd(); }

    /// Leaves the topic (the publisher rotates its key). Idempotent; later
    /// calls throw Closed.
    void close();
    bool is_closed() const;

    bool valid() const noexcept { return impl_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

private:
    friend class Reactor;
    friend class Subscribing;
    explicit Subscriber(bridge::SubscriberBox* impl) noexcept : impl_(impl) {}
    const bridge::SubscriberBox& get() const;
    bridge::SubscriberBox* impl_ = nullptr;
};

/// A subscription that an event loop drives, as Connecting is for streams.
/// Move-only; destroying it while it is pending closes its socket.
///
///     auto s = shmsock::Subscribing::start("ticks", opts);   // sends the SUBSCRIBE, never waits
///     // when s.fd() is readable (or s.time_left() has passed):
///     if (auto sub = s.advance()) { ... }                     // nullopt: not yet
class Subscribing {
public:
    /// An empty handle (as if moved from).
    Subscribing() noexcept = default;
    Subscribing(Subscribing&& other) noexcept;
    Subscribing& operator=(Subscribing&& other) noexcept;
    Subscribing(const Subscribing&) = delete;
    Subscribing& operator=(const Subscribing&) = delete;
    ~Subscribing();

    /// Connects the control socket and sends the SUBSCRIBE without waiting.
    /// Throws NotFound when nobody publishes the name, unless
    /// Options::connect_wait is set: then the publisher is looked for again
    /// through fd() until the wait ends (advance() throws NotFound then).
    /// Throws the errors of Subscriber::connect.
    static Subscribing start(std::string_view name, const Options& options);
    /// Takes the steps whose input is there: the Subscriber, or nullopt while
    /// it waits. Never waits. Throws what the publisher's REJECT says, or
    /// Timeout once time_left() is zero; it is over then (later calls throw
    /// Closed), as it is once the Subscriber was returned.
    std::optional<Subscriber> advance();
    /// The fd to watch for reading while it is pending (the same for the
    /// whole handshake). Owned by the subscription: do not close it, and stop
    /// watching it once advance() returned the Subscriber.
    int fd() const;
    /// How long until the subscription gives up (zero once past); read it
    /// again after each advance().
    std::chrono::nanoseconds time_left() const;

    bool valid() const noexcept { return impl_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

private:
    explicit Subscribing(bridge::SubscribingBox* impl) noexcept : impl_(impl) {}
    const bridge::SubscribingBox& get() const;
    bridge::SubscribingBox* impl_ = nullptr;
};

}  // namespace shmsock

#endif  // SHMSOCK_PUBSUB_HPP
