// The error model: every core code maps to shmsock::Error with the same number,
// the same name and the core's message; a Rust panic becomes an Error too.
#include <algorithm>
#include <atomic>
#include <thread>
#include <type_traits>

#include "support.hpp"
#include "testing.hpp"

using shmsock::Error;
using shmsock::ErrorCode;

namespace {

const std::vector<std::pair<ErrorCode, std::uint32_t>> kAllCodes = {
    {ErrorCode::Timeout, 1},           {ErrorCode::WouldBlock, 2},         {ErrorCode::Closed, 3},
    {ErrorCode::PeerClosed, 4},        {ErrorCode::PeerGone, 5},           {ErrorCode::HandshakeRejected, 6},
    {ErrorCode::ServerKeyMismatch, 7}, {ErrorCode::AuthenticationFailed, 8}, {ErrorCode::ProtocolVersion, 9},
    {ErrorCode::NoCommonCipher, 10},   {ErrorCode::ProtocolViolation, 11}, {ErrorCode::MessageTooLarge, 12},
    {ErrorCode::BufferTooSmall, 13},   {ErrorCode::InvalidName, 14},       {ErrorCode::AddressInUse, 15},
    {ErrorCode::NotFound, 16},         {ErrorCode::InvalidKey, 17},        {ErrorCode::InsecureKeyFile, 18},
    {ErrorCode::InvalidArgument, 19},  {ErrorCode::ResourceExhausted, 20}, {ErrorCode::PermissionDenied, 21},
    {ErrorCode::Io, 22},
};

}  // namespace

TEST(Errors, IsARuntimeError) {
    static_assert(std::is_base_of_v<std::runtime_error, Error>);
    Error e(ErrorCode::Timeout, "too slow");
    const std::runtime_error& base = e;
    EXPECT_STREQ(base.what(), "too slow");
    EXPECT_EQ(e.code(), ErrorCode::Timeout);
    EXPECT_STREQ(e.name(), "TIMEOUT");
    EXPECT_EQ(e.needed(), 0u);
}

TEST(Errors, CodesHaveTheCoreNumbersAndNames) {
    for (auto [code, number] : kAllCodes) {
        EXPECT_EQ(static_cast<std::uint32_t>(code), number);
        EXPECT_EQ(std::string(shmsock::to_string(code)), shmsock::testing::core_error_name(number))
            << "code " << number;
    }
    // The enum covers every code the core has (the core has none past the last).
    EXPECT_EQ(shmsock::testing::core_error_name(23), "");
    EXPECT_STREQ(shmsock::to_string(static_cast<ErrorCode>(999)), "UNKNOWN");
}

TEST(Errors, EveryCoreErrorBecomesAnErrorWithItsCodeAndMessage) {
    for (auto [code, number] : kAllCodes) {
        if (code == ErrorCode::BufferTooSmall) continue;  // below, with needed()
        std::string message = "message of code " + std::to_string(number) + " with UTF-8: é";
        try {
            shmsock::testing::raise_core_error(number, message);
            ADD_FAILURE() << "nothing thrown for " << number;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), code);
            EXPECT_EQ(std::string(e.what()), message);
            EXPECT_STREQ(e.name(), shmsock::to_string(code));
        }
    }
}

TEST(Errors, BufferTooSmallCarriesTheSizeNeeded) {
    try {
        shmsock::testing::raise_core_error(13, "4242");
        ADD_FAILURE() << "nothing thrown";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::BufferTooSmall);
        EXPECT_EQ(e.needed(), 4242u);
        EXPECT_NE(std::string(e.what()).find("4242"), std::string::npos) << e.what();
    }
}

TEST(Errors, UnknownCodeIsAnInvalidArgument) {
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, shmsock::testing::raise_core_error(0, "x"));
    EXPECT_SHMSOCK_ERROR(ErrorCode::InvalidArgument, shmsock::testing::raise_core_error(9999, "x"));
}

TEST(Errors, ARustPanicBecomesAnErrorNotAnAbort) {
    for (int i = 0; i < 3; ++i) {
        auto e = EXPECT_SHMSOCK_ERROR(ErrorCode::Io, shmsock::testing::panic_in_rust("boom " + std::to_string(i)));
        EXPECT_NE(std::string(e.what()).find("panic"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("boom " + std::to_string(i)), std::string::npos) << e.what();
    }
    // The library still works after a caught panic.
    EXPECT_FALSE(shmsock::Keypair::generate().public_key_text().empty());
}

TEST(Errors, ErrorsThatEndTheConnection) {
    for (auto [code, number] : kAllCodes) {
        (void)number;
        bool ends = code == ErrorCode::Closed || code == ErrorCode::PeerClosed || code == ErrorCode::PeerGone ||
                    code == ErrorCode::AuthenticationFailed || code == ErrorCode::ProtocolViolation;
        EXPECT_EQ(Error(code, "x").ends_connection(), ends) << shmsock::to_string(code);
    }
}

TEST(Errors, CodeIsPreservedPerThread) {
    // The code travels in a thread-local beside the message: errors on other
    // threads at the same time do not mix them up.
    std::vector<std::thread> threads;
    std::atomic<int> wrong{0};
    for (std::uint32_t t = 0; t < 4; ++t) {
        threads.emplace_back([t, &wrong] {
            std::uint32_t number = 1 + t * 5;
            for (int i = 0; i < 500; ++i) {
                try {
                    shmsock::testing::raise_core_error(number, "t");
                } catch (const Error& e) {
                    if (static_cast<std::uint32_t>(e.code()) != number) ++wrong;
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(wrong.load(), 0);
}

TEST(Errors, VersionIsTheWorkspaceVersion) {
    auto v = shmsock::version();
    EXPECT_FALSE(v.empty());
    EXPECT_EQ(std::count(v.begin(), v.end(), '.'), 2) << v;
}
