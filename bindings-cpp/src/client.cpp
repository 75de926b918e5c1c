// Client (event-driven, one connection) with the trampolines its reader
// thread calls.

#include "internal.hpp"

#include "callbacks.h"

namespace shmsock {

using namespace internal;

// ------------------------------------------------------------------ client

Client::Client(Client&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Client& Client::operator=(Client&& other) noexcept {
    move_box(impl_, other.impl_);
    return *this;
}

Client::~Client() { drop_box(impl_); }

const bridge::ClientBox& Client::get() const { return deref(impl_, "Client"); }

Client Client::connect(std::string_view name, const Options& options, Handlers handlers) {
    auto in = text_bytes(name);
    const auto& o = options.get();
    auto callbacks = std::make_unique<bridge::ClientCallbacks>();
    callbacks->handlers = std::move(handlers);
    return Client(into_raw(call([&] { return bridge::client_connect(in, o, std::move(callbacks)); })));
}

void Client::write(const void* data, std::size_t size) {
    const auto& c = get();
    auto in = in_bytes(data, size);
    call([&] { c.write(in, kDefault); });
}

void Client::write(const void* data, std::size_t size, Timeout timeout) {
    const auto& c = get();
    auto in = in_bytes(data, size);
    auto ns = timeout_ns(timeout);
    call([&] { c.write(in, ns); });
}

bool Client::try_write(const void* data, std::size_t size) {
    const auto& c = get();
    auto in = in_bytes(data, size);
    return call([&] { return c.try_write(in); });
}

void Client::close() {
    const auto& c = get();
    call([&] { c.close(); });
}

bool Client::is_closed() const {
    if (impl_ == nullptr) return true;
    return call([&] { return impl_->is_closed(); });
}

PublicKey Client::server_public_key() const {
    const auto& c = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { c.server_public_key(out); });
}

Stats Client::stats() const {
    const auto& c = get();
    return stats_of(call([&] { return c.stats(); }));
}

// ------------------------------------------------------------- trampolines
//
// Called by Rust on the client's reader thread; as for the server's, none lets
// an exception escape.

namespace bridge {

void client_on_data(const ClientCallbacks& callbacks, rust::Slice<const std::uint8_t> data) noexcept {
    const auto& h = callbacks.handlers;
    if (!h.on_data) return;
    ByteView view(data.data(), data.size());
    guarded("on_data", [&] { h.on_data(view); }, [&](const Error& e) { if (h.on_error) h.on_error(e); });
}

void client_on_error(const ClientCallbacks& callbacks, std::uint32_t code, rust::Str message) noexcept {
    const auto& h = callbacks.handlers;
    if (!h.on_error) return;
    guarded("on_error", [&] { h.on_error(error_of(code, message)); },
            [](const Error& e) { report_lost(e.what()); });
}

void client_on_close(const ClientCallbacks& callbacks, bool has_reason, std::uint32_t code,
                     rust::Str message) noexcept {
    const auto& h = callbacks.handlers;
    if (!h.on_close) return;
    guarded("on_close",
            [&] {
                if (has_reason) {
                    Error reason = error_of(code, message);
                    h.on_close(&reason);
                } else {
                    h.on_close(nullptr);
                }
            },
            [&](const Error& e) { if (h.on_error) h.on_error(e); });
}

}  // namespace bridge

}  // namespace shmsock
