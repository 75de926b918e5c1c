//! The reactor: one thread's wait over many streams, listeners, fds and timers.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use shmsock::{Event, Reactor, Registry, TimerId, Waker};

use crate::boundary::boundary;
use crate::handle::{self, handle};
use crate::result::{shmsock_result, FfiError, FfiResult};
use crate::util::{self, Out};

/// A reactor: waits for many streams, listeners, file descriptors and timers
/// at once, so one thread can drive many connections with the non-blocking
/// calls (shmsock_stream_try_recv_into(), shmsock_stream_try_send(),
/// shmsock_listener_accept() with a timeout of 0).
///
/// Register each source with a token of your choice (any value but
/// UINT64_MAX); shmsock_reactor_poll() reports the tokens of the sources that
/// are readable, of the timers that expired, and whether
/// shmsock_reactor_wake() was called. Sources are level-triggered: a stream
/// stays readable until a try_ call returned SHMSOCK_WOULD_BLOCK, which re-arms
/// it. The reactor's own fd (shmsock_reactor_fd()) can be watched by another
/// event loop (libuv, a C program's epoll): when it is readable, call
/// shmsock_reactor_poll() with timeout 0.
///
/// Thread safety: registering and removing sources and shmsock_reactor_wake()
/// may be called from any thread, also while another thread polls. Polling
/// and the timer functions take the reactor's lock: call them from one thread
/// (a timer added from another thread waits for the running poll to return;
/// wake the reactor first).
pub struct shmsock_reactor {
    reactor: Mutex<ReactorState>,
    registry: Registry,
    waker: Waker,
    fd: i32,
}

struct ReactorState {
    reactor: Reactor,
    /// Events polled but not yet handed out (more than the caller's array held).
    pending: VecDeque<Event>,
    scratch: Vec<Event>,
}

/// What an event reports: see shmsock_event.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmsock_event_kind {
    /// The source registered with `token` is readable (or its peer hung up).
    SHMSOCK_EVENT_READABLE = 1,
    /// The timer added with `token` expired (it is removed).
    SHMSOCK_EVENT_TIMER = 2,
    /// shmsock_reactor_wake() was called (`token` is 0).
    SHMSOCK_EVENT_WOKEN = 3,
}

/// One event reported by shmsock_reactor_poll().
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmsock_event {
    /// What happened.
    pub kind: shmsock_event_kind,
    /// The token of the source or timer (0 for SHMSOCK_EVENT_WOKEN).
    pub token: u64,
}

impl From<Event> for shmsock_event {
    fn from(event: Event) -> shmsock_event {
        let (kind, token) = match event {
            Event::Readable(token) => (shmsock_event_kind::SHMSOCK_EVENT_READABLE, token),
            Event::Timer(token) => (shmsock_event_kind::SHMSOCK_EVENT_TIMER, token),
            Event::Woken => (shmsock_event_kind::SHMSOCK_EVENT_WOKEN, 0),
        };
        shmsock_event { kind, token }
    }
}

handle!(shmsock_reactor, "reactor");

/// Creates a reactor that, after traffic, spins up to `spin_us` microseconds
/// looking for events before it sleeps (0: never spins; spinning stops by
/// itself while it finds nothing). Never blocks. On success `*out` receives a
/// new reactor, owned by the caller, to be freed with shmsock_reactor_free().
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_ARGUMENT (more than 1 s of
/// spin), SHMSOCK_IO (no epoll set or eventfd could be created).
#[no_mangle]
pub unsafe extern "C" fn shmsock_reactor_new(spin_us: u64, out: *mut *mut shmsock_reactor) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a writable pointer or NULL (caller's contract).
        let out = unsafe { Out::new(out, "out") }?;
        let spin = Duration::from_micros(spin_us);
        if spin > shmsock::options::MAX_SPIN {
            return Err(FfiError::invalid("the spin budget must be at most 1 s"));
        }
        let reactor = Reactor::new(spin)?;
        let registry = reactor.registry();
        let waker = reactor.waker();
        let fd = reactor.as_fd().as_raw_fd();
        let state = ReactorState { reactor, pending: VecDeque::new(), scratch: Vec::new() };
        out.write(handle::into_raw(shmsock_reactor { reactor: Mutex::new(state), registry, waker, fd }));
        Ok(())
    })
}

/// Frees a reactor. NULL is a no-op. Registered streams and listeners are not
/// affected. The reactor must not be in use on another thread; freeing twice
/// is undefined behaviour, as with free(3).
#[no_mangle]
pub unsafe extern "C" fn shmsock_reactor_free(reactor: *mut shmsock_reactor) {
    // SAFETY: a reactor from this library or NULL, not freed before.
    boundary!(|| unsafe { handle::free(reactor) })
}

