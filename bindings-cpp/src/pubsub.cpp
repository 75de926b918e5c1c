// Publisher, Subscriber and TopicOptions (include/shmsock/pubsub.hpp) on top
// of the bridge's pub/sub part (src/pubsub.rs).

#include "internal.hpp"

namespace shmsock {

using namespace internal;

namespace {

bridge::TopicOptionsData topic_data(const TopicOptions& t) {
    bridge::TopicOptionsData d{};
    d.slots = t.slots();
    d.max_message_size = t.max_message_size();
    d.latest = t.policy() == SlowSubscribers::Latest;
    if (d.latest) {
        d.reliable_timeout_ns = 0;
    } else {
        if (t.reliable_timeout().count() <= 0) {
            throw Error(ErrorCode::InvalidArgument, "a reliable topic needs a positive timeout");
        }
        d.reliable_timeout_ns = t.reliable_timeout().count();
    }
    d.rekey_interval_ns = timeout_ns(t.rekey_interval());
    d.max_subscribers = t.max_subscribers();
    return d;
}

Delivery delivery_of(const bridge::DeliveryData& d) {
    Delivery out;
    out.size = d.len;
    out.sequence = d.sequence;
    out.lost = d.lost;
    return out;
}

}  // namespace

// ----------------------------------------------------------- topic options

TopicOptions::TopicOptions() {
    auto d = call([] { return bridge::topic_options_default(); });
    slots_ = d.slots;
    max_message_size_ = d.max_message_size;
    policy_ = d.latest ? SlowSubscribers::Latest : SlowSubscribers::Reliable;
    reliable_timeout_ = std::chrono::nanoseconds(d.reliable_timeout_ns);
    if (d.rekey_interval_ns >= 0) rekey_interval_ = std::chrono::nanoseconds(d.rekey_interval_ns);
    max_subscribers_ = d.max_subscribers;
}

// --------------------------------------------------------------- publisher

Publisher::Publisher(Publisher&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Publisher& Publisher::operator=(Publisher&& other) noexcept {
    move_box(impl_, other.impl_);
    return *this;
}

Publisher::~Publisher() { drop_box(impl_); }

const bridge::PublisherBox& Publisher::get() const { return deref(impl_, "Publisher"); }

Publisher Publisher::bind(std::string_view name, const Options& options, const TopicOptions& topic) {
    auto in = text_bytes(name);
    const auto& o = options.get();
    auto t = topic_data(topic);
    return Publisher(into_raw(call([&] { return bridge::publisher_bind(in, o, t); })));
}

void Publisher::publish(const void* data, std::size_t size) {
    const auto& p = get();
    auto in = in_bytes(data, size);
    call([&] { p.publish(in); });
}

bool Publisher::try_publish(const void* data, std::size_t size) {
    const auto& p = get();
    auto in = in_bytes(data, size);
    return call([&] { return p.try_publish(in); });
}

std::optional<std::chrono::nanoseconds> Publisher::publish_deadline() const {
    const auto& p = get();
    auto ns = call([&] { return p.publish_deadline_ns(); });
    if (ns < 0) return std::nullopt;
    return std::chrono::nanoseconds(ns);
}

int Publisher::pollable_fd() const {
    const auto& p = get();
    return call([&] { return p.fd(); });
}

void Publisher::wait_for_subscribers(std::size_t n, Timeout timeout) {
    const auto& p = get();
    auto ns = timeout_ns(timeout);
    call([&] { p.wait_for_subscribers(n, ns); });
}

bool Publisher::try_wait_for_subscribers(std::size_t n) {
    const auto& p = get();
    return call([&] { return p.try_wait_for_subscribers(n); });
}

int Publisher::membership_fd() const {
    const auto& p = get();
    return call([&] { return p.membership_fd(); });
}

std::size_t Publisher::subscriber_count() const {
    const auto& p = get();
    return call([&] { return p.subscriber_count(); });
}

std::vector<SubscriberInfo> Publisher::subscribers() const {
    const auto& p = get();
    auto list = call([&] { return p.subscribers(); });
    std::vector<SubscriberInfo> out;
    out.reserve(list.size());
    for (const auto& s : list) {
        SubscriberInfo info;
        info.id = s.id;
        std::array<std::uint8_t, PublicKey::size> key{};
        std::copy(s.public_key.begin(), s.public_key.end(), key.begin());
        info.public_key = PublicKey(key);
        info.credentials = credentials_of(s.credentials);
        info.joined_at = s.joined_at;
        out.push_back(info);
    }
    return out;
}

void Publisher::remove(std::uint64_t id) {
    const auto& p = get();
    call([&] { p.remove(id); });
}

void Publisher::rotate_key() {
    const auto& p = get();
    call([&] { p.rotate_key(); });
}

std::uint64_t Publisher::epoch() const {
    const auto& p = get();
    return call([&] { return p.epoch(); });
}

std::uint64_t Publisher::sequence() const {
    const auto& p = get();
    return call([&] { return p.sequence(); });
}

std::uint64_t Publisher::dropped_count() const {
    const auto& p = get();
    return call([&] { return p.dropped_count(); });
}

std::string Publisher::topic() const {
    const auto& p = get();
    return std::string(call([&] { return p.topic(); }));
}

PublicKey Publisher::public_key() const {
    const auto& p = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { p.public_key(out); });
}

std::string Publisher::cipher() const {
    const auto& p = get();
    return std::string(call([&] { return p.cipher(); }));
}

std::uint32_t Publisher::max_message_size() const {
    const auto& p = get();
    return call([&] { return p.max_message_size(); });
}

void Publisher::close() {
    const auto& p = get();
    call([&] { p.close(); });
}

bool Publisher::is_closed() const {
    if (impl_ == nullptr) return true;
    return call([&] { return impl_->is_closed(); });
}

// -------------------------------------------------------------- subscriber

Subscriber::Subscriber(Subscriber&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Subscriber& Subscriber::operator=(Subscriber&& other) noexcept {
    move_box(impl_, other.impl_);
    return *this;
}

Subscriber::~Subscriber() { drop_box(impl_); }

const bridge::SubscriberBox& Subscriber::get() const { return deref(impl_, "Subscriber"); }

Subscriber Subscriber::connect(std::string_view name, const Options& options) {
    auto in = text_bytes(name);
    const auto& o = options.get();
    return Subscriber(into_raw(call([&] { return bridge::subscriber_connect(in, o); })));
}

// ------------------------------------------------------------- subscribing

Subscribing::Subscribing(Subscribing&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Subscribing& Subscribing::operator=(Subscribing&& other) noexcept {
    move_box(impl_, other.impl_);
    return *this;
}

Subscribing::~Subscribing() { drop_box(impl_); }

const bridge::SubscribingBox& Subscribing::get() const { return deref(impl_, "Subscribing"); }

Subscribing Subscribing::start(std::string_view name, const Options& options) {
    auto in = text_bytes(name);
    const auto& o = options.get();
    return Subscribing(into_raw(call([&] { return bridge::subscribe_start(in, o); })));
}

std::optional<Subscriber> Subscribing::advance() {
    const auto& s = get();
    if (!call([&] { return s.advance(); })) return std::nullopt;
    return Subscriber(into_raw(call([&] { return s.take_subscriber(); })));
}

int Subscribing::fd() const {
    const auto& s = get();
    return call([&] { return s.fd(); });
}

std::chrono::nanoseconds Subscribing::time_left() const {
    const auto& s = get();
    return std::chrono::nanoseconds(call([&] { return s.time_left_ns(); }));
}

std::vector<std::uint8_t> Subscriber::recv() {
    const auto& s = get();
    rust::Vec<std::uint8_t> data;
    call([&] { return s.recv(data, kDefault); });
    return to_vector(data);
}

std::vector<std::uint8_t> Subscriber::recv(Timeout timeout) {
    return recv_message(timeout).data;
}

Message Subscriber::recv_message(Timeout timeout) {
    const auto& s = get();
    auto ns = timeout_ns(timeout);
    rust::Vec<std::uint8_t> data;
    auto d = call([&] { return s.recv(data, ns); });
    Message out;
    out.data = to_vector(data);
    out.sequence = d.sequence;
    out.lost = d.lost;
    return out;
}

std::optional<std::vector<std::uint8_t>> Subscriber::try_recv() {
    const auto& s = get();
    rust::Vec<std::uint8_t> data;
    bridge::DeliveryData d{};
    if (!call([&] { return s.try_recv(data, d); })) return std::nullopt;
    return to_vector(data);
}

std::size_t Subscriber::recv_into(void* buffer, std::size_t capacity) {
    const auto& s = get();
    auto out = out_bytes(buffer, capacity);
    return call([&] { return s.recv_into(out, kDefault); }).len;
}

std::size_t Subscriber::recv_into(void* buffer, std::size_t capacity, Timeout timeout) {
    return receive_into(buffer, capacity, timeout).size;
}

Delivery Subscriber::receive_into(void* buffer, std::size_t capacity, Timeout timeout) {
    const auto& s = get();
    auto out = out_bytes(buffer, capacity);
    auto ns = timeout_ns(timeout);
    return delivery_of(call([&] { return s.recv_into(out, ns); }));
}

std::optional<Delivery> Subscriber::try_recv_into(void* buffer, std::size_t capacity) {
    const auto& s = get();
    auto out = out_bytes(buffer, capacity);
    bridge::DeliveryData d{};
    if (!call([&] { return s.try_recv_into(out, d); })) return std::nullopt;
    return delivery_of(d);
}

std::uint64_t Subscriber::lost() const {
    const auto& s = get();
    return call([&] { return s.lost(); });
}

std::uint64_t Subscriber::received() const {
    const auto& s = get();
    return call([&] { return s.received(); });
}

std::uint64_t Subscriber::position() const {
    const auto& s = get();
    return call([&] { return s.position(); });
}

std::uint64_t Subscriber::epoch() const {
    const auto& s = get();
    return call([&] { return s.epoch(); });
}

std::string Subscriber::topic() const {
    const auto& s = get();
    return std::string(call([&] { return s.topic(); }));
}

PublicKey Subscriber::publisher_public_key() const {
    const auto& s = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { s.publisher_public_key(out); });
}

PublicKey Subscriber::local_public_key() const {
    const auto& s = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { s.local_public_key(out); });
}

Credentials Subscriber::publisher_credentials() const {
    const auto& s = get();
    return credentials_of(call([&] { return s.publisher_credentials(); }));
}

std::string Subscriber::cipher() const {
    const auto& s = get();
    return std::string(call([&] { return s.cipher(); }));
}

std::uint32_t Subscriber::max_message_size() const {
    const auto& s = get();
    return call([&] { return s.max_message_size(); });
}

int Subscriber::pollable_fd() const {
    const auto& s = get();
    return call([&] { return s.fd(); });
}

void Subscriber::close() {
    const auto& s = get();
    call([&] { s.close(); });
}

bool Subscriber::is_closed() const {
    if (impl_ == nullptr) return true;
    return call([&] { return impl_->is_closed(); });
}

}  // namespace shmsock
