//! The JavaScript thread's own waiting: libuv poll handles on the pollable fds
//! of streams and listeners, and the delivery of results to JavaScript.
//!
//! With [`hot`](crate::hot) (the per-message calls), this is where the
//! binding's unsafe code lives. Node links libuv into its
//! executable and exports its symbols (they are part of Node's documented
//! native ABI, which `napi_get_uv_event_loop` hands out), so they are declared
//! here with `extern "C"` and resolved when Node loads the module.
//!
//! Why libuv directly: a connection's pollable fd is an epoll set, which no
//! JavaScript API can watch. Watching it from the event loop itself means a
//! message wakes exactly one thread, the JavaScript thread, which then runs
//! `try_recv` and resolves the promise in the same turn — no native reactor
//! thread, no thread-safe function in the per-message path.
//!
//! Safety argument, in one place: every function here runs on the JavaScript
//! thread of the env that `init` registered (napi calls, libuv callbacks and
//! finalizers all run there), so the handles and napi values are never touched
//! from two threads; a [`Poll`] owns its handle's memory until libuv's close
//! callback frees it; the handle's `data` is a leaked `Box<Arc<dyn Ready>>`
//! that only that close callback takes back, so the callback never sees a
//! dangling target.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, ToNapiValue};
use napi::sys;

use crate::dispatch::{Event, EVENT_ARGS};

/// libuv's `uv_poll_t`, opaque: its size is asked from libuv.
#[repr(C)]
struct UvPoll {
    _opaque: [u8; 0],
}

/// `UV_POLL` in libuv's `uv_handle_type` (stable across libuv 1.x).
const UV_POLL: c_int = 8;
/// `UV_READABLE` in `uv_poll_event`.
const UV_READABLE: c_int = 1;

type PollCb = extern "C" fn(*mut UvPoll, c_int, c_int);
type CloseCb = extern "C" fn(*mut UvPoll);

extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_poll_init(event_loop: *mut sys::uv_loop_s, handle: *mut UvPoll, fd: c_int) -> c_int;
    fn uv_poll_start(handle: *mut UvPoll, events: c_int, cb: PollCb) -> c_int;
    fn uv_poll_stop(handle: *mut UvPoll) -> c_int;
    fn uv_close(handle: *mut UvPoll, cb: CloseCb);
    fn uv_ref(handle: *mut UvPoll);
    fn uv_unref(handle: *mut UvPoll);
    fn uv_handle_set_data(handle: *mut UvPoll, data: *mut c_void);
    fn uv_handle_get_data(handle: *const UvPoll) -> *mut c_void;
    fn uv_backend_fd(event_loop: *const sys::uv_loop_s) -> c_int;
    fn uv_backend_timeout(event_loop: *const sys::uv_loop_s) -> c_int;
}

/// Something a poll handle serves: called on the JavaScript thread when its fd
/// is readable; it pushes the results for JavaScript to `events`.
pub(crate) trait Ready: Send + Sync {
    fn ready(self: Arc<Self>, events: &mut Vec<Event>);
}

/// What the JavaScript thread keeps: its env, the `dispatch` function and the
/// async context results are delivered in.
struct JsContext {
    env: sys::napi_env,
    event_loop: *mut sys::uv_loop_s,
    dispatch: sys::napi_ref,
    async_context: sys::napi_async_context,
}

thread_local! {
    static JS: RefCell<Option<JsContext>> = const { RefCell::new(None) };
}

thread_local! {
    /// This thread's landing buffer (see [`land`]), given by `init`.
    static LANDING: RefCell<Option<Buffer>> = const { RefCell::new(None) };
}

/// Copies a small received message into this thread's landing buffer, a
/// Buffer the JavaScript layer made once: true when it fits (the caller then
/// hands JavaScript only the length, and JavaScript copies it out into a
/// Buffer from Node's own pool before anything else runs). Why: a Buffer
/// made here (`napi_create_buffer_copy`) costs an allocation, an ArrayBuffer
/// with its own backing store, a prototype change and, later, the garbage
/// collector's sweep of that store; a pooled `Buffer.allocUnsafe` plus a copy
/// costs about 0.1 µs. For 64 B round trips between two node processes on
/// one core that was about a tenth of the round trip.
pub(crate) fn land(data: &[u8]) -> bool {
    LANDING.with(|landing| match landing.borrow_mut().as_mut() {
        Some(landing) if data.len() <= landing.len() => {
            landing[..data.len()].copy_from_slice(data);
            true
        }
        _ => false,
    })
}

