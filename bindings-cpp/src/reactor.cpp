// Reactor (include/shmsock/reactor.hpp) on top of the bridge's reactor part
// (src/reactor.rs).

#include "internal.hpp"

namespace shmsock {

using namespace internal;

Reactor::Reactor(std::chrono::nanoseconds spin) {
    if (spin.count() < 0) throw Error(ErrorCode::InvalidArgument, "the spin budget cannot be negative");
    impl_ = into_raw(call([&] { return bridge::reactor_new(spin.count()); }));
}

Reactor::Reactor(Reactor&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}

Reactor& Reactor::operator=(Reactor&& other) noexcept {
    move_box(impl_, other.impl_);
    return *this;
}

Reactor::~Reactor() { drop_box(impl_); }

const bridge::ReactorBox& Reactor::get() const { return deref(impl_, "Reactor"); }

void Reactor::add(const Stream& stream, Token token) {
    const auto& r = get();
    const auto& s = stream.get();
    call([&] { r.add_stream(s, token); });
}

void Reactor::remove(const Stream& stream) {
    const auto& r = get();
    const auto& s = stream.get();
    call([&] { r.remove_stream(s); });
}

void Reactor::add(const Listener& listener, Token token) {
    const auto& r = get();
    const auto& l = listener.get();
    call([&] { r.add_listener(l, token); });
}

void Reactor::remove(const Listener& listener) {
    const auto& r = get();
    const auto& l = listener.get();
    call([&] { r.remove_listener(l); });
}

void Reactor::add(const Subscriber& subscriber, Token token) {
    const auto& r = get();
    const auto& s = subscriber.get();
    call([&] { r.add_subscriber(s, token); });
}

void Reactor::remove(const Subscriber& subscriber) {
    const auto& r = get();
    const auto& s = subscriber.get();
    call([&] { r.remove_subscriber(s); });
}

void Reactor::add_fd(int fd, Token token) {
    const auto& r = get();
    call([&] { r.add_fd(fd, token); });
}

void Reactor::remove_fd(int fd) {
    const auto& r = get();
    call([&] { r.remove_fd(fd); });
}

Reactor::TimerId Reactor::add_timer(std::chrono::nanoseconds after, Token token) {
    const auto& r = get();
    if (after.count() < 0) after = std::chrono::nanoseconds(0);  // already due
    return TimerId{call([&] { return r.add_timer(after.count(), token); })};
}

Reactor::TimerId Reactor::add_timer(std::chrono::steady_clock::time_point at, Token token) {
    return add_timer(std::chrono::duration_cast<std::chrono::nanoseconds>(at - std::chrono::steady_clock::now()), token);
}

void Reactor::cancel_timer(TimerId id) {
    const auto& r = get();
    call([&] { r.cancel_timer(id.value); });
}

std::optional<std::chrono::nanoseconds> Reactor::next_timeout() const {
    const auto& r = get();
    std::int64_t ns = call([&] { return r.next_timeout(); });
    if (ns < 0) return std::nullopt;
    return std::chrono::nanoseconds(ns);
}

void Reactor::note_activity() {
    const auto& r = get();
    call([&] { r.note_activity(); });
}

std::vector<Reactor::Event> Reactor::poll(Timeout timeout) {
    std::vector<Event> events;
    poll(events, timeout);
    return events;
}

void Reactor::poll(std::vector<Event>& events, Timeout timeout) {
    const auto& r = get();
    auto ns = timeout_ns(timeout);
    rust::Vec<bridge::EventData> found;
    call([&] { r.poll(found, ns); });
    events.clear();
    events.reserve(found.size());
    for (const auto& e : found) events.push_back(Event{static_cast<EventKind>(e.kind), e.token});
}

void Reactor::wake() {
    const auto& r = get();
    call([&] { r.wake(); });
}

int Reactor::native_handle() const {
    const auto& r = get();
    return call([&] { return r.fd(); });
}

}  // namespace shmsock
