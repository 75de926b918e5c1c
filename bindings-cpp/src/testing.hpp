// Internal hooks for the tests of the error mapping and the panic boundary.
// Not part of the public API (not installed).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace shmsock {
namespace testing {

/// Throws the shmsock::Error that a core error of `code` becomes (for
/// BufferTooSmall, `message` is the size needed, in decimal).
[[noreturn]] void raise_core_error(std::uint32_t code, std::string_view message);
/// Panics in Rust, inside the panic boundary of the bridge.
void panic_in_rust(std::string_view message);
/// The core's stable name of `code` (ErrorKind::name), "" if none.
std::string core_error_name(std::uint32_t code);

}  // namespace testing
}  // namespace shmsock