pub(crate) fn check(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(napi::Status::from(status), format!("{what} failed")))
    }
}

/// Registers `dispatch` (a JavaScript function taking one event as arguments,
/// or a batch as an array of events) for this thread's env. Called once per env
/// when the JavaScript layer loads.
pub(crate) fn init(env: sys::napi_env, dispatch: sys::napi_value, landing: Buffer) -> napi::Result<()> {
    let mut reference = ptr::null_mut();
    let mut async_context = ptr::null_mut();
    let mut name = ptr::null_mut();
    let mut event_loop = ptr::null_mut();
    // SAFETY: on the JavaScript thread, inside a napi call with this env.
    unsafe {
        check(sys::napi_get_uv_event_loop(env, &mut event_loop), "napi_get_uv_event_loop")?;
        check(sys::napi_create_reference(env, dispatch, 1, &mut reference), "napi_create_reference")?;
        check(sys::napi_create_string_utf8(env, c"shmsock".as_ptr(), 7, &mut name), "napi_create_string_utf8")?;
        check(sys::napi_async_init(env, ptr::null_mut(), name, &mut async_context), "napi_async_init")?;
    }
    JS.with(|js| *js.borrow_mut() = Some(JsContext { env, event_loop, dispatch: reference, async_context }));
    LANDING.with(|slot| *slot.borrow_mut() = Some(landing));
    Ok(())
}

/// Hands `events` to JavaScript's `dispatch`, as a callback from native code:
/// promises resolved there run their continuations when it returns (when no
/// JavaScript is below us on the stack, as in a libuv callback).
pub(crate) fn deliver(events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    JS.with(|js| {
        let js = js.borrow();
        let Some(js) = js.as_ref() else { return };
        let env = js.env;
        // SAFETY: on the JavaScript thread of `env` (see the module comment);
        // the handle scope bounds every value created here.
        unsafe {
            let mut scope = ptr::null_mut();
            if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
                return;
            }
            let mut func = ptr::null_mut();
            let mut recv = ptr::null_mut();
            let ok = sys::napi_get_reference_value(env, js.dispatch, &mut func) == sys::Status::napi_ok
                && sys::napi_get_global(env, &mut recv) == sys::Status::napi_ok;
            if ok {
                // One event (the usual case: a message, a receive completed)
                // is passed as the call's arguments; a batch as an array of
                // arrays. Building those arrays cost about a tenth of a small
                // message's time in each process.
                let args = match <[Event; 1]>::try_from(events) {
                    Ok([event]) => event.into_values(env, true).map(|argv| (argv, EVENT_ARGS)),
                    Err(events) => ToNapiValue::to_napi_value(env, events).map(|array| ([array; EVENT_ARGS], 1)),
                };
                if let Ok((argv, argc)) = args {
                    let mut result = ptr::null_mut();
                    let status =
                        sys::napi_make_callback(env, js.async_context, recv, func, argc, argv.as_ptr(), &mut result);
                    if status == sys::Status::napi_pending_exception {
                        // `dispatch` catches what handlers throw; anything
                        // else is reported as Node reports an uncaught error.
                        let mut error = ptr::null_mut();
                        if sys::napi_get_and_clear_last_exception(env, &mut error) == sys::Status::napi_ok {
                            sys::napi_fatal_exception(env, error);
                        }
                    }
                }
            }
            sys::napi_close_handle_scope(env, scope);
        }
    });
}

/// How a [`wait_in_place`] ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum InPlace {
    /// The fd is readable.
    Readable,
    /// The event loop has work (a watched fd is readable, a timer is due, an
    /// immediate waits): the caller returns to it.
    LoopBusy,
    /// Nothing happened within the limit.
    TimedOut,
}

