// The C++ API of include/shmsock.hpp on top of the cxx bridge (src/lib.rs).
//
// Every call into Rust goes through call(): cxx throws rust::Error when the Rust
// side returns Err; we rethrow it as shmsock::Error with the code the bridge
// left in its thread-local (read at once, on the same thread). Handles hold the
// raw pointer of a rust::Box; an empty handle (moved from) throws Error(Closed).

#include "shmsock.hpp"

#include <cstdio>
#include <exception>
#include <new>

#include "shmsock-cxx/src/lib.rs.h"
#include "testing.hpp"

namespace shmsock {

namespace {

constexpr std::int64_t kForever = -1;
constexpr std::int64_t kDefault = -2;

[[noreturn]] void rethrow(const rust::Error& e) {
    std::uint32_t code = bridge::last_error_code();
    std::size_t needed = bridge::last_error_needed();
    if (code == 0) code = static_cast<std::uint32_t>(ErrorCode::Io);
    throw Error(static_cast<ErrorCode>(code), e.what(), needed);
}

// Runs a bridge call, turning rust::Error into shmsock::Error.
template <class F>
auto call(F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const rust::Error& e) {
        rethrow(e);
    }
}

[[noreturn]] void throw_empty(const char* type) {
    throw Error(ErrorCode::Closed,
                std::string("this shmsock::") + type + " is empty: it was moved from (or default-constructed)");
}

rust::Slice<const std::uint8_t> in_bytes(const void* data, std::size_t size) {
    if (data == nullptr && size != 0) {
        throw Error(ErrorCode::InvalidArgument, "a null data pointer with a nonzero size (" + std::to_string(size) + ")");
    }
    return rust::Slice<const std::uint8_t>(static_cast<const std::uint8_t*>(data), size);
}

rust::Slice<std::uint8_t> out_bytes(void* data, std::size_t size) {
    if (data == nullptr && size != 0) {
        throw Error(ErrorCode::InvalidArgument, "a null buffer with a nonzero capacity (" + std::to_string(size) + ")");
    }
    return rust::Slice<std::uint8_t>(static_cast<std::uint8_t*>(data), size);
}

rust::Slice<const std::uint8_t> text_bytes(std::string_view text) {
    return in_bytes(text.data(), text.size());
}

std::int64_t timeout_ns(const Timeout& timeout) {
    if (!timeout) return kForever;
    if (timeout->count() < 0) {
        throw Error(ErrorCode::InvalidArgument, "a timeout cannot be negative (use shmsock::forever to wait without limit)");
    }
    return timeout->count();
}

template <class T>
void drop_box(T*& ptr) noexcept {
    if (ptr != nullptr) {
        rust::Box<T>::from_raw(ptr);  // the temporary Box drops it
        ptr = nullptr;
    }
}

template <class T>
T* into_raw(rust::Box<T> box) noexcept {
    return box.into_raw();
}

PublicKey key_from(const std::array<std::uint8_t, PublicKey::size>& bytes) { return PublicKey(bytes); }

template <class F>
PublicKey read_key(F&& fill) {
    std::array<std::uint8_t, PublicKey::size> bytes{};
    call([&] { fill(rust::Slice<std::uint8_t>(bytes.data(), bytes.size())); });
    return key_from(bytes);
}

Stats stats_of(const bridge::StatsData& s) {
    Stats out;
    out.messages_sent = s.messages_sent;
    out.bytes_sent = s.bytes_sent;
    out.messages_received = s.messages_received;
    out.bytes_received = s.bytes_received;
    return out;
}

Credentials credentials_of(const bridge::CredentialsData& c) {
    Credentials out;
    out.pid = c.pid;
    out.uid = c.uid;
    out.gid = c.gid;
    return out;
}

std::vector<std::uint8_t> to_vector(const rust::Vec<std::uint8_t>& v) {
    return std::vector<std::uint8_t>(v.data(), v.data() + v.size());
}

}  // namespace

std::string version() {
    return std::string(call([] { return bridge::version(); }));
}

// ------------------------------------------------------------------ errors