fn register(reactor: &shmsock_reactor, fd: BorrowedFd<'_>, token: u64) -> FfiResult<()> {
    if token == u64::MAX {
        return Err(FfiError::invalid("token UINT64_MAX is reserved"));
    }
    reactor.registry.register(fd, token)?;
    Ok(())
}

/// Watches a stream: `token` is reported when a message (or ring space after a
/// try_send that returned SHMSOCK_WOULD_BLOCK, or the peer's close) may be
/// there. The stream must stay alive until removed. Never blocks. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_ARGUMENT (token UINT64_MAX,
/// or the stream is already registered), SHMSOCK_IO.
#[no_mangle]
pub unsafe extern "C" fn shmsock_reactor_add_stream(
    reactor: *const shmsock_reactor,
    stream: *const crate::stream::shmsock_stream,
    token: u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live reactor and stream, or NULL (caller's contract).
        let (reactor, stream) = unsafe { (handle::arg(reactor)?, handle::arg(stream)?) };
        register(reactor, stream.pollable_fd(), token)
    })
}

/// Stops watching a stream. Never blocks. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_reactor_remove_stream(
    reactor: *const shmsock_reactor,
    stream: *const crate::stream::shmsock_stream,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live reactor and stream, or NULL (caller's contract).
        let (reactor, stream) = unsafe { (handle::arg(reactor)?, handle::arg(stream)?) };
        reactor.registry.deregister(stream.pollable_fd());
        Ok(())
    })
}

/// Watches a listener: `token` is reported when a client is waiting to be
/// accepted or a handshake in progress can advance (call
/// shmsock_listener_accept() with a timeout of 0, which advances them all). The listener must stay
/// alive until removed. Never blocks. Thread-safe.
///
/// Errors: as shmsock_reactor_add_stream().
#[no_mangle]
pub unsafe extern "C" fn shmsock_reactor_add_listener(
    reactor: *const shmsock_reactor,
    listener: *const crate::listener::shmsock_listener,
    token: u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live reactor and listener, or NULL (caller's contract).
        let (reactor, listener) = unsafe { (handle::arg(reactor)?, handle::arg(listener)?) };
        register(reactor, listener.pollable_fd(), token)
    })
}

/// Stops watching a listener. Never blocks. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_reactor_remove_listener(
    reactor: *const shmsock_reactor,
    listener: *const crate::listener::shmsock_listener,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live reactor and listener, or NULL (caller's contract).
        let (reactor, listener) = unsafe { (handle::arg(reactor)?, handle::arg(listener)?) };
        reactor.registry.deregister(listener.pollable_fd());
        Ok(())
    })
}

/// Watches any file descriptor of the caller's for readability (a pipe, a
/// socket, another library's fd). `fd` must stay open until removed. Never
/// blocks. Thread-safe.
///
/// Errors: SHMSOCK_INVALID_ARGUMENT (a negative fd, token UINT64_MAX, an fd
/// already registered or that cannot be watched), SHMSOCK_NULL_ARGUMENT, SHMSOCK_IO.
#[no_mangle]
pub unsafe extern "C" fn shmsock_reactor_add_fd(
    reactor: *const shmsock_reactor,
    fd: i32,
    token: u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live reactor or NULL (caller's contract).
        let reactor = unsafe { handle::arg(reactor) }?;
        let fd = borrowed_fd(fd)?;
        register(reactor, fd, token)
    })
}

/// Stops watching a file descriptor. Never blocks. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_ARGUMENT (a negative fd).
#[no_mangle]
pub unsafe extern "C" fn shmsock_reactor_remove_fd(reactor: *const shmsock_reactor, fd: i32) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live reactor or NULL (caller's contract).
        let reactor = unsafe { handle::arg(reactor) }?;
        reactor.registry.deregister(borrowed_fd(fd)?);
        Ok(())
    })
}