/// Waits on the JavaScript thread itself, without going back to the event
/// loop, until `fd` (the pollable fd of the stream `owner`) is readable, for
/// at most `limit` and never past what the event loop has to do: it returns
/// as soon as any fd the loop watches is readable (its epoll set,
/// `uv_backend_fd`, is watched beside `fd`), and it does not start, or ends,
/// when the loop's next timer is due (`uv_backend_timeout`, which is 0 also
/// when immediates or closing handles wait). Nothing is consumed: the loop
/// still sees every readiness.
///
/// It sleeps in an epoll set of this thread's own ([`InPlaceSet`]) that
/// holds the loop's epoll fd and the stream's, registered once, not on each
/// wait: a `ppoll` of the two costs about four times an `epoll_wait` (it
/// sets up and tears down a wait on each nested set every call).
pub(crate) fn wait_in_place(owner: i64, fd: RawFd, limit: Duration) -> InPlace {
    let event_loop = JS.with(|js| js.borrow().as_ref().map(|js| js.event_loop));
    let Some(event_loop) = event_loop else { return InPlace::LoopBusy };
    // SAFETY: the loop of this thread's env, alive while the env is; both
    // calls only read it.
    let (backend, next_timer_ms) = unsafe { (uv_backend_fd(event_loop), uv_backend_timeout(event_loop)) };
    let (limit, timer_first) = match u64::try_from(next_timer_ms) {
        Ok(ms) if Duration::from_millis(ms) <= limit => (Duration::from_millis(ms), true),
        _ => (limit, false), // -1: no timer
    };
    if limit.is_zero() {
        return InPlace::LoopBusy;
    }
    // Whole milliseconds, rounded up: epoll_wait's unit (a wait in place is
    // bounded by its budget, which is milliseconds anyway).
    let timeout_ms = c_int::try_from(limit.as_micros().div_ceil(1000)).unwrap_or(c_int::MAX);
    let waited = IN_PLACE_SET.with(|set| {
        let mut set = set.borrow_mut();
        if set.as_ref().is_none_or(|s| s.backend != backend) {
            *set = InPlaceSet::new(backend);
        }
        set.as_mut().map(|set| set.wait(owner, fd, timeout_ms))
    });
    match waited {
        Some(Ok(Some(true))) => InPlace::Readable,
        Some(Ok(None)) if !timer_first => InPlace::TimedOut,
        // The loop has work, a signal came, the timer is due, or no set could
        // be made: back to the loop.
        _ => InPlace::LoopBusy,
    }
}

/// The epoll set a [`wait_in_place`] sleeps in: the event loop's own epoll
/// fd, and the pollable fd of the stream that waited last (one at a time:
/// a JavaScript thread waits for one receive at once). Both level-triggered,
/// so a readiness is reported, never consumed, whenever the wait starts.
struct InPlaceSet {
    epoll: OwnedFd,
    backend: RawFd,
    /// The stream registered now: its id and fd.
    current: Option<(i64, RawFd)>,
}

/// The token of the loop's epoll fd in an [`InPlaceSet`] (a stream's is its fd).
const LOOP_TOKEN: u64 = u64::MAX;

thread_local! {
    static IN_PLACE_SET: RefCell<Option<InPlaceSet>> = const { RefCell::new(None) };
}

impl InPlaceSet {
    fn new(backend: RawFd) -> Option<InPlaceSet> {
        // SAFETY: plain system calls on fds this function owns or was given
        // (the loop's epoll fd lives as long as this thread's loop).
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return None;
        }
        // SAFETY: `epoll` was just created and is owned by nobody else.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        let set = InPlaceSet { epoll, backend, current: None };
        set.control(libc::EPOLL_CTL_ADD, backend, LOOP_TOKEN).then_some(set)
    }

    fn control(&self, op: c_int, fd: RawFd, token: u64) -> bool {
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: `event` is valid for the call; the kernel checks the fds.
        unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) == 0 }
    }

    /// Sleeps up to `timeout_ms`: Some(true) when `fd` is readable,
    /// Some(false) when only the loop's fd is (or a signal came), None when
    /// nothing happened; Err when `fd` cannot be watched.
    fn wait(&mut self, owner: i64, fd: RawFd, timeout_ms: c_int) -> Result<Option<bool>, ()> {
        if self.current != Some((owner, fd)) {
            if let Some((_, old)) = self.current.take() {
                // Fails harmlessly when that stream's fd is closed already (the
                // kernel dropped it from the set) or now names another file.
                self.control(libc::EPOLL_CTL_DEL, old, 0);
            }
            let token = u64::try_from(fd).map_err(|_| ())?;
            if !self.control(libc::EPOLL_CTL_ADD, fd, token) {
                return Err(());
            }
            self.current = Some((owner, fd));
        }
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 2];
        // SAFETY: `events` is valid for two entries during the call.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), 2, timeout_ms) };
        match usize::try_from(n) {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(events[..n.min(2)].iter().any(|e| e.u64 != LOOP_TOKEN))),
            Err(_) => Ok(Some(false)), // EINTR: back to the loop
        }
    }
}