const char* to_string(ErrorCode code) noexcept {
    switch (code) {
        // BEGIN GENERATED: error names (from the core table; see bindings-cpp/src/errors.rs)
        case ErrorCode::Timeout: return "TIMEOUT";
        case ErrorCode::WouldBlock: return "WOULD_BLOCK";
        case ErrorCode::Closed: return "CLOSED";
        case ErrorCode::PeerClosed: return "PEER_CLOSED";
        case ErrorCode::PeerGone: return "PEER_GONE";
        case ErrorCode::HandshakeRejected: return "HANDSHAKE_REJECTED";
        case ErrorCode::ServerKeyMismatch: return "SERVER_KEY_MISMATCH";
        case ErrorCode::AuthenticationFailed: return "AUTHENTICATION_FAILED";
        case ErrorCode::ProtocolVersion: return "PROTOCOL_VERSION";
        case ErrorCode::NoCommonCipher: return "NO_COMMON_CIPHER";
        case ErrorCode::ProtocolViolation: return "PROTOCOL_VIOLATION";
        case ErrorCode::MessageTooLarge: return "MESSAGE_TOO_LARGE";
        case ErrorCode::BufferTooSmall: return "BUFFER_TOO_SMALL";
        case ErrorCode::InvalidName: return "INVALID_NAME";
        case ErrorCode::AddressInUse: return "ADDRESS_IN_USE";
        case ErrorCode::NotFound: return "NOT_FOUND";
        case ErrorCode::InvalidKey: return "INVALID_KEY";
        case ErrorCode::InsecureKeyFile: return "INSECURE_KEY_FILE";
        case ErrorCode::InvalidArgument: return "INVALID_ARGUMENT";
        case ErrorCode::ResourceExhausted: return "RESOURCE_EXHAUSTED";
        case ErrorCode::PermissionDenied: return "PERMISSION_DENIED";
        case ErrorCode::Io: return "IO";
        // END GENERATED: error names
    }
    return "UNKNOWN";
}

Error::Error(ErrorCode code, const std::string& message, std::size_t needed)
    : std::runtime_error(message), code_(code), needed_(needed) {}

bool Error::ends_connection() const noexcept {
    switch (code_) {
        // BEGIN GENERATED: errors that end the connection (from the core table; see bindings-cpp/src/errors.rs)
        case ErrorCode::Closed:
        case ErrorCode::PeerClosed:
        case ErrorCode::PeerGone:
        case ErrorCode::AuthenticationFailed:
        case ErrorCode::ProtocolViolation:
        // END GENERATED: errors that end the connection
            return true;
        default:
            return false;
    }
}

namespace testing {

void raise_core_error(std::uint32_t code, std::string_view message) {
    call([&] { bridge::testing_raise(code, text_bytes(message)); });
    throw Error(ErrorCode::Io, "testing_raise returned without an error");
}

void panic_in_rust(std::string_view message) {
    call([&] { bridge::testing_panic(text_bytes(message)); });
}

std::string core_error_name(std::uint32_t code) {
    return std::string(call([&] { return bridge::error_name(code); }));
}

}  // namespace testing

// -------------------------------------------------------------------- keys

PublicKey PublicKey::from_bytes(const void* data, std::size_t size) {
    auto bytes = in_bytes(data, size);
    if (size != PublicKey::size) {
        throw Error(ErrorCode::InvalidKey, "a public key is 32 bytes long, not " + std::to_string(size));
    }
    std::array<std::uint8_t, PublicKey::size> out{};
    std::copy(bytes.begin(), bytes.end(), out.begin());
    return PublicKey(out);
}

PublicKey PublicKey::from_text(std::string_view text) {
    auto in = text_bytes(text);
    return read_key([&](rust::Slice<std::uint8_t> out) { bridge::public_key_from_text(in, out); });
}

std::string PublicKey::to_text() const {
    return std::string(call([&] { return bridge::public_key_to_text(in_bytes(bytes_.data(), bytes_.size())); }));
}

std::string PublicKey::fingerprint() const {
    return std::string(call([&] { return bridge::public_key_fingerprint(in_bytes(bytes_.data(), bytes_.size())); }));
}

