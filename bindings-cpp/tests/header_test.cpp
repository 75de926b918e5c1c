// The public header alone, compiled with strict warnings (-pedantic -Wconversion
// -Wshadow -Wsign-conversion -Werror), and what its overloads accept.
#include <shmsock.hpp>

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace d = shmsock::detail;

static_assert(d::byte_range_v<std::string>);
static_assert(d::byte_range_v<std::vector<std::uint8_t>>);
static_assert(d::byte_range_v<std::vector<std::byte>>);
static_assert(d::byte_range_v<std::array<unsigned char, 4>>);
static_assert(d::byte_range_v<std::uint8_t[8]>);
static_assert(d::byte_range_v<shmsock::ByteView>);
static_assert(d::byte_range_v<std::string_view>);
static_assert(!d::byte_range_v<char[8]>, "char arrays (text) go to the string_view overload");
static_assert(!d::byte_range_v<std::vector<int>>, "only byte-sized elements");
static_assert(!d::byte_range_v<const char*>);
static_assert(d::mutable_byte_range_v<std::vector<std::uint8_t>>);
static_assert(d::mutable_byte_range_v<std::string>);
static_assert(d::mutable_byte_range_v<char[8]>);
static_assert(!d::mutable_byte_range_v<const std::vector<std::uint8_t>>);
static_assert(!d::mutable_byte_range_v<std::string_view>);
static_assert(std::is_same_v<shmsock::Timeout, std::optional<std::chrono::nanoseconds>>);

TEST(Header, ByteView) {
    const std::uint8_t raw[] = {104, 105};
    shmsock::ByteView view(raw, sizeof raw);
    EXPECT_EQ(view.size(), 2u);
    EXPECT_FALSE(view.empty());
    EXPECT_EQ(view.as_string_view(), "hi");
    EXPECT_EQ(view.to_vector(), (std::vector<std::uint8_t>{104, 105}));
    EXPECT_EQ(view[1], 105);
    EXPECT_TRUE(shmsock::ByteView().empty());
}

TEST(Header, TimeoutsConvertFromAnyDuration) {
    shmsock::Timeout a = std::chrono::milliseconds(5);
    shmsock::Timeout b = std::chrono::seconds(1);
    shmsock::Timeout c = shmsock::forever;
    EXPECT_EQ(a->count(), 5000000);
    EXPECT_EQ(b->count(), 1000000000);
    EXPECT_FALSE(c.has_value());
}
