//! `connect` (and the waiting of `subscribe`): a client connection.
//!
//! A connect runs on the JavaScript thread when it can: the core's
//! [`Connecting`] connects the control socket and sends the HELLO without
//! waiting, then a libuv poll handle watches the socket, and a second one a
//! timerfd armed for the handshake's deadline. Whichever becomes readable
//! calls [`Connecting::advance`], which completes `op` with the stream, with
//! the error of the server's REJECT, or with Timeout once the deadline passed
//! (so the deadline needs neither a thread nor a JavaScript timer: the timerfd
//! counts on the monotonic clock that `Instant` reads). A connect cancelled by
//! an AbortSignal closes its socket at once (the server sees the client leave)
//! and completes nothing.
//!
//! A server that is not there yet, with `wait` (like the CLI's `--wait`), and
//! a server whose queue of waiting connections is full are waited for the
//! same way: the core's `Connecting` then has one fd for the whole connect
//! (an epoll set of its watch of the runtime directory, a backoff timer and,
//! later, the socket), and its deadline moves when the server takes the
//! connection, so the timer is armed again after each advance.
//!
//! Subscribing runs on a short-lived thread ([`in_background`]), which waits
//! in slices of at most [`SLICE`], so that a subscribe cancelled meanwhile
//! stops waiting soon; a subscriber it still made is closed.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use napi_derive::napi;
use shmsock::platform::DeadlineTimer;
use shmsock::{connect_wait, ConnectProgress, Connecting, Error as CoreError, ErrorKind};

use crate::dispatch::{lock, post, Event};
use crate::errors::{to_js, Code};
use crate::keys::JsKeypair;
use crate::options::{millis, to_core, NativeOptions};
use crate::stream::StreamShared;
use crate::uv::{Poll, Ready};

/// Longest core wait for a server between two looks at cancellation.
const SLICE: Duration = Duration::from_millis(250);

/// Connects whose caller gave up (an aborted signal), on a thread.
static CANCELLED: Mutex<Option<HashSet<i64>>> = Mutex::new(None);

fn cancelled(op: i64) -> bool {
    lock(&CANCELLED).as_ref().is_some_and(|set| set.contains(&op))
}

/// A connect the JavaScript thread drives.
struct Watched {
    connecting: Connecting,
    recv_timeout: Option<Duration>,
    watch: Watch,
}

/// The watching of a connect: a poll handle on its fd, another on a timer
/// readable once its deadline passed.
struct Watch {
    timer: DeadlineTimer,
    /// A duplicate of the connect's fd (the same for the whole connect),
    /// which the first poll handle watches: `advance` consumes the connect
    /// (and closes its fd when it fails), and libuv must stop watching an fd
    /// before the fd is closed.
    socket: OwnedFd,
    /// On `socket` and on `timer`.
    polls: [Poll; 2],
}

impl Watch {
    /// Watches `connecting` for connect `op` (keeping the process alive).
    fn new(op: i64, connecting: &Connecting) -> napi::Result<Watch, Code> {
        let socket = connecting
            .fd()
            .try_clone_to_owned()
            .map_err(|e| to_js(CoreError::io("duplicating the fd of a connect", e)))?;
        let timer = DeadlineTimer::new().map_err(to_js)?;
        timer.set(Some(connecting.deadline()));
        let pump: Arc<dyn Ready> = Arc::new(Pump { op });
        let poll = |fd: BorrowedFd<'_>| {
            Poll::new(fd.as_raw_fd(), Arc::clone(&pump))
                .map_err(|e| to_js(CoreError::new(ErrorKind::Io, format!("watching a connect: {}", e.reason))))
        };
        let on_socket = poll(socket.as_fd())?;
        let on_timer = match poll(timer.as_fd()) {
            Ok(handle) => handle,
            Err(e) => {
                on_socket.close();
                return Err(e);
            }
        };
        let mut polls = [on_socket, on_timer];
        // A pending connect keeps the process alive (as the JavaScript
        // layer's count of pending operations does too).
        for handle in &mut polls {
            handle.set(true, true);
        }
        Ok(Watch { timer, socket, polls })
    }

    /// After an `advance` that did not finish: a timer that fired stays
    /// readable until read, so it is read and armed again; one that did not
    /// fire keeps its setting. (It does not fire before the deadline: it
    /// counts on the monotonic clock that `Instant` reads.)
    fn rearm(&self, deadline: Instant) {
        self.timer.clear();
        self.timer.set(Some(deadline));
    }

    /// Stops watching, then closes the timer and the duplicate socket.
    fn close(self) {
        let Watch { timer, socket, polls } = self;
        for handle in polls {
            handle.close();
        }
        drop((timer, socket));
    }
}

