// shmsock bytes and timeouts: ByteView (a read-only view of a message),
// Timeout and `forever`, and the traits that pick the byte-range overloads.
// Included by <shmsock.hpp>; compiles on its own.
#ifndef SHMSOCK_BYTES_HPP
#define SHMSOCK_BYTES_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

// First, so that the alias Timeout below never shadows ErrorCode::Timeout
// (-Wshadow), whatever order a user includes the headers in.
#include "error.hpp"

namespace shmsock {

/// A read-only view of bytes (C++17 has no std::span), valid during a callback.
class ByteView {
public:
    constexpr ByteView() noexcept = default;
    constexpr ByteView(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

    constexpr const std::uint8_t* data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr const std::uint8_t* begin() const noexcept { return data_; }
    constexpr const std::uint8_t* end() const noexcept { return data_ + size_; }
    constexpr std::uint8_t operator[](std::size_t i) const noexcept { return data_[i]; }
    /// A copy.
    std::vector<std::uint8_t> to_vector() const { return std::vector<std::uint8_t>(begin(), end()); }
    /// The bytes as characters (no copy).
    std::string_view as_string_view() const noexcept {
        return std::string_view(reinterpret_cast<const char*>(data_), size_);
    }

private:
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
};

/// A time limit: any std::chrono duration (converted to nanoseconds), or
/// `shmsock::forever` (std::nullopt) to wait as long as it takes. Negative
/// durations are refused with InvalidArgument.
using Timeout = std::optional<std::chrono::nanoseconds>;
/// Wait as long as it takes.
inline constexpr std::nullopt_t forever = std::nullopt;

namespace detail {
template <class T>
struct is_byte : std::bool_constant<std::is_same_v<T, char> || std::is_same_v<T, unsigned char> ||
                                    std::is_same_v<T, signed char> || std::is_same_v<T, std::byte>> {};

template <class C, class = void>
struct byte_range : std::false_type {};
// A contiguous container of bytes: data() and size() (std::string, std::vector,
// std::array, ByteView, a span of C++20, ...), or an array of unsigned bytes.
// Arrays of char are left out on purpose: "text" must not send its final NUL;
// it goes to the std::string_view overload.
template <class C>
struct byte_range<C, std::void_t<decltype(std::data(std::declval<C&>())), decltype(std::size(std::declval<C&>()))>>
    : std::bool_constant<is_byte<std::remove_cv_t<std::remove_pointer_t<decltype(std::data(std::declval<C&>()))>>>::value &&
                         !(std::is_array_v<std::remove_reference_t<C>> &&
                           std::is_same_v<std::remove_cv_t<std::remove_extent_t<std::remove_reference_t<C>>>, char>)> {};

template <class C, class = void>
struct mutable_byte_range : std::false_type {};
template <class C>
struct mutable_byte_range<C, std::void_t<decltype(std::data(std::declval<C&>())), decltype(std::size(std::declval<C&>()))>>
    : std::bool_constant<is_byte<std::remove_pointer_t<decltype(std::data(std::declval<C&>()))>>::value> {};

template <class C>
inline constexpr bool byte_range_v = byte_range<const C>::value;
template <class C>
inline constexpr bool mutable_byte_range_v = mutable_byte_range<C>::value;
}  // namespace detail

}  // namespace shmsock

#endif  // SHMSOCK_BYTES_HPP
