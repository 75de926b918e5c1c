// shmsock keys: PublicKey (who a peer is) and Keypair (this side's identity),
// and std::hash of a PublicKey.
// Included by <shmsock.hpp>; compiles on its own.
#ifndef SHMSOCK_KEYS_HPP
#define SHMSOCK_KEYS_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"
#include "bytes.hpp"

namespace shmsock {

namespace bridge {
// The Rust objects behind the handles (opaque here; defined by the cxx bridge).
struct KeypairBox;
}  // namespace bridge

/// A static X25519 public key: who a peer is. A plain value (copyable).
class PublicKey {
public:
    static constexpr std::size_t size = 32;

    /// All zero bytes (not a usable key).
    PublicKey() noexcept = default;
    explicit PublicKey(const std::array<std::uint8_t, size>& bytes) noexcept : bytes_(bytes) {}
    /// The key from exactly 32 bytes (else InvalidKey).
    static PublicKey from_bytes(const void* data, std::size_t size);
    /// Parses the text form `shmsock-pk:<base64url>` (surrounding white space ignored).
    static PublicKey from_text(std::string_view text);

    /// The 32 raw bytes.
    const std::array<std::uint8_t, size>& bytes() const noexcept { return bytes_; }
    /// The text form, `shmsock-pk:<base64url>`.
    std::string to_text() const;
    /// A short fingerprint for display, e.g. `3f2a:9c11:07be:55d0`.
    std::string fingerprint() const;

    friend bool operator==(const PublicKey& a, const PublicKey& b) noexcept { return a.bytes_ == b.bytes_; }
    friend bool operator!=(const PublicKey& a, const PublicKey& b) noexcept { return a.bytes_ != b.bytes_; }
    friend bool operator<(const PublicKey& a, const PublicKey& b) noexcept { return a.bytes_ < b.bytes_; }

private:
    std::array<std::uint8_t, size> bytes_{};
};

/// A static keypair: this side's identity. The secret stays in the library and
/// is zeroed when the keypair is destroyed. Move-only; `clone()` copies.
class Keypair {
public:
    /// An empty handle (as if moved from).
    Keypair() noexcept = default;
    Keypair(Keypair&& other) noexcept;
    Keypair& operator=(Keypair&& other) noexcept;
    Keypair(const Keypair&) = delete;
    Keypair& operator=(const Keypair&) = delete;
    ~Keypair();

    /// A fresh random keypair.
    static Keypair generate();
    /// Loads a key file; refuses one that group or others can read (InsecureKeyFile).
    static Keypair load(std::string_view path);
    /// The keypair of a 32-byte secret.
    static Keypair from_secret(const void* secret, std::size_t size);

    /// Writes a new key file with mode 0600; never overwrites (InvalidArgument).
    void save(std::string_view path) const;
    /// A copy (the secret is copied inside the library).
    Keypair clone() const;

    PublicKey public_key() const;
    std::array<std::uint8_t, PublicKey::size> public_key_bytes() const { return public_key().bytes(); }
    std::string public_key_text() const { return public_key().to_text(); }
    std::string fingerprint() const { return public_key().fingerprint(); }

    /// False for an empty (moved-from) handle.
    bool valid() const noexcept { return impl_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

private:
    friend class Options;
    explicit Keypair(bridge::KeypairBox* impl) noexcept : impl_(impl) {}
    const bridge::KeypairBox& get() const;
    bridge::KeypairBox* impl_ = nullptr;
};

}  // namespace shmsock

namespace std {
template <>
struct hash<shmsock::PublicKey> {
    size_t operator()(const shmsock::PublicKey& key) const noexcept {
        // The keys are uniformly random: their first bytes are a good hash.
        size_t h = 0;
        for (size_t i = 0; i < sizeof(size_t); ++i) h = (h << 8) | key.bytes()[i];
        return h;
    }
};
}  // namespace std

#endif  // SHMSOCK_KEYS_HPP
