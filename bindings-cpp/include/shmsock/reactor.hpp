// shmsock::Reactor: one thread's wait over many streams, listeners,
// subscribers, file descriptors and timers (the core's reactor). Included by
// <shmsock.hpp>; compiles on its own.
//
// Register each source with a token of your choice (any value but UINT64_MAX);
// poll() reports the tokens of the sources that are readable, of the timers
// that expired, and whether wake() was called. Sources are level-triggered: a
// stream stays readable until a try_ call said "nothing" (nullopt / false),
// which re-arms it, so an event not acted on is reported again. A stream's
// wake-up is armed by a try_ call that found nothing: after adding a stream,
// call try_recv until nullopt once (messages may already be there). The pattern:
//
//     shmsock::Reactor reactor;
//     reactor.add(listener, 0);
//     for (;;) {
//         for (auto& event : reactor.poll()) { ... accept(0ns) / try_recv until nullopt /
//                                              try_send or send_resumable ... }
//     }
//
// Nothing the reactor reports blocks: accept with a zero timeout advances the
// handshakes without waiting for a silent client; try_recv, try_send and
// Stream::send_resumable never wait. The reactor's own fd (native_handle()) is
// readable when poll() has something other than a timer to report, so another
// event loop can watch it and call poll(0ns).
//
// Threads: add/remove and wake() may be called from any thread, also while
// another thread polls; poll() and the timer calls take the reactor's lock
// (call them from the polling thread; a timer added from another thread waits
// for the running poll to return: wake() the reactor first).
#ifndef SHMSOCK_REACTOR_HPP
#define SHMSOCK_REACTOR_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "bytes.hpp"
#include "listener.hpp"
#include "pubsub.hpp"
#include "stream.hpp"

namespace shmsock {

namespace bridge {
struct ReactorBox;
}  // namespace bridge

/// A caller-chosen number naming a source or a timer in its events.
using Token = std::uint64_t;

class Reactor {
public:
    enum class EventKind : std::uint8_t {
        /// The source registered with `token` is readable (or its peer hung up).
        Readable = 1,
        /// The timer added with `token` expired (it is removed).
        Timer = 2,
        /// wake() was called since the last poll (`token` is 0).
        Woken = 3,
    };
    struct Event {
        EventKind kind = EventKind::Readable;
        Token token = 0;
    };
    /// Names a timer, to cancel it.
    struct TimerId {
        std::uint64_t value = 0;
    };

    /// A reactor that, after traffic (note_activity()), spins up to `spin`
    /// looking for events before it sleeps (0: never; at most 1 s).
    explicit Reactor(std::chrono::nanoseconds spin = std::chrono::microseconds(50));
    Reactor(Reactor&& other) noexcept;
    Reactor& operator=(Reactor&& other) noexcept;
    Reactor(const Reactor&) = delete;
    Reactor& operator=(const Reactor&) = delete;
    /// Registered sources are not affected.
    ~Reactor();

    /// Watches a stream: readable when a message, ring space after a try_send
    /// that said no, the peer's close or its death may be there, once a try_
    /// call found nothing (call try_recv until nullopt after adding it). The
    /// stream must stay alive until removed (destroying it removes it too).
    void add(const Stream& stream, Token token);
    void remove(const Stream& stream);
    /// Watches a listener: readable when accept(0ns) may make progress.
    void add(const Listener& listener, Token token);
    void remove(const Listener& listener);
    /// Watches a subscriber: readable when try_recv may have something.
    void add(const Subscriber& subscriber, Token token);
    void remove(const Subscriber& subscriber);
    /// Watches any readable file descriptor of yours.
    void add_fd(int fd, Token token);
    void remove_fd(int fd);

    /// A timer that reports `token` once `after` has passed.
    TimerId add_timer(std::chrono::nanoseconds after, Token token);
    TimerId add_timer(std::chrono::steady_clock::time_point at, Token token);
    /// Cancels a timer (nothing happens if it already fired).
    void cancel_timer(TimerId id);
    /// The time until the earliest timer, or nullopt without one (for a
    /// foreign loop watching native_handle()).
    std::optional<std::chrono::nanoseconds> next_timeout() const;
    /// Says a source had traffic, so the next polls may spin (when the peers
    /// run on other cores this saves the wake-up latency).
    void note_activity();

    /// Waits until something happens or `timeout` passes (forever: no limit;
    /// 0: just look) and returns what happened (empty after a timeout).
    std::vector<Event> poll(Timeout timeout = forever);
    /// As poll(), into `events` (cleared first), reusing its storage.
    void poll(std::vector<Event>& events, Timeout timeout = forever);
    /// Makes the current or next poll() return with a Woken event. Any thread.
    void wake();
    /// The reactor's epoll fd (owned by it: do not close it).
    int native_handle() const;

    bool valid() const noexcept { return impl_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

private:
    const bridge::ReactorBox& get() const;
    bridge::ReactorBox* impl_ = nullptr;
};

}  // namespace shmsock

#endif  // SHMSOCK_REACTOR_HPP
