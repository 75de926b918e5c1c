// Options: the builder of everything configurable about a connection.

#include "internal.hpp"

namespace shmsock {

using namespace internal;

// ----------------------------------------------------------------- options

Options::Options() : impl_(into_raw(call([] { return bridge::options_new(); }))) {}

Options::Options(const Options& other) : impl_(nullptr) {
    if (other.impl_ != nullptr) {
        impl_ = into_raw(call([&] { return bridge::options_clone(*other.impl_); }));
    }
}

Options& Options::operator=(const Options& other) {
    if (this != &other) {
        bridge::OptionsBox* copy = nullptr;
        if (other.impl_ != nullptr) copy = into_raw(call([&] { return bridge::options_clone(*other.impl_); }));
        drop_box(impl_);
        impl_ = copy;
    }
    return *this;
}

Options::Options(Options&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Options& Options::operator=(Options&& other) noexcept {
    move_box(impl_, other.impl_);
    return *this;
}

Options::~Options() { drop_box(impl_); }

const bridge::OptionsBox& Options::get() const { return deref(impl_, "Options"); }

bridge::OptionsBox& Options::get_mut() {
    if (impl_ == nullptr) throw_empty("Options");
    return *impl_;
}

Options& Options::keypair(const Keypair& keypair) {
    auto& o = get_mut();
    const auto& kp = keypair.get();
    call([&] { o.set_keypair(kp); });
    return *this;
}

Options& Options::server_key(const PublicKey& key) {
    auto& o = get_mut();
    call([&] { o.set_server_key(in_bytes(key.bytes().data(), key.bytes().size())); });
    return *this;
}

Options& Options::allow_clients(const std::vector<PublicKey>& keys) {
    auto& o = get_mut();
    std::vector<std::uint8_t> all;
    all.reserve(keys.size() * PublicKey::size);
    for (const auto& key : keys) all.insert(all.end(), key.bytes().begin(), key.bytes().end());
    call([&] { o.set_allowed_clients(in_bytes(all.data(), all.size())); });
    return *this;
}

Options& Options::allow_any_client() {
    auto& o = get_mut();
    call([&] { o.set_allow_any_client(); });
    return *this;
}

Options& Options::allow_uids(const std::vector<std::uint32_t>& uids) {
    auto& o = get_mut();
    call([&] { o.set_allowed_uids(rust::Slice<const std::uint32_t>(uids.data(), uids.size())); });
    return *this;
}

Options& Options::allow_any_uid() {
    auto& o = get_mut();
    call([&] { o.set_allow_any_uid(); });
    return *this;
}

Options& Options::ring_size(std::uint32_t bytes) {
    auto& o = get_mut();
    call([&] { o.set_ring_size(bytes); });
    return *this;
}

Options& Options::max_message_size(std::uint32_t bytes) {
    auto& o = get_mut();
    call([&] { o.set_max_message_size(bytes); });
    return *this;
}

Options& Options::send_timeout(Timeout timeout) {
    auto& o = get_mut();
    auto ns = timeout_ns(timeout);
    call([&] { o.set_send_timeout(ns); });
    return *this;
}

Options& Options::recv_timeout(Timeout timeout) {
    auto& o = get_mut();
    auto ns = timeout_ns(timeout);
    call([&] { o.set_recv_timeout(ns); });
    return *this;
}

Options& Options::handshake_timeout(std::chrono::nanoseconds timeout) {
    auto& o = get_mut();
    auto ns = timeout_ns(timeout);
    call([&] { o.set_handshake_timeout(ns); });
    return *this;
}

Options& Options::connect_wait(std::chrono::nanoseconds wait) {
    auto& o = get_mut();
    auto ns = timeout_ns(wait);
    call([&] { o.set_connect_wait(ns); });
    return *this;
}

Options& Options::spin(std::chrono::nanoseconds spin) {
    auto& o = get_mut();
    auto ns = timeout_ns(spin);
    call([&] { o.set_spin(ns); });
    return *this;
}

Options& Options::backend(Backend backend) {
    auto& o = get_mut();
    call([&] { o.set_backend(static_cast<std::uint8_t>(backend)); });
    return *this;
}

Options& Options::require_chacha(bool require) {
    auto& o = get_mut();
    call([&] { o.set_require_chacha(require); });
    return *this;
}

Options& Options::max_reassembly_bytes(std::size_t bytes) {
    auto& o = get_mut();
    call([&] { o.set_max_reassembly_bytes(bytes); });
    return *this;
}

Options& Options::max_connections(std::size_t n) {
    auto& o = get_mut();
    call([&] { o.set_max_connections(n); });
    return *this;
}

Options& Options::max_connections_per_uid(std::size_t n) {
    auto& o = get_mut();
    call([&] { o.set_max_connections_per_uid(n); });
    return *this;
}

Options& Options::max_pending_handshakes(std::size_t overall, std::size_t per_uid) {
    auto& o = get_mut();
    call([&] { o.set_max_pending_handshakes(overall, per_uid); });
    return *this;
}

Options& Options::max_queued_bytes(std::size_t bytes) {
    auto& o = get_mut();
    call([&] { o.set_max_queued_bytes(bytes); });
    return *this;
}

Options& Options::dispatch_threads(std::size_t n) {
    auto& o = get_mut();
    call([&] { o.set_dispatch_threads(n); });
    return *this;
}

void Options::validate() const {
    const auto& o = get();
    call([&] { o.validate(); });
}

}  // namespace shmsock