Keypair::Keypair(Keypair&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Keypair& Keypair::operator=(Keypair&& other) noexcept {
    if (this != &other) {
        drop_box(impl_);
        impl_ = std::exchange(other.impl_, nullptr);
    }
    return *this;
}

Keypair::~Keypair() { drop_box(impl_); }

const bridge::KeypairBox& Keypair::get() const {
    if (impl_ == nullptr) throw_empty("Keypair");
    return *impl_;
}

Keypair Keypair::generate() {
    return Keypair(into_raw(call([] { return bridge::keypair_generate(); })));
}

Keypair Keypair::load(std::string_view path) {
    auto in = text_bytes(path);
    return Keypair(into_raw(call([&] { return bridge::keypair_load(in); })));
}

Keypair Keypair::from_secret(const void* secret, std::size_t size) {
    auto in = in_bytes(secret, size);
    return Keypair(into_raw(call([&] { return bridge::keypair_from_secret(in); })));
}

void Keypair::save(std::string_view path) const {
    const auto& kp = get();
    auto in = text_bytes(path);
    call([&] { kp.save(in); });
}

Keypair Keypair::clone() const {
    const auto& kp = get();
    return Keypair(into_raw(call([&] { return bridge::keypair_clone(kp); })));
}

PublicKey Keypair::public_key() const {
    const auto& kp = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { kp.public_key(out); });
}

// ----------------------------------------------------------------- options

Options::Options() : impl_(into_raw(call([] { return bridge::options_new(); }))) {}

Options::Options(const Options& other) : impl_(nullptr) {
    if (other.impl_ != nullptr) {
        impl_ = into_raw(call([&] { return bridge::options_clone(*other.impl_); }));
    }
}

Options& Options::operator=(const Options& other) {
    if (this != &other) {
        bridge::OptionsBox* copy = nullptr;
        if (other.impl_ != nullptr) copy = into_raw(call([&] { return bridge::options_clone(*other.impl_); }));
        drop_box(impl_);
        impl_ = copy;
    }
    return *this;
}

