// Stream (one connection), Connecting (a connect an event loop drives) and
// Listener (bind/accept).

#include "internal.hpp"

namespace shmsock {

using namespace internal;

// ------------------------------------------------------------------ stream

Stream::Stream(Stream&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Stream& Stream::operator=(Stream&& other) noexcept {
    move_box(impl_, other.impl_);
    return *this;
}

Stream::~Stream() { drop_box(impl_); }

const bridge::StreamBox& Stream::get() const { return deref(impl_, "Stream"); }

Stream Stream::connect(std::string_view name, const Options& options) {
    auto in = text_bytes(name);
    const auto& o = options.get();
    return Stream(into_raw(call([&] { return bridge::stream_connect(in, o); })));
}

// -------------------------------------------------------------- connecting

Connecting::Connecting(Connecting&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Connecting& Connecting::operator=(Connecting&& other) noexcept {
    move_box(impl_, other.impl_);
    return *this;
}

Connecting::~Connecting() { drop_box(impl_); }

const bridge::ConnectingBox& Connecting::get() const { return deref(impl_, "Connecting"); }

Connecting Connecting::start(std::string_view name, const Options& options) {
    auto in = text_bytes(name);
    const auto& o = options.get();
    return Connecting(into_raw(call([&] { return bridge::connect_start(in, o); })));
}

std::optional<Stream> Connecting::advance() {
    const auto& c = get();
    if (!call([&] { return c.advance(); })) return std::nullopt;
    return Stream(into_raw(call([&] { return c.take_stream(); })));
}

int Connecting::fd() const {
    const auto& c = get();
    return call([&] { return c.fd(); });
}

std::chrono::nanoseconds Connecting::time_left() const {
    const auto& c = get();
    return std::chrono::nanoseconds(call([&] { return c.time_left_ns(); }));
}

// ------------------------------------------------- stream: send, receive

void Stream::send(const void* data, std::size_t size) {
    const auto& s = get();
    auto in = in_bytes(data, size);
    call([&] { s.send(in, kDefault); });
}

void Stream::send(const void* data, std::size_t size, Timeout timeout) {
    const auto& s = get();
    auto in = in_bytes(data, size);
    auto ns = timeout_ns(timeout);
    call([&] { s.send(in, ns); });
}

bool Stream::try_send(const void* data, std::size_t size) {
    const auto& s = get();
    auto in = in_bytes(data, size);
    return call([&] { return s.try_send(in); });
}

Stream::SendProgress Stream::send_resumable(const void* data, std::size_t size) {
    const auto& s = get();
    auto in = in_bytes(data, size);
    std::int64_t sent = call([&] { return s.send_resumable(in); });
    SendProgress progress;
    progress.complete = sent < 0;
    progress.sent = sent < 0 ? size : static_cast<std::size_t>(sent);
    return progress;
}

std::vector<std::uint8_t> Stream::recv() {
    const auto& s = get();
    return to_vector(call([&] { return s.recv(kDefault); }));
}

std::vector<std::uint8_t> Stream::recv(Timeout timeout) {
    const auto& s = get();
    auto ns = timeout_ns(timeout);
    return to_vector(call([&] { return s.recv(ns); }));
}

std::size_t Stream::recv_into(void* buffer, std::size_t capacity) {
    const auto& s = get();
    auto out = out_bytes(buffer, capacity);
    return call([&] { return s.recv_into(out, kDefault); });
}

std::size_t Stream::recv_into(void* buffer, std::size_t capacity, Timeout timeout) {
    const auto& s = get();
    auto out = out_bytes(buffer, capacity);
    auto ns = timeout_ns(timeout);
    return call([&] { return s.recv_into(out, ns); });
}

std::optional<std::vector<std::uint8_t>> Stream::try_recv() {
    const auto& s = get();
    rust::Vec<std::uint8_t> message;
    if (!call([&] { return s.try_recv(message); })) return std::nullopt;
    return to_vector(message);
}

std::optional<std::size_t> Stream::try_recv_into(void* buffer, std::size_t capacity) {
    const auto& s = get();
    auto out = out_bytes(buffer, capacity);
    std::int64_t n = call([&] { return s.try_recv_into(out); });
    if (n < 0) return std::nullopt;
    return static_cast<std::size_t>(n);
}

bool Stream::hand_over() {
    const auto& s = get();
    return call([&] { return s.hand_over(); });
}

void Stream::close() {
    const auto& s = get();
    call([&] { s.close(); });
}

bool Stream::is_closed() const {
    if (impl_ == nullptr) return true;
    return call([&] { return impl_->is_closed(); });
}

PublicKey Stream::peer_public_key() const {
    const auto& s = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { s.peer_public_key(out); });
}

PublicKey Stream::local_public_key() const {
    const auto& s = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { s.local_public_key(out); });
}

Credentials Stream::peer_credentials() const {
    const auto& s = get();
    return credentials_of(call([&] { return s.peer_credentials(); }));
}

Stats Stream::stats() const {
    const auto& s = get();
    return stats_of(call([&] { return s.stats(); }));
}

std::string Stream::cipher() const {
    const auto& s = get();
    return std::string(call([&] { return s.cipher(); }));
}

Backend Stream::backend() const {
    const auto& s = get();
    return static_cast<Backend>(call([&] { return s.backend(); }));
}

std::uint32_t Stream::ring_size() const {
    const auto& s = get();
    return call([&] { return s.ring_size(); });
}

std::uint32_t Stream::peer_max_message_size() const {
    const auto& s = get();
    return call([&] { return s.peer_max_message_size(); });
}

std::string Stream::endpoint() const {
    const auto& s = get();
    return std::string(call([&] { return s.endpoint(); }));
}

bool Stream::is_server_side() const {
    const auto& s = get();
    return call([&] { return s.is_server_side(); });
}

int Stream::native_handle() const {
    const auto& s = get();
    return call([&] { return s.fd(); });
}

// ---------------------------------------------------------------- listener

Listener::Listener(Listener&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Listener& Listener::operator=(Listener&& other) noexcept {
    move_box(impl_, other.impl_);
    return *this;
}

Listener::~Listener() { drop_box(impl_); }

const bridge::ListenerBox& Listener::get() const { return deref(impl_, "Listener"); }

Listener Listener::bind(std::string_view name, const Options& options) {
    auto in = text_bytes(name);
    const auto& o = options.get();
    return Listener(into_raw(call([&] { return bridge::listener_bind(in, o); })));
}

Stream Listener::accept(Timeout timeout) {
    const auto& l = get();
    auto ns = timeout_ns(timeout);
    return Stream(into_raw(call([&] { return l.accept(ns); })));
}

void Listener::close() {
    const auto& l = get();
    call([&] { l.close(); });
}

bool Listener::is_closed() const {
    if (impl_ == nullptr) return true;
    return call([&] { return impl_->is_closed(); });
}

std::string Listener::name() const {
    const auto& l = get();
    return std::string(call([&] { return l.name(); }));
}

PublicKey Listener::public_key() const {
    const auto& l = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { l.public_key(out); });
}

int Listener::native_handle() const {
    const auto& l = get();
    return call([&] { return l.fd(); });
}

std::uint64_t Listener::rejected_count() const {
    const auto& l = get();
    return call([&] { return l.rejected_count(); });
}

void Listener::set_max_connections(std::size_t max, std::size_t max_per_uid) {
    const auto& l = get();
    call([&] { l.set_max_connections(max, max_per_uid); });
}

std::optional<Error> Listener::last_rejection() const {
    const auto& l = get();
    std::uint32_t code = call([&] { return l.last_rejection_code(); });
    if (code == 0) return std::nullopt;
    return Error(static_cast<ErrorCode>(code), std::string(call([&] { return l.last_rejection_message(); })));
}

}  // namespace shmsock
