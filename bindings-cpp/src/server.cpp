// Server (event-driven, many clients) and its Connections, with the
// trampolines the dispatch thread calls.

#include "internal.hpp"

#include "callbacks.h"

namespace shmsock {

using namespace internal;

// -------------------------------------------------------------- connection

struct ConnectionAccess {
    // Both return a prvalue: no copy or move of a borrowed connection happens.
    static Connection borrow(const bridge::ConnectionBox& box) noexcept { return Connection(&box, false); }
    static Connection own(bridge::ConnectionBox* box) noexcept { return Connection(box, true); }
};

namespace {
const bridge::ConnectionBox* clone_connection(const bridge::ConnectionBox* box) {
    if (box == nullptr) return nullptr;
    return into_raw(call([&] { return bridge::connection_clone(*box); }));
}

void drop_connection(const bridge::ConnectionBox*& box, bool owned) noexcept {
    if (owned && box != nullptr) {
        auto* mut = const_cast<bridge::ConnectionBox*>(box);
        drop_box(mut);
    }
    box = nullptr;
}
}  // namespace

Connection::Connection(const Connection& other) : impl_(clone_connection(other.impl_)), owned_(impl_ != nullptr) {}

Connection& Connection::operator=(const Connection& other) {
    if (this != &other) {
        const bridge::ConnectionBox* copy = clone_connection(other.impl_);
        drop_connection(impl_, owned_);
        impl_ = copy;
        owned_ = copy != nullptr;
    }
    return *this;
}

Connection::Connection(Connection&& other) noexcept {
    if (other.owned_) {
        impl_ = std::exchange(other.impl_, nullptr);
        owned_ = true;
        other.owned_ = false;
    } else if (other.impl_ != nullptr) {
        // A borrowed connection (inside a callback) outlives the callback only as a copy.
        try {
            impl_ = clone_connection(other.impl_);
            owned_ = impl_ != nullptr;
        } catch (...) {
            impl_ = nullptr;
            owned_ = false;
        }
    }
}

Connection& Connection::operator=(Connection&& other) noexcept {
    if (this != &other) {
        Connection moved(std::move(other));
        drop_connection(impl_, owned_);
        impl_ = std::exchange(moved.impl_, nullptr);
        owned_ = std::exchange(moved.owned_, false);
    }
    return *this;
}

Connection::~Connection() { drop_connection(impl_, owned_); }

const bridge::ConnectionBox& Connection::get() const { return deref(impl_, "Connection"); }

std::uint64_t Connection::id() const {
    const auto& c = get();
    return call([&] { return c.id(); });
}

void Connection::send(const void* data, std::size_t size) {
    const auto& c = get();
    auto in = in_bytes(data, size);
    call([&] { c.send(in, kDefault); });
}

void Connection::send(const void* data, std::size_t size, Timeout timeout) {
    const auto& c = get();
    auto in = in_bytes(data, size);
    auto ns = timeout_ns(timeout);
    call([&] { c.send(in, ns); });
}

bool Connection::try_send(const void* data, std::size_t size) {
    const auto& c = get();
    auto in = in_bytes(data, size);
    return call([&] { return c.try_send(in); });
}

void Connection::close() {
    const auto& c = get();
    call([&] { c.close(); });
}

bool Connection::is_closed() const {
    if (impl_ == nullptr) return true;
    return call([&] { return impl_->is_closed(); });
}

PublicKey Connection::peer_public_key() const {
    const auto& c = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { c.peer_public_key(out); });
}

PublicKey Connection::local_public_key() const {
    const auto& c = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { c.local_public_key(out); });
}

Credentials Connection::peer_credentials() const {
    const auto& c = get();
    return credentials_of(call([&] { return c.peer_credentials(); }));
}

Stats Connection::stats() const {
    const auto& c = get();
    return stats_of(call([&] { return c.stats(); }));
}

std::string Connection::cipher() const {
    const auto& c = get();
    return std::string(call([&] { return c.cipher(); }));
}

