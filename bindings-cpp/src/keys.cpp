// PublicKey and Keypair.

#include "internal.hpp"

namespace shmsock {

using namespace internal;

// -------------------------------------------------------------------- keys

PublicKey PublicKey::from_bytes(const void* data, std::size_t size) {
    auto bytes = in_bytes(data, size);
    if (size != PublicKey::size) {
        throw Error(ErrorCode::InvalidKey, "a public key is 32 bytes long, not " + std::to_string(size));
    }
    std::array<std::uint8_t, PublicKey::size> out{};
    std::copy(bytes.begin(), bytes.end(), out.begin());
    return PublicKey(out);
}

PublicKey PublicKey::from_text(std::string_view text) {
    auto in = text_bytes(text);
    return read_key([&](rust::Slice<std::uint8_t> out) { bridge::public_key_from_text(in, out); });
}

std::string PublicKey::to_text() const {
    return std::string(call([&] { return bridge::public_key_to_text(in_bytes(bytes_.data(), bytes_.size())); }));
}

std::string PublicKey::fingerprint() const {
    return std::string(call([&] { return bridge::public_key_fingerprint(in_bytes(bytes_.data(), bytes_.size())); }));
}

Keypair::Keypair(Keypair&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Keypair& Keypair::operator=(Keypair&& other) noexcept {
    move_box(impl_, other.impl_);
    return *this;
}

Keypair::~Keypair() { drop_box(impl_); }

const bridge::KeypairBox& Keypair::get() const { return deref(impl_, "Keypair"); }

Keypair Keypair::generate() {
    return Keypair(into_raw(call([] { return bridge::keypair_generate(); })));
}

Keypair Keypair::load(std::string_view path) {
    auto in = text_bytes(path);
    return Keypair(into_raw(call([&] { return bridge::keypair_load(in); })));
}

Keypair Keypair::from_secret(const void* secret, std::size_t size) {
    auto in = in_bytes(secret, size);
    return Keypair(into_raw(call([&] { return bridge::keypair_from_secret(in); })));
}

void Keypair::save(std::string_view path) const {
    const auto& kp = get();
    auto in = text_bytes(path);
    call([&] { kp.save(in); });
}

Keypair Keypair::clone() const {
    const auto& kp = get();
    return Keypair(into_raw(call([&] { return bridge::keypair_clone(kp); })));
}

PublicKey Keypair::public_key() const {
    const auto& kp = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { kp.public_key(out); });
}

}  // namespace shmsock
