// Internal to the C++ package (not installed): what every source file of the
// C++ API shares. Every call into Rust goes through call(): cxx throws
// rust::Error when the Rust side returns Err; it is rethrown as shmsock::Error
// with the code the bridge left in its thread-local (read at once, on the same
// thread). Handles hold the raw pointer of a rust::Box; an empty handle (moved
// from) throws Error(Closed). The callback helpers at the end run user
// callbacks for the trampolines, which must never let an exception reach Rust.
#pragma once

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "shmsock.hpp"
#include "shmsock-cxx/src/lib.rs.h"

namespace shmsock {
namespace internal {

inline constexpr std::int64_t kForever = -1;
inline constexpr std::int64_t kDefault = -2;

[[noreturn]] inline void rethrow(const rust::Error& e) {
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

[[noreturn]] inline void throw_empty(const char* type) {
    throw Error(ErrorCode::Closed,
                std::string("this shmsock::") + type + " is empty: it was moved from (or default-constructed)");
}

inline rust::Slice<const std::uint8_t> in_bytes(const void* data, std::size_t size) {
    if (data == nullptr && size != 0) {
        throw Error(ErrorCode::InvalidArgument, "a null data pointer with a nonzero size (" + std::to_string(size) + ")");
    }
    return rust::Slice<const std::uint8_t>(static_cast<const std::uint8_t*>(data), size);
}

inline rust::Slice<std::uint8_t> out_bytes(void* data, std::size_t size) {
    if (data == nullptr && size != 0) {
        throw Error(ErrorCode::InvalidArgument, "a null buffer with a nonzero capacity (" + std::to_string(size) + ")");
    }
    return rust::Slice<std::uint8_t>(static_cast<std::uint8_t*>(data), size);
}

inline rust::Slice<const std::uint8_t> text_bytes(std::string_view text) {
    return in_bytes(text.data(), text.size());
}

inline std::int64_t timeout_ns(const Timeout& timeout) {
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

// The move assignment of a handle: drops what `mine` holds and takes `theirs`.
template <class T>
void move_box(T*& mine, T*& theirs) noexcept {
    if (&mine != &theirs) {
        drop_box(mine);
        mine = std::exchange(theirs, nullptr);
    }
}

// The object behind a handle; Error(Closed) for an empty (moved-from) one.
template <class T>
const T& deref(const T* box, const char* type) {
    if (box == nullptr) throw_empty(type);
    return *box;
}

template <class T>
T* into_raw(rust::Box<T> box) noexcept {
    return box.into_raw();
}

inline PublicKey key_from(const std::array<std::uint8_t, PublicKey::size>& bytes) { return PublicKey(bytes); }

template <class F>
PublicKey read_key(F&& fill) {
    std::array<std::uint8_t, PublicKey::size> bytes{};
    call([&] { fill(rust::Slice<std::uint8_t>(bytes.data(), bytes.size())); });
    return key_from(bytes);
}

inline Stats stats_of(const bridge::StatsData& s) {
    Stats out;
    out.messages_sent = s.messages_sent;
    out.bytes_sent = s.bytes_sent;
    out.messages_received = s.messages_received;
    out.bytes_received = s.bytes_received;
    return out;
}

inline Credentials credentials_of(const bridge::CredentialsData& c) {
    Credentials out;
    out.pid = c.pid;
    out.uid = c.uid;
    out.gid = c.gid;
    return out;
}

inline std::vector<std::uint8_t> to_vector(const rust::Vec<std::uint8_t>& v) {
    return std::vector<std::uint8_t>(v.data(), v.data() + v.size());
}

// ------------------------------------------------------- callback helpers

inline Error error_of(std::uint32_t code, rust::Str message) {
    return Error(static_cast<ErrorCode>(code), std::string(message));
}

inline void report_lost(const char* detail) noexcept {
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

}  // namespace internal
}  // namespace shmsock