Options::Options(Options&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Options& Options::operator=(Options&& other) noexcept {
    if (this != &other) {
        drop_box(impl_);
        impl_ = std::exchange(other.impl_, nullptr);
    }
    return *this;
}

Options::~Options() { drop_box(impl_); }

const bridge::OptionsBox& Options::get() const {
    if (impl_ == nullptr) throw_empty("Options");
    return *impl_;
}

bridge::OptionsBox& Options::get_mut() {
    if (impl_ == nullptr) throw_empty("Options");
    return *impl_;
}

Options& Options::keypair(const Keypair& keypair) {
    auto& o = get_mut();
    const auto& kp = keypair.get();
    call([&] { o.set_keypair(kp); });
    return *this;
}

Options& Options::server_key(const PublicKey& key) {
    auto& o = get_mut();
    call([&] { o.set_server_key(in_bytes(key.bytes().data(), key.bytes().size())); });
    return *this;
}

Options& Options::allow_clients(const std::vector<PublicKey>& keys) {
    auto& o = get_mut();
    std::vector<std::uint8_t> all;
    all.reserve(keys.size() * PublicKey::size);
    for (const auto& key : keys) all.insert(all.end(), key.bytes().begin(), key.bytes().end());
    call([&] { o.set_allowed_clients(in_bytes(all.data(), all.size())); });
    return *this;
}

Options& Options::allow_any_client() {
    auto& o = get_mut();
    call([&] { o.set_allow_any_client(); });
    return *this;
}

Options& Options::allow_uids(const std::vector<std::uint32_t>& uids) {
    auto& o = get_mut();
    call([&] { o.set_allowed_uids(rust::Slice<const std::uint32_t>(uids.data(), uids.size())); });
    return *this;
}

Options& Options::allow_any_uid() {
    auto& o = get_mut();
    call([&] { o.set_allow_any_uid(); });
    return *this;
}

Options& Options::ring_size(std::uint32_t bytes) {
    auto& o = get_mut();
    call([&] { o.set_ring_size(bytes); });
    return *this;
}

Options& Options::max_message_size(std::uint32_t bytes) {
    auto& o = get_mut();
    call([&] { o.set_max_message_size(bytes); });
    return *this;
}

Options& Options::send_timeout(Timeout timeout) {
    auto& o = get_mut();
    auto ns = timeout_ns(timeout);
    call([&] { o.set_send_timeout(ns); });
    return *this;
}

Options& Options::recv_timeout(Timeout timeout) {
    auto& o = get_mut();
    auto ns = timeout_ns(timeout);
    call([&] { o.set_recv_timeout(ns); });
    return *this;
}

Options& Options::handshake_timeout(std::chrono::nanoseconds timeout) {
    auto& o = get_mut();
    auto ns = timeout_ns(timeout);
    call([&] { o.set_handshake_timeout(ns); });
    return *this;
}

Options& Options::spin(std::chrono::nanoseconds spin) {
    auto& o = get_mut();
    auto ns = timeout_ns(spin);
    call([&] { o.set_spin(ns); });
    return *this;
}

Options& Options::backend(Backend backend) {
    auto& o = get_mut();
    call([&] { o.set_backend(static_cast<std::uint8_t>(backend)); });
    return *this;
}

Options& Options::require_chacha(bool require) {
    auto& o = get_mut();
    call([&] { o.set_require_chacha(require); });
    return *this;
}

void Options::validate() const {
    const auto& o = get();
    call([&] { o.validate(); });
}

// ------------------------------------------------------------------ stream

Stream::Stream(Stream&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Stream& Stream::operator=(Stream&& other) noexcept {
    if (this != &other) {
        drop_box(impl_);
        impl_ = std::exchange(other.impl_, nullptr);
    }
    return *this;
}

Stream::~Stream() { drop_box(impl_); }

const bridge::StreamBox& Stream::get() const {
    if (impl_ == nullptr) throw_empty("Stream");
    return *impl_;
}

Stream Stream::connect(std::string_view name, const Options& options) {
    auto in = text_bytes(name);
    const auto& o = options.get();
    return Stream(into_raw(call([&] { return bridge::stream_connect(in, o); })));
}

void Stream::send(const void* data, std::size_t size) {
    const auto& s = get();
    auto in = in_bytes(data, size);
    call([&] { s.send(in, kDefault); });
}

void Stream::send(const void* data, std::size_t size, Timeout timeout) {
    const auto& s = get();
    auto in = in_bytes(data, size);
    auto ns = timeout_ns(timeout);
    call([&] { s.send(in, ns); });
}

bool Stream::try_send(const void* data, std::size_t size) {
    const auto& s = get();
    auto in = in_bytes(data, size);
    return call([&] { return s.try_send(in); });
}

std::vector<std::uint8_t> Stream::recv() {
    const auto& s = get();
    return to_vector(call([&] { return s.recv(kDefault); }));
}

std::vector<std::uint8_t> Stream::recv(Timeout timeout) {
    const auto& s = get();
    auto ns = timeout_ns(timeout);
    return to_vector(call([&] { return s.recv(ns); }));
}

std::size_t Stream::recv_into(void* buffer, std::size_t capacity) {
    const auto& s = get();
    auto out = out_bytes(buffer, capacity);
    return call([&] { return s.recv_into(out, kDefault); });
}

std::size_t Stream::recv_into(void* buffer, std::size_t capacity, Timeout timeout) {
    const auto& s = get();
    auto out = out_bytes(buffer, capacity);
    auto ns = timeout_ns(timeout);
    return call([&] { return s.recv_into(out, ns); });
}

std::optional<std::vector<std::uint8_t>> Stream::try_recv() {
    const auto& s = get();
    rust::Vec<std::uint8_t> message;
    if (!call([&] { return s.try_recv(message); })) return std::nullopt;
    return to_vector(message);
}

std::optional<std::size_t> Stream::try_recv_into(void* buffer, std::size_t capacity) {
    const auto& s = get();
    auto out = out_bytes(buffer, capacity);
    std::int64_t n = call([&] { return s.try_recv_into(out); });
    if (n < 0) return std::nullopt;
    return static_cast<std::size_t>(n);
}

void Stream::close() {
    const auto& s = get();
    call([&] { s.close(); });
}

bool Stream::is_closed() const {
    if (impl_ == nullptr) return true;
    return call([&] { return impl_->is_closed(); });
}

PublicKey Stream::peer_public_key() const {
    const auto& s = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { s.peer_public_key(out); });
}

PublicKey Stream::local_public_key() const {
    const auto& s = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { s.local_public_key(out); });
}

Credentials Stream::peer_credentials() const {
    const auto& s = get();
    return credentials_of(call([&] { return s.peer_credentials(); }));
}

Stats Stream::stats() const {
    const auto& s = get();
    return stats_of(call([&] { return s.stats(); }));
}

std::string Stream::cipher() const {
    const auto& s = get();
    return std::string(call([&] { return s.cipher(); }));
}

Backend Stream::backend() const {
    const auto& s = get();
    return static_cast<Backend>(call([&] { return s.backend(); }));
}

std::uint32_t Stream::ring_size() const {
    const auto& s = get();
    return call([&] { return s.ring_size(); });
}

std::uint32_t Stream::peer_max_message_size() const {
    const auto& s = get();
    return call([&] { return s.peer_max_message_size(); });
}

std::string Stream::endpoint() const {
    const auto& s = get();
    return std::string(call([&] { return s.endpoint(); }));
}