// ------------------------------------------------------------------ server

Server::Server(Server&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Server& Server::operator=(Server&& other) noexcept {
    move_box(impl_, other.impl_);
    return *this;
}

Server::~Server() { drop_box(impl_); }

const bridge::ServerBox& Server::get() const { return deref(impl_, "Server"); }

Server Server::start(std::string_view name, const Options& options, Handlers handlers) {
    auto in = text_bytes(name);
    const auto& o = options.get();
    auto callbacks = std::make_unique<bridge::ServerCallbacks>();
    callbacks->handlers = std::move(handlers);
    return Server(into_raw(call([&] { return bridge::server_start(in, o, std::move(callbacks)); })));
}

void Server::close() {
    const auto& s = get();
    call([&] { s.close(); });
}

bool Server::is_closed() const {
    if (impl_ == nullptr) return true;
    return call([&] { return impl_->is_closed(); });
}

std::string Server::name() const {
    const auto& s = get();
    return std::string(call([&] { return s.name(); }));
}

PublicKey Server::public_key() const {
    const auto& s = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { s.public_key(out); });
}

std::vector<Connection> Server::connections() const {
    const auto& s = get();
    auto list = call([&] { return s.connections(); });
    std::size_t n = call([&] { return list->len(); });
    std::vector<Connection> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(ConnectionAccess::own(into_raw(call([&] { return list->get(i); }))));
    }
    return out;
}

// ------------------------------------------------------------- trampolines
//
// Called by Rust on the server's dispatch thread. None may let an exception
// escape: a user callback that throws is reported to on_error (code Io), and an
// on_error that throws is reported on stderr.

namespace bridge {

void server_on_connect(const ServerCallbacks& callbacks, const ConnectionBox& connection) noexcept {
    const auto& h = callbacks.handlers;
    if (!h.on_connect) return;
    Connection c = ConnectionAccess::borrow(connection);
    guarded("on_connect", [&] { h.on_connect(c); },
            [&](const Error& e) { if (h.on_error) h.on_error(&c, e); });
}

void server_on_data(const ServerCallbacks& callbacks, const ConnectionBox& connection,
                    rust::Slice<const std::uint8_t> data) noexcept {
    const auto& h = callbacks.handlers;
    if (!h.on_data) return;
    Connection c = ConnectionAccess::borrow(connection);
    ByteView view(data.data(), data.size());
    guarded("on_data", [&] { h.on_data(c, view); },
            [&](const Error& e) { if (h.on_error) h.on_error(&c, e); });
}

void server_on_error(const ServerCallbacks& callbacks, const ConnectionBox& connection, std::uint32_t code,
                     rust::Str message) noexcept {
    const auto& h = callbacks.handlers;
    if (!h.on_error) return;
    Connection c = ConnectionAccess::borrow(connection);
    guarded("on_error", [&] { h.on_error(&c, error_of(code, message)); },
            [](const Error& e) { report_lost(e.what()); });
}

void server_on_error_unbound(const ServerCallbacks& callbacks, std::uint32_t code, rust::Str message) noexcept {
    const auto& h = callbacks.handlers;
    if (!h.on_error) return;
    guarded("on_error", [&] { h.on_error(nullptr, error_of(code, message)); },
            [](const Error& e) { report_lost(e.what()); });
}

void server_on_close(const ServerCallbacks& callbacks, const ConnectionBox& connection, bool has_reason,
                     std::uint32_t code, rust::Str message) noexcept {
    const auto& h = callbacks.handlers;
    if (!h.on_close) return;
    Connection c = ConnectionAccess::borrow(connection);
    guarded("on_close",
            [&] {
                if (has_reason) {
                    Error reason = error_of(code, message);
                    h.on_close(c, &reason);
                } else {
                    h.on_close(c, nullptr);
                }
            },
            [&](const Error& e) { if (h.on_error) h.on_error(&c, e); });
}

}  // namespace bridge

}  // namespace shmsock
