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

// Every code of the core, asked from the core (codes 1 to 99 are the core's), so
// that no list of codes is kept by hand here.
std::vector<std::pair<ErrorCode, std::uint32_t>> core_codes() {
    std::vector<std::pair<ErrorCode, std::uint32_t>> out;
    for (std::uint32_t number = 1; number < 100; ++number) {
        if (!shmsock::testing::core_error_name(number).empty()) {
            out.emplace_back(static_cast<ErrorCode>(number), number);
        }
    }
    return out;
}

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
    // to_string knows exactly the core's codes, by the core's names.
    for (std::uint32_t number = 0; number < 100; ++number) {
        std::string core = shmsock::testing::core_error_name(number);
        EXPECT_EQ(std::string(shmsock::to_string(static_cast<ErrorCode>(number))), core.empty() ? "UNKNOWN" : core)
            << "code " << number;
    }
    EXPECT_STREQ(shmsock::to_string(ErrorCode::ServerKeyMismatch), "SERVER_KEY_MISMATCH");
    EXPECT_STREQ(shmsock::to_string(static_cast<ErrorCode>(999)), "UNKNOWN");
}

TEST(Errors, EveryCoreErrorBecomesAnErrorWithItsCodeAndMessage) {
    for (auto [code, number] : core_codes()) {
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
    for (auto [code, number] : core_codes()) {
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