fn borrowed_fd<'a>(fd: i32) -> FfiResult<BorrowedFd<'a>> {
    if fd < 0 {
        return Err(FfiError::invalid(format!("{fd} is not a file descriptor")));
    }
    // SAFETY: the caller keeps `fd` open while the reactor watches it (its
    // contract); the borrow only lasts for this call, and epoll tolerates a
    // descriptor that is not open (EBADF, reported as an error).
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Adds a timer that reports SHMSOCK_EVENT_TIMER with `token` once `delay_ms`
/// milliseconds have passed, and writes its id (for
/// shmsock_reactor_cancel_timer()) to `*out_id` (may be NULL). Never blocks
/// (but waits for a poll running on another thread).
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_ARGUMENT (a delay too long
/// for the clock).
#[no_mangle]
pub unsafe extern "C" fn shmsock_reactor_add_timer(
    reactor: *const shmsock_reactor,
    delay_ms: u64,
    token: u64,
    out_id: *mut u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live reactor or NULL (caller's contract).
        let reactor = unsafe { handle::arg(reactor) }?;
        let at = Instant::now()
            .checked_add(Duration::from_millis(delay_ms))
            .ok_or_else(|| FfiError::invalid("the timer's delay is too long"))?;
        let id = reactor.reactor.lock().reactor.add_timer(at, token);
        if !out_id.is_null() {
            // SAFETY: non-NULL, so a writable value (caller's contract).
            unsafe { out_id.write(id.0) };
        }
        Ok(())
    })
}

/// Cancels a timer; nothing happens if it already fired or never existed.
/// Never blocks (but waits for a poll running on another thread).
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_reactor_cancel_timer(reactor: *const shmsock_reactor, id: u64) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live reactor or NULL (caller's contract).
        let reactor = unsafe { handle::arg(reactor) }?;
        reactor.reactor.lock().reactor.cancel_timer(TimerId(id));
        Ok(())
    })
}

/// Makes the running or next shmsock_reactor_poll() return with
/// SHMSOCK_EVENT_WOKEN. Never blocks. Thread-safe; async-signal-safe in
/// practice (one write(2) to an eventfd).
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_reactor_wake(reactor: *const shmsock_reactor) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live reactor or NULL (caller's contract).
        unsafe { handle::arg(reactor) }?.waker.wake();
        Ok(())
    })
}

/// Writes the reactor's file descriptor to `*out`: readable when
/// shmsock_reactor_poll() has something other than a timer to report, for an
/// outer event loop to watch (it also needs shmsock_reactor_next_timeout()).
/// The fd belongs to the reactor: do not close it. Never blocks. Thread-safe.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_reactor_fd(reactor: *const shmsock_reactor, out: *mut i32) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live reactor or NULL; a writable value or NULL.
        let (reactor, out) = unsafe { (handle::arg(reactor)?, Out::new(out, "out")?) };
        out.write(reactor.fd);
        Ok(())
    })
}

/// Writes to `*out_ms` the milliseconds until the earliest timer expires
/// (rounded up), or SHMSOCK_FOREVER when there is no timer. Never blocks (but
/// waits for a poll running on another thread).
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_reactor_next_timeout(
    reactor: *const shmsock_reactor,
    out_ms: *mut u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live reactor or NULL; a writable value or NULL.
        let (reactor, out) = unsafe { (handle::arg(reactor)?, Out::new(out_ms, "out_ms")?) };
        let next = reactor.reactor.lock().reactor.next_deadline();
        out.write(match next {
            None => u64::MAX,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                u64::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX - 1)
            }
        });
        Ok(())
    })
}

/// Waits until a source is readable, a timer expires or the reactor is woken,
/// up to `timeout_ms` milliseconds (0: just look; SHMSOCK_FOREVER: no limit),
/// and writes up to `capacity` events to `events`, their number to
/// `*out_count` (0 after a timeout or a signal). Events that did not fit are
/// returned by the next call, before it waits. Blocks up to the timeout.
/// Call from one thread at a time.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_ARGUMENT (capacity 0), SHMSOCK_IO.
#[no_mangle]
pub unsafe extern "C" fn shmsock_reactor_poll(
    reactor: *const shmsock_reactor,
    timeout_ms: u64,
    events: *mut shmsock_event,
    capacity: usize,
    out_count: *mut usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live reactor or NULL; a writable value or NULL.
        let (reactor, out) = unsafe { (handle::arg(reactor)?, Out::new(out_count, "out_count")?) };
        if events.is_null() {
            return Err(FfiError::null("events"));
        }
        if capacity == 0 {
            return Err(FfiError::invalid("the events array must hold at least one event"));
        }
        let mut guarded = reactor.reactor.lock();
        let state = &mut *guarded;
        if state.pending.is_empty() {
            state.reactor.poll(&mut state.scratch, util::timeout(timeout_ms))?;
            state.pending.extend(state.scratch.drain(..));
        }
        let count = capacity.min(state.pending.len());
        for (i, event) in state.pending.drain(..count).enumerate() {
            // SAFETY: `events` holds `capacity` writable entries (caller's
            // contract) and i < count <= capacity.
            unsafe { events.add(i).write(event.into()) };
        }
        out.write(count);
        Ok(())
    })
}