thread_local! {
    /// The connects this JavaScript thread drives, by op (ops are unique per
    /// JavaScript thread, as is its libuv loop).
    static WATCHED: RefCell<HashMap<i64, Watched>> = RefCell::new(HashMap::new());
}

/// What the poll handles of connect `op` serve: each readiness advances it.
struct Pump {
    op: i64,
}

impl Ready for Pump {
    fn ready(self: Arc<Self>, events: &mut Vec<Event>) {
        let op = self.op;
        // None: completed or cancelled (a late readiness of its other fd).
        let Some(Watched { connecting, recv_timeout, watch }) = WATCHED.with(|w| w.borrow_mut().remove(&op)) else {
            return;
        };
        let event = match connecting.advance() {
            Ok(ConnectProgress::Waiting(connecting)) => {
                watch.rearm(connecting.deadline());
                WATCHED.with(|w| w.borrow_mut().insert(op, Watched { connecting, recv_timeout, watch }));
                return;
            }
            Ok(ConnectProgress::Done(stream)) => Event::Stream { op, stream: StreamShared::new(stream, recv_timeout) },
            Err(error) => Event::Failed { op, error },
        };
        watch.close();
        events.push(event);
    }
}

/// Connects to endpoint `name` and completes `op` with the stream; `wait` (ms):
/// how long to keep trying while no server listens.
#[napi]
pub fn connect(
    op: i64,
    name: String,
    keypair: Option<&JsKeypair>,
    options: Option<NativeOptions>,
    wait: Option<f64>,
) -> napi::Result<(), Code> {
    let (mut options, recv_timeout) = to_core(keypair, options)?;
    if let Some(wait) = wait.map(|ms| millis(ms, "wait")).transpose()? {
        options = options.connect_wait(wait);
    }
    let connecting = Connecting::start(&name, &options).map_err(to_js)?;
    let watch = Watch::new(op, &connecting)?;
    WATCHED.with(|w| w.borrow_mut().insert(op, Watched { connecting, recv_timeout, watch }));
    Ok(())
}

/// Runs `attempt(wait)` (a subscribe, waiting up to `wait` for its
/// server) on a short-lived thread, in slices of at most SLICE while it fails
/// with an error the core's wait retries and `wait` (ms) allows, and completes
/// `op` with `done` of its result on the JavaScript thread, unless the caller
/// gave up meanwhile (then the result is dropped, which closes it).
pub(crate) fn in_background<T: Send + 'static>(
    op: i64,
    wait: Option<f64>,
    attempt: impl Fn(Duration) -> Result<T, CoreError> + Send + 'static,
    done: impl FnOnce(T) -> Event + Send + 'static,
) -> napi::Result<(), Code> {
    let deadline = wait.map(|ms| millis(ms, "wait")).transpose()?.and_then(|w| Instant::now().checked_add(w));
    std::thread::Builder::new()
        .name("shmsock-connect".into())
        .spawn(move || {
            let result = loop {
                let left = deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(Instant::now()));
                match attempt(left.min(SLICE)) {
                    Err(e) if connect_wait::is_retried(e.kind()) && left > SLICE && !cancelled(op) => {}
                    other => break other,
                }
            };
            post(Box::new(move |events: &mut Vec<Event>| {
                let gave_up = lock(&CANCELLED).as_mut().is_some_and(|set| set.remove(&op));
                match result {
                    // The caller is gone: dropping the result closes it.
                    Ok(_) if gave_up => {}
                    Ok(value) => events.push(done(value)),
                    Err(error) => events.push(Event::Failed { op, error }),
                }
            }));
        })
        .map_err(|e| to_js(CoreError::io("starting a connect thread", e)))?;
    Ok(())
}

/// The caller of connect (or subscribe) `op` gave up (its promise was rejected already).
#[napi]
pub fn cancel_connect(op: i64) {
    // A connect this thread drives closes its socket now; one on a thread is
    // dropped when it comes back.
    match WATCHED.with(|w| w.borrow_mut().remove(&op)) {
        Some(Watched { connecting, watch, .. }) => {
            watch.close();
            // Closes the socket: the server sees the client leave.
            drop(connecting);
        }
        None => {
            lock(&CANCELLED).get_or_insert_with(HashSet::new).insert(op);
        }
    }
}
