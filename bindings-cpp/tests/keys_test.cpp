// Keypair and PublicKey: generation, text form, fingerprints, key files.
#include <sys/stat.h>

#include <unordered_set>

#include "support.hpp"

using shmsock::ErrorCode;
using shmsock::Keypair;
using shmsock::PublicKey;

namespace {
std::string key_path(const std::string& name) { return support::scratch_dir() + "/" + name; }
}  // namespace

TEST(Keys, GenerateGivesDistinctKeys) {
    auto a = Keypair::generate();
    auto b = Keypair::generate();
    EXPECT_TRUE(a.valid());
    EXPECT_NE(a.public_key(), b.public_key());
    EXPECT_EQ(a.public_key_bytes(), a.public_key().bytes());
}

TEST(Keys, TextFormRoundTrips) {
    auto kp = Keypair::generate();
    std::string text = kp.public_key_text();
    EXPECT_EQ(text.rfind("shmsock-pk:", 0), 0u) << text;
    EXPECT_EQ(text.size(), std::string("shmsock-pk:").size() + 43);
    EXPECT_EQ(PublicKey::from_text(text), kp.public_key());
    EXPECT_EQ(PublicKey::from_text("  " + text + "\n"), kp.public_key());
}

TEST(Keys, MalformedTextIsInvalidKey) {
    for (const char* bad : {"", "pk:AAAA", "shmsock-pk:!!!!", "shmsock-pk:AAAA",
                            "shmsock-sk:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}) {
        EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidKey, PublicKey::from_text(bad));
    }
    // Not UTF-8.
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidKey, PublicKey::from_text(std::string("shmsock-pk:\xff\xfe", 13)));
}

TEST(Keys, FromBytesNeedsExactly32) {
    std::array<std::uint8_t, 33> bytes{};
    bytes[0] = 7;
    auto key = PublicKey::from_bytes(bytes.data(), 32);
    EXPECT_EQ(key.bytes()[0], 7);
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidKey, PublicKey::from_bytes(bytes.data(), 31));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidKey, PublicKey::from_bytes(bytes.data(), 33));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, PublicKey::from_bytes(nullptr, 32));
}

TEST(Keys, FingerprintIsShortAndStable) {
    std::array<std::uint8_t, 32> nines;
    nines.fill(9);
    PublicKey key(nines);
    auto fp = key.fingerprint();
    EXPECT_EQ(fp.size(), 19u) << fp;
    EXPECT_EQ(fp, key.fingerprint());
    nines[0] = 8;
    EXPECT_NE(fp, PublicKey(nines).fingerprint());
    auto kp = Keypair::generate();
    EXPECT_EQ(kp.fingerprint(), kp.public_key().fingerprint());
}

TEST(Keys, PublicKeyIsAValue) {
    auto a = Keypair::generate().public_key();
    PublicKey copy = a;
    EXPECT_EQ(copy, a);
    std::unordered_set<PublicKey> set{a, copy, Keypair::generate().public_key()};
    EXPECT_EQ(set.size(), 2u);
    auto b = Keypair::generate().public_key();
    EXPECT_NE(a < b, b < a);  // a strict order (usable in std::map)
}

TEST(Keys, FromSecretIsDeterministic) {
    std::array<std::uint8_t, 32> secret{};
    secret.fill(42);
    auto a = Keypair::from_secret(secret.data(), secret.size());
    auto b = Keypair::from_secret(secret.data(), secret.size());
    EXPECT_EQ(a.public_key(), b.public_key());
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidKey, Keypair::from_secret(secret.data(), 31));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, Keypair::from_secret(nullptr, 32));
}

TEST(Keys, SaveLoadRoundTripWithMode0600) {
    auto path = key_path("roundtrip.key");
    auto kp = Keypair::generate();
    kp.save(path);
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto loaded = Keypair::load(path);
    EXPECT_EQ(loaded.public_key(), kp.public_key());
    // Never overwrites an identity.
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, kp.save(path));
}

TEST(Keys, ReadableKeyFileIsRefused) {
    auto path = key_path("readable.key");
    Keypair::generate().save(path);
    ASSERT_EQ(chmod(path.c_str(), 0644), 0);
    auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::InsecureKeyFile, Keypair::load(path));
    EXPECT_NE(std::string(e.what()).find("chmod 600"), std::string::npos) << e.what();
}

TEST(Keys, MissingKeyFileIsNotFound) {
    EXPECT_SHMSOCK_ERROR(ErrorCode::NotFound, Keypair::load(key_path("missing.key")));
}

TEST(Keys, GarbageKeyFileIsInvalidKey) {
    auto path = key_path("garbage.key");
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("public-key: nonsense\n", f);
    std::fclose(f);
    chmod(path.c_str(), 0600);
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidKey, Keypair::load(path));
}

TEST(Keys, SaveIntoMissingDirectoryIsIo) {
    EXPECT_SHMSOCK_ERROR(ErrorCode::Io, Keypair::generate().save(key_path("no/such/dir/id.key")));
}

TEST(Keys, CloneIsTheSameIdentity) {
    auto kp = Keypair::generate();
    auto copy = kp.clone();
    EXPECT_EQ(copy.public_key(), kp.public_key());
    Keypair moved = std::move(kp);
    EXPECT_EQ(moved.public_key(), copy.public_key());
}