/// A libuv poll handle watching one fd for readability on the JavaScript thread.
pub(crate) struct Poll {
    handle: *mut UvPoll,
    started: bool,
    referenced: bool,
}

// SAFETY: a Poll is created, used and closed on the JavaScript thread only (it
// sits in state that other threads share, but they never touch it).
unsafe impl Send for Poll {}

fn poll_layout() -> Option<Layout> {
    // SAFETY: a pure function of libuv.
    let size = unsafe { uv_handle_size(UV_POLL) };
    Layout::from_size_align(size.max(1), 16).ok()
}

extern "C" fn on_readable(handle: *mut UvPoll, _status: c_int, _events: c_int) {
    // SAFETY: `data` is the Box<Arc<dyn Ready>> that `Poll::new` leaked; it is
    // freed only in `on_close`, which libuv runs after the last callback.
    let target = unsafe { &*(uv_handle_get_data(handle) as *const Arc<dyn Ready>) };
    // An error status (e.g. the fd was closed under us) also gives the target a
    // look: its `try_` calls report the stream's real state.
    let target = Arc::clone(target);
    let mut events = Vec::new();
    target.ready(&mut events);
    deliver(events);
}

extern "C" fn on_close(handle: *mut UvPoll) {
    // SAFETY: libuv is done with the handle; `data` and the memory were made
    // by `Poll::new` with these types and this layout.
    unsafe {
        drop(Box::from_raw(uv_handle_get_data(handle) as *mut Arc<dyn Ready>));
        if let Some(layout) = poll_layout() {
            dealloc(handle as *mut u8, layout);
        }
    }
}

impl Poll {
    /// A stopped, unreferenced poll handle on `fd` for `target`.
    pub(crate) fn new(fd: RawFd, target: Arc<dyn Ready>) -> napi::Result<Poll> {
        let env = JS.with(|js| js.borrow().as_ref().map(|js| js.env));
        let env = env.ok_or_else(|| napi::Error::from_reason("shmsock: init() was not called on this thread"))?;
        let layout = poll_layout().ok_or_else(|| napi::Error::from_reason("libuv reported no poll handle size"))?;
        // SAFETY: on the JavaScript thread; the memory is zeroed, sized and
        // aligned for a uv_poll_t, and freed only by `on_close` or below.
        unsafe {
            let mut event_loop = ptr::null_mut();
            check(sys::napi_get_uv_event_loop(env, &mut event_loop), "napi_get_uv_event_loop")?;
            let handle = alloc_zeroed(layout) as *mut UvPoll;
            if handle.is_null() {
                return Err(napi::Error::from_reason("out of memory for a poll handle"));
            }
            if uv_poll_init(event_loop, handle, fd) != 0 {
                dealloc(handle as *mut u8, layout);
                return Err(napi::Error::from_reason("uv_poll_init failed on a shmsock fd"));
            }
            uv_handle_set_data(handle, Box::into_raw(Box::new(target)) as *mut c_void);
            uv_unref(handle);
            Ok(Poll { handle, started: false, referenced: false })
        }
    }

    /// Watches the fd (true) or not; an active handle with `keep_alive` keeps
    /// Node's event loop running.
    pub(crate) fn set(&mut self, watch: bool, keep_alive: bool) {
        // SAFETY: the handle is initialised and not closed (close takes self).
        unsafe {
            if watch != self.started {
                if watch {
                    self.started = uv_poll_start(self.handle, UV_READABLE, on_readable) == 0;
                } else {
                    uv_poll_stop(self.handle);
                    self.started = false;
                }
            }
            if keep_alive != self.referenced {
                if keep_alive {
                    uv_ref(self.handle);
                } else {
                    uv_unref(self.handle);
                }
                self.referenced = keep_alive;
            }
        }
    }

    /// Stops watching and releases the handle (libuv frees it on its next turn;
    /// the fd may be closed as soon as this returns).
    pub(crate) fn close(self) {
        // SAFETY: on the JavaScript thread; uv_close is called once per handle
        // (self is consumed) and `on_close` frees what `new` allocated.
        unsafe {
            uv_poll_stop(self.handle);
            uv_close(self.handle, on_close);
        }
    }
}
