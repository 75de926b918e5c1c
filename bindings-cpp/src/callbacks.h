// Internal: what the cxx bridge (src/lib.rs) needs from C++: the callback
// holders a Server or Client hands to Rust, and the trampolines Rust calls.
// The trampolines are noexcept: an exception thrown by a user callback is
// caught there and reported through on_error, never unwound into Rust.
#pragma once

#include <cstdint>

#include "rust/cxx.h"
#include "shmsock.hpp"

namespace shmsock {
namespace bridge {

struct ServerCallbacks {
    Server::Handlers handlers;
};

struct ClientCallbacks {
    Client::Handlers handlers;
};

void server_on_connect(const ServerCallbacks& callbacks, const ConnectionBox& connection) noexcept;
void server_on_data(const ServerCallbacks& callbacks, const ConnectionBox& connection,
                    rust::Slice<const std::uint8_t> data) noexcept;
void server_on_error(const ServerCallbacks& callbacks, const ConnectionBox& connection, std::uint32_t code,
                     rust::Str message) noexcept;
void server_on_error_unbound(const ServerCallbacks& callbacks, std::uint32_t code, rust::Str message) noexcept;
void server_on_close(const ServerCallbacks& callbacks, const ConnectionBox& connection, bool has_reason,
                     std::uint32_t code, rust::Str message) noexcept;

void client_on_data(const ClientCallbacks& callbacks, rust::Slice<const std::uint8_t> data) noexcept;
void client_on_error(const ClientCallbacks& callbacks, std::uint32_t code, rust::Str message) noexcept;
void client_on_close(const ClientCallbacks& callbacks, bool has_reason, std::uint32_t code,
                     rust::Str message) noexcept;

}  // namespace bridge
}  // namespace shmsock