bool Stream::is_server_side() const {
    const auto& s = get();
    return call([&] { return s.is_server_side(); });
}

int Stream::native_handle() const {
    const auto& s = get();
    return call([&] { return s.fd(); });
}

// ---------------------------------------------------------------- listener

Listener::Listener(Listener&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Listener& Listener::operator=(Listener&& other) noexcept {
    if (this != &other) {
        drop_box(impl_);
        impl_ = std::exchange(other.impl_, nullptr);
    }
    return *this;
}

Listener::~Listener() { drop_box(impl_); }

const bridge::ListenerBox& Listener::get() const {
    if (impl_ == nullptr) throw_empty("Listener");
    return *impl_;
}

Listener Listener::bind(std::string_view name, const Options& options) {
    auto in = text_bytes(name);
    const auto& o = options.get();
    return Listener(into_raw(call([&] { return bridge::listener_bind(in, o); })));
}

Stream Listener::accept(Timeout timeout) {
    const auto& l = get();
    auto ns = timeout_ns(timeout);
    return Stream(into_raw(call([&] { return l.accept(ns); })));
}

void Listener::close() {
    const auto& l = get();
    call([&] { l.close(); });
}

bool Listener::is_closed() const {
    if (impl_ == nullptr) return true;
    return call([&] { return impl_->is_closed(); });
}

std::string Listener::name() const {
    const auto& l = get();
    return std::string(call([&] { return l.name(); }));
}

PublicKey Listener::public_key() const {
    const auto& l = get();
    return read_key([&](rust::Slice<std::uint8_t> out) { l.public_key(out); });
}

int Listener::native_handle() const {
    const auto& l = get();
    return call([&] { return l.fd(); });
}

std::uint64_t Listener::rejected_count() const {
    const auto& l = get();
    return call([&] { return l.rejected_count(); });
}

std::optional<Error> Listener::last_rejection() const {
    const auto& l = get();
    std::uint32_t code = call([&] { return l.last_rejection_code(); });
    if (code == 0) return std::nullopt;
    return Error(static_cast<ErrorCode>(code), std::string(call([&] { return l.last_rejection_message(); })));
}

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

const bridge::ConnectionBox& Connection::get() const {
    if (impl_ == nullptr) throw_empty("Connection");
    return *impl_;
}

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
    if (this != &other) {
        drop_box(impl_);
        impl_ = std::exchange(other.impl_, nullptr);
    }
    return *this;
}

Server::~Server() { drop_box(impl_); }

const bridge::ServerBox& Server::get() const {
    if (impl_ == nullptr) throw_empty("Server");
    return *impl_;
}

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

// ------------------------------------------------------------------ client

Client::Client(Client&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Client& Client::operator=(Client&& other) noexcept {
    if (this != &other) {
        drop_box(impl_);
        impl_ = std::exchange(other.impl_, nullptr);
    }
    return *this;
}

Client::~Client() { drop_box(impl_); }

const bridge::ClientBox& Client::get() const {
    if (impl_ == nullptr) throw_empty("Client");
    return *impl_;
}

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
// Called by Rust on the server's dispatch thread or the client's reader thread.
// None may let an exception escape: a user callback that throws is reported to
// on_error (code Io), and an on_error that throws is reported on stderr.

namespace bridge {

namespace {

Error error_of(std::uint32_t code, rust::Str message) {
    return Error(static_cast<ErrorCode>(code), std::string(message));
}

void report_lost(const char* detail) noexcept {
    std::fprintf(stderr, "shmsock: %s; the exception was dropped\n", detail);
}

template <class OnError>
void report(const char* what, const char* detail, OnError&& on_error) noexcept {
    std::string message;
    try {
        message = std::string("the ") + what + " callback threw: " + detail;
        on_error(Error(ErrorCode::Io, message));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shmsock: %s; then on_error threw (%s); both exceptions were dropped\n",
                     message.c_str(), e.what());
    } catch (...) {
        std::fprintf(stderr, "shmsock: %s; then on_error threw; both exceptions were dropped\n", message.c_str());
    }
}

// Runs `body`; a throw goes to `on_error(Error)`.
template <class Body, class OnError>
void guarded(const char* what, Body&& body, OnError&& on_error) noexcept {
    try {
        body();
    } catch (const std::exception& e) {
        report(what, e.what(), on_error);
    } catch (...) {
        report(what, "an exception that is not a std::exception", on_error);
    }
}

}  // namespace

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
